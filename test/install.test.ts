/**
 * README "Install", as a TypeScript user does it before publication: `npm pack` gives a tarball, a fresh app installs
 * it with `npm install ./cdk-chap-credentials-<version>.tgz` beside aws-cdk-lib and constructs, compiles its app with
 * tsc and runs `cdk synth`. Offline: the app's aws-cdk-lib and constructs come from npm's cache (where `npm ci` of this
 * repository put them) through a lockfile holding exactly our lockfile's entries for them, and npm runs with
 * `--offline`; npm would fetch aws-cdk-lib's registry document to check our peer range while adding the tarball, so
 * that step runs with `--legacy-peer-deps` and `npm ls` checks the peer ranges afterwards. The CDK CLI is our
 * devDependency, with notices, version reporting and telemetry off.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { npmPack } from './jsii/assemblies';

const ROOT = path.join(__dirname, '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const LOCK = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));
const TARGET = 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:myvolume';
const HOST = 'iqn.1994-05.com.redhat:db-host';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-install-'));
const app = path.join(work, 'app');
afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

const run = async (command: string, args: string[], cwd = app) => {
  const env = { ...process.env, CDK_DISABLE_CLI_TELEMETRY: 'true', npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false' };
  try {
    return (await promisify(execFile)(command, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })).stdout;
  } catch (e) {
    const { stdout, stderr } = e as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed:\n${stdout ?? ''}\n${stderr ?? ''}`, { cause: e });
  }
};

/** Our lockfile's entries for `names` and everything they need (their own dependencies, bundled or not), same paths. */
function lockClosure(names: string[]): Record<string, Record<string, unknown>> {
  const packages = LOCK.packages as Record<string, { dependencies?: Record<string, string>; peerDependencies?: Record<string, string> }>;
  const resolve = (from: string, name: string): string | undefined => {
    for (let base = from; ; base = base.slice(0, Math.max(0, base.lastIndexOf('/node_modules/')))) {
      const candidate = `${base ? `${base}/` : ''}node_modules/${name}`;
      if (packages[candidate]) return candidate;
      if (!base) return undefined;
    }
  };
  const seen = new Map<string, Record<string, unknown>>();
  const visit = (at: string) => {
    if (seen.has(at)) return;
    // Dev flags are about our tree: in the app these are production dependencies.
    const entry = Object.fromEntries(Object.entries(packages[at]).filter(([key]) => key !== 'dev' && key !== 'devOptional'));
    seen.set(at, entry);
    for (const dep of Object.keys({ ...packages[at].dependencies, ...packages[at].peerDependencies })) {
      const found = resolve(at, dep);
      if (found) visit(found);
    }
  };
  names.forEach((n) => visit(`node_modules/${n}`));
  return Object.fromEntries([...seen].sort(([a], [b]) => a.localeCompare(b)));
}

let tarball: string;
let template: { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
let assetDir: string;

beforeAll(async () => {
  // The tarball `npm pack` makes; the build `npm test` just made is packed as it is (its prepack finds it fresh).
  tarball = await npmPack(ROOT, work);
  fs.mkdirSync(app);
  const dependencies = { 'aws-cdk-lib': LOCK.packages['node_modules/aws-cdk-lib'].version, 'constructs': LOCK.packages['node_modules/constructs'].version };
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'storage-app', version: '1.0.0', private: true, dependencies }, null, 2));
  fs.writeFileSync(path.join(app, 'package-lock.json'), JSON.stringify({
    name: 'storage-app', version: '1.0.0', lockfileVersion: 3, requires: true,
    packages: { '': { name: 'storage-app', version: '1.0.0', dependencies }, ...lockClosure(Object.keys(dependencies)) },
  }, null, 2));
  await run('npm', ['ci', '--offline']);
  await run('npm', ['install', '--offline', '--legacy-peer-deps', `./${path.relative(app, tarball)}`]);

  // A TypeScript app as `cdk init` would make it, compiled with tsc, then `cdk synth`.
  fs.writeFileSync(path.join(app, 'app.ts'), `
import { App, CfnOutput, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { ChapCredentials } from 'cdk-chap-credentials';

const app = new App();
const stack = new Stack(app, 'Storage');
const chap = new ChapCredentials(stack, 'Chap', { targetArn: '${TARGET}', initiators: ['${HOST}'] });
const host = new iam.Role(stack, 'Host', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
chap.grantReadInitiator('${HOST}', host);
new CfnOutput(stack, 'Count', { value: Token.asString(chap.initiatorCount) });
`);
  fs.writeFileSync(path.join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { target: 'ES2022', module: 'commonjs', moduleResolution: 'node', strict: true, skipLibCheck: true,
      typeRoots: [path.join(ROOT, 'node_modules', '@types')], types: ['node'] },
    files: ['app.ts'],
  }));
  fs.writeFileSync(path.join(app, 'cdk.json'), JSON.stringify({ app: 'node app.js', notices: false, context: { 'cli-telemetry': false } }));
  await run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.']);
  await run(path.join(ROOT, 'node_modules', '.bin', 'cdk'), ['synth', '--quiet', '--no-notices', '--no-version-reporting', '-o', 'cdk.out']);
  template = JSON.parse(fs.readFileSync(path.join(app, 'cdk.out', 'Storage.template.json'), 'utf8'));
  const assets = JSON.parse(fs.readFileSync(path.join(app, 'cdk.out', 'Storage.assets.json'), 'utf8'));
  const handler = Object.values<{ source: { path: string; packaging: string } }>(assets.files).find((a) => a.source.packaging === 'zip')!;
  assetDir = path.join(app, 'cdk.out', handler.source.path);
}, 300_000);

