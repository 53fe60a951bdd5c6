/**
 * The Linux commands `wireHost` returns, run for real (issue 15, items 2 to 4): rendered from a synthesized app and
 * resolved by the local CloudFormation driver after a real lifecycle against the emulator (read-only with credentials
 * put on the emulated gateway, and managed; mutual and one-way), then run verbatim under bash in the rig's guest, as
 * user data runs them, against tgt configured as the emulated gateway holds the pairs (incoming account: the
 * initiator and SecretToAuthenticateInitiator; outgoing account: the target IQN and SecretToAuthenticateTarget).
 * Only the secret fetch is a stand-in (test/rig/aws), serving the values the emulator stores.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ChapCredentials, ChapMode } from '../lib';
import { ChapCredential } from '../local/emulator';
import { HOST_B, numberedTargetArn, secretValue } from './fixtures';
import { LocalCloud, STACK, assemblyText, removeAssemblies, synth } from './local-stack';
import { GuestFile, GuestResult, runGuest } from './rig/guest';

jest.setTimeout(600_000);
afterAll(removeAssemblies);

const HOST_C = 'iqn.1994-05.com.redhat:host-c';
const USERDATA = '/var/lib/cloud/instance/scripts';

/** One deployed app: the host's rendered commands and what the emulator holds. */
interface Deployment {
  readonly name: string;
  readonly tid: number;
  readonly targetIqn: string;
  readonly commands: string;
  readonly region: string;
  readonly secretArn: string;
  /** Every version the emulator stores for the host's secret: its stages and value. */
  readonly versions: { stages: string[]; value: string }[];
  /** HOST_B's pair and another host's (HOST_C) on the emulated gateway. */
  readonly pair: ChapCredential;
  readonly otherPair: ChapCredential;
  /** What the emulator stores for HOST_C (its own secret). */
  readonly otherValue: string;
}

/** Synthesizes, deploys and resolves one app: read-only or managed, mutual or one-way. */
async function deploy(tid: number, managed: boolean, oneWay: boolean): Promise<Deployment> {
  const cloud = await LocalCloud.start();
  const targetArn = numberedTargetArn(tid);
  const gateway = cloud.emulator.storageGateway;
  gateway.addTarget(targetArn, managed ? [] : [cloud.credential(HOST_B, oneWay), cloud.credential(HOST_C, oneWay)]);
  let commands: unknown;
  let secretArn: unknown;
  const assembly = synth((stack) => {
    const chap = new ChapCredentials(stack, 'Chap', {
      targetArn, initiators: [HOST_B, HOST_C],
      ...(managed ? { manageCredentials: true, chapMode: oneWay ? ChapMode.ONE_WAY : ChapMode.MUTUAL } : {}),
    });
    const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    const wiring = chap.wireHost({ initiatorName: HOST_B, portalAddress: '127.0.0.1', grantee: role });
    commands = stack.resolve(wiring.linuxCommands.join('\n'));
    secretArn = stack.resolve(wiring.secret.secretArn);
  });
  const created = await cloud.cfn.deploy(assembly, STACK);
  expect(created.status).toBe('CREATE_COMPLETE');
  const arn = String(cloud.cfn.resolve(secretArn));
  const sm = cloud.emulator.secretsManager;
  const otherArn = [...sm.secrets.values()].find((s) => sm.current(s.arn)?.includes(`"initiatorName":"${HOST_C}"`))!.arn;
  const deployment: Deployment = {
    name: `${managed ? 'managed' : 'read-only'}-${oneWay ? 'one-way' : 'mutual'}`,
    tid,
    targetIqn: targetArn.split('/target/')[1],
    commands: String(cloud.cfn.resolve(commands)),
    region: cloud.emulator.region,
    secretArn: arn,
    versions: sm.versions(arn).filter((v) => v.secretString !== undefined).map((v) => ({ stages: [...v.stages], value: v.secretString! })),
    pair: { ...gateway.targets.get(targetArn)!.get(HOST_B)! },
    otherPair: { ...gateway.targets.get(targetArn)!.get(HOST_C)! },
    otherValue: sm.current(otherArn)!,
  };
  // The lifecycle itself kept every value contained (events, responses, logs, templates).
  await cloud.finish([assemblyText(assembly)]);
  return deployment;
}

