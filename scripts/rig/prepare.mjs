#!/usr/bin/env node
/**
 * The iSCSI rig: Debian 12's kernel with open-iscsi and tgt in an initramfs, for qemu (test/rig/guest.ts).
 *
 *   node scripts/rig/prepare.mjs [--cache DIR] [--rebuild] [--json]
 *
 * 1. Checks that qemu-system-x86_64, shellcheck and strace (the host-script tests' tools) are installed; as root it installs the missing ones from Debian,
 *    otherwise it fails with one line saying what to install.
 * 2. Fetches the pinned Debian packages below with `apt-get download NAME=VERSION` into DIR/debs (default
 *    .cache/iscsi-rig), unless already there, and unpacks them with `dpkg -x`: nothing is installed on this machine.
 * 3. Builds DIR/vmlinuz and DIR/initramfs.img (busybox as PID 1, the binaries and their ELF NEEDED libraries, the
 *    kernel modules and what they depend on, depmod's tables), unless DIR/manifest.json says they were built from the
 *    same inputs and their sha256 still match. Same inputs, same bytes: a sorted cpio with fixed owners and mtimes,
 *    `gzip -n`.
 *
 * --rebuild builds again even when fresh; --json prints what was done and how long it took, for bench/run.ts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
export const KERNEL_VERSION = '6.1.0-57-amd64';

/** Every package the guest is built from, pinned (Debian 12 "bookworm", amd64). */
export const PACKAGES = [
  [`linux-image-${KERNEL_VERSION}`, '6.1.192-3'],
  ['busybox-static', '1:1.35.0-4+deb12u1+b1'],
  ['bash', '5.2.15-2+b13'],
  ['open-iscsi', '2.1.8-1+deb12u1'],
  ['libopeniscsiusr', '2.1.8-1+deb12u1'],
  ['tgt', '1:1.0.85-1+deb12u1'],
  ['e2fsprogs', '1.47.0-2+b2'],
  ['kmod', '30+20221128-1'],
  ['dmsetup', '2:1.02.185-2'],
  ['strace', '6.1-0.1'],
  ['multipath-tools', '0.9.4-3+deb12u2'],
  ['udev', '252.39-1~deb12u2'],
  ['util-linux', '2.38.1-5+deb12u3'],
  ['mount', '2.38.1-5+deb12u3'],
  // Shared libraries of the binaries above (their ELF NEEDED entries, followed to the end).
  ['libc6', '2.36-9+deb12u14'],
  ['libacl1', '2.3.1-3'],
  ['libaio1', '0.3.113-4'],
  ['libblkid1', '2.38.1-5+deb12u3'],
  ['libcap2', '1:2.66-4+deb12u3+b1'],
  ['libcom-err2', '1.47.0-2+b2'],
  ['libssl3', '3.0.22-1~deb12u2'],
  ['libdevmapper1.02.1', '2:1.02.185-2'],
  ['libext2fs2', '1.47.0-2+b2'],
  ['libibverbs1', '44.0-2'],
  ['librdmacm1', '44.0-2'],
  ['libisns0', '0.101-0.2+b1'],
  ['libkmod2', '30+20221128-1'],
  ['liblzma5', '5.4.1-1+deb12u2'],
  ['libmount1', '2.38.1-5+deb12u3'],
  ['libselinux1', '3.4-1+b6'],
  ['libpcre2-8-0', '10.42-1+deb12u2'],
  ['libsystemd0', '252.39-1~deb12u2'],
  ['libgcrypt20', '1.10.1-3+deb12u1'],
  ['libgpg-error0', '1.46-1'],
  ['liblz4-1', '1.9.4-1'],
  ['libtinfo6', '6.4-4'],
  ['libudev1', '252.39-1~deb12u2'],
  ['libunwind8', '1.6.2-3'],
  ['liburcu8', '0.13.2-1'],
  ['libuuid1', '2.38.1-5+deb12u3'],
  ['libzstd1', '1.5.4+dfsg2-5+deb12u1'],
  ['libnl-3-200', '3.7.0-0.2+b1'],
  ['libnl-route-3-200', '3.7.0-0.2+b1'],
  ['libgcc-s1', '12.2.0-14+deb12u1'],
  ['libjson-c5', '0.16-2'],
  ['libreadline8', '8.2-1.3'],
  ['libss2', '1.47.0-2+b2'],
];

