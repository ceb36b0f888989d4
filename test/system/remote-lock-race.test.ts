// The program a fleet host runs to read its lock (src/remote/script.ts lock_facts) read the
// owner by path and the inode after it: a lock released and taken again in between paired one
// lock's owner with the other's inode and times, or read no owner at all (read between the
// taker's two renames), as src/act/lock.ts inspectLock did before it reread (lock-inspect-race).
// Here another process hands the lock over every few milliseconds, each lock's owner.json naming
// its own inode, while the program reads it under dash, BusyBox sh and bash.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { rawLockOf } from '../../src/remote/facts.ts';
import { stateScript } from '../../src/remote/script.ts';
import { findTools } from '../harness/fleet.ts';
import { programShells, runProgram, SCRIPT_APPLETS, type Shell } from '../harness/remote-programs.ts';

const TOOLS = findTools(['busybox', 'dash'] as const);
const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'remote-lock-race-'));
after(() => fs.rmSync(BASE, { recursive: true, force: true }));
const SHELLS = programShells(BASE, TOOLS, SCRIPT_APPLETS);

/** Places a new lock over the old one (rename aside, rename in, as a takeover does) every 20-60 ms; each owner.json holds its directory's inode. */
const SWAPPER = `
const fs = require('node:fs');
const path = require('node:path');
const root = process.argv[1];
const lock = path.join(root, '.deploy.lock');
const pause = new Int32Array(new SharedArrayBuffer(4));
// Bounded, so that a test runner stopped before its clean-up leaves no process behind it.
const end = Date.now() + 90_000;
for (let n = 0; Date.now() < end; n++) {
  const draft = path.join(root, '.tmp', 'lock.' + n);
  fs.mkdirSync(draft);
  const ino = fs.statSync(draft).ino;
  fs.writeFileSync(path.join(draft, 'owner.json'), JSON.stringify({ pid: process.pid, host: 'swapper', token: 'swap' + n, ino }));
  const aside = path.join(root, '.tmp', 'aside.' + n);
  fs.renameSync(lock, aside);
  fs.renameSync(draft, lock);
  fs.rmSync(aside, { recursive: true });
  Atomics.wait(pause, 0, 0, 20 + 10 * (n % 5));
}
`;

/** The reads as they were: the owner by path, then the inode (the control that shows the race is met here). */
const NAIVE = `lock="$1/.deploy.lock"; o=$(cat "$lock/owner.json" 2>/dev/null); i=$(ls -di "$lock" 2>/dev/null); printf '%s\\n%s' "$o" "\${i%% *}"`;

function naiveMismatch(shell: Shell, root: string): boolean {
  const r = spawnSync(shell.file, ['-c', NAIVE, 'sh', root], { env: shell.env, encoding: 'utf8' });
  const [owner = '', inode = ''] = r.stdout.split('\n');
  if (inode.trim() === '') return false;
  if (owner === '') return true;
  return String((JSON.parse(owner) as { ino: number }).ino) !== inode.trim();
}

for (const shell of SHELLS) {
  void test(`${shell.name}: a lock handed over while the host reads it is read as one lock: its owner with its own inode, never without an owner`, async (t) => {
    const root = fs.mkdtempSync(path.join(BASE, 'root-'));
    t.after(() => fs.rmSync(root, { recursive: true, force: true }));
    fs.mkdirSync(path.join(root, '.tmp'));
    fs.mkdirSync(path.join(root, '.deploy.lock'));
    fs.writeFileSync(path.join(root, '.deploy.lock', 'owner.json'), JSON.stringify({ pid: process.pid, host: 'first', token: 'first', ino: fs.statSync(path.join(root, '.deploy.lock')).ino }));
    const child = spawn(process.execPath, ['-e', SWAPPER, root], { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    let reads = 0;
    let naiveReads = 0;
    let naive = 0;
    const wrong: string[] = [];
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      // At least 4 s and 100 reads, and until the naive reads met the race; on a loaded machine a
      // read takes longer (processes start slowly), so the count, not the time, decides.
      const until = Date.now() + 4000;
      const giveUp = Date.now() + 80_000;
      while ((Date.now() < until || reads < 100 || naive === 0) && Date.now() < giveUp) {
        const r = runProgram(shell, stateScript({ root, fsync: false }), BASE);
        assert.equal(r.code, 0, r.stderr);
        const raw = rawLockOf(r.frames);
        if (raw !== null) {
          reads += 1;
          const ino = raw.ownerJson === undefined ? undefined : String((JSON.parse(raw.ownerJson) as { ino: number }).ino);
          if (raw.kind !== 'dir' || ino !== raw.inode) wrong.push(`${raw.kind} inode ${raw.inode}, owner's inode ${ino ?? '(no owner)'}`);
        }
        naiveReads += 1;
        if (naiveMismatch(shell, root)) naive += 1;
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    assert.ok(reads >= 100, `the lock was read ${reads} times`);
    assert.ok(naive > 0, `the naive reads never met the race in ${naiveReads} reads: the test proves nothing`);
    assert.deepEqual(wrong, [], `${wrong.length} of ${reads} reads paired one lock's owner with another's inode (naive reads: ${naive} of ${naiveReads}): ${wrong.slice(0, 3).join('; ')}`);
  });
}
