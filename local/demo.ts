/**
 * `npm run demo`: the whole lifecycle on this machine, with no AWS account. Synthesizes the demo app with the CDK
 * CLI, starts the emulator with a target holding three initiators (mutual and one-way CHAP), deploys, prints the
 * outputs and the stored secrets (values masked), changes a CHAP secret on the emulated gateway, updates, and
 * deletes the stack. Then the whole chain as code: a stack that creates a volume, sets CHAP credentials on it,
 * stores them and wires a host from the volume; an unchanged update that closes no connection; delete. Then a
 * rotation: a managed stack with a rotation schedule (its configuration test touches nothing), a rotation now (what
 * changed: versions and stages, gateway writes, connection closes; values masked), an unchanged deploy that writes
 * nothing and does not revert, delete. Exits 0 only when every step worked.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalCloudFormation, StackResult } from './cloudformation';
import { Call, Emulator, startEmulator } from './emulator';
import { DEMO_GATEWAY_ARN, DEMO_HOST_INITIATOR, DEMO_VOLUME_PORTAL } from '../bin/demo-stack';

const ROOT = path.join(__dirname, '..');
const STACK = 'ChapCredentialsDemo';
const TARGET_ARN = JSON.parse(fs.readFileSync(path.join(ROOT, 'cdk.json'), 'utf8')).context.targetArn as string;
const WINDOWS = 'iqn.1991-05.com.microsoft:computername.domain.example.com';
const LINUX = 'iqn.1994-05.com.redhat:db-host';
const BACKUP = 'iqn.1994-05.com.redhat:backup-host';
const AL2023_PARAMETER = '/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-6.1-x86_64';

/** A CHAP secret for the emulated gateway: 12 random characters, made here and never printed. */
const chapSecret = () => randomBytes(9).toString('base64url').slice(0, 12);

function synth(initiators: string[], context: Record<string, string> = {}): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-demo-'));
  const flags = Object.entries({ initiators: initiators.join(','), ...context }).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  execFileSync(path.join(ROOT, 'node_modules', '.bin', 'cdk'),
    ['synth', '--quiet', '--no-notices', '--no-version-reporting', '-o', out, ...flags],
    { cwd: ROOT, stdio: 'pipe', env: { ...process.env, CDK_DISABLE_CLI_TELEMETRY: 'true' } });
  return out;
}

/** One line per stored pair, with the secret values masked. */
function describeValue(json: string | undefined): string[] {
  if (!json) return ['(no value)'];
  const value = JSON.parse(json);
  const pairs: Record<string, string>[] = value.chapCredentials ?? [value];
  return pairs.map((p) => `${p.initiatorName}: initiator secret ********${p.secretToAuthenticateTarget ? ', target secret ******** (mutual CHAP)' : ' (one-way CHAP)'}`);
}

let failures = 0;
/** Prints one line of the demo; a step that did not work counts as a failure. */
function check(title: string, ok: boolean): void {
  if (!ok) failures++;
  console.log(`${ok ? '✔' : '✘'} ${title}`);
}

/** A step, with the stack operation's result when it has one. */
function step(title: string, result?: StackResult, expected?: string): void {
  check(`${title}${result ? `: ${result.status}${result.reason ? ` (${result.reason})` : ''}` : ''}`, !result || result.status === expected);
}

async function main(): Promise<void> {
  const emulator = await startEmulator();
  const cfn = await new LocalCloudFormation({ emulator }).start();
  const sm = emulator.secretsManager;
  const showSecrets = () => {
    for (const secret of sm.secrets.values()) {
      console.log(`    secret ${secret.name} (${secret.versions.size} versions)`);
      for (const line of describeValue(sm.current(secret.arn))) console.log(`      ${line}`);
    }
  };
  try {
    const first = synth([WINDOWS]);
    step(`synthesized ${STACK} for ${TARGET_ARN}, declaring initiator ${WINDOWS}`);

    emulator.storageGateway.addTarget(TARGET_ARN, [
      { InitiatorName: WINDOWS, SecretToAuthenticateInitiator: chapSecret(), SecretToAuthenticateTarget: chapSecret() },
      { InitiatorName: LINUX, SecretToAuthenticateInitiator: chapSecret(), SecretToAuthenticateTarget: chapSecret() },
      { InitiatorName: BACKUP, SecretToAuthenticateInitiator: chapSecret() },
    ]);
    step(`emulator on ${emulator.endpoint}: the target has 3 initiators (2 mutual CHAP, 1 one-way)`);

    const created = await cfn.deploy(first, STACK);
    step('deploy', created, 'CREATE_COMPLETE');
    for (const [name, value] of Object.entries(created.outputs)) console.log(`    output ${name} = ${value}`);
    showSecrets();

    emulator.storageGateway.UpdateChapCredentials({
      TargetARN: TARGET_ARN, InitiatorName: LINUX, SecretToAuthenticateInitiator: chapSecret(), SecretToAuthenticateTarget: chapSecret(),
    });
    step(`changed the CHAP secrets of ${LINUX} on the gateway`);

    const second = synth([WINDOWS, LINUX]);
    const updated = await cfn.deploy(second, STACK);
    step(`update (now also declaring ${LINUX})`, updated, 'UPDATE_COMPLETE');
    showSecrets();

    const deleted = await cfn.destroy();
    step('delete', deleted, 'DELETE_COMPLETE');
    console.log(`    secrets left in Secrets Manager: ${sm.secrets.size}`);
    if (sm.secrets.size) failures++;

    const chain = await wholeChain(emulator, cfn);
    const rotated = await rotation(emulator, cfn);
    for (const problem of cfn.problems) console.log(`✘ ${problem}`);
    failures += cfn.problems.length;
    for (const dir of [first, second, chain, rotated]) fs.rmSync(dir, { recursive: true, force: true });
  } finally {
    await cfn.stop();
    await emulator.stop();
  }
  console.log(failures ? `demo failed: ${failures} problem(s)` : 'demo complete: every step worked');
  process.exitCode = failures ? 1 : 0;
}

