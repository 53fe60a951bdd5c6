/**
 * Resource provisioning for the local CloudFormation driver: creates, updates and deletes each resource of a stack by
 * its type. Secrets Manager secrets, Storage Gateway volumes (AWS::StorageGateway::Volume, with its iSCSI target) and
 * Parameter Store parameters (AWS::SSM::Parameter) are made in the emulator, custom resources get their events through
 * the invoker, and every other resource gets plausible ids and attributes. A deleted or replaced resource follows its
 * DeletionPolicy or UpdateReplacePolicy; a rollback puts back what an update changed in place.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { AwsError, Emulator } from '../emulator';
import { Invoker } from './invoke';
import { LambdaService } from './lambda';
import { TemplateResolver } from './template';
import { Deployed, Json, Occasion, StackFailure, StackState, isCustom, policiesOf } from './types';

/** Properties of AWS::StorageGateway::Volume whose change replaces the volume (every one but Tags). */
const VOLUME_REPLACING = ['GatewayARN', 'TargetName', 'NetworkInterfaceId', 'VolumeSizeInBytes', 'SnapshotId', 'SourceVolumeARN', 'KMSEncrypted', 'KMSKey'];

export class Provisioner {
  constructor(
    private readonly stack: StackState,
    private readonly emulator: Emulator,
    private readonly resolver: TemplateResolver,
    private readonly invoker: Invoker,
    private readonly lambda: LambdaService,
  ) {}

  /**
   * Whether CloudFormation keeps the physical resource on this occasion: a replaced resource follows its
   * UpdateReplacePolicy, any other its DeletionPolicy; RetainExceptOnCreate keeps it except when a rollback deletes
   * what the failed operation created.
   */
  static keeps(resource: Deployed, occasion: Occasion): boolean {
    const policy = (occasion === 'replace' ? resource.updateReplacePolicy : resource.deletionPolicy) ?? 'Delete';
    if (occasion === 'rollback' && policy === 'RetainExceptOnCreate') return false;
    return ['Retain', 'RetainExceptOnCreate', 'Snapshot'].includes(policy);
  }

  async create(id: string, definition: Json): Promise<Deployed> {
    const type: string = definition.Type;
    const declared = this.resolver.resolve(definition.Properties ?? {});
    const properties = this.resolver.dereference(declared);
    const base = { type, properties, declared, ...policiesOf(definition) };
    const { region, account } = this.emulator;
    switch (true) {
      case type === 'AWS::SecretsManager::Secret': {
        const name = properties.Name ?? `${id}-${randomBytes(6).toString('base64url').slice(0, 12)}`;
        const out = this.emulator.secretsManager.CreateSecret({
          Name: name,
          Description: properties.Description,
          KmsKeyId: properties.KmsKeyId,
          Tags: properties.Tags,
          SecretString: properties.SecretString ?? (properties.GenerateSecretString ? randomBytes(24).toString('base64url') : undefined),
        });
        return { ...base, physicalId: out.ARN, attributes: { Id: out.ARN } };
      }
      case type === 'AWS::StorageGateway::Volume': {
        const gateway = this.emulator.storageGateway;
        const size = properties.VolumeSizeInBytes;
        const out = this.callEmulator(id, () => gateway.CreateCachediSCSIVolume({
          GatewayARN: properties.GatewayARN,
          TargetName: properties.TargetName,
          NetworkInterfaceId: properties.NetworkInterfaceId,
          // CloudFormation converts a Long given as a string (a parameter's value, say).
          VolumeSizeInBytes: typeof size === 'string' && /^\d+$/.test(size) ? Number(size) : size,
          SnapshotId: properties.SnapshotId,
          SourceVolumeARN: properties.SourceVolumeARN,
          KMSEncrypted: properties.KMSEncrypted === undefined ? undefined : String(properties.KMSEncrypted) === 'true',
          KMSKey: properties.KMSKey,
          Tags: properties.Tags,
          ClientToken: randomUUID(),
        }));
        const volume = gateway.volumes.get(out.VolumeARN)!;
        // Ref is the VolumeARN (the type's primary identifier).
        return {
          ...base, physicalId: volume.volumeArn, attributes: {
            VolumeARN: volume.volumeArn, VolumeId: volume.volumeId, TargetARN: volume.targetArn,
            CreatedDate: volume.createdDate.toISOString(), VolumeStatus: 'AVAILABLE', VolumeAttachmentStatus: 'ATTACHED',
            VolumeType: 'CACHED iSCSI', VolumeUsedInBytes: 0,
          },
        };
      }
      case type === 'AWS::SSM::Parameter': {
        // CloudFormation generates a name like CFN-<logical id>-<random>; Ref is the name.
        const name = properties.Name ?? `CFN-${id}-${randomBytes(6).toString('base64url').replace(/[^A-Za-z0-9]/g, 'x')}`;
        this.putParameter(id, name, properties, false);
        return { ...base, physicalId: name, attributes: { Type: properties.Type, Value: properties.Value } };
      }
      case type === 'AWS::Lambda::Permission': {
        // The permission's physical id is the statement id it adds to the function's resource policy.
        const sid = this.generatedName(id, 100);
        const refused = this.lambda.addPermission({
          sid, functionArn: this.lambda.functionArn(String(properties.FunctionName)), action: properties.Action, principal: properties.Principal,
          ...(properties.SourceAccount !== undefined ? { sourceAccount: String(properties.SourceAccount) } : {}),
          ...(properties.SourceArn !== undefined ? { sourceArn: String(properties.SourceArn) } : {}),
        });
        if (refused) throw new StackFailure(`${id}: ${refused}`);
        return { ...base, physicalId: sid, attributes: {} };
      }
      case type === 'AWS::SecretsManager::RotationSchedule': {
        const out = this.rotate(id, properties);
        // Ref is the secret's ARN.
        return { ...base, physicalId: out.ARN, attributes: {} };
      }
      case isCustom(type): {
        const body = await this.invoker.custom(id, 'Create', properties);
        return { ...base, physicalId: body.PhysicalResourceId, attributes: { ...(body.Data ?? {}) } };
      }
      case type === 'AWS::Lambda::Function': {
        const name = properties.FunctionName ?? this.generatedName(id);
        return { ...base, physicalId: name, attributes: { Arn: `arn:aws:lambda:${region}:${account}:function:${name}` } };
      }
      case type === 'AWS::IAM::Role': {
        const name = properties.RoleName ?? this.generatedName(id);
        return { ...base, physicalId: name, attributes: { Arn: `arn:aws:iam::${account}:role/${name}`, RoleId: `AROA${randomBytes(8).toString('hex').toUpperCase()}` } };
      }
      case type === 'AWS::Logs::LogGroup': {
        const name = properties.LogGroupName ?? this.generatedName(id, 512);
        return { ...base, physicalId: name, attributes: { Arn: `arn:aws:logs:${region}:${account}:log-group:${name}:*` } };
      }
      case type === 'AWS::KMS::Key': {
        const keyId = randomUUID();
        return { ...base, physicalId: keyId, attributes: { Arn: `arn:aws:kms:${region}:${account}:key/${keyId}`, KeyId: keyId } };
      }
      default: {
        const physicalId = this.generatedName(id);
        const service = type.split('::')[1]?.toLowerCase() ?? 'unknown';
        return { ...base, physicalId, standIn: true, attributes: { Arn: `arn:aws:${service}:${region}:${account}:${physicalId}` } };
      }
    }
  }

