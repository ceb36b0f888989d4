// Hashing on worker threads gives what hashing on one thread gives (verify's findings depend on
// it), matches sha256sum, and reports a failing file by its errno and path without hanging.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { TSC_BIN, tempDir } from '../harness/cli.ts';
import { asUser } from '../harness/faults.ts';
import { requireTool } from '../harness/swappers.ts';
import { HashPool } from '../../src/act/hash-pool.ts';
import { hashTree, hashWalkedFileSync } from '../../src/act/manifest.ts';

/** A pool of `n` threads, stopped after the test. */
function pools(t: { after(fn: () => Promise<void>): void }, n: number): HashPool {
  const pool = new HashPool(n);
  t.after(() => pool.close());
  return pool;
}

function makeTree(dir: string): string[] {
  const files: string[] = [];
  for (let i = 0; i < 300; i++) {
    const rel = `d${i % 7}/e${i % 3}/f${i}.txt`;
    fs.mkdirSync(path.join(dir, path.dirname(rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), `file ${i}\n`.repeat(i));
    files.push(rel);
  }
  // Larger than the 1 MiB read buffer: hashed over several reads.
  fs.writeFileSync(path.join(dir, 'big.bin'), Buffer.alloc(3 * 1024 * 1024 + 17, 7));
  files.push('big.bin');
  fs.symlinkSync('d0/e0/f0.txt', path.join(dir, 'link'));
  fs.mkdirSync(path.join(dir, 'empty'));
  execFileSync('mkfifo', [path.join(dir, 'pipe')]);
  return files;
}

void test('hashTree with 1 and 2 extra threads (batches there and here) gives exactly what it gives alone, FIFO and all', async (t) => {
  const dir = tempDir(t);
  makeTree(dir);
  const one = await hashTree(dir);
  assert.ok(one.entries.some((e) => e.type === 'file' && e.size > 3 * 1024 * 1024));
  assert.deepEqual(one.special, [{ path: 'pipe', kind: 'FIFO' }]);
  assert.deepEqual(await hashTree(dir, undefined, { pool: pools(t, 1) }), one);
  assert.deepEqual(await hashTree(dir, undefined, { pool: pools(t, 2) }), one);
});

void test('a few files, fewer than a batch, are shared between the threads and give what one thread gives', async (t) => {
  const dir = tempDir(t);
  for (let i = 0; i < 5; i++) fs.writeFileSync(path.join(dir, `f${i}`), Buffer.alloc(64 * 1024 + i, i));
  const one = await hashTree(dir);
  assert.equal(one.entries.length, 5);
  const pool = pools(t, 2);
  const sent: number[] = [];
  const hash = pool.hash.bind(pool);
  pool.hash = (files) => {
    sent.push(files.length);
    return hash(files);
  };
  assert.deepEqual(await hashTree(dir, undefined, { pool }), one);
  // Shares of two (5 files, 3 threads): two to the pool, the last hashed here.
  assert.deepEqual(sent, [2, 2]);
});

void test('the pool\'s hashes are sha256sum\'s, in the order asked', async (t) => {
  const dir = tempDir(t);
  const files = makeTree(dir).map((rel) => path.join(dir, rel)).reverse();
  const sums = execFileSync(requireTool('sha256sum', 'coreutils'), files, { encoding: 'utf8', maxBuffer: 1 << 24 }).trim().split('\n').map((l) => l.slice(0, 64));
  const pool = new HashPool(2);
  try {
    const halves = await Promise.all([pool.hash(files.slice(0, 150)), pool.hash(files.slice(150))]);
    assert.deepEqual(halves.flat().map((h) => ('sha256' in h ? h.sha256 : 'other')), sums);
    assert.deepEqual(halves.flat().map((h) => ('size' in h ? h.size : -1)), files.map((f) => fs.statSync(f).size));
    assert.deepEqual(halves.flat().map((h) => ('mode' in h ? h.mode : -1)), files.map((f) => fs.statSync(f).mode & 0o7777));
  } finally {
    await pool.close();
  }
});

void test('a file that cannot be opened fails its batch with its errno and path; a symlink, FIFO, directory or a name gone is "other", never followed or waited on', async (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'a'), 'a');
  fs.symlinkSync('a', path.join(dir, 'l'));
  execFileSync('mkfifo', [path.join(dir, 'pipe')]);
  fs.mkdirSync(path.join(dir, 'd'));
  const pool = new HashPool(2);
  try {
    const long = path.join(dir, 'x'.repeat(300));
    await assert.rejects(pool.hash([path.join(dir, 'a'), long]), (e: NodeJS.ErrnoException) => e.code === 'ENAMETOOLONG' && e.path === long);
    // Gone since the walk listed it (or a directory on its way now a file): the walk looks again by lstat.
    assert.deepEqual(await pool.hash(['gone', 'a/under-a-file'].map((n) => path.join(dir, n))), [{ other: true }, { other: true }]);
    assert.deepEqual(await pool.hash(['l', 'pipe', 'd'].map((n) => path.join(dir, n))), [{ other: true }, { other: true }, { other: true }]);
    assert.deepEqual(['l', 'pipe', 'd'].map((n) => hashWalkedFileSync(path.join(dir, n))), [{ other: true }, { other: true }, { other: true }]);
    // The pool still works after a failed batch.
    assert.deepEqual(await pool.hash([path.join(dir, 'a')]), [{ sha256: createHash('sha256').update('a').digest('hex'), size: 1, mode: fs.statSync(path.join(dir, 'a')).mode & 0o7777 }]);
  } finally {
    await pool.close();
  }
  // A tree that cannot be walked fails as without threads, and leaves no batch unheard.
  await assert.rejects(hashTree(path.join(dir, 'nope'), undefined, { pool: pools(t, 1) }), (e: NodeJS.ErrnoException) => e.code === 'ENOENT');
});

