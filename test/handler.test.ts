import * as http from 'node:http';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { AddressInfo } from 'node:net';
import {
  GetSecretValueCommand, PutSecretValueCommand, ResourceNotFoundException, SecretsManagerClient, SecretsManagerServiceException,
} from '@aws-sdk/client-secrets-manager';
import {
  DeleteChapCredentialsCommand, DescribeChapCredentialsCommand, InternalServerError, InvalidGatewayRequestException, StorageGatewayClient,
  UpdateChapCredentialsCommand,
} from '@aws-sdk/client-storage-gateway';
import type { CloudFormationCustomResourceEvent, Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-jest';
import { Attr, ChapMode } from '../lib/api';
import { stackCredentials } from '../lambda/plan';
import { handler, isRefreshEvent, onEvent, onRefresh } from '../lambda';
import { TOKENS_PER_REQUEST, clientRequestToken, putOutcome } from '../lambda/aws';
import { MAX_RESPONSE_BYTES } from '../lambda/response';
import {
  DOC_TARGET_ARN, HOST_A, HOST_B, OTHER_TARGET_ARN, TARGET_SECRET_ARN, cfnEvent, declared, initiatorSecretArn, properties,
  secretValue as newSecretValue,
} from './fixtures';

const sgw = mockClient(StorageGatewayClient);
const cfn = mockClient(CloudFormationClient);
const sm = mockClient(SecretsManagerClient);

interface Pair { InitiatorName: string; SecretToAuthenticateInitiator: string; SecretToAuthenticateTarget?: string; TargetARN: string }

const issuedSecrets: string[] = [];
function pair(name: string, mutual = true, targetArn = DOC_TARGET_ARN): Pair {
  const secretValue = () => {
    const value = newSecretValue();
    issuedSecrets.push(value);
    return value;
  };
  return {
    InitiatorName: name,
    SecretToAuthenticateInitiator: secretValue(),
    ...(mutual ? { SecretToAuthenticateTarget: secretValue() } : {}),
    TargetARN: targetArn,
  };
}

/** The gateway answers with `pairs`; Secrets Manager behaves as a store of current values. */
function givenGateway(pairs: Pair[], targetArn = DOC_TARGET_ARN) {
  sgw.on(DescribeChapCredentialsCommand, { TargetARN: targetArn }).resolves({ ChapCredentials: pairs });
}

const store = new Map<string, string>();
/** Everything the handler logs, in every test; checked for secret values after each. */
let logs: string[] = [];
function givenSecretStore() {
  sm.on(GetSecretValueCommand).callsFake(({ SecretId }) => {
    if (!store.has(SecretId)) throw new ResourceNotFoundException({ message: 'no AWSCURRENT', $metadata: {} });
    return { SecretString: store.get(SecretId) };
  });
  sm.on(PutSecretValueCommand).callsFake(storeValue);
}
function storeValue({ SecretId, SecretString }: { SecretId: string; SecretString: string }) {
  store.set(SecretId, SecretString);
  return { ARN: SecretId, VersionId: 'v', VersionStages: ['AWSCURRENT'] };
}

beforeEach(() => {
  sgw.reset();
  sm.reset();
  cfn.reset();
  store.clear();
  givenSecretStore();
  logs = [];
  for (const level of ['log', 'info', 'warn', 'error'] as const) {
    jest.spyOn(console, level).mockImplementation((...args: unknown[]) => { logs.push(args.map(String).join(' ')); });
  }
});

afterEach(() => {
  // No secret value the fake gateway handed out may reach a log line.
  for (const value of issuedSecrets.splice(0)) expect(logs.join('\n')).not.toContain(value);
  jest.restoreAllMocks();
});

describe('Create', () => {
  test('one DescribeChapCredentials, every pair into the target secret, names and count in Data', async () => {
    const pairs = [pair(HOST_B), pair(HOST_A)];
    givenGateway(pairs);
    const outcome = await onEvent(cfnEvent('Create'));

    expect(sgw).toHaveReceivedCommandTimes(DescribeChapCredentialsCommand, 1);
    expect(sgw).toHaveReceivedCommandWith(DescribeChapCredentialsCommand, { TargetARN: DOC_TARGET_ARN });
    expect(sm).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);
    expect(JSON.parse(store.get(TARGET_SECRET_ARN)!)).toEqual({
      targetArn: DOC_TARGET_ARN,
      chapCredentials: [HOST_A, HOST_B].map((name) => {
        const p = pairs.find((x) => x.InitiatorName === name)!;
        return {
          initiatorName: name, targetArn: DOC_TARGET_ARN,
          secretToAuthenticateInitiator: p.SecretToAuthenticateInitiator, secretToAuthenticateTarget: p.SecretToAuthenticateTarget,
        };
      }),
    });
    expect(outcome).toEqual({
      status: 'SUCCESS',
      physicalResourceId: `chap:${DOC_TARGET_ARN}`,
      data: { [Attr.InitiatorNames]: `${HOST_A},${HOST_B}`, [Attr.InitiatorCount]: '2', [Attr.InitiatorNamesTruncated]: 'false' },
    });
  });

  test('declared initiators each get only their own pair', async () => {
    const pairs = [pair(HOST_A), pair(HOST_B, false)];
    givenGateway(pairs);
    await onEvent(cfnEvent('Create', properties({ Initiators: declared(HOST_A, HOST_B) })));
    expect(sm).toHaveReceivedCommandTimes(PutSecretValueCommand, 3);
    expect(JSON.parse(store.get(initiatorSecretArn(HOST_A))!)).toEqual({
      initiatorName: HOST_A, targetArn: DOC_TARGET_ARN,
      secretToAuthenticateInitiator: pairs[0].SecretToAuthenticateInitiator, secretToAuthenticateTarget: pairs[0].SecretToAuthenticateTarget,
    });
    expect(JSON.parse(store.get(initiatorSecretArn(HOST_B))!)).toEqual({
      initiatorName: HOST_B, targetArn: DOC_TARGET_ARN, secretToAuthenticateInitiator: pairs[1].SecretToAuthenticateInitiator,
    });
  });

  test('one-way CHAP (no target secret) stores the pair without secretToAuthenticateTarget', async () => {
    const p = pair(HOST_A, false);
    givenGateway([p]);
    const outcome = await onEvent(cfnEvent('Create'));
    expect(outcome.status).toBe('SUCCESS');
    const stored = JSON.parse(store.get(TARGET_SECRET_ARN)!);
    expect(stored.chapCredentials).toEqual([
      { initiatorName: HOST_A, targetArn: DOC_TARGET_ARN, secretToAuthenticateInitiator: p.SecretToAuthenticateInitiator },
    ]);
  });

  test('an empty credential list is a normal result: an empty secret list, the names +none (never empty), count 0', async () => {
    givenGateway([]);
    const outcome = await onEvent(cfnEvent('Create'));
    expect(JSON.parse(store.get(TARGET_SECRET_ARN)!)).toEqual({ targetArn: DOC_TARGET_ARN, chapCredentials: [] });
    expect(outcome.data).toEqual({ [Attr.InitiatorNames]: '+none', [Attr.InitiatorCount]: '0', [Attr.InitiatorNamesTruncated]: 'false' });
  });

  test('a declared initiator missing on the target fails naming it, and nothing is written', async () => {
    givenGateway([pair(HOST_A)]);
    await expect(onEvent(cfnEvent('Create', properties({ Initiators: declared(HOST_A, HOST_B) }))))
      .rejects.toThrow(`declared initiator(s) ${HOST_B} have no CHAP credentials on target ${DOC_TARGET_ARN} (it reports ${HOST_A})`);
    expect(sm).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  test('properties that are missing or malformed fail before any AWS call', async () => {
    await expect(onEvent(cfnEvent('Create', { TargetArn: 'arn:aws:s3:::bucket' } as never)))
      .rejects.toThrow(/^invalid properties: 'TargetArn' must be a Storage Gateway iSCSI target ARN .*got 'arn:aws:s3:::bucket'; 'TargetSecretArn' must be a secret ARN, got undefined$/);
    await expect(onEvent(cfnEvent('Create', properties({ Initiators: [{ Name: 'BAD NAME', SecretArn: 'x' }] }))))
      .rejects.toThrow(/'Initiators\[0\].Name' must be an iSCSI initiator name .*got 'BAD NAME'; 'Initiators\[0\].SecretArn' must be a secret ARN, got "x"/);
    expect(sgw).not.toHaveReceivedAnyCommand();
    expect(sm).not.toHaveReceivedAnyCommand();
  });
});

describe('Update and idempotency', () => {
  test('unchanged values create no new version', async () => {
    givenGateway([pair(HOST_A)]);
    await onEvent(cfnEvent('Create'));
    sm.resetHistory();
    const outcome = await onEvent(cfnEvent('Update'));
    expect(outcome.status).toBe('SUCCESS');
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 1);
    expect(sm).not.toHaveReceivedCommand(PutSecretValueCommand);
  });

  test('changed values are written; changed back, they are written back and end current', async () => {
    const first = pair(HOST_A);
    givenGateway([first]);
    await onEvent(cfnEvent('Create'));
    const afterCreate = store.get(TARGET_SECRET_ARN);

    givenGateway([{ ...first, SecretToAuthenticateInitiator: newSecretValue() }]);
    await onEvent(cfnEvent('Update'));
    expect(store.get(TARGET_SECRET_ARN)).not.toEqual(afterCreate);

    givenGateway([first]);
    sm.resetHistory();
    await onEvent(cfnEvent('Update'));
    expect(sm).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);
    expect(store.get(TARGET_SECRET_ARN)).toEqual(afterCreate);
  });

  test('a redelivered event reuses its ClientRequestToken, and writes nothing once applied', async () => {
    givenGateway([pair(HOST_A)]);
    const event = cfnEvent('Create', properties(), { requestId: 'same-request' });
    const other = cfnEvent('Create', properties(), { requestId: 'other-request' });
    store.clear();
    await onEvent(event);
    const token = sm.commandCalls(PutSecretValueCommand)[0].args[0].input.ClientRequestToken!;
    expect(token).toMatch(/^[0-9a-f]{64}$/);

    await onEvent(event);
    expect(sm).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);

    // Delivered again before the first write was seen: the same token, so Secrets Manager ignores it.
    store.clear();
    await onEvent(event);
    expect(sm.commandCalls(PutSecretValueCommand)[1].args[0].input.ClientRequestToken).toBe(token);
    store.clear();
    await onEvent(other);
    expect(sm.commandCalls(PutSecretValueCommand)[2].args[0].input.ClientRequestToken).not.toBe(token);
  });

  test('a token already holding the value, but not as AWSCURRENT, is followed by the next token, which makes it current', async () => {
    const p = pair(HOST_A);
    givenGateway([p]);
    const event = cfnEvent('Update', properties(), { requestId: 'older-update' });
    sm.on(PutSecretValueCommand)
      .callsFakeOnce(() => ({ ARN: TARGET_SECRET_ARN, VersionId: 'old', VersionStages: ['AWSPREVIOUS'] }))
      .callsFake(storeValue);
    const outcome = await onEvent(event);
    expect(outcome.status).toBe('SUCCESS');
    const tokens = sm.commandCalls(PutSecretValueCommand).map((c) => c.args[0].input.ClientRequestToken);
    expect(tokens).toEqual([0, 1].map((n) => clientRequestToken(`${event.StackId}\n${event.RequestId}`, TARGET_SECRET_ARN, n)));
    expect(JSON.parse(store.get(TARGET_SECRET_ARN)!).chapCredentials[0].secretToAuthenticateInitiator).toBe(p.SecretToAuthenticateInitiator);
  });

  test('a token refused because it holds another value is followed by the next token', async () => {
    givenGateway([pair(HOST_A)]);
    sm.on(PutSecretValueCommand).rejectsOnce(new SecretsManagerServiceException({
      name: 'ResourceExistsException', $fault: 'client', message: 'You can\'t modify an existing version', $metadata: { httpStatusCode: 400 },
    })).callsFake(storeValue);
    await onRefresh({ ChapCredentialsRefresh: properties() }, 'retried-invocation');
    expect(sm.commandCalls(PutSecretValueCommand).map((c) => c.args[0].input.ClientRequestToken))
      .toEqual([0, 1].map((n) => clientRequestToken('refresh\nretried-invocation', TARGET_SECRET_ARN, n)));
    expect(store.has(TARGET_SECRET_ARN)).toBe(true);
  });

  test('when every token of the request is taken, the write fails with a reason that says so', async () => {
    givenGateway([pair(HOST_A)]);
    sm.on(PutSecretValueCommand).resolves({ ARN: TARGET_SECRET_ARN, VersionId: 'old', VersionStages: [] });
    await expect(onEvent(cfnEvent('Create'))).rejects.toThrow(
      `PutSecretValue failed for secret ${TARGET_SECRET_ARN}: ResourceExistsException (all ${TOKENS_PER_REQUEST} ClientRequestTokens of this request hold other versions)`);
    expect(sm).toHaveReceivedCommandTimes(PutSecretValueCommand, TOKENS_PER_REQUEST);
  });

  test('a secret with no current value yet is written', async () => {
    givenGateway([pair(HOST_A)]);
    await onEvent(cfnEvent('Create'));
    expect(sm).toHaveReceivedCommandTimes(GetSecretValueCommand, 1);
    expect(sm).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);
  });

  test('a new target ARN is a new physical id (replacement); the same target keeps its id', async () => {
    givenGateway([pair(HOST_A, true, OTHER_TARGET_ARN)], OTHER_TARGET_ARN);
    givenGateway([pair(HOST_A)]);
    const same = await onEvent(cfnEvent('Update'));
    expect(same.physicalResourceId).toBe(`chap:${DOC_TARGET_ARN}`);
    const moved = await onEvent(cfnEvent('Update', properties({ TargetArn: OTHER_TARGET_ARN }), { oldProps: properties() }));
    expect(moved.physicalResourceId).toBe(`chap:${OTHER_TARGET_ARN}`);
  });
});

