/**
 * A small client for the jsii kernel, driven the way every jsii language drives it: the `@jsii/runtime` webpack
 * bundle runs in a child `node` process and speaks JSON, one message per line, over its stdin and stdout.
 *
 * The protocol, as read from @jsii/runtime 1.140.0 (lib/host.js, lib/program.js, bin/jsii-runtime.js) and from
 * aws/jsii packages/@jsii/kernel/src/api.ts and the Python runtime's process provider:
 * - the runtime first writes `{ "hello": "@jsii/runtime@<version>" }`;
 * - a request is `{ "api": "<name>", ...fields }` (load, create, del, get, sget, set, sset, invoke, sinvoke, naming,
 *   stats, ...); the answer is `{ "ok": <response> }` or `{ "error": message, "name": type, "stack": text }`;
 * - while it runs a request the kernel may call back into the host (an override of a method or property of an object
 *   the host created): it writes `{ "callback": { cbid, cookie, invoke | get | set } }`, the host may send further
 *   requests (nested), then answers `{ "complete": { cbid, result } }` or `{ "complete": { cbid, err, name } }`,
 *   after which the original request's answer follows;
 * - `{ "exit": 0 }` ends the process;
 * - the bundle's own stdout and stderr reach our stderr as lines `{ "stdout" | "stderr": <base64> }`; anything else on
 *   stderr (Node's warnings, the end-of-life banner) is plain text.
 * Values on the wire: objects by reference `{ "$jsii.byref": "<fqn>@<id>", "$jsii.interfaces"?: [...] }`, structs as
 * plain JSON objects or `{ "$jsii.struct": { fqn, data } }` (structs come back by reference, fqn `Object`), enums
 * `{ "$jsii.enum": "<fqn>/<MEMBER>" }`, dates `{ "$jsii.date": "<ISO 8601>" }`, maps `{ "$jsii.map": {...} }`.
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as path from 'node:path';
import * as readline from 'node:readline';

export const TOKEN_REF = '$jsii.byref';
export const TOKEN_INTERFACES = '$jsii.interfaces';
export const TOKEN_ENUM = '$jsii.enum';
export const TOKEN_STRUCT = '$jsii.struct';
export const TOKEN_MAP = '$jsii.map';
export const TOKEN_DATE = '$jsii.date';

/** A reference to an object that lives in the kernel. */
export interface ObjRef {
  readonly [TOKEN_REF]: string;
  readonly [TOKEN_INTERFACES]?: readonly string[];
}

/** Anything JSON, plus the wire forms above. */
export type WireValue = unknown;

/** Declares that the host implements a method or property of an object it creates (the kernel then calls back). */
export type Override = { readonly method: string; readonly cookie?: string } | { readonly property: string; readonly cookie?: string };

export interface Callback {
  readonly cbid: string;
  readonly cookie?: string;
  readonly invoke?: { readonly objref: ObjRef; readonly method: string; readonly args?: WireValue[] };
  readonly get?: { readonly objref: ObjRef; readonly property: string };
  readonly set?: { readonly objref: ObjRef; readonly property: string; readonly value: WireValue };
}

/** What the host answers to a callback: the value to return (or throw to answer with an error). */
export type CallbackHandler = (callback: Callback) => WireValue | Promise<WireValue>;

/**
 * Names of error answers. `name` is the kernel's for its own errors; for an error thrown by the library's code it is
 * that error's own name (aws-cdk-lib's validation errors carry their id, e.g. `MaxSessionDurationSet`; a plain
 * `Error` is `Error`). The language runtimes raise a fault as a jsii error and anything else as a runtime error.
 */
export const KernelErrorType = {
  /** The kernel could not do what was asked (unknown type, object not found, ...). */
  FAULT: '@jsii/kernel.Fault',
  /** A value could not be converted to the declared type (a missing required struct field, a wrong type). */
  SERIALIZATION_ERROR: '@jsii/kernel.SerializationError',
  /** What a host answers for a callback that failed (the kernel rethrows it into the library's code). */
  RUNTIME_ERROR: '@jsii/kernel.RuntimeError',
} as const;

