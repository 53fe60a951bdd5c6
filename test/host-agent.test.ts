/**
 * The rotation agent (lib/host/chap-agent.sh), run with a sysfs of its own (session state files the test writes), a
 * folder of connect scripts whose stand-in records `--relogin`, and an iscsid log file: it acts only on a session of a
 * wired target that stayed FAILED for the confirmation window and whose login failed to authenticate, and otherwise
 * runs nothing (no AWS call: only the connect script reads secrets). Not yet rendered by wireHost.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const AGENT = path.join(__dirname, '..', 'lib', 'host', 'chap-agent.sh');
const TARGET = 'iqn.1997-05.com.amazon:myvolume';

interface AgentRun { readonly relogins: string[]; readonly output: string }

function runAgent(sessions: Record<string, { state: string; target: string }>, options: {
  log?: string; passes?: number; confirm?: number; reloginFails?: boolean;
} = {}): AgentRun {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chap-agent-'));
  try {
    const sys = path.join(dir, 'sys');
    for (const [name, s] of Object.entries(sessions)) {
      fs.mkdirSync(path.join(sys, name), { recursive: true });
      fs.writeFileSync(path.join(sys, name, 'state'), `${s.state}\n`);
      fs.writeFileSync(path.join(sys, name, 'targetname'), `${s.target}\n`);
    }
    const scripts = path.join(dir, 'scripts');
    fs.mkdirSync(scripts);
    // A connect script as wireHost writes it, reduced to its values line and a recorder.
    fs.writeFileSync(path.join(scripts, 'connect-0123456789ab.sh'), [
      '#!/bin/bash', `CHAP_TARGET_ARN='arn:aws:storagegateway:us-east-1:111122223333:gateway/sgw-12A3456B/target/${TARGET}'`,
      `echo "$0 $*" >> '${dir}/relogins'`, options.reloginFails ? 'exit 1' : 'exit 0', '',
    ].join('\n'));
    const logFile = path.join(dir, 'iscsid.log');
    fs.writeFileSync(logFile, options.log ?? '');
    const result = spawnSync('bash', [AGENT], {
      encoding: 'utf8', timeout: 30_000,
      env: {
        PATH: process.env.PATH, CHAP_SESSIONS_DIR: sys, CHAP_SCRIPTS_DIR: scripts, CHAP_ISCSID_LOG: logFile,
        CHAP_AGENT_INTERVAL: '0.3', CHAP_AGENT_CONFIRM: String(options.confirm ?? 0), CHAP_AGENT_PASSES: String(options.passes ?? 3),
        CHAP_AGENT_BACKOFF: '60',
      },
    });
    expect(result.status).toBe(0);
    const relogins = fs.existsSync(path.join(dir, 'relogins')) ? fs.readFileSync(path.join(dir, 'relogins'), 'utf8').split('\n').filter(Boolean) : [];
    return { relogins, output: result.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const AUTH_FAILED = `iscsid: Login failed to authenticate with target ${TARGET}\niscsid: session1 login rejected: Initiator failed authentication with target\n`;

test('a healthy session: nothing runs', () => {
  expect(runAgent({ session1: { state: 'LOGGED_IN', target: TARGET } }, { log: AUTH_FAILED }).relogins).toEqual([]);
});

test('a wired target\'s session FAILED on authentication: its connect script runs --relogin, once', () => {
  const run = runAgent({ session1: { state: 'FAILED', target: TARGET } }, { log: AUTH_FAILED, passes: 1 });
  expect(run.relogins).toEqual([expect.stringMatching(/\/connect-0123456789ab\.sh --relogin$/)]);
  expect(run.output).toContain(`cdk-chap-credentials agent: the session to ${TARGET} failed to authenticate: logging in again with the stored credentials`);
});

test('no relogin for a failure that is not authentication, a target not wired here, or a failure shorter than the window', () => {
  expect(runAgent({ session1: { state: 'FAILED', target: TARGET } }, { log: 'iscsid: connect to 10.0.0.10:3260 failed (No route to host)\n' }).relogins).toEqual([]);
  expect(runAgent({ session1: { state: 'FAILED', target: 'iqn.2000-01.com.example:other' } }, { log: AUTH_FAILED }).relogins).toEqual([]);
  expect(runAgent({ session1: { state: 'FAILED', target: TARGET } }, { log: AUTH_FAILED, confirm: 30, passes: 2 }).relogins).toEqual([]);
});

test('a relogin that fails is not retried before the backoff', () => {
  const run = runAgent({ session1: { state: 'FAILED', target: TARGET } }, { log: AUTH_FAILED, passes: 3, reloginFails: true });
  expect(run.relogins).toHaveLength(1);
  expect(run.output).toContain(`logging in again to ${TARGET} failed; next try in 60 s`);
});

test('the agent is ShellCheck-clean', () => {
  expect(execFileSync('shellcheck', ['--severity=style', AGENT], { encoding: 'utf8' })).toBe('');
});
