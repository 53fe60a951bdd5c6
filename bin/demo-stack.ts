import { App, Duration, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as storagegateway from 'aws-cdk-lib/aws-storagegateway';
import { ChapCredentials, ChapMode, ChapRotation } from '../lib';

/** The initiator name of the demo's optional Linux host. */
export const DEMO_HOST_INITIATOR = 'iqn.1994-05.com.redhat:demo-host';

/** The gateway of the Storage Gateway documentation's example target: the demo's volumes go there by default. */
export const DEMO_GATEWAY_ARN = 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B';

/** The iSCSI address of the demo volume's gateway. */
export const DEMO_VOLUME_PORTAL = '10.0.0.10';

/**
 * The demo app's stack: one ChapCredentials for the context key `targetArn`, declaring the comma-separated
 * initiators of the context key `initiators` when given. With `-c host=true`, it adds one Linux instance wired to
 * the target (its gateway address from `-c portal=ADDRESS`, default 10.0.0.10). With `-c manage=true` the construct
 * sets the declared initiators' CHAP credentials on the gateway (mutual, or one-way with `-c chap=one-way`). With
 * `-c volume=true` it creates a cached iSCSI volume (`CfnVolume`) on the gateway `-c gatewayArn=...` (default: the
 * documentation example's gateway) and targets it; hosts then connect to the volume's address. With `-c rotation=DAYS`
 * (and `-c manage=true`), Secrets Manager rotates the managed initiators' credentials every DAYS days.
 */
export function demoStack(app: App): Stack {
  const context = (key: string) => {
    const value = app.node.tryGetContext(key);
    return typeof value === 'string' ? value : value === undefined ? undefined : String(value);
  };
  const withVolume = context('volume') === 'true';
  const targetArn = app.node.tryGetContext('targetArn');
  if (!withVolume && (typeof targetArn !== 'string' || targetArn === '')) {
    throw new Error("The demo app needs a target ARN: pass '-c targetArn=arn:aws:storagegateway:...' or set it in cdk.json");
  }
  const chapMode = context('chap');
  if (chapMode !== undefined && !(Object.values(ChapMode) as string[]).includes(chapMode)) {
    throw new Error(`'-c chap' must be one of ${Object.values(ChapMode).join(', ')}, got '${chapMode}'`);
  }
  const withHost = context('host') === 'true';
  const initiators = [...(context('initiators') ? context('initiators')!.split(',') : []), ...(withHost ? [DEMO_HOST_INITIATOR] : [])];
  const stack = new Stack(app, 'ChapCredentialsDemo', {
    description: 'Demo of ChapCredentials: Storage Gateway CHAP credentials in Secrets Manager',
  });
  const volume = withVolume ? new storagegateway.CfnVolume(stack, 'Volume', {
    gatewayArn: context('gatewayArn') ?? DEMO_GATEWAY_ARN,
    targetName: 'demo-volume',
    networkInterfaceId: DEMO_VOLUME_PORTAL,
    volumeSizeInBytes: 150 * 1024 ** 3,
  }) : undefined;
  const manage = context('manage') === 'true';
  const rotationDays = context('rotation');
  if (rotationDays !== undefined && !/^\d+$/.test(rotationDays)) {
    throw new Error(`'-c rotation' must be a whole number of days (1 to 1000), got '${rotationDays}'`);
  }
  const chap = new ChapCredentials(stack, 'Chap', {
    ...(volume ? { volume } : { targetArn }),
    initiators: initiators.length ? initiators : undefined,
    ...(manage ? { manageCredentials: true, chapMode: chapMode as ChapMode | undefined } : {}),
    // Without -c manage=true, the construct refuses the rotation, naming the prop.
    ...(rotationDays !== undefined ? { rotation: ChapRotation.every(Duration.days(Number(rotationDays))) } : {}),
  });

  if (withHost) {
    const vpc = new ec2.Vpc(stack, 'Vpc', {
      maxAzs: 1, natGateways: 0, subnetConfiguration: [{ name: 'hosts', subnetType: ec2.SubnetType.PUBLIC }],
      // No custom resource of aws-cdk-lib's own in the demo: the local driver runs only this library's handler.
      restrictDefaultSecurityGroup: false,
    });
    const host = new ec2.Instance(stack, 'LinuxHost', {
      vpc,
      instanceType: ec2.InstanceType.of(ec2.InstanceClass.T3, ec2.InstanceSize.MICRO),
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      requireImdsv2: true,
    });
    const portalAddress = context('portal') ?? (volume ? undefined : DEMO_VOLUME_PORTAL); // a volume gives its own
    const wiring = chap.wireHost({ initiatorName: DEMO_HOST_INITIATOR, portalAddress, grantee: host });
    host.userData.addCommands(...wiring.linuxCommands);
  }
  return stack;
}
