/**
 * The ChapCredentials custom resource handler. Create and Update read the target's CHAP credentials and write them
 * into the stack's secrets; a managed construct first ensures its declared initiators' credentials on the gateway
 * (a plan, see plan.ts). Delete has nothing to undo in read mode (CloudFormation owns the secrets); a managed
 * construct's Delete removes the credentials the stack set. A scheduled refresh (EventBridge) runs the read-only sync
 * between deploys and never writes to the gateway. Secrets Manager rotates a managed construct's initiator secrets
 * through the same function, one rotation step per invocation (rotation.ts).
 * `onEvent` and `onRefresh` are the plain logic; `handler` adds the deadline and the response protocol.
 */
import type {
  CloudFormationCustomResourceCreateEvent,
  CloudFormationCustomResourceDeleteEvent,
  CloudFormationCustomResourceEvent,
  CloudFormationCustomResourceUpdateEvent,
  Context,
} from 'aws-lambda';
import {
  Attr, ChapMode, ChapPair, ChapResourceProperties, DeclaredInitiator, InitiatorProp, Prop, REFRESH_EVENT_KEY, RefreshEvent,
  NO_INITIATORS_MARKER, TRUNCATION_MARKER_PREFIX, initiatorNameError, targetArnError,
} from '../lib/api';
import { applyGatewayPlan, currentValues, describeChapCredentials, pendingCalls, stackRollingBack, writeChangedSecrets } from './aws';
import { ManagedInitiator, pairsAfter, planCredentials } from './plan';
import { RotationEvent, isRotationEvent, onRotation, targetSecretJson } from './rotation';
import { dataBudget, Outcome, responseBody, sendResponse } from './response';

/** Secrets Manager's limit for one secret value. */
export const MAX_SECRET_BYTES = 65_536;

/** A failure whose message is already a complete, safe, one-line reason. */
export class HandlerError extends Error {}

interface Input {
  readonly targetArn: string;
  readonly targetSecretArn: string;
  readonly initiators: readonly ManagedInitiator[];
  /** Set when the construct manages its declared initiators' credentials. */
  readonly managed?: {
    readonly mode: ChapMode;
    readonly removeAdopted: boolean;
    readonly credentialKeyArn: string;
  };
}

const MODES: readonly string[] = Object.values(ChapMode);

/** Validates the properties CloudFormation sent; tokens resolved at deploy time are first checked here. */
export function parseProperties(props: Partial<ChapResourceProperties> | undefined): Input {
  const problems: string[] = [];
  const targetArnProblem = targetArnError(Prop.TargetArn, props?.[Prop.TargetArn]);
  if (targetArnProblem) problems.push(targetArnProblem);
  const targetSecretArn = props?.[Prop.TargetSecretArn];
  if (typeof targetSecretArn !== 'string' || !targetSecretArn.startsWith('arn:')) {
    problems.push(`'${Prop.TargetSecretArn}' must be a secret ARN, got ${JSON.stringify(targetSecretArn)}`);
  }
  const raw = props?.[Prop.Initiators] ?? [];
  const initiators: { name: string; secretArn: string }[] = [];
  if (!Array.isArray(raw)) {
    problems.push(`'${Prop.Initiators}' must be a list, got ${JSON.stringify(raw)}`);
  } else {
    raw.forEach((entry: Partial<DeclaredInitiator>, i) => {
      const name = entry?.[InitiatorProp.Name];
      const secretArn = entry?.[InitiatorProp.SecretArn];
      const nameProblem = initiatorNameError(`${Prop.Initiators}[${i}].${InitiatorProp.Name}`, name);
      if (nameProblem) problems.push(nameProblem);
      else if (initiators.some((d) => d.name === name)) problems.push(`'${Prop.Initiators}' must not repeat an initiator, got '${name}' twice`);
      if (typeof secretArn !== 'string' || !secretArn.startsWith('arn:')) {
        problems.push(`'${Prop.Initiators}[${i}].${InitiatorProp.SecretArn}' must be a secret ARN, got ${JSON.stringify(secretArn)}`);
      }
      initiators.push({ name: name as string, secretArn: secretArn as string });
    });
  }
  const mode = props?.[Prop.Manage];
  const credentialKeyArn = props?.[Prop.CredentialKeyArn];
  if (mode !== undefined) {
    if (!MODES.includes(mode)) problems.push(`'${Prop.Manage}' must be one of ${MODES.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(mode)}`);
    if (typeof credentialKeyArn !== 'string' || !credentialKeyArn.startsWith('arn:')) {
      problems.push(`'${Prop.CredentialKeyArn}' must be a secret ARN, got ${JSON.stringify(credentialKeyArn)}`);
    }
    if (!initiators.length) problems.push(`'${Prop.Initiators}' must declare at least one initiator when '${Prop.Manage}' is set`);
  }
  if (problems.length) throw new HandlerError(`invalid properties: ${problems.join('; ')}`);
  return {
    targetArn: props![Prop.TargetArn]!, targetSecretArn: targetSecretArn!, initiators,
    ...(mode !== undefined ? { managed: { mode: mode as ChapMode, removeAdopted: props?.[Prop.RemoveAdopted] === 'true', credentialKeyArn: credentialKeyArn! } } : {}),
  };
}

