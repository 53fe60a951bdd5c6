/**
 * The handler asset says what it bundles: bundled-packages.json lists every third-party package whose code esbuild put
 * into index.js, with the version installed in node_modules and its declared license, and THIRD-PARTY-LICENSES.txt
 * carries each one's license and notice files. Checked against esbuild's own record of the bundle's inputs (the
 * metafile of a build made here), walked independently of scripts/bundle.mjs.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..');
const ASSET = path.join(ROOT, 'assets', 'handler');

interface Listed { name: string; version: string; license: string; path: string; licenseFiles: string[] }
interface Metafile { outputs: Record<string, { inputs: Record<string, { bytesInOutput: number }> }> }

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-licenses-'));
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

let metafile: Metafile;
beforeAll(() => {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'bundle.mjs'), work, '--metafile'], { cwd: ROOT });
  metafile = JSON.parse(fs.readFileSync(path.join(work, 'metafile.json'), 'utf8'));
}, 120_000);

const listed = (): Listed[] => JSON.parse(fs.readFileSync(path.join(ASSET, 'bundled-packages.json'), 'utf8')).packages;
const thirdParty = () => fs.readFileSync(path.join(ASSET, 'THIRD-PARTY-LICENSES.txt'), 'utf8');

/** From the metafile: each folder under node_modules (the innermost one) with code in the output. */
function packagesInBundle(): string[] {
  const folders = new Set<string>();
  for (const output of Object.values(metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const parts = input.split('/');
      const at = parts.lastIndexOf('node_modules');
      if (at < 0 || bytesInOutput === 0) continue;
      const width = parts[at + 1].startsWith('@') ? 3 : 2;
      folders.add(parts.slice(0, at + width).join('/'));
    }
  }
  return [...folders].sort();
}

test('the build made here bundles the same code as the shipped asset, from the same inputs', () => {
  expect(fs.readFileSync(path.join(work, 'index.js')).equals(fs.readFileSync(path.join(ASSET, 'index.js')))).toBe(true);
  expect(fs.readFileSync(path.join(work, 'bundled-packages.json'), 'utf8')).toBe(fs.readFileSync(path.join(ASSET, 'bundled-packages.json'), 'utf8'));
  // Our own sources are inputs too, and never listed as third-party.
  const inputs = Object.keys(Object.values(metafile.outputs)[0].inputs);
  expect(inputs).toContain('lambda/index.ts');
  expect(inputs.filter((i) => i.includes('node_modules/@aws-sdk/client-storage-gateway/')).length).toBeGreaterThan(0);
});

test('bundled-packages.json lists exactly the packages in the bundle, each with the version and license node_modules holds', () => {
  const inBundle = packagesInBundle();
  expect(inBundle).toEqual(expect.arrayContaining(['node_modules/@aws-sdk/client-secrets-manager', 'node_modules/@aws-sdk/client-storage-gateway']));
  expect(listed().map((p) => p.path).sort()).toEqual(inBundle);
  for (const folder of inBundle) {
    const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, folder, 'package.json'), 'utf8'));
    const entry = listed().find((p) => p.path === folder)!;
    expect({ folder, name: entry.name, version: entry.version, license: entry.license })
      .toEqual({ folder, name: pkg.name, version: pkg.version, license: pkg.license });
    // Every license or notice file the package ships is named, and nothing else.
    const files = fs.readdirSync(path.join(ROOT, folder)).filter((f) => /^(licen[cs]e|notice|copying)([.\-_].*)?$/i.test(f)).sort();
    expect({ folder, files: entry.licenseFiles }).toEqual({ folder, files });
  }
  // The bundle's SDK clients are the versions our lockfile pins.
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
  for (const name of ['@aws-sdk/client-secrets-manager', '@aws-sdk/client-storage-gateway', '@aws-sdk/client-cloudformation']) {
    expect(listed().find((p) => p.name === name)!.version).toBe(lock.packages[`node_modules/${name}`].version);
  }
});

test('THIRD-PARTY-LICENSES.txt carries every listed license and notice file word for word, and names every package', () => {
  const text = thirdParty();
  for (const p of listed()) {
    expect(text).toContain(`\n${p.name}@${p.version}  ${p.license}  text `);
    for (const file of p.licenseFiles) {
      expect([p.name, file, text.includes(fs.readFileSync(path.join(ROOT, p.path, file), 'utf8').trimEnd())]).toEqual([p.name, file, true]);
    }
  }
  // A package without a license file of its own (several AWS SDK packages ship none) gets the Apache-2.0 text it
  // declares, which is our LICENSE (the standard text, see package-contents.test.ts).
  const bare = listed().filter((p) => p.licenseFiles.length === 0);
  expect(bare.length).toBeGreaterThan(0);
  for (const p of bare) {
    expect(p.license).toBe('Apache-2.0');
    expect(text).toContain(`${p.name}@${p.version} (no license file: the Apache-2.0 text it declares)`);
  }
  expect(text).toContain(fs.readFileSync(path.join(ROOT, 'LICENSE'), 'utf8').trimEnd());
});
