/**
 * The emulator, driven by the real AWS SDK v3 clients over HTTP: what the handler and the driver rely on behaves
 * as the services document it, and bad requests are refused as AWS refuses them.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateSecretCommand, DeleteSecretCommand, DescribeSecretCommand, GetSecretValueCommand, ListSecretVersionIdsCommand,
  PutSecretValueCommand, RestoreSecretCommand, SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import {
  CreateCachediSCSIVolumeCommand, DeleteChapCredentialsCommand, DeleteVolumeCommand, DescribeCachediSCSIVolumesCommand,
  DescribeChapCredentialsCommand, StorageGatewayClient, UpdateChapCredentialsCommand,
} from '@aws-sdk/client-storage-gateway';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { Emulator, startEmulator } from '../local/emulator';
import { DOC_TARGET_ARN, HOST_A, HOST_B, OTHER_TARGET_ARN, secretValue } from './fixtures';

let emulator: Emulator;
let sm: SecretsManagerClient;
let sgw: StorageGatewayClient;
const TOKEN_1 = 'a'.repeat(32);
const TOKEN_2 = 'b'.repeat(32);

beforeEach(async () => {
  emulator = await startEmulator();
  const config = {
    endpoint: emulator.endpoint, region: 'us-east-1', maxAttempts: 1,
    credentials: { accessKeyId: 'ASIALOCALEMULATOR000', secretAccessKey: 'local' },
  };
  sm = new SecretsManagerClient(config);
  sgw = new StorageGatewayClient(config);
});

afterEach(async () => {
  sm.destroy();
  sgw.destroy();
  await emulator.stop();
});

/** The error the SDK raised: its name, HTTP status and Storage Gateway errorCode. */
async function failure(promise: Promise<unknown>) {
  try {
    await promise;
  } catch (error) {
    const e = error as { name: string; message: string; $metadata: { httpStatusCode: number }; error?: { errorCode?: string } };
    return { name: e.name, status: e.$metadata?.httpStatusCode, errorCode: e.error?.errorCode, message: e.message };
  }
  throw new Error('expected the call to fail');
}