/** An `error` answer of the kernel, as a host language would raise it. */
export class KernelError extends Error {
  constructor(
    /** The kernel's message: the JavaScript error's message, unchanged. */
    message: string,
    /** The error's name: see {@link KernelErrorType}. */
    public readonly kernelName: string | undefined,
    /** The JavaScript stack inside the kernel. */
    public readonly kernelStack: string | undefined,
    /** The api of the request that failed. */
    public readonly api: string,
  ) {
    super(message);
    this.name = 'KernelError';
  }
}

export interface LoadResponse { readonly assembly: string; readonly types: number }
export interface NamingResponse { readonly naming: { readonly [language: string]: { readonly [key: string]: unknown } | undefined } }

/** Every request this client sends, by api. */
export type KernelRequest =
  | { api: 'load'; name: string; version: string; tarball: string }
  | { api: 'naming'; assembly: string }
  | { api: 'create'; fqn: string; args?: WireValue[]; interfaces?: string[]; overrides?: Override[] }
  | { api: 'del'; objref: ObjRef }
  | { api: 'get'; objref: ObjRef; property: string }
  | { api: 'sget'; fqn: string; property: string }
  | { api: 'set'; objref: ObjRef; property: string; value: WireValue }
  | { api: 'sset'; fqn: string; property: string; value: WireValue }
  | { api: 'invoke'; objref: ObjRef; method: string; args?: WireValue[] }
  | { api: 'sinvoke'; fqn: string; method: string; args?: WireValue[] }
  | { api: 'stats' };

/** Path of the bundle every jsii language embeds (its `jsii-runtime.js` entry point). */
export function runtimeBundlePath(): string {
  return path.join(path.dirname(require.resolve('@jsii/runtime/package.json')), 'webpack', 'bin', 'jsii-runtime.js');
}

export interface KernelOptions {
  /** Extra environment for the kernel process (on top of this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** Answers the kernel's callbacks. @default - a callback is answered with an error */
  readonly onCallback?: CallbackHandler;
}

type Message =
  | { readonly hello: string }
  | { readonly ok: WireValue }
  | { readonly error: string; readonly name?: string; readonly stack?: string }
  | { readonly callback: Callback };

/**
 * One kernel process. Requests are strictly sequential, as in every jsii language: one at a time, plus the nested
 * ones a callback handler sends while the kernel waits for its answer.
 */
export class KernelClient {
  /** Starts the kernel and reads its hello. */
  public static async start(options: KernelOptions = {}): Promise<KernelClient> {
    const child = spawn(process.execPath, [runtimeBundlePath()], {
      stdio: ['pipe', 'pipe', 'pipe'],
      // @jsii/check-node reads this as a list of major versions ('1' would not silence Node 20's end-of-life banner).
      env: { ...process.env, JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: process.versions.node.split('.')[0], ...options.env },
    });
    const client = new KernelClient(child, options.onCallback);
    const hello = await client.nextMessage().catch((e: Error) => ({ error: e.message }));
    if (!('hello' in hello)) {
      await client.close();
      throw new Error(`the kernel did not say hello: ${JSON.stringify(hello)}`);
    }
    client.hello = hello.hello;
    return client;
  }

  /** `@jsii/runtime@<version>`, from the kernel's hello. */
  public hello = '';
  /** Everything the kernel process wrote to stderr (the library's console output included), decoded. */
  public stderr = '';
  /** What the library wrote to its stdout inside the kernel, decoded. */
  public stdout = '';

  private readonly pending: Array<{ resolve: (m: Message) => void; reject: (e: Error) => void }> = [];
  private readonly arrived: Message[] = [];
  private exited?: { code: number | null; signal: NodeJS.Signals | null };
  private readonly exitPromise: Promise<void>;
  /** Requests sent and not answered yet, and how many of them wait for a callback's answer. */
  private inFlight = 0;
  private inCallback = 0;

