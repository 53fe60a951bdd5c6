/**
 * Secrets Manager rotation in the emulator, driven by the real AWS SDK v3 client over HTTP, with a rotation function
 * (invoked through the emulator's injected invoker) that implements the four steps as AWS's rotation templates do:
 * createSecret stores the new value under the event's token as AWSPENDING, setSecret puts it on "the service",
 * testSecret checks the service holds it, finishSecret moves AWSCURRENT.
 */
import {
  CancelRotateSecretCommand, CreateSecretCommand, DescribeSecretCommand, GetSecretValueCommand, ListSecretVersionIdsCommand,
  PutSecretValueCommand, RotateSecretCommand, RotateSecretCommandInput, SecretsManagerClient, UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { Emulator, RotationEvent, RotationStep, startEmulator } from '../local/emulator';
import { secretValue } from './fixtures';

const LAMBDA_ARN = 'arn:aws:lambda:us-east-1:111122223333:function:rotator';
const T1 = '11111111-1111-4111-8111-111111111111';
const T2 = '22222222-2222-4222-8222-222222222222';
const T3 = '33333333-3333-4333-8333-333333333333';
const DAY_MS = 86_400_000;

let emulator: Emulator;
let sm: SecretsManagerClient;
/** The open functions of every gate a test made. */
const gates: (() => void)[] = [];

beforeEach(async () => {
  emulator = await startEmulator();
  sm = new SecretsManagerClient({
    endpoint: emulator.endpoint, region: 'us-east-1', maxAttempts: 1,
    credentials: { accessKeyId: 'ASIALOCALEMULATOR000', secretAccessKey: 'local' },
  });
});

afterEach(async () => {
  // A test that failed half way may leave a rotation waiting at a gate: open them all so it can end.
  for (const open of gates.splice(0)) open();
  await emulator.secretsManager.settled();
  sm.destroy();
  await emulator.stop();
});

/** The error the SDK raised: its name, HTTP status and message. */
async function failure(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    const e = error as { name: string; message: string; $metadata: { httpStatusCode: number } };
    return { name: e.name, status: e.$metadata?.httpStatusCode, message: e.message };
  }
  throw new Error('expected the call to fail');
}

/** A promise the test opens, and one that tells when the function reached it. */
function gate() {
  let open!: () => void;
  let arrive!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const reached = new Promise<void>((resolve) => (arrive = resolve));
  gates.push(open);
  return { opened, open, reached, arrive };
}

interface FunctionOptions {
  /** Stop before this step until the gate opens. */
  readonly gate?: { readonly step: RotationStep } & ReturnType<typeof gate>;
  /** Throw in this step, this many times. */
  readonly fail?: { step: RotationStep; times: number };
  /** finishSecret does nothing (a broken function). */
  readonly skipFinish?: boolean;
  /** createSecret puts a value without reading first; `fresh` makes a new value each time (not idempotent). */
  readonly blindCreate?: 'same' | 'fresh';
}

/** A rotation function, run in-process through the real SDK client, as AWS's generic rotation template works. */
class RotationFunction {
  readonly events: RotationEvent[] = [];
  /** What the service the secret is for holds, per secret ARN. */
  readonly service = new Map<string, string>();
  serviceWrites = 0;
  /** What testSecret found for the pending version: its value, or the error name. */
  readonly testSecretSaw: string[] = [];
  private readonly made = new Map<string, string>();

  constructor(private readonly options: FunctionOptions = {}) {}

