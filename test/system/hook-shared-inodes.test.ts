// A before-switch hook runs in a release whose unchanged files are hardlinks to the live
// release's: a write into one in place (`>>`, a chmod) reached the live release and stayed there,
// even when the deploy failed. The shared inode is written back to the built bytes and mode; the
// new release keeps the hook's version in a file of its own.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, runCli, tempDir, writeTree } from '../harness/cli.ts';

const CONFIG = '<?php return [];\n';

async function twoReleases(t: { after(fn: () => void): void }): Promise<{ src: string; root: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n', 'config.php': CONFIG, 'lib/a.php': 'a\n', 'lib/b.php': 'b\n' });
  const root = path.join(dir, 'root');
  const r = await runCli(['deploy', src, root, '--release-id', 'r1', '--strategy', 'hardlink', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  return { src, root };
}

const inode = (file: string): number => fs.statSync(file).ino;

void test('a failing before-switch hook that appends to a linked file: the live release is written back and verifies (before: it kept the hook\'s bytes, verify exit 5)', async (t) => {
  const { src, root } = await twoReleases(t);
  const r = await runCli(['deploy', src, root, '--release-id', 'r2', '--strategy', 'hardlink', '--before-switch', 'echo "// cache" >> config.php; exit 1']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^warning: a before-switch hook wrote into 1 file that release r2 shared \(hardlinks\) with release r1: config\.php; written back to the built bytes, mode and owner there \(/m);
  assert.equal(currentId(root), 'r1');
  assert.equal(fs.readFileSync(path.join(root, 'current', 'config.php'), 'utf8'), CONFIG);
  assert.equal((await runCli(['verify', root])).code, 0);
});

void test('a succeeding hook that appends to one linked file, chmods another and chowns a third: the new release keeps the changes in files of its own, the previous one its built bytes, modes and owners', async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test chowns a file: run it as root');
  const { src, root } = await twoReleases(t);
  const r = await runCli(['deploy', src, root, '--release-id', 'r2', '--strategy', 'hardlink', '--before-switch', 'echo "// cache" >> config.php && chmod 600 lib/a.php && chown 1:1 lib/b.php', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { linked: number }).linked, 4);
  assert.match(r.stderr, /wrote into 3 files that release r2 shared \(hardlinks\) with release r1: config\.php, lib\/a\.php, lib\/b\.php; .*release r2 keeps its own copies/);
  assert.deepEqual(['r1', 'r2'].map((id) => fs.statSync(path.join(root, 'releases', id, 'lib/b.php')).uid), [0, 1]);
  const [r1, r2] = ['r1', 'r2'].map((id) => path.join(root, 'releases', id)) as [string, string];
  assert.equal(fs.readFileSync(path.join(r2, 'config.php'), 'utf8'), `${CONFIG}// cache\n`);
  assert.equal(fs.statSync(path.join(r2, 'lib/a.php')).mode & 0o777, 0o600);
  assert.equal(fs.readFileSync(path.join(r1, 'config.php'), 'utf8'), CONFIG);
  assert.equal(fs.statSync(path.join(r1, 'lib/a.php')).mode & 0o777, fs.statSync(path.join(src, 'lib/a.php')).mode & 0o777);
  // Changed files are no longer shared; the untouched one still is.
  assert.notEqual(inode(path.join(r2, 'config.php')), inode(path.join(r1, 'config.php')));
  assert.notEqual(inode(path.join(r2, 'lib/a.php')), inode(path.join(r1, 'lib/a.php')));
  assert.equal(inode(path.join(r2, 'index.html')), inode(path.join(r1, 'index.html')));
  // Each release is what its manifest says: the new one with the hook's writes, the old one as built.
  assert.equal((await runCli(['verify', root])).code, 0);
  assert.equal((await runCli(['verify', root, '--release', 'r1'])).code, 0);
  assert.equal((await runCli(['rollback', root, '--quiet'])).code, 0);
  assert.equal(fs.readFileSync(path.join(root, 'current', 'config.php'), 'utf8'), CONFIG);
});

void test('hooks that replace a linked file by rename, or rewrite it with the same bytes, change no shared inode: no warning, still linked where untouched', async (t) => {
  const { src, root } = await twoReleases(t);
  const hook = 'sed -i "s/v1/v2/" index.html && cat config.php > config.tmp && cat config.tmp > config.php && rm config.tmp';
  const r = await runCli(['deploy', src, root, '--release-id', 'r2', '--strategy', 'hardlink', '--before-switch', hook]);
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /wrote into/);
  const [r1, r2] = ['r1', 'r2'].map((id) => path.join(root, 'releases', id)) as [string, string];
  assert.equal(fs.readFileSync(path.join(r2, 'index.html'), 'utf8'), 'v2\n');
  assert.equal(fs.readFileSync(path.join(r1, 'index.html'), 'utf8'), 'v1\n');
  // Rewritten in place with the same bytes: still the one inode, nothing to give back.
  assert.equal(inode(path.join(r2, 'config.php')), inode(path.join(r1, 'config.php')));
  assert.equal((await runCli(['verify', root, '--release', 'r1'])).code, 0);
  assert.equal((await runCli(['verify', root])).code, 0);
});
