/**
 * Storage Gateway: gateways, cached iSCSI volumes with their targets, and the targets' CHAP credentials
 * (DescribeChapCredentials, UpdateChapCredentials, DeleteChapCredentials, CreateCachediSCSIVolume,
 * DescribeCachediSCSIVolumes, DeleteVolume).
 *
 * Request members are checked against the API reference's model constraints (ValidationException, which never
 * echoes a secret); what the gateway itself refuses answers InvalidGatewayRequestException with an
 * `error.errorCode` (TargetNotFound, VolumeNotFound, GatewayNotFound, TargetAlreadyExists, InvalidParameters...).
 *
 * "When you update CHAP credentials, all existing connections on the target are closed and initiators must
 * reconnect" (UpdateChapCredentials). Every successful change of a target's CHAP credentials (an update or a
 * delete) counts one close of that target's connections; `connectionsClosed(targetArn)` reads the count, so a
 * test can prove that a deploy left the hosts connected.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { AwsError, Constraint, validate } from './errors';

const TARGET_ARN: Constraint = { required: true, min: 50, max: 800 };
const INITIATOR: Constraint = { required: true, min: 1, max: 255, pattern: /^[0-9a-z:.-]+$/ };
/** The model allows 1 to 100 characters; the documented rule is 12 to 16 bytes when encoded in UTF-8. */
const CHAP_SECRET: Constraint = { min: 1, max: 100, minBytes: 12, maxBytes: 16, sensitive: true };
const GATEWAY_ARN: Constraint = { required: true, min: 50, max: 500 };
const TARGET_NAME: Constraint = { required: true, min: 1, max: 200, pattern: /^[-.;a-z0-9]+$/ };
const VOLUME_ARN_PATTERN = /^arn:(aws(|-cn|-us-gov|-iso[A-Za-z0-9_-]*)):storagegateway:[a-z\-0-9]+:[0-9]+:gateway\/(.+)\/volume\/vol-(\S+)$/;
const VOLUME_ARN: Constraint = { required: true, min: 50, max: 500, pattern: VOLUME_ARN_PATTERN };
/** The prefix of every volume target's iSCSI name; the target ARN ends with it and the target name. */
export const TARGET_IQN_PREFIX = 'iqn.1997-05.com.amazon:';

export interface ChapCredential {
  readonly InitiatorName: string;
  readonly SecretToAuthenticateInitiator: string;
  readonly SecretToAuthenticateTarget?: string;
}

/** A cached iSCSI volume as the emulator holds it. */
export interface Volume {
  readonly volumeArn: string;
  readonly volumeId: string;
  readonly gatewayArn: string;
  readonly targetName: string;
  readonly targetArn: string;
  readonly networkInterfaceId: string;
  readonly volumeSizeInBytes: number;
  readonly createdDate: Date;
  readonly kmsKey?: string;
}

/** What `addVolume` needs; the size and the network interface have defaults. */
export interface VolumeSpec {
  readonly gatewayArn: string;
  readonly targetName: string;
  /** @default '10.0.0.10' */
  readonly networkInterfaceId?: string;
  /** @default 1 GiB */
  readonly volumeSizeInBytes?: number;
}

function gatewayError(errorCode: string, message: string): AwsError {
  return new AwsError('InvalidGatewayRequestException', message, 400, { error: { errorCode, errorDetails: {} } });
}

/** The ARN of the target `targetName` of a volume on `gatewayArn`. */
export function volumeTargetArn(gatewayArn: string, targetName: string): string {
  return `${gatewayArn}/target/${TARGET_IQN_PREFIX}${targetName}`;
}

export class StorageGateway {
  /** Target ARN to its credentials, by initiator name. */
  readonly targets = new Map<string, Map<string, ChapCredential>>();
  /** Gateway ARNs that volumes can be created on. */
  readonly gateways = new Set<string>();
  /** Volume ARN to volume. */
  readonly volumes = new Map<string, Volume>();
  /**
   * The errorCode of the InvalidGatewayRequestException that DeleteChapCredentials answers for an initiator with no
   * credentials on the target. The API reference does not document it (its ErrorCode enum has both InitiatorNotFound
   * and ChapCredentialNotFound), so a test can switch it to prove a caller does not depend on one of them.
   */
  missingInitiatorErrorCode: 'InitiatorNotFound' | 'ChapCredentialNotFound' = 'InitiatorNotFound';
  private readonly closes = new Map<string, number>();
  private readonly clientTokens = new Map<string, string>();

