/**
 * Every AWS call the handler makes, in one place. Clients are created on first use and honour
 * AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>; the SDK retries throttling and 5xx with backoff.
 */
import { createHash } from 'node:crypto';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  DescribeSecretCommand, GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient, UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import {
  DeleteChapCredentialsCommand, DescribeChapCredentialsCommand, StorageGatewayClient, UpdateChapCredentialsCommand,
} from '@aws-sdk/client-storage-gateway';
import { ChapPair } from '../lib/api';
import { Plan } from './plan';

/** Attempts per call (the SDK default is 3): rides out a throttling burst without holding CloudFormation long. */
export const MAX_ATTEMPTS = 6;

/** Sockets per client: every secret of a request is read (then written) in one parallel round. */
const MAX_SOCKETS = 256;

const clientConfig = {
  maxAttempts: MAX_ATTEMPTS,
  requestHandler: {
    connectionTimeout: 5_000,
    requestTimeout: 20_000,
    httpAgent: { keepAlive: true, maxSockets: MAX_SOCKETS },
    httpsAgent: { keepAlive: true, maxSockets: MAX_SOCKETS },
  },
};

let storageGateway: StorageGatewayClient | undefined;
let secretsManager: SecretsManagerClient | undefined;
let cloudFormation: CloudFormationClient | undefined;
const sgw = () => (storageGateway ??= new StorageGatewayClient(clientConfig));
const sm = () => (secretsManager ??= new SecretsManagerClient(clientConfig));
const cfn = () => (cloudFormation ??= new CloudFormationClient(clientConfig));

/** A failed AWS call, described in one line without any request value but the resource it concerns. */
export class AwsCallError extends Error {
  constructor(readonly operation: string, readonly resource: string, readonly code: string) {
    super(`${operation} failed for ${resource}: ${code}`);
    this.name = 'AwsCallError';
  }
}

/** The error's AWS code, and Storage Gateway's `error.errorCode` when there is one; never the message's values. */
export function errorCode(error: unknown): string {
  const e = error as { name?: string; code?: string; error?: { errorCode?: string }; $metadata?: { httpStatusCode?: number } };
  const name = e?.name && e.name !== 'Error' ? e.name : e?.code ?? 'UnknownError';
  const detail = [e?.error?.errorCode, e?.$metadata?.httpStatusCode ? `HTTP ${e.$metadata.httpStatusCode}` : undefined]
    .filter(Boolean).join(', ');
  return detail ? `${name} (${detail})` : name;
}

const inFlight = new Map<string, number>();

/** The calls still waiting for an answer, such as `DescribeChapCredentials for target arn:...`. */
export function pendingCalls(): string[] {
  return [...inFlight.keys()];
}

async function call<T>(operation: string, resource: string, send: () => Promise<T>, tolerate?: (error: Error) => T): Promise<T> {
  const key = `${operation} for ${resource}`;
  inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
  try {
    return await send();
  } catch (error) {
    if (tolerate) return tolerate(error as Error);
    throw new AwsCallError(operation, resource, errorCode(error));
  } finally {
    const left = inFlight.get(key)! - 1;
    if (left) inFlight.set(key, left); else inFlight.delete(key);
  }
}

/**
 * Every target-initiator pair of the target, sorted by initiator name. With `missingTargetIsEmpty` (a Delete), a
 * target that no longer exists holds no pairs instead of failing.
 */
export async function describeChapCredentials(targetArn: string, abortSignal?: AbortSignal, missingTargetIsEmpty = false): Promise<ChapPair[]> {
  const resource = `target ${targetArn}`;
  const out = await call('DescribeChapCredentials', resource,
    () => sgw().send(new DescribeChapCredentialsCommand({ TargetARN: targetArn }), { abortSignal }),
    (error) => {
      if (missingTargetIsEmpty && isNotFound(error, 'TargetNotFound')) return { ChapCredentials: [], $metadata: {} };
      throw new AwsCallError('DescribeChapCredentials', resource, errorCode(error));
    });
  return (out.ChapCredentials ?? [])
    .map((c): ChapPair => ({
      initiatorName: c.InitiatorName ?? '',
      targetArn: c.TargetARN ?? targetArn,
      secretToAuthenticateInitiator: c.SecretToAuthenticateInitiator ?? '',
      ...(c.SecretToAuthenticateTarget ? { secretToAuthenticateTarget: c.SecretToAuthenticateTarget } : {}),
    }))
    .sort((a, b) => (a.initiatorName < b.initiatorName ? -1 : a.initiatorName > b.initiatorName ? 1 : 0));
}

/**
 * The string value of the secret's AWSCURRENT version, or of the version `versionId`; undefined when that version has
 * none (a secret CloudFormation made without a value, a rotation's empty AWSPENDING) or does not exist.
 */
