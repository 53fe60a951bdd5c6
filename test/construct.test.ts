import { App, CfnParameter, CfnResource, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as storagegateway from 'aws-cdk-lib/aws-storagegateway';
import { Attr, ChapCredentials, ChapMode, Prop, RESOURCE_TYPE } from '../lib';
import { DEMO_HOST_INITIATOR, DEMO_VOLUME_PORTAL, demoStack } from '../bin/demo-stack';
import { DOC_TARGET_ARN, HOST_B, numberedTargetArn } from './fixtures';

const HOST_A = 'iqn.1991-05.com.microsoft:host-a.example.com';

function newStack(): Stack {
  return new Stack(new App(), 'Test', { env: { account: '111122223333', region: 'us-east-1' } });
}

/** The logical id behind a secret (its ARN is a Ref) or the default child of a construct. */
function logicalIdOf(stack: Stack, construct: { secretArn: string } | { node: { defaultChild?: unknown } }): string {
  if ('secretArn' in construct) return stack.resolve(construct.secretArn).Ref;
  return stack.getLogicalId(construct.node.defaultChild as never);
}

describe('ChapCredentials resources', () => {
  test('one target: a secret, the custom resource with its properties and service timeout, an output', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN });
    const template = Template.fromStack(stack);

    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.resourceCountIs(RESOURCE_TYPE, 1);
    const secretId = logicalIdOf(stack, chap.targetSecret);
    template.hasResource('AWS::SecretsManager::Secret', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
    template.hasResourceProperties(RESOURCE_TYPE, {
      ServiceToken: { 'Fn::GetAtt': [Match.stringLikeRegexp('ChapCredentialsProviderHandler'), 'Arn'] },
      ServiceTimeout: '300',
      [Prop.TargetArn]: DOC_TARGET_ARN,
      [Prop.TargetSecretArn]: { Ref: secretId },
      [Prop.Initiators]: Match.absent(),
    });
    template.hasOutput('*', { Value: { 'Fn::GetAtt': [logicalIdOf(stack, chap.resource), Attr.InitiatorNames] } });
  });

  test('the handler is the prebundled asset, Node.js 24 on arm64, with a timeout below the service timeout', () => {
    const stack = newStack();
    new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Handler: 'index.handler',
      Runtime: 'nodejs24.x',
      Architectures: ['arm64'],
      Timeout: 120,
      Code: { S3Bucket: Match.anyValue(), S3Key: Match.stringLikeRegexp('\\.zip$') },
    });
  });

  test('an explicit log group with a retention period receives the logs', () => {
    const stack = newStack();
    new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    const [logGroupId] = Object.keys(template.findResources('AWS::Logs::LogGroup'));
    template.hasResourceProperties('AWS::Lambda::Function', { LoggingConfig: { LogGroup: { Ref: logGroupId } } });
  });

  test('declared initiators each get a secret of their own, passed to the handler by name', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B] });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::SecretsManager::Secret', 3);
    template.hasResourceProperties(RESOURCE_TYPE, {
      [Prop.Initiators]: [
        { Name: HOST_A, SecretArn: { Ref: logicalIdOf(stack, chap.initiatorSecret(HOST_A)) } },
        { Name: HOST_B, SecretArn: { Ref: logicalIdOf(stack, chap.initiatorSecret(HOST_B)) } },
      ],
    });
    expect(chap.declaredInitiators).toEqual([HOST_A, HOST_B]);
  });

  test('secretName names the target secret and, with : mapped to _, each initiator secret', () => {
    const stack = newStack();
    new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A], secretName: 'iscsi/myvolume' });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::SecretsManager::Secret', { Name: 'iscsi/myvolume' });
    template.hasResourceProperties('AWS::SecretsManager::Secret', { Name: 'iscsi/myvolume/iqn.1991-05.com.microsoft_host-a.example.com' });
  });

  test('encryptionKey and removalPolicy pass through to every secret', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'Key');
    new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A], encryptionKey: key, removalPolicy: RemovalPolicy.RETAIN });
    const template = Template.fromStack(stack);
    const secrets = template.findResources('AWS::SecretsManager::Secret');
    expect(Object.values(secrets)).toHaveLength(2);
    for (const secret of Object.values(secrets)) {
      expect(secret.DeletionPolicy).toBe('Retain');
      expect(secret.Properties.KmsKeyId).toEqual({ 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as never), 'Arn'] });
    }
  });

  test('a token target ARN and token initiator names pass through unchecked', () => {
    const stack = newStack();
    const arn = new CfnParameter(stack, 'TargetArn').valueAsString;
    const host = new CfnParameter(stack, 'Host').valueAsString;
    new ChapCredentials(stack, 'Chap', { targetArn: arn, initiators: [host], secretName: 'iscsi' });
    const template = Template.fromStack(stack);
    template.hasResourceProperties(RESOURCE_TYPE, { [Prop.TargetArn]: { Ref: 'TargetArn' } });
    template.hasResourceProperties('AWS::SecretsManager::Secret', {
      Name: { 'Fn::Join': ['', ['iscsi/', { 'Fn::Join': ['_', { 'Fn::Split': [':', { Ref: 'Host' }] }] }]] },
    });
  });
});

