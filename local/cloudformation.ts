/**
 * A local CloudFormation stand-in for one stack of a synthesized cloud assembly (cdk.out). It creates the
 * template's Secrets Manager secrets and Storage Gateway volumes (AWS::StorageGateway::Volume, with its iSCSI target)
 * in the emulator, gives every other resource plausible ids and attributes,
 * resolves Ref / Fn::GetAtt / Fn::Join / Fn::Sub / Fn::Split / Fn::Select / Fn::If and pseudo parameters, and runs
 * each custom resource's handler from its asset folder in cdk.out (the file CloudFormation would run) in a child
 * Node process. Events are shaped like CloudFormation's (every property value a string, a pre-signed-URL-like
 * ResponseURL); every response is checked (status, echoed ids, 4096 bytes, flat Data).
 */
import { ChildProcess, fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { AwsError, Emulator } from './emulator';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface DriverOptions {
  readonly emulator: Emulator;
  /** Runs every function with this timeout instead of the template's, to try timeouts quickly. */
  readonly functionTimeoutSeconds?: number;
  /** Delivers every custom resource event twice, as an at-least-once invoker may. */
  readonly deliverTwice?: boolean;
  /** Serves the ResponseURL over HTTPS with this key and certificate (functions then trust any certificate). */
  readonly https?: { readonly key: string; readonly cert: string };
  /** NODE_PATH of the functions: where a runtime-provided AWS SDK would be found (Lambda's Node.js runtimes ship one). */
  readonly runtimeNodePath?: string;
  /**
   * Port of the ResponseURL server on 127.0.0.1. CloudFormation's URLs carry no port, and some handlers drop it:
   * give 443 (with `https`) to serve those.
   * @default - a free port
   */
  readonly responsePort?: number;
}

/** How a function's cold start went, as the runner measured it. */
export interface RunnerTiming {
  /** Milliseconds from the process's start to the handler module loaded. */
  readonly loadedAtMs: number;
  /** Milliseconds spent in require() of the handler (and what it loaded at once). */
  readonly loadMs: number;
  /** Modules and their bytes loaded by the end of the invocation. */
  readonly modules: number;
  readonly moduleBytes: number;
}

export interface ResponseBody {
  readonly Status: 'SUCCESS' | 'FAILED';
  readonly Reason?: string;
  readonly PhysicalResourceId: string;
  readonly StackId: string;
  readonly RequestId: string;
  readonly LogicalResourceId: string;
  readonly NoEcho?: boolean;
  readonly Data?: Record<string, unknown>;
}

/** One handler invocation: what was sent, what came back, what the function logged. */
export interface Invocation {
  readonly logicalId: string;
  readonly event: Json;
  readonly responses: { raw: string; body?: ResponseBody }[];
  readonly logs: string;
  readonly ended: 'returned' | 'threw' | 'timed out' | 'crashed';
  /** Wall time from starting the function's process to its exit. */
  readonly wallMs: number;
  readonly timing?: RunnerTiming;
}

interface Deployed {
  readonly type: string;
  readonly physicalId: string;
  readonly attributes: Record<string, unknown>;
  /** A resource type the driver only stands in for: any attribute the template reads gets a plausible value. */
  readonly standIn?: boolean;
  readonly properties: Json;
  readonly deletionPolicy?: string;
  readonly updateReplacePolicy?: string;
}

/** Why a resource's physical resource is being deleted: its DeletionPolicy or UpdateReplacePolicy decides. */
type Occasion = 'delete' | 'replace' | 'rollback';

/** Properties of AWS::StorageGateway::Volume whose change replaces the volume (every one but Tags). */
const VOLUME_REPLACING = ['GatewayARN', 'TargetName', 'NetworkInterfaceId', 'VolumeSizeInBytes', 'SnapshotId', 'SourceVolumeARN', 'KMSEncrypted', 'KMSKey'];

export interface StackResult {
  readonly status: string;
  /** The first failure's reason, as CloudFormation's events would show it. */
  readonly reason?: string;
  readonly outputs: Record<string, string>;
}

const PSEUDO = (stackName: string, stackId: string, region: string, account: string): Record<string, string> => ({
  'AWS::Region': region, 'AWS::AccountId': account, 'AWS::Partition': 'aws', 'AWS::URLSuffix': 'amazonaws.com',
  'AWS::StackName': stackName, 'AWS::StackId': stackId, 'AWS::NotificationARNs': '',
});

class StackFailure extends Error {
  /** The resource whose handler answered FAILED, with the physical id it answered (CloudFormation later deletes it). */
  failed?: { logicalId: string; physicalId: string };
}

/** CloudFormation hands custom resources every scalar as a string. */
function stringify(value: Json): Json {
  if (Array.isArray(value)) return value.map(stringify);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, stringify(v)]));
  return value === null || value === undefined ? value : String(value);
}

