/**
 * The iSCSI rig's guest: Debian 12's kernel, open-iscsi and tgt in qemu under TCG, built by scripts/rig/prepare.mjs
 * (npm test runs it first). No network device: target and initiator talk over the guest's own 127.0.0.1.
 *
 * A job is a bash script with files to place in the guest. It travels on a first raw disk (a tar the guest's /init
 * unpacks); the job's exit code and the files it asks to bring back come home on a second one. The console is the
 * guest's serial port. Each boot takes about 10 s under TCG before the job starts, so a test runs several scenarios
 * in one job where it can.
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const REPO = path.resolve(__dirname, '../..');
/** Where scripts/rig/prepare.mjs keeps the packages and the image it built. */
export const RIG_CACHE = process.env.RIG_CACHE ?? path.join(REPO, '.cache/iscsi-rig');

export interface GuestFile {
  /** Absolute path in the guest. */
  readonly path: string;
  readonly content: string | Buffer;
  /** @default 0o644 */
  readonly mode?: number;
}

export interface GuestJob {
  /** Bash, run as root after the rig's helpers (test/rig/rig.sh) are sourced. */
  readonly script: string;
  readonly files?: readonly GuestFile[];
  /** Guest paths to bring back once the job ended (a missing one is said on the console). */
  readonly bring?: readonly string[];
  /** Seconds from qemu's start to the guest's power-off; then qemu is killed and the run fails. @default 240 */
  readonly timeoutSeconds?: number;
}

export interface GuestResult {
  /** The console from the job's start to its end (kernel messages of that time included). */
  readonly console: string;
  /** The whole console, boot included. */
  readonly fullConsole: string;
  readonly exitCode: number;
  /** What `rig_check NAME VALUE` printed, by name (the last value of a name wins). */
  readonly checks: Readonly<Record<string, string>>;
  /** The brought-back files, by guest path. */
  readonly files: Readonly<Record<string, Buffer>>;
  /** Seconds from qemu's start to the job's start, and to the guest's end. */
  readonly bootSeconds: number;
  readonly seconds: number;
}

const HELPERS = path.join(__dirname, 'rig.sh');
const BOOT = path.join(__dirname, 'boot.sh');
const OUT_DISK_BYTES = 256 * 1024 * 1024;

/** The kernel and initramfs built by scripts/rig/prepare.mjs; fails saying how to build them. */
export function rigImage(): { kernel: string; initramfs: string } {
  const kernel = path.join(RIG_CACHE, 'vmlinuz');
  const initramfs = path.join(RIG_CACHE, 'initramfs.img');
  if (!fs.existsSync(kernel) || !fs.existsSync(initramfs)) {
    throw new Error(`the iSCSI rig is not built in ${RIG_CACHE}: run \`node scripts/rig/prepare.mjs\` (npm test runs it)`);
  }
  return { kernel, initramfs };
}

const tail = (text: string, lines = 40) => text.split('\n').slice(-lines).join('\n');

function tar(args: string[]): void {
  const result = spawnSync('tar', args, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`tar ${args.join(' ')} failed: ${result.stderr.trim()}`);
}

