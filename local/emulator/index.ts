/**
 * A local stand-in for the AWS APIs the construct uses, on Node's own http server on 127.0.0.1. It speaks the
 * AWS JSON 1.1 protocol as the AWS SDK for JavaScript v3 sends it (`POST /`, `x-amz-target`,
 * `application/x-amz-json-1.1`, errors as `{"__type", "message"}`), so the real handler reaches it through
 * AWS_ENDPOINT_URL with no code path of its own. Faults can be injected per operation.
 */
import * as http from 'node:http';
import { AddressInfo, Socket } from 'node:net';
import { randomUUID } from 'node:crypto';
import { AwsError } from './errors';
import { CloudFormation } from './cloudformation';
import { SecretsManager } from './secrets-manager';
import { Ssm } from './ssm';
import { StorageGateway } from './storage-gateway';

export { AwsError } from './errors';
export { ROTATION_STEPS, SecretsManager } from './secrets-manager';
export type {
  RotationAuthorizer, RotationEvent, RotationInvocation, RotationInvoker, RotationLogEvent, RotationOptions, RotationRecord, RotationRules,
  RotationStatus, RotationStep,
} from './secrets-manager';
export { CloudFormation } from './cloudformation';
export { Ssm, SSM_VALUE_MAX_LENGTH } from './ssm';
export { StorageGateway, TARGET_IQN_PREFIX, volumeTargetArn } from './storage-gateway';
export type { ChapCredential, Volume, VolumeSpec } from './storage-gateway';

const SERVICES = {
  StorageGateway_20130630: 'storagegateway',
  secretsmanager: 'secretsmanager',
  AmazonSSM: 'ssm',
} as const;
type Service = (typeof SERVICES)[keyof typeof SERVICES] | 'cloudformation';
/** Each service's name for its own 500 error. */
const INTERNAL_ERROR: Record<Service, string> = {
  storagegateway: 'InternalServerError', secretsmanager: 'InternalServiceError', cloudformation: 'InternalFailure', ssm: 'InternalServerError',
};

/** Faults for one operation (or '*' for every operation). Counts are consumed call by call. */
export interface Fault {
  /** Added before every answer. */
  latencyMs?: number;
  /** The next N calls answer 400 ThrottlingException. */
  throttle?: number;
  /** The next N calls answer a 5xx error (500, 502, 503 in turn). */
  serverErrors?: number;
  /** The next N calls have their connection reset without an answer. */
  resets?: number;
  /** Every call waits forever (until the client gives up). */
  hang?: boolean;
  /** Every call fails with this error. */
  failAll?: { type: string; status: number; message?: string };
  /** Calls above this many per second (sliding window, across the operations that share the limit) are throttled. */
  maxPerSecond?: number;
  /** Only calls whose input has these member values get the fault, such as `{ SecretId: arn }`; others pass. */
  only?: Readonly<Record<string, string>>;
}

export interface Call {
  readonly service: Service;
  readonly operation: string;
  readonly status: number;
  readonly errorType?: string;
  /** When the request arrived and when it was answered (ms since the epoch). */
  readonly started: number;
  readonly at: number;
}

export interface EmulatorOptions {
  readonly region?: string;
  readonly account?: string;
}

export class Emulator {
  readonly region: string;
  readonly account: string;
  readonly storageGateway = new StorageGateway();
  /** Stack statuses, kept by the local CloudFormation driver; read with DescribeStacks (AWS query protocol). */
  readonly cloudFormation = new CloudFormation();
  readonly secretsManager: SecretsManager;
  /** Parameter Store: the driver's AWS::SSM::Parameter resources and the SSM values a template reads. */
  readonly ssm: Ssm;
  /** Every call answered (or reset), in order. */
  readonly calls: Call[] = [];
  private readonly faults = new Map<string, Fault>();
  private readonly rateWindows = new Map<Fault, number[]>();
  private readonly sockets = new Set<Socket>();
  private server?: http.Server;
  private url?: string;

  constructor(options: EmulatorOptions = {}) {
    this.region = options.region ?? 'us-east-1';
    this.account = options.account ?? '111122223333';
    this.secretsManager = new SecretsManager(this.region, this.account);
    this.ssm = new Ssm(this.region, this.account);
  }

  /** The endpoint for AWS_ENDPOINT_URL. */
  get endpoint(): string {
    if (!this.url) throw new Error('the emulator is not started');
    return this.url;
  }

  /** Sets (replaces) the faults of `operations` ('*' for all); the same object is shared, so a rate limit spans them. */
  inject(operations: string | string[], fault: Fault): void {
    for (const op of [operations].flat()) this.faults.set(op, fault);
  }

  clearFaults(): void {
    this.faults.clear();
    this.rateWindows.clear();
  }

  /**
   * Round trips among `calls`: the most calls that ran one after another without overlapping. Calls made in
   * parallel overlap, so this counts the sequential stages a handler waited through.
   */
  static roundTrips(calls: readonly Call[]): number {
    let count = 0;
    let free = -Infinity;
    for (const call of [...calls].sort((a, b) => a.at - b.at)) {
      if (call.started >= free) {
        count++;
        free = call.at;
      }
    }
    return count;
  }

  /** Calls of one operation (or all), optionally only those that succeeded. */
  callsOf(operation?: string, succeeded = false): Call[] {
    return this.calls.filter((c) => (!operation || c.operation === operation) && (!succeeded || c.status === 200));
  }