  readonly invoke = async (lambdaArn: string, event: RotationEvent): Promise<void> => {
    expect(lambdaArn).toBe(LAMBDA_ARN);
    this.events.push(event);
    const { Step: step, SecretId: arn, ClientRequestToken: token } = event;
    if (this.options.gate?.step === step) {
      this.options.gate.arrive();
      await this.options.gate.opened;
    }
    if (this.options.fail?.step === step && this.options.fail.times > 0) {
      this.options.fail.times--;
      throw new Error(`the service refused the ${step} call`);
    }
    // As the templates do: the token must be a version of the secret, and AWSPENDING unless already AWSCURRENT.
    const stages = (await sm.send(new DescribeSecretCommand({ SecretId: arn }))).VersionIdsToStages ?? {};
    if (!stages[token]) throw new Error(`Secret version ${token} has no stage for rotation of secret ${arn}.`);
    if (stages[token].includes('AWSCURRENT')) return;
    if (!stages[token].includes('AWSPENDING')) throw new Error(`Secret version ${token} not set as AWSPENDING for rotation of secret ${arn}.`);
    const pending = () => sm.send(new GetSecretValueCommand({ SecretId: arn, VersionId: token, VersionStage: 'AWSPENDING' }));
    switch (step) {
      case 'createSecret': {
        await sm.send(new GetSecretValueCommand({ SecretId: arn, VersionStage: 'AWSCURRENT' }));
        if (this.options.blindCreate) {
          const value = this.options.blindCreate === 'fresh' ? secretValue() : (this.made.get(token) ?? secretValue());
          this.made.set(token, value);
          await sm.send(new PutSecretValueCommand({ SecretId: arn, ClientRequestToken: token, SecretString: value, VersionStages: ['AWSPENDING'] }));
          return;
        }
        const found = await pending().catch((error: Error) => {
          if (error.name !== 'ResourceNotFoundException') throw error;
          return undefined;
        });
        if (!found) {
          await sm.send(new PutSecretValueCommand({
            SecretId: arn, ClientRequestToken: token, SecretString: secretValue(), VersionStages: ['AWSPENDING'], RotationToken: event.RotationToken,
          }));
        }
        return;
      }
      case 'setSecret': {
        const value = (await pending()).SecretString!;
        if (this.service.get(arn) !== value) {
          this.service.set(arn, value);
          this.serviceWrites++;
        }
        return;
      }
      case 'testSecret': {
        const found = await pending().catch((error: Error) => error);
        this.testSecretSaw.push(found instanceof Error ? found.name : found.SecretString!);
        // Secrets Manager's configuration test: a pending version createSecret never made has no value. Pass.
        if (found instanceof Error && found.name === 'ResourceNotFoundException') return;
        if (found instanceof Error) throw found;
        if (this.service.get(arn) !== found.SecretString) throw new Error('the service does not hold the pending value');
        return;
      }
      case 'finishSecret': {
        if (this.options.skipFinish) return;
        const current = Object.entries(stages).find(([, s]) => s.includes('AWSCURRENT'))![0];
        await sm.send(new UpdateSecretVersionStageCommand({
          SecretId: arn, VersionStage: 'AWSCURRENT', MoveToVersionId: token, RemoveFromVersionId: current,
        }));
        return;
      }
    }
  };
}

/** A secret holding a first value, its ARN, and a function plugged into the emulator. */
async function setUp(options: FunctionOptions = {}, redeliver: readonly RotationStep[] = []) {
  const first = secretValue();
  const { ARN, VersionId } = await sm.send(new CreateSecretCommand({ Name: 'iscsi/vol', SecretString: first, ClientRequestToken: 'f'.repeat(32) }));
  const fn = new RotationFunction(options);
  emulator.secretsManager.setRotationInvoker(fn.invoke, { redeliver });
  return { arn: ARN!, first, firstVersion: VersionId!, fn };
}

const rotate = (input: Partial<RotateSecretCommandInput> & { SecretId: string }) =>
  sm.send(new RotateSecretCommand({ RotationLambdaARN: LAMBDA_ARN, RotationRules: { AutomaticallyAfterDays: 30 }, ...input }));

const describe_ = (arn: string) => sm.send(new DescribeSecretCommand({ SecretId: arn }));

