// inspectLock read a lock's times by one lstat and its owner by path after it: a takeover in
// between (the stale lock moved aside, the winner's renamed into place) made a lock "with no
// owner", which is held while young. A contender then exited 3 naming "an unknown process (the
// lock records no owner)" instead of the winner (conformance.test.ts, the contender pairs, under
// load). Here another process swaps lock directories as fast as it can while this one reads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspectLock } from '../../src/act/lock.ts';
import { layoutOf } from '../../src/act/layout.ts';
import { tempDir } from '../harness/cli.ts';

/** A process that places a new owned lock over the old one, again and again, as takeovers do (rename aside, rename in). */
const SWAPPER = `
const fs = require('node:fs');
const path = require('node:path');
const root = process.argv[1];
const lock = path.join(root, '.deploy.lock');
const owner = (n) => JSON.stringify({ pid: process.pid, host: require('node:os').hostname(), user: 'root', since: new Date().toISOString(), token: 'swap' + n });
// Bounded, so that a test runner stopped before its clean-up leaves no process spinning behind it.
const end = Date.now() + 10_000;
for (let n = 0; Date.now() < end; n++) {
  const draft = path.join(root, '.tmp', 'lock.' + n);
  fs.mkdirSync(draft);
  fs.writeFileSync(path.join(draft, 'owner.json'), owner(n));
  const aside = path.join(root, '.tmp', 'aside.' + n);
  fs.renameSync(lock, aside);
  fs.renameSync(draft, lock);
  fs.rmSync(aside, { recursive: true });
}
`;

void test('a lock replaced while it is read is never read as a lock without an owner', async (t) => {
  const root = tempDir(t);
  fs.mkdirSync(path.join(root, '.tmp'));
  fs.mkdirSync(path.join(root, '.deploy.lock'));
  fs.writeFileSync(path.join(root, '.deploy.lock', 'owner.json'), JSON.stringify({ pid: process.pid, host: os.hostname(), user: 'root', since: new Date().toISOString(), token: 'first' }));
  const child = spawn(process.execPath, ['-e', SWAPPER, root], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    await readWhileSwapped(root);
  } finally {
    // Stopped and gone before tempDir's clean-up removes the root it renames in (which would fail
    // and leave a process spinning, and this file waiting for it).
    child.kill('SIGKILL');
    await exited;
  }
});

async function readWhileSwapped(root: string): Promise<void> {
  const layout = layoutOf(root);
  let reads = 0;
  let ownerless = 0;
  // The naive control: the same two reads without the check, to show the race is hit here.
  let naiveOwnerless = 0;
  const until = Date.now() + 4000;
  while (Date.now() < until && (naiveOwnerless === 0 || reads < 20_000)) {
    const info = inspectLock(layout);
    if (info) {
      reads += 1;
      if (info.owner === null) ownerless += 1;
    }
    try {
      fs.lstatSync(layout.lock);
      if (!fs.existsSync(path.join(layout.lock, 'owner.json'))) naiveOwnerless += 1;
    } catch {
      // Between its two renames the lock is not there: no lock, not a lock without an owner.
    }
    // Let the swapper run between reads now and then (one core may be all there is).
    if (reads % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  assert.ok(reads > 1000, `the lock was read ${reads} times`);
  assert.ok(naiveOwnerless > 0, `the naive control never met the race in ${reads} reads: the test proves nothing`);
  assert.equal(ownerless, 0, `${ownerless} of ${reads} reads found a lock without an owner`);
}
