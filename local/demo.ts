/**
 * `npm run demo`: the whole lifecycle on this machine, with no AWS account. Synthesizes the demo app with the CDK
 * CLI, starts the emulator with a target holding three initiators (mutual and one-way CHAP), deploys, prints the
 * outputs and the stored secrets (values masked), changes a CHAP secret on the emulated gateway, updates, and
 * deletes the stack. Exits 0 only when every step worked.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalCloudFormation, StackResult } from './cloudformation';
import { startEmulator } from './emulator';

const ROOT = path.join(__dirname, '..');
const STACK = 'ChapCredentialsDemo';
const TARGET_ARN = JSON.parse(fs.readFileSync(path.join(ROOT, 'cdk.json'), 'utf8')).context.targetArn as string;
const WINDOWS = 'iqn.1991-05.com.microsoft:computername.domain.example.com';
const LINUX = 'iqn.1994-05.com.redhat:db-host';
const BACKUP = 'iqn.1994-05.com.redhat:backup-host';

/** A CHAP secret for the emulated gateway: 12 random characters, made here and never printed. */
const chapSecret = () => randomBytes(9).toString('base64url').slice(0, 12);

function synth(initiators: string[]): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-demo-'));
  execFileSync(path.join(ROOT, 'node_modules', '.bin', 'cdk'),
    ['synth', '--quiet', '--no-notices', '--no-version-reporting', '-o', out, '-c', `initiators=${initiators.join(',')}`],
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
function step(title: string, result?: StackResult, expected?: string): void {
  const ok = !result || result.status === expected;
  if (!ok) failures++;
  console.log(`${ok ? '✔' : '✘'} ${title}${result ? `: ${result.status}${result.reason ? ` (${result.reason})` : ''}` : ''}`);
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

    for (const problem of cfn.problems) console.log(`✘ ${problem}`);
    failures += cfn.problems.length;
    for (const dir of [first, second]) fs.rmSync(dir, { recursive: true, force: true });
  } finally {
    await cfn.stop();
    await emulator.stop();
  }
  console.log(failures ? `demo failed: ${failures} problem(s)` : 'demo complete: every step worked');
  process.exitCode = failures ? 1 : 0;
}

main().catch((error) => {
  console.error(`demo failed: ${(error as Error).message}`);
  process.exitCode = 1;
});
