// A source file swapped for a FIFO or a device after the scan, while the deploy waits at a
// failpoint between the scan and the copy: the copy opens sources non-blocking, checks the open
// descriptor's type, and refuses (exit 2) instead of blocking on the FIFO or reading the device
// for ever. Each case's control shows a plain open of the swapped-in file does block or never end.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnCli, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { mountFs, requireRoot, requireTools } from '../harness/faults.ts';
import { leftovers, lockExists } from '../harness/invariants.ts';

type Swap = 'fifo' | 'zero device';

function swapIn(file: string, swap: Swap): void {
  fs.rmSync(file);
  if (swap === 'fifo') execFileSync('mkfifo', [file]);
  // The kernel's /dev/zero (char 1:5): a copy that read it would never reach the end.
  else execFileSync('mknod', [file, 'c', '1', '5']);
}

/** The control: `cat` of the swapped-in file does not finish within 2 s (it blocks, or reads for ever). */
function assertNaiveReadHangs(file: string, label: string): void {
  const r = spawnSync('timeout', ['2', 'sh', '-c', 'cat "$1" > /dev/null', 'sh', file]);
  assert.equal(r.status, 124, `${label}: a plain read of the swapped-in file finished (exit ${r.status}): the swap proves nothing`);
}

async function swapDuringDeploy(base: string, swap: Swap, victim: string, extraArgs: string[], label: string): Promise<void> {
  const src = writeTree(path.join(base, 'src'), { 'index.html': 'v1\n', 'small.txt': 'small\n' });
  fs.writeFileSync(path.join(src, 'big.bin'), Buffer.alloc(256 * 1024, 7));
  const root = path.join(base, 'root');
  const first = await runCli(['deploy', src, root, '--release-id', 'r1', ...extraArgs, '--quiet']);
  assert.equal(first.code, 0, `${label}: first deploy: ${first.stderr}`);

  // The scan is done when the staging directory exists; the failpoint holds the copy back.
  const { child, done } = spawnCli(['deploy', src, root, '--release-id', 'r2', ...extraArgs], { failpoints: 'release-dir-made=sleep:3000', timeoutMs: 30_000 });
  const deadline = Date.now() + 20_000;
  const staged = (): boolean => fs.readdirSync(path.join(root, '.tmp')).some((n) => n.startsWith('stage.r2.'));
  while (!staged() && child.exitCode === null && Date.now() < deadline) await sleep(20);
  assert.ok(staged(), `${label}: the deploy never reached its copy`);
  swapIn(path.join(src, victim), swap);
  const result = await done;

  assert.equal(result.signal, null, `${label}: the deploy hung on the swapped-in file and was killed`);
  assert.equal(result.code, 2, `${label}: exit ${result.code}\n${result.stderr}`);
  const errors = result.stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, `${label}: expected one error line:\n${result.stderr}`);
  assert.match(errors[0] ?? '', new RegExp(`${victim.replace('.', '\\.')} stopped being a regular file`), label);
  assert.match(result.stderr, /^hint: let the build finish before deploying/m, label);
  assert.doesNotMatch(result.stderr, /unexpected failure|\n\s+at /, `${label}: stack trace`);
  assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/r1', `${label}: current moved`);
  assert.deepEqual(fs.readdirSync(path.join(root, 'releases')), ['r1'], `${label}: a release was left`);
  assert.deepEqual(leftovers(root), [], `${label}: leftovers`);
  assert.ok(!lockExists(root), `${label}: the lock was not released`);
  assertNaiveReadHangs(path.join(src, victim), label);
}

void test('a small source file swapped for a FIFO after the scan: exit 2, nothing switched, no hang', async (t) => {
  requireTools('mkfifo', 'timeout');
  await swapDuringDeploy(tempDir(t), 'fifo', 'small.txt', [], 'FIFO, small file');
});

void test('a large source file swapped for a FIFO or /dev/zero after the scan: exit 2, no hang, no endless read', async (t) => {
  requireRoot();
  requireTools('mkfifo', 'mknod', 'timeout');
  const dir = tempDir(t);
  for (const swap of ['fifo', 'zero device'] as const) {
    const base = path.join(dir, swap.replace(' ', '-'));
    fs.mkdirSync(base);
    await swapDuringDeploy(base, swap, 'big.bin', [], `${swap}, large file`);
  }
});

void test('copy-on-write clones (btrfs): a source file swapped for a FIFO after the scan is refused, no hang', async (t) => {
  requireRoot();
  requireTools('mkfifo', 'timeout');
  const mnt = mountFs(t, 'btrfs');
  await swapDuringDeploy(mnt, 'fifo', 'small.txt', ['--strategy', 'reflink'], 'FIFO, reflink');
});
