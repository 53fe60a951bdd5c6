/**
 * The ChapCredentials custom resource handler. Create and Update read the target's CHAP credentials
 * and write them into the stack's secrets; Delete has nothing to undo (CloudFormation owns the secrets).
 * A scheduled refresh (EventBridge) runs the same sync between deploys.
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
  Attr, ChapPair, ChapResourceProperties, DeclaredInitiator, InitiatorProp, Prop, REFRESH_EVENT_KEY, RefreshEvent, TargetSecretValue,
  TRUNCATION_MARKER_PREFIX, initiatorNameError, targetArnError,
} from '../lib/api';
import { currentValues, describeChapCredentials, pendingCalls, writeChangedSecrets } from './aws';
import { dataBudget, Outcome, responseBody, sendResponse } from './response';

/** Secrets Manager's limit for one secret value. */
export const MAX_SECRET_BYTES = 65_536;

/** A failure whose message is already a complete, safe, one-line reason. */
export class HandlerError extends Error {}

interface Input {
  readonly targetArn: string;
  readonly targetSecretArn: string;
  readonly initiators: readonly { name: string; secretArn: string }[];
}

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
  if (problems.length) throw new HandlerError(`invalid properties: ${problems.join('; ')}`);
  return { targetArn: props![Prop.TargetArn]!, targetSecretArn: targetSecretArn!, initiators };
}

/** One physical id per target: a changed target ARN is a replacement, an unchanged one never is. */
export function physicalResourceId(targetArn: string): string {
  return `chap:${targetArn}`;
}

/**
 * Response Data: the sorted names comma-separated, their exact count, and whether the names had to be
 * shortened to fit `budget` bytes; a shortened list ends with `+N-more`, which no initiator name can be.
 */
export function initiatorData(names: readonly string[], budget: number): Record<string, string> {
  const render = (shown: readonly string[], truncated: boolean) => ({
    [Attr.InitiatorNames]: [...shown, ...(truncated ? [`${TRUNCATION_MARKER_PREFIX}${names.length - shown.length}-more`] : [])].join(','),
    [Attr.InitiatorCount]: String(names.length),
    [Attr.InitiatorNamesTruncated]: String(truncated),
  });
  let shown = names.length;
  while (shown > 0 && Buffer.byteLength(JSON.stringify(render(names.slice(0, shown), shown < names.length))) > budget) shown--;
  return render(names.slice(0, shown), shown < names.length);
}

function secretJson(value: TargetSecretValue | ChapPair, property: string): string {
  const json = JSON.stringify(value);
  if (Buffer.byteLength(json) > MAX_SECRET_BYTES) {
    throw new HandlerError(`the ${property} secret value would be ${Buffer.byteLength(json)} bytes, more than Secrets Manager's limit of ${MAX_SECRET_BYTES}`);
  }
  return json;
}

/**
 * Reads the target's pairs and writes every secret whose value changed; returns the pairs. With `keepStored`
 * (a scheduled refresh), an empty pair list leaves the target secret as it is: a refresh never blanks a secret.
 */
async function syncSecrets(input: Input, requestKey: string, signal?: AbortSignal, keepStored = false): Promise<ChapPair[]> {
  // Two rounds of calls, whatever the number of initiators: the target and the stored values are read together,
  // then every changed value is written together.
  const secretArns = [input.targetSecretArn, ...input.initiators.map((d) => d.secretArn)];
  const [pairs, values] = await Promise.all([describeChapCredentials(input.targetArn, signal), currentValues(secretArns, signal)]);
  const current = new Map(secretArns.map((arn, i) => [arn, values[i]]));
  const byName = new Map(pairs.map((p) => [p.initiatorName, p]));
  const missing = input.initiators.filter((d) => !byName.has(d.name)).map((d) => d.name);
  if (missing.length) {
    throw new HandlerError(`declared initiator(s) ${missing.join(', ')} have no CHAP credentials on target ${input.targetArn} `
      + `(it reports ${pairs.length ? pairs.map((p) => p.initiatorName).join(', ') : 'none'})`);
  }
  const keep = keepStored && pairs.length === 0;
  if (keep) log('kept', { target: input.targetArn, why: 'the target reports no CHAP credentials; a refresh does not blank the stored value' });
  const writes = [
    ...(keep ? [] : [{ secretArn: input.targetSecretArn, value: secretJson({ targetArn: input.targetArn, chapCredentials: pairs }, 'target') }]),
    ...input.initiators.map((d) => ({ secretArn: d.secretArn, value: secretJson(byName.get(d.name)!, `initiator ${d.name}`) })),
  ];
  const written = await writeChangedSecrets(writes, current, requestKey, signal);
  log('synced', { target: input.targetArn, pairs: pairs.length, secretsWritten: written.length, secretsUnchanged: writes.length - written.length });
  return pairs;
}

