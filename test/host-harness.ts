/**
 * Runs the Linux boot commands wireHost renders, verbatim, as EC2 user data would (bash, an outer `set -x`), on this
 * machine but inside Linux namespaces: /etc is an overlay whose writes land in a folder of the test, /var/lib is a
 * folder of the test, /run is empty, processes end with the run (a PID namespace), and the network is the namespace's
 * own unless asked. iscsiadm, iscsid and aws are stand-ins that record their arguments and answer as the test says;
 * so, when a test asks, are systemctl and journalctl (a systemd host), dnf, and a volume behind the session (sysfs
 * session folders, /dev nodes, multipathd, multipath, blkid, mkfs.ext4, mount, mountpoint). Every program started is
 * recorded by strace (execve, with arguments and environment). Nothing on the machine changes.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { App, CfnResource, Fn, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';

/** The real programs the commands and the stand-ins may run; nothing else is on PATH (no AWS CLI unless a stand-in). */
const TOOLS = [
  'bash', 'mkdir', 'chmod', 'mv', 'sleep', 'setsid', 'cat', 'rm', 'base64', 'gunzip', 'gzip', 'readlink', 'head', 'tr', 'wc', 'tail',
  'grep', 'mkfifo', 'mknod',
];
const PYTHON = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).stdout.trim();

/** Values as CloudFormation would give them after deployment. */
export const DEPLOYED = { region: 'us-east-1', account: '111122223333' };

/**
 * Resolves `lines` the way CloudFormation would: they go into a template (joined, as user data is), the template is
 * synthesized, and its Ref / Fn::GetAtt / Fn::Join are evaluated with a deployed ARN for every secret.
 */
export function deployedText(stack: Stack, lines: string[], refs: Record<string, string> = {}): string {
  return deployedTexts(stack, [lines], refs)[0];
}

/** deployedText for several lists of lines of one stack (a stack is synthesized once). */
export function deployedTexts(stack: Stack, lists: string[][], refs: Record<string, string> = {}): string[] {
  lists.forEach((lines, i) => new CfnResource(stack, `Probe${i}`, { type: 'Test::Host::Commands', properties: { Index: i, Text: Fn.join('\n', lines) } }));
  const template = Template.fromStack(stack).toJSON();
  const probes = Object.values(template.Resources as Record<string, { Type: string; Properties: { Index: number; Text: unknown } }>)
    .filter((r) => r.Type === 'Test::Host::Commands').sort((a, b) => a.Properties.Index - b.Properties.Index);
  const evaluate = (v: unknown): string => {
    if (typeof v === 'string') return v;
    const o = v as Record<string, unknown>;
    if (o['Fn::Join']) {
      const [sep, parts] = o['Fn::Join'] as [string, unknown[]];
      return parts.map(evaluate).join(sep);
    }
    if (typeof o.Ref === 'string') {
      if (o.Ref === 'AWS::Region') return DEPLOYED.region;
      if (o.Ref === 'AWS::AccountId') return DEPLOYED.account;
      if (o.Ref === 'AWS::Partition') return 'aws';
      if (o.Ref === 'AWS::URLSuffix') return 'amazonaws.com';
      const type = (template.Resources[o.Ref] as { Type: string }).Type;
      if (refs[o.Ref]) return refs[o.Ref];
      if (type === 'AWS::SecretsManager::Secret') return `arn:aws:secretsmanager:${DEPLOYED.region}:${DEPLOYED.account}:secret:${o.Ref}-AbCdEf`;
    }
    if (o['Fn::GetAtt']) {
      const key = (o['Fn::GetAtt'] as string[]).join('.');
      if (refs[key]) return refs[key];
    }
    throw new Error(`cannot evaluate ${JSON.stringify(v)}`);
  };
  return probes.map((probe) => evaluate(probe.Properties.Text));
}

/** The script the Linux commands write: their first heredoc (the head), then the second one decompressed (the body). */
export function scriptOf(commands: string): string {
  const head = /<<'CDK_CHAP_CREDENTIALS_SCRIPT'\n([^]*?\n)CDK_CHAP_CREDENTIALS_SCRIPT\n/.exec(commands)![1];
  const body = /<<'CDK_CHAP_CREDENTIALS_BODY' \| gunzip >> \S+\n([^]*?)\nCDK_CHAP_CREDENTIALS_BODY\n/.exec(commands)![1];
  return head + gunzipSync(Buffer.from(body, 'base64')).toString('utf8');
}

