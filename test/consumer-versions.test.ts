/**
 * The published package at both ends of the aws-cdk-lib range it declares: the minimum of the peer range
 * (`aws-cdk-lib-min`, an npm alias of that version) and the newest version we pin (`aws-cdk-lib`), both installed by
 * `npm ci` from the lockfile. The package is packed once (`npm pack`, the same tarball npm publishes) and extracted
 * into a consumer folder per end, whose node_modules links `aws-cdk-lib` to that end's install and `constructs`, and
 * holds copies of cdk-nag. Copies and the extracted package are real folders, so everything resolves `aws-cdk-lib`
 * through the consumer's node_modules, as in an app's install (the report says which aws-cdk-lib each one loaded).
 * test/consumer-app.cjs, in a child Node process, synthesizes two stacks and runs the rule packs.
 */
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { npmPack } from './jsii/assemblies';

const ROOT = path.join(__dirname, '..');
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const installed = (name: string) => JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8'));

interface End {
  readonly name: string;
  /** Where `npm ci` installed this end's aws-cdk-lib. */
  readonly alias: string;
  readonly version: string;
  /** cdk-nag generations the consumer runs at this end: installed under `module`, copied from our `from`. */
  readonly packs: ReadonlyArray<{ module: string; from: string; generation: number }>;
}

/** The minimum of our peer range, `^x.y.z`, is the version `aws-cdk-lib-min` installs. cdk-nag 3 needs 2.257 or later. */
const MINIMUM: End = {
  name: 'minimum', alias: 'aws-cdk-lib-min', version: /^\^(\d+\.\d+\.\d+)$/.exec(PKG.peerDependencies['aws-cdk-lib'])![1],
  packs: [{ module: 'cdk-nag', from: 'cdk-nag-v2', generation: 2 }],
};
const NEWEST: End = {
  name: 'newest', alias: 'aws-cdk-lib', version: PKG.devDependencies['aws-cdk-lib'],
  packs: [{ module: 'cdk-nag-v2', from: 'cdk-nag-v2', generation: 2 }, { module: 'cdk-nag', from: 'cdk-nag', generation: 3 }],
};
const ENDS = [MINIMUM, NEWEST];

interface TemplateResource {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: Record<string, unknown>;
}

