/**
 * The Linux boot commands wireHost returns, rendered from a synthesized app with the tokens resolved as CloudFormation
 * would, run verbatim under bash (with the outer `set -x` common in user data) against stand-ins for aws, iscsiadm and
 * iscsid (test/host-harness.ts): what they do, what they wait for, and that no CHAP secret reaches a process's
 * arguments, the log, or any file other than the root-only node record. The real initiator and target are the rig's.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ChapCredentials } from '../lib';
import { DOC_TARGET_ARN, HOST_B, secretValue } from './fixtures';
import { AwsAnswer, DEPLOYED, deployedText, expectContained, newStack, runLinux, scriptOf } from './host-harness';

const TARGET_IQN = 'iqn.1997-05.com.amazon:myvolume';

function commands(portalAddress = '10.0.0.10'): { text: string; secretArn: string } {
  const stack = newStack();
  const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_B] });
  const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  const wiring = chap.wireHost({ initiatorName: HOST_B, portalAddress, grantee: role });
  const text = deployedText(stack, wiring.linuxCommands);
  return { text, secretArn: /^CHAP_SECRET_ID='(.*)'$/m.exec(text)![1] };
}

/** A pair as the handler stores it, with secrets that need JSON escapes and shell quoting. */
function pair(mutual: boolean) {
  const initiator = `a"b\\c'$${secretValue().slice(0, 9)}`;
  const target = `t/d$(${secretValue().slice(0, 9)}`;
  const value = JSON.stringify({
    initiatorName: HOST_B, targetArn: DOC_TARGET_ARN, secretToAuthenticateInitiator: initiator,
    ...(mutual ? { secretToAuthenticateTarget: target } : {}),
  });
  return { initiator, target, value, secrets: mutual ? [initiator, target] : [initiator] };
}

jest.setTimeout(60_000);

const fast = { CHAP_RETRY_SECONDS: '0' };
const node = (...rest: string[]) => `iscsiadm -m node -T ${TARGET_IQN} -p 10.0.0.10:3260${rest.length ? ' ' : ''}${rest.join(' ')}`;

test('mutual CHAP: the exact calls, the node record at login, AWS\'s settings, and no secret anywhere else', async () => {
  const { text, secretArn } = commands();
  const { initiator, target, value, secrets } = pair(true);
  const run = await runLinux({ commands: text, aws: [{ value }], env: fast });
  expect(run.status).toBe(0);
  expect(run.calls).toEqual([
    'iscsid ',
    node(),
    node('-o new'),
    node('-o update -n node.session.timeo.replacement_timeout -v 600'),
    node('-o update -n node.conn[0].timeo.noop_out_interval -v 60'),
    node('-o update -n node.conn[0].timeo.noop_out_timeout -v 600'),
    node('-o update -n node.startup -v automatic'),
    `aws secretsmanager get-secret-value --region ${DEPLOYED.region} --secret-id ${secretArn} --query SecretString --output text`,
    node('--login'),
  ]);
  const [record] = run.recordsAtLogin;
  expect(record.split('\n')).toEqual(expect.arrayContaining([
    'node.startup = automatic',
    'node.session.timeo.replacement_timeout = 600',
    'node.conn[0].timeo.noop_out_interval = 60',
    'node.conn[0].timeo.noop_out_timeout = 600',
    'node.session.auth.authmethod = CHAP',
    `node.session.auth.username = ${HOST_B}`,
    `node.session.auth.password = ${initiator}`,
    `node.session.auth.username_in = ${TARGET_IQN}`,
    `node.session.auth.password_in = ${target}`,
  ]));
  // Each setting once; the record still ends as iscsiadm writes it.
  expect(record.match(/^node\.session\.auth\.authmethod/gm)).toHaveLength(1);
  expect(record.trimEnd().split('\n').pop()).toBe('# END RECORD');
  const file = (p: string) => run.files.find((f) => f.path === p)?.content;
  expect(file('/etc/iscsi/initiatorname.iscsi')).toBe(`InitiatorName=${HOST_B}\n`);
  expect(file('/etc/iscsi/iscsid.conf')).toBe('node.session.timeo.replacement_timeout = 600\n'
    + 'node.conn[0].timeo.noop_out_interval = 60\nnode.conn[0].timeo.noop_out_timeout = 600\n');
  expectContained(run, secrets, `/etc/iscsi/nodes/${TARGET_IQN}/10.0.0.10,3260`);
  // The outer `set -x` traced the user data itself, and the script left tracing off.
  expect(run.output).toMatch(/^\+ bash \/var\/lib\/cdk-chap-credentials\/connect-[0-9a-f]{12}\.sh$/m);
  expect(run.output).toContain(`cdk-chap-credentials: connected to ${TARGET_IQN} at 10.0.0.10:3260 as ${HOST_B}`);
  // The script the commands wrote (no secret in it, only where to read them) is root's alone.
  const written = run.files.filter((f) => f.path.startsWith('/var/lib/cdk-chap-credentials/connect-'));
  expect(written.map((f) => [f.mode, f.content])).toEqual([[0o600, scriptOf(text)]]);
});

