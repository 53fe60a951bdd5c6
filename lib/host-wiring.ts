import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { isIP } from 'node:net';
import * as path from 'node:path';
import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';

/** Properties of {@link ChapCredentials.wireHost}. */
export interface IscsiHostProps {
  /** The host's initiator name (IQN). It must be one of the construct's declared `initiators`. */
  readonly initiatorName: string;

  /**
   * Address of the gateway's iSCSI interface: an IPv4 address, an IPv6 address (without brackets) or a DNS name,
   * without a port (give the port in `portalPort`).
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

  /**
   * Where a Linux host mounts the volume's filesystem. A blank volume (no filesystem or partition table, its first MiB
   * zeros) is formatted ext4 first; a filesystem already on it is mounted as it is, and a volume holding anything else
   * is left alone (the commands stop, saying why). The mount goes into /etc/fstab with `_netdev,nofail`: on the
   * multipath device when the construct's credentials rotate, otherwise by the filesystem's UUID. The Windows commands
   * do not mount.
   *
   * @default - the volume is connected, not mounted
   */
  readonly mountPoint?: string;

  /**
   * How long a Linux host holds IO to the volume while no path to the gateway is left, before the IO fails; for a
   * construct with `rotation` only. Its commands put the volume under dm-multipath, which queues IO for this long
   * (`no_path_retry`: this time in multipathd's 5-second polling intervals, rounded up), so a filesystem stays mounted
   * while the host logs in again with rotated credentials (a few seconds) and through a gateway restart, yet a gateway
   * that is gone for good fails IO instead of hanging it. Whole seconds from 10 to 3600.
   *
   * @default Duration.minutes(10) - as long as AWS's recommended `replacement_timeout` for gateway volumes
   */
  readonly ioHoldTimeout?: Duration;
}

/**
 * Boot commands that connect one host to the target with CHAP. They carry a script (the package's
 * `lib/host/connect-linux.sh` or `lib/host/connect-windows.ps1`, rendered with the app's values) that reads the CHAP
 * secrets from Secrets Manager with the host's own role when it runs; neither the commands nor the template ever hold
 * them. One-way or mutual CHAP is chosen at boot from the secret (mutual when it holds `secretToAuthenticateTarget`).
 * A host that boots before its secret holds its pair, or before the gateway holds it, waits and retries (30 minutes).
 */
export interface IscsiHostWiring {
  /**
   * Bash for a Linux host (Amazon Linux 2023, RHEL 9, Ubuntu 22.04/24.04), for `ec2.UserData.forLinux()`: writes the
   * rendered script to a root-only file under /var/lib/cdk-chap-credentials/ and runs it with bash. Installs open-iscsi
   * when it is missing; reads the secret with the AWS CLI, or with python3 when the image has no CLI. For a construct
   * with `rotation`, they also put the volume under dm-multipath (installed when missing) and start an agent (a systemd
   * service running the same script with `--agent`) that logs the host in again when a rotation changes its
   * credentials, so a mounted filesystem only pauses (see `ioHoldTimeout`).
   */
  readonly linuxCommands: string[];
  /**
   * PowerShell for a Windows host, for `ec2.UserData.forWindows()`; needs AWS Tools for PowerShell (on Amazon's Windows
   * AMIs). For a construct with `rotation`, they also register a scheduled task (the package's
   * `lib/host/rotate-windows.ps1`, as SYSTEM, every minute and at startup) that reconnects the host after a rotation.
   */
  readonly windowsCommands: string[];
  /** The secret the host reads: its own pair only. */
  readonly secret: secretsmanager.ISecret;
  /** The read grant given to the host's role. */
  readonly grant: iam.Grant;
}

/** Where the Linux commands put the rendered script; one file per initiator secret, so several targets can be wired. */
export const LINUX_SCRIPT_DIR = '/var/lib/cdk-chap-credentials';
/** The quoted heredocs' delimiters in the Linux commands: the script's head, then its compressed body. */
export const LINUX_HEREDOC_END = 'CDK_CHAP_CREDENTIALS_SCRIPT';
export const LINUX_BODY_END = 'CDK_CHAP_CREDENTIALS_BODY';
const VALUES_START = '# >>> values (rendered by wireHost)';
const VALUES_END = '# <<< values';

