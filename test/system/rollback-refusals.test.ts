// Rollbacks that would serve nothing, or that would change the root before refusing: exit 2 and
// the root as it was. A rollback with nothing to do (`--to` the live release): exit 0, the root as it was.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, runCli, tempDir, writeTree } from '../harness/cli.ts';
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

// `rollback --to` the live release exited 2 with UNKNOWN_RELEASE ("already current"): a retry of a
// rollback whose outcome was unclear counted as invalid input, under a code that says "unknown".
void test('rollback --to the release already current: exit 0, unchanged, nothing touched (times included), as a dry run and as a retry', async (t) => {
  const root = await twoReleases(tempDir(t));
  const before = treeSnapshot(root, { times: true });
  for (const extra of [[], ['--dry-run']]) {
    const r = await runCli(['rollback', root, '--to', 'r2', '--json', ...extra]);
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}`);
    assert.deepEqual(jsonOf(r), { release: 'r2', previous: 'r2', recovered: [], unchanged: true, ...(extra.length > 0 ? { dryRun: true, notes: [] } : {}) });
    assert.deepEqual(treeSnapshot(root, { times: true }), before, `rollback --to r2 ${extra.join(' ')} changed the root (a lock, a journal, a record)`);
    const human = await runCli(['rollback', root, '--to', 'r2', ...extra]);
    assert.equal(human.code, 0, human.stderr);
    assert.equal(human.stdout, `${extra.length > 0 ? 'dry run: ' : ''}release r2 is already current; nothing ${extra.length > 0 ? 'would change' : 'was changed'}\n`);
  }
  // The retry this is for: a rollback whose bookkeeping failed after its switch (exit 1, live), then
  // the same rollback by its target. It recovers (finishing the record) and has nothing to switch.
  const failed = await runCli(['rollback', root, '--json'], { failpoints: 'rollback-after-switch=error:EIO' });
  assert.equal(failed.code, 1, failed.stderr);
  assert.deepEqual([jsonOf<{ error: { release?: string; live?: boolean } }>(failed).error.release, jsonOf<{ error: { live?: boolean } }>(failed).error.live], ['r1', true]);
  const retry = await runCli(['rollback', root, '--to', 'r1', '--json']);
  assert.equal(retry.code, 0, retry.stderr);
  const result = jsonOf<{ release: string; previous: string; unchanged?: boolean; recovered: string[] }>(retry);
  assert.deepEqual([result.release, result.previous, result.unchanged], ['r1', 'r1', true]);
  assert.deepEqual(result.recovered, ['finished recording rollback from r2 to r1']);
  assert.equal(currentId(root), 'r1');
  const status = (id: string): unknown => (JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', `${id}.json`), 'utf8')) as { status?: string }).status;
  assert.deepEqual([status('r1'), status('r2')], ['complete', 'rolled-back']);
  // A plain rollback with nothing to go back to is still refused.
  const plain = await runCli(['rollback', root, '--json']);
  assert.equal(plain.code, 2, plain.stderr);
  assert.equal(jsonOf<{ error: { code: string } }>(plain).error.code, 'NO_PREVIOUS_RELEASE');
});

// After a rollback into a root without `current`, `previous` was "" where a first deploy and the release log say null.
void test('rollback --to into a root with no current: previous is null, as a first deploy says it (dry run too)', async (t) => {
  const root = path.join(tempDir(t), 'root');
  writeTree(path.join(root, 'releases', 'a'), { i: 'x\n' });
  const dry = await runCli(['rollback', root, '--to', 'a', '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(jsonOf<{ previous: unknown }>(dry).previous, null);
  const r = await runCli(['rollback', root, '--to', 'a', '--json']);
  assert.equal(r.code, 0, r.stderr);
  // A folder made by hand has no manifest: said, and rolled back to unchecked.
  assert.deepEqual(jsonOf(r), { release: 'a', previous: null, recovered: [], contents: { check: 'no-manifest', problem: 'release a has no manifest: it was made before atomic-deploy kept manifests, or by another tool' } });
  assert.equal(currentId(root), 'a');
  assert.match((await runCli(['rollback', root, '--to', 'a'])).stdout, /^release a is already current; nothing was changed$/m);
});

// A root prepared by hand (`releases/` and `shared/`, nothing deployed yet), or one with a single
// release: `rollback` said "list releases …; pick one with --to <id>", where the list was empty or
// held only the live release, and no --to could work.
void test('rollback with no other release to go to: the hint says to deploy one, not to pick one with --to; nothing changed', async (t) => {
  const dir = tempDir(t);
  const empty = path.join(dir, 'prepared');
  fs.mkdirSync(path.join(empty, 'releases'), { recursive: true });
  fs.mkdirSync(path.join(empty, 'shared'));
  const one = path.join(dir, 'one');
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'v1\n' });
  const first = await runCli(['deploy', src, one, '--release-id', 'r1', '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  for (const [root, message, hint] of [
    [empty, `error: ${empty} has no current release to roll back from`, `no release is in ${empty}/releases yet: deploy one first (atomic-deploy deploy <source> ${empty})`],
    [one, 'error: release r1 has no earlier good release to roll back to', `r1 is the only release here: deploy another first, --to cannot help (see: atomic-deploy releases ${one})`],
  ] as const) {
    const before = treeSnapshot(root, { times: true });
    for (const args of [['rollback', root], ['rollback', root, '--dry-run']]) {
      const r = await runCli(args);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(r.stderr, `${message}\nhint: ${hint}\n`);
    }
    assert.deepEqual(treeSnapshot(root, { times: true }), before);
  }
});
