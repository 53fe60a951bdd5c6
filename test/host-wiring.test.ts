/**
 * Host wiring: the boot commands for Linux (open-iscsi) and Windows (PowerShell), for one-way and mutual CHAP. The
 * Linux script is checked with `bash -n` and then run against stand-ins for aws, iscsiadm, systemctl and tee that
 * record their arguments. PowerShell is not parsed: no PowerShell parser installs from this project's registries.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ChapCredentials } from '../lib';
import { DEMO_HOST_INITIATOR, demoStack } from '../bin/demo-stack';
import { DOC_TARGET_ARN, HOST_A, HOST_B, secretValue } from './fixtures';

const FAKE_SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:host-a-AbCdEf';

function wired() {
  const stack = new Stack(new App(), 'Hosts', { env: { account: '111122223333', region: 'us-east-1' } });
  const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B] });
  const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  const wiring = chap.wireHost({ initiatorName: HOST_A, portalAddress: '10.0.0.10', grantee: role });
  return { stack, chap, role, wiring };
}

/** Renders commands as the template would after deployment: the secret's Ref becomes a plausible ARN. */
function render(stack: Stack, commands: string[]): string {
  const value = (v: unknown): string => {
    if (typeof v === 'string') return v;
    const o = v as { 'Fn::Join'?: [string, unknown[]]; Ref?: string };
    if (o['Fn::Join']) return o['Fn::Join'][1].map(value).join(o['Fn::Join'][0]);
    if (o.Ref) return FAKE_SECRET_ARN;
    throw new Error(`cannot render ${JSON.stringify(v)}`);
  };
  return commands.map((line) => value(stack.resolve(line))).join('\n');
}

