/** CDK steps every kernel test repeats, as another language takes them. */
import * as fs from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { KernelClient, ObjRef, fromWire } from './kernel-client';

/**
 * `app.synth()` through the kernel, then the stack's template read through the kernel from the cloud assembly
 * (`CloudAssembly.getStackByName(name).template`); checks that it is the template file the assembly wrote.
 */
export async function synthThroughKernel(kernel: KernelClient, app: ObjRef, stackName: string): Promise<Record<string, unknown>> {
  const assembly = await kernel.invoke(app, 'synth') as ObjRef;
  const artifact = await kernel.invoke(assembly, 'getStackByName', [stackName]) as ObjRef;
  const template = fromWire(await kernel.get(artifact, 'template')) as Record<string, unknown>;
  const file = await kernel.get(artifact, 'templateFullPath') as string;
  if (!isDeepStrictEqual(JSON.parse(fs.readFileSync(file, 'utf8')), template)) {
    throw new Error(`the template read through the kernel is not the cloud assembly's ${file}`);
  }
  return template;
}