describe('RotateSecret runs the four steps', () => {
  test('the whole protocol: an AWSPENDING version without value, four steps in order with one token, AWSCURRENT moved', async () => {
    const g = gate();
    const { arn, first, firstVersion, fn } = await setUp({ gate: { step: 'createSecret', ...g } });
    const answer = await rotate({ SecretId: 'iscsi/vol', ClientRequestToken: T1 });
    expect(answer).toMatchObject({ ARN: arn, Name: 'iscsi/vol', VersionId: T1 });

    // Before createSecret: the new version exists, labelled AWSPENDING, with no value.
    await g.reached;
    expect((await describe_(arn)).VersionIdsToStages).toEqual({ [firstVersion]: ['AWSCURRENT'], [T1]: ['AWSPENDING'] });
    expect(await failure(sm.send(new GetSecretValueCommand({ SecretId: arn, VersionStage: 'AWSPENDING' })))).toMatchObject({
      name: 'ResourceNotFoundException', status: 400, message: "Secrets Manager can't find the specified secret value for staging label: AWSPENDING",
    });
    expect(await failure(sm.send(new GetSecretValueCommand({ SecretId: arn, VersionId: T1 })))).toMatchObject({ name: 'ResourceNotFoundException' });
    g.open();

    const record = await emulator.secretsManager.rotation(arn);
    expect(record).toMatchObject({ status: 'succeeded', kind: 'rotation', versionId: T1, reattempt: false });
    expect(fn.events.map((e) => e.Step)).toEqual(['createSecret', 'setSecret', 'testSecret', 'finishSecret']);
    // Every event names the secret by its full ARN (RotateSecret named it by name) and carries the same tokens.
    for (const event of fn.events) {
      expect(event).toEqual({ Step: event.Step, SecretId: arn, ClientRequestToken: T1, RotationToken: record.rotationToken });
    }
    expect(record.rotationToken).toMatch(/^[0-9a-f-]{36}$/);
    expect(record.rotationToken).not.toBe(T1);

    const current = await sm.send(new GetSecretValueCommand({ SecretId: arn }));
    expect(current.VersionId).toBe(T1);
    expect(current.SecretString).not.toBe(first);
    expect(fn.service.get(arn)).toBe(current.SecretString);
    expect((await sm.send(new GetSecretValueCommand({ SecretId: arn, VersionStage: 'AWSPREVIOUS' }))).SecretString).toBe(first);
    // AWSPENDING stays on the AWSCURRENT version: a finished rotation, so the next RotateSecret is accepted.
    expect((await describe_(arn)).VersionIdsToStages).toEqual({ [firstVersion]: ['AWSPREVIOUS'], [T1]: ['AWSPENDING', 'AWSCURRENT'] });
    expect(emulator.secretsManager.versions(arn)).toHaveLength(2);
    expect(emulator.secretsManager.rotationEvents.map((e) => e.eventName)).toEqual(['RotationStarted', 'RotationSucceeded']);

    await rotate({ SecretId: arn, ClientRequestToken: T2 });
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'succeeded', versionId: T2 });
    expect((await describe_(arn)).VersionIdsToStages).toEqual({ [T1]: ['AWSPREVIOUS'], [T2]: ['AWSPENDING', 'AWSCURRENT'] });
  });

  test('without a ClientRequestToken the SDK sends a UUID, which becomes the new version', async () => {
    const { arn } = await setUp();
    const { VersionId } = await rotate({ SecretId: arn });
    expect(VersionId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'succeeded', versionId: VersionId });
    expect((await sm.send(new GetSecretValueCommand({ SecretId: arn }))).VersionId).toBe(VersionId);
  });

  test('every step delivered twice: one new version, one write to the service, the same end state', async () => {
    const { arn, fn } = await setUp({}, ['createSecret', 'setSecret', 'testSecret', 'finishSecret']);
    await rotate({ SecretId: arn, ClientRequestToken: T1 });
    const record = await emulator.secretsManager.rotation(arn);
    expect(record.status).toBe('succeeded');
    expect(fn.events.map((e) => e.Step)).toEqual(['createSecret', 'createSecret', 'setSecret', 'setSecret', 'testSecret', 'testSecret',
      'finishSecret', 'finishSecret']);
    expect(record.invocations.every((i) => i.ok)).toBe(true);
    expect(emulator.secretsManager.versions(arn)).toHaveLength(2);
    expect(fn.serviceWrites).toBe(1);
    expect((await sm.send(new GetSecretValueCommand({ SecretId: arn }))).VersionId).toBe(T1);
  });

  test('a redelivered createSecret that puts the same value again under the token is ignored; another value is refused', async () => {
    const same = await setUp({ blindCreate: 'same' }, ['createSecret']);
    await rotate({ SecretId: same.arn, ClientRequestToken: T1 });
    expect(await emulator.secretsManager.rotation(same.arn)).toMatchObject({ status: 'succeeded' });
    expect(emulator.secretsManager.versions(same.arn)).toHaveLength(2);

    // A function that makes up a new value on every delivery cannot overwrite the version: the rotation fails.
    const fresh = new RotationFunction({ blindCreate: 'fresh' });
    emulator.secretsManager.setRotationInvoker(fresh.invoke, { redeliver: ['createSecret'] });
    const { ARN } = await sm.send(new CreateSecretCommand({ Name: 'other', SecretString: secretValue() }));
    await rotate({ SecretId: ARN!, ClientRequestToken: T2 });
    const record = await emulator.secretsManager.rotation(ARN!);
    expect(record).toMatchObject({ status: 'failed', error: expect.stringMatching(/^createSecret failed: .*You can't modify an existing version/) });
    expect(record.invocations.map((i) => [i.step, i.ok])).toEqual([['createSecret', true], ['createSecret', false]]);
  });
});

describe('a failed rotation', () => {
  test('leaves AWSPENDING and AWSCURRENT as they were, refuses another token, and converges when retried with the same token', async () => {
    const { arn, first, firstVersion, fn } = await setUp({ fail: { step: 'testSecret', times: 1 } });
    await rotate({ SecretId: arn, ClientRequestToken: T1 });
    const failed = await emulator.secretsManager.rotation(arn);
    expect(failed).toMatchObject({ status: 'failed', error: 'testSecret failed: the service refused the testSecret call' });
    expect(failed.invocations.map((i) => i.step)).toEqual(['createSecret', 'setSecret', 'testSecret']);
    expect(emulator.secretsManager.rotationEvents.map((e) => e.eventName)).toEqual(['RotationStarted', 'RotationFailed']);

    const described = await describe_(arn);
    expect(described.VersionIdsToStages).toEqual({ [firstVersion]: ['AWSCURRENT'], [T1]: ['AWSPENDING'] });
    expect(described.LastRotatedDate).toBeUndefined();
    expect((await sm.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString).toBe(first);
    const pendingValue = (await sm.send(new GetSecretValueCommand({ SecretId: arn, VersionStage: 'AWSPENDING' }))).SecretString;

    expect(await failure(rotate({ SecretId: arn, ClientRequestToken: T2 }))).toEqual({
      name: 'InvalidRequestException', status: 400, message: "A previous rotation isn't complete. That rotation will be reattempted.",
    });
    expect(await failure(rotate({ SecretId: arn }))).toMatchObject({ name: 'InvalidRequestException' });
    expect(emulator.secretsManager.versions(arn)).toHaveLength(2);

    const answer = await rotate({ SecretId: arn, ClientRequestToken: T1 });
    expect(answer.VersionId).toBe(T1);
    const retried = await emulator.secretsManager.rotation(arn);
    expect(retried).toMatchObject({ status: 'succeeded', versionId: T1, reattempt: true });
    expect(retried.invocations.map((i) => i.step)).toEqual(['createSecret', 'setSecret', 'testSecret', 'finishSecret']);
    // Converged: the value createSecret made the first time is the one that became current, in the same version.
    expect(await sm.send(new GetSecretValueCommand({ SecretId: arn }))).toMatchObject({ VersionId: T1, SecretString: pendingValue });
    expect(emulator.secretsManager.versions(arn)).toHaveLength(2);
    expect(fn.serviceWrites).toBe(1);
    expect((await describe_(arn)).LastRotatedDate).toBeInstanceOf(Date);
  });

  test('AWS reattempts an unfinished rotation by itself with its own token (reattemptRotation, runScheduledRotations)', async () => {
    const { arn } = await setUp({ fail: { step: 'setSecret', times: 2 } });
    await rotate({ SecretId: arn, ClientRequestToken: T1 });
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'failed' });
    emulator.secretsManager.reattemptRotation(arn);
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'failed', reattempt: true, versionId: T1 });
    // The schedule's date has not come: nothing starts. Once it has, the unfinished version is rotated to.
    expect(emulator.secretsManager.runScheduledRotations()).toEqual([]);
    const [scheduled] = emulator.secretsManager.runScheduledRotations(Date.now() / 1000 + 31 * 86_400);
    expect(scheduled).toMatchObject({ versionId: T1, reattempt: true });
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'succeeded', versionId: T1 });
    expect(emulator.secretsManager.versions(arn)).toHaveLength(2);
  });

  test('a function whose finishSecret does not move AWSCURRENT fails the rotation, and AWSPENDING stays in the way', async () => {
    const { arn, firstVersion } = await setUp({ skipFinish: true });
    await rotate({ SecretId: arn, ClientRequestToken: T1 });
    const record = await emulator.secretsManager.rotation(arn);
    expect(record).toMatchObject({ status: 'failed', error: `the rotation function did not move AWSCURRENT to version ${T1} in finishSecret` });
    expect(record.invocations.every((i) => i.ok)).toBe(true);
    expect((await sm.send(new GetSecretValueCommand({ SecretId: arn }))).VersionId).toBe(firstVersion);
    expect((await describe_(arn)).LastRotatedDate).toBeUndefined();
    expect(await failure(rotate({ SecretId: arn, ClientRequestToken: T2 }))).toMatchObject({ name: 'InvalidRequestException' });
  });
});

