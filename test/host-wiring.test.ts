/**
 * Host wiring: how the package's host scripts (lib/host/) are rendered into boot commands with the app's values,
 * tokens included; portal address rules; the Windows script read with a real PowerShell grammar; grants. The Linux
 * commands are run in test/host-linux.test.ts and test/host-secret-fetch.test.ts.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { App, CfnParameter, Duration, Token } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ChapCredentials, ChapRotation, IscsiHostProps } from '../lib';
import { LINUX_BODY_END, LINUX_HEREDOC_END, compactShell, portalAddressError, powerShellQuote, renderHostScript, shellQuote } from '../lib/host-wiring';
import { DEMO_HOST_INITIATOR, demoStack } from '../bin/demo-stack';
import { DOC_TARGET_ARN, HOST_A, HOST_B } from './fixtures';
import { DEPLOYED, deployedText, deployedTexts, newStack, scriptOf } from './host-harness';
import { SyntaxNode, powerShellParser, syntaxProblems, taint } from './powershell';

const HOST_DIR = path.join(__dirname, '..', 'lib', 'host');
const LINUX_FILE = fs.readFileSync(path.join(HOST_DIR, 'connect-linux.sh'), 'utf8');
const WINDOWS_FILE = fs.readFileSync(path.join(HOST_DIR, 'connect-windows.ps1'), 'utf8');

function wired(options: { env?: boolean; portalAddress?: string } = {}) {
  const stack = newStack(options.env ?? true);
  const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B] });
  const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  const wiring = chap.wireHost({ initiatorName: HOST_A, portalAddress: options.portalAddress ?? '10.0.0.10', grantee: role });
  const secretArn = `arn:aws:secretsmanager:${DEPLOYED.region}:${DEPLOYED.account}:secret:`
    + `${stack.getLogicalId(chap.initiatorSecret(HOST_A).node.scope!.node.defaultChild as never)}-AbCdEf`;
  return { stack, chap, role, wiring, secretArn };
}

/** The Linux script as its commands write it: its head as it is, its body without comment lines. */
function compactBody(file: string): string {
  const bodyStart = file.indexOf('# <<< values\n') + '# <<< values\n'.length;
  return file.slice(0, bodyStart) + compactShell(file.slice(bodyStart));
}