/** Binaries copied into the guest, at the same path. */
const BINARIES = [
  'bin/bash', 'bin/kmod',
  'sbin/iscsiadm', 'sbin/iscsid', 'sbin/iscsi-iname',
  'usr/sbin/tgtd', 'usr/sbin/tgtadm',
  'sbin/mke2fs', 'sbin/e2fsck', 'sbin/dumpe2fs', 'sbin/tune2fs',
  'sbin/dmsetup', 'usr/bin/strace',
  'sbin/multipath', 'sbin/multipathd', 'bin/udevadm',
  'sbin/blkid', 'bin/mount', 'bin/umount', 'bin/mountpoint',
];
/** Links to those binaries, as the packages ship them. */
const LINKS = {
  'sbin/mkfs.ext4': 'mke2fs', 'sbin/fsck.ext4': 'e2fsck',
  'sbin/modprobe': '/bin/kmod', 'sbin/insmod': '/bin/kmod', 'sbin/rmmod': '/bin/kmod', 'sbin/depmod': '/bin/kmod',
  'sbin/modinfo': '/bin/kmod', 'bin/lsmod': 'kmod',
  'bin/sh': 'busybox', 'lib/systemd/systemd-udevd': '/bin/udevadm',
};
/** Whole folders copied (configuration, udev rules and helpers, multipath's path checkers). */
const FOLDERS = ['etc/iscsi', 'lib/udev', 'etc/udev', 'lib/multipath'];
/** Kernel modules loaded at boot; what they depend on comes along. */
export const MODULES = [
  'virtio_pci', 'virtio_blk', 'crc32c_generic', 'iscsi_tcp', 'sd_mod', 'ext4', 'dm_mod', 'dm_multipath', 'dm_service_time', 'dm_round_robin',
];

const INIT = `#!/bin/sh
# PID 1 of the iSCSI rig (scripts/rig/prepare.mjs). Runs /rig/boot.sh when a job disk gives it one.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t tmpfs -o mode=0755 tmpfs /rig
mkdir -p /run/lock /var/lock
for m in ${MODULES.join(' ')}; do modprobe "$m" || echo "rig: modprobe $m failed"; done
ip link set lo up
hostname rig
[ -b /dev/vda ] || { echo 'rig: no job disk (/dev/vda)'; reboot -f; }
mkdir -p /rig/in && tar -xf /dev/vda -C /rig/in && . /rig/in/boot.sh
reboot -f
`;

const PASSWD = 'root:x:0:0:root:/root:/bin/bash\n';
const GROUP = 'root:x:0:\n';

function parseArgs(argv) {
  const options = { cache: path.join(REPO, '.cache/iscsi-rig'), rebuild: false, json: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--cache') options.cache = path.resolve(argv[++i]);
    else if (argv[i] === '--rebuild') options.rebuild = true;
    else if (argv[i] === '--json') options.json = true;
    else throw new Error(`unknown argument '${argv[i]}' (expected --cache DIR, --rebuild, --json)`);
  }
  return options;
}

const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
const isRoot = () => process.getuid?.() === 0;
function run(file, args, options = {}) {
  try {
    return execFileSync(file, args, { stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 28, ...options });
  } catch (error) {
    const said = error.stderr ? String(error.stderr).trim().split('\n').slice(-3).join(' / ') : error.message;
    throw new Error(`${path.basename(file)} ${args.slice(0, 2).join(' ')} failed: ${said}`);
  }
}
const sha256 = (data) => createHash('sha256').update(data).digest('hex');

class Refusal extends Error {}

/** qemu, shellcheck and strace: installed from Debian when missing and we are root; otherwise one line saying what to do. */
function ensureTools(log) {
  const tools = [['qemu-system-x86_64', 'qemu-system-x86'], ['shellcheck', 'shellcheck'], ['strace', 'strace']];
  const missing = tools.filter(([command]) => !has(command));
  if (!missing.length) return [];
  const packages = missing.map(([, pkg]) => pkg);
  const how = `apt-get install -y --no-install-recommends ${packages.join(' ')}`;
  if (!isRoot() || !has('apt-get')) {
    throw new Refusal(`the iSCSI rig needs ${missing.map(([c]) => c).join(' and ')}: install them as root with \`apt-get update && ${how}\``);
  }
  log(`installing ${packages.join(', ')} from Debian`);
  run('apt-get', ['update'], { stdio: 'inherit' });
  run('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  return packages;
}

/** The file `apt-get download` writes for a pinned package (an epoch's ':' becomes '%3a'). */
const debFile = (name, version) => `${name}_${version.replace(/:/g, '%3a')}_`;
function findDeb(dir, name, version) {
  const prefix = debFile(name, version);
  const file = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.startsWith(prefix) && f.endsWith('.deb')) : undefined;
  return file && path.join(dir, file);
}

