/**
 * Our construct used as another language uses it, and the same app in TypeScript. Needs the jsii build: until `npm
 * pack` of this package carries a `.jsii` assembly, `packThisPackage` refuses the tarball and the kernel could not load
 * it anyway (see the skipped block of test/jsii-kernel.test.ts).
 */
import { execFileSync } from 'node:child_process';
import { App, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as storagegateway from 'aws-cdk-lib/aws-storagegateway';
import { ChapCredentials, ChapMode } from '../../lib';
import { DOC_TARGET_ARN, HOST_A, HOST_B } from '../fixtures';
import { npmPack } from './assemblies';
import { synthThroughKernel } from './cdk';
import { KernelClient, KernelError, NamingResponse, ObjRef } from './kernel-client';

/** The jsii fqn of our construct: `<assembly name>.<class>`. */
export const CHAP_FQN = 'cdk-chap-credentials.ChapCredentials';
export const PORTAL_ADDRESS = '10.0.0.10';
export const BAD_TARGET_ARN = 'arn:aws:s3:::bucket';

export interface ChapOutcome {
  readonly template: Record<string, unknown>;
  /**
   * The host's boot commands, resolved by the stack (`stack.resolve`), as CloudFormation gets them: unresolved, they
   * hold token markers whose numbers depend on the process.
   */
  readonly wiring: { readonly linuxCommands: unknown; readonly windowsCommands: unknown };
  readonly grantSuccess: boolean;
  /** The managed construct's host wiring (portal taken from the volume), resolved. */
  readonly managedLinuxCommands: unknown;
  readonly managesCredentials: boolean;
}

/** The cached iSCSI volume the managed construct targets. */
export const VOLUME_PROPS = {
  gatewayArn: 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B', targetName: 'db',
  networkInterfaceId: PORTAL_ADDRESS, volumeSizeInBytes: 150 * 1024 ** 3,
};

export interface ChapKernelOutcome extends ChapOutcome {
  /** What the kernel answered to a ChapCredentials with targetArn `arn:aws:s3:::bucket`. */
  readonly badTargetArn: KernelError;
  /** The kernel's `naming` of our assembly: each language's package names. */
  readonly naming: NamingResponse['naming'];
}

/** `npm pack` of this package (built beforehand) into `destDir`; refuses a tarball without a jsii assembly. */
export async function packThisPackage(root: string, destDir: string): Promise<string> {
  const tarball = await npmPack(root, destDir);
  const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).split('\n');
  if (!files.includes('package/.jsii')) throw new Error(`${tarball} has no package/.jsii: the package is not built by jsii`);
  return tarball;
}

/**
 * Loads our tarball into `kernel` (which has aws-cdk-lib and constructs loaded already) and builds, request by request:
 * a stack with a host role, a ChapCredentials for the documentation's target with one declared initiator, a read grant
 * of that initiator's secret to the role, and the host wiring; synthesizes it. Separately (in an app of its own, so the
 * template is not touched), a ChapCredentials with a bad targetArn, whose error is returned.
 */
