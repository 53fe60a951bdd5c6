/**
 * Secrets Manager rotation of a managed construct's initiator secrets, run by the stack's one provider function: one
 * function per step (createSecret, setSecret, testSecret, finishSecret). The decisions are pure functions of what was
 * read (table-tested without clients); every AWS call is in aws.ts.
 *
 * Which secrets the function rotates: only the stack's own rotated initiator secrets. An event carries nothing but a
 * secret id and a token; what decides is what the deploy set. The role may call DescribeSecret (the first call of
 * every step) only on exactly the ARNs of the stack's rotated initiator secrets, so an event naming any other secret
 * fails there, AccessDenied, before anything else. Beyond that, the secret must have rotation enabled, carry the tag
 * naming its construct's target secret, hold an initiator's pair as its current value, and the function must hold the
 * stack's credential key (its environment); and setSecret writes to the gateway only a pending value that carries the
 * stack's seal for that secret (lambda/plan.ts), which nobody without the credential key can make.
 *
 * The credentials of a rotation are derived like a deploy's (plan.ts), with the rotation's token (the new version's
 * id) in the nonce: every delivery of a step derives the same values, and the stack recognises them as its own on the
 * gateway from the value alone, with no state outside Secrets Manager and the gateway.
 */
import { CREDENTIAL_KEY_ENV, ChapPair, ROTATION_TARGET_SECRET_TAG, TargetSecretValue } from '../lib/api';
import {
  SecretDescription, currentValues, describeChapCredentials, describeSecret, moveCurrentStage, putPendingValue, secretVersionValue,
  setChapCredentials, writeChangedSecrets,
} from './aws';
import { modeOf, samePair, setByStack, stackCredentials } from './plan';

/** The steps of Secrets Manager's rotation protocol, as they arrive on the wire. */
export const ROTATION_STEPS = ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const;
export type RotationStep = typeof ROTATION_STEPS[number];

/** The event Secrets Manager invokes a rotation function with, once per step. */
export interface RotationEvent {
  readonly Step: RotationStep;
  readonly SecretId: string;
  readonly ClientRequestToken: string;
  readonly RotationToken?: string;
}

/** A failed rotation step; the message is a complete, safe, one-line reason. */
export class RotationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RotationError';
  }
}

/** Whether `event` is a rotation step (Secrets Manager's events have a Step and no RequestType). */
export function isRotationEvent(event: unknown): event is RotationEvent {
  return typeof event === 'object' && event !== null && 'Step' in event && 'SecretId' in event && !('RequestType' in event);
}

/** The reason the event is malformed, or undefined. */
export function rotationEventError(event: Partial<RotationEvent>): string | undefined {
  if (!(ROTATION_STEPS as readonly unknown[]).includes(event.Step)) {
    return `unknown rotation step ${JSON.stringify(event.Step)} (expected one of ${ROTATION_STEPS.join(', ')})`;
  }
  if (typeof event.SecretId !== 'string' || !event.SecretId) return `rotation event without a SecretId, got ${JSON.stringify(event.SecretId)}`;
  if (typeof event.ClientRequestToken !== 'string' || !event.ClientRequestToken) {
    return `rotation event for secret ${event.SecretId} without a ClientRequestToken`;
  }
  return undefined;
}

/**
 * Where the rotation's version stands: 'current' when a step is delivered again after finishSecret (nothing left to
 * do), 'pending' when it is the version being rotated; anything else is refused with a reason.
 */
export function versionState(description: SecretDescription, token: string): { state: 'current' | 'pending' } | { refused: string } {
  if (!description.rotationEnabled) return { refused: `rotation is not enabled for secret ${description.arn}` };
  const stages = description.versionStages[token];
  if (!stages) return { refused: `secret ${description.arn} has no version ${token} to rotate` };
  if (stages.includes('AWSCURRENT')) return { state: 'current' };
  if (!stages.includes('AWSPENDING')) return { refused: `version ${token} of secret ${description.arn} is not AWSPENDING` };
  return { state: 'pending' };
}

/** What a rotation of one initiator secret works on. */
export interface RotatedSecret {
  readonly secretArn: string;
  readonly targetSecretArn: string;
  readonly keyArn: string;
  /** The pair the secret holds as AWSCURRENT. */
  readonly current: ChapPair;
}

function parsePair(value: string | undefined): ChapPair | undefined {
  try {
    const pair = JSON.parse(value ?? '') as Partial<ChapPair>;
    if (typeof pair?.initiatorName !== 'string' || typeof pair.targetArn !== 'string' || typeof pair.secretToAuthenticateInitiator !== 'string') return undefined;
    if (pair.secretToAuthenticateTarget !== undefined && typeof pair.secretToAuthenticateTarget !== 'string') return undefined;
    return pair as ChapPair;
  } catch {
    return undefined;
  }
}

/**
 * Whether the function rotates this secret, decided before any gateway call: it must carry the tag naming its target
 * secret, hold an initiator's pair as its current value, and the function must know the stack's credential key.
 */
