/**
 * The local driver's Secrets Manager rotation: AWS::Lambda::Permission records the function's resource policy,
 * AWS::SecretsManager::RotationSchedule configures rotation through the emulator's RotateSecret, and each rotation
 * step runs the function from its asset folder like any invocation, unless the policy does not admit
 * secretsmanager.amazonaws.com (with its SourceAccount / SourceArn conditions), which Secrets Manager (at RotateSecret)
 * and Lambda (at each step) refuse. The function here is a minimal rotation function of the test's own (a new value per
 * version, moved to AWSCURRENT in finishSecret), so the driver's part is tested apart from the construct's handler.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { LocalCloudFormation } from '../local/cloudformation';
import { AwsError, Emulator, startEmulator } from '../local/emulator';

jest.setTimeout(60_000);

const ROOT = path.join(__dirname, '..');
const STACK = 'Rotating';
const PRINCIPAL = 'secretsmanager.amazonaws.com';
const ACCESS_DENIED = 'Schedule: AccessDeniedException: Secrets Manager cannot invoke the specified Lambda function. '
  + 'Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.';

/** A rotation function: createSecret stores `rotated-<token>` as AWSPENDING (once), finishSecret moves AWSCURRENT to it. */
const ROTATOR = `
const sm = require('@aws-sdk/client-secrets-manager');
exports.handler = async (event) => {
  const client = new sm.SecretsManagerClient({});
  const { Step, SecretId, ClientRequestToken: token } = event;
  if (process.env.FAIL_STEP === Step) throw new Error('the ' + Step + ' step failed on purpose');
  if (Step === 'createSecret') {
    try {
      await client.send(new sm.GetSecretValueCommand({ SecretId, VersionId: token, VersionStage: 'AWSPENDING' }));
      return;
    } catch (error) {
      if (error.name !== 'ResourceNotFoundException') throw error;
    }
    await client.send(new sm.PutSecretValueCommand({ SecretId, ClientRequestToken: token, SecretString: 'rotated-' + token, VersionStages: ['AWSPENDING'] }));
  } else if (Step === 'finishSecret') {
    const described = await client.send(new sm.DescribeSecretCommand({ SecretId }));
    const current = Object.entries(described.VersionIdsToStages).find(([, stages]) => stages.includes('AWSCURRENT'))[0];
    if (current === token) return;
    await client.send(new sm.UpdateSecretVersionStageCommand({ SecretId, VersionStage: 'AWSCURRENT', MoveToVersionId: token, RemoveFromVersionId: current }));
  }
};
`;

interface Options {
  /** The permission's properties beyond the function, or none for no permission. */
  readonly permission?: Partial<lambda.CfnPermissionProps> | false;
  /** Whether the schedule depends on the permission. */
  readonly ordered?: boolean;
  readonly rotateImmediatelyOnUpdate?: boolean;
  readonly days?: number;
  readonly failStep?: string;
}

const dirs: string[] = [];
let codeDir: string;
let emulator: Emulator;
let cfn: LocalCloudFormation;

function synth(options: Options = {}): string {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'driver-rotation-'));
  dirs.push(outdir);
  const app = new App({ outdir });
  const stack = new Stack(app, STACK);
  const fn = new lambda.Function(stack, 'Rotator', {
    runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code: lambda.Code.fromAsset(codeDir),
    environment: options.failStep ? { FAIL_STEP: options.failStep } : undefined,
  });
  const secret = new secretsmanager.CfnSecret(stack, 'Secret', { secretString: 'initial' });
  const schedule = new secretsmanager.CfnRotationSchedule(stack, 'Schedule', {
    secretId: secret.ref, rotationLambdaArn: fn.functionArn, rotationRules: { automaticallyAfterDays: options.days ?? 30 },
    rotateImmediatelyOnUpdate: options.rotateImmediatelyOnUpdate,
  });
  if (options.permission !== false) {
    const permission = new lambda.CfnPermission(stack, 'Permission', {
      action: 'lambda:InvokeFunction', functionName: fn.functionArn, principal: PRINCIPAL, sourceAccount: stack.account, ...options.permission,
    });
    if (options.ordered ?? true) schedule.node.addDependency(permission);
  }
  app.synth();
  return outdir;
}

