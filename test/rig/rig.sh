# shellcheck shell=bash
# Guest-side helpers of the iSCSI rig, at /rig/lib.sh in the guest (test/rig/guest.ts). The target (tgt) and the
# initiator (open-iscsi) talk over the guest's own 127.0.0.1. Every wait is bounded and says what it waited for.
# The harness's own logs go to /rig/log; /rig is the harness's, not the host's.

RIG_PORTAL=127.0.0.1:3260

# rig_check NAME VALUE: a result line the test reads (test/rig/guest.ts `checks`).
rig_check() { printf '@@rig-check %s=%s@@\n' "$1" "$2"; }

# rig_wait SECONDS WHAT COMMAND...: runs COMMAND every 0.2 s until it succeeds; after SECONDS fails, naming WHAT.
rig_wait() {
  local seconds=$1 what=$2 deadline
  shift 2
  deadline=$(($(date +%s) + seconds))
  until "$@" >/dev/null 2>&1; do
    if (($(date +%s) >= deadline)); then
      echo "rig: timed out after ${seconds}s waiting for $what"
      return 1
    fi
    sleep 0.2
  done
}

# rig_tgtd: starts the target daemon on 127.0.0.1:3260.
rig_tgtd() {
  setsid tgtd -f --iscsi portal="$RIG_PORTAL" >>/rig/log/tgtd.log 2>&1 &
  rig_wait 15 'tgtd to answer' tgtadm --lld iscsi --op show --mode sys
}

# rig_target TID IQN [SIZE_MB]: a target with one LUN, a disk image whose first sector names the target, with a
# pinned WWID (scsi_id rig-TID), open to initiators on 127.0.0.1.
rig_target() {
  local tid=$1 iqn=$2 size=${3:-16} image="/rig/lun$1.img"
  dd if=/dev/zero of="$image" bs=1M count=0 seek="$size" 2>/dev/null
  printf 'RIG-LUN %s\n' "$iqn" | dd of="$image" conv=notrunc 2>/dev/null
  tgtadm --lld iscsi --op new --mode target --tid "$tid" -T "$iqn" &&
    tgtadm --lld iscsi --op new --mode logicalunit --tid "$tid" --lun 1 -b "$image" &&
    tgtadm --lld iscsi --op update --mode logicalunit --tid "$tid" --lun 1 --params "scsi_id=rig-$tid,scsi_sn=rig$tid" &&
    tgtadm --lld iscsi --op bind --mode target --tid "$tid" -I 127.0.0.1
}

# rig_incoming TID USER PASSWORD: the account an initiator logs in with (the gateway's SecretToAuthenticateInitiator).
rig_incoming() {
  tgtadm --lld iscsi --op new --mode account --user "$2" --password "$3" &&
    tgtadm --lld iscsi --op bind --mode account --tid "$1" --user "$2"
}

# rig_outgoing TID USER PASSWORD: the account the target answers with (mutual CHAP: SecretToAuthenticateTarget).
rig_outgoing() {
  tgtadm --lld iscsi --op new --mode account --user "$2" --password "$3" &&
    tgtadm --lld iscsi --op bind --mode account --tid "$1" --user "$2" --outgoing
}

# rig_drop_account USER: removes an account (and its bindings).
rig_drop_account() { tgtadm --lld iscsi --op delete --mode account --user "$1"; }

# rig_close_connections TID: closes every connection of a target's sessions, as UpdateChapCredentials does.
rig_close_connections() {
  local sid cid
  tgtadm --lld iscsi --op show --mode conn --tid "$1" | awk '/Session:/ { s = $2 } /Connection:/ { print s, $2 }' |
    while read -r sid cid; do tgtadm --lld iscsi --op delete --mode conn --tid "$1" --sid "$sid" --cid "$cid"; done
}

# rig_iscsid_up: true when iscsid answers iscsiadm (its abstract socket is bound).
rig_iscsid_up() { grep -q '@ISCSIADM_ABSTRACT_NAMESPACE' /proc/net/unix; }

# rig_iscsid_start: starts iscsid in a session of its own (its SIGTERM handler kills its whole process group).
rig_iscsid_start() {
  setsid iscsid >>/rig/log/iscsid.log 2>&1
  rig_wait 15 'iscsid to answer' rig_iscsid_up
}

# rig_iscsid_stop: stops iscsid and waits until it is gone.
rig_iscsid_stop() {
  local pid
  pid=$(cat /run/iscsid.pid 2>/dev/null) || pid=$(pidof iscsid)
  [ -n "$pid" ] || return 0
  kill "$pid"
  rig_wait 15 'iscsid to stop' sh -c "! kill -0 $pid"
  rm -f /run/iscsid.pid
}

# rig_session IQN: the sysfs folder of the live session to target IQN (none: fails).
rig_session() {
  local s
  for s in /sys/class/iscsi_session/session*; do
    [ "$(cat "$s/targetname" 2>/dev/null)" = "$1" ] && echo "$s" && return 0
  done
  return 1
}

# rig_disk IQN: the block device of the session's LUN, once the kernel made it (/dev/sdX).
rig_disk() {
  local s b
  s=$(rig_session "$1") || return 1
  for b in "$s"/device/target*/*/block/*; do
    [ -b "/dev/${b##*/}" ] && echo "/dev/${b##*/}" && return 0
  done
  return 1
}

# rig_lun_reads IQN: waits (bounded) for the session's disk and reads its first sector, which must name IQN.
rig_lun_reads() {
  rig_wait 20 "the LUN of $1 to appear" rig_disk "$1" || return 1
  dd if="$(rig_disk "$1")" bs=512 count=1 2>/dev/null | grep -q "RIG-LUN $1"
}

# rig_logout_all: logs out every session (quietly; none is fine).
rig_logout_all() { iscsiadm -m node --logoutall=all >/dev/null 2>&1 || true; }
