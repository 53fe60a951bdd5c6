/**
 * Secrets Manager, with the semantics the handler and the driver rely on: ARNs with the random six-character
 * suffix, versions with staging labels (AWSCURRENT, AWSPREVIOUS), ClientRequestToken idempotency, name rules,
 * deletion with a recovery window and restore, KMS key ids and tags kept.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { AwsError, Constraint, validate } from './errors';

const NAME: Constraint = { min: 1, max: 512, pattern: /^[A-Za-z0-9/_+=.@-]+$/ };
const SECRET_ID: Constraint = { required: true, min: 1, max: 2048 };
const TOKEN: Constraint = { min: 32, max: 64 };
const SECRET_STRING: Constraint = { max: 65536, sensitive: true };
const KMS_KEY: Constraint = { min: 0, max: 2048 };
const DESCRIPTION: Constraint = { max: 2048 };
const STAGE: Constraint = { min: 1, max: 256 };

export interface Version {
  readonly versionId: string;
  readonly secretString?: string;
  readonly createdDate: number;
  readonly stages: Set<string>;
}

export interface StoredSecret {
  readonly arn: string;
  readonly name: string;
  description?: string;
  kmsKeyId?: string;
  tags: { Key: string; Value: string }[];
  readonly versions: Map<string, Version>;
  readonly createdDate: number;
  deletedDate?: number;
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function randomSuffix(): string {
  return [...randomBytes(6)].map((b) => ALPHANUMERIC[b % ALPHANUMERIC.length]).join('');
}

export class SecretsManager {
  readonly secrets = new Map<string, StoredSecret>();

  constructor(private readonly region: string, private readonly account: string) {}

  /** The secret with this ARN or name, deleted or not, if there is one. */
  lookup(secretId: string): StoredSecret | undefined {
    return secretId.startsWith('arn:') ? [...this.secrets.values()].find((s) => s.arn === secretId) : this.secrets.get(secretId);
  }

  /** Finds a secret by ARN or name; deleted ones only when `allowDeleted`. */
  private find(secretId: string, allowDeleted = false): StoredSecret {
    const secret = this.lookup(secretId);
    if (!secret) throw new AwsError('ResourceNotFoundException', "Secrets Manager can't find the specified secret.");
    if (secret.deletedDate !== undefined && !allowDeleted) {
      throw new AwsError('InvalidRequestException',
        "You can't perform this operation on the secret because it was marked for deletion.");
    }
    return secret;
  }

  private addVersion(secret: StoredSecret, versionId: string, secretString: string | undefined, stages: string[]): Version {
    for (const stage of stages) {
      for (const v of secret.versions.values()) {
        if (!v.stages.has(stage)) continue;
        v.stages.delete(stage);
        if (stage === 'AWSCURRENT') {
          for (const p of secret.versions.values()) p.stages.delete('AWSPREVIOUS');
          v.stages.add('AWSPREVIOUS');
        }
      }
    }
    const version: Version = { versionId, secretString, createdDate: Date.now() / 1000, stages: new Set(stages) };
    secret.versions.set(versionId, version);
    return version;
  }

  CreateSecret(input: Record<string, unknown>) {
    validate(input, {
      Name: { ...NAME, required: true }, ClientRequestToken: TOKEN, SecretString: SECRET_STRING, KmsKeyId: KMS_KEY,
      Description: DESCRIPTION, Tags: { type: 'list', max: 50 },
    });
    const name = input.Name as string;
    const existing = this.secrets.get(name);
    if (existing?.deletedDate !== undefined) {
      throw new AwsError('InvalidRequestException',
        "You can't create this secret because a secret with this name is already scheduled for deletion.");
    }
    if (existing) throw new AwsError('ResourceExistsException', `The operation failed because the secret ${name} already exists.`);
    const secret: StoredSecret = {
      arn: `arn:aws:secretsmanager:${this.region}:${this.account}:secret:${name}-${randomSuffix()}`,
      name,
      description: input.Description as string | undefined,
      kmsKeyId: input.KmsKeyId as string | undefined,
      tags: (input.Tags as { Key: string; Value: string }[] | undefined) ?? [],
      versions: new Map(),
      createdDate: Date.now() / 1000,
    };
    this.secrets.set(name, secret);
    let versionId: string | undefined;
    if (input.SecretString !== undefined) {
      versionId = (input.ClientRequestToken as string | undefined) ?? randomUUID();
      this.addVersion(secret, versionId, input.SecretString as string, ['AWSCURRENT']);
    }
    return { ARN: secret.arn, Name: name, ...(versionId ? { VersionId: versionId } : {}) };
  }

  GetSecretValue(input: Record<string, unknown>) {
    validate(input, { SecretId: SECRET_ID, VersionId: { min: 32, max: 64 }, VersionStage: STAGE });
    const secret = this.find(input.SecretId as string);
    const stage = input.VersionId === undefined ? ((input.VersionStage as string | undefined) ?? 'AWSCURRENT') : undefined;
    const version = [...secret.versions.values()].find((v) =>
      (input.VersionId === undefined || v.versionId === input.VersionId) && (stage === undefined || v.stages.has(stage)));
    if (!version) {
      throw new AwsError('ResourceNotFoundException',
        `Secrets Manager can't find the specified secret value for ${input.VersionId ? 'VersionId' : 'staging label'}: ${input.VersionId ?? stage}`);
    }
    return {
      ARN: secret.arn, Name: secret.name, VersionId: version.versionId, SecretString: version.secretString,
      VersionStages: [...version.stages], CreatedDate: version.createdDate,
    };
  }

  PutSecretValue(input: Record<string, unknown>) {
    validate(input, {
      SecretId: SECRET_ID, ClientRequestToken: TOKEN, SecretString: SECRET_STRING, VersionStages: { type: 'list', min: 1, max: 20 },
    });
    if (input.SecretString === undefined && input.SecretBinary === undefined) {
      throw new AwsError('InvalidRequestException', 'You must provide either SecretString or SecretBinary.');
    }
    const secret = this.find(input.SecretId as string);
    const token = (input.ClientRequestToken as string | undefined) ?? randomUUID();
    const existing = secret.versions.get(token);
    if (existing) {
      if (existing.secretString !== input.SecretString) {
        throw new AwsError('ResourceExistsException',
          `You can't modify an existing version, you can only create a new version. VersionId: ${token}`);
      }
      return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: [...existing.stages] };
    }
    const version = this.addVersion(secret, token, input.SecretString as string, (input.VersionStages as string[] | undefined) ?? ['AWSCURRENT']);
    return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: [...version.stages] };
  }

  DescribeSecret(input: Record<string, unknown>) {
    validate(input, { SecretId: SECRET_ID });
    const s = this.find(input.SecretId as string, true);
    return {
      ARN: s.arn, Name: s.name, Description: s.description, KmsKeyId: s.kmsKeyId, Tags: s.tags, CreatedDate: s.createdDate,
      ...(s.deletedDate !== undefined ? { DeletedDate: s.deletedDate } : {}),
      VersionIdsToStages: Object.fromEntries([...s.versions.values()].filter((v) => v.stages.size).map((v) => [v.versionId, [...v.stages]])),
    };
  }

  ListSecretVersionIds(input: Record<string, unknown>) {
    validate(input, { SecretId: SECRET_ID, IncludeDeprecated: { type: 'boolean' } });
    const s = this.find(input.SecretId as string, true);
    return {
      ARN: s.arn, Name: s.name,
      Versions: [...s.versions.values()].filter((v) => input.IncludeDeprecated || v.stages.size)
        .map((v) => ({ VersionId: v.versionId, VersionStages: [...v.stages], CreatedDate: v.createdDate })),
    };
  }

  ListSecrets(input: Record<string, unknown>) {
    validate(input, { IncludePlannedDeletion: { type: 'boolean' } });
    return {
      SecretList: [...this.secrets.values()].filter((s) => input.IncludePlannedDeletion || s.deletedDate === undefined)
        .map((s) => ({ ARN: s.arn, Name: s.name, Description: s.description, KmsKeyId: s.kmsKeyId, Tags: s.tags })),
    };
  }

  DeleteSecret(input: Record<string, unknown>) {
    validate(input, { SecretId: SECRET_ID, RecoveryWindowInDays: { type: 'number', min: 7, max: 30 }, ForceDeleteWithoutRecovery: { type: 'boolean' } });
    if (input.ForceDeleteWithoutRecovery && input.RecoveryWindowInDays !== undefined) {
      throw new AwsError('InvalidParameterException',
        "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.");
    }
    if (input.ForceDeleteWithoutRecovery) {
      // Forcibly deleting a deleted or missing secret is not an error.
      const gone = this.lookup(input.SecretId as string);
      if (gone) this.secrets.delete(gone.name);
      return { ARN: gone?.arn ?? input.SecretId, Name: gone?.name, DeletionDate: Date.now() / 1000 };
    }
    const secret = this.find(input.SecretId as string, true);
    if (secret.deletedDate !== undefined) {
      throw new AwsError('InvalidRequestException', "You can't perform this operation on the secret because it was already scheduled for deletion.");
    }
    secret.deletedDate = Date.now() / 1000;
    const days = (input.RecoveryWindowInDays as number | undefined) ?? 30;
    return { ARN: secret.arn, Name: secret.name, DeletionDate: secret.deletedDate + days * 86_400 };
  }

  RestoreSecret(input: Record<string, unknown>) {
    validate(input, { SecretId: SECRET_ID });
    const secret = this.find(input.SecretId as string, true);
    delete secret.deletedDate;
    return { ARN: secret.arn, Name: secret.name };
  }

  /** Test and demo access: the current value of a secret by name or ARN, without going through the wire. */
  current(secretId: string): string | undefined {
    const secret = this.find(secretId, true);
    return [...secret.versions.values()].find((v) => v.stages.has('AWSCURRENT'))?.secretString;
  }

  /** Test and demo access: every version of a secret, oldest first. */
  versions(secretId: string): Version[] {
    return [...this.find(secretId, true).versions.values()];
  }
}
