/**
 * aws-cdk-lib (and, once the library is a jsii assembly, our construct) used the way Python, Java, .NET and Go use
 * it: through the jsii kernel that each of those languages embeds (@jsii/runtime's webpack bundle in a child node
 * process, driven over its stdio protocol), with the packages handed over as npm tarballs. Nothing here imports the
 * library under test in-process except the TypeScript apps the kernel's templates are compared with.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, Aspects, Duration, IAspect, Stack, Tags } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { IConstruct } from 'constructs';
import { HOST_B } from './fixtures';
import { InstalledAssembly, PackedAssembly, installedDir, jsiiLoadOrder, loadAll, packAll } from './jsii/assemblies';
import { synthThroughKernel } from './jsii/cdk';
import { PORTAL_ADDRESS, chapInTypeScript, chapThroughKernel, packThisPackage } from './jsii/chap-scenario';
import {
  Callback, KernelClient, KernelError, KernelErrorType, ObjRef, fromWire, refFqn, wireDate, wireEnum, wireStruct,
} from './jsii/kernel-client';

const ROOT = path.join(__dirname, '..');
/** Everything of one run (tarballs, the kernel's temp dir and package cache, cloud assemblies); removed afterwards. */
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-jsii-kernel-'));
const outdir = (name: string) => path.join(work, 'cdk.out', name);
const mkdir = (dir: string) => {
  fs.mkdirSync(dir, { recursive: true });
  return dir;
};

let order: InstalledAssembly[];
let packed: PackedAssembly[];
let kernel: KernelClient;

beforeAll(async () => {
  order = jsiiLoadOrder(installedDir('aws-cdk-lib', ROOT));
  packed = await packAll(order, mkdir(path.join(work, 'tarballs')));
  kernel = await KernelClient.start({
    env: {
      // The kernel's install dir goes under TMPDIR; its package cache (on by default in every language) goes here too,
      // not under ~/.cache.
      TMPDIR: mkdir(path.join(work, 'tmp')),
      JSII_RUNTIME_PACKAGE_CACHE_ROOT: path.join(work, 'package-cache'),
    },
  });
  await loadAll(kernel, packed);
}, 120_000);

afterAll(async () => {
  await kernel?.close();
  fs.rmSync(work, { recursive: true, force: true });
});

afterEach(() => {
  if (kernel) kernel.onCallback = undefined;
});

const installedVersion = (name: string): string =>
  (JSON.parse(fs.readFileSync(path.join(installedDir(name, ROOT), 'package.json'), 'utf8')) as { version: string }).version;

const POLICY = { actions: ['s3:GetObject'], resources: ['arn:aws:s3:::host-config/*'] };
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:host-b-AbCdEf';

interface AppOutcome {
  readonly template: Record<string, unknown>;
  /** Paths of the constructs the aspect visited, in order. */
  readonly visited: string[];
  readonly grantSuccess: unknown;
  readonly tags: unknown;
}

/**
 * The app, written as another language writes it (each call one kernel request): a stack with a description and a
 * tag, a role for an EC2 host with a 2-hour session, a policy statement with an enum, a grant, and an aspect that the
 * host implements (the kernel calls it back for every construct; it reads the node's path and, on the CfnRole, sets
 * a property override, both through nested kernel requests).
 */
