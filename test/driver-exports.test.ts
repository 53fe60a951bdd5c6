/**
 * The local driver's exports, imports and SSM parameters, as CloudFormation has them: several stacks (one driver each)
 * on one emulator share exports; CloudFormation's refusals fail the operation in its words, and each has a negative
 * control that the same operation passes without the offending condition. SSM parameters are provisioned in the
 * emulator's Parameter Store; template parameters of an SSM type and `{{resolve:ssm:...}}` dynamic references are read
 * from it at deploy time.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { App, CfnOutput, Fn, Stack } from 'aws-cdk-lib';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { LocalCloudFormation, StackResult } from '../local/cloudformation';
import { Emulator, startEmulator } from '../local/emulator';

jest.setTimeout(30_000);

const EXPORT = 'shared-names';
const assemblies: string[] = [];
let emulator: Emulator;
const drivers = new Map<string, LocalCloudFormation>();

/** Synthesizes one stack named `stackName` built by `build`; returns the cloud assembly folder. */
function assembly(stackName: string, build: (stack: Stack) => void): string {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'driver-exports-'));
  assemblies.push(outdir);
  const app = new App({ outdir });
  build(new Stack(app, stackName));
  app.synth();
  return outdir;
}

/** The driver that holds `stackName` (one per stack, all on the same emulator). */
async function driver(stackName: string): Promise<LocalCloudFormation> {
  if (!drivers.has(stackName)) drivers.set(stackName, await new LocalCloudFormation({ emulator }).start());
  return drivers.get(stackName)!;
}

async function deploy(stackName: string, build: (stack: Stack) => void): Promise<StackResult> {
  return (await driver(stackName)).deploy(assembly(stackName, build), stackName);
}

async function destroy(stackName: string): Promise<StackResult> {
  return (await driver(stackName)).destroy();
}

/** A producer exporting `value` under `name` (and keeping it in an SSM parameter, to see rollbacks restore it). */
const producer = (value: string, name = EXPORT) => (stack: Stack) => {
  new ssm.CfnParameter(stack, 'Kept', { name: '/producer/kept', type: 'String', value: value || 'empty' });
  new CfnOutput(stack, 'Names', { value, exportName: name });
};

/** A consumer importing `name` into an output of its own. */
const consumer = (name = EXPORT) => (stack: Stack) => {
  new CfnOutput(stack, 'Imported', { value: Fn.importValue(name) });
};

beforeEach(async () => {
  emulator = await startEmulator();
});

afterEach(async () => {
  for (const d of drivers.values()) {
    expect(d.problems).toEqual([]);
    await d.stop();
  }
  drivers.clear();
  await emulator.stop();
});

afterAll(() => {
  for (const dir of assemblies) fs.rmSync(dir, { recursive: true, force: true });
});

