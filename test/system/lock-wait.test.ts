// Whom a command waits for, and what status calls a deploy in progress: `--wait` names the lock's
// holder before it waits, and `status` tells a deploy whose holder is alive (running) from one
// whose holder died (interrupted). The interrupted case is the control for the running one.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { jsonOf, runCli, spawnCli, tempDir, writeTree } from '../harness/cli.ts';

interface StatusJson {
  running: string | null;
  leftovers: string[];
  recovered: string[];
  lock: { pid: number | null; state: string } | null;
}

async function root(t: { after(fn: () => void): void }): Promise<{ src: string; root: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const r = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, r, '--no-fsync', '--quiet'])).code, 0);
  return { src, root: r };
}

async function untilExists(file: string): Promise<void> {
  while (!fs.existsSync(file)) await sleep(20);
}

void test('--wait says whom it waits for (pid, user@host, since, command), then deploys once the lock is free', async (t) => {
  const { src, root: r } = await root(t);
  const holder = spawnCli(['deploy', src, r, '--no-fsync', '--quiet'], { failpoints: 'journal-written=sleep:3000' });
  await untilExists(path.join(r, '.atomic-deploy', 'journal.json'));
  const waiter = await runCli(['deploy', src, r, '--no-fsync', '--wait', '60']);
  assert.equal(waiter.code, 0, waiter.stderr);
  const pid = holder.child.pid;
  assert.match(waiter.stdout, new RegExp(`^› waiting up to 60 s for the lock of ${r.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, held by pid ${pid} of \\S+@\\S+ since \\S+ \\(deploy ${src.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)$`, 'm'));
  assert.equal((await holder.done).code, 0);
  // With --json nothing but the one object reaches stdout; --quiet prints nothing.
  const h2 = spawnCli(['deploy', src, r, '--no-fsync', '--quiet'], { failpoints: 'journal-written=sleep:2000' });
  await untilExists(path.join(r, '.atomic-deploy', 'journal.json'));
  const quiet = await runCli(['deploy', src, r, '--no-fsync', '--wait', '60', '--quiet']);
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stdout, '');
  assert.equal((await h2.done).code, 0);
});

void test('status calls a deploy whose lock holder is alive running, and one whose holder died interrupted', async (t) => {
  const { src, root: r } = await root(t);
  const journal = path.join(r, '.atomic-deploy', 'journal.json');
  const live = spawnCli(['deploy', src, r, '--no-fsync', '--quiet'], { failpoints: 'journal-written=sleep:3000' });
  await untilExists(journal);
  const during = await runCli(['status', r, '--json']);
  assert.equal(during.code, 0, during.stderr);
  const running = jsonOf<StatusJson>(during);
  assert.match(running.running ?? '', /^deploy of release \S+ \(phase copying\)$/);
  assert.deepEqual(running.leftovers, []);
  assert.deepEqual(running.recovered, []);
  assert.equal(running.lock?.pid, live.child.pid);
  assert.match((await runCli(['status', r])).stdout, /^running: deploy of release \S+ \(phase copying\)$/m);
  assert.equal((await live.done).code, 0);

  // The control: the same phase, but the holder was killed there.
  const dead = await runCli(['deploy', src, r, '--no-fsync', '--quiet'], { failpoints: 'journal-written=crash' });
  assert.notEqual(dead.code, 0);
  assert.ok(fs.existsSync(journal));
  const after = jsonOf<StatusJson>(await runCli(['status', r, '--json', '--read-only']));
  assert.equal(after.running, null);
  assert.ok(after.leftovers.some((l) => /^journal of an interrupted deploy of release \S+ \(phase copying\)$/.test(l)), after.leftovers.join('; '));
  const human = await runCli(['status', r, '--read-only']);
  assert.doesNotMatch(human.stdout, /^running:/m);
  assert.match(human.stdout, /^leftover: journal of an interrupted deploy/m);
});
