/**
 * Secrets Manager, with the semantics the handler and the driver rely on: ARNs with the random six-character
 * suffix, versions with staging labels (AWSCURRENT, AWSPREVIOUS, AWSPENDING), ClientRequestToken idempotency, name
 * rules, deletion with a recovery window and restore, KMS key ids and tags kept, and rotation by a Lambda function.
 *
 * ## Rotation: the interface
 *
 * Wire operations (JSON 1.1, reached with the real SDK): `RotateSecret`, `CancelRotateSecret`,
 * `UpdateSecretVersionStage`, `PutSecretValue` (with `VersionStages`, `RotationToken`), `GetSecretValue` (with
 * `VersionId` and/or `VersionStage`), `DescribeSecret` (`RotationEnabled`, `RotationLambdaARN`, `RotationRules`,
 * `LastRotatedDate`, `LastChangedDate`, `NextRotationDate`, `VersionIdsToStages`).
 *
 * The owner of functions (the local CloudFormation driver) plugs the rotation function in:
 *
 * ```ts
 * emulator.secretsManager.setRotationInvoker(
 *   async (lambdaArn, event) => { ...run the function; throw if it fails... },    // RotationInvoker
 *   { authorize: (lambdaArn, secretArn) => policyAdmitsSecretsManager(lambdaArn) }, // optional RotationOptions
 * );
 * ```
 *
 * - `RotateSecret` (RotateImmediately true, the default) stores the configuration, creates the version
 *   `ClientRequestToken` (a UUID if absent) labelled AWSPENDING with no value, answers `{ ARN, Name, VersionId }`, and
 *   then (asynchronously, as AWS does) invokes the function once per step: createSecret, setSecret, testSecret,
 *   finishSecret, each with `{ Step, SecretId: <the ARN>, ClientRequestToken, RotationToken }`. A step that throws
 *   fails the rotation: the remaining steps are not invoked, the AWSPENDING version stays (a later `RotateSecret`
 *   with another token answers InvalidRequestException "A previous rotation isn't complete. That rotation will be
 *   reattempted."), LastRotatedDate is unchanged. A rotation whose steps all passed but whose version is not
 *   AWSCURRENT afterwards (or leaves AWSPENDING on another version) also counts as failed.
 * - Retrying: `RotateSecret` with the token of the unfinished version, or `reattemptRotation(secretId)` (what AWS
 *   does by itself in the rotation window), runs the four steps again for that same version.
 * - `RotateImmediately: false` tests the configuration: a fresh AWSPENDING version with no value (one that
 *   createSecret never made), only testSecret invoked for it, then that version is deleted whatever the outcome.
 * - A write of a new AWSCURRENT value (`PutSecretValue` without `VersionStages`, or with AWSCURRENT) while a rotation
 *   is unfinished abandons it: AWSPENDING is taken off the unfinished version, no further step is invoked, and the
 *   record ends `abandoned`. Writes with other labels (such as createSecret's `['AWSPENDING']`) do not.
 * - `CancelRotateSecret` turns rotation off, stops a running rotation before its next step (record `cancelled`),
 *   leaves the labels as they are and answers the unfinished version's id, as AWS does.
 * - Without an invoker, or when `authorize` says no, `RotateSecret` answers AccessDeniedException "Secrets Manager
 *   cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal
 *   secretsmanager.amazonaws.com." and stores nothing.
 *
 * For tests: `rotation(secretId, versionId?)` resolves when that secret's latest (or given) rotation ends, with its
 * {@link RotationRecord}; `settled()` waits for every running rotation; `rotations` lists every record in order;
 * `rotationEvents` the CloudTrail-style events (RotationStarted, RotationSucceeded, RotationFailed,
 * RotationAbandoned, TestRotationStarted, TestRotationSucceeded, TestRotationFailed); `versions(secretId)` every
 * version; `runScheduledRotations(at)` starts the rotations whose NextRotationDate has come (reattempting an
 * unfinished one with its own token).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { AwsError, Constraint, validate } from './errors';

const NAME: Constraint = { min: 1, max: 512, pattern: /^[A-Za-z0-9/_+=.@-]+$/ };
const SECRET_ID: Constraint = { required: true, min: 1, max: 2048 };
const TOKEN: Constraint = { min: 32, max: 64 };
const VERSION_ID: Constraint = { min: 32, max: 64 };
const SECRET_STRING: Constraint = { max: 65536, sensitive: true };
const KMS_KEY: Constraint = { min: 0, max: 2048 };
const DESCRIPTION: Constraint = { max: 2048 };
const STAGE: Constraint = { min: 1, max: 256 };

const CURRENT = 'AWSCURRENT';
const PREVIOUS = 'AWSPREVIOUS';
const PENDING = 'AWSPENDING';
const DAY_S = 86_400;
const HOUR_S = 3_600;

/** The rotation steps, in the order Secrets Manager invokes them (camelCase on the wire). */
export const ROTATION_STEPS = ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const;
export type RotationStep = (typeof ROTATION_STEPS)[number];

