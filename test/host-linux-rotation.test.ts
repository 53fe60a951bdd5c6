/**
 * The Linux connect script's volume and rotation parts, run verbatim (the commands wireHost renders) against the
 * stand-ins of test/host-harness.ts: the mount (fstab, formatting only a blank volume), dm-multipath set up for a
 * rotating construct, the agent's systemd unit, and the agent itself (--agent): when it spends an AWS call and when
 * not. The rig (test/rig-rotation.test.ts) proves the same on real open-iscsi, dm-multipath and tgt; these reach the
 * branches it cannot (package managers, distributions' layouts, volumes holding something else, log lines).
 */
import { Duration } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ChapCredentials, ChapRotation } from '../lib';
import { DOC_TARGET_ARN, HOST_B, secretValue } from './fixtures';
import { DEPLOYED, LinuxRun, LinuxRunOptions, MKFS_UUID, STANDIN_WWID, deployedText, expectContained, newStack, runLinux } from './host-harness';

const TARGET_IQN = 'iqn.1997-05.com.amazon:myvolume';
const RECORD = `/etc/iscsi/nodes/${TARGET_IQN}/10.0.0.10,3260`;

/** The commands of a host wired with a mount point: to a rotating construct (60 s of IO hold) or a plain one. */
function commands(rotating = true): { text: string; secretArn: string; hash: string } {
  const stack = newStack();
  const chap = new ChapCredentials(stack, 'Chap', {
    targetArn: DOC_TARGET_ARN, initiators: [HOST_B],
    ...(rotating ? { manageCredentials: true, rotation: ChapRotation.every(Duration.days(30)) } : {}),
  });
  const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  const wiring = chap.wireHost({
    initiatorName: HOST_B, portalAddress: '10.0.0.10', grantee: role, mountPoint: '/srv/data',
    ...(rotating ? { ioHoldTimeout: Duration.seconds(60) } : {}),
  });
  const text = deployedText(stack, wiring.linuxCommands);
  return { text, secretArn: /^CHAP_SECRET_ID='(.*)'$/m.exec(text)![1], hash: /connect-([0-9a-f]{12})\.sh$/m.exec(text)![1] };
}

/** A pair as the handler stores it, with secrets that need JSON escapes and shell quoting. */
function pair() {
  const initiator = `a"b\\c'$${secretValue().slice(0, 9)}`;
  const target = `t/d$(${secretValue().slice(0, 9)}`;
  const value = JSON.stringify({
    initiatorName: HOST_B, targetArn: DOC_TARGET_ARN, secretToAuthenticateInitiator: initiator, secretToAuthenticateTarget: target,
  });
  return { value, secrets: [initiator, target] };
}

/** A pair stored earlier and replaced since: nowhere at all any more. */
function expectGone(run: LinuxRun, secrets: string[]) {
  for (const secret of secrets) {
    expect(run.execs + run.output).not.toContain(secret);
    expect(run.files.filter((f) => f.content.includes(secret))).toEqual([]);
  }
}

jest.setTimeout(90_000);

const fast = { CHAP_RETRY_SECONDS: '0' };
const node = (...rest: string[]) => `iscsiadm -m node -T ${TARGET_IQN} -p 10.0.0.10:3260${rest.length ? ' ' : ''}${rest.join(' ')}`;
const fileOf = (run: LinuxRun, p: string) => run.files.find((f) => f.path === p)?.content;
const FSTAB = '# /etc/fstab: static file system information.\nUUID=7d3c1a52-0000-4000-8000-000000000001 / ext4 errors=remount-ro 0 1\n'
  + '/dev/sdz1 /srv/data xfs defaults 0 2\n/swapfile none swap sw 0 0\n';

