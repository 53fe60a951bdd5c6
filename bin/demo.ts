#!/usr/bin/env node
/**
 * Demo app: one stack with one ChapCredentials. The target ARN comes from the context key `targetArn`
 * (default in cdk.json: the Storage Gateway documentation's example); `initiators` (comma-separated) is optional.
 */
import { App, Stack } from 'aws-cdk-lib';
import { ChapCredentials } from '../lib';

const app = new App();
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

app.synth();
