/**
 * CloudFormation, as far as a custom resource handler reads it: DescribeStacks for a stack's status, which the local
 * driver keeps up to date (CREATE_IN_PROGRESS, UPDATE_ROLLBACK_IN_PROGRESS, ...). CloudFormation speaks the AWS query
 * protocol (form-encoded request, XML answer); the emulator's front end does the encoding.
 */
import { AwsError, validate } from './errors';

export interface StackSummary {
  readonly stackId: string;
  readonly stackName: string;
  status: string;
  readonly creationTime: Date;
}

export class CloudFormation {
  readonly stacks = new Map<string, StackSummary>();

  /** Records the status of a stack (the driver calls this as the stack's operations go). */
  setStatus(stackId: string, stackName: string, status: string): void {
    const stack = this.stacks.get(stackId);
    if (stack) stack.status = status;
    else this.stacks.set(stackId, { stackId, stackName, status, creationTime: new Date() });
  }

  DescribeStacks(input: Record<string, unknown>) {
    validate(input, { StackName: { min: 1 } });
    const name = input.StackName as string | undefined;
    // By id any stack; by name only one that is not deleted.
    const found = [...this.stacks.values()]
      .filter((s) => name === undefined || s.stackId === name || (s.stackName === name && !s.status.startsWith('DELETE_COMPLETE')));
    if (name !== undefined && !found.length) throw new AwsError('ValidationError', `Stack with id ${name} does not exist`);
    return {
      Stacks: found.map((s) => ({ StackId: s.stackId, StackName: s.stackName, StackStatus: s.status, CreationTime: s.creationTime.toISOString() })),
    };
  }
}
