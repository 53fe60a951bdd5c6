/**
 * `npm run bench`, rotation section (issue 17, item 8): what one Secrets Manager rotation of a declared initiator's
 * credentials costs, with 1, 20 and 100 initiators on one target. Each initiator's secret is rotated once, one after
 * another, as `aws secretsmanager rotate-secret` does, through the local CloudFormation driver (the bundled handler
 * as the rotation function) and the emulator; the counts come from the emulator's call log and its gateway's
 * connection closes. Then the cost of a redelivered step: each step delivered twice in one more rotation. Figures only.
 *
 * Runs inside `npm run bench` (bench/run.ts calls {@link rotationSection}), or alone: `node bench/rotation.js` prints
 * the section without writing BENCHMARKS.md. `BENCH_SECTIONS` without `rotation` skips it; `BENCH_QUICK` measures
 * 1 and 20 initiators only.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Duration, Stack } from 'aws-cdk-lib';
import { STACK, initiatorName, targetArn } from './apps';
import { ChapCredentials, ChapRotation } from '../lib';
import { LocalCloudFormation } from '../local/cloudformation';
import { Call, startEmulator } from '../local/emulator';
import { ROTATION_STEPS, RotationStep } from '../local/emulator/secrets-manager';

/** The section's name in `BENCH_SECTIONS`. */
export const ROTATION_SECTION = 'rotation';

/** Whether `BENCH_SECTIONS` (when set) asks for this section. */
export function rotationSelected(env: NodeJS.ProcessEnv = process.env): boolean {
  const only = env.BENCH_SECTIONS?.split(',').map((x) => x.trim()).filter(Boolean);
  return !only?.length || only.includes(ROTATION_SECTION);
}

/** What the section writes to: bench/run.ts's `out` and goals, and its temporary folder. */
export interface RotationBench {
  readonly out: (line?: string) => void;
  readonly goals: { goal: string; measured: string; met: boolean }[];
  readonly tmp: string;
  /** 1 and 20 initiators only. @default BENCH_QUICK is set */
  readonly quick?: boolean;
  /** The numbers of initiators measured. @default 1, 20 and 100 (1 and 20 when quick) */
  readonly sizes?: number[];
}

const GATEWAY_WRITES = ['UpdateChapCredentials', 'DeleteChapCredentials'];

