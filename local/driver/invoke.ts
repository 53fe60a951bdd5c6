/**
 * Invocation for the local CloudFormation driver: runs a function of the stack from its asset folder in cdk.out (the
 * file Lambda would run) in a child Node process, with Lambda's environment and timeout. Custom resource events are
 * shaped like CloudFormation's (every property value a string, a pre-signed-URL-like ResponseURL served here); every
 * response is checked (status, echoed ids, 4096 bytes, flat Data). Also redelivers an event, as Lambda's retries of an
 * asynchronous invocation do, and fires an EventBridge rule's Lambda target.
 */
import { ChildProcess, fork } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { Emulator } from '../emulator';
import { FunctionRunner } from './lambda';
import { Deployed, DriverOptions, Invocation, Json, ResponseBody, RunnerTiming, StackFailure, StackState } from './types';

/** CloudFormation hands custom resources every scalar as a string. */
function stringify(value: Json): Json {
  if (Array.isArray(value)) return value.map(stringify);
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, stringify(v)]));
  return value === null || value === undefined ? value : String(value);
}

export class Invoker implements FunctionRunner {
  /** Every handler invocation, in order. */
  readonly invocations: Invocation[] = [];
  /** The first N response PUTs answer 500 (each is still recorded as a try). */
  failResponsePuts = 0;
  private readonly emulator: Emulator;
  private readonly received = new Map<string, string[]>();
  private server?: http.Server;
  private responseBase = '';

  constructor(private readonly options: DriverOptions, private readonly stack: StackState, private readonly problems: string[]) {
    this.emulator = options.emulator;
  }

  /** Starts the server of the ResponseURLs. */
  async start(): Promise<void> {
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
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  /** Sends one event to the custom resource's handler and returns its checked response; FAILED throws. */
  async custom(
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
      StackId: this.stack.id,
      RequestId: randomUUID(),
      LogicalResourceId: logicalId,
      ResourceType: this.stack.template?.Resources?.[logicalId]?.Type ?? 'Custom::Resource',
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

  /**
   * Fires a deployed EventBridge rule once, as its schedule would: runs its Lambda target with the target's constant
   * Input as the event. Returns the invocation (`ended` is 'threw' when the function ended in error).
   */
  async fireRule(ruleLogicalId: string, options: { readonly requestId?: string } = {}): Promise<Invocation> {
    const rule = this.stack.resources.get(ruleLogicalId);
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

  /** Runs a function of this stack once with `event` (as another service invokes it), labelled `label`. */
  async invoke(fn: Deployed, label: string, event: unknown): Promise<Invocation> {
    return this.withResponses(randomUUID(), (responseId) => this.run(fn, label, event, responseId));
  }

  /** The deployed function of this stack whose ARN is `arn`. */
  functionWithArn(arn: unknown): Deployed | undefined {
    return [...this.stack.resources.values()].find((r) => r.type === 'AWS::Lambda::Function' && r.attributes.Arn === arn);
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

  private timeoutSeconds(fn: Deployed): number {
    return this.options.functionTimeoutSeconds ?? Number(fn.properties.Timeout ?? 3);
  }

  private assetDirOf(fn: Deployed): string {
    const assemblyDir = this.stack.assemblyDir;
    const key = String(fn.properties.Code?.S3Key ?? '');
    const hash = key.replace(/\.zip$/, '');
    const assets = fs.readdirSync(assemblyDir).filter((f) => f.endsWith('.assets.json'))
      .map((f) => JSON.parse(fs.readFileSync(path.join(assemblyDir, f), 'utf8')));
    const source = assets.map((a) => a.files?.[hash]?.source).find(Boolean);
    if (!source) throw new StackFailure(`function code ${key} is not an asset of ${assemblyDir}`);
    return path.join(assemblyDir, source.path);
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
    const child: ChildProcess = fork(path.join(__dirname, '..', 'lambda-runner.js'), [], { env, silent: true, execArgv: [] });
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