describe('Secrets Manager', () => {
  test('ARNs carry the random six-character suffix, and KMS key id, description and tags are kept', async () => {
    const out = await sm.send(new CreateSecretCommand({ Name: 'iscsi/vol', KmsKeyId: 'alias/chap', Description: 'd', Tags: [{ Key: 'team', Value: 'storage' }] }));
    expect(out.ARN).toMatch(/^arn:aws:secretsmanager:us-east-1:111122223333:secret:iscsi\/vol-[A-Za-z0-9]{6}$/);
    const described = await sm.send(new DescribeSecretCommand({ SecretId: 'iscsi/vol' }));
    expect(described).toMatchObject({ ARN: out.ARN, KmsKeyId: 'alias/chap', Description: 'd', Tags: [{ Key: 'team', Value: 'storage' }] });
  });

  test('each new value becomes AWSCURRENT and the one before AWSPREVIOUS', async () => {
    const { ARN } = await sm.send(new CreateSecretCommand({ Name: 's', SecretString: 'one', ClientRequestToken: TOKEN_1 }));
    await sm.send(new PutSecretValueCommand({ SecretId: ARN, SecretString: 'two', ClientRequestToken: TOKEN_2 }));
    expect((await sm.send(new GetSecretValueCommand({ SecretId: ARN }))).SecretString).toBe('two');
    expect((await sm.send(new GetSecretValueCommand({ SecretId: ARN, VersionStage: 'AWSPREVIOUS' }))).SecretString).toBe('one');
    const { Versions } = await sm.send(new ListSecretVersionIdsCommand({ SecretId: ARN }));
    expect(Versions!.map((v) => [v.VersionId, v.VersionStages])).toEqual([[TOKEN_1, ['AWSPREVIOUS']], [TOKEN_2, ['AWSCURRENT']]]);
  });

  test('the same ClientRequestToken with the same value is ignored; with another value it is refused', async () => {
    const { ARN } = await sm.send(new CreateSecretCommand({ Name: 's' }));
    await sm.send(new PutSecretValueCommand({ SecretId: ARN, SecretString: 'v', ClientRequestToken: TOKEN_1 }));
    await sm.send(new PutSecretValueCommand({ SecretId: ARN, SecretString: 'v', ClientRequestToken: TOKEN_1 }));
    expect(emulator.secretsManager.versions(ARN!)).toHaveLength(1);
    expect(await failure(sm.send(new PutSecretValueCommand({ SecretId: ARN, SecretString: 'w', ClientRequestToken: TOKEN_1 }))))
      .toMatchObject({ name: 'ResourceExistsException', status: 400 });
  });

  test('a repeated token answers with its version and that version\'s stages, which need not be AWSCURRENT', async () => {
    const { ARN } = await sm.send(new CreateSecretCommand({ Name: 's' }));
    const first = await sm.send(new PutSecretValueCommand({ SecretId: ARN, SecretString: 'b', ClientRequestToken: TOKEN_1 }));
    expect(first).toMatchObject({ VersionId: TOKEN_1, VersionStages: ['AWSCURRENT'] });
    await sm.send(new PutSecretValueCommand({ SecretId: ARN, SecretString: 'a', ClientRequestToken: TOKEN_2 }));
    const repeated = await sm.send(new PutSecretValueCommand({ SecretId: ARN, SecretString: 'b', ClientRequestToken: TOKEN_1 }));
    expect(repeated).toMatchObject({ VersionId: TOKEN_1, VersionStages: ['AWSPREVIOUS'] });
    expect((await sm.send(new GetSecretValueCommand({ SecretId: ARN }))).SecretString).toBe('a');
  });

  test('a secret with no value yet has no AWSCURRENT', async () => {
    await sm.send(new CreateSecretCommand({ Name: 's' }));
    expect(await failure(sm.send(new GetSecretValueCommand({ SecretId: 's' })))).toMatchObject({ name: 'ResourceNotFoundException', status: 400 });
  });

  test('deletion keeps a recovery window: the name stays taken, reads are refused, restore brings it back', async () => {
    const { ARN } = await sm.send(new CreateSecretCommand({ Name: 's', SecretString: 'v' }));
    await sm.send(new DeleteSecretCommand({ SecretId: ARN, RecoveryWindowInDays: 7 }));
    expect(await failure(sm.send(new GetSecretValueCommand({ SecretId: ARN })))).toMatchObject({ name: 'InvalidRequestException' });
    expect(await failure(sm.send(new CreateSecretCommand({ Name: 's' })))).toMatchObject({
      name: 'InvalidRequestException', message: expect.stringContaining('scheduled for deletion'),
    });
    await sm.send(new RestoreSecretCommand({ SecretId: ARN }));
    expect((await sm.send(new GetSecretValueCommand({ SecretId: 's' }))).SecretString).toBe('v');
    await sm.send(new DeleteSecretCommand({ SecretId: ARN, ForceDeleteWithoutRecovery: true }));
    await sm.send(new CreateSecretCommand({ Name: 's' }));
  });

  test.each([
    ['a name with a colon', () => new CreateSecretCommand({ Name: 'a:b' }), /Value 'a:b' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern/],
    ['a name over 512 characters', () => new CreateSecretCommand({ Name: 'n'.repeat(513) }), /at 'name' failed to satisfy constraint: Member must have length less than or equal to 512/],
    ['a missing SecretId', () => new GetSecretValueCommand({} as never), /Value null at 'secretId' failed to satisfy constraint: Member must not be null/],
    ['a token under 32 characters', () => new PutSecretValueCommand({ SecretId: 's', SecretString: 'v', ClientRequestToken: 'short' }),
      /at 'clientRequestToken' failed to satisfy constraint: Member must have length greater than or equal to 32/],
    ['a recovery window under 7 days', () => new DeleteSecretCommand({ SecretId: 's', RecoveryWindowInDays: 1 }),
      /at 'recoveryWindowInDays' failed to satisfy constraint: Member must have value greater than or equal to 7/],
  ])('refuses %s with ValidationException', async (_, command, message) => {
    const error = await failure(sm.send(command() as never));
    expect(error).toMatchObject({ name: 'ValidationException', status: 400 });
    expect(error.message).toMatch(message);
  });

  test('a value over 65536 bytes is refused without echoing it', async () => {
    await sm.send(new CreateSecretCommand({ Name: 's' }));
    const value = secretValue().repeat(6000);
    const error = await failure(sm.send(new PutSecretValueCommand({ SecretId: 's', SecretString: value, ClientRequestToken: TOKEN_1 })));
    expect(error).toMatchObject({ name: 'ValidationException' });
    expect(error.message).not.toContain(value.slice(0, 13));
  });
});