/**
 * The chain as code: a volume, CHAP credentials set by the stack, secrets, a host wired from the volume; then an
 * unchanged update and delete. Returns the cloud assembly's folder.
 */
async function wholeChain(emulator: Emulator, cfn: LocalCloudFormation): Promise<string> {
  const gateway = emulator.storageGateway;
  gateway.addGateway(DEMO_GATEWAY_ARN);
  // The public parameter AWS publishes for the latest Amazon Linux 2023 image, which the host's template reads.
  emulator.ssm.PutParameter({ Name: AL2023_PARAMETER, Value: 'ami-0123456789abcdef0', Type: 'String' });
  const assembly = synth([WINDOWS], { volume: 'true', manage: 'true', host: 'true' });
  step(`synthesized ${STACK} with a volume on ${DEMO_GATEWAY_ARN}, managed mutual CHAP for ${WINDOWS} and ${DEMO_HOST_INITIATOR}`);

  const created = await cfn.deploy(assembly, STACK);
  step('deploy (volume, credentials, secrets, host)', created, 'CREATE_COMPLETE');
  const [volumeId, volume] = [...cfn.deployed].find(([, r]) => r.type === 'AWS::StorageGateway::Volume') ?? [];
  const targetArn = String(volume?.attributes.TargetARN);
  console.log(`    volume ${volumeId}: target ${targetArn}`);
  for (const [name, credential] of gateway.targets.get(targetArn) ?? []) {
    console.log(`    gateway: ${name} has CHAP credentials set by the stack, initiator secret ********`
      + `${credential.SecretToAuthenticateTarget ? ', target secret ******** (mutual)' : ' (one-way)'}`);
  }
  for (const secret of emulator.secretsManager.secrets.values()) {
    const value = emulator.secretsManager.current(secret.arn);
    if (value?.includes('initiatorName')) { // CHAP values (not the credential key)
      for (const line of describeValue(value)) console.log(`    secret ${secret.name}: ${line}`);
    }
  }
  const closedAtCreate = gateway.connectionsClosed(targetArn);
  console.log(`    UpdateChapCredentials calls: ${emulator.callsOf('UpdateChapCredentials', true).length}, connections closed: ${closedAtCreate}`);
  const userData = [...cfn.deployed.values()].find((r) => r.type === 'AWS::EC2::Instance')?.properties.UserData;
  const script = userData ? Buffer.from(String(userData), 'base64').toString('utf8') : '';
  const value = (name: string) => new RegExp(`^${name}='([^']*)'$`, 'm').exec(script)?.[1];
  const portal = `${value('CHAP_PORTAL_ADDRESS')}:${value('CHAP_PORTAL_PORT')}`;
  console.log(`    host wiring (Linux user data, the connect script's values): portal ${portal}, target ${value('CHAP_TARGET_ARN')}`);
  check('the host is wired to the volume\'s address, read from the volume', portal === `${DEMO_VOLUME_PORTAL}:3260`);

  const chapId = [...cfn.deployed].find(([, r]) => r.type.startsWith('Custom::'))![0];
  const gatewayWrites = () => emulator.callsOf('UpdateChapCredentials').length + emulator.callsOf('DeleteChapCredentials').length;
  const writes = gatewayWrites();
  const response = await cfn.updateUnchanged(chapId);
  const unchanged = gatewayWrites() === writes
    && gateway.connectionsClosed(targetArn) === closedAtCreate;
  check(`unchanged update: ${response.Status}, no gateway write, no connection closed`, response.Status === 'SUCCESS' && unchanged);

  const deleted = await cfn.destroy();
  step('delete (credentials removed, then the volume)', deleted, 'DELETE_COMPLETE');
  check(`DeleteChapCredentials calls: ${emulator.callsOf('DeleteChapCredentials', true).length} (one per initiator the stack set)`,
    emulator.callsOf('DeleteChapCredentials', true).length === 2);
  check('the gateway holds no volume and no target of the stack any more', !gateway.targets.has(targetArn) && gateway.volumes.size === 0);
  return assembly;
}

