/**
 * The iSCSI rig itself (test/rig/guest.ts): open-iscsi logs in to tgt with mutual CHAP, set up with plain iscsiadm
 * commands, and the LUN reads; open-iscsi refuses the logins it must refuse, with the exit codes the wiring relies
 * on; the live session's values are in sysfs. One boot runs every scenario.
 */
import { GuestResult, runGuest } from './rig/guest';
import { secretValue } from './fixtures';

jest.setTimeout(300_000);

const TARGET = 'iqn.1997-05.com.amazon:myvolume';
const HOST = 'iqn.1994-05.com.redhat:host-b';
const initiatorSecret = secretValue();
const targetSecret = secretValue();

// Plain iscsiadm commands, as an administrator would type them (the rig's own check: secrets in argv are fine here).
const script = String.raw`
set -u
echo "InitiatorName=${HOST}" >/etc/iscsi/initiatorname.iscsi
rig_tgtd && rig_target 1 ${TARGET} || exit 90
rig_incoming 1 ${HOST} '${initiatorSecret}' && rig_outgoing 1 ${TARGET} '${targetSecret}' || exit 91
rig_iscsid_start || exit 92
iscsiadm -m discovery -t sendtargets -p "$RIG_PORTAL" >/dev/null || exit 93
node() { iscsiadm -m node -T ${TARGET} -p "$RIG_PORTAL" --op update -n "$1" -v "$2"; }
# login SCENARIO INITIATOR_SECRET TARGET_SECRET: logs in, records the exit code, logs out again.
login() {
  node node.session.auth.authmethod CHAP
  node node.session.auth.username ${HOST}
  node node.session.auth.password "$2"
  node node.session.auth.username_in ${TARGET}
  node node.session.auth.password_in "$3"
  iscsiadm -m node -T ${TARGET} -p "$RIG_PORTAL" --login >/dev/null 2>&1
  rig_check "$1.login" "$?"
}
login mutual '${initiatorSecret}' '${targetSecret}'
rig_lun_reads ${TARGET}; rig_check mutual.lun "$?"
s=$(rig_session ${TARGET})
for f in state targetname recovery_tmo username username_in; do rig_check "sysfs.$f" "$(cat "$s/$f")"; done
rig_check sysfs.password-is-initiator-secret "$([ "$(cat "$s/password")" = '${initiatorSecret}' ] && echo yes || echo no)"
rig_check sysfs.password_in-is-target-secret "$([ "$(cat "$s/password_in")" = '${targetSecret}' ] && echo yes || echo no)"
iscsiadm -m node -T ${TARGET} -p "$RIG_PORTAL" --logout >/dev/null; rig_check mutual.logout "$?"
login swapped '${targetSecret}' '${initiatorSecret}'
login wrong-target-secret '${initiatorSecret}' '${secretValue()}'
rig_check sessions-left "$(ls -d /sys/class/iscsi_session/session* 2>/dev/null | wc -l)"
exit 0
`;

let result: GuestResult;

beforeAll(async () => {
  result = await runGuest({ script });
});

test('a mutual-CHAP login with plain iscsiadm commands succeeds and the LUN reads', () => {
  expect(result.exitCode).toBe(0);
  expect(result.checks).toMatchObject({ 'mutual.login': '0', 'mutual.lun': '0', 'mutual.logout': '0' });
});

test('the live session\'s values are readable in /sys/class/iscsi_session', () => {
  expect(result.checks).toMatchObject({
    'sysfs.state': 'LOGGED_IN', 'sysfs.targetname': TARGET, 'sysfs.recovery_tmo': '120',
    'sysfs.username': HOST, 'sysfs.username_in': TARGET,
    'sysfs.password-is-initiator-secret': 'yes', 'sysfs.password_in-is-target-secret': 'yes',
  });
});

test('swapped secrets fail with exit 24 (authorization failure), a wrong target secret with exit 19 (non-retryable)', () => {
  expect(result.checks['swapped.login']).toBe('24');
  expect(result.checks['wrong-target-secret.login']).toBe('19');
  expect(result.checks['sessions-left']).toBe('0');
});