/** Every CHAP secret of a deployment: no process argument, console line or file (but node records) may hold one. */
const secretsOf = (d: Deployment) => [d.pair, d.otherPair]
  .flatMap((p) => [p.SecretToAuthenticateInitiator, p.SecretToAuthenticateTarget ?? '']).filter(Boolean);

/** A line of the stand-in's answers: served from `after` seconds on. */
const answer = (d: Deployment, stage: string, value: string, after = 0) =>
  `${d.region} ${d.secretArn} ${stage} ${after} ${Buffer.from(value).toString('base64')}\n`;
const answers = (d: Deployment, after = 0) => d.versions.flatMap((v) => v.stages.map((s) => answer(d, s, v.value, after))).join('');
/** The host's current value with its fields changed. */
function changed(d: Deployment, change: (pair: Record<string, string>) => Record<string, string>): string {
  const current = JSON.parse(d.versions.find((v) => v.stages.includes('AWSCURRENT'))!.value);
  return JSON.stringify(change(current));
}

/**
 * What the secret holds from its creation until the handler writes it: CloudFormation's GenerateSecretString with
 * the construct's settings (none: 32 characters, punctuation included). The awkward characters are always there.
 */
function placeholder(): string {
  const printable = Array.from({ length: 94 }, (_, i) => String.fromCharCode(33 + i)).join('');
  return `{"'$\`\\${[...randomBytes(26)].map((b) => printable[b % printable.length]).join('')}`;
}

function userData(name: string, commands: string, xtrace = false): GuestFile {
  return { path: `${USERDATA}/${name}`, content: `#!/bin/bash\n${xtrace ? 'set -x\n' : ''}${commands}\n`, mode: 0o700 };
}

const helpers = (): GuestFile[] => [
  { path: '/rig/wiring.sh', content: fs.readFileSync(path.join(__dirname, 'rig/wiring.sh')) },
  { path: '/usr/bin/aws', content: fs.readFileSync(path.join(__dirname, 'rig/aws')), mode: 0o755 },
];
const wiringFile = (name: string, content: string): GuestFile => ({ path: `/rig/wiring/${name}`, content, mode: 0o600 });

/** tgt as the gateway holds the host's pair: its incoming account and, for mutual CHAP, the target's outgoing one. */
function targetAsGateway(d: Deployment): string {
  return [
    `rig_target ${d.tid} ${d.targetIqn} || exit 91`,
    `rig_incoming ${d.tid} ${HOST_B} '${d.pair.SecretToAuthenticateInitiator}' || exit 92`,
    d.pair.SecretToAuthenticateTarget ? `rig_outgoing ${d.tid} ${d.targetIqn} '${d.pair.SecretToAuthenticateTarget}' || exit 93` : '',
  ].join('\n');
}
const dropTarget = (d: Deployment) => [
  `rig_drop_account ${HOST_B}`, d.pair.SecretToAuthenticateTarget ? `rig_drop_account ${d.targetIqn}` : '',
  `tgtadm --lld iscsi --op delete --mode target --tid ${d.tid}`,
].join('\n');

const NEGATIVE_SECONDS = 20;
const found = (text: string, values: readonly string[]) => values.filter((v) => text.includes(v));
/** Files holding a secret that are not the initiator's own root-only node records. */
const strayFiles = (hits: string) => hits.split(' ').filter(Boolean).filter((h) => !/^\/etc\/iscsi\/nodes\/.+:600$/.test(h));