  private constructor(private readonly child: ChildProcess, public onCallback?: CallbackHandler) {
    readline.createInterface({ input: child.stdout! }).on('line', (line) => {
      let message: Message;
      try {
        message = JSON.parse(line) as Message;
      } catch {
        this.fail(new Error(`the kernel wrote a line that is not JSON: ${line.slice(0, 200)}`));
        return;
      }
      const waiter = this.pending.shift();
      if (waiter) waiter.resolve(message); else this.arrived.push(message);
    });
    readline.createInterface({ input: child.stderr! }).on('line', (line) => this.captureStderr(line));
    // 'close', not 'exit': by then every line the kernel wrote has been read.
    this.exitPromise = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.exited = { code, signal };
        this.fail(new Error(`the kernel exited (code ${code}, signal ${signal}); its stderr:\n${this.stderr.slice(-4000)}`));
        resolve();
      });
    });
    child.once('error', (err) => this.fail(err));
    // A write to a kernel that died fails with EPIPE here; the reader reports the exit and the kernel's stderr.
    child.stdin!.on('error', () => undefined);
  }

  public load(name: string, version: string, tarball: string): Promise<LoadResponse> {
    return this.request({ api: 'load', name, version, tarball }) as Promise<LoadResponse>;
  }

  public naming(assembly: string): Promise<NamingResponse> {
    return this.request({ api: 'naming', assembly }) as Promise<NamingResponse>;
  }

  public async create(fqn: string, args: WireValue[] = [], extra: { interfaces?: string[]; overrides?: Override[] } = {}): Promise<ObjRef> {
    return await this.request({ api: 'create', fqn, args, ...extra }) as ObjRef;
  }

  public async del(objref: ObjRef): Promise<void> {
    await this.request({ api: 'del', objref });
  }

  public async get(objref: ObjRef, property: string): Promise<WireValue> {
    return (await this.request({ api: 'get', objref, property }) as { value: WireValue }).value;
  }

  public async sget(fqn: string, property: string): Promise<WireValue> {
    return (await this.request({ api: 'sget', fqn, property }) as { value: WireValue }).value;
  }

  public async set(objref: ObjRef, property: string, value: WireValue): Promise<void> {
    await this.request({ api: 'set', objref, property, value });
  }

  public async invoke(objref: ObjRef, method: string, args: WireValue[] = []): Promise<WireValue> {
    return (await this.request({ api: 'invoke', objref, method, args }) as { result: WireValue }).result;
  }

  public async sinvoke(fqn: string, method: string, args: WireValue[] = []): Promise<WireValue> {
    return (await this.request({ api: 'sinvoke', fqn, method, args }) as { result: WireValue }).result;
  }

  public async stats(): Promise<{ objectCount: number }> {
    return await this.request({ api: 'stats' }) as { objectCount: number };
  }

  /** Sends one request and returns its `ok` value; answers the callbacks that arrive meanwhile; throws a {@link KernelError}. */
  public async request(req: KernelRequest): Promise<WireValue> {
    if (this.inFlight !== this.inCallback) {
      throw new Error(`'${req.api}' sent while another request is in flight: the kernel takes one request at a time`);
    }
    this.inFlight++;
    try {
      this.write(req);
      for (;;) {
        const message = await this.nextMessage();
        if ('ok' in message) return message.ok;
        if ('error' in message) throw new KernelError(message.error, message.name, message.stack, req.api);
        if ('callback' in message) {
          this.write({ complete: await this.answer(message.callback) });
          continue;
        }
        throw new Error(`unexpected message from the kernel: ${JSON.stringify(message).slice(0, 200)}`);
      }
    } finally {
      this.inFlight--;
    }
  }

  /** Ends the kernel as the language runtimes do (`{"exit":0}`, stdin closed); kills it if it has not exited in 5 s. */
  public async close(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.exited && this.child.stdin!.writable) {
      this.child.stdin!.write(`${JSON.stringify({ exit: 0 })}\n`);
      this.child.stdin!.end();
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.exitPromise, new Promise<void>((resolve) => { timer = setTimeout(resolve, 5_000); })]);
    clearTimeout(timer);
    if (!this.exited) {
      this.child.kill('SIGTERM');
      await this.exitPromise;
    }
    return this.exited!;
  }

  private async answer(callback: Callback): Promise<{ cbid: string; result?: WireValue; err?: string; name?: string }> {
    this.inCallback++;
    try {
      if (!this.onCallback) throw new Error(`no callback handler for ${JSON.stringify(callback)}`);
      return { cbid: callback.cbid, result: await this.onCallback(callback) };
    } catch (e) {
      return { cbid: callback.cbid, err: (e as Error).message, name: KernelErrorType.RUNTIME_ERROR };
    } finally {
      this.inCallback--;
    }
  }

  private write(message: object): void {
    if (this.exited) throw new Error(`the kernel has exited; its stderr:\n${this.stderr.slice(-4000)}`);
    this.child.stdin!.write(`${JSON.stringify(message)}\n`);
  }

  private nextMessage(): Promise<Message> {
    const message = this.arrived.shift();
    if (message) return Promise.resolve(message);
    if (this.exited) return Promise.reject(new Error(`the kernel has exited; its stderr:\n${this.stderr.slice(-4000)}`));
    return new Promise((resolve, reject) => this.pending.push({ resolve, reject }));
  }

  private fail(err: Error): void {
    for (const waiter of this.pending.splice(0)) waiter.reject(err);
  }

  private captureStderr(line: string): void {
    try {
      const wrapped = JSON.parse(line) as { stdout?: string; stderr?: string };
      if (typeof wrapped.stderr === 'string') this.stderr += Buffer.from(wrapped.stderr, 'base64').toString('utf8');
      if (typeof wrapped.stdout === 'string') this.stdout += Buffer.from(wrapped.stdout, 'base64').toString('utf8');
      if (typeof wrapped.stderr === 'string' || typeof wrapped.stdout === 'string') return;
    } catch {
      // not a wrapped line: plain text from the runtime process itself
    }
    this.stderr += `${line}\n`;
  }
}

