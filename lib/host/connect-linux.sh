#!/bin/bash
# cdk-chap-credentials: connects this Linux host to one Storage Gateway iSCSI target with CHAP (open-iscsi).
# Rendered by ChapCredentials.wireHost (the values below), run as root from /var/lib/cdk-chap-credentials/; idempotent.
# Reads the host's own CHAP pair from Secrets Manager, writes it to the root-only node record and logs in; with
# CHAP_MOUNT_POINT mounts the volume; with CHAP_ROTATING keeps it mounted through credential rotations (dm-multipath
# and an agent). The secrets never reach a command's argument, traced output or a log line. Details below.
set +x
set -uo pipefail
umask 077
LC_ALL=C
PATH="$PATH:/usr/sbin:/sbin"

# >>> values (rendered by wireHost)
CHAP_SECRET_ID=''
CHAP_REGION=''
CHAP_TARGET_ARN=''
CHAP_INITIATOR_NAME=''
CHAP_PORTAL_ADDRESS=''
CHAP_PORTAL_PORT='3260'
CHAP_MOUNT_POINT=''
CHAP_ROTATING='no'
CHAP_IO_HOLD_SECONDS='600'
# <<< values

# What it does
#   1. installs the iSCSI initiator when iscsiadm is missing; sets the host's initiator name and AWS's recommended
#      timeouts for gateway volumes (in iscsid.conf, so they survive a later discovery, and on the node record);
#   2. reads the host's own CHAP pair from Secrets Manager: with the AWS CLI when it is installed, otherwise with
#      python3 (standard library only) and the instance role's credentials from IMDSv2;
#   3. writes the pair into the target's node record (root-only), logs in, and marks the node for login at boot.
# A host that boots before its pair is stored, or before the gateway holds it, waits and retries, saying on one line
# each time what it waits for (CHAP_WAIT_SECONDS in all, CHAP_RETRY_SECONDS apart).
# The CHAP secrets travel through pipes, shell variables and the root-only node record only: never a command's
# argument, never traced output (set +x above), never a log line.
# With a mount point, it mounts the volume's filesystem (formatting a blank volume ext4) and adds it to /etc/fstab
# with _netdev,nofail. For a construct whose credentials rotate (CHAP_ROTATING), it also
#   4. puts the volume under dm-multipath, queueing IO while no path is left (up to CHAP_IO_HOLD_SECONDS, then IO
#      fails), so a filesystem stays mounted while the session logs in again with new credentials;
#   5. installs an agent (this script with --agent, as a systemd service): it reads sysfs and iscsid's log only, and
#      when the session fails to authenticate it logs out and in again with the pair staged AWSPENDING, else
#      AWSCURRENT (--relogin). It also connects at boot, when the host was off while the credentials changed.
# The file keeps these comments; the boot commands carry its body without them (compressed).

CHAP_WAIT_SECONDS="${CHAP_WAIT_SECONDS:-1800}"
CHAP_RETRY_SECONDS="${CHAP_RETRY_SECONDS:-15}"

TARGET_IQN="${CHAP_TARGET_ARN##*/target/}"
if [[ $CHAP_PORTAL_ADDRESS == *:* ]]; then
  PORTAL="[$CHAP_PORTAL_ADDRESS]:$CHAP_PORTAL_PORT" # an IPv6 address, as iscsiadm expects it
else
  PORTAL="$CHAP_PORTAL_ADDRESS:$CHAP_PORTAL_PORT"
fi
ISCSI_DIR=/etc/iscsi
STATE_DIR=/var/lib/cdk-chap-credentials
ERRORS="$STATE_DIR/last-error"
# AWS's recommended initiator settings for Storage Gateway volumes.
AWS_SETTINGS=(
  'node.session.timeo.replacement_timeout' 600
  'node.conn[0].timeo.noop_out_interval' 60
  'node.conn[0].timeo.noop_out_timeout' 600
)

log() { printf 'cdk-chap-credentials: %s\n' "$*" >&2; }
fail() {
  log "$*"
  exit 1
}
# The last line of the last command's error output (never holds a secret: no command here is given one).
last_error() {
  local line last=''
  while IFS= read -r line || [[ -n $line ]]; do [[ -n $line ]] && last=$line; done <"$ERRORS"
  printf '%s' "${last:-no error output}"
}

# --- the initiator -------------------------------------------------------------------------------------------------

# install_missing COMMAND WHAT RPM DEB: installs what provides COMMAND when it is missing (RPM with dnf or yum, DEB
# with apt-get, after an `apt-get update` when the first try fails).
install_missing() {
  local command=$1 what=$2 rpm=$3 deb=$4
  command -v "$command" >/dev/null && return 0
  log "installing $what ($command is missing)"
  if command -v dnf >/dev/null; then
    dnf install -y "$rpm"
  elif command -v yum >/dev/null; then
    yum install -y "$rpm"
  elif command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$deb" \
      || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "$deb"; }
  fi >&2
  command -v "$command" >/dev/null \
    || fail "$command is missing and could not be installed ($deb or $rpm from the distribution's repository)"
}

install_initiator() { install_missing iscsiadm 'the iSCSI initiator' iscsi-initiator-utils open-iscsi; }