/** The script file with its values block replaced by `lines`: what the rendered script must be, byte for byte. */
function fileWithValues(file: string, lines: string[]): string {
  return file.replace(/(# >>> values \(rendered by wireHost\)\n)[^]*?(# <<< values\n)/, (_, start: string, end: string) => `${start}${lines.join('\n')}\n${end}`);
}

describe('Linux commands', () => {
  test('write the package\'s script, its values block filled in, to a root-only file and run it with bash', () => {
    const { stack, wiring, secretArn } = wired();
    const text = deployedText(stack, wiring.linuxCommands);
    const lines = text.split('\n');
    expect(lines[0]).toMatch(/^# cdk-chap-credentials: /);
    expect(lines[1]).toBe('mkdir -p /var/lib/cdk-chap-credentials && chmod 700 /var/lib/cdk-chap-credentials');
    const file = /^\(umask 077 && cat > (\/var\/lib\/cdk-chap-credentials\/connect-[0-9a-f]{12}\.sh)\) <<'CDK_CHAP_CREDENTIALS_SCRIPT'$/.exec(lines[2])![1];
    expect(lines).toContain(`base64 -d <<'${LINUX_BODY_END}' | gunzip >> ${file}`);
    expect(lines.slice(-2)).toEqual([LINUX_BODY_END, `bash ${file}`]);
    expect(scriptOf(text)).toBe(fileWithValues(compactBody(LINUX_FILE), [
      `CHAP_SECRET_ID='${secretArn}'`,
      `CHAP_REGION='${DEPLOYED.region}'`,
      `CHAP_TARGET_ARN='${DOC_TARGET_ARN}'`,
      `CHAP_INITIATOR_NAME='${HOST_A}'`,
      "CHAP_PORTAL_ADDRESS='10.0.0.10'",
      "CHAP_PORTAL_PORT='3260'",
      "CHAP_MOUNT_POINT=''",
      "CHAP_ROTATING='no'",
      "CHAP_IO_HOLD_SECONDS='600'",
    ]));
    // In plain text: what the script does and the values; the rest is compressed to fit EC2's 16 KB of user data.
    expect(text).toContain('# cdk-chap-credentials: connects this Linux host to one Storage Gateway iSCSI target');
    expect(Buffer.byteLength(text)).toBeLessThan(14 * 1024);
    // The heredocs are quoted and their end markers appear nowhere in the script: it is written as it is.
    expect(LINUX_FILE.split('\n')).not.toContain(LINUX_HEREDOC_END);
    expect(LINUX_FILE.split('\n')).not.toContain(LINUX_BODY_END);
    execFileSync('bash', ['-n'], { input: text });
  });

  test('the compressed body the package ships is the script\'s body (after `npm run host-scripts`)', () => {
    const shipped = gunzipSync(Buffer.from(fs.readFileSync(path.join(HOST_DIR, 'connect-linux.body.gz.b64'), 'utf8'), 'base64')).toString('utf8');
    const body = compactShell(LINUX_FILE.slice(LINUX_FILE.indexOf('# <<< values\n') + '# <<< values\n'.length));
    if (shipped !== body) throw new Error('lib/host/connect-linux.body.gz.b64 is stale: run `npm run host-scripts` and commit it');
    expect(shipped).toBe(body);
  });

  test('tokens stay tokens until CloudFormation resolves them: the region of an environment-agnostic stack, the secret\'s ARN', () => {
    const { stack, wiring } = wired({ env: false });
    const unresolved = wiring.linuxCommands.filter((line) => Token.isUnresolved(line));
    expect(unresolved.map((line) => line.replace(/'.*'/, "'…'"))).toEqual(["CHAP_SECRET_ID='…'", "CHAP_REGION='…'"]);
    expect(stack.resolve(unresolved)).toEqual([
      { 'Fn::Join': ['', ["CHAP_SECRET_ID='", { Ref: expect.stringMatching(/^ChapInitiator/) }, "'"]] },
      { 'Fn::Join': ['', ["CHAP_REGION='", { Ref: 'AWS::Region' }, "'"]] },
    ]);
    expect(deployedText(stack, wiring.linuxCommands)).toContain(`CHAP_REGION='${DEPLOYED.region}'`);
  });

  test('two targets wired on one host write two files', () => {
    const stack = newStack();
    const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    const files = ['A', 'B'].map((id) => new ChapCredentials(stack, id, { targetArn: DOC_TARGET_ARN, initiators: [HOST_B] })
      .wireHost({ initiatorName: HOST_B, portalAddress: '10.0.0.10', grantee: role }).linuxCommands.at(-1));
    expect(new Set(files).size).toBe(2);
  });

  test('values are quoted for bash: any literal comes back as it was', () => {
    for (const value of ["it's", 'a b$c`d`\\e"f', "''", '$(reboot)']) {
      expect(execFileSync('bash', ['-c', `printf %s ${shellQuote(value)}`], { encoding: 'utf8' })).toBe(value);
    }
  });

  test('a values block that does not match the script\'s is refused (the file and the code move together)', () => {
    expect(() => renderHostScript('connect-linux.sh', { CHAP_SECRET_ID: "'x'" }))
      .toThrow(/lib\/host\/connect-linux.sh: its values block \(CHAP_SECRET_ID, CHAP_REGION, .*\) does not match the values given \(CHAP_SECRET_ID\)/);
  });
});

describe('portal addresses', () => {
  test.each([
    ['10.0.0.10', '10.0.0.10'],
    ['fd00:ec2::10', 'fd00:ec2::10'],
    ['::ffff:10.0.0.10', '::ffff:10.0.0.10'],
    ['gateway.example.com', 'gateway.example.com'],
    ['gateway', 'gateway'],
  ])('%s is accepted; the script gets the address alone', (address, rendered) => {
    expect(portalAddressError(address)).toBeUndefined();
    const { stack, wiring } = wired({ portalAddress: address });
    const [linux, windows] = deployedTexts(stack, [wiring.linuxCommands, wiring.windowsCommands]);
    expect(linux).toContain(`CHAP_PORTAL_ADDRESS='${rendered}'`);
    expect(windows).toContain(`$ChapPortalAddress = '${rendered}'`);
  });

  test.each([
    '10.0.0.10:3260', '[fd00::1]:3260', 'gw.example:3260', '[fd00::1]', '10.0.0.300', '10.0.0.10; rm -rf /', '', 'gw..example',
  ])('%p is refused, naming the prop, the value and portalPort', (address) => {
    const { chap, role } = wired();
    const message = "'portalAddress' must be an IPv4 address, an IPv6 address (without brackets) or a DNS name, without a port "
      + `(give the port in 'portalPort'), got '${address}'`;
    expect(portalAddressError(address)).toBe(message);
    expect(() => chap.wireHost({ initiatorName: HOST_A, portalAddress: address, grantee: role })).toThrow(message);
  });

  test('a token passes unchecked and is resolved at deploy time', () => {
    const { stack, chap, role } = wired();
    const address = Token.asString({ Ref: 'PortalAddress' });
    const wiring = chap.wireHost({ initiatorName: HOST_B, portalAddress: address, grantee: role });
    expect(stack.resolve(wiring.linuxCommands.find((l) => l.startsWith('CHAP_PORTAL_ADDRESS=')))).toEqual(
      { 'Fn::Join': ['', ["CHAP_PORTAL_ADDRESS='", { Ref: 'PortalAddress' }, "'"]] });
  });
});

describe('Windows commands', () => {
  let parsePowerShell: (source: string) => SyntaxNode;
  beforeAll(async () => {
    parsePowerShell = await powerShellParser();
  });

  test('a script block holding the package\'s script, its values block filled in', () => {
    const { stack, wiring, secretArn } = wired({ portalAddress: 'fd00:ec2::10' });
    const text = deployedText(stack, wiring.windowsCommands);
    const [comment, open, ...rest] = text.split('\n');
    expect(comment).toMatch(/^# cdk-chap-credentials: /);
    expect([open, rest.at(-1)]).toEqual(['& {', '}']);
    // The file without its comment lines, to leave room in EC2's 16 KB of user data for a second wiring.
    expect(Buffer.byteLength(text)).toBeLessThan(8 * 1024);
    const uncommented = (script: string) => script.split('\n').filter((line) => !/^\s*#/.test(line)).join('\n');
    expect(`${rest.slice(0, -1).join('\n')}\n`).toBe(uncommented(fileWithValues(WINDOWS_FILE, [
      `$ChapSecretId = '${secretArn}'`,
      `$ChapRegion = '${DEPLOYED.region}'`,
      `$ChapTargetArn = '${DOC_TARGET_ARN}'`,
      `$ChapInitiatorName = '${HOST_A}'`,
      "$ChapPortalAddress = 'fd00:ec2::10'",
      "$ChapPortalPort = '3260'",
    ])));
  });

  test('the file and the rendered commands parse as PowerShell with no error or missing token', () => {
    const { stack, wiring } = wired();
    expect(syntaxProblems(parsePowerShell(WINDOWS_FILE))).toEqual([]);
    expect(syntaxProblems(parsePowerShell(deployedText(stack, wiring.windowsCommands)))).toEqual([]);
    // The check can fail: a broken script is reported.
    expect(syntaxProblems(parsePowerShell(WINDOWS_FILE.replace('function Get-ChapPair {', 'function Get-ChapPair {{')))).not.toEqual([]);
  });

  test('values are quoted for PowerShell: the parsed string literal is the value', () => {
    for (const value of ["it's", 'a $b `c "d', 'x\u2019y']) {
      const root = parsePowerShell(`$v = ${powerShellQuote(value)}`);
      expect(syntaxProblems(root)).toEqual([]);
      const literal = root.descendantsOfType('verbatim_string_characters')[0].text;
      // PowerShell reads a doubled single quote (of any kind) inside '...' as one.
      expect(literal.slice(1, -1).replace(/(['\u2018\u2019\u201a\u201b])\1/g, '$1')).toBe(value);
    }
  });

  test('no secret reaches a program\'s command line: the script runs no native program at all, and cmdlets take the secrets', () => {
    const { stack, wiring } = wired();
    const report = taint(parsePowerShell(deployedText(stack, wiring.windowsCommands)));
    // The analysis follows the secret from Get-SECSecretValue through variables, functions and their parameters.
    expect(report.tainted).toEqual(expect.arrayContaining(['value', 'pair', 'found', 'targetsecret', 'secret']));
    expect(report.natives).toEqual([]);
    expect(report.leaks).toEqual([]);
    expect(report.commands).toEqual(expect.arrayContaining([
      'get-secsecretvalue', 'set-iscsichapsecret', 'connect-iscsitarget', 'new-iscsitargetportal', 'set-initiatorport', 'set-itemproperty', 'set-acl',
    ]));
    expect(report.commands).not.toContain('iscsicli');
  });

  test.each([
    ['iscsicli.exe QAddTarget $pair.secretToAuthenticateInitiator', 'iscsicli.exe'],
    ['& cmd /c "echo $TargetSecret"', 'cmd'],
    ['Start-Process iscsicli -ArgumentList $found.Pair.secretToAuthenticateTarget', 'start-process'],
  ])('the analysis catches a secret given to a program (negative control: %s)', (line, name) => {
    const script = WINDOWS_FILE.replace("    $type = 'MUTUALCHAP'\n", `    $type = 'MUTUALCHAP'\n    ${line}\n`);
    expect(script).not.toBe(WINDOWS_FILE);
    const report = taint(parsePowerShell(script));
    expect(report.leaks).toEqual([expect.stringMatching(new RegExp(`^${name.replace('.', '\\.')} `))]);
  });

  test('AWS\'s timeouts, the one machine-wide mutual secret guarded by a salted hash, and the stop line naming both targets', () => {
    expect(WINDOWS_FILE).toContain("'HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Class\\{4D36E97B-E325-11CE-BFC1-08002BE10318}'");
    expect(WINDOWS_FILE).toContain("Set-ItemProperty -Path (Join-Path $instance.PSPath 'Parameters') -Name MaxRequestHoldTime -Value 600 -Type DWord");
    expect(WINDOWS_FILE).toContain("Set-ItemProperty -Path 'HKLM:\\SYSTEM\\CurrentControlSet\\Services\\disk' -Name TimeOutValue -Value 600 -Type DWord");
    // The conflict is decided before the machine's secret is touched.
    const guard = WINDOWS_FILE.indexOf('needs another mutual-CHAP secret than target');
    expect(guard).toBeGreaterThan(0);
    expect(WINDOWS_FILE.indexOf('Set-IscsiChapSecret -ChapSecret $TargetSecret')).toBeGreaterThan(guard);
    expect(WINDOWS_FILE).toContain('Rfc2898DeriveBytes');
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
    expect(userData).toContain("<<'CDK_CHAP_CREDENTIALS_SCRIPT'");
    expect(userData).toContain(DEMO_HOST_INITIATOR);
  });
});

describe('mount point and ride-through (Linux)', () => {
  /** The values a wiring renders into the Linux script, with or without rotation. */
  function linuxValues(rotating: boolean, extra: Partial<IscsiHostProps> = {}) {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', {
      targetArn: DOC_TARGET_ARN, initiators: [HOST_A],
      ...(rotating ? { manageCredentials: true, rotation: ChapRotation.every(Duration.days(30)) } : {}),
    });
    const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    const text = deployedText(stack, chap.wireHost({ initiatorName: HOST_A, portalAddress: '10.0.0.10', grantee: role, ...extra }).linuxCommands);
    const value = (name: string) => new RegExp(`^${name}='(.*)'$`, 'm').exec(text)?.[1];
    return { text, mountPoint: value('CHAP_MOUNT_POINT'), rotating: value('CHAP_ROTATING'), hold: value('CHAP_IO_HOLD_SECONDS') };
  }

  test('a rotating construct\'s wiring turns on multipath and the agent, holding IO 600 s unless told otherwise', () => {
    expect(linuxValues(false)).toMatchObject({ mountPoint: '', rotating: 'no', hold: '600' });
    expect(linuxValues(true)).toMatchObject({ rotating: 'yes', hold: '600' });
    expect(linuxValues(true, { ioHoldTimeout: Duration.seconds(90), mountPoint: '/srv/data' })).toMatchObject({ rotating: 'yes', hold: '90', mountPoint: '/srv/data' });
    expect(linuxValues(true, { ioHoldTimeout: Duration.minutes(60) }).hold).toBe('3600');
  });

  test('a rotating wiring with a mount point still fits EC2\'s 16 KB of user data, with room to spare', () => {
    expect(Buffer.byteLength(linuxValues(true, { mountPoint: '/srv/data' }).text)).toBeLessThan(14 * 1024);
  });

  test.each([
    ['srv/data'], ['/'], ['/srv/my data'], ['/srv/../etc'], ['/srv//data'], ['/srv/./data'], ['/srv/data/'], ['/srv\\data'], ['/srv/da\tta'],
  ])('mountPoint %p is refused, naming the prop, the rule and the value', (mountPoint) => {
    expect(() => linuxValues(false, { mountPoint })).toThrow(
      `'mountPoint' must be an absolute path other than '/', without white space, backslashes, empty, '.' or '..' parts, got '${mountPoint}'`);
  });

  test.each([
    [Duration.seconds(5), 'got 5 seconds'], [Duration.hours(2), 'got 2 hours'], [Duration.millis(10_500), 'got 10 seconds 500 millis'],
  ])('ioHoldTimeout %p is refused: whole seconds from 10 to 3600', (ioHoldTimeout, got) => {
    expect(() => linuxValues(true, { ioHoldTimeout })).toThrow(`'ioHoldTimeout' must be whole seconds from 10 to 3600, ${got}`);
  });

  test('ioHoldTimeout without rotation is refused: without it the volume is not under multipath', () => {
    expect(() => linuxValues(false, { ioHoldTimeout: Duration.minutes(5) }))
      .toThrow("'ioHoldTimeout' applies only to a construct whose credentials rotate (with 'rotation'), got 5 minutes");
  });

  test('tokens pass unchecked and are resolved at deploy time', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A], manageCredentials: true, rotation: ChapRotation.every(Duration.days(30)) });
    const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    const mountPoint = new CfnParameter(stack, 'MountPoint').valueAsString;
    const wiring = chap.wireHost({ initiatorName: HOST_A, portalAddress: '10.0.0.10', grantee: role, mountPoint, ioHoldTimeout: Duration.seconds(Token.asNumber({ Ref: 'Hold' })) });
    const lines = stack.resolve(wiring.linuxCommands.filter((line) => /^CHAP_(MOUNT_POINT|IO_HOLD_SECONDS)=/.test(line) || Token.isUnresolved(line)));
    expect(lines).toEqual(expect.arrayContaining([
      { 'Fn::Join': ['', ["CHAP_MOUNT_POINT='", { Ref: 'MountPoint' }, "'"]] },
      { 'Fn::Join': ['', ["CHAP_IO_HOLD_SECONDS='", { Ref: 'Hold' }, "'"]] },
    ]));
  });
});
