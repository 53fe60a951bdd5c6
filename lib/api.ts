/**
 * The contract between the construct and its handler: property and attribute names, the event's
 * typed shape, the stored secret's JSON shape and the input rules. Both sides import this module,
 * so a name is written once. It must not import aws-cdk-lib: the handler bundle includes it.
 *
 * Its module constants, free functions and wire types are TypeScript only (jsii exports classes, interfaces and
 * enums to other languages); other languages get `ChapCredentials.RESOURCE_TYPE`, `ChapCredentialsAttribute` and
 * `ChapCredentials.initiatorSecretNamePart` (lib/chap-credentials.ts).
 */

/** CloudFormation resource type of the custom resource. */
export const RESOURCE_TYPE = 'Custom::StorageGatewayChapCredentials';

/** Custom resource property names (the event's ResourceProperties). */
export const Prop = {
  TargetArn: 'TargetArn',
  TargetSecretArn: 'TargetSecretArn',
  Initiators: 'Initiators',
  /** Present when the construct manages its declared initiators' credentials: the {@link ChapMode} to ensure. */
  Manage: 'Manage',
  /** 'true' when leaving initiators lose also credentials the stack adopted. */
  RemoveAdopted: 'RemoveAdoptedCredentials',
  /** The secret holding the key the stack's credentials are derived with (managed constructs only). */
  CredentialKeyArn: 'CredentialKeyArn',
} as const;

/** Which CHAP a managed construct sets up for its declared initiators. */
export enum ChapMode {
  /** The initiator authenticates to the target (one secret per initiator). */
  ONE_WAY = 'one-way',
  /** The initiator and the target authenticate to each other (two different secrets per initiator). */
  MUTUAL = 'mutual',
}

/** Keys of one entry of the `Initiators` property. */
export const InitiatorProp = {
  Name: 'Name',
  SecretArn: 'SecretArn',
} as const;

/** Attribute names the handler returns in the response Data (read with Fn::GetAtt). */
export const Attr = {
  /** Comma-separated initiator names, sorted. */
  InitiatorNames: 'InitiatorNames',
  /** Number of target-initiator pairs the target reports, always exact. */
  InitiatorCount: 'InitiatorCount',
  /** 'true' when InitiatorNames had to be shortened to fit the 4096-byte response. */
  InitiatorNamesTruncated: 'InitiatorNamesTruncated',
} as const;

/**
 * One declared initiator, as the handler receives it.
 *
 * TypeScript only: `@internal` keeps it out of the jsii assembly, so other languages do not see it
 * (its keys are CloudFormation's PascalCase property names, which jsii rejects); the `.d.ts` files keep it for TypeScript.
 * @internal
 */
export interface DeclaredInitiator {
  readonly [InitiatorProp.Name]: string;
  readonly [InitiatorProp.SecretArn]: string;
}

/**
 * The custom resource's properties, as the handler receives them (CloudFormation passes strings).
 *
 * TypeScript only: `@internal` keeps it out of the jsii assembly, so other languages do not see it
 * (its keys are CloudFormation's PascalCase property names, which jsii rejects); the `.d.ts` files keep it for TypeScript.
 * @internal
 */
export interface ChapResourceProperties {
  readonly ServiceToken?: string;
  readonly [Prop.TargetArn]: string;
  readonly [Prop.TargetSecretArn]: string;
  readonly [Prop.Initiators]?: readonly DeclaredInitiator[];
  readonly [Prop.Manage]?: string;
  readonly [Prop.RemoveAdopted]?: string;
  readonly [Prop.CredentialKeyArn]?: string;
}

/** The provider function's environment variable naming the stack's credential key secret (stacks with managing constructs). */
export const CREDENTIAL_KEY_ENV = 'CHAP_CREDENTIAL_KEY_ARN';

/**
 * Tag of each rotated initiator secret: the ARN of its construct's target secret, which a rotation keeps in step.
 * CloudFormation sets it; the function reads it with DescribeSecret, which its role may call only on rotated secrets.
 */
export const ROTATION_TARGET_SECRET_TAG = 'chap-credentials:target-secret';

/** Key of a scheduled refresh event: its value is the construct's properties, as the custom resource gets them. */
export const REFRESH_EVENT_KEY = 'ChapCredentialsRefresh';

/** The event the refresh schedule sends to the provider function. */
export interface RefreshEvent {
  readonly [REFRESH_EVENT_KEY]: ChapResourceProperties;
}

/**
 * One target-initiator pair, as stored in Secrets Manager.
 *
 * TypeScript only: `@internal` keeps it out of the jsii assembly, so other languages do not see it
 * (they read the JSON keys documented in the README); the `.d.ts` files keep it for TypeScript.
 * @internal
 */
export interface ChapPair {
  readonly initiatorName: string;
  readonly targetArn: string;
  /** The secret the initiator presents to the target. */
  readonly secretToAuthenticateInitiator: string;
  /** The secret the target presents to the initiator; present only with mutual CHAP. */
  readonly secretToAuthenticateTarget?: string;
}