describe('the wiring of every mode, run verbatim as user data', () => {
  let deployments: Deployment[];
  let result: GuestResult;

  beforeAll(async () => {
    deployments = [
      await deploy(1, false, false), await deploy(2, false, true), await deploy(3, true, false), await deploy(4, true, true),
    ];
    const [readOnlyMutual] = deployments;
    const files: GuestFile[] = [...helpers()];
    const script: string[] = ['set -u', '. /rig/wiring.sh', 'rig_tgtd || exit 90'];
    for (const d of deployments) {
      // The first runs with `set -x` active before the commands, as much real user data does.
      files.push(userData(d.name, d.commands, d === readOnlyMutual));
      files.push(wiringFile(`${d.name}.answers`, answers(d)), wiringFile(`${d.name}.patterns`, `${secretsOf(d).join('\n')}\n`));
      script.push(
        targetAsGateway(d),
        `wiring_serve ${d.name}.answers`,
        `wiring_run ${d.name} ${d.name} 180 strace`,
        `rig_check ${d.name}.state "$(wiring_state ${d.targetIqn})"`,
        `rig_lun_reads ${d.targetIqn}; rig_check ${d.name}.lun $?`,
        `wiring_scan ${d.name} ${d.name}.patterns`,
        'wiring_forget',
      );
      if (d === readOnlyMutual) {
        // Negative controls: the same commands, served another host's secret, swapped secrets, a wrong target secret.
        const negatives: Record<string, string> = {
          'other-host': d.otherValue,
          'swapped': changed(d, (p) => ({ ...p, secretToAuthenticateInitiator: p.secretToAuthenticateTarget, secretToAuthenticateTarget: p.secretToAuthenticateInitiator })),
          'wrong-target-secret': changed(d, (p) => ({ ...p, secretToAuthenticateTarget: secretValue() })),
        };
        for (const [negative, value] of Object.entries(negatives)) {
          files.push(wiringFile(`${negative}.answers`, answer(d, 'AWSCURRENT', value)));
          script.push(
            `wiring_serve ${negative}.answers`,
            `wiring_run ${d.name} ${negative} ${NEGATIVE_SECONDS}`,
            `rig_check ${negative}.state "$(wiring_state ${d.targetIqn})"`,
            'wiring_forget',
          );
        }
      }
      script.push(dropTarget(d));
    }
    script.push('exit 0');
    result = await runGuest({
      script: script.join('\n'), files, bring: deployments.map((d) => `/rig/log/${d.name}.strace`), timeoutSeconds: 540,
    });
  });

  test('read-only and managed, mutual and one-way: the commands log in and the LUN reads', () => {
    expect(result.exitCode).toBe(0);
    for (const d of deployments) {
      expect({ [d.name]: [result.checks[`${d.name}.exit`], result.checks[`${d.name}.state`], result.checks[`${d.name}.lun`]] })
        .toEqual({ [d.name]: ['0', 'LOGGED_IN', '0'] });
    }
  });

  test('negative controls: another host\'s secret, swapped secrets and a wrong target secret never log in', () => {
    for (const negative of ['other-host', 'swapped', 'wrong-target-secret']) {
      expect({ [negative]: result.checks[`${negative}.state`] }).toEqual({ [negative]: 'none' });
      expect(result.checks[`${negative}.exit`]).toMatch(/^\d+$/);
      expect(result.checks[`${negative}.exit`]).not.toBe('0');
    }
  });

  test('no CHAP secret in any process\'s arguments: every execve of the wiring, traced', () => {
    for (const d of deployments) {
      const trace = result.files[`/rig/log/${d.name}.strace`]?.toString('latin1') ?? '';
      expect(trace).toMatch(/execve\("[^"]*iscsiadm"/); // the trace saw the wiring at work
      expect({ [d.name]: found(trace, secretsOf(d)) }).toEqual({ [d.name]: [] });
    }
  });

  test('no CHAP secret on the console, with `set -x` active before the commands', () => {
    expect(result.console).toContain(`+ `); // set -x traced the commands
    expect(found(result.console, deployments.flatMap(secretsOf))).toEqual([]);
  });

  test('no file holds a CHAP secret but the initiator\'s own root-only node records', () => {
    for (const d of deployments) {
      expect(result.checks[`${d.name}.files`]).toBeDefined();
      expect({ [d.name]: strayFiles(result.checks[`${d.name}.files`]) }).toEqual({ [d.name]: [] });
    }
  });
});

describe('a host that boots early, and reboots', () => {
  let d: Deployment;
  let result: GuestResult;
  const SECRET_AFTER = 8;
  const ACCOUNT_AFTER = 18;

  beforeAll(async () => {
    d = await deploy(5, true, false);
    // The stand-in serves CloudFormation's placeholder until the handler's value appears; the host's account appears
    // on the target later still (another host's account is there from the start, so the target asks for CHAP).
    const files = [
      ...helpers(), userData(d.name, d.commands),
      wiringFile('race.answers', answer(d, 'AWSCURRENT', placeholder()) + answers(d, SECRET_AFTER)),
    ];
    const script = [
      'set -u', '. /rig/wiring.sh', 'rig_tgtd || exit 90',
      `rig_target ${d.tid} ${d.targetIqn} || exit 91`,
      `rig_incoming ${d.tid} ${HOST_C} '${d.otherPair.SecretToAuthenticateInitiator}' || exit 92`,
      'wiring_serve race.answers',
      `(sleep ${ACCOUNT_AFTER}; rig_incoming ${d.tid} ${HOST_B} '${d.pair.SecretToAuthenticateInitiator}';`
        + ` rig_outgoing ${d.tid} ${d.targetIqn} '${d.pair.SecretToAuthenticateTarget}'; echo 'rig: the account is on the target now') &`,
      `start=$(date +%s)`,
      `wiring_run ${d.name} race 180`,
      `rig_check race.seconds "$(($(date +%s) - start))"`,
      `rig_check race.state "$(wiring_state ${d.targetIqn})"`,
      `rig_lun_reads ${d.targetIqn}; rig_check race.lun $?`,
      `wiring_sysfs race ${d.targetIqn}`,
      `wiring_reboot; rig_check reboot.login $?`,
      `rig_check reboot.state "$(wiring_state ${d.targetIqn})"`,
      `rig_lun_reads ${d.targetIqn}; rig_check reboot.lun $?`,
      `wiring_sysfs reboot ${d.targetIqn}`,
      `iscsiadm -m discovery -t sendtargets -p "$RIG_PORTAL" >/dev/null; rig_check discovery.exit $?`,
      `wiring_reboot; rig_check discovery-reboot.login $?`,
      `rig_check discovery-reboot.state "$(wiring_state ${d.targetIqn})"`,
      `wiring_sysfs discovery-reboot ${d.targetIqn}`,
      'exit 0',
    ];
    result = await runGuest({ script: script.join('\n'), files, timeoutSeconds: 400 });
  });

  test('before its secret holds a valid pair and before its account is on the target, the host waits, then connects', () => {
    expect(result.exitCode).toBe(0);
    expect(result.checks).toMatchObject({ 'race.exit': '0', 'race.state': 'LOGGED_IN', 'race.lun': '0' });
    expect(Number(result.checks['race.seconds'])).toBeGreaterThanOrEqual(ACCOUNT_AFTER);
  });

  test('after a reboot (iscsid restarted, automatic nodes logged in) the session returns', () => {
    expect(result.checks).toMatchObject({ 'reboot.login': '0', 'reboot.state': 'LOGGED_IN', 'reboot.lun': '0' });
  });

  test('AWS\'s initiator settings are live on the session and survive a later discovery', () => {
    for (const when of ['race', 'reboot', 'discovery-reboot']) {
      expect({ [when]: [result.checks[`${when}.recovery_tmo`], result.checks[`${when}.recv_tmo`], result.checks[`${when}.ping_tmo`]] })
        .toEqual({ [when]: ['600', '60', '600'] });
    }
    expect(result.checks).toMatchObject({ 'discovery.exit': '0', 'discovery-reboot.login': '0', 'discovery-reboot.state': 'LOGGED_IN' });
  });

  test('no CHAP secret on the console while it waited', () => {
    expect(found(result.console, secretsOf(d))).toEqual([]);
  });
});
