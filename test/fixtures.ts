/** Shared test inputs. Secret values are random per run, so no value is ever written into a file. */
import { randomBytes } from 'node:crypto';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { ChapResourceProperties, DeclaredInitiator } from '../lib/api';

export const DOC_TARGET_ARN = 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:myvolume';
/** The documentation's target with its volume named `vol<n>`: one more target per construct of a test stack. */
export function numberedTargetArn(n: number): string {
  return DOC_TARGET_ARN.replace('myvolume', `vol${n}`);
}
export const OTHER_TARGET_ARN = 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/iqn.1997-05.com.amazon:other';
export const TARGET_SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:111122223333:secret:ChapTargetSecret-AbCdEf';
export const HOST_A = 'iqn.1991-05.com.microsoft:computername.domain.example.com';
export const HOST_B = 'iqn.1994-05.com.redhat:host-b';

/** A fresh, distinctive secret value (12 to 16 characters, as CHAP requires). */
export function secretValue(): string {
  return `S${randomBytes(6).toString('hex')}`;
}

export function initiatorSecretArn(name: string): string {
  return `arn:aws:secretsmanager:us-east-1:111122223333:secret:Chap-${name.replace(/[^a-z0-9]/g, '')}-XyZ123`;
}

export function declared(...names: string[]): DeclaredInitiator[] {
  return names.map((Name) => ({ Name, SecretArn: initiatorSecretArn(Name) }));
}

export function properties(overrides: Partial<ChapResourceProperties> = {}): ChapResourceProperties {
  return {
    ServiceToken: 'arn:aws:lambda:us-east-1:111122223333:function:Handler',
    TargetArn: DOC_TARGET_ARN,
    TargetSecretArn: TARGET_SECRET_ARN,
    ...overrides,
  };
}

let requestCounter = 0;

/** A CloudFormation event shaped as CloudFormation sends it. */
export function cfnEvent(
  requestType: 'Create' | 'Update' | 'Delete',
  props: ChapResourceProperties = properties(),
  extra: { physicalResourceId?: string; oldProps?: ChapResourceProperties; responseUrl?: string; requestId?: string } = {},
): CloudFormationCustomResourceEvent {
  const base = {
    ServiceToken: props.ServiceToken ?? '',
    ResponseURL: extra.responseUrl ?? 'http://127.0.0.1:9/response?X-Amz-Signature=never-log-this',
    StackId: 'arn:aws:cloudformation:us-east-1:111122223333:stack/Demo/11111111-2222-3333-4444-555555555555',
    RequestId: extra.requestId ?? `request-${++requestCounter}`,
    LogicalResourceId: 'ChapD702829D',
    ResourceType: 'Custom::StorageGatewayChapCredentials',
    ResourceProperties: props as never,
  };
  switch (requestType) {
    case 'Create': return { ...base, RequestType: 'Create' };
    case 'Update': return {
      ...base, RequestType: 'Update', PhysicalResourceId: extra.physicalResourceId ?? `chap:${DOC_TARGET_ARN}`,
      OldResourceProperties: (extra.oldProps ?? props) as never,
    };
    case 'Delete': return { ...base, RequestType: 'Delete', PhysicalResourceId: extra.physicalResourceId ?? `chap:${DOC_TARGET_ARN}` };
  }
}