function secretString(secretArn: string, versionId: string | undefined, abortSignal?: AbortSignal): Promise<string | undefined> {
  const resource = versionId ? `secret ${secretArn} version ${versionId}` : `secret ${secretArn}`;
  const input = versionId ? { SecretId: secretArn, VersionId: versionId } : { SecretId: secretArn };
  return call('GetSecretValue', resource,
    async () => (await sm().send(new GetSecretValueCommand(input), { abortSignal })).SecretString,
    (error) => {
      if (error.name === 'ResourceNotFoundException') return undefined;
      throw new AwsCallError('GetSecretValue', resource, errorCode(error));
    });
}

export interface SecretWrite {
  readonly secretArn: string;
  readonly value: string;
}

/** The current values of `secretArns`, read in one parallel round (undefined where a secret has none yet). */
export function currentValues(secretArns: readonly string[], abortSignal?: AbortSignal): Promise<(string | undefined)[]> {
  return Promise.all(secretArns.map((arn) => secretString(arn, undefined, abortSignal)));
}

/**
 * How many ClientRequestTokens one request may use for one secret. Each one past the first stands for a value this
 * same request already stored before the gateway changed (Lambda retries an invocation at most twice).
 */
export const TOKENS_PER_REQUEST = 5;

/**
 * The `attempt`-th ClientRequestToken of a request for a secret: a hash of the request's key (stack and request id,
 * or the refresh invocation's id), the secret ARN and the attempt number. Never of the value: version ids are
 * listed to anyone allowed DescribeSecret, and a token derived from a short CHAP secret would let them test guesses.
 * Attempt 0 is the token a redelivered request meets again, so Secrets Manager ignores a duplicate write.
 */
export function clientRequestToken(requestKey: string, secretArn: string, attempt: number): string {
  return createHash('sha256').update(`${requestKey}\n${secretArn}${attempt ? `\n${attempt}` : ''}`).digest('hex');
}

/** What a PutSecretValue answer means for the value it carried. */
export type PutOutcome = 'current' | 'token-taken';

/**
 * Decides from Secrets Manager's answer whether the value is now current. A token that already names a version with
 * the same value is ignored, and the answer names that old version's stages: unless AWSCURRENT is among them (the same
 * request already stored it, concurrently), an older value is current and the write must be made with the next token.
 * A token that names a version with another value is refused (ResourceExistsException): the next token, too.
 */
export function putOutcome(answer: { readonly versionStages?: readonly string[] } | { readonly errorName: string }): PutOutcome {
  if ('errorName' in answer) {
    if (answer.errorName === 'ResourceExistsException') return 'token-taken';
    throw new Error(`not an outcome of its token: ${answer.errorName}`);
  }
  return answer.versionStages?.includes('AWSCURRENT') ? 'current' : 'token-taken';
}

/** Stores `value` as the secret's AWSCURRENT, with the first of the request's tokens that makes it so. */
async function putCurrent(write: SecretWrite, requestKey: string, abortSignal?: AbortSignal): Promise<void> {
  const resource = `secret ${write.secretArn}`;
  for (let attempt = 0; attempt < TOKENS_PER_REQUEST; attempt++) {
    const outcome = await call('PutSecretValue', resource, async () => {
      const out = await sm().send(new PutSecretValueCommand({
        SecretId: write.secretArn,
        SecretString: write.value,
        ClientRequestToken: clientRequestToken(requestKey, write.secretArn, attempt),
      }), { abortSignal });
      return putOutcome({ versionStages: out.VersionStages });
    }, (error) => {
      if (error.name === 'ResourceExistsException') return putOutcome({ errorName: error.name });
      throw new AwsCallError('PutSecretValue', resource, errorCode(error));
    });
    if (outcome === 'current') return;
  }
  throw new AwsCallError('PutSecretValue', resource, `ResourceExistsException (all ${TOKENS_PER_REQUEST} ClientRequestTokens of this request `
    + 'hold other versions)');
}

/**
 * Writes, in one parallel round, each value its secret does not already hold (`current`, from `currentValues`), and
 * returns the ARNs written. Each write ends with the value AWSCURRENT: a redelivered request reuses its first token,
 * so Secrets Manager stores no duplicate; where that token already holds an older or another value, the next one
 * is used (one more call).
 */
export async function writeChangedSecrets(
  writes: readonly SecretWrite[], current: ReadonlyMap<string, string | undefined>, requestKey: string, abortSignal?: AbortSignal,
): Promise<string[]> {
  const changed = writes.filter((w) => current.get(w.secretArn) !== w.value);
  await Promise.all(changed.map((w) => putCurrent(w, requestKey, abortSignal)));
  return changed.map((w) => w.secretArn);
}

/**
 * Whether the error is Storage Gateway's answer for something it does not have. For an initiator without credentials
 * the API reference lists both InitiatorNotFound and ChapCredentialNotFound; either means nothing to delete.
 */
export function isNotFound(error: unknown, ...errorCodes: readonly string[]): boolean {
  const e = error as { name?: string; error?: { errorCode?: string } };
  return e?.name === 'InvalidGatewayRequestException' && errorCodes.includes(e.error?.errorCode ?? '');
}

/**
 * Carries out a plan's gateway writes, all in one parallel round, and waits for every one to end before it reports
 * the first failure, so nothing is still being written when CloudFormation hears of it. Each write closes the
 * target's iSCSI connections; an empty plan calls nothing. An initiator already gone counts as removed.
 */
