#!/bin/bash
# cdk-chap-credentials agent: brings iSCSI sessions back after the gateway's CHAP credentials change (a rotation).
#
# When Storage Gateway's credentials change, it closes every connection; open-iscsi then retries forever with the
# secrets it cached at login, and only a logout and a login with the new pair recover the session. This agent reads
# local state only (sysfs and iscsid's log): it makes no AWS call while sessions are healthy. When a session of a
# target wired by cdk-chap-credentials has been FAILED for CHAP_AGENT_CONFIRM seconds and iscsid's log says the login
# failed to authenticate, it runs that target's connect script with --relogin (AWSPENDING, else AWSCURRENT; leak-free).
# Filesystems survive the gap when the volume sits under dm-multipath with queueing (see ISCSI notes in the README).
# Installed as cdk-chap-credentials-agent.service; STATUS: not yet rendered by wireHost (see the README).
set +x
set -uo pipefail
LC_ALL=C
PATH="$PATH:/usr/sbin:/sbin"

CHAP_SESSIONS_DIR="${CHAP_SESSIONS_DIR:-/sys/class/iscsi_session}"
CHAP_SCRIPTS_DIR="${CHAP_SCRIPTS_DIR:-/var/lib/cdk-chap-credentials}"
CHAP_AGENT_INTERVAL="${CHAP_AGENT_INTERVAL:-2}"
CHAP_AGENT_CONFIRM="${CHAP_AGENT_CONFIRM:-2}"
CHAP_AGENT_BACKOFF="${CHAP_AGENT_BACKOFF:-30}"
# A file iscsid logs to, when there is no journal (containers, minimal guests); empty: the journal, if any.
CHAP_ISCSID_LOG="${CHAP_ISCSID_LOG:-}"
# Passes before the agent stops (0: never).
CHAP_AGENT_PASSES="${CHAP_AGENT_PASSES:-0}"

log() { printf 'cdk-chap-credentials agent: %s\n' "$*" >&2; }

# Target IQN -> the connect script that wired it (from the CHAP_TARGET_ARN line of its values block).
declare -A SCRIPT_OF=()
find_scripts() {
  local script line
  SCRIPT_OF=()
  for script in "$CHAP_SCRIPTS_DIR"/connect-*.sh; do
    [[ -f $script ]] || continue
    while IFS= read -r line; do
      if [[ $line =~ ^CHAP_TARGET_ARN=\'(.*)\'$ ]]; then
        SCRIPT_OF[${BASH_REMATCH[1]##*/target/}]=$script
        break
      fi
    done <"$script"
  done
}

# Whether iscsid recently said a login failed to authenticate (the only place that tells an auth failure apart).
auth_failed() {
  local target=$1 line
  if [[ -n $CHAP_ISCSID_LOG ]]; then
    [[ -r $CHAP_ISCSID_LOG ]] || return 1
    while IFS= read -r line; do
      [[ $line == *'Login failed to authenticate'* || $line == *'login rejected'* ]] && return 0
    done <"$CHAP_ISCSID_LOG"
    return 1
  fi
  if [[ -d /run/systemd/system ]] && command -v journalctl >/dev/null; then
    journalctl --since=-2min --no-pager -o cat _COMM=iscsid 2>/dev/null \
      | grep -q -e 'Login failed to authenticate' -e 'login rejected'
    return
  fi
  log "no iscsid log to read: treating the failed session of $target as a possible authentication failure"
  return 0
}

declare -A FAILED_SINCE=() NEXT_TRY=()
check_once() {
  local session state target since next now=$SECONDS
  find_scripts
  for session in "$CHAP_SESSIONS_DIR"/session*; do
    [[ -r $session/state && -r $session/targetname ]] || continue
    read -r state <"$session/state"
    read -r target <"$session/targetname"
    [[ -n ${SCRIPT_OF[$target]:-} ]] || continue
    if [[ $state != FAILED ]]; then
      unset "FAILED_SINCE[$target]"
      continue
    fi
    : "${FAILED_SINCE[$target]:=$now}"
    since=${FAILED_SINCE[$target]}
    next=${NEXT_TRY[$target]:-0}
    ((now - since >= CHAP_AGENT_CONFIRM && now >= next)) || continue
    auth_failed "$target" || continue
    log "the session to $target failed to authenticate: logging in again with the stored credentials"
    if bash "${SCRIPT_OF[$target]}" --relogin; then
      unset "FAILED_SINCE[$target]" "NEXT_TRY[$target]"
    else
      NEXT_TRY[$target]=$((now + CHAP_AGENT_BACKOFF))
      log "logging in again to $target failed; next try in $CHAP_AGENT_BACKOFF s"
    fi
  done
}

passes=0
while :; do
  check_once
  passes=$((passes + 1))
  ((CHAP_AGENT_PASSES > 0 && passes >= CHAP_AGENT_PASSES)) && break
  sleep "$CHAP_AGENT_INTERVAL"
done