  /** Adds a target (replacing any with that ARN) holding `credentials`. */
  addTarget(targetArn: string, credentials: readonly ChapCredential[] = []): void {
    this.targets.set(targetArn, new Map(credentials.map((c) => [c.InitiatorName, { ...c }])));
  }

  /** Adds a gateway that volumes can be created on (CreateCachediSCSIVolume answers GatewayNotFound for others). */
  addGateway(gatewayArn: string): void {
    this.gateways.add(gatewayArn);
  }

  /**
   * Adds a cached volume (and its gateway, when new) as CreateCachediSCSIVolume would: its target exists, with no
   * CHAP credentials. Throws the AwsError the operation would answer (such as TargetAlreadyExists).
   */
  addVolume(spec: VolumeSpec): { targetArn: string; volumeArn: string; volumeId: string } {
    this.addGateway(spec.gatewayArn);
    const { VolumeARN, TargetARN } = this.CreateCachediSCSIVolume({
      GatewayARN: spec.gatewayArn,
      TargetName: spec.targetName,
      NetworkInterfaceId: spec.networkInterfaceId ?? '10.0.0.10',
      VolumeSizeInBytes: spec.volumeSizeInBytes ?? 1024 ** 3,
      ClientToken: randomUUID(),
    });
    return { targetArn: TargetARN, volumeArn: VolumeARN, volumeId: this.volumes.get(VolumeARN)!.volumeId };
  }

  /**
   * How many times the connections of `targetArn` were closed by a change of its CHAP credentials (each successful
   * UpdateChapCredentials or DeleteChapCredentials counts one). The count outlives the target.
   */
  connectionsClosed(targetArn: string): number {
    return this.closes.get(targetArn) ?? 0;
  }

  private closeConnections(targetArn: string): void {
    this.closes.set(targetArn, this.connectionsClosed(targetArn) + 1);
  }

  private target(targetArn: string): Map<string, ChapCredential> {
    const target = this.targets.get(targetArn);
    if (!target) throw gatewayError('TargetNotFound', 'The specified target was not found.');
    return target;
  }

  private volume(volumeArn: string): Volume {
    const volume = this.volumes.get(volumeArn);
    if (!volume) throw gatewayError('VolumeNotFound', 'The specified volume was not found.');
    return volume;
  }

  DescribeChapCredentials(input: Record<string, unknown>) {
    validate(input, { TargetARN: TARGET_ARN });
    const targetArn = input.TargetARN as string;
    return { ChapCredentials: [...this.target(targetArn).values()].map((c) => ({ ...c, TargetARN: targetArn })) };
  }

  UpdateChapCredentials(input: Record<string, unknown>) {
    validate(input, {
      TargetARN: TARGET_ARN, InitiatorName: INITIATOR,
      SecretToAuthenticateInitiator: { ...CHAP_SECRET, required: true },
      SecretToAuthenticateTarget: CHAP_SECRET,
    });
    const targetArn = input.TargetARN as string;
    const target = this.target(targetArn);
    if (input.SecretToAuthenticateTarget !== undefined && input.SecretToAuthenticateTarget === input.SecretToAuthenticateInitiator) {
      throw gatewayError('InvalidParameters', 'The secret to authenticate the target must differ from the secret to authenticate the initiator.');
    }
    target.set(input.InitiatorName as string, {
      InitiatorName: input.InitiatorName as string,
      SecretToAuthenticateInitiator: input.SecretToAuthenticateInitiator as string,
      ...(input.SecretToAuthenticateTarget !== undefined ? { SecretToAuthenticateTarget: input.SecretToAuthenticateTarget as string } : {}),
    });
    this.closeConnections(targetArn);
    return { TargetARN: targetArn, InitiatorName: input.InitiatorName };
  }

  DeleteChapCredentials(input: Record<string, unknown>) {
    validate(input, { TargetARN: TARGET_ARN, InitiatorName: INITIATOR });
    const targetArn = input.TargetARN as string;
    if (!this.target(targetArn).delete(input.InitiatorName as string)) {
      throw gatewayError(this.missingInitiatorErrorCode, 'The specified initiator was not found.');
    }
    this.closeConnections(targetArn);
    return { TargetARN: targetArn, InitiatorName: input.InitiatorName };
  }

