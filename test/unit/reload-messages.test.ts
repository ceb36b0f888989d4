// Messages that reach a person: a hung `systemctl show` is said to be one (not Node's
// `Command failed: ...` text), and a host's table note keeps the host named inside its message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { unitLoadState } from '../../src/act/reload.ts';
import { withoutHost } from '../../src/cli/render.ts';

function standIn(t: { after(fn: () => void): void }, script: string): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'systemctl-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'systemctl'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  const saved = process.env.PATH;
  process.env.PATH = `${dir}:${saved ?? ''}`;
  t.after(() => (process.env.PATH = saved));
}

void test('systemctl show that hangs, fails silently or says why: one plain reason each', async (t) => {
  standIn(t, 'case "$SYSTEMCTL_MODE" in hang) exec sleep 30 ;; quiet) exit 3 ;; said) echo "Failed to connect to bus: No such file or directory" >&2; exit 1 ;; *) echo loaded ;; esac');
  const run = (mode: string, timeoutMs = 5_000): Promise<{ state: string } | { problem: string } | { interrupted: true }> => {
    process.env.SYSTEMCTL_MODE = mode;
    return unitLoadState('app.service', timeoutMs).finally(() => delete process.env.SYSTEMCTL_MODE);
  };
  assert.deepEqual(await run('hang', 300), { problem: 'systemctl show did not answer within 0.3 s' });
  assert.deepEqual(await run('quiet'), { problem: 'systemctl exited with code 3' });
  assert.deepEqual(await run('said'), { problem: 'Failed to connect to bus: No such file or directory' });
  assert.deepEqual(await run('ok'), { state: 'loaded' });
  // A signal ends a question systemd does not answer at once, not at the timeout.
  const controller = new AbortController();
  process.env.SYSTEMCTL_MODE = 'hang';
  const asked = unitLoadState('app.service', 5_000, controller.signal).finally(() => delete process.env.SYSTEMCTL_MODE);
  setTimeout(() => controller.abort('SIGINT'), 200);
  const started = Date.now();
  assert.deepEqual(await asked, { interrupted: true });
  assert.ok(Date.now() - started < 2_000, `answered ${Date.now() - started} ms after the signal`);
});

void test('a table note drops only the leading host name', () => {
  assert.equal(withoutHost('host9: cannot connect to host9: ssh: Could not resolve hostname host9', 'host9'), 'cannot connect to host9: ssh: Could not resolve hostname host9');
  assert.equal(withoutHost('cannot connect to host9: ssh: Could not resolve hostname host9', 'host9'), 'cannot connect to host9: ssh: Could not resolve hostname host9');
  assert.equal(withoutHost('web1: rsync is not installed there', 'web1'), 'rsync is not installed there');
});
