/**
 * cdk-nag's AwsSolutions and NIST 800-53 rev 5 packs, in both generations, over the demo app and over stacks with and
 * without a customer key, refresh on and off, declared initiators or not, several constructs in one stack: zero
 * findings. cdk-nag 3 is a policy validation plugin and reads `Validations.of(x).acknowledge`; cdk-nag 2 is an Aspect
 * and reads the `cdk_nag` metadata of the L1 resource. Each acknowledgment sits on the resource it concerns, in lib/,
 * with its reason, in both forms. A negative control per generation shows each pack reports what it should.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Aspects, CfnResource, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as storagegateway from 'aws-cdk-lib/aws-storagegateway';
import * as nag3 from 'cdk-nag';
import * as nag2 from 'cdk-nag-v2';
import { ChapCredentials, ChapCredentialsProvider, ChapMode, ChapRotation } from '../lib';
import { CDK_NAG_METADATA_KEY } from '../lib/compat';
import { demoStack } from '../bin/demo-stack';
import { HOST_A, HOST_B, numberedTargetArn } from './fixtures';

const DOC_ARN_CONTEXT = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8')).context;
const RULE_ID = /^(AwsSolutions|NIST\.800\.53\.R5)-\S+?(?=:|$)/;

type Generation = 'cdk-nag 2' | 'cdk-nag 3';
const GENERATIONS: Generation[] = ['cdk-nag 2', 'cdk-nag 3'];

/** An app checked by both packs of one cdk-nag generation, attached the way each generation's README says. */
function checkedApp(generation: Generation, context: Record<string, unknown> = {}): App {
  const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'chap-nag-')), context });
  if (generation === 'cdk-nag 2') {
    Aspects.of(app).add(new nag2.AwsSolutionsChecks());
    Aspects.of(app).add(new nag2.NIST80053R5Checks());
  } else {
    Validations.of(app).addPlugins(new nag3.AwsSolutionsChecks(app), new nag3.NIST80053R5Checks(app));
  }
  return app;
}

/** Every finding of the app's packs, as `<rule id> at <construct path>`, sorted. */
function findings(app: App, generation: Generation): string[] {
  try {
    if (generation === 'cdk-nag 2') {
      // cdk-nag 2 reports errors and warnings as annotations of the resource; synth itself succeeds.
      return app.synth().stacks.flatMap((stack) => stack.messages)
        .filter((m) => (m.level === 'error' || m.level === 'warning') && RULE_ID.test(String(m.entry.data)))
        .map((m) => `${String(m.entry.data).match(RULE_ID)![0]} at ${m.id.replace(/^\//, '')}`).sort();
    }
    app.synth();
    return [];
  } catch (error) {
    // cdk-nag 3 fails the synth and writes the report to the cloud assembly.
    const reportFile = path.join(app.outdir, 'validation-report.json');
    if (generation === 'cdk-nag 2' || !fs.existsSync(reportFile)) throw error; // not a rule-pack report: fail the test with it
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8')) as {
      pluginReports: Array<{ violations: Array<{ ruleName: string; violatingConstructs: Array<{ constructPath: string }> }> }>;
    };
    return report.pluginReports.flatMap((plugin) => plugin.violations)
      .flatMap((v) => v.violatingConstructs.map((c) => `${v.ruleName} at ${c.constructPath}`)).sort();
  } finally {
    fs.rmSync(app.outdir, { recursive: true, force: true });
  }
}

/**
 * The stacks the packs run over: a name, what to build in the checked app, the app's context, and the findings expected
 * from the app's own resources (none from ours).
 */
