/**
 * Secret containment: one run through every lifecycle and failure path with distinctive secret values, then a
 * search of everything the project emits (every file in cdk.out, every event, handler log and response body,
 * every failure reason and stack output) for them. A hit fails with where it was found.
 */
import { CfnParameter } from 'aws-cdk-lib';
import { ChapCredentials } from '../lib';
import { StackResult } from '../local/cloudformation';
import { DOC_TARGET_ARN, HOST_A, HOST_B, OTHER_TARGET_ARN } from './fixtures';

const HOST_C = 'iqn.1994-05.com.redhat:host-c';
import { LocalCloud, STACK, assemblyText, removeAssemblies, synth } from './local-stack';

jest.setTimeout(120_000);
afterAll(removeAssemblies);

/** Places where a value was found: `[where, which secret]`. */
function scan(places: Record<string, string>, secrets: readonly string[]): string[] {
  return Object.entries(places).flatMap(([where, text]) =>
    secrets.map((s, i) => (text.includes(s) ? `secret #${i} in ${where}` : '')).filter(Boolean));
}

test('the scan finds a planted value (so a clean result means something)', () => {
  expect(scan({ 'a log': 'x S0123456789ab y' }, ['S0123456789ab'])).toEqual(['secret #0 in a log']);
});

test('no secret value appears in anything emitted on any path', async () => {
  const places: Record<string, string> = {};
  const secrets: string[] = [];
  const assemblies: string[] = [];
  const statuses: Record<string, string> = {};
  const record = (label: string, result: StackResult) => {
    statuses[label] = result.status;
    places[`${label}: reason`] = result.reason ?? '';
    places[`${label}: outputs`] = JSON.stringify(result.outputs);
  };
  const build = (...args: Parameters<typeof synth>) => {
    const dir = synth(...args);
    assemblies.push(dir);
    return dir;
  };
  const collect = (cloud: LocalCloud, label: string) => {
    secrets.push(...cloud.issued);
    cloud.cfn.invocations.forEach((inv, i) => {
      places[`${label} invocation ${i} (${inv.event.RequestType}) event`] = JSON.stringify(inv.event);
      places[`${label} invocation ${i} handler log`] = inv.logs;
      inv.responses.forEach((r, j) => (places[`${label} invocation ${i} response ${j}`] = r.raw));
    });
  };

  // Happy paths: create, change on the gateway, unchanged update, replacement, delete, re-create, redelivery.
  const cloud = await LocalCloud.start({ deliverTwice: true });
  const gateway = cloud.emulator.storageGateway;
  gateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A), cloud.credential(HOST_B, true)]);
  gateway.addTarget(OTHER_TARGET_ARN, [cloud.credential(HOST_A)]);
  const withHosts = build({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A], secretName: 'iscsi/doc' });
  record('create', await cloud.cfn.deploy(withHosts, STACK));
  gateway.UpdateChapCredentials({ TargetARN: DOC_TARGET_ARN, ...cloud.credential(HOST_A) });
  record('update', await cloud.cfn.deploy(build({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B], secretName: 'iscsi/doc' }), STACK));
  record('replace', await cloud.cfn.deploy(build({ targetArn: OTHER_TARGET_ARN, initiators: [HOST_A], secretName: 'iscsi/doc' }), STACK));
  record('delete', await cloud.cfn.destroy());
  record('re-create', await cloud.cfn.deploy(withHosts, STACK));
  // Failure paths: a declared initiator missing (update rollback), an unknown target, errors past the retries.
  record('missing initiator', await cloud.cfn.deploy(build({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A, 'iqn.2000-01.com.example:ghost'], secretName: 'iscsi/doc' }), STACK));
  record('delete again', await cloud.cfn.destroy());
  record('unknown target', await cloud.cfn.deploy(build({ targetArn: DOC_TARGET_ARN.replace('myvolume', 'nothing') }), STACK));
  cloud.emulator.inject('PutSecretValue', { failAll: { type: 'InternalServiceError', status: 500 } });
  record('writes failing', await cloud.cfn.deploy(build({ targetArn: DOC_TARGET_ARN }), STACK));
  cloud.emulator.clearFaults();
  // Throttling and a ResponseURL that fails its first PUT, both ridden out.
  cloud.cfn.failResponsePuts = 1;
  cloud.emulator.inject(['GetSecretValue', 'PutSecretValue'], { throttle: 2 });
  record('throttled', await cloud.cfn.deploy(build({ targetArn: DOC_TARGET_ARN }), STACK));
  collect(cloud, 'main');
  await cloud.stop();

  // A gateway that never answers (with a short function timeout), and malformed properties.
  const slow = await LocalCloud.start({ functionTimeoutSeconds: 3 });
  slow.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [slow.credential(HOST_A)]);
  slow.emulator.inject('DescribeChapCredentials', { hang: true });
  record('timeout', await slow.cfn.deploy(build({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A] }), STACK));
  slow.emulator.clearFaults();
  record('malformed', await slow.cfn.deploy(build((stack) => {
    new ChapCredentials(stack, 'Chap', { targetArn: new CfnParameter(stack, 'T', { default: 'nonsense' }).valueAsString });
  }), STACK));
  collect(slow, 'slow');
  await slow.stop();

  // Managed credentials: values generated by the handler, set on the gateway, stored, removed; a failure part-way.
  const managed = await LocalCloud.start({ deliverTwice: true });
  managed.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [managed.credential(HOST_A)]);
  const managedProps = (initiators: string[]) => ({ targetArn: DOC_TARGET_ARN, initiators, manageCredentials: true });
  record('managed create', await managed.cfn.deploy(build(managedProps([HOST_A, HOST_B, HOST_C])), STACK));
  secrets.push(...managed.gatewayValues());
  record('managed drop', await managed.cfn.deploy(build(managedProps([HOST_A, HOST_B])), STACK));
  managed.emulator.inject('UpdateChapCredentials', { failAll: { type: 'InternalServerError', status: 500 }, only: { InitiatorName: HOST_C } });
  record('managed failing', await managed.cfn.deploy(build(managedProps([HOST_A, HOST_B, HOST_C, 'iqn.2000-01.com.example:d'])), STACK));
  secrets.push(...managed.gatewayValues());
  managed.emulator.clearFaults();
  record('managed delete', await managed.cfn.destroy());
  collect(managed, 'managed');
  await managed.stop();

  assemblies.forEach((dir, i) => (places[`cdk.out #${i} (every file)`] = assemblyText(dir)));

  // Every path above was taken as intended, and secrets were really handed out and stored.
  expect(statuses).toEqual({
    'create': 'CREATE_COMPLETE', 'update': 'UPDATE_COMPLETE', 'replace': 'UPDATE_COMPLETE', 'delete': 'DELETE_COMPLETE',
    're-create': 'CREATE_COMPLETE', 'missing initiator': 'UPDATE_ROLLBACK_COMPLETE', 'delete again': 'DELETE_COMPLETE',
    'unknown target': 'ROLLBACK_COMPLETE', 'writes failing': 'ROLLBACK_COMPLETE', 'throttled': 'CREATE_COMPLETE',
    'timeout': 'ROLLBACK_COMPLETE', 'malformed': 'ROLLBACK_COMPLETE',
    'managed create': 'CREATE_COMPLETE', 'managed drop': 'UPDATE_COMPLETE', 'managed failing': 'UPDATE_ROLLBACK_COMPLETE',
    'managed delete': 'DELETE_COMPLETE',
  });
  expect(secrets.length).toBeGreaterThanOrEqual(7 + 2 * 2 * 2);
  expect(scan(places, secrets)).toEqual([]);
});
