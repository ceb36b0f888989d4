// A filesystem filled to the last byte: rollback and prune still work (they are how space is
// freed), with the lock's owner kept in a symlink's target, which needs no data block.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { fillToTheLastByte, mountFs, mountTmpfs, requireRoot } from '../harness/faults.ts';
import { leftovers, lockExists } from '../harness/invariants.ts';

function freeBytes(dir: string): number {
  const s = fs.statfsSync(dir);
  return s.bavail * s.bsize;
}

void test('on a 100% full tmpfs, rollback switches back, prune frees space, and neither leaves its lock', async (t) => {
  requireRoot();
  const mnt = mountTmpfs(t, { size: '2m' });
  const src = writeTree(path.join(tempDir(t), 'src'), { 'index.html': 'v\n', 'app.js': 'x'.repeat(100_000) });
  const root = path.join(mnt, 'root');
  for (const id of ['r0', 'r1', 'r2', 'r3']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--quiet'])).code, 0);
  fillToTheLastByte(mnt);
  assert.equal(freeBytes(mnt), 0);

  // The hint of a failed deploy names prune, so prune must work here.
  const deploy = await runCli(['deploy', src, root, '--release-id', 'r4', '--json']);
  assert.equal(jsonOf<{ error?: { code: string } }>(deploy).error?.code, 'NO_SPACE', deploy.stdout);
  assert.match(deploy.stderr, /hint: free space .*prune/);

  const back = await runCli(['rollback', root]);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), 'r2');
  assert.equal(lockExists(root), false);

  // --keep 1: r3 (newest; its rolled-back mark could not be written on the full disk), current r2 and its rollback target r1 stay.
  const prune = await runCli(['prune', root, '--keep', '1']);
  assert.equal(prune.code, 0, prune.stderr);
  assert.deepEqual(releaseIds(root), ['r1', 'r2', 'r3']);
  assert.ok(freeBytes(mnt) > 0, 'prune freed nothing');
  assert.equal(lockExists(root), false);
  assert.deepEqual(leftovers(root), []);
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')).filter((n) => n.startsWith('lock.')), []);
});

