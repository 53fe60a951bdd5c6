/**
 * Publishing the initiator names to other stacks, through the local driver and emulator on the bundled handler: the
 * names are never empty (`+none` for a target with no credentials), so an exported output deploys; an import in
 * another stack blocks every producer deploy that changes the names (CloudFormation refuses to update an export in
 * use, and the driver models that); an SSM parameter read with `valueForStringParameter` follows the names with no
 * deploy refused. The driver's refusals have their negative controls in driver-exports.test.ts.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, CfnOutput, Fn, Stack, Token } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { ChapCredentials } from '../lib';
import { LocalCloudFormation } from '../local/cloudformation';
import { DOC_TARGET_ARN, HOST_A, HOST_B } from './fixtures';
import { LocalCloud, STACK, assemblyText, removeAssemblies, synth } from './local-stack';

jest.setTimeout(60_000);

const EXPORT = 'MyVolumeInitiators';
const PARAMETER = '/iscsi/myvolume/initiator-names';

describe('synth', () => {
  test('initiatorNamesParameterName writes the names to a String SSM parameter of that name', () => {
    const stack = new Stack();
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiatorNamesParameterName: PARAMETER });
    const template = Template.fromStack(stack);
    template.hasResourceProperties('AWS::SSM::Parameter', {
      Name: PARAMETER, Type: 'String', Value: { 'Fn::GetAtt': [stack.getLogicalId(chap.resource.node.defaultChild as never), 'InitiatorNames'] },
    });
    expect(chap.initiatorNamesParameter).toBeDefined();
  });

  test('no parameter by default', () => {
    const stack = new Stack();
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN });
    Template.fromStack(stack).resourceCountIs('AWS::SSM::Parameter', 0);
    expect(chap.initiatorNamesParameter).toBeUndefined();
  });

  test.each([
    ['empty', ''],
    ['a hierarchy not beginning with /', 'iscsi/names'],
    ['an empty level', '/iscsi//names'],
    ['a trailing /', '/iscsi/names/'],
    ['a space', '/iscsi/na mes'],
    ["an 'aws' prefix", 'awsNames'],
    ["an 'ssm' prefix", '/SSM/names'],
    ['16 levels', `/${'a/'.repeat(15)}b`],
    ['1012 characters', `/${'a'.repeat(1011)}`],
  ])('initiatorNamesParameterName with %s fails at synth naming the prop, the rule and the value', (_, name) => {
    const stack = new Stack();
    expect(() => new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiatorNamesParameterName: name }))
      .toThrow('\'initiatorNamesParameterName\' must be an SSM parameter name (1 to 1011 characters of ASCII letters, digits and \'_.-/\'; '
        + 'with \'/\' a fully qualified hierarchy of at most 15 levels, such as \'/iscsi/myvolume/initiator-names\'; not beginning with \'aws\' or \'ssm\'), '
        + `got '${name}'`);
  });

  test.each(['names', '/iscsi/myvolume/initiator-names', `/${'a/'.repeat(14)}b`, 'my_volume.initiator-names'])('%j is accepted', (name) => {
    expect(() => new ChapCredentials(new Stack(), 'Chap', { targetArn: DOC_TARGET_ARN, initiatorNamesParameterName: name })).not.toThrow();
  });

  test('a token name is left to deploy time', () => {
    const stack = new Stack();
    const name = Token.asString({ Ref: 'Name' });
    expect(() => new ChapCredentials(stack, 'Chap', { targetArn: DOC_TARGET_ARN, initiatorNamesParameterName: name })).not.toThrow();
  });
});

describe('through the driver, on the bundled handler', () => {
  let cloud: LocalCloud;
  let consumerCfn: LocalCloudFormation;
  const texts: string[] = [];
  const consumerDirs: string[] = [];

  function synthesized(...args: Parameters<typeof synth>): string {
    const dir = synth(...args);
    texts.push(assemblyText(dir));
    return dir;
  }

  /** A consumer stack in an app of its own, deployed by a second driver on the same emulator. */
  function consumerAssembly(build: (stack: Stack) => void): string {
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-consumer-'));
    consumerDirs.push(outdir);
    const app = new App({ outdir });
    build(new Stack(app, 'Consumer'));
    app.synth();
    return outdir;
  }

  beforeEach(async () => {
    cloud = await LocalCloud.start();
    consumerCfn = await new LocalCloudFormation({ emulator: cloud.emulator }).start();
  });

  afterEach(async () => {
    expect(consumerCfn.problems).toEqual([]);
    await consumerCfn.stop();
    await cloud.finish(texts.splice(0));
  });

  afterAll(() => {
    removeAssemblies();
    for (const dir of consumerDirs) fs.rmSync(dir, { recursive: true, force: true });
  });

  const namesOutput = (outputs: Record<string, string>) => Object.entries(outputs).find(([k]) => k.startsWith('ChapInitiatorNames'))?.[1];

  test('a target with no credentials deploys with its export on and its parameter: both read +none', async () => {
    cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, []);
    const created = await cloud.cfn.deploy(synthesized({
      targetArn: DOC_TARGET_ARN, initiatorNamesExportName: EXPORT, initiatorNamesParameterName: PARAMETER,
    }), STACK);
    expect(created.status).toBe('CREATE_COMPLETE');
    expect(namesOutput(created.outputs)).toBe('+none');
    expect(cloud.cfn.exports.value(EXPORT)).toBe('+none');
    expect(cloud.emulator.ssm.value(PARAMETER)).toBe('+none');
    const consumed = await consumerCfn.deploy(consumerAssembly((stack) => new CfnOutput(stack, 'Names', { value: Fn.importValue(EXPORT) })), 'Consumer');
    expect(consumed.outputs.Names).toBe('+none');
  });

  test('an import in another stack blocks a producer deploy that changes the names: CloudFormation refuses, the update rolls back', async () => {
    cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
    await cloud.cfn.deploy(synthesized({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A], initiatorNamesExportName: EXPORT }), STACK);
    const importer = consumerAssembly((stack) => new CfnOutput(stack, 'Names', { value: Fn.importValue(EXPORT) }));
    expect((await consumerCfn.deploy(importer, 'Consumer')).outputs.Names).toBe(HOST_A);

    // A new initiator on the target, declared in the producer: its Update gives new names, which the export refuses.
    cloud.emulator.storageGateway.UpdateChapCredentials({ TargetARN: DOC_TARGET_ARN, ...cloud.credential(HOST_B) });
    const changed = synthesized({ targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B], initiatorNamesExportName: EXPORT });
    const blocked = await cloud.cfn.deploy(changed, STACK);
    expect(blocked).toMatchObject({ status: 'UPDATE_ROLLBACK_COMPLETE', reason: `Cannot update export ${EXPORT} as it is in use by Consumer.` });
    expect(namesOutput(blocked.outputs)).toBe(HOST_A);
    expect(cloud.cfn.exports.value(EXPORT)).toBe(HOST_A);
    // The rollback removed what the failed update created: the new initiator's secret.
    expect([...cloud.cfn.deployed.keys()].some((id) => id.startsWith('ChapInitiatoriqn199405'))).toBe(false);
    expect(cloud.emulator.secretsManager.secrets.size).toBe(2);
  });

  test('a consumer reading the SSM parameter follows the names as they change; no deploy is refused', async () => {
    cloud.emulator.storageGateway.addTarget(DOC_TARGET_ARN, [cloud.credential(HOST_A)]);
    const producer = (initiators: string[]) => synthesized({ targetArn: DOC_TARGET_ARN, initiators, initiatorNamesParameterName: PARAMETER });
    expect((await cloud.cfn.deploy(producer([HOST_A]), STACK)).status).toBe('CREATE_COMPLETE');
    const reader = consumerAssembly((stack) => {
      new CfnOutput(stack, 'Names', { value: ssm.StringParameter.valueForStringParameter(stack, PARAMETER) });
    });
    expect((await consumerCfn.deploy(reader, 'Consumer')).outputs.Names).toBe(HOST_A);

    cloud.emulator.storageGateway.UpdateChapCredentials({ TargetARN: DOC_TARGET_ARN, ...cloud.credential(HOST_B) });
    expect((await cloud.cfn.deploy(producer([HOST_A, HOST_B]), STACK)).status).toBe('UPDATE_COMPLETE');
    expect(cloud.emulator.ssm.value(PARAMETER)).toBe(`${HOST_A},${HOST_B}`);
    // The consumer's unchanged template reads the new names at its next deploy.
    expect(await consumerCfn.deploy(reader, 'Consumer')).toMatchObject({ status: 'UPDATE_COMPLETE', outputs: { Names: `${HOST_A},${HOST_B}` } });

    // Nothing ties the stacks together: the producer deletes while the consumer reads; the consumer's next deploy fails.
    expect((await cloud.cfn.destroy()).status).toBe('DELETE_COMPLETE');
    expect(cloud.emulator.ssm.value(PARAMETER)).toBeUndefined();
    expect((await consumerCfn.deploy(reader, 'Consumer')).reason).toBe(`Unable to fetch parameters [${PARAMETER}] from parameter store for this account.`);
  });
});