describe('Linux', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-host-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs the script with stand-in commands; returns what each was called with. */
  function run(script: string, secret: Record<string, string>): string[] {
    const bin = path.join(dir, 'bin');
    const log = path.join(dir, 'calls.log');
    fs.mkdirSync(bin, { recursive: true });
    fs.writeFileSync(log, '');
    for (const name of ['iscsiadm', 'systemctl', 'tee', 'dnf', 'yum', 'apt-get']) {
      fs.writeFileSync(path.join(bin, name), `#!/bin/bash\necho "${name} $*" >> '${log}'\ncat > /dev/null\n`, { mode: 0o755 });
    }
    fs.writeFileSync(path.join(bin, 'aws'), `#!/bin/bash\necho "aws $*" >> '${log}'\nprintf '%s' "$CHAP_FAKE_SECRET"\n`, { mode: 0o755 });
    const file = path.join(dir, 'boot.sh');
    fs.writeFileSync(file, script);
    execFileSync('bash', [file], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`, CHAP_FAKE_SECRET: JSON.stringify(secret) },
    });
    return fs.readFileSync(log, 'utf8').trim().split('\n');
  }

  const node = (setting: string, value: string) =>
    `iscsiadm -m node -T iqn.1997-05.com.amazon:myvolume -p 10.0.0.10:3260 --op update -n ${setting} -v ${value}`;

  test('the script is valid bash and holds no secret value, only where to read them', () => {
    const { stack, wiring } = wired();
    const script = render(stack, wiring.linuxCommands);
    execFileSync('bash', ['-n'], { input: script });
    expect(script).toContain(`CHAP_SECRET_ID='${FAKE_SECRET_ARN}'`);
    expect(script).not.toMatch(/secretToAuthenticate\w+"\s*:/);
  });

  test('one-way CHAP: discovery, the initiator secret, automatic startup, login; no target secret', () => {
    const { stack, wiring } = wired();
    const initiatorSecret = secretValue();
    const calls = run(render(stack, wiring.linuxCommands), {
      initiatorName: HOST_A, targetArn: DOC_TARGET_ARN, secretToAuthenticateInitiator: initiatorSecret,
    });
    expect(calls).toEqual([
      'tee /etc/iscsi/initiatorname.iscsi',
      'systemctl enable --now iscsid',
      `aws secretsmanager get-secret-value --region us-east-1 --secret-id ${FAKE_SECRET_ARN} --query SecretString --output text`,
      'iscsiadm -m discovery -t sendtargets -p 10.0.0.10:3260',
      node('node.session.auth.authmethod', 'CHAP'),
      node('node.session.auth.username', HOST_A),
      node('node.session.auth.password', initiatorSecret),
      node('node.startup', 'automatic'),
      'iscsiadm -m node -T iqn.1997-05.com.amazon:myvolume -p 10.0.0.10:3260 --login',
      'systemctl enable iscsi',
    ]);
  });

  test('mutual CHAP also sets the target secret the host expects back', () => {
    const { stack, wiring } = wired();
    const [initiatorSecret, targetSecret] = [secretValue(), secretValue()];
    const calls = run(render(stack, wiring.linuxCommands), {
      initiatorName: HOST_A, targetArn: DOC_TARGET_ARN, secretToAuthenticateInitiator: initiatorSecret, secretToAuthenticateTarget: targetSecret,
    });
    expect(calls).toEqual(expect.arrayContaining([
      node('node.session.auth.password', initiatorSecret),
      node('node.session.auth.username_in', 'iqn.1997-05.com.amazon:myvolume'),
      node('node.session.auth.password_in', targetSecret),
    ]));
  });
});

describe('Windows', () => {
  test('PowerShell sets the initiator name, the portal, and a persistent connection for both CHAP modes', () => {
    const { stack, wiring } = wired();
    const script = render(stack, wiring.windowsCommands);
    expect(script).toContain(`$ChapSecretId = '${FAKE_SECRET_ARN}'`);
    expect(script).toContain(`$InitiatorName = '${HOST_A}'`);
    expect(script).toContain('Set-InitiatorPort -NodeAddress (Get-InitiatorPort | Select-Object -First 1).NodeAddress -NewNodeAddress $InitiatorName');
    expect(script).toContain('Get-SECSecretValue -SecretId $ChapSecretId -Region $ChapRegion');
    expect(script).toContain('New-IscsiTargetPortal -TargetPortalAddress $Portal -TargetPortalPortNumber $PortalPort');
    expect(script).toContain('Set-IscsiChapSecret -ChapSecret $Chap.secretToAuthenticateTarget');
    for (const mode of ['MUTUALCHAP', 'ONEWAYCHAP']) {
      expect(script).toMatch(new RegExp(`Connect-IscsiTarget .*-AuthenticationType ${mode} -ChapUsername \\$InitiatorName `
        + '-ChapSecret \\$Chap\\.secretToAuthenticateInitiator -IsPersistent \\$true'));
    }
    // Balanced braces: the block parses as one script block (the closest check available without PowerShell).
    expect((script.match(/{/g) ?? []).length).toBe((script.match(/}/g) ?? []).length);
  });
});

describe('grants and validation', () => {
  test("the host's role may read its own secret and nothing else", () => {
    const { stack, chap, role } = wired();
    const template = Template.fromStack(stack);
    const policies = template.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: stack.getLogicalId(role.node.defaultChild as never) }] } });
    const statements = Object.values(policies)[0].Properties.PolicyDocument.Statement;
    expect(statements).toEqual([expect.objectContaining({
      Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      Resource: stack.resolve(chap.initiatorSecret(HOST_A).secretArn),
    })]);
  });

  test.each([
    [{ portalAddress: '10.0.0.10; rm -rf /' }, /'portalAddress' must be an IP address or DNS name .*, got '10.0.0.10; rm -rf \/'/],
    [{ portalPort: 70000 }, /'portalPort' must be a TCP port \(an integer from 1 to 65535\), got 70000/],
    [{ initiatorName: 'iqn.2000-01.com.example:undeclared' }, /'initiatorName' must be one of the declared 'initiators'/],
  ])('rejects %p', (override, message) => {
    const { chap, role } = wired();
    expect(() => chap.wireHost({ initiatorName: HOST_A, portalAddress: '10.0.0.10', grantee: role, ...override })).toThrow(message);
  });

  test('the demo app wires a Linux host only when asked, reading its own secret at boot', () => {
    const context = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8')).context;
    const without = Template.fromStack(demoStack(new App({ context })));
    without.resourceCountIs('AWS::EC2::Instance', 0);
    const withHost = Template.fromStack(demoStack(new App({ context: { ...context, host: 'true' } })));
    withHost.resourceCountIs('AWS::EC2::Instance', 1);
    const instance = Object.values(withHost.findResources('AWS::EC2::Instance'))[0];
    const userData = JSON.stringify(instance.Properties.UserData);
    expect(userData).toContain('iscsiadm -m discovery -t sendtargets');
    expect(userData).toContain(DEMO_HOST_INITIATOR);
  });
});