describe('Storage Gateway', () => {
  test('CHAP credentials can be described, updated and deleted; an unknown target is TargetNotFound', async () => {
    emulator.storageGateway.addTarget(DOC_TARGET_ARN);
    const initiatorSecret = secretValue();
    await sgw.send(new UpdateChapCredentialsCommand({
      TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A, SecretToAuthenticateInitiator: initiatorSecret,
    }));
    expect((await sgw.send(new DescribeChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN }))).ChapCredentials).toEqual([
      { TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A, SecretToAuthenticateInitiator: initiatorSecret },
    ]);
    await sgw.send(new DeleteChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A }));
    expect((await sgw.send(new DescribeChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN }))).ChapCredentials).toEqual([]);
    expect(await failure(sgw.send(new DescribeChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN.replace('myvolume', 'missing') }))))
      .toMatchObject({ name: 'InvalidGatewayRequestException', status: 400, errorCode: 'TargetNotFound' });
  });

  test('a short target ARN and an initiator name outside the model are refused with ValidationException', async () => {
    emulator.storageGateway.addTarget(DOC_TARGET_ARN);
    expect(await failure(sgw.send(new DescribeChapCredentialsCommand({ TargetARN: 'arn:aws:storagegateway:short' }))))
      .toMatchObject({ name: 'ValidationException', message: expect.stringContaining("at 'targetARN' failed to satisfy constraint: Member must have length greater than or equal to 50") });
    const update = (InitiatorName: string) => sgw.send(new UpdateChapCredentialsCommand({
      TargetARN: DOC_TARGET_ARN, InitiatorName, SecretToAuthenticateInitiator: secretValue(),
    }));
    expect(await failure(update('iqn.1991-05.com.microsoft:Host')))
      .toMatchObject({ name: 'ValidationException', message: expect.stringContaining("at 'initiatorName' failed to satisfy constraint: Member must satisfy regular expression pattern") });
    expect(await failure(update(`iqn.1994-05.com.redhat:${'h'.repeat(233)}`)))
      .toMatchObject({ name: 'ValidationException', message: expect.stringContaining("at 'initiatorName' failed to satisfy constraint: Member must have length less than or equal to 255") });
    expect(await failure(sgw.send(new DeleteChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN } as never)))).toMatchObject({
      name: 'ValidationException', message: expect.stringContaining("Value null at 'initiatorName' failed to satisfy constraint: Member must not be null"),
    });
    await update(`iqn.1994-05.com.redhat:${'h'.repeat(232)}`); // 255 characters: the limit itself is accepted
  });
});

/** `n` random ASCII letters and digits: one byte each in UTF-8. */
function ascii(n: number): string {
  return randomBytes(n).toString('base64').replace(/[^A-Za-z0-9]/g, 'x').slice(0, n);
}
/** `n` random characters of two bytes each in UTF-8 (Latin letters with accents). */
function twoByte(n: number): string {
  return Array.from(randomBytes(n), (b) => String.fromCharCode(0xe0 + (b % 0x1f))).join('');
}

