/** Test harness: synthesize an app to a cloud assembly, then run it through the local CloudFormation driver. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { ChapCredentials, ChapCredentialsProps } from '../lib';
import { DriverOptions, LocalCloudFormation } from '../local/cloudformation';
import { ChapCredential, Emulator, startEmulator } from '../local/emulator';
import { secretValue } from './fixtures';

export const STACK = 'Lifecycle';
const assemblies: string[] = [];

/**
 * Synthesizes a stack named `Lifecycle` holding one ChapCredentials per props object (or built by a function);
 * returns the cdk.out folder.
 */
export function synth(...props: (ChapCredentialsProps | ((stack: Stack) => void))[]): string {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-assembly-'));
  assemblies.push(outdir);
  const app = new App({ outdir });
  const stack = new Stack(app, STACK);
  props.forEach((p, i) => (typeof p === 'function' ? p(stack) : new ChapCredentials(stack, props.length === 1 ? 'Chap' : `Chap${i}`, p)));
  app.synth();
  return outdir;
}

export function removeAssemblies(): void {
  for (const dir of assemblies.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** Every file of a cloud assembly, as text. */
export function assemblyText(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const file = path.join(d, entry.name);
      if (entry.isDirectory()) walk(file); else out.push(fs.readFileSync(file, 'utf8'));
    }
  };
  walk(dir);
  return out.join('\n');
}

/** A fresh emulator and driver; the secrets it hands out are remembered for containment checks. */
export class LocalCloud {
  readonly issued: string[] = [];
  private constructor(readonly emulator: Emulator, readonly cfn: LocalCloudFormation) {}

  static async start(options: Omit<DriverOptions, 'emulator'> = {}): Promise<LocalCloud> {
    const emulator = await startEmulator();
    return new LocalCloud(emulator, await new LocalCloudFormation({ ...options, emulator }).start());
  }

  async stop(): Promise<void> {
    await this.cfn.stop();
    await this.emulator.stop();
  }

  /** A CHAP credential with fresh secret values (mutual unless `oneWay`). */
  credential(initiatorName: string, oneWay = false): ChapCredential {
    const initiator = secretValue();
    const target = secretValue();
    this.issued.push(initiator, ...(oneWay ? [] : [target]));
    return { InitiatorName: initiatorName, SecretToAuthenticateInitiator: initiator, ...(oneWay ? {} : { SecretToAuthenticateTarget: target }) };
  }

  /** The ARN of the deployed secret whose logical id starts with `logicalIdPrefix`. */
  secretArn(logicalIdPrefix: string): string {
    const found = [...this.cfn.deployed.entries()].find(([id, r]) => id.startsWith(logicalIdPrefix) && r.type === 'AWS::SecretsManager::Secret');
    if (!found) throw new Error(`no secret ${logicalIdPrefix}* deployed`);
    return found[1].physicalId;
  }

  /** Current JSON value of the secret a deployed logical id stands for. */
  secretValue(logicalIdPrefix: string): unknown {
    return JSON.parse(this.emulator.secretsManager.current(this.secretArn(logicalIdPrefix))!);
  }

  /** How many versions that secret has. */
  versionsOf(logicalIdPrefix: string): number {
    return this.emulator.secretsManager.versions(this.secretArn(logicalIdPrefix)).length;
  }

  /** Everything the project emitted so far that must never hold a secret value. */
  emitted(): string {
    return this.cfn.invocations.flatMap((i) => [i.logs, ...i.responses.map((r) => r.raw), JSON.stringify(i.event)]).join('\n');
  }
}