describe('tokens: decided without a client', () => {
  test('each attempt of a request has its own token; the first is the same for every delivery of the request', () => {
    const tokens = [0, 1, 2].map((n) => clientRequestToken('stack\nrequest-1', TARGET_SECRET_ARN, n));
    expect(new Set(tokens).size).toBe(3);
    for (const token of tokens) expect(token).toMatch(/^[0-9a-f]{64}$/); // within Secrets Manager's 32 to 64 characters
    expect(clientRequestToken('stack\nrequest-1', TARGET_SECRET_ARN, 0)).toBe(tokens[0]);
    expect(clientRequestToken('stack\nrequest-2', TARGET_SECRET_ARN, 0)).not.toBe(tokens[0]);
    expect(clientRequestToken('stack\nrequest-1', initiatorSecretArn(HOST_A), 0)).not.toBe(tokens[0]);
  });

  test('a token never depends on the value written', async () => {
    const tokensFor = async (value: Pair) => {
      sm.resetHistory();
      store.clear();
      givenGateway([value]);
      await onEvent(cfnEvent('Create', properties(), { requestId: 'fixed' }));
      return sm.commandCalls(PutSecretValueCommand).map((c) => c.args[0].input.ClientRequestToken);
    };
    const one = await tokensFor(pair(HOST_A));
    expect(one).toHaveLength(1);
    expect(await tokensFor(pair(HOST_A))).toEqual(one);
  });

  test.each([
    ['a new version: AWSCURRENT', { versionStages: ['AWSCURRENT'] }, 'current'],
    ['an ignored repeat whose version is still current', { versionStages: ['AWSCURRENT', 'AWSPENDING'] }, 'current'],
    ['an ignored repeat of a version no longer current', { versionStages: ['AWSPREVIOUS'] }, 'token-taken'],
    ['an ignored repeat of a version without stages', { versionStages: [] }, 'token-taken'],
    ['an answer without stages', {}, 'token-taken'],
    ['ResourceExistsException: the token holds another value', { errorName: 'ResourceExistsException' }, 'token-taken'],
  ])('%s', (_, answer, expected) => {
    expect(putOutcome(answer)).toBe(expected);
  });
});