describe('CHAP secrets: 12 to 16 bytes in UTF-8, not characters', () => {
  test.each([
    ['11 bytes (11 ASCII characters)', () => ascii(11), 'greater than or equal to 12 bytes'],
    ['17 bytes (17 ASCII characters)', () => ascii(17), 'less than or equal to 16 bytes'],
    ['24 bytes in 12 characters', () => twoByte(12), 'less than or equal to 16 bytes'],
    ['18 bytes in 9 characters', () => twoByte(9), 'less than or equal to 16 bytes'],
  ])('a secret of %s is refused with ValidationException, without echoing it, and changes nothing', async (_, make, rule) => {
    emulator.storageGateway.addTarget(DOC_TARGET_ARN);
    const secret = make();
    for (const [member, input] of [
      ['secretToAuthenticateInitiator', { SecretToAuthenticateInitiator: secret }],
      ['secretToAuthenticateTarget', { SecretToAuthenticateInitiator: secretValue(), SecretToAuthenticateTarget: secret }],
    ] as const) {
      const error = await failure(sgw.send(new UpdateChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A, ...input })));
      expect(error).toMatchObject({ name: 'ValidationException', status: 400 });
      expect(error.message).toBe(`1 validation error detected: Value at '${member}' failed to satisfy constraint: `
        + `Member must have UTF-8 encoded length ${rule}`);
      expect(error.message).not.toContain(secret);
    }
    expect(emulator.storageGateway.DescribeChapCredentials({ TargetARN: DOC_TARGET_ARN }).ChapCredentials).toEqual([]);
    expect(emulator.storageGateway.connectionsClosed(DOC_TARGET_ARN)).toBe(0);
  });

  test.each([
    ['12 bytes in 6 characters', () => twoByte(6)],
    ['16 bytes in 8 characters', () => twoByte(8)],
    ['12 ASCII characters', () => ascii(12)],
    ['16 ASCII characters', () => ascii(16)],
  ])('a secret of %s is accepted, for the initiator and for the target', async (_, make) => {
    emulator.storageGateway.addTarget(DOC_TARGET_ARN);
    const [initiator, target] = [make(), make()];
    await sgw.send(new UpdateChapCredentialsCommand({
      TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A, SecretToAuthenticateInitiator: initiator, SecretToAuthenticateTarget: target,
    }));
    // The values come back intact through the SDK's JSON, multi-byte characters included.
    expect((await sgw.send(new DescribeChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN }))).ChapCredentials).toEqual([
      { TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A, SecretToAuthenticateInitiator: initiator, SecretToAuthenticateTarget: target },
    ]);
  });

  test('the target secret is optional (one-way CHAP), and when given must differ from the initiator secret', async () => {
    emulator.storageGateway.addTarget(DOC_TARGET_ARN);
    const secret = secretValue();
    const error = await failure(sgw.send(new UpdateChapCredentialsCommand({
      TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A, SecretToAuthenticateInitiator: secret, SecretToAuthenticateTarget: secret,
    })));
    expect(error).toMatchObject({ name: 'InvalidGatewayRequestException', status: 400, errorCode: 'InvalidParameters' });
    expect(error.message).not.toContain(secret);
    expect(emulator.storageGateway.connectionsClosed(DOC_TARGET_ARN)).toBe(0);
    await sgw.send(new UpdateChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A, SecretToAuthenticateInitiator: secret }));
    expect((await sgw.send(new DescribeChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN }))).ChapCredentials).toEqual([
      { TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A, SecretToAuthenticateInitiator: secret },
    ]);
  });
});

