import { App, Stack } from 'aws-cdk-lib';
import { ChapCredentials } from '../lib';

/**
 * The demo app's stack: one ChapCredentials for the context key `targetArn`, declaring the comma-separated
 * initiators of the context key `initiators` when given.
 */
export function demoStack(app: App): Stack {
  const targetArn = app.node.tryGetContext('targetArn');
  if (typeof targetArn !== 'string' || targetArn === '') {
    throw new Error("The demo app needs a target ARN: pass '-c targetArn=arn:aws:storagegateway:...' or set it in cdk.json");
  }
  const initiators = app.node.tryGetContext('initiators');
  const stack = new Stack(app, 'ChapCredentialsDemo', {
    description: 'Demo of ChapCredentials: Storage Gateway CHAP credentials in Secrets Manager',
  });
  new ChapCredentials(stack, 'Chap', {
    targetArn,
    initiators: typeof initiators === 'string' && initiators ? initiators.split(',') : undefined,
  });
  return stack;
}