export function newStack(env = true): Stack {
  return new Stack(new App(), 'Hosts', env ? { env: DEPLOYED } : {});
}

/** One answer of the `aws` stand-in: the secret string, or an error (exit 254, as the CLI does). */
export type AwsAnswer = { readonly value: string } | { readonly error: string };

export interface LinuxRunOptions {
  /**
   * The rendered user data lines (deployed: no tokens). Commands a test adds may read $STANDIN/calls.log (the stand-ins'
   * calls so far, one a line) and append lines of their own to it.
   */
  readonly commands: string;
  /** Answers of `aws`, one per call; the last repeats. Without any, no `aws` is on PATH. */
  readonly aws?: AwsAnswer[];
  /** Exit codes of `iscsiadm --login`, one per call; the last repeats. */
  readonly logins?: number[];
  /** Where the stand-in iscsiadm keeps node records (Debian's or RHEL's). */
  readonly nodes?: '/etc/iscsi/nodes' | '/var/lib/iscsi/nodes';
  /** A node record made earlier by a discovery (portal group `1`, iface `default`), with these extra lines. */
  readonly discovered?: string[];
  /** Start without iscsiadm on PATH; the stand-in apt-get installs it. */
  readonly withoutIscsiadm?: boolean;
  /** An /etc/iscsi/iscsid.conf to start with. */
  readonly iscsidConf?: string;
  /** Extra environment for the commands (the tests set CHAP_RETRY_SECONDS and CHAP_WAIT_SECONDS). */
  readonly env?: Record<string, string>;
  /** Keep the machine's network (to reach servers on 127.0.0.1); by default the run has a network of its own. */
  readonly hostNetwork?: boolean;
  /**
   * A systemd host: /run/systemd/system exists, and `systemctl` (records its calls, answers 0) and `journalctl` (prints
   * the lines of $STANDIN/journal, which the commands may append to; its `--since` is not honoured) are on PATH.
   */
  readonly systemd?: boolean;
  /** A `dnf` on PATH (the script prefers it to apt-get); it installs iscsi-initiator-utils and device-mapper-multipath. */
  readonly dnf?: boolean;
  /**
   * A volume behind the session: a login the stand-in iscsiadm accepts makes a sysfs session folder (under
   * $CHAP_SESSIONS_DIR, given to the commands) whose disk is /dev/<disk>; a logout removes it. /dev is a tmpfs of the
   * run (nodev: its nodes cannot be opened) holding null, zero, full, random and urandom (the machine's) and the disk's
   * node (a block device of an unregistered major); /srv is a tmpfs of the run, for mount points. blkid, mkfs.ext4,
   * mount (it mounts only what /etc/fstab lists), mountpoint, multipathd and multipath are stand-ins, and so is `head`
   * when it reads a block device: it reads the volume's bytes (`firstMiB`) instead, with the caller's arguments.
   * $STANDIN/mounted lists the mount points mounted (a test may empty it: a reboot).
   */
  readonly volume?: StandinVolume;
  /** Start without multipathd and multipath on PATH; the stand-in apt-get or dnf installs them. */
  readonly withoutMultipath?: boolean;
  /** An /etc/fstab to start with (otherwise the machine's). */
  readonly fstab?: string;
  /** An /etc/multipath.conf to start with (otherwise none). */
  readonly multipathConf?: string;
}

/** The volume behind the session (LinuxRunOptions.volume). */
export interface StandinVolume {
  /**
   * What `blkid -p` finds on it: nothing (exit 2), a partition table (exit 0 and no TYPE), or a filesystem of this
   * type (with `uuid`). mkfs.ext4 makes it `ext4` with a new UUID.
   */
  readonly found: 'nothing' | 'partition-table' | { readonly type: string; readonly uuid: string };
  /** Its first MiB: zeros (a volume never written to), or not (a byte near the end of the MiB is set). Zeros by default. */
  readonly firstMiB?: 'zeros' | 'data';
  /** The disk's name under /dev, as the kernel would give it. */
  readonly disk?: string;
  /** The WWID multipathd reports for the disk (STANDIN_WWID by default). */
  readonly wwid?: string;
}

