// copyTree gives the event loop a turn every 256 small files of all its workers together, so a
// signal (Ctrl-C) or an abort is seen within one such run, not once per 256 files of each of the
// 32 workers. Counted, not timed: the files copied between two firings of a timer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { copyTree, scanSource } from '../../src/act/copy.ts';

const FILES = 12_000;

function tree(t: { after(fn: () => void): void }): { source: string; dest: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'copy-turns-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const source = path.join(dir, 'build');
  for (let d = 0; d < FILES / 1000; d++) {
    fs.mkdirSync(path.join(source, `d${d}`), { recursive: true });
    for (let f = 0; f < 1000; f++) fs.writeFileSync(path.join(source, `d${d}`, `f${f}.txt`), `${d}/${f}\n`);
  }
  const dest = path.join(dir, 'release');
  fs.mkdirSync(dest);
  return { source, dest };
}

void test('the event loop gets a turn within 768 small files of all workers together (256 made, a timer may miss one turn)', async (t) => {
  const { source, dest } = tree(t);
  const scan = scanSource(source);
  // onProgress reports every 256 files: the count the loop last saw when a timer fires.
  let reported = 0;
  let seenAtLastTick = 0;
  let widest = 0;
  let ticks = 0;
  let running = true;
  const tick = (): void => {
    widest = Math.max(widest, reported - seenAtLastTick);
    seenAtLastTick = reported;
    ticks += 1;
    if (running) setTimeout(tick, 0);
  };
  setTimeout(tick, 0);
  const copied = await copyTree(scan, dest, { reflink: 'never', onProgress: (p) => (reported = p.files) }).finally(() => (running = false));
  assert.equal(copied.files, FILES);
  assert.ok(ticks > FILES / 1024, `the timer fired ${ticks} times during ${FILES} files`);
  // Each worker yielding on its own let 32 × 256 = 8,192 files pass between two turns.
  t.diagnostic(`at most ${widest} files between two firings of the timer, ${ticks} firings`);
  assert.ok(widest <= 768, `${widest} files were copied between two turns of the event loop`);
});

void test('an abort stops the copy within one run of files, with every worker idle', async (t) => {
  const { source, dest } = tree(t);
  const scan = scanSource(source);
  const ac = new AbortController();
  let at = 0;
  const copied = await copyTree(scan, dest, {
    reflink: 'never',
    signal: ac.signal,
    onProgress: (p) => {
      if (at === 0 && p.files >= 1024) {
        at = p.files;
        // Aborted from a timer, as a signal handler is: the loop must get a turn to run it.
        setTimeout(() => ac.abort(), 0);
      }
    },
  });
  t.diagnostic(`${copied.files - at} files copied after the abort was asked for`);
  assert.ok(at > 0);
  assert.ok(copied.files < at + 768, `${copied.files - at} files were copied after the abort was asked for (at ${at})`);
  const written = fs.readdirSync(dest, { recursive: true }).filter((f) => String(f).endsWith('.txt')).length;
  assert.equal(written, copied.files, 'nothing is written once copyTree returns');
});