describe('connecting a rotating construct\'s host (dm-multipath, the mount, the agent)', () => {
  test('on a systemd host: multipath with bounded queueing, the volume formatted and mounted on the map, the agent a service', async () => {
    const { text, hash } = commands();
    const { value, secrets } = pair();
    const run = await runLinux({ commands: text, aws: [{ value }], env: fast, systemd: true, volume: { found: 'nothing' }, fstab: FSTAB });
    expect(run.status).toBe(0);
    const map = `/dev/mapper/cdk-chap-${hash}`;
    const unit = `cdk-chap-credentials-agent-${hash}.service`;
    expect(run.calls.slice(run.calls.indexOf(node('--login')) + 1)).toEqual([
      'systemctl enable iscsi.service',
      'systemctl enable open-iscsi.service',
      'systemctl enable multipathd',
      'systemctl start multipathd',
      'multipathd show daemon',
      'multipathd show paths raw format %d %w',
      'multipath -a /dev/sdb',
      'multipathd reconfigure',
      'mountpoint -q /srv/data',
      `blkid -p -s TYPE -o value ${map}`,
      `head -c 1048576 ${map}`,
      `mkfs.ext4 -q ${map}`,
      'systemctl daemon-reload',
      'mount /srv/data',
      'systemctl daemon-reload',
      `systemctl enable ${unit}`,
      `systemctl restart ${unit}`,
    ]);
    expect(run.calls.slice(0, 2)).toEqual(['systemctl enable iscsid', 'systemctl restart iscsid']);
    expect(fileOf(run, `/etc/multipath/conf.d/cdk-chap-${hash}.conf`)).toBe(
      `# cdk-chap-credentials: ${TARGET_IQN} at 10.0.0.10:3260 (/var/lib/cdk-chap-credentials/connect-${hash}.sh)\n`
      + `multipaths {\n\tmultipath {\n\t\twwid "${STANDIN_WWID}"\n\t\talias cdk-chap-${hash}\n\t\tno_path_retry 12\n\t}\n}\n`);
    expect(fileOf(run, '/etc/multipath.conf')).toBe('defaults {\n\tuser_friendly_names yes\n\tfind_multipaths yes\n}\n');
    // The other lines kept as they were, the old line for the mount point replaced by the map's.
    expect(fileOf(run, '/etc/fstab')).toBe('# /etc/fstab: static file system information.\nUUID=7d3c1a52-0000-4000-8000-000000000001 / ext4 errors=remount-ro 0 1\n'
      + `/swapfile none swap sw 0 0\n${map} /srv/data ext4 _netdev,nofail 0 0\n`);
    expect(run.files.find((f) => f.path === `/etc/systemd/system/${unit}`)).toEqual({
      path: `/etc/systemd/system/${unit}`, mode: 0o644, content: [
        `# cdk-chap-credentials: logs in to ${TARGET_IQN} again when its CHAP credentials change (a rotation), and at boot.`,
        '# It reads sysfs and iscsid\'s log only; it reads the host\'s secret only when the session fails to authenticate.',
        '[Unit]',
        `Description=cdk-chap-credentials agent for ${TARGET_IQN}`,
        'Wants=network-online.target',
        'After=network-online.target iscsid.service multipathd.service iscsi.service open-iscsi.service',
        '',
        '[Service]',
        `ExecStart=/bin/bash /var/lib/cdk-chap-credentials/connect-${hash}.sh --agent`,
        'Restart=always',
        'RestartSec=5',
        '',
        '[Install]',
        'WantedBy=multi-user.target',
        '',
      ].join('\n'),
    });
    expect(run.output).toContain(`cdk-chap-credentials: the volume is ${map} (dm-multipath over /dev/sdb): while no path to the gateway is left, IO waits up to 60 s (no_path_retry 12), then fails`);
    expect(run.output).toContain(`cdk-chap-credentials: formatting the blank volume ${map} (ext4)`);
    expect(run.output).toContain(`cdk-chap-credentials: mounted ${map} (ext4) on /srv/data`);
    expectContained(run, secrets, RECORD);
  });

  test('an /etc/multipath.conf already there is left as it is', async () => {
    const { text, hash } = commands();
    const conf = 'defaults {\n\tuser_friendly_names no\n\tpolling_interval 5\n}\nblacklist {\n\tdevnode "^nvme"\n}\n';
    const run = await runLinux({ commands: text, aws: [{ value: pair().value }], env: fast, systemd: true, volume: { found: 'nothing' }, fstab: FSTAB, multipathConf: conf });
    expect(run.status).toBe(0);
    expect(fileOf(run, '/etc/multipath.conf')).toBe(conf);
    expect(fileOf(run, `/etc/multipath/conf.d/cdk-chap-${hash}.conf`)).toContain(`alias cdk-chap-${hash}`);
  });

  test('an image without multipathd gets multipath-tools with apt-get, or device-mapper-multipath with dnf', async () => {
    const { text } = commands();
    const options: LinuxRunOptions = { commands: text, aws: [{ value: pair().value }], env: fast, systemd: true, volume: { found: 'nothing' }, fstab: FSTAB, withoutMultipath: true };
    const apt = await runLinux(options);
    expect(apt.status).toBe(0);
    expect(apt.calls.filter((c) => /^(apt-get|dnf) /.test(c))).toEqual(['apt-get install -y multipath-tools']);
    expect(apt.output).toContain('cdk-chap-credentials: installing dm-multipath (multipathd is missing)');
    expect(apt.calls).toContain('multipathd reconfigure');
    const dnf = await runLinux({ ...options, dnf: true });
    expect(dnf.status).toBe(0);
    expect(dnf.calls.filter((c) => /^(apt-get|dnf) /.test(c))).toEqual(['dnf install -y device-mapper-multipath']);
    expect(dnf.calls).toContain('multipathd reconfigure');
  });

  test('without systemd the agent runs as a process of its own, with a pid file and a log', async () => {
    const { text, hash } = commands();
    const pidFile = `/var/lib/cdk-chap-credentials/agent-${hash}.pid`;
    const log = `/var/lib/cdk-chap-credentials/agent-${hash}.log`;
    const run = await runLinux({
      commands: `${text}\nset +x\nfor ((i = 0; i < 300; i++)); do [[ $(<${log}) == *'agent watching'* ]] && break; sleep 0.1; done 2>/dev/null\nkill "$(<${pidFile})"`,
      aws: [{ value: pair().value }], env: { ...fast, CHAP_AGENT_INTERVAL: '0.05' }, volume: { found: 'nothing' }, fstab: FSTAB,
    });
    expect(run.status).toBe(0);
    expect(run.calls.filter((c) => c.startsWith('systemctl'))).toEqual([]);
    expect(run.files.some((f) => f.path.startsWith('/etc/systemd/'))).toBe(false);
    expect(run.output).toMatch(new RegExp(`^cdk-chap-credentials: no systemd: agent started \\(pid \\d+, log ${log}\\); at boot, run 'bash /var/lib/cdk-chap-credentials/connect-${hash}.sh --agent' yourself$`, 'm'));
    expect(fileOf(run, pidFile)).toMatch(/^\d+\n$/);
    expect(fileOf(run, log)).toBe(`cdk-chap-credentials: agent watching the session to ${TARGET_IQN} at 10.0.0.10:3260\n`);
    // It runs the script's own file (with --agent), in a session of its own.
    expect(run.execs).toMatch(new RegExp(`execve\\("[^"]*/setsid", \\["setsid", "bash", "/var/lib/cdk-chap-credentials/connect-${hash}.sh", "--agent"\\]`));
  });
});

