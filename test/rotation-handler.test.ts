/**
 * Rotation steps through the handler, with strict stubs: Secrets Manager and the gateway are small models behind
 * aws-sdk-client-mock (versions and stages as Secrets Manager keeps them; DescribeSecret allowed only on the rotated
 * secrets, as the role's policy allows it), and any command not stubbed fails the test. Each test starts from what a
 * managed Create left, made by the handler itself.
 */
import { randomUUID } from 'node:crypto';
import {
  DescribeSecretCommand, GetSecretValueCommand, PutSecretValueCommand, ResourceNotFoundException, SecretsManagerClient,
  SecretsManagerServiceException, UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import {
  DeleteChapCredentialsCommand, DescribeChapCredentialsCommand, InvalidGatewayRequestException, StorageGatewayClient, UpdateChapCredentialsCommand,
} from '@aws-sdk/client-storage-gateway';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { CREDENTIAL_KEY_ENV, ChapPair, ROTATION_TARGET_SECRET_TAG } from '../lib/api';
import { handler, onEvent, onRefresh } from '../lambda';
import { setByStack } from '../lambda/plan';
import { RotationStep, onRotation } from '../lambda/rotation';
import { DOC_TARGET_ARN, HOST_A, HOST_B, TARGET_SECRET_ARN, cfnEvent, declared, initiatorSecretArn, properties } from './fixtures';

const sgw = mockClient(StorageGatewayClient);
const sm = mockClient(SecretsManagerClient);

const KEY_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:ChapCredentialKey-KeY123';
const KEY = randomUUID().repeat(2);
const FOREIGN_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:SomeoneElse-AbC123';

interface Version { value?: string; stages: Set<string> }
interface Secret { versions: Map<string, Version>; tags: Record<string, string>; rotationEnabled: boolean }
const secrets = new Map<string, Secret>();
/** Secrets the role may DescribeSecret (its policy lists the rotated secrets only). */
const describable = new Set<string>();
const gateway = new Map<string, ChapPair>();
/** Gateway writes still to fail (as a busy gateway answers). */
let failingWrites = 0;
/** Runs before a PutSecretValue is stored (once), to interleave another rotation with a write under way. */
let beforePut: ((secretId: string) => Promise<void>) | undefined;
let logs: string[] = [];

function error(name: string, message = name) {
  return new SecretsManagerServiceException({ name, $fault: 'client', message, $metadata: { httpStatusCode: 400 } });
}
function secret(arn: string): Secret {
  if (!secrets.has(arn)) secrets.set(arn, { versions: new Map(), tags: {}, rotationEnabled: false });
  return secrets.get(arn)!;
}
function stageOn(s: Secret, stage: string): string | undefined {
  return [...s.versions].find(([, v]) => v.stages.has(stage))?.[0];
}
/** Moves a stage to `id`; AWSCURRENT leaves AWSPREVIOUS behind, as Secrets Manager does. */
function moveStage(s: Secret, stage: string, id: string) {
  const from = stageOn(s, stage);
  if (from === id) return;
  if (from) s.versions.get(from)!.stages.delete(stage);
  if (stage === 'AWSCURRENT' && from) {
    for (const v of s.versions.values()) v.stages.delete('AWSPREVIOUS');
    s.versions.get(from)!.stages.add('AWSPREVIOUS');
  }
  s.versions.get(id)!.stages.add(stage);
}
function current(arn: string): string | undefined {
  const s = secret(arn);
  const id = stageOn(s, 'AWSCURRENT');
  return id ? s.versions.get(id)!.value : undefined;
}
const currentPair = (arn: string) => JSON.parse(current(arn)!) as ChapPair;
const stagesOf = (arn: string) => Object.fromEntries([...secret(arn).versions]
  .filter(([, v]) => v.stages.size).map(([id, v]) => [id, [...v.stages].sort()]));

function givenModels() {
  sm.onAnyCommand().rejects(new Error('unexpected Secrets Manager command'));
  sgw.onAnyCommand().rejects(new Error('unexpected Storage Gateway command'));
  sm.on(DescribeSecretCommand).callsFake(({ SecretId }) => {
    if (!describable.has(SecretId)) throw error('AccessDeniedException', 'not authorized to perform secretsmanager:DescribeSecret');
    const s = secret(SecretId);
    return {
      ARN: SecretId, RotationEnabled: s.rotationEnabled, Tags: Object.entries(s.tags).map(([Key, Value]) => ({ Key, Value })),
      VersionIdsToStages: Object.fromEntries([...s.versions].map(([id, v]) => [id, [...v.stages]])),
    };
  });
  sm.on(GetSecretValueCommand).callsFake(({ SecretId, VersionId, VersionStage }) => {
    const s = secret(SecretId);
    const id = VersionId ?? stageOn(s, VersionStage ?? 'AWSCURRENT');
    const v = id ? s.versions.get(id) : undefined;
    if (v?.value === undefined) throw new ResourceNotFoundException({ message: 'no such version value', $metadata: {} });
    return { ARN: SecretId, VersionId: id, SecretString: v.value, VersionStages: [...v.stages] };
  });
  sm.on(PutSecretValueCommand).callsFake(async ({ SecretId, SecretString, ClientRequestToken, VersionStages }) => {
    const hook = beforePut;
    if (hook) {
      beforePut = undefined;
      await hook(SecretId);
    }
    const s = secret(SecretId);
    const id = ClientRequestToken ?? randomUUID();
    const existing = s.versions.get(id);
    if (existing?.value !== undefined) {
      if (existing.value !== SecretString) throw error('ResourceExistsException');
      return { ARN: SecretId, VersionId: id, VersionStages: [...existing.stages] };
    }
    if (!existing) s.versions.set(id, { value: SecretString, stages: new Set() });
    else existing.value = SecretString;
    for (const stage of VersionStages ?? ['AWSCURRENT']) moveStage(s, stage, id);
    return { ARN: SecretId, VersionId: id, VersionStages: [...s.versions.get(id)!.stages] };
  });
  sm.on(UpdateSecretVersionStageCommand).callsFake(({ SecretId, VersionStage, MoveToVersionId, RemoveFromVersionId }) => {
    const s = secret(SecretId);
    const holder = stageOn(s, VersionStage);
    if (holder && holder !== MoveToVersionId && holder !== RemoveFromVersionId) throw error('InvalidParameterException', 'the stage is on another version');
    moveStage(s, VersionStage, MoveToVersionId);
    return { ARN: SecretId };
  });
  sgw.on(DescribeChapCredentialsCommand).callsFake(({ TargetARN }) => ({
    ChapCredentials: [...gateway.values()].filter((p) => p.targetArn === TargetARN).map((p) => ({
      InitiatorName: p.initiatorName, TargetARN: p.targetArn, SecretToAuthenticateInitiator: p.secretToAuthenticateInitiator,
      ...(p.secretToAuthenticateTarget ? { SecretToAuthenticateTarget: p.secretToAuthenticateTarget } : {}),
    })),
  }));
  sgw.on(UpdateChapCredentialsCommand).callsFake((input) => {
    if (failingWrites > 0) {
      failingWrites--;
      throw new InvalidGatewayRequestException({ message: 'busy', error: { errorCode: 'GatewayInternalError' }, $metadata: { httpStatusCode: 400 } });
    }
    gateway.set(input.InitiatorName, {
      initiatorName: input.InitiatorName, targetArn: input.TargetARN, secretToAuthenticateInitiator: input.SecretToAuthenticateInitiator,
      ...(input.SecretToAuthenticateTarget ? { secretToAuthenticateTarget: input.SecretToAuthenticateTarget } : {}),
    });
    return {};
  });
  sgw.on(DeleteChapCredentialsCommand).callsFake(({ InitiatorName }) => {
    gateway.delete(InitiatorName);
    return {};
  });
}

const managedProps = (mode: string, ...names: string[]) => properties({ Initiators: declared(...names), Manage: mode, CredentialKeyArn: KEY_ARN });
const A = initiatorSecretArn(HOST_A);
const B = initiatorSecretArn(HOST_B);

/** What a managed Create of HOST_A and HOST_B leaves, with rotation configured on both initiator secrets. */
async function deployed(mode = 'mutual') {
  await onEvent(cfnEvent('Create', managedProps(mode, HOST_A, HOST_B)));
  for (const arn of [A, B]) {
    describable.add(arn);
    Object.assign(secret(arn), { rotationEnabled: true, tags: { [ROTATION_TARGET_SECRET_TAG]: TARGET_SECRET_ARN } });
  }
}

/** What Secrets Manager does before the first step: a version labelled AWSPENDING, without a value. */
function startRotation(arn: string): string {
  const token = randomUUID();
  secret(arn).versions.set(token, { stages: new Set(['AWSPENDING']) });
  return token;
}
const step = (Step: RotationStep, SecretId: string, ClientRequestToken: string) => onRotation({ Step, SecretId, ClientRequestToken });
async function rotate(arn: string, token = startRotation(arn)) {
  for (const s of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) await step(s, arn, token);
  return token;
}

const gatewayWrites = () => sgw.commandCalls(UpdateChapCredentialsCommand).length + sgw.commandCalls(DeleteChapCredentialsCommand).length;
/** Every call made since the last reset, by operation. */
const calls = () => [...sm.calls(), ...sgw.calls()].map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name.replace(/Command$/, ''));
const resetCalls = () => {
  sm.resetHistory();
  sgw.resetHistory();
};
/** Every secret of the construct equals what the gateway holds, and no AWSPENDING sits on a version that is not AWSCURRENT. */
function expectInStep() {
  for (const [arn, name] of [[A, HOST_A], [B, HOST_B]]) {
    expect(currentPair(arn)).toEqual(gateway.get(name));
    for (const stages of Object.values(stagesOf(arn))) if (stages.includes('AWSPENDING')) expect(stages).toContain('AWSCURRENT');
  }
  expect(JSON.parse(current(TARGET_SECRET_ARN)!)).toEqual({ targetArn: DOC_TARGET_ARN, chapCredentials: [gateway.get(HOST_A), gateway.get(HOST_B)] });
}