const deploy = (options?: Options) => cfn.deploy(synth(options), STACK);
const secretArn = () => cfn.deployed.get('Secret')!.physicalId;
const functionArn = () => [...cfn.deployed.values()].find((r) => r.type === 'AWS::Lambda::Function')!.attributes.Arn as string;
const current = () => emulator.secretsManager.GetSecretValue({ SecretId: secretArn() }).SecretString;
const steps = () => cfn.invocations.filter((i) => i.logicalId.startsWith('rotation:')).map((i) => i.event.Step);

beforeAll(() => {
  codeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'rotator-'));
  fs.writeFileSync(path.join(codeDir, 'index.js'), ROTATOR);
});

beforeEach(async () => {
  emulator = await startEmulator();
  cfn = await new LocalCloudFormation({ emulator, runtimeNodePath: path.join(ROOT, 'node_modules') }).start();
});

afterEach(async () => {
  await emulator.secretsManager.settled();
  expect(cfn.problems).toEqual([]);
  await cfn.stop();
  await emulator.stop();
});

afterAll(() => {
  for (const dir of [...dirs, codeDir]) fs.rmSync(dir, { recursive: true, force: true });
});

test('the permission is recorded on the function; the schedule configures rotation and rotates at once through the function', async () => {
  expect((await deploy()).status).toBe('CREATE_COMPLETE');
  expect(cfn.lambda.policy(functionArn())).toEqual([
    { sid: cfn.deployed.get('Permission')!.physicalId, functionArn: functionArn(), action: 'lambda:InvokeFunction', principal: PRINCIPAL, sourceAccount: emulator.account },
  ]);
  const record = await emulator.secretsManager.rotation(secretArn());
  expect(record).toMatchObject({ status: 'succeeded', kind: 'rotation', lambdaArn: functionArn() });
  expect(steps()).toEqual(['createSecret', 'setSecret', 'testSecret', 'finishSecret']);
  expect(current()).toBe(`rotated-${record.versionId}`);
  expect(emulator.secretsManager.DescribeSecret({ SecretId: secretArn() })).toMatchObject({
    RotationEnabled: true, RotationLambdaARN: functionArn(), RotationRules: { AutomaticallyAfterDays: 30 },
  });
  expect(cfn.deployed.get('Schedule')!.physicalId).toBe(secretArn());
});

test('rotateSecret rotates now with the configured function, as `aws secretsmanager rotate-secret` does', async () => {
  await deploy();
  const first = await emulator.secretsManager.rotation(secretArn());
  const again = await cfn.rotateSecret(secretArn());
  expect(again).toMatchObject({ status: 'succeeded' });
  expect(again.versionId).not.toBe(first.versionId);
  expect(current()).toBe(`rotated-${again.versionId}`);
});

test('a schedule not ordered after its permission is refused (created first, as CloudFormation may); ordered, it deploys', async () => {
  const unordered = await deploy({ ordered: false });
  expect(unordered).toMatchObject({ status: 'ROLLBACK_COMPLETE', reason: ACCESS_DENIED });
  expect(emulator.secretsManager.rotations).toEqual([]);
  expect((await deploy({ ordered: true })).status).toBe('CREATE_COMPLETE');
});

test.each<[string, Partial<lambda.CfnPermissionProps> | false]>([
  ['no permission', false],
  ['a permission for another principal', { principal: 'events.amazonaws.com' }],
  ['a permission for another SourceAccount', { sourceAccount: '999999999999' }],
  ['a permission whose SourceArn is another secret', { sourceAccount: undefined, sourceArn: 'arn:aws:secretsmanager:us-east-1:111122223333:secret:other-*' }],
])('%s: Secrets Manager refuses the schedule, nothing rotates', async (_, permission) => {
  expect(await deploy({ permission })).toMatchObject({ status: 'ROLLBACK_COMPLETE', reason: ACCESS_DENIED });
  expect(emulator.secretsManager.rotations).toEqual([]);
  expect(steps()).toEqual([]);
});