/** One physical id per target: a changed target ARN is a replacement, an unchanged one never is. */
export function physicalResourceId(targetArn: string): string {
  return `chap:${targetArn}`;
}

/**
 * Response Data: the sorted names comma-separated, their exact count, and whether the names had to be
 * shortened to fit `budget` bytes; a shortened list ends with `+N-more`, and no names at all read `+none` (an output
 * can export it, a parameter can store it), which no initiator name can be.
 */
export function initiatorData(names: readonly string[], budget: number): Record<string, string> {
  const render = (shown: readonly string[], truncated: boolean) => ({
    [Attr.InitiatorNames]: names.length === 0 ? NO_INITIATORS_MARKER
      : [...shown, ...(truncated ? [`${TRUNCATION_MARKER_PREFIX}${names.length - shown.length}-more`] : [])].join(','),
    [Attr.InitiatorCount]: String(names.length),
    [Attr.InitiatorNamesTruncated]: String(truncated),
  });
  let shown = names.length;
  while (shown > 0 && Buffer.byteLength(JSON.stringify(render(names.slice(0, shown), shown < names.length))) > budget) shown--;
  return render(names.slice(0, shown), shown < names.length);
}

/** `json`, unless it is larger than a secret value may be. */
function withinSecretLimit(json: string, property: string): string {
  if (Buffer.byteLength(json) > MAX_SECRET_BYTES) {
    throw new HandlerError(`the ${property} secret value would be ${Buffer.byteLength(json)} bytes, more than Secrets Manager's limit of ${MAX_SECRET_BYTES}`);
  }
  return json;
}

/** How a sync reads and what it may do besides writing the secrets. */
interface SyncOptions {
  /** The request's key for ClientRequestTokens. */
  readonly requestKey: string;
  readonly signal?: AbortSignal;
  /** A scheduled refresh: an empty pair list leaves the target secret as it is, and the gateway is never written. */
  readonly refresh?: boolean;
  /** Initiators a managed construct stopped declaring (an Update's old declaration): they lose this stack's credentials. */
  readonly leaving?: readonly ManagedInitiator[];
  /** The stack of a CloudFormation request; a refresh has none (and never writes to the gateway). */
  readonly stackId?: string;
}

/** What a managed construct's gateway writes are decided from: the read target and the credential key's value. */
interface EnsureInput {
  readonly targetArn: string;
  readonly managed: NonNullable<Input['managed']>;
  readonly keyValue: string | undefined;
  readonly read: readonly ChapPair[];
  readonly declared: readonly ManagedInitiator[];
  readonly leaving: readonly ManagedInitiator[];
  /** The stack, whose status tells a rollback apart (adopted credentials are never removed by one). */
  readonly stackId?: string;
}

