/** Our templates pass aws-cdk-lib's built-in CloudFormation validation (resource schemas and default rules), strictly. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import * as kms from 'aws-cdk-lib/aws-kms';
import { ChapCredentials } from '../lib';
import { DOC_TARGET_ARN, HOST_A, HOST_B } from './fixtures';

test('a stack with several constructs, a key and declared initiators has no validation finding', () => {
  const saved = process.env.CDK_VALIDATION;
  delete process.env.CDK_VALIDATION;
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-cfn-'));
  try {
    const app = new App({
      outdir,
      builtinCloudFormationValidation: true,
      context: { '@aws-cdk/core:validateAgainstDefaultRules': true, '@aws-cdk/core:strictCfnValidateErrors': true },
    });
    const stack = new Stack(app, 'Validated');
    const key = new kms.Key(stack, 'Key', { enableKeyRotation: true });
    new ChapCredentials(stack, 'A', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B], encryptionKey: key, secretName: 'iscsi/a' });
    new ChapCredentials(stack, 'B', { targetArn: DOC_TARGET_ARN.replace('myvolume', 'b'), initiatorNamesExportName: 'BNames' });
    app.synth();
    const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8'));
    const violations = JSON.stringify(report).match(/"ruleName"/g) ?? [];
    expect({ violations: violations.length, report: violations.length ? report : undefined }).toEqual({ violations: 0, report: undefined });
  } finally {
    process.env.CDK_VALIDATION = saved;
    fs.rmSync(outdir, { recursive: true, force: true });
  }
});
