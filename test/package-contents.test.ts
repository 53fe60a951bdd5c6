/** What `npm pack` ships: the compiled library, the assembly, the handler bundle and the docs; nothing else. */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, readPackageJson } from './jsii-tools';

interface PackResult { readonly files: { readonly path: string }[] }

const packed = (): string[] => {
  const [result]: PackResult[] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'],
  }));
  return result.files.map((f) => f.path).sort();
};

test('the package holds exactly the compiled library, its host scripts, .jsii, the handler bundle with its license files, README, CHANGELOG, LICENSE, API.md, package.json', () => {
  // Each library source ships as jsii's JavaScript and declarations, never as TypeScript.
  const library = fs.readdirSync(path.join(ROOT, 'lib')).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
    .flatMap((f) => [`lib/${f.replace(/\.ts$/, '.js')}`, `lib/${f.replace(/\.ts$/, '.d.ts')}`]);
  expect(library).toContain('lib/chap-credentials.js');
  const files = packed();
  expect(files).toEqual([
    '.jsii', 'API.md', 'CHANGELOG.md', 'LICENSE', 'README.md', 'assets/handler/index.js', ...library, 'package.json',
    // What the bundle carries from others (scripts/bundle.mjs): their license texts and the list of bundled packages.
    'assets/handler/THIRD-PARTY-LICENSES.txt', 'assets/handler/bundled-packages.json',
    // The scripts wireHost renders into boot commands, read when an app synthesizes.
    'lib/host/connect-linux.sh', 'lib/host/connect-linux.body.gz.b64', 'lib/host/connect-windows.ps1',
    'lib/host/rotate-windows.ps1', 'lib/host/rotate-windows.body.gz.b64',
  ].sort());
  // Said once more as rules, so a future entry of `files` cannot quietly widen the package.
  expect(files.filter((f) => /^(test|lambda|local|bin|bench|scripts|rosetta|dist|cdk\.out)\//.test(f))).toEqual([]);
  expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
  expect(files.filter((f) => /tsconfig|\.tabl\.json|\.tsbuildinfo/.test(f))).toEqual([]);
});

test('LICENSE is the Apache License 2.0, the license package.json and the assembly declare', () => {
  const license = fs.readFileSync(path.join(ROOT, 'LICENSE'), 'utf8');
  // The standard text, as the Apache Software Foundation publishes it (jsii ships it unmodified).
  expect(license).toBe(fs.readFileSync(path.join(ROOT, 'node_modules', 'jsii', 'LICENSE'), 'utf8'));
  expect(license).toMatch(/^\s+Apache License\n\s+Version 2\.0, January 2004\n\s+http:\/\/www\.apache\.org\/licenses\/\n/);
  expect(license).toContain('END OF TERMS AND CONDITIONS');
  expect(readPackageJson().license).toBe('Apache-2.0');
  expect(JSON.parse(fs.readFileSync(path.join(ROOT, '.jsii'), 'utf8')).license).toBe('Apache-2.0');
});
