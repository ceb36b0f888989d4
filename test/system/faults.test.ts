// Resource faults: a full disk (size and inodes), I/O errors injected into rename, symlink, fsync,
// mkdir and the copy, read-only mounts, immutable and foreign-owned directories. Each failed
// deploy must exit 1 with a one-line error, leave current and releases/ as they were, remove its
// partial release and release the lock; the next deploy must then succeed by itself.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { before, makeLane, nextSource, recoverAndCheck, type Before, type Lane } from '../harness/campaign.ts';
import { jsonOf, runCli, tempDir, writeTree, type CliResult } from '../harness/cli.ts';
import { asUser, invocationOf, mountTmpfs, requireRoot, requireTools, runWrapped, traceCalls, type TracedCall } from '../harness/faults.ts';
import { checkRoot, leftovers, lockExists } from '../harness/invariants.ts';

const MESSAGE: Record<string, RegExp> = {
  EIO: /EIO|i\/o error/i,
  EROFS: /read-only file system/,
  EACCES: /permission denied/,
  EPERM: /permission denied/,
  ENOSPC: /no space left on device/,
};

/** A deploy that failed before the switch: exit 1, one error line, the root exactly as before. */
function assertUndone(lane: Lane, was: Before, result: CliResult, message: RegExp, label: string, options: { leftoversAllowed?: boolean } = {}): void {
  assert.equal(result.code, 1, `${label}: exit ${result.code}\n${result.stderr}`);
  const errors = result.stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, `${label}: expected one error line:\n${result.stderr}`);
  assert.match(errors[0] ?? '', message, label);
  assert.doesNotMatch(result.stderr, /unexpected failure|\n\s+at /, `${label}: stack trace\n${result.stderr}`);
  const { problems, state } = checkRoot(lane.root, {
    sources: lane.manifests,
    keep: was.releases,
    currentIn: was.current ? [was.current] : [],
    clean: !options.leftoversAllowed,
  });
  assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
  assert.deepEqual(state.releases, was.releases, `${label}: the partial release is still under releases/`);
  assert.ok(!lockExists(lane.root), `${label}: the lock was not released`);
}

interface SyscallCase {
  label: string;
  syscall: string;
  errno: string;
  /** Picks the call to fail from the trace of an identical deploy. */
  pick: (root: string) => (call: TracedCall, index: number, calls: readonly TracedCall[]) => boolean;
  /** Fail that call and every later one (a device that stays broken). */
  persistent?: boolean;
  /** undone: as before the command; live: the switch stands; ok: the deploy succeeds anyway. */
  expect: 'undone' | 'live' | 'ok';
  /** The hint the error must give. */
  hint?: RegExp;
}

const ontoCurrent = (root: string) => (c: TracedCall) => c.text.includes(`, "${root}/current")`);
const tempLink = (root: string) => (c: TracedCall) => c.text.includes(`"${root}/.tmp/current.`);

