// `prepack` (npm pack, npm publish, and installing from a git checkout): `npm run build` unless the build is already
// newer than everything it is made from, so `npm pack` in a fresh clone ships the whole package (compiled library,
// .jsii, handler bundle and its license files) and a stale build is never packed. It skips a fresh build because
// jsii-pacmak packs this folder with `npm pack` (`npm run package`, and test/jsii-targets.test.ts while other tests
// load lib/): rebuilding there would rewrite lib/*.js under them.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** What the package ships from the build: each exists and is newer than every source when the build is fresh. */
export const BUILD_OUTPUTS = ['.jsii', 'lib/index.js', 'lib/index.d.ts', 'assets/handler/index.js',
  'assets/handler/THIRD-PARTY-LICENSES.txt', 'assets/handler/bundled-packages.json'];

/**
 * Everything the build reads that can change in a checkout: the sources of lib/ and lambda/, configs and lockfile, and
 * README.md, which jsii copies into .jsii (the other languages' package docs come from there).
 */
export function buildInputs(dir = root) {
  const sources = ['lib', 'lambda'].flatMap((sub) => readdirSync(join(dir, sub), { recursive: true })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')).map((f) => join(sub, f)));
  return [...sources, 'README.md', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.jsii.json', 'scripts/bundle.mjs'];
}

/** Why a build is needed (a missing output, or a source newer than the oldest output), or undefined when it is fresh. */
export function staleReason(dir = root) {
  const missing = BUILD_OUTPUTS.find((f) => !existsSync(join(dir, f)));
  if (missing) return `${missing} is missing`;
  const oldest = Math.min(...BUILD_OUTPUTS.map((f) => statSync(join(dir, f)).mtimeMs));
  const newer = buildInputs(dir).find((f) => statSync(join(dir, f)).mtimeMs > oldest);
  return newer ? `${newer} changed after the last build` : undefined;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const reason = staleReason();
  if (!reason) {
    console.error('prepack: the build is newer than its sources; packing it as it is');
  } else {
    console.error(`prepack: ${reason}; npm run build`);
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const { status } = spawnSync(npm, ['run', 'build'], { cwd: root, stdio: ['ignore', 2, 2], shell: process.platform === 'win32' });
    process.exit(status ?? 1);
  }
}
