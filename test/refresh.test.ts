/**
 * Scheduled refresh: the stack's provider function, invoked by the EventBridge rule with the construct's properties,
 * re-reads the target and rewrites only what changed; a failing refresh keeps every stored value.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { ChapCredentials } from '../lib';
import { DOC_TARGET_ARN, HOST_A, HOST_B } from './fixtures';
import { LocalCloud, STACK, removeAssemblies, synth } from './local-stack';

jest.setTimeout(60_000);
afterAll(removeAssemblies);

describe('the schedule in the template', () => {
  test('one rule per refreshing construct targets the same single function, with exact IAM', () => {
    const stack = new Stack(new App(), 'Refreshing', { env: { account: '111122223333', region: 'us-east-1' } });
    new ChapCredentials(stack, 'A', { targetArn: DOC_TARGET_ARN, refresh: Duration.hours(1), initiators: [HOST_A] });
    new ChapCredentials(stack, 'B', { targetArn: DOC_TARGET_ARN.replace('myvolume', 'b') });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.resourceCountIs('AWS::Events::Rule', 1);
    const [functionId] = Object.keys(template.findResources('AWS::Lambda::Function'));
    const [ruleId] = Object.keys(template.findResources('AWS::Events::Rule'));
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: 'rate(1 hour)',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': [functionId, 'Arn'] }, Input: Match.anyValue() })],
    });
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction', Principal: 'events.amazonaws.com', SourceArn: { 'Fn::GetAtt': [ruleId, 'Arn'] },
    });
    // The role gains nothing: the refresh does what the custom resource does, on the same targets and secrets.
    const statements = Object.values(template.findResources('AWS::IAM::Role'))[0].Properties.Policies[0].PolicyDocument.Statement;
    expect(statements.map((s: { Sid: string }) => s.Sid)).toEqual(['DescribeChapCredentials', 'WriteChapSecrets', 'WriteLogs']);
  });

  test('a refresh carrying more initiators than EventBridge input allows is refused, naming the limit', () => {
    const stack = new Stack(new App(), 'Crowded');
    const initiators = Array.from({ length: 60 }, (_, i) => `iqn.1994-05.com.redhat:host-${String(i).padStart(3, '0')}`);
    expect(() => new ChapCredentials(stack, 'A', { targetArn: DOC_TARGET_ARN, refresh: Duration.hours(1), initiators }))
      .toThrow(/^'refresh' cannot carry 60 declared initiators: the schedule's input would be about \d+ characters, more than EventBridge's limit of 8192/);
    expect(() => new ChapCredentials(stack, 'B', { targetArn: DOC_TARGET_ARN, initiators })).not.toThrow();
  });

  test('a refresh under a minute is refused, naming the prop, the rule and the value', () => {
    const stack = new Stack(new App(), 'Fast');
    expect(() => new ChapCredentials(stack, 'A', { targetArn: DOC_TARGET_ARN, refresh: Duration.seconds(30) }))
      .toThrow("'refresh' must be at least 1 minute (EventBridge's shortest rate), got 30 seconds");
  });
});

describe('refresh through the emulator', () => {
  let cloud: LocalCloud;
  const ruleId = () => [...cloud.cfn.deployed].find(([, r]) => r.type === 'AWS::Events::Rule')![0];
  const targetSecretArn = () => cloud.secretArn('ChapTargetSecret');

  beforeEach(async () => {
    cloud = await LocalCloud.start();
    cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A), cloud.credential(HOST_B, true)]);
    const created = await cloud.cfn.deploy(synth({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A], refresh: Duration.minutes(15) }), STACK);
    expect(created.status).toBe('CREATE_COMPLETE');
  });

  afterEach(() => cloud.finish());

  test('a change on the gateway is stored by the next refresh, without a deploy', async () => {
    const changed = cloud.credential(HOST_A);
    cloud.emulator.storageGateway.UpdateChapCredentials({ TargetARN: DOC_TARGET_ARN, ...changed });
    const run = await cloud.cfn.fireRule(ruleId());
    expect(run.ended).toBe('returned');
    expect(cloud.secretValue('ChapInitiator')).toMatchObject({
      secretToAuthenticateInitiator: changed.SecretToAuthenticateInitiator, secretToAuthenticateTarget: changed.SecretToAuthenticateTarget,
    });
    const stored = cloud.secretValue('ChapTargetSecret') as { chapCredentials: { secretToAuthenticateInitiator: string }[] };
    expect(stored.chapCredentials[0].secretToAuthenticateInitiator).toBe(changed.SecretToAuthenticateInitiator);
  });

  test('a refresh with nothing changed writes no new version', async () => {
    const versions = cloud.versionsOf('ChapTargetSecret');
    const puts = cloud.emulator.callsOf('PutSecretValue').length;
    const run = await cloud.cfn.fireRule(ruleId());
    expect(run.ended).toBe('returned');
    expect(cloud.emulator.callsOf('PutSecretValue')).toHaveLength(puts);
    expect(cloud.versionsOf('ChapTargetSecret')).toBe(versions);
  });

  test('a refresh while the gateway fails logs the reason, ends in error, and keeps every stored value', async () => {
    const before = cloud.emulator.secretsManager.current(targetSecretArn());
    cloud.emulator.inject('DescribeChapCredentials', { failAll: { type: 'InternalServerError', status: 500 } });
    const run = await cloud.cfn.fireRule(ruleId());
    expect(run.ended).toBe('threw');
    expect(run.logs).toContain(`refresh failed: DescribeChapCredentials failed for target ${DOC_TARGET_ARN}: InternalServerError (HTTP 500)`);
    expect(cloud.emulator.callsOf('PutSecretValue', true)).toHaveLength(2); // the Create's only
    expect(cloud.emulator.secretsManager.current(targetSecretArn())).toBe(before);
  });

  test('a gateway that suddenly reports no credentials does not blank the target secret', async () => {
    const before = cloud.emulator.secretsManager.current(targetSecretArn());
    cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, []);
    const run = await cloud.cfn.fireRule(ruleId());
    // The declared initiator is missing now: the refresh fails and writes nothing at all.
    expect(run.ended).toBe('threw');
    expect(run.logs).toContain(`declared initiator(s) ${HOST_A} have no CHAP credentials`);
    expect(cloud.emulator.secretsManager.current(targetSecretArn())).toBe(before);
  });
});