beforeEach(() => {
  sm.reset();
  sgw.reset();
  secrets.clear();
  describable.clear();
  gateway.clear();
  failingWrites = 0;
  beforePut = undefined;
  givenModels();
  secret(KEY_ARN).versions.set('key', { value: KEY, stages: new Set(['AWSCURRENT']) });
  process.env[CREDENTIAL_KEY_ENV] = KEY_ARN;
  logs = [];
  for (const level of ['log', 'info', 'warn', 'error'] as const) {
    jest.spyOn(console, level).mockImplementation((...args: unknown[]) => { logs.push(args.map(String).join(' ')); });
  }
});

afterEach(() => {
  // No CHAP secret value, set by a deploy or by a rotation, reaches a log line.
  const values = [...gateway.values()].flatMap((p) => [p.secretToAuthenticateInitiator, p.secretToAuthenticateTarget ?? '']).filter(Boolean);
  for (const value of values) expect(logs.join('\n')).not.toContain(value);
  delete process.env[CREDENTIAL_KEY_ENV];
  jest.restoreAllMocks();
});

describe('a rotation', () => {
  test('new initiator secret on the gateway (one write), the same target secret, every secret in step, AWSCURRENT on the new version', async () => {
    await deployed();
    const before = gateway.get(HOST_A)!;
    resetCalls();
    const token = await rotate(A);
    const after = gateway.get(HOST_A)!;
    expect(sgw.commandCalls(UpdateChapCredentialsCommand).map((c) => c.args[0].input.InitiatorName)).toEqual([HOST_A]);
    expect(after.secretToAuthenticateInitiator).not.toBe(before.secretToAuthenticateInitiator);
    expect(after.secretToAuthenticateTarget).toBe(before.secretToAuthenticateTarget); // one mutual secret per machine, kept
    expect(setByStack(after, { key: KEY, targetArn: DOC_TARGET_ARN, initiatorName: HOST_A, secretArn: A })).toBe(true);
    expectInStep();
    expect(stagesOf(A)[token]).toContain('AWSCURRENT');
    expect(Object.values(stagesOf(A)).filter((s) => s.includes('AWSPREVIOUS'))).toHaveLength(1);
    // The calls of one rotation: reads, one PutSecretValue of the pending version, one gateway write, the target secret, the stage.
    expect(calls().filter((c) => !['DescribeSecret', 'GetSecretValue', 'DescribeChapCredentials'].includes(c)).sort())
      .toEqual(['PutSecretValue', 'PutSecretValue', 'UpdateChapCredentials', 'UpdateSecretVersionStage']);
    expect(calls()).toHaveLength(24); // the README's figure (Costs)
  });

  test('one-way credentials stay one-way', async () => {
    await deployed('one-way');
    const before = gateway.get(HOST_B)!;
    await rotate(B);
    expect(gateway.get(HOST_B)!.secretToAuthenticateTarget).toBeUndefined();
    expect(gateway.get(HOST_B)!.secretToAuthenticateInitiator).not.toBe(before.secretToAuthenticateInitiator);
    expectInStep();
  });

  test('two rotations give two sets; after each, an unchanged deploy and a refresh write nothing', async () => {
    await deployed();
    const seen = new Set([gateway.get(HOST_A)!.secretToAuthenticateInitiator]);
    for (let n = 0; n < 2; n++) {
      await rotate(A);
      seen.add(gateway.get(HOST_A)!.secretToAuthenticateInitiator);
      resetCalls();
      await onEvent(cfnEvent('Update', managedProps('mutual', HOST_A, HOST_B)));
      await onRefresh({ ChapCredentialsRefresh: managedProps('mutual', HOST_A, HOST_B) }, `refresh-${n}`);
      expect(gatewayWrites()).toBe(0);
      expect(sm).not.toHaveReceivedCommand(PutSecretValueCommand);
      expectInStep();
    }
    expect(seen.size).toBe(3);
  });

  test('rotations of two initiators of one target interleaved: the target secret ends with both', async () => {
    await deployed();
    const [a, b] = [startRotation(A), startRotation(B)];
    for (const s of ['createSecret', 'setSecret', 'testSecret'] as const) {
      await step(s, A, a);
      await step(s, B, b);
    }
    await step('finishSecret', A, a);
    await step('finishSecret', B, b);
    expect(sgw).toHaveReceivedCommandTimes(UpdateChapCredentialsCommand, 2 + 2); // two at Create, one per rotation
    expectInStep();
  });

  test('a whole rotation of another initiator lands between one finishSecret\'s read and its write: the stale write is caught and redone', async () => {
    await deployed();
    const [a, b] = [startRotation(A), startRotation(B)];
    for (const s of ['createSecret', 'setSecret', 'testSecret'] as const) await step(s, A, a);
    await step('createSecret', B, b);
    // A's finishSecret read the gateway before B's credentials changed; B then rotates completely, then A's write lands.
    beforePut = async (secretId) => {
      expect(secretId).toBe(TARGET_SECRET_ARN);
      for (const s of ['setSecret', 'testSecret', 'finishSecret'] as const) await step(s, B, b);
    };
    await step('finishSecret', A, a);
    expect(beforePut).toBeUndefined(); // the interleaving happened
    expectInStep();
    expect(stagesOf(A)[a]).toContain('AWSCURRENT');
    expect(stagesOf(B)[b]).toContain('AWSCURRENT');
  });
});