async function appThroughKernel(dir: string): Promise<AppOutcome> {
  const visited: string[] = [];
  kernel.onCallback = async (cb: Callback) => {
    if (cb.invoke?.method !== 'visit') throw new Error(`unexpected callback ${JSON.stringify(cb)}`);
    const node = cb.invoke.args![0] as ObjRef;
    visited.push(await kernel.get(await kernel.get(node, 'node') as ObjRef, 'path') as string);
    if (refFqn(node) === 'aws-cdk-lib.aws_iam.CfnRole') await kernel.invoke(node, 'addPropertyOverride', ['Path', '/hosts/']);
    return undefined;
  };
  const app = await kernel.create('aws-cdk-lib.App', [{ outdir: dir }]);
  const stack = await kernel.create('aws-cdk-lib.Stack', [app, 'Consumer']);
  await kernel.set(await kernel.get(stack, 'templateOptions') as ObjRef, 'description', 'Hosts of the iSCSI target');
  await kernel.invoke(await kernel.sinvoke('aws-cdk-lib.Tags', 'of', [stack]) as ObjRef, 'add', ['team', 'storage']);
  const role = await kernel.create('aws-cdk-lib.aws_iam.Role', [stack, 'HostRole', wireStruct('aws-cdk-lib.aws_iam.RoleProps', {
    assumedBy: await kernel.create('aws-cdk-lib.aws_iam.ServicePrincipal', ['ec2.amazonaws.com']),
    maxSessionDuration: await kernel.sinvoke('aws-cdk-lib.Duration', 'hours', [2]),
  })]);
  const statement = await kernel.create('aws-cdk-lib.aws_iam.PolicyStatement', [{ effect: wireEnum('aws-cdk-lib.aws_iam.Effect', 'ALLOW'), ...POLICY }]);
  await kernel.invoke(role, 'addToPrincipalPolicy', [statement]);
  const grant = await kernel.sinvoke('aws-cdk-lib.aws_iam.Grant', 'addToPrincipal', [{
    grantee: role, actions: ['secretsmanager:GetSecretValue'], resourceArns: [SECRET_ARN],
  }]) as ObjRef;
  const aspect = await kernel.create('Object', [], { interfaces: ['aws-cdk-lib.IAspect'], overrides: [{ method: 'visit' }] });
  await kernel.invoke(await kernel.sinvoke('aws-cdk-lib.Aspects', 'of', [app]) as ObjRef, 'add', [aspect]);
  const template = await synthThroughKernel(kernel, app, 'Consumer');
  const tags = fromWire(await kernel.invoke(await kernel.get(stack, 'tags') as ObjRef, 'tagValues'));
  return { template, visited, grantSuccess: await kernel.get(grant, 'success'), tags };
}

/** The same app in TypeScript, in this process, with the same construct ids. */
function appInTypeScript(dir: string): AppOutcome {
  const visited: string[] = [];
  const app = new App({ outdir: dir });
  const stack = new Stack(app, 'Consumer');
  stack.templateOptions.description = 'Hosts of the iSCSI target';
  Tags.of(stack).add('team', 'storage');
  const role = new iam.Role(stack, 'HostRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'), maxSessionDuration: Duration.hours(2) });
  role.addToPrincipalPolicy(new iam.PolicyStatement({ effect: iam.Effect.ALLOW, ...POLICY }));
  const grant = iam.Grant.addToPrincipal({ grantee: role, actions: ['secretsmanager:GetSecretValue'], resourceArns: [SECRET_ARN] });
  const aspect: IAspect = {
    visit(node: IConstruct) {
      visited.push(node.node.path);
      if (node instanceof iam.CfnRole) node.addPropertyOverride('Path', '/hosts/');
    },
  };
  Aspects.of(app).add(aspect);
  const template = app.synth().getStackByName('Consumer').template as Record<string, unknown>;
  return { template, visited, grantSuccess: grant.success, tags: stack.tags.tagValues() };
}

