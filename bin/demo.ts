#!/usr/bin/env node
/**
 * Demo app: one stack with one ChapCredentials. The target ARN comes from the context key `targetArn`
 * (default in cdk.json: the Storage Gateway documentation's example); `initiators` (comma-separated) is optional.
 * More flags (`manage`, `chap`, `rotation`, `host`, `volume`, ...) are described in demo-stack.ts.
 */
import { App } from 'aws-cdk-lib';
import { demoStack } from './demo-stack';

const app = new App();
demoStack(app);
app.synth();
