/**
 * The Windows rotation task: lib/host/rotate-windows.ps1, registered by the Windows boot commands only for constructs
 * with `rotation`, read with the PowerShell grammar (tree-sitter-powershell) and the taint analysis of
 * test/powershell.ts: no secret reaches a program's command line, the task's registration or a log line. Windows
 * itself cannot run here: what the cmdlets do is reasoned (README "Rotating credentials").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ChapCredentials, ChapCredentialsProps, ChapRotation } from '../lib';
import { renderHostScript, WINDOWS_ROTATION_TASK } from '../lib/host-wiring';
import { DOC_TARGET_ARN, HOST_A, HOST_B, numberedTargetArn } from './fixtures';
import { DEPLOYED, deployedTexts, newStack } from './host-harness';
import { SyntaxNode, powerShellParser, syntaxProblems, taint } from './powershell';

/** The PowerShell grammar's parser, loaded once before the tests. */
let parsePowerShell: (source: string) => SyntaxNode;
beforeAll(async () => {
  parsePowerShell = await powerShellParser();
});

const HOST_DIR = path.join(__dirname, '..', 'lib', 'host');
const ROTATE_FILE = fs.readFileSync(path.join(HOST_DIR, 'rotate-windows.ps1'), 'utf8');
const CONNECT_FILE = fs.readFileSync(path.join(HOST_DIR, 'connect-windows.ps1'), 'utf8');

/** Members of a secret's response that hold no secret: its version and stage, and our own reasons to wait. */
const METADATA = ['versionid', 'stage', 'waiting'];
/** The log, the host's console, and everything that registers the task. */
const SINKS = ['write-chaplog', 'write-host', 'add-content', 'new-scheduledtaskaction', 'new-scheduledtasktrigger',
  'new-scheduledtaskprincipal', 'new-scheduledtasksettingsset', 'register-scheduledtask'];

function wired(props: Partial<ChapCredentialsProps> = {}) {
  const stack = newStack();
  const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B], ...props });
  const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  const wiring = chap.wireHost({ initiatorName: HOST_A, portalAddress: '10.0.0.10', grantee: role });
  const [text, secretArn] = deployedTexts(stack, [wiring.windowsCommands, [chap.initiatorSecret(HOST_A).secretArn]]);
  return { stack, chap, wiring, text, secretArn };
}
const rotating = { manageCredentials: true, rotation: ChapRotation.every(Duration.days(30)) };

/** The file the rotation block writes: its values here-string, a newline, then its body decompressed. */
function rotateScriptOf(text: string): string {
  const values = /\n\$RotateValues = @'\n([^]*?)\n'@\n/.exec(text)![1];
  const body = /\n\$RotateBody = @'\n([^]*?)\n'@\n/.exec(text)![1];
  return `${values}\n${gunzipSync(Buffer.from(body.replace(/\s/g, ''), 'base64')).toString('utf8')}`;
}

function functionText(script: string, name: string): string {
  const root = parsePowerShell(script);
  const found = root.descendantsOfType('function_statement')
    .find((f: SyntaxNode) => f.children.find((c) => c.type === 'function_name')?.text === name);
  if (!found) throw new Error(`no function ${name}`);
  return found.text;
}

