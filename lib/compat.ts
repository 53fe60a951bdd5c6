/**
 * Everything that depends on which aws-cdk-lib the app brings, within our peer range (package.json): APIs newer than
 * the minimum are detected here, never assumed. Internal: not exported from index.ts.
 */
import * as cdk from 'aws-cdk-lib';
import { Aspects, CfnResource, IAspect } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { IConstruct } from 'constructs';

/** The aws-cdk-lib members newer than our minimum that we use; absent (undefined) in older versions. */
const newer = cdk as Partial<Pick<typeof cdk, 'Validations' | 'AspectPriority'>>;
const newerRuntimes = lambda.Runtime as Partial<Pick<typeof lambda.Runtime, 'NODEJS_24_X'>>;

/** The CloudFormation metadata key cdk-nag 2 reads its suppressions from. */
export const CDK_NAG_METADATA_KEY = 'cdk_nag';

/** cdk-nag 2 rejects a shorter reason (and the whole synth with it). */
const MIN_REASON_LENGTH = 10;

/** One entry of `cdk_nag.rules_to_suppress`, as cdk-nag 2 writes and reads it. */
interface NagRule {
  readonly id: string;
  readonly reason: string;
  readonly applies_to?: unknown[];
}

/** Whether this aws-cdk-lib has `Validations.of(x).acknowledge` (2.252 and later; `Validations` alone came in 2.251). */
function canAcknowledgeValidations(): boolean {
  return typeof newer.Validations?.prototype?.acknowledge === 'function';
}

/**
 * The prefix `Validations.of(x).acknowledge` gives a rule id without one (`Annotation::` since aws-cdk-lib 2.262.1,
 * `annotation::` before); readers of the acknowledgments (cdk-nag 3, aws-cdk-lib's report) take it in either case.
 */
const ACKNOWLEDGED_RULE_PREFIX = 'Annotation::';

/**
 * Acknowledges rule-pack findings on `scope`, with the same reason in both forms cdk-nag understands:
 * - the acknowledged-rules metadata of `scope`, as `Validations.of(scope).acknowledge` records it, read by cdk-nag 3 and
 *   aws-cdk-lib's policy validation report, where aws-cdk-lib has that API. Written here directly, as one entry for all
 *   of `ids` and without the stack trace `acknowledge` captures for each rule (the largest cost of a construct's synth
 *   otherwise); the entry is what `Validations.ACKNOWLEDGED_RULES_METADATA_KEY` documents for plugin authors;
 * - the `cdk_nag` CloudFormation metadata of the L1 resource (`scope` itself or its default child), read by cdk-nag 2,
 *   merged with the rules already there.
 */
export function acknowledge(scope: IConstruct, ids: readonly string[], reason: string): void {
  acknowledgeEach(scope, ids.map((id) => ({ id, reason })));
}

/** Like {@link acknowledge}, each rule with its own reason, in one entry of each form. */
export function acknowledgeEach(scope: IConstruct, acknowledgments: ReadonlyArray<{ readonly id: string; readonly reason: string }>): void {
  if (!acknowledgments.length) return;
  for (const { reason } of acknowledgments) {
    if (reason.length < MIN_REASON_LENGTH || /[^\x20-\x7e]/.test(reason)) {
      // cdk-nag 2 fails the synth on a short reason and base64-encodes non-ASCII ones: keep ours plain and readable.
      throw new Error(`an acknowledgment's reason must be printable ASCII of at least ${MIN_REASON_LENGTH} characters, got '${reason}'`);
    }
  }
  if (canAcknowledgeValidations()) {
    scope.node.addMetadata(newer.Validations!.ACKNOWLEDGED_RULES_METADATA_KEY,
      Object.fromEntries(acknowledgments.map(({ id, reason }) => [`${ACKNOWLEDGED_RULE_PREFIX}${id}`, reason])));
  }
  const resource = CfnResource.isCfnResource(scope) ? scope : scope.node.defaultChild;
  if (!resource || !CfnResource.isCfnResource(resource)) {
    throw new Error(`cannot acknowledge ${acknowledgments.map((a) => a.id).join(', ')} on '${scope.node.path}': it is not a `
      + 'CloudFormation resource and has none as default child');
  }
  const metadata = (resource.getMetadata(CDK_NAG_METADATA_KEY) ?? {}) as { rules_to_suppress?: NagRule[] };
  const rules = [...(metadata.rules_to_suppress ?? [])];
  for (const { id, reason } of acknowledgments) {
    // A suppression of the whole rule already there stands; one limited by applies_to does not cover ours.
    if (!rules.some((rule) => rule.id === id && !rule.applies_to)) rules.push({ id, reason });
  }
  resource.addMetadata(CDK_NAG_METADATA_KEY, { ...metadata, rules_to_suppress: rules });
}

/**
 * Adds an Aspect that changes the tree, so that Aspects reading it see the change: with priority MUTATING where
 * aws-cdk-lib orders Aspects by priority. Where it does not, Aspects of a scope run in the order they were added,
 * parents' first, on each node before its children: an Aspect that decides when visiting `scope` itself still runs
 * before any other visits `scope`'s children (cdk-nag 2 checks the L1 children).
 */
export function addMutatingAspect(scope: IConstruct, aspect: IAspect): void {
  const priority = newer.AspectPriority?.MUTATING;
  Aspects.of(scope).add(aspect, priority === undefined ? undefined : { priority });
}

/** Lambda's Node.js 24 runtime (`Runtime.NODEJS_24_X` came in aws-cdk-lib 2.224; the same runtime is declared before). */
export function nodejs24Runtime(): lambda.Runtime {
  return newerRuntimes.NODEJS_24_X ?? new lambda.Runtime('nodejs24.x', lambda.RuntimeFamily.NODEJS, { supportsInlineCode: true });
}
