/** The managed-credentials plan and the derived credentials, decided without any client (table tests). */
import { ChapMode, ChapPair } from '../lib/api';
import {
  GENERATED_SECRET_LENGTH, ManagedInitiator, SEAL_LENGTH, PlanInput, modeOf, pairsAfter, planCredentials, setByStack, stackCredentials, writesGateway,
} from '../lambda/plan';
import { DOC_TARGET_ARN, HOST_A, HOST_B, initiatorSecretArn, numberedTargetArn, secretValue } from './fixtures';

const HOST_C = 'iqn.1994-05.com.redhat:host-c';
const KEY = 'k'.repeat(64);
const initiator = (name: string): ManagedInitiator => ({ name, secretArn: initiatorSecretArn(name) });
const seed = (name: string, key = KEY, rotation?: string) => ({
  key, targetArn: DOC_TARGET_ARN, initiatorName: name, secretArn: initiatorSecretArn(name), ...(rotation ? { rotation } : {}),
});
const TOKEN = 'a1b2c3d4-0000-4000-8000-000000000001';
const rotated = (name: string, mode: ChapMode, token = TOKEN) => stackCredentials(seed(name, KEY, token), mode);
const ours = (name: string, mode: ChapMode) => stackCredentials(seed(name), mode);
const foreign = (name: string, mode: ChapMode): ChapPair => ({
  initiatorName: name, targetArn: DOC_TARGET_ARN, secretToAuthenticateInitiator: secretValue(),
  ...(mode === ChapMode.MUTUAL ? { secretToAuthenticateTarget: secretValue() } : {}),
});

function plan(overrides: Partial<PlanInput> & { onGateway?: ChapPair[] }) {
  return planCredentials({
    key: KEY, targetArn: DOC_TARGET_ARN, mode: ChapMode.MUTUAL, declared: [], leaving: [], removeAdopted: false,
    gateway: new Map((overrides.onGateway ?? []).map((p) => [p.initiatorName, p])), ...overrides,
  });
}