export function rotatedSecret(
  description: SecretDescription, currentValue: string | undefined, keyArn: string | undefined,
): RotatedSecret | { refused: string } {
  const refused = (why: string) => ({ refused: `rotation refused for secret ${description.arn}: ${why}` });
  if (!keyArn) return refused(`this function holds no credential key (${CREDENTIAL_KEY_ENV}): its stack manages no credentials`);
  const targetSecretArn = description.tags[ROTATION_TARGET_SECRET_TAG];
  if (!targetSecretArn?.startsWith('arn:')) return refused(`it is not a rotated initiator secret of a ChapCredentials (no ${ROTATION_TARGET_SECRET_TAG} tag)`);
  const current = parsePair(currentValue);
  if (!current) return refused('its current value is not the CHAP credentials of an initiator');
  return { secretArn: description.arn, targetSecretArn, keyArn, current };
}

/** The pending version's pair, which must be of the same initiator and target as the current one. */
export function pendingPair(rotated: RotatedSecret, pendingValue: string | undefined, token: string): ChapPair | { refused: string } {
  const pending = parsePair(pendingValue);
  if (!pending) return { refused: `version ${token} of secret ${rotated.secretArn} holds no CHAP credentials (createSecret has not stored them)` };
  if (pending.initiatorName !== rotated.current.initiatorName || pending.targetArn !== rotated.current.targetArn) {
    return { refused: `version ${token} of secret ${rotated.secretArn} holds credentials of another initiator or target than its current version` };
  }
  return pending;
}

/**
 * Whether testSecret is Secrets Manager's configuration test: a pending version that createSecret never filled (made
 * when rotation is configured without rotating at once). It passes without asking the gateway.
 */
export function isConfigurationTest(pendingValue: string | undefined): boolean {
  return pendingValue === undefined;
}

/** Whether the gateway's pair for the initiator (undefined when it has none) holds the pending credentials. */
export function gatewayHolds(onGateway: ChapPair | undefined, pending: ChapPair): boolean {
  return onGateway !== undefined && samePair(onGateway, pending);
}

/** The version AWSCURRENT moves away from in finishSecret (undefined when no version has it). */
export function currentVersion(description: SecretDescription): string | undefined {
  return Object.entries(description.versionStages).find(([, stages]) => stages.includes('AWSCURRENT'))?.[0];
}

/** The target secret's JSON for the pairs the gateway reports: what a deploy, a refresh and a rotation write. */
export function targetSecretJson(targetArn: string, pairs: readonly ChapPair[]): string {
  const value: TargetSecretValue = { targetArn, chapCredentials: pairs };
  return JSON.stringify(value);
}

/** Rounds finishSecret may write the target secret when other rotations of the same target change the gateway meanwhile. */
export const TARGET_SECRET_ROUNDS = 3;

/**
 * What one round of finishSecret does with the target secret, given its current value and the pairs the gateway just
 * reported: nothing when it already holds them ('in-step'), refuse when it is another target's secret, else write
 * ('write'), at most TARGET_SECRET_ROUNDS times ('give-up' after). A write is followed by another round, so a write
 * made stale by another rotation of the same target meanwhile is caught and redone.
 */
export function targetSecretRound(
  targetValue: string | undefined, targetArn: string, pairs: readonly ChapPair[], round: number,
): 'in-step' | 'write' | 'other-target' | 'give-up' {
  let stored: unknown;
  try {
    stored = (JSON.parse(targetValue ?? '') as Partial<TargetSecretValue>)?.targetArn;
  } catch {
    stored = undefined;
  }
  if (stored !== undefined && stored !== targetArn) return 'other-target';
  if (targetValue === targetSecretJson(targetArn, pairs)) return 'in-step';
  return round < TARGET_SECRET_ROUNDS ? 'write' : 'give-up';
}

function check<T extends object>(result: T | { refused: string }): T {
  if ('refused' in result) throw new RotationError(result.refused);
  return result;
}

interface StepInput {
  readonly event: RotationEvent;
  readonly rotated: RotatedSecret;
  readonly description: SecretDescription;
  readonly pendingValue: string | undefined;
  readonly signal?: AbortSignal;
}

async function credentialKey(rotated: RotatedSecret, signal?: AbortSignal): Promise<string> {
  const [key] = await currentValues([rotated.keyArn], signal);
  if (!key) throw new RotationError(`the credential key secret ${rotated.keyArn} has no value`);
  return key;
}

function gatewayPair(pairs: readonly ChapPair[], pair: ChapPair): ChapPair | undefined {
  return pairs.find((p) => p.initiatorName === pair.initiatorName);
}

/** createSecret: the rotation's credentials, derived from its token, stored as the pending version (once). */
async function createSecret({ event, rotated, pendingValue, signal }: StepInput): Promise<string> {
  if (pendingValue !== undefined) return 'the pending version already holds its credentials';
  const key = await credentialKey(rotated, signal);
  const { initiatorName, targetArn } = rotated.current;
  const seed = { key, targetArn, initiatorName, secretArn: rotated.secretArn, rotation: event.ClientRequestToken };
  const next = stackCredentials(seed, modeOf(rotated.current));
  await putPendingValue(rotated.secretArn, JSON.stringify(next), event.ClientRequestToken, event.RotationToken, signal);
  return 'stored the pending credentials';
}

