// The manifest store under .atomic-deploy/manifests/: recovery removes the manifest of a release
// that was never placed, and never follows a hostile journal id out of the root.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir, writeTree } from '../harness/cli.ts';
import { layoutOf } from '../../src/act/layout.ts';
import { readRegularBytes, readStatCache, STAT_CACHE_MAX_BYTES } from '../../src/act/manifest.ts';

void test('a journal id like ../../../victim/x never makes recovery delete a file outside the root', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  const root = path.join(dir, 'a', 'b', 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  const victim = path.join(dir, 'a', 'b', 'victim');
  fs.mkdirSync(victim);
  fs.writeFileSync(path.join(victim, 'x.json'), 'keep me\n');
  const id = '../../../victim/x';
  // Control: joined naively, the id names the victim file, so the test can fail.
  assert.equal(path.join(root, '.atomic-deploy', 'manifests', `${id}.json`), path.join(victim, 'x.json'));
  fs.writeFileSync(
    path.join(root, '.atomic-deploy', 'journal.json'),
    JSON.stringify({ v: 1, op: 'deploy', token: 'tok', pid: 1, startedAt: new Date().toISOString(), release: id, previous: 'one', phase: 'copying' }),
  );
  await runCli(['status', root, '--json']);
  assert.equal(fs.readFileSync(path.join(victim, 'x.json'), 'utf8'), 'keep me\n');
  assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/one');
});

void test('a manifest left by a deploy killed before its rename is removed by the next command', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  const killed = await runCli(['deploy', src, root, '--release-id', 'two'], { failpoints: 'manifest-written=crash' });
  assert.equal(killed.signal, 'SIGKILL');
  const manifests = path.join(root, '.atomic-deploy', 'manifests');
  assert.deepEqual(fs.readdirSync(manifests).sort(), ['one.json', 'one.stat.json', 'two.json', 'two.stat.json'], 'the crash came after the manifest was written');
  assert.ok(!fs.existsSync(path.join(root, 'releases', 'two')));
  assert.equal((await runCli(['status', root])).code, 0);
  assert.deepEqual(fs.readdirSync(manifests).sort(), ['one.json', 'one.stat.json']);
  assert.equal((await runCli(['verify', root])).code, 0);
});

void test('temp files of a manifest, stat cache, record or journal write killed half-way are removed by the next deploy', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  const state = path.join(root, '.atomic-deploy');
  // writeFileAtomic's names, as a writer killed between open and rename leaves them.
  const leftovers = [path.join(state, 'manifests', '.two.json.4242.k2j3h'), path.join(state, 'manifests', '.two.stat.json.4242.zz1'), path.join(state, 'releases', '.two.json.4242.a1'), path.join(state, '.journal.json.4242.b2')];
  for (const f of leftovers) fs.writeFileSync(f, '{"trunc');
  // Control: the names stay until a command recovers the root under its lock.
  assert.ok(leftovers.every((f) => fs.existsSync(f)));
  const next = await runCli(['deploy', src, root, '--release-id', 'three', '--json']);
  assert.equal(next.code, 0, next.stderr);
  for (const f of leftovers) assert.ok(!fs.existsSync(f), `${f} is still there`);
  assert.deepEqual(fs.readdirSync(path.join(state, 'manifests')).sort(), ['one.json', 'one.stat.json', 'three.json', 'three.stat.json']);
});

void test('a stat cache past its size limit is not read: the files are hashed instead, and the redeploy still links', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'a.txt': 'a\n', 'b/c.txt': 'c\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  const cache = path.join(root, '.atomic-deploy', 'manifests', 'one.stat.json');
  assert.ok(fs.existsSync(cache), 'the deploy wrote no stat cache');
  // A sparse file: its size is past the limit, and only reading it would cost.
  fs.truncateSync(cache, STAT_CACHE_MAX_BYTES + 1);
  assert.throws(() => readRegularBytes(cache, STAT_CACHE_MAX_BYTES), { code: 'EFBIG' });
  const layout = layoutOf(root);
  assert.equal(readStatCache(layout, 'one'), undefined);
  const r = await runCli(['deploy', src, root, '--release-id', 'two', '--strategy', 'hardlink', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual([(JSON.parse(r.stdout) as { linked: number }).linked], [2]);
});
