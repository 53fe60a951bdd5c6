/**
 * CloudFormation's exports and imports across the stacks of one account and region: what each stack exports
 * (`Outputs.*.Export.Name`), which stacks import it (`Fn::ImportValue`), and the refusals CloudFormation makes, in its
 * wording: an empty or over-long export value, an export name another stack already exports, changing or removing an
 * export another stack imports, deleting a stack whose export another stack imports.
 *
 * One registry per emulator (an account and region), shared by every driver deploying against it: each driver holds
 * one stack, several drivers on one emulator hold several stacks.
 */
import { Emulator } from '../emulator';

/** An export of a stack, as `aws cloudformation list-exports` shows it. */
export interface StackExport {
  readonly name: string;
  readonly value: string;
  /** The output's logical id in the exporting stack's template. */
  readonly outputKey: string;
  readonly stackId: string;
  readonly stackName: string;
}

/** CloudFormation's limit on an exported value's length. */
export const EXPORT_VALUE_MAX_LENGTH = 1024;

/** Stack names as CloudFormation lists them in a message: `A`, `A and B`, `A, B and C`. */
function listed(names: readonly string[]): string {
  return names.length < 2 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

const registries = new WeakMap<Emulator, ExportRegistry>();

export class ExportRegistry {
  /** The registry of the emulator's account and region, shared by every driver on that emulator. */
  static of(emulator: Emulator): ExportRegistry {
    let registry = registries.get(emulator);
    if (!registry) registries.set(emulator, (registry = new ExportRegistry()));
    return registry;
  }

  private readonly exported = new Map<string, StackExport>();
  /** Importing stack id to its name and the export names it imports. */
  private readonly imported = new Map<string, { readonly stackName: string; readonly names: ReadonlySet<string> }>();

  /** Every export, as ListExports answers. */
  list(): StackExport[] {
    return [...this.exported.values()];
  }

  /** The value exported under `name`, if any stack exports it. */
  value(name: string): string | undefined {
    return this.exported.get(name)?.value;
  }

  /** Names of the stacks (other than `exceptStackId`) that import `name`, as ListImports answers. */
  importers(name: string, exceptStackId?: string): string[] {
    return [...this.imported.entries()]
      .filter(([stackId, i]) => stackId !== exceptStackId && i.names.has(name))
      .map(([, i]) => i.stackName).sort();
  }

  /**
   * Why CloudFormation would refuse the stack `stackId` to end its operation exporting `next` (its outputs with an
   * Export, in template order) instead of what it exports now; undefined when it would not.
   */
  refusal(stackId: string, next: readonly StackExport[]): string | undefined {
    for (const e of next) {
      if (!e.value.trim()) return `Cannot export output ${e.outputKey}. Exported values must not be empty or whitespace-only.`;
      if (e.value.length > EXPORT_VALUE_MAX_LENGTH) {
        return `Cannot export output ${e.outputKey} with length ${e.value.length}. Max length of ${EXPORT_VALUE_MAX_LENGTH} exceeded.`;
      }
      const holder = this.exported.get(e.name);
      if (holder && holder.stackId !== stackId) return `Export with name ${e.name} is already exported by stack ${holder.stackName}`;
    }
    for (const current of this.exportsOf(stackId)) {
      const importers = this.importers(current.name, stackId);
      if (!importers.length) continue;
      const replacement = next.find((e) => e.name === current.name);
      if (!replacement) return `Cannot delete export ${current.name} as it is in use by ${listed(importers)}.`;
      if (replacement.value !== current.value) return `Cannot update export ${current.name} as it is in use by ${listed(importers)}.`;
    }
    return undefined;
  }

  /** Why CloudFormation would cancel deleting the stack `stackId`; undefined when it would not. */
  deletionRefusal(stackId: string): string | undefined {
    for (const current of this.exportsOf(stackId)) {
      const importers = this.importers(current.name, stackId);
      if (importers.length) return `Delete canceled. Cannot delete export ${current.name} as it is in use by ${listed(importers)}.`;
    }
    return undefined;
  }

  /** Records what a stack exports and imports once its operation completed. */
  record(stackId: string, stackName: string, exports: readonly StackExport[], imports: readonly string[]): void {
    for (const e of this.exportsOf(stackId)) this.exported.delete(e.name);
    for (const e of exports) this.exported.set(e.name, e);
    this.imported.set(stackId, { stackName, names: new Set(imports) });
  }

  /** Forgets a deleted stack's exports and imports. */
  remove(stackId: string): void {
    this.record(stackId, '', [], []);
    this.imported.delete(stackId);
  }

  private exportsOf(stackId: string): StackExport[] {
    return this.list().filter((e) => e.stackId === stackId);
  }
}
