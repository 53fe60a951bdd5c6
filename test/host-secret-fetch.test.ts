/**
 * Images without the AWS CLI (Ubuntu, RHEL): the Linux script reads the secret with python3 alone, signing
 * GetSecretValue with Signature Version 4 and the instance role's credentials from IMDSv2. Here against the emulator,
 * behind a proxy that checks each signature as the AWS SDK's own signer computes it, and a fake instance metadata
 * service on 127.0.0.1 that hands out credentials only for a session token.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Sha256 } from '@aws-crypto/sha256-js';
import { SignatureV4 } from '@smithy/signature-v4';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ChapCredentials } from '../lib';
import { Emulator, startEmulator } from '../local/emulator';
import { DOC_TARGET_ARN, HOST_B, secretValue } from './fixtures';
import { deployedText, newStack, runLinux } from './host-harness';

jest.setTimeout(60_000);

const SCRIPT = fs.readFileSync(path.join(__dirname, '..', 'lib', 'host', 'connect-linux.sh'), 'utf8');
/** The python program exactly as the script hands it to python3 (its quoted heredoc). */
const PROGRAM = /<<'PYTHON'\n([^]*?\n)PYTHON\n/.exec(SCRIPT)![1];
const ROLE = { AccessKeyId: 'ASIAEXAMPLEHOSTROLE1', SecretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', Token: 'IQoJb3JpZ2luX2VjEXAMPLETOKEN' };
const IMDS_TOKEN = 'AQAEAFakeImdsV2SessionToken==';

let emulator: Emulator;
let imds: http.Server;
let proxy: http.Server;
const seen = { tokenPuts: 0, credentialGets: 0, unauthenticatedGets: 0, verified: 0, rejected: 0 };
const url = (server: http.Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

async function listen(server: http.Server): Promise<http.Server> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

beforeAll(async () => {
  emulator = await startEmulator();
  imds = await listen(http.createServer((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token' && req.headers['x-aws-ec2-metadata-token-ttl-seconds']) {
      seen.tokenPuts++;
      res.end(IMDS_TOKEN);
      return;
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== IMDS_TOKEN) {
      seen.unauthenticatedGets++;
      res.statusCode = 401;
      res.end();
      return;
    }
    if (req.url === '/latest/meta-data/iam/security-credentials/') {
      res.end('HostRole');
      return;
    }
    if (req.url === '/latest/meta-data/iam/security-credentials/HostRole') {
      seen.credentialGets++;
      res.end(JSON.stringify({ Code: 'Success', Type: 'AWS-HMAC', ...ROLE, Expiration: '2099-01-01T00:00:00Z' }));
      return;
    }
    res.statusCode = 404;
    res.end();
  }));
  // Checks the signature as the AWS SDK computes it, over the headers the request says it signed, then forwards.
  proxy = await listen(http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void (async () => {
      const body = Buffer.concat(chunks);
      const auth = String(req.headers.authorization ?? '');
      const signedNames = /SignedHeaders=([^,]+)/.exec(auth)?.[1].split(';') ?? [];
      const headers = Object.fromEntries(signedNames.map((n) => [n, String(req.headers[n])]));
      const date = String(req.headers['x-amz-date']);
      const signer = new SignatureV4({
        service: 'secretsmanager', region: 'us-east-1', sha256: Sha256, applyChecksum: false,
        credentials: { accessKeyId: ROLE.AccessKeyId, secretAccessKey: ROLE.SecretAccessKey, sessionToken: ROLE.Token },
      });
      const expected = await signer.sign({
        method: req.method!, protocol: 'http:', hostname: '127.0.0.1', path: req.url!, headers, body: body.toString('utf8'), query: {},
      }, { signingDate: new Date(date.replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z')) });
      if (!signedNames.includes('x-amz-security-token') || expected.headers.authorization !== auth) {
        seen.rejected++;
        res.writeHead(403, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify({ __type: 'InvalidSignatureException', message: 'The request signature we calculated does not match' }));
        return;
      }
      seen.verified++;
      const forward = http.request(`${emulator.endpoint}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      forward.end(body);
    })());
  }));
});

afterAll(async () => {
  await emulator.stop();
  for (const server of [imds, proxy]) await new Promise((resolve) => server.close(resolve));
});

function storedSecret(): { arn: string; current: string; pending: string } {
  const current = JSON.stringify({ initiatorName: HOST_B, secretToAuthenticateInitiator: secretValue(), secretToAuthenticateTarget: secretValue() });
  const pending = JSON.stringify({ initiatorName: HOST_B, secretToAuthenticateInitiator: secretValue() });
  const { ARN } = emulator.secretsManager.CreateSecret({ Name: `host-b-${secretValue()}`, SecretString: current });
  emulator.secretsManager.PutSecretValue({ SecretId: ARN, SecretString: pending, VersionStages: ['AWSPENDING'] });
  return { arn: ARN, current, pending };
}

/** The program as the script runs it: `python3 - REGION SECRET_ID STAGE`, the program on standard input. */
function fetch(arn: string, stage: string, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile('python3', ['-', 'us-east-1', arn, stage], {
      env: {
        PATH: process.env.PATH, AWS_ENDPOINT_URL_SECRETS_MANAGER: url(proxy), AWS_EC2_METADATA_SERVICE_ENDPOINT: url(imds), ...env,
      },
    }, (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }));
    child.stdin!.end(PROGRAM);
  });
}

test('reads AWSCURRENT and a given stage with the instance role, every request signed as the AWS SDK signs it', async () => {
  const { arn, current, pending } = storedSecret();
  const before = { ...seen };
  expect(await fetch(arn, '')).toEqual({ code: 0, stdout: current, stderr: '' });
  expect(await fetch(arn, 'AWSPENDING')).toEqual({ code: 0, stdout: pending, stderr: '' });
  expect(seen.verified - before.verified).toBe(2);
  expect(seen.rejected).toBe(0);
  expect(seen.tokenPuts - before.tokenPuts).toBe(2);
  expect(seen.credentialGets - before.credentialGets).toBe(2);
  expect(seen.unauthenticatedGets).toBe(0);
  const calls = emulator.callsOf('GetSecretValue', true);
  expect(calls.length).toBeGreaterThanOrEqual(2);
});

test('AWS_ENDPOINT_URL serves when the Secrets Manager one is not set; a wrong key is refused by the checking proxy', async () => {
  const { arn, current } = storedSecret();
  expect(await fetch(arn, '', { AWS_ENDPOINT_URL_SECRETS_MANAGER: '', AWS_ENDPOINT_URL: url(proxy) })).toEqual({ code: 0, stdout: current, stderr: '' });
  // Credentials from the environment take precedence (as in the AWS SDKs); here a wrong secret key: the proxy refuses.
  const refused = await fetch(arn, '', { AWS_ACCESS_KEY_ID: ROLE.AccessKeyId, AWS_SECRET_ACCESS_KEY: 'not-the-key', AWS_SESSION_TOKEN: ROLE.Token });
  expect(refused).toEqual({ code: 1, stdout: '', stderr: 'GetSecretValue failed: InvalidSignatureException: The request signature we calculated does not match\n' });
});

test('failures are one line on standard error, with AWS\'s error code, and nothing on standard output', async () => {
  const missing = await fetch('arn:aws:secretsmanager:us-east-1:111122223333:secret:absent-AbCdEf', '');
  expect(missing).toEqual({ code: 1, stdout: '', stderr: "GetSecretValue failed: ResourceNotFoundException: Secrets Manager can't find the specified secret.\n" });
  const noStage = await fetch(storedSecret().arn, 'AWSPREVIOUS');
  expect(noStage.stderr).toBe("GetSecretValue failed: ResourceNotFoundException: Secrets Manager can't find the specified secret value for staging label: AWSPREVIOUS\n");
  const noImds = await fetch(storedSecret().arn, '', { AWS_EC2_METADATA_SERVICE_ENDPOINT: 'http://127.0.0.1:9' });
  expect(noImds.code).toBe(1);
  expect(noImds.stderr).toMatch(/^no instance role credentials from the instance metadata service \(IMDSv2\) at http:\/\/127\.0\.0\.1:9: .*\n$/);
});

test('the whole script on an image without the AWS CLI: python3 reads the pair, and no program is given a secret', async () => {
  const { arn, current } = storedSecret();
  const pair = JSON.parse(current) as Record<string, string>;
  const stack = newStack();
  const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_B] });
  const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  const wiring = chap.wireHost({ initiatorName: HOST_B, portalAddress: '10.0.0.10', grantee: role });
  const secretRef = stack.getLogicalId(chap.initiatorSecret(HOST_B).node.scope!.node.defaultChild as never);
  const commands = deployedText(stack, wiring.linuxCommands, { [secretRef]: arn });
  const run = await runLinux({
    commands, hostNetwork: true,
    env: { CHAP_RETRY_SECONDS: '0', AWS_ENDPOINT_URL_SECRETS_MANAGER: url(proxy), AWS_EC2_METADATA_SERVICE_ENDPOINT: url(imds) },
  });
  expect(run.status).toBe(0);
  expect(run.recordsAtLogin[0]).toContain(`node.session.auth.password = ${pair.secretToAuthenticateInitiator}`);
  expect(run.recordsAtLogin[0]).toContain(`node.session.auth.password_in = ${pair.secretToAuthenticateTarget}`);
  expect(run.execs).toMatch(new RegExp(`execve\\("[^"]*/python3", \\["[^"]*python3", "-", "us-east-1", "${arn}", ""\\]`));
  for (const secret of [pair.secretToAuthenticateInitiator, pair.secretToAuthenticateTarget]) {
    expect(run.execs).not.toContain(secret);
    expect(run.output).not.toContain(secret);
  }
});