test('npm installs the packed tarball into a fresh app, beside the aws-cdk-lib and constructs its peer ranges admit', async () => {
  const installed = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', 'cdk-chap-credentials', 'package.json'), 'utf8'));
  expect([installed.name, installed.version]).toEqual([PKG.name, PKG.version]);
  const appPkg = JSON.parse(fs.readFileSync(path.join(app, 'package.json'), 'utf8'));
  expect(appPkg.dependencies['cdk-chap-credentials']).toBe(`file:${path.relative(app, tarball)}`);
  // `npm ls` exits non-zero on a missing or invalid peer dependency.
  const tree = JSON.parse(await run('npm', ['ls', '--all', '--json', '--offline']));
  expect(tree.problems ?? []).toEqual([]);
  expect(tree.dependencies['cdk-chap-credentials'].version).toBe(PKG.version);
  // The app loads our package and aws-cdk-lib from its own node_modules, never from this repository.
  const resolved = JSON.parse(await run(process.execPath, ['-p', 'JSON.stringify([require.resolve("cdk-chap-credentials"), require.resolve("aws-cdk-lib")])']));
  expect(resolved).toEqual([
    path.join(fs.realpathSync(app), 'node_modules', 'cdk-chap-credentials', 'lib', 'index.js'),
    path.join(fs.realpathSync(app), 'node_modules', 'aws-cdk-lib', 'index.js'),
  ]);
}, 60_000); // npm ls and a Node.js process: seconds on a busy machine

test('the app compiles with tsc against the package types and `cdk synth` synthesizes the construct', () => {
  const types = Object.values(template.Resources).map((r) => r.Type).sort();
  expect(types).toEqual([
    'AWS::IAM::Policy', 'AWS::IAM::Role', 'AWS::IAM::Role', 'AWS::Lambda::Function', 'AWS::Logs::LogGroup',
    'AWS::SecretsManager::Secret', 'AWS::SecretsManager::Secret', 'Custom::StorageGatewayChapCredentials',
  ]);
  const [chap] = Object.values(template.Resources).filter((r) => r.Type === 'Custom::StorageGatewayChapCredentials');
  expect(chap.Properties).toMatchObject({ TargetArn: TARGET });
  const [fn] = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
  expect(fn.Properties).toMatchObject({ Runtime: 'nodejs24.x', Handler: 'index.handler' });
});

test("the Lambda asset cdk synth stages is the package's handler folder: the bundle, its license texts and package list", () => {
  const shipped = path.join(app, 'node_modules', 'cdk-chap-credentials', 'assets', 'handler');
  const files = ['THIRD-PARTY-LICENSES.txt', 'bundled-packages.json', 'index.js'];
  expect(fs.readdirSync(assetDir).sort()).toEqual(files);
  for (const file of files) {
    const staged = fs.readFileSync(path.join(assetDir, file));
    expect([file, staged.equals(fs.readFileSync(path.join(shipped, file)))]).toEqual([file, true]);
    expect([file, staged.equals(fs.readFileSync(path.join(ROOT, 'assets', 'handler', file)))]).toEqual([file, true]);
  }
});