describe('RotateImmediately false tests the configuration', () => {
  test('only testSecret, for a fresh AWSPENDING version without value, which is removed afterwards', async () => {
    const g = gate();
    const { arn, first, firstVersion, fn } = await setUp({ gate: { step: 'testSecret', ...g } });
    const { VersionId } = await rotate({ SecretId: arn, ClientRequestToken: T1, RotateImmediately: false });
    expect(VersionId).toBe(T1);
    await g.reached;
    expect((await describe_(arn)).VersionIdsToStages).toEqual({ [firstVersion]: ['AWSCURRENT'], [T1]: ['AWSPENDING'] });
    g.open();
    const record = await emulator.secretsManager.rotation(arn);
    expect(record).toMatchObject({ status: 'succeeded', kind: 'configurationTest' });
    expect(fn.events).toEqual([{ Step: 'testSecret', SecretId: arn, ClientRequestToken: T1, RotationToken: record.rotationToken }]);
    expect(fn.testSecretSaw).toEqual(['ResourceNotFoundException']);
    expect(fn.serviceWrites).toBe(0);
    // The test version is gone; the value, the labels and LastRotatedDate are untouched; rotation is configured.
    expect(emulator.secretsManager.versions(arn).map((v) => v.versionId)).toEqual([firstVersion]);
    const described = await describe_(arn);
    expect(described).toMatchObject({ VersionIdsToStages: { [firstVersion]: ['AWSCURRENT'] }, RotationEnabled: true, RotationLambdaARN: LAMBDA_ARN });
    expect(described.LastRotatedDate).toBeUndefined();
    expect((await sm.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString).toBe(first);
    expect(emulator.secretsManager.rotationEvents.map((e) => e.eventName)).toEqual(['TestRotationStarted', 'TestRotationSucceeded']);

    // Configured: a later RotateSecret with no configuration rotates with the stored function.
    await sm.send(new RotateSecretCommand({ SecretId: arn, ClientRequestToken: T2 }));
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'succeeded', kind: 'rotation', versionId: T2, lambdaArn: LAMBDA_ARN });
  });

  test('a failing testSecret fails the test; its version is removed all the same', async () => {
    const { arn, firstVersion } = await setUp({ fail: { step: 'testSecret', times: 1 } });
    await rotate({ SecretId: arn, ClientRequestToken: T1, RotateImmediately: false });
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'failed', kind: 'configurationTest' });
    expect(emulator.secretsManager.versions(arn).map((v) => v.versionId)).toEqual([firstVersion]);
    expect(emulator.secretsManager.rotationEvents.map((e) => e.eventName)).toEqual(['TestRotationStarted', 'TestRotationFailed']);
  });
});