describe('the mount', () => {
  test('a plain construct\'s host mounts a filesystem already there by its UUID, formatting nothing, no multipath', async () => {
    const { text } = commands(false);
    const uuid = '5b0e8c1f-2a3d-4e5f-9a8b-7c6d5e4f3a2b';
    const run = await runLinux({ commands: text, aws: [{ value: pair().value }], env: fast, volume: { found: { type: 'xfs', uuid } }, fstab: FSTAB });
    expect(run.status).toBe(0);
    expect(run.calls.slice(run.calls.indexOf(node('--login')) + 1)).toEqual([
      'mountpoint -q /srv/data',
      'blkid -p -s TYPE -o value /dev/sdb',
      'blkid -p -s UUID -o value /dev/sdb',
      'mount /srv/data',
    ]);
    expect(fileOf(run, '/etc/fstab')).toBe(FSTAB.replace('/dev/sdz1 /srv/data xfs defaults 0 2\n', '') + `UUID=${uuid} /srv/data xfs _netdev,nofail 0 0\n`);
    expect(run.output).toContain(`cdk-chap-credentials: mounted UUID=${uuid} (xfs) on /srv/data`);
  });

  test('a blank volume of a plain construct is formatted ext4, then mounted by the new filesystem\'s UUID', async () => {
    const { text } = commands(false);
    const run = await runLinux({ commands: text, aws: [{ value: pair().value }], env: fast, volume: { found: 'nothing', firstMiB: 'zeros' }, fstab: FSTAB });
    expect(run.status).toBe(0);
    expect(run.calls).toContain('mkfs.ext4 -q /dev/sdb');
    expect(fileOf(run, '/etc/fstab')!.split('\n').filter((l) => l.includes('/srv/data'))).toEqual([`UUID=${MKFS_UUID} /srv/data ext4 _netdev,nofail 0 0`]);
  });

  test('a volume holding data blkid does not know is never formatted: the script stops saying why', async () => {
    for (const rotating of [true, false]) {
      const { text, hash } = commands(rotating);
      const device = rotating ? `/dev/mapper/cdk-chap-${hash}` : '/dev/sdb';
      const run = await runLinux({ commands: text, aws: [{ value: pair().value }], env: fast, systemd: true, volume: { found: 'nothing', firstMiB: 'data' }, fstab: FSTAB });
      expect(run.status).toBe(1);
      expect(run.output).toMatch(new RegExp(`^cdk-chap-credentials: ${device} holds no filesystem blkid knows and is not blank: not formatting it, not mounting it$`, 'm'));
      // It read the first MiB, then wrote nothing and mounted nothing.
      expect(run.calls).toContain(`head -c 1048576 ${device}`);
      expect(run.calls.filter((c) => /^(mkfs|mount |systemctl enable cdk)/.test(c))).toEqual([]);
      expect(fileOf(run, '/etc/fstab')).toBe(FSTAB);
    }
  });

  test('a volume holding a partition table is refused without reading it further', async () => {
    const { text, hash } = commands();
    const run = await runLinux({ commands: text, aws: [{ value: pair().value }], env: fast, systemd: true, volume: { found: 'partition-table' }, fstab: FSTAB });
    expect(run.status).toBe(1);
    expect(run.output).toMatch(new RegExp(`^cdk-chap-credentials: /dev/mapper/cdk-chap-${hash} holds a partition table, not a filesystem: not mounting it \\(mount a partition yourself\\)$`, 'm'));
    expect(run.calls.filter((c) => /^(head|mkfs|mount )/.test(c))).toEqual([]);
    expect(fileOf(run, '/etc/fstab')).toBe(FSTAB);
  });
});

