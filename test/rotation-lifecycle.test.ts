/**
 * Rotation end to end on the synthesized artifact: the bundled handler, run by the local CloudFormation driver as the
 * rotation function, against the emulator's Secrets Manager rotation (RotateSecret runs the four steps, redelivers
 * steps on request, tests the configuration) and its gateway, which counts connection closes. Each test ends with no
 * driver problem and no CHAP secret value in anything emitted.
 */
import { Duration } from 'aws-cdk-lib';
import { ChapCredentials, ChapCredentialsProps, ChapRotation } from '../lib';
import { RotationInvoker, RotationOptions, RotationStep } from '../local/emulator/secrets-manager';
import { DOC_TARGET_ARN, HOST_A, HOST_B } from './fixtures';
import { LocalCloud, STACK, assemblyText, removeAssemblies, synth } from './local-stack';

jest.setTimeout(120_000);

const HOST_C = 'iqn.1994-05.com.redhat:host-c';
let cloud: LocalCloud;
const assemblies: string[] = [];
const seen: string[] = [];

function rotating(initiators: string[], extra: Partial<ChapCredentialsProps> = {}): string {
  const dir = synth((stack) => {
    new ChapCredentials(stack, 'Chap', {
      targetArn: DOC_TARGET_ARN, initiators, manageCredentials: true, rotation: ChapRotation.every(Duration.days(30)), ...extra,
    });
  });
  assemblies.push(dir);
  return dir;
}

/**
 * Runs `beforeStep` before each rotation step reaches the function (a deploy or a refresh landing mid-rotation). The
 * emulator keeps its invoker (the driver's Lambda) private, so the test wraps it as it is.
 */
function beforeEachStep(beforeStep: (step: RotationStep) => Promise<void>) {
  const sm = cloud.emulator.secretsManager as unknown as { invoker: RotationInvoker; rotationOptions: RotationOptions };
  const { invoker, rotationOptions } = sm;
  cloud.emulator.secretsManager.setRotationInvoker(async (lambdaArn, event) => {
    await beforeStep(event.Step);
    return invoker(lambdaArn, event);
  }, rotationOptions);
}

const sm = () => cloud.emulator.secretsManager;
const gateway = () => cloud.emulator.storageGateway;
const functionArn = () => [...cloud.cfn.deployed.values()].find((r) => r.type === 'AWS::Lambda::Function')!.attributes.Arn as string;
const secretOf = (name: string) => cloud.secretArn(`ChapInitiator${name === HOST_A ? 'iqn199105' : name === HOST_B ? 'iqn199405comredhathostb' : 'iqn199405comredhathostc'}`);
const onGateway = (name: string) => {
  const c = gateway().targets.get(DOC_TARGET_ARN)?.get(name);
  if (c) seen.push(c.SecretToAuthenticateInitiator, c.SecretToAuthenticateTarget ?? '');
  return c && { ...c };
};
const gatewayWrites = () => cloud.emulator.calls.filter((c) => ['UpdateChapCredentials', 'DeleteChapCredentials'].includes(c.operation)).length;
const closes = () => gateway().connectionsClosed(DOC_TARGET_ARN);

/** Deploys, and waits for the configuration tests the rotation schedules started (Secrets Manager runs them afterwards). */
async function deploy(assembly: string): Promise<Awaited<ReturnType<LocalCloud['cfn']['deploy']>>> {
  const result = await cloud.cfn.deploy(assembly, STACK);
  await sm().settled();
  return result;
}

/** `aws secretsmanager rotate-secret` for the initiator's secret. */
const rotateNow = (name: string) => cloud.cfn.rotateSecret(secretOf(name));
/** Every secret of the construct equals the gateway. */
function expectInStep(names: string[]) {
  const pairs = [...gateway().targets.get(DOC_TARGET_ARN)!.values()].sort((a, b) => (a.InitiatorName < b.InitiatorName ? -1 : 1));
  const asStored = (c: (typeof pairs)[number]) => ({
    initiatorName: c.InitiatorName, targetArn: DOC_TARGET_ARN, secretToAuthenticateInitiator: c.SecretToAuthenticateInitiator,
    ...(c.SecretToAuthenticateTarget ? { secretToAuthenticateTarget: c.SecretToAuthenticateTarget } : {}),
  });
  for (const name of names) expect(JSON.parse(sm().current(secretOf(name))!)).toEqual(asStored(pairs.find((p) => p.InitiatorName === name)!));
  expect(cloud.secretValue('ChapTargetSecret')).toEqual({ targetArn: DOC_TARGET_ARN, chapCredentials: pairs.map(asStored) });
}

beforeEach(async () => {
  cloud = await LocalCloud.start();
  gateway().addTarget(DOC_TARGET_ARN, []);
});
afterEach(async () => {
  await cloud.finish(assemblies.map(assemblyText), seen);
  assemblies.length = 0;
  seen.length = 0;
});
afterAll(removeAssemblies);

