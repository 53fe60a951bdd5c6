/**
 * What the parts of the local CloudFormation driver share: the options, the stack being operated on (its template,
 * deployed resources and identity), the shapes of invocations and responses, and the error that fails a stack
 * operation.
 */
import { Emulator } from '../emulator';

export type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

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

export interface Deployed {
  readonly type: string;
  readonly physicalId: string;
  readonly attributes: Record<string, unknown>;
  /** A resource type the driver only stands in for: any attribute the template reads gets a plausible value. */
  readonly standIn?: boolean;
  /** The resolved properties the resource was provisioned with (dynamic references replaced by their values). */
  readonly properties: Json;
  /**
   * The resolved properties with dynamic references (`{{resolve:ssm:NAME}}`) left as written: what CloudFormation
   * compares to decide whether the resource changed.
   */
  readonly declared?: Json;
  readonly deletionPolicy?: string;
  readonly updateReplacePolicy?: string;
}

export interface StackResult {
  readonly status: string;
  /** The first failure's reason, as CloudFormation's events would show it. */
  readonly reason?: string;
  readonly outputs: Record<string, string>;
}

/** Why a resource's physical resource is being deleted: its DeletionPolicy or UpdateReplacePolicy decides. */
export type Occasion = 'delete' | 'replace' | 'rollback';

/**
 * The stack one driver operates on: its identity, the template being deployed (or deployed), the cloud assembly it
 * came from and the deployed resources by logical id. The driver's parts read it; stack operations change it.
 */
export class StackState {
  name = '';
  id = '';
  assemblyDir = '';
  template: Json;
  /** The template parameters' values for the current operation (an SSM parameter type holds the value read). */
  parameters: Record<string, Json> = {};
  resources = new Map<string, Deployed>();
}

/** Fails the stack operation with a reason, as a resource's failure event would show it. */
export class StackFailure extends Error {
  /** The resource whose handler answered FAILED, with the physical id it answered (CloudFormation later deletes it). */
  failed?: { logicalId: string; physicalId: string };
}

/** A template resource's DeletionPolicy and UpdateReplacePolicy, as a deployed resource keeps them. */
export const policiesOf = (definition: Json) => ({ deletionPolicy: definition.DeletionPolicy, updateReplacePolicy: definition.UpdateReplacePolicy });

export const isCustom = (type: string) => type.startsWith('Custom::') || type === 'AWS::CloudFormation::CustomResource';