/** Boots the guest, runs the job, and returns what it printed and brought back. */
export async function runGuest(job: GuestJob): Promise<GuestResult> {
  const { kernel, initramfs } = rigImage();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-rig-'));
  try {
    const stage = path.join(dir, 'in');
    fs.mkdirSync(stage);
    fs.copyFileSync(BOOT, path.join(stage, 'boot.sh'));
    fs.copyFileSync(HELPERS, path.join(stage, 'lib.sh'));
    fs.writeFileSync(path.join(stage, 'job.sh'), `. /rig/lib.sh\n${job.script}\n`);
    fs.writeFileSync(path.join(stage, 'bring'), (job.bring ?? []).map((p) => `${p}\n`).join(''));
    for (const file of job.files ?? []) {
      if (!path.posix.isAbsolute(file.path)) throw new Error(`a guest file's path must be absolute, got '${file.path}'`);
      const target = path.join(stage, 'files', file.path);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.writeFileSync(target, file.content);
      fs.chmodSync(target, file.mode ?? 0o644);
    }
    const inDisk = path.join(dir, 'in.img');
    tar(['-cf', inDisk, '--owner=0', '--group=0', '--numeric-owner', '-C', stage, '.']);
    const outDisk = path.join(dir, 'out.img');
    fs.writeFileSync(outDisk, '');
    fs.truncateSync(outDisk, OUT_DISK_BYTES);

    const { console: fullConsole, seconds, bootSeconds } = await boot(kernel, initramfs, inDisk, outDisk, job.timeoutSeconds ?? 240);
    // For debugging a job: RIG_CONSOLE=FILE appends every run's whole console to FILE.
    if (process.env.RIG_CONSOLE) fs.appendFileSync(process.env.RIG_CONSOLE, fullConsole);
    if (!fullConsole.includes('@@rig-out-written@@')) {
      throw new Error(`the guest ended before writing the job's results; its console ended with:\n${tail(fullConsole)}`);
    }
    const outDir = path.join(dir, 'out');
    fs.mkdirSync(outDir);
    tar(['-xf', outDisk, '-C', outDir]);
    const files: Record<string, Buffer> = {};
    const walk = (rel: string) => {
      for (const entry of fs.readdirSync(path.join(outDir, 'files', rel), { withFileTypes: true })) {
        const child = path.posix.join(rel, entry.name);
        if (entry.isDirectory()) walk(child); else files[child] = fs.readFileSync(path.join(outDir, 'files', child));
      }
    };
    if (fs.existsSync(path.join(outDir, 'files'))) walk('/');
    const begin = fullConsole.indexOf('@@rig-job-begin@@');
    const end = fullConsole.indexOf('@@rig-job-end');
    const jobConsole = fullConsole.slice(begin + '@@rig-job-begin@@'.length, end < 0 ? undefined : end);
    const checks: Record<string, string> = {};
    for (const m of jobConsole.matchAll(/@@rig-check ([^=\s]+)=(.*?)@@/g)) checks[m[1]] = m[2];
    return {
      console: jobConsole, fullConsole, checks, files, seconds, bootSeconds,
      exitCode: Number(fs.readFileSync(path.join(outDir, '.exit-code'), 'utf8').trim()),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** qemu under TCG (KVM hangs nested on these machines), no network device, the serial port on stdout. */
function boot(kernel: string, initramfs: string, inDisk: string, outDisk: string, timeoutSeconds: number) {
  const args = [
    '-accel', 'tcg', '-nographic', '-nodefaults', '-nic', 'none', '-no-reboot', '-serial', 'stdio',
    '-m', '512', '-smp', '1',
    '-kernel', kernel, '-initrd', initramfs,
    '-append', 'console=ttyS0 panic=-1 loglevel=4 rdinit=/init',
    '-drive', `file=${inDisk},if=virtio,format=raw,readonly=on`,
    '-drive', `file=${outDisk},if=virtio,format=raw`,
  ];
  const started = Date.now();
  return new Promise<{ console: string; seconds: number; bootSeconds: number }>((resolve, reject) => {
    const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: string[] = [];
    let bootSeconds = 0;
    qemu.stdout.setEncoding('latin1');
    let recent = '';
    qemu.stdout.on('data', (text: string) => {
      chunks.push(text);
      recent = (recent + text).slice(-64);
      if (!bootSeconds && recent.includes('@@rig-job-begin@@')) bootSeconds = (Date.now() - started) / 1000;
    });
    let stderr = '';
    qemu.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    const text = () => chunks.join('').replace(/\r/g, '');
    const timer = setTimeout(() => {
      qemu.kill('SIGKILL');
      if (process.env.RIG_CONSOLE) fs.appendFileSync(process.env.RIG_CONSOLE, text());
      reject(new Error(`the guest did not finish within ${timeoutSeconds} s; its console ended with:\n${tail(text())}`));
    }, timeoutSeconds * 1000);
    qemu.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`qemu-system-x86_64 could not start (${error.message}): run \`node scripts/rig/prepare.mjs\`, which installs it`));
    });
    qemu.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`qemu exited with ${code}: ${stderr.trim()}\n${tail(text())}`));
      resolve({ console: text(), seconds: (Date.now() - started) / 1000, bootSeconds });
    });
  });
}
