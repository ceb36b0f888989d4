// Roots that cannot be one: exit 2 with one line, the dry run agreeing with the deploy, nothing
// made. Under /proc (mkdir answers ENOENT under a parent that exists) Node's recursive mkdir spins
// forever in a call no signal ends; the deploy must answer at once. A parent that is a dangling
// link, or a file where the layout needs releases/, is refused before anything is written.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir, writeTree } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';

void test('a root under /proc exits 2 within seconds, the dry run too; nothing is made', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'hi\n' });
  const root = `/proc/atomic-deploy-test-${process.pid}`;
  for (const extra of [[], ['--dry-run']]) {
    const r = await runCli(['deploy', src, root, '--no-fsync', ...extra], { timeoutMs: 30_000 });
    assert.notEqual(r.signal, 'SIGKILL', `${extra.join(' ')}: still running after 30 s (a mkdir loop?)`);
    if (extra.length === 0) {
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /^error: cannot create the deploy root \/proc\/atomic-deploy-test-\d+: ENOENT/m);
    } else assert.ok(r.code === 0 || r.code === 2, r.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at |unexpected failure/);
  }
  assert.equal(fs.existsSync(root), false);
});

void test('a root whose parent is a dangling link, or whose releases is a file: dry run and deploy exit 2 alike, nothing changed', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'hi\n' });
  fs.symlinkSync(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
  const adopted = path.join(dir, 'folder');
  writeTree(adopted, { releases: 'a file\n', 'index.html': 'old\n' });
  const cases = [
    [path.join(dir, 'dangling', 'app'), [], /cannot create .*dangling\/app: .*dangling is a symbolic link to .*nowhere, which does not exist/],
    [adopted, ['--adopt'], /folder\/releases is not a directory/],
  ] as const;
  for (const [root, extra, message] of cases) {
    const before = treeSnapshot(dir);
    for (const dry of [['--dry-run'], []]) {
      const r = await runCli(['deploy', src, root, '--no-fsync', ...extra, ...dry]);
      const what = `${path.basename(root)} ${dry.join(' ')}`;
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      assert.match(r.stderr, message, what);
      assert.doesNotMatch(r.stderr, /\n\s+at |unexpected failure/, what);
      assert.deepEqual(treeSnapshot(dir), before, `${what}: something changed`);
    }
  }
  // Control: the same build deploys to a root that can be made.
  const ok = await runCli(['deploy', src, path.join(dir, 'fine', 'app'), '--no-fsync']);
  assert.equal(ok.code, 0, ok.stderr);
});