test('negative control: a permission whose SourceArn matches the secret (ArnLike) admits Secrets Manager', async () => {
  const result = await deploy({ permission: { sourceAccount: undefined, sourceArn: 'arn:aws:secretsmanager:us-east-1:111122223333:secret:Secret-*' } });
  expect(result.status).toBe('CREATE_COMPLETE');
  expect((await emulator.secretsManager.rotation(secretArn())).status).toBe('succeeded');
});

test('a permission on a function that does not exist fails as Lambda does', async () => {
  const result = await deploy({ permission: { functionName: 'no-such-function' } });
  expect(result).toMatchObject({
    status: 'ROLLBACK_COMPLETE', reason: `Permission: ResourceNotFoundException: Function not found: arn:aws:lambda:us-east-1:${emulator.account}:function:no-such-function`,
  });
});

test('a step whose function policy no longer admits Secrets Manager is refused by Lambda: the rotation fails, the function never runs', async () => {
  await deploy();
  await emulator.secretsManager.rotation(secretArn());
  const before = cfn.invocations.length;
  const started = emulator.secretsManager.RotateSecret({ SecretId: secretArn() });
  cfn.lambda.removePermission(cfn.deployed.get('Permission')!.physicalId); // before the first step runs
  const record = await emulator.secretsManager.rotation(secretArn(), started.VersionId);
  expect(record.status).toBe('failed');
  expect(record.error).toBe(`createSecret failed: AccessDeniedException: User: ${PRINCIPAL} is not authorized to perform: lambda:InvokeFunction `
    + `on resource: ${functionArn()} because no resource-based policy allows the lambda:InvokeFunction action`);
  expect(cfn.invocations.length).toBe(before);
  // Now RotateSecret itself refuses.
  expect(() => emulator.secretsManager.CancelRotateSecret({ SecretId: secretArn() })).not.toThrow();
  await expect(cfn.rotateSecret(secretArn())).rejects.toThrow(AwsError);
});

test('redelivered steps (each delivered twice, as Secrets Manager may) run the function twice each', async () => {
  cfn.lambda.redeliverRotationSteps(['createSecret', 'setSecret', 'testSecret', 'finishSecret']);
  await deploy();
  const record = await emulator.secretsManager.rotation(secretArn());
  expect(record.status).toBe('succeeded');
  expect(steps()).toEqual(['createSecret', 'createSecret', 'setSecret', 'setSecret', 'testSecret', 'testSecret', 'finishSecret', 'finishSecret']);
  expect(current()).toBe(`rotated-${record.versionId}`);
});

test('a function that fails a step fails the rotation with its error; the stack operation itself completes', async () => {
  expect((await deploy({ failStep: 'setSecret' })).status).toBe('CREATE_COMPLETE');
  const record = await emulator.secretsManager.rotation(secretArn());
  expect(record).toMatchObject({ status: 'failed', error: 'setSecret failed: Error: the setSecret step failed on purpose' });
  expect(current()).toBe('initial');
});

test('RotateImmediatelyOnUpdate false only tests the configuration (testSecret); the value stays', async () => {
  await deploy({ rotateImmediatelyOnUpdate: false });
  expect(await emulator.secretsManager.rotation(secretArn())).toMatchObject({ status: 'succeeded', kind: 'configurationTest' });
  expect(steps()).toEqual(['testSecret']);
  expect(current()).toBe('initial');
});

test('an update of the rules configures them again and rotates; deleting the stack turns rotation off and empties the policy', async () => {
  await deploy();
  await emulator.secretsManager.rotation(secretArn());
  expect((await deploy({ days: 7 })).status).toBe('UPDATE_COMPLETE');
  await emulator.secretsManager.settled();
  expect(emulator.secretsManager.DescribeSecret({ SecretId: secretArn() })).toMatchObject({ RotationRules: { AutomaticallyAfterDays: 7 } });
  expect(emulator.secretsManager.rotations.filter((r) => r.status === 'succeeded')).toHaveLength(2);
  const fnArn = functionArn();
  expect((await cfn.destroy()).status).toBe('DELETE_COMPLETE');
  expect(cfn.lambda.policy(fnArn)).toEqual([]);
});