describe('interruptions', () => {
  test('a new AWSCURRENT value written during a rotation abandons it: AWSPENDING is cleared and no later step runs', async () => {
    const g = gate();
    const { arn, fn } = await setUp({ gate: { step: 'setSecret', ...g } });
    await rotate({ SecretId: arn, ClientRequestToken: T1 });
    await g.reached;
    const manual = secretValue();
    await sm.send(new PutSecretValueCommand({ SecretId: arn, SecretString: manual, ClientRequestToken: T2 }));
    g.open();
    const record = await emulator.secretsManager.rotation(arn);
    expect(record).toMatchObject({ status: 'abandoned' });
    // setSecret was already under way; it finds its version no longer AWSPENDING, and nothing runs after it.
    expect(fn.events.map((e) => e.Step)).toEqual(['createSecret', 'setSecret']);
    expect(fn.serviceWrites).toBe(0);
    expect(emulator.secretsManager.rotationEvents.map((e) => e.eventName)).toEqual(['RotationStarted', 'RotationAbandoned']);
    const described = await describe_(arn);
    expect(Object.values(described.VersionIdsToStages!).flat()).not.toContain('AWSPENDING');
    expect((await sm.send(new GetSecretValueCommand({ SecretId: arn }))).SecretString).toBe(manual);
    // The abandoned rotation is not in the way of the next one.
    await rotate({ SecretId: arn, ClientRequestToken: T3 });
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'succeeded', versionId: T3 });
  });

  test('CancelRotateSecret turns rotation off, stops before the next step, leaves the labels and names the unfinished version', async () => {
    const g = gate();
    const { arn, firstVersion, fn } = await setUp({ gate: { step: 'setSecret', ...g } });
    await rotate({ SecretId: arn, ClientRequestToken: T1 });
    await g.reached;
    expect(await sm.send(new CancelRotateSecretCommand({ SecretId: arn }))).toMatchObject({ ARN: arn, VersionId: T1 });
    g.open();
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'cancelled' });
    expect(fn.events.map((e) => e.Step)).toEqual(['createSecret', 'setSecret']);
    const described = await describe_(arn);
    expect(described).toMatchObject({
      RotationEnabled: false, RotationLambdaARN: LAMBDA_ARN, RotationRules: { AutomaticallyAfterDays: 30 },
      VersionIdsToStages: { [firstVersion]: ['AWSCURRENT'], [T1]: ['AWSPENDING'] },
    });
    expect(described.NextRotationDate).toBeUndefined();
    // Cleaning up as the API reference says lets rotation start again.
    await sm.send(new UpdateSecretVersionStageCommand({ SecretId: arn, VersionStage: 'AWSPENDING', RemoveFromVersionId: T1 }));
    await rotate({ SecretId: arn, ClientRequestToken: T2 });
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'succeeded', versionId: T2 });
  });
});