describe('aws-cdk-lib through the jsii kernel', () => {
  test('the kernel is @jsii/runtime as installed, and aws-cdk-lib comes with the jsii packages it depends on, dependencies first', () => {
    expect(kernel.hello).toBe(`@jsii/runtime@${installedVersion('@jsii/runtime')}`);
    expect(order.map((a) => `${a.name}@${a.version}`)).toEqual([
      `@aws-cdk/asset-awscli-v1@${installedVersion('@aws-cdk/asset-awscli-v1')}`,
      `@aws-cdk/asset-node-proxy-agent-v6@${installedVersion('@aws-cdk/asset-node-proxy-agent-v6')}`,
      `@aws-cdk/cloud-assembly-schema@${installedVersion('@aws-cdk/cloud-assembly-schema')}`,
      `constructs@${installedVersion('constructs')}`,
      'aws-cdk-lib@2.276.0',
    ]);
    // Negative control: a package that is not a jsii assembly is refused, not silently skipped.
    expect(() => jsiiLoadOrder(installedDir('esbuild', ROOT))).toThrow(/esbuild@.* is not a jsii assembly: it has no \.jsii file/);
  });

  test('an app built through the kernel synthesizes the template the same app synthesizes in TypeScript', async () => {
    const viaKernel = await appThroughKernel(outdir('kernel-app'));
    const inTypeScript = appInTypeScript(outdir('typescript-app'));

    expect(viaKernel.template).toEqual(inTypeScript.template);
    expect(viaKernel.visited).toEqual(inTypeScript.visited);
    // What both templates hold, so that the equality above cannot pass on two empty or degenerate templates.
    const template = Template.fromJSON(viaKernel.template);
    expect(viaKernel.template.Description).toBe('Hosts of the iSCSI target');
    template.resourceCountIs('AWS::IAM::Role', 1);
    template.hasResourceProperties('AWS::IAM::Role', {
      MaxSessionDuration: 7200, Path: '/hosts/', Tags: [{ Key: 'team', Value: 'storage' }],
    });
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [
          { Action: 's3:GetObject', Effect: 'Allow', Resource: POLICY.resources[0] },
          { Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: SECRET_ARN },
        ],
      },
    });
    expect(viaKernel.visited).toContain('Consumer/HostRole/Resource');
    expect(viaKernel.grantSuccess).toBe(true);
    expect(viaKernel.tags).toEqual({ team: 'storage' }); // came back as { "$jsii.map": {...} }
    expect(inTypeScript.tags).toEqual({ team: 'storage' });
  }, 60_000);

  test('a construct rejecting a prop comes back as an error naming the prop, the rule and the value; the kernel goes on', async () => {
    const app = await kernel.create('aws-cdk-lib.App', [{ outdir: outdir('rejected') }]);
    const stack = await kernel.create('aws-cdk-lib.Stack', [app, 'Rejected']);
    const assumedBy = await kernel.create('aws-cdk-lib.aws_iam.ServicePrincipal', ['ec2.amazonaws.com']);
    const tooLong = await kernel.sinvoke('aws-cdk-lib.Duration', 'hours', [24]);

    const error = await kernel.create('aws-cdk-lib.aws_iam.Role', [stack, 'TooLong', { assumedBy, maxSessionDuration: tooLong }])
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KernelError);
    expect((error as KernelError).message).toBe('maxSessionDuration is set to 86400, but must be >= 3600sec (1hr) and <= 43200sec (12hrs)');
    // The library's own error (its name is the library's, not the kernel's fault), with the JavaScript stack.
    expect((error as KernelError).kernelName).not.toBe(KernelErrorType.FAULT);
    expect((error as KernelError).kernelStack).toContain('maxSessionDuration is set to 86400');
    expect((error as KernelError).api).toBe('create');
    // The same message as in TypeScript.
    expect(() => new iam.Role(new Stack(new App(), 'Rejected'), 'TooLong', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'), maxSessionDuration: Duration.hours(24) }))
      .toThrow((error as KernelError).message);

    // The kernel still works, and the stack still synthesizes, without the rejected role.
    const ok = await kernel.create('aws-cdk-lib.aws_iam.Role', [stack, 'Fine', { assumedBy, maxSessionDuration: await kernel.sinvoke('aws-cdk-lib.Duration', 'hours', [12]) }]);
    expect(refFqn(ok)).toBe('aws-cdk-lib.aws_iam.Role');
    Template.fromJSON(await synthThroughKernel(kernel, app, 'Rejected')).resourceCountIs('AWS::IAM::Role', 1);
  }, 60_000);

  test('a missing required prop, a wrong type and an unknown class are refused by the kernel, naming what is wrong', async () => {
    const app = await kernel.create('aws-cdk-lib.App', [{ outdir: outdir('refused') }]);
    const stack = await kernel.create('aws-cdk-lib.Stack', [app, 'Refused']);
    const refusal = (p: Promise<unknown>) => p.then(() => { throw new Error('accepted'); }, (e: KernelError) => e);

    const missing = await refusal(kernel.create('aws-cdk-lib.aws_iam.Role', [stack, 'NoPrincipal', {}]));
    expect(missing.kernelName).toBe(KernelErrorType.SERIALIZATION_ERROR);
    expect(missing.message).toMatch(/^Passed to parameter props of new aws-cdk-lib\.aws_iam\.Role: Unable to deserialize value as aws-cdk-lib\.aws_iam\.RoleProps/);

    const wrongType = await refusal(kernel.create('aws-cdk-lib.aws_iam.Role', [stack, 'StringPrincipal', { assumedBy: 'ec2.amazonaws.com' }]));
    expect(wrongType.kernelName).toBe(KernelErrorType.SERIALIZATION_ERROR);
    expect(wrongType.message).toContain("Key 'assumedBy': Unable to deserialize value as aws-cdk-lib.aws_iam.IPrincipal");

    const unknown = await refusal(kernel.create('aws-cdk-lib.aws_iam.NoSuchRole', [stack, 'Nope']));
    expect(unknown.kernelName).toBe(KernelErrorType.FAULT);
    expect(unknown.message).toBe("Type 'aws-cdk-lib.aws_iam.NoSuchRole' not found");
  }, 30_000);

  test("an error thrown by the host's callback fails the kernel request with the host's message", async () => {
    const app = await kernel.create('aws-cdk-lib.App', [{ outdir: outdir('callback-error') }]);
    await kernel.create('aws-cdk-lib.Stack', [app, 'Checked']);
    const aspect = await kernel.create('Object', [], { interfaces: ['aws-cdk-lib.IAspect'], overrides: [{ method: 'visit' }] });
    await kernel.invoke(await kernel.sinvoke('aws-cdk-lib.Aspects', 'of', [app]) as ObjRef, 'add', [aspect]);
    const seen: string[] = [];
    kernel.onCallback = (cb) => {
      seen.push(cb.invoke!.method);
      throw new Error('refused by the host: no stack may be named Checked');
    };

    await expect(kernel.invoke(app, 'synth')).rejects.toThrow('refused by the host: no stack may be named Checked');
    expect(seen).toEqual(['visit']);
  }, 30_000);

  test('dates and enums cross the wire both ways (maps: tagValues above); del releases an object', async () => {
    const date = new Date('2030-01-02T03:04:05.000Z');
    const expiration = await kernel.sinvoke('aws-cdk-lib.Expiration', 'atDate', [wireDate(date)]) as ObjRef;
    expect(fromWire(await kernel.get(expiration, 'date'))).toEqual(date);
    const duration = await kernel.sinvoke('aws-cdk-lib.Duration', 'minutes', [90]) as ObjRef;
    expect(await kernel.invoke(duration, 'toHumanString')).toBe('1 hour 30 minutes');
    const statement = await kernel.create('aws-cdk-lib.aws_iam.PolicyStatement', [{ effect: wireEnum('aws-cdk-lib.aws_iam.Effect', 'DENY') }]);
    expect(await kernel.get(statement, 'effect')).toEqual(wireEnum('aws-cdk-lib.aws_iam.Effect', 'DENY'));

    const before = (await kernel.stats()).objectCount;
    await kernel.del(expiration);
    expect((await kernel.stats()).objectCount).toBe(before - 1);
    const released = await kernel.get(expiration, 'date').catch((e: KernelError) => e) as KernelError;
    expect(released.kernelName).toBe(KernelErrorType.FAULT);
    expect(released.message).toMatch(/^Object aws-cdk-lib\.Expiration@\d+ not found$/);
  }, 30_000);

  test("naming gives each language's package and module names of aws-cdk-lib", async () => {
    const { naming } = await kernel.naming('aws-cdk-lib');
    expect(naming.python).toMatchObject({ distName: 'aws-cdk-lib', module: 'aws_cdk' });
    expect(naming.java).toMatchObject({ package: 'software.amazon.awscdk' });
    expect(naming.dotnet).toMatchObject({ namespace: 'Amazon.CDK', packageId: 'Amazon.CDK.Lib' });
    expect(naming.go).toMatchObject({ moduleName: 'github.com/aws/aws-cdk-go', packageName: 'awscdk' });
  });

  test('the kernel exits cleanly on {"exit":0}; what it writes to stderr is captured and decoded', async () => {
    // JSII_DEBUG makes the kernel echo each request on its stderr, which reaches us wrapped as {"stderr": base64}.
    const other = await KernelClient.start({ env: { JSII_DEBUG: '1' } });
    expect(other.hello).toBe(kernel.hello);
    expect(await other.stats()).toEqual({ objectCount: 0 });
    // One request at a time (outside a callback), as the protocol requires: a second one is refused, the first answered.
    const first = other.stats();
    await expect(other.stats()).rejects.toThrow("'stats' sent while another request is in flight");
    expect(await first).toEqual({ objectCount: 0 });
    expect(await other.close()).toEqual({ code: 0, signal: null });
    expect(other.stderr).toContain('> {"api":"stats"}');
    expect(other.stderr).not.toContain('{"stderr":');
    expect(other.stderr).not.toContain('end-of-life'); // the Node support banner is silenced
    await expect(other.stats()).rejects.toThrow(/the kernel has exited/);
  });
});