interface Report {
  node: string;
  awsCdkLib: string;
  constructs: string;
  loaded: Record<string, string>;
  templates: Record<string, { Resources: Record<string, TemplateResource> }>;
  findings: Record<string, { ours: string[]; control: string[] }>;
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-consumers-'));
const reports = new Map<End, Report>();

beforeAll(async () => {
  // The tarball npm would publish, from the build `npm test` just made (no pack script runs: the build is done).
  const tarball = await npmPack(ROOT, work);
  const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
  expect(files).toEqual(expect.arrayContaining(['package/assets/handler/index.js', 'package/lib/index.js', 'package/lib/compat.js']));
  execFileSync('tar', ['xzf', tarball, '-C', work]); // npm tarballs hold one folder, package/

  await Promise.all(ENDS.map(async (end) => {
    const consumer = path.join(work, end.name);
    const modules = path.join(consumer, 'node_modules');
    fs.mkdirSync(modules, { recursive: true });
    fs.cpSync(path.join(work, 'package'), path.join(modules, 'cdk-chap-credentials'), { recursive: true });
    fs.symlinkSync(path.join(ROOT, 'node_modules', end.alias), path.join(modules, 'aws-cdk-lib'), 'dir');
    fs.symlinkSync(path.join(ROOT, 'node_modules', 'constructs'), path.join(modules, 'constructs'), 'dir');
    for (const pack of end.packs) fs.cpSync(path.join(ROOT, 'node_modules', pack.from), path.join(modules, pack.module), { recursive: true });
    fs.copyFileSync(path.join(__dirname, 'consumer-app.cjs'), path.join(consumer, 'consumer-app.cjs'));
    const packs = end.packs.map(({ module, generation }) => ({ module, generation }));
    const { stdout } = await promisify(execFile)(process.execPath, ['consumer-app.cjs', JSON.stringify(packs)], {
      cwd: consumer, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024,
    });
    reports.set(end, JSON.parse(stdout));
  }));
}, 120_000);

afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

/** The resources of one stack of an end's template, by logical id. */
const resources = (end: End, stack: string) => reports.get(end)!.templates[stack].Resources;
const ofType = (end: End, stack: string, type: string) => Object.entries(resources(end, stack)).filter(([, r]) => r.Type === type);
const nagRules = (resource: TemplateResource) =>
  ((resource.Metadata?.cdk_nag as { rules_to_suppress?: Array<{ id: string }> } | undefined)?.rules_to_suppress ?? []).map((r) => r.id);

describe.each(ENDS)('a consumer app on the $name aws-cdk-lib we declare', (end) => {
  test('loads that aws-cdk-lib everywhere: in the app, in our package and in cdk-nag', () => {
    const report = reports.get(end)!;
    expect(report.awsCdkLib).toBe(end.version);
    expect(installed(end.alias).version).toBe(end.version);
    const expected = fs.realpathSync(path.join(ROOT, 'node_modules', end.alias));
    expect(report.loaded).toEqual(Object.fromEntries(['app', 'ours', ...end.packs.map((p) => p.module)].map((k) => [k, expected])));
  });

  test('synthesizes the resources users rely on, with the handler on nodejs24.x', () => {
    const types = (stack: string) => Object.values(resources(end, stack)).map((r) => r.Type).sort();
    expect(types('Keyed')).toEqual([
      'AWS::Events::Rule', 'AWS::IAM::Policy', 'AWS::IAM::Role', 'AWS::IAM::Role', 'AWS::KMS::Key', 'AWS::Lambda::Function',
      'AWS::Lambda::Permission', 'AWS::Logs::LogGroup', 'AWS::SecretsManager::Secret', 'AWS::SecretsManager::Secret',
      'AWS::SecretsManager::Secret', 'Custom::StorageGatewayChapCredentials', 'Custom::StorageGatewayChapCredentials',
    ]);
    expect(types('Unkeyed')).toEqual([
      'AWS::IAM::Role', 'AWS::Lambda::Function', 'AWS::Logs::LogGroup', 'AWS::SecretsManager::Secret', 'AWS::SecretsManager::Secret',
      'Custom::StorageGatewayChapCredentials',
    ]);
    for (const stack of ['Keyed', 'Unkeyed']) {
      const [[, fn]] = ofType(end, stack, 'AWS::Lambda::Function');
      expect(fn.Properties).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], Handler: 'index.handler', Timeout: 120 });
    }
    // A managing construct works on every aws-cdk-lib of the range: gateway writes on exactly its target, one-way CHAP.
    const [[, managedRole]] = ofType(end, 'Managed', 'AWS::IAM::Role');
    const statements = (managedRole.Properties!.Policies as { PolicyDocument: { Statement: { Sid: string }[] } }[])[0].PolicyDocument.Statement;
    expect(statements.find((st) => st.Sid === 'ManageChapCredentials')).toEqual({
      Sid: 'ManageChapCredentials', Effect: 'Allow', Action: ['storagegateway:UpdateChapCredentials', 'storagegateway:DeleteChapCredentials'],
      Resource: 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:vol4',
    });
    expect(ofType(end, 'Managed', 'Custom::StorageGatewayChapCredentials')[0][1].Properties).toMatchObject({ Manage: 'one-way' });
    // The customer key encrypts the log group of its stack; without one, CloudWatch Logs' own encryption.
    expect(ofType(end, 'Keyed', 'AWS::Logs::LogGroup')[0][1].Properties).toEqual({ KmsKeyId: { 'Fn::GetAtt': ['Key961B73FD', 'Arn'] }, RetentionInDays: 30 });
    expect(ofType(end, 'Unkeyed', 'AWS::Logs::LogGroup')[0][1].Properties).toEqual({ RetentionInDays: 30 });
  });

  test('grants exactly the IAM statements we document: the provider role, the host, the customer key', () => {
    const [[, role]] = ofType(end, 'Keyed', 'AWS::IAM::Role').filter(([id]) => id.startsWith('ChapCredentialsProviderRole'));
    const viaSecretsManager = { 'Fn::Join': ['', ['secretsmanager.', { Ref: 'AWS::Region' }, '.amazonaws.com']] };
    expect(role.Properties!.Policies).toEqual([{
      PolicyName: 'ChapCredentials',
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          { Sid: 'DescribeChapCredentials', Effect: 'Allow', Action: 'storagegateway:DescribeChapCredentials', Resource: [
            'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:vol1',
            'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:vol2',
          ] },
          { Sid: 'WriteChapSecrets', Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'], Resource: [
            { Ref: 'ChapTargetSecret48B3B71C' }, { Ref: 'ChapInitiatoriqn199405comredhatdbhost37F3EE77' }, { Ref: 'PlainTargetSecret1F58957B' },
          ] },
          { Sid: 'WriteLogs', Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'],
            Resource: { 'Fn::GetAtt': ['ChapCredentialsProviderLogGroupE0865C9B', 'Arn'] } },
          { Sid: 'UseChapSecretKeysThroughSecretsManager', Effect: 'Allow', Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
            Resource: { 'Fn::GetAtt': ['Key961B73FD', 'Arn'] }, Condition: { StringEquals: { 'kms:ViaService': viaSecretsManager } } },
        ],
      },
    }]);
    const [[, hostPolicy]] = ofType(end, 'Keyed', 'AWS::IAM::Policy');
    expect((hostPolicy.Properties!.PolicyDocument as { Statement: unknown[] }).Statement).toEqual([
      { Effect: 'Allow', Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'], Resource: { Ref: 'ChapInitiatoriqn199405comredhatdbhost37F3EE77' } },
    ]);
    // The key's policy: the account (the default), Secrets Manager for the account's principals, CloudWatch Logs for
    // the log group, and the host, which decrypts its secret only through Secrets Manager.
    const [[, key]] = ofType(end, 'Keyed', 'AWS::KMS::Key');
    const account = { AWS: { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::', { Ref: 'AWS::AccountId' }, ':root']] } };
    const onlyViaSecretsManager = { StringEquals: { 'kms:ViaService': viaSecretsManager } };
    expect((key.Properties!.KeyPolicy as { Statement: unknown[] }).Statement).toEqual([
      { Effect: 'Allow', Principal: account, Action: 'kms:*', Resource: '*' },
      { Effect: 'Allow', Principal: account, Action: ['kms:Decrypt', 'kms:Encrypt', 'kms:ReEncrypt*', 'kms:GenerateDataKey*'], Resource: '*',
        Condition: onlyViaSecretsManager },
      { Effect: 'Allow', Principal: account, Action: ['kms:CreateGrant', 'kms:DescribeKey'], Resource: '*', Condition: onlyViaSecretsManager },
      { Sid: 'ChapCredentialsLogGroup', Effect: 'Allow', Principal: { Service: { 'Fn::Join': ['', ['logs.', { Ref: 'AWS::Region' }, '.amazonaws.com']] } },
        Action: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'], Resource: '*',
        Condition: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': { 'Fn::Join': ['', [
          'arn:', { Ref: 'AWS::Partition' }, ':logs:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':log-group:*',
        ]] } } } },
      { Effect: 'Allow', Principal: { AWS: { 'Fn::GetAtt': ['HostB4E45AD7', 'Arn'] } }, Action: 'kms:Decrypt', Resource: '*', Condition: onlyViaSecretsManager },
    ]);
  });

  test('carries the cdk-nag 2 suppressions on each of our L1 resources', () => {
    const rules = (stack: string) => Object.fromEntries(Object.entries(resources(end, stack))
      .filter(([, r]) => nagRules(r).length).map(([id, r]) => [id, nagRules(r)]));
    const secret = ['AwsSolutions-SMG4', 'NIST.800.53.R5-SecretsManagerRotationEnabled'];
    const unkeyedSecret = [...secret, 'NIST.800.53.R5-SecretsManagerUsingKMSKey'];
    const provider = {
      ChapCredentialsProviderRole7C3EB4EE: ['NIST.800.53.R5-IAMNoInlinePolicy'],
      ChapCredentialsProviderHandlerD7B6ED57: ['NIST.800.53.R5-LambdaConcurrency', 'NIST.800.53.R5-LambdaDLQ', 'NIST.800.53.R5-LambdaInsideVPC'],
    };
    expect(rules('Keyed')).toEqual({
      ChapTargetSecret48B3B71C: secret, ChapInitiatoriqn199405comredhatdbhost37F3EE77: secret, PlainTargetSecret1F58957B: unkeyedSecret, ...provider,
    });
    expect(rules('Unkeyed')).toEqual({
      ChapTargetSecret48B3B71C: unkeyedSecret, ChapInitiatoriqn199405comredhatdbhost37F3EE77: unkeyedSecret, ...provider,
      ChapCredentialsProviderLogGroupE0865C9B: ['NIST.800.53.R5-CloudWatchLogGroupEncrypted'],
    });
  });

  test.each(end.packs.map((p) => [`cdk-nag ${p.generation}`, p.module]))(
    '%s (AwsSolutions, NIST 800-53 rev 5) finds nothing in our resources, and reports a secret of the app (negative control)',
    (_generation, module) => {
      const { ours, control } = reports.get(end)!.findings[module];
      expect(ours).toEqual(['NIST.800.53.R5-IAMNoInlinePolicy at Keyed/Host/DefaultPolicy/Resource']); // the app's host role
      expect(control).toEqual([
        'AwsSolutions-SMG4 at Bare/Plain/Resource',
        'NIST.800.53.R5-SecretsManagerRotationEnabled at Bare/Plain/Resource',
        'NIST.800.53.R5-SecretsManagerUsingKMSKey at Bare/Plain/Resource',
      ]);
    });
});