const DNS_LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
const DNS_NAME = new RegExp(`^(?=.{1,253}\\.?$)${DNS_LABEL}(?:\\.${DNS_LABEL})*\\.?$`);

/** Why a portal address is refused, or undefined when it is an IP address or a DNS name without a port. */
export function portalAddressError(address: string): string | undefined {
  if (isIP(address) !== 0) return undefined;
  // A DNS name made only of digits and dots is an IPv4 address gone wrong (10.0.0.300), not a name.
  if (DNS_NAME.test(address) && !/^[0-9.]+$/.test(address)) return undefined;
  return "'portalAddress' must be an IPv4 address, an IPv6 address (without brackets) or a DNS name, without a port "
    + `(give the port in 'portalPort'), got '${address}'`;
}

/** Why a mount point is refused (the rule), or undefined when it is an absolute, plain path other than '/'. */
function mountPointError(mountPoint: string): string | undefined {
  const parts = mountPoint.split('/').slice(1);
  if (!mountPoint.startsWith('/') || mountPoint === '/' || parts.some((p) => p === '' || p === '.' || p === '..')
    || [...mountPoint].some((c) => /[\s\\]/.test(c) || c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)) {
    return "must be an absolute path other than '/', without white space, backslashes, empty, '.' or '..' parts";
  }
  return undefined;
}

/**
 * A bash script without its comment lines and blank lines (ShellCheck directives and here-documents kept as they
 * are): what the Linux commands carry of the connect script's body, so that a wiring fits EC2's 16 KB of user data.
 * The package's file keeps its comments; scripts/host-scripts.mjs compresses this form of its body.
 */
export function compactShell(script: string): string {
  const kept: string[] = [];
  let hereDocEnd: string | undefined;
  for (const line of script.split('\n')) {
    if (hereDocEnd !== undefined) {
      kept.push(line);
      if (line === hereDocEnd) hereDocEnd = undefined;
      continue;
    }
    if (line.trim() === '' || /^\s*#(?!\s*shellcheck )/.test(line)) continue;
    kept.push(line);
    hereDocEnd = /(?<!<)<<-?'?([A-Z_]+)'?(?!<)/.exec(line)?.[1];
  }
  return `${kept.join('\n')}\n`;
}

/** `value` as a single-quoted bash word (tokens stay intact: their text holds no quote). */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, "'\\''")}'`;
}

/** `value` as a single-quoted PowerShell string (PowerShell also closes a string with typographic single quotes). */
export function powerShellQuote(value: string): string {
  return `'${value.replace(/['\u2018\u2019\u201a\u201b]/g, (q) => q + q)}'`;
}

/** Where a host script's values block lies: from the line after its start marker to its end marker's line (-1 when absent). */
function valuesBlock(text: string): { readonly start: number; readonly end: number } {
  const start = text.indexOf(`${VALUES_START}\n`) + VALUES_START.length + 1;
  return { start, end: text.indexOf(`${VALUES_END}\n`, start) };
}

/** The package's host script `file`, its values block holding `values` (each already quoted), in the file's order. */
export function renderHostScript(file: string, values: Record<string, string>): string {
  const text = fs.readFileSync(path.join(__dirname, 'host', file), 'utf8');
  const { start, end } = valuesBlock(text);
  const powerShell = file.endsWith('.ps1');
  const names = text.slice(start, end).split('\n').filter((line) => line !== '').map((line) => /^\$?(\w+) ?=/.exec(line)?.[1]);
  if (start === VALUES_START.length || end < 0 || names.join() !== Object.keys(values).join()) {
    throw new Error(`lib/host/${file}: its values block (${names.join(', ')}) does not match the values given (${Object.keys(values).join(', ')})`);
  }
  const block = names.map((name) => (powerShell ? `$${name} = ${values[name!]}` : `${name}=${values[name!]}`)).join('\n');
  return `${text.slice(0, start)}${block}\n${text.slice(end)}`;
}

