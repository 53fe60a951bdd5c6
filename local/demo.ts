/**
 * `npm run demo`: the whole lifecycle on this machine, with no AWS account. Synthesizes the demo app with the CDK
 * CLI, starts the emulator with a target holding three initiators (mutual and one-way CHAP), deploys, prints the
 * outputs and the stored secrets (values masked), changes a CHAP secret on the emulated gateway, updates, and
 * deletes the stack. Then the whole chain as code: a stack that creates a volume, sets CHAP credentials on it,
 * stores them and wires a host from the volume; an unchanged update that closes no connection; delete. Exits 0 only
 * when every step worked.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalCloudFormation, StackResult } from './cloudformation';
import { Emulator, startEmulator } from './emulator';
import { DEMO_GATEWAY_ARN, DEMO_HOST_INITIATOR, DEMO_VOLUME_PORTAL } from '../bin/demo-stack';

const ROOT = path.join(__dirname, '..');
const STACK = 'ChapCredentialsDemo';
const TARGET_ARN = JSON.parse(fs.readFileSync(path.join(ROOT, 'cdk.json'), 'utf8')).context.targetArn as string;
const WINDOWS = 'iqn.1991-05.com.microsoft:computername.domain.example.com';
const LINUX = 'iqn.1994-05.com.redhat:db-host';
const BACKUP = 'iqn.1994-05.com.redhat:backup-host';

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
    for (const problem of cfn.problems) console.log(`✘ ${problem}`);
    failures += cfn.problems.length;
    for (const dir of [first, second, chain]) fs.rmSync(dir, { recursive: true, force: true });
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
  const portal = /^PORTAL='([^']*)'$/m.exec(script)?.[1];
  console.log(`    host wiring (Linux user data): PORTAL=${portal}, TARGET_ARN=${/^TARGET_ARN='([^']*)'$/m.exec(script)?.[1]}`);
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

main().catch((error) => {
  console.error(`demo failed: ${(error as Error).message}`);
  process.exitCode = 1;
});