describe('derived credentials', () => {
  test('16 letters and digits, initiator and target secrets different, one-way without a target secret', () => {
    const mutual = ours(HOST_A, ChapMode.MUTUAL);
    for (const secret of [mutual.secretToAuthenticateInitiator, mutual.secretToAuthenticateTarget!]) {
      expect(secret).toMatch(new RegExp(`^[A-Za-z0-9]{${GENERATED_SECRET_LENGTH}}$`));
      expect(Buffer.byteLength(secret)).toBeLessThanOrEqual(16); // Storage Gateway: 12 to 16 bytes
    }
    expect(mutual.secretToAuthenticateTarget).not.toBe(mutual.secretToAuthenticateInitiator);
    const oneWay = ours(HOST_A, ChapMode.ONE_WAY);
    expect(oneWay).toEqual({ initiatorName: HOST_A, targetArn: DOC_TARGET_ARN, secretToAuthenticateInitiator: mutual.secretToAuthenticateInitiator });
    expect(modeOf(oneWay)).toBe(ChapMode.ONE_WAY);
    expect(modeOf(mutual)).toBe(ChapMode.MUTUAL);
  });

  test('the same inputs give the same credentials (a retry sets no second set); any other input gives others', () => {
    const base = stackCredentials(seed(HOST_A), ChapMode.MUTUAL);
    expect(stackCredentials(seed(HOST_A), ChapMode.MUTUAL)).toEqual(base);
    const others = [
      stackCredentials(seed(HOST_A, 'another key'.padEnd(64, '!')), ChapMode.MUTUAL),
      stackCredentials(seed(HOST_B), ChapMode.MUTUAL),
      stackCredentials({ ...seed(HOST_A), secretArn: `${initiatorSecretArn(HOST_A)}x` }, ChapMode.MUTUAL), // declared again: a new secret
      stackCredentials({ ...seed(HOST_A), targetArn: DOC_TARGET_ARN.replace('myvolume', 'other') }, ChapMode.MUTUAL),
    ];
    for (const other of others) expect(other.secretToAuthenticateInitiator).not.toBe(base.secretToAuthenticateInitiator);
  });

  test.each([
    ['another target', { targetArn: numberedTargetArn(7) }],
    ['another initiator secret (a new declaration)', { secretArn: `${initiatorSecretArn(HOST_A)}x` }],
    ['a rotation', { rotation: TOKEN }],
    ['another rotation', { rotation: TOKEN.replace('1', '2') }],
  ])('%s: another initiator secret, the same target secret (one mutual secret per Windows machine across the stack)', (_, change) => {
    const base = stackCredentials(seed(HOST_A), ChapMode.MUTUAL);
    const other = stackCredentials({ ...seed(HOST_A), ...change }, ChapMode.MUTUAL);
    expect(other.secretToAuthenticateInitiator).not.toBe(base.secretToAuthenticateInitiator);
    expect(other.secretToAuthenticateTarget).toBe(base.secretToAuthenticateTarget);
  });

  test('the target secret differs between initiators and between stacks (keys)', () => {
    const base = stackCredentials(seed(HOST_A), ChapMode.MUTUAL).secretToAuthenticateTarget;
    expect(stackCredentials(seed(HOST_B), ChapMode.MUTUAL).secretToAuthenticateTarget).not.toBe(base);
    expect(stackCredentials(seed(HOST_A, 'another key'.padEnd(64, '!')), ChapMode.MUTUAL).secretToAuthenticateTarget).not.toBe(base);
  });

  test('a rotation is deterministic in its token: a redelivered step derives the same values', () => {
    expect(rotated(HOST_A, ChapMode.MUTUAL)).toEqual(rotated(HOST_A, ChapMode.MUTUAL));
    expect(rotated(HOST_A, ChapMode.ONE_WAY).secretToAuthenticateInitiator).toBe(rotated(HOST_A, ChapMode.MUTUAL).secretToAuthenticateInitiator);
  });

  test('characters are spread over the whole alphabet', () => {
    const targets = new Set<string>();
    const nonces = new Set<string>();
    const seals = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const p = stackCredentials({ ...seed(`${HOST_B}${i}`), secretArn: `arn:${i}` }, ChapMode.MUTUAL);
      for (const c of p.secretToAuthenticateTarget!) targets.add(c);
      for (const c of p.secretToAuthenticateInitiator.slice(0, -SEAL_LENGTH)) nonces.add(c);
      for (const c of p.secretToAuthenticateInitiator.slice(-SEAL_LENGTH)) seals.add(c);
    }
    expect([targets.size, nonces.size, seals.size]).toEqual([62, 62, 62]);
  });

  test('the stack recognises its own credentials in either mode, and nobody else\'s', () => {
    expect(setByStack(ours(HOST_A, ChapMode.MUTUAL), seed(HOST_A))).toBe(true);
    expect(setByStack(ours(HOST_A, ChapMode.ONE_WAY), seed(HOST_A))).toBe(true);
    expect(setByStack({ ...ours(HOST_A, ChapMode.ONE_WAY), secretToAuthenticateTarget: '' }, seed(HOST_A))).toBe(true); // empty = absent
    expect(setByStack(foreign(HOST_A, ChapMode.MUTUAL), seed(HOST_A))).toBe(false);
    expect(setByStack({ ...ours(HOST_A, ChapMode.MUTUAL), secretToAuthenticateTarget: secretValue() }, seed(HOST_A))).toBe(false);
    expect(setByStack(ours(HOST_A, ChapMode.MUTUAL), seed(HOST_A, 'x'.repeat(64)))).toBe(false);
  });

  test.each([
    ['before any rotation, mutual', () => ours(HOST_A, ChapMode.MUTUAL), true],
    ['after a rotation, mutual', () => rotated(HOST_A, ChapMode.MUTUAL), true],
    ['after a rotation, one-way', () => rotated(HOST_A, ChapMode.ONE_WAY), true],
    ['after many rotations', () => rotated(HOST_A, ChapMode.MUTUAL, 'f'.repeat(36)), true],
    ['a rotated pair of another initiator secret (an earlier declaration)',
      () => stackCredentials({ ...seed(HOST_A, KEY, TOKEN), secretArn: `${initiatorSecretArn(HOST_A)}x` }, ChapMode.MUTUAL), false],
    ['a rotated pair of the same initiator on another target', () => stackCredentials({ ...seed(HOST_A, KEY, TOKEN), targetArn: numberedTargetArn(3) }, ChapMode.MUTUAL), false],
    ['a rotated initiator secret with its seal changed', () => {
      const p = rotated(HOST_A, ChapMode.MUTUAL);
      const s = p.secretToAuthenticateInitiator;
      return { ...p, secretToAuthenticateInitiator: s.slice(0, -1) + (s.endsWith('A') ? 'B' : 'A') };
    }, false],
    ['a rotated initiator secret with a foreign target secret', () => ({ ...rotated(HOST_A, ChapMode.MUTUAL), secretToAuthenticateTarget: secretValue() }), false],
    ['foreign credentials of 16 characters', () => ({ ...foreign(HOST_A, ChapMode.ONE_WAY), secretToAuthenticateInitiator: 'A'.repeat(16) }), false],
  ])('recognised as the stack\'s without knowing the rotation: %s', (_, pair, expected) => {
    expect(setByStack(pair(), seed(HOST_A))).toBe(expected);
  });

  test('the seal is the last characters: nonce and seal both letters and digits', () => {
    const s = rotated(HOST_A, ChapMode.MUTUAL).secretToAuthenticateInitiator;
    expect(s).toHaveLength(GENERATED_SECRET_LENGTH);
    expect(SEAL_LENGTH).toBeLessThan(GENERATED_SECRET_LENGTH);
    expect(s).toMatch(/^[A-Za-z0-9]{16}$/);
  });
});