/** The WWID the stand-in multipathd reports by default (a SCSI NAA identifier, as for a gateway volume). */
export const STANDIN_WWID = '360000000000000000e00000000010001';

/** The UUID the stand-in mkfs.ext4 gives the filesystem it makes. */
export const MKFS_UUID = '0f5e1d2c-3b4a-4c5d-8e6f-708192a3b4c5';

export interface FileFound {
  readonly path: string;
  readonly mode: number;
  readonly content: string;
}

export interface LinuxRun {
  readonly status: number;
  /** Everything the user data printed, standard output and error together (the cloud-init log). */
  readonly output: string;
  /** Each stand-in call: the program's name and its arguments, space-separated. */
  readonly calls: string[];
  /** strace's record of every execve: program, arguments and environment. */
  readonly execs: string;
  /** The node record as the stand-in iscsiadm read it at each login. */
  readonly recordsAtLogin: string[];
  /** Every file the run left under /etc and /var/lib, by its path on the host. */
  readonly files: FileFound[];
}

const STANDIN_ISCSIADM = String.raw`#!/bin/bash
printf 'iscsiadm %s\n' "$*" >>"$STANDIN/calls.log"
nodes=${'${STANDIN_NODES:-/etc/iscsi/nodes}'}
mode='' target='' portal='' op='' name='' value='' login=0 logout=0
while (($#)); do
  case $1 in
    -m) mode=$2; shift 2 ;;
    -T) target=$2; shift 2 ;;
    -p) portal=$2; shift 2 ;;
    -o) op=$2; shift 2 ;;
    -n) name=$2; shift 2 ;;
    -v) value=$2; shift 2 ;;
    -k) exit 0 ;;
    --login) login=1; shift ;;
    --logout) logout=1; shift ;;
    *) echo "iscsiadm stand-in: unexpected argument $1" >&2; exit 7 ;;
  esac
done
[[ $mode == node ]] || { echo "iscsiadm stand-in: unexpected mode $mode" >&2; exit 7; }
# A logout ends the target's session (its sysfs folder goes); none to end is fine here.
if ((logout)); then
  if [[ -n ${'${STANDIN_SESSIONS:-}'} ]]; then
    for s in "$STANDIN_SESSIONS"/session*; do
      [[ -r $s/targetname && $(<"$s/targetname") == "$target" ]] && rm -r "$s"
    done
  fi
  exit 0
fi
if [[ $portal =~ ^\[(.*)\]:([0-9]+)$ || $portal =~ ^([^:]*):([0-9]+)$ ]]; then
  addr=${'${BASH_REMATCH[1]}'} port=${'${BASH_REMATCH[2]}'}
else
  echo "iscsiadm stand-in: cannot parse portal $portal" >&2; exit 7
fi
file="$nodes/$target/$addr,$port"
[[ -d $file ]] && file="$file/default"
for f in "$file",*/default; do [[ -f $f ]] && file=$f; done
if ((login)); then
  [[ -f $file ]] || { echo "iscsiadm: No records found" >&2; exit 21; }
  read -r n <"$STANDIN/logins.count" || n=0
  n=$((n + 1)); echo "$n" >"$STANDIN/logins.count"
  cat "$file" >"$STANDIN/login.$n.record"
  codes=($STANDIN_LOGINS)
  code=${'${codes[n - 1]:-${codes[-1]}}'}
  case $code in
    0)
      echo "Login to [iface: default, target: $target, portal: $addr,$port] successful."
      # The session's sysfs folder, its disk as the kernel lists it (only with a volume).
      if [[ -n ${'${STANDIN_SESSIONS:-}'} ]]; then
        mkdir -p "$STANDIN_SESSIONS/session$n/device/target2:0:0/2:0:0:0/block/$STANDIN_DISK"
        echo "$target" >"$STANDIN_SESSIONS/session$n/targetname"
        echo LOGGED_IN >"$STANDIN_SESSIONS/session$n/state"
      fi ;;
    24) echo "iscsiadm: Login failed to authenticate ... iSCSI login failed due to authorization failure" >&2 ;;
    *) echo "iscsiadm: login failed with $code" >&2 ;;
  esac
  exit "$code"
fi
case $op in
  '') [[ -f $file ]] || { echo "iscsiadm: No records found" >&2; exit 21; } ;;
  new)
    mkdir -p "$nodes/$target"
    printf '# BEGIN RECORD 2.1.8\nnode.name = %s\nnode.tpgt = -1\nnode.startup = manual\nnode.session.auth.authmethod = None\nnode.session.timeo.replacement_timeout = 120\n# END RECORD\n' "$target" >"$file"
    echo "New iSCSI node [tcp:[hw=,ip=,net_if=,iscsi_if=default] $addr,$port,-1 $target] added" ;;
  update)
    [[ -f $file ]] || { echo "iscsiadm: No records found" >&2; exit 21; }
    out='' done=0
    while IFS= read -r line; do
      if [[ $line == "$name = "* ]]; then line="$name = $value"; done=1; fi
      [[ $line == '# END RECORD' && $done == 0 ]] && out+="$name = $value"$'\n' && done=1
      out+=$line$'\n'
    done <"$file"
    printf '%s' "$out" >"$file" ;;
  *) echo "iscsiadm stand-in: unexpected op $op" >&2; exit 7 ;;
esac
`;