test('one-way CHAP on RHEL\'s layout: a record left with mutual settings loses them; iscsid.conf keeps its other lines', async () => {
  const { text } = commands();
  const { initiator, value, secrets } = pair(false);
  const run = await runLinux({
    commands: text, aws: [{ value }], env: fast, nodes: '/var/lib/iscsi/nodes',
    discovered: ['node.name = iqn.1997-05.com.amazon:myvolume', 'node.session.auth.username_in = old', 'node.session.auth.password_in = oldsecret12'],
    iscsidConf: '# node.session.timeo.replacement_timeout = 120 (the default)\nnode.session.timeo.replacement_timeout = 120\n'
      + 'node.session.cmds_max = 128\nnode.conn[0].timeo.noop_out_interval = 5\n',
  });
  expect(run.status).toBe(0);
  // The record a discovery made (portal group 1) is used in place: no new record.
  expect(run.calls).not.toContain(node('-o new'));
  const [record] = run.recordsAtLogin;
  expect(record).toContain(`node.session.auth.password = ${initiator}`);
  expect(record).not.toMatch(/username_in|password_in/);
  expect(run.files.find((f) => f.path === '/etc/iscsi/iscsid.conf')?.content).toBe(
    '# node.session.timeo.replacement_timeout = 120 (the default)\nnode.session.cmds_max = 128\n'
    + 'node.session.timeo.replacement_timeout = 600\nnode.conn[0].timeo.noop_out_interval = 60\nnode.conn[0].timeo.noop_out_timeout = 600\n');
  expectContained(run, secrets, `/var/lib/iscsi/nodes/${TARGET_IQN}/10.0.0.10,3260,1/default`);
});