// Our packed package, jsii-built, loaded into the same kernel after aws-cdk-lib.
describe('cdk-chap-credentials through the jsii kernel', () => {
  test('ChapCredentials with a declared initiator, a read grant, a wired host and a managed one on a CfnVolume synthesizes as in TypeScript; '
    + 'a bad targetArn is an error', async () => {
    const tarball = await packThisPackage(ROOT, path.join(work, 'tarballs'));
    const viaKernel = await chapThroughKernel(kernel, tarball, outdir('chap-kernel'));
    const inTypeScript = chapInTypeScript(outdir('chap-typescript'));

    expect(viaKernel.template).toEqual(inTypeScript.template);
    const template = Template.fromJSON(viaKernel.template);
    template.resourceCountIs('Custom::StorageGatewayChapCredentials', 2);
    // Each construct: the target's secret and the declared initiator's; the managed one also its credential key.
    template.resourceCountIs('AWS::SecretsManager::Secret', 5);
    template.hasResourceProperties('Custom::StorageGatewayChapCredentials', { Manage: 'one-way', TargetArn: { 'Fn::GetAtt': ['Volume', 'TargetARN'] } });
    expect(viaKernel.managesCredentials).toBe(true);
    expect(viaKernel.managedLinuxCommands).toEqual(inTypeScript.managedLinuxCommands);
    expect(JSON.stringify(viaKernel.managedLinuxCommands)).toContain(`CHAP_PORTAL_ADDRESS='${PORTAL_ADDRESS}'`);
    expect(viaKernel.grantSuccess).toBe(true);
    expect(viaKernel.wiring).toEqual(inTypeScript.wiring);
    expect(JSON.stringify(viaKernel.wiring.linuxCommands)).toContain(`CHAP_INITIATOR_NAME='${HOST_B}'`);

    expect(viaKernel.badTargetArn.kernelName).not.toBe(KernelErrorType.FAULT);
    expect(viaKernel.badTargetArn.message).toMatch(/^'targetArn' must be a Storage Gateway iSCSI target ARN/);
    expect(viaKernel.badTargetArn.message).toBe(inTypeScript.badTargetArnMessage);

    // What each language's package is called (the targets of the jsii build).
    expect(Object.keys(viaKernel.naming).sort()).toEqual(expect.arrayContaining(['dotnet', 'go', 'java', 'js', 'python']));
  }, 120_000);
});
