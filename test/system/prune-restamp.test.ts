// Prune deleting an older release that shares inodes with the live one (--strategy hardlink)
// moves their ctimes; the live release's stat cache is stamped again across each unlink, so the
// next hardlink deploy reads none of the live release's files. A file changed before the prune
// is never stamped again: the next deploy re-hashes it and publishes the built bytes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { jsonOf, runCli, tempDir } from '../harness/cli.ts';
import { BUILD_FILES, hardlinkBuild, tracedCli } from '../harness/hardlink-builds.ts';

const FILES = BUILD_FILES;
const FIXED = new Date('1985-10-26T08:15:00Z');
const build = (dir: string): string => hardlinkBuild(dir);

/** How many files under `releases/<id>/` the command opened, from strace. */
function opensUnder(root: string, id: string, args: string[]): { opens: number; json: { linked?: number; copied?: number } } {
  const run = tracedCli(root, id, 'open,openat', args);
  return { opens: run.lines.length, json: run.json };
}

void test('after prune deletes releases that share the live one\'s inodes, the next hardlink deploy reads none of the live files', async (t) => {
  const dir = tempDir(t);
  const src = build(path.join(dir, 'src'));
  const root = path.join(dir, 'root');
  for (const id of ['r1', 'r2', 'r3']) assert.equal((await runCli(['deploy', src, root, '--quiet', '--strategy', 'hardlink', '--release-id', id])).code, 0);
  const sealed = fs.statSync(path.join(root, '.atomic-deploy/manifests/r3.stat.json')).mtimeMs;
  assert.equal((await runCli(['prune', root, '--keep', '1', '--quiet'])).code, 0);
  // r2 stays as the rollback target; r1 goes.
  assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), ['r2', 'r3']);
  // Control: the unlinks moved the live files' ctimes past the cache's first seal, which the cache had to follow.
  const live = fs.statSync(path.join(root, 'releases/r3/d0/f0.js'));
  assert.ok(live.ctimeMs > sealed, 'the prune did not move the ctime of a shared file');
  assert.ok(fs.statSync(path.join(root, '.atomic-deploy/manifests/r3.stat.json')).mtimeMs >= live.ctimeMs, 'the stat cache was not written again');

  const next = opensUnder(root, 'r3', ['deploy', src, root, '--strategy', 'hardlink', '--release-id', 'r4', '--json']);
  assert.equal(next.opens, 0, 'the previous release was read again');
  assert.deepEqual([next.json.linked, next.json.copied], [FILES, 0]);

  // The same through a deploy that prunes as it goes (--keep): its own prune keeps its new release's cache true.
  assert.equal((await runCli(['deploy', src, root, '--quiet', '--strategy', 'hardlink', '--keep', '1', '--release-id', 'r5'])).code, 0);
  assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), ['r4', 'r5']);
  const after = opensUnder(root, 'r5', ['deploy', src, root, '--strategy', 'hardlink', '--keep', '1', '--release-id', 'r6', '--json']);
  assert.equal(after.opens, 0, 'the previous release was read again after a deploy that pruned');
});

void test('a live file edited in place before the prune (same size, same mtime) is not stamped again: the next deploy publishes the built bytes', async (t) => {
  const dir = tempDir(t);
  const src = build(path.join(dir, 'src'));
  const root = path.join(dir, 'root');
  for (const id of ['r1', 'r2', 'r3']) assert.equal((await runCli(['deploy', src, root, '--quiet', '--strategy', 'hardlink', '--release-id', id])).code, 0);
  const victim = path.join(root, 'releases/r3/d0/f0.js');
  const before = fs.statSync(victim);
  fs.writeFileSync(victim, fs.readFileSync(victim, 'utf8').replace('A0', 'X0'));
  fs.utimesSync(victim, FIXED, before.mtime);
  assert.deepEqual([fs.statSync(victim).size, fs.statSync(victim).mtimeMs], [before.size, before.mtimeMs]);
  // The prune unlinks r1's name of the same inode (r2 stays, the rollback target): a restamp that took the file as it found it would make the edit look built.
  assert.equal((await runCli(['prune', root, '--keep', '1', '--quiet'])).code, 0);
  assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), ['r2', 'r3']);
  const result = await runCli(['deploy', src, root, '--strategy', 'hardlink', '--release-id', 'r4', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual([jsonOf<{ linked?: number }>(result).linked, jsonOf<{ copied?: number }>(result).copied], [FILES - 1, 1]);
  assert.equal(fs.readFileSync(path.join(root, 'current/d0/f0.js'), 'utf8'), fs.readFileSync(path.join(src, 'd0/f0.js'), 'utf8'));
  assert.equal((await runCli(['verify', root])).code, 0);
  assert.equal(execFileSync('cat', [path.join(root, 'releases/r3/d0/f0.js')], { encoding: 'utf8' }).includes('X0'), true, 'the edit is still in r3, where it was made');
});
