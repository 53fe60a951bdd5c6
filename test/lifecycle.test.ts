/**
 * The whole lifecycle on the synthesized artifact: the bundled handler in cdk.out, run by the local CloudFormation
 * driver, calling the emulator through the real AWS SDK over HTTP on 127.0.0.1. Each test starts from a clean
 * emulator; the driver checks every response (ids, 4096 bytes, flat Data) and each test ends with no problem found.
 */
import { CfnOutput, RemovalPolicy } from 'aws-cdk-lib';
import { ChapCredentials } from '../lib';
import { DOC_TARGET_ARN, HOST_A, HOST_B, OTHER_TARGET_ARN } from './fixtures';
import { LocalCloud, STACK, assemblyText, removeAssemblies, synth } from './local-stack';

jest.setTimeout(60_000);

const HOST_C = 'iqn.1994-05.com.redhat:host-c';
let cloud: LocalCloud;
const assemblies: string[] = [];

function synthesized(...args: Parameters<typeof synth>): string {
  const dir = synth(...args);
  assemblies.push(dir);
  return dir;
}

beforeEach(async () => {
  cloud = await LocalCloud.start();
});

afterEach(async () => {
  // Containment: no secret value the gateway handed out is in any event, response, handler log or template file.
  await cloud.finish(assemblies.map(assemblyText));
  assemblies.length = 0;
});

afterAll(removeAssemblies);

const outputOf = (outputs: Record<string, string>) => Object.entries(outputs).find(([k]) => k.startsWith('ChapInitiatorNames'))?.[1];

test('create stores every pair, publishes the names, and delete removes the secrets without calling AWS', async () => {
  const pairs = [cloud.credential(HOST_B), cloud.credential(HOST_A)];
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, pairs);
  const created = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN }), STACK);
  expect(created.status).toBe('CREATE_COMPLETE');
  expect(outputOf(created.outputs)).toBe(`${HOST_A},${HOST_B}`);
  expect(cloud.secretValue('ChapTargetSecret')).toEqual({
    targetArn: DOC_TARGET_ARN,
    chapCredentials: [pairs[1], pairs[0]].map((p) => ({
      initiatorName: p.InitiatorName, targetArn: DOC_TARGET_ARN,
      secretToAuthenticateInitiator: p.SecretToAuthenticateInitiator, secretToAuthenticateTarget: p.SecretToAuthenticateTarget,
    })),
  });

  const callsBefore = cloud.emulator.calls.length;
  const deleted = await cloud.cfn.destroy();
  expect(deleted.status).toBe('DELETE_COMPLETE');
  expect(cloud.emulator.calls.length).toBe(callsBefore);
  expect(cloud.cfn.invocations.at(-1)!.event.RequestType).toBe('Delete');
  expect(cloud.emulator.secretsManager.secrets.size).toBe(0);
});

test('an update after the gateway changed writes the new values; the old ones become AWSPREVIOUS', async () => {
  const before = cloud.credential(HOST_A);
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [before, cloud.credential(HOST_B)]);
  await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN }), STACK);
  const oldValue = cloud.secretValue('ChapTargetSecret');

  const after = cloud.credential(HOST_A);
  cloud.emulator.storageGateway.UpdateChapCredentials({ TargetARN: DOC_TARGET_ARN, ...after });
  const updated = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A] }), STACK);
  expect(updated.status).toBe('UPDATE_COMPLETE');
  const stored = cloud.secretValue('ChapTargetSecret') as { chapCredentials: { secretToAuthenticateInitiator: string }[] };
  expect(stored.chapCredentials[0].secretToAuthenticateInitiator).toBe(after.SecretToAuthenticateInitiator);
  expect((cloud.secretValue('ChapInitiator') as { secretToAuthenticateTarget: string }).secretToAuthenticateTarget).toBe(after.SecretToAuthenticateTarget);
  const previous = cloud.emulator.secretsManager.versions(cloud.secretArn('ChapTargetSecret')).find((v) => v.stages.has('AWSPREVIOUS'))!;
  expect(JSON.parse(previous.secretString!)).toEqual(oldValue);
});

