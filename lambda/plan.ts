/**
 * Managed CHAP credentials, decided without any client: what the stack's credentials for an initiator are, and the
 * plan (which initiators get credentials set, which are adopted as they are, which lose the credentials this stack
 * set) as a pure function of what was read. The apply step in aws.ts carries a plan out; nothing here calls AWS.
 *
 * The credentials this stack sets are derived, not drawn, from the stack's credential key (a random value
 * CloudFormation generates into one secret per stack that only the provider's role reads):
 * - the target secret (mutual CHAP) is an HMAC of the initiator name alone, so an initiator gets the same target secret
 *   on every target of the stack (a Windows host keeps one mutual secret for the whole machine), and a rotation never
 *   changes it;
 * - the initiator secret is 8 characters of nonce, an HMAC of the target, the initiator, its secret's ARN and the
 *   rotation's token (none before the first rotation), followed by 8 characters of seal, an HMAC of the same target,
 *   initiator and secret ARN and of the nonce. The seal makes the credentials self-identifying: the handler recognises
 *   any credentials this stack set for that secret, before or after any number of rotations, from the value alone,
 *   with no record of which rotation is current (mid-rotation, after a failed one, for an initiator whose secret is
 *   already gone).
 * So a retry after a partial failure sets the same values again instead of a second set, a rollback restores exactly
 * what was there, and Delete removes only credentials the gateway still holds as this stack set them, never others.
 */
import { createHmac } from 'node:crypto';
import { ChapMode, ChapPair } from '../lib/api';

/** Characters of a generated CHAP secret: letters and digits, which Linux open-iscsi and Windows both accept. */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Length of a generated CHAP secret: the most Storage Gateway allows (12 to 16 bytes), all ASCII. */
export const GENERATED_SECRET_LENGTH = 16;
/** Characters of an initiator secret that are its seal (the rest are its nonce): about 47.6 bits. */
export const SEAL_LENGTH = 8;

/** What identifies the credentials of one initiator that this stack sets. */
export interface CredentialSeed {
  /** The stack's credential key. */
  readonly key: string;
  readonly targetArn: string;
  readonly initiatorName: string;
  /** The initiator's own secret: a new declaration of the same initiator gets a new secret ARN, so new values. */
  readonly secretArn: string;
  /** The rotation's token (its new secret version's id); none for the credentials a deploy sets. */
  readonly rotation?: string;
}

/** `length` letters and digits, deterministic in the key and the parts, unbiased. */
function derived(key: string, parts: readonly string[], length: number): string {
  const out: string[] = [];
  for (let block = 0; out.length < length; block++) {
    const bytes = createHmac('sha256', key).update([...parts, String(block)].join('\n')).digest();
    // 248 = 4 * 62: bytes at or above it are skipped, so every character is equally likely.
    for (const b of bytes) if (b < 248 && out.length < length) out.push(ALPHABET[b % ALPHABET.length]);
  }
  return out.join('');
}

/** The target secret (mutual CHAP) of an initiator: the same on every target of the stack and in every rotation. */
export function targetSecretOf(key: string, initiatorName: string): string {
  return derived(key, ['target', initiatorName], GENERATED_SECRET_LENGTH);
}

function seal(seed: CredentialSeed, nonce: string): string {
  return derived(seed.key, ['initiator seal', seed.targetArn, seed.initiatorName, seed.secretArn, nonce], SEAL_LENGTH);
}

/** The initiator secret: nonce then seal; never equal to the initiator's target secret (Windows refuses equal ones). */
function initiatorSecretOf(seed: CredentialSeed): string {
  const target = targetSecretOf(seed.key, seed.initiatorName);
  for (let n = 0; ; n++) {
    const parts = ['initiator nonce', seed.targetArn, seed.initiatorName, seed.secretArn, seed.rotation ?? '', ...(n ? [String(n)] : [])];
    const nonce = derived(seed.key, parts, GENERATED_SECRET_LENGTH - SEAL_LENGTH);
    const secret = nonce + seal(seed, nonce);
    if (secret !== target) return secret;
  }
}

/** The credentials this stack sets for one initiator in `mode` (of the seed's rotation, or before any). */
export function stackCredentials(seed: CredentialSeed, mode: ChapMode): ChapPair {
  const pair = { initiatorName: seed.initiatorName, targetArn: seed.targetArn, secretToAuthenticateInitiator: initiatorSecretOf(seed) };
  return mode === ChapMode.ONE_WAY ? pair : { ...pair, secretToAuthenticateTarget: targetSecretOf(seed.key, seed.initiatorName) };
}

/** The kind of CHAP a pair is: mutual when it holds a target secret (an empty one counts as none). */
export function modeOf(pair: ChapPair): ChapMode {
  return pair.secretToAuthenticateTarget ? ChapMode.MUTUAL : ChapMode.ONE_WAY;
}

