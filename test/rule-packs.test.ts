/**
 * cdk-nag's AwsSolutions and NIST 800-53 rev 5 packs over the demo app and over stacks with several constructs:
 * zero unacknowledged findings. Each acknowledgment sits on the resource it concerns, in lib/, with its reason.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Duration, Stack, Validations } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { AwsSolutionsChecks, NIST80053R5Checks } from 'cdk-nag';
import { ChapCredentials } from '../lib';
import { demoStack } from '../bin/demo-stack';
import { HOST_A, HOST_B, numberedTargetArn } from './fixtures';

const DOC_ARN_CONTEXT = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8')).context;

/** An app checked by both packs; synth throws with the findings when any is left. */
function checkedApp(context: Record<string, unknown> = {}): App {
  const app = new App({ outdir: fs.mkdtempSync(path.join(os.tmpdir(), 'chap-nag-')), context });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new NIST80053R5Checks(app));
  return app;
}

function findings(app: App): string {
  try {
    app.synth();
    return '';
  } catch (error) {
    return (error as Error).message;
  } finally {
    fs.rmSync(app.outdir, { recursive: true, force: true });
  }
}

test('the demo app has no unacknowledged finding', () => {
  const app = checkedApp(DOC_ARN_CONTEXT);
  demoStack(app);
  expect(findings(app)).toBe('');
});

test('several constructs, with declared initiators and a refresh schedule, without a customer key, have no unacknowledged finding', () => {
  const app = checkedApp();
  const stack = new Stack(app, 'Several');
  new ChapCredentials(stack, 'A', { targetArn: numberedTargetArn(1), initiators: [HOST_A, HOST_B] });
  new ChapCredentials(stack, 'B', { targetArn: numberedTargetArn(2), refresh: Duration.hours(6) });
  expect(findings(app)).toBe('');
});

test('several constructs with a customer key have no finding and an encrypted log group', () => {
  const app = checkedApp();
  const stack = new Stack(app, 'Keyed');
  const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
  new ChapCredentials(stack, 'A', { targetArn: numberedTargetArn(1), initiators: [HOST_A], encryptionKey: key });
  new ChapCredentials(stack, 'B', { targetArn: numberedTargetArn(2), encryptionKey: key });
  new ChapCredentials(stack, 'C', { targetArn: numberedTargetArn(3) });
  expect(findings(app)).toBe('');
});

test('the packs are active: a secret outside the construct is reported (so the tests above can fail)', () => {
  const app = checkedApp();
  const stack = new Stack(app, 'Bare');
  new secretsmanager.Secret(stack, 'Plain');
  expect(findings(app)).toMatch(/AwsSolutions-SMG4/);
});