const STANDIN_ISCSID = `#!/bin/bash
printf 'iscsid %s\\n' "$*" >>"$STANDIN/calls.log"
# Listens where iscsiadm looks for iscsid, then detaches as iscsid does; it ends with the script that started it
# (strace, which follows it, ends only then).
python3 -c 'import os, socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.bind("\\0ISCSIADM_ABSTRACT_NAMESPACE")
s.listen(1)
while os.path.exists("/proc/" + sys.argv[1]):
    time.sleep(0.05)' "$PPID" </dev/null >/dev/null 2>&1 &
`;

const STANDIN_AWS = `#!/bin/bash
printf 'aws %s\\n' "$*" >>"$STANDIN/calls.log"
read -r n <"$STANDIN/aws.count" || n=0
n=$((n + 1)); echo "$n" >"$STANDIN/aws.count"
[[ -f $STANDIN/answer.$n ]] || n=$STANDIN_ANSWERS
read -r code <"$STANDIN/answer.$n.code"
if ((code == 0)); then cat "$STANDIN/answer.$n"; echo; else cat "$STANDIN/answer.$n" >&2; fi
exit "$code"
`;

const STANDIN_APT_GET = `#!/bin/bash
printf 'apt-get %s\\n' "$*" >>"$STANDIN/calls.log"
[[ $* == *open-iscsi* ]] && cp "$STANDIN/iscsiadm" "$STANDIN/bin/iscsiadm" && cp "$STANDIN/iscsid" "$STANDIN/bin/iscsid"
[[ $* == *multipath-tools* ]] && cp "$STANDIN/multipathd" "$STANDIN/bin/multipathd" && cp "$STANDIN/multipath" "$STANDIN/bin/multipath"
exit 0
`;

const STANDIN_DNF = `#!/bin/bash
printf 'dnf %s\\n' "$*" >>"$STANDIN/calls.log"
[[ $* == *iscsi-initiator-utils* ]] && cp "$STANDIN/iscsiadm" "$STANDIN/bin/iscsiadm" && cp "$STANDIN/iscsid" "$STANDIN/bin/iscsid"
[[ $* == *device-mapper-multipath* ]] && cp "$STANDIN/multipathd" "$STANDIN/bin/multipathd" && cp "$STANDIN/multipath" "$STANDIN/bin/multipath"
exit 0
`;

const STANDIN_SYSTEMCTL = `#!/bin/bash
printf 'systemctl %s\\n' "$*" >>"$STANDIN/calls.log"
exit 0
`;

const STANDIN_JOURNALCTL = `#!/bin/bash
printf 'journalctl %s\\n' "$*" >>"$STANDIN/calls.log"
cat "$STANDIN/journal"
`;