/** What Secrets Manager sends the rotation function, once per step. */
export interface RotationEvent {
  readonly Step: RotationStep;
  /** The secret's full ARN. */
  readonly SecretId: string;
  /** The id of the version being rotated to (the AWSPENDING version). */
  readonly ClientRequestToken: string;
  /** An opaque token naming this rotation; the function may pass it back to PutSecretValue. */
  readonly RotationToken: string;
}

/** Runs the rotation function `lambdaArn` with `event` and settles when it returns; rejects when the function fails. */
export type RotationInvoker = (lambdaArn: string, event: RotationEvent) => Promise<void>;

/** Whether Secrets Manager may invoke `lambdaArn` for `secretArn` (the function's resource policy), asked by RotateSecret. */
export type RotationAuthorizer = (lambdaArn: string, secretArn: string) => boolean;

export interface RotationOptions {
  /** Asked before RotateSecret stores anything; false answers AccessDeniedException as AWS does. @default every function is admitted */
  readonly authorize?: RotationAuthorizer;
  /** Steps delivered twice in a row (Secrets Manager may deliver any step again). @default none */
  readonly redeliver?: readonly RotationStep[];
}

export type RotationStatus = 'running' | 'succeeded' | 'failed' | 'abandoned' | 'cancelled';

/** One invocation of the rotation function. */
export interface RotationInvocation {
  readonly step: RotationStep;
  readonly ok: boolean;
  /** The function's error message, when it failed. */
  readonly error?: string;
}

/** One rotation (or configuration test) of a secret, from RotateSecret to its end. */
export interface RotationRecord {
  readonly secretArn: string;
  /** The version rotated to: the ClientRequestToken of every step. */
  readonly versionId: string;
  readonly rotationToken: string;
  readonly lambdaArn: string;
  /** `configurationTest` for RotateImmediately false (only testSecret, for a version createSecret never made). */
  readonly kind: 'rotation' | 'configurationTest';
  /** Whether this run resumed a version an earlier, unfinished run had created. */
  readonly reattempt: boolean;
  readonly invocations: RotationInvocation[];
  status: RotationStatus;
  /** Why the rotation failed, was abandoned or cancelled. */
  error?: string;
  readonly started: number;
  ended?: number;
}

/** A CloudTrail-style event of Secrets Manager's own about rotation. */
export interface RotationLogEvent {
  readonly eventName: 'RotationStarted' | 'RotationSucceeded' | 'RotationFailed' | 'RotationAbandoned'
    | 'TestRotationStarted' | 'TestRotationSucceeded' | 'TestRotationFailed';
  readonly secretArn: string;
  readonly versionId: string;
  readonly at: number;
  readonly error?: string;
}

export interface RotationRules {
  readonly AutomaticallyAfterDays?: number;
  readonly Duration?: string;
  readonly ScheduleExpression?: string;
}

export interface Version {
  readonly versionId: string;
  /** Absent for the version RotateSecret creates until createSecret stores its value. */
  secretString?: string;
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
  lastChangedDate: number;
  /** Undefined until rotation is configured for the first time (DescribeSecret then omits it). */
  rotationEnabled?: boolean;
  rotationLambdaArn?: string;
  rotationRules?: RotationRules;
  lastRotatedDate?: number;
  nextRotationDate?: number;
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
function randomSuffix(): string {
  return [...randomBytes(6)].map((b) => ALPHANUMERIC[b % ALPHANUMERIC.length]).join('');
}

const now = () => Date.now() / 1000;

interface Running {
  readonly record: RotationRecord;
  readonly done: Promise<RotationRecord>;
}

export class SecretsManager {
  readonly secrets = new Map<string, StoredSecret>();
  /** Every rotation and configuration test, in the order they started. */
  readonly rotations: RotationRecord[] = [];
  /** Secrets Manager's own rotation events, in order. */
  readonly rotationEvents: RotationLogEvent[] = [];
  private invoker?: RotationInvoker;
  private rotationOptions: RotationOptions = {};
  private readonly runs = new Map<RotationRecord, Promise<RotationRecord>>();

  constructor(private readonly region: string, private readonly account: string) {}

  /** Sets the function runner rotations invoke (the local CloudFormation driver owns the functions). */
  setRotationInvoker(invoker: RotationInvoker | undefined, options: RotationOptions = {}): void {
    this.invoker = invoker;
    this.rotationOptions = options;
  }

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

  private static holder(secret: StoredSecret, stage: string): Version | undefined {
    return [...secret.versions.values()].find((v) => v.stages.has(stage));
  }