describe('which constructs get the task', () => {
  test('a rotating construct\'s Windows commands connect, then write the rendered rotate-windows.ps1 and register it once', () => {
    const { text, secretArn } = wired(rotating);
    expect(text.match(/^Register-ScheduledTask /gm)).toHaveLength(1);
    // Connect first: the task is registered only after the connect block ended connected (a failure throws before).
    expect(text.indexOf('Connect-IscsiTarget')).toBeLessThan(text.indexOf('$RotateValues = @\''));
    const expected = renderHostScript('rotate-windows.ps1', {
      ChapSecretId: `'${secretArn}'`,
      ChapRegion: `'${DEPLOYED.region}'`,
      ChapTargetArn: `'${DOC_TARGET_ARN}'`,
      ChapInitiatorName: `'${HOST_A}'`,
      ChapPortalAddress: "'10.0.0.10'",
      ChapPortalPort: "'3260'",
    });
    // The values block as rendered, then the file's body as the package ships it.
    expect(rotateScriptOf(text)).toBe(expected.slice(expected.indexOf('# >>> values')));
    expect(text).toContain('Set-Content -Path $ScriptPath -Value $RotateScript -Encoding UTF8');
  });

  test('the compressed body the package ships is the script\'s body (after `npm run host-scripts`)', () => {
    const shipped = gunzipSync(Buffer.from(fs.readFileSync(path.join(HOST_DIR, 'rotate-windows.body.gz.b64'), 'utf8'), 'base64')).toString('utf8');
    const body = ROTATE_FILE.slice(ROTATE_FILE.indexOf('# <<< values\n') + '# <<< values\n'.length);
    if (shipped !== body) throw new Error('lib/host/rotate-windows.body.gz.b64 is stale: run `npm run host-scripts` and commit it');
    expect(shipped).toBe(body);
  });

  test.each([
    ['read-only', {}],
    ['managed without rotation', { manageCredentials: true }],
  ])('a %s construct registers no task', (_, props) => {
    const { text } = wired(props);
    expect(text).toContain('Connect-IscsiTarget');
    expect(text).not.toMatch(/ScheduledTask|RotateScript|RotateValues|rotate-windows/);
  });

  test('the task: SYSTEM, at startup and every minute, one instance at a time, bounded, its file\'s path as its only argument', () => {
    const { text } = wired(rotating);
    const task = /^\$TaskName = '(.+)'$/m.exec(text)![1];
    expect(task).toMatch(new RegExp(`^${WINDOWS_ROTATION_TASK}[0-9a-f]{12}$`));
    expect(text).toContain("$ScriptPath = Join-Path (Join-Path $env:ProgramData 'cdk-chap-credentials') \"$TaskName.ps1\"");
    expect(text).toContain("New-ScheduledTaskAction -Execute 'powershell.exe' -Argument \"-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `\"$ScriptPath`\"\"");
    expect(text).toContain('(New-ScheduledTaskTrigger -AtStartup)');
    expect(text).toContain('-RepetitionInterval (New-TimeSpan -Minutes 1)');
    expect(text).toContain("New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest");
    expect(text).toContain('New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew -ExecutionTimeLimit (New-TimeSpan -Minutes 5)');
  });

  test('two rotating targets on one host: two tasks; one rotating wiring fits EC2\'s 16 KB of user data', () => {
    const stack = newStack();
    const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    // Two targets (one construct each: two managers of one initiator on one target are refused at synth).
    const lists = [1, 2].map((n) => new ChapCredentials(stack, `T${n}`, { targetArn: numberedTargetArn(n), initiators: [HOST_B], ...rotating })
      .wireHost({ initiatorName: HOST_B, portalAddress: '10.0.0.10', grantee: role }).windowsCommands);
    const texts = deployedTexts(stack, lists);
    expect(new Set(texts.map((t) => /^\$TaskName = '(.+)'$/m.exec(t)![1])).size).toBe(2);
    expect(Buffer.byteLength(`<powershell>\n${texts[0]}\n</powershell>`)).toBeLessThan(15 * 1024);
  });
});

