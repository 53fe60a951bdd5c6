/** The stacks the benchmark compares: N ChapCredentials, N AwsCustomResource calls of describeChapCredentials, or the Floor. */
import { App, CfnOutput, CfnResource, Stack } from 'aws-cdk-lib';
import { AwsCustomResource, AwsCustomResourcePolicy, PhysicalResourceId } from 'aws-cdk-lib/custom-resources';
import { ChapCredentials } from '../lib';
import { Attr, Prop, RESOURCE_TYPE } from '../lib/api';
import { ChapCredentialsProvider } from '../lib/provider';

/**
 * `Floor` is not a product: the three CloudFormation elements a ChapCredentials must add (its secret, its custom
 * resource, its output) as bare L1s beside the same provider, with nothing else; what aws-cdk-lib itself costs.
 */
export type Kind = 'ChapCredentials' | 'AwsCustomResource' | 'Floor';
export const STACK = 'Bench';

export function targetArn(n: number): string {
  return `arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:vol${n}`;
}

export function initiatorName(target: number, n: number): string {
  return `iqn.1994-05.com.redhat:t${target}-host-${String(n).padStart(3, '0')}`;
}

/** Options of the ChapCredentials kind only. */
export interface BenchOptions {
  /** The constructs set their declared initiators' credentials on the gateway (`manageCredentials`, mutual CHAP). */
  readonly manageCredentials?: boolean;
}

/** Builds the stack: `count` constructs, each declaring `initiators` initiators (ours only). */
export function benchStack(app: App, kind: Kind, count: number, initiators = 0, options: BenchOptions = {}): Stack {
  const stack = new Stack(app, STACK);
  for (let i = 0; i < count; i++) {
    if (kind === 'ChapCredentials') {
      new ChapCredentials(stack, `Chap${i}`, {
        targetArn: targetArn(i),
        initiators: initiators ? Array.from({ length: initiators }, (_, n) => initiatorName(i, n)) : undefined,
        ...(options.manageCredentials ? { manageCredentials: true } : {}),
      });
    } else if (kind === 'Floor') {
      const provider = ChapCredentialsProvider.getOrCreate(stack);
      const secret = new CfnResource(stack, `Chap${i}Secret`, { type: 'AWS::SecretsManager::Secret', properties: { GenerateSecretString: {} } });
      provider.register({ targetArn: targetArn(i), secretArns: [secret.ref] });
      const resource = new CfnResource(stack, `Chap${i}`, {
        type: RESOURCE_TYPE,
        properties: { ServiceToken: provider.function.functionArn, [Prop.TargetArn]: targetArn(i), [Prop.TargetSecretArn]: secret.ref },
      });
      new CfnOutput(stack, `Chap${i}InitiatorNames`, { value: resource.getAtt(Attr.InitiatorNames).toString() });
    } else {
      const call = {
        service: 'StorageGateway',
        action: 'describeChapCredentials',
        parameters: { TargetARN: targetArn(i) },
        physicalResourceId: PhysicalResourceId.of(targetArn(i)),
      };
      const resource = new AwsCustomResource(stack, `Chap${i}`, {
        onCreate: call,
        onUpdate: call,
        policy: AwsCustomResourcePolicy.fromSdkCalls({ resources: [targetArn(i)] }),
        installLatestAwsSdk: false,
      });
      new CfnOutput(stack, `Chap${i}InitiatorName`, { value: resource.getResponseField('ChapCredentials.0.InitiatorName') });
    }
  }
  return stack;
}