test('an update with nothing changed on the gateway creates no new version of the target secret', async () => {
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A), cloud.credential(HOST_B)]);
  await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A] }), STACK);
  const versions = cloud.versionsOf('ChapTargetSecret');
  const hostVersions = cloud.versionsOf('ChapInitiator');
  // Declaring one more initiator changes the resource's properties, so CloudFormation sends an Update.
  const updated = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B] }), STACK);
  expect(updated.status).toBe('UPDATE_COMPLETE');
  expect(cloud.cfn.invocations.at(-1)!.event.RequestType).toBe('Update');
  expect(cloud.versionsOf('ChapTargetSecret')).toBe(versions);
  expect(cloud.versionsOf('ChapInitiatoriqn199105')).toBe(hostVersions);
  expect(cloud.emulator.callsOf('PutSecretValue', true).length).toBe(3); // create: target + HOST_A; update: HOST_B only
});

test('a new target ARN replaces the resource: the new pairs are stored and the old physical id gets its Delete', async () => {
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  cloud.emulator.storageGateway.addTarget(OTHER_TARGET_ARN, [cloud.credential(HOST_B)]);
  await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN }), STACK);
  const updated = await cloud.cfn.deploy(synthesized({ targetArn: OTHER_TARGET_ARN }), STACK);
  expect(updated.status).toBe('UPDATE_COMPLETE');
  expect(outputOf(updated.outputs)).toBe(HOST_B);
  expect((cloud.secretValue('ChapTargetSecret') as { targetArn: string }).targetArn).toBe(OTHER_TARGET_ARN);
  const events = cloud.cfn.invocations.map((i) => [i.event.RequestType, i.event.PhysicalResourceId]);
  expect(events).toEqual([['Create', undefined], ['Update', `chap:${DOC_TARGET_ARN}`], ['Delete', `chap:${DOC_TARGET_ARN}`]]);
  expect(cloud.cfn.invocations[1].responses[0].body!.PhysicalResourceId).toBe(`chap:${OTHER_TARGET_ARN}`);
});

test('stack delete keeps the secrets whose DeletionPolicy is Retain', async () => {
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A], removalPolicy: RemovalPolicy.RETAIN }), STACK);
  expect((await cloud.cfn.destroy()).status).toBe('DELETE_COMPLETE');
  const kept = [...cloud.emulator.secretsManager.secrets.values()];
  expect(kept).toHaveLength(2);
  expect(kept.every((s) => s.deletedDate === undefined)).toBe(true);
});

test('a stack deleted and created again with the same secret names deploys cleanly', async () => {
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  const assembly = synthesized({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A], secretName: 'iscsi/myvolume' });
  expect((await cloud.cfn.deploy(assembly, STACK)).status).toBe('CREATE_COMPLETE');
  expect((await cloud.cfn.destroy()).status).toBe('DELETE_COMPLETE');
  const again = await cloud.cfn.deploy(assembly, STACK);
  expect(again.status).toBe('CREATE_COMPLETE');
  expect([...cloud.emulator.secretsManager.secrets.keys()].sort()).toEqual(['iscsi/myvolume', 'iscsi/myvolume/iqn.1991-05.com.microsoft_computername.domain.example.com']);
});

test('one-way CHAP and an empty credential list are normal results', async () => {
  const oneWay = cloud.credential(HOST_A, true);
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [oneWay]);
  cloud.emulator.storageGateway.addTarget(OTHER_TARGET_ARN, []);
  const created = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN }, { targetArn: OTHER_TARGET_ARN }), STACK);
  expect(created.status).toBe('CREATE_COMPLETE');
  expect(Object.values(created.outputs).sort()).toEqual(['+none', HOST_A]);
  expect(cloud.secretValue('Chap0TargetSecret')).toEqual({
    targetArn: DOC_TARGET_ARN,
    chapCredentials: [{ initiatorName: HOST_A, targetArn: DOC_TARGET_ARN, secretToAuthenticateInitiator: oneWay.SecretToAuthenticateInitiator }],
  });
  expect(cloud.secretValue('Chap1TargetSecret')).toEqual({ targetArn: OTHER_TARGET_ARN, chapCredentials: [] });
});