void test('the lock taken on a full disk names its holder: a second command sees who holds it', async (t) => {
  requireRoot();
  const mnt = mountTmpfs(t, { size: '2m' });
  const src = writeTree(path.join(tempDir(t), 'src'), { 'index.html': 'v\n' });
  const root = path.join(mnt, 'root');
  for (const id of ['r1', 'r2']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--quiet'])).code, 0);
  fillToTheLastByte(mnt);
  // A failpoint keeps the rollback inside the lock while a second one tries to take it.
  const { spawnCli } = await import('../harness/cli.ts');
  const holder = spawnCli(['rollback', root], { failpoints: 'rollback-temp-link-made=sleep:3000' });
  const deadline = Date.now() + 20_000;
  while (!lockExists(root) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const second = await runCli(['prune', root, '--keep', '0', '--json']);
  assert.equal(second.code, 3, second.stderr);
  assert.match(second.stderr, new RegExp(`locked by pid ${String(holder.child.pid)} of `));
  assert.equal((await holder.done).code, 0);
  assert.equal(lockExists(root), false);
});

// The hint said `atomic-deploy prune <root> --keep 3`, the placeholder unfilled, and promised space
// from a prune that could remove nothing: a root holding only the live release and its rollback
// target (a 20 MB disk, an 8 MiB build).
void test('a full disk: the hint names the root, and prune only where it can remove a release', async (t) => {
  requireRoot();
  const mnt = mountTmpfs(t, { size: '20m' });
  const src = path.join(tempDir(t), 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'blob'), Buffer.alloc(8 << 20, 7));
  const root = path.join(mnt, 'root');
  for (const id of ['r1', 'r2']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--quiet'])).code, 0);
  const full = await runCli(['deploy', src, root, '--release-id', 'r3']);
  assert.equal(full.code, 1, full.stderr);
  assert.match(full.stderr, /^error: no space left on device while /m);
  assert.match(full.stderr, new RegExp(`^hint: prune cannot free space here: ${root} holds only the live release and its rollback target, which always stay; free space elsewhere on its filesystem \\(shared/, other files: df -h ${root}\\) or make it larger, then deploy again$`, 'm'));
  assert.doesNotMatch(full.stderr, /<root>/);
  assert.deepEqual(releaseIds(root), ['r1', 'r2']);
  // With a release prune can remove, the hint says how many and names the root.
  fs.mkdirSync(path.join(root, 'releases', 'r0'));
  fs.writeFileSync(path.join(root, 'releases', 'r0', 'index.html'), 'old\n');
  const more = await runCli(['deploy', src, root, '--release-id', 'r3', '--json']);
  assert.equal(more.code, 1, more.stderr);
  const e = jsonOf<{ error: { code: string; hint: string } }>(more).error;
  assert.equal(e.code, 'NO_SPACE');
  assert.equal(e.hint, `free space (for example: atomic-deploy prune ${root} --keep 2, which can remove up to 1 of its 3 releases) and deploy again`);
});

// On ext4, every VM's default, a directory needs a data block (tmpfs, above, needs none): a full
// disk refused rollback and prune the lock's draft directory, so the commands that restore the
// previous release or free space failed, with the hint to prune. They now spend the space reserve
// (.atomic-deploy/space-reserve) that every deploy, rollback and prune keeps while there is room.
void test('on a full ext4, rollback and prune take the lock by spending the space reserve, which a deploy does not touch', async (t) => {
  requireRoot();
  const mnt = mountFs(t, 'ext4-small');
  const src = writeTree(path.join(tempDir(t), 'src'), { 'index.html': 'v\n', 'app.js': 'x'.repeat(100_000) });
  const root = path.join(mnt, 'root');
  for (const id of ['r1', 'r2', 'r3']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--quiet'])).code, 0);
  const reserve = path.join(root, '.atomic-deploy', 'space-reserve');
  assert.equal(fs.statSync(reserve).size, 256 * 1024, 'the first deploy made no space reserve');
  fillToTheLastByte(mnt);
  assert.equal(freeBytes(mnt), 0);

  // A deploy fails on the full disk and leaves the reserve to the commands after it.
  const deploy = await runCli(['deploy', src, root, '--release-id', 'r4', '--json']);
  assert.equal(jsonOf<{ error?: { code: string } }>(deploy).error?.code, 'NO_SPACE', deploy.stdout);
  assert.equal(fs.statSync(reserve).size, 256 * 1024, 'the failed deploy spent the reserve');

  // Control: without the reserve (moved aside on the same filesystem, its blocks still taken), ext4 refuses the lock's directory.
  const aside = path.join(mnt, 'reserve-aside');
  fs.renameSync(reserve, aside);
  const refused = await runCli(['rollback', root, '--json']);
  assert.equal(refused.code, 1, refused.stderr);
  assert.equal(jsonOf<{ error?: { code: string } }>(refused).error?.code, 'NO_SPACE');
  assert.match(refused.stderr, /no space left on device while taking the lock/);
  // Prune could not take the lock either: the hint says how to free space by hand, with prune's dry run (which needs no lock) choosing.
  assert.ok(refused.stderr.includes(`hint: no space reserve was left to spend (.atomic-deploy/space-reserve), so prune cannot take the lock either: free a few KiB on its filesystem by hand (df -h ${root}), for example rm -rf ${root}/releases/<id> of a release that atomic-deploy prune ${root} --dry-run says it would remove, then run the rollback again\n`), refused.stderr);
  const dry = await runCli(['prune', root, '--keep', '1', '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /r1/);
  assert.equal(currentId(root), 'r3');
  fs.renameSync(aside, reserve);

  const back = await runCli(['rollback', root, '--json']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), 'r2');
  assert.equal(lockExists(root), false);
  assert.equal(fs.existsSync(reserve), false);
  const warnings = jsonOf<{ warnings: string[] }>(back).warnings;
  const said = `the filesystem of ${root} is full: the lock was taken by deleting its space reserve (256 KiB in .atomic-deploy/); free space (atomic-deploy prune ${root} removes old releases; df -h ${root}), and the next deploy, rollback or prune makes the reserve again`;
  assert.ok(warnings.includes(said), warnings.join('\n'));

  // What the reserve's deletion left free is enough for the prune that follows.
  const prune = await runCli(['prune', root, '--keep', '1']);
  assert.equal(prune.code, 0, prune.stderr);
  assert.deepEqual(releaseIds(root), ['r1', 'r2']);
  assert.equal(lockExists(root), false);
  assert.deepEqual(leftovers(root), []);

  // Room again: the next changing command makes the reserve whole.
  fs.rmSync(path.join(mnt, 'filler'));
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'r5', '--quiet'])).code, 0);
  assert.equal(fs.statSync(reserve).size, 256 * 1024);

  // Full once more: prune alone spends it too, and frees space.
  fillToTheLastByte(mnt, 'filler2');
  assert.equal(freeBytes(mnt), 0);
  const alone = await runCli(['prune', root, '--keep', '1']);
  assert.equal(alone.code, 0, alone.stderr);
  assert.deepEqual(releaseIds(root), ['r2', 'r5']);
  assert.ok(freeBytes(mnt) > 256 * 1024, 'prune freed nothing');
  assert.equal(lockExists(root), false);
});