export async function chapThroughKernel(kernel: KernelClient, tarball: string, outdir: string): Promise<ChapKernelOutcome> {
  const pkg = JSON.parse(execFileSync('tar', ['-xzOf', tarball, 'package/package.json'], { encoding: 'utf8' })) as { name: string; version: string };
  const { assembly } = await kernel.load(pkg.name, pkg.version, tarball);
  if (`${assembly}.ChapCredentials` !== CHAP_FQN) throw new Error(`the tarball's assembly is '${assembly}', expected ${CHAP_FQN}`);

  const app = await kernel.create('aws-cdk-lib.App', [{ outdir }]);
  const stack = await kernel.create('aws-cdk-lib.Stack', [app, 'Consumer']);
  const role = await kernel.create('aws-cdk-lib.aws_iam.Role', [stack, 'HostRole', {
    assumedBy: await kernel.create('aws-cdk-lib.aws_iam.ServicePrincipal', ['ec2.amazonaws.com']),
  }]);
  const chap = await kernel.create(CHAP_FQN, [stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_B] }]);
  const grant = await kernel.invoke(chap, 'grantReadInitiator', [HOST_B, role]) as ObjRef;
  const wiring = await kernel.invoke(chap, 'wireHost', [{ initiatorName: HOST_B, portalAddress: PORTAL_ADDRESS, grantee: role }]) as ObjRef;
  // A managed construct on a CfnVolume, one-way CHAP (an enum across the wire), wired from the volume's address.
  const volume = await kernel.create('aws-cdk-lib.aws_storagegateway.CfnVolume', [stack, 'Volume', VOLUME_PROPS]);
  const managed = await kernel.create(CHAP_FQN, [stack, 'Managed', {
    volume, initiators: [HOST_A], manageCredentials: true, chapMode: { '$jsii.enum': `${assembly}.ChapMode/ONE_WAY` },
  }]);
  const managedWiring = await kernel.invoke(managed, 'wireHost', [{ initiatorName: HOST_A, grantee: role }]) as ObjRef;

  const rejectedApp = await kernel.create('aws-cdk-lib.App', [{ outdir: `${outdir}-rejected` }]);
  const rejectedStack = await kernel.create('aws-cdk-lib.Stack', [rejectedApp, 'Rejected']);
  const badTargetArn = await kernel.create(CHAP_FQN, [rejectedStack, 'Bad', { targetArn: BAD_TARGET_ARN }])
    .then(() => { throw new Error(`the kernel accepted targetArn '${BAD_TARGET_ARN}'`); }, (e: unknown) => {
      if (!(e instanceof KernelError)) throw e;
      return e;
    });

  return {
    template: await synthThroughKernel(kernel, app, 'Consumer'),
    wiring: {
      linuxCommands: await kernel.invoke(stack, 'resolve', [await kernel.get(wiring, 'linuxCommands')]),
      windowsCommands: await kernel.invoke(stack, 'resolve', [await kernel.get(wiring, 'windowsCommands')]),
    },
    managedLinuxCommands: await kernel.invoke(stack, 'resolve', [await kernel.get(managedWiring, 'linuxCommands')]),
    managesCredentials: await kernel.get(managed, 'managesCredentials') as boolean,
    grantSuccess: await kernel.get(grant, 'success') as boolean,
    badTargetArn,
    naming: (await kernel.naming(assembly)).naming,
  };
}

/** The same app in TypeScript, in this process, with the same construct ids. */
export function chapInTypeScript(outdir: string): ChapOutcome & { readonly badTargetArnMessage: string } {
  const app = new App({ outdir });
  const stack = new Stack(app, 'Consumer');
  const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com') });
  const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiators: [HOST_B] });
  const grant = chap.grantReadInitiator(HOST_B, role);
  const wiring = chap.wireHost({ initiatorName: HOST_B, portalAddress: PORTAL_ADDRESS, grantee: role });
  const volume = new storagegateway.CfnVolume(stack, 'Volume', VOLUME_PROPS);
  const managed = new ChapCredentials(stack, 'Managed', { volume, initiators: [HOST_A], manageCredentials: true, chapMode: ChapMode.ONE_WAY });
  const managedWiring = managed.wireHost({ initiatorName: HOST_A, grantee: role });
  let badTargetArnMessage = '';
  try {
    new ChapCredentials(new Stack(new App(), 'Rejected'), 'Bad', { targetArn: BAD_TARGET_ARN });
  } catch (e) {
    badTargetArnMessage = (e as Error).message;
  }
  return {
    template: app.synth().getStackByName('Consumer').template as Record<string, unknown>,
    wiring: { linuxCommands: stack.resolve(wiring.linuxCommands), windowsCommands: stack.resolve(wiring.windowsCommands) },
    managedLinuxCommands: stack.resolve(managedWiring.linuxCommands),
    managesCredentials: managed.managesCredentials,
    grantSuccess: grant.success,
    badTargetArnMessage,
  };
}
