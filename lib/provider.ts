import * as fs from 'node:fs';
import * as path from 'node:path';
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/** The handler bundle, built by `npm run build` (scripts/bundle.mjs). */
export const HANDLER_ASSET_DIR = path.join(__dirname, '..', 'assets', 'handler');

/** How long the handler may run; the handler answers CloudFormation before this runs out. */
export const HANDLER_TIMEOUT = Duration.minutes(2);

/** How long CloudFormation waits for an answer (instead of its default hour). */
export const SERVICE_TIMEOUT = Duration.minutes(5);

/** What one ChapCredentials asks of the stack's provider. */
export interface ProviderRegistration {
  readonly targetArn: string;
  readonly secretArns: readonly string[];
  readonly encryptionKey?: kms.IKey;
}

/**
 * The stack's single handler function and role, shared by every ChapCredentials in the stack. Its role's
 * inline policy lists exactly the targets and secrets registered with it.
 */
export class ChapCredentialsProvider extends Construct {
  /** The provider of the stack that holds `scope`, created on first use. */
  public static getOrCreate(scope: Construct): ChapCredentialsProvider {
    const stack = Stack.of(scope);
    const id = 'ChapCredentialsProvider';
    return (stack.node.tryFindChild(id) as ChapCredentialsProvider | undefined) ?? new ChapCredentialsProvider(stack, id);
  }

  public readonly function: lambda.Function;
  public readonly role: iam.Role;
  public readonly logGroup: logs.LogGroup;
  private readonly policy = new iam.PolicyDocument();
  private readonly describeStatement = new iam.PolicyStatement({
    sid: 'DescribeChapCredentials',
    actions: ['storagegateway:DescribeChapCredentials'],
  });
  private readonly secretsStatement = new iam.PolicyStatement({
    sid: 'WriteChapSecrets',
    actions: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
  });
  private kmsStatement?: iam.PolicyStatement;
  private readonly keys = new Set<kms.IKey>();

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    if (!fs.existsSync(path.join(HANDLER_ASSET_DIR, 'index.js'))) {
      throw new Error(`The ChapCredentials handler bundle is missing at ${HANDLER_ASSET_DIR}: run 'npm run build' first`);
    }
    this.logGroup = new logs.LogGroup(this, 'LogGroup', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.policy.addStatements(this.describeStatement, this.secretsStatement, new iam.PolicyStatement({
      sid: 'WriteLogs',
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [this.logGroup.logGroupArn],
    }));
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Reads Storage Gateway CHAP credentials and writes them to their Secrets Manager secrets',
      inlinePolicies: { ChapCredentials: this.policy },
    });
    this.function = new lambda.Function(this, 'Handler', {
      description: 'Copies Storage Gateway CHAP credentials into Secrets Manager (ChapCredentials custom resource)',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(HANDLER_ASSET_DIR),
      memorySize: 256,
      timeout: HANDLER_TIMEOUT,
      role: this.role,
      logGroup: this.logGroup,
    });
  }

  /** Allows the handler exactly what one ChapCredentials needs. */
  public register(registration: ProviderRegistration): void {
    this.describeStatement.addResources(registration.targetArn);
    this.secretsStatement.addResources(...registration.secretArns);
    const key = registration.encryptionKey;
    if (key && !this.keys.has(key)) {
      this.keys.add(key);
      if (!this.kmsStatement) {
        this.kmsStatement = new iam.PolicyStatement({
          sid: 'UseChapSecretKeysThroughSecretsManager',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } },
        });
        this.policy.addStatements(this.kmsStatement);
      }
      this.kmsStatement.addResources(key.keyArn);
    }
  }
}
