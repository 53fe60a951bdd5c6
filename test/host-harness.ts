/**
 * Runs the Linux boot commands wireHost renders, verbatim, as EC2 user data would (bash, an outer `set -x`), on this
 * machine but inside Linux namespaces: /etc is an overlay whose writes land in a folder of the test, /var/lib is a
 * folder of the test, processes end with the run (a PID namespace), and the network is the namespace's own unless
 * asked. iscsiadm, iscsid and aws are stand-ins that record their arguments and answer as the test says; every
 * program started is recorded by strace (execve, with arguments and environment). Nothing on the machine changes.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { App, CfnResource, Fn, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';

/** The real programs the commands and the stand-ins may run; nothing else is on PATH (no AWS CLI unless a stand-in). */
const TOOLS = ['bash', 'mkdir', 'chmod', 'mv', 'sleep', 'setsid', 'cat', 'rm', 'base64', 'gunzip', 'gzip'];
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
  /** The rendered user data lines (deployed: no tokens). */
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
}

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
mode='' target='' portal='' op='' name='' value='' login=0
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
    --logout) exit 0 ;;
    *) echo "iscsiadm stand-in: unexpected argument $1" >&2; exit 7 ;;
  esac
done
[[ $mode == node ]] || { echo "iscsiadm stand-in: unexpected mode $mode" >&2; exit 7; }
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
    0) echo "Login to [iface: default, target: $target, portal: $addr,$port] successful." ;;
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
exit 0
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
    if (options.iscsidConf !== undefined) {
      prepare.push('mkdir -p /etc/iscsi', `cat > /etc/iscsi/iscsid.conf < '${path.join(dir, 'iscsid.conf')}'`);
      fs.writeFileSync(path.join(dir, 'iscsid.conf'), options.iscsidConf);
    }
    const env = {
      PATH: `${bin}:${tools}`, STANDIN: dir, STANDIN_NODES: nodes, STANDIN_LOGINS: (options.logins ?? [0]).join(' '),
      STANDIN_ANSWERS: String(options.aws?.length ?? 0), ...options.env,
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