describe('exports and imports', () => {
  test('a consumer stack imports what a producer stack exports; the registry lists the export and its importer', async () => {
    expect((await deploy('Producer', producer('a,b'))).status).toBe('CREATE_COMPLETE');
    const consumed = await deploy('Consumer', consumer());
    expect(consumed).toMatchObject({ status: 'CREATE_COMPLETE', outputs: { Imported: 'a,b' } });
    const registry = (await driver('Producer')).exports;
    expect(registry.list()).toEqual([expect.objectContaining({ name: EXPORT, value: 'a,b', outputKey: 'Names', stackName: 'Producer' })]);
    expect(registry.importers(EXPORT)).toEqual(['Consumer']);
  });

  test('an import of a name nobody exports fails the create: "No export named ... found"', async () => {
    const result = await deploy('Consumer', consumer('nobody-exports-this'));
    expect(result).toMatchObject({ status: 'ROLLBACK_COMPLETE', reason: 'No export named nobody-exports-this found' });
  });

  test.each([
    ['empty', ''],
    ['whitespace-only', '  '],
  ])('an %s export value is refused: the create rolls back and nothing is exported', async (_, value) => {
    const result = await deploy('Producer', producer(value));
    expect(result).toMatchObject({ status: 'ROLLBACK_COMPLETE', reason: 'Cannot export output Names. Exported values must not be empty or whitespace-only.' });
    expect((await driver('Producer')).exports.list()).toEqual([]);
    expect(emulator.ssm.parameters.has('/producer/kept')).toBe(false); // rolled back
  });

  test('negative control: the same producer with a one-character value deploys and exports', async () => {
    expect((await deploy('Producer', producer('+'))).status).toBe('CREATE_COMPLETE');
    expect((await driver('Producer')).exports.value(EXPORT)).toBe('+');
  });

  test('an export value over 1024 characters is refused; 1024 is exported', async () => {
    const refused = await deploy('Producer', producer('x'.repeat(1025)));
    expect(refused).toMatchObject({ status: 'ROLLBACK_COMPLETE', reason: 'Cannot export output Names with length 1025. Max length of 1024 exceeded.' });
    expect((await deploy('Producer', producer('x'.repeat(1024)))).status).toBe('CREATE_COMPLETE');
  });

  test('an export name another stack exports is refused, naming that stack; another name deploys', async () => {
    await deploy('Producer', producer('a'));
    const rival = await deploy('Rival', (stack) => new CfnOutput(stack, 'Other', { value: 'b', exportName: EXPORT }));
    expect(rival).toMatchObject({ status: 'ROLLBACK_COMPLETE', reason: `Export with name ${EXPORT} is already exported by stack Producer` });
    expect((await driver('Producer')).exports.value(EXPORT)).toBe('a');
    const other = await deploy('Rival', (stack) => new CfnOutput(stack, 'Other', { value: 'b', exportName: 'another-name' }));
    expect(other.status).toBe('CREATE_COMPLETE');
  });

  test('changing an export another stack imports is refused: the update rolls back, its resources too', async () => {
    await deploy('Producer', producer('a'));
    await deploy('Consumer', consumer());
    const changed = await deploy('Producer', producer('b'));
    expect(changed).toMatchObject({ status: 'UPDATE_ROLLBACK_COMPLETE', reason: `Cannot update export ${EXPORT} as it is in use by Consumer.` });
    expect(changed.outputs).toEqual({ Names: 'a' });
    expect(emulator.ssm.value('/producer/kept')).toBe('a');
    expect((await driver('Producer')).exports.value(EXPORT)).toBe('a');
  });

  test('negative controls: the same change deploys with no importer, and once the consumer dropped its import', async () => {
    await deploy('Producer', producer('a'));
    expect((await deploy('Producer', producer('b'))).status).toBe('UPDATE_COMPLETE');
    await deploy('Consumer', consumer());
    expect((await deploy('Producer', producer('c'))).status).toBe('UPDATE_ROLLBACK_COMPLETE');
    expect((await deploy('Consumer', (stack) => new CfnOutput(stack, 'Imported', { value: 'literal' }))).status).toBe('UPDATE_COMPLETE');
    expect((await driver('Producer')).exports.importers(EXPORT)).toEqual([]);
    expect((await deploy('Producer', producer('c'))).status).toBe('UPDATE_COMPLETE');
    expect(emulator.ssm.value('/producer/kept')).toBe('c');
  });

  test('removing an export another stack imports is refused; an unchanged export redeploys', async () => {
    await deploy('Producer', producer('a'));
    await deploy('Consumer', consumer());
    const removed = await deploy('Producer', (stack) => new CfnOutput(stack, 'Names', { value: 'a' }));
    expect(removed).toMatchObject({ status: 'UPDATE_ROLLBACK_COMPLETE', reason: `Cannot delete export ${EXPORT} as it is in use by Consumer.` });
    expect((await deploy('Producer', producer('a'))).status).toBe('UPDATE_COMPLETE');
  });

  test('deleting a stack whose export another stack imports is canceled, nothing deleted; after the consumer goes it deletes', async () => {
    await deploy('Producer', producer('a'));
    await deploy('Consumer', consumer());
    await deploy('Consumer2', consumer());
    const refused = await destroy('Producer');
    expect(refused).toMatchObject({ status: 'DELETE_FAILED', reason: `Delete canceled. Cannot delete export ${EXPORT} as it is in use by Consumer and Consumer2.` });
    expect(emulator.ssm.value('/producer/kept')).toBe('a');
    expect((await destroy('Consumer')).status).toBe('DELETE_COMPLETE');
    expect((await destroy('Consumer2')).status).toBe('DELETE_COMPLETE');
    expect((await destroy('Producer')).status).toBe('DELETE_COMPLETE');
    expect(emulator.ssm.parameters.has('/producer/kept')).toBe(false);
    expect((await driver('Producer')).exports.list()).toEqual([]);
  });
});