  /** Updates a resource whose properties changed; a replacement comes back with another physical id. */
  async update(id: string, definition: Json, old: Deployed, properties: Json): Promise<Deployed> {
    const policies = policiesOf(definition);
    if (definition.Type === 'AWS::StorageGateway::Volume') {
      const replacing = VOLUME_REPLACING.filter((p) => JSON.stringify(properties[p]) !== JSON.stringify(old.properties[p]));
      if (replacing.length) return this.create(id, definition); // replacement: a new volume and target
      return { ...old, properties, ...policies }; // Tags only
    }
    if (definition.Type === 'AWS::SecretsManager::Secret') {
      if (properties.Name !== old.properties.Name) return this.create(id, definition); // replacement
      const secret = this.emulator.secretsManager.lookup(old.physicalId)!;
      secret.description = properties.Description;
      secret.kmsKeyId = properties.KmsKeyId;
      secret.tags = properties.Tags ?? [];
      return { ...old, properties, ...policies };
    }
    if (definition.Type === 'AWS::Lambda::Permission') return this.create(id, definition); // every property replaces
    if (definition.Type === 'AWS::SecretsManager::RotationSchedule') {
      if (properties.SecretId !== old.properties.SecretId) return this.create(id, definition); // replacement
      this.rotate(id, properties);
      return { ...old, properties, ...policies };
    }
    if (definition.Type === 'AWS::SSM::Parameter') {
      if (properties.Name !== old.properties.Name) return this.create(id, definition); // replacement
      this.putParameter(id, old.physicalId, properties, true);
      return { ...old, properties, attributes: { Type: properties.Type, Value: properties.Value }, ...policies };
    }
    if (isCustom(definition.Type)) {
      const body = await this.invoker.custom(id, 'Update', properties, { physicalId: old.physicalId, oldProperties: old.properties });
      return { ...old, properties, physicalId: body.PhysicalResourceId, attributes: { ...(body.Data ?? {}) } };
    }
    return { ...old, properties, ...policies };
  }