  /** The version AWSPENDING marks when it is not also AWSCURRENT: a rotation that has not finished. */
  private static unfinished(secret: StoredSecret): Version | undefined {
    const pending = SecretsManager.holder(secret, PENDING);
    return pending && !pending.stages.has(CURRENT) ? pending : undefined;
  }

  /** Attaches `stage` to `version`, taking it off any other version; moving AWSCURRENT makes its old holder AWSPREVIOUS. */
  private static attach(secret: StoredSecret, version: Version, stage: string): void {
    for (const v of secret.versions.values()) {
      if (v === version || !v.stages.has(stage)) continue;
      v.stages.delete(stage);
      if (stage === CURRENT) {
        for (const p of secret.versions.values()) p.stages.delete(PREVIOUS);
        v.stages.add(PREVIOUS);
      }
    }
    version.stages.add(stage);
  }

  private addVersion(secret: StoredSecret, versionId: string, secretString: string | undefined, stages: string[]): Version {
    const version: Version = { versionId, secretString, createdDate: now(), stages: new Set() };
    secret.versions.set(versionId, version);
    for (const stage of stages) SecretsManager.attach(secret, version, stage);
    secret.lastChangedDate = now();
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
      createdDate: now(),
      lastChangedDate: now(),
    };
    this.secrets.set(name, secret);
    let versionId: string | undefined;
    if (input.SecretString !== undefined) {
      versionId = (input.ClientRequestToken as string | undefined) ?? randomUUID();
      this.addVersion(secret, versionId, input.SecretString as string, [CURRENT]);
    }
    return { ARN: secret.arn, Name: name, ...(versionId ? { VersionId: versionId } : {}) };
  }

  /**
   * The version VersionId names and/or VersionStage labels (both must then name the same one; AWSCURRENT when neither
   * is given). A version without a value (RotateSecret's AWSPENDING before createSecret) is not found either.
   */
  GetSecretValue(input: Record<string, unknown>) {
    validate(input, { SecretId: SECRET_ID, VersionId: VERSION_ID, VersionStage: STAGE });
    const secret = this.find(input.SecretId as string);
    const versionId = input.VersionId as string | undefined;
    const stage = (input.VersionStage as string | undefined) ?? (versionId === undefined ? CURRENT : undefined);
    const version = [...secret.versions.values()].find((v) =>
      (versionId === undefined || v.versionId === versionId) && (stage === undefined || v.stages.has(stage)));
    if (!version || version.secretString === undefined) {
      throw new AwsError('ResourceNotFoundException',
        `Secrets Manager can't find the specified secret value for ${versionId ? `VersionId: ${versionId}` : `staging label: ${stage}`}`);
    }
    return {
      ARN: secret.arn, Name: secret.name, VersionId: version.versionId, SecretString: version.secretString,
      VersionStages: [...version.stages], CreatedDate: version.createdDate,
    };
  }