describe('redelivery: every step may come twice', () => {
  test.each(['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const)('%s delivered twice: the same values, no second write or version', async (twice) => {
    await deployed();
    const token = startRotation(A);
    let rotationWrites = 0;
    for (const s of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) {
      resetCalls();
      await step(s, A, token);
      rotationWrites += gatewayWrites();
      if (s !== twice) continue;
      const state = JSON.stringify([[...gateway], stagesOf(A), current(TARGET_SECRET_ARN), secret(A).versions.size]);
      resetCalls();
      await step(s, A, token);
      expect(JSON.stringify([[...gateway], stagesOf(A), current(TARGET_SECRET_ARN), secret(A).versions.size])).toBe(state);
      expect(gatewayWrites()).toBe(0);
      expect(sm).not.toHaveReceivedCommand(PutSecretValueCommand);
      expect(sm).not.toHaveReceivedCommand(UpdateSecretVersionStageCommand);
      // What the redelivery cost: reads only.
      const cost: Record<string, string[]> = {
        createSecret: ['DescribeSecret', 'GetSecretValue', 'GetSecretValue'],
        setSecret: ['DescribeChapCredentials', 'DescribeSecret', 'GetSecretValue', 'GetSecretValue', 'GetSecretValue'],
        testSecret: ['DescribeChapCredentials', 'DescribeSecret', 'GetSecretValue', 'GetSecretValue'],
        finishSecret: ['DescribeSecret'],
      };
      expect(calls().sort()).toEqual(cost[twice]);
    }
    expect(rotationWrites).toBe(1);
    expectInStep();
  });

  test('after success, every step delivered again does nothing but DescribeSecret', async () => {
    await deployed();
    const token = await rotate(A);
    resetCalls();
    for (const s of ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const) await step(s, A, token);
    expect(calls()).toEqual(['DescribeSecret', 'DescribeSecret', 'DescribeSecret', 'DescribeSecret']);
  });

  test('a rotation whose gateway write failed, retried with the same token, converges with one write', async () => {
    await deployed();
    const token = startRotation(A);
    failingWrites = 1;
    await step('createSecret', A, token);
    await expect(step('setSecret', A, token)).rejects.toThrow(
      `UpdateChapCredentials failed for initiator ${HOST_A} on target ${DOC_TARGET_ARN}: InvalidGatewayRequestException (GatewayInternalError, HTTP 400)`);
    const failedState = currentPair(A);
    expect(gateway.get(HOST_A)).toEqual(failedState); // nothing changed: hosts keep working
    resetCalls();
    await rotate(A, token); // Secrets Manager retries the whole rotation with the same token
    expect(sgw).toHaveReceivedCommandTimes(UpdateChapCredentialsCommand, 1);
    expect(stagesOf(A)[token]).toContain('AWSCURRENT');
    expect(secret(A).versions.size).toBe(2); // the first value and the rotation's: no extra version
    expectInStep();
  });
});