describe('the PowerShell', () => {
  test('the file and the rendered commands of a rotating construct parse with no error or missing token', () => {
    const { text } = wired(rotating);
    expect(syntaxProblems(parsePowerShell(ROTATE_FILE))).toEqual([]);
    expect(syntaxProblems(parsePowerShell(text))).toEqual([]);
    expect(syntaxProblems(parsePowerShell(rotateScriptOf(text)))).toEqual([]);
    // The check can fail: a broken script is reported.
    expect(syntaxProblems(parsePowerShell(ROTATE_FILE.replace('function Remove-StaleLogin($Sessions) {', 'function Remove-StaleLogin($Sessions) {{'))))
      .not.toEqual([]);
  });

  test('no secret reaches a program, the task\'s registration or a log line; the secret flows only into iSCSI cmdlets', () => {
    const { text } = wired(rotating);
    // The commands: what they run themselves, and the task's registration.
    const commands = taint(parsePowerShell(text), { metadata: METADATA, sinks: SINKS.filter((s) => s.includes('scheduledtask')) });
    expect(commands.natives).toEqual([]);
    expect(commands.leaks).toEqual([]);
    expect(commands.sinkLeaks).toEqual([]);
    expect(commands.commands).toEqual(expect.arrayContaining(['register-scheduledtask', 'new-scheduledtaskaction', 'connect-iscsitarget']));
    // The file the task runs, as written: also its log.
    const report = taint(parsePowerShell(rotateScriptOf(text)), { metadata: METADATA, sinks: SINKS });
    // The analysis follows the secret from Get-SECSecretValue into the candidates and the functions' parameters.
    expect(report.tainted).toEqual(expect.arrayContaining(['secret', 'pair', 'candidates', 'fresh', 'ordered', 'candidate', 'targetsecret']));
    expect(report.natives).toEqual([]);
    expect(report.leaks).toEqual([]);
    expect(report.sinkLeaks).toEqual([]);
    expect(report.commands).toEqual(expect.arrayContaining([
      'get-secsecretvalue', 'get-iscsisession', 'get-iscsitarget', 'unregister-iscsisession', 'disconnect-iscsitarget', 'connect-iscsitarget',
      'set-iscsichapsecret', 'get-winevent',
    ]));
  });

  test.each([
    ['Write-ChapLog "trying $($candidate.Pair.secretToAuthenticateInitiator)"', 'write-chaplog'],
    ['Write-ChapLog "trying $candidate"', 'write-chaplog'],
    ['Add-Content -Path $LogFile -Value $found', 'add-content'],
    ['Register-ScheduledTask -TaskName $candidate.Pair.secretToAuthenticateTarget -Action $null', 'register-scheduledtask'],
  ])('the analysis catches a secret given to a sink (negative control: %s)', (line, sink) => {
    const script = ROTATE_FILE.replace('  $refusals = @()\n', `  $refusals = @()\n  foreach ($candidate in $fresh) { ${line} }\n`);
    expect(script).not.toBe(ROTATE_FILE);
    const report = taint(parsePowerShell(script), { metadata: METADATA, sinks: SINKS });
    // The sink itself, and what it passes the secret on to (Write-ChapLog's Write-Host and Add-Content).
    expect(report.sinkLeaks).toEqual(expect.arrayContaining([expect.stringMatching(new RegExp(`^${sink} `, 'i'))]));
  });

  test('no AWS call while the session is connected: the connected branch returns before any secret is read', () => {
    const body = functionText(ROTATE_FILE, 'Invoke-RotationCheck');
    const connected = body.indexOf('.IsConnected');
    const returned = body.indexOf('    return\n  }\n', connected);
    expect(connected).toBeGreaterThan(0);
    expect(returned).toBeGreaterThan(connected);
    const before = body.slice(0, returned);
    expect(before).not.toMatch(/Get-SECSecretValue|Get-ChapCandidates|Test-LoginRefused|Connect-IscsiTarget|Disconnect-IscsiTarget/);
    // The secret is read only past the two waits (no login refused yet, not down for $StaleSeconds).
    const wait = body.indexOf('-not (Test-LoginRefused $since.ToLocalTime()) -and ($sessions.Count -gt 0 -or $seconds -lt $StaleSeconds)');
    expect(wait).toBeGreaterThan(returned);
    expect(body.indexOf('Get-ChapCandidates')).toBeGreaterThan(wait);
  });

  test('AWSPENDING first, then AWSCURRENT; a version the session already logged in with is never reconnected', () => {
    expect(ROTATE_FILE).toContain("foreach ($stage in 'AWSPENDING', 'AWSCURRENT') {");
    expect(ROTATE_FILE).toContain('Get-SECSecretValue -SecretId $ChapSecretId -Region $ChapRegion -VersionStage $stage');
    expect(ROTATE_FILE).toContain('$fresh = @($found.Candidates | Where-Object { $_.VersionId -ne $record.versionId })');
    // The connect script records the version it logged in with in the same file, in the same shape.
    const record = "$SessionRecord = Join-Path $StateDirectory \"session-$($TargetIqn -replace '[^A-Za-z0-9.-]', '_').json\"";
    expect(ROTATE_FILE).toContain(record);
    expect(CONNECT_FILE).toContain(record);
    expect(CONNECT_FILE).toContain('[ordered]@{ versionId = $found.VersionId; disconnectedSince = $null }');
    // The stale persistent login goes before the disconnect, the reconnect is persistent.
    const body = functionText(ROTATE_FILE, 'Remove-StaleLogin');
    expect(body.indexOf('Unregister-IscsiSession')).toBeLessThan(body.indexOf('Disconnect-IscsiTarget'));
    expect(functionText(ROTATE_FILE, 'Invoke-RotationCheck')).toMatch(/Connect-IscsiTarget [^]*-IsPersistent \$true/);
  });

  test('the machine-wide mutual secret is kept exactly as the connect script keeps it (the same functions, text for text)', () => {
    for (const name of ['Set-MutualSecret', 'Get-SecretHash', 'New-StateDirectory']) {
      expect(functionText(ROTATE_FILE, name)).toBe(functionText(CONNECT_FILE, name));
    }
    expect(functionText(ROTATE_FILE, 'Set-MutualSecret')).toContain('needs another mutual-CHAP secret than target');
  });
});