test('declared initiators present on the target get their own secrets; a missing one fails the deploy, naming it', async () => {
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A), cloud.credential(HOST_B)]);
  const ok = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B] }), STACK);
  expect(ok.status).toBe('CREATE_COMPLETE');
  expect((cloud.secretValue('ChapInitiatoriqn199405') as { initiatorName: string }).initiatorName).toBe(HOST_B);
  await cloud.cfn.destroy();

  const failed = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_C] }), STACK);
  expect(failed.status).toBe('ROLLBACK_COMPLETE');
  expect(failed.reason).toMatch(new RegExp(`declared initiator\\(s\\) ${HOST_C} have no CHAP credentials on target ${DOC_TARGET_ARN}`));
  // The rollback's Delete for the failed resource succeeds, and its secrets are gone.
  const rollbackDelete = cloud.cfn.invocations.at(-1)!;
  expect(rollbackDelete.event.RequestType).toBe('Delete');
  expect(rollbackDelete.responses[0].body!.Status).toBe('SUCCESS');
  expect(cloud.emulator.secretsManager.secrets.size).toBe(0);
});

test('the driver reports an attribute the template reads that the response Data lacks', async () => {
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  const assembly = synthesized((stack) => {
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN });
    new CfnOutput(stack, 'Missing', { value: chap.resource.getAttString('NotInData') });
  });
  const result = await cloud.cfn.deploy(assembly, STACK);
  // As in CloudFormation, the stack fails and rolls back ("Vendor response doesn't contain NotInData key").
  expect(result.status).toBe('ROLLBACK_COMPLETE');
  expect(result.reason).toMatch(/reads attribute NotInData/);
  expect(cloud.cfn.problems).toEqual(expect.arrayContaining([expect.stringMatching(/the template reads attribute NotInData of Chap\w+, which its response's Data lacks/)]));
  cloud.cfn.problems.length = 0; // seen; the afterEach check is for everything else
});

test('an unknown target fails with the operation, the target and the AWS error code', async () => {
  const failed = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN }), STACK);
  expect(failed.status).toBe('ROLLBACK_COMPLETE');
  expect(failed.reason).toMatch(`DescribeChapCredentials failed for target ${DOC_TARGET_ARN}: InvalidGatewayRequestException (TargetNotFound, HTTP 400)`);
});

describe('faults', () => {
  test('throttling on every operation is retried until it passes', async () => {
    cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
    for (const op of ['DescribeChapCredentials', 'GetSecretValue', 'PutSecretValue']) cloud.emulator.inject(op, { throttle: 2 });
    const created = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A] }), STACK);
    expect(created.status).toBe('CREATE_COMPLETE');
    for (const op of ['DescribeChapCredentials', 'GetSecretValue', 'PutSecretValue']) {
      expect(cloud.emulator.callsOf(op).filter((c) => c.errorType === 'ThrottlingException')).toHaveLength(2);
    }
    expect(cloud.emulator.callsOf('PutSecretValue', true)).toHaveLength(2);
  });

  test('bursts of 5xx answers are retried until they pass', async () => {
    cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
    for (const op of ['DescribeChapCredentials', 'GetSecretValue', 'PutSecretValue']) cloud.emulator.inject(op, { serverErrors: 3 });
    const created = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN }), STACK);
    expect(created.status).toBe('CREATE_COMPLETE');
    expect(cloud.emulator.calls.filter((c) => c.status >= 500).map((c) => c.status).sort()).toEqual([500, 500, 500, 502, 502, 502, 503, 503, 503]);
  });

  test('errors that outlast the retries fail the deploy with the last AWS error code', async () => {
    cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
    cloud.emulator.inject('DescribeChapCredentials', { failAll: { type: 'ServiceUnavailable', status: 503 } });
    const failed = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN }), STACK);
    expect(failed.reason).toMatch(`DescribeChapCredentials failed for target ${DOC_TARGET_ARN}: ServiceUnavailable (HTTP 503)`);
    expect(cloud.emulator.callsOf('DescribeChapCredentials')).toHaveLength(6);
  });

  test('an API slower than the function timeout is answered FAILED before the function times out', async () => {
    await cloud.stop();
    cloud = await LocalCloud.start({ functionTimeoutSeconds: 3 });
    cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
    cloud.emulator.inject('DescribeChapCredentials', { hang: true });
    const failed = await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN }), STACK);
    expect(failed.status).toBe('ROLLBACK_COMPLETE');
    const create = cloud.cfn.invocations[0];
    expect(create.ended).toBe('returned'); // the handler answered and returned; the driver did not have to kill it
    const reason = create.responses[0].body!.Reason!;
    expect(reason).toMatch(/^no answer within \d+ ms, before the function's timeout: still waiting for DescribeChapCredentials for target /);
    expect(Number(/within (\d+) ms/.exec(reason)![1])).toBeLessThan(3000);
  });
});