  CreateCachediSCSIVolume(input: Record<string, unknown>) {
    validate(input, {
      GatewayARN: GATEWAY_ARN,
      VolumeSizeInBytes: { required: true, type: 'number' },
      TargetName: TARGET_NAME,
      NetworkInterfaceId: { required: true },
      ClientToken: { required: true, min: 5, max: 100 },
      SnapshotId: { pattern: /^snap-([0-9A-Fa-f]{8}|[0-9A-Fa-f]{17})$/ },
      SourceVolumeARN: { ...VOLUME_ARN, required: false },
      KMSEncrypted: { type: 'boolean' },
      KMSKey: { min: 7, max: 2048 },
    });
    const gatewayArn = input.GatewayARN as string;
    const targetName = input.TargetName as string;
    const retried = this.clientTokens.get(`${gatewayArn} ${input.ClientToken}`);
    if (retried && this.volumes.has(retried)) {
      const volume = this.volumes.get(retried)!;
      return { VolumeARN: volume.volumeArn, TargetARN: volume.targetArn };
    }
    if (!this.gateways.has(gatewayArn)) throw gatewayError('GatewayNotFound', 'The specified gateway was not found.');
    if (!isIP(input.NetworkInterfaceId as string)) {
      throw gatewayError('InvalidParameters', 'The specified network interface is not a valid IP address.');
    }
    if (!Number.isInteger(input.VolumeSizeInBytes) || (input.VolumeSizeInBytes as number) <= 0) {
      throw gatewayError('InvalidParameters', 'The volume size must be a positive number of bytes.');
    }
    const targetArn = volumeTargetArn(gatewayArn, targetName);
    if (this.targets.has(targetArn)) throw gatewayError('TargetAlreadyExists', 'The specified target already exists.');
    const volumeId = `vol-${randomBytes(9).toString('hex').toUpperCase().slice(0, 17)}`;
    const volume: Volume = {
      volumeArn: `${gatewayArn}/volume/${volumeId}`, volumeId, gatewayArn, targetName, targetArn,
      networkInterfaceId: input.NetworkInterfaceId as string, volumeSizeInBytes: input.VolumeSizeInBytes as number,
      createdDate: new Date(), ...(input.KMSKey !== undefined ? { kmsKey: input.KMSKey as string } : {}),
    };
    this.volumes.set(volume.volumeArn, volume);
    this.targets.set(targetArn, new Map());
    this.clientTokens.set(`${gatewayArn} ${input.ClientToken}`, volume.volumeArn);
    return { VolumeARN: volume.volumeArn, TargetARN: targetArn };
  }

  DescribeCachediSCSIVolumes(input: Record<string, unknown>) {
    validate(input, { VolumeARNs: { required: true, type: 'list' } });
    const arns = input.VolumeARNs as unknown[];
    arns.forEach((arn, i) => validate({ [`VolumeARNs.${i + 1}.member`]: arn }, { [`VolumeARNs.${i + 1}.member`]: VOLUME_ARN }));
    const volumes = (arns as string[]).map((arn) => this.volume(arn));
    if (new Set(volumes.map((v) => v.gatewayArn)).size > 1) {
      throw gatewayError('InvalidParameters', 'All of the specified volumes must be from the same gateway.');
    }
    return {
      CachediSCSIVolumes: [...new Set(volumes)].sort((a, b) => (a.volumeArn < b.volumeArn ? -1 : 1)).map((v) => ({
        VolumeARN: v.volumeArn,
        VolumeId: v.volumeId,
        VolumeType: 'CACHED iSCSI',
        VolumeStatus: 'AVAILABLE',
        VolumeAttachmentStatus: 'ATTACHED',
        VolumeSizeInBytes: v.volumeSizeInBytes,
        VolumeUsedInBytes: 0,
        CreatedDate: v.createdDate.getTime() / 1000,
        TargetName: v.targetName,
        ...(v.kmsKey !== undefined ? { KMSKey: v.kmsKey } : {}),
        VolumeiSCSIAttributes: {
          TargetARN: v.targetArn,
          NetworkInterfaceId: v.networkInterfaceId,
          NetworkInterfacePort: 3260,
          LunNumber: 0,
          ChapEnabled: (this.targets.get(v.targetArn)?.size ?? 0) > 0,
        },
      })),
    };
  }

  /** Deletes a volume; its target goes with it, and with the target its CHAP credentials. */
  DeleteVolume(input: Record<string, unknown>) {
    validate(input, { VolumeARN: VOLUME_ARN });
    const volume = this.volume(input.VolumeARN as string);
    this.volumes.delete(volume.volumeArn);
    this.targets.delete(volume.targetArn);
    return { VolumeARN: volume.volumeArn };
  }
}
