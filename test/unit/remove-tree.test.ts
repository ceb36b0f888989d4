// deleteTree (src/act/remove-tree.ts), the delete of trash and leftovers: a signal stops it between
// two unlinks, in a flat directory as between directories, and what it leaves keeps its name.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { deleteTree, nextSignal } from '../../src/act/remove-tree.ts';

const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'remove-tree-'));
after(() => fs.rmSync(BASE, { recursive: true, force: true }));

function countFiles(dir: string): number {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(path.join(dir, e.name)) : 1;
  return n;
}

function tree(name: string, dirs: number, filesPerDir: number): string {
  const top = path.join(BASE, name);
  for (let d = 0; d < dirs; d++) {
    const dir = path.join(top, `d${d}`);
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; i < filesPerDir; i++) fs.writeFileSync(path.join(dir, `f${i}`), '');
  }
  return top;
}

test('a signal stops the delete inside one flat directory: at most the unlinks in flight finish', async () => {
  const top = tree('flat', 1, 3000);
  const controller = new AbortController();
  const removed = await deleteTree(top, { signal: controller.signal, midway: () => Promise.resolve(controller.abort('SIGTERM')) });
  // 32 unlinks run at once: those already started when the signal came finish, no more.
  assert.ok(removed >= 1 && removed <= 32, `${removed} files removed after the signal`);
  assert.equal(countFiles(top), 3000 - removed);
  // The next delete, not stopped, finishes the tree.
  assert.equal(await deleteTree(top), 3000 - removed);
  assert.equal(fs.existsSync(top), false);
});

test('a signal stops the delete before the next directory', async () => {
  const top = tree('nested', 5, 10);
  const controller = new AbortController();
  const removed = await deleteTree(top, { signal: controller.signal, midway: () => Promise.resolve(controller.abort('SIGINT')) });
  assert.ok(removed <= 10, `${removed} files removed after the signal`);
  // Not even the directory it emptied goes: its rmdir comes after the signal.
  assert.equal(fs.readdirSync(top).length, 5, 'a directory went although the signal had come');
  assert.equal(countFiles(top), 50 - removed);
});

test('a file or a link is unlinked, a missing path is nothing to do, a signal already given removes nothing of a tree', async () => {
  const file = path.join(BASE, 'file');
  fs.writeFileSync(file, 'x');
  assert.equal(await deleteTree(file), 1);
  assert.equal(fs.existsSync(file), false);
  const link = path.join(BASE, 'link');
  fs.symlinkSync(path.join(BASE, 'kept'), link);
  fs.writeFileSync(path.join(BASE, 'kept'), 'kept');
  assert.equal(await deleteTree(link), 1);
  assert.equal(fs.readFileSync(path.join(BASE, 'kept'), 'utf8'), 'kept', 'the link was followed');
  assert.equal(await deleteTree(path.join(BASE, 'nothing')), 0);
  const top = tree('untouched', 2, 3);
  assert.equal(await deleteTree(top, { signal: AbortSignal.abort('SIGTERM') }), 0);
  assert.equal(countFiles(top), 6);
});

test('nextSignal: a clean-up a signal began stops at the second signal; one a failure began, at the first', () => {
  const first = new AbortController();
  const second = new AbortController();
  assert.equal(nextSignal(first.signal, second.signal), first.signal);
  first.abort('SIGINT');
  assert.equal(nextSignal(first.signal, second.signal), second.signal);
  assert.equal(nextSignal(first.signal, undefined), undefined);
  assert.equal(nextSignal(undefined, second.signal), undefined);
});