describe('outputs and attributes', () => {
  test('the output can be turned off', () => {
    const stack = newStack();
    new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, outputInitiatorNames: false });
    expect(Object.keys(Template.fromStack(stack).findOutputs('*'))).toHaveLength(0);
  });

  test('the output can be exported', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiatorNamesExportName: 'MyVolumeInitiators' });
    Template.fromStack(stack).hasOutput('*', { Export: { Name: 'MyVolumeInitiators' } });
    expect(chap.initiatorNamesOutput).toBeDefined();
  });

  test('attributes read the handler Data: names as a list, comma-separated, count and truncation flag', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN });
    const id = logicalIdOf(stack, chap.resource);
    expect(stack.resolve(chap.initiatorNames)).toEqual({ 'Fn::Split': [',', { 'Fn::GetAtt': [id, Attr.InitiatorNames] }] });
    expect(stack.resolve(chap.initiatorNamesCommaSeparated)).toEqual({ 'Fn::GetAtt': [id, Attr.InitiatorNames] });
    expect(stack.resolve(chap.initiatorCount)).toEqual({ 'Fn::GetAtt': [id, Attr.InitiatorCount] });
    expect(stack.resolve(chap.initiatorNamesTruncated)).toEqual({ 'Fn::GetAtt': [id, Attr.InitiatorNamesTruncated] });
  });

  test('grantRead lets a host role read the target secret only; grantReadInitiator only its own secret', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B] });
    const admin = new iam.Role(stack, 'Admin', { assumedBy: new iam.AccountRootPrincipal() });
    const hostA = new iam.Role(stack, 'HostA', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
    const adminGrant = chap.grantRead(admin);
    const hostGrant = chap.grantReadInitiator(HOST_A, hostA);
    expect(adminGrant).toBeInstanceOf(iam.Grant);
    expect(hostGrant.success).toBe(true);
    const template = Template.fromStack(stack);
    const readOf = (secretId: string) => Match.arrayWith([Match.objectLike({
      Action: ['secretsmanager:GetSecretValue', 'secretsmanager:DescribeSecret'],
      Resource: { Ref: secretId },
    })]);
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: stack.getLogicalId(admin.node.defaultChild as never) }],
      PolicyDocument: { Statement: readOf(logicalIdOf(stack, chap.targetSecret)) },
    });
    const hostPolicy = template.findResources('AWS::IAM::Policy', {
      Properties: { Roles: [{ Ref: stack.getLogicalId(hostA.node.defaultChild as never) }] },
    });
    const statements = Object.values(hostPolicy)[0].Properties.PolicyDocument.Statement;
    expect(statements).toEqual([expect.objectContaining({ Resource: { Ref: logicalIdOf(stack, chap.initiatorSecret(HOST_A)) } })]);
  });

  test('asking for an undeclared initiator names the prop, the rule and the value', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A] });
    expect(() => chap.initiatorSecret(HOST_B)).toThrow(
      `'initiatorName' must be one of the declared 'initiators' (${HOST_A}), got '${HOST_B}'`);
  });
});

