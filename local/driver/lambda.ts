/**
 * Lambda, as far as other services invoke a stack's functions: each function's resource policy (the statements that
 * AWS::Lambda::Permission resources add) and the invocation of a function by its ARN. One per emulator (an account
 * and region), shared by every driver on it, and plugged into the emulator's Secrets Manager as its rotation invoker:
 * a rotation step runs the function like any invocation, unless the function's policy does not admit
 * `secretsmanager.amazonaws.com` (with the statement's SourceAccount and SourceArn conditions met), which Lambda
 * refuses with AccessDeniedException, as RotateSecret does before it starts.
 */
import { Emulator, RotationEvent, RotationStep } from '../emulator';
import { Deployed, Invocation } from './types';

export const SECRETS_MANAGER_PRINCIPAL = 'secretsmanager.amazonaws.com';

/** One statement of a function's resource policy, as AddPermission records it. */
export interface PermissionStatement {
  /** The statement id (the permission's physical id). */
  readonly sid: string;
  readonly functionArn: string;
  readonly action: string;
  /** A service principal (`secretsmanager.amazonaws.com`), an account id, an ARN or `*`. */
  readonly principal: string;
  /** `aws:SourceAccount` condition: the account of the resource that invokes. */
  readonly sourceAccount?: string;
  /** `aws:SourceArn` condition (ArnLike: `*` and `?` match): the ARN of the resource that invokes, such as a secret. */
  readonly sourceArn?: string;
}

/** What runs a stack's functions: each driver's invoker. */
export interface FunctionRunner {
  /** The deployed function of the runner's stack whose ARN is `arn`. */
  functionWithArn(arn: unknown): Deployed | undefined;
  /** Runs the function with `event`, labelled `label` among the invocations. */
  invoke(fn: Deployed, label: string, event: unknown): Promise<Invocation>;
}

/** `*` and `?` of an ArnLike condition, everything else literal. */
function arnLike(pattern: string, arn: string): boolean {
  const source = pattern.split('').map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${source}$`).test(arn);
}

/** Lambda's message when a resource-based policy does not allow the invocation. */
export function notAuthorized(principal: string, functionArn: string): string {
  return `User: ${principal} is not authorized to perform: lambda:InvokeFunction on resource: ${functionArn} `
    + 'because no resource-based policy allows the lambda:InvokeFunction action';
}

const services = new WeakMap<Emulator, LambdaService>();

export class LambdaService {
  /** The Lambda of the emulator's account and region, plugged into its Secrets Manager rotation. */
  static of(emulator: Emulator): LambdaService {
    let service = services.get(emulator);
    if (!service) services.set(emulator, (service = new LambdaService(emulator)));
    return service;
  }

  private readonly statements = new Map<string, PermissionStatement>();
  private readonly runners = new Set<FunctionRunner>();

  private constructor(private readonly emulator: Emulator) {
    this.redeliverRotationSteps([]);
  }

  /**
   * Has Secrets Manager deliver these rotation steps twice in a row, as it may (a rotation function must converge);
   * `[]` for once each.
   */
  redeliverRotationSteps(steps: readonly RotationStep[]): void {
    this.emulator.secretsManager.setRotationInvoker((lambdaArn, event) => this.rotate(lambdaArn, event), {
      authorize: (lambdaArn, secretArn) => this.admits(lambdaArn, SECRETS_MANAGER_PRINCIPAL, this.emulator.account, secretArn),
      redeliver: steps,
    });
  }

  /** Lets the functions of a driver's stack be found by ARN. */
  attach(runner: FunctionRunner): void {
    this.runners.add(runner);
  }

  /** The function ARN `functionName` stands for: a name, a partial ARN (ACCOUNT:function:NAME) or an ARN (qualifier dropped). */
  functionArn(functionName: string): string {
    const { region, account } = this.emulator;
    if (functionName.startsWith('arn:')) return functionName.split(':').slice(0, 7).join(':');
    const parts = functionName.split(':');
    if (parts.length >= 3 && parts[1] === 'function') return `arn:aws:lambda:${region}:${parts[0]}:function:${parts[2]}`;
    return `arn:aws:lambda:${region}:${account}:function:${parts[0]}`;
  }

  /** The deployed function with that ARN, in any stack on the emulator. */
  find(functionArn: string): { fn: Deployed; runner: FunctionRunner } | undefined {
    for (const runner of this.runners) {
      const fn = runner.functionWithArn(functionArn);
      if (fn) return { fn, runner };
    }
    return undefined;
  }

  /** Adds a statement to its function's policy (AddPermission); undefined, or why Lambda refuses. */
  addPermission(statement: PermissionStatement): string | undefined {
    if (!this.find(statement.functionArn)) return `ResourceNotFoundException: Function not found: ${statement.functionArn}`;
    if (this.statements.has(statement.sid)) return `ResourceConflictException: The statement id (${statement.sid}) provided already exists. Please provide a new statement id, or remove the existing statement.`;
    this.statements.set(statement.sid, statement);
    return undefined;
  }

  /** Removes a statement (RemovePermission); one already gone is removed. */
  removePermission(sid: string): void {
    this.statements.delete(sid);
  }

  /** The function's resource policy: its statements in the order they were added. */
  policy(functionArn: string): PermissionStatement[] {
    return [...this.statements.values()].filter((s) => s.functionArn === functionArn);
  }

  /** Whether the function's policy lets `principal` invoke it on behalf of `sourceAccount`'s resource `sourceArn`. */
  admits(functionArn: string, principal: string, sourceAccount: string, sourceArn: string): boolean {
    return this.policy(this.functionArn(functionArn)).some((s) => ['lambda:InvokeFunction', 'lambda:*', '*'].includes(s.action)
      && (s.principal === principal || s.principal === '*')
      && (s.sourceAccount === undefined || s.sourceAccount === sourceAccount)
      && (s.sourceArn === undefined || arnLike(s.sourceArn, sourceArn)));
  }

  /** Secrets Manager's rotation invoker: runs one step; rejects when Lambda refuses it or the function fails. */
  private async rotate(lambdaArn: string, event: RotationEvent): Promise<void> {
    const functionArn = this.functionArn(lambdaArn);
    if (!this.admits(functionArn, SECRETS_MANAGER_PRINCIPAL, this.emulator.account, event.SecretId)) {
      throw new Error(`AccessDeniedException: ${notAuthorized(SECRETS_MANAGER_PRINCIPAL, functionArn)}`);
    }
    const found = this.find(functionArn);
    if (!found) throw new Error(`ResourceNotFoundException: Function not found: ${functionArn}`);
    const invocation = await found.runner.invoke(found.fn, `rotation:${event.Step}`, event);
    if (invocation.ended !== 'returned') throw new Error(LambdaService.failure(invocation));
  }

  /** Why an invocation failed, as Lambda reports a function error: the runtime's errorType and errorMessage. */
  private static failure(invocation: Invocation): string {
    const lines = invocation.logs.split('\n').reverse();
    for (const line of lines) {
      try {
        const parsed = JSON.parse(line) as { errorType?: string; errorMessage?: string };
        if (parsed.errorMessage !== undefined) return `${parsed.errorType ?? 'Error'}: ${parsed.errorMessage}`;
      } catch {
        // not the runtime's error line
      }
    }
    return `the function ${invocation.ended}`;
  }
}