/** Create and Update: sync, then answer with the initiator names. */
async function sync(event: CloudFormationCustomResourceCreateEvent | CloudFormationCustomResourceUpdateEvent, signal?: AbortSignal) {
  const input = parseProperties(event.ResourceProperties as unknown as ChapResourceProperties);
  const pairs = await syncSecrets(input, `${event.StackId}\n${event.RequestId}`, signal);
  const physicalId = physicalResourceId(input.targetArn);
  return { status: 'SUCCESS', physicalResourceId: physicalId, data: initiatorData(pairs.map((p) => p.initiatorName), dataBudget(event, physicalId)) } as const;
}

/**
 * A scheduled refresh (EventBridge): the same sync, for the properties the schedule carries. `requestKey` is the
 * invocation's request id, which Lambda keeps when it retries, so a retry never stores a duplicate version.
 */
export async function onRefresh(event: RefreshEvent, requestKey: string, signal?: AbortSignal): Promise<void> {
  const input = parseProperties(event[REFRESH_EVENT_KEY]);
  await syncSecrets(input, `refresh\n${requestKey}`, signal, true);
}

export async function onCreate(event: CloudFormationCustomResourceCreateEvent, signal?: AbortSignal): Promise<Outcome> {
  return sync(event, signal);
}

export async function onUpdate(event: CloudFormationCustomResourceUpdateEvent, signal?: AbortSignal): Promise<Outcome> {
  return sync(event, signal);
}

/** Nothing to undo: CloudFormation deletes the secrets. Also answers the Delete that follows a failed Create. */
export async function onDelete(event: CloudFormationCustomResourceDeleteEvent): Promise<Outcome> {
  return { status: 'SUCCESS', physicalResourceId: event.PhysicalResourceId };
}

/** The plain logic: one function per request type. Throws on failure; `handler` turns that into FAILED. */
export async function onEvent(event: CloudFormationCustomResourceEvent, signal?: AbortSignal): Promise<Outcome> {
  switch (event.RequestType) {
    case 'Create': return onCreate(event, signal);
    case 'Update': return onUpdate(event, signal);
    case 'Delete': return onDelete(event);
    default: throw new HandlerError(`unknown request type ${JSON.stringify((event as { RequestType?: unknown }).RequestType)}`);
  }
}

/** A reason for any error: our own messages as they are, anything else by its name only (never a stack or value). */
export function reasonFor(error: unknown): string {
  if (error instanceof HandlerError || (error as Error)?.name === 'AwsCallError') return (error as Error).message;
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

/**
 * The Lambda entry point. A CloudFormation event always gets an answer; a scheduled refresh that fails logs its
 * one-line reason and ends in error, so it counts in the function's Errors metric.
 */
export async function handler(event: CloudFormationCustomResourceEvent | RefreshEvent, context: Context): Promise<void> {
  if (isRefreshEvent(event)) {
    log('refresh', { requestId: context.awsRequestId });
    try {
      await withDeadline(context, (signal) => onRefresh(event, context.awsRequestId, signal));
    } catch (error) {
      const reason = reasonFor(error);
      log('refresh failed', { reason });
      // The original error is dropped on purpose: only the one-line reason may reach the function's log.
      // eslint-disable-next-line preserve-caught-error
      throw new Error(`refresh failed: ${reason}`);
    }
    return;
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
