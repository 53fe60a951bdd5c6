/**
 * Errors that point the way: each mistake a user can make at synth fails there (or, for a target in another region or
 * account, warns with a stable id), naming the prop, the rule and the value, and what to give instead.
 */
import { App, Annotations as CoreAnnotations, CfnParameter, Duration, Stack } from 'aws-cdk-lib';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import * as storagegateway from 'aws-cdk-lib/aws-storagegateway';
import { ChapCredentials, ChapCredentialsProps, ChapMode } from '../lib';
import { DOC_TARGET_ARN, HOST_A, HOST_B, numberedTargetArn } from './fixtures';

const ENV = { account: '111122223333', region: 'us-east-1' };
const VOLUME_ARN = 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/volume/vol-1122AABB';
const GATEWAY_ARN = 'arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B';
const ENV_MISMATCH = 'cdk-chap-credentials:target-env-mismatch';

/** A stack in `env` (null: environment-agnostic). */
function newStack(env: { account?: string; region?: string } | null = ENV): Stack {
  return new Stack(new App(), 'Test', { env: env ?? undefined });
}

function volumeIn(stack: Stack, id = 'Volume'): storagegateway.CfnVolume {
  return new storagegateway.CfnVolume(stack, id, {
    gatewayArn: GATEWAY_ARN, targetName: id.toLowerCase(), networkInterfaceId: '10.0.0.10', volumeSizeInBytes: 150 * 1024 ** 3,
  });
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

describe('one construct: the prop, the rule, the value and what to give instead', () => {
  const cases: [string, ChapCredentialsProps, string][] = [
    ['refresh of 90 seconds (EventBridge rates are whole minutes)', { targetArn: DOC_TARGET_ARN, refresh: Duration.seconds(90) },
      '\'refresh\' must be a whole number of minutes (EventBridge rates are whole minutes, hours or days), got 1 minute 30 seconds; '
      + 'give Duration.minutes(2) or another whole number of minutes'],
    ['refresh of an hour and a second', { targetArn: DOC_TARGET_ARN, refresh: Duration.seconds(3601) },
      '\'refresh\' must be a whole number of minutes (EventBridge rates are whole minutes, hours or days), got 1 hour 1 second; '
      + 'give Duration.minutes(61) or another whole number of minutes'],
    ['refresh under a minute (the rule checked first)', { targetArn: DOC_TARGET_ARN, refresh: Duration.seconds(30) },
      '\'refresh\' must be at least 1 minute (EventBridge\'s shortest rate), got 30 seconds'],
    ['an export name with the output turned off', { targetArn: DOC_TARGET_ARN, outputInitiatorNames: false, initiatorNamesExportName: 'VolInitiators' },
      '\'initiatorNamesExportName\' exports the initiator names output, which \'outputInitiatorNames: false\' turns off, got '
      + 'initiatorNamesExportName "VolInitiators" with it; drop \'outputInitiatorNames: false\' to export the names, or drop '
      + '\'initiatorNamesExportName\''],
    ['a volume ARN as targetArn', { targetArn: VOLUME_ARN },
      '\'targetArn\' must be a Storage Gateway iSCSI target ARN (arn:PARTITION:storagegateway:REGION:ACCOUNT:gateway/GATEWAY_ID/target/TARGET_NAME, '
      + `50 to 800 characters), got '${VOLUME_ARN}': that is a volume ARN; its target ARN is the volume's TargetARN, printed by `
      + `\`aws storagegateway describe-cached-iscsi-volumes --volume-arns ${VOLUME_ARN} --query 'CachediSCSIVolumes[].VolumeiSCSIAttributes.TargetARN' `
      + '--output text` (describe-stored-iscsi-volumes and StorediSCSIVolumes for a stored volume), or give the volume\'s CfnVolume as '
      + '\'volume\' instead of \'targetArn\''],
    ['a gateway ARN as targetArn', { targetArn: GATEWAY_ARN },
      '\'targetArn\' must be a Storage Gateway iSCSI target ARN (arn:PARTITION:storagegateway:REGION:ACCOUNT:gateway/GATEWAY_ID/target/TARGET_NAME, '
      + `50 to 800 characters), got '${GATEWAY_ARN}': that is a gateway ARN, and a gateway has one target per volume; list its volumes `
      + `with \`aws storagegateway list-volumes --gateway-arn ${GATEWAY_ARN} --query 'VolumeInfos[].VolumeARN' --output text\`, then `
      + 'print a volume\'s target ARN with `aws storagegateway describe-cached-iscsi-volumes --volume-arns <volume ARN> --query '
      + '\'CachediSCSIVolumes[].VolumeiSCSIAttributes.TargetARN\' --output text`, or give the volume\'s CfnVolume as \'volume\' instead of '
      + '\'targetArn\''],
  ];

  test.each(cases)('%s', (_, props, message) => {
    // The whole message, so a change of wording is a change of this table.
    expect(() => new ChapCredentials(newStack(), 'Chap', props)).toThrow(new RegExp(`^${escape(message)}$`));
  });

  test.each([
    ['refresh of 2 minutes', { refresh: Duration.minutes(2) }],
    ['refresh of 120 seconds', { refresh: Duration.seconds(120) }],
    ['refresh of a day', { refresh: Duration.days(1) }],
    ['an export name with the output on', { initiatorNamesExportName: 'VolInitiators' }],
    ['outputInitiatorNames: false without an export name', { outputInitiatorNames: false }],
  ])('accepts %s', (_, props) => {
    expect(() => new ChapCredentials(newStack(), 'Chap', { targetArn: DOC_TARGET_ARN, ...props })).not.toThrow();
  });

  test('an ARN of another kind gets no volume or gateway hint', () => {
    const tape = 'arn:aws:storagegateway:us-east-1:111122223333:tape/AMZN01A2A4';
    expect(() => new ChapCredentials(newStack(), 'Chap', { targetArn: `${tape}x`.padEnd(50, 'x') }))
      .toThrow(/, got 'arn:aws:storagegateway:us-east-1:111122223333:tape\/AMZN01A2A4x+'$/);
  });
});

describe('two constructs managing the same initiator on the same target in one stack', () => {
  test.each([
    ['one mutual, one one-way', ChapMode.MUTUAL, ChapMode.ONE_WAY],
    ['both mutual', undefined, ChapMode.MUTUAL],
  ])('%s, on a literal target: refused, naming both paths, the initiator and the target', (_, first, second) => {
    const stack = newStack();
    new ChapCredentials(stack, 'A', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A, HOST_B], manageCredentials: true, chapMode: first });
    expect(() => new ChapCredentials(stack, 'B', { targetArn: DOC_TARGET_ARN, initiators: [HOST_B], manageCredentials: true, chapMode: second }))
      .toThrow(new RegExp(`^${escape(`'initiators' of 'Test/B' must not manage '${HOST_B}' on target '${DOC_TARGET_ARN}': 'Test/A' of the same `
        + `stack manages it already (${first ?? 'mutual'}; this one asks ${second}), and both would set its CHAP credentials at each deploy; `
        + 'manage each initiator of a target in one ChapCredentials (another may declare it without manageCredentials to read it)')}$`));
  });

  test('on the same volume: refused, naming the volume', () => {
    const stack = newStack();
    const volume = volumeIn(stack);
    new ChapCredentials(stack, 'A', { volume, initiators: [HOST_A], manageCredentials: true });
    expect(() => new ChapCredentials(stack, 'B', { volume, initiators: [HOST_A], manageCredentials: true, chapMode: ChapMode.ONE_WAY }))
      .toThrow(`'initiators' of 'Test/B' must not manage '${HOST_A}' on the target of volume 'Test/Volume': 'Test/A' of the same stack `
        + 'manages it already (mutual; this one asks one-way)');
  });

  test('the same token target twice: refused', () => {
    const stack = newStack();
    const arn = new CfnParameter(stack, 'TargetArn').valueAsString;
    new ChapCredentials(stack, 'A', { targetArn: arn, initiators: [HOST_A], manageCredentials: true });
    expect(() => new ChapCredentials(stack, 'B', { targetArn: arn, initiators: [HOST_A], manageCredentials: true }))
      .toThrow(`'initiators' of 'Test/B' must not manage '${HOST_A}' on the target of the same token: 'Test/A'`);
  });

  test.each<[string, (stack: Stack) => [ChapCredentialsProps, ChapCredentialsProps]]>([
    ['different targets', () => [
      { targetArn: numberedTargetArn(1), initiators: [HOST_A], manageCredentials: true },
      { targetArn: numberedTargetArn(2), initiators: [HOST_A], manageCredentials: true }]],
    ['different volumes', (stack) => [
      { volume: volumeIn(stack, 'One'), initiators: [HOST_A], manageCredentials: true },
      { volume: volumeIn(stack, 'Two'), initiators: [HOST_A], manageCredentials: true }]],
    ['different initiators on one target', () => [
      { targetArn: DOC_TARGET_ARN, initiators: [HOST_A], manageCredentials: true },
      { targetArn: DOC_TARGET_ARN, initiators: [HOST_B], manageCredentials: true, chapMode: ChapMode.ONE_WAY }]],
    ['one managing, one reading the same initiator', () => [
      { targetArn: DOC_TARGET_ARN, initiators: [HOST_A], manageCredentials: true },
      { targetArn: DOC_TARGET_ARN, initiators: [HOST_A] }]],
  ])('%s: accepted', (_, build) => {
    const stack = newStack();
    const [a, b] = build(stack);
    new ChapCredentials(stack, 'A', a);
    expect(() => new ChapCredentials(stack, 'B', b)).not.toThrow();
  });

  test('the same initiator and target managed from two stacks of one app: each stack on its own (not refused)', () => {
    const app = new App();
    for (const id of ['One', 'Two']) {
      new ChapCredentials(new Stack(app, id, { env: ENV }), 'A', { targetArn: DOC_TARGET_ARN, initiators: [HOST_A], manageCredentials: true });
    }
    expect(() => app.synth()).not.toThrow();
  });
});

