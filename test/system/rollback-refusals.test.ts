// Rollbacks that would serve nothing, or that would change the root before refusing: exit 2 and
// the root as it was.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';

async function twoReleases(dir: string): Promise<string> {
  const root = path.join(dir, 'root');
  for (const id of ['r1', 'r2']) {
    const src = writeTree(path.join(dir, id), { 'index.html': `${id}\n` });
    const r = await runCli(['deploy', src, root, '--release-id', id, '--quiet']);
    assert.equal(r.code, 0, r.stderr);
  }
  return root;
}

void test('rollback --to an empty folder made by hand: exit 2, it would serve nothing; current unchanged', async (t) => {
  const root = await twoReleases(tempDir(t));
  fs.mkdirSync(path.join(root, 'releases', 'backup-old'));
  const before = treeSnapshot(root);
  for (const extra of [[], ['--dry-run']]) {
    const r = await runCli(['rollback', root, '--to', 'backup-old', ...extra]);
    assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^error: release backup-old is an empty directory: switching to it would serve nothing\nhint: list the releases with: atomic-deploy releases /);
    assert.deepEqual(treeSnapshot(root), before);
  }
  assert.equal(currentId(root), 'r2');
  // Once it holds something, --to reaches it.
  fs.writeFileSync(path.join(root, 'releases', 'backup-old', 'index.html'), 'backup\n');
  assert.equal((await runCli(['rollback', root, '--to', 'backup-old'])).code, 0);
  assert.equal(currentId(root), 'backup-old');
});

void test('a plain rollback whose target is an empty directory (a root taken over from another tool) refuses it', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  fs.mkdirSync(path.join(root, 'releases', '1'), { recursive: true });
  writeTree(path.join(root, 'releases', '2'), { 'index.html': 'two\n' });
  fs.symlinkSync('releases/2', path.join(root, 'current'));
  const before = treeSnapshot(root);
  const r = await runCli(['rollback', root]);
  assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
  assert.match(r.stderr, /^error: release 1 is an empty directory: switching to it would serve nothing\nhint: pick another with --to <id>/);
  assert.deepEqual(treeSnapshot(root), before);
});

void test('rollback --to an unknown release in a root with a crashed deploy: exit 2 before recovery touches anything', async (t) => {
  const dir = tempDir(t);
  const root = await twoReleases(dir);
  const src = writeTree(path.join(dir, 'r3'), { 'index.html': 'r3\n' });
  const crashed = await runCli(['deploy', src, root, '--release-id', 'r3'], { failpoints: 'copy-done=crash' });
  assert.notEqual(crashed.code, 0);
  const before = treeSnapshot(root);
  const r = await runCli(['rollback', root, '--to', 'nosuch']);
  assert.equal(r.code, 2, `${r.stdout}${r.stderr}`);
  assert.match(r.stderr, /^error: release nosuch does not exist in /);
  assert.deepEqual(treeSnapshot(root), before, 'recovery ran before the refusal');
  // A name in releases/ that is no release directory is named for what it is, not "does not exist".
  fs.symlinkSync('r1', path.join(root, 'releases', 'alias'));
  fs.symlinkSync('/nonexistent/volume/r9', path.join(root, 'releases', 'r9'));
  const linked = treeSnapshot(root);
  const alias = await runCli(['rollback', root, '--to', 'alias']);
  assert.equal(alias.code, 2, alias.stderr);
  assert.match(alias.stderr, /^error: \S+releases\/alias is a symlink to "r1", not a release directory$/m);
  assert.deepEqual(treeSnapshot(root), linked, 'recovery ran before the refusal of a link to another release');
  const dangling = await runCli(['verify', root, '--release', 'r9']);
  assert.equal(dangling.code, 2, dangling.stderr);
  assert.match(dangling.stderr, /^error: \S+releases\/r9 is a symlink to "\/nonexistent\/volume\/r9", which does not exist \(a volume not mounted\?\), not a release directory$/m);
  fs.rmSync(path.join(root, 'releases', 'alias'));
  fs.rmSync(path.join(root, 'releases', 'r9'));
  // The next real command recovers as always.
  assert.equal((await runCli(['rollback', root, '--to', 'r1'])).code, 0);
  assert.equal(currentId(root), 'r1');
});