describe('one provider per stack', () => {
  test('three constructs share one function and one role whose policy lists exactly their targets and secrets', () => {
    const stack = newStack();
    const chaps = [1, 2, 3].map((n) => new ChapCredentials(stack, `Chap${n}`, { targetArn: numberedTargetArn(n) }));
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.resourceCountIs('AWS::IAM::Role', 1);
    template.resourceCountIs('AWS::Logs::LogGroup', 1);
    template.resourceCountIs(RESOURCE_TYPE, 3);
    const role = Object.values(template.findResources('AWS::IAM::Role'))[0];
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    const [logGroupId] = Object.keys(template.findResources('AWS::Logs::LogGroup'));
    expect(role.Properties.Policies).toEqual([{
      PolicyName: 'ChapCredentials',
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          { Sid: 'DescribeChapCredentials', Effect: 'Allow', Action: 'storagegateway:DescribeChapCredentials', Resource: [1, 2, 3].map(numberedTargetArn) },
          {
            Sid: 'WriteChapSecrets',
            Effect: 'Allow',
            Action: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
            Resource: chaps.map((c) => ({ Ref: logicalIdOf(stack, c.targetSecret) })),
          },
          { Sid: 'WriteLogs', Effect: 'Allow', Action: ['logs:CreateLogStream', 'logs:PutLogEvents'], Resource: { 'Fn::GetAtt': [logGroupId, 'Arn'] } },
        ],
      },
    }]);
  });

  test('each stack gets its own provider, and two apps in one process share nothing', () => {
    for (let i = 0; i < 2; i++) {
      const app = new App();
      const a = new Stack(app, 'A');
      const b = new Stack(app, 'B');
      new ChapCredentials(a, 'Chap', { targetArn: numberedTargetArn(1) });
      new ChapCredentials(b, 'Chap', { targetArn: numberedTargetArn(2) });
      for (const [stack, n] of [[a, 1], [b, 2]] as const) {
        const template = Template.fromStack(stack);
        template.resourceCountIs('AWS::Lambda::Function', 1);
        template.hasResourceProperties('AWS::IAM::Role', {
          Policies: [{ PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Resource: numberedTargetArn(n) })]) } }],
        });
      }
    }
  });

  test('a second construct adds its target and secret ARNs to the same statements, and nothing else', () => {
    const policyOf = (count: number) => {
      const stack = newStack();
      for (let n = 1; n <= count; n++) {
        new ChapCredentials(stack, `Chap${n}`, { targetArn: numberedTargetArn(n), initiators: n === 2 ? [HOST_A] : undefined });
      }
      const template = Template.fromStack(stack);
      return Object.values(template.findResources('AWS::IAM::Role'))[0].Properties.Policies[0].PolicyDocument.Statement;
    };
    const one = policyOf(1);
    const two = policyOf(2);
    const shape = (statements: { Sid: string; Action: unknown }[]) => statements.map((s) => [s.Sid, s.Action]);
    expect(shape(two)).toEqual(shape(one));
    expect(two[0].Resource).toEqual([numberedTargetArn(1), numberedTargetArn(2)]);
    expect(two[1].Resource).toEqual([
      one[1].Resource,
      { Ref: expect.stringMatching(/^Chap2TargetSecret/) },
      { Ref: expect.stringMatching(/^Chap2Initiatoriqn199105/) },
    ]);
    expect(two[2]).toEqual(one[2]);
  });

  test('with a customer key of the stack, the log group is encrypted with it and the key lets CloudWatch Logs use it', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'Key');
    new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, encryptionKey: key });
    const template = Template.fromStack(stack);
    const keyId = stack.getLogicalId(key.node.defaultChild as never);
    template.hasResourceProperties('AWS::Logs::LogGroup', { KmsKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] } });
    template.hasResourceProperties('AWS::KMS::Key', {
      KeyPolicy: {
        Statement: Match.arrayWith([Match.objectLike({
          Sid: 'ChapCredentialsLogGroup',
          Principal: { Service: 'logs.us-east-1.amazonaws.com' },
          Condition: {
            ArnLike: { 'kms:EncryptionContext:aws:logs:arn': { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':logs:us-east-1:111122223333:log-group:*']] } },
          },
        })]),
      },
    });
  });

  test('without a customer key the log group has no KMS key', () => {
    const stack = newStack();
    new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, encryptionKey: kms.Key.fromKeyArn(stack, 'Imported', 'arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab') });
    Template.fromStack(stack).hasResourceProperties('AWS::Logs::LogGroup', { KmsKeyId: Match.absent() });
  });

  test('a customer KMS key may be used only through Secrets Manager, and only that key', () => {
    const stack = newStack();
    const key = new kms.Key(stack, 'Key');
    new ChapCredentials(stack, 'Chap1', { targetArn: numberedTargetArn(1), encryptionKey: key });
    new ChapCredentials(stack, 'Chap2', { targetArn: numberedTargetArn(2), encryptionKey: key });
    new ChapCredentials(stack, 'Chap3', { targetArn: numberedTargetArn(3) });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::IAM::Role', {
      Policies: [{
        PolicyDocument: {
          Statement: Match.arrayWith([{
            Sid: 'UseChapSecretKeysThroughSecretsManager',
            Effect: 'Allow',
            Action: ['kms:Decrypt', 'kms:GenerateDataKey'],
            Resource: { 'Fn::GetAtt': [stack.getLogicalId(key.node.defaultChild as never), 'Arn'] },
            Condition: { StringEquals: { 'kms:ViaService': 'secretsmanager.us-east-1.amazonaws.com' } },
          }]),
        },
      }],
    });
  });
});

