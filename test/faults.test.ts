/**
 * Faults around the handler, through the driver and the emulator on the synthesized artifact. None of these
 * depends on wall-clock timing: each asserts what was answered and what was written.
 */
import { CfnParameter } from 'aws-cdk-lib';
import { ChapCredentials } from '../lib';
import { DOC_TARGET_ARN, HOST_A } from './fixtures';
import { LocalCloud, STACK, removeAssemblies, synth } from './local-stack';

jest.setTimeout(60_000);
let cloud: LocalCloud;

afterEach(async () => {
  expect(cloud.cfn.problems).toEqual([]);
  await cloud.stop();
});
afterAll(removeAssemblies);

test('connection resets on every operation are retried until they pass', async () => {
  cloud = await LocalCloud.start();
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  for (const op of ['DescribeChapCredentials', 'GetSecretValue', 'PutSecretValue']) cloud.emulator.inject(op, { resets: 2 });
  const created = await cloud.cfn.deploy(synth({ targetArn: DOC_TARGET_ARN }), STACK);
  expect(created.status).toBe('CREATE_COMPLETE');
  expect(cloud.emulator.calls.filter((c) => c.errorType === 'ConnectionReset')).toHaveLength(6);
});

test('a ResponseURL that fails its first PUTs gets the response on a retry', async () => {
  cloud = await LocalCloud.start();
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  cloud.cfn.failResponsePuts = 2;
  const created = await cloud.cfn.deploy(synth({ targetArn: DOC_TARGET_ARN }), STACK);
  expect(created.status).toBe('CREATE_COMPLETE');
  expect(cloud.cfn.failResponsePuts).toBe(0);
  expect(cloud.cfn.invocations[0].responses).toHaveLength(1);
  expect(cloud.cfn.invocations[0].ended).toBe('returned');
});

test('the same event delivered twice writes once and answers the same both times', async () => {
  cloud = await LocalCloud.start({ deliverTwice: true });
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  const created = await cloud.cfn.deploy(synth({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A] }), STACK);
  expect(created.status).toBe('CREATE_COMPLETE');
  const [first, second] = cloud.cfn.invocations;
  expect(second.event.RequestId).toBe(first.event.RequestId);
  expect(second.responses[0].body).toEqual(first.responses[0].body);
  expect(cloud.emulator.callsOf('PutSecretValue', true)).toHaveLength(2); // target + initiator, once each
  expect(cloud.versionsOf('ChapTargetSecret')).toBe(2); // CloudFormation's placeholder, then one CHAP value
});

test('a token target ARN that resolves to something else fails clearly, and nothing is written', async () => {
  cloud = await LocalCloud.start();
  const assembly = synth((stack) => {
    const targetArn = new CfnParameter(stack, 'TargetArn', { default: 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-1/volume/vol-1' });
    new ChapCredentials(stack, 'Chap', { targetArn: targetArn.valueAsString });
  });
  const failed = await cloud.cfn.deploy(assembly, STACK);
  expect(failed.status).toBe('ROLLBACK_COMPLETE');
  expect(failed.reason).toMatch(/invalid properties: 'TargetArn' must be a Storage Gateway iSCSI target ARN .*, got 'arn:aws:storagegateway:us-east-1:111122223333:gateway\/sgw-1\/volume\/vol-1'/);
  expect(cloud.emulator.calls).toEqual([]);
});

test('a token initiator name that resolves to an invalid name fails clearly, before any AWS call', async () => {
  cloud = await LocalCloud.start();
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  const assembly = synth((stack) => {
    const host = new CfnParameter(stack, 'Host', { default: 'Not An IQN' });
    new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [host.valueAsString] });
  });
  const failed = await cloud.cfn.deploy(assembly, STACK);
  expect(failed.reason).toMatch(/'Initiators\[0\]\.Name' must be an iSCSI initiator name .*, got 'Not An IQN'/);
  expect(cloud.emulator.calls).toEqual([]);
});