describe('connections closed by CHAP changes', () => {
  const update = (TargetARN: string, InitiatorName: string) => sgw.send(new UpdateChapCredentialsCommand({
    TargetARN, InitiatorName, SecretToAuthenticateInitiator: secretValue(), SecretToAuthenticateTarget: secretValue(),
  }));
  const closed = () => [DOC_TARGET_ARN, OTHER_TARGET_ARN].map((t) => emulator.storageGateway.connectionsClosed(t));

  test('each successful update or delete closes its target\'s connections once; describe and other targets are untouched', async () => {
    emulator.storageGateway.addTarget(DOC_TARGET_ARN);
    emulator.storageGateway.addTarget(OTHER_TARGET_ARN);
    await sgw.send(new DescribeChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN }));
    expect(closed()).toEqual([0, 0]);
    await update(DOC_TARGET_ARN, HOST_A);
    expect(closed()).toEqual([1, 0]);
    await update(DOC_TARGET_ARN, HOST_B);
    await sgw.send(new DescribeChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN }));
    expect(closed()).toEqual([2, 0]);
    await sgw.send(new DeleteChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_B }));
    expect(closed()).toEqual([3, 0]);
    await update(OTHER_TARGET_ARN, HOST_A);
    expect(closed()).toEqual([3, 1]);
  });

  test('rewriting the same credentials still closes the connections; a refused call closes none', async () => {
    emulator.storageGateway.addTarget(DOC_TARGET_ARN);
    const same = { TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A, SecretToAuthenticateInitiator: secretValue() };
    await sgw.send(new UpdateChapCredentialsCommand(same));
    await sgw.send(new UpdateChapCredentialsCommand(same));
    expect(closed()).toEqual([2, 0]);
    await failure(sgw.send(new UpdateChapCredentialsCommand({ ...same, SecretToAuthenticateInitiator: ascii(11) })));
    await failure(sgw.send(new UpdateChapCredentialsCommand({ ...same, TargetARN: OTHER_TARGET_ARN })));
    await failure(sgw.send(new DeleteChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_B })));
    expect(closed()).toEqual([2, 0]);
  });

  test('deleting the credentials of an initiator that has none is InvalidGatewayRequestException and closes nothing', async () => {
    emulator.storageGateway.addTarget(DOC_TARGET_ARN);
    await update(DOC_TARGET_ARN, HOST_A);
    const missing = () => sgw.send(new DeleteChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_B }));
    expect(await failure(missing())).toMatchObject({ name: 'InvalidGatewayRequestException', status: 400, errorCode: 'InitiatorNotFound' });
    // The API reference does not document the errorCode; a test can switch it to prove a caller does not rely on it.
    emulator.storageGateway.missingInitiatorErrorCode = 'ChapCredentialNotFound';
    expect(await failure(missing())).toMatchObject({ name: 'InvalidGatewayRequestException', errorCode: 'ChapCredentialNotFound' });
    expect(await failure(sgw.send(new DeleteChapCredentialsCommand({ TargetARN: OTHER_TARGET_ARN, InitiatorName: HOST_A }))))
      .toMatchObject({ name: 'InvalidGatewayRequestException', errorCode: 'TargetNotFound' });
    expect(closed()).toEqual([1, 0]);
    expect((await sgw.send(new DescribeChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN }))).ChapCredentials!.map((c) => c.InitiatorName))
      .toEqual([HOST_A]);
  });
});