/** A template resource's DeletionPolicy and UpdateReplacePolicy, as a deployed resource keeps them. */
const policiesOf = (definition: Json) => ({ deletionPolicy: definition.DeletionPolicy, updateReplacePolicy: definition.UpdateReplacePolicy });

const isCustom = (type: string) => type.startsWith('Custom::') || type === 'AWS::CloudFormation::CustomResource';

export class LocalCloudFormation {
  /** Every handler invocation, in order. */
  readonly invocations: Invocation[] = [];
  /** Everything wrong with a response or the template's use of one; a correct handler leaves it empty. */
  readonly problems: string[] = [];
  /** The first N response PUTs answer 500 (each is still recorded as a try). */
  failResponsePuts = 0;
  private readonly emulator: Emulator;
  private readonly received = new Map<string, string[]>();
  private server?: http.Server;
  private responseBase = '';
  private resources = new Map<string, Deployed>();
  private template: Json;
  private assemblyDir = '';
  private stackName = '';
  private stackId = '';

  constructor(private readonly options: DriverOptions) {
    this.emulator = options.emulator;
  }

  async start(): Promise<this> {
    const listener: http.RequestListener = (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const id = (req.url ?? '').split('?')[0].split('/').pop() ?? '';
        if (req.method !== 'PUT' || !this.received.has(id)) return void res.writeHead(403).end();
        if (this.failResponsePuts > 0) {
          this.failResponsePuts--;
          return void res.writeHead(500).end();
        }
        const raw = Buffer.concat(chunks).toString('utf8');
        this.received.get(id)!.push(raw);
        res.writeHead(200).end();
      });
    };
    this.server = this.options.https ? https.createServer(this.options.https, listener) : http.createServer(listener);
    await new Promise<void>((r) => this.server!.listen(this.options.responsePort ?? 0, '127.0.0.1', r));
    this.responseBase = `${this.options.https ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Logical id to deployed resource (physical id, attributes), for tests and the demo. */
  get deployed(): ReadonlyMap<string, Deployed> {
    return this.resources;
  }

  /** Creates the stack from `assemblyDir`, or updates it when it exists. */
  async deploy(assemblyDir: string, stackName: string): Promise<StackResult> {
    const manifest = JSON.parse(fs.readFileSync(path.join(assemblyDir, 'manifest.json'), 'utf8'));
    const artifact = manifest.artifacts?.[stackName];
    if (!artifact || artifact.type !== 'aws:cloudformation:stack') throw new Error(`no stack ${stackName} in ${assemblyDir}`);
    const template = JSON.parse(fs.readFileSync(path.join(assemblyDir, artifact.properties.templateFile), 'utf8'));
    const updating = this.template !== undefined;
    if (updating && stackName !== this.stackName) throw new Error(`this driver holds stack ${this.stackName}`);
    this.stackName = stackName;
    this.stackId ||= `arn:aws:cloudformation:${this.emulator.region}:${this.emulator.account}:stack/${stackName}/${randomUUID()}`;
    this.assemblyDir = assemblyDir;
    return updating ? this.update(template) : this.create(template);
  }

  /** Deletes the stack: custom resources get Delete, secrets and volumes go unless their DeletionPolicy keeps them. */
  async destroy(): Promise<StackResult> {
    this.setStatus('DELETE_IN_PROGRESS');
    try {
      await this.deleteResources([...this.resources.keys()].reverse(), this.resources, 'delete');
      this.resources = new Map();
      this.template = undefined;
      return { status: this.setStatus('DELETE_COMPLETE'), outputs: {} };
    } catch (error) {
      return { status: this.setStatus('DELETE_FAILED'), reason: (error as Error).message, outputs: {} };
    }
  }

  /** Records the stack's status in the emulator, where handlers read it (DescribeStacks); returns it. */
  private setStatus(status: string): string {
    this.emulator.cloudFormation.setStatus(this.stackId, this.stackName, status);
    return status;
  }

  private async create(template: Json): Promise<StackResult> {
    this.template = template;
    this.setStatus('CREATE_IN_PROGRESS');
    try {
      // As CloudFormation does, resources whose dependencies are in place are created in parallel.
      for (const level of this.levels(template)) {
        const settled = await Promise.allSettled(level.map(async (id) => {
          this.resources.set(id, await this.createResource(id, template.Resources[id]));
        }));
        const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failure) throw failure.reason;
      }
      return { status: this.setStatus('CREATE_COMPLETE'), outputs: this.outputs(template) };
    } catch (error) {
      this.setStatus('ROLLBACK_IN_PROGRESS');
      const reason = (error as Error).message;
      const failed = (error as StackFailure).failed;
      if (failed) {
        // As CloudFormation does, the rollback sends Delete to a custom resource whose Create failed.
        const definition = template.Resources[failed.logicalId];
        this.resources.set(failed.logicalId, {
          type: definition.Type, physicalId: failed.physicalId, attributes: {}, properties: this.resolve(definition.Properties ?? {}),
        });
      }
      await this.deleteResources([...this.resources.keys()].reverse(), this.resources, 'rollback')
        .catch((e) => this.problems.push(`rollback failed: ${(e as Error).message}`));
      this.resources = new Map();
      this.template = undefined;
      return { status: this.setStatus('ROLLBACK_COMPLETE'), reason, outputs: {} };
    }
  }

  /** The creation order cut into levels: each level depends only on the levels before it. */
  private levels(template: Json): string[][] {
    const order = this.order(template);
    const level = new Map<string, number>();
    for (const id of order) {
      const deps = this.dependencies(template, id).filter((d) => level.has(d));
      level.set(id, deps.length ? Math.max(...deps.map((d) => level.get(d)!)) + 1 : 0);
    }
    const levels: string[][] = [];
    for (const id of order) (levels[level.get(id)!] ??= []).push(id);
    return levels;
  }

  /**
   * Sends an Update with unchanged properties to a custom resource, as CloudFormation does when a property the
   * handler ignores changes; returns the response.
   */
  async updateUnchanged(logicalId: string): Promise<ResponseBody> {
    const resource = this.resources.get(logicalId);
    if (!resource || !isCustom(resource.type)) throw new Error(`${logicalId} is not a deployed custom resource`);
    return this.invokeCustom(logicalId, 'Update', resource.properties, { physicalId: resource.physicalId, oldProperties: resource.properties });
  }

  private async update(template: Json): Promise<StackResult> {
    const before = new Map(this.resources);
    const beforeTemplate = this.template;
    const replaced = new Map<string, Deployed>();
    const created: string[] = [];
    const updated: string[] = [];
    this.template = template;
    this.setStatus('UPDATE_IN_PROGRESS');
    try {
      for (const id of this.order(template)) {
        const definition = template.Resources[id];
        const old = before.get(id);
        // A replaced physical resource follows the UpdateReplacePolicy of the template being deployed.
        const superseded = old && { ...old, updateReplacePolicy: definition.UpdateReplacePolicy };
        if (!old || old.type !== definition.Type) {
          if (superseded) replaced.set(id, superseded);
          this.resources.set(id, await this.createResource(id, definition));
          created.push(id);
          continue;
        }
        const properties = this.resolve(definition.Properties ?? {});
        if (JSON.stringify(properties) === JSON.stringify(old.properties)) {
          // Policies change without touching the resource.
          this.resources.set(id, { ...old, ...policiesOf(definition) });
          continue;
        }
        const next = await this.updateResource(id, definition, old, properties);
        if (next.physicalId !== old.physicalId) replaced.set(id, superseded!);
        this.resources.set(id, next);
        updated.push(id);
      }
    } catch (error) {
      const reason = (error as Error).message;
      const failed = (error as StackFailure).failed;
      // The resource that failed its Update is rolled back too, from the properties it failed with.
      if (failed && before.has(failed.logicalId) && !created.includes(failed.logicalId)) {
        const old = before.get(failed.logicalId)!;
        const properties = this.resolve(template.Resources[failed.logicalId].Properties ?? {});
        this.resources.set(failed.logicalId, { ...old, physicalId: failed.physicalId, properties });
        updated.push(failed.logicalId);
      }
      await this.rollBack(before, updated, created).catch((e) => this.problems.push(`rollback failed: ${(e as Error).message}`));
      this.resources = before;
      this.template = beforeTemplate;
      return { status: this.setStatus('UPDATE_ROLLBACK_COMPLETE'), reason, outputs: this.outputs(beforeTemplate) };
    }
    // Cleanup: the replaced physical resources, then resources the template no longer has.
    this.setStatus('UPDATE_COMPLETE_CLEANUP_IN_PROGRESS');
    const removed = [...before.keys()].filter((id) => !template.Resources[id]);
    await this.deleteResources([...replaced.keys()].reverse(), replaced, 'replace');
    await this.deleteResources(removed.reverse(), before, 'delete');
    for (const id of removed) this.resources.delete(id);
    return { status: this.setStatus('UPDATE_COMPLETE'), outputs: this.outputs(template) };
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
      const current = this.resources.get(id)!;
      if (current.physicalId !== old.physicalId) replacements.set(id, current);
      else if (isCustom(old.type)) {
        await this.invokeCustom(id, 'Update', old.properties, { physicalId: current.physicalId, oldProperties: current.properties });
      }
    }
    this.setStatus('UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS');
    await this.deleteResources([...replacements.keys()], replacements, 'rollback');
    await this.deleteResources([...created].reverse(), this.resources, 'rollback');
  }

  /**
   * Fires a deployed EventBridge rule once, as its schedule would: runs its Lambda target with the target's constant
   * Input as the event. Returns the invocation (`ended` is 'threw' when the function ended in error).
   */
  async fireRule(ruleLogicalId: string, options: { readonly requestId?: string } = {}): Promise<Invocation> {
    const rule = this.resources.get(ruleLogicalId);
    if (rule?.type !== 'AWS::Events::Rule') throw new Error(`${ruleLogicalId} is not a deployed rule`);
    const target = (rule.properties.Targets ?? [])[0];
    const fn = this.functionWithArn(target?.Arn);
    if (!fn) throw new Error(`rule ${ruleLogicalId} does not target a function of this stack`);
    return this.withResponses(randomUUID(), (responseId) => this.run(fn, ruleLogicalId, JSON.parse(target.Input), responseId, options.requestId));
  }

  /**
   * Delivers a custom resource event again, as Lambda does when it retries an asynchronous invocation (same event,
   * same RequestId and ResponseURL), possibly after later events; returns the new invocation.
   */
  async redeliver(invocation: Invocation): Promise<Invocation> {
    const fn = this.functionWithArn(invocation.event.ServiceToken);
    if (!fn) throw new Error(`${invocation.logicalId}: the event's function is not deployed`);
    const responseId = new URL(invocation.event.ResponseURL).pathname.split('/').pop()!;
    return this.withResponses(responseId, () => this.run(fn, invocation.logicalId, invocation.event, responseId));
  }

  /** Runs `work` while the ResponseURL with `responseId` accepts responses. */
  private async withResponses<T>(responseId: string, work: (responseId: string) => Promise<T>): Promise<T> {
    const opened = !this.received.has(responseId); // deliveries of one event at once share its URL
    if (opened) this.received.set(responseId, []);
    try {
      return await work(responseId);
    } finally {
      if (opened) this.received.delete(responseId);
    }
  }

  /** The resources `id` references or depends on. */
  private dependencies(template: Json, id: string): string[] {
    const resources = template.Resources ?? {};
    const out = new Set<string>();
    const walk = (value: Json) => {
      if (Array.isArray(value)) value.forEach(walk);
      else if (value && typeof value === 'object') {
        if (typeof value.Ref === 'string' && resources[value.Ref]) out.add(value.Ref);
        if (value['Fn::GetAtt']) out.add([value['Fn::GetAtt']].flat()[0].split('.')[0]);
        if (typeof value['Fn::Sub'] !== 'undefined') {
          const text = [value['Fn::Sub']].flat()[0] as string;
          for (const m of text.matchAll(/\$\{([^}.!]+)/g)) if (resources[m[1]]) out.add(m[1]);
        }
        Object.values(value).forEach(walk);
      }
    };
    walk(resources[id]);
    for (const d of [resources[id].DependsOn ?? []].flat()) out.add(d);
    return [...out].filter((d) => resources[d]);
  }

  /** Creation order: every resource after those it references or depends on; skipped when its Condition is false. */
  private order(template: Json): string[] {
    const resources = template.Resources ?? {};
    const sorted: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (id: string) => {
      if (state.get(id) === 'done') return;
      if (state.get(id) === 'visiting') throw new Error(`circular dependency at ${id}`);
      state.set(id, 'visiting');
      this.dependencies(template, id).forEach(visit);
      state.set(id, 'done');
      const condition = resources[id].Condition;
      if (!condition || this.condition(condition)) sorted.push(id);
    };
    Object.keys(resources).forEach(visit);
    return sorted;
  }

  private condition(name: string): boolean {
    return Boolean(this.resolve(this.template.Conditions?.[name]));
  }

  /** Resolves intrinsic functions against the deployed resources and pseudo parameters. */
  resolve(value: Json): Json {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v)).filter((v) => v !== NO_VALUE);
    if (!value || typeof value !== 'object') return value;
    const keys = Object.keys(value);
    if (keys.length === 1 && (keys[0] === 'Ref' || keys[0].startsWith('Fn::') || keys[0] === 'Condition')) {
      return this.intrinsic(keys[0], value[keys[0]]);
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.resolve(v)]).filter(([, v]) => v !== NO_VALUE));
  }

  private ref(name: string): Json {
    if (name === 'AWS::NoValue') return NO_VALUE;
    const pseudo = PSEUDO(this.stackName, this.stackId, this.emulator.region, this.emulator.account);
    if (name in pseudo) return pseudo[name];
    const parameter = this.template.Parameters?.[name];
    if (parameter) return parameter.Default ?? '';
    const resource = this.resources.get(name);
    if (!resource) throw new StackFailure(`Ref to ${name}, which is not deployed`);
    return resource.physicalId;
  }

  private getAtt(id: string, attribute: string): Json {
    const resource = this.resources.get(id);
    if (!resource) throw new StackFailure(`Fn::GetAtt on ${id}, which is not deployed`);
    if (!(attribute in resource.attributes) && resource.standIn) return `${resource.physicalId}-${attribute}`;
    if (!(attribute in resource.attributes)) {
      const message = `the template reads attribute ${attribute} of ${id}, which ${isCustom(resource.type) ? "its response's Data" : 'the resource'} lacks`;
      this.problems.push(message);
      throw new StackFailure(message);
    }
    return resource.attributes[attribute];
  }

  private intrinsic(fn: string, arg: Json): Json {
    switch (fn) {
      case 'Ref': return this.ref(arg);
      case 'Condition': return this.condition(arg);
      case 'Fn::GetAtt': {
        const [id, ...rest] = Array.isArray(arg) ? arg : String(arg).split('.');
        return this.getAtt(id, rest.join('.'));
      }
      case 'Fn::Join': {
        const [delimiter, list] = arg;
        return (this.resolve(list) as Json[]).join(delimiter);
      }
      case 'Fn::Split': {
        const [delimiter, source] = arg;
        return String(this.resolve(source)).split(delimiter);
      }
      case 'Fn::Select': {
        const [index, list] = this.resolve(arg);
        return list[Number(index)];
      }
      case 'Fn::Sub': {
        const [text, vars] = Array.isArray(arg) ? [arg[0], this.resolve(arg[1] ?? {})] : [arg, {}];
        return (text as string).replace(/\$\{([^}]+)\}/g, (whole, name: string) => {
          if (name.startsWith('!')) return whole.replace('!', '');
          if (name in vars) return vars[name];
          return name.includes('.') ? this.getAtt(name.split('.')[0], name.split('.').slice(1).join('.')) : this.ref(name);
        });
      }
      case 'Fn::If': {
        const [name, yes, no] = arg;
        return this.resolve(this.condition(name) ? yes : no);
      }
      case 'Fn::Equals': {
        const [a, b] = this.resolve(arg);
        return JSON.stringify(a) === JSON.stringify(b);
      }
      case 'Fn::Not': return !this.resolve(arg)[0];
      case 'Fn::And': return this.resolve(arg).every(Boolean);
      case 'Fn::Or': return this.resolve(arg).some(Boolean);
      case 'Fn::Base64': return Buffer.from(String(this.resolve(arg))).toString('base64');
      case 'Fn::GetAZs': return ['a', 'b', 'c'].map((z) => `${this.emulator.region}${z}`);
      default: throw new StackFailure(`unsupported intrinsic function ${fn}`);
    }
  }

  private outputs(template: Json): Record<string, string> {
    const outputs: Record<string, string> = {};
    for (const [name, output] of Object.entries<Json>(template?.Outputs ?? {})) {
      if (output.Condition && !this.condition(output.Condition)) continue;
      outputs[name] = String(this.resolve(output.Value));
    }
    return outputs;
  }

  private generatedName(id: string, max = 64): string {
    return `${this.stackName}-${id}`.slice(0, max - 13) + `-${randomBytes(6).toString('hex').toUpperCase()}`;
  }

  private async createResource(id: string, definition: Json): Promise<Deployed> {
    const type: string = definition.Type;
    const properties = this.resolve(definition.Properties ?? {});
    const base = { type, properties, ...policiesOf(definition) };
    const { region, account } = this.emulator;
    switch (true) {
      case type === 'AWS::SecretsManager::Secret': {
        const name = properties.Name ?? `${id}-${randomBytes(6).toString('base64url').slice(0, 12)}`;
        const out = this.emulator.secretsManager.CreateSecret({
          Name: name,
          Description: properties.Description,
          KmsKeyId: properties.KmsKeyId,
          Tags: properties.Tags,
          SecretString: properties.SecretString ?? (properties.GenerateSecretString ? randomBytes(24).toString('base64url') : undefined),
        });
        return { ...base, physicalId: out.ARN, attributes: { Id: out.ARN } };
      }
      case type === 'AWS::StorageGateway::Volume': {
        const gateway = this.emulator.storageGateway;
        const size = properties.VolumeSizeInBytes;
        const out = this.callEmulator(id, () => gateway.CreateCachediSCSIVolume({
          GatewayARN: properties.GatewayARN,
          TargetName: properties.TargetName,
          NetworkInterfaceId: properties.NetworkInterfaceId,
          // CloudFormation converts a Long given as a string (a parameter's value, say).
          VolumeSizeInBytes: typeof size === 'string' && /^\d+$/.test(size) ? Number(size) : size,
          SnapshotId: properties.SnapshotId,
          SourceVolumeARN: properties.SourceVolumeARN,
          KMSEncrypted: properties.KMSEncrypted === undefined ? undefined : String(properties.KMSEncrypted) === 'true',
          KMSKey: properties.KMSKey,
          Tags: properties.Tags,
          ClientToken: randomUUID(),
        }));
        const volume = gateway.volumes.get(out.VolumeARN)!;
        // Ref is the VolumeARN (the type's primary identifier).
        return {
          ...base, physicalId: volume.volumeArn, attributes: {
            VolumeARN: volume.volumeArn, VolumeId: volume.volumeId, TargetARN: volume.targetArn,
            CreatedDate: volume.createdDate.toISOString(), VolumeStatus: 'AVAILABLE', VolumeAttachmentStatus: 'ATTACHED',
            VolumeType: 'CACHED iSCSI', VolumeUsedInBytes: 0,
          },
        };
      }
      case isCustom(type): {
        const body = await this.invokeCustom(id, 'Create', properties);
        return { ...base, physicalId: body.PhysicalResourceId, attributes: { ...(body.Data ?? {}) } };
      }
      case type === 'AWS::Lambda::Function': {
        const name = properties.FunctionName ?? this.generatedName(id);
        return { ...base, physicalId: name, attributes: { Arn: `arn:aws:lambda:${region}:${account}:function:${name}` } };
      }
      case type === 'AWS::IAM::Role': {
        const name = properties.RoleName ?? this.generatedName(id);
        return { ...base, physicalId: name, attributes: { Arn: `arn:aws:iam::${account}:role/${name}`, RoleId: `AROA${randomBytes(8).toString('hex').toUpperCase()}` } };
      }
      case type === 'AWS::Logs::LogGroup': {
        const name = properties.LogGroupName ?? this.generatedName(id, 512);
        return { ...base, physicalId: name, attributes: { Arn: `arn:aws:logs:${region}:${account}:log-group:${name}:*` } };
      }
      case type === 'AWS::KMS::Key': {
        const keyId = randomUUID();
        return { ...base, physicalId: keyId, attributes: { Arn: `arn:aws:kms:${region}:${account}:key/${keyId}`, KeyId: keyId } };
      }
      default: {
        const physicalId = this.generatedName(id);
        const service = type.split('::')[1]?.toLowerCase() ?? 'unknown';
        return { ...base, physicalId, standIn: true, attributes: { Arn: `arn:aws:${service}:${region}:${account}:${physicalId}` } };
      }
    }
  }

  private async updateResource(id: string, definition: Json, old: Deployed, properties: Json): Promise<Deployed> {
    const policies = policiesOf(definition);
    if (definition.Type === 'AWS::StorageGateway::Volume') {
      const replacing = VOLUME_REPLACING.filter((p) => JSON.stringify(properties[p]) !== JSON.stringify(old.properties[p]));
      if (replacing.length) return this.createResource(id, definition); // replacement: a new volume and target
      return { ...old, properties, ...policies }; // Tags only
    }
    if (definition.Type === 'AWS::SecretsManager::Secret') {
      if (properties.Name !== old.properties.Name) return this.createResource(id, definition); // replacement
      const secret = this.emulator.secretsManager.lookup(old.physicalId)!;
      secret.description = properties.Description;
      secret.kmsKeyId = properties.KmsKeyId;
      secret.tags = properties.Tags ?? [];
      return { ...old, properties, ...policies };
    }
    if (isCustom(definition.Type)) {
      const body = await this.invokeCustom(id, 'Update', properties, { physicalId: old.physicalId, oldProperties: old.properties });
      return { ...old, properties, physicalId: body.PhysicalResourceId, attributes: { ...(body.Data ?? {}) } };
    }
    return { ...old, properties, ...policies };
  }

  /**
   * Whether CloudFormation keeps the physical resource on this occasion: a replaced resource follows its
   * UpdateReplacePolicy, any other its DeletionPolicy; RetainExceptOnCreate keeps it except when a rollback deletes
   * what the failed operation created.
   */
  private static keeps(resource: Deployed, occasion: Occasion): boolean {
    const policy = (occasion === 'replace' ? resource.updateReplacePolicy : resource.deletionPolicy) ?? 'Delete';
    if (occasion === 'rollback' && policy === 'RetainExceptOnCreate') return false;
    return ['Retain', 'RetainExceptOnCreate', 'Snapshot'].includes(policy);
  }

  private async deleteResources(ids: string[], from: Map<string, Deployed>, occasion: Occasion): Promise<void> {
    for (const id of ids) {
      const resource = from.get(id);
      // A kept custom resource gets no Delete event either.
      if (!resource || LocalCloudFormation.keeps(resource, occasion)) continue;
      if (isCustom(resource.type)) {
        await this.invokeCustom(id, 'Delete', resource.properties, { physicalId: resource.physicalId });
      } else if (resource.type === 'AWS::SecretsManager::Secret') {
        this.emulator.secretsManager.DeleteSecret({ SecretId: resource.physicalId, ForceDeleteWithoutRecovery: true });
      } else if (resource.type === 'AWS::StorageGateway::Volume') {
        // The volume goes with its target and the target's CHAP credentials; one already gone is deleted.
        this.callEmulator(id, () => this.emulator.storageGateway.DeleteVolume({ VolumeARN: resource.physicalId }), ['VolumeNotFound']);
      }
    }
  }

  /**
   * Calls the emulator as a resource handler would; an AWS error fails the resource with a reason naming it (errors
   * whose errorCode is in `ignored` count as done, and the call returns undefined).
   */
  private callEmulator<T>(logicalId: string, call: () => T): T;
  private callEmulator<T>(logicalId: string, call: () => T, ignored: string[]): T | undefined;
  private callEmulator<T>(logicalId: string, call: () => T, ignored: string[] = []): T | undefined {
    try {
      return call();
    } catch (error) {
      if (!(error instanceof AwsError)) throw error;
      const code = (error.extra.error as { errorCode?: string } | undefined)?.errorCode;
      if (code && ignored.includes(code)) return undefined;
      throw new StackFailure(`${logicalId}: ${error.type}${code ? ` (${code})` : ''}: ${error.message}`);
    }
  }

  /** Sends one event to the custom resource's handler and returns its checked response; FAILED throws. */
  private async invokeCustom(
    logicalId: string, requestType: 'Create' | 'Update' | 'Delete', properties: Json,
    extra: { physicalId?: string; oldProperties?: Json } = {},
  ): Promise<ResponseBody> {
    const functionArn = properties.ServiceToken;
    const fn = this.functionWithArn(functionArn);
    if (!fn) throw new StackFailure(`${logicalId}: ServiceToken ${functionArn} is not a function of this stack`);
    const responseId = randomUUID();
    const event = {
      RequestType: requestType,
      ServiceToken: functionArn,
      ResponseURL: `${this.responseBase}/cloudformation-custom-resource-response/${responseId}?X-Amz-Algorithm=AWS4-HMAC-SHA256`
        + `&X-Amz-Date=20261124T000000Z&X-Amz-Expires=7200&X-Amz-Signature=${randomBytes(32).toString('hex')}`,
      StackId: this.stackId,
      RequestId: randomUUID(),
      LogicalResourceId: logicalId,
      ResourceType: this.template?.Resources?.[logicalId]?.Type ?? 'Custom::Resource',
      ...(extra.physicalId !== undefined ? { PhysicalResourceId: extra.physicalId } : {}),
      ResourceProperties: stringify(properties),
      ...(extra.oldProperties !== undefined ? { OldResourceProperties: stringify(extra.oldProperties) } : {}),
    };
    const deliveries = this.options.deliverTwice ? 2 : 1;
    let first: ResponseBody | undefined;
    await this.withResponses(responseId, async () => {
      for (let i = 0; i < deliveries; i++) {
        const invocation = await this.run(fn, logicalId, event, responseId);
        first ??= invocation.responses[invocation.responses.length - 1]?.body;
      }
    });
    if (!first) {
      const timeout = this.timeoutSeconds(fn);
      throw new StackFailure(`${logicalId}: no response from the custom resource before its function ended (timeout ${timeout} s); `
        + 'CloudFormation would wait for the service timeout');
    }
    if (first.Status === 'FAILED') {
      const failure = new StackFailure(`${logicalId}: ${first.Reason ?? 'FAILED without a reason'}`);
      failure.failed = { logicalId, physicalId: first.PhysicalResourceId };
      throw failure;
    }
    return first;
  }

  /** The deployed function of this stack whose ARN is `arn`. */
  private functionWithArn(arn: unknown): Deployed | undefined {
    return [...this.resources.values()].find((r) => r.type === 'AWS::Lambda::Function' && r.attributes.Arn === arn);
  }

  private timeoutSeconds(fn: Deployed): number {
    return this.options.functionTimeoutSeconds ?? Number(fn.properties.Timeout ?? 3);
  }

  private assetDirOf(fn: Deployed): string {
    const key = String(fn.properties.Code?.S3Key ?? '');
    const hash = key.replace(/\.zip$/, '');
    const assets = fs.readdirSync(this.assemblyDir).filter((f) => f.endsWith('.assets.json'))
      .map((f) => JSON.parse(fs.readFileSync(path.join(this.assemblyDir, f), 'utf8')));
    const source = assets.map((a) => a.files?.[hash]?.source).find(Boolean);
    if (!source) throw new StackFailure(`function code ${key} is not an asset of ${this.assemblyDir}`);
    return path.join(this.assemblyDir, source.path);
  }

  /** Runs the function's handler once in a child process with its environment and timeout. */
  private async run(fn: Deployed, logicalId: string, event: Json, responseId: string, requestId?: string): Promise<Invocation> {
    const timeoutMs = this.timeoutSeconds(fn) * 1000;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      AWS_REGION: this.emulator.region,
      AWS_DEFAULT_REGION: this.emulator.region,
      AWS_ACCESS_KEY_ID: 'ASIALOCALEMULATOR000',
      AWS_SECRET_ACCESS_KEY: 'local-emulator-not-a-secret',
      AWS_SESSION_TOKEN: 'local-emulator-session',
      AWS_ENDPOINT_URL: this.emulator.endpoint,
      AWS_CONFIG_FILE: '/nonexistent/aws-config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
      AWS_LAMBDA_FUNCTION_NAME: fn.physicalId,
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.properties.MemorySize ?? 128),
      AWS_EXECUTION_ENV: `AWS_Lambda_${fn.properties.Runtime ?? 'nodejs'}`,
      NODE_NO_WARNINGS: '1',
      ...(this.options.https ? { NODE_TLS_REJECT_UNAUTHORIZED: '0' } : {}),
      ...(this.options.runtimeNodePath ? { NODE_PATH: this.options.runtimeNodePath } : {}),
      ...(fn.properties.Environment?.Variables ?? {}),
    };
    const assetDir = this.assetDirOf(fn);
    const child: ChildProcess = fork(path.join(__dirname, 'lambda-runner.js'), [], { env, silent: true, execArgv: [] });
    let logs = '';
    child.stdout!.on('data', (d) => (logs += d));
    child.stderr!.on('data', (d) => (logs += d));
    const received = this.received.get(responseId)!;
    const before = received.length;
    const started = process.hrtime.bigint();
    let timing: RunnerTiming | undefined;
    const ended = await new Promise<Invocation['ended']>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('timed out');
      }, timeoutMs);
      child.once('message', (m: { ok: boolean; timing?: RunnerTiming }) => {
        clearTimeout(timer);
        timing = m.timing;
        resolve(m.ok ? 'returned' : 'threw');
      });
      child.once('exit', () => {
        clearTimeout(timer);
        resolve('crashed');
      });
      child.send({
        assetDir, handler: fn.properties.Handler, event, timeoutMs,
        functionName: fn.physicalId, memoryMb: fn.properties.MemorySize ?? 128, requestId,
      });
    });
    await new Promise<void>((r) => (child.exitCode !== null || child.signalCode ? r() : child.once('exit', () => r())));
    const wallMs = Number(process.hrtime.bigint() - started) / 1e6;
    const responses = received.slice(before).map((raw) => ({ raw, body: this.check(event, raw) }));
    const invocation: Invocation = { logicalId, event, responses, logs, ended, wallMs, timing };
    this.invocations.push(invocation);
    return invocation;
  }

  /** Checks a response as CloudFormation would, recording every problem; returns it parsed when usable. */
  private check(event: Json, raw: string): ResponseBody | undefined {
    const problem = (p: string) => this.problems.push(`${event.LogicalResourceId} ${event.RequestType}: ${p}`);
    const bytes = Buffer.byteLength(raw);
    if (bytes > 4096) problem(`response is ${bytes} bytes, over 4096`);
    let body: ResponseBody;
    try {
      body = JSON.parse(raw);
    } catch {
      problem('response is not JSON');
      return undefined;
    }
    if (body.Status !== 'SUCCESS' && body.Status !== 'FAILED') problem(`Status is ${JSON.stringify(body.Status)}`);
    for (const key of ['StackId', 'RequestId', 'LogicalResourceId'] as const) {
      if (body[key] !== event[key]) problem(`${key} is ${JSON.stringify(body[key])}, not the event's`);
    }
    if (typeof body.PhysicalResourceId !== 'string' || !body.PhysicalResourceId || body.PhysicalResourceId.length > 1024) {
      problem(`PhysicalResourceId ${JSON.stringify(body.PhysicalResourceId)} is not a string of 1 to 1024 characters`);
    }
    if (event.RequestType === 'Delete' && body.Status === 'SUCCESS' && body.PhysicalResourceId !== event.PhysicalResourceId) {
      problem('Delete answered with another PhysicalResourceId');
    }
    if (body.Status === 'FAILED' && !body.Reason) problem('FAILED without a Reason');
    for (const [k, v] of Object.entries(body.Data ?? {})) if (typeof v !== 'string') problem(`Data.${k} is not a string`);
    return body;
  }
}

const NO_VALUE = Symbol('AWS::NoValue');
