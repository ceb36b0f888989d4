// A file that reads short before its end (procfs here; FUSE in direct_io mode does the same) is
// hashed whole: a short read ends a file only once it reaches the size its stat gave.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { test } from 'node:test';
import { HashPool } from '../../src/act/hash-pool.ts';
import { hashFileSync, hashWalkedFileSync } from '../../src/act/manifest.ts';

// Large, stable while the test runs, and served a page per read(2) whatever the buffer.
const SHORT = '/proc/kallsyms';

function whole(file: string): { sha256: string; size: number } {
  const bytes = fs.readFileSync(file);
  return { sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

void test('the file really reads short: one read(2) of 1 MiB returns less than the whole', () => {
  const fd = fs.openSync(SHORT, 'r');
  try {
    const n = fs.readSync(fd, Buffer.alloc(1 << 20), 0, 1 << 20, null);
    assert.ok(n > 0 && n < whole(SHORT).size, `first read ${n} bytes of ${whole(SHORT).size}`);
  } finally {
    fs.closeSync(fd);
  }
});

void test('hashFileSync reads a short-reading file to its end, with or without the lstat size', () => {
  const expected = whole(SHORT);
  assert.deepEqual(hashFileSync(SHORT), expected);
  // lstat gives 0 for procfs: the short read does not reach it, so the read goes on to the 0.
  assert.deepEqual(hashFileSync(SHORT, true, fs.lstatSync(SHORT).size), expected);
  assert.deepEqual(hashFileSync(SHORT, true), expected);
});

void test('hashWalkedFileSync and the hash threads read a short-reading file to its end too', async () => {
  const expected = { ...whole(SHORT), mode: fs.statSync(SHORT).mode & 0o7777 };
  assert.deepEqual(hashWalkedFileSync(SHORT), expected);
  const pool = new HashPool(1);
  try {
    const [got] = await pool.hash([SHORT]);
    assert.deepEqual(got, expected);
  } finally {
    await pool.close();
  }
});