/**
 * Bash after the connect commands: `state` (the session's), iscsid's log file (CHAP_ISCSID_LOG, when set) empty, the
 * agent started, then `steps`, then the agent stopped. Helpers for the steps: note (a line `test: ...` in the calls,
 * after which `called` and `wait_for` look), called (whether a call matches the glob *$1*), wait_for (up to 30 s for
 * one), iscsid_says (a line in iscsid's log file, as syslog writes it).
 */
function withAgent(text: string, state: string, steps: string): string {
  return `${text}
set +x
script=$(echo /var/lib/cdk-chap-credentials/connect-*.sh)
calls=$STANDIN/calls.log
note() { printf 'test: %s\\n' "$1" >>"$calls"; }
called() { local all; all=$(<"$calls"); [[ \${all##*test: } == *$1* ]]; }
wait_for() {
  local i
  for ((i = 0; i < 300; i++)); do called "$1" && return 0; sleep 0.1; done
  echo "test: no call with '$1' within 30 s" >&2
  return 1
}
iscsid_says() { printf '%(%b %e %T)T host iscsid: %s\\n' -1 "$1" >>"$CHAP_ISCSID_LOG"; }
${state}
[[ -n \${CHAP_ISCSID_LOG:-} ]] && : >"$CHAP_ISCSID_LOG"
bash "$script" --agent &
agent=$!
${steps}
kill "$agent"
wait "$agent"
echo 'test: agent stopped'
`;
}

/** The calls after the test's note `name`, without notes. */
/**
 * Calls with each relogin's logout before the secret read next to it: the logout runs while the pair is read (the login
 * waits for both), so either may be recorded first.
 */