/** Whether two pairs hold the same secrets (an empty target secret counts as none). */
export function samePair(a: ChapPair, b: ChapPair): boolean {
  return a.secretToAuthenticateInitiator === b.secretToAuthenticateInitiator
    && (a.secretToAuthenticateTarget || undefined) === (b.secretToAuthenticateTarget || undefined);
}

/**
 * Whether `pair`, read from the gateway, is what this stack set for its initiator and secret (in either mode, before
 * or after any rotation): its initiator secret carries the seal of its nonce, and its target secret, if any, is the
 * stack's for that initiator. The seed's `rotation` is not needed.
 */
export function setByStack(pair: ChapPair, seed: CredentialSeed): boolean {
  const secret = pair.secretToAuthenticateInitiator;
  if (secret.length !== GENERATED_SECRET_LENGTH) return false;
  const nonce = secret.slice(0, GENERATED_SECRET_LENGTH - SEAL_LENGTH);
  if (secret.slice(nonce.length) !== seal(seed, nonce)) return false;
  return !pair.secretToAuthenticateTarget || pair.secretToAuthenticateTarget === targetSecretOf(seed.key, seed.initiatorName);
}

/** One managed initiator, as the construct declares it. */
export interface ManagedInitiator {
  readonly name: string;
  readonly secretArn: string;
}

export interface PlanInput {
  readonly key: string;
  readonly targetArn: string;
  readonly mode: ChapMode;
  /** Initiators that must have credentials of `mode` (none on Delete). */
  readonly declared: readonly ManagedInitiator[];
  /** Initiators that leave the declaration (dropped by an Update, or all of them on Delete). */
  readonly leaving: readonly ManagedInitiator[];
  /** Remove leaving initiators' credentials also when this stack did not set them. */
  readonly removeAdopted: boolean;
  /** What the gateway reports for the target, by initiator name. */
  readonly gateway: ReadonlyMap<string, ChapPair>;
}

export interface Plan {
  /** Initiators to give these credentials (UpdateChapCredentials): none yet, or this stack's of the other mode. */
  readonly set: readonly ChapPair[];
  /** Initiators whose credentials, of the requested mode, stay as they are (this stack's or adopted). */
  readonly keep: readonly string[];
  /** Initiators whose credentials to delete (DeleteChapCredentials). */
  readonly remove: readonly string[];
  /** Declared initiators whose credentials this stack did not set and cannot keep: one line each. */
  readonly conflicts: readonly string[];
}

/**
 * The plan for one target. A declared initiator without credentials gets this stack's; one with credentials of the
 * requested mode keeps them (adopted when this stack did not set them); one with this stack's credentials of the other
 * mode gets this stack's of the requested mode; one with credentials of the other mode that this stack did not set is
 * a conflict (changing them would lock out the host that uses them). A leaving initiator loses its credentials when
 * this stack set them, or when `removeAdopted`; initiators neither declared nor leaving are never touched.
 */
export function planCredentials(input: PlanInput): Plan {
  const set: ChapPair[] = [];
  const keep: string[] = [];
  const remove: string[] = [];
  const conflicts: string[] = [];
  const seed = (d: ManagedInitiator): CredentialSeed => ({
    key: input.key, targetArn: input.targetArn, initiatorName: d.name, secretArn: d.secretArn,
  });
  for (const d of input.declared) {
    const current = input.gateway.get(d.name);
    if (!current) set.push(stackCredentials(seed(d), input.mode));
    else if (modeOf(current) === input.mode) keep.push(d.name);
    else if (setByStack(current, seed(d))) set.push(stackCredentials(seed(d), input.mode));
    else conflicts.push(`initiator ${d.name} has ${modeOf(current)} CHAP credentials on target ${input.targetArn} that this stack did not set, `
      + `and ${input.mode} was asked`);
  }
  const declared = new Set(input.declared.map((d) => d.name));
  for (const d of input.leaving) {
    const current = input.gateway.get(d.name);
    if (!current || declared.has(d.name)) continue;
    if (input.removeAdopted || setByStack(current, seed(d))) remove.push(d.name);
  }
  return { set, keep, remove, conflicts };
}

/** Whether the plan writes to the gateway at all (every write closes the target's connections). */
export function writesGateway(plan: Plan): boolean {
  return plan.set.length > 0 || plan.remove.length > 0;
}

/** The target's pairs once the plan is applied, sorted by initiator name. */
export function pairsAfter(gateway: ReadonlyMap<string, ChapPair>, plan: Plan): ChapPair[] {
  const after = new Map(gateway);
  for (const name of plan.remove) after.delete(name);
  for (const pair of plan.set) after.set(pair.initiatorName, pair);
  return [...after.values()].sort((a, b) => (a.initiatorName < b.initiatorName ? -1 : a.initiatorName > b.initiatorName ? 1 : 0));
}
