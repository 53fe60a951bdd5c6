# shellcheck shell=bash
# Guest side of test/rig-rotation.test.ts, sourced after /rig/lib.sh and /rig/wiring.sh: a host wired to a rotating
# construct, a filesystem on its volume under a write-and-fsync probe, and the gateway's side of a rotation mirrored
# into tgt (its accounts changed, its connections closed, as UpdateChapCredentials does).

# rotation_host_daemons: what a stock host runs before its user data: udevd (multipathd learns of disks through it)
# and a syslog daemon (where iscsid logs when there is no journal).
rotation_host_daemons() {
  syslogd -O /var/log/messages || return 1
  /lib/systemd/systemd-udevd --daemon >/dev/null 2>&1 || return 1
  udevadm trigger --action=add && udevadm settle -t 15
}

# rotation_accounts TID INITIATOR INITIATOR-SECRET TARGET-IQN TARGET-SECRET: the target's accounts as the gateway holds
# them now (the harness's commands; the wired host's commands never hold a secret).
rotation_accounts() {
  rig_drop_account "$2" >/dev/null 2>&1
  rig_drop_account "$4" >/dev/null 2>&1
  rig_incoming "$1" "$2" "$3" && rig_outgoing "$1" "$4" "$5"
}

# rotation_calls: how many times the host called Secrets Manager so far (the stand-in aws counts them).
rotation_calls() {
  if [ -f /rig/log/aws.calls ]; then wc -l </rig/log/aws.calls; else echo 0; fi
}

# rotation_session_uses IQN INITIATOR-SHA TARGET-SHA: the live session to IQN is logged in with the secrets whose
# sha256 sums are given (read from the session's root-only sysfs files; the values never reach a command).
rotation_session_uses() {
  local s password password_in
  s=$(rig_session "$1") || return 1
  [ "$(cat "$s/state")" = LOGGED_IN ] || return 1
  read -r password <"$s/password" || return 1
  read -r password_in <"$s/password_in" || return 1
  [ "$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)" = "$2" ] &&
    [ "$(printf '%s' "$password_in" | sha256sum | cut -d' ' -f1)" = "$3" ]
}

# rotation_probe_start FILE: every 0.5 s, writes the next 4 KiB block of FILE and fsyncs it; each write's number,
# duration (ms), outcome and start (microseconds since the epoch) go to /rig/log/probe.
rotation_probe_start() {
  rm -f /rig/log/probe /rig/probe.stop
  (
    n=0
    while [ ! -e /rig/probe.stop ]; do
      t0=${EPOCHREALTIME/./}
      if printf '%-4095s\n' "probe $n" | dd of="$1" bs=4096 seek="$n" conv=fsync,notrunc 2>>/rig/log/probe.err >/dev/null; then
        outcome=ok
      else
        outcome=error
      fi
      t1=${EPOCHREALTIME/./}
      echo "$n $(((t1 - t0) / 1000)) $outcome $t0" >>/rig/log/probe
      n=$((n + 1))
      sleep 0.5
    done
  ) &
  PROBE_PID=$!
}

# rotation_probe_stop PREFIX: stops the probe; reports PREFIX.writes, PREFIX.errors and PREFIX.longest_ms.
rotation_probe_stop() {
  touch /rig/probe.stop
  wait "$PROBE_PID"
  rig_check "$1.writes" "$(wc -l </rig/log/probe)"
  rig_check "$1.errors" "$(awk '$3 != "ok"' /rig/log/probe | wc -l)"
  rig_check "$1.longest_ms" "$(sort -k2 -n /rig/log/probe | tail -1 | cut -d' ' -f2)"
}

# rotation_kernel_errors PREFIX: what the kernel said about IO since boot: errors on the multipath device (what the
# filesystem sees), ext4 errors, and errors on the paths (sdX: expected when a session ends; multipath retries them).
rotation_kernel_errors() {
  dmesg >/rig/log/dmesg
  rig_check "$1.dm_io_errors" "$(grep -cE 'I/O error, dev dm-|Buffer I/O error on dev dm-' /rig/log/dmesg)"
  rig_check "$1.ext4_errors" "$(grep -cE 'EXT4-fs (error|warning)|Remounting filesystem read-only|Aborting journal' /rig/log/dmesg)"
  rig_check "$1.path_io_errors" "$(grep -cE 'I/O error, dev sd' /rig/log/dmesg)"
}

# rotation_agent_pid: the agent the connect script started (no systemd in the guest: it says so and starts it itself).
rotation_agent_pid() { cat /var/lib/cdk-chap-credentials/agent-*.pid 2>/dev/null; }

# rotation_power_off MOUNT-POINT: what shutting the host down does: the agent stops, the filesystem is unmounted, the
# session ends, iscsid and multipathd stop, the multipath map goes.
rotation_power_off() {
  local pid
  pid=$(rotation_agent_pid) && kill "$pid" 2>/dev/null
  umount "$1" || return 1
  rig_logout_all
  multipath -F >/dev/null 2>&1
  multipathd shutdown >/dev/null 2>&1
  rig_iscsid_stop
  rig_wait 15 'multipathd to stop' sh -c '! pidof multipathd'
}

# rotation_power_on SCRIPT: what booting the host does: multipathd and iscsid start, the distribution's service logs in
# the automatic nodes (with the record's credentials), fstab's _netdev mounts are tried (nofail), and the agent's unit
# starts (ExecStart: bash SCRIPT --agent), traced to /rig/log/boot-agent.strace.
rotation_power_on() {
  multipathd || return 1
  rig_iscsid_start || return 1
  iscsiadm -m node --loginall=automatic >/rig/log/boot-login.out 2>&1
  rig_check boot.automatic_login "$?"
  mount -a -O _netdev >/rig/log/boot-mount.out 2>&1
  rig_check boot.fstab_mount "$?"
  setsid strace -f -e trace=execve -s 65535 -o /rig/log/boot-agent.strace bash "$1" --agent </dev/null >>/rig/log/boot-agent.log 2>&1 &
  BOOT_AGENT=$!
}

# rotation_agents: the process ids of every agent (bash running a connect script with --agent).
rotation_agents() {
  local cmdline
  for cmdline in /proc/[0-9]*/cmdline; do
    if tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -q '^bash .*/connect-[0-9a-f]*\.sh --agent $'; then
      cmdline=${cmdline#/proc/}
      echo "${cmdline%/cmdline}"
    fi
  done
}

# rotation_agents_stop: stops every agent (and the tracer of the one the boot started).
rotation_agents_stop() {
  local pid
  [ -n "${BOOT_AGENT:-}" ] && kill -KILL "$BOOT_AGENT" 2>/dev/null
  for pid in $(rotation_agents); do kill "$pid"; done
  rig_wait 10 'the agents to stop' rotation_no_agent
}
rotation_no_agent() { [ -z "$(rotation_agents)" ]; }