describe('plan', () => {
  const names = (pairs: readonly ChapPair[]) => pairs.map((p) => p.initiatorName);

  test.each([
    ['a declared initiator without credentials gets the stack\'s', { declared: [initiator(HOST_A)] }, { set: [HOST_A], keep: [], remove: [] }],
    ['one with credentials of the requested mode is adopted as it is',
      { declared: [initiator(HOST_A)], onGateway: [foreign(HOST_A, ChapMode.MUTUAL)] }, { set: [], keep: [HOST_A], remove: [] }],
    ['one with the stack\'s own credentials is kept',
      { declared: [initiator(HOST_A)], onGateway: [ours(HOST_A, ChapMode.MUTUAL)] }, { set: [], keep: [HOST_A], remove: [] }],
    ['one with the stack\'s credentials of the other mode gets the requested mode',
      { declared: [initiator(HOST_A)], onGateway: [ours(HOST_A, ChapMode.ONE_WAY)] }, { set: [HOST_A], keep: [], remove: [] }],
    ['undeclared initiators on the target are never touched',
      { declared: [initiator(HOST_A)], onGateway: [foreign(HOST_B, ChapMode.ONE_WAY), ours(HOST_C, ChapMode.MUTUAL)] },
      { set: [HOST_A], keep: [], remove: [] }],
    ['a leaving initiator loses the credentials the stack set', { leaving: [initiator(HOST_B)], onGateway: [ours(HOST_B, ChapMode.MUTUAL)] },
      { set: [], keep: [], remove: [HOST_B] }],
    ['a leaving initiator keeps adopted credentials', { leaving: [initiator(HOST_B)], onGateway: [foreign(HOST_B, ChapMode.MUTUAL)] },
      { set: [], keep: [], remove: [] }],
    ['... unless adopted ones are to be removed', { leaving: [initiator(HOST_B)], removeAdopted: true, onGateway: [foreign(HOST_B, ChapMode.MUTUAL)] },
      { set: [], keep: [], remove: [HOST_B] }],
    ['a leaving initiator without credentials needs nothing', { leaving: [initiator(HOST_B)] }, { set: [], keep: [], remove: [] }],
    ['a leaving initiator loses the stack\'s rotated credentials', { leaving: [initiator(HOST_B)], onGateway: [rotated(HOST_B, ChapMode.MUTUAL)] },
      { set: [], keep: [], remove: [HOST_B] }],
    ['one with the stack\'s rotated credentials is kept (an unchanged deploy after a rotation never reverts)',
      { declared: [initiator(HOST_A)], onGateway: [rotated(HOST_A, ChapMode.MUTUAL)] }, { set: [], keep: [HOST_A], remove: [] }],
    ['one with the stack\'s rotated credentials of the other mode gets the requested mode',
      { declared: [initiator(HOST_A)], onGateway: [rotated(HOST_A, ChapMode.ONE_WAY)] }, { set: [HOST_A], keep: [], remove: [] }],
    ['an initiator both leaving and declared stays', { declared: [initiator(HOST_B)], leaving: [initiator(HOST_B)], onGateway: [ours(HOST_B, ChapMode.MUTUAL)] },
      { set: [], keep: [HOST_B], remove: [] }],
  ])('%s', (_, input, expected) => {
    const result = plan(input as never);
    expect({ set: names(result.set), keep: result.keep, remove: result.remove }).toEqual(expected);
    expect(result.conflicts).toEqual([]);
    expect(writesGateway(result)).toBe(expected.set.length + expected.remove.length > 0);
  });

  test('credentials of the other mode that the stack did not set are a conflict, named in one line', () => {
    const result = plan({ declared: [initiator(HOST_A)], onGateway: [foreign(HOST_A, ChapMode.ONE_WAY)] });
    expect(result.set).toEqual([]);
    expect(result.conflicts).toEqual([
      `initiator ${HOST_A} has one-way CHAP credentials on target ${DOC_TARGET_ARN} that this stack did not set, and mutual was asked`,
    ]);
  });

  test('the set credentials are the derived ones of the requested mode', () => {
    const result = plan({ mode: ChapMode.ONE_WAY, declared: [initiator(HOST_A)] });
    expect(result.set).toEqual([ours(HOST_A, ChapMode.ONE_WAY)]);
  });

  test('an unchanged declaration writes nothing: the redeploy and redelivery case', () => {
    const onGateway = [ours(HOST_A, ChapMode.MUTUAL), foreign(HOST_B, ChapMode.MUTUAL)];
    const first = plan({ declared: [initiator(HOST_A), initiator(HOST_B)], onGateway });
    expect(writesGateway(first)).toBe(false);
  });

  test('the pairs after the plan: removed ones gone, set ones replaced, sorted', () => {
    const gateway = new Map([foreign(HOST_B, ChapMode.MUTUAL), ours(HOST_C, ChapMode.ONE_WAY)].map((p) => [p.initiatorName, p]));
    const result = plan({
      declared: [initiator(HOST_A), initiator(HOST_C)], leaving: [initiator(HOST_B)], removeAdopted: true, onGateway: [...gateway.values()],
    });
    expect(pairsAfter(gateway, result)).toEqual([ours(HOST_A, ChapMode.MUTUAL), ours(HOST_C, ChapMode.MUTUAL)]);
  });
});
