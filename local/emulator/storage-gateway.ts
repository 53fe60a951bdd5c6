/**
 * Storage Gateway: iSCSI targets and their CHAP credentials (DescribeChapCredentials, UpdateChapCredentials,
 * DeleteChapCredentials). An unknown target answers InvalidGatewayRequestException with error.errorCode
 * TargetNotFound, as the service does.
 */
import { AwsError, Constraint, validate } from './errors';

const TARGET_ARN: Constraint = { required: true, min: 50, max: 800 };
const INITIATOR: Constraint = { required: true, min: 1, max: 255, pattern: /^[0-9a-z:.-]+$/ };
const CHAP_SECRET: Constraint = { min: 1, max: 100, sensitive: true };

export interface ChapCredential {
  readonly InitiatorName: string;
  readonly SecretToAuthenticateInitiator: string;
  readonly SecretToAuthenticateTarget?: string;
}

function gatewayError(errorCode: string, message: string): AwsError {
  return new AwsError('InvalidGatewayRequestException', message, 400, { error: { errorCode, errorDetails: {} } });
}

export class StorageGateway {
  /** Target ARN to its credentials, by initiator name. */
  readonly targets = new Map<string, Map<string, ChapCredential>>();

  /** Adds a target (replacing any with that ARN) holding `credentials`. */
  addTarget(targetArn: string, credentials: readonly ChapCredential[] = []): void {
    this.targets.set(targetArn, new Map(credentials.map((c) => [c.InitiatorName, { ...c }])));
  }

  private target(targetArn: string): Map<string, ChapCredential> {
    const target = this.targets.get(targetArn);
    if (!target) throw gatewayError('TargetNotFound', 'The specified target was not found.');
    return target;
  }

  DescribeChapCredentials(input: Record<string, unknown>) {
    validate(input, { TargetARN: TARGET_ARN });
    const targetArn = input.TargetARN as string;
    return { ChapCredentials: [...this.target(targetArn).values()].map((c) => ({ ...c, TargetARN: targetArn })) };
  }

  UpdateChapCredentials(input: Record<string, unknown>) {
    validate(input, {
      TargetARN: TARGET_ARN, InitiatorName: INITIATOR,
      SecretToAuthenticateInitiator: { ...CHAP_SECRET, required: true, min: 12, max: 16 },
      SecretToAuthenticateTarget: { ...CHAP_SECRET, min: 12, max: 16 },
    });
    if (input.SecretToAuthenticateTarget !== undefined && input.SecretToAuthenticateTarget === input.SecretToAuthenticateInitiator) {
      throw gatewayError('InvalidParameters', 'The secret to authenticate the target must differ from the secret to authenticate the initiator.');
    }
    const target = this.target(input.TargetARN as string);
    target.set(input.InitiatorName as string, {
      InitiatorName: input.InitiatorName as string,
      SecretToAuthenticateInitiator: input.SecretToAuthenticateInitiator as string,
      ...(input.SecretToAuthenticateTarget !== undefined ? { SecretToAuthenticateTarget: input.SecretToAuthenticateTarget as string } : {}),
    });
    return { TargetARN: input.TargetARN, InitiatorName: input.InitiatorName };
  }

  DeleteChapCredentials(input: Record<string, unknown>) {
    validate(input, { TargetARN: TARGET_ARN, InitiatorName: INITIATOR });
    const target = this.target(input.TargetARN as string);
    if (!target.delete(input.InitiatorName as string)) {
      throw gatewayError('InitiatorNotFound', 'The specified initiator was not found.');
    }
    return { TargetARN: input.TargetARN, InitiatorName: input.InitiatorName };
  }
}
