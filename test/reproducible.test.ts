/** Reproducibility: the same sources give the same handler bytes, templates and asset hashes; the lockfile pins all. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { ChapCredentials } from '../lib';
import { DOC_TARGET_ARN, HOST_A, OTHER_TARGET_ARN } from './fixtures';

const ROOT = path.join(__dirname, '..');
const temp: string[] = [];
const tempDir = () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-repro-'));
  temp.push(dir);
  return dir;
};
afterAll(() => temp.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

test('two clean builds of the handler give byte-identical assets (bundle and license files), equal to the one the construct ships', () => {
  const [a, b] = [tempDir(), tempDir()];
  for (const dir of [a, b]) execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'bundle.mjs'), dir], { cwd: ROOT });
  // No source map or metafile beside the bundle: its license texts and the list of what it bundles.
  const files = ['THIRD-PARTY-LICENSES.txt', 'bundled-packages.json', 'index.js'];
  expect(fs.readdirSync(a).sort()).toEqual(files);
  expect(fs.readdirSync(path.join(ROOT, 'assets', 'handler')).sort()).toEqual(files);
  for (const file of files) {
    const first = fs.readFileSync(path.join(a, file));
    expect([file, first.equals(fs.readFileSync(path.join(b, file)))]).toEqual([file, true]);
    expect([file, first.equals(fs.readFileSync(path.join(ROOT, 'assets', 'handler', file)))]).toEqual([file, true]);
  }
});

test('two synths of the same app give identical templates and asset hashes', () => {
  const synth = () => {
    const app = new App({ outdir: tempDir() });
    const stack = new Stack(app, 'Repro');
    const key = new kms.Key(stack, 'Key');
    new ChapCredentials(stack, 'A', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A], encryptionKey: key });
    new ChapCredentials(stack, 'B', { targetArn: OTHER_TARGET_ARN });
    const artifact = app.synth().getStackByName('Repro');
    const assets = JSON.parse(fs.readFileSync(path.join(app.outdir, 'Repro.assets.json'), 'utf8'));
    return { template: fs.readFileSync(artifact.templateFullPath, 'utf8'), hashes: Object.keys(assets.files).sort() };
  };
  const one = synth();
  const two = synth();
  expect(two.template).toBe(one.template);
  expect(two.hashes).toEqual(one.hashes);
  expect(one.hashes).toHaveLength(2); // the handler bundle and the template
});

/** A devDependency's spec: an exact `x.y.z` of `name`, or an npm alias `npm:<package>@x.y.z` installed under `name`. */
function exactSpec(name: string, spec: string): { packageName: string; version: string } | undefined {
  const match = /^(?:npm:((?:@[a-z0-9-~][a-z0-9-._~]*\/)?[a-z0-9-~][a-z0-9-._~]*)@)?(\d+\.\d+\.\d+)$/.exec(spec);
  return match ? { packageName: match[1] ?? name, version: match[2] } : undefined;
}

test('an exact spec is x.y.z or npm:<package>@x.y.z; ranges, tags and aliases to a range are not', () => {
  expect(exactSpec('jest', '30.5.2')).toEqual({ packageName: 'jest', version: '30.5.2' });
  expect(exactSpec('aws-cdk-lib-min', 'npm:aws-cdk-lib@2.200.0')).toEqual({ packageName: 'aws-cdk-lib', version: '2.200.0' });
  expect(exactSpec('x', 'npm:@scope/pkg@1.2.3')).toEqual({ packageName: '@scope/pkg', version: '1.2.3' });
  for (const loose of ['^30.5.2', '~1.2.3', '1.2', 'latest', '1.2.3-rc.1', 'npm:aws-cdk-lib@^2.200.0', 'npm:aws-cdk-lib', 'npm:aws-cdk-lib@latest']) {
    expect(exactSpec('x', loose)).toBeUndefined();
  }
});

test('the lockfile pins every package, and package.json names exact versions (aliases too)', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  for (const [name, spec] of Object.entries<string>(pkg.devDependencies)) {
    expect({ name, spec, exact: exactSpec(name, spec) !== undefined }).toEqual({ name, spec, exact: true });
  }
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
  expect(lock.lockfileVersion).toBe(3);
  const unpinned = Object.entries<{ version?: string; integrity?: string; link?: boolean; inBundle?: boolean }>(lock.packages)
    .filter(([p, entry]) => p !== '' && !entry.link && !entry.inBundle && (!entry.version || !entry.integrity)) // bundled ones ride on their parent's integrity
    .map(([p]) => p);
  expect(unpinned).toEqual([]);
  for (const [name, spec] of Object.entries<string>(pkg.devDependencies)) {
    const { packageName, version } = exactSpec(name, spec)!;
    const entry = lock.packages[`node_modules/${name}`];
    // The lockfile names the real package of an alias (`name`); a plain dependency's entry has no name of its own.
    expect({ name, version: entry.version, package: entry.name ?? name }).toEqual({ name, version, package: packageName });
    expect(lock.packages[''].devDependencies[name]).toBe(spec);
  }
});