/** Downloads the pinned packages that are not in the cache yet; returns how many. */
function fetchPackages(debs, log) {
  fs.mkdirSync(debs, { recursive: true });
  const missing = PACKAGES.filter(([name, version]) => !findDeb(debs, name, version));
  if (!missing.length) return 0;
  for (const command of ['apt-get', 'dpkg']) {
    if (!has(command)) throw new Refusal(`the iSCSI rig is built from Debian 12 packages and needs ${command} (a Debian or Ubuntu machine)`);
  }
  const pins = missing.map(([name, version]) => `${name}=${version}`);
  log(`downloading ${pins.length} Debian packages`);
  const download = () => spawnSync('apt-get', ['download', '-o', 'APT::Sandbox::User=root', ...pins], { cwd: debs, encoding: 'utf8' });
  let result = download();
  if (result.status !== 0) {
    if (!isRoot()) throw new Refusal(`apt-get download failed (${firstLine(result.stderr)}); as root, \`apt-get update\` may fix it`);
    log('apt-get download failed; running apt-get update once');
    run('apt-get', ['update'], { stdio: 'inherit' });
    result = download();
    if (result.status !== 0) throw new Refusal(`apt-get download ${pins.join(' ')} failed: ${firstLine(result.stderr)}`);
  }
  const still = missing.filter(([name, version]) => !findDeb(debs, name, version));
  if (still.length) throw new Refusal(`apt-get download did not give ${still.map((p) => p.join('=')).join(', ')}`);
  return missing.length;
}
const firstLine = (text) => (text ?? '').split('\n').map((l) => l.trim()).find((l) => /^E:|error/i.test(l)) ?? (text ?? '').trim().split('\n')[0];

// ---- ELF: the NEEDED entries of a shared object, and the dependencies a kernel module declares ----

function elfSections(data) {
  if (data.length < 64 || data.readUInt32BE(0) !== 0x7f454c46 || data[4] !== 2) return undefined; // ELF64 only
  const shoff = Number(data.readBigUInt64LE(0x28));
  const shentsize = data.readUInt16LE(0x3a);
  const shnum = data.readUInt16LE(0x3c);
  const shstrndx = data.readUInt16LE(0x3e);
  const sections = [];
  for (let i = 0; i < shnum; i++) {
    const at = shoff + i * shentsize;
    sections.push({
      name: data.readUInt32LE(at), type: data.readUInt32LE(at + 4), offset: Number(data.readBigUInt64LE(at + 0x18)),
      size: Number(data.readBigUInt64LE(at + 0x20)), link: data.readUInt32LE(at + 0x28),
    });
  }
  const names = sections[shstrndx];
  const cstr = (offset) => data.toString('latin1', offset, data.indexOf(0, offset));
  return sections.map((s) => ({ ...s, name: cstr(names.offset + s.name) }));
}

function elfNeeded(data) {
  const sections = elfSections(data);
  const dynamic = sections?.find((s) => s.type === 6); // SHT_DYNAMIC
  if (!dynamic) return [];
  const strtab = sections[dynamic.link];
  const needed = [];
  for (let at = dynamic.offset; at < dynamic.offset + dynamic.size; at += 16) {
    const tag = data.readBigInt64LE(at);
    if (tag === 0n) break;
    if (tag === 1n) { // DT_NEEDED
      const offset = strtab.offset + Number(data.readBigUInt64LE(at + 8));
      needed.push(data.toString('latin1', offset, data.indexOf(0, offset)));
    }
  }
  return needed;
}

function moduleDepends(data) {
  const modinfo = elfSections(data)?.find((s) => s.name === '.modinfo');
  if (!modinfo) return [];
  const fields = data.toString('latin1', modinfo.offset, modinfo.offset + modinfo.size).split('\0');
  const depends = fields.find((f) => f.startsWith('depends='))?.slice('depends='.length) ?? '';
  return depends ? depends.split(',') : [];
}

// ---- the guest's file tree and its cpio ----