// Every row has its three elements: jest takes a test function with more parameters than the row as asking for `done`.
const CASES: Array<[string, (app: App) => void, Record<string, unknown>, string[]]> = [
  ['the demo app', (app) => demoStack(app), DOC_ARN_CONTEXT, []],
  ['several constructs without a customer key: declared initiators and refresh on one, neither on the other', (app) => {
    const stack = new Stack(app, 'Several');
    new ChapCredentials(stack, 'A', { targetArn: numberedTargetArn(1), initiators: [HOST_A, HOST_B], refresh: Duration.hours(6) });
    new ChapCredentials(stack, 'B', { targetArn: numberedTargetArn(2) });
  }, {}, []],
  ['a customer key on two constructs of three (refresh on one), with a wired host', (app) => {
    const stack = new Stack(app, 'Keyed');
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    const a = new ChapCredentials(stack, 'A', { targetArn: numberedTargetArn(1), initiators: [HOST_A], encryptionKey: key, refresh: Duration.hours(1) });
    new ChapCredentials(stack, 'B', { targetArn: numberedTargetArn(2), encryptionKey: key });
    new ChapCredentials(stack, 'C', { targetArn: numberedTargetArn(3), initiators: [HOST_B] });
    const host = new iam.Role(stack, 'Host', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    a.wireHost({ initiatorName: HOST_A, portalAddress: '10.0.0.10', grantee: host });
  }, {}, ['NIST.800.53.R5-IAMNoInlinePolicy at Keyed/Host/DefaultPolicy/Resource']], // the grant lands in the app's own role's policy
  ['an imported customer key (the log group cannot use it) with refresh and declared initiators', (app) => {
    const stack = new Stack(app, 'Imported');
    const key = kms.Key.fromKeyArn(stack, 'Key', 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab');
    new ChapCredentials(stack, 'A', { targetArn: numberedTargetArn(1), initiators: [HOST_A], encryptionKey: key, refresh: Duration.days(1) });
  }, {}, []],
  ['managed credentials, one-way and mutual, one on a CfnVolume with a customer key, one on a target ARN without', (app) => {
    const stack = new Stack(app, 'Managed');
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    const volume = new storagegateway.CfnVolume(stack, 'Volume', {
      gatewayArn: 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B', targetName: 'db', networkInterfaceId: '10.0.0.10', volumeSizeInBytes: 150 * 1024 ** 3,
    });
    new ChapCredentials(stack, 'A', { volume, initiators: [HOST_A], manageCredentials: true, encryptionKey: key, refresh: Duration.hours(1) });
    new ChapCredentials(stack, 'B', { targetArn: numberedTargetArn(2), initiators: [HOST_B], manageCredentials: true, chapMode: ChapMode.ONE_WAY });
  }, {}, []],
  ['the initiator names exported and written to an SSM parameter', (app) => {
    const stack = new Stack(app, 'Published');
    new ChapCredentials(stack, 'A', {
      targetArn: numberedTargetArn(1), initiatorNamesExportName: 'ANames', initiatorNamesParameterName: '/iscsi/a/initiator-names',
    });
  }, {}, []],
  ['rotating managed credentials, with a customer key on one construct and without on the other', (app) => {
    const stack = new Stack(app, 'Rotating');
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    new ChapCredentials(stack, 'A', {
      targetArn: numberedTargetArn(1), initiators: [HOST_A, HOST_B], manageCredentials: true, encryptionKey: key,
      rotation: ChapRotation.every(Duration.days(30)),
    });
    new ChapCredentials(stack, 'B', {
      targetArn: numberedTargetArn(2), initiators: [HOST_A], manageCredentials: true, rotation: ChapRotation.expression('rate(12 hours)'),
    });
  }, {}, []],
  ['the demo app rotating its managed initiators (-c manage=true -c initiators=... -c rotation=30)', (app) => demoStack(app),
    { ...DOC_ARN_CONTEXT, manage: 'true', initiators: `${HOST_A},${HOST_B}`, rotation: '30' }, []],
  ['two stacks, Aspects invoked in a single pass (@aws-cdk/core:aspectStabilization off)', (app) => {
    new ChapCredentials(new Stack(app, 'One'), 'A', { targetArn: numberedTargetArn(1), initiators: [HOST_A], refresh: Duration.hours(1) });
    const two = new Stack(app, 'Two');
    new ChapCredentials(two, 'A', { targetArn: numberedTargetArn(2), encryptionKey: new kms.Key(two, 'Key', { enableKeyRotation: true }) });
  }, { '@aws-cdk/core:aspectStabilization': false }, []],
];

describe.each(GENERATIONS)('%s, AwsSolutions and NIST 800-53 rev 5', (generation) => {
  test.each(CASES)('%s: no finding from our resources', (_name, build, context, appOwn) => {
    const app = checkedApp(generation, context);
    build(app);
    expect(findings(app, generation)).toEqual(appOwn);
  });

  test('the packs are active: a secret outside the construct is reported by both (so the tests above can fail)', () => {
    const app = checkedApp(generation);
    const stack = new Stack(app, 'Bare');
    new secretsmanager.Secret(stack, 'Plain');
    new ChapCredentials(stack, 'Chap', { targetArn: numberedTargetArn(1) });
    // Exactly the plain secret's three findings: our own secret beside it breaks the same rules, acknowledged.
    expect(findings(app, generation)).toEqual([
      'AwsSolutions-SMG4 at Bare/Plain/Resource',
      'NIST.800.53.R5-SecretsManagerRotationEnabled at Bare/Plain/Resource',
      'NIST.800.53.R5-SecretsManagerUsingKMSKey at Bare/Plain/Resource',
    ]);
  });
});

test('each acknowledgment is on its L1 resource for cdk-nag 2 with the reason given to Validations for cdk-nag 3', () => {
  const app = new App();
  const stack = new Stack(app, 'Forms');
  new ChapCredentials(stack, 'A', { targetArn: numberedTargetArn(1), initiators: [HOST_A] });
  app.synth();
  const resources = stack.node.findAll().filter((c): c is CfnResource => CfnResource.isCfnResource(c));
  const forms = resources.flatMap((resource) => {
    const v2 = (resource.getMetadata(CDK_NAG_METADATA_KEY)?.rules_to_suppress ?? []) as Array<{ id: string; reason: string }>;
    // Validations records on the construct given (the L2 for role and function, the L1 otherwise).
    const scopes = [resource, resource.node.scope!];
    const v3 = Object.assign({}, ...scopes.flatMap((s) => s.node.metadata)
      .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY).map((m) => m.data)) as Record<string, string>;
    const v3ByRule = Object.fromEntries(Object.entries(v3).map(([id, reason]) => [id.replace(/^annotation::/i, ''), reason]));
    return v2.map((rule) => ({ path: resource.node.path, id: rule.id, same: v3ByRule[rule.id] === rule.reason && rule.reason.length >= 10 }));
  });
  expect(forms.map((f) => `${f.path} ${f.id}`).sort()).toEqual([
    'Forms/A/Initiator-iqn.1991-05.com.microsoft:computername.domain.example.com/Resource AwsSolutions-SMG4',
    'Forms/A/Initiator-iqn.1991-05.com.microsoft:computername.domain.example.com/Resource NIST.800.53.R5-SecretsManagerRotationEnabled',
    'Forms/A/Initiator-iqn.1991-05.com.microsoft:computername.domain.example.com/Resource NIST.800.53.R5-SecretsManagerUsingKMSKey',
    'Forms/A/TargetSecret/Resource AwsSolutions-SMG4',
    'Forms/A/TargetSecret/Resource NIST.800.53.R5-SecretsManagerRotationEnabled',
    'Forms/A/TargetSecret/Resource NIST.800.53.R5-SecretsManagerUsingKMSKey',
    'Forms/ChapCredentialsProvider/Handler/Resource NIST.800.53.R5-LambdaConcurrency',
    'Forms/ChapCredentialsProvider/Handler/Resource NIST.800.53.R5-LambdaDLQ',
    'Forms/ChapCredentialsProvider/Handler/Resource NIST.800.53.R5-LambdaInsideVPC',
    'Forms/ChapCredentialsProvider/LogGroup/Resource NIST.800.53.R5-CloudWatchLogGroupEncrypted',
    'Forms/ChapCredentialsProvider/Role/Resource NIST.800.53.R5-IAMNoInlinePolicy',
  ]);
  expect(forms.filter((f) => !f.same)).toEqual([]);
});

test('rotated initiator secrets pass the rotation rules unacknowledged; the target secret and the credential key say why they do not rotate', () => {
  const app = new App();
  const stack = new Stack(app, 'Rotated');
  new ChapCredentials(stack, 'A', {
    targetArn: numberedTargetArn(1), initiators: [HOST_A], manageCredentials: true, rotation: ChapRotation.every(Duration.days(7)),
  });
  app.synth();
  const rotationRules = stack.node.findAll().filter((c): c is CfnResource => CfnResource.isCfnResource(c)).flatMap((resource) => {
    const rules = (resource.getMetadata(CDK_NAG_METADATA_KEY)?.rules_to_suppress ?? []) as Array<{ id: string; reason: string }>;
    return rules.filter((r) => /SMG4|RotationEnabled/.test(r.id)).map((r) => `${resource.node.path} ${r.id}: ${r.reason}`);
  });
  expect(rotationRules.map((r) => r.replace(/: .*/, '')).sort()).toEqual([
    'Rotated/A/TargetSecret/Resource AwsSolutions-SMG4',
    'Rotated/A/TargetSecret/Resource NIST.800.53.R5-SecretsManagerRotationEnabled',
    'Rotated/ChapCredentialsProvider/CredentialKey/Resource AwsSolutions-SMG4',
    'Rotated/ChapCredentialsProvider/CredentialKey/Resource NIST.800.53.R5-SecretsManagerRotationEnabled',
  ]);
  expect(rotationRules.find((r) => r.startsWith('Rotated/A/TargetSecret/'))).toContain('the same rotation rewrites this copy in its finishSecret step');
  expect(rotationRules.find((r) => r.startsWith('Rotated/ChapCredentialsProvider/'))).toContain('rotate through Secrets Manager with the rotation prop');
});

test('cdk-nag 2 suppressions the app put on our resource are kept, ours merged beside them (also when decided at synth)', () => {
  const app = new App();
  const stack = new Stack(app, 'Merge');
  new ChapCredentials(stack, 'A', { targetArn: numberedTargetArn(1) });
  // The log group's acknowledgment is decided by an Aspect at synth, after the app's suppression.
  const logGroup = ChapCredentialsProvider.getOrCreate(stack).logGroup;
  nag2.NagSuppressions.addResourceSuppressions(logGroup, [{ id: 'AwsSolutions-Custom1', reason: 'A rule of the app owner, kept as given.' }]);
  app.synth();
  const rules = (logGroup.node.defaultChild as CfnResource).getMetadata(CDK_NAG_METADATA_KEY).rules_to_suppress;
  expect(rules).toEqual([
    { id: 'AwsSolutions-Custom1', reason: 'A rule of the app owner, kept as given.' },
    { id: 'NIST.800.53.R5-CloudWatchLogGroupEncrypted', reason: expect.stringMatching(/^No customer KMS key was given/) },
  ]);
});
