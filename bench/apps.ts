/** The two stacks the benchmark compares: N ChapCredentials, or N AwsCustomResource calls of describeChapCredentials. */
import { App, CfnOutput, Stack } from 'aws-cdk-lib';
import { AwsCustomResource, AwsCustomResourcePolicy, PhysicalResourceId } from 'aws-cdk-lib/custom-resources';
import { ChapCredentials } from '../lib';

export type Kind = 'ChapCredentials' | 'AwsCustomResource';
export const STACK = 'Bench';

export function targetArn(n: number): string {
  return `arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:vol${n}`;
}

export function initiatorName(target: number, n: number): string {
  return `iqn.1994-05.com.redhat:t${target}-host-${String(n).padStart(3, '0')}`;
}

/** Builds the stack: `count` constructs, each declaring `initiators` initiators (ours only). */
export function benchStack(app: App, kind: Kind, count: number, initiators = 0): Stack {
  const stack = new Stack(app, STACK);
  for (let i = 0; i < count; i++) {
    if (kind === 'ChapCredentials') {
      new ChapCredentials(stack, `Chap${i}`, {
        targetArn: targetArn(i),
        initiators: initiators ? Array.from({ length: initiators }, (_, n) => initiatorName(i, n)) : undefined,
      });
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