  /**
   * A new version (labelled AWSCURRENT unless VersionStages says otherwise). The same token with the same value is
   * ignored; with another value it is refused. The version RotateSecret created without a value takes its value here
   * (createSecret). A new AWSCURRENT value while a rotation is unfinished abandons that rotation.
   */
  PutSecretValue(input: Record<string, unknown>) {
    validate(input, {
      SecretId: SECRET_ID, ClientRequestToken: TOKEN, SecretString: SECRET_STRING, VersionStages: { type: 'list', min: 1, max: 20 },
      RotationToken: { min: 36, max: 256, sensitive: true },
    });
    if (input.SecretString === undefined && input.SecretBinary === undefined) {
      throw new AwsError('InvalidRequestException', 'You must provide either SecretString or SecretBinary.');
    }
    const secret = this.find(input.SecretId as string);
    const token = (input.ClientRequestToken as string | undefined) ?? randomUUID();
    const stages = (input.VersionStages as string[] | undefined) ?? [CURRENT];
    const existing = secret.versions.get(token);
    if (existing && existing.secretString !== undefined) {
      if (existing.secretString !== input.SecretString) {
        throw new AwsError('ResourceExistsException',
          `You can't modify an existing version, you can only create a new version. VersionId: ${token}`);
      }
      return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: [...existing.stages] };
    }
    const unfinished = SecretsManager.unfinished(secret);
    if (unfinished && unfinished.versionId !== token && stages.includes(CURRENT)) this.abandon(secret, unfinished);
    let version: Version;
    if (existing) {
      existing.secretString = input.SecretString as string;
      for (const stage of stages) SecretsManager.attach(secret, existing, stage);
      secret.lastChangedDate = now();
      version = existing;
    } else {
      version = this.addVersion(secret, token, input.SecretString as string, stages);
    }
    // A manual change of the value counts as a rotation when the next one is scheduled.
    if (stages.includes(CURRENT) && secret.rotationEnabled && !this.isRotating(secret, token)) {
      secret.nextRotationDate = nextRotation(secret.rotationRules, now());
    }
    return { ARN: secret.arn, Name: secret.name, VersionId: token, VersionStages: [...version.stages] };
  }

  /**
   * Moves (MoveToVersionId), removes (RemoveFromVersionId alone) or moves off a given version (both) one staging
   * label. A label attached elsewhere must be named with RemoveFromVersionId; moving AWSCURRENT makes its old holder
   * AWSPREVIOUS.
   */
  UpdateSecretVersionStage(input: Record<string, unknown>) {
    validate(input, {
      SecretId: SECRET_ID, VersionStage: { ...STAGE, required: true }, MoveToVersionId: VERSION_ID, RemoveFromVersionId: VERSION_ID,
    });
    const secret = this.find(input.SecretId as string);
    const stage = input.VersionStage as string;
    const moveTo = input.MoveToVersionId as string | undefined;
    const removeFrom = input.RemoveFromVersionId as string | undefined;
    if (moveTo === undefined && removeFrom === undefined) {
      throw new AwsError('InvalidParameterException', 'You must specify MoveToVersionId, RemoveFromVersionId, or both.');
    }
    const target = moveTo === undefined ? undefined : secret.versions.get(moveTo);
    if (moveTo !== undefined && !target) {
      throw new AwsError('ResourceNotFoundException', `Secrets Manager can't find the specified secret value for VersionId: ${moveTo}`);
    }
    const holder = SecretsManager.holder(secret, stage);
    if (removeFrom !== undefined && holder?.versionId !== removeFrom) {
      throw new AwsError('InvalidParameterException', holder
        ? `When you move staging label ${stage}, if you specify RemoveFromVersionId, it must be set to the version that currently has the staging label ${holder.versionId}.`
        : `The staging label ${stage} is not attached to version ${removeFrom}.`);
    }
    if (holder && target && holder !== target && removeFrom === undefined) {
      throw new AwsError('InvalidParameterException',
        `The parameter RemoveFromVersionId can't be empty. Staging label ${stage} is currently attached to version ${holder.versionId}, `
        + 'so you must explicitly reference that version in RemoveFromVersionId.');
    }
    if (stage === CURRENT && !target) {
      throw new AwsError('InvalidParameterException', `You can't remove staging label ${CURRENT} from a version without moving it to another version.`);
    }
    if (target) SecretsManager.attach(secret, target, stage);
    else holder!.stages.delete(stage);
    secret.lastChangedDate = now();
    return { ARN: secret.arn, Name: secret.name };
  }

  /**
   * Configures rotation and starts one (or, with RotateImmediately false, tests the configuration). Answers once the
   * rotation is started; its steps run afterwards, as AWS runs them asynchronously.
   */
  RotateSecret(input: Record<string, unknown>) {
    validate(input, {
      SecretId: SECRET_ID, ClientRequestToken: TOKEN, RotationLambdaARN: { min: 0, max: 2048 }, RotationRules: { type: 'object' },
      RotateImmediately: { type: 'boolean' },
    });
    const rules = input.RotationRules as RotationRules | undefined;
    if (rules) validateRules(rules);
    const secret = this.find(input.SecretId as string);
    const lambdaArn = (input.RotationLambdaARN as string | undefined) || secret.rotationLambdaArn;
    if (!lambdaArn) {
      throw new AwsError('InvalidRequestException',
        "You tried to enable rotation on a secret that doesn't already have a Lambda function ARN configured and you didn't include such an ARN as a parameter in this call.");
    }
    if (!this.invoker || (this.rotationOptions.authorize && !this.rotationOptions.authorize(lambdaArn, secret.arn))) {
      throw new AwsError('AccessDeniedException',
        'Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.');
    }
    const immediately = (input.RotateImmediately as boolean | undefined) ?? true;
    const requested = input.ClientRequestToken as string | undefined;
    const unfinished = SecretsManager.unfinished(secret);
    const requestedVersion = requested === undefined ? undefined : secret.versions.get(requested);
    const resumes = immediately && unfinished !== undefined && unfinished.versionId === requested;
    if (unfinished && !resumes) {
      throw new AwsError('InvalidRequestException', "A previous rotation isn't complete. That rotation will be reattempted.");
    }
    // The same request again after its rotation finished: nothing more to do.
    const repeated = immediately && requestedVersion !== undefined && !resumes && requestedVersion.stages.has(CURRENT)
      && this.rotations.some((r) => r.secretArn === secret.arn && r.versionId === requested);
    if (requestedVersion && !resumes && !repeated) {
      throw new AwsError('ResourceExistsException', `A version with this ClientRequestToken already exists. VersionId: ${requested}`);
    }

    secret.rotationLambdaArn = lambdaArn;
    if (rules) secret.rotationRules = { ...rules };
    secret.rotationEnabled = true;
    secret.lastChangedDate = now();
    secret.nextRotationDate = nextRotation(secret.rotationRules, secret.lastRotatedDate ?? now());
    const versionId = requested ?? randomUUID();
    if (repeated) return { ARN: secret.arn, Name: secret.name, VersionId: versionId };
    const running = this.runningFor(secret);
    if (resumes && running?.record.versionId === versionId) return { ARN: secret.arn, Name: secret.name, VersionId: versionId };
    if (!resumes) this.addVersion(secret, versionId, undefined, [PENDING]);
    this.start(secret, versionId, lambdaArn, immediately ? 'rotation' : 'configurationTest', resumes);
    return { ARN: secret.arn, Name: secret.name, VersionId: versionId };
  }

  /**
   * Turns rotation off and stops a running rotation before its next step. The labels stay as they are: the id of a
   * version a rotation left unfinished is answered so the caller can clean it up.
   */
  CancelRotateSecret(input: Record<string, unknown>) {
    validate(input, { SecretId: SECRET_ID });
    const secret = this.find(input.SecretId as string);
    secret.rotationEnabled = false;
    delete secret.nextRotationDate;
    secret.lastChangedDate = now();
    const running = this.runningFor(secret);
    if (running) this.end(running.record, 'cancelled', 'the rotation was cancelled (CancelRotateSecret)');
    const unfinished = SecretsManager.unfinished(secret);
    return { ARN: secret.arn, Name: secret.name, ...(unfinished ? { VersionId: unfinished.versionId } : {}) };
  }

  DescribeSecret(input: Record<string, unknown>) {
    validate(input, { SecretId: SECRET_ID });
    const s = this.find(input.SecretId as string, true);
    return {
      ARN: s.arn, Name: s.name, Description: s.description, KmsKeyId: s.kmsKeyId, Tags: s.tags, CreatedDate: s.createdDate,
      LastChangedDate: s.lastChangedDate,
      ...(s.deletedDate !== undefined ? { DeletedDate: s.deletedDate } : {}),
      ...this.rotationFields(s),
      VersionIdsToStages: Object.fromEntries([...s.versions.values()].filter((v) => v.stages.size).map((v) => [v.versionId, [...v.stages]])),
    };
  }

  private rotationFields(s: StoredSecret) {
    return {
      RotationEnabled: s.rotationEnabled,
      RotationLambdaARN: s.rotationLambdaArn,
      RotationRules: s.rotationRules,
      LastRotatedDate: s.lastRotatedDate,
      NextRotationDate: s.rotationEnabled ? s.nextRotationDate : undefined,
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
        .map((s) => ({
          ARN: s.arn, Name: s.name, Description: s.description, KmsKeyId: s.kmsKeyId, Tags: s.tags, LastChangedDate: s.lastChangedDate,
          ...this.rotationFields(s),
        })),
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
      return { ARN: gone?.arn ?? input.SecretId, Name: gone?.name, DeletionDate: now() };
    }
    const secret = this.find(input.SecretId as string, true);
    if (secret.deletedDate !== undefined) {
      throw new AwsError('InvalidRequestException', "You can't perform this operation on the secret because it was already scheduled for deletion.");
    }
    secret.deletedDate = now();
    secret.lastChangedDate = secret.deletedDate;
    const days = (input.RecoveryWindowInDays as number | undefined) ?? 30;
    return { ARN: secret.arn, Name: secret.name, DeletionDate: secret.deletedDate + days * DAY_S };
  }

  RestoreSecret(input: Record<string, unknown>) {
    validate(input, { SecretId: SECRET_ID });
    const secret = this.find(input.SecretId as string, true);
    delete secret.deletedDate;
    secret.lastChangedDate = now();
    return { ARN: secret.arn, Name: secret.name };
  }

  // ---- Rotation runs ----

  private isRotating(secret: StoredSecret, versionId: string): boolean {
    return this.runningFor(secret)?.record.versionId === versionId;
  }

  private runningFor(secret: StoredSecret): Running | undefined {
    for (const [record, done] of this.runs) if (record.secretArn === secret.arn) return { record, done };
    return undefined;
  }

  private log(eventName: RotationLogEvent['eventName'], record: RotationRecord, error?: string): void {
    this.rotationEvents.push({ eventName, secretArn: record.secretArn, versionId: record.versionId, at: now(), ...(error ? { error } : {}) });
  }

  private start(secret: StoredSecret, versionId: string, lambdaArn: string, kind: RotationRecord['kind'], reattempt: boolean): RotationRecord {
    const record: RotationRecord = {
      secretArn: secret.arn, versionId, rotationToken: randomUUID(), lambdaArn, kind, reattempt, invocations: [],
      status: 'running', started: now(),
    };
    this.rotations.push(record);
    this.log(kind === 'rotation' ? 'RotationStarted' : 'TestRotationStarted', record);
    // Answer RotateSecret first: the steps run after it, as AWS runs them asynchronously.
    const done = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.steps(secret, record));
    this.runs.set(record, done);
    return record;
  }

  private async steps(secret: StoredSecret, record: RotationRecord): Promise<RotationRecord> {
    const steps: readonly RotationStep[] = record.kind === 'rotation' ? ROTATION_STEPS : ['testSecret'];
    const redeliver = new Set(this.rotationOptions.redeliver ?? []);
    try {
      for (const step of steps) {
        for (let delivery = redeliver.has(step) ? 2 : 1; delivery > 0; delivery--) {
          if (record.status !== 'running') return record;
          if (this.secrets.get(secret.name) !== secret || secret.deletedDate !== undefined) {
            return this.end(record, 'failed', 'the secret was deleted during the rotation');
          }
          const invoker = this.invoker;
          if (!invoker) return this.end(record, 'failed', 'no rotation function can be invoked');
          const event: RotationEvent = {
            Step: step, SecretId: secret.arn, ClientRequestToken: record.versionId, RotationToken: record.rotationToken,
          };
          try {
            await invoker(record.lambdaArn, event);
            record.invocations.push({ step, ok: true });
          } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            record.invocations.push({ step, ok: false, error: message });
            return this.end(record, 'failed', `${step} failed: ${message}`);
          }
        }
      }
      if (record.status !== 'running') return record;
      if (record.kind === 'configurationTest') return this.end(record, 'succeeded');
      const version = secret.versions.get(record.versionId);
      const unfinished = SecretsManager.unfinished(secret);
      if (!version?.stages.has(CURRENT)) {
        return this.end(record, 'failed', `the rotation function did not move ${CURRENT} to version ${record.versionId} in finishSecret`);
      }
      if (unfinished) return this.end(record, 'failed', `${PENDING} is left on version ${unfinished.versionId}, which is not ${CURRENT}`);
      secret.lastRotatedDate = now();
      secret.lastChangedDate = secret.lastRotatedDate;
      if (secret.rotationEnabled) secret.nextRotationDate = nextRotation(secret.rotationRules, secret.lastRotatedDate);
      return this.end(record, 'succeeded');
    } finally {
      // The configuration test's version is removed whatever the outcome.
      if (record.kind === 'configurationTest') secret.versions.delete(record.versionId);
      this.runs.delete(record);
    }
  }

  private end(record: RotationRecord, status: Exclude<RotationStatus, 'running'>, error?: string): RotationRecord {
    if (record.status !== 'running') return record;
    record.status = status;
    record.ended = now();
    if (error) record.error = error;
    const test = record.kind === 'configurationTest';
    if (status === 'succeeded') this.log(test ? 'TestRotationSucceeded' : 'RotationSucceeded', record);
    else if (status === 'abandoned') this.log('RotationAbandoned', record, error);
    else this.log(test ? 'TestRotationFailed' : 'RotationFailed', record, error);
    return record;
  }

  /** A new AWSCURRENT value was written while `version` waited as AWSPENDING: the rotation to it is abandoned. */
  private abandon(secret: StoredSecret, version: Version): void {
    version.stages.delete(PENDING);
    const running = this.runningFor(secret);
    const reason = 'a new AWSCURRENT value was written to the secret during the rotation';
    if (running?.record.versionId === version.versionId) this.end(running.record, 'abandoned', reason);
    else this.rotationEvents.push({ eventName: 'RotationAbandoned', secretArn: secret.arn, versionId: version.versionId, at: now(), error: reason });
  }

  /**
   * What AWS does by itself in the rotation window after a failure: runs the four steps again for the version the
   * failed rotation left as AWSPENDING (same token). Throws when there is none or a rotation is running.
   */
  reattemptRotation(secretId: string): RotationRecord {
    const secret = this.find(secretId);
    const unfinished = SecretsManager.unfinished(secret);
    if (!unfinished) throw new Error(`${secret.name} has no unfinished rotation to reattempt`);
    if (this.runningFor(secret)) throw new Error(`a rotation of ${secret.name} is running`);
    if (!secret.rotationLambdaArn) throw new Error(`${secret.name} has no rotation function`);
    return this.start(secret, unfinished.versionId, secret.rotationLambdaArn, 'rotation', true);
  }

  /**
   * Starts the rotations whose NextRotationDate is at or before `at` (seconds since the epoch): an unfinished one is
   * reattempted with its own token, others rotate to a new version. Answers the records started.
   */
  runScheduledRotations(at = now()): RotationRecord[] {
    const started: RotationRecord[] = [];
    for (const secret of this.secrets.values()) {
      if (!secret.rotationEnabled || secret.deletedDate !== undefined || secret.nextRotationDate === undefined) continue;
      if (secret.nextRotationDate > at || this.runningFor(secret) || !secret.rotationLambdaArn) continue;
      if (SecretsManager.unfinished(secret)) {
        started.push(this.reattemptRotation(secret.arn));
      } else {
        const versionId = randomUUID();
        this.addVersion(secret, versionId, undefined, [PENDING]);
        started.push(this.start(secret, versionId, secret.rotationLambdaArn, 'rotation', false));
      }
    }
    return started;
  }

  /**
   * Test access: resolves when the latest rotation of the secret (or the one to `versionId`) has ended, with its
   * record. Throws when there was none.
   */
  async rotation(secretId: string, versionId?: string): Promise<RotationRecord> {
    const arn = this.find(secretId, true).arn;
    const record = [...this.rotations].reverse().find((r) => r.secretArn === arn && (versionId === undefined || r.versionId === versionId));
    if (!record) throw new Error(`no rotation of ${secretId}${versionId ? ` to version ${versionId}` : ''} was started`);
    await this.runs.get(record);
    return record;
  }

  /** Test access: resolves when no rotation is running any more (including ones started meanwhile). */
  async settled(): Promise<void> {
    while (this.runs.size) await Promise.all(this.runs.values());
  }

  /** Test and demo access: the current value of a secret by name or ARN, without going through the wire. */
  current(secretId: string): string | undefined {
    const secret = this.find(secretId, true);
    return SecretsManager.holder(secret, CURRENT)?.secretString;
  }

  /** Test and demo access: every version of a secret, oldest first. */
  versions(secretId: string): Version[] {
    return [...this.find(secretId, true).versions.values()];
  }
}