describe('Delete', () => {
  test('makes no AWS call and succeeds with the id it was given, also after a failed Create', async () => {
    for (const id of [`chap:${DOC_TARGET_ARN}`, 'chap:invalid:request-1']) {
      const outcome = await onEvent(cfnEvent('Delete', properties(), { physicalResourceId: id }));
      expect(outcome).toEqual({ status: 'SUCCESS', physicalResourceId: id });
    }
    expect(sgw).not.toHaveReceivedAnyCommand();
    expect(sm).not.toHaveReceivedAnyCommand();
  });
});

describe('errors become one-line reasons: operation, resource, AWS code', () => {
  test('an unknown target: InvalidGatewayRequestException with its errorCode', async () => {
    sgw.on(DescribeChapCredentialsCommand).rejects(new InvalidGatewayRequestException({
      message: 'The specified target was not found.', error: { errorCode: 'TargetNotFound' }, $metadata: { httpStatusCode: 400 },
    }));
    await expect(onEvent(cfnEvent('Create'))).rejects.toThrow(
      `DescribeChapCredentials failed for target ${DOC_TARGET_ARN}: InvalidGatewayRequestException (TargetNotFound, HTTP 400)`);
    expect(sm).not.toHaveReceivedCommand(PutSecretValueCommand); // the stored values are read alongside, never written
  });

  test('a gateway internal error', async () => {
    sgw.on(DescribeChapCredentialsCommand).rejects(new InternalServerError({ message: 'boom', $metadata: { httpStatusCode: 500 } }));
    await expect(onEvent(cfnEvent('Create'))).rejects.toThrow(`DescribeChapCredentials failed for target ${DOC_TARGET_ARN}: InternalServerError (HTTP 500)`);
  });

  test('a write refused by Secrets Manager', async () => {
    givenGateway([pair(HOST_A)]);
    sm.on(PutSecretValueCommand).rejects(new SecretsManagerServiceException({
      name: 'AccessDeniedException', $fault: 'client', message: 'not allowed', $metadata: { httpStatusCode: 400 },
    }));
    await expect(onEvent(cfnEvent('Create'))).rejects.toThrow(`PutSecretValue failed for secret ${TARGET_SECRET_ARN}: AccessDeniedException (HTTP 400)`);
  });

  test('a read refused by Secrets Manager', async () => {
    givenGateway([pair(HOST_A)]);
    sm.on(GetSecretValueCommand).rejects(new SecretsManagerServiceException({
      name: 'DecryptionFailure', $fault: 'client', message: 'kms', $metadata: { httpStatusCode: 400 },
    }));
    await expect(onEvent(cfnEvent('Create'))).rejects.toThrow(`GetSecretValue failed for secret ${TARGET_SECRET_ARN}: DecryptionFailure (HTTP 400)`);
    expect(sm).not.toHaveReceivedCommand(PutSecretValueCommand);
  });
});

