// Which timeouts a fleet command adds to ssh: ours wherever the user's ssh config sets none, read
// from the system's `ssh -G` (Debian's OpenSSH reports ServerAliveInterval 300 for a BatchMode
// config that sets none: that is no choice of the user's, and a dead host hung a deploy 15 min).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { sshTimeoutArgs } from '../../src/remote/ssh.ts';
import { requireTools } from '../harness/faults.ts';

const OURS_ALIVE = ['-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3'];

function config(t: { after(fn: () => void): void }, lines: string[]): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ssh-timeouts-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ssh_config');
  fs.writeFileSync(file, ['Host web1', '  HostName 127.0.0.1', ...lines.map((l) => `  ${l}`), ''].join('\n'));
  return file;
}

void test('a config that sets no timeouts gets ours, BatchMode or not', async (t) => {
  requireTools('ssh');
  for (const lines of [[], ['BatchMode yes']]) {
    const args = await sshTimeoutArgs(['-F', config(t, lines), 'web1'], 10);
    assert.deepEqual(args, ['-o', 'ConnectTimeout=10', ...OURS_ALIVE], lines.join());
  }
});

void test("the user's own values stay, whatever they are", async (t) => {
  requireTools('ssh');
  const args = await sshTimeoutArgs(['-F', config(t, ['BatchMode yes', 'ServerAliveInterval 300', 'ConnectTimeout 4']), 'web1'], 10);
  assert.deepEqual(args, []);
  const some = await sshTimeoutArgs(['-F', config(t, ['ServerAliveInterval 20']), 'web1'], 7);
  assert.deepEqual(some, ['-o', 'ConnectTimeout=7']);
});