// ---- Rotation rules and schedules ----

function invalid(message: string): AwsError {
  return new AwsError('InvalidParameterException', message);
}

const RATE = /^rate\((\d+) (hours?|days?)\)$/;
const CRON = /^cron\((.+)\)$/;

/** RotationRules as AWS's model and rules check them: shape first (ValidationException), then meaning (InvalidParameterException). */
function validateRules(rules: RotationRules): void {
  try {
    validate(rules as Record<string, unknown>, {
      AutomaticallyAfterDays: { type: 'number', min: 1, max: 1000 },
      Duration: { min: 2, max: 3, pattern: /^[0-9h]+$/ },
      ScheduleExpression: { min: 1, max: 256, pattern: /^[0-9A-Za-z()#?*\-/, ]+$/ },
    });
  } catch (error) {
    const e = error as AwsError;
    throw new AwsError(e.type, e.message.replace(/at '/g, "at 'rotationRules."));
  }
  const { AutomaticallyAfterDays: days, ScheduleExpression: expression, Duration: duration } = rules;
  if (days !== undefined && expression !== undefined) {
    throw invalid("You can't specify both AutomaticallyAfterDays and ScheduleExpression in RotationRules.");
  }
  if (days !== undefined && !Number.isInteger(days)) throw invalid(`RotationRules.AutomaticallyAfterDays must be a whole number of days, got ${days}.`);
  let startHour = 0;
  if (expression !== undefined) {
    const rate = RATE.exec(expression);
    const cron = CRON.exec(expression);
    if (rate) {
      const n = Number(rate[1]);
      if (rate[2].startsWith('hour') ? n < 4 || n > 24 * 1000 : n < 1 || n > 1000) {
        throw invalid(`RotationRules.ScheduleExpression ${expression} is out of range: rotate every 4 hours at most and every 1000 days at least.`);
      }
    } else if (cron) {
      startHour = parseCron(cron[1], expression).startHour;
    } else {
      throw invalid(`RotationRules.ScheduleExpression must be rate(N hours|days) or cron(Minutes Hours Day-of-month Month Day-of-week Year), got ${expression}.`);
    }
  }
  if (duration !== undefined) {
    const m = /^(\d{1,2})h$/.exec(duration);
    const hours = m ? Number(m[1]) : NaN;
    if (!(hours >= 1 && hours <= 24)) throw invalid(`RotationRules.Duration must be between 1h and 24h, got ${duration}.`);
    if (startHour + hours > 24) {
      throw invalid(`RotationRules.Duration ${duration} makes the rotation window starting at ${startHour}:00 extend into the next UTC day.`);
    }
  }
}

interface Cron {
  readonly hours: Set<number>;
  readonly months: Set<number>;
  /** Whether a day (UTC midnight, ms) matches Day-of-month or Day-of-week. */
  readonly day: (date: Date) => boolean;
  readonly startHour: number;
  /** A schedule in hours (several hours a day): its window closes after an hour by default. */
  readonly hourly: boolean;
}

const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'];
const WEEKDAYS = ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'];

/** Values of one cron field: `*`, lists, ranges, steps, names (months, weekdays). */
function cronValues(field: string, min: number, max: number, names: string[], expression: string): Set<number> {
  const value = (token: string) => {
    const byName = names.indexOf(token.toUpperCase());
    const n = byName >= 0 ? byName + min : Number(token);
    if (!Number.isInteger(n) || n < min || n > max) throw invalid(`Invalid cron expression ${expression}: ${token} is outside ${min}-${max}.`);
    return n;
  };
  const values = new Set<number>();
  for (const part of field.split(',')) {
    const [range, stepText] = part.split('/');
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!Number.isInteger(step) || step < 1) throw invalid(`Invalid cron expression ${expression}: bad step in ${part}.`);
    const [from, to] = range === '*' ? [min, max] : range.includes('-') ? range.split('-').map(value) : [value(range), stepText ? max : value(range)];
    for (let n = from; n <= to; n += step) values.add(n);
  }
  return values;
}

/** A Secrets Manager cron expression: minutes 0, hours, day-of-month, month, day-of-week (one of the two `?`), year `*`. */
function parseCron(body: string, expression: string): Cron {
  const fields = body.trim().split(/\s+/);
  if (fields.length !== 6) throw invalid(`Invalid cron expression ${expression}: it needs 6 fields (Minutes Hours Day-of-month Month Day-of-week Year).`);
  const [minutes, hoursField, dom, monthField, dow, year] = fields;
  if (minutes !== '0') throw invalid(`Invalid cron expression ${expression}: Minutes must be 0 (rotation windows open on the hour).`);
  if (year !== '*') throw invalid(`Invalid cron expression ${expression}: Year must be *.`);
  if ((dom === '?') === (dow === '?')) throw invalid(`Invalid cron expression ${expression}: exactly one of Day-of-month and Day-of-week must be ?.`);
  const hours = cronValues(hoursField, 0, 23, [], expression);
  const months = cronValues(monthField, 1, 12, MONTHS, expression);
  let day: (date: Date) => boolean;
  if (dom !== '?') {
    if (dom === 'L') {
      day = (d) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate() === d.getUTCDate();
    } else {
      const days = cronValues(dom, 1, 31, [], expression);
      day = (d) => days.has(d.getUTCDate());
    }
  } else {
    const nth = /^(\w+)#([1-5])$/.exec(dow);
    const last = /^(\w+)L$/.exec(dow);
    if (nth) {
      const weekday = [...cronValues(nth[1], 1, 7, WEEKDAYS, expression)][0];
      day = (d) => d.getUTCDay() + 1 === weekday && Math.ceil(d.getUTCDate() / 7) === Number(nth[2]);
    } else if (last || dow === 'L') {
      const weekday = last ? [...cronValues(last[1], 1, 7, WEEKDAYS, expression)][0] : 7;
      day = (d) => d.getUTCDay() + 1 === weekday && d.getUTCDate() + 7 > new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
    } else {
      const weekdays = cronValues(dow, 1, 7, WEEKDAYS, expression);
      day = (d) => weekdays.has(d.getUTCDay() + 1);
    }
  }
  return { hours, months, day, startHour: Math.min(...hours), hourly: hours.size > 1 };
}

/**
 * The date by which the next rotation happens (the end of its window), counted from `from` (seconds): the interval
 * after it for AutomaticallyAfterDays and rate(), the next matching window for cron(). Undefined without a schedule.
 */
export function nextRotation(rules: RotationRules | undefined, from: number): number | undefined {
  if (!rules) return undefined;
  const durationH = rules.Duration ? Number(rules.Duration.slice(0, -1)) : undefined;
  const rate = rules.ScheduleExpression ? RATE.exec(rules.ScheduleExpression) : null;
  const days = rules.AutomaticallyAfterDays ?? (rate && rate[2].startsWith('day') ? Number(rate[1]) : undefined);
  if (days !== undefined) {
    // The window opens at midnight UTC of the day the interval ends and closes at the end of that day (or after Duration).
    const midnight = Math.floor((from + days * DAY_S) / DAY_S) * DAY_S;
    return midnight + (durationH ?? 24) * HOUR_S;
  }
  if (rate) {
    const opens = Math.floor((from + Number(rate[1]) * HOUR_S) / HOUR_S) * HOUR_S;
    return opens + (durationH ?? 1) * HOUR_S;
  }
  const cron = rules.ScheduleExpression ? CRON.exec(rules.ScheduleExpression) : null;
  if (!cron) return undefined;
  const schedule = parseCron(cron[1], rules.ScheduleExpression!);
  // The first window that opens after `from`, within two years (every valid schedule has one within a year).
  for (let hour = Math.floor(from / HOUR_S) + 1, end = hour + 2 * 366 * 24; hour < end; hour++) {
    const date = new Date(hour * HOUR_S * 1000);
    if (schedule.hours.has(date.getUTCHours()) && schedule.months.has(date.getUTCMonth() + 1) && schedule.day(date)) {
      return hour * HOUR_S + (durationH ?? (schedule.hourly ? 1 : 24 - date.getUTCHours())) * HOUR_S;
    }
  }
  return undefined;
}
