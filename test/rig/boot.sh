# shellcheck shell=sh
# Sourced by the guest's /init (busybox sh) from the job disk, which test/rig/guest.ts writes: places the job's files,
# runs the job under bash, and writes what the job brings back, with its exit code, to the second disk.
if [ -d /rig/in/files ]; then cp -a /rig/in/files/. / && rm -rf /rig/in/files || echo "rig: placing the job files failed"; fi
cp /rig/in/lib.sh /rig/lib.sh
mkdir -p /rig/out /rig/log
echo '@@rig-job-begin@@'
bash /rig/in/job.sh </dev/null
rc=$?
echo "@@rig-job-end $rc@@"
echo "$rc" >/rig/out/.exit-code
while IFS= read -r wanted; do
  [ -n "$wanted" ] || continue
  if [ -e "$wanted" ]; then
    mkdir -p "/rig/out/files$(dirname "$wanted")" && cp "$wanted" "/rig/out/files$wanted"
  else
    echo "rig: the job did not leave $wanted"
  fi
done </rig/in/bring
tar -cf /dev/vdb -C /rig/out . && sync
echo '@@rig-out-written@@'
