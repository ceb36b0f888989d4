// Release directories made by other tools whose names hold escapes or newlines: printed escaped
// by releases, prune and rollback, and never picked by a plain rollback (which --to refuses too).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, runCli, tempDir, writeTree } from '../harness/cli.ts';

const EVIL = 'zz\x1b[2J\nerror: forged';
const ESC = '\x1b';

void test('names with an escape and a newline are printed escaped everywhere, and plain rollback skips them', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  for (const id of ['1', EVIL, '3']) writeTree(path.join(root, 'releases', id), { 'index.html': 'x\n' });
  fs.symlinkSync('releases/3', path.join(root, 'current'));
  for (const args of [['releases', root], ['prune', root, '--keep', '0', '--dry-run'], ['prune', root, '--keep', '5']]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(`${ESC}|\\nerror: forged`), `${args[0]} printed the name raw:\n${JSON.stringify(r.stdout)}`);
    // No release id has such a name: `releases` lists it as ignored (stderr), prune as one it leaves.
    assert.match(args[0] === 'releases' ? r.stderr : r.stdout, /zz\\u001b\[2J\\nerror: forged/, args.join(' '));
  }
  // By name the escape-named release sorts right below 3; a plain rollback must not pick it.
  const back = await runCli(['rollback', root]);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), '1');
  assert.doesNotMatch(back.stdout + back.stderr, new RegExp(ESC));
  const to = await runCli(['rollback', root, '--to', EVIL]);
  assert.equal(to.code, 2);
  assert.doesNotMatch(to.stdout + to.stderr, new RegExp(`${ESC}|\\nerror: forged`));  // Live (switched to by hand), it is printed escaped by status and by a rollback away from it.
  fs.symlinkSync(`releases/${EVIL}`, path.join(root, 'current.new'));
  fs.renameSync(path.join(root, 'current.new'), path.join(root, 'current'));
  for (const args of [['status', root], ['rollback', root, '--to', '3']]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stdout + r.stderr, new RegExp(`${ESC}|\\nerror: forged`), `${args[0]} printed the name raw:\n${JSON.stringify(r.stdout)}`);
  }
});

void test('a dry run prints a root, a source and a hook holding an escape, a newline, a C1 CSI or a bidi override escaped, one line each', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, `src\x1b[31m\u202Egnp`), { 'index.html': 'x\n' });
  const root = path.join(dir, `r${ESC}[2J\nerror: forged\u009b`);
  const r = await runCli(['deploy', src, root, '--dry-run', '--before-switch', `echo hi\nrm -rf /${ESC}[8m`]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stdout, new RegExp(`${ESC}|\\nerror: forged|\u009b|\u202E`), JSON.stringify(r.stdout));
  assert.match(r.stdout, /^release: .*r\\u001b\[2J\\nerror: forged\\u009b\/releases\//m);
  assert.match(r.stdout, /^source: +.*src\\u001b\[31m\\u202egnp$/m);
  assert.match(r.stdout, /^hook: +before switch: echo hi\\nrm -rf \/\\u001b\[8m$/m);
  assert.equal(fs.existsSync(root), false);
});
