/** The rotation's decisions, without any client (tables). The steps with clients are in rotation-handler.test.ts. */
import { ChapPair, ROTATION_TARGET_SECRET_TAG } from '../lib/api';
import { SecretDescription } from '../lambda/aws';
import {
  TARGET_SECRET_ROUNDS, currentVersion, gatewayHolds, isConfigurationTest, isRotationEvent, pendingPair, rotatedSecret, rotationEventError,
  targetSecretJson, targetSecretRound, versionState,
} from '../lambda/rotation';
import { DOC_TARGET_ARN, HOST_A, OTHER_TARGET_ARN, TARGET_SECRET_ARN, cfnEvent, initiatorSecretArn, secretValue } from './fixtures';

const ARN = initiatorSecretArn(HOST_A);
const KEY_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:ChapCredentialKey-KeY123';
const TOKEN = '11111111-2222-4333-8444-555555555555';
const describe_ = (overrides: Partial<SecretDescription> = {}): SecretDescription => ({
  arn: ARN, rotationEnabled: true, versionStages: { old: ['AWSCURRENT'], [TOKEN]: ['AWSPENDING'] },
  tags: { [ROTATION_TARGET_SECRET_TAG]: TARGET_SECRET_ARN }, ...overrides,
});
const pair = (overrides: Partial<ChapPair> = {}): ChapPair => ({
  initiatorName: HOST_A, targetArn: DOC_TARGET_ARN,
  secretToAuthenticateInitiator: secretValue(), secretToAuthenticateTarget: secretValue(), ...overrides,
});

describe('rotation events', () => {
  test.each([
    ['a rotation step', { Step: 'createSecret', SecretId: ARN, ClientRequestToken: TOKEN }, true],
    ['with a RotationToken', { Step: 'finishSecret', SecretId: ARN, ClientRequestToken: TOKEN, RotationToken: 'rt' }, true],
    ['a CloudFormation event', cfnEvent('Create'), false],
    ['a refresh event', { ChapCredentialsRefresh: {} }, false],
    ['null', null, false],
  ])('%s: %s', (_, event, expected) => {
    expect(isRotationEvent(event)).toBe(expected);
  });

  test.each([
    [{ Step: 'createSecret', SecretId: ARN, ClientRequestToken: TOKEN }, undefined],
    [{ Step: 'CreateSecret', SecretId: ARN, ClientRequestToken: TOKEN },
      'unknown rotation step "CreateSecret" (expected one of createSecret, setSecret, testSecret, finishSecret)'],
    [{ Step: 'setSecret', ClientRequestToken: TOKEN }, 'rotation event without a SecretId, got undefined'],
    [{ Step: 'setSecret', SecretId: ARN }, `rotation event for secret ${ARN} without a ClientRequestToken`],
  ])('%j: %s', (event, expected) => {
    expect(rotationEventError(event as never)).toBe(expected);
  });
});

describe('where the version stands', () => {
  test.each([
    ['the pending version: rotate', describe_(), { state: 'pending' }],
    ['already AWSCURRENT (a step delivered again after finishSecret): nothing to do',
      describe_({ versionStages: { old: ['AWSPREVIOUS'], [TOKEN]: ['AWSCURRENT', 'AWSPENDING'] } }), { state: 'current' }],
    ['rotation disabled', describe_({ rotationEnabled: false }), { refused: `rotation is not enabled for secret ${ARN}` }],
    ['an unknown version', describe_({ versionStages: { old: ['AWSCURRENT'] } }), { refused: `secret ${ARN} has no version ${TOKEN} to rotate` }],
    ['a version without AWSPENDING', describe_({ versionStages: { old: ['AWSCURRENT'], [TOKEN]: ['AWSPREVIOUS'] } }),
      { refused: `version ${TOKEN} of secret ${ARN} is not AWSPENDING` }],
  ])('%s', (_, description, expected) => {
    expect(versionState(description, TOKEN)).toEqual(expected);
  });

  test('AWSCURRENT moves away from the version holding it', () => {
    expect(currentVersion(describe_())).toBe('old');
    expect(currentVersion(describe_({ versionStages: {} }))).toBeUndefined();
  });
});

