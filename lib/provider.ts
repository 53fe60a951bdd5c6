import * as fs from 'node:fs';
import * as path from 'node:path';
import { CfnOutput, CfnResource, Duration, IAspect, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct, IConstruct } from 'constructs';
import { CREDENTIAL_KEY_ENV } from './api';
import { acknowledge, addMutatingAspect, nodejs24Runtime } from './compat';

/** The handler bundle, built by `npm run build` (scripts/bundle.mjs). */
export const HANDLER_ASSET_DIR = path.join(__dirname, '..', 'assets', 'handler');

/** How long the handler may run; the handler answers CloudFormation before this runs out. */
export const HANDLER_TIMEOUT = Duration.minutes(2);

/** How long CloudFormation waits for an answer (instead of its default hour). */
export const SERVICE_TIMEOUT = Duration.minutes(5);

/** Acknowledges rule-pack findings on `scope` for cdk-nag 2 and 3 alike, with the reason (see compat.ts). */
export { acknowledge };

/** CloudFormation's limits for one stack. */
export const MAX_STACK_OUTPUTS = 200;
export const MAX_STACK_RESOURCES = 500;

/** What one ChapCredentials asks of the stack's provider. */
export interface ProviderRegistration {
  readonly targetArn: string;
  readonly secretArns: string[];
  readonly encryptionKey?: kms.IKey;
  /**
   * The credential key secret of a construct that manages its initiators' credentials on `targetArn`.
   *
   * @default - read only: the construct does not write to the gateway
   */
  readonly credentialKeyArn?: string;

  /**
   * The initiator secrets Secrets Manager rotates through this provider's function: the role may describe them and
   * move their version stages.
   *
   * @default - none
   */
  readonly rotatedSecretArns?: string[];

  /**
   * Whether the construct removes adopted credentials on request: the handler then reads the stack's status, so that a
   * rollback never removes them.
   *
   * @default false
   */
  readonly removesAdoptedCredentials?: boolean;
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
  /** The log group's resource: its KMS key is set when a customer key of the stack registers. */
  private get logGroupResource(): logs.CfnLogGroup {
    return this.logGroup.node.defaultChild as logs.CfnLogGroup;
  }
  private readonly policy = new iam.PolicyDocument();
  private readonly describeStatement = new iam.PolicyStatement({
    sid: 'DescribeChapCredentials',
    actions: ['storagegateway:DescribeChapCredentials'],
  });
  private readonly secretsStatement = new iam.PolicyStatement({
    sid: 'WriteChapSecrets',
    actions: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
  });
  /** Statements added on first use (a customer key, a managing construct), by sid. */
  private readonly onDemand = new Map<string, iam.PolicyStatement>();
  private readonly keys = new Set<kms.IKey>();
  /** The permission that lets Secrets Manager invoke the function for rotations, made on first use. */
  private rotationInvokePermission?: lambda.CfnPermission;
  /** The stack's credential key, made when the first managing construct registers. */
  private credentialKey?: secretsmanager.CfnSecret;
  /** Which construct manages each initiator, by target key (see _claimManagedInitiators). */
  private readonly managedInitiators = new Map<string, Map<string, { readonly path: string; readonly mode: string }>>();