// multipathd: the daemon answers; it reports the disk's path with its WWID; on reconfigure it makes the map of every
// conf.d entry naming that WWID (as /dev/mapper/ALIAS, a node like the disk's).
const STANDIN_MULTIPATHD = String.raw`#!/bin/bash
printf 'multipathd %s\n' "$*" >>"$STANDIN/calls.log"
case $* in
  'show daemon') echo 'pid 1 idle' ;;
  'show paths raw format %d %w') [[ -b /dev/$STANDIN_DISK ]] && echo "$STANDIN_DISK $STANDIN_WWID" ;;
  reconfigure)
    for f in /etc/multipath/conf.d/*.conf; do
      [[ -f $f ]] || continue
      wwid='' alias=''
      while read -r key val; do
        [[ $key == wwid ]] && wwid=$val
        [[ $key == alias ]] && alias=$val
      done <"$f"
      [[ $wwid == "\"$STANDIN_WWID\"" && -n $alias && ! -e /dev/mapper/$alias ]] && mknod -m 600 "/dev/mapper/$alias" b 240 1
    done ;;
esac
exit 0
`;

const STANDIN_MULTIPATH = `#!/bin/bash
printf 'multipath %s\\n' "$*" >>"$STANDIN/calls.log"
exit 0
`;

// blkid -p -s TAG -o value DEVICE, from the volume's state: no file, nothing found (exit 2); else TYPE and UUID.
const STANDIN_BLKID = String.raw`#!/bin/bash
printf 'blkid %s\n' "$*" >>"$STANDIN/calls.log"
tag=''
while (($#)); do
  case $1 in
    -s) tag=$2; shift 2 ;;
    -p) shift ;;
    -o) shift 2 ;;
    *) [[ -b $1 ]] || { echo "blkid stand-in: not a block device: $1" >&2; exit 4; }; shift ;;
  esac
done
[[ -f $STANDIN/volume.type ]] || exit 2
case $tag in
  TYPE) cat "$STANDIN/volume.type" ;;
  UUID) [[ -s $STANDIN/volume.type ]] && cat "$STANDIN/volume.uuid" ;;
esac
exit 0
`;

const STANDIN_MKFS_EXT4 = `#!/bin/bash
printf 'mkfs.ext4 %s\\n' "$*" >>"$STANDIN/calls.log"
[[ -b \${!#} ]] || { echo "mkfs.ext4 stand-in: not a block device" >&2; exit 1; }
printf ext4 >"$STANDIN/volume.type"
printf ${MKFS_UUID} >"$STANDIN/volume.uuid"
`;

// mount DIR: only a mount point /etc/fstab lists, as mount does; mountpoint -q DIR: whether it was mounted.
const STANDIN_MOUNT = String.raw`#!/bin/bash
printf 'mount %s\n' "$*" >>"$STANDIN/calls.log"
found=0
while read -r source dir rest; do [[ $source != '#'* && $dir == "$1" ]] && found=1; done </etc/fstab
((found)) || { echo "mount: $1: can't find in /etc/fstab." >&2; exit 1; }
echo "$1" >>"$STANDIN/mounted"
`;

const STANDIN_MOUNTPOINT = String.raw`#!/bin/bash
printf 'mountpoint %s\n' "$*" >>"$STANDIN/calls.log"
while read -r dir; do [[ $dir == "$2" ]] && exit 0; done <"$STANDIN/mounted"
exit 32
`;

// head reading a block device reads the volume's bytes instead, with the caller's arguments; any other head is head.
const STANDIN_HEAD = String.raw`#!/bin/bash
if [[ -b ${'${!#}'} ]]; then
  printf 'head %s\n' "$*" >>"$STANDIN/calls.log"
  exec "$STANDIN/tools/head" "${'${@:1:$#-1}'}" "$STANDIN/volume.bytes"
fi
exec "$STANDIN/tools/head" "$@"
`;

function walk(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.isFile() ? [p] : [];
  });
}