  async start(port = 0): Promise<this> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private record(service: Service, operation: string, started: number, status: number, errorType?: string): void {
    this.calls.push({ service, operation, status, errorType, started, at: Date.now() });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const started = Date.now();
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    // CloudFormation speaks the AWS query protocol (a form-encoded request, an XML answer); the others JSON 1.1.
    const form = String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')
      ? new URLSearchParams(Buffer.concat(chunks).toString('utf8')) : undefined;
    const target = String(req.headers['x-amz-target'] ?? '');
    const [prefix, jsonOperation = ''] = target.split('.');
    const operation = form ? form.get('Action') ?? '' : jsonOperation;
    const service: Service | undefined = form ? 'cloudformation' : SERVICES[prefix as keyof typeof SERVICES];
    const send = (status: number, body: Record<string, unknown>) => {
      const text = form ? queryXml(operation, status, body) : JSON.stringify(body);
      res.writeHead(status, {
        'content-type': form ? 'text/xml' : 'application/x-amz-json-1.1',
        'content-length': Buffer.byteLength(text),
        'x-amzn-requestid': randomUUID(),
        ...(status >= 400 && !form ? { 'x-amzn-errortype': String(body.__type) } : {}),
      });
      res.end(text);
    };
    const fail = (error: AwsError) => {
      this.record(service as Service, operation, started, error.status, error.type);
      send(error.status, error.body());
    };

    if (req.method !== 'POST' || req.url !== '/' || !service) {
      return fail(new AwsError('UnknownOperationException', `Unknown operation ${JSON.stringify(target)}`));
    }
    if (!form && !String(req.headers['content-type'] ?? '').startsWith('application/x-amz-json-1.1')) {
      return fail(new AwsError('SerializationException', 'Expected content type application/x-amz-json-1.1'));
    }
    if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 Credential=')) {
      return fail(new AwsError('MissingAuthenticationTokenException', 'Missing Authentication Token', 403));
    }
    const apis = { storagegateway: this.storageGateway, secretsmanager: this.secretsManager, cloudformation: this.cloudFormation, ssm: this.ssm };
    const api = apis[service] as unknown as
      Record<string, ((input: Record<string, unknown>) => unknown) | undefined>;
    if (!/^[A-Z]/.test(operation) || typeof api[operation] !== 'function') {
      return fail(new AwsError('UnknownOperationException', `Unknown operation ${operation}`));
    }

    let input: Record<string, unknown>;
    try {
      input = form ? Object.fromEntries([...form].filter(([k]) => k !== 'Action' && k !== 'Version'))
        : chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {};
    } catch {
      return fail(new AwsError('SerializationException', 'Start of structure or map found where not expected'));
    }
    const candidate = this.faults.get(operation) ?? this.faults.get('*');
    const fault = candidate?.only && !Object.entries(candidate.only).every(([k, v]) => input[k] === v) ? undefined : candidate;
    if (fault?.latencyMs) await new Promise((r) => setTimeout(r, fault.latencyMs));
    if (fault?.hang) return; // never answers; the client's timeout or abort ends it
    if (fault?.resets && fault.resets > 0) {
      fault.resets--;
      this.record(service, operation, started, 0, 'ConnectionReset');
      req.socket.destroy();
      return;
    }
    if (fault?.throttle && fault.throttle > 0) {
      fault.throttle--;
      return fail(new AwsError('ThrottlingException', 'Rate exceeded'));
    }
    if (fault?.maxPerSecond !== undefined) {
      const now = Date.now();
      const window = (this.rateWindows.get(fault) ?? []).filter((t) => now - t < 1000);
      this.rateWindows.set(fault, window);
      if (window.length >= fault.maxPerSecond) return fail(new AwsError('ThrottlingException', 'Rate exceeded'));
      window.push(now);
    }
    if (fault?.serverErrors && fault.serverErrors > 0) {
      const status = [500, 502, 503][fault.serverErrors-- % 3];
      return fail(new AwsError(status === 500 ? INTERNAL_ERROR[service] : 'ServiceUnavailable', 'An internal error occurred', status));
    }
    if (fault?.failAll) return fail(new AwsError(fault.failAll.type, fault.failAll.message ?? 'Injected failure', fault.failAll.status));

    try {
      const output = api[operation]!.call(api, input);
      this.record(service, operation, started, 200);
      send(200, JSON.parse(JSON.stringify(output ?? {})));
    } catch (error) {
      if (error instanceof AwsError) return fail(error);
      return fail(new AwsError(INTERNAL_ERROR[service], 'An internal error occurred', 500));
    }
  }
}

/** A value as the AWS query protocol's XML: structures as elements, lists as `member` elements, text escaped. */
function xml(value: unknown): string {
  if (Array.isArray(value)) return value.map((v) => `<member>${xml(v)}</member>`).join('');
  if (value && typeof value === 'object') return Object.entries(value).map(([k, v]) => (v === undefined ? '' : `<${k}>${xml(v)}</${k}>`)).join('');
  return String(value).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** An AWS query protocol answer: `<OpResponse><OpResult>...` or, for an error, `<ErrorResponse><Error>...`. */
function queryXml(operation: string, status: number, body: Record<string, unknown>): string {
  const requestId = `<RequestId>${randomUUID()}</RequestId>`;
  if (status >= 400) {
    const type = status >= 500 ? 'Receiver' : 'Sender';
    return `<ErrorResponse><Error><Type>${type}</Type><Code>${xml(body.__type)}</Code><Message>${xml(body.message)}</Message></Error>${requestId}</ErrorResponse>`;
  }
  const ns = 'http://cloudformation.amazonaws.com/doc/2010-05-15/';
  return `<${operation}Response xmlns="${ns}"><${operation}Result>${xml(body)}</${operation}Result>`
    + `<ResponseMetadata>${requestId}</ResponseMetadata></${operation}Response>`;
}

/** Starts an emulator on a free port of 127.0.0.1. */
export async function startEmulator(options?: EmulatorOptions): Promise<Emulator> {
  return new Emulator(options).start();
}
