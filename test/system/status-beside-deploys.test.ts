// `status` polled beside deploys (a dashboard, a health endpoint) must not make them fail. It takes
// the lock only to clean up after a killed command, and it used to take for such leftovers what a
// live process was still deleting: a prune's retired releases (deleted after its lock, so that the
// next deploy need not wait) and a lock being released. It then held the lock for that delete, said
// it had "removed" them, and a deploy started meanwhile exited 3.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { scratchOwnerText } from '../../src/act/scratch.ts';
import { currentId, jsonOf, runCli, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { startTicks, writeOwnerLock } from '../harness/faults.ts';

interface StatusJson {
  leftovers: string[];
  recovered: string[];
}

function sleeper(t: { after(fn: () => void): void }): number {
  const child = spawn('sleep', ['300'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  return child.pid as number;
}

const bootId = (): string => fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

async function gone(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100 && fs.existsSync(`/proc/${pid}`) && !/^\S+ \(\S+\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8')); i++) await new Promise((r) => setTimeout(r, 20));
}

void test("a retired release a live process is deleting is not status's leftover; once that process is gone, it is", async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '-q'])).code, 0);
  // As a prune leaves it once its lock is released: the tree in .tmp/, claimed by its deleter.
  const trash = writeTree(path.join(root, '.tmp', 'trash.r0.0123456789ab'), { 'a.txt': 'a\n', 'd/b.txt': 'b\n' });
  const deleter = sleeper(t);
  const owner = { pid: deleter, host: (await import('node:os')).hostname(), startTime: startTicks(deleter), bootId: bootId() };
  fs.symlinkSync(scratchOwnerText(owner, fs.readlinkSync('/proc/self/ns/pid')), path.join(root, '.tmp', 'deleting.trash.r0.0123456789ab'));

  const busy = await runCli(['status', root, '--json']);
  assert.equal(busy.code, 0, busy.stderr);
  assert.deepEqual(jsonOf<StatusJson>(busy).leftovers, [], 'its deleter still runs');
  assert.ok(fs.existsSync(trash), 'status left it to its deleter');
  // A deploy's recovery leaves it too.
  assert.equal((await runCli(['deploy', src, root, '-q', '--keep', '0'])).code, 0);
  assert.ok(fs.existsSync(trash));

  await gone(deleter);
  const left = await runCli(['status', root, '--json']);
  assert.equal(left.code, 0, left.stderr);
  const report = jsonOf<StatusJson>(left);
  assert.deepEqual(report.leftovers.sort(), ['.tmp/deleting.trash.r0.0123456789ab', '.tmp/trash.r0.0123456789ab']);
  assert.equal(fs.existsSync(trash), false, 'the leftover of a killed deleter is cleaned');
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')).filter((n) => /^(trash|deleting)\./.test(n)), []);
});

void test('a lock being released (renamed into .tmp/ by a live process) is not a leftover', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '-q'])).code, 0);
  const holder = sleeper(t);
  const lock = writeOwnerLock(root, { pid: holder, startTime: startTicks(holder) });
  const released = path.join(root, '.tmp', 'trash.lock.test0123');
  fs.renameSync(lock, released);
  const r = await runCli(['status', root, '--json']);
  assert.deepEqual(jsonOf<StatusJson>(r).leftovers, []);
  assert.ok(fs.existsSync(released));
  await gone(holder);
  const after = await runCli(['status', root, '--json']);
  assert.deepEqual(jsonOf<StatusJson>(after).leftovers, ['.tmp/trash.lock.test0123']);
  assert.equal(fs.existsSync(released), false);
});

// The crash campaign's random kills once landed in a lock's release between the removal of its
// owner file and of its directory: the next deploy took that young, ownerless directory for a
// lock "made moments ago" and left it for 10 s.
void test('a released lock emptied of its owner by a killed releaser is a leftover at once, for status and the next deploy', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '-q'])).code, 0);
  for (const command of [['status', root, '--json'], ['deploy', src, root, '--json']]) {
    const released = path.join(root, '.tmp', 'trash.lock.killed0123');
    fs.mkdirSync(released);
    const r = await runCli(command);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.existsSync(released), false, `${command[0]} left ${released}`);
  }
});

void test('a deploy that finds the lock held by status waits for it, whatever its --wait, and says so', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '-q', '--release-id', 'one'])).code, 0);
  const holder = sleeper(t);
  writeOwnerLock(root, { pid: holder, startTime: startTicks(holder), command: 'status' });
  const run = spawnCli(['deploy', src, root, '--release-id', 'two']);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(run.child.exitCode, null, 'still waiting after 1.5 s');
  // The status ends (here: is killed, which makes its lock stale and the deploy takes it over).
  await gone(holder);
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /waiting up to 10 s for the lock of .*, held by pid \d+ of .* \(status\)/);
  assert.equal(currentId(root), 'two');
});