/** Guest path (no leading '/') to entry: a file (data, mode), a folder, a link or a character device. */
class Tree {
  entries = new Map();
  dir(p) {
    for (let d = p; d && d !== '.'; d = path.posix.dirname(d)) if (!this.entries.has(d)) this.entries.set(d, { kind: 'dir', mode: 0o755 });
  }
  file(p, data, mode) {
    this.dir(path.posix.dirname(p));
    this.entries.set(p, { kind: 'file', data, mode: mode & 0o7777 });
  }
  link(p, target) {
    this.dir(path.posix.dirname(p));
    this.entries.set(p, { kind: 'link', target });
  }
  chardev(p, major, minor, mode) {
    this.dir(path.posix.dirname(p));
    this.entries.set(p, { kind: 'chr', major, minor, mode });
  }
  /** A newc cpio archive: sorted paths, owner root, mtime 0, inode numbers in order. */
  cpio() {
    const parts = [];
    let ino = 0;
    const push = (name, mode, data, rdev = [0, 0], nlink = 1) => {
      const nameBytes = Buffer.from(`${name}\0`, 'latin1');
      const fields = [ino++, mode, 0, 0, nlink, 0, data.length, 0, 0, rdev[0], rdev[1], nameBytes.length, 0];
      const header = Buffer.from(`070701${fields.map((n) => n.toString(16).padStart(8, '0')).join('')}`, 'latin1');
      parts.push(header, nameBytes, Buffer.alloc((4 - ((header.length + nameBytes.length) % 4)) % 4), data, Buffer.alloc((4 - (data.length % 4)) % 4));
    };
    for (const name of [...this.entries.keys()].sort()) {
      const e = this.entries.get(name);
      if (e.kind === 'dir') push(name, 0o040000 | e.mode, Buffer.alloc(0), [0, 0], 2);
      else if (e.kind === 'file') push(name, 0o100000 | e.mode, e.data);
      else if (e.kind === 'link') push(name, 0o120777, Buffer.from(e.target, 'latin1'));
      else push(name, 0o020000 | e.mode, Buffer.alloc(0), [e.major, e.minor]);
    }
    push('TRAILER!!!', 0, Buffer.alloc(0));
    const archive = Buffer.concat(parts);
    return Buffer.concat([archive, Buffer.alloc((512 - (archive.length % 512)) % 512)]);
  }
}

const LIBRARY_DIRS = ['lib/x86_64-linux-gnu', 'usr/lib/x86_64-linux-gnu', 'lib', 'usr/lib', 'lib64'];
/** Libraries loaded with dlopen, which no NEEDED entry names: glibc's pthread_cancel needs libgcc_s (tgtd deleting a target, multipathd). */
const DLOPENED = ['libgcc_s.so.1'];

/** Real file behind `p` inside the unpacked tree `root` (links resolved within it). */
function realInside(root, p) {
  let rel = p;
  for (let hops = 0; hops < 20; hops++) {
    const full = path.join(root, rel);
    const stat = fs.lstatSync(full, { throwIfNoEntry: false });
    if (!stat) return undefined;
    if (!stat.isSymbolicLink()) return full;
    const target = fs.readlinkSync(full);
    rel = target.startsWith('/') ? target.slice(1) : path.posix.join(path.posix.dirname(rel), target);
  }
  return undefined;
}

/** Left out of copied folders: udev's hardware database (9 MB of vendor names) is not needed to find disks. */
const LEFT_OUT = new Set(['lib/udev/hwdb.d', 'lib/udev/hwdb.bin']);

function copyTree(tree, sys, rel) {
  if (LEFT_OUT.has(rel)) return;
  const full = path.join(sys, rel);
  const stat = fs.lstatSync(full, { throwIfNoEntry: false });
  if (!stat) throw new Error(`the packages hold no ${rel}`);
  if (stat.isSymbolicLink()) return tree.link(rel, fs.readlinkSync(full));
  if (stat.isDirectory()) {
    tree.dir(rel);
    for (const entry of fs.readdirSync(full).sort()) copyTree(tree, sys, path.posix.join(rel, entry));
    return;
  }
  tree.file(rel, fs.readFileSync(full), stat.mode);
}

