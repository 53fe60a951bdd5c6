/** What an app author gets from the built package: plain Node loads it, and the demo app synthesizes. */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.join(__dirname, '..');

test("the package's main entry loads in plain Node (no ts-node) and synthesizes a stack", () => {
  const script = `
    const { App, Stack } = require('aws-cdk-lib');
    const { ChapCredentials } = require(${JSON.stringify(ROOT)});
    const app = new App({ outdir: require('fs').mkdtempSync(require('os').tmpdir() + '/chap-pkg-') });
    const stack = new Stack(app, 'Consumer');
    new ChapCredentials(stack, 'Chap', { targetArn: ${JSON.stringify(
    'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:myvolume')} });
    const template = app.synth().getStackByName('Consumer').template;
    process.stdout.write(JSON.stringify(Object.values(template.Resources).map((r) => r.Type).sort()));
  `;
  const types = JSON.parse(execFileSync(process.execPath, ['-e', script], { cwd: ROOT, encoding: 'utf8' }));
  expect(types).toEqual([
    'AWS::IAM::Role', 'AWS::Lambda::Function', 'AWS::Logs::LogGroup', 'AWS::SecretsManager::Secret', 'Custom::StorageGatewayChapCredentials',
  ]);
});

test('package.json main and types point at the compiled library', () => {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const pkg = require('../package.json');
  expect(pkg.main).toBe('lib/index.js');
  expect(pkg.types).toBe('lib/index.d.ts');
  expect(require.resolve(ROOT)).toBe(path.join(ROOT, 'lib', 'index.js'));
});