/**
 * The JSON value of the target secret: every pair the target reports, sorted by initiator name.
 *
 * TypeScript only: `@internal` keeps it out of the jsii assembly, so other languages do not see it
 * (they read the JSON keys documented in the README); the `.d.ts` files keep it for TypeScript.
 * @internal
 */
export interface TargetSecretValue {
  readonly targetArn: string;
  readonly chapCredentials: readonly ChapPair[];
}

/** Marker that ends a shortened InitiatorNames list; it can never be an initiator name ('+' is not allowed). */
export const TRUNCATION_MARKER_PREFIX = '+';

/**
 * InitiatorNames of a target with no CHAP credentials: never empty, because CloudFormation refuses to export an empty
 * value and Parameter Store to store one; it can never be an initiator name ('+' is not allowed).
 */
export const NO_INITIATORS_MARKER = '+none';

export const TARGET_ARN_MIN_LENGTH = 50;
export const TARGET_ARN_MAX_LENGTH = 800;
export const INITIATOR_MAX_LENGTH = 255;
export const SECRET_NAME_MAX_LENGTH = 512;

const TARGET_ARN_FORM = 'arn:PARTITION:storagegateway:REGION:ACCOUNT:gateway/GATEWAY_ID/target/TARGET_NAME';
const TARGET_ARN_PATTERN =
  /^arn:aws[a-z-]*:storagegateway:[a-z]{2}(-[a-z]+)+-\d:\d{12}:gateway\/[A-Za-z0-9-]+\/target\/[0-9a-z:.-]+$/;
const INITIATOR_PATTERN = /^[0-9a-z:.-]+$/;
const SECRET_NAME_PATTERN = /^[A-Za-z0-9/_+=.@-]+$/;

function quote(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : JSON.stringify(value) ?? String(value);
}

/** The reason `value` is not a Storage Gateway target ARN, or undefined when it is one. */
export function targetArnError(property: string, value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length < TARGET_ARN_MIN_LENGTH || value.length > TARGET_ARN_MAX_LENGTH
    || !TARGET_ARN_PATTERN.test(value)) {
    return `'${property}' must be a Storage Gateway iSCSI target ARN (${TARGET_ARN_FORM}, `
      + `${TARGET_ARN_MIN_LENGTH} to ${TARGET_ARN_MAX_LENGTH} characters), got ${quote(value)}`;
  }
  return undefined;
}

/** The reason `value` is not an iSCSI initiator name, or undefined when it is one. */
export function initiatorNameError(property: string, value: unknown): string | undefined {
  if (typeof value !== 'string' || value.length < 1 || value.length > INITIATOR_MAX_LENGTH || !INITIATOR_PATTERN.test(value)) {
    return `'${property}' must be an iSCSI initiator name (1 to ${INITIATOR_MAX_LENGTH} characters of `
      + `lower-case letters, digits, ':', '.' and '-'), got ${quote(value)}`;
  }
  return undefined;
}

/** The reason `value` is not a Secrets Manager secret name, or undefined when it is one. */
export function secretNameError(property: string, value: string, maxLength = SECRET_NAME_MAX_LENGTH): string | undefined {
  if (value.length < 1 || value.length > maxLength || !SECRET_NAME_PATTERN.test(value)) {
    return `'${property}' must be a Secrets Manager secret name (1 to ${maxLength} characters of `
      + `ASCII letters, digits and '/_+=.@-'), got ${quote(value)}`;
  }
  return undefined;
}

const PARAMETER_NAME_PATTERN = /^[a-zA-Z0-9_.\-/]+$/;
export const PARAMETER_NAME_MAX_LENGTH = 1011;

/**
 * Why `value` is not an SSM parameter name, or undefined when it is: ASCII letters, digits and `_.-/`, at most 1011
 * characters; a name with `/` begins with `/` (a fully qualified hierarchy of at most 15 levels); no `aws` or `ssm`
 * prefix, in any case, with or without the leading `/`.
 */
export function parameterNameError(property: string, value: string): string | undefined {
  const rule = `'${property}' must be an SSM parameter name (1 to ${PARAMETER_NAME_MAX_LENGTH} characters of ASCII letters, digits and '_.-/'; `
    + "with '/' a fully qualified hierarchy of at most 15 levels, such as '/iscsi/myvolume/initiator-names'; not beginning with 'aws' or 'ssm')";
  const levels = value.split('/').length - 1;
  if (value.length < 1 || value.length > PARAMETER_NAME_MAX_LENGTH || !PARAMETER_NAME_PATTERN.test(value)
    || (value.includes('/') && (!value.startsWith('/') || value.endsWith('/') || value.includes('//') || levels > 15))
    || /^\/?(aws|ssm)/i.test(value)) {
    return `${rule}, got ${quote(value)}`;
  }
  return undefined;
}

/**
 * The part of a secret name that stands for an initiator. Initiator names hold only `[0-9a-z:.-]`;
 * `:` is not allowed in secret names and becomes `_`, which an initiator name never holds, so the
 * mapping is injective: two initiators never share a secret name.
 */
export function initiatorSecretNamePart(initiatorName: string): string {
  return initiatorName.split(':').join('_');
}