describe('a literal target in another region or account than the stack\'s: a warning with a stable id', () => {
  const message = (what: string, arn: string) => '\'targetArn\' must be in the stack\'s region and account (the provider calls Storage '
    + `Gateway there, so the deployment would fail), got a target in ${what}: '${arn}'; put this ChapCredentials in a stack whose env `
    + `is the target's [ack: ${ENV_MISMATCH}]`;
  const inRegion = DOC_TARGET_ARN.replace('us-east-1', 'eu-west-1');
  const inAccount = DOC_TARGET_ARN.replace('111122223333', '444455556666');
  const inBoth = inRegion.replace('111122223333', '444455556666');

  test.each([
    ['another region', inRegion, 'region eu-west-1, not the stack\'s us-east-1'],
    ['another account', inAccount, 'account 444455556666, not the stack\'s 111122223333'],
    ['both', inBoth, 'region eu-west-1, not the stack\'s us-east-1 and account 444455556666, not the stack\'s 111122223333'],
  ])('%s: warned on the construct, with the value', (_, arn, what) => {
    const stack = newStack();
    new ChapCredentials(stack, 'Chap', { targetArn: arn });
    const warnings = Annotations.fromStack(stack).findWarning('*', Match.anyValue());
    expect(warnings.map((w) => [w.id, w.entry.data])).toEqual([['/Test/Chap', message(what, arn)]]);
  });

  test.each<[string, { account?: string; region?: string } | null, string]>([
    ['the stack\'s own region and account', ENV, DOC_TARGET_ARN],
    ['an environment-agnostic stack', null, inBoth],
    ['a stack with only an account, target in another region', { account: ENV.account }, inRegion],
  ])('no warning for %s', (_, env, arn) => {
    const stack = newStack(env);
    new ChapCredentials(stack, 'Chap', { targetArn: arn });
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
  });

  test('the warning is acknowledged by its id, and a token target is never warned about', () => {
    const stack = newStack();
    const chap = new ChapCredentials(stack, 'Chap', { targetArn: inRegion });
    CoreAnnotations.of(chap).acknowledgeWarning(ENV_MISMATCH, 'the target is reached through another stack');
    new ChapCredentials(stack, 'Token', { targetArn: new CfnParameter(stack, 'TargetArn').valueAsString });
    expect(Annotations.fromStack(stack).findWarning('*', Match.anyValue())).toEqual([]);
  });
});