test('a host that boots early waits for a valid pair and for the gateway, one line each time, and ends connected', async () => {
  const { text } = commands();
  const { value, secrets } = pair(true);
  const answers: AwsAnswer[] = [
    { error: 'An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: Secrets Manager can\'t find the specified secret value for staging label: AWSCURRENT' },
    { value: 'kM3vR9xQ2wL8pZ5tY7uB1nC4dF6gH0jA' }, // CloudFormation's generated placeholder
    { value: JSON.stringify({ initiatorName: HOST_B, targetArn: DOC_TARGET_ARN }) },
    { value },
  ];
  const run = await runLinux({ commands: text, aws: answers, logins: [24, 19, 0], env: fast });
  expect(run.status).toBe(0);
  const waits = run.output.split('\n').filter((l) => l.startsWith('cdk-chap-credentials: waiting for'));
  expect(waits).toEqual([
    expect.stringMatching(/the secret arn:\S+ to be readable \(An error occurred \(ResourceNotFoundException\).*\); attempt 1, retrying in 0 s$/),
    expect.stringMatching(/the secret \S+ to hold this host's CHAP pair \(it holds no JSON object yet\); attempt 2,/),
    expect.stringMatching(/the secret \S+ to hold this host's CHAP pair \(no usable secretToAuthenticateInitiator yet\); attempt 3,/),
    expect.stringContaining(`the target ${TARGET_IQN} to accept this host's CHAP credentials (login refused, iscsiadm exit 24); attempt 4,`),
    expect.stringContaining(`the target ${TARGET_IQN} to accept this host's CHAP credentials (login refused, iscsiadm exit 19); attempt 5,`),
  ]);
  expect(run.calls.filter((c) => c.startsWith('aws '))).toHaveLength(6);
  expect(run.calls.filter((c) => c.endsWith('--login'))).toHaveLength(3);
  expect(run.output).toContain('cdk-chap-credentials: connected to');
  expectContained(run, secrets, `/etc/iscsi/nodes/${TARGET_IQN}/10.0.0.10,3260`);
});

test('the wait is bounded: past CHAP_WAIT_SECONDS it stops with one line saying what it waited for', async () => {
  const { text } = commands();
  const run = await runLinux({ commands: text, aws: [{ value: 'kM3vR9xQ2wL8pZ5tY7uB1nC4dF6gH0jA' }], env: { CHAP_RETRY_SECONDS: '0.2', CHAP_WAIT_SECONDS: '1' } });
  expect(run.status).toBe(1);
  expect(run.output).toMatch(/^cdk-chap-credentials: gave up after \d+ s and \d+ attempts, waiting for the secret \S+ to hold this host's CHAP pair \(it holds no JSON object yet\)$/m);
  expect(run.calls.filter((c) => c.endsWith('--login'))).toHaveLength(0);
});

test('a secret holding another initiator\'s pair stops at once, naming both', async () => {
  const { text } = commands();
  const value = JSON.stringify({ initiatorName: 'iqn.2000-01.com.example:other', secretToAuthenticateInitiator: secretValue() });
  const run = await runLinux({ commands: text, aws: [{ value }], env: fast });
  expect(run.status).toBe(1);
  expect(run.output).toMatch(/^cdk-chap-credentials: the secret \S+ holds the pair of iqn.2000-01.com.example:other, not of this host \(iqn.1994-05.com.redhat:host-b\)$/m);
});

test('a login refused for another reason than authentication or reachability stops with iscsiadm\'s own message', async () => {
  const { text } = commands();
  const run = await runLinux({ commands: text, aws: [{ value: pair(false).value }], logins: [7], env: fast });
  expect(run.status).toBe(1);
  expect(run.output).toContain('cdk-chap-credentials: login to iqn.1997-05.com.amazon:myvolume at 10.0.0.10:3260 failed (iscsiadm exit 7): iscsiadm: login failed with 7');
});

test('an image without iscsiadm gets open-iscsi from its package manager first', async () => {
  const { text } = commands();
  const run = await runLinux({ commands: text, aws: [{ value: pair(false).value }], withoutIscsiadm: true, env: fast });
  expect(run.status).toBe(0);
  expect(run.calls[0]).toBe('apt-get install -y open-iscsi');
  expect(run.output).toContain('cdk-chap-credentials: installing the iSCSI initiator (iscsiadm is missing)');
});

test('an IPv6 portal reaches iscsiadm in brackets and names the record by the bare address', async () => {
  const { text } = commands('fd00:ec2::10');
  const { secrets, value } = pair(true);
  const run = await runLinux({ commands: text, aws: [{ value }], env: fast });
  expect(run.status).toBe(0);
  expect(run.calls).toContain(`iscsiadm -m node -T ${TARGET_IQN} -p [fd00:ec2::10]:3260 --login`);
  expectContained(run, secrets, `/etc/iscsi/nodes/${TARGET_IQN}/fd00:ec2::10,3260`);
});

test('the script file is ShellCheck-clean, and so is the script the commands write', async () => {
  // ShellCheck is a Debian package that scripts/rig/prepare.mjs installs (npm test, .ci/run); a missing one fails here, it never skips.
  const file = path.join(__dirname, '..', 'lib', 'host', 'connect-linux.sh');
  expect(execFileSync('shellcheck', ['--severity=style', file], { encoding: 'utf8' })).toBe('');
  const { text } = commands();
  const rendered = scriptOf(text);
  expect(execFileSync('shellcheck', ['--severity=style', '-'], { input: rendered, encoding: 'utf8' })).toBe('');
  expect(execFileSync('shellcheck', ['--severity=style', '--shell=bash', '-'], { input: text, encoding: 'utf8' })).toBe('');
});

test('the containment check catches a secret given to a program, as the commands before these did (negative control)', async () => {
  const secret = secretValue();
  const run = await runLinux({
    commands: `iscsiadm -m node -T ${TARGET_IQN} -p 10.0.0.10:3260 -o update -n node.session.auth.password -v ${secret} || true`, env: fast,
  });
  expect(run.execs).toContain(secret);
  expect(run.output).toContain(secret); // the outer `set -x` printed it too
});

describe('--relogin (what the rotation agent runs when a session fails authentication)', () => {
  test('logs out and in with the AWSPENDING pair when there is one', async () => {
    const { text, secretArn } = commands();
    const [before, pending] = [pair(true), pair(true)];
    const run = await runLinux({
      commands: `${text}\nbash /var/lib/cdk-chap-credentials/connect-*.sh --relogin`, aws: [{ value: before.value }, { value: pending.value }], env: fast,
    });
    expect(run.status).toBe(0);
    // The logout runs while the pair is read (either may be recorded first); the login comes after both.
    expect(run.calls.slice(-3, -1).sort()).toEqual([
      `aws secretsmanager get-secret-value --region ${DEPLOYED.region} --secret-id ${secretArn} --version-stage AWSPENDING --query SecretString --output text`,
      node('--logout'),
    ]);
    expect(run.calls.at(-1)).toBe(node('--login'));
    expect(run.recordsAtLogin[1]).toContain(`node.session.auth.password = ${pending.initiator}`);
    expect(run.recordsAtLogin[1]).toContain(`node.session.auth.password_in = ${pending.target}`);
    expect(run.output).toContain('cdk-chap-credentials: logged in again to iqn.1997-05.com.amazon:myvolume at 10.0.0.10:3260 with the AWSPENDING credentials');
    expectContained(run, pending.secrets, `/etc/iscsi/nodes/${TARGET_IQN}/10.0.0.10,3260`);
    // The pair it replaced is nowhere any more.
    for (const secret of before.secrets) {
      expect(run.execs + run.output).not.toContain(secret);
      expect(run.files.filter((f) => f.content.includes(secret))).toEqual([]);
    }
  });

  test('falls back to AWSCURRENT when no rotation is staged, and fails in one line when neither logs in', async () => {
    const { text, secretArn } = commands();
    const current = pair(false);
    const noPending = { error: 'An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: staging label: AWSPENDING' };
    const ok = await runLinux({
      commands: `${text}\nbash /var/lib/cdk-chap-credentials/connect-*.sh --relogin`, aws: [{ value: current.value }, noPending, { value: current.value }], env: fast,
    });
    expect(ok.status).toBe(0);
    expect(ok.calls.filter((c) => c.startsWith('aws ')).slice(1)).toEqual([
      `aws secretsmanager get-secret-value --region ${DEPLOYED.region} --secret-id ${secretArn} --version-stage AWSPENDING --query SecretString --output text`,
      `aws secretsmanager get-secret-value --region ${DEPLOYED.region} --secret-id ${secretArn} --version-stage AWSCURRENT --query SecretString --output text`,
    ]);
    expect(ok.output).toContain('with the AWSCURRENT credentials');
    const refused = await runLinux({
      commands: `${text}\nbash /var/lib/cdk-chap-credentials/connect-*.sh --relogin`, aws: [{ value: current.value }], logins: [0, 24], env: fast,
    });
    expect(refused.status).toBe(1);
    expect(refused.output).toMatch(/^cdk-chap-credentials: no stored credentials log in to iqn.1997-05.com.amazon:myvolume at 10.0.0.10:3260$/m);
  });
});
