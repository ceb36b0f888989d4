// Sparse files keep their holes: a 1 GiB file with no blocks stays without blocks in the release,
// and a file with data around a hole keeps the data and the hole.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { jsonOf, runCli, tempDir, writeTree } from '../harness/cli.ts';

const GiB = 1024 * 1024 * 1024;

void test('a 1 GiB sparse file of 0 blocks stays sparse in the release; data around a hole is kept', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  const empty = path.join(src, 'empty.img');
  fs.writeFileSync(empty, '');
  fs.truncateSync(empty, GiB);
  assert.equal(fs.statSync(empty).blocks, 0, 'the filesystem under the test must support holes');
  const holey = path.join(src, 'holey.bin');
  const fd = fs.openSync(holey, 'w');
  fs.writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 0);
  fs.writeSync(fd, Buffer.alloc(4096, 2), 0, 4096, 64 * 1024 * 1024);
  fs.closeSync(fd);
  // Control: a plain byte copy (cp --sparse=never) fills the holes; our check would see it.
  const dense = path.join(dir, 'dense.img');
  execFileSync('cp', ['--sparse=never', holey, dense]);
  assert.ok(fs.statSync(dense).blocks * 512 >= 64 * 1024 * 1024, 'a dense copy allocates the hole');

  const root = path.join(dir, 'root');
  const result = await runCli(['deploy', src, root, '--release-id', 'one', '--json']);
  assert.equal(result.code, 0, result.stderr);
  const rel = path.join(root, 'releases/one');
  const big = fs.statSync(path.join(rel, 'empty.img'));
  assert.equal(big.size, GiB);
  assert.equal(big.blocks, 0, `empty.img has ${big.blocks} blocks in the release`);
  const copy = fs.statSync(path.join(rel, 'holey.bin'));
  assert.equal(copy.size, fs.statSync(holey).size);
  assert.ok(copy.blocks * 512 < 1024 * 1024, `holey.bin has ${copy.blocks} blocks in the release`);
  execFileSync('cmp', [holey, path.join(rel, 'holey.bin')]);
  assert.equal((await runCli(['verify', root])).code, 0);
  assert.equal(jsonOf<{ bytes: number }>(result).bytes, GiB + fs.statSync(holey).size + 3);
});