/** The target of the rotation step: a fresh one on the documentation example's gateway, with no initiator yet. */
const ROTATION_TARGET = `${DEMO_GATEWAY_ARN}/target/iqn.1997-05.com.amazon:rotation-demo`;
const short = (id: string) => id.slice(0, 8);

/** Calls by service and operation, such as `SecretsManager: DescribeSecret 8, GetSecretValue 6`. */
function byOperation(calls: readonly Call[]): string[] {
  const counts = new Map<string, Map<string, number>>();
  for (const c of calls) {
    const ops = counts.get(c.service) ?? new Map<string, number>();
    counts.set(c.service, ops.set(c.operation, (ops.get(c.operation) ?? 0) + 1));
  }
  return [...counts].map(([service, ops]) => `${service}: ${[...ops].map(([op, n]) => `${op} ${n}`).join(', ')}`);
}

/**
 * Rotation: a managed stack with a 30-day rotation schedule for two initiators, a rotation now, an unchanged deploy
 * after it, delete. Returns the cloud assembly's folder.
 */
async function rotation(emulator: Emulator, cfn: LocalCloudFormation): Promise<string> {
  const gateway = emulator.storageGateway;
  const sm = emulator.secretsManager;
  gateway.addTarget(ROTATION_TARGET, []);
  const assembly = synth([WINDOWS, LINUX], { targetArn: ROTATION_TARGET, manage: 'true', rotation: '30' });
  step(`synthesized ${STACK} with managed mutual CHAP for ${WINDOWS} and ${LINUX}, rotated every 30 days (-c rotation=30)`);

  const gatewayWrites = () => emulator.callsOf('UpdateChapCredentials').length + emulator.callsOf('DeleteChapCredentials').length;
  const closes = () => gateway.connectionsClosed(ROTATION_TARGET);
  const held = (name: string) => JSON.stringify(gateway.targets.get(ROTATION_TARGET)?.get(name) ?? null);
  const [writes0, tests0] = [gatewayWrites(), sm.rotations.length];
  const created = await cfn.deploy(assembly, STACK);
  await sm.settled(); // Secrets Manager tests the configuration after the schedule is created
  step('deploy (credentials set, secrets, rotation schedules, the function\'s permission)', created, 'CREATE_COMPLETE');
  const secretOf = new Map<string, string>(); // initiator name to its secret's ARN
  for (const r of cfn.deployed.values()) {
    if (r.type !== 'AWS::SecretsManager::Secret') continue;
    const text = sm.current(r.physicalId) ?? '';
    // CHAP values are JSON; the stack's credential key is not (and is never parsed, so no error can quote it).
    const name = text.startsWith('{') && text.includes('initiatorName') ? JSON.parse(text).initiatorName : undefined;
    if (typeof name === 'string') secretOf.set(name, r.physicalId);
  }
  const targetSecret = [...cfn.deployed.values()].find((r) => r.type === 'AWS::SecretsManager::Secret'
    && (sm.current(r.physicalId) ?? '').includes('chapCredentials'))?.physicalId ?? '';
  const schedules = [...cfn.deployed.values()].filter((r) => r.type === 'AWS::SecretsManager::RotationSchedule').length;
  const tests = sm.rotations.slice(tests0);
  const writesAtCreate = gatewayWrites() - writes0;
  for (const [name, arn] of secretOf) {
    const d = sm.DescribeSecret({ SecretId: arn });
    console.log(`    ${name}: rotation ${d.RotationEnabled ? 'on' : 'off'}, rules ${JSON.stringify(d.RotationRules)}, `
      + `next ${d.NextRotationDate ? new Date(d.NextRotationDate * 1000).toISOString().slice(0, 10) : 'none'}`);
  }
  console.log(`    rotation schedules: ${schedules}; configuration tests: ${tests.length} `
    + `(${tests.map((t) => `${t.status}, steps ${t.invocations.map((i) => i.step).join(',')}`).join('; ')})`);
  console.log(`    gateway writes: ${writesAtCreate} (the Create's, one per initiator), connections closed: ${closes()}`);
  check('the configuration tests passed and touched nothing: only testSecret, no gateway write beyond the Create\'s, no AWSPENDING left',
    schedules === 2 && tests.length === 2 && tests.every((t) => t.kind === 'configurationTest' && t.status === 'succeeded'
      && t.invocations.every((i) => i.step === 'testSecret'))
    && writesAtCreate === 2 && closes() === 2 && [...secretOf.values()].every((arn) => !sm.versions(arn).some((v) => v.stages.has('AWSPENDING'))));

  // Rotate the Windows host's credentials now, as `aws secretsmanager rotate-secret --secret-id ARN` does.
  const rotatedArn = secretOf.get(WINDOWS)!;
  const stages = (arn: string) => sm.versions(arn).map((v) => `${short(v.versionId)} ${v.stages.size ? [...v.stages].join('+') : '(no stage)'}`).join(', ');
  console.log(`    before: ${WINDOWS} secret versions: ${stages(rotatedArn)}`);
  const [mark, writes1, closes1, linuxBefore, windowsBefore] = [emulator.calls.length, gatewayWrites(), closes(), held(LINUX), held(WINDOWS)];
  const targetVersions = sm.versions(targetSecret).length;
  const record = await cfn.rotateSecret(rotatedArn);
  const calls = emulator.calls.slice(mark);
  const windowsAfter = held(WINDOWS);
  check(`rotate-secret ${WINDOWS}: ${record.status}, steps ${record.invocations.map((i) => i.step).join(', ')}`, record.status === 'succeeded');
  console.log(`    after:  ${WINDOWS} secret versions: ${stages(rotatedArn)}`
    + ' (AWSPENDING may stay on the AWSCURRENT version after a success, as AWS documents)');
  console.log(`    target secret: ${sm.versions(targetSecret).length - targetVersions} new version (every pair, as the gateway reports them)`);
  console.log(`    the function's calls: ${calls.length}`);
  for (const line of byOperation(calls)) console.log(`      ${line}`);
  console.log(`    gateway writes: ${gatewayWrites() - writes1}, connections of the target closed: ${closes() - closes1}`);
  const pair = (name: string) => JSON.parse(held(name));
  const asStored = (name: string) => ({
    initiatorName: name, targetArn: ROTATION_TARGET, secretToAuthenticateInitiator: pair(name).SecretToAuthenticateInitiator,
    secretToAuthenticateTarget: pair(name).SecretToAuthenticateTarget,
  });
  const stored = (arn: string) => JSON.parse(sm.current(arn)!);
  const inStep = () => [WINDOWS, LINUX].every((name) => JSON.stringify(stored(secretOf.get(name)!)) === JSON.stringify(asStored(name)))
    && JSON.stringify(JSON.parse(sm.current(targetSecret)!).chapCredentials) === JSON.stringify([WINDOWS, LINUX].sort().map(asStored));
  const current = sm.versions(rotatedArn).find((v) => v.stages.has('AWSCURRENT'));
  check('one gateway write, one close of the target; new initiator secret on the gateway, the mutual target secret kept, '
    + `${LINUX} untouched; AWSCURRENT on the rotation's version, AWSPREVIOUS the old, no AWSPENDING elsewhere; every secret equals the gateway`,
  gatewayWrites() - writes1 === 1 && closes() - closes1 === 1 && held(LINUX) === linuxBefore
    && pair(WINDOWS).SecretToAuthenticateInitiator !== JSON.parse(windowsBefore).SecretToAuthenticateInitiator
    && pair(WINDOWS).SecretToAuthenticateTarget === JSON.parse(windowsBefore).SecretToAuthenticateTarget
    && current?.versionId === record.versionId && sm.versions(rotatedArn).some((v) => v.stages.has('AWSPREVIOUS'))
    && !sm.versions(rotatedArn).some((v) => v.stages.has('AWSPENDING') && v !== current) && inStep());

  const [writes2, closes2] = [gatewayWrites(), closes()];
  const redeployed = await cfn.deploy(assembly, STACK);
  await sm.settled();
  step('unchanged deploy after the rotation', redeployed, 'UPDATE_COMPLETE');
  const chapId = [...cfn.deployed].find(([, r]) => r.type.startsWith('Custom::'))![0];
  const response = await cfn.updateUnchanged(chapId);
  check(`unchanged update of the custom resource: ${response.Status}; no gateway write, no connection closed, the rotated `
    + 'credentials kept (not reverted), every secret equals the gateway',
  response.Status === 'SUCCESS' && gatewayWrites() === writes2 && closes() === closes2 && held(WINDOWS) === windowsAfter && inStep());

  const deleted = await cfn.destroy();
  step('delete', deleted, 'DELETE_COMPLETE');
  check(`the gateway holds no credentials on the target any more (the rotated ones removed); secrets left: ${sm.secrets.size}`,
    gateway.targets.get(ROTATION_TARGET)?.size === 0 && sm.secrets.size === 0);
  return assembly;
}

main().catch((error) => {
  console.error(`demo failed: ${(error as Error).message}`);
  process.exitCode = 1;
});