  private constructor(scope: Construct, id: string) {
    super(scope, id);
    const stack = Stack.of(this);
    stack.node.addValidation({ validate: () => stackLimitErrors(stack) });
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
    // Encrypted with the first customer key of the stack given to a ChapCredentials, if any; decided at synth, when
    // the Aspect visits the L2 log group: before any rule pack running as an Aspect (cdk-nag 2) visits the resource.
    const logGroup = this.logGroup;
    const logGroupResource = this.logGroupResource;
    addMutatingAspect(logGroup, new (class implements IAspect {
      visit(node: IConstruct): void {
        if (node !== logGroup || logGroupResource.kmsKeyId) return;
        acknowledge(logGroupResource, ['NIST.800.53.R5-CloudWatchLogGroupEncrypted'],
          'No customer KMS key was given to a ChapCredentials of this stack. The log group holds no secret value (the handler '
          + 'logs request types, target ARNs and counts only) and CloudWatch Logs encrypts it at rest; give encryptionKey '
          + 'a kms.Key of this stack to have the log group encrypted with it.');
      }
    })());

    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: 'Reads Storage Gateway CHAP credentials and writes them to their Secrets Manager secrets',
      inlinePolicies: { ChapCredentials: this.policy },
    });
    acknowledge(this.role, ['NIST.800.53.R5-IAMNoInlinePolicy'],
      'One inline policy naming the exact target and secret ARNs: it exists before the function can run (no race with a '
      + 'separately attached policy), cannot be attached to any other principal, and is deleted with the role.');

    this.function = new lambda.Function(this, 'Handler', {
      description: 'Copies Storage Gateway CHAP credentials into Secrets Manager (ChapCredentials custom resource)',
      runtime: nodejs24Runtime(),
      architecture: lambda.Architecture.ARM_64,
      handler: 'index.handler',
      code: lambda.Code.fromAsset(HANDLER_ASSET_DIR),
      memorySize: 256,
      timeout: HANDLER_TIMEOUT,
      role: this.role,
      logGroup: this.logGroup,
    });
    acknowledge(this.function, ['NIST.800.53.R5-LambdaConcurrency'],
      'Invoked only by CloudFormation for this stack\'s custom resources. Reserved concurrency would take from the '
      + 'account\'s unreserved pool and fails to deploy in accounts at the minimum of 10.');
    acknowledge(this.function, ['NIST.800.53.R5-LambdaDLQ'],
      'The handler answers CloudFormation on every path before its timeout; an event it still cannot answer is retried by '
      + 'Lambda and then failed by the custom resource service timeout. A DLQ would only keep CloudFormation events '
      + 'with their pre-signed ResponseURL.');
    acknowledge(this.function, ['NIST.800.53.R5-LambdaInsideVPC'],
      'The function reaches only the public Storage Gateway and Secrets Manager APIs over TLS and accepts no inbound '
      + 'traffic; placing it in a VPC would need NAT or interface endpoints in every consuming stack.');
  }

  /**
   * The ARN of the stack's credential key, made on first use: one secret per stack, generated by CloudFormation and read
   * only by this provider's role, from which every managing construct of the stack derives the CHAP credentials it sets
   * (so an initiator gets the same target secret on every target of the stack). It is encrypted with the first customer
   * key a managing construct brings (`encryptionKey`), else with `aws/secretsmanager`; the function finds it in its
   * environment when Secrets Manager invokes it for a rotation.
   */
  public credentialKeyArn(encryptionKey?: kms.IKey): string {
    let secret = this.credentialKey;
    if (!secret) {
      secret = new secretsmanager.CfnSecret(new Construct(this, 'CredentialKey'), 'Resource', {
        description: 'Key from which ChapCredentials derives the CHAP credentials this stack sets on Storage Gateway targets (read only by its provider)',
        generateSecretString: { passwordLength: 64, excludePunctuation: true },
      });
      secret.applyRemovalPolicy(RemovalPolicy.DESTROY);
      acknowledge(secret, ['AwsSolutions-SMG4', 'NIST.800.53.R5-SecretsManagerRotationEnabled'],
        'The key identifies the CHAP credentials this stack set on the gateway; rotating it would make the stack forget them '
        + '(they would then be left on the gateway when their initiator leaves). The CHAP credentials themselves rotate '
        + 'through Secrets Manager with the rotation prop of ChapCredentials.');
      const keySecret = secret;
      addMutatingAspect(this, new (class implements IAspect {
        visit(node: IConstruct): void {
          if (node !== keySecret || keySecret.kmsKeyId) return;
          acknowledge(keySecret, ['NIST.800.53.R5-SecretsManagerUsingKMSKey'],
            'No managing ChapCredentials of this stack was given a customer key (encryptionKey), so the stack\'s credential '
            + 'key uses the aws/secretsmanager key; give encryptionKey a customer managed key to meet this control.');
        }
      })());
      this.function.addEnvironment(CREDENTIAL_KEY_ENV, secret.ref);
      this.statement('ReadCredentialKeys', ['secretsmanager:GetSecretValue']).addResources(secret.ref);
      this.credentialKey = secret;
    }
    if (encryptionKey && !secret.kmsKeyId) secret.kmsKeyId = encryptionKey.keyArn;
    return secret.ref;
  }

  /**
   * The permission that lets Secrets Manager invoke the function as the rotation function of this account's secrets
   * (`aws:SourceAccount`), made once per stack. Rotation schedules depend on it, so none exists before the function
   * may be invoked.
   */
  public rotationPermission(): lambda.CfnPermission {
    this.rotationInvokePermission ??= new lambda.CfnPermission(this, 'RotationPermission', {
      action: 'lambda:InvokeFunction',
      functionName: this.function.functionArn,
      principal: 'secretsmanager.amazonaws.com',
      sourceAccount: Stack.of(this).account,
    });
    return this.rotationInvokePermission;
  }

  /** Allows the handler exactly what one ChapCredentials needs. */
  public register(registration: ProviderRegistration): void {
    this.describeStatement.addResources(registration.targetArn);
    this.secretsStatement.addResources(...registration.secretArns);
    if (registration.credentialKeyArn) {
      // Only stacks with a managing construct may write to the gateway, and only on the managed targets.
      // (The role reads the stack's credential key by the statement credentialKeyArn() adds when it makes the key.)
      this.statement('ManageChapCredentials', ['storagegateway:UpdateChapCredentials', 'storagegateway:DeleteChapCredentials'])
        .addResources(registration.targetArn);
    }
    if (registration.rotatedSecretArns?.length) {
      // Rotation steps: the version stages of exactly the rotated secrets (values are read and written as before).
      this.statement('RotateChapSecrets', ['secretsmanager:DescribeSecret', 'secretsmanager:UpdateSecretVersionStage'])
        .addResources(...registration.rotatedSecretArns);
    }
    if (registration.removesAdoptedCredentials && !this.onDemand.has('ReadStackStatus')) {
      this.statement('ReadStackStatus', ['cloudformation:DescribeStacks']).addResources(Stack.of(this).stackId);
    }
    const key = registration.encryptionKey;
    if (key && !this.keys.has(key)) {
      this.keys.add(key);
      this.statement('UseChapSecretKeysThroughSecretsManager', ['kms:Decrypt', 'kms:GenerateDataKey'],
        { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } }).addResources(key.keyArn);
      this.encryptLogsWith(key);
    }
  }

  /**
   * Records that `owner` manages `initiators` on `target` (whose key is the same for the same target), and fails when
   * another construct of the stack manages one of them there already: both would set its credentials at each deploy,
   * and each would remove them when it leaves. Internal: for ChapCredentials only.
   *
   * @internal
   */
  public _claimManagedInitiators(owner: IConstruct, target: { readonly key: string; readonly description: string },
    initiators: readonly string[], mode: string): void {
    const claims = this.managedInitiators.get(target.key) ?? new Map<string, { path: string; mode: string }>();
    this.managedInitiators.set(target.key, claims);
    for (const name of initiators) {
      const other = claims.get(name);
      if (other) {
        throw new Error(`'initiators' of '${owner.node.path}' must not manage '${name}' on ${target.description}: `
          + `'${other.path}' of the same stack manages it already (${other.mode}; this one asks ${mode}), and both would `
          + 'set its CHAP credentials at each deploy; manage each initiator of a target in one ChapCredentials (another may '
          + 'declare it without manageCredentials to read it)');
      }
      claims.set(name, { path: owner.node.path, mode });
    }
  }

  /** The policy's statement `sid`, added to the policy the first time it is asked for. */
  private statement(sid: string, actions: string[], conditions?: Record<string, unknown>): iam.PolicyStatement {
    let statement = this.onDemand.get(sid);
    if (!statement) {
      statement = new iam.PolicyStatement({ sid, actions, conditions });
      this.onDemand.set(sid, statement);
      this.policy.addStatements(statement);
    }
    return statement;
  }

  /** Encrypts the log group with the first customer key of this stack, whose policy it can extend for CloudWatch Logs. */
  private encryptLogsWith(key: kms.IKey): void {
    const logGroup = this.logGroupResource;
    if (logGroup.kmsKeyId || !(key instanceof kms.Key) || Stack.of(key) !== Stack.of(this)) return;
    const stack = Stack.of(this);
    key.addToResourcePolicy(new iam.PolicyStatement({
      sid: 'ChapCredentialsLogGroup',
      principals: [new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`)],
      actions: ['kms:Encrypt*', 'kms:Decrypt*', 'kms:ReEncrypt*', 'kms:GenerateDataKey*', 'kms:Describe*'],
      resources: ['*'],
      conditions: { ArnLike: { 'kms:EncryptionContext:aws:logs:arn': `arn:${stack.partition}:logs:${stack.region}:${stack.account}:log-group:*` } },
    }));
    logGroup.kmsKeyId = key.keyArn;
  }
}

/** The stack's outputs and resources against CloudFormation's limits, checked when the app synthesizes. */
function stackLimitErrors(stack: Stack): string[] {
  const all = stack.node.findAll();
  const outputs = all.filter((c) => c instanceof CfnOutput).length;
  const resources = all.filter((c) => c instanceof CfnResource).length;
  const errors: string[] = [];
  if (outputs > MAX_STACK_OUTPUTS) {
    errors.push(`'outputInitiatorNames' must leave stack '${stack.stackName}' at most ${MAX_STACK_OUTPUTS} outputs `
      + `(CloudFormation's limit), got ${outputs}; set outputInitiatorNames: false on some ChapCredentials`);
  }
  if (resources > MAX_STACK_RESOURCES) {
    errors.push(`stack '${stack.stackName}' must hold at most ${MAX_STACK_RESOURCES} resources (CloudFormation's limit), `
      + `got ${resources}; spread the ChapCredentials over more stacks`);
  }
  return errors;
}