describe('UpdateSecretVersionStage', () => {
  async function threeVersions() {
    const { ARN } = await sm.send(new CreateSecretCommand({ Name: 's', SecretString: secretValue(), ClientRequestToken: T1 }));
    await sm.send(new PutSecretValueCommand({ SecretId: ARN, SecretString: secretValue(), ClientRequestToken: T2 }));
    await sm.send(new PutSecretValueCommand({ SecretId: ARN, SecretString: secretValue(), ClientRequestToken: T3, VersionStages: ['AWSPENDING'] }));
    return ARN!;
  }
  const stages = async (arn: string) => (await describe_(arn)).VersionIdsToStages;
  const move = (arn: string, VersionStage: string, MoveToVersionId?: string, RemoveFromVersionId?: string) =>
    sm.send(new UpdateSecretVersionStageCommand({ SecretId: arn, VersionStage, MoveToVersionId, RemoveFromVersionId }));

  test('moving AWSCURRENT makes its old version AWSPREVIOUS and takes AWSPREVIOUS off the one before', async () => {
    const arn = await threeVersions();
    expect(await stages(arn)).toEqual({ [T1]: ['AWSPREVIOUS'], [T2]: ['AWSCURRENT'], [T3]: ['AWSPENDING'] });
    expect(await move(arn, 'AWSCURRENT', T3, T2)).toMatchObject({ ARN: arn, Name: 's' });
    expect(await stages(arn)).toEqual({ [T2]: ['AWSPREVIOUS'], [T3]: ['AWSPENDING', 'AWSCURRENT'] });
    // T1 lost its last label: deprecated, listed only with IncludeDeprecated.
    expect((await sm.send(new ListSecretVersionIdsCommand({ SecretId: arn, IncludeDeprecated: true }))).Versions!.map((v) => v.VersionId))
      .toEqual([T1, T2, T3]);
  });

  test('a label attached elsewhere must be named in RemoveFromVersionId, and only with the version that has it', async () => {
    const arn = await threeVersions();
    expect(await failure(move(arn, 'AWSCURRENT', T3))).toEqual({
      name: 'InvalidParameterException', status: 400,
      message: `The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is currently attached to version ${T2}, `
        + 'so you must explicitly reference that version in RemoveFromVersionId.',
    });
    expect(await failure(move(arn, 'AWSCURRENT', T3, T1))).toMatchObject({
      name: 'InvalidParameterException', message: expect.stringContaining(`it must be set to the version that currently has the staging label ${T2}`),
    });
    expect(await failure(move(arn, 'AWSPENDING', undefined, T2))).toMatchObject({ name: 'InvalidParameterException' });
    expect(await stages(arn)).toEqual({ [T1]: ['AWSPREVIOUS'], [T2]: ['AWSCURRENT'], [T3]: ['AWSPENDING'] });
  });

  test('RemoveFromVersionId alone takes a label off; AWSCURRENT can only be moved; unknown versions and empty requests are refused', async () => {
    const arn = await threeVersions();
    await move(arn, 'AWSPENDING', undefined, T3);
    expect(await stages(arn)).toEqual({ [T1]: ['AWSPREVIOUS'], [T2]: ['AWSCURRENT'] });
    expect(await failure(move(arn, 'AWSCURRENT', undefined, T2))).toMatchObject({ name: 'InvalidParameterException' });
    expect(await failure(move(arn, 'AWSCURRENT', 'e'.repeat(32), T2))).toMatchObject({ name: 'ResourceNotFoundException' });
    expect(await failure(move(arn, 'AWSPENDING'))).toMatchObject({ name: 'InvalidParameterException' });
    expect(await failure(move(arn, 'AWSPENDING', 'short'))).toMatchObject({ name: 'ValidationException' });
    // A label of one's own moves like the others; on a version that already has it nothing changes.
    await move(arn, 'MINE', T1);
    await move(arn, 'MINE', T1);
    await move(arn, 'MINE', T3, T1);
    expect(await stages(arn)).toEqual({ [T1]: ['AWSPREVIOUS'], [T2]: ['AWSCURRENT'], [T3]: ['MINE'] });
    expect((await sm.send(new GetSecretValueCommand({ SecretId: arn }))).VersionId).toBe(T2);
  });
});

