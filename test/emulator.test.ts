/**
 * The emulator, driven by the real AWS SDK v3 clients over HTTP: what the handler and the driver rely on behaves
 * as the services document it, and bad requests are refused as AWS refuses them.
 */
import {
  CreateSecretCommand, DeleteSecretCommand, DescribeSecretCommand, GetSecretValueCommand, ListSecretVersionIdsCommand,
  PutSecretValueCommand, RestoreSecretCommand, SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import {
  DeleteChapCredentialsCommand, DescribeChapCredentialsCommand, StorageGatewayClient, UpdateChapCredentialsCommand,
} from '@aws-sdk/client-storage-gateway';
import { Emulator, startEmulator } from '../local/emulator';
import { DOC_TARGET_ARN, HOST_A, secretValue } from './fixtures';

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

  test('a CHAP secret outside 12 to 16 characters and a short target ARN are refused', async () => {
    emulator.storageGateway.addTarget(DOC_TARGET_ARN);
    expect(await failure(sgw.send(new UpdateChapCredentialsCommand({ TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A, SecretToAuthenticateInitiator: 'short' }))))
      .toMatchObject({ name: 'ValidationException', message: expect.stringContaining("at 'secretToAuthenticateInitiator' failed to satisfy constraint: Member must have length greater than or equal to 12") });
    expect(await failure(sgw.send(new DescribeChapCredentialsCommand({ TargetARN: 'arn:aws:storagegateway:short' }))))
      .toMatchObject({ name: 'ValidationException', message: expect.stringContaining("at 'targetARN' failed to satisfy constraint: Member must have length greater than or equal to 50") });
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