describe('cached iSCSI volumes', () => {
  // The API reference's own example: this gateway and the target name `myvolume` make DOC_TARGET_ARN.
  const GATEWAY_ARN = DOC_TARGET_ARN.split('/target/')[0];
  const create = (TargetName: string, ClientToken = `token-${TargetName}`, GatewayARN = GATEWAY_ARN) => sgw.send(new CreateCachediSCSIVolumeCommand({
    GatewayARN, TargetName, ClientToken, NetworkInterfaceId: '10.1.1.1', VolumeSizeInBytes: 536870912000,
  }));

  test('a volume gets its target (ARN as documented, no CHAP credentials) and is described; deleting it removes the target', async () => {
    expect(await failure(create('myvolume'))).toMatchObject({ name: 'InvalidGatewayRequestException', errorCode: 'GatewayNotFound' });
    emulator.storageGateway.addGateway(GATEWAY_ARN);
    const { VolumeARN, TargetARN } = await create('myvolume');
    expect(TargetARN).toBe(DOC_TARGET_ARN);
    expect(VolumeARN).toMatch(new RegExp(`^${GATEWAY_ARN}/volume/vol-[0-9A-F]{17}$`));
    expect((await sgw.send(new DescribeChapCredentialsCommand({ TargetARN }))).ChapCredentials).toEqual([]);

    const describe = async () => (await sgw.send(new DescribeCachediSCSIVolumesCommand({ VolumeARNs: [VolumeARN!] }))).CachediSCSIVolumes!;
    expect(await describe()).toEqual([expect.objectContaining({
      VolumeARN, VolumeId: VolumeARN!.split('/').pop(), VolumeType: 'CACHED iSCSI', VolumeSizeInBytes: 536870912000, TargetName: 'myvolume',
      VolumeiSCSIAttributes: expect.objectContaining({ TargetARN, NetworkInterfaceId: '10.1.1.1', ChapEnabled: false }),
    })]);
    await sgw.send(new UpdateChapCredentialsCommand({ TargetARN, InitiatorName: HOST_A, SecretToAuthenticateInitiator: secretValue() }));
    expect((await describe())[0].VolumeiSCSIAttributes!.ChapEnabled).toBe(true);

    await sgw.send(new DeleteVolumeCommand({ VolumeARN }));
    expect(await failure(sgw.send(new DescribeChapCredentialsCommand({ TargetARN })))).toMatchObject({ errorCode: 'TargetNotFound' });
    expect(await failure(sgw.send(new DeleteVolumeCommand({ VolumeARN })))).toMatchObject({ name: 'InvalidGatewayRequestException', errorCode: 'VolumeNotFound' });
    expect(await failure(describe())).toMatchObject({ errorCode: 'VolumeNotFound' });
  });

  test('a target name is unique on its gateway; a retried ClientToken answers the same volume', async () => {
    emulator.storageGateway.addGateway(GATEWAY_ARN);
    const first = await create('myvolume');
    expect(await create('myvolume')).toMatchObject({ VolumeARN: first.VolumeARN });
    expect(await failure(create('myvolume', 'another-token'))).toMatchObject({ name: 'InvalidGatewayRequestException', errorCode: 'TargetAlreadyExists' });
    expect(emulator.storageGateway.volumes.size).toBe(1);
  });

  test.each([
    ['an upper-case target name', () => create('MyVolume'), /at 'targetName' failed to satisfy constraint: Member must satisfy regular expression pattern/],
    ['a short gateway ARN', () => create('myvolume', 'token', 'arn:aws:storagegateway:us-east-1:1:gateway/sgw-1'),
      /at 'gatewayARN' failed to satisfy constraint: Member must have length greater than or equal to 50/],
    ['a short client token', () => create('myvolume', 'tok'), /at 'clientToken' failed to satisfy constraint: Member must have length greater than or equal to 5/],
    ['a volume ARN that is not one', () => sgw.send(new DescribeCachediSCSIVolumesCommand({ VolumeARNs: [DOC_TARGET_ARN] })),
      /at 'volumeARNs.1.member' failed to satisfy constraint: Member must satisfy regular expression pattern/],
  ])('refuses %s with ValidationException', async (_, call, message) => {
    emulator.storageGateway.addGateway(GATEWAY_ARN);
    const error = await failure(call());
    expect(error).toMatchObject({ name: 'ValidationException', status: 400 });
    expect(error.message).toMatch(message);
  });

  test('addVolume creates the gateway when new and answers the ids CreateCachediSCSIVolume would', async () => {
    const added = emulator.storageGateway.addVolume({ gatewayArn: GATEWAY_ARN, targetName: 'myvolume' });
    expect(added).toEqual({ targetArn: DOC_TARGET_ARN, volumeArn: expect.stringMatching(/\/volume\/vol-[0-9A-F]{17}$/), volumeId: expect.any(String) });
    expect(added.volumeArn).toBe(`${GATEWAY_ARN}/volume/${added.volumeId}`);
    expect((await sgw.send(new DescribeChapCredentialsCommand({ TargetARN: added.targetArn }))).ChapCredentials).toEqual([]);
    expect(() => emulator.storageGateway.addVolume({ gatewayArn: GATEWAY_ARN, targetName: 'myvolume' })).toThrow('The specified target already exists.');
  });
});

