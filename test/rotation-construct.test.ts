/**
 * The `rotation` prop on the template: one rotation schedule per declared initiator's secret, pointing at the stack's
 * one function, created after the invoke permission and after the custom resource; one permission per stack, for
 * Secrets Manager of this account only; IAM exactly on the rotated secrets; validation naming the prop.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { ChapCredentials, ChapCredentialsProps, ChapRotation, RESOURCE_TYPE } from '../lib';
import { CREDENTIAL_KEY_ENV, ROTATION_TARGET_SECRET_TAG } from '../lib/api';
import { demoStack } from '../bin/demo-stack';
import { HOST_A, HOST_B, numberedTargetArn } from './fixtures';

function newStack(): Stack {
  return new Stack(new App(), 'Test', { env: { account: '111122223333', region: 'us-east-1' } });
}

const rotating = (n: number, extra: Partial<ChapCredentialsProps> = {}): ChapCredentialsProps => ({
  targetArn: numberedTargetArn(n), initiators: [HOST_A, HOST_B], manageCredentials: true, rotation: ChapRotation.every(Duration.days(30)), ...extra,
});

interface Statement { Sid: string; Action: string | string[]; Resource: unknown }
function statements(template: Template): Statement[] {
  const [role] = Object.values(template.findResources('AWS::IAM::Role'));
  return role.Properties.Policies[0].PolicyDocument.Statement;
}

describe('rotation resources', () => {
  test('one schedule per declared initiator secret, on the stack\'s function, after the permission and the custom resource, not at once', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', rotating(1));
    const template = Template.fromStack(stack);
    const schedules = template.findResources('AWS::SecretsManager::RotationSchedule');
    expect(Object.keys(schedules)).toHaveLength(2);
    const [fn] = Object.keys(template.findResources('AWS::Lambda::Function'));
    const [permission] = Object.keys(template.findResources('AWS::Lambda::Permission'));
    const [custom] = Object.keys(template.findResources(RESOURCE_TYPE));
    const secretIds = [HOST_A, HOST_B].map((name) => stack.resolve(chap.initiatorSecret(name).secretArn).Ref);
    expect(Object.values(schedules).map((s) => s.Properties.SecretId.Ref).sort()).toEqual([...secretIds].sort());
    for (const schedule of Object.values(schedules)) {
      expect(schedule.Properties).toEqual({
        SecretId: expect.anything(),
        RotationLambdaARN: { 'Fn::GetAtt': [fn, 'Arn'] },
        RotationRules: { AutomaticallyAfterDays: 30 },
        RotateImmediatelyOnUpdate: false,
      });
      expect([...schedule.DependsOn].sort()).toEqual([custom, permission].sort());
    }
    expect(chap.rotationSchedules).toHaveLength(2);
  });

  test('one permission per stack, for Secrets Manager of this account only, however many rotating constructs', () => {
    const stack = newStack();
    new ChapCredentials(stack, 'A', rotating(1));
    new ChapCredentials(stack, 'B', rotating(2, { rotation: ChapRotation.every(Duration.hours(6)) }));
    const template = Template.fromStack(stack);
    const permissions = Object.values(template.findResources('AWS::Lambda::Permission'));
    const [fn] = Object.keys(template.findResources('AWS::Lambda::Function'));
    expect(permissions.map((p) => p.Properties)).toEqual([{
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [fn, 'Arn'] },
      Principal: 'secretsmanager.amazonaws.com',
      SourceAccount: '111122223333',
    }]);
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 4);
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', { RotationRules: { ScheduleExpression: 'rate(6 hours)' } });
  });

  test('IAM: DescribeSecret and UpdateSecretVersionStage on exactly the rotated secrets; no * anywhere', () => {
    const stack = newStack();
    const a = new ChapCredentials(stack, 'A', rotating(1));
    new ChapCredentials(stack, 'B', { targetArn: numberedTargetArn(2), initiators: [HOST_A], manageCredentials: true });
    new ChapCredentials(stack, 'C', { targetArn: numberedTargetArn(3), initiators: [HOST_B] });
    const template = Template.fromStack(stack);
    const all = statements(template);
    expect(all.find((s) => s.Sid === 'RotateChapSecrets')).toEqual({
      Sid: 'RotateChapSecrets', Effect: 'Allow',
      Action: ['secretsmanager:DescribeSecret', 'secretsmanager:UpdateSecretVersionStage'],
      Resource: [HOST_A, HOST_B].map((name) => stack.resolve(a.initiatorSecret(name).secretArn)),
    });
    expect(JSON.stringify(all)).not.toContain('"*"');
    expect(all.flatMap((s) => [s.Action].flat())).not.toContain('secretsmanager:GetRandomPassword');
  });

  test('each rotated secret is tagged with its target secret; the function knows the stack\'s credential key', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', rotating(1));
    const template = Template.fromStack(stack);
    const targetSecret = stack.resolve(chap.targetSecret.secretArn);
    for (const name of [HOST_A, HOST_B]) {
      const id = stack.resolve(chap.initiatorSecret(name).secretArn).Ref;
      expect(template.findResources('AWS::SecretsManager::Secret')[id].Properties.Tags).toEqual([{ Key: ROTATION_TARGET_SECRET_TAG, Value: targetSecret }]);
    }
    expect(template.findResources('AWS::SecretsManager::Secret')[targetSecret.Ref].Properties.Tags).toBeUndefined();
    const [fn] = Object.values(template.findResources('AWS::Lambda::Function'));
    const keyId = Object.keys(template.findResources('AWS::SecretsManager::Secret')).find((id) => id.startsWith('ChapCredentialsProviderCredentialKey'));
    expect(fn.Properties.Environment.Variables[CREDENTIAL_KEY_ENV]).toEqual({ Ref: keyId });
  });

  test('without rotation: no schedule, no permission, no rotation statement, no tag', () => {
    const stack = newStack();
    new ChapCredentials(stack, 'A', { targetArn: numberedTargetArn(1), initiators: [HOST_A], manageCredentials: true });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 0);
    template.resourceCountIs('AWS::Lambda::Permission', 0);
    expect(statements(template).map((s) => s.Sid)).not.toContain('RotateChapSecrets');
    expect(JSON.stringify(template.toJSON())).not.toContain(ROTATION_TARGET_SECRET_TAG);
  });
});

describe('rotation schedules', () => {
  test.each([
    ['4 hours', ChapRotation.every(Duration.hours(4)), { ScheduleExpression: 'rate(4 hours)' }],
    ['23 hours', ChapRotation.every(Duration.hours(23)), { ScheduleExpression: 'rate(23 hours)' }],
    ['1 day', ChapRotation.every(Duration.days(1)), { AutomaticallyAfterDays: 1 }],
    ['48 hours (2 days)', ChapRotation.every(Duration.hours(48)), { AutomaticallyAfterDays: 2 }],
    ['1000 days', ChapRotation.every(Duration.days(1000)), { AutomaticallyAfterDays: 1000 }],
    ['a rate expression', ChapRotation.expression('rate(10 days)'), { ScheduleExpression: 'rate(10 days)' }],
    ['a cron expression', ChapRotation.expression('cron(0 4 ? * SUN *)'), { ScheduleExpression: 'cron(0 4 ? * SUN *)' }],
  ])('%s', (_, rotation, rules) => {
    const stack = newStack();
    new ChapCredentials(stack, 'Chap', rotating(1, { rotation }));
    Template.fromStack(stack).hasResourceProperties('AWS::SecretsManager::RotationSchedule', { RotationRules: rules });
  });

  test.each([
    ['without manageCredentials', { manageCredentials: undefined },
      "'rotation' needs 'manageCredentials: true' (the stack rotates only credentials it sets), got every 30 days"],
    ['every hour', { rotation: ChapRotation.every(Duration.hours(1)) },
      "'rotation' must be whole hours from 4 to 23 or whole days from 1 to 1000, got every 1 hour"],
    ['every 90 minutes', { rotation: ChapRotation.every(Duration.minutes(90)) },
      "'rotation' must be whole hours from 4 to 23 or whole days from 1 to 1000, got every 1 hour 30 minutes"],
    ['every 1001 days', { rotation: ChapRotation.every(Duration.days(1001)) },
      "'rotation' must be whole hours from 4 to 23 or whole days from 1 to 1000, got every 1001 days"],
    ['rate(2 hours)', { rotation: ChapRotation.expression('rate(2 hours)') },
      "'rotation' must be whole hours from 4 to 23 or whole days from 1 to 1000, got expression \"rate(2 hours)\""],
    ['an expression of another kind', { rotation: ChapRotation.expression('every tuesday') },
      "'rotation' must be a Secrets Manager schedule expression, 'rate(N hours)', 'rate(N days)' or 'cron(...)', got expression \"every tuesday\""],
  ])('refused: %s', (_, extra, message) => {
    expect(() => new ChapCredentials(newStack(), 'Chap', rotating(1, extra as Partial<ChapCredentialsProps>))).toThrow(message);
  });
});

describe('the demo app', () => {
  const demo = (context: Record<string, string>) => demoStack(new App({ context: { targetArn: numberedTargetArn(1), ...context } }));

  test('-c rotation=30 beside -c manage=true -c initiators=...: one schedule per initiator, every 30 days', () => {
    const template = Template.fromStack(demo({ manage: 'true', initiators: `${HOST_A},${HOST_B}`, rotation: '30' }));
    template.resourceCountIs('AWS::SecretsManager::RotationSchedule', 2);
    template.hasResourceProperties('AWS::SecretsManager::RotationSchedule', { RotationRules: { AutomaticallyAfterDays: 30 } });
  });

  test('a rotation that is not whole days, or without -c manage=true, is refused', () => {
    expect(() => demo({ manage: 'true', initiators: HOST_A, rotation: 'weekly' })).toThrow("'-c rotation' must be a whole number of days (1 to 1000), got 'weekly'");
    expect(() => demo({ initiators: HOST_A, rotation: '30' })).toThrow("'rotation' needs 'manageCredentials: true'");
  });
});