test('both ends synthesize the same templates (aws-cdk-lib changes nothing in them between the two)', () => {
  expect(reports.get(MINIMUM)!.templates).toEqual(reports.get(NEWEST)!.templates);
});

test('the peer ranges admit both ends, constructs is what the minimum aws-cdk-lib asks (the newest asks a subset), cdk-nag 3 needs newer', () => {
  const caret = (range: string) => /^\^(\d+)\.(\d+)\.(\d+)$/.exec(range)!.slice(1).map(Number);
  const atLeast = (version: number[], floor: number[]) => version[0] === floor[0] && (version[1] - floor[1] || version[2] - floor[2]) >= 0;
  const [min, newest] = [installed('aws-cdk-lib-min'), installed('aws-cdk-lib')];
  expect(atLeast(caret(`^${newest.version}`), caret(PKG.peerDependencies['aws-cdk-lib']))).toBe(true);
  expect(PKG.peerDependencies.constructs).toBe(min.peerDependencies.constructs);
  expect(atLeast(caret(newest.peerDependencies.constructs), caret(PKG.peerDependencies.constructs))).toBe(true);
  // cdk-nag 2 admits our whole range; cdk-nag 3 admits only newer aws-cdk-lib than our minimum, hence its absence there.
  const [nag2, nag3] = [installed('cdk-nag-v2'), installed('cdk-nag')];
  expect([nag2.version.split('.')[0], nag3.version.split('.')[0]]).toEqual(['2', '3']);
  expect(atLeast(caret(PKG.peerDependencies['aws-cdk-lib']), caret(nag2.peerDependencies['aws-cdk-lib']))).toBe(true);
  expect(atLeast(caret(PKG.peerDependencies['aws-cdk-lib']), caret(nag3.peerDependencies['aws-cdk-lib']))).toBe(false);
  expect(atLeast(caret(`^${newest.version}`), caret(nag3.peerDependencies['aws-cdk-lib']))).toBe(true);
  // The constructs both ends ran with satisfies both aws-cdk-lib versions' ranges.
  for (const end of ENDS) {
    expect(atLeast(caret(`^${reports.get(end)!.constructs}`), caret(min.peerDependencies.constructs))).toBe(true);
    expect(atLeast(caret(`^${reports.get(end)!.constructs}`), caret(newest.peerDependencies.constructs))).toBe(true);
  }
});

test("the consumer ran on this machine's Node.js, which our engines range admits", () => {
  const floor = Number(/^>=(\d+)$/.exec(PKG.engines.node)![1]);
  for (const end of ENDS) expect(Number(reports.get(end)!.node.split('.')[0])).toBeGreaterThanOrEqual(floor);
});