const SYSCALL_CASES: SyscallCase[] = [
  ...['EIO', 'EROFS', 'EACCES'].map((errno): SyscallCase => ({ label: `rename onto current: ${errno}`, syscall: 'rename', errno, pick: ontoCurrent, expect: 'undone' })),
  {
    label: 'rename of the finished copy into releases/: EIO',
    syscall: 'rename',
    errno: 'EIO',
    pick: (root) => (c) => c.text.startsWith(`"${root}/.tmp/stage.`) && c.text.includes(`"${root}/releases/`),
    expect: 'undone',
  },
  ...['EIO', 'EACCES'].map((errno): SyscallCase => ({ label: `symlink of the temp link: ${errno}`, syscall: 'symlink', errno, pick: tempLink, expect: 'undone' })),
  { label: 'symlink while copying a link of the source: EIO', syscall: 'symlink', errno: 'EIO', pick: (root) => (c) => c.text.includes(`"${root}/.tmp/stage.`), expect: 'undone' },
  // The lock needs no durability (after a reboot its holder is gone): a failed fsync must neither fail the deploy nor leave the lock behind.
  {
    label: 'fsync of the root right after taking the lock: EIO',
    syscall: 'fsync',
    errno: 'EIO',
    pick: (root) => (c, i, calls) => c.text.startsWith(`${fdOf(c)}<${root}>`) && !calls.slice(0, i).some(ontoCurrent(root)),
    expect: 'ok',
  },
  { label: 'fsync of the journal: EIO', syscall: 'fsync', errno: 'EIO', pick: () => (c) => c.text.includes('/.journal.json.'), expect: 'undone' },
  { label: 'fsync of releases/ after placing the release: EIO', syscall: 'fsync', errno: 'EIO', pick: (root) => (c) => c.text.startsWith(`${fdOf(c)}<${root}/releases>`), expect: 'undone' },
  {
    label: 'fsync of releases/ and every fsync after it: EIO (a device that stays broken)',
    syscall: 'fsync',
    errno: 'EIO',
    pick: (root) => (c) => c.text.startsWith(`${fdOf(c)}<${root}/releases>`),
    persistent: true,
    expect: 'undone',
  },
  { label: 'fsync of the root after the switch: EIO', syscall: 'fsync', errno: 'EIO', pick: rootAfterSwitch, expect: 'live' },
  // The release is live: "deploy again" would be wrong; the record waits for space.
  {
    label: 'fsync of the root after the switch: ENOSPC',
    syscall: 'fsync',
    errno: 'ENOSPC',
    pick: rootAfterSwitch,
    expect: 'live',
    hint: /^hint: free space on the root's filesystem \(atomic-deploy prune \S+ --keep 3 removes old releases\); the next atomic-deploy command then finishes the record by itself$/m,
  },
  ...['EIO', 'EROFS', 'EACCES'].map((errno): SyscallCase => ({ label: `mkdir of the lock: ${errno}`, syscall: 'mkdir', errno, pick: (root) => (c) => c.text.startsWith(`"${root}/.tmp/lock.`), expect: 'undone' })),
  ...['EIO', 'EACCES'].map((errno): SyscallCase => ({ label: `mkdir of the staging copy: ${errno}`, syscall: 'mkdir', errno, pick: (root) => (c) => c.text.startsWith(`"${root}/.tmp/stage.`), expect: 'undone' })),
];

/** The root's own fsync once current has been renamed onto: the switch's durability. */
function rootAfterSwitch(root: string): (c: TracedCall, i: number, calls: readonly TracedCall[]) => boolean {
  return (c, i, calls) => c.text.startsWith(`${fdOf(c)}<${root}>`) && calls.slice(0, i).some(ontoCurrent(root));
}

function fdOf(c: TracedCall): string {
  return /^(\d+)</.exec(c.text)?.[1] ?? '-';
}

void test('EIO, EROFS and EACCES injected into rename, symlink, fsync and mkdir (strace): undone, or the switch stands', async (t) => {
  requireTools('strace');
  const lane = await makeLane(tempDir(t), 'lane');
  const traceFile = path.join(path.dirname(lane.root), 'trace');
  // One traced deploy tells which invocation to fail: every deploy on a clean root makes the
  // same calls in the same order on libuv's one thread. A second trace proves it.
  const traces = [];
  for (let i = 0; i < 2; i++) {
    const traced = await traceCalls(['deploy', nextSource(lane), lane.root, '--json'], ['rename', 'symlink', 'fsync', 'mkdir'], traceFile);
    assert.equal(traced.result.code, 0, traced.result.stderr);
    traces.push(traced.calls);
  }
  const numbers = traces.map((calls) => SYSCALL_CASES.map((c) => invocationOf(calls, c.syscall, c.pick(lane.root))));
  assert.deepEqual(numbers[0], numbers[1], 'two identical deploys made their calls in a different order');
  for (const [index, c] of SYSCALL_CASES.entries()) {
    const n = numbers[0]?.[index] as number;
    const was = before(lane);
    const result = await runWrapped(['deploy', nextSource(lane), lane.root, '--json'], {
      prefix: ['strace', '-f', '-o', '/dev/null', '-e', `inject=${c.syscall}:error=${c.errno}:when=${n}${c.persistent ? '+' : ''}`],
      env: { UV_THREADPOOL_SIZE: '1' },
    });
    const label = `${c.label} (${c.syscall} #${n})`;
    if (c.expect === 'undone') {
      assertUndone(lane, was, result, MESSAGE[c.errno] as RegExp, label, { leftoversAllowed: c.persistent });
    } else if (c.expect === 'ok') {
      assert.equal(result.code, 0, `${label}: exit ${result.code}\n${result.stderr}`);
      const { problems } = checkRoot(lane.root, { sources: lane.manifests, keep: was.releases, clean: true });
      assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
    } else {
      assert.equal(result.code, 1, `${label}: exit ${result.code}\n${result.stderr}`);
      assert.match(result.stderr, /^error: release \S+ is live, but /m, label);
      if (c.hint) assert.match(result.stderr, c.hint, label);
      const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, keep: was.releases });
      assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
      assert.notEqual(state.current, was.current, `${label}: the switch did not stand`);
      assert.ok(!lockExists(lane.root), `${label}: the lock was not released`);
    }
    // Undone cases left the root as it was (checked above); the others need the next deploy.
    if (c.persistent || c.expect === 'live') await recoverAndCheck(lane, was.releases, label);
  }
  await recoverAndCheck(lane, [], 'after the injected faults');
});