void test('verify\'s walk (report) as a user permissions keep out: the same unreadable file and directory with threads as without', (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const tree = path.join(dir, 'tree');
  makeTree(tree);
  fs.chmodSync(path.join(tree, 'd1/e1/f1.txt'), 0o000);
  fs.chmodSync(path.join(tree, 'd2'), 0o000);
  // Listable, not searchable: every file in it is sent to a thread, and each open is denied.
  fs.chmodSync(path.join(tree, 'd3/e0'), 0o644);
  execFileSync('chown', ['-R', 'daemon:', tree]);
  const dist = path.dirname(path.dirname(TSC_BIN));
  const script = `
    const { hashTree } = await import(${JSON.stringify(path.join(dist, 'act/manifest.js'))});
    const { HashPool } = await import(${JSON.stringify(path.join(dist, 'act/hash-pool.js'))});
    const out = [];
    for (const threads of [0, 2]) {
      const pool = threads > 0 ? new HashPool(threads) : undefined;
      const found = await hashTree(${JSON.stringify(tree)}, undefined, { pool, report: true });
      await pool?.close();
      out.push({ entries: found.entries.map((e) => e.path).sort(), unreadable: found.unreadable });
    }
    console.log(JSON.stringify(out));`;
  // A file, not -e: the threads' code is evaluated as CommonJS, which --input-type=module would pass on to them.
  const file = path.join(dir, 'walk.mjs');
  fs.writeFileSync(file, script);
  const [user, ...rest] = asUser('daemon');
  const stdout = execFileSync(user as string, [...rest, process.execPath, file], { encoding: 'utf8' });
  const [alone, threaded] = JSON.parse(stdout) as { entries: string[]; unreadable: unknown[] }[];
  assert.deepEqual(alone?.unreadable, [{ path: 'd1/e1/f1.txt', type: 'file', mode: 0 }, { path: 'd2', type: 'dir' }, { path: 'd3/e0', type: 'dir' }]);
  assert.ok(alone?.entries.includes('d2') && alone.entries.includes('d3/e0'), 'a closed directory keeps its own entry');
  assert.ok(!alone?.entries.some((p) => p.startsWith('d2/') || p.startsWith('d3/e0/') || p === 'd1/e1/f1.txt'), 'nothing under a closed directory, no entry for the unreadable file');
  assert.deepEqual(threaded, alone);
});
