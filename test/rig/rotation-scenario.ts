/**
 * A host of a rotating construct in the iSCSI rig, through two rotations (issue 17, item 5), for
 * test/rig-rotation.test.ts and `npm run bench` (its stall figure).
 *
 * Node side: a managed construct with `rotation` is deployed by the local CloudFormation driver against the emulator,
 * and its host's initiator secret is rotated twice through the stack's function (RotateSecret: createSecret,
 * setSecret, testSecret, finishSecret); what the gateway and Secrets Manager hold is recorded before and after each.
 *
 * Guest side: `wireHost(...).linuxCommands` (with a mount point) run verbatim as user data against tgt holding the
 * gateway's pair; a write-and-fsync probe runs every half second on the mounted filesystem; then the first rotation is
 * mirrored into the guest as it happens on AWS: Secrets Manager stages AWSPENDING, the gateway's accounts change and
 * every connection of the target closes (UpdateChapCredentials), the host's agent logs in again, and AWSCURRENT moves.
 * The second rotation happens while the host is off; the host boots and its agent connects with the new pair. Last,
 * the gateway goes away for good: IO is held for the wiring's ioHoldTimeout, then fails.
 * Only the secret fetch is a stand-in (test/rig/aws), serving the values the emulator stored, stage by stage.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ChapCredentials, ChapRotation } from '../../lib';
import { ChapCredential } from '../../local/emulator';
import { HOST_B, numberedTargetArn } from '../fixtures';
import { LocalCloud, STACK, assemblyText, synth } from '../local-stack';
import { GuestFile, GuestResult, runGuest } from './guest';

export const MOUNT_POINT = '/srv/volume';
/** The wiring's ioHoldTimeout: short, so the last step (the gateway gone for good) ends soon. */
export const HOLD_SECONDS = 30;
/** How long the probe runs on a healthy session before and after the rotation (no AWS call may happen then). */
const HEALTHY_SECONDS = 6;

/** What the gateway and the host's secret hold at one point: before the rotations, after the first, after the second. */
export interface Held {
  readonly pair: ChapCredential;
  /** The secret's AWSCURRENT value. */
  readonly value: string;
}

export interface RotatingHost {
  readonly commands: string;
  readonly region: string;
  readonly secretArn: string;
  readonly targetIqn: string;
  readonly held: readonly Held[];
  /** Every CHAP secret the scenario uses: none may appear outside the node record and the gateway. */
  readonly secrets: readonly string[];
}

/**
 * Deploys the rotating construct and rotates the host's secret twice; returns the host's commands and what was held,
 * with the cloud (to end with `finish` in a test, `stop` elsewhere) and the assembly's text.
 */