void test('syncfs failing (EIO) falls back to an fsync of every file; the deploy succeeds durably', async (t) => {
  requireTools('strace', 'sync');
  const lane = await makeLane(tempDir(t), 'lane');
  const was = before(lane);
  const source = nextSource(lane);
  const result = await runWrapped(['deploy', source, lane.root, '--json'], { prefix: ['strace', '-f', '-o', '/dev/null', '-e', 'inject=syncfs:error=EIO'] });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(jsonOf<{ durability: string }>(result).durability, 'fsync');
  const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, keep: was.releases, clean: true });
  assert.deepEqual(problems, []);
  assert.notEqual(state.current, was.current);
});

void test('ENOSPC injected into the data copy (pwrite64: files are copied through user space and hashed on the way): undone with a "no space" error', async (t) => {
  requireTools('strace');
  const lane = await makeLane(tempDir(t), 'lane');
  const was = before(lane);
  const result = await runWrapped(['deploy', nextSource(lane), lane.root, '--json'], {
    prefix: ['strace', '-f', '-o', '/dev/null', '-e', 'inject=pwrite64:error=ENOSPC'],
  });
  assertUndone(lane, was, result, MESSAGE.ENOSPC as RegExp, 'ENOSPC in the copy');
  await recoverAndCheck(lane, was.releases, 'ENOSPC in the copy');
});

/** A lane on a small tmpfs: tiny sources, so that its own releases fit. */
async function tmpfsLane(t: Parameters<typeof tempDir>[0], options: { size: string; inodes?: number }): Promise<{ lane: Lane; outside: string }> {
  requireRoot();
  const outside = tempDir(t);
  const mnt = mountTmpfs(t, options);
  return { lane: await makeLane(mnt, 'lane', { files: 8, dirs: 2 }), outside };
}

void test('disk full during the copy (tmpfs size limit): exit 1, "no space", current unchanged, partial release removed, lock released', async (t) => {
  const { lane, outside } = await tmpfsLane(t, { size: '1m' });
  const big = writeTree(path.join(outside, 'big'), { 'index.html': 'big\n', 'small.txt': 'x\n' });
  fs.writeFileSync(path.join(big, 'blob.bin'), Buffer.alloc(3 << 20, 7));
  const was = before(lane);
  const result = await runCli(['deploy', big, lane.root, '--json']);
  assertUndone(lane, was, result, /no space left on device while deploying release/, 'disk full');
  // The lane holds the live release and its rollback target only: prune could free nothing, and the hint says so.
  assert.match(result.stderr, new RegExp(`^hint: prune cannot free space here: ${lane.root} holds only the live release and its rollback target, which always stay; free space elsewhere on its filesystem`, 'm'));
  assert.equal(jsonOf<{ error: { code: string } }>(result).error.code, 'NO_SPACE');
  await recoverAndCheck(lane, was.releases, 'after disk full');
});

