/**
 * Runs one Lambda handler invocation in this (child) process, as the Lambda Node.js runtime would: loads the
 * handler file from the asset folder, gives it the event and a Lambda-like context whose
 * getRemainingTimeInMillis counts down to the function's timeout, and reports how the invocation ended.
 * Started by the local CloudFormation driver with `fork`; the event arrives as the first IPC message.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

interface Invoke {
  readonly assetDir: string;
  readonly handler: string;
  readonly event: unknown;
  readonly timeoutMs: number;
  readonly functionName: string;
  readonly memoryMb: number;
  /** The invocation's request id; Lambda keeps it when it retries an asynchronous invocation. */
  readonly requestId?: string;
}

process.once('message', async (message: Invoke) => {
  const started = Date.now();
  const dot = message.handler.lastIndexOf('.');
  const [file, exportName] = [message.handler.slice(0, dot), message.handler.slice(dot + 1)];
  const context = {
    functionName: message.functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${process.env.AWS_REGION}:111122223333:function:${message.functionName}`,
    memoryLimitInMB: String(message.memoryMb),
    awsRequestId: message.requestId ?? `${Math.random().toString(16).slice(2)}-local`,
    logGroupName: `/aws/lambda/${message.functionName}`,
    logStreamName: 'local',
    callbackWaitsForEmptyEventLoop: true,
    getRemainingTimeInMillis: () => Math.max(0, message.timeoutMs - (Date.now() - started)),
  };
  let outcome: { ok: boolean; error?: string };
  let loadedAtMs = 0;
  let loadMs = 0;
  try {
    const before = performance.now();
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const mod = require(path.join(message.assetDir, file));
    loadedAtMs = performance.now();
    loadMs = loadedAtMs - before;
    await mod[exportName](message.event, context);
    outcome = { ok: true };
  } catch (error) {
    // As the Lambda runtime does: the error's type and message go to the function's log.
    console.error(JSON.stringify({ errorType: (error as Error)?.name, errorMessage: (error as Error)?.message }));
    outcome = { ok: false, error: (error as Error)?.name ?? 'Error' };
  }
  const files = Object.keys(require.cache).filter((f) => f !== __filename);
  const moduleBytes = files.reduce((sum, f) => sum + (fs.existsSync(f) ? fs.statSync(f).size : 0), 0);
  process.send!({ ...outcome, timing: { loadedAtMs, loadMs, modules: files.length, moduleBytes } }, () => process.exit(0));
});