/** setSecret: the pending credentials onto the gateway, unless it already holds them (no second write, no extra close). */
async function setSecret({ event, rotated, pendingValue, signal }: StepInput): Promise<string> {
  const pending = check(pendingPair(rotated, pendingValue, event.ClientRequestToken));
  const key = await credentialKey(rotated, signal);
  const seed = { key, targetArn: pending.targetArn, initiatorName: pending.initiatorName, secretArn: rotated.secretArn };
  if (!setByStack(pending, seed)) {
    throw new RotationError(`rotation refused for secret ${rotated.secretArn}: its pending credentials were not made by this stack's createSecret`);
  }
  const pairs = await describeChapCredentials(pending.targetArn, signal);
  if (gatewayHolds(gatewayPair(pairs, pending), pending)) return 'the gateway already holds the pending credentials';
  await setChapCredentials(pending, signal);
  return 'set the pending credentials on the gateway';
}

/** testSecret: the gateway holds the pending credentials; the configuration test passes without asking it. */
async function testSecret({ event, rotated, pendingValue, signal }: StepInput): Promise<string> {
  if (isConfigurationTest(pendingValue)) return 'configuration test: no pending credentials to test';
  const pending = check(pendingPair(rotated, pendingValue, event.ClientRequestToken));
  const pairs = await describeChapCredentials(pending.targetArn, signal);
  if (!gatewayHolds(gatewayPair(pairs, pending), pending)) {
    throw new RotationError(`testSecret failed for secret ${rotated.secretArn}: target ${pending.targetArn} does not hold the pending credentials `
      + `of initiator ${pending.initiatorName}`);
  }
  return 'the gateway holds the pending credentials';
}

/**
 * finishSecret: the target secret takes what the gateway holds (again, until equal, when other rotations of the same
 * target change it meanwhile), then AWSCURRENT moves to the rotation's version.
 */
async function finishSecret({ event, rotated, description, pendingValue, signal }: StepInput): Promise<string> {
  const pending = check(pendingPair(rotated, pendingValue, event.ClientRequestToken));
  let written = 0;
  for (let round = 0; ; round++) {
    const [pairs, [targetValue]] = await Promise.all([
      describeChapCredentials(pending.targetArn, signal), currentValues([rotated.targetSecretArn], signal),
    ]);
    if (!gatewayHolds(gatewayPair(pairs, pending), pending)) {
      throw new RotationError(`finishSecret failed for secret ${rotated.secretArn}: target ${pending.targetArn} no longer holds the pending credentials `
        + `of initiator ${pending.initiatorName}`);
    }
    const next = targetSecretRound(targetValue, pending.targetArn, pairs, round);
    if (next === 'other-target') {
      throw new RotationError(`rotation refused for secret ${rotated.secretArn}: its ${ROTATION_TARGET_SECRET_TAG} tag names a secret of another target`);
    }
    if (next === 'in-step') break;
    if (next === 'give-up') {
      throw new RotationError(`finishSecret failed for secret ${rotated.secretArn}: the target secret ${rotated.targetSecretArn} could not be kept `
        + `equal to target ${pending.targetArn} in ${TARGET_SECRET_ROUNDS} rounds`);
    }
    const json = targetSecretJson(pending.targetArn, pairs);
    await writeChangedSecrets([{ secretArn: rotated.targetSecretArn, value: json }], new Map([[rotated.targetSecretArn, targetValue]]),
      `rotation\n${rotated.secretArn}\n${event.ClientRequestToken}\n${round}`, signal);
    written++;
  }
  await moveCurrentStage(rotated.secretArn, event.ClientRequestToken, currentVersion(description), signal);
  return `moved AWSCURRENT; target secret ${written ? 'written' : 'already in step'}`;
}

const STEPS: Record<RotationStep, (input: StepInput) => Promise<string>> = { createSecret, setSecret, testSecret, finishSecret };

/**
 * One rotation step. Refuses, before any gateway call, a secret the function does not rotate; a step delivered again
 * after finishSecret does nothing. Returns what it did, in words (no value).
 */
export async function onRotation(event: RotationEvent, signal?: AbortSignal): Promise<string> {
  const malformed = rotationEventError(event);
  if (malformed) throw new RotationError(malformed);
  const description = await describeSecret(event.SecretId, signal);
  const state = check(versionState(description, event.ClientRequestToken));
  if (state.state === 'current') return 'the version is already AWSCURRENT: nothing to do';
  const [[currentValue], pendingValue] = await Promise.all([
    currentValues([description.arn], signal), secretVersionValue(description.arn, event.ClientRequestToken, signal),
  ]);
  const rotated = check(rotatedSecret(description, currentValue, process.env[CREDENTIAL_KEY_ENV]));
  return STEPS[event.Step]({ event, rotated, description, pendingValue, signal });
}