  /**
   * Puts back the properties `old` of a resource an update changed in place (now `current`), as a rollback does: a
   * custom resource gets an Update with them, an SSM parameter its old value again, a secret its old description,
   * key and tags.
   */
  async revert(id: string, old: Deployed, current: Deployed): Promise<void> {
    if (isCustom(old.type)) {
      await this.invoker.custom(id, 'Update', old.properties, { physicalId: current.physicalId, oldProperties: current.properties });
    } else if (old.type === 'AWS::SSM::Parameter') {
      this.putParameter(id, old.physicalId, old.properties, true);
    } else if (old.type === 'AWS::SecretsManager::Secret') {
      const secret = this.emulator.secretsManager.lookup(old.physicalId)!;
      secret.description = old.properties.Description;
      secret.kmsKeyId = old.properties.KmsKeyId;
      secret.tags = old.properties.Tags ?? [];
    }
  }

  /** Deletes the physical resources of `ids` (in that order) unless their policy keeps them on this occasion. */
  async delete(ids: string[], from: Map<string, Deployed>, occasion: Occasion): Promise<void> {
    for (const id of ids) {
      const resource = from.get(id);
      // A kept custom resource gets no Delete event either.
      if (!resource || Provisioner.keeps(resource, occasion)) continue;
      if (isCustom(resource.type)) {
        await this.invoker.custom(id, 'Delete', resource.properties, { physicalId: resource.physicalId });
      } else if (resource.type === 'AWS::SecretsManager::Secret') {
        this.emulator.secretsManager.DeleteSecret({ SecretId: resource.physicalId, ForceDeleteWithoutRecovery: true });
      } else if (resource.type === 'AWS::StorageGateway::Volume') {
        // The volume goes with its target and the target's CHAP credentials; one already gone is deleted.
        this.callEmulator(id, () => this.emulator.storageGateway.DeleteVolume({ VolumeARN: resource.physicalId }), ['VolumeNotFound']);
      } else if (resource.type === 'AWS::Lambda::Permission') {
        this.lambda.removePermission(resource.physicalId);
      } else if (resource.type === 'AWS::SecretsManager::RotationSchedule') {
        // Rotation is turned off; a secret already gone (or marked for deletion) needs nothing.
        this.callEmulator(id, () => this.emulator.secretsManager.CancelRotateSecret({ SecretId: resource.physicalId }),
          ['ResourceNotFoundException', 'InvalidRequestException']);
      } else if (resource.type === 'AWS::SSM::Parameter') {
        this.callEmulator(id, () => this.emulator.ssm.DeleteParameter({ Name: resource.physicalId }), ['ParameterNotFound']);
      }
    }
  }

  /**
   * Configures an AWS::SecretsManager::RotationSchedule as its resource handler does: RotateSecret with the function
   * and rules, rotating at once unless RotateImmediatelyOnUpdate is false (then Secrets Manager only tests the
   * configuration). Secrets Manager refuses with AccessDeniedException when the function's policy does not admit it
   * yet: the schedule must be created after its AWS::Lambda::Permission.
   */
  private rotate(id: string, properties: Json): { ARN: string } {
    if (properties.HostedRotationLambda !== undefined) throw new StackFailure(`${id}: HostedRotationLambda is not supported by the local driver`);
    const rules = properties.RotationRules ?? {};
    const days = rules.AutomaticallyAfterDays;
    return this.callEmulator(id, () => this.emulator.secretsManager.RotateSecret({
      SecretId: properties.SecretId,
      RotationLambdaARN: properties.RotationLambdaARN,
      RotationRules: {
        ...rules,
        ...(days !== undefined ? { AutomaticallyAfterDays: typeof days === 'string' && /^\d+$/.test(days) ? Number(days) : days } : {}),
      },
      RotateImmediately: properties.RotateImmediatelyOnUpdate === undefined ? true : String(properties.RotateImmediatelyOnUpdate) === 'true',
    }));
  }

  /** Writes an AWS::SSM::Parameter's value, as its resource handler does (PutParameter; the service checks the value). */
  private putParameter(id: string, name: string, properties: Json, overwrite: boolean): void {
    this.callEmulator(id, () => this.emulator.ssm.PutParameter({
      Name: name, Value: properties.Value, Type: properties.Type, Description: properties.Description, Tier: properties.Tier, Overwrite: overwrite,
    }));
  }

  /**
   * Calls the emulator as a resource handler would; an AWS error fails the resource with a reason naming it (errors
   * whose type or errorCode is in `ignored` count as done, and the call returns undefined).
   */
  private callEmulator<T>(logicalId: string, call: () => T): T;
  private callEmulator<T>(logicalId: string, call: () => T, ignored: string[]): T | undefined;
  private callEmulator<T>(logicalId: string, call: () => T, ignored: string[] = []): T | undefined {
    try {
      return call();
    } catch (error) {
      if (!(error instanceof AwsError)) throw error;
      const code = (error.extra.error as { errorCode?: string } | undefined)?.errorCode;
      if ((code && ignored.includes(code)) || ignored.includes(error.type)) return undefined;
      throw new StackFailure(`${logicalId}: ${error.type}${code ? ` (${code})` : ''}: ${error.message}`);
    }
  }

  private generatedName(id: string, max = 64): string {
    return `${this.stack.name}-${id}`.slice(0, max - 13) + `-${randomBytes(6).toString('hex').toUpperCase()}`;
  }
}