/**
 * Plans a managed construct's credentials on the gateway and carries the plan out; returns the target's pairs after.
 * Adopted credentials of leaving initiators are removed only on request and never while CloudFormation rolls back:
 * a rollback undoes what the failed operation did, and adopted credentials were there before it.
 */
async function ensureCredentials(e: EnsureInput, signal?: AbortSignal): Promise<ChapPair[]> {
  const key = e.keyValue;
  if (!key) throw new HandlerError(`the credential key secret ${e.managed.credentialKeyArn} has no value`);
  const gateway = new Map(e.read.map((p) => [p.initiatorName, p]));
  const planWith = (removeAdopted: boolean) => planCredentials({
    key, targetArn: e.targetArn, mode: e.managed.mode, declared: e.declared, leaving: e.leaving, removeAdopted, gateway,
  });
  let plan = planWith(false);
  if (e.managed.removeAdopted && e.stackId) {
    const withAdopted = planWith(true);
    if (withAdopted.remove.length > plan.remove.length && !(await stackRollingBack(e.stackId, signal))) plan = withAdopted;
  }
  if (plan.conflicts.length) throw new HandlerError(plan.conflicts.join('; '));
  await applyGatewayPlan(e.targetArn, plan, signal);
  log('ensured', { target: e.targetArn, set: plan.set.map((p) => p.initiatorName), kept: plan.keep, removed: plan.remove });
  return pairsAfter(gateway, plan);
}

/**
 * Reads the target's pairs and the stored values in one round; for a managed construct, ensures its declared
 * initiators' credentials on the gateway (a second round, only when the plan writes anything); then writes every
 * secret whose value changed (the last round). Returns the pairs the target holds at the end.
 */
async function syncSecrets(input: Input, options: SyncOptions): Promise<ChapPair[]> {
  const managed = options.refresh ? undefined : input.managed;
  const secretArns = [input.targetSecretArn, ...input.initiators.map((d) => d.secretArn)];
  const [read, values] = await Promise.all([
    describeChapCredentials(input.targetArn, options.signal),
    currentValues([...secretArns, ...(managed ? [managed.credentialKeyArn] : [])], options.signal),
  ]);
  const pairs = !managed ? read : await ensureCredentials({
    targetArn: input.targetArn, managed, keyValue: values[secretArns.length], read,
    declared: input.initiators, leaving: options.leaving ?? [], stackId: options.stackId,
  }, options.signal);
  const current = new Map(secretArns.map((arn, i) => [arn, values[i]]));
  const byName = new Map(pairs.map((p) => [p.initiatorName, p]));
  const missing = input.initiators.filter((d) => !byName.has(d.name)).map((d) => d.name);
  if (missing.length) {
    throw new HandlerError(`declared initiator(s) ${missing.join(', ')} have no CHAP credentials on target ${input.targetArn} `
      + `(it reports ${pairs.length ? pairs.map((p) => p.initiatorName).join(', ') : 'none'})`);
  }
  const keep = options.refresh && pairs.length === 0;
  if (keep) log('kept', { target: input.targetArn, why: 'the target reports no CHAP credentials; a refresh does not blank the stored value' });
  const writes = [
    ...(keep ? [] : [{ secretArn: input.targetSecretArn, value: withinSecretLimit(targetSecretJson(input.targetArn, pairs), 'target') }]),
    ...input.initiators.map((d) => ({ secretArn: d.secretArn, value: withinSecretLimit(JSON.stringify(byName.get(d.name)!), `initiator ${d.name}`) })),
  ];
  const written = await writeChangedSecrets(writes, current, options.requestKey, options.signal);
  log('synced', { target: input.targetArn, pairs: pairs.length, secretsWritten: written.length, secretsUnchanged: writes.length - written.length });
  return pairs;
}