test('the deploy configures rotation (a configuration test, no gateway write); a rotation writes once, closes once, keeps every secret in step', async () => {
  expect((await deploy(rotating([HOST_A, HOST_B]))).status).toBe('CREATE_COMPLETE');
  const [writes, closed] = [gatewayWrites(), closes()];
  expect(writes).toBe(2); // the Create's, one per initiator
  for (const name of [HOST_A, HOST_B]) {
    expect(await sm().rotation(secretOf(name))).toMatchObject({ status: 'succeeded', kind: 'configurationTest', lambdaArn: functionArn() });
  }
  expect(sm().rotations.every((r) => r.invocations.every((i) => i.step === 'testSecret'))).toBe(true);
  expect(cloud.emulator.calls.filter((c) => c.operation === 'DescribeChapCredentials').length).toBe(1); // the Create's read only

  const before = onGateway(HOST_A)!;
  const calls = cloud.emulator.calls.length;
  const record = await rotateNow(HOST_A);
  expect(record).toMatchObject({ status: 'succeeded', kind: 'rotation' });
  const after = onGateway(HOST_A)!;
  expect(after.SecretToAuthenticateInitiator).not.toBe(before.SecretToAuthenticateInitiator);
  expect(after.SecretToAuthenticateTarget).toBe(before.SecretToAuthenticateTarget);
  expect([gatewayWrites(), closes()]).toEqual([writes + 1, closed + 1]); // one write, one close per rotated initiator
  expect(cloud.emulator.calls.length - calls).toBe(24); // the function's calls (the README's figure)
  expectInStep([HOST_A, HOST_B]);
  expect(sm().DescribeSecret({ SecretId: secretOf(HOST_A) }).VersionIdsToStages![record.versionId]).toContain('AWSCURRENT');

  // After the rotation: an unchanged deploy writes nothing and never reverts.
  const settled = [gatewayWrites(), closes()];
  expect((await deploy(rotating([HOST_A, HOST_B]))).status).toBe('UPDATE_COMPLETE');
  expect((await cloud.cfn.updateUnchanged('ChapD702829D')).Status).toBe('SUCCESS');
  expect([gatewayWrites(), closes()]).toEqual(settled);
  expect(onGateway(HOST_A)).toEqual(after);
});

test('every step delivered twice: no extra gateway write, close or version', async () => {
  await deploy(rotating([HOST_A]));
  cloud.cfn.lambda.redeliverRotationSteps(['createSecret', 'setSecret', 'testSecret', 'finishSecret']);
  const [writes, closed, versions] = [gatewayWrites(), closes(), sm().versions(secretOf(HOST_A)).length];
  expect(await rotateNow(HOST_A)).toMatchObject({ status: 'succeeded' });
  expect([gatewayWrites(), closes(), sm().versions(secretOf(HOST_A)).length]).toEqual([writes + 1, closed + 1, versions + 1]);
  expectInStep([HOST_A]);
});

test('a failed rotation is retried with its token and converges; dropping an initiator and deleting the stack remove rotated credentials', async () => {
  await deploy(rotating([HOST_A, HOST_B, HOST_C]));
  cloud.emulator.inject('UpdateChapCredentials', { failAll: { type: 'InternalServerError', status: 500 }, only: { InitiatorName: HOST_A } });
  const failed = await rotateNow(HOST_A);
  expect(failed).toMatchObject({ status: 'failed' });
  cloud.emulator.clearFaults();
  const writes = gatewayWrites();
  sm().reattemptRotation(secretOf(HOST_A)); // what Secrets Manager does by itself in the rotation window
  expect(await sm().rotation(secretOf(HOST_A))).toMatchObject({ status: 'succeeded', versionId: failed.versionId, reattempt: true });
  expect(gatewayWrites()).toBe(writes + 1);
  for (const name of [HOST_B, HOST_C]) expect(await rotateNow(name)).toMatchObject({ status: 'succeeded' });
  expectInStep([HOST_A, HOST_B, HOST_C]);

  expect((await deploy(rotating([HOST_B, HOST_C]))).status).toBe('UPDATE_COMPLETE');
  expect(onGateway(HOST_A)).toBeUndefined();
  expect((await cloud.cfn.destroy()).status).toBe('DELETE_COMPLETE');
  expect(gateway().targets.get(DOC_TARGET_ARN)!.size).toBe(0);
});

const LANDINGS = (['setSecret', 'testSecret', 'finishSecret'] as const).flatMap((step) => (['Update', 'refresh'] as const).map((what) => [what, step] as const));
test.each(LANDINGS)('an unchanged %s landing before %s writes nothing to the gateway; every secret ends equal to it', async (what, landing) => {
  const assembly = rotating([HOST_A, HOST_B], { refresh: Duration.hours(1) });
  await deploy(assembly);
  const ruleId = [...cloud.cfn.deployed].find(([, r]) => r.type === 'AWS::Events::Rule')![0];
  let landedWrites = -1;
  beforeEachStep(async (step) => {
    if (step !== landing) return;
    const writes = gatewayWrites();
    // The custom resource's Update with unchanged properties (as a redeploy after a change elsewhere sends it), or the refresh.
    if (what === 'Update') expect((await cloud.cfn.updateUnchanged('ChapD702829D')).Status).toBe('SUCCESS');
    else expect((await cloud.cfn.fireRule(ruleId)).ended).toBe('returned');
    landedWrites = gatewayWrites() - writes;
  });
  const record = await rotateNow(HOST_A);
  expect(landedWrites).toBe(0);
  // Once setSecret has run, it copies the new credentials into AWSCURRENT, which abandons the rotation (Secrets
  // Manager's rule); before it, it writes nothing and the rotation completes.
  expect(record.status).toBe(landing === 'setSecret' ? 'succeeded' : 'abandoned');
  expectInStep([HOST_A, HOST_B]);
  // The stack still knows the credentials as its own: deleting it removes them.
  expect((await cloud.cfn.destroy()).status).toBe('DELETE_COMPLETE');
  expect(gateway().targets.get(DOC_TARGET_ARN)!.size).toBe(0);
});
