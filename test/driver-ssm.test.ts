/**
 * The emulator's Parameter Store, which the driver's AWS::SSM::Parameter resources and SSM references use, over the
 * wire as a function would reach it (AWS JSON 1.1, `AmazonSSM.<Operation>`): values of 1 to 4096 characters,
 * versions and `NAME:VERSION` selectors, no overwrite without Overwrite, SSM's error types.
 */
import { Emulator, startEmulator } from '../local/emulator';

let emulator: Emulator;

beforeEach(async () => {
  emulator = await startEmulator();
});

afterEach(async () => {
  await emulator.stop();
});

/** One SSM call over HTTP, as the SDK sends it; returns the status and the parsed body. */
async function ssm(operation: string, input: Record<string, unknown>): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${emulator.endpoint}/`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': `AmazonSSM.${operation}`,
      authorization: 'AWS4-HMAC-SHA256 Credential=ASIALOCALEMULATOR000/20261201/us-east-1/ssm/aws4_request, SignedHeaders=host, Signature=0',
    },
    body: JSON.stringify(input),
  });
  return { status: response.status, body: await response.json() as Record<string, unknown> };
}

test('PutParameter stores version 1, an overwrite version 2; GetParameter reads the latest or a NAME:VERSION selector', async () => {
  expect(await ssm('PutParameter', { Name: '/app/names', Value: 'a', Type: 'String' })).toEqual({ status: 200, body: { Version: 1, Tier: 'Standard' } });
  expect((await ssm('PutParameter', { Name: '/app/names', Value: 'b', Overwrite: true })).body).toEqual({ Version: 2, Tier: 'Standard' });
  expect((await ssm('GetParameter', { Name: '/app/names' })).body.Parameter).toMatchObject({
    Name: '/app/names', Type: 'String', Value: 'b', Version: 2, ARN: `arn:aws:ssm:us-east-1:${emulator.account}:parameter/app/names`,
  });
  expect((await ssm('GetParameter', { Name: '/app/names:1' })).body.Parameter).toMatchObject({ Value: 'a', Version: 1, Selector: ':1' });
  expect(await ssm('GetParameters', { Names: ['/app/names', '/app/missing'] })).toMatchObject({
    status: 200, body: { Parameters: [expect.objectContaining({ Value: 'b' })], InvalidParameters: ['/app/missing'] },
  });
});

test.each<[string, string, Record<string, unknown>, string, string | RegExp]>([
  ['an empty value', 'PutParameter', { Name: '/p', Value: '', Type: 'String' }, 'ValidationException',
    "1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1"],
  ['4097 characters', 'PutParameter', { Name: '/p', Value: 'x'.repeat(4097), Type: 'String' }, 'ValidationException',
    /^Standard tier parameters support a maximum parameter value of 4096 characters/],
  ['an existing name without Overwrite', 'PutParameter', { Name: '/cdk-bootstrap/hnb659fds/version', Value: '1', Type: 'String' },
    'ParameterAlreadyExists', /^The parameter already exists/],
  ['a new name without Type', 'PutParameter', { Name: '/p', Value: 'v' }, 'ValidationException', 'A parameter type is required when you create a parameter.'],
  ['a missing parameter', 'GetParameter', { Name: '/missing' }, 'ParameterNotFound', ''],
  ['a missing version', 'GetParameter', { Name: '/cdk-bootstrap/hnb659fds/version:9' }, 'ParameterVersionNotFound', ''],
  ['deleting a missing parameter', 'DeleteParameter', { Name: '/missing' }, 'ParameterNotFound', ''],
])('%s: %s refuses it', async (_, operation, input, type, message) => {
  const { status, body } = await ssm(operation, input);
  expect([status, body.__type]).toEqual([400, type]);
  if (typeof message === 'string') expect(body.message).toBe(message);
  else expect(body.message).toMatch(message);
});

test('negative controls: 1 and 4096 characters are stored; DeleteParameter removes a parameter', async () => {
  expect((await ssm('PutParameter', { Name: 'one', Value: 'x', Type: 'String' })).status).toBe(200);
  expect((await ssm('PutParameter', { Name: 'full', Value: 'x'.repeat(4096), Type: 'String' })).status).toBe(200);
  expect((await ssm('DeleteParameter', { Name: 'one' })).status).toBe(200);
  expect(emulator.ssm.value('one')).toBeUndefined();
});

test('the account is bootstrapped for the CDK: the default synthesizer\'s version parameter exists', async () => {
  expect((await ssm('GetParameter', { Name: '/cdk-bootstrap/hnb659fds/version' })).body.Parameter).toMatchObject({ Value: '30' });
});