export async function runLinux(options: LinuxRunOptions): Promise<LinuxRun> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-host-run-'));
  try {
    const bin = path.join(dir, 'bin');
    const tools = path.join(dir, 'tools');
    for (const d of [bin, tools, 'etc-upper', 'etc-work', 'varlib'].map((d) => path.resolve(dir, d))) fs.mkdirSync(d, { recursive: true });
    for (const tool of TOOLS) {
      const found = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
      fs.symlinkSync(found, path.join(tools, tool));
    }
    fs.symlinkSync(PYTHON, path.join(tools, 'python3'));
    fs.symlinkSync(spawnSync('bash', ['-c', 'command -v cp'], { encoding: 'utf8' }).stdout.trim(), path.join(tools, 'cp'));
    const script = (name: string, text: string, where = bin) => fs.writeFileSync(path.join(where, name), text, { mode: 0o755 });
    script('iscsiadm', STANDIN_ISCSIADM, options.withoutIscsiadm ? dir : bin);
    script('iscsid', STANDIN_ISCSID, options.withoutIscsiadm ? dir : bin);
    script('apt-get', STANDIN_APT_GET);
    if (options.dnf) script('dnf', STANDIN_DNF);
    if (options.systemd) {
      script('systemctl', STANDIN_SYSTEMCTL);
      script('journalctl', STANDIN_JOURNALCTL);
    }
    fs.writeFileSync(path.join(dir, 'journal'), '');
    const volume = options.volume;
    const disk = volume?.disk ?? 'sdb';
    if (volume) {
      script('multipathd', STANDIN_MULTIPATHD, options.withoutMultipath ? dir : bin);
      script('multipath', STANDIN_MULTIPATH, options.withoutMultipath ? dir : bin);
      script('blkid', STANDIN_BLKID);
      script('mkfs.ext4', STANDIN_MKFS_EXT4);
      script('mount', STANDIN_MOUNT);
      script('mountpoint', STANDIN_MOUNTPOINT);
      script('head', STANDIN_HEAD);
      fs.mkdirSync(path.join(dir, 'sessions'));
      fs.mkdirSync(path.join(dir, 'dev'));
      fs.writeFileSync(path.join(dir, 'mounted'), '');
      if (volume.found !== 'nothing') fs.writeFileSync(path.join(dir, 'volume.type'), volume.found === 'partition-table' ? '' : volume.found.type);
      if (typeof volume.found === 'object') fs.writeFileSync(path.join(dir, 'volume.uuid'), volume.found.uuid);
      // Two MiB: the first zeros or not (its last byte set), the second never zeros (only the first MiB may count).
      const bytes = Buffer.alloc(2 << 20, 0x5a);
      bytes.fill(0, 0, 1 << 20);
      if (volume.firstMiB === 'data') bytes[(1 << 20) - 1] = 1;
      fs.writeFileSync(path.join(dir, 'volume.bytes'), bytes);
    }
    (options.aws ?? []).forEach((answer, i) => {
      fs.writeFileSync(path.join(dir, `answer.${i + 1}`), 'value' in answer ? answer.value : answer.error);
      fs.writeFileSync(path.join(dir, `answer.${i + 1}.code`), 'value' in answer ? '0' : '254');
    });
    if (options.aws) script('aws', STANDIN_AWS);
    fs.writeFileSync(path.join(dir, 'calls.log'), '');
    fs.writeFileSync(path.join(dir, 'userdata.sh'), `#!/bin/bash\nset -x\n${options.commands}\n`);

    const nodes = options.nodes ?? '/etc/iscsi/nodes';
    const prepare: string[] = [];
    if (options.discovered) {
      const record = `${nodes}/iqn.1997-05.com.amazon:myvolume/10.0.0.10,3260,1`;
      prepare.push(`mkdir -p '${record}'`, `printf '%s\\n' '# BEGIN RECORD 2.1.8' ${options.discovered.map((l) => `'${l}'`).join(' ')} '# END RECORD' > '${record}/default'`);
    }
    const given = (name: string, text: string | undefined, where: string) => {
      if (text === undefined) return;
      fs.writeFileSync(path.join(dir, name), text);
      prepare.push(`mkdir -p ${path.dirname(where)}`, `cat > ${where} < '${path.join(dir, name)}'`);
    };
    given('iscsid.conf', options.iscsidConf, '/etc/iscsi/iscsid.conf');
    given('fstab', options.fstab, '/etc/fstab');
    // The machine's /etc may hold one; a run starts without it unless given.
    prepare.push('rm -f /etc/multipath.conf');
    given('multipath.conf', options.multipathConf, '/etc/multipath.conf');
    // /run of the run's own: has_systemd looks for /run/systemd/system.
    prepare.push('mount -t tmpfs standin-run /run', ...(options.systemd ? ['mkdir -p /run/systemd/system'] : []));
    if (volume) {
      // A /dev of the run's own (nodev: none of its nodes opens), with the machine's harmless character devices bound in
      // and the disk as a block device of an unregistered major; and a /srv for mount points.
      const dev = path.join(dir, 'dev');
      prepare.push(
        `mount -t tmpfs -o nodev,mode=755 standin-dev ${dev}`,
        ...['null', 'zero', 'full', 'random', 'urandom'].map((n) => `: > ${dev}/${n} && mount --bind /dev/${n} ${dev}/${n}`),
        ...[['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2']]
          .map(([name, to]) => `ln -s ${to} ${dev}/${name}`),
        `mkdir ${dev}/mapper ${dev}/shm`,
        `mknod -m 600 ${dev}/${disk} b 240 0`,
        `mount --move ${dev} /dev`,
        'mount -t tmpfs standin-srv /srv',
      );
    }
    const env = {
      PATH: `${bin}:${tools}`, STANDIN: dir, STANDIN_NODES: nodes, STANDIN_LOGINS: (options.logins ?? [0]).join(' '),
      STANDIN_ANSWERS: String(options.aws?.length ?? 0),
      ...(volume ? { STANDIN_SESSIONS: `${dir}/sessions`, CHAP_SESSIONS_DIR: `${dir}/sessions`, STANDIN_DISK: disk, STANDIN_WWID: volume.wwid ?? STANDIN_WWID } : {}),
      ...options.env,
    };
    const driver = [
      'set -e',
      `mount -t overlay overlay -o lowerdir=/etc,upperdir=${dir}/etc-upper,workdir=${dir}/etc-work /etc`,
      `mount --bind ${dir}/varlib /var/lib`,
      ...prepare,
      'cd /',
      `exec timeout -s KILL 100 strace -f -qq -v -s 65535 -e trace=execve -o ${dir}/execve.log env -i ${Object.entries(env).map(([k, v]) => `${k}='${v}'`).join(' ')} `
        + `bash ${dir}/userdata.sh`,
    ].join('\n');
    // Asynchronous, so servers of the test itself (an emulator, a fake instance metadata service) can answer meanwhile.
    const result = await new Promise<{ status: number; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn('unshare', [`-fpm${options.hostNetwork ? '' : 'n'}`, '--mount-proc', 'bash', '-c', driver], { stdio: ['ignore', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (d: Buffer) => out.push(d));
      child.stderr.on('data', (d: Buffer) => err.push(d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ status: code ?? -1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
    });
    const logins = walk(dir).filter((f) => /\/login\.\d+\.record$/.test(f)).sort((a, b) => Number(/(\d+)\.record$/.exec(a)![1]) - Number(/(\d+)\.record$/.exec(b)![1]));
    return {
      status: result.status,
      output: result.stdout + result.stderr,
      calls: fs.readFileSync(path.join(dir, 'calls.log'), 'utf8').split('\n').filter(Boolean),
      execs: fs.readFileSync(path.join(dir, 'execve.log'), 'utf8'),
      recordsAtLogin: logins.map((f) => fs.readFileSync(f, 'utf8')),
      files: [...walk(path.join(dir, 'etc-upper')).map((f) => ({ f, p: `/etc/${path.relative(path.join(dir, 'etc-upper'), f)}` })),
        ...walk(path.join(dir, 'varlib')).map((f) => ({ f, p: `/var/lib/${path.relative(path.join(dir, 'varlib'), f)}` }))]
        .map(({ f, p }) => ({ path: p, mode: fs.statSync(f).mode & 0o777, content: fs.readFileSync(f, 'utf8') })),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** No secret in the log, in any program's arguments or environment, or in any file but the root-only node record. */
export function expectContained(run: LinuxRun, secrets: string[], record: string) {
  for (const secret of secrets) {
    expect(run.output).not.toContain(secret);
    expect(run.execs).not.toContain(secret);
    expect(run.calls.join('\n')).not.toContain(secret);
    const holding = run.files.filter((f) => f.content.includes(secret));
    expect(holding.map((f) => [f.path, f.mode.toString(8)])).toEqual([[record, '600']]);
  }
  // The records are not vacuous: strace saw the stand-ins run.
  expect(run.execs).toMatch(/execve\("[^"]*\/bin\/iscsiadm", \["iscsiadm", "-m", "node"/);
}