describe('CloudFormation (AWS query protocol)', () => {
  test('DescribeStacks answers the status the driver recorded, by stack id or name; an unknown stack is a ValidationError', async () => {
    const cfn = new CloudFormationClient({
      endpoint: emulator.endpoint, region: 'us-east-1', maxAttempts: 1,
      credentials: { accessKeyId: 'ASIALOCALEMULATOR000', secretAccessKey: 'local' },
    });
    try {
      const stackId = 'arn:aws:cloudformation:us-east-1:111122223333:stack/Demo/11111111-2222-3333-4444-555555555555';
      emulator.cloudFormation.setStatus(stackId, 'Demo', 'UPDATE_IN_PROGRESS');
      emulator.cloudFormation.setStatus(stackId, 'Demo', 'UPDATE_ROLLBACK_IN_PROGRESS');
      for (const name of [stackId, 'Demo']) {
        const { Stacks } = await cfn.send(new DescribeStacksCommand({ StackName: name }));
        expect(Stacks).toEqual([expect.objectContaining({ StackId: stackId, StackName: 'Demo', StackStatus: 'UPDATE_ROLLBACK_IN_PROGRESS' })]);
      }
      expect(await failure(cfn.send(new DescribeStacksCommand({ StackName: 'Nope' })))).toMatchObject({
        name: 'ValidationError', status: 400, message: 'Stack with id Nope does not exist',
      });
      expect(emulator.callsOf('DescribeStacks').map((c) => c.status)).toEqual([200, 200, 400]);
    } finally {
      cfn.destroy();
    }
  });
});

describe('faults and protocol', () => {
  test('injected throttling, 5xx and failures come back as AWS errors and are counted down', async () => {
    emulator.storageGateway.addTarget(DOC_TARGET_ARN);
    emulator.inject('DescribeChapCredentials', { throttle: 1, serverErrors: 1 });
    const describe = () => sgw.send(new DescribeChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN }));
    expect(await failure(describe())).toMatchObject({ name: 'ThrottlingException', status: 400 });
    expect((await failure(describe())).status).toBeGreaterThanOrEqual(500);
    await describe();
    emulator.inject('*', { failAll: { type: 'AccessDeniedException', status: 400 } });
    expect(await failure(sm.send(new GetSecretValueCommand({ SecretId: 's' })))).toMatchObject({ name: 'AccessDeniedException' });
  });

  test('a fault limited to some input values hits only the calls that carry them', async () => {
    await sm.send(new CreateSecretCommand({ Name: 'a' }));
    await sm.send(new CreateSecretCommand({ Name: 'b' }));
    emulator.inject('PutSecretValue', { failAll: { type: 'InternalServiceError', status: 500 }, only: { SecretId: 'b' } });
    await sm.send(new PutSecretValueCommand({ SecretId: 'a', SecretString: 'v' }));
    expect(await failure(sm.send(new PutSecretValueCommand({ SecretId: 'b', SecretString: 'v' })))).toMatchObject({ name: 'InternalServiceError', status: 500 });
  });

  test('a rate limit throttles calls above it within one second', async () => {
    emulator.inject('CreateSecret', { maxPerSecond: 2 });
    const results = await Promise.allSettled([1, 2, 3].map((n) => sm.send(new CreateSecretCommand({ Name: `s${n}` }))));
    expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1);
  });

  test('a connection reset reaches the client as a network error', async () => {
    emulator.inject('DescribeChapCredentials', { resets: 1 });
    const error = await failure(sgw.send(new DescribeChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN })));
    expect(error.status).toBeUndefined();
    expect(emulator.calls[0]).toMatchObject({ operation: 'DescribeChapCredentials', errorType: 'ConnectionReset' });
  });

  test('a request without a SigV4 signature or with an unknown operation is refused', async () => {
    const post = (headers: Record<string, string>) => fetch(`${emulator.endpoint}/`, { method: 'POST', headers, body: '{}' });
    const unsigned = await post({ 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'secretsmanager.ListSecrets' });
    expect(unsigned.status).toBe(403);
    expect(await unsigned.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
    const unknown = await post({
      'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'secretsmanager.current', authorization: 'AWS4-HMAC-SHA256 Credential=x',
    });
    expect(await unknown.json()).toMatchObject({ __type: 'UnknownOperationException' });
  });
});