/** Builds the wiring; `secret` is the initiator's own secret, `targetArn` the construct's target. */
export function wireIscsiHost(
  secret: secretsmanager.ISecret, targetArn: string, props: IscsiHostProps, volumePortal?: string, rotating = false,
): IscsiHostWiring {
  const port = props.portalPort ?? 3260;
  const portalAddress = props.portalAddress ?? volumePortal;
  if (portalAddress === undefined) {
    throw new Error("'portalAddress' must be given when the construct has no volume to take it from, got none");
  }
  const addressError = Token.isUnresolved(portalAddress) ? undefined : portalAddressError(portalAddress);
  if (addressError) throw new Error(addressError);
  if (!Token.isUnresolved(port) && (!Number.isInteger(port) || port < 1 || port > 65535)) {
    throw new Error(`'portalPort' must be a TCP port (an integer from 1 to 65535), got ${port}`);
  }
  const mountPoint = props.mountPoint;
  const mountPointRule = mountPoint === undefined || Token.isUnresolved(mountPoint) ? undefined : mountPointError(mountPoint);
  if (mountPointRule) throw new Error(`'mountPoint' ${mountPointRule}, got '${mountPoint}'`);
  const hold = props.ioHoldTimeout;
  if (hold !== undefined && !rotating) {
    throw new Error(`'ioHoldTimeout' applies only to a construct whose credentials rotate (with 'rotation'), got ${hold.toHumanString()}`);
  }
  let holdSeconds = '600';
  if (hold !== undefined && !hold.isUnresolved()) {
    const seconds = hold.toSeconds({ integral: false });
    if (!Number.isInteger(seconds) || seconds < 10 || seconds > 3600) {
      throw new Error(`'ioHoldTimeout' must be whole seconds from 10 to 3600, got ${hold.toHumanString()}`);
    }
    holdSeconds = String(seconds);
  } else if (hold !== undefined) {
    holdSeconds = Token.asString(hold.toSeconds());
  }
  const region = Stack.of(secret).region;
  const grant = secret.grantRead(props.grantee);
  const values = {
    CHAP_SECRET_ID: secret.secretArn,
    CHAP_REGION: region,
    CHAP_TARGET_ARN: targetArn,
    CHAP_INITIATOR_NAME: props.initiatorName,
    CHAP_PORTAL_ADDRESS: portalAddress,
    CHAP_PORTAL_PORT: Token.isUnresolved(port) ? Token.asString(port) : String(port),
  };
  const linuxValues = { ...values, CHAP_MOUNT_POINT: mountPoint ?? '', CHAP_ROTATING: rotating ? 'yes' : 'no', CHAP_IO_HOLD_SECONDS: holdSeconds };

  // The script's head (what it does, and the values) goes in as it is; its body, the same for every app, as the
  // package ships it compressed (lib/host/connect-linux.body.gz.b64): the script is about 20 KB, EC2 user data 16 KB.
  const linuxScript = renderHostScript('connect-linux.sh', Object.fromEntries(Object.entries(linuxValues).map(([k, v]) => [k, shellQuote(v)])));
  const linuxHead = linuxScript.slice(0, valuesBlock(linuxScript).end + VALUES_END.length);
  const linuxBody = fs.readFileSync(path.join(__dirname, 'host', 'connect-linux.body.gz.b64'), 'utf8').trimEnd().split('\n');
  // One file per initiator secret (its construct path, hashed), so a host wired to several targets keeps them apart.
  const secretHash = createHash('sha256').update(secret.node.path).digest('hex').slice(0, 12);
  const file = `${LINUX_SCRIPT_DIR}/connect-${secretHash}.sh`;
  const linuxCommands = [
    '# cdk-chap-credentials: connect to an iSCSI target with CHAP (the package\'s lib/host/connect-linux.sh, rendered)',
    `mkdir -p ${LINUX_SCRIPT_DIR} && chmod 700 ${LINUX_SCRIPT_DIR}`,
    `(umask 077 && cat > ${file}) <<'${LINUX_HEREDOC_END}'`,
    ...linuxHead.split('\n'),
    LINUX_HEREDOC_END,
    `base64 -d <<'${LINUX_BODY_END}' | gunzip >> ${file}`,
    ...linuxBody,
    LINUX_BODY_END,
    `bash ${file}`,
  ];

  const windowsValues = {
    ChapSecretId: values.CHAP_SECRET_ID,
    ChapRegion: values.CHAP_REGION,
    ChapTargetArn: values.CHAP_TARGET_ARN,
    ChapInitiatorName: values.CHAP_INITIATOR_NAME,
    ChapPortalAddress: values.CHAP_PORTAL_ADDRESS,
    ChapPortalPort: values.CHAP_PORTAL_PORT,
  };
  const quotedWindowsValues = Object.fromEntries(Object.entries(windowsValues).map(([k, v]) => [k, powerShellQuote(v)]));
  // Without their comment lines (the package's files have them), so two Windows wirings fit in EC2's 16 KB of user data.
  const uncommented = (script: string) => script.replace(/\n$/, '').split('\n').filter((line) => !/^\s*#/.test(line));
  const windowsCommands = [
    '# cdk-chap-credentials: connect to an iSCSI target with CHAP (the package\'s lib/host/connect-windows.ps1, rendered)',
    '& {',
    ...uncommented(renderHostScript('connect-windows.ps1', quotedWindowsValues)),
    '}',
    ...(rotating ? windowsRotationTask(renderHostScript('rotate-windows.ps1', quotedWindowsValues), secretHash) : []),
  ];

  return { linuxCommands, windowsCommands, secret, grant };
}

/** The scheduled task's name prefix; the rest is the initiator secret's construct path, hashed (one task per wiring). */
export const WINDOWS_ROTATION_TASK = 'cdk-chap-credentials-rotate-';

/**
 * Commands that write lib/host/rotate-windows.ps1, rendered, into the folder the connect script made (SYSTEM and
 * Administrators only: the task runs it as SYSTEM) and register it as a scheduled task, as SYSTEM, at startup and
 * every minute. The file's values go in as they are; its body, the same for every app, as the package ships it
 * compressed (lib/host/rotate-windows.body.gz.b64), decompressed in-process. The task's only argument is the file's
 * path; the script reads the secret itself when it needs it.
 */
function windowsRotationTask(rendered: string, secretHash: string): string[] {
  const { start, end } = valuesBlock(rendered);
  const values = rendered.slice(start, end).replace(/\n$/, '').split('\n');
  // A verbatim here-string ends at a line starting with '@: no value line may (they are one-line literals).
  const closing = values.find((line) => line.startsWith("'@"));
  if (closing !== undefined) throw new Error(`lib/host/rotate-windows.ps1: a values line starts with '@ and would end the here-string: ${closing}`);
  const body = fs.readFileSync(path.join(__dirname, 'host', 'rotate-windows.body.gz.b64'), 'utf8').trimEnd().split('\n');
  return [
    '# cdk-chap-credentials: reconnect after a CHAP rotation (the package\'s lib/host/rotate-windows.ps1, rendered), a task run as SYSTEM',
    '& {',
    "$RotateValues = @'",
    VALUES_START,
    ...values,
    VALUES_END,
    "'@",
    "$RotateBody = @'",
    ...body,
    "'@",
    "$Gzip = [System.IO.Compression.GZipStream]::new([System.IO.MemoryStream]::new([Convert]::FromBase64String($RotateBody -replace '\\s', '')),",
    '  [System.IO.Compression.CompressionMode]::Decompress)',
    '$Reader = [System.IO.StreamReader]::new($Gzip, [System.Text.Encoding]::UTF8)',
    'try { $RotateScript = $RotateValues + "`n" + $Reader.ReadToEnd() } finally { $Reader.Dispose() }',
    `$TaskName = '${WINDOWS_ROTATION_TASK}${secretHash}'`,
    "$ScriptPath = Join-Path (Join-Path $env:ProgramData 'cdk-chap-credentials') \"$TaskName.ps1\"",
    'Set-Content -Path $ScriptPath -Value $RotateScript -Encoding UTF8',
    "$Action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument \"-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `\"$ScriptPath`\"\"",
    '$Triggers = @((New-ScheduledTaskTrigger -AtStartup), (New-ScheduledTaskTrigger -Once -At (Get-Date) -RepetitionInterval (New-TimeSpan -Minutes 1)))',
    "$Principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest",
    '$Settings = New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew -ExecutionTimeLimit (New-TimeSpan -Minutes 5) -StartWhenAvailable',
    'Register-ScheduledTask -TaskName $TaskName -Action $Action -Trigger $Triggers -Principal $Principal -Settings $Settings -Force | Out-Null',
    'Write-Host "cdk-chap-credentials: task $TaskName registered (every minute and at startup, as SYSTEM): it reconnects after a CHAP rotation"',
    '}',
  ];
}
