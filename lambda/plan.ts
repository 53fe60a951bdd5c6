/**
 * Managed CHAP credentials, decided without any client: what the stack's credentials for an initiator are, and the
 * plan (which initiators get credentials set, which are adopted as they are, which lose the credentials this stack
 * set) as a pure function of what was read. The apply step in aws.ts carries a plan out; nothing here calls AWS.
 *
 * The credentials this stack sets are derived, not drawn: an HMAC of the target, the initiator, its secret's ARN and
 * the CHAP mode, keyed with the construct's credential key (a random value CloudFormation generates in a secret of
 * its own that only the provider's role reads). So the handler recognises its own credentials on the gateway, with
 * no record to keep in step: a retry after a partial failure sets the same values again instead of a second set, a
 * rollback restores exactly what was there, and Delete removes only credentials the gateway still holds as this
 * stack set them, never others.
 */
import { createHmac } from 'node:crypto';
import { ChapMode, ChapPair } from '../lib/api';

/** Characters of a generated CHAP secret: letters and digits, which Linux open-iscsi and Windows both accept. */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
/** Length of a generated CHAP secret: the most Storage Gateway allows (12 to 16 bytes), all ASCII. */
export const GENERATED_SECRET_LENGTH = 16;

/** What identifies the credentials of one initiator that this stack sets. */
export interface CredentialSeed {
  readonly key: string;
  readonly targetArn: string;
  readonly initiatorName: string;
  /** The initiator's own secret: a new declaration of the same initiator gets a new secret ARN, so new values. */
  readonly secretArn: string;
}

/** A secret of GENERATED_SECRET_LENGTH letters and digits, deterministic in its inputs, unbiased. */
function derivedSecret(seed: CredentialSeed, purpose: string): string {
  const out: string[] = [];
  for (let block = 0; out.length < GENERATED_SECRET_LENGTH; block++) {
    const bytes = createHmac('sha256', seed.key)
      .update([purpose, seed.targetArn, seed.initiatorName, seed.secretArn, String(block)].join('\n'))
      .digest();
    // 248 = 4 * 62: bytes at or above it are skipped, so every character is equally likely.
    for (const b of bytes) if (b < 248 && out.length < GENERATED_SECRET_LENGTH) out.push(ALPHABET[b % ALPHABET.length]);
  }
  return out.join('');
}

/** The credentials this stack sets for one initiator in `mode`; the target secret differs from the initiator's. */
export function stackCredentials(seed: CredentialSeed, mode: ChapMode): ChapPair {
  const initiator = derivedSecret(seed, 'initiator');
  const pair = { initiatorName: seed.initiatorName, targetArn: seed.targetArn, secretToAuthenticateInitiator: initiator };
  if (mode === ChapMode.ONE_WAY) return pair;
  let target = derivedSecret(seed, 'target');
  for (let n = 1; target === initiator; n++) target = derivedSecret(seed, `target ${n}`);
  return { ...pair, secretToAuthenticateTarget: target };
}

/** The kind of CHAP a pair is: mutual when it holds a target secret (an empty one counts as none). */
export function modeOf(pair: ChapPair): ChapMode {
  return pair.secretToAuthenticateTarget ? ChapMode.MUTUAL : ChapMode.ONE_WAY;
}

function samePair(a: ChapPair, b: ChapPair): boolean {
  return a.secretToAuthenticateInitiator === b.secretToAuthenticateInitiator
    && (a.secretToAuthenticateTarget || undefined) === (b.secretToAuthenticateTarget || undefined);
}

/** Whether `pair`, read from the gateway, is what this stack set for its initiator (in either mode). */
export function setByStack(pair: ChapPair, seed: CredentialSeed): boolean {
  return samePair(pair, stackCredentials(seed, modeOf(pair)));
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
