// A consumer's CDK app, run by test/consumer-versions.test.ts in a consumer folder whose node_modules holds the packed
// cdk-chap-credentials, the aws-cdk-lib under test, constructs and cdk-nag. Plain JavaScript, as an app author may
// write it. Argument: a JSON list of the rule-pack modules to run, [{ "module": "cdk-nag", "generation": 2 }, ...].
// Prints one JSON report: versions and paths loaded, the templates, and each rule pack's findings.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { App, Aspects, Duration, Stack, Validations } = require('aws-cdk-lib');
const iam = require('aws-cdk-lib/aws-iam');
const kms = require('aws-cdk-lib/aws-kms');
const secretsmanager = require('aws-cdk-lib/aws-secretsmanager');
const { ChapCredentials, ChapMode } = require('cdk-chap-credentials');

const packs = JSON.parse(process.argv[2] || '[]');
const HOST = 'iqn.1994-05.com.redhat:db-host';
const targetArn = (volume) => `arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:${volume}`;
const RULE_ID = /^(AwsSolutions|NIST\.800\.53\.R5)-[^:\s]+/;

/**
 * Three stacks: one with a customer key, declared initiators, a refresh schedule, a wired host and a plain construct beside;
 * one without a key; one managing its initiators' credentials.
 */
function build(app) {
  const keyed = new Stack(app, 'Keyed');
  const key = new kms.Key(keyed, 'Key', { enableKeyRotation: true });
  const chap = new ChapCredentials(keyed, 'Chap', { targetArn: targetArn('vol1'), initiators: [HOST], encryptionKey: key, refresh: Duration.hours(1) });
  const host = new iam.Role(keyed, 'Host', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  chap.wireHost({ initiatorName: HOST, portalAddress: '10.0.0.10', grantee: host });
  new ChapCredentials(keyed, 'Plain', { targetArn: targetArn('vol2') });
  const unkeyed = new Stack(app, 'Unkeyed');
  new ChapCredentials(unkeyed, 'Chap', { targetArn: targetArn('vol3'), initiators: [HOST] });
  // Managed credentials, one-way, on a target ARN (a CfnVolume needs a newer aws-cdk-lib than the minimum).
  const managed = new Stack(app, 'Managed');
  new ChapCredentials(managed, 'Chap', { targetArn: targetArn('vol4'), initiators: [HOST], manageCredentials: true, chapMode: ChapMode.ONE_WAY });
}

/** A negative control: a secret of the app's own beside one of ours. */
function buildControl(app) {
  const bare = new Stack(app, 'Bare');
  new secretsmanager.Secret(bare, 'Plain');
  new ChapCredentials(bare, 'Chap', { targetArn: targetArn('vol1') });
}

function newApp() {
  return new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'chap-consumer-')) });
}

/** Synthesizes with one generation's AwsSolutions and NIST 800-53 rev 5 packs; the findings as `<rule id> at <path>`. */
function findings(pack, buildInto) {
  const nag = require(pack.module);
  const app = newApp();
  if (pack.generation === 2) {
    Aspects.of(app).add(new nag.AwsSolutionsChecks());
    Aspects.of(app).add(new nag.NIST80053R5Checks());
  } else {
    Validations.of(app).addPlugins(new nag.AwsSolutionsChecks(app), new nag.NIST80053R5Checks(app));
  }
  buildInto(app);
  try {
    return app.synth().stacks.flatMap((stack) => stack.messages)
      .filter((m) => (m.level === 'error' || m.level === 'warning') && RULE_ID.test(String(m.entry.data)))
      .map((m) => `${String(m.entry.data).match(RULE_ID)[0]} at ${m.id.replace(/^\//, '')}`).sort();
  } catch (error) {
    const reportFile = path.join(app.outdir, 'validation-report.json');
    if (pack.generation === 2 || !fs.existsSync(reportFile)) throw error;
    const report = JSON.parse(fs.readFileSync(reportFile, 'utf8'));
    return report.pluginReports.flatMap((plugin) => plugin.violations)
      .flatMap((v) => v.violatingConstructs.map((c) => `${v.ruleName} at ${c.constructPath}`)).sort();
  } finally {
    fs.rmSync(app.outdir, { recursive: true, force: true });
  }
}

/** The real folder of the aws-cdk-lib that code in `dir` loads. */
const awsCdkLibFrom = (dir) => fs.realpathSync(path.dirname(require.resolve('aws-cdk-lib/package.json', { paths: [dir] })));
const folderOf = (module) => path.dirname(require.resolve(module));

const app = newApp();
build(app);
const assembly = app.synth();
const report = {
  node: process.versions.node,
  awsCdkLib: require('aws-cdk-lib/package.json').version,
  constructs: require('constructs/package.json').version,
  loaded: {
    app: awsCdkLibFrom(__dirname),
    ours: awsCdkLibFrom(folderOf('cdk-chap-credentials')),
    ...Object.fromEntries(packs.map((pack) => [pack.module, awsCdkLibFrom(folderOf(pack.module))])),
  },
  templates: Object.fromEntries(assembly.stacks.map((stack) => [stack.stackName, stack.template])),
  findings: Object.fromEntries(packs.map((pack) => [pack.module, { ours: findings(pack, build), control: findings(pack, buildControl) }])),
};
fs.rmSync(app.outdir, { recursive: true, force: true });
process.stdout.write(JSON.stringify(report));