describe('Secrets Manager\'s configuration test and failures', () => {
  test('testSecret for a pending version createSecret never made passes without touching the gateway', async () => {
    await deployed();
    const token = startRotation(A);
    resetCalls();
    await step('testSecret', A, token);
    expect(sgw).not.toHaveReceivedAnyCommand();
    expect(sm).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  test('testSecret fails, naming the secret, initiator and target, when the gateway does not hold the pending credentials', async () => {
    await deployed();
    const token = startRotation(A);
    await step('createSecret', A, token);
    await expect(step('testSecret', A, token)).rejects.toThrow(
      `testSecret failed for secret ${A}: target ${DOC_TARGET_ARN} does not hold the pending credentials of initiator ${HOST_A}`);
  });

  test('finishSecret fails when the gateway no longer holds the pending credentials, and moves nothing', async () => {
    await deployed();
    const token = startRotation(A);
    for (const s of ['createSecret', 'setSecret', 'testSecret'] as const) await step(s, A, token);
    gateway.set(HOST_A, { ...gateway.get(HOST_A)!, secretToAuthenticateInitiator: 'SomeoneElse1234' });
    await expect(step('finishSecret', A, token)).rejects.toThrow(`finishSecret failed for secret ${A}: target ${DOC_TARGET_ARN} no longer holds`);
    expect(stagesOf(A)[token]).toEqual(['AWSPENDING']);
  });
});

describe('refused before any gateway call', () => {
  test.each([
    ['a secret the role may not describe (not a rotated secret of this stack)', async () => {
      secret(FOREIGN_ARN).versions.set('x', { value: JSON.stringify(currentPair(A)), stages: new Set(['AWSCURRENT']) });
      return step('createSecret', FOREIGN_ARN, startRotation(FOREIGN_ARN));
    }, `DescribeSecret failed for secret ${FOREIGN_ARN}: AccessDeniedException (HTTP 400)`],
    ['the target secret', async () => step('createSecret', TARGET_SECRET_ARN, startRotation(TARGET_SECRET_ARN)),
      `DescribeSecret failed for secret ${TARGET_SECRET_ARN}: AccessDeniedException (HTTP 400)`],
    ['a describable secret without the tag', async () => {
      secret(A).tags = {};
      return step('createSecret', A, startRotation(A));
    }, `rotation refused for secret ${A}: it is not a rotated initiator secret of a ChapCredentials (no ${ROTATION_TARGET_SECRET_TAG} tag)`],
    ['a function without the credential key', async () => {
      delete process.env[CREDENTIAL_KEY_ENV];
      return step('createSecret', A, startRotation(A));
    }, `rotation refused for secret ${A}: this function holds no credential key`],
    ['a pending value not made by this stack\'s createSecret', async () => {
      const token = startRotation(A);
      const forged = { ...currentPair(A), secretToAuthenticateInitiator: 'Forged0123456789' };
      secret(A).versions.get(token)!.value = JSON.stringify(forged);
      return step('setSecret', A, token);
    }, `rotation refused for secret ${A}: its pending credentials were not made by this stack's createSecret`],
    ['a version that is not pending', async () => step('setSecret', A, randomUUID()), `secret ${A} has no version`],
  ])('%s', async (_, run, reason) => {
    await deployed();
    resetCalls();
    await expect(run()).rejects.toThrow(reason);
    expect(sgw).not.toHaveReceivedAnyCommand();
    expect(sm).not.toHaveReceivedCommand(PutSecretValueCommand);
  });
});

describe('the stack knows rotated credentials as its own', () => {
  test('dropping an initiator after its rotation removes its rotated credentials; deleting the stack removes the rest', async () => {
    await deployed();
    await rotate(A);
    await rotate(B);
    await onEvent(cfnEvent('Update', managedProps('mutual', HOST_B), { oldProps: managedProps('mutual', HOST_A, HOST_B) }));
    expect([...gateway.keys()]).toEqual([HOST_B]);
    await onEvent(cfnEvent('Delete', managedProps('mutual', HOST_B)));
    expect(gateway.size).toBe(0);
  });

  test('a rotation stopped after setSecret is still the stack\'s: the drop removes it', async () => {
    await deployed();
    const token = startRotation(A);
    await step('createSecret', A, token);
    await step('setSecret', A, token);
    await onEvent(cfnEvent('Delete', managedProps('mutual', HOST_A, HOST_B)));
    expect(gateway.size).toBe(0);
  });

  test.each([
    ['after createSecret', 1], ['after setSecret', 2], ['after testSecret', 3],
  ])('an unchanged deploy and a refresh landing %s write nothing to the gateway, and every secret ends equal to it', async (_, done) => {
    await deployed();
    const token = startRotation(A);
    const steps = ['createSecret', 'setSecret', 'testSecret', 'finishSecret'] as const;
    for (const s of steps.slice(0, done)) await step(s, A, token);
    const writes = gatewayWrites();
    await onEvent(cfnEvent('Update', managedProps('mutual', HOST_A, HOST_B)));
    await onRefresh({ ChapCredentialsRefresh: managedProps('mutual', HOST_A, HOST_B) }, `refresh-${done}`);
    expect(gatewayWrites()).toBe(writes);
    for (const s of steps.slice(done)) await step(s, A, token);
    expectInStep();
    expect(stagesOf(A)[token]).toContain('AWSCURRENT');
    expect(gatewayWrites()).toBe(2 + 1);
  });
});

describe('handler', () => {
  const context = { getRemainingTimeInMillis: () => 60_000, awsRequestId: 'invocation-1' } as Context;

  test('routes a rotation step, passes the RotationToken to PutSecretValue, logs the step and the outcome, never a value or that token', async () => {
    await deployed();
    const token = startRotation(A);
    const rotationToken = randomUUID();
    await handler({ Step: 'createSecret', SecretId: A, ClientRequestToken: token, RotationToken: rotationToken }, context);
    expect(sm).toHaveReceivedCommandWith(PutSecretValueCommand, { SecretId: A, ClientRequestToken: token, VersionStages: ['AWSPENDING'], RotationToken: rotationToken });
    expect(logs.join('\n')).not.toContain(rotationToken);
    expect(secret(A).versions.get(token)!.value).toBeDefined();
    expect(logs.join('\n')).toContain('"message":"rotation done"');
    expect(logs.join('\n')).not.toContain(JSON.parse(secret(A).versions.get(token)!.value!).secretToAuthenticateInitiator);
  });

  test('a failed step ends the invocation in error with a one-line reason (Secrets Manager sees the step fail)', async () => {
    await deployed();
    await expect(handler({ Step: 'createSecret', SecretId: FOREIGN_ARN, ClientRequestToken: randomUUID() }, context))
      .rejects.toThrow(`rotation failed: DescribeSecret failed for secret ${FOREIGN_ARN}: AccessDeniedException (HTTP 400)`);
    await expect(handler({ Step: 'rotate', SecretId: A, ClientRequestToken: randomUUID() } as never, context))
      .rejects.toThrow('rotation failed: unknown rotation step "rotate"');
  });
});