/** Create and Update: sync, then answer with the initiator names. */
async function sync(
  event: CloudFormationCustomResourceCreateEvent | CloudFormationCustomResourceUpdateEvent,
  leaving: readonly ManagedInitiator[],
  signal?: AbortSignal,
) {
  const input = parseProperties(event.ResourceProperties as unknown as ChapResourceProperties);
  const pairs = await syncSecrets(input, { requestKey: `${event.StackId}\n${event.RequestId}`, signal, leaving, stackId: event.StackId });
  const physicalId = physicalResourceId(input.targetArn);
  return { status: 'SUCCESS', physicalResourceId: physicalId, data: initiatorData(pairs.map((p) => p.initiatorName), dataBudget(event, physicalId)) } as const;
}

/**
 * A scheduled refresh (EventBridge): the read-only sync, for the properties the schedule carries (never a gateway
 * write, also for a managed construct). `requestKey` is the invocation's request id, which Lambda keeps when it
 * retries, so a retry never stores a duplicate version.
 */
export async function onRefresh(event: RefreshEvent, requestKey: string, signal?: AbortSignal): Promise<void> {
  const input = parseProperties(event[REFRESH_EVENT_KEY]);
  await syncSecrets(input, { requestKey: `refresh\n${requestKey}`, signal, refresh: true });
}

export async function onCreate(event: CloudFormationCustomResourceCreateEvent, signal?: AbortSignal): Promise<Outcome> {
  return sync(event, [], signal);
}

/** The properties of an earlier declaration, or undefined where they were invalid (that resource was never created). */
function parsedOrUndefined(props: unknown): Input | undefined {
  try {
    return parseProperties(props as ChapResourceProperties);
  } catch {
    return undefined;
  }
}

export async function onUpdate(event: CloudFormationCustomResourceUpdateEvent, signal?: AbortSignal): Promise<Outcome> {
  const before = parsedOrUndefined(event.OldResourceProperties);
  const targetArn = (event.ResourceProperties as Partial<ChapResourceProperties>)[Prop.TargetArn];
  // A new target is a replacement: CloudFormation sends Delete for the old one, which removes its credentials.
  const leaving = before?.managed && before.targetArn === targetArn ? before.initiators : [];
  return sync(event, leaving, signal);
}

/**
 * Read mode: nothing to undo, CloudFormation deletes the secrets; no AWS call. A managed construct removes the
 * credentials this stack set on the gateway (and adopted ones when asked, unless CloudFormation is rolling back).
 * Also answers the Delete that follows a failed Create, and one for a target that no longer exists.
 */
export async function onDelete(event: CloudFormationCustomResourceDeleteEvent, signal?: AbortSignal): Promise<Outcome> {
  const done = { status: 'SUCCESS', physicalResourceId: event.PhysicalResourceId } as const;
  const input = parsedOrUndefined(event.ResourceProperties);
  const managed = input?.managed;
  if (!input || !managed) return done;
  // A target that is gone took its credentials with it: nothing to remove.
  const [read, values] = await Promise.all([
    describeChapCredentials(input.targetArn, signal, true), currentValues([managed.credentialKeyArn], signal),
  ]);
  await ensureCredentials({
    targetArn: input.targetArn, managed, keyValue: values[0], read, declared: [], leaving: input.initiators, stackId: event.StackId,
  }, signal);
  return done;
}

/** The plain logic: one function per request type. Throws on failure; `handler` turns that into FAILED. */
export async function onEvent(event: CloudFormationCustomResourceEvent, signal?: AbortSignal): Promise<Outcome> {
  switch (event.RequestType) {
    case 'Create': return onCreate(event, signal);
    case 'Update': return onUpdate(event, signal);
    case 'Delete': return onDelete(event, signal);
    default: throw new HandlerError(`unknown request type ${JSON.stringify((event as { RequestType?: unknown }).RequestType)}`);
  }
}

/** A reason for any error: our own messages as they are, anything else by its name only (never a stack or value). */
export function reasonFor(error: unknown): string {
  if (error instanceof HandlerError || ['AwsCallError', 'RotationError'].includes((error as Error)?.name)) return (error as Error).message;
  return `unexpected ${(error as Error)?.name ?? typeof error}`;
}