describe('GetSecretValue with VersionId and VersionStage', () => {
  test('both must name the same version', async () => {
    const { ARN } = await sm.send(new CreateSecretCommand({ Name: 's', SecretString: secretValue(), ClientRequestToken: T1 }));
    await sm.send(new PutSecretValueCommand({ SecretId: ARN, SecretString: secretValue(), ClientRequestToken: T2 }));
    expect(await sm.send(new GetSecretValueCommand({ SecretId: ARN, VersionId: T1, VersionStage: 'AWSPREVIOUS' }))).toMatchObject({ VersionId: T1 });
    expect(await sm.send(new GetSecretValueCommand({ SecretId: ARN, VersionId: T1 }))).toMatchObject({ VersionId: T1 });
    expect(await failure(sm.send(new GetSecretValueCommand({ SecretId: ARN, VersionId: T1, VersionStage: 'AWSCURRENT' }))))
      .toMatchObject({ name: 'ResourceNotFoundException', message: `Secrets Manager can't find the specified secret value for VersionId: ${T1}` });
  });
});

describe('DescribeSecret rotation fields', () => {
  test('absent before rotation is configured; set by RotateSecret; NextRotationDate counted from the last rotation', async () => {
    const { arn } = await setUp();
    const before = await describe_(arn);
    for (const field of ['RotationEnabled', 'RotationLambdaARN', 'RotationRules', 'LastRotatedDate', 'NextRotationDate'] as const) {
      expect(before[field]).toBeUndefined();
    }
    const changedBefore = before.LastChangedDate!.getTime();
    await rotate({ SecretId: arn, RotationRules: { AutomaticallyAfterDays: 7, Duration: '3h' } });
    await emulator.secretsManager.rotation(arn);
    const after = await describe_(arn);
    expect(after).toMatchObject({ RotationEnabled: true, RotationLambdaARN: LAMBDA_ARN, RotationRules: { AutomaticallyAfterDays: 7, Duration: '3h' } });
    const rotated = after.LastRotatedDate!.getTime();
    expect(Math.abs(rotated - Date.now())).toBeLessThan(60_000);
    expect(after.LastChangedDate!.getTime()).toBeGreaterThanOrEqual(changedBefore);
    // The window of the seventh day after the rotation: it opens at midnight UTC and closes after Duration.
    const midnight = Math.floor((rotated + 7 * DAY_MS) / DAY_MS) * DAY_MS;
    expect(after.NextRotationDate!.getTime()).toBe(midnight + 3 * 3_600_000);
    // ListSecrets carries the same fields.
    expect(emulator.secretsManager.ListSecrets({}).SecretList[0]).toMatchObject({ RotationEnabled: true, RotationLambdaARN: LAMBDA_ARN });
  });

  test('a manual value change restarts the schedule: NextRotationDate is counted from the write', async () => {
    const { arn } = await setUp();
    await rotate({ SecretId: arn, RotationRules: { ScheduleExpression: 'rate(10 days)' }, RotateImmediately: false });
    await emulator.secretsManager.rotation(arn);
    const secret = emulator.secretsManager.lookup(arn)!;
    secret.nextRotationDate = 0; // as if the schedule had been set long ago
    await sm.send(new PutSecretValueCommand({ SecretId: arn, SecretString: secretValue() }));
    const next = (await describe_(arn)).NextRotationDate!.getTime();
    expect(next).toBe(Math.floor((Date.now() + 10 * DAY_MS) / DAY_MS) * DAY_MS + DAY_MS);
  });

  test('a cron() schedule: the next matching window, closing after Duration', async () => {
    const { arn } = await setUp();
    await rotate({ SecretId: arn, RotationRules: { ScheduleExpression: 'cron(0 16 1,15 * ? *)', Duration: '2h' }, RotateImmediately: false });
    await emulator.secretsManager.rotation(arn);
    // Independently: the first 1st or 15th of a month at 16:00 UTC after now.
    const expected = new Date();
    expected.setUTCMinutes(0, 0, 0);
    do expected.setUTCHours(expected.getUTCHours() + 1);
    while (!(expected.getUTCHours() === 16 && [1, 15].includes(expected.getUTCDate())));
    expect((await describe_(arn)).NextRotationDate!.getTime()).toBe(expected.getTime() + 2 * 3_600_000);
  });
});

