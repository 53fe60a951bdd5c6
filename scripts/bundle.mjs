// Prebundles the handler when the library builds: one minified CommonJS file with its AWS SDK v3
// clients inside (pinned by package-lock.json), so consumers never need Docker or esbuild to synth.
// No source maps, no timestamps, sorted inputs: the same sources give the same bytes and asset hash.
// Beside it, from esbuild's metafile: bundled-packages.json (every package whose code is in index.js: name, version,
// license, its license and notice files) and THIRD-PARTY-LICENSES.txt (those files' texts), so license and audit
// tools see what the asset carries. A small walk of the metafile rather than a plugin: esbuild-plugin-license (1.2.3,
// the one maintained candidate) keeps one version per package name, ignores NOTICE files, lists packages esbuild
// loaded but dropped, and writes a banner into the bundle.
import { build } from 'esbuild';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const packages = bundledPackages(result.metafile);
writeFileSync(join(outdir, 'bundled-packages.json'), `${JSON.stringify({
  bundle: 'index.js',
  description: 'Third-party packages whose code esbuild bundled into index.js; their license texts are in THIRD-PARTY-LICENSES.txt',
  packages: packages.map(({ name, version, license, path, files }) => ({ name, version, license, path, licenseFiles: files.filter((f) => f.inPackage).map((f) => f.name) })),
}, null, 2)}\n`);
writeFileSync(join(outdir, 'THIRD-PARTY-LICENSES.txt'), thirdPartyLicenses(packages));
// For test/package-licenses.test.ts only, into a folder of its own: esbuild's record of the bundle's inputs.
if (given && flags.includes('--metafile')) writeFileSync(join(outdir, 'metafile.json'), JSON.stringify(result.metafile));
if (!given) console.log(`handler bundle: ${outdir}/index.js, ${bytes} bytes`);

/**
 * The folder of the package an input belongs to (`node_modules/@scope/name` or `node_modules/name`, after the last
 * `node_modules/` of the path, so nested installs count as their own package), or undefined for our own sources.
 */
function packageDirOf(input) {
  const match = /^(?:.*\/)?node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  return match ? match[0].slice(0, -1) : undefined;
}

/**
 * Every third-party package with code in the output (an input contributing bytes: esbuild also lists inputs whose code
 * was all shaken out), sorted by name and version: from each package's own package.json, its license and notice
 * files. A package without a license file gets the declared license's standard text, which we have only for
 * Apache-2.0 (this repository's LICENSE): any other would stop the build for a person to look.
 */
function bundledPackages(metafile) {
  // Files of a package folder that carry its license or notices (LICENSE, LICENCE, NOTICE, COPYING, any suffix).
  const LICENSE_FILE = /^(licen[cs]e|notice|copying)([.\-_].*)?$/i;
  const dirs = new Set();
  for (const output of Object.values(metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const dir = packageDirOf(input);
      if (dir && bytesInOutput > 0) dirs.add(dir);
    }
  }
  return [...dirs].map((dir) => {
    const pkg = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8'));
    const license = typeof pkg.license === 'string' ? pkg.license : undefined;
    if (!pkg.name || !pkg.version || !license) throw new Error(`bundle: ${dir}/package.json must name the package, its version and its license (SPDX)`);
    let files = readdirSync(join(root, dir)).filter((f) => LICENSE_FILE.test(f)).sort()
      .map((name) => ({ name, inPackage: true, text: readFileSync(join(root, dir, name), 'utf8') }));
    if (files.length === 0) {
      if (license !== 'Apache-2.0') throw new Error(`bundle: ${pkg.name}@${pkg.version} ships no license file and declares '${license}': add its text by hand`);
      files = [{ name: 'no license file: the Apache-2.0 text it declares', inPackage: false, text: readFileSync(join(root, 'LICENSE'), 'utf8') }];
    }
    return { name: pkg.name, version: pkg.version, license, path: dir, files };
  }).sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version) || a.path.localeCompare(b.path));
}

/** The texts, each distinct text once, headed by the packages (and their files) it came from. */
function thirdPartyLicenses(packages) {
  const texts = new Map();
  for (const p of packages) {
    for (const f of p.files) {
      const from = texts.get(f.text) ?? [];
      from.push(`${p.name}@${p.version} (${f.name})`);
      texts.set(f.text, from);
    }
  }
  const numbers = new Map([...texts.keys()].map((text, i) => [text, i + 1]));
  const lines = [
    'Third-party software in index.js, the AWS Lambda handler of cdk-chap-credentials, bundled by esbuild.',
    'The same list, machine-readable: bundled-packages.json.',
    '',
    ...packages.map((p) => `${p.name}@${p.version}  ${p.license}  text ${[...new Set(p.files.map((f) => numbers.get(f.text)))].join(', ')}`),
  ];
  for (const [text, from] of texts) {
    lines.push('', `${'='.repeat(100)}`, `text ${numbers.get(text)}: ${from.join(', ')}`, `${'='.repeat(100)}`, '', text.trimEnd());
  }
  return `${lines.join('\n')}\n`;
}
