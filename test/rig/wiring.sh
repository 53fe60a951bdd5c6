# shellcheck shell=bash
# Guest side of test/rig-wiring.test.ts, sourced after /rig/lib.sh: runs the commands `wireHost` rendered as user
# data runs them (a bash script), against tgt configured as the emulated gateway holds the pairs. The test's files
# are in /rig/wiring: ANSWERS files for the stand-in `aws`, PATTERNS files (the values no file may hold).

USERDATA=/var/lib/cloud/instance/scripts

# wiring_serve ANSWERS: from now on the stand-in aws answers from /rig/wiring/ANSWERS, whose NOT-BEFORE fields are
# seconds from now; the stand-in reads a root-only copy (the test's "Secrets Manager").
wiring_serve() {
  local now
  now=$(date +%s)
  mkdir -p /etc/rig-aws && chmod 700 /etc/rig-aws
  (umask 077 && awk -v now="$now" '{ $4 = now + $4; print }' "/rig/wiring/$1" >/etc/rig-aws/secrets)
}

# wiring_run SCRIPT CHECK SECONDS [strace]: runs user data script SCRIPT under bash, in a session of its own, and
# reports its exit code as CHECK.exit; after SECONDS stops that session, says so, and reports 124. With strace, every
# execve of the script and its children goes to /rig/log/CHECK.strace; strace lets go of the daemons the script
# started (iscsid) once the script ended.
wiring_run() {
  local script=$1 check=$2 seconds=$3 rc="/rig/log/$2.rc" pid deadline
  local -a tracer=()
  [ "${4:-}" = strace ] && tracer=(strace -f -e trace=execve -s 65535 -o "/rig/log/$check.strace")
  echo "rig: running user data $script ($check)"
  rm -f "$rc"
  # shellcheck disable=SC2016 # $1 and $2 are the inner bash's arguments
  setsid "${tracer[@]}" bash -c 'bash "$1"; echo "$?" >"$2"' wiring "$USERDATA/$script" "$rc" &
  pid=$!
  deadline=$(($(date +%s) + seconds))
  until [ -s "$rc" ]; do
    if (($(date +%s) >= deadline)); then
      echo "rig: user data $script still running after ${seconds}s, stopped"
      kill -TERM -- "-$pid" 2>/dev/null
      sleep 1
      kill -KILL -- "-$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
      rig_check "$check.exit" 124
      return
    fi
    sleep 0.2
  done
  # strace waits for every traced process, daemons included, and ignores SIGTERM while they run: it is killed, and
  # the kernel detaches the tracees (iscsid), which run on.
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  rig_check "$check.exit" "$(cat "$rc")"
}

# wiring_state IQN: the state of the live session to IQN, or none.
wiring_state() {
  local s
  if s=$(rig_session "$1"); then cat "$s/state"; else echo none; fi
}

# wiring_scan CHECK PATTERNS: every file holding one of the values in /rig/wiring/PATTERNS, with its mode, as
# CHECK.files ("path:mode path:mode"); /proc, /sys, /dev, the harness's /rig and the stand-in's answers are not
# the host's files.
wiring_scan() {
  local hits f
  hits=$(find / \( -path /proc -o -path /sys -o -path /dev -o -path /rig -o -path /etc/rig-aws \) -prune -o -type f -print |
    while read -r f; do
      if grep -qF -f "/rig/wiring/$2" "$f" 2>/dev/null; then printf '%s:%s ' "$f" "$(stat -c %a "$f")"; fi
    done)
  rig_check "$1.files" "${hits% }"
}

# wiring_sysfs CHECK IQN: the live session's recovery timeout and its connection's noop timers (ping_tmo is
# noop_out_timeout, recv_tmo noop_out_interval), as CHECK.recovery_tmo, CHECK.ping_tmo, CHECK.recv_tmo.
wiring_sysfs() {
  local s c
  s=$(rig_session "$2") || { rig_check "$1.recovery_tmo" none; return 1; }
  rig_check "$1.recovery_tmo" "$(cat "$s/recovery_tmo")"
  for c in "/sys/class/iscsi_connection/connection${s##*session}:"*; do
    rig_check "$1.ping_tmo" "$(cat "$c/ping_tmo")"
    rig_check "$1.recv_tmo" "$(cat "$c/recv_tmo")"
  done
}

# wiring_forget: logs every session out and forgets every node and discovery record, as a fresh host.
wiring_forget() {
  rig_logout_all
  rm -rf /etc/iscsi/nodes/* /etc/iscsi/send_targets/*
}

# wiring_reboot: what a reboot does to the initiator: sessions end, iscsid starts again (with setsid), and the
# distributions' iscsi service logs in the nodes marked automatic.
wiring_reboot() {
  iscsiadm -m session -u >/dev/null 2>&1
  rig_iscsid_stop
  rig_iscsid_start || return 1
  iscsiadm -m node --loginall=automatic
}