describe('which secrets the function rotates', () => {
  const current = pair();
  test.each([
    ['a tagged secret holding a pair, with the key known', describe_(), JSON.stringify(current), KEY_ARN,
      { secretArn: ARN, targetSecretArn: TARGET_SECRET_ARN, keyArn: KEY_ARN, current }],
    ['no credential key: the stack manages nothing', describe_(), JSON.stringify(current), undefined,
      { refused: `rotation refused for secret ${ARN}: this function holds no credential key (CHAP_CREDENTIAL_KEY_ARN): its stack manages no credentials` }],
    ['no tag naming the target secret', describe_({ tags: { other: 'x' } }), JSON.stringify(current), KEY_ARN,
      { refused: `rotation refused for secret ${ARN}: it is not a rotated initiator secret of a ChapCredentials (no ${ROTATION_TARGET_SECRET_TAG} tag)` }],
    ['a current value that is not a pair (the target secret\'s shape)', describe_(), JSON.stringify({ targetArn: DOC_TARGET_ARN, chapCredentials: [] }), KEY_ARN,
      { refused: `rotation refused for secret ${ARN}: its current value is not the CHAP credentials of an initiator` }],
    ['no current value', describe_(), undefined, KEY_ARN,
      { refused: `rotation refused for secret ${ARN}: its current value is not the CHAP credentials of an initiator` }],
    ['a current value that is not JSON', describe_(), 'placeholder', KEY_ARN,
      { refused: `rotation refused for secret ${ARN}: its current value is not the CHAP credentials of an initiator` }],
  ])('%s', (_, description, value, keyArn, expected) => {
    expect(rotatedSecret(description, value, keyArn)).toEqual(expected);
  });

  test('the pending value must be a pair of the same initiator and target', () => {
    const rotated = { secretArn: ARN, targetSecretArn: TARGET_SECRET_ARN, keyArn: KEY_ARN, current };
    const next = pair();
    expect(pendingPair(rotated, JSON.stringify(next), TOKEN)).toEqual(next);
    expect(pendingPair(rotated, undefined, TOKEN)).toEqual({
      refused: `version ${TOKEN} of secret ${ARN} holds no CHAP credentials (createSecret has not stored them)`,
    });
    expect(pendingPair(rotated, JSON.stringify(pair({ initiatorName: 'iqn.2000-01.com.example:other' })), TOKEN)).toEqual({
      refused: `version ${TOKEN} of secret ${ARN} holds credentials of another initiator or target than its current version`,
    });
  });
});

describe('test and finish decisions', () => {
  const pending = pair();
  const PAIRS = [pair(), pair({ initiatorName: 'iqn.1994-05.com.redhat:host-b' })];
  test.each([
    ['the configuration test: a pending version createSecret never filled', undefined, true],
    ['a pending value', JSON.stringify(pending), false],
  ])('%s', (_, value, expected) => {
    expect(isConfigurationTest(value)).toBe(expected);
  });

  test.each([
    ['the gateway holds the pending pair', { ...pending }, true],
    ['one-way: an empty target secret counts as none', { ...pending, secretToAuthenticateTarget: undefined }, false],
    ['the gateway holds the old pair', pair(), false],
    ['the gateway has no pair for the initiator', undefined, false],
  ])('%s', (_, onGateway, expected) => {
    expect(gatewayHolds(onGateway, pending)).toBe(expected);
  });

  test.each([
    ['already what the gateway holds', () => targetSecretJson(DOC_TARGET_ARN, PAIRS), 0, 'in-step'],
    ['older pairs', () => targetSecretJson(DOC_TARGET_ARN, [PAIRS[0]]), 0, 'write'],
    ['older pairs after a write made stale meanwhile', () => targetSecretJson(DOC_TARGET_ARN, [PAIRS[0]]), 1, 'write'],
    ['still not in step after every round', () => targetSecretJson(DOC_TARGET_ARN, [PAIRS[0]]), TARGET_SECRET_ROUNDS, 'give-up'],
    ['no value yet', () => undefined, 0, 'write'],
    ['the secret of another target (a wrong tag)', () => targetSecretJson(OTHER_TARGET_ARN, PAIRS), 0, 'other-target'],
  ])('finishSecret and the target secret: %s', (_, value, round, expected) => {
    expect(targetSecretRound(value(), DOC_TARGET_ARN, PAIRS, round)).toBe(expected);
  });

  test('the target secret is written as a deploy writes it', () => {
    const pairs = [pair(), pair({ initiatorName: 'iqn.1994-05.com.redhat:host-b' })];
    expect(JSON.parse(targetSecretJson(DOC_TARGET_ARN, pairs))).toEqual({ targetArn: DOC_TARGET_ARN, chapCredentials: pairs });
  });
});
