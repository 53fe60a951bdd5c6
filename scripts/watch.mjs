// `npm run watch`: runs `npm run build` again whenever a TypeScript source changes, so lib/*.js stays jsii's output.
// Neither compiler's own watch mode fits: `tsc -w` would overwrite lib/*.js with plain tsc output, and `jsii --watch`
// (6.0.16) re-emits lib/*.js without the runtime type tags other languages identify our classes by.
import { spawn } from 'node:child_process';
import { watch } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const folders = ['lib', 'lambda', 'local', 'bin', 'bench'];
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
let running = false;
let pending = false;
let timer;

function build() {
  if (running) {
    pending = true;
    return;
  }
  running = true;
  console.log(`[watch] ${new Date().toLocaleTimeString()} npm run build`);
  spawn(npm, ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' }).on('exit', (code) => {
    console.log(`[watch] build ${code === 0 ? 'done' : `failed (exit ${code})`}; watching ${folders.join('/, ')}/`);
    running = false;
    if (pending) {
      pending = false;
      build();
    }
  });
}

for (const folder of folders) {
  watch(join(root, folder), { recursive: true }, (_event, file) => {
    if (!file || !file.endsWith('.ts') || file.endsWith('.d.ts')) return;
    clearTimeout(timer);
    timer = setTimeout(build, 300);
  });
}
build();