describe('refusals', () => {
  test.each([
    ['AutomaticallyAfterDays 0', { RotationRules: { AutomaticallyAfterDays: 0 } }, 'ValidationException',
      /Value '0' at 'rotationRules.automaticallyAfterDays' failed to satisfy constraint: Member must have value greater than or equal to 1/],
    ['AutomaticallyAfterDays 1001', { RotationRules: { AutomaticallyAfterDays: 1001 } }, 'ValidationException', /less than or equal to 1000/],
    ['both AutomaticallyAfterDays and ScheduleExpression', { RotationRules: { AutomaticallyAfterDays: 1, ScheduleExpression: 'rate(1 day)' } },
      'InvalidParameterException', /both AutomaticallyAfterDays and ScheduleExpression/],
    ['a rate under four hours', { RotationRules: { ScheduleExpression: 'rate(2 hours)' } }, 'InvalidParameterException', /every 4 hours at most/],
    ['a cron whose minutes are not 0', { RotationRules: { ScheduleExpression: 'cron(5 10 * * ? *)' } }, 'InvalidParameterException', /Minutes must be 0/],
    ['a cron with both day fields', { RotationRules: { ScheduleExpression: 'cron(0 10 * * MON *)' } }, 'InvalidParameterException', /exactly one of/],
    ['an expression that is neither', { RotationRules: { ScheduleExpression: 'every day' } }, 'InvalidParameterException', /must be rate/],
    ['a window past midnight', { RotationRules: { ScheduleExpression: 'cron(0 22 * * ? *)', Duration: '4h' } }, 'InvalidParameterException',
      /extend into the next UTC day/],
    ['a token under 32 characters', { ClientRequestToken: 'short' }, 'ValidationException', /at 'clientRequestToken'/],
  ])('RotateSecret with %s, changing nothing', async (_, input, name, message) => {
    const { arn, fn } = await setUp();
    const error = await failure(rotate({ SecretId: arn, ...input } as never));
    expect(error).toMatchObject({ name, status: 400 });
    expect(error.message).toMatch(message);
    expect((await describe_(arn)).RotationEnabled).toBeUndefined();
    expect(emulator.secretsManager.versions(arn)).toHaveLength(1);
    expect(emulator.secretsManager.rotations).toEqual([]);
    expect(fn.events).toEqual([]);
  });

  test('a function Secrets Manager may not invoke: AccessDeniedException, and nothing is stored or invoked', async () => {
    const { arn, fn } = await setUp();
    const asked: string[][] = [];
    emulator.secretsManager.setRotationInvoker(fn.invoke, { authorize: (lambdaArn, secretArn) => (asked.push([lambdaArn, secretArn]), false) });
    expect(await failure(rotate({ SecretId: 'iscsi/vol' }))).toEqual({
      name: 'AccessDeniedException', status: 400,
      message: 'Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal '
        + 'secretsmanager.amazonaws.com.',
    });
    expect(asked).toEqual([[LAMBDA_ARN, arn]]);
    // No invoker at all (no function to run) is refused the same way.
    emulator.secretsManager.setRotationInvoker(undefined);
    expect(await failure(rotate({ SecretId: arn }))).toMatchObject({ name: 'AccessDeniedException' });
    expect((await describe_(arn)).RotationEnabled).toBeUndefined();
    expect(emulator.secretsManager.versions(arn)).toHaveLength(1);
    expect(fn.events).toEqual([]);
    // Admitted, it works.
    emulator.secretsManager.setRotationInvoker(fn.invoke, { authorize: () => true });
    await rotate({ SecretId: arn });
    expect(await emulator.secretsManager.rotation(arn)).toMatchObject({ status: 'succeeded' });
  });

  test('no function configured or given; a missing secret; a secret marked for deletion', async () => {
    const { arn } = await setUp();
    expect(await failure(sm.send(new RotateSecretCommand({ SecretId: arn })))).toMatchObject({
      name: 'InvalidRequestException', message: expect.stringContaining("doesn't already have a Lambda function ARN configured"),
    });
    expect(await failure(rotate({ SecretId: 'missing' }))).toMatchObject({ name: 'ResourceNotFoundException' });
    emulator.secretsManager.DeleteSecret({ SecretId: arn });
    expect(await failure(rotate({ SecretId: arn }))).toMatchObject({ name: 'InvalidRequestException', message: expect.stringContaining('marked for deletion') });
    expect(emulator.secretsManager.rotations).toEqual([]);
  });

  test('a token of an existing version that is not the unfinished one is refused; a finished rotation\'s own token is answered again', async () => {
    const { arn, firstVersion } = await setUp();
    expect(await failure(rotate({ SecretId: arn, ClientRequestToken: firstVersion }))).toMatchObject({ name: 'ResourceExistsException' });
    await rotate({ SecretId: arn, ClientRequestToken: T1 });
    await emulator.secretsManager.rotation(arn);
    expect(await rotate({ SecretId: arn, ClientRequestToken: T1 })).toMatchObject({ VersionId: T1 });
    expect(emulator.secretsManager.rotations).toHaveLength(1);
    expect(emulator.secretsManager.versions(arn)).toHaveLength(2);
  });
});
