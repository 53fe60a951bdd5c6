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
async function deploy(tid: number, managed: boolean, oneWay: boolean, name = `${managed ? 'managed' : 'read-only'}-${oneWay ? 'one-way' : 'mutual'}`): Promise<Deployment> {
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
    name,
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
/** Which of the deployments' secrets `text` holds, named (a failure never prints a value). */
const found = (text: string, among: readonly Deployment[]) => among.flatMap((d) => [d.pair, d.otherPair].flatMap((p) => [
  ...(text.includes(p.SecretToAuthenticateInitiator) ? [`${d.name}: ${p.InitiatorName}'s SecretToAuthenticateInitiator`] : []),
  ...(p.SecretToAuthenticateTarget && text.includes(p.SecretToAuthenticateTarget) ? [`${d.name}: ${p.InitiatorName}'s SecretToAuthenticateTarget`] : []),
]));

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

/** How long a negative control runs: the commands may retry a refused login, which must never succeed. */
const NEGATIVE_SECONDS = 12;
/** Files holding a secret that are not the initiator's own root-only node records. */
const strayFiles = (hits: string) => hits.split(' ').filter(Boolean).filter((h) => !/^\/etc\/iscsi\/nodes\/.+:600$/.test(h));

/** Runs a deployment's commands as user data (traced), checks the session, the LUN and the guest's files. */
function scenario(d: Deployment, check: string, seconds: number, trace = true): string[] {
  return [
    `wiring_run ${d.name} ${check} ${seconds}${trace ? ' strace' : ''}`,
    `rig_check ${check}.state "$(wiring_state ${d.targetIqn})"`,
    `if [ "$(wiring_state ${d.targetIqn})" = LOGGED_IN ]; then rig_lun_reads ${d.targetIqn}; rig_check ${check}.lun $?; fi`,
    `wiring_scan ${check} ${d.name}.patterns`,
  ];
}

const SECRET_AFTER = 8;
const ACCOUNT_AFTER = 18;
let deployments: Deployment[];
let race: Deployment;
let result: GuestResult;

// One boot runs every scenario (each boot costs 15 to 40 s under TCG): the four modes with their negative controls,
// then a host that boots early, reboots, and meets a later discovery.
beforeAll(async () => {
  deployments = [await deploy(1, false, false), await deploy(2, false, true), await deploy(3, true, false), await deploy(4, true, true)];
  race = await deploy(5, true, false, 'early-boot');
  const [readOnlyMutual] = deployments;
  const files: GuestFile[] = helpers();
  const script: string[] = ['set -u', '. /rig/wiring.sh', 'rig_tgtd || exit 90'];
  for (const d of [...deployments, race]) {
    files.push(wiringFile(`${d.name}.patterns`, `${secretsOf(d).join('\n')}\n`));
  }
  for (const d of deployments) {
    // The first runs with `set -x` active before the commands, as much real user data does.
    files.push(userData(d.name, d.commands, d === readOnlyMutual), wiringFile(`${d.name}.answers`, answers(d)));
    script.push(targetAsGateway(d), `wiring_serve ${d.name}.answers`, ...scenario(d, d.name, 180), 'wiring_forget');
    if (d === readOnlyMutual) {
      // Negative controls: the same commands, served another host's secret, swapped secrets, a wrong target secret.
      const negatives: Record<string, string> = {
        'other-host': d.otherValue,
        'swapped': changed(d, (p) => ({ ...p, secretToAuthenticateInitiator: p.secretToAuthenticateTarget, secretToAuthenticateTarget: p.secretToAuthenticateInitiator })),
        'wrong-target-secret': changed(d, (p) => ({ ...p, secretToAuthenticateTarget: secretValue() })),
      };
      for (const [negative, value] of Object.entries(negatives)) {
        files.push(wiringFile(`${negative}.answers`, answer(d, 'AWSCURRENT', value)));
        script.push(`wiring_serve ${negative}.answers`, ...scenario(d, negative, NEGATIVE_SECONDS, false), 'wiring_forget');
      }
    }
    script.push(dropTarget(d));
  }
  // A host that boots early: iscsid is not running yet, the stand-in serves CloudFormation's placeholder until the
  // handler's value appears, and the host's account appears on the target later still (another host's account is
  // there from the start, so the target asks for CHAP).
  files.push(userData(race.name, race.commands), wiringFile('race.answers', answer(race, 'AWSCURRENT', placeholder()) + answers(race, SECRET_AFTER)));
  script.push(
    'rig_iscsid_stop',
    `rig_target ${race.tid} ${race.targetIqn} || exit 91`,
    `rig_incoming ${race.tid} ${HOST_C} '${race.otherPair.SecretToAuthenticateInitiator}' || exit 92`,
    'wiring_serve race.answers',
    `(sleep ${ACCOUNT_AFTER}; rig_incoming ${race.tid} ${HOST_B} '${race.pair.SecretToAuthenticateInitiator}';`
      + ` rig_outgoing ${race.tid} ${race.targetIqn} '${race.pair.SecretToAuthenticateTarget}'; echo 'rig: the account is on the target now') &`,
    'start=$(date +%s)',
    ...scenario(race, 'race', 180),
    'rig_check race.seconds "$(($(date +%s) - start))"',
    `wiring_sysfs race ${race.targetIqn}`,
    // A reboot: the session ends, iscsid starts again, the automatic nodes log in (as the distributions' service does).
    'wiring_reboot; rig_check reboot.login $?',
    `rig_check reboot.state "$(wiring_state ${race.targetIqn})"`,
    `rig_lun_reads ${race.targetIqn}; rig_check reboot.lun $?`,
    `wiring_sysfs reboot ${race.targetIqn}`,
    // A later discovery rewrites the node records from iscsid.conf's defaults: the live session keeps its settings, and
    // the record the next login uses must hold them too.
    'iscsiadm -m discovery -t sendtargets -p "$RIG_PORTAL" >/dev/null; rig_check discovery.exit $?',
    `wiring_sysfs discovery ${race.targetIqn}`,
    `record=$(iscsiadm -m node -T ${race.targetIqn} -p "$RIG_PORTAL" -o show)`,
    ...['node.session.timeo.replacement_timeout', 'node.conn[0].timeo.noop_out_interval', 'node.conn[0].timeo.noop_out_timeout']
      .map((key) => `rig_check 'record.${key}' "$(printf '%s\\n' "$record" | awk -F' = ' '$1 == "${key}" { print $2 }')"`),
    // Reported, not asserted: a login after that discovery (it also reset the record's CHAP settings and node.startup).
    `iscsiadm -m node -T ${race.targetIqn} -p "$RIG_PORTAL" --logout >/dev/null; iscsiadm -m node -T ${race.targetIqn} -p "$RIG_PORTAL" --login >/dev/null`,
    'rig_check discovery-relogin.login $?',
    `wiring_scan after-reboots ${race.name}.patterns`,
    'exit 0',
  );
  result = await runGuest({
    script: script.join('\n'), files, timeoutSeconds: 560,
    bring: [...deployments.map((d) => `/rig/log/${d.name}.strace`), '/rig/log/race.strace'],
  });
});

describe('the wiring of every mode, run verbatim as user data', () => {
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
    for (const d of [...deployments, race]) {
      const check = d === race ? 'race' : d.name;
      const trace = result.files[`/rig/log/${check}.strace`]?.toString('latin1') ?? '';
      expect(trace).toMatch(/execve\("[^"]*iscsiadm"/); // the trace saw the wiring at work
      expect(found(trace, [d])).toEqual([]);
    }
  });

  test('no CHAP secret on the console, with `set -x` active before the commands', () => {
    expect(result.console).toMatch(/^\+ /m); // set -x traced the user data
    expect(found(result.console, [...deployments, race])).toEqual([]);
  });

  test('no file holds a CHAP secret but the initiator\'s own root-only node records', () => {
    for (const check of [...deployments.map((d) => d.name), 'other-host', 'swapped', 'wrong-target-secret', 'race', 'after-reboots']) {
      expect(result.checks[`${check}.files`]).toBeDefined();
      expect({ [check]: strayFiles(result.checks[`${check}.files`]) }).toEqual({ [check]: [] });
    }
  });
});

