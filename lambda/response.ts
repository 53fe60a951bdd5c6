/**
 * The CloudFormation custom resource response protocol, in one place: the body (at most 4096 bytes,
 * flat string Data, one-line reason) and its delivery to the pre-signed ResponseURL, retried.
 * The ResponseURL is never logged or returned in an error.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';

export const MAX_RESPONSE_BYTES = 4096;
const MAX_REASON_CHARS = 1024;

export interface Outcome {
  readonly status: 'SUCCESS' | 'FAILED';
  readonly physicalResourceId: string;
  readonly reason?: string;
  readonly data?: Readonly<Record<string, string>>;
}

function render(event: CloudFormationCustomResourceEvent, outcome: Outcome): string {
  return JSON.stringify({
    Status: outcome.status,
    Reason: outcome.reason,
    PhysicalResourceId: outcome.physicalResourceId,
    StackId: event.StackId,
    RequestId: event.RequestId,
    LogicalResourceId: event.LogicalResourceId,
    NoEcho: false,
    Data: outcome.data,
  });
}

/** Bytes the response body takes without its Data: what is left of 4096 is Data's budget. */
export function dataBudget(event: CloudFormationCustomResourceEvent, physicalResourceId: string): number {
  return MAX_RESPONSE_BYTES - Buffer.byteLength(render(event, { status: 'SUCCESS', physicalResourceId, data: {} }));
}

/** A reason on one line, without control characters, short enough for CloudFormation's events. */
export function oneLine(reason: string, maxChars = MAX_REASON_CHARS): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what a one-line reason must not hold
  const flat = reason.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > maxChars ? `${flat.slice(0, maxChars - 3)}...` : flat;
}

/**
 * The response body. Data values are strings; a body that would pass 4096 bytes becomes FAILED
 * with a reason that names the limit, so CloudFormation always gets an answer it accepts.
 */
export function responseBody(event: CloudFormationCustomResourceEvent, outcome: Outcome): string {
  const data = outcome.data && Object.fromEntries(Object.entries(outcome.data).map(([k, v]) => [k, String(v)]));
  const body = render(event, { ...outcome, reason: outcome.reason && oneLine(outcome.reason), data });
  if (Buffer.byteLength(body) <= MAX_RESPONSE_BYTES) return body;
  const reason = `the response would be ${Buffer.byteLength(body)} bytes, more than CloudFormation's limit of ${MAX_RESPONSE_BYTES} bytes`;
  const failed = render(event, { status: 'FAILED', physicalResourceId: outcome.physicalResourceId, reason });
  if (Buffer.byteLength(failed) <= MAX_RESPONSE_BYTES) return failed;
  return render(event, { status: 'FAILED', physicalResourceId: outcome.physicalResourceId.slice(0, 512), reason });
}

function put(url: URL, body: string, timeoutMs: number): Promise<number> {
  const client = url.protocol === 'http:' ? http : https;
  return new Promise((resolve, reject) => {
    const req = client.request(url, {
      method: 'PUT',
      headers: { 'content-type': '', 'content-length': Buffer.byteLength(body) },
      timeout: timeoutMs,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

export interface SendOptions {
  /** Attempts before giving up. */
  readonly attempts?: number;
  /** First backoff; doubles after each failed attempt. */
  readonly backoffMs?: number;
  /** Time for one attempt. */
  readonly timeoutMs?: number;
}

/** PUTs the body to the event's ResponseURL; network errors and 5xx are retried with backoff. */
export async function sendResponse(event: CloudFormationCustomResourceEvent, body: string, options: SendOptions = {}): Promise<void> {
  const { attempts = 5, backoffMs = 250, timeoutMs = 10_000 } = options;
  const url = new URL(event.ResponseURL);
  let problem = '';
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      const status = await put(url, body, timeoutMs);
      if (status >= 200 && status < 300) return;
      problem = `HTTP ${status}`;
      if (status < 500) break;
    } catch (error) {
      problem = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    }
    if (attempt < attempts) await new Promise((r) => setTimeout(r, backoffMs * 2 ** (attempt - 1)));
  }
  throw new Error(`could not deliver the response to CloudFormation: ${problem}`);
}