export async function applyGatewayPlan(targetArn: string, plan: Plan, abortSignal?: AbortSignal): Promise<void> {
  const where = (name: string) => `initiator ${name} on target ${targetArn}`;
  const settled = await Promise.allSettled([
    ...plan.set.map((p) => call('UpdateChapCredentials', where(p.initiatorName), () => sgw().send(new UpdateChapCredentialsCommand({
      TargetARN: targetArn,
      InitiatorName: p.initiatorName,
      SecretToAuthenticateInitiator: p.secretToAuthenticateInitiator,
      SecretToAuthenticateTarget: p.secretToAuthenticateTarget,
    }), { abortSignal }))),
    ...plan.remove.map((name) => call('DeleteChapCredentials', where(name),
      () => sgw().send(new DeleteChapCredentialsCommand({ TargetARN: targetArn, InitiatorName: name }), { abortSignal }),
      (error) => {
        if (isNotFound(error, 'InitiatorNotFound', 'ChapCredentialNotFound')) return undefined;
        throw new AwsCallError('DeleteChapCredentials', where(name), errorCode(error));
      })),
  ]);
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/**
 * Whether CloudFormation is rolling the stack back (its status holds ROLLBACK: a failed create's rollback, a failed
 * update's rollback or the cleanup after it). Such an operation only undoes what the failed one did. A status that
 * cannot be read counts as a rollback: the caller then keeps what it would only remove on request.
 */
export async function stackRollingBack(stackId: string, abortSignal?: AbortSignal): Promise<boolean> {
  return call('DescribeStacks', `stack ${stackId}`, async () => {
    const out = await cfn().send(new DescribeStacksCommand({ StackName: stackId }), { abortSignal });
    return (out.Stacks?.[0]?.StackStatus ?? 'ROLLBACK (unknown)').includes('ROLLBACK');
  }, () => true);
}

/** What a rotation step needs to know of a secret (DescribeSecret). */
export interface SecretDescription {
  /** The secret's full ARN. */
  readonly arn: string;
  readonly rotationEnabled: boolean;
  /** Staging labels by version id (versions without a label are left out). */
  readonly versionStages: Readonly<Record<string, readonly string[]>>;
  readonly tags: Readonly<Record<string, string>>;
}

/** The secret's ARN, rotation state, version stages and tags. */
export async function describeSecret(secretId: string, abortSignal?: AbortSignal): Promise<SecretDescription> {
  return call('DescribeSecret', `secret ${secretId}`, async () => {
    const out = await sm().send(new DescribeSecretCommand({ SecretId: secretId }), { abortSignal });
    return {
      arn: out.ARN ?? secretId,
      rotationEnabled: out.RotationEnabled === true,
      versionStages: Object.fromEntries(Object.entries(out.VersionIdsToStages ?? {}).filter(([, stages]) => stages?.length)),
      tags: Object.fromEntries((out.Tags ?? []).filter((t) => t.Key !== undefined).map((t) => [t.Key!, t.Value ?? ''])),
    };
  });
}

/** The string value of one version of a secret, or undefined when that version has none (or does not exist). */
export function secretVersionValue(secretArn: string, versionId: string, abortSignal?: AbortSignal): Promise<string | undefined> {
  return secretString(secretArn, versionId, abortSignal);
}

/**
 * Stores `value` as the version `versionId` labelled AWSPENDING (a rotation's createSecret), with the event's
 * RotationToken when it has one (sensitive: never logged). Secrets Manager ignores a repeat with the same value, so two
 * deliveries at once store one version.
 */
export async function putPendingValue(
  secretArn: string, value: string, versionId: string, rotationToken?: string, abortSignal?: AbortSignal,
): Promise<void> {
  await call('PutSecretValue', `secret ${secretArn} version ${versionId}`, () => sm().send(new PutSecretValueCommand({
    SecretId: secretArn, SecretString: value, ClientRequestToken: versionId, VersionStages: ['AWSPENDING'],
    ...(rotationToken ? { RotationToken: rotationToken } : {}),
  }), { abortSignal }));
}

/** Moves AWSCURRENT to `versionId` (a rotation's finishSecret); AWSPREVIOUS follows by itself. */
export async function moveCurrentStage(
  secretArn: string, versionId: string, fromVersionId: string | undefined, abortSignal?: AbortSignal,
): Promise<void> {
  await call('UpdateSecretVersionStage', `secret ${secretArn} version ${versionId}`, () => sm().send(new UpdateSecretVersionStageCommand({
    SecretId: secretArn, VersionStage: 'AWSCURRENT', MoveToVersionId: versionId, RemoveFromVersionId: fromVersionId,
  }), { abortSignal }));
}

/** Sets one pair on the gateway (a rotation's setSecret): one UpdateChapCredentials, which closes the target's connections. */
export function setChapCredentials(pair: ChapPair, abortSignal?: AbortSignal): Promise<void> {
  return applyGatewayPlan(pair.targetArn, { set: [pair], keep: [], remove: [], conflicts: [] }, abortSignal);
}