describe('handler: the response protocol', () => {
  let server: http.Server;
  let responses: { url: string; body: Record<string, unknown>; bytes: number }[];
  let url: string;

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        responses.push({ url: req.url!, body: JSON.parse(body), bytes: Buffer.byteLength(body) });
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cfn-response?X-Amz-Signature=secret-signature`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    responses = [];
  });

  const context = (remainingMs = 60_000) => ({ getRemainingTimeInMillis: () => remainingMs, logStreamName: 'stream' }) as Context;
  const run = async (event: CloudFormationCustomResourceEvent, remainingMs?: number) => {
    await handler({ ...event, ResponseURL: url }, context(remainingMs));
    expect(responses).toHaveLength(1);
    return responses[0];
  };

  test('SUCCESS echoes the event ids, carries flat string Data, and neither logs nor returns a secret or the ResponseURL', async () => {
    const pairs = [pair(HOST_A), pair(HOST_B, false)];
    givenGateway(pairs);
    const event = cfnEvent('Create', properties({ Initiators: declared(HOST_A) }));
    const response = await run(event);
    expect(response.url).toBe('/cfn-response?X-Amz-Signature=secret-signature');
    expect(response.body).toEqual({
      Status: 'SUCCESS',
      PhysicalResourceId: `chap:${DOC_TARGET_ARN}`,
      StackId: event.StackId,
      RequestId: event.RequestId,
      LogicalResourceId: event.LogicalResourceId,
      NoEcho: false,
      Data: { [Attr.InitiatorNames]: `${HOST_A},${HOST_B}`, [Attr.InitiatorCount]: '2', [Attr.InitiatorNamesTruncated]: 'false' },
    });
    const everything = JSON.stringify(response.body) + logs.join('\n');
    for (const p of pairs) {
      for (const value of [p.SecretToAuthenticateInitiator, p.SecretToAuthenticateTarget].filter(Boolean)) expect(everything).not.toContain(value);
    }
    expect(logs.join('\n')).not.toContain('secret-signature');
    expect(logs.length).toBeGreaterThan(0);
  });

  test('FAILED carries the one-line reason and a physical id CloudFormation can later delete', async () => {
    sgw.on(DescribeChapCredentialsCommand).rejects(new InvalidGatewayRequestException({
      message: 'not found', error: { errorCode: 'TargetNotFound' }, $metadata: { httpStatusCode: 400 },
    }));
    const response = await run(cfnEvent('Create'));
    expect(response.body).toMatchObject({
      Status: 'FAILED',
      PhysicalResourceId: `chap:${DOC_TARGET_ARN}`,
      Reason: `DescribeChapCredentials failed for target ${DOC_TARGET_ARN}: InvalidGatewayRequestException (TargetNotFound, HTTP 400)`,
    });
    expect(response.body.Data).toBeUndefined();
  });

  test('an unexpected error is reported by name only, never with its message or stack', async () => {
    givenGateway([pair(HOST_A)]);
    const leaky = new TypeError(`cannot read ${newSecretValue()}`);
    sm.on(GetSecretValueCommand).callsFake(() => { throw leaky; });
    const response = await run(cfnEvent('Create'));
    expect(response.body.Reason).toBe(`GetSecretValue failed for secret ${TARGET_SECRET_ARN}: TypeError`);
    expect(logs.join('\n')).not.toContain(leaky.message);
  });

  test('an API that does not answer is FAILED before the function times out, naming the pending call', async () => {
    sgw.on(DescribeChapCredentialsCommand).callsFake(() => new Promise(() => undefined));
    const started = Date.now();
    const response = await run(cfnEvent('Create'), 1_600);
    expect(Date.now() - started).toBeLessThan(1_600);
    expect(response.body.Status).toBe('FAILED');
    expect(response.body.Reason).toBe(`no answer within 600 ms, before the function's timeout: still waiting for DescribeChapCredentials for target ${DOC_TARGET_ARN}`);
  });

  test('names that would not fit in 4096 bytes are shortened, counted exactly, flagged and marked', async () => {
    const names = Array.from({ length: 40 }, (_, i) => `iqn.1991-05.com.microsoft:host-${String(i).padStart(2, '0')}.${'x'.repeat(80)}.example.com`);
    givenGateway(names.map((n) => pair(n)));
    const response = await run(cfnEvent('Create'));
    expect(response.bytes).toBeLessThanOrEqual(MAX_RESPONSE_BYTES);
    const data = response.body.Data as Record<string, string>;
    expect(data[Attr.InitiatorCount]).toBe('40');
    expect(data[Attr.InitiatorNamesTruncated]).toBe('true');
    const shown = data[Attr.InitiatorNames].split(',');
    const marker = shown.pop()!;
    expect(shown).toEqual(names.slice(0, shown.length));
    expect(marker).toBe(`+${40 - shown.length}-more`);
    expect(shown.length).toBeGreaterThan(20);
  });

  test('a huge reason is cut to fit, and the body stays within 4096 bytes', async () => {
    const many = Array.from({ length: 30 }, (_, i) => `iqn.2000-01.com.example:${'h'.repeat(200)}${i}`);
    givenGateway([]);
    const response = await run(cfnEvent('Create', properties({ Initiators: declared(...many) })));
    expect(response.body.Status).toBe('FAILED');
    expect(response.bytes).toBeLessThanOrEqual(MAX_RESPONSE_BYTES);
    expect(response.body.Reason).toMatch(/^declared initiator\(s\) .*\.\.\.$/);
  });

  test('Delete answers SUCCESS without calling AWS', async () => {
    const response = await run(cfnEvent('Delete'));
    expect(response.body).toMatchObject({ Status: 'SUCCESS', PhysicalResourceId: `chap:${DOC_TARGET_ARN}` });
    expect(sgw).not.toHaveReceivedAnyCommand();
    expect(sm).not.toHaveReceivedAnyCommand();
  });
});