describe('a host that boots early, and reboots', () => {
  test('before its secret holds a valid pair and before its account is on the target, the host waits, then connects', () => {
    expect(result.checks).toMatchObject({ 'race.exit': '0', 'race.state': 'LOGGED_IN', 'race.lun': '0' });
    expect(Number(result.checks['race.seconds'])).toBeGreaterThanOrEqual(ACCOUNT_AFTER);
  });

  test('after a reboot (iscsid restarted, automatic nodes logged in) the session returns', () => {
    expect(result.checks).toMatchObject({ 'reboot.login': '0', 'reboot.state': 'LOGGED_IN', 'reboot.lun': '0' });
  });

  test('AWS\'s initiator settings are live on the session and survive a later discovery', () => {
    for (const when of ['race', 'reboot', 'discovery']) {
      expect({ [when]: [result.checks[`${when}.recovery_tmo`], result.checks[`${when}.recv_tmo`], result.checks[`${when}.ping_tmo`]] })
        .toEqual({ [when]: ['600', '60', '600'] });
    }
    expect(result.checks).toMatchObject({
      'discovery.exit': '0', 'record.node.session.timeo.replacement_timeout': '600',
      'record.node.conn[0].timeo.noop_out_interval': '60', 'record.node.conn[0].timeo.noop_out_timeout': '600',
    });
  });
});