describe('SSM parameters', () => {
  const parameter = (value: string, name = '/app/names') => (stack: Stack) => {
    const p = new ssm.CfnParameter(stack, 'Names', { name, type: 'String', value });
    new CfnOutput(stack, 'Ref', { value: p.ref });
    new CfnOutput(stack, 'Value', { value: p.attrValue });
  };

  test('AWS::SSM::Parameter is created, updated (a new version) and deleted in Parameter Store; Ref is its name', async () => {
    const created = await deploy('Params', parameter('a'));
    expect(created).toMatchObject({ status: 'CREATE_COMPLETE', outputs: { Ref: '/app/names', Value: 'a' } });
    expect((await deploy('Params', parameter('b'))).status).toBe('UPDATE_COMPLETE');
    expect(emulator.ssm.GetParameter({ Name: '/app/names' }).Parameter).toMatchObject({ Value: 'b', Version: 2, Type: 'String' });
    expect((await destroy('Params')).status).toBe('DELETE_COMPLETE');
    expect(emulator.ssm.value('/app/names')).toBeUndefined();
  });

  test('an empty value is refused in the service\'s words; 4097 characters too; 1 and 4096 are stored', async () => {
    const empty = await deploy('Params', parameter(''));
    expect(empty).toMatchObject({
      status: 'ROLLBACK_COMPLETE',
      reason: "Names: ValidationException: 1 validation error detected: Value '' at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1",
    });
    const long = await deploy('Params', parameter('x'.repeat(4097)));
    expect(long.status).toBe('ROLLBACK_COMPLETE');
    expect(long.reason).toMatch(/^Names: ValidationException: Standard tier parameters support a maximum parameter value of 4096 characters/);
    expect((await deploy('Params', parameter('x'))).status).toBe('CREATE_COMPLETE');
    expect((await deploy('Params', parameter('x'.repeat(4096)))).status).toBe('UPDATE_COMPLETE');
  });

  test('a parameter without a name gets a generated one, which Ref gives', async () => {
    const result = await deploy('Params', (stack) => {
      const p = new ssm.CfnParameter(stack, 'Unnamed', { type: 'String', value: 'v' });
      new CfnOutput(stack, 'Ref', { value: p.ref });
    });
    expect(result.outputs.Ref).toMatch(/^CFN-Unnamed/);
    expect(emulator.ssm.value(result.outputs.Ref)).toBe('v');
  });

  test('valueForStringParameter (an SSM template parameter) is read at every deploy: the consumer follows the value', async () => {
    emulator.ssm.PutParameter({ Name: '/app/names', Value: 'a', Type: 'String' });
    const reader = (stack: Stack) => {
      const value = ssm.StringParameter.valueForStringParameter(stack, '/app/names');
      new ssm.CfnParameter(stack, 'Copy', { name: '/reader/copy', type: 'String', value });
      new CfnOutput(stack, 'Read', { value });
    };
    const dir = assembly('Reader', reader);
    const cfn = await driver('Reader');
    expect((await cfn.deploy(dir, 'Reader')).outputs.Read).toBe('a');
    emulator.ssm.PutParameter({ Name: '/app/names', Value: 'b', Overwrite: true });
    const again = await cfn.deploy(dir, 'Reader'); // the same template
    expect(again).toMatchObject({ status: 'UPDATE_COMPLETE', outputs: { Read: 'b' } });
    expect(emulator.ssm.value('/reader/copy')).toBe('b');
  });

  test('a missing SSM template parameter fails the deploy in CloudFormation\'s words', async () => {
    const result = await deploy('Reader', (stack) => new CfnOutput(stack, 'Read', { value: ssm.StringParameter.valueForStringParameter(stack, '/app/missing') }));
    expect(result).toMatchObject({ status: 'ROLLBACK_COMPLETE', reason: 'Unable to fetch parameters [/app/missing] from parameter store for this account.' });
  });

  test('the default synthesizer\'s BootstrapVersion parameter reads the bootstrapped account\'s version', async () => {
    // The synthesizer adds the parameter at synth; the output refers to it by its logical id.
    const result = await deploy('Boot', (stack) => new CfnOutput(stack, 'Version', { value: Fn.ref('BootstrapVersion') }));
    expect(result.outputs.Version).toBe('30');
  });

  test('a {{resolve:ssm:...}} dynamic reference is read when the resource is provisioned, not when only the value changed', async () => {
    emulator.ssm.PutParameter({ Name: '/app/names', Value: 'a', Type: 'String' });
    const copy = (reference: string, description?: string) => (stack: Stack) => {
      new ssm.CfnParameter(stack, 'Copy', { name: '/reader/copy', type: 'String', value: reference, description });
    };
    expect((await deploy('Reader', copy('{{resolve:ssm:/app/names}}'))).status).toBe('CREATE_COMPLETE');
    expect(emulator.ssm.value('/reader/copy')).toBe('a');
    emulator.ssm.PutParameter({ Name: '/app/names', Value: 'b', Overwrite: true });
    // Unchanged as written: CloudFormation sees no change, and the copy keeps the old value.
    expect((await deploy('Reader', copy('{{resolve:ssm:/app/names}}'))).status).toBe('UPDATE_COMPLETE');
    expect(emulator.ssm.value('/reader/copy')).toBe('a');
    // Any change of the resource reads the reference again; so does a versioned reference.
    await deploy('Reader', copy('{{resolve:ssm:/app/names}}', 'touched'));
    expect(emulator.ssm.value('/reader/copy')).toBe('b');
    await deploy('Reader', copy('{{resolve:ssm:/app/names:1}}', 'touched'));
    expect(emulator.ssm.value('/reader/copy')).toBe('a');
  });

  test('a dynamic reference to a missing parameter fails the resource in CloudFormation\'s words', async () => {
    const result = await deploy('Reader', (stack) => new ssm.CfnParameter(stack, 'Copy', { type: 'String', value: '{{resolve:ssm:/app/missing}}' }));
    expect(result).toMatchObject({ status: 'ROLLBACK_COMPLETE', reason: 'Parameters: [ssm:/app/missing] cannot be found.' });
  });
});