/** Adds every library the tree's ELF files need, followed to the end; fails naming what no package holds. */
function addLibraries(tree, sys) {
  const missing = new Set();
  const seen = new Set();
  const queue = [...tree.entries.entries()].filter(([, e]) => e.kind === 'file').map(([, e]) => e.data);
  const first = [...DLOPENED];
  while (queue.length || first.length) {
    const names = first.length ? first.splice(0) : elfNeeded(queue.shift());
    for (const soname of names) {
      if (seen.has(soname)) continue;
      seen.add(soname);
      const dir = LIBRARY_DIRS.find((d) => realInside(sys, `${d}/${soname}`));
      if (!dir) { missing.add(soname); continue; }
      const real = realInside(sys, `${dir}/${soname}`);
      const data = fs.readFileSync(real);
      // The loader's own path is fixed in every binary (PT_INTERP); every other library goes where it is searched.
      tree.file(soname.startsWith('ld-linux') ? `lib64/${soname}` : `lib/x86_64-linux-gnu/${soname}`, data, fs.statSync(real).mode);
      queue.push(data);
    }
  }
  if (missing.size) throw new Error(`no pinned package holds ${[...missing].sort().join(', ')}: add the package to PACKAGES in scripts/rig/prepare.mjs`);
  return seen.size;
}

/** The modules asked for and their dependencies, depmod's tables made by the guest's own depmod. */
function addModules(tree, kernel, sys, work) {
  const base = `lib/modules/${KERNEL_VERSION}`;
  const byName = new Map();
  const walk = (rel) => {
    for (const entry of fs.readdirSync(path.join(kernel, rel), { withFileTypes: true })) {
      const child = path.posix.join(rel, entry.name);
      if (entry.isDirectory()) walk(child);
      else if (entry.name.endsWith('.ko')) byName.set(entry.name.slice(0, -3).replace(/-/g, '_'), child);
    }
  };
  walk(`${base}/kernel`);
  const wanted = new Set();
  const visit = (name) => {
    const key = name.replace(/-/g, '_');
    if (wanted.has(key)) return;
    const rel = byName.get(key);
    if (!rel) throw new Error(`kernel ${KERNEL_VERSION} has no module ${name}`);
    wanted.add(key);
    moduleDepends(fs.readFileSync(path.join(kernel, rel))).forEach(visit);
  };
  MODULES.forEach(visit);
  const staged = path.join(work, 'modules');
  for (const key of [...wanted].sort()) {
    const rel = byName.get(key);
    fs.mkdirSync(path.join(staged, path.dirname(rel)), { recursive: true });
    fs.copyFileSync(path.join(kernel, rel), path.join(staged, rel));
  }
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) fs.copyFileSync(path.join(kernel, base, f), path.join(staged, base, f));
  // depmod from the pinned kmod, run by the pinned loader with the pinned libraries: nothing of this machine's.
  const loader = realInside(sys, 'lib64/ld-linux-x86-64.so.2');
  const libraryPath = LIBRARY_DIRS.map((d) => path.join(sys, d)).join(':');
  run(loader, ['--library-path', libraryPath, '--argv0', 'depmod', path.join(sys, 'bin/kmod'), '-b', staged, KERNEL_VERSION]);
  copyTree(tree, staged, base);
  // copyTree read from `staged`; the tree's paths are the guest's.
  return wanted.size;
}