/** The fqn in an object reference (`aws-cdk-lib.aws_iam.CfnRole@10012` gives `aws-cdk-lib.aws_iam.CfnRole`). */
export function refFqn(ref: ObjRef): string {
  return ref[TOKEN_REF].replace(/@\d+$/, '');
}

export function wireEnum(fqn: string, member: string): { readonly [TOKEN_ENUM]: string } {
  return { [TOKEN_ENUM]: `${fqn}/${member}` };
}

/** A struct with its type named (a plain JSON object works too; the kernel then takes the declared type). */
export interface WireStruct { readonly [TOKEN_STRUCT]: { readonly fqn: string; readonly data: Record<string, WireValue> } }

export function wireStruct(fqn: string, data: Record<string, WireValue>): WireStruct {
  return { [TOKEN_STRUCT]: { fqn, data } };
}

export function wireDate(date: Date): { readonly [TOKEN_DATE]: string } {
  return { [TOKEN_DATE]: date.toISOString() };
}

/** Plain JSON from a returned value: `$jsii.map` unwrapped and `$jsii.date` to a Date, recursively; references kept. */
export function fromWire(value: WireValue): WireValue {
  if (Array.isArray(value)) return value.map(fromWire);
  if (typeof value !== 'object' || value === null) return value;
  if (TOKEN_MAP in value) return fromWire((value as { [TOKEN_MAP]: WireValue })[TOKEN_MAP]);
  if (TOKEN_DATE in value) return new Date((value as { [TOKEN_DATE]: string })[TOKEN_DATE]);
  if (TOKEN_REF in value || TOKEN_ENUM in value) return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromWire(v)]));
}
