// With --strategy hardlink, a redeploy's unchanged files are the live release's inodes. A
// before-switch hook writes in the new release before the switch, often in place (`>>`, PHP's
// file_put_contents, composer dump-autoload, a chmod): into a linked file, that write reached the
// live release while the hook ran (an earlier version wrote the built bytes back afterwards, which
// left the window and a half-written live file after a crash). With before-switch hooks nothing is
// linked: every file of the new release is its own, and the live release is never written.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, runCli, spawnCli, tempDir, writeTree } from '../harness/cli.ts';

const CONFIG = '<?php return [];\n';
const FILES = { 'index.html': 'v1\n', 'config.php': CONFIG, 'lib/a.php': 'a\n', 'lib/b.php': 'b\n' };

async function firstRelease(t: { after(fn: () => void): void }): Promise<{ dir: string; src: string; root: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), FILES);
  const root = path.join(dir, 'root');
  const r = await runCli(['deploy', src, root, '--release-id', 'r1', '--strategy', 'hardlink', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  return { dir, src, root };
}

const inode = (file: string): number => fs.statSync(file).ino;

/** What a hook saw while it ran: the inodes of config.php in its release and in the live one, and the live file's bytes after its append. */
function probeHook(out: string): string {
  return [
    'echo "// cache" >> config.php',
    'chmod 600 lib/a.php',
    `stat -c %i config.php > ${out}.new`,
    `stat -c %i "$ATOMIC_DEPLOY_ROOT/current/config.php" > ${out}.live`,
    `cat "$ATOMIC_DEPLOY_ROOT/current/config.php" > ${out}.live-bytes`,
  ].join(' && ');
}

void test('control: without before-switch hooks a hardlink redeploy shares the unchanged files with the live release', async (t) => {
  const { src, root } = await firstRelease(t);
  const r = await runCli(['deploy', src, root, '--release-id', 'r2', '--strategy', 'hardlink', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = jsonOf<{ linked: number; strategy: string }>(r);
  assert.equal(out.linked, 4);
  assert.equal(out.strategy, 'hardlink');
  assert.equal(inode(path.join(root, 'releases/r2/config.php')), inode(path.join(root, 'releases/r1/config.php')));
});

void test('a succeeding hook that appends and chmods: the live release was never written, not even while the hook ran; the new release keeps its writes', async (t) => {
  const { dir, src, root } = await firstRelease(t);
  const probe = path.join(dir, 'probe');
  const r = await runCli(['deploy', src, root, '--release-id', 'r2', '--strategy', 'hardlink', '--before-switch', probeHook(probe), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = jsonOf<{ linked: number; copied: number; strategy: string; strategyRequested: string }>(r);
  assert.equal(out.linked, 0);
  assert.equal(out.copied, 4);
  // Cloned where the filesystem can (auto's rule), copied here on the test's filesystem otherwise.
  assert.match(out.strategy, /^(copy|reflink)$/);
  assert.equal(out.strategyRequested, 'hardlink');
  // The release log says the same: what made the files, and what was asked for.
  const record = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', 'r2.json'), 'utf8')) as { strategy?: string; strategyRequested?: string; linked?: number };
  assert.deepEqual([record.strategy, record.strategyRequested, record.linked], [out.strategy, 'hardlink', 0]);
  // During the hook: its file was its own, and the live one still held the built bytes.
  assert.notEqual(fs.readFileSync(`${probe}.new`, 'utf8'), fs.readFileSync(`${probe}.live`, 'utf8'));
  assert.equal(fs.readFileSync(`${probe}.live-bytes`, 'utf8'), CONFIG);
  const [r1, r2] = ['r1', 'r2'].map((id) => path.join(root, 'releases', id)) as [string, string];
  assert.equal(fs.readFileSync(path.join(r2, 'config.php'), 'utf8'), `${CONFIG}// cache\n`);
  assert.equal(fs.statSync(path.join(r2, 'lib/a.php')).mode & 0o777, 0o600);
  assert.equal(fs.readFileSync(path.join(r1, 'config.php'), 'utf8'), CONFIG);
  assert.equal(fs.statSync(path.join(r1, 'lib/a.php')).mode & 0o777, fs.statSync(path.join(src, 'lib/a.php')).mode & 0o777);
  for (const f of Object.keys(FILES)) assert.notEqual(inode(path.join(r2, f)), inode(path.join(r1, f)), f);
  // Each release is what its manifest says: the new one with the hook's writes, the old one as built.
  assert.equal((await runCli(['verify', root])).code, 0);
  assert.equal((await runCli(['verify', root, '--release', 'r1'])).code, 0);
  // The human output says why nothing was linked.
  const human = await runCli(['deploy', src, root, '--release-id', 'r3', '--strategy', 'hardlink', '--before-switch', 'true']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /hardlink: before-switch hooks will run in the new release, so no file is linked from release r2 \(a hook writing into a linked file would write into the live release\): every file is (copied|cloned)/);
});

void test('a failing hook that appends and chmods: the deploy is undone and the live release is as built (before 2026-12-04 it held the hook\'s bytes until they were written back)', async (t) => {
  const { dir, src, root } = await firstRelease(t);
  const probe = path.join(dir, 'probe');
  const r = await runCli(['deploy', src, root, '--release-id', 'r2', '--strategy', 'hardlink', '--before-switch', `${probeHook(probe)}; exit 1`]);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(fs.readFileSync(`${probe}.live-bytes`, 'utf8'), CONFIG);
  assert.equal(currentId(root), 'r1');
  assert.equal(fs.readFileSync(path.join(root, 'current', 'config.php'), 'utf8'), CONFIG);
  assert.equal((await runCli(['verify', root])).code, 0);
});

void test('kill -9 of the deploy while its hook is writing: the live release verifies, and the next deploy recovers', async (t) => {
  const { dir, src, root } = await firstRelease(t);
  const started = path.join(dir, 'hook-started');
  const hook = `echo "// cache" >> config.php && echo $$ > ${started}.pid && touch ${started} && sleep 30`;
  const run = spawnCli(['deploy', src, root, '--release-id', 'r2', '--strategy', 'hardlink', '--before-switch', hook]);
  const deadline = Date.now() + 30_000;
  while (!fs.existsSync(started)) {
    assert.ok(Date.now() < deadline, 'the hook never started');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  run.child.kill('SIGKILL');
  // The hook outlives the deploy it belonged to; it is stopped here, as its process group would be by a supervisor.
  try {
    process.kill(Number(fs.readFileSync(`${started}.pid`, 'utf8')), 'SIGKILL');
  } catch {
    // Gone already.
  }
  await run.done;
  assert.equal(currentId(root), 'r1');
  assert.equal(fs.readFileSync(path.join(root, 'current', 'config.php'), 'utf8'), CONFIG);
  assert.equal((await runCli(['verify', root])).code, 0);
  const next = await runCli(['deploy', src, root, '--release-id', 'r3', '--strategy', 'hardlink', '--json']);
  assert.equal(next.code, 0, next.stderr);
  assert.equal(jsonOf<{ linked: number }>(next).linked, 4);
  assert.equal((await runCli(['verify', root])).code, 0);
});