function buildImage(cache, debs, log) {
  const work = path.join(cache, 'work');
  fs.rmSync(work, { recursive: true, force: true });
  const sys = path.join(work, 'sys');
  const kernel = path.join(work, 'kernel');
  fs.mkdirSync(sys, { recursive: true });
  fs.mkdirSync(kernel, { recursive: true });
  for (const [name, version] of PACKAGES) run('dpkg', ['-x', findDeb(debs, name, version), name.startsWith('linux-image-') ? kernel : sys]);
  log('unpacked; assembling the initramfs');

  const tree = new Tree();
  for (const d of ['dev', 'proc', 'sys', 'tmp', 'run', 'rig', 'root', 'var/lib', 'var/log', 'etc/iscsi/nodes', 'usr/bin', 'usr/sbin', 'sbin']) tree.dir(d);
  tree.chardev('dev/console', 5, 1, 0o600);
  tree.link('var/run', '/run');
  const busybox = path.join(sys, 'bin/busybox');
  tree.file('bin/busybox', fs.readFileSync(busybox), 0o755);
  for (const rel of BINARIES) {
    const real = realInside(sys, rel);
    if (!real) throw new Error(`the packages hold no ${rel}`);
    tree.file(rel, fs.readFileSync(real), fs.statSync(real).mode);
  }
  for (const rel of FOLDERS) copyTree(tree, sys, rel);
  for (const [rel, target] of Object.entries(LINKS)) tree.link(rel, target);
  // Every busybox applet where no real binary stands: as `busybox --install -s` would link them.
  for (const applet of run(busybox, ['--list-full']).toString('latin1').split('\n').filter(Boolean)) {
    if (!tree.entries.has(applet) && applet !== 'linuxrc') tree.link(applet, '/bin/busybox');
  }
  tree.file('init', Buffer.from(INIT), 0o755);
  tree.file('etc/passwd', Buffer.from(PASSWD), 0o644);
  tree.file('etc/group', Buffer.from(GROUP), 0o644);
  tree.file('etc/hostname', Buffer.from('rig\n'), 0o644);
  tree.file('etc/iscsi/initiatorname.iscsi', Buffer.from('InitiatorName=iqn.1993-08.org.debian:01:rig\n'), 0o644);
  const libraries = addLibraries(tree, sys);
  const modules = addModules(tree, kernel, sys, work);

  log(`${tree.entries.size} files, ${libraries} libraries, ${modules} modules; compressing`);
  const cpioFile = path.join(work, 'initramfs.cpio');
  fs.writeFileSync(cpioFile, tree.cpio());
  const initramfs = run('gzip', ['-n', '-6', '-c', cpioFile]);
  const vmlinuz = fs.readFileSync(path.join(kernel, `boot/vmlinuz-${KERNEL_VERSION}`));
  fs.writeFileSync(path.join(cache, 'initramfs.img'), initramfs);
  fs.writeFileSync(path.join(cache, 'vmlinuz'), vmlinuz);
  if (!process.env.RIG_KEEP_WORK) fs.rmSync(work, { recursive: true, force: true });
  return { initramfs: sha256(initramfs), vmlinuz: sha256(vmlinuz), files: tree.entries.size, libraries, modules, bytes: initramfs.length };
}

/** What the image is made from: the package pins, and this script (its lists, init and build steps). */
export function inputsKey() {
  return sha256(JSON.stringify({ PACKAGES, script: fs.readFileSync(fileURLToPath(import.meta.url), 'utf8') }));
}

function fresh(cache, manifest) {
  if (!manifest || manifest.inputs !== inputsKey()) return false;
  return ['initramfs', 'vmlinuz'].every((f) => {
    const file = path.join(cache, f === 'initramfs' ? 'initramfs.img' : 'vmlinuz');
    return fs.existsSync(file) && sha256(fs.readFileSync(file)) === manifest.sha256[f];
  });
}

/** Tools, packages, image: each only when missing or stale. Returns what was done. */
export function prepare(options = {}, log = () => {}) {
  const cache = options.cache ?? path.join(REPO, '.cache/iscsi-rig');
  const started = Date.now();
  const installed = ensureTools(log);
  const debs = path.join(cache, 'debs');
  const downloaded = fetchPackages(debs, log);
  const fetchedMs = Date.now() - started;
  const manifestFile = path.join(cache, 'manifest.json');
  const manifest = fs.existsSync(manifestFile) ? JSON.parse(fs.readFileSync(manifestFile, 'utf8')) : undefined;
  if (!options.rebuild && fresh(cache, manifest)) {
    return { installed, downloaded, built: false, fetchMs: fetchedMs, buildMs: 0, sha256: manifest.sha256, cache };
  }
  log('building the guest image');
  const buildStarted = Date.now();
  const built = buildImage(cache, debs, log);
  const next = {
    inputs: inputsKey(), kernel: KERNEL_VERSION, packages: PACKAGES.map(([n, v]) => `${n}=${v}`),
    sha256: { initramfs: built.initramfs, vmlinuz: built.vmlinuz },
    files: built.files, libraries: built.libraries, modules: built.modules, bytes: built.bytes,
  };
  fs.writeFileSync(manifestFile, `${JSON.stringify(next, null, 2)}\n`);
  return { installed, downloaded, built: true, fetchMs: fetchedMs, buildMs: Date.now() - buildStarted, sha256: next.sha256, cache };
}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const options = parseArgs(process.argv.slice(2));
    const t0 = Date.now();
    const result = prepare(options, (line) => process.stderr.write(`iscsi-rig: ${line} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n`));
    if (options.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else process.stderr.write(`iscsi-rig: ${result.built ? 'built' : 'fresh'} (${path.relative(REPO, result.cache) || result.cache}, initramfs sha256 ${result.sha256.initramfs.slice(0, 16)})\n`);
  } catch (error) {
    process.stderr.write(`iscsi-rig: ${error instanceof Refusal ? '' : 'failed: '}${error.message.split('\n')[0]}\n`);
    process.exit(1);
  }
}