export async function deployAndRotate(): Promise<{ host: RotatingHost; cloud: LocalCloud; assembly: string }> {
  const cloud = await LocalCloud.start();
  const targetArn = numberedTargetArn(1);
  const gateway = cloud.emulator.storageGateway;
  gateway.addTarget(targetArn, []);
  let commands: unknown;
  let secretArn: unknown;
  const assembly = synth((stack) => {
    const chap = new ChapCredentials(stack, 'Chap', {
      targetArn, initiators: [HOST_B], manageCredentials: true, rotation: ChapRotation.every(Duration.days(30)),
    });
    const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    const wiring = chap.wireHost({
      initiatorName: HOST_B, portalAddress: '127.0.0.1', grantee: role, mountPoint: MOUNT_POINT, ioHoldTimeout: Duration.seconds(HOLD_SECONDS),
    });
    commands = stack.resolve(wiring.linuxCommands.join('\n'));
    secretArn = stack.resolve(wiring.secret.secretArn);
  });
  const created = await cloud.cfn.deploy(assembly, STACK);
  if (created.status !== 'CREATE_COMPLETE') throw new Error(`the rotating stack did not deploy: ${created.status}`);
  const sm = cloud.emulator.secretsManager;
  await sm.settled();
  const arn = String(cloud.cfn.resolve(secretArn));
  const now = (): Held => ({ pair: { ...gateway.targets.get(targetArn)!.get(HOST_B)! }, value: sm.current(arn)! });
  const held = [now()];
  for (const rotation of [1, 2]) {
    const record = await cloud.cfn.rotateSecret(arn);
    if (record.status !== 'succeeded') throw new Error(`rotation ${rotation} did not succeed: ${JSON.stringify(record)}`);
    held.push(now());
  }
  const secrets = [...new Set(held.flatMap((h) => [h.pair.SecretToAuthenticateInitiator, h.pair.SecretToAuthenticateTarget ?? '']).filter(Boolean))];
  const host: RotatingHost = {
    commands: String(cloud.cfn.resolve(commands)), region: cloud.emulator.region, secretArn: arn,
    targetIqn: targetArn.split('/target/')[1], held, secrets,
  };
  return { host, cloud, assembly: assemblyText(assembly) };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const quoted = (value: string) => `'${value.replace(/'/g, "'\\''")}'`;

/** The stand-in's answers (test/rig/aws): each stage's value, or '-' for a stage on no version. */
function answers(host: RotatingHost, stages: Record<string, string | undefined>): string {
  return Object.entries(stages)
    .map(([stage, value]) => `${host.region} ${host.secretArn} ${stage} 0 ${value === undefined ? '-' : Buffer.from(value).toString('base64')}\n`)
    .join('');
}

/** The guest's job: the timeline the module's comment describes. Results are `rig_check` lines. */
export function rotationJob(host: RotatingHost): { script: string; files: GuestFile[]; bring: string[] } {
  const [v0, v1, v2] = host.held;
  const iqn = host.targetIqn;
  const accounts = (h: Held) => `rotation_accounts 1 ${HOST_B} ${quoted(h.pair.SecretToAuthenticateInitiator)} ${iqn} ${quoted(h.pair.SecretToAuthenticateTarget!)}`;
  const uses = (h: Held) => `rotation_session_uses ${iqn} ${sha256(h.pair.SecretToAuthenticateInitiator)} ${sha256(h.pair.SecretToAuthenticateTarget!)}`;
  const mounted = `"$(awk '$2 == "${MOUNT_POINT}" { split($4, o, ","); print $1, o[1] }' /proc/mounts)"`;
  const file = (name: string, content: string | Buffer, mode = 0o600): GuestFile => ({ path: name, content, mode });
  const files: GuestFile[] = [
    file('/rig/wiring.sh', fs.readFileSync(path.join(__dirname, 'wiring.sh')), 0o644),
    file('/rig/rotation.sh', fs.readFileSync(path.join(__dirname, 'rotation.sh')), 0o644),
    file('/usr/bin/aws', fs.readFileSync(path.join(__dirname, 'aws')), 0o755),
    file('/var/lib/cloud/instance/scripts/rotating', `#!/bin/bash\n${host.commands}\n`, 0o700),
    file('/rig/wiring/before.answers', answers(host, { AWSCURRENT: v0.value })),
    file('/rig/wiring/pending.answers', answers(host, { AWSCURRENT: v0.value, AWSPENDING: v1.value })),
    file('/rig/wiring/rotated.answers', answers(host, { AWSCURRENT: v1.value, AWSPREVIOUS: v0.value, AWSPENDING: undefined })),
    file('/rig/wiring/rotated-again.answers', answers(host, { AWSCURRENT: v2.value, AWSPREVIOUS: v1.value, AWSPENDING: undefined })),
    file('/rig/wiring/all.patterns', `${host.secrets.join('\n')}\n`),
  ];
  const script = [
    'set -u',
    '. /rig/wiring.sh',
    '. /rig/rotation.sh',
    'rotation_host_daemons || exit 80',
    'rig_tgtd || exit 90',
    `rig_target 1 ${iqn} 64 || exit 91`,
    `${accounts(v0)} || exit 92`,
    'wiring_serve before.answers',
    // The volume holds data the host does not know (the rig's LUN starts with a line naming its target): the commands
    // connect it but neither format nor mount it, and stop saying why.
    'wiring_run rotating refused 240',
    'volume=$(echo /dev/mapper/cdk-chap-*)',
    'rig_check refused.kept "$(head -c 512 "$volume" | grep -c RIG-LUN)"',
    `rig_check refused.mounted "$(grep -c ' ${MOUNT_POINT} ' /proc/mounts)"`,
    // A blank volume (as a new gateway volume is): the commands, run again (traced: no secret in any process's
    // arguments), format and mount it.
    'dd if=/dev/zero of=/rig/lun1.img bs=1M count=1 conv=notrunc 2>/dev/null && echo 3 >/proc/sys/vm/drop_caches',
    'wiring_run rotating setup 240 strace',
    `rig_check setup.state "$(wiring_state ${iqn})"`,
    'script=$(echo /var/lib/cdk-chap-credentials/connect-*.sh)',
    'map=cdk-chap-${script##*/connect-}; map=${map%.sh}',
    'rig_check setup.map "$map"',
    `rig_check setup.mount ${mounted}`,
    `rig_check setup.fstab "$(grep ' ${MOUNT_POINT} ' /etc/fstab)"`,
    'rig_check setup.table "$(dmsetup table "$map")"',
    'rig_check setup.no_path_retry "$(awk \'$1 == "no_path_retry" { print $2 }\' /etc/multipath/conf.d/"$map".conf)"',
    'rig_check setup.agent "$(kill -0 "$(rotation_agent_pid)" && echo running)"',
    `rig_check setup.secrets "$(${uses(v0)} && echo before)"`,
    // A healthy session: the probe runs, the agent reads sysfs and nothing else.
    `rotation_probe_start ${MOUNT_POINT}/probe`,
    'calls=$(rotation_calls)',
    `sleep ${HEALTHY_SECONDS}`,
    'rig_check healthy.calls "$(($(rotation_calls) - calls))"',
    // Rotation 1 as AWS runs it: createSecret staged AWSPENDING; setSecret changed the gateway's accounts, which
    // closed every connection of the target; the agent logs in again; finishSecret moves AWSCURRENT.
    'wiring_serve pending.answers',
    `${accounts(v1)} || exit 93`,
    'rig_close_connections 1',
    'start=${EPOCHREALTIME/./}',
    `rig_wait 120 'the session to log in with the rotated pair' ${uses(v1)}; rig_check rotation.back $?`,
    'rig_check rotation.back_ms "$(((${EPOCHREALTIME/./} - start) / 1000))"',
    'wiring_serve rotated.answers',
    'calls=$(rotation_calls)',
    `sleep ${HEALTHY_SECONDS}`,
    'rig_check after.calls "$(($(rotation_calls) - calls))"',
    'rotation_probe_stop rotation',
    `rig_check rotation.mount ${mounted}`,
    'rotation_kernel_errors rotation',
    `printf 'written before the power-off\\n' >${MOUNT_POINT}/marker && sync`,
    // Rotation 2 while the host is off; then it boots.
    `rotation_power_off ${MOUNT_POINT}; rig_check off.exit $?`,
    `rig_check off.state "$(wiring_state ${iqn})"`,
    `${accounts(v2)} || exit 94`,
    'wiring_serve rotated-again.answers',
    'rotation_power_on "$script" || exit 95',
    `rig_wait 120 'the agent to connect with the pair of the rotation it missed' ${uses(v2)}; rig_check boot.back $?`,
    `rig_wait 60 'the agent to mount the volume' mountpoint -q ${MOUNT_POINT}; rig_check boot.mounted $?`,
    `rig_check boot.mount ${mounted}`,
    `rig_check boot.marker "$(cat ${MOUNT_POINT}/marker)"`,
    // The filesystem after all that.
    `umount ${MOUNT_POINT}; rig_check fsck.umount $?`,
    'e2fsck -fn "/dev/mapper/$map" >/rig/log/fsck.out 2>&1; rig_check fsck.exit $?',
    // The gateway gone for good: IO waits ioHoldTimeout (after multipathd's fast_io_fail_tmo), then fails; the agent
    // sees no authentication failure and reads no secret.
    `mount ${MOUNT_POINT}; rig_check gone.mount $?`,
    'calls=$(rotation_calls)',
    'kill -KILL $(pidof tgtd)',
    'start=${EPOCHREALTIME/./}',
    `timeout 240 sh -c 'printf "after the gateway went away\\n" | dd of=${MOUNT_POINT}/gone conv=fsync' >/dev/null 2>&1; rig_check gone.write $?`,
    'rig_check gone.ms "$(((${EPOCHREALTIME/./} - start) / 1000))"',
    'rig_check gone.calls "$(($(rotation_calls) - calls))"',
    'rotation_agents_stop',
    'wiring_scan final all.patterns',
    'cp /var/lib/cdk-chap-credentials/agent-*.log /rig/log/agent.log; cp /var/log/messages /rig/log/messages',
    'exit 0',
  ].join('\n');
  const bring = ['setup.strace', 'boot-agent.strace', 'boot-agent.log', 'agent.log', 'messages', 'probe', 'dmesg', 'fsck.out']
    .map((name) => `/rig/log/${name}`);
  return { script, files, bring };
}

/** Runs the job in the rig. */
export function runRotation(host: RotatingHost): Promise<GuestResult> {
  return runGuest({ ...rotationJob(host), timeoutSeconds: 600 });
}