function loggedOutFirst(calls: string[]): string[] {
  const sorted = [...calls];
  for (let i = 0; i + 1 < sorted.length; i++) {
    const read = sorted[i].startsWith('aws secretsmanager get-secret-value');
    if (read && !sorted[i - 1]?.endsWith(' --logout') && sorted[i + 1].endsWith(' --logout')) {
      [sorted[i], sorted[i + 1]] = [sorted[i + 1], sorted[i]];
    }
  }
  return sorted;
}

function callsAfter(run: LinuxRun, name: string): string[] {
  const at = run.calls.indexOf(`test: ${name}`);
  expect(at).toBeGreaterThan(-1);
  return run.calls.slice(at + 1).filter((c) => !c.startsWith('test: '));
}

describe('the agent (--agent)', () => {
  const agentEnv = { ...fast, CHAP_AGENT_INTERVAL: '0.05', CHAP_ISCSID_LOG: '/var/lib/iscsid.log' };
  const agentOptions = { env: agentEnv, systemd: true, volume: { found: 'nothing' as const }, fstab: FSTAB };
  const failed = 'echo FAILED >"$CHAP_SESSIONS_DIR/session1/state"';
  const ourFailure = `Login failed to authenticate with target ${TARGET_IQN}`;
  const stage = (secretArn: string, s: string) =>
    `aws secretsmanager get-secret-value --region ${DEPLOYED.region} --secret-id ${secretArn} --version-stage ${s} --query SecretString --output text`;
  // iscsid retries a failed session's login every few seconds, saying each time why it failed: the steps do so too.
  const iscsidRetries = (line: string, until: string) =>
    `for ((i = 0; i < 300; i++)); do iscsid_says '${line}'; called '${until}' && break; sleep 0.1; done`;

  test('while the session is logged in it costs nothing: no AWS call, no iscsiadm, whatever iscsid says', async () => {
    const { text, secretArn } = commands();
    const [before, pending] = [pair(), pair()];
    const run = await runLinux({
      ...agentOptions, aws: [{ value: before.value }, { value: pending.value }], commands: withAgent(text, '', [
        'note healthy',
        `for ((i = 0; i < 30; i++)); do iscsid_says '${ourFailure}'; sleep 0.1; done`,
        // Then the session fails (the positive control: the agent was watching all along).
        'note failed',
        failed,
        iscsidRetries(ourFailure, 'mountpoint -q /srv/data'),
      ].join('\n')),
    });
    expect(run.output).toContain(`cdk-chap-credentials: agent watching the session to ${TARGET_IQN} at 10.0.0.10:3260`);
    expect(run.calls.slice(run.calls.indexOf('test: healthy') + 1, run.calls.indexOf('test: failed'))).toEqual([]);
    expect(loggedOutFirst(callsAfter(run, 'failed'))).toEqual([node('--logout'), stage(secretArn, 'AWSPENDING'), node('--login'), 'mountpoint -q /srv/data']);
    expect(run.calls).not.toContainEqual(expect.stringMatching(/^journalctl/));
    expectContained(run, pending.secrets, RECORD);
    expectGone(run, before.secrets);
  });

  test('a session that fails to authenticate logs in again with the AWSPENDING pair first, else AWSCURRENT, once', async () => {
    const { text, secretArn } = commands();
    const [before, current] = [pair(), pair()];
    const noPending = { error: 'An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: staging label: AWSPENDING' };
    const run = await runLinux({
      ...agentOptions, aws: [{ value: before.value }, noPending, { value: current.value }], commands: withAgent(text, failed, [
        'note failed',
        iscsidRetries(ourFailure, 'mountpoint -q /srv/data'),
        // The session is back: the agent leaves it be while iscsid's log still holds the failures.
        'for ((i = 0; i < 20; i++)); do sleep 0.1; done',
      ].join('\n')),
    });
    expect(loggedOutFirst(callsAfter(run, 'failed'))).toEqual([
      node('--logout'), stage(secretArn, 'AWSPENDING'), node('--logout'), stage(secretArn, 'AWSCURRENT'), node('--login'), 'mountpoint -q /srv/data',
    ]);
    expect(run.output).toContain(`cdk-chap-credentials: the session to ${TARGET_IQN} failed to authenticate (FAILED): logging in again with the stored credentials`);
    expect(run.output).toContain(`cdk-chap-credentials: logged in again to ${TARGET_IQN} at 10.0.0.10:3260 with the AWSCURRENT credentials`);
    expectContained(run, current.secrets, RECORD);
    expectGone(run, before.secrets);
  });

  test('a failure of another target (one whose name starts with ours too), or one that is not authentication, costs no AWS call', async () => {
    const { text, secretArn } = commands();
    const run = await runLinux({
      ...agentOptions, aws: [{ value: pair().value }], commands: withAgent(text, failed, [
        'note others',
        'for ((i = 0; i < 30; i++)); do',
        `  iscsid_says 'Login failed to authenticate with target ${TARGET_IQN}2'`,
        "  iscsid_says 'Login failed to authenticate with target iqn.1997-05.com.amazon:other'",
        "  iscsid_says 'connect to 10.0.0.10:3260 failed (Connection refused)'",
        "  iscsid_says 'Kernel reported iSCSI connection 1:0 error (1020 - ISCSI_ERR_TCP_CONN_CLOSE: TCP connection closed) state (3)'",
        '  sleep 0.1',
        'done',
        'note ours',
        iscsidRetries(ourFailure, 'mountpoint -q /srv/data'),
      ].join('\n')),
    });
    expect(run.calls.slice(run.calls.indexOf('test: others') + 1, run.calls.indexOf('test: ours'))).toEqual([]);
    // It read iscsid's log meanwhile (the session was FAILED), and reacted to its own target's line.
    expect(run.execs).toMatch(/execve\("[^"]*\/tail", \["tail", "-c", "\+\d+", "\/var\/lib\/iscsid\.log"\]/);
    expect(loggedOutFirst(callsAfter(run, 'ours'))).toEqual([node('--logout'), stage(secretArn, 'AWSPENDING'), node('--login'), 'mountpoint -q /srv/data']);
  });

  test('its target\'s failure is seen however much the log says after it (a busy syslog: kernel lines of the failing path)', async () => {
    const { text, secretArn } = commands();
    const run = await runLinux({
      ...agentOptions, aws: [{ value: pair().value }], commands: withAgent(text, failed, [
        'note failed',
        // iscsid's line, then 3000 of the kernel's (about 300 KiB), appear at once (a rename: the agent sees all or none).
        '{',
        `  printf '%(%b %e %T)T host iscsid: %s\\n' -1 '${ourFailure}'`,
        '  for ((i = 0; i < 3000; i++)); do',
        "    printf '%(%b %e %T)T host kernel: sd 2:0:0:0: [sdb] tag#%d FAILED Result: hostbyte=DID_TRANSPORT_DISRUPTED driverbyte=DRIVER_OK\\n' -1 \"$i\"",
        '  done',
        '} >"$CHAP_ISCSID_LOG.new"',
        'mv "$CHAP_ISCSID_LOG.new" "$CHAP_ISCSID_LOG"',
        "wait_for 'mountpoint -q /srv/data'",
      ].join('\n')),
    });
    expect(fileOf(run, '/var/lib/iscsid.log')!.length).toBeGreaterThan(256 << 10);
    expect(loggedOutFirst(callsAfter(run, 'failed'))).toEqual([node('--logout'), stage(secretArn, 'AWSPENDING'), node('--login'), 'mountpoint -q /srv/data']);
  });

  test('a login again that fails is not tried again before the backoff, however often iscsid says it failed', async () => {
    const { text, secretArn } = commands();
    const steps = (tries: number) => [
      'note failed',
      iscsidRetries(ourFailure, `${tries === 1 ? '' : 'AWSCURRENT*'}AWSCURRENT`),
      `for ((i = 0; i < 20; i++)); do iscsid_says '${ourFailure}'; sleep 0.1; done`,
    ].join('\n');
    const tried = (run: LinuxRun) => callsAfter(run, 'failed').filter((c) => c.startsWith('aws '));
    const run = await runLinux({
      ...agentOptions, env: { ...agentEnv, CHAP_AGENT_BACKOFF: '3600' }, aws: [{ value: pair().value }], logins: [0, 24],
      commands: withAgent(text, failed, steps(1)),
    });
    expect(tried(run)).toEqual([stage(secretArn, 'AWSPENDING'), stage(secretArn, 'AWSCURRENT')]);
    expect(run.output).toContain(`cdk-chap-credentials: logging in again to ${TARGET_IQN} failed; next try in 3600 s`);
    // The control: with a backoff of 1 s it tries again (the session is gone after the failed login: no session, retried).
    const again = await runLinux({
      ...agentOptions, env: { ...agentEnv, CHAP_AGENT_BACKOFF: '1' }, aws: [{ value: pair().value }], logins: [0, 24],
      commands: withAgent(text, failed, steps(2)),
    });
    expect(tried(again).length).toBeGreaterThanOrEqual(4);
    expect(again.output).toContain(`cdk-chap-credentials: no session to ${TARGET_IQN} since the last failed login: trying again`);
  });

  test('at start, with no session to its target (the host was off during a rotation), it connects once and mounts', async () => {
    const { text, secretArn, hash } = commands();
    const [before, current] = [pair(), pair()];
    const noPending = { error: 'An error occurred (ResourceNotFoundException) when calling the GetSecretValue operation: staging label: AWSPENDING' };
    // A boot: the distribution's login failed with the old pair (no session), nothing mounted.
    const booted = 'note boot\nrm -r "$CHAP_SESSIONS_DIR"/session*\n: >"$STANDIN/mounted"';
    const run = await runLinux({
      ...agentOptions, aws: [{ value: before.value }, noPending, { value: current.value }], commands: withAgent(text, booted, [
        'wait_for \'mount /srv/data\'',
        'for ((i = 0; i < 20; i++)); do sleep 0.1; done',
      ].join('\n')),
    });
    const map = `/dev/mapper/cdk-chap-${hash}`;
    expect(loggedOutFirst(callsAfter(run, 'boot'))).toEqual([
      node('--logout'), stage(secretArn, 'AWSPENDING'), node('--logout'), stage(secretArn, 'AWSCURRENT'), node('--login'),
      'mountpoint -q /srv/data', `blkid -p -s TYPE -o value ${map}`, 'systemctl daemon-reload', 'mount /srv/data',
    ]);
    expect(run.output).toContain(`cdk-chap-credentials: no session to ${TARGET_IQN}: connecting`);
    // Formatted once, at the first connect; one fstab line for the mount point.
    expect(run.calls.filter((c) => c.startsWith('mkfs'))).toHaveLength(1);
    expect(fileOf(run, '/etc/fstab')!.split('\n').filter((l) => l.includes('/srv/data'))).toEqual([`${map} /srv/data ext4 _netdev,nofail 0 0`]);
    expectContained(run, current.secrets, RECORD);
  });

  test('on a systemd host without CHAP_ISCSID_LOG it reads iscsid\'s journal, from its mark on', async () => {
    const { text, secretArn } = commands();
    const run = await runLinux({
      ...agentOptions, env: { ...fast, CHAP_AGENT_INTERVAL: '0.05' }, aws: [{ value: pair().value }],
      commands: withAgent(text, failed, [
        'note failed',
        // Once the agent has read the journal (and found nothing), iscsid says it.
        'wait_for journalctl',
        `printf '%s\\n' 'Login failed to authenticate with target ${TARGET_IQN}2' '${ourFailure}' >>"$STANDIN/journal"`,
        'wait_for \'mountpoint -q /srv/data\'',
      ].join('\n')),
    });
    const after = callsAfter(run, 'failed');
    expect(after.filter((c) => c.startsWith('journalctl'))[0]).toMatch(/^journalctl --no-pager -q -o cat --since @\d+ _COMM=iscsid$/);
    expect(loggedOutFirst(after.filter((c) => !c.startsWith('journalctl')))).toEqual([node('--logout'), stage(secretArn, 'AWSPENDING'), node('--login'), 'mountpoint -q /srv/data']);
  });
});
