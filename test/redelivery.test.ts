/**
 * Redelivered and retried invocations, on the synthesized artifact: the bundled handler, run by the local
 * CloudFormation driver, against the emulator's Secrets Manager (the real SDK over HTTP), which answers a repeated
 * ClientRequestToken as AWS documents (same value: ignored, the old version's stages returned; another value:
 * ResourceExistsException). Each invocation that succeeds leaves every secret it manages holding, as AWSCURRENT,
 * what the gateway reported during that invocation.
 */
import { Duration } from 'aws-cdk-lib';
import { DOC_TARGET_ARN, HOST_A, HOST_B } from './fixtures';
import { LocalCloud, STACK, removeAssemblies, synth } from './local-stack';

jest.setTimeout(60_000);
let cloud: LocalCloud;

beforeEach(async () => {
  cloud = await LocalCloud.start();
});

afterEach(() => cloud.finish());
afterAll(removeAssemblies);

const initiatorSecret = () => cloud.secretValue('ChapInitiatoriqn199105') as { secretToAuthenticateInitiator: string };
const putCalls = () => cloud.emulator.callsOf('PutSecretValue').length;

/** Sets new CHAP credentials for HOST_A on the gateway and returns them. */
function changeOnGateway() {
  const credential = cloud.credential(HOST_A);
  cloud.emulator.storageGateway.UpdateChapCredentials({ TargetARN: DOC_TARGET_ARN, ...credential });
  return credential;
}

test('an older Update delivered again after a newer one stores what the gateway holds now', async () => {
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A), cloud.credential(HOST_B)]);
  // Reordering the declared initiators changes the resource's properties (an Update) and keeps every secret.
  expect((await cloud.cfn.deploy(synth({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B] }), STACK)).status).toBe('CREATE_COMPLETE');

  const b = changeOnGateway();
  expect((await cloud.cfn.deploy(synth({ targetArn: DOC_TARGET_ARN, initiators: [HOST_B, HOST_A] }), STACK)).status).toBe('UPDATE_COMPLETE');
  const update1 = cloud.cfn.invocations.at(-1)!;
  expect(update1.event.RequestType).toBe('Update');
  expect(initiatorSecret().secretToAuthenticateInitiator).toBe(b.SecretToAuthenticateInitiator);

  const a = changeOnGateway();
  expect((await cloud.cfn.deploy(synth({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B] }), STACK)).status).toBe('UPDATE_COMPLETE');
  expect(initiatorSecret().secretToAuthenticateInitiator).toBe(a.SecretToAuthenticateInitiator);

  // The gateway goes back to B's values, then Lambda delivers Update 1 again (same RequestId, so the same tokens).
  cloud.emulator.storageGateway.UpdateChapCredentials({ TargetARN: DOC_TARGET_ARN, ...b });
  const before0 = putCalls();
  const again = await cloud.cfn.redeliver(update1);
  expect(again.responses.at(-1)!.body).toMatchObject({ Status: 'SUCCESS' });
  expect(initiatorSecret().secretToAuthenticateInitiator).toBe(b.SecretToAuthenticateInitiator);
  // Update 1's first tokens still name the versions holding B's values (no longer current): those writes are ignored,
  // the next tokens make them current. Two secrets changed (the target's and HOST_A's): two calls each.
  const puts = cloud.emulator.callsOf('PutSecretValue').slice(before0);
  expect(puts.map((c) => c.status)).toEqual([200, 200, 200, 200]);

  // Delivered once more with the gateway unchanged: nothing is written, no version is added.
  const versions = cloud.versionsOf('ChapInitiatoriqn199105');
  const before = putCalls();
  const third = await cloud.cfn.redeliver(update1);
  expect(third.responses.at(-1)!.body!.Status).toBe('SUCCESS');
  expect(putCalls()).toBe(before);
  expect(cloud.versionsOf('ChapInitiatoriqn199105')).toBe(versions);
});

test('a Create delivered again after the gateway changed converges to the new values instead of failing', async () => {
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  expect((await cloud.cfn.deploy(synth({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A] }), STACK)).status).toBe('CREATE_COMPLETE');
  const create = cloud.cfn.invocations[0];
  const versions = cloud.versionsOf('ChapInitiatoriqn199105');

  const changed = changeOnGateway();
  const before = cloud.emulator.callsOf('PutSecretValue').length;
  const again = await cloud.cfn.redeliver(create);
  expect(again.responses.at(-1)!.body!.Status).toBe('SUCCESS');
  expect(initiatorSecret().secretToAuthenticateInitiator).toBe(changed.SecretToAuthenticateInitiator);
  // Per changed secret: the first token is refused (it holds the old value), the second stores the new one.
  const puts = cloud.emulator.callsOf('PutSecretValue').slice(before);
  expect(puts.map((c) => c.errorType ?? 'ok').sort()).toEqual(['ResourceExistsException', 'ResourceExistsException', 'ok', 'ok']);
  expect(cloud.versionsOf('ChapInitiatoriqn199105')).toBe(versions + 1);
});

test('a scheduled refresh that failed part-way and is retried after the gateway changed stores the new values', async () => {
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  await cloud.cfn.deploy(synth({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A], refresh: Duration.hours(1) }), STACK);
  const ruleId = [...cloud.cfn.deployed].find(([, r]) => r.type === 'AWS::Events::Rule')![0];
  const targetSecretArn = cloud.secretArn('ChapTargetSecret');
  const initiatorSecretArn = cloud.secretArn('ChapInitiatoriqn199105');

  // First attempt: the gateway changed; the target secret is written, the initiator secret's write keeps failing.
  changeOnGateway();
  cloud.emulator.inject('PutSecretValue', { failAll: { type: 'InternalServiceError', status: 500 }, only: { SecretId: initiatorSecretArn } });
  const first = await cloud.cfn.fireRule(ruleId, { requestId: 'refresh-invocation-1' });
  expect(first.ended).toBe('threw');
  cloud.emulator.clearFaults();

  // Lambda retries the same request a minute later; meanwhile the gateway changed again.
  const latest = changeOnGateway();
  const retry = await cloud.cfn.fireRule(ruleId, { requestId: 'refresh-invocation-1' });
  expect(retry.ended).toBe('returned');
  expect(initiatorSecret().secretToAuthenticateInitiator).toBe(latest.SecretToAuthenticateInitiator);
  type Stored = { chapCredentials: { secretToAuthenticateInitiator: string }[] };
  const target = JSON.parse(cloud.emulator.secretsManager.current(targetSecretArn)!) as Stored;
  expect(target.chapCredentials[0].secretToAuthenticateInitiator).toBe(latest.SecretToAuthenticateInitiator);

  // Retried again with nothing changed: no write.
  const before = putCalls();
  expect((await cloud.cfn.fireRule(ruleId, { requestId: 'refresh-invocation-1' })).ended).toBe('returned');
  expect(putCalls()).toBe(before);
});

test('the same request delivered twice at once stores one version', async () => {
  cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
  await cloud.cfn.deploy(synth({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A] }), STACK);
  const create = cloud.cfn.invocations[0];
  changeOnGateway();
  const versions = cloud.versionsOf('ChapInitiatoriqn199105');
  const runs = await Promise.all([cloud.cfn.redeliver(create), cloud.cfn.redeliver(create)]);
  for (const run of runs) expect(run.responses.at(-1)!.body!.Status).toBe('SUCCESS');
  expect(cloud.versionsOf('ChapInitiatoriqn199105')).toBe(versions + 1);
});