# Sets NAME_CHANGED=1 when the initiator name had to change (iscsid reads it when it starts).
NAME_CHANGED=0
set_initiator_name() {
  local file="$ISCSI_DIR/initiatorname.iscsi" line current=''
  if [[ -r $file ]]; then
    while IFS= read -r line || [[ -n $line ]]; do
      [[ $line =~ ^[[:space:]]*InitiatorName=(.*)$ ]] && current=${BASH_REMATCH[1]}
    done <"$file"
  fi
  [[ $current == "$CHAP_INITIATOR_NAME" ]] && return 0
  mkdir -p "$ISCSI_DIR"
  (umask 022 && printf 'InitiatorName=%s\n' "$CHAP_INITIATOR_NAME" >"$file") || fail "cannot write $file"
  NAME_CHANGED=1
  log "initiator name set to $CHAP_INITIATOR_NAME (was ${current:-none})"
}

# Rewrites FILE: every line that sets a name in DROP or in SET is removed, and SET's lines ('name = value', in
# SET_ORDER) are written before '# END RECORD' (node records) or at the end. Bash builtins only, through a root-only
# temporary file renamed over FILE, so values never reach a command's arguments.
declare -A SET=() DROP=()
SET_ORDER=()
rewrite_settings() {
  local file=$1 tmp="$1.cdk-chap-credentials.$$" line name written=0
  write_set() {
    local n
    for n in "${SET_ORDER[@]}"; do printf '%s = %s\n' "$n" "${SET[$n]}"; done
  }
  {
    if [[ -f $file ]]; then
      while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line =~ ^[[:space:]]*([^#[:space:]=][^[:space:]=]*)[[:space:]]*= ]]; then
          name=${BASH_REMATCH[1]}
          [[ -n ${SET[$name]+set} || -n ${DROP[$name]+set} ]] && continue
        fi
        if ((!written)) && [[ $line == '# END RECORD'* ]]; then
          write_set
          written=1
        fi
        printf '%s\n' "$line"
      done <"$file"
    fi
    ((written)) || write_set
  } >"$tmp" && mv -f "$tmp" "$file"
}

set_iscsid_defaults() {
  local i
  SET=() DROP=() SET_ORDER=()
  for ((i = 0; i < ${#AWS_SETTINGS[@]}; i += 2)); do
    SET[${AWS_SETTINGS[i]}]=${AWS_SETTINGS[i + 1]}
    SET_ORDER+=("${AWS_SETTINGS[i]}")
  done
  mkdir -p "$ISCSI_DIR"
  rewrite_settings "$ISCSI_DIR/iscsid.conf" || fail "cannot write $ISCSI_DIR/iscsid.conf"
}

has_systemd() { [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null; }
# iscsid listens on an abstract unix socket; /proc/net/unix lists it while iscsid runs.
iscsid_listening() {
  local line
  while IFS= read -r line; do [[ $line == *@ISCSIADM_ABSTRACT_NAMESPACE* ]] && return 0; done </proc/net/unix
  return 1
}
start_iscsid() {
  local i
  if has_systemd; then
    systemctl enable iscsid >/dev/null 2>&1
    if ((NAME_CHANGED)); then systemctl restart iscsid; else systemctl start iscsid; fi >&2 2>&1 \
      || fail "systemctl could not start iscsid"
    return 0
  fi
  # No systemd (containers, minimal guests): run iscsid in a session of its own (its SIGTERM handler signals its
  # whole process group), and restart it when the initiator name changed.
  # Whole seconds: busybox's sleep may not take fractions.
  if ((NAME_CHANGED)) && iscsid_listening; then
    iscsiadm -k 0 >&2 2>&1
    for ((i = 0; i < 10; i++)); do iscsid_listening || break; sleep 1; done
  fi
  iscsid_listening && return 0
  if command -v setsid >/dev/null; then setsid iscsid; else iscsid; fi || fail "iscsid did not start"
  for ((i = 0; i < 10; i++)); do
    iscsid_listening && return 0
    sleep 1
  done
  fail "iscsid did not start listening within 10 s"
}

iscsi_node() { iscsiadm -m node -T "$TARGET_IQN" -p "$PORTAL" "$@"; }

# A node record for exactly this target and portal (no discovery: discovery would rewrite the node records of every
# target the portal reports from iscsid.conf's defaults, dropping their CHAP settings).
make_node_record() {
  local i
  if ! iscsi_node >/dev/null 2>&1; then
    iscsi_node -o new >/dev/null 2>"$ERRORS" || fail "iscsiadm could not create the node record of $TARGET_IQN at $PORTAL: $(last_error)"
  fi
  for ((i = 0; i < ${#AWS_SETTINGS[@]}; i += 2)); do
    iscsi_node -o update -n "${AWS_SETTINGS[i]}" -v "${AWS_SETTINGS[i + 1]}" 2>"$ERRORS" \
      || fail "iscsiadm could not set ${AWS_SETTINGS[i]}: $(last_error)"
  done
  iscsi_node -o update -n node.startup -v automatic 2>"$ERRORS" || fail "iscsiadm could not set node.startup: $(last_error)"
}

# The node record's file: NODES/IQN/ADDRESS,PORT (made without a portal group) or NODES/IQN/ADDRESS,PORT,TPGT/default.
# NODES is /etc/iscsi/nodes on Debian and Ubuntu, /var/lib/iscsi/nodes on RHEL and Amazon Linux.
NODE_FILE=''
find_node_file() {
  local nodes base candidate
  for nodes in /etc/iscsi/nodes /var/lib/iscsi/nodes; do
    base="$nodes/$TARGET_IQN/$CHAP_PORTAL_ADDRESS,$CHAP_PORTAL_PORT"
    for candidate in "$base" "$base",*/default; do
      if [[ -f $candidate ]]; then
        NODE_FILE=$candidate
        return 0
      fi
    done
  done
  fail "no node record file for $TARGET_IQN at $PORTAL under /etc/iscsi/nodes or /var/lib/iscsi/nodes"
}

# Writes the CHAP pair into the node record; mutual CHAP when a target secret is given, one-way otherwise.
write_chap() {
  SET=() DROP=() SET_ORDER=(node.session.auth.authmethod node.session.auth.username node.session.auth.password)
  SET[node.session.auth.authmethod]=CHAP
  SET[node.session.auth.username]=$CHAP_INITIATOR_NAME
  SET[node.session.auth.password]=$1
  if [[ -n $2 ]]; then
    SET[node.session.auth.username_in]=$TARGET_IQN
    SET[node.session.auth.password_in]=$2
    SET_ORDER+=(node.session.auth.username_in node.session.auth.password_in)
  else
    DROP[node.session.auth.username_in]=1
    DROP[node.session.auth.password_in]=1
  fi
  rewrite_settings "$NODE_FILE"
  local status=$?
  SET=()
  return "$status"
}

# --- the secret ----------------------------------------------------------------------------------------------------

# Prints the secret's SecretString (stage $1, AWSCURRENT when empty) on standard output.
get_secret_value() {
  local stage=${1:-} python
  if command -v aws >/dev/null; then
    local stage_args=()
    [[ -n $stage ]] && stage_args=(--version-stage "$stage")
    AWS_PAGER='' aws secretsmanager get-secret-value --region "$CHAP_REGION" --secret-id "$CHAP_SECRET_ID" \
      "${stage_args[@]}" --query SecretString --output text
    return
  fi
  python=$(command -v python3 || command -v /usr/libexec/platform-python) \
    || { echo "neither the AWS CLI nor python3 is installed" >&2 && return 127; }
  # GetSecretValue signed with Signature Version 4, with the instance role's credentials from IMDSv2 (or AWS_*
  # variables). Honours AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL and AWS_EC2_METADATA_SERVICE_ENDPOINT.
  "$python" - "$CHAP_REGION" "$CHAP_SECRET_ID" "$stage" <<'PYTHON'
import datetime, hashlib, hmac, json, os, sys, urllib.error, urllib.parse, urllib.request

region, secret_id, stage = sys.argv[1:4]


def fail(message):
    sys.stderr.write(message + '\n')
    sys.exit(1)


def credentials():
    if os.environ.get('AWS_ACCESS_KEY_ID') and os.environ.get('AWS_SECRET_ACCESS_KEY'):
        return os.environ['AWS_ACCESS_KEY_ID'], os.environ['AWS_SECRET_ACCESS_KEY'], os.environ.get('AWS_SESSION_TOKEN')
    ipv6 = os.environ.get('AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE', '').lower() == 'ipv6'
    base = os.environ.get('AWS_EC2_METADATA_SERVICE_ENDPOINT') or ('http://[fd00:ec2::254]' if ipv6 else 'http://169.254.169.254')
    base = base.rstrip('/')
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        token = direct.open(urllib.request.Request(base + '/latest/api/token', method='PUT', headers={
            'X-aws-ec2-metadata-token-ttl-seconds': '300'}), timeout=5).read().decode()
        headers = {'X-aws-ec2-metadata-token': token}
        path = base + '/latest/meta-data/iam/security-credentials/'
        role = direct.open(urllib.request.Request(path, headers=headers), timeout=5).read().decode().split()[0]
        found = json.loads(direct.open(urllib.request.Request(path + role, headers=headers), timeout=5).read())
        return found['AccessKeyId'], found['SecretAccessKey'], found.get('Token')
    except (OSError, ValueError, KeyError, IndexError) as error:
        fail('no instance role credentials from the instance metadata service (IMDSv2) at %s: %s' % (base, error))


def sign(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sha256(data):
    return hashlib.sha256(data if isinstance(data, bytes) else data.encode()).hexdigest()


suffix = 'amazonaws.com.cn' if secret_id.startswith('arn:aws-cn:') else 'amazonaws.com'
endpoint = (os.environ.get('AWS_ENDPOINT_URL_SECRETS_MANAGER') or os.environ.get('AWS_ENDPOINT_URL')
            or 'https://secretsmanager.%s.%s' % (region, suffix))
url = urllib.parse.urlsplit(endpoint)
access_key, secret_key, session_token = credentials()
body = json.dumps(dict({'SecretId': secret_id}, **({'VersionStage': stage} if stage else {}))).encode()
now = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%SZ')
headers = {'content-type': 'application/x-amz-json-1.1', 'host': url.netloc, 'x-amz-date': now,
           'x-amz-target': 'secretsmanager.GetSecretValue'}
if session_token:
    headers['x-amz-security-token'] = session_token
names = sorted(headers)
canonical = '\n'.join(['POST', url.path or '/', '', ''.join('%s:%s\n' % (n, headers[n]) for n in names),
                       ';'.join(names), sha256(body)])
scope = '%s/%s/secretsmanager/aws4_request' % (now[:8], region)
key = sign(sign(sign(sign(('AWS4' + secret_key).encode(), now[:8]), region), 'secretsmanager'), 'aws4_request')
signature = hmac.new(key, '\n'.join(['AWS4-HMAC-SHA256', now, scope, sha256(canonical)]).encode(), hashlib.sha256).hexdigest()
headers['authorization'] = 'AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s' % (
    access_key, scope, ';'.join(names), signature)
try:
    answer = json.loads(urllib.request.urlopen(urllib.request.Request(endpoint, data=body, headers=headers, method='POST'),
                                               timeout=15).read())
except urllib.error.HTTPError as error:
    try:
        problem = json.loads(error.read())
        detail = '%s: %s' % (problem.get('__type', '').split('#')[-1], problem.get('message') or problem.get('Message', ''))
    except ValueError:
        detail = 'HTTP %s' % error.code
    fail('GetSecretValue failed: ' + detail)
except (OSError, ValueError) as error:
    fail('GetSecretValue failed: %s' % error)
if not isinstance(answer.get('SecretString'), str):
    fail('GetSecretValue answered without a SecretString')
sys.stdout.write(answer['SecretString'])
PYTHON
}

# JSON string contents to bytes: \" \\ \/ \b \f \n \r \t and \uXXXX (with surrogate pairs) into UNESCAPED.
UNESCAPED=''
json_unescape() {
  local s=$1 out='' run hex code low format
  while [[ -n $s ]]; do
    run=${s%%\\*}
    out+=$run
    s=${s:${#run}}
    [[ -z $s ]] && break
    case ${s:1:1} in
      \" | \\ | /) out+=${s:1:1} && s=${s:2} ;;
      b) out+=$'\b' && s=${s:2} ;;
      f) out+=$'\f' && s=${s:2} ;;
      n) out+=$'\n' && s=${s:2} ;;
      r) out+=$'\r' && s=${s:2} ;;
      t) out+=$'\t' && s=${s:2} ;;
      u)
        hex=${s:2:4}
        [[ $hex =~ ^[0-9A-Fa-f]{4}$ ]] || return 1
        code=$((16#$hex))
        s=${s:6}
        if ((code >= 0xD800 && code <= 0xDBFF)); then
          hex=${s:2:4}
          [[ ${s:0:2} == '\u' && $hex =~ ^[Dd][C-Fc-f][0-9A-Fa-f]{2}$ ]] || return 1
          low=$((16#$hex))
          code=$((0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)))
          s=${s:6}
        fi
        ((code == 0 || (code >= 0xDC00 && code <= 0xDFFF))) && return 1
        if ((code < 0x80)); then
          printf -v format '\\x%02x' "$code"
        elif ((code < 0x800)); then
          printf -v format '\\x%02x\\x%02x' $((0xC0 | code >> 6)) $((0x80 | (code & 0x3F)))
        elif ((code < 0x10000)); then
          printf -v format '\\x%02x\\x%02x\\x%02x' $((0xE0 | code >> 12)) $((0x80 | (code >> 6 & 0x3F))) $((0x80 | (code & 0x3F)))
        else
          printf -v format '\\x%02x\\x%02x\\x%02x\\x%02x' $((0xF0 | code >> 18)) $((0x80 | (code >> 12 & 0x3F))) \
            $((0x80 | (code >> 6 & 0x3F))) $((0x80 | (code & 0x3F)))
        fi
        # shellcheck disable=SC2059 # the format is the escaped bytes made just above
        printf -v run "$format"
        out+=$run
        ;;
      *) return 1 ;;
    esac
  done
  UNESCAPED=$out
}

# Reads a JSON object whose members are strings (or numbers, booleans, null) into FIELDS; fails on anything else.
declare -A FIELDS=()
parse_json_object() {
  local rest=$1 key value
  local open='^[[:space:]]*[{][[:space:]]*' close='^[}][[:space:]]*$' comma='^,[[:space:]]*'
  local member='^"(([^"\\]|\\.)*)"[[:space:]]*:[[:space:]]*("(([^"\\]|\\.)*)"|true|false|null|-?[0-9][0-9.eE+-]*)[[:space:]]*'
  FIELDS=()
  [[ $rest =~ $open ]] || return 1
  rest=${rest:${#BASH_REMATCH[0]}}
  [[ $rest =~ $close ]] && return 0
  while [[ $rest =~ $member ]]; do
    rest=${rest:${#BASH_REMATCH[0]}}
    key=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[3]}
    json_unescape "$key" || return 1
    key=$UNESCAPED
    if [[ $value == '"'* ]]; then
      json_unescape "${value:1:${#value}-2}" || return 1
      value=$UNESCAPED
    fi
    UNESCAPED=''
    FIELDS[$key]=$value
    [[ $rest =~ $close ]] && return 0
    [[ $rest =~ $comma ]] || return 1
    rest=${rest:${#BASH_REMATCH[0]}}
  done
  return 1
}

# A secret a node record can hold: set, and no control character or surrounding white space (iscsiadm trims it).
usable_secret() { [[ -n $1 && ! $1 =~ [[:cntrl:]] && ! $1 =~ ^[[:space:]] && ! $1 =~ [[:space:]]$ ]]; }

# --- connecting ----------------------------------------------------------------------------------------------------

# One attempt: read the pair (of STAGE, AWSCURRENT when empty), write it, log in. Returns 0 when connected; otherwise
# 1 with WAITING_FOR set.
WAITING_FOR=''
STAGE=''
attempt() {
  local value status
  if ! value=$(get_secret_value "$STAGE" 2>"$ERRORS"); then
    WAITING_FOR="the secret $CHAP_SECRET_ID to be readable ($(last_error))"
    return 1
  fi
  if ! parse_json_object "$value"; then
    value=''
    WAITING_FOR="the secret $CHAP_SECRET_ID to hold this host's CHAP pair (it holds no JSON object yet)"
    return 1
  fi
  value=''
  local name=${FIELDS[initiatorName]:-}
  if [[ -n $name && $name != "$CHAP_INITIATOR_NAME" ]]; then
    FIELDS=()
    fail "the secret $CHAP_SECRET_ID holds the pair of $name, not of this host ($CHAP_INITIATOR_NAME)"
  fi
  if ! usable_secret "${FIELDS[secretToAuthenticateInitiator]:-}"; then
    FIELDS=()
    WAITING_FOR="the secret $CHAP_SECRET_ID to hold this host's CHAP pair (no usable secretToAuthenticateInitiator yet)"
    return 1
  fi
  if [[ -n ${FIELDS[secretToAuthenticateTarget]:-} ]] && ! usable_secret "${FIELDS[secretToAuthenticateTarget]}"; then
    FIELDS=()
    WAITING_FOR="the secret $CHAP_SECRET_ID to hold a usable secretToAuthenticateTarget"
    return 1
  fi
  write_chap "${FIELDS[secretToAuthenticateInitiator]}" "${FIELDS[secretToAuthenticateTarget]:-}"
  status=$?
  FIELDS=()
  ((status == 0)) || fail "cannot write the node record $NODE_FILE"

  wait_logout
  iscsi_node --login >"$ERRORS" 2>&1
  status=$?
  case $status in
    0 | 15) return 0 ;; # logged in, or already logged in
    19 | 24)
      WAITING_FOR="the target $TARGET_IQN to accept this host's CHAP credentials (login refused, iscsiadm exit $status)"
      ;;
    4 | 5 | 8 | 11 | 18 | 20)
      WAITING_FOR="the target $TARGET_IQN at $PORTAL to answer (iscsiadm exit $status: $(last_error))"
      ;;
    *) fail "login to $TARGET_IQN at $PORTAL failed (iscsiadm exit $status): $(last_error)" ;;
  esac
  return 1
}

connect() {
  local started=$SECONDS tries=0
  while ! attempt; do
    tries=$((tries + 1))
    if ((SECONDS - started >= CHAP_WAIT_SECONDS)); then
      fail "gave up after $((SECONDS - started)) s and $tries attempts, waiting for $WAITING_FOR"
    fi
    log "waiting for $WAITING_FOR; attempt $tries, retrying in $CHAP_RETRY_SECONDS s"
    sleep "$CHAP_RETRY_SECONDS"
  done
  log "connected to $TARGET_IQN at $PORTAL as $CHAP_INITIATOR_NAME"
}

# After a reboot the distribution's iscsi service logs in every node marked automatic.
enable_boot_login() {
  if has_systemd; then
    local unit enabled=0
    for unit in iscsi.service open-iscsi.service; do
      systemctl enable "$unit" >/dev/null 2>&1 && enabled=1
    done
    ((enabled)) || log "neither iscsi.service nor open-iscsi.service could be enabled: the session does not return after a reboot"
  else
    log "no systemd: after a reboot, start iscsid and run 'iscsiadm -m node --loginall=automatic' to log in again"
  fi
}

# --- the volume ----------------------------------------------------------------------------------------------------

# This script's file, and the name its agent and multipath map take from it (connect-HASH.sh: one per wiring).
SELF=$(readlink -f "${BASH_SOURCE[0]}")
WIRING=${SELF##*/connect-}
WIRING=${WIRING%.sh}
MAP_ALIAS="cdk-chap-$WIRING"
MULTIPATH_POLL_SECONDS=5 # multipathd's polling_interval (its default)
CHAP_SESSIONS_DIR="${CHAP_SESSIONS_DIR:-/sys/class/iscsi_session}"

# The sysfs folder of the live session to this target, in SESSION (fails when there is none).
SESSION=''
find_session() {
  local s target
  for s in "$CHAP_SESSIONS_DIR"/session*; do
    [[ -r $s/targetname ]] || continue
    read -r target <"$s/targetname"
    if [[ $target == "$TARGET_IQN" ]]; then
      SESSION=$s
      return 0
    fi
  done
  return 1
}

# The session's disk (/dev/sdX) in DISK, waiting up to 30 s for the kernel to make it.
DISK=''
find_disk() {
  local i b
  for ((i = 0; i < 60; i++)); do
    if find_session; then
      for b in "$SESSION"/device/target*/*/block/*; do
        if [[ -b /dev/${b##*/} ]]; then
          DISK=/dev/${b##*/}
          return 0
        fi
      done
    fi
    sleep 0.5
  done
  fail "the disk of the session to $TARGET_IQN did not appear within 30 s"
}

install_multipath() { install_missing multipathd dm-multipath device-mapper-multipath multipath-tools; }

multipathd_running() { multipathd show daemon >/dev/null 2>&1; }
start_multipathd() {
  local i
  if has_systemd; then
    systemctl enable multipathd >/dev/null 2>&1
    systemctl start multipathd >&2 2>&1 || fail "systemctl could not start multipathd"
  elif ! multipathd_running; then
    multipathd || fail "multipathd did not start"
  fi
  for ((i = 0; i < 20; i++)); do
    multipathd_running && return 0
    sleep 0.5
  done
  fail "multipathd did not answer within 10 s"
}

# The WWID multipathd gives DISK, in WWID (waiting up to 30 s for multipathd to see the disk).
WWID=''
find_wwid() {
  local i name wwid paths
  for ((i = 0; i < 60; i++)); do
    paths=$(multipathd show paths raw format '%d %w' 2>/dev/null)
    while read -r name wwid; do
      if [[ /dev/$name == "$DISK" && -n $wwid ]]; then
        WWID=$wwid
        return 0
      fi
    done <<<"$paths"
    sleep 0.5
  done
  fail "multipathd did not report the WWID of $DISK within 30 s"
}

# dm-multipath over the session's disk, as /dev/mapper/MAP_ALIAS: IO queues while no path is left, for
# no_path_retry polling intervals, then fails (never an unbounded hang). A new session's disk (a new sdX, same WWID)
# joins the same map by itself, so a filesystem on the map survives a logout and login.
setup_multipath() {
  local retries=$(((CHAP_IO_HOLD_SECONDS + MULTIPATH_POLL_SECONDS - 1) / MULTIPATH_POLL_SECONDS))
  install_multipath
  find_disk
  if [[ ! -e /etc/multipath.conf ]]; then
    # What RHEL's `mpathconf --enable` writes: only devices listed in /etc/multipath/wwids (or with several paths)
    # are multipathed, so the host's other disks stay as they are.
    (umask 022 && printf 'defaults {\n\tuser_friendly_names yes\n\tfind_multipaths yes\n}\n' >/etc/multipath.conf) \
      || fail "cannot write /etc/multipath.conf"
  fi
  start_multipathd
  find_wwid
  mkdir -p /etc/multipath/conf.d || fail "cannot create /etc/multipath/conf.d"
  (umask 022 && printf '# cdk-chap-credentials: %s at %s (%s)\nmultipaths {\n\tmultipath {\n\t\twwid "%s"\n\t\talias %s\n\t\tno_path_retry %s\n\t}\n}\n' \
    "$TARGET_IQN" "$PORTAL" "$SELF" "$WWID" "$MAP_ALIAS" "$retries" >"/etc/multipath/conf.d/$MAP_ALIAS.conf") \
    || fail "cannot write /etc/multipath/conf.d/$MAP_ALIAS.conf"
  multipath -a "$DISK" >/dev/null 2>"$ERRORS" || fail "multipath could not add the WWID of $DISK: $(last_error)"
  multipathd reconfigure >/dev/null 2>"$ERRORS" || fail "multipathd could not reload its configuration: $(last_error)"
  volume_device
  log "the volume is $VOLUME (dm-multipath over $DISK): while no path to the gateway is left, IO" \
    "waits up to $((retries * MULTIPATH_POLL_SECONDS)) s (no_path_retry $retries), then fails"
}

# The volume's device, in VOLUME: the multipath map when the credentials rotate (waiting up to 30 s for it), otherwise
# the session's disk.
VOLUME=''
volume_device() {
  local i
  if [[ $CHAP_ROTATING == yes ]]; then
    VOLUME=/dev/mapper/$MAP_ALIAS
    for ((i = 0; i < 60; i++)); do
      [[ -b $VOLUME ]] && return 0
      sleep 0.5
    done
    fail "the multipath device $VOLUME did not appear within 30 s"
  else
    find_disk
    VOLUME=$DISK
  fi
}

# Whether the first MiB of $1 holds only zeros (a volume nothing was ever written to).
blank() {
  local bytes
  bytes=$(head -c 1048576 "$1" | tr -d '\0' | wc -c) && ((bytes == 0))
}

# Mounts the volume on CHAP_MOUNT_POINT, formatting it ext4 only when it is blank (no filesystem, no partition table,
# its first MiB zeros), and writes its /etc/fstab line (_netdev: after the network; nofail: a boot never waits for it).
mount_volume() {
  [[ -n $CHAP_MOUNT_POINT ]] || return 0
  local type status source line
  volume_device
  if mountpoint -q "$CHAP_MOUNT_POINT"; then
    return 0
  fi
  type=$(blkid -p -s TYPE -o value "$VOLUME" 2>"$ERRORS")
  status=$?
  if ((status == 2)); then
    blank "$VOLUME" || fail "$VOLUME holds no filesystem blkid knows and is not blank: not formatting it, not mounting it"
    log "formatting the blank volume $VOLUME (ext4)"
    mkfs.ext4 -q "$VOLUME" >&2 2>"$ERRORS" || fail "mkfs.ext4 failed on $VOLUME: $(last_error)"
    type=ext4
  elif ((status != 0)); then
    fail "blkid could not read $VOLUME (exit $status): $(last_error)"
  elif [[ -z $type ]]; then
    fail "$VOLUME holds a partition table, not a filesystem: not mounting it (mount a partition yourself)"
  fi
  if [[ $CHAP_ROTATING == yes ]]; then
    source=$VOLUME
  else
    source=UUID=$(blkid -p -s UUID -o value "$VOLUME") || fail "blkid could not read the UUID of $VOLUME"
  fi
  # /etc/fstab without this mount point's line, then ours.
  local tmp=/etc/fstab.cdk-chap-credentials.$$ fields
  {
    if [[ -f /etc/fstab ]]; then
      while IFS= read -r line || [[ -n $line ]]; do
        read -ra fields <<<"$line"
        [[ ${fields[0]:-} != '#'* && ${fields[1]:-} == "$CHAP_MOUNT_POINT" ]] && continue
        printf '%s\n' "$line"
      done </etc/fstab
    fi
    printf '%s %s %s _netdev,nofail 0 0\n' "$source" "$CHAP_MOUNT_POINT" "$type"
  } >"$tmp" || fail "cannot write $tmp"
  if ! chmod 644 "$tmp" || ! mv -f "$tmp" /etc/fstab; then fail "cannot replace /etc/fstab"; fi
  has_systemd && systemctl daemon-reload >/dev/null 2>&1
  mkdir -p "$CHAP_MOUNT_POINT" || fail "cannot create $CHAP_MOUNT_POINT"
  mount "$CHAP_MOUNT_POINT" 2>"$ERRORS" || fail "mount $CHAP_MOUNT_POINT failed: $(last_error)"
  log "mounted $source ($type) on $CHAP_MOUNT_POINT"
}

# --- the agent -----------------------------------------------------------------------------------------------------

AGENT_UNIT="cdk-chap-credentials-agent-$WIRING.service"
AGENT_INTERVAL="${CHAP_AGENT_INTERVAL:-0.5}"
AGENT_BACKOFF="${CHAP_AGENT_BACKOFF:-30}"

# Installs and starts the agent: a systemd service, or without systemd a process of its own (start it at boot).
install_agent() {
  if has_systemd; then
    (umask 022 && cat >"/etc/systemd/system/$AGENT_UNIT") <<UNIT || fail "cannot write /etc/systemd/system/$AGENT_UNIT"
# cdk-chap-credentials: logs in to $TARGET_IQN again when its CHAP credentials change (a rotation), and at boot.
# It reads sysfs and iscsid's log only; it reads the host's secret only when the session fails to authenticate.
[Unit]
Description=cdk-chap-credentials agent for $TARGET_IQN
Wants=network-online.target
After=network-online.target iscsid.service multipathd.service iscsi.service open-iscsi.service

[Service]
ExecStart=/bin/bash $SELF --agent
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
UNIT
    if ! systemctl daemon-reload >&2 2>&1 || ! systemctl enable "$AGENT_UNIT" >&2 2>&1 \
      || ! systemctl restart "$AGENT_UNIT" >&2 2>&1; then
      fail "systemctl could not start $AGENT_UNIT"
    fi
    log "agent $AGENT_UNIT started"
    return 0
  fi
  local pid_file="$STATE_DIR/agent-$WIRING.pid" pid=''
  [[ -r $pid_file ]] && read -r pid <"$pid_file"
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then kill "$pid"; fi
  setsid bash "$SELF" --agent </dev/null >>"$STATE_DIR/agent-$WIRING.log" 2>&1 &
  printf '%s\n' "$!" >"$pid_file"
  log "no systemd: agent started (pid $!, log $STATE_DIR/agent-$WIRING.log); at boot, run 'bash $SELF --agent' yourself"
}

# Where iscsid logs without a journal (CHAP_ISCSID_LOG, or the first syslog file there is).
iscsid_log_file() {
  local file
  for file in ${CHAP_ISCSID_LOG:-} /var/log/messages /var/log/syslog; do
    [[ -r $file ]] && printf '%s' "$file" && return 0
  done
  return 1
}
# Whether iscsid's log is the journal (a systemd host, unless CHAP_ISCSID_LOG names a file).
use_journal() { [[ -z ${CHAP_ISCSID_LOG:-} ]] && has_systemd && command -v journalctl >/dev/null; }
# A mark in iscsid's log: a byte offset in its file, or the time (epoch seconds) for the journal.
log_mark() {
  local file size
  if use_journal; then
    printf '%(%s)T' -1
  elif file=$(iscsid_log_file) && size=$(wc -c <"$file"); then
    printf '%s' "$size"
  else
    printf '0'
  fi
}
# Whether a line on standard input ends with $1 (or $1 and white space): iscsid's message ends with the target's name,
# and another target's name may start with ours. Reads to the end, as the grep before it does: a writer cut off by a
# closed pipe would fail the pipeline (pipefail), hiding the line.
said_last() {
  local line found=1
  while IFS= read -r line; do [[ $line == *"$1" || $line == *"$1"[[:space:]]* ]] && found=0; done
  return "$found"
}
# Whether iscsid said, since mark $1, that a login to this target failed to authenticate.
auth_failed_since() {
  local file size said="Login failed to authenticate with target $TARGET_IQN"
  if use_journal; then
    journalctl --no-pager -q -o cat --since "@$(($1 - 1))" _COMM=iscsid 2>/dev/null | grep -F -e "$said" | said_last "$said"
    return
  fi
  file=$(iscsid_log_file) || return 1
  size=$(wc -c <"$file") || return 1
  ((size >= $1)) || set -- 0 # the log was rotated
  tail -c "+$(($1 + 1))" "$file" | grep -F -e "$said" | said_last "$said"
}

# --agent: at start (boot), connects when there is no session to this target (the distribution's login used the node
# record, whose credentials may have changed while the host was off); then watches the session. No AWS call while it
# is healthy: when it fails (FAILED, or FREE once its recovery timeout passed) and iscsid says the login failed to
# authenticate, logs in again (--relogin) and mounts the volume when it is not.
agent() {
  local state mark marked next=-1 down_since=-1 nap_fd nap="$STATE_DIR/agent-$WIRING.nap"
  # A FIFO nobody writes to, to wait on with read -t (a builtin) instead of running sleep twice a second.
  [[ -p $nap ]] || mkfifo -m 600 "$nap" || fail "cannot make $nap"
  exec {nap_fd}<>"$nap"
  find_node_file
  log "agent watching the session to $TARGET_IQN at $PORTAL"
  mark=$(log_mark)
  marked=$SECONDS
  if ! find_session; then
    log "no session to $TARGET_IQN: connecting"
    (relogin && mount_volume) || next=$((SECONDS + AGENT_BACKOFF))
  fi
  local nap_seconds=$AGENT_INTERVAL
  while :; do
    read -r -t "$nap_seconds" -u "$nap_fd" _
    nap_seconds=$AGENT_INTERVAL
    state=none
    if find_session; then read -r state <"$SESSION/state"; fi
    # Healthy; or no session, not after a failed login of the agent's own (a logout by hand stays a logout).
    if [[ $state == LOGGED_IN || ($state == none && $next == -1) ]]; then
      # A new mark every 10 s: a failure is then judged by what iscsid said at most 10 s before it began.
      if ((SECONDS - marked >= 10)); then
        mark=$(log_mark)
        marked=$SECONDS
      fi
      next=-1
      down_since=-1
      continue
    fi
    ((down_since >= 0)) || down_since=$SECONDS
    ((SECONDS >= next)) || continue
    if [[ $state != none ]] && ! auth_failed_since "$mark"; then
      # In the first 10 s of a failure iscsid's log is read every 0.1 s (its retry about 2 s after the close says
      # whether the login failed to authenticate); a longer failure (a gateway restart) is checked at the usual pace.
      ((SECONDS - down_since < 10)) && nap_seconds=0.1
      continue
    fi
    if [[ $state == none ]]; then
      log "no session to $TARGET_IQN since the last failed login: trying again"
    else
      log "the session to $TARGET_IQN failed to authenticate ($state): logging in again with the stored credentials"
    fi
    if (relogin && mount_volume); then
      mark=$(log_mark)
      marked=$SECONDS
      next=-1
      down_since=-1
    else
      next=$((SECONDS + AGENT_BACKOFF))
      log "logging in again to $TARGET_IQN failed; next try in $AGENT_BACKOFF s"
    fi
  done
}

# --relogin: the gateway's credentials changed (a rotation) and the session failed to authenticate. Logs out and in
# again with the pair staged AWSPENDING (the rotation in progress), else AWSCURRENT. Run by the agent.
LOGOUT_PID=''
wait_logout() {
  [[ -n $LOGOUT_PID ]] || return 0
  wait "$LOGOUT_PID"
  LOGOUT_PID=''
}
relogin() {
  local stage
  find_node_file
  for stage in AWSPENDING AWSCURRENT; do
    STAGE=$stage
    # The logout (no session to end is fine) runs while the pair is read and written; the login waits for it.
    wait_logout
    iscsi_node --logout >/dev/null 2>&1 &
    LOGOUT_PID=$!
    if attempt; then
      log "logged in again to $TARGET_IQN at $PORTAL with the $stage credentials"
      return 0
    fi
    log "the $stage credentials did not log in: waiting for $WAITING_FOR"
  done
  wait_logout
  fail "no stored credentials log in to $TARGET_IQN at $PORTAL"
}

main() {
  ((EUID == 0)) || fail "must run as root"
  [[ -n $CHAP_SECRET_ID && -n $CHAP_REGION && -n $TARGET_IQN && -n $CHAP_INITIATOR_NAME && -n $CHAP_PORTAL_ADDRESS ]] \
    || fail "the values block is incomplete: render this script with ChapCredentials.wireHost"
  case ${1:-} in
    --relogin)
      relogin
      return
      ;;
    --agent)
      agent
      return
      ;;
  esac
  { mkdir -p "$STATE_DIR" && chmod 700 "$STATE_DIR"; } || fail "cannot create $STATE_DIR"
  install_initiator
  set_initiator_name
  set_iscsid_defaults
  start_iscsid
  make_node_record
  find_node_file
  connect
  enable_boot_login
  if [[ $CHAP_ROTATING == yes ]]; then
    setup_multipath
    mount_volume
    install_agent
  else
    mount_volume
  fi
}

main "$@"
