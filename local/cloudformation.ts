/**
 * A local CloudFormation stand-in for one stack of a synthesized cloud assembly (cdk.out): deploys (creates or
 * updates), rolls back and deletes the stack as CloudFormation does, recording its status in the emulator. Several
 * drivers on one emulator hold several stacks, which share exports and imports as CloudFormation's do. Its parts:
 * - driver/template.ts: template resolution (intrinsics, pseudo parameters, template parameters and dynamic references
 *   read from Parameter Store, conditions, dependency order, outputs, exports and imports);
 * - driver/exports.ts: the exports and imports of the stacks of an account and region, and what CloudFormation refuses;
 * - driver/resources.ts: resource provisioning (create, update, delete per resource type; deletion policies);
 * - driver/invoke.ts: invocation (a function run from its asset folder in a child process, custom resource events
 *   and their checked responses, redelivery, EventBridge rules);
 * - driver/lambda.ts: function resource policies (AWS::Lambda::Permission) and invocation by ARN for other services:
 *   the emulator's Secrets Manager rotation steps, refused when the policy does not admit Secrets Manager;
 * - driver/types.ts: what the parts share (options, the stack's state, invocations, StackFailure).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Emulator, RotationRecord } from './emulator';
import { ExportRegistry, StackExport } from './driver/exports';
import { Invoker } from './driver/invoke';
import { LambdaService } from './driver/lambda';
import { Provisioner } from './driver/resources';
import { TemplateResolver } from './driver/template';
import { Deployed, DriverOptions, Invocation, Json, ResponseBody, StackFailure, StackResult, StackState, isCustom, policiesOf } from './driver/types';

export type { Deployed, DriverOptions, Invocation, ResponseBody, RunnerTiming, StackResult } from './driver/types';
export { ExportRegistry } from './driver/exports';
export type { StackExport } from './driver/exports';

const isSchedule = (template: Json, id: string) => template.Resources[id].Type === 'AWS::SecretsManager::RotationSchedule';

export class LocalCloudFormation {
  /** Everything wrong with a response or the template's use of one; a correct handler leaves it empty. */
  readonly problems: string[] = [];
  private readonly emulator: Emulator;
  private readonly stack = new StackState();
  private readonly resolver: TemplateResolver;
  private readonly invoker: Invoker;
  private readonly provisioner: Provisioner;
  /** The exports and imports of every stack deployed against this driver's emulator. */
  readonly exports: ExportRegistry;
  /** Function resource policies and invocation by ARN (Secrets Manager rotation) for every stack on the emulator. */
  readonly lambda: LambdaService;

  constructor(options: DriverOptions) {
    this.emulator = options.emulator;
    this.exports = ExportRegistry.of(this.emulator);
    this.resolver = new TemplateResolver(this.stack, this.emulator, this.problems, this.exports);
    this.invoker = new Invoker(options, this.stack, this.problems);
    this.lambda = LambdaService.of(this.emulator);
    this.lambda.attach(this.invoker);
    this.provisioner = new Provisioner(this.stack, this.emulator, this.resolver, this.invoker, this.lambda);
  }

  /** Every handler invocation, in order. */
  get invocations(): Invocation[] {
    return this.invoker.invocations;
  }

  /** The first N response PUTs answer 500 (each is still recorded as a try). */
  get failResponsePuts(): number {
    return this.invoker.failResponsePuts;
  }

  set failResponsePuts(count: number) {
    this.invoker.failResponsePuts = count;
  }

  async start(): Promise<this> {
    await this.invoker.start();
    return this;
  }

  async stop(): Promise<void> {
    await this.invoker.stop();
  }

  /** Logical id to deployed resource (physical id, attributes), for tests and the demo. */
  get deployed(): ReadonlyMap<string, Deployed> {
    return this.stack.resources;
  }

  /** Resolves intrinsic functions against the deployed resources and pseudo parameters. */
  resolve(value: Json): Json {
    return this.resolver.resolve(value);
  }

  /** Creates the stack from `assemblyDir`, or updates it when it exists. */
  async deploy(assemblyDir: string, stackName: string): Promise<StackResult> {
    const manifest = JSON.parse(fs.readFileSync(path.join(assemblyDir, 'manifest.json'), 'utf8'));
    const artifact = manifest.artifacts?.[stackName];
    if (!artifact || artifact.type !== 'aws:cloudformation:stack') throw new Error(`no stack ${stackName} in ${assemblyDir}`);
    const template = JSON.parse(fs.readFileSync(path.join(assemblyDir, artifact.properties.templateFile), 'utf8'));
    const updating = this.stack.template !== undefined;
    if (updating && stackName !== this.stack.name) throw new Error(`this driver holds stack ${this.stack.name}`);
    this.stack.name = stackName;
    this.stack.id ||= `arn:aws:cloudformation:${this.emulator.region}:${this.emulator.account}:stack/${stackName}/${randomUUID()}`;
    this.stack.assemblyDir = assemblyDir;
    return updating ? this.update(template) : this.create(template);
  }

  /** Deletes the stack: custom resources get Delete, secrets and volumes go unless their DeletionPolicy keeps them. */
  async destroy(): Promise<StackResult> {
    this.setStatus('DELETE_IN_PROGRESS');
    // CloudFormation cancels the delete, before touching anything, while another stack imports one of its exports.
    const refusal = this.exports.deletionRefusal(this.stack.id);
    if (refusal) return { status: this.setStatus('DELETE_FAILED'), reason: refusal, outputs: {} };
    try {
      await this.provisioner.delete([...this.stack.resources.keys()].reverse(), this.stack.resources, 'delete');
      this.stack.resources = new Map();
      this.stack.template = undefined;
      this.exports.remove(this.stack.id);
      return { status: this.setStatus('DELETE_COMPLETE'), outputs: {} };
    } catch (error) {
      return { status: this.setStatus('DELETE_FAILED'), reason: (error as Error).message, outputs: {} };
    }
  }

  /**
   * Sends an Update with unchanged properties to a custom resource, as CloudFormation does when a property the
   * handler ignores changes; returns the response.
   */
  async updateUnchanged(logicalId: string): Promise<ResponseBody> {
    const resource = this.stack.resources.get(logicalId);
    if (!resource || !isCustom(resource.type)) throw new Error(`${logicalId} is not a deployed custom resource`);
    return this.invoker.custom(logicalId, 'Update', resource.properties, { physicalId: resource.physicalId, oldProperties: resource.properties });
  }

  /**
   * Fires a deployed EventBridge rule once, as its schedule would: runs its Lambda target with the target's constant
   * Input as the event. Returns the invocation (`ended` is 'threw' when the function ended in error).
   */
  async fireRule(ruleLogicalId: string, options: { readonly requestId?: string } = {}): Promise<Invocation> {
    return this.invoker.fireRule(ruleLogicalId, options);
  }

  /**
   * Delivers a custom resource event again, as Lambda does when it retries an asynchronous invocation (same event,
   * same RequestId and ResponseURL), possibly after later events; returns the new invocation.
   */
  async redeliver(invocation: Invocation): Promise<Invocation> {
    return this.invoker.redeliver(invocation);
  }

  /**
   * Rotates a secret now, as `aws secretsmanager rotate-secret --secret-id ID` does (the function and rules its
   * rotation schedule configured), and resolves when that rotation has ended, with its record (`status` says how).
   * Secrets Manager's refusals (rotation not configured, the function's policy not admitting it, a previous rotation
   * unfinished) throw its AwsError.
   */
  async rotateSecret(secretId: string, options: { readonly clientRequestToken?: string } = {}): Promise<RotationRecord> {
    const sm = this.emulator.secretsManager;
    const out = sm.RotateSecret({ SecretId: secretId, ...(options.clientRequestToken ? { ClientRequestToken: options.clientRequestToken } : {}) });
    return sm.rotation(out.ARN, out.VersionId);
  }

  /** Records the stack's status in the emulator, where handlers read it (DescribeStacks); returns it. */
  private setStatus(status: string): string {
    this.emulator.cloudFormation.setStatus(this.stack.id, this.stack.name, status);
    return status;
  }

  private async create(template: Json): Promise<StackResult> {
    const stack = this.stack;
    stack.template = template;
    this.setStatus('CREATE_IN_PROGRESS');
    try {
      stack.parameters = this.resolver.parameterValues(template);
      // As CloudFormation does, resources whose dependencies are in place are created in parallel.
      for (const level of this.resolver.levels(template)) {
        // Within a level the order is CloudFormation's to choose; rotation schedules go first, the worst case for a
        // schedule not ordered after the permission that lets Secrets Manager invoke its function.
        const schedulesFirst = [...level].sort((a, b) => Number(!isSchedule(template, a)) - Number(!isSchedule(template, b)));
        const settled = await Promise.allSettled(schedulesFirst.map(async (id) => {
          stack.resources.set(id, await this.provisioner.create(id, template.Resources[id]));
        }));
        const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failure) throw failure.reason;
      }
      const exported = this.checkedExports(template);
      this.exports.record(stack.id, stack.name, exported, this.resolver.imports(template));
      return { status: this.setStatus('CREATE_COMPLETE'), outputs: this.resolver.outputs(template) };
    } catch (error) {
      this.setStatus('ROLLBACK_IN_PROGRESS');
      const reason = (error as Error).message;
      const failed = (error as StackFailure).failed;
      if (failed) {
        // As CloudFormation does, the rollback sends Delete to a custom resource whose Create failed.
        const definition = template.Resources[failed.logicalId];
        stack.resources.set(failed.logicalId, {
          type: definition.Type, physicalId: failed.physicalId, attributes: {}, properties: this.provisioned(definition),
        });
      }
      await this.provisioner.delete([...stack.resources.keys()].reverse(), stack.resources, 'rollback')
        .catch((e) => this.problems.push(`rollback failed: ${(e as Error).message}`));
      stack.resources = new Map();
      stack.template = undefined;
      return { status: this.setStatus('ROLLBACK_COMPLETE'), reason, outputs: {} };
    }
  }

  private async update(template: Json): Promise<StackResult> {
    const stack = this.stack;
    const before = new Map(stack.resources);
    const beforeTemplate = stack.template;
    const beforeParameters = stack.parameters;
    const replaced = new Map<string, Deployed>();
    const created: string[] = [];
    const updated: string[] = [];
    stack.template = template;
    this.setStatus('UPDATE_IN_PROGRESS');
    let exported: StackExport[];
    try {
      stack.parameters = this.resolver.parameterValues(template);
      for (const id of this.resolver.order(template)) {
        const definition = template.Resources[id];
        const old = before.get(id);
        // A replaced physical resource follows the UpdateReplacePolicy of the template being deployed.
        const superseded = old && { ...old, updateReplacePolicy: definition.UpdateReplacePolicy };
        if (!old || old.type !== definition.Type) {
          if (superseded) replaced.set(id, superseded);
          stack.resources.set(id, await this.provisioner.create(id, definition));
          created.push(id);
          continue;
        }
        // As CloudFormation does, the properties compare as written: a dynamic reference whose value changed is no change.
        const declared = this.resolver.resolve(definition.Properties ?? {});
        if (JSON.stringify(declared) === JSON.stringify(old.declared ?? old.properties)) {
          // Policies change without touching the resource.
          stack.resources.set(id, { ...old, ...policiesOf(definition) });
          continue;
        }
        const next = await this.provisioner.update(id, definition, old, this.resolver.dereference(declared));
        if (next.physicalId !== old.physicalId) replaced.set(id, superseded!);
        stack.resources.set(id, { ...next, declared });
        updated.push(id);
      }
      exported = this.checkedExports(template);
    } catch (error) {
      const reason = (error as Error).message;
      const failed = (error as StackFailure).failed;
      // The resource that failed its Update is rolled back too, from the properties it failed with.
      if (failed && before.has(failed.logicalId) && !created.includes(failed.logicalId)) {
        const old = before.get(failed.logicalId)!;
        const properties = this.provisioned(template.Resources[failed.logicalId]);
        stack.resources.set(failed.logicalId, { ...old, physicalId: failed.physicalId, properties });
        updated.push(failed.logicalId);
      }
      await this.rollBack(before, updated, created).catch((e) => this.problems.push(`rollback failed: ${(e as Error).message}`));
      stack.resources = before;
      stack.template = beforeTemplate;
      stack.parameters = beforeParameters;
      return { status: this.setStatus('UPDATE_ROLLBACK_COMPLETE'), reason, outputs: this.resolver.outputs(beforeTemplate) };
    }
    // Cleanup: the replaced physical resources, then resources the template no longer has.
    this.setStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
    const removed = [...before.keys()].filter((id) => !template.Resources[id]);
    await this.provisioner.delete([...replaced.keys()].reverse(), replaced, 'replace');
    await this.provisioner.delete(removed.reverse(), before, 'delete');
    for (const id of removed) stack.resources.delete(id);
    this.exports.record(stack.id, stack.name, exported, this.resolver.imports(template));
    return { status: this.setStatus('UPDATE_COMPLETE'), outputs: this.resolver.outputs(template) };
  }

  /** The template's exports once its resources are in place; what CloudFormation refuses fails the operation. */
  private checkedExports(template: Json): StackExport[] {
    const exported = this.resolver.exports(template);
    const refusal = this.exports.refusal(this.stack.id, exported);
    if (refusal) throw new StackFailure(refusal);
    return exported;
  }

  /** A resource's properties as provisioned: resolved, dynamic references replaced by their values. */
  private provisioned(definition: Json): Json {
    return this.resolver.dereference(this.resolver.resolve(definition.Properties ?? {}));
  }

  /**
   * As CloudFormation rolls back an update: resources updated in place get their old properties (a custom resource an
   * Update event with them); then, in the cleanup, replacements made during the failed update and resources it created
   * are deleted, while the old physical resources stay in place.
   */
  private async rollBack(before: Map<string, Deployed>, updated: string[], created: string[]): Promise<void> {
    this.setStatus('UPDATE_ROLLBACK_IN_PROGRESS');
    const replacements = new Map<string, Deployed>();
    for (const id of [...updated].reverse()) {
      const old = before.get(id)!;
      const current = this.stack.resources.get(id)!;
      if (current.physicalId !== old.physicalId) replacements.set(id, current);
      else await this.provisioner.revert(id, old, current);
    }
    this.setStatus('UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS');
    await this.provisioner.delete([...replacements.keys()], replacements, 'rollback');
    await this.provisioner.delete([...created].reverse(), this.stack.resources, 'rollback');
  }
}
