// Prebundles the handler when the library builds: one minified CommonJS file with its AWS SDK v3
// clients inside (pinned by package-lock.json), so consumers never need Docker or esbuild to synth.
// No source maps, no timestamps, sorted inputs: the same sources give the same bytes and asset hash.
import { build } from 'esbuild';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// The output folder may be given (the reproducibility test builds twice elsewhere); the benchmark also tries
// variants with --main-fields=main or --no-minify.
const [given, ...flags] = process.argv.slice(2);
const outdir = given ?? join(root, 'assets', 'handler');
rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });

const result = await build({
  absWorkingDir: root,
  entryPoints: ['lambda/index.ts'],
  outfile: join(outdir, 'index.js'),
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  minify: !flags.includes('--no-minify'),
  sourcemap: false,
  legalComments: 'none',
  mainFields: flags.includes('--main-fields=main') ? ['main'] : ['module', 'main'],
  metafile: true,
  logLevel: 'warning',
});
const bytes = Object.values(result.metafile.outputs).reduce((sum, o) => sum + o.bytes, 0);
if (!given) console.log(`handler bundle: ${outdir}/index.js, ${bytes} bytes`);