function log(message: string, fields: Record<string, unknown>): void {
  console.log(JSON.stringify({ message, ...fields }));
}

/** The physical id to answer with when the logic did not get far enough to choose one. */
function fallbackPhysicalId(event: CloudFormationCustomResourceEvent): string {
  if (event.RequestType !== 'Create') return event.PhysicalResourceId;
  const arn = (event.ResourceProperties as Partial<ChapResourceProperties>)?.[Prop.TargetArn];
  return typeof arn === 'string' && !targetArnError(Prop.TargetArn, arn) ? physicalResourceId(arn) : `chap:invalid:${event.RequestId}`;
}

/** Time kept back to deliver the response: a quarter of the remaining time, 1 to 10 seconds. */
export function responseReserveMs(remainingMs: number): number {
  return Math.min(10_000, Math.max(1_000, Math.floor(remainingMs / 4)));
}

/** Runs `work` against the function's deadline: it fails with a reason naming what was pending when time ran out. */
async function withDeadline<T>(context: Context, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const remaining = context.getRemainingTimeInMillis();
  const budgetMs = remaining - responseReserveMs(remaining);
  const abort = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const pending = pendingCalls();
      reject(new HandlerError(`no answer within ${budgetMs} ms, before the function's timeout`
        + (pending.length ? `: still waiting for ${pending.slice(0, 3).join(', ')}${pending.length > 3 ? ` and ${pending.length - 3} more` : ''}` : '')));
      abort.abort();
    }, budgetMs);
  });
  try {
    return await Promise.race([work(abort.signal), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export function isRefreshEvent(event: unknown): event is RefreshEvent {
  return typeof event === 'object' && event !== null && REFRESH_EVENT_KEY in event;
}

/** Runs an invocation that has no response protocol (a refresh, a rotation step): a failure ends it in error, with one line. */
async function runInvocation(
  what: string, fields: Record<string, unknown>, context: Context, work: (signal: AbortSignal) => Promise<unknown>,
): Promise<void> {
  log(what, fields);
  try {
    const outcome = await withDeadline(context, work);
    if (typeof outcome === 'string') log(`${what} done`, { ...fields, outcome });
  } catch (error) {
    const reason = reasonFor(error);
    log(`${what} failed`, { ...fields, reason });
    // The original error is dropped on purpose: only the one-line reason may reach the function's log.
    // eslint-disable-next-line preserve-caught-error
    throw new Error(`${what} failed: ${reason}`);
  }
}

/**
 * The Lambda entry point. A CloudFormation event always gets an answer; a scheduled refresh or a rotation step that
 * fails logs its one-line reason and ends in error, so it counts in the function's Errors metric (and Secrets Manager
 * sees the step fail).
 */
export async function handler(event: CloudFormationCustomResourceEvent | RefreshEvent | RotationEvent, context: Context): Promise<void> {
  if (isRotationEvent(event)) {
    const fields = { step: event.Step, secret: event.SecretId, version: event.ClientRequestToken };
    return runInvocation('rotation', fields, context, (signal) => onRotation(event, signal));
  }
  if (isRefreshEvent(event)) {
    return runInvocation('refresh', { requestId: context.awsRequestId }, context, (signal) => onRefresh(event, context.awsRequestId, signal));
  }
  const where = { requestType: event.RequestType, logicalResourceId: event.LogicalResourceId, requestId: event.RequestId };
  log('request', where);
  let outcome: Outcome;
  try {
    outcome = await withDeadline(context, (signal) => onEvent(event, signal));
  } catch (error) {
    outcome = { status: 'FAILED', physicalResourceId: fallbackPhysicalId(event), reason: reasonFor(error) };
  }
  log('response', { ...where, status: outcome.status, reason: outcome.reason, physicalResourceId: outcome.physicalResourceId });
  await sendResponse(event, responseBody(event, outcome));
}