/** What one rotation did. */
interface Rotated {
  readonly ms: number;
  readonly calls: readonly Call[];
  readonly writes: number;
  readonly closes: number;
  /** New versions of the rotated secret and of the target secret. */
  readonly versions: number;
  readonly targetVersions: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const count = (calls: readonly Call[], operation: string) => calls.filter((c) => c.operation === operation).length;

/** Calls per operation, keyed `service:Operation`. */
function operations(calls: readonly Call[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const c of calls) counts.set(`${c.service}:${c.operation}`, (counts.get(`${c.service}:${c.operation}`) ?? 0) + 1);
  return counts;
}

/** `storagegateway: DescribeChapCredentials 4, UpdateChapCredentials 1; secretsmanager: ...`, services in a fixed order. */
function describe(counts: Map<string, number>): string {
  const services = ['storagegateway', 'secretsmanager', ...new Set([...counts.keys()].map((k) => k.split(':')[0]))];
  return [...new Set(services)].map((service) => {
    const ops = [...counts].filter(([k, n]) => k.startsWith(`${service}:`) && n !== 0).sort(([a], [b]) => (a < b ? -1 : 1));
    return ops.length ? `${service}: ${ops.map(([k, n]) => `${k.split(':')[1]} ${n > 0 && n !== Math.round(n) ? n.toFixed(1) : n}`).join(', ')}` : '';
  }).filter(Boolean).join('; ') || 'none';
}

/** A figure over every rotation: one number when they agree, else `min to max (median m)`. */
function spread(xs: number[]): string {
  const [min, max] = [Math.min(...xs), Math.max(...xs)];
  return min === max ? `${min}` : `${min} to ${max} (median ${median(xs)})`;
}

function assembly(tmp: string, initiators: number): string {
  const outdir = fs.mkdtempSync(path.join(tmp, 'asm-rotation-'));
  const app = new App({ outdir, context: { 'aws:cdk:disable-stack-trace': true } });
  const stack = new Stack(app, STACK);
  new ChapCredentials(stack, 'Chap0', {
    targetArn: targetArn(0),
    initiators: Array.from({ length: initiators }, (_, n) => initiatorName(0, n)),
    manageCredentials: true,
    rotation: ChapRotation.every(Duration.days(30)),
  });
  app.synth();
  return outdir;
}

/** One size: deploy, rotate every initiator's secret once, then one rotation per step delivered twice. */
async function measure(tmp: string, initiators: number) {
  const emulator = await startEmulator();
  const target = targetArn(0);
  emulator.storageGateway.addTarget(target, []);
  const cfn = await new LocalCloudFormation({ emulator }).start();
  const sm = emulator.secretsManager;
  try {
    const deployed = await cfn.deploy(assembly(tmp, initiators), STACK);
    await sm.settled(); // the configuration tests the rotation schedules started
    if (deployed.status !== 'CREATE_COMPLETE') throw new Error(`rotation bench, ${initiators} initiators: ${deployed.status} ${deployed.reason}`);
    // Reported, not thrown: Secrets Manager tests every new schedule at once, so with many initiators the function's
    // invocations run side by side.
    const tests = sm.rotations.filter((r) => r.kind === 'configurationTest');
    const failedTests = tests.filter((t) => t.status !== 'succeeded')
      .map((t) => `${t.status}: ${t.error ?? t.invocations.map((i) => i.error).filter(Boolean).join('; ')}`);
    const createWrites = emulator.calls.filter((c) => GATEWAY_WRITES.includes(c.operation)).length;
    const secretOf = new Map<string, string>();
    let targetSecret = '';
    for (const r of cfn.deployed.values()) {
      if (r.type !== 'AWS::SecretsManager::Secret') continue;
      const text = sm.current(r.physicalId) ?? '';
      if (!text.startsWith('{')) continue; // the credential key, never parsed
      const value = JSON.parse(text);
      if (typeof value.initiatorName === 'string') secretOf.set(value.initiatorName, r.physicalId);
      else if (Array.isArray(value.chapCredentials)) targetSecret = r.physicalId;
    }
    const rotate = async (secretArn: string): Promise<Rotated> => {
      const [mark, closed, versions, targetVersions] = [emulator.calls.length, emulator.storageGateway.connectionsClosed(target),
        sm.versions(secretArn).length, sm.versions(targetSecret).length];
      const start = process.hrtime.bigint();
      const record = await cfn.rotateSecret(secretArn);
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      if (record.status !== 'succeeded') throw new Error(`rotation of ${secretArn} ${record.status}: ${record.error}`);
      const calls = emulator.calls.slice(mark);
      return {
        ms, calls, writes: calls.filter((c) => GATEWAY_WRITES.includes(c.operation)).length,
        closes: emulator.storageGateway.connectionsClosed(target) - closed,
        versions: sm.versions(secretArn).length - versions, targetVersions: sm.versions(targetSecret).length - targetVersions,
      };
    };
    const names = Array.from({ length: initiators }, (_, n) => initiatorName(0, n));
    const before = new Map(names.map((name) => [name, emulator.storageGateway.targets.get(target)!.get(name)!.SecretToAuthenticateInitiator]));
    const rotations: Rotated[] = [];
    for (const name of names) rotations.push(await rotate(secretOf.get(name)!));
    // The figures count only if every rotation did its work: new credentials on the gateway, each secret equal to it.
    for (const name of names) {
      const held = emulator.storageGateway.targets.get(target)!.get(name)!;
      const stored = JSON.parse(sm.current(secretOf.get(name)!)!);
      if (held.SecretToAuthenticateInitiator === before.get(name) || stored.secretToAuthenticateInitiator !== held.SecretToAuthenticateInitiator
        || stored.secretToAuthenticateTarget !== held.SecretToAuthenticateTarget) {
        throw new Error(`rotation bench, ${initiators} initiators: ${name} not rotated, or its secret differs from the gateway`);
      }
    }
    const redelivered = new Map<RotationStep, Rotated>();
    for (const step of ROTATION_STEPS) {
      cfn.lambda.redeliverRotationSteps([step]);
      redelivered.set(step, await rotate(secretOf.get(names[0])!));
    }
    cfn.lambda.redeliverRotationSteps([]);
    if (cfn.problems.length) throw new Error(cfn.problems.join('; '));
    return { createWrites, tests: tests.length, failedTests, rotations, redelivered };
  } finally {
    await cfn.stop();
    await emulator.stop();
  }
}

export async function rotationSection(bench: RotationBench): Promise<void> {
  if (!rotationSelected()) return;
  const { out, goals } = bench;
  const quick = bench.quick ?? (!!process.env.BENCH_QUICK && process.env.BENCH_QUICK !== '0');
  const sizes = bench.sizes ?? (quick ? [1, 20] : [1, 20, 100]);
  out('## Rotation');
  out();
  out('One ChapCredentials with `manageCredentials` (mutual CHAP) and `rotation: ChapRotation.every(Duration.days(30))` '
    + 'declaring N initiators on one target, deployed through the local CloudFormation driver (whose Secrets Manager then '
    + 'tests each schedule\'s configuration). Then every initiator\'s secret is rotated once, one after another, as '
    + '`aws secretsmanager rotate-secret` does: four invocations of the bundled handler each. Calls are the function\'s, '
    + 'from the emulator\'s call log, per rotation; gateway writes are UpdateChapCredentials and DeleteChapCredentials '
    + 'calls; closes are what the emulated gateway counted for the target (every write closes all its iSCSI '
    + 'connections). After the rotations the bench checks that every initiator has new credentials on the gateway and '
    + 'that each secret equals the gateway. Wall time per rotation includes four function process starts.');
  out();
  out('| initiators | rotations | calls per rotation | by operation, per rotation | gateway writes | PutSecretValue '
    + '| UpdateSecretVersionStage | closes of the target per rotation | closes per round (every initiator once) '
    + '| new versions (initiator, target secret) | wall per rotation (median) |');
  out('| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  const results: {
    initiators: number; rotations: Rotated[]; redelivered: Map<RotationStep, Rotated>; createWrites: number; tests: number; failedTests: string[];
  }[] = [];
  for (const initiators of sizes) {
    const measured = await measure(bench.tmp, initiators);
    results.push({ initiators, ...measured });
    const rs = measured.rotations;
    const splits = [...new Set(rs.map((r) => describe(operations(r.calls))))].join(' or ');
    out(`| ${initiators} | ${rs.length} | ${spread(rs.map((r) => r.calls.length))} | ${splits} | ${spread(rs.map((r) => r.writes))} `
      + `| ${spread(rs.map((r) => count(r.calls, 'PutSecretValue')))} | ${spread(rs.map((r) => count(r.calls, 'UpdateSecretVersionStage')))} `
      + `| ${spread(rs.map((r) => r.closes))} | ${rs.reduce((sum, r) => sum + r.closes, 0)} `
      + `| ${spread(rs.map((r) => r.versions))}, ${spread(rs.map((r) => r.targetVersions))} | ${Math.round(median(rs.map((r) => r.ms)))} ms |`);
  }
  out();
  out('The deploys\' configuration tests (one per schedule, only `testSecret`, run side by side) wrote nothing to the gateway: '
    + `the deploys made ${results.map((r) => `${r.createWrites} write${r.createWrites === 1 ? '' : 's'} with ${r.initiators}`).join(', ')} initiators, the Create's `
    + `one per initiator. Configuration tests that succeeded: ${results.map((r) => `${r.tests - r.failedTests.length} of ${r.tests}`).join(', ')}`
    + `${results.some((r) => r.failedTests.length) ? `; the others: ${[...new Set(results.flatMap((r) => r.failedTests))].join('; ')}` : ''}.`);
  out();
  out('A redelivered step: one more rotation of the first initiator\'s secret with that step delivered twice in a row (as '
    + 'Secrets Manager may), against the median rotation of the same size. Extra writes, closes and versions must stay 0.');
  out();
  out('| initiators | step delivered twice | extra invocations | extra calls | extra calls by operation | extra gateway writes | extra closes | extra versions |');
  out('| ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |');
  let redeliveryClean = true;
  for (const { initiators, rotations, redelivered } of results) {
    const typical = rotations.find((r) => r.calls.length === median(rotations.map((x) => x.calls.length)))!;
    const base = operations(typical.calls);
    for (const [step, r] of redelivered) {
      const extra = operations(r.calls);
      for (const [k, n] of base) extra.set(k, (extra.get(k) ?? 0) - n);
      const extraVersions = r.versions - typical.versions + r.targetVersions - typical.targetVersions;
      const [writes, closes] = [r.writes - typical.writes, r.closes - typical.closes];
      if (writes || closes || extraVersions) redeliveryClean = false;
      out(`| ${initiators} | ${step} | 1 | ${r.calls.length - typical.calls.length} | ${describe(extra)} | ${writes} | ${closes} | ${extraVersions} |`);
    }
  }
  out();
  const all = results.flatMap((r) => r.rotations);
  goals.push(
    {
      goal: 'a rotation makes one gateway write and closes the target\'s connections once, whatever the number of initiators',
      measured: results.map((r) => `${spread(r.rotations.map((x) => x.writes))} write, ${spread(r.rotations.map((x) => x.closes))} close (${r.initiators})`).join('; '),
      met: all.every((r) => r.writes === 1 && r.closes === 1),
    },
    {
      goal: 'a redelivered rotation step makes no gateway write, closes nothing and stores no version',
      measured: redeliveryClean ? 'none of them' : 'see the table',
      met: redeliveryClean,
    },
  );
}

if (require.main === module) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-bench-rotation-'));
  const goals: RotationBench['goals'] = [];
  // `node bench/rotation.js 100` measures only the sizes given.
  const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
  rotationSection({ out: (line = '') => console.log(line), goals, tmp, ...(sizes.length ? { sizes } : {}) })
    .then(() => {
      for (const g of goals) console.log(`goal: ${g.goal}: ${g.measured} (${g.met ? 'met' : 'NOT met'})`);
      console.log('BENCHMARKS.md not written (section run alone)');
    })
    .catch((error) => {
      console.error(error);
      process.exitCode = 1;
    })
    .finally(() => fs.rmSync(tmp, { recursive: true, force: true }));
}
