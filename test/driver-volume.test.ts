/**
 * The local CloudFormation driver and AWS::StorageGateway::Volume (aws-cdk-lib's CfnVolume): the volume and its
 * iSCSI target are created in the emulator before anything that reads them, Ref and Fn::GetAtt answer what
 * CloudFormation documents, updates replace the volume where the resource type says so, and stack deletion removes
 * it unless a policy keeps it.
 */
import { CfnDeletionPolicy, CfnOutput, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { CfnVolume, CfnVolumeProps } from 'aws-cdk-lib/aws-storagegateway';
import { ChapCredentials } from '../lib';
import { DOC_TARGET_ARN, HOST_A } from './fixtures';
import { LocalCloud, STACK, removeAssemblies, synth } from './local-stack';

jest.setTimeout(60_000);

// The API reference's example gateway; with the target name `myvolume` it makes DOC_TARGET_ARN.
const GATEWAY_ARN = DOC_TARGET_ARN.split('/target/')[0];
const VOLUME: CfnVolumeProps = { gatewayArn: GATEWAY_ARN, targetName: 'myvolume', networkInterfaceId: '10.1.1.1', volumeSizeInBytes: 1024 ** 3 };
let cloud: LocalCloud;

beforeEach(async () => {
  cloud = await LocalCloud.start();
  cloud.emulator.storageGateway.addGateway(GATEWAY_ARN);
});

afterEach(async () => {
  // No secret value the gateway held is in any event, response or handler log.
  for (const value of cloud.issued) expect(cloud.emitted()).not.toContain(value);
  expect(cloud.cfn.problems).toEqual([]);
  await cloud.stop();
});

afterAll(removeAssemblies);

/** A stack with one CfnVolume and outputs of its Ref and attributes; `more` adds to the stack. */
function volumeStack(props: Partial<CfnVolumeProps> = {}, more: (stack: Stack, volume: CfnVolume) => void = () => undefined): string {
  return synth((stack) => {
    const volume = new CfnVolume(stack, 'Volume', { ...VOLUME, ...props });
    new CfnOutput(stack, 'TargetArn', { value: volume.attrTargetArn });
    new CfnOutput(stack, 'VolumeRef', { value: volume.ref });
    new CfnOutput(stack, 'VolumeArn', { value: volume.attrVolumeArn });
    new CfnOutput(stack, 'VolumeId', { value: volume.attrVolumeId });
    more(stack, volume);
  });
}

const gateway = () => cloud.emulator.storageGateway;
const chapOf = (TargetARN: string) => gateway().DescribeChapCredentials({ TargetARN }).ChapCredentials;

test('create makes the volume and its target in the emulator; Ref is the VolumeARN; stack delete removes both', async () => {
  const created = await cloud.cfn.deploy(volumeStack(), STACK);
  expect(created.status).toBe('CREATE_COMPLETE');
  const { TargetArn, VolumeRef, VolumeArn, VolumeId } = created.outputs;
  expect(TargetArn).toBe(DOC_TARGET_ARN);
  expect(VolumeRef).toBe(VolumeArn);
  expect(VolumeArn).toBe(`${GATEWAY_ARN}/volume/${VolumeId}`);
  expect(VolumeId).toMatch(/^vol-[0-9A-F]{17}$/);
  expect([...gateway().volumes.values()]).toEqual([expect.objectContaining({
    volumeArn: VolumeArn, targetArn: DOC_TARGET_ARN, networkInterfaceId: '10.1.1.1', volumeSizeInBytes: 1024 ** 3,
  })]);
  expect(chapOf(DOC_TARGET_ARN)).toEqual([]);

  gateway().UpdateChapCredentials({ TargetARN: DOC_TARGET_ARN, ...cloud.credential(HOST_A) });
  expect((await cloud.cfn.destroy()).status).toBe('DELETE_COMPLETE');
  expect(gateway().volumes.size).toBe(0);
  expect(() => chapOf(DOC_TARGET_ARN)).toThrow('The specified target was not found.');
});

test('DeletionPolicy Retain keeps the volume, its target and the target\'s CHAP credentials', async () => {
  await cloud.cfn.deploy(volumeStack({}, (_, volume) => volume.applyRemovalPolicy(RemovalPolicy.RETAIN)), STACK);
  gateway().UpdateChapCredentials({ TargetARN: DOC_TARGET_ARN, ...cloud.credential(HOST_A) });
  expect((await cloud.cfn.destroy()).status).toBe('DELETE_COMPLETE');
  expect(gateway().volumes.size).toBe(1);
  expect(chapOf(DOC_TARGET_ARN).map((c) => c.InitiatorName)).toEqual([HOST_A]);
});

test('the volume is created before a construct that reads its TargetARN, and deleted after it', async () => {
  const dir = volumeStack({}, (stack, volume) => new ChapCredentials(stack, 'Chap', { targetArn: volume.attrTargetArn }));
  const created = await cloud.cfn.deploy(dir, STACK);
  expect(created.status).toBe('CREATE_COMPLETE');
  expect(cloud.secretValue('ChapTargetSecret')).toEqual({ targetArn: DOC_TARGET_ARN, chapCredentials: [] });
  expect(cloud.cfn.invocations.map((i) => i.event.ResourceProperties.TargetArn)).toEqual([DOC_TARGET_ARN]);
  // Reading CHAP credentials does not disconnect anyone.
  expect(gateway().connectionsClosed(DOC_TARGET_ARN)).toBe(0);

  expect((await cloud.cfn.destroy()).status).toBe('DELETE_COMPLETE');
  expect(cloud.cfn.invocations.at(-1)!.event.RequestType).toBe('Delete');
  expect(gateway().volumes.size).toBe(0);
});

test('an unknown gateway fails the create, naming the resource and the error code, and leaves nothing', async () => {
  const result = await cloud.cfn.deploy(volumeStack({ gatewayArn: GATEWAY_ARN.replace('sgw-12A3456B', 'sgw-0000000A') }), STACK);
  expect(result.status).toBe('ROLLBACK_COMPLETE');
  expect(result.reason).toMatch(/^Volume\w*: InvalidGatewayRequestException \(GatewayNotFound\): /);
  expect(gateway().volumes.size).toBe(0);
  expect(gateway().targets.size).toBe(0);
});

describe('updates', () => {
  let volumeArn: string;

  beforeEach(async () => {
    volumeArn = (await cloud.cfn.deploy(volumeStack(), STACK)).outputs.VolumeArn;
    gateway().UpdateChapCredentials({ TargetARN: DOC_TARGET_ARN, ...cloud.credential(HOST_A) });
  });

  test('a change of tags only updates in place: same volume, same target, its credentials kept', async () => {
    const updated = await cloud.cfn.deploy(volumeStack({ tags: [{ key: 'team', value: 'storage' }] }), STACK);
    expect(updated.status).toBe('UPDATE_COMPLETE');
    expect(updated.outputs.VolumeArn).toBe(volumeArn);
    expect(chapOf(DOC_TARGET_ARN).map((c) => c.InitiatorName)).toEqual([HOST_A]);
  });

  test('a new target name replaces the volume: a new target without credentials, the old one deleted with its credentials', async () => {
    const updated = await cloud.cfn.deploy(volumeStack({ targetName: 'othervolume' }), STACK);
    expect(updated.status).toBe('UPDATE_COMPLETE');
    expect(updated.outputs.TargetArn).toBe(DOC_TARGET_ARN.replace('myvolume', 'othervolume'));
    expect(updated.outputs.VolumeArn).not.toBe(volumeArn);
    expect(chapOf(updated.outputs.TargetArn)).toEqual([]);
    expect(() => chapOf(DOC_TARGET_ARN)).toThrow('The specified target was not found.');
    expect([...gateway().volumes.keys()]).toEqual([updated.outputs.VolumeArn]);
  });

  test('UpdateReplacePolicy Retain keeps the replaced volume; DeletionPolicy still decides at stack delete', async () => {
    const dir = volumeStack({ targetName: 'othervolume' }, (_, volume) => {
      volume.cfnOptions.updateReplacePolicy = CfnDeletionPolicy.RETAIN;
    });
    const updated = await cloud.cfn.deploy(dir, STACK);
    expect(updated.status).toBe('UPDATE_COMPLETE');
    expect(gateway().volumes.size).toBe(2);
    expect(chapOf(DOC_TARGET_ARN).map((c) => c.InitiatorName)).toEqual([HOST_A]);
    await cloud.cfn.destroy();
    expect([...gateway().volumes.keys()]).toEqual([volumeArn]);
  });

  test('a new size with the same target name needs a replacement the gateway refuses: the update rolls back, the volume stays', async () => {
    const updated = await cloud.cfn.deploy(volumeStack({ volumeSizeInBytes: 2 * 1024 ** 3 }), STACK);
    expect(updated.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(updated.reason).toMatch(/^Volume\w*: InvalidGatewayRequestException \(TargetAlreadyExists\): /);
    expect(updated.outputs.VolumeArn).toBe(volumeArn);
    expect([...gateway().volumes.keys()]).toEqual([volumeArn]);
    expect(chapOf(DOC_TARGET_ARN).map((c) => c.InitiatorName)).toEqual([HOST_A]);
  });

  test('a replacement made before a later failure is deleted by the rollback; the old volume keeps its credentials', async () => {
    // The construct reads the new target, which has no credentials for the initiator it declares: its create fails.
    const dir = volumeStack({ targetName: 'othervolume' }, (stack, volume) => {
      new ChapCredentials(stack, 'Chap', { targetArn: volume.attrTargetArn, initiators: [HOST_A] });
    });
    const updated = await cloud.cfn.deploy(dir, STACK);
    expect(updated.status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect(updated.reason).toContain(`declared initiator(s) ${HOST_A} have no CHAP credentials on target ${DOC_TARGET_ARN.replace('myvolume', 'othervolume')}`);
    expect([...gateway().volumes.keys()]).toEqual([volumeArn]);
    expect(chapOf(DOC_TARGET_ARN).map((c) => c.InitiatorName)).toEqual([HOST_A]);
    expect(gateway().connectionsClosed(DOC_TARGET_ARN)).toBe(1); // the credential set by the test's setup, and nothing since
  });
});