describe('validation at synth', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['an ARN of another service', { targetArn: 'arn:aws:s3:::my-bucket-with-a-name-long-enough-to-pass-length' },
      /'targetArn' must be a Storage Gateway iSCSI target ARN \(arn:PARTITION:storagegateway:REGION:ACCOUNT:gateway\/GATEWAY_ID\/target\/TARGET_NAME, 50 to 800 characters\), got 'arn:aws:s3:::my-bucket/],
    ['a volume ARN instead of a target ARN', { targetArn: 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/volume/vol-1122AABB' },
      /'targetArn' must be .*, got 'arn:aws:storagegateway:us-east-1:111122223333:gateway\/sgw-12A3456B\/volume\/vol-1122AABB'/],
    ['an ARN shorter than 50 characters', { targetArn: 'arn:aws:storagegateway:us-east-1:1:gateway/g/target/t' }, /50 to 800 characters\), got 'arn:aws:storagegateway:us-east-1:1:gateway\/g\/target\/t'/],
    ['an ARN longer than 800 characters', { targetArn: `${DOC_TARGET_ARN}${'x'.repeat(800)}` }, new RegExp(`got '${DOC_TARGET_ARN}x{800}'`)],
    ['an empty ARN', { targetArn: '' }, /'targetArn' must be .*, got ''/],
    ['an upper-case initiator', { targetArn: DOC_TARGET_ARN, initiators: ['IQN.1991-05.com.microsoft:HOST'] },
      /'initiators\[0\]' must be an iSCSI initiator name \(1 to 255 characters of lower-case letters, digits, ':', '.' and '-'\), got 'IQN.1991-05.com.microsoft:HOST'/],
    ['an initiator with a space', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A, 'iqn.x host'] }, /'initiators\[1\]' must be .*, got 'iqn.x host'/],
    ['an empty initiator', { targetArn: DOC_TARGET_ARN, initiators: [''] }, /'initiators\[0\]' must be .*, got ''/],
    ['an initiator of 256 characters', { targetArn: DOC_TARGET_ARN, initiators: ['a'.repeat(256)] }, new RegExp('\'initiators\\[0\\]\' must be .*, got \'a{256}\'')],
    ['a repeated initiator', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B, HOST_A] },
      new RegExp(`'initiators' must not repeat an initiator name, got '${HOST_A}' more than once`)],
    ['a secret name with a colon', { targetArn: DOC_TARGET_ARN, secretName: 'iscsi:vol' },
      /'secretName' must be a Secrets Manager secret name \(1 to 512 characters of ASCII letters, digits and '\/_\+=\.@-'\), got 'iscsi:vol'/],
    ['a secret name too long to hold initiator names', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A], secretName: 's'.repeat(300) },
      /'secretName' must be a Secrets Manager secret name \(1 to 256 characters/],
  ];

  test.each(cases)('rejects %s', (_, props, message) => {
    expect(() => new ChapCredentials(newStack(), 'Chap', props as never)).toThrow(message);
  });

  test('more outputs than CloudFormation allows fail the synth, naming the prop, the limit and the count', () => {
    const app = new App();
    const stack = new Stack(app, 'Many');
    for (let n = 0; n < 201; n++) new ChapCredentials(stack, `Chap${n}`, { targetArn: numberedTargetArn(n) });
    expect(() => app.synth()).toThrow(
      /'outputInitiatorNames' must leave stack 'Many' at most 200 outputs \(CloudFormation's limit\), got 201; set outputInitiatorNames: false/);
  });

  test('more resources than CloudFormation allows fail the synth, naming the limit and the count', () => {
    const app = new App();
    const stack = new Stack(app, 'Huge');
    for (let n = 0; n < 250; n++) new ChapCredentials(stack, `Chap${n}`, { targetArn: numberedTargetArn(n), outputInitiatorNames: false });
    expect(() => app.synth()).toThrow(/stack 'Huge' must hold at most 500 resources \(CloudFormation's limit\), got 503/);
  });

  test('200 targets with their outputs fit in one stack', () => {
    const app = new App();
    const stack = new Stack(app, 'Full');
    for (let n = 0; n < 200; n++) new ChapCredentials(stack, `Chap${n}`, { targetArn: numberedTargetArn(n) });
    expect(() => app.synth()).not.toThrow();
  });

  test.each([
    ['the documentation example (upper-case gateway id)', DOC_TARGET_ARN],
    ['a GovCloud ARN', 'arn:aws-us-gov:storagegateway:us-gov-west-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:v'],
    ['a China ARN', 'arn:aws-cn:storagegateway:cn-north-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:v1'],
  ])('accepts %s', (_, arn) => {
    expect(() => new ChapCredentials(newStack(), 'Chap', { targetArn: arn })).not.toThrow();
  });
});

describe('managed credentials', () => {
  const GATEWAY_ARN = 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B';
  const volumeIn = (stack: Stack) => new storagegateway.CfnVolume(stack, 'Volume', {
    gatewayArn: GATEWAY_ARN, targetName: 'db', networkInterfaceId: '10.0.0.10', volumeSizeInBytes: 150 * 1024 ** 3,
  });

  test('only managing constructs add gateway writes to the role, on exactly their targets, and reads of their credential keys', () => {
    const stack = newStack();
    const a = new ChapCredentials(stack, 'A', { targetArn: numberedTargetArn(1), initiators: [HOST_A], manageCredentials: true });
    new ChapCredentials(stack, 'B', { targetArn: numberedTargetArn(2), initiators: [HOST_A] });
    const c = new ChapCredentials(stack, 'C', { volume: volumeIn(stack), initiators: [HOST_B], manageCredentials: true, chapMode: ChapMode.ONE_WAY });
    const template = Template.fromStack(stack);
    const statements = Object.values(template.findResources('AWS::IAM::Role'))[0].Properties.Policies[0].PolicyDocument.Statement;
    const keyIds = Object.keys(template.findResources('AWS::SecretsManager::Secret')).filter((id) => id.includes('CredentialKey'));
    expect(keyIds).toHaveLength(1); // one credential key per stack, however many managing constructs
    expect(keyIds[0]).toMatch(/^ChapCredentialsProviderCredentialKey/);
    expect(statements.find((s: { Sid: string }) => s.Sid === 'ManageChapCredentials')).toEqual({
      Sid: 'ManageChapCredentials', Effect: 'Allow',
      Action: ['storagegateway:UpdateChapCredentials', 'storagegateway:DeleteChapCredentials'],
      Resource: [numberedTargetArn(1), stack.resolve(c.targetArn)],
    });
    expect(statements.find((s: { Sid: string }) => s.Sid === 'ReadCredentialKeys')).toEqual({
      Sid: 'ReadCredentialKeys', Effect: 'Allow', Action: 'secretsmanager:GetSecretValue', Resource: { Ref: keyIds[0] },
    });
    expect(stack.resolve(c.targetArn)).toEqual({ 'Fn::GetAtt': ['Volume', 'TargetARN'] });
    expect(a.managesCredentials).toBe(true);
    template.hasResourceProperties(RESOURCE_TYPE, {
      [Prop.TargetArn]: numberedTargetArn(1), [Prop.Manage]: 'mutual', [Prop.CredentialKeyArn]: { Ref: keyIds[0] },
      [Prop.RemoveAdopted]: Match.absent(),
    });
    template.hasResourceProperties(RESOURCE_TYPE, { [Prop.TargetArn]: { 'Fn::GetAtt': ['Volume', 'TargetARN'] }, [Prop.Manage]: 'one-way' });
    template.hasResourceProperties(RESOURCE_TYPE, { [Prop.TargetArn]: numberedTargetArn(2), [Prop.Manage]: Match.absent() });
  });

  test('removeAdoptedCredentials adds reading this stack\'s status, once, and nothing else does', () => {
    const statementsOf = (remove: boolean) => {
      const stack = newStack();
      for (const n of [1, 2]) {
        new ChapCredentials(stack, `C${n}`, {
          targetArn: numberedTargetArn(n), initiators: [HOST_A], manageCredentials: true, removeAdoptedCredentials: remove || undefined,
        });
      }
      const [role] = Object.values(Template.fromStack(stack).findResources('AWS::IAM::Role'));
      return role.Properties.Policies[0].PolicyDocument.Statement as { Sid: string }[];
    };
    expect(statementsOf(true).filter((st) => st.Sid === 'ReadStackStatus')).toEqual([
      { Sid: 'ReadStackStatus', Effect: 'Allow', Action: 'cloudformation:DescribeStacks', Resource: { Ref: 'AWS::StackId' } },
    ]);
    expect(statementsOf(false).map((st) => st.Sid)).not.toContain('ReadStackStatus');
  });

  test('the removal policy keeps managed credentials: the custom resource gets it too; a read-only one keeps the default', () => {
    const stack = newStack();
    new ChapCredentials(stack, 'A', { targetArn: numberedTargetArn(1), initiators: [HOST_A], manageCredentials: true, removalPolicy: RemovalPolicy.RETAIN });
    new ChapCredentials(stack, 'B', { targetArn: numberedTargetArn(2), removalPolicy: RemovalPolicy.RETAIN });
    const template = Template.fromStack(stack);
    const resources = template.findResources(RESOURCE_TYPE);
    const [managed, readOnly] = ['A', 'B'].map((p) => Object.entries(resources).find(([id]) => id.startsWith(p))![1]);
    expect(managed.DeletionPolicy).toBe('Retain');
    expect(managed.UpdateReplacePolicy).toBe('Retain');
    expect(readOnly.DeletionPolicy).toBe('Delete');
  });

  test('the host wiring takes the portal address from the volume', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', { volume: volumeIn(stack), initiators: [HOST_B] });
    const wiring = chap.wireHost({ initiatorName: HOST_B, grantee: new iam.Role(stack, 'R', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') }) });
    expect(wiring.linuxCommands).toContain("CHAP_PORTAL_ADDRESS='10.0.0.10'");
    expect(wiring.windowsCommands).toContain("$ChapPortalAddress = '10.0.0.10'");
    expect(chap.portalAddress).toBe('10.0.0.10');
  });

  test.each([
    ['neither targetArn nor volume', {}, "exactly one of 'targetArn' and 'volume' must be given, got neither"],
    ['both targetArn and volume', { targetArn: DOC_TARGET_ARN, volume: true }, "exactly one of 'targetArn' and 'volume' must be given, got both"],
    ['chapMode without manageCredentials', { targetArn: DOC_TARGET_ARN, chapMode: ChapMode.ONE_WAY },
      '\'chapMode\' needs \'manageCredentials: true\', got chapMode "one-way" without it'],
    ['removeAdoptedCredentials without manageCredentials', { targetArn: DOC_TARGET_ARN, removeAdoptedCredentials: true },
      "'removeAdoptedCredentials' needs 'manageCredentials: true', got removeAdoptedCredentials true without it"],
    ['manageCredentials without initiators', { targetArn: DOC_TARGET_ARN, manageCredentials: true },
      "'manageCredentials' needs the initiators to manage in 'initiators', got none"],
  ])('%s is refused, naming the prop, the rule and the value', (_, props, message) => {
    const stack = newStack();
    const { volume, ...rest } = props as Record<string, unknown>;
    expect(() => new ChapCredentials(stack, 'Chap', { ...rest, ...(volume ? { volume: volumeIn(stack) } : {}) })).toThrow(message);
  });

  test('a volume of another type and a wiring without any portal address are refused', () => {
    const stack = newStack();
    const bucket = new CfnResource(stack, 'Bucket', { type: 'AWS::S3::Bucket' });
    expect(() => new ChapCredentials(stack, 'A', { volume: bucket })).toThrow("'volume' must be an AWS::StorageGateway::Volume (aws_storagegateway.CfnVolume), got a AWS::S3::Bucket");
    const chap = new ChapCredentials(stack, 'B', { targetArn: DOC_TARGET_ARN, initiators: [HOST_B] });
    expect(() => chap.wireHost({ initiatorName: HOST_B, grantee: new iam.Role(stack, 'R', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') }) }))
      .toThrow("'portalAddress' must be given when the construct has no volume to take it from, got none");
  });
});

describe('the demo app', () => {
  const synthDemo = (context: Record<string, string>) => {
    const app = new App({ context: { targetArn: DOC_TARGET_ARN, ...context } });
    return Template.fromStack(demoStack(app));
  };

  test('-c volume, -c gatewayArn, -c manage, -c chap and -c initiators: a volume on that gateway, one-way CHAP set for those initiators', () => {
    const gatewayArn = 'arn:aws:storagegateway:eu-west-1:111122223333:gateway/sgw-0000AAAA';
    const template = synthDemo({ volume: 'true', gatewayArn, manage: 'true', chap: 'one-way', initiators: `${HOST_A},${HOST_B}`, host: 'true' });
    template.hasResourceProperties('AWS::StorageGateway::Volume', { GatewayARN: gatewayArn, NetworkInterfaceId: DEMO_VOLUME_PORTAL });
    template.hasResourceProperties(RESOURCE_TYPE, {
      [Prop.TargetArn]: { 'Fn::GetAtt': ['Volume', 'TargetARN'] }, [Prop.Manage]: 'one-way',
      [Prop.Initiators]: [HOST_A, HOST_B, DEMO_HOST_INITIATOR].map((Name) => Match.objectLike({ Name })),
    });
    const userData = JSON.stringify(Object.values(template.findResources('AWS::EC2::Instance'))[0].Properties.UserData);
    expect(userData).toContain(`CHAP_PORTAL_ADDRESS='${DEMO_VOLUME_PORTAL}'`);
  });

  test('without flags: read only, on the target of cdk.json; mutual CHAP is the managed default; a bad -c chap is refused', () => {
    synthDemo({}).hasResourceProperties(RESOURCE_TYPE, { [Prop.TargetArn]: DOC_TARGET_ARN, [Prop.Manage]: Match.absent() });
    synthDemo({ manage: 'true', initiators: HOST_A }).hasResourceProperties(RESOURCE_TYPE, { [Prop.Manage]: 'mutual' });
    expect(() => synthDemo({ manage: 'true', initiators: HOST_A, chap: 'two-way' })).toThrow("'-c chap' must be one of one-way, mutual, got 'two-way'");
  });
});
