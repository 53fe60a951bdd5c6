import { Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';

/** Properties of {@link ChapCredentials.wireHost}. */
export interface IscsiHostProps {
  /** The host's initiator name (IQN). It must be one of the construct's declared `initiators`. */
  readonly initiatorName: string;

  /**
   * Address of the gateway's iSCSI interface: an IP address or a DNS name.
   *
   * @default - the volume's `NetworkInterfaceId`, when the construct targets a `volume`
   */
  readonly portalAddress?: string;

  /**
   * Port of the gateway's iSCSI interface.
   *
   * @default 3260
   */
  readonly portalPort?: number;

  /** The host's role (or instance): it is granted read access to exactly this initiator's secret. */
  readonly grantee: iam.IGrantable;
}

/**
 * Boot commands that connect one host to the target with CHAP. The CHAP secrets are read from Secrets Manager by the
 * host's own role when the commands run; neither the commands nor the template ever hold them. One-way or mutual
 * CHAP is chosen at boot from the secret (mutual when it holds `secretToAuthenticateTarget`).
 */
export interface IscsiHostWiring {
  /** Bash for a Linux host with open-iscsi (Amazon Linux, RHEL, Ubuntu), for `ec2.UserData.forLinux()`; needs the AWS CLI and python3. */
  readonly linuxCommands: string[];
  /** PowerShell for a Windows host, for `ec2.UserData.forWindows()`; needs AWS Tools for PowerShell (on Windows AMIs). */
  readonly windowsCommands: string[];
  /** The secret the host reads: its own pair only. */
  readonly secret: secretsmanager.ISecret;
  /** The read grant given to the host's role. */
  readonly grant: iam.Grant;
}

const PORTAL_ADDRESS = /^[A-Za-z0-9.:-]{1,255}$/;

/** Builds the wiring; `secret` is the initiator's own secret, `targetArn` the construct's target. */
export function wireIscsiHost(
  secret: secretsmanager.ISecret, targetArn: string, props: IscsiHostProps, volumePortal?: string,
): IscsiHostWiring {
  const port = props.portalPort ?? 3260;
  const portalAddress = props.portalAddress ?? volumePortal;
  if (portalAddress === undefined) {
    throw new Error("'portalAddress' must be given when the construct has no volume to take it from, got none");
  }
  if (!Token.isUnresolved(portalAddress) && !PORTAL_ADDRESS.test(portalAddress)) {
    throw new Error(`'portalAddress' must be an IP address or DNS name (1 to 255 letters, digits, '.', ':' and '-'), got '${portalAddress}'`);
  }
  if (!Token.isUnresolved(port) && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new Error(`'portalPort' must be a TCP port (an integer from 1 to 65535), got ${port}`);
  }
  const region = Stack.of(secret).region;
  const grant = secret.grantRead(props.grantee);

  const linuxCommands = [
    '(',
    'set -euo pipefail',
    `CHAP_SECRET_ID='${secret.secretArn}'`,
    `CHAP_REGION='${region}'`,
    `TARGET_ARN='${targetArn}'`,
    'TARGET_IQN="${TARGET_ARN##*/target/}"',
    `PORTAL='${portalAddress}:${port}'`,
    `INITIATOR_NAME='${props.initiatorName}'`,
    'command -v iscsiadm >/dev/null || dnf install -y iscsi-initiator-utils || yum install -y iscsi-initiator-utils || apt-get install -y open-iscsi',
    'printf \'InitiatorName=%s\\n\' "$INITIATOR_NAME" | tee /etc/iscsi/initiatorname.iscsi >/dev/null',
    'systemctl enable --now iscsid',
    '# The CHAP secrets are read at boot by this host\'s role and kept in shell variables only.',
    'CHAP_JSON="$(aws secretsmanager get-secret-value --region "$CHAP_REGION" --secret-id "$CHAP_SECRET_ID" --query SecretString --output text)"',
    'chap_field() { printf \'%s\' "$CHAP_JSON" | python3 -c \'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))\' "$1"; }',
    'CHAP_INITIATOR_SECRET="$(chap_field secretToAuthenticateInitiator)"',
    'CHAP_TARGET_SECRET="$(chap_field secretToAuthenticateTarget)"',
    'unset CHAP_JSON',
    'iscsiadm -m discovery -t sendtargets -p "$PORTAL"',
    'node_set() { iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" --op update -n "$1" -v "$2"; }',
    'node_set node.session.auth.authmethod CHAP',
    'node_set node.session.auth.username "$INITIATOR_NAME"',
    'node_set node.session.auth.password "$CHAP_INITIATOR_SECRET"',
    'if [ -n "$CHAP_TARGET_SECRET" ]; then',
    '  node_set node.session.auth.username_in "$TARGET_IQN"',
    '  node_set node.session.auth.password_in "$CHAP_TARGET_SECRET"',
    'fi',
    'unset CHAP_INITIATOR_SECRET CHAP_TARGET_SECRET',
    'node_set node.startup automatic',
    'iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" --login',
    'systemctl enable iscsi 2>/dev/null || systemctl enable open-iscsi',
    ')',
  ];

  const windowsCommands = [
    '& {',
    "$ErrorActionPreference = 'Stop'",
    `$ChapSecretId = '${secret.secretArn}'`,
    `$ChapRegion = '${region}'`,
    `$TargetArn = '${targetArn}'`,
    "$TargetIqn = $TargetArn.Substring($TargetArn.IndexOf('/target/') + 8)",
    `$Portal = '${portalAddress}'`,
    `$PortalPort = ${port}`,
    `$InitiatorName = '${props.initiatorName}'`,
    'Set-Service -Name MSiSCSI -StartupType Automatic',
    'Start-Service -Name MSiSCSI',
    'Set-InitiatorPort -NodeAddress (Get-InitiatorPort | Select-Object -First 1).NodeAddress -NewNodeAddress $InitiatorName',
    "# The CHAP secrets are read at boot by this host's role and kept in memory only.",
    '$Chap = (Get-SECSecretValue -SecretId $ChapSecretId -Region $ChapRegion).SecretString | ConvertFrom-Json',
    'New-IscsiTargetPortal -TargetPortalAddress $Portal -TargetPortalPortNumber $PortalPort | Out-Null',
    'if ($Chap.secretToAuthenticateTarget) {',
    '  Set-IscsiChapSecret -ChapSecret $Chap.secretToAuthenticateTarget',
    '  Connect-IscsiTarget -NodeAddress $TargetIqn -TargetPortalAddress $Portal -TargetPortalPortNumber $PortalPort '
      + '-AuthenticationType MUTUALCHAP -ChapUsername $InitiatorName -ChapSecret $Chap.secretToAuthenticateInitiator -IsPersistent $true | Out-Null',
    '} else {',
    '  Connect-IscsiTarget -NodeAddress $TargetIqn -TargetPortalAddress $Portal -TargetPortalPortNumber $PortalPort '
      + '-AuthenticationType ONEWAYCHAP -ChapUsername $InitiatorName -ChapSecret $Chap.secretToAuthenticateInitiator -IsPersistent $true | Out-Null',
    '}',
    'Remove-Variable -Name Chap',
    '}',
  ];

  return { linuxCommands, windowsCommands, secret, grant };
}
