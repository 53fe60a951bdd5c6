import { App, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { ChapCredentials } from '../lib';

/** The initiator name of the demo's optional Linux host. */
export const DEMO_HOST_INITIATOR = 'iqn.1994-05.com.redhat:demo-host';

/**
 * The demo app's stack: one ChapCredentials for the context key `targetArn`, declaring the comma-separated
 * initiators of the context key `initiators` when given. With `-c host=true`, it adds one Linux instance wired to
 * the target (its gateway address from `-c portal=ADDRESS`, default 10.0.0.10).
 */
export function demoStack(app: App): Stack {
  const targetArn = app.node.tryGetContext('targetArn');
  if (typeof targetArn !== 'string' || targetArn === '') {
    throw new Error("The demo app needs a target ARN: pass '-c targetArn=arn:aws:storagegateway:...' or set it in cdk.json");
  }
  const context = (key: string) => {
    const value = app.node.tryGetContext(key);
    return typeof value === 'string' ? value : value === undefined ? undefined : String(value);
  };
  const withHost = context('host') === 'true';
  const initiators = [...(context('initiators') ? context('initiators')!.split(',') : []), ...(withHost ? [DEMO_HOST_INITIATOR] : [])];
  const stack = new Stack(app, 'ChapCredentialsDemo', {
    description: 'Demo of ChapCredentials: Storage Gateway CHAP credentials in Secrets Manager',
  });
  const chap = new ChapCredentials(stack, 'Chap', { targetArn, initiators: initiators.length ? initiators : undefined });

  if (withHost) {
    const vpc = new ec2.Vpc(stack, 'Vpc', { maxAzs: 1, natGateways: 0, subnetConfiguration: [{ name: 'hosts', subnetType: ec2.SubnetType.PUBLIC }] });
    const host = new ec2.Instance(stack, 'LinuxHost', {
      vpc,
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MICRO),
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      requireImdsv2: true,
    });
    const wiring = chap.wireHost({ initiatorName: DEMO_HOST_INITIATOR, portalAddress: context('portal') ?? '10.0.0.10', grantee: host });
    host.userData.addCommands(...wiring.linuxCommands);
  }
  return stack;
}