describe('scheduled refresh', () => {
  const refresh = (props = properties()) => ({ ChapCredentialsRefresh: props });

  test('writes what changed, with a token from the invocation id so a retried invocation adds no version', async () => {
    givenGateway([pair(HOST_A)]);
    await onRefresh(refresh(), 'invocation-1');
    await onRefresh(refresh(), 'invocation-1');
    expect(sm).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);
  });

  test('never blanks the target secret when the gateway reports no credentials', async () => {
    givenGateway([pair(HOST_A)]);
    await onRefresh(refresh(), 'invocation-1');
    const stored = store.get(TARGET_SECRET_ARN);
    givenGateway([]);
    await onRefresh(refresh(), 'invocation-2');
    expect(store.get(TARGET_SECRET_ARN)).toBe(stored);
    expect(sm).toHaveReceivedCommandTimes(PutSecretValueCommand, 1);
  });

  test('is told apart from CloudFormation events', () => {
    expect(isRefreshEvent(refresh())).toBe(true);
    expect(isRefreshEvent(cfnEvent('Create'))).toBe(false);
  });
});

describe('managed credentials (strict stubs)', () => {
  const KEY_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:ChapCredentialKey-KeY123';
  const KEY = 'x'.repeat(64);
  const managedProps = (...names: string[]) => properties({ Initiators: declared(...names), Manage: 'mutual', CredentialKeyArn: KEY_ARN });
  const ours = (name: string) => stackCredentials(
    { key: KEY, targetArn: DOC_TARGET_ARN, initiatorName: name, secretArn: initiatorSecretArn(name) }, ChapMode.MUTUAL);
  const asGateway = (p: ReturnType<typeof ours>): Pair => ({
    InitiatorName: p.initiatorName, TargetARN: DOC_TARGET_ARN, SecretToAuthenticateInitiator: p.secretToAuthenticateInitiator,
    SecretToAuthenticateTarget: p.secretToAuthenticateTarget,
  });
  beforeEach(() => {
    store.set(KEY_ARN, KEY);
    sgw.on(UpdateChapCredentialsCommand).resolves({});
    sgw.on(DeleteChapCredentialsCommand).resolves({});
  });

  test('Create sets exactly the missing initiator\'s derived credentials, once, and stores what the gateway then holds', async () => {
    const adopted = pair(HOST_A);
    givenGateway([adopted]);
    await onEvent(cfnEvent('Create', managedProps(HOST_A, HOST_B)));
    const expected = ours(HOST_B);
    expect(sgw).toHaveReceivedCommandTimes(UpdateChapCredentialsCommand, 1);
    expect(sgw).toHaveReceivedCommandWith(UpdateChapCredentialsCommand, {
      TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_B,
      SecretToAuthenticateInitiator: expected.secretToAuthenticateInitiator, SecretToAuthenticateTarget: expected.secretToAuthenticateTarget,
    });
    expect(sgw).not.toHaveReceivedCommand(DeleteChapCredentialsCommand);
    expect(JSON.parse(store.get(initiatorSecretArn(HOST_B))!)).toEqual(expected);
    const all = JSON.parse(store.get(TARGET_SECRET_ARN)!) as { chapCredentials: { initiatorName: string }[] };
    expect(all.chapCredentials.map((c) => c.initiatorName)).toEqual([HOST_A, HOST_B]);
    for (const value of [expected.secretToAuthenticateInitiator, expected.secretToAuthenticateTarget!]) expect(logs.join('\n')).not.toContain(value);
  });

  test('an Update with nothing to change calls neither UpdateChapCredentials nor DeleteChapCredentials', async () => {
    givenGateway([asGateway(ours(HOST_A))]);
    await onEvent(cfnEvent('Update', managedProps(HOST_A), { oldProps: managedProps(HOST_A) }));
    expect(sgw).not.toHaveReceivedCommand(UpdateChapCredentialsCommand);
    expect(sgw).not.toHaveReceivedCommand(DeleteChapCredentialsCommand);
  });

  test('an Update dropping an initiator deletes the stack\'s credentials of it; one already gone counts as removed', async () => {
    givenGateway([asGateway(ours(HOST_A)), asGateway(ours(HOST_B))]);
    sgw.on(DeleteChapCredentialsCommand).rejects(new InvalidGatewayRequestException({
      message: 'gone', error: { errorCode: 'ChapCredentialNotFound' }, $metadata: { httpStatusCode: 400 },
    }));
    const outcome = await onEvent(cfnEvent('Update', managedProps(HOST_A), { oldProps: managedProps(HOST_A, HOST_B) }));
    expect(outcome.status).toBe('SUCCESS');
    expect(sgw).toHaveReceivedCommandWith(DeleteChapCredentialsCommand, { TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_B });
    expect(sgw).not.toHaveReceivedCommand(UpdateChapCredentialsCommand);
  });

  test('Delete removes only the stack\'s credentials; a target that is gone needs no removal', async () => {
    givenGateway([asGateway(ours(HOST_A)), pair(HOST_B)]);
    await onEvent(cfnEvent('Delete', managedProps(HOST_A, HOST_B)));
    expect(sgw).toHaveReceivedCommandTimes(DeleteChapCredentialsCommand, 1);
    expect(sgw).toHaveReceivedCommandWith(DeleteChapCredentialsCommand, { TargetARN: DOC_TARGET_ARN, InitiatorName: HOST_A });

    sgw.reset();
    sgw.on(DescribeChapCredentialsCommand).rejects(new InvalidGatewayRequestException({
      message: 'not found', error: { errorCode: 'TargetNotFound' }, $metadata: { httpStatusCode: 400 },
    }));
    expect((await onEvent(cfnEvent('Delete', managedProps(HOST_A)))).status).toBe('SUCCESS');
    expect(sgw).not.toHaveReceivedCommand(DeleteChapCredentialsCommand);
  });

  test('RemoveAdoptedCredentials removes adopted credentials too, but never while the stack rolls back or its status is unknown', async () => {
    givenGateway([pair(HOST_A), asGateway(ours(HOST_B))]);
    const props = { ...managedProps(HOST_A, HOST_B), RemoveAdoptedCredentials: 'true' };
    const removed = async (status: string | Error) => {
      cfn.reset();
      sgw.resetHistory();
      if (status instanceof Error) cfn.on(DescribeStacksCommand).rejects(status);
      else cfn.on(DescribeStacksCommand, { StackName: cfnEvent('Delete').StackId }).resolves({ Stacks: [{ StackName: 'Demo', StackStatus: status } as never] });
      await onEvent(cfnEvent('Delete', props));
      return sgw.commandCalls(DeleteChapCredentialsCommand).map((c) => c.args[0].input.InitiatorName).sort();
    };
    expect(await removed('DELETE_IN_PROGRESS')).toEqual([HOST_A, HOST_B]);
    expect(await removed('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS')).toEqual([HOST_A, HOST_B]);
    for (const rollback of ['ROLLBACK_IN_PROGRESS', 'UPDATE_ROLLBACK_IN_PROGRESS', 'UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS']) {
      expect(await removed(rollback)).toEqual([HOST_B]); // only the stack's own
    }
    expect(await removed(new Error('AccessDenied'))).toEqual([HOST_B]);
  });

  test('the stack status is read only when adopted credentials would be removed', async () => {
    givenGateway([asGateway(ours(HOST_B))]);
    await onEvent(cfnEvent('Delete', { ...managedProps(HOST_B), RemoveAdoptedCredentials: 'true' }));
    await onEvent(cfnEvent('Delete', managedProps(HOST_B)));
    expect(cfn).not.toHaveReceivedAnyCommand();
    expect(sgw).toHaveReceivedCommandTimes(DeleteChapCredentialsCommand, 2);
  });

  test('invalid managed properties fail before any call', async () => {
    await expect(onEvent(cfnEvent('Create', properties({ Manage: 'both', Initiators: [] }))))
      .rejects.toThrow("invalid properties: 'Manage' must be one of 'one-way', 'mutual', got \"both\"; 'CredentialKeyArn' must be a secret ARN, got undefined; "
        + "'Initiators' must declare at least one initiator when 'Manage' is set");
    expect(sgw).not.toHaveReceivedAnyCommand();
  });
});