void test('inodes exhausted during the copy (tmpfs nr_inodes): the same', async (t) => {
  const { lane, outside } = await tmpfsLane(t, { size: '32m', inodes: 160 });
  const many: Record<string, string> = {};
  for (let i = 0; i < 300; i++) many[`d${i % 5}/f${i}`] = `${i}\n`;
  const big = writeTree(path.join(outside, 'many'), many);
  const was = before(lane);
  const result = await runCli(['deploy', big, lane.root, '--json']);
  assertUndone(lane, was, result, /no space left on device/, 'inodes exhausted');
  await recoverAndCheck(lane, was.releases, 'after inode exhaustion');
});

void test('a disk already full: the deploy fails before changing anything, lock included', async (t) => {
  const { lane } = await tmpfsLane(t, { size: '1m' });
  const filler = path.join(path.dirname(lane.root), 'filler');
  const fd = fs.openSync(filler, 'w');
  try {
    for (;;) fs.writeSync(fd, Buffer.alloc(4096, 1));
  } catch (error) {
    assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    fs.closeSync(fd);
  }
  const was = before(lane);
  const result = await runCli(['deploy', nextSource(lane), lane.root, '--json']);
  assertUndone(lane, was, result, /no space left on device/, 'full disk');
  fs.rmSync(filler);
  await recoverAndCheck(lane, was.releases, 'after the disk was freed');
});

void test('read-only mounts: the whole root, releases/ alone, the state directory alone', async (t) => {
  requireRoot();
  requireTools('mount', 'umount');
  const lane = await makeLane(tempDir(t), 'lane');
  for (const [label, sub] of [['root read-only', ''], ['releases/ read-only', 'releases'], ['.atomic-deploy/ read-only', '.atomic-deploy']] as const) {
    const dir = path.join(lane.root, sub);
    const was = before(lane);
    execFileSync('mount', ['--bind', dir, dir]);
    execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
    let result: CliResult;
    try {
      result = await runCli(['deploy', nextSource(lane), lane.root, '--json']);
    } finally {
      execFileSync('umount', [dir]);
    }
    // Renaming into a separate (read-only) mount of the same filesystem fails with EXDEV or EROFS.
    assertUndone(lane, was, result, /read-only file system|EXDEV|cross-device/, label);
    // --json: the error object carries the hint (issue item 14: EROFS had none).
    if (/read-only file system/.test(result.stdout + result.stderr)) assert.match(result.stdout + result.stderr, /remount it read-write/, `${label}: no hint`);
    await recoverAndCheck(lane, was.releases, label);
  }
});

void test('an immutable releases/ (chattr +i: EPERM even for root): undone with "permission denied"', async (t) => {
  requireRoot();
  requireTools('chattr');
  const lane = await makeLane(tempDir(t), 'lane');
  const releases = path.join(lane.root, 'releases');
  const was = before(lane);
  execFileSync('chattr', ['+i', releases]);
  let result: CliResult;
  try {
    result = await runCli(['deploy', nextSource(lane), lane.root, '--json']);
  } finally {
    execFileSync('chattr', ['-i', releases]);
  }
  assertUndone(lane, was, result, MESSAGE.EPERM as RegExp, 'chattr +i releases/');
  await recoverAndCheck(lane, was.releases, 'after chattr -i');
});

void test('a deploy user who may not write releases/ (EACCES): undone with "permission denied"', async (t) => {
  requireRoot();
  requireTools('setpriv', 'chown');
  const base = tempDir(t);
  fs.chmodSync(base, 0o755);
  const lane = await makeLane(base, 'lane');
  execFileSync('chown', ['-R', 'daemon:', path.dirname(lane.root)]);
  execFileSync('chown', ['root:', path.join(lane.root, 'releases')]);
  const was = before(lane);
  const result = await runWrapped(['deploy', nextSource(lane), lane.root, '--json'], { prefix: asUser('daemon') });
  assertUndone(lane, was, result, MESSAGE.EACCES as RegExp, 'releases/ owned by root');
  assert.match(result.stderr, /^hint: run as the user that owns the deploy root/m);
  execFileSync('chown', ['daemon:', path.join(lane.root, 'releases')]);
  const ok = await runWrapped(['deploy', nextSource(lane), lane.root, '--json'], { prefix: asUser('daemon') });
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(leftovers(lane.root), []);
});
