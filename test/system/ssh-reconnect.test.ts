// A host's master connection on its way out (its ssh process still running, its control socket
// already gone, as after a dropped link) when the next connection is asked for: before, connect()
// threw INTERNAL "already connected", which a stale-process check after the switch reported as
// "host2: stale-process check not made: already connected". It now waits for the old master to
// go and connects afresh, so the caller hears how the new connection went.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { DeployError } from '../../src/errors.ts';
import { SshHost } from '../../src/remote/ssh.ts';
import { findTools } from '../harness/fleet.ts';

void test('a master whose control socket is gone is replaced: the new connection\'s own error, not "already connected"', async (t) => {
  findTools(['ssh'] as const);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssh-reconnect-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  // Port 1 on loopback: nothing listens, so the new connection is refused at once.
  const host = new SshHost('host2', { host: '127.0.0.1', port: 1 }, { connectTimeoutS: 2 }, path.join(dir, 'control.sock'));
  const old = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => old.kill('SIGKILL'));
  (host as unknown as { master: ChildProcess }).master = old;
  assert.equal(host.up, false, 'no socket: the master is not up for clients');
  const error = await host.connect('true').then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(error instanceof DeployError, String(error));
  assert.equal(error.code, 'REMOTE', error.message);
  assert.match(error.message, /^cannot connect to host2: /);
  assert.ok(old.exitCode !== null || old.signalCode !== null, 'the old master was left running');
});
