// A hardlink redeploy decides from the previous release's manifest and stat cache (inode, size,
// ctime, owner; the mode from the manifest) and looks at each previous file once, just before
// link(2), to prove its stamp still holds. A cache of the first format (no owners) falls back to an
// lstat of every previous file first, as before. A previous file whose ctime alone moved is read
// again and linked only if its bytes are the build's; one replaced by another inode is copied.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../harness/cli.ts';
import { mountFs } from '../harness/faults.ts';
import { deploy } from '../../src/index.ts';
import { BUILD_FILES, hardlinkBuild, tracedCli } from '../harness/hardlink-builds.ts';

const FILES = BUILD_FILES;
const FIXED = new Date('1985-10-26T08:15:00Z');
const build = (dir: string): string => hardlinkBuild(dir, FIXED);

interface Traced {
  /** stat-family calls (stat, lstat, newfstatat, statx) naming a build file's path under releases/<id>/. */
  stats: number;
  opens: number;
  json: { linked?: number; copied?: number };
}

/** Runs the CLI under strace and counts what it did to the files of release `id`. */
function traced(root: string, id: string, args: string[]): Traced {
  const run = tracedCli(root, id, 'statx,newfstatat,?stat,?lstat,?open,openat', args);
  const lines = run.lines.filter((l) => /\/f\d+\.js"/.test(l));
  return {
    stats: lines.filter((l) => /\b(?:statx|newfstatat|stat|lstat)\(/.test(l)).length,
    opens: lines.filter((l) => /\bopen(?:at)?\(/.test(l)).length,
    json: run.json,
  };
}

const cacheFile = (root: string, id: string): string => path.join(root, '.atomic-deploy/manifests', `${id}.stat.json`);

void test('an unchanged hardlink redeploy looks at each previous file once, just before linking it (control: a first-format cache, without owners, costs an lstat more per file)', async (t) => {
  const dir = tempDir(t);
  const src = build(path.join(dir, 'src'));
  const root = path.join(dir, 'root');
  for (const id of ['r1', 'r2']) assert.equal((await runCli(['deploy', src, root, '--quiet', '--strategy', 'hardlink', '--keep', '0', '--release-id', id])).code, 0);
  assert.match(fs.readFileSync(cacheFile(root, 'r2'), 'utf8'), /^\{"format":"atomic-deploy\/stat-cache@2"/);

  const next = traced(root, 'r2', ['deploy', src, root, '--strategy', 'hardlink', '--keep', '0', '--release-id', 'r3', '--json']);
  assert.deepEqual([next.json.linked, next.json.copied], [FILES, 0]);
  assert.equal(next.opens, 0, 'a previous file was read');
  assert.equal(next.stats, FILES, 'one look at each previous file: the proof before its link');

  // Control: the same cache in the first format (owners dropped, the seal kept): every previous
  // file is lstat'ed to decide, then again before its link. Nothing is read, all is still linked.
  const file = cacheFile(root, 'r3');
  const sealed = fs.statSync(file);
  const cache = JSON.parse(fs.readFileSync(file, 'utf8')) as { format: string; files: unknown[][] };
  fs.writeFileSync(file, JSON.stringify({ format: 'atomic-deploy/stat-cache@1', files: cache.files.map((row) => row.slice(0, 4)) }));
  fs.utimesSync(file, sealed.atime, sealed.mtime);
  const old = traced(root, 'r3', ['deploy', src, root, '--strategy', 'hardlink', '--keep', '0', '--release-id', 'r4', '--json']);
  assert.deepEqual([old.json.linked, old.json.copied], [FILES, 0]);
  assert.equal(old.opens, 0, 'a previous file was read');
  assert.equal(old.stats, 2 * FILES, 'the first-format cache decided without its own lstat');
  assert.equal((await runCli(['verify', root])).code, 0);
});

void test('a previous file whose ctime alone moved is read again and linked; one replaced by another inode with the same bytes, edited in place, or reached through a directory swapped for a symlink, is copied', async (t) => {
  const dir = tempDir(t);
  const src = build(path.join(dir, 'src'));
  const root = path.join(dir, 'root');
  for (const id of ['r1', 'r2']) assert.equal((await runCli(['deploy', src, root, '--quiet', '--strategy', 'hardlink', '--keep', '0', '--release-id', id])).code, 0);
  const prev = (rel: string): string => path.join(root, 'releases/r2', rel);
  // A chmod and back: mode and bytes as built, only the ctime moved.
  const touched = 'd0/f0.js';
  fs.chmodSync(prev(touched), 0o600);
  fs.chmodSync(prev(touched), 0o644);
  // The same bytes in a new inode (an editor's save): not the file the release had.
  const swapped = 'd1/f1.js';
  fs.copyFileSync(prev(swapped), `${prev(swapped)}.tmp`);
  fs.chmodSync(`${prev(swapped)}.tmp`, 0o644);
  fs.renameSync(`${prev(swapped)}.tmp`, prev(swapped));
  // An edit in place that keeps size and mtime.
  const edited = 'd2/f2.js';
  const before = fs.statSync(prev(edited));
  fs.writeFileSync(prev(edited), fs.readFileSync(prev(edited), 'utf8').replace('A2', 'X2'));
  fs.utimesSync(prev(edited), FIXED, before.mtime);
  assert.equal(fs.statSync(prev(edited)).size, before.size);

  // A directory swapped for a symlink to one outside the root that holds another link to one of its
  // files (same inode, ctime moved by that link): linking it would share the file with the outside.
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(outside);
  fs.renameSync(prev('d3'), prev('d3.real'));
  fs.linkSync(prev('d3.real/f3.js'), path.join(outside, 'f3.js'));
  fs.symlinkSync(outside, prev('d3'));
  const inD3 = FILES / 6;

  const run = traced(root, 'r2', ['deploy', src, root, '--strategy', 'hardlink', '--keep', '0', '--release-id', 'r3', '--json']);
  assert.deepEqual([run.json.linked, run.json.copied], [FILES - 2 - inD3, 2 + inD3]);
  // The touched file and the edited one were read again (the edit's bytes are not the build's); nothing else was.
  assert.equal(run.opens, 2, 'previous files read: only those whose ctime moved in the same inode, through the release\'s own directories');
  assert.notEqual(fs.statSync(path.join(root, 'releases/r3/d3/f3.js')).ino, fs.statSync(path.join(outside, 'f3.js')).ino, 'a file reached through a symlinked directory was linked');
  const ino = (id: string, rel: string): number => fs.statSync(path.join(root, 'releases', id, rel)).ino;
  assert.equal(ino('r3', touched), ino('r2', touched), 'the file whose ctime alone moved was not linked');
  assert.notEqual(ino('r3', swapped), ino('r2', swapped), 'a file swapped for another inode was linked');
  assert.notEqual(ino('r3', edited), ino('r2', edited), 'a file edited in place was linked');
  for (const rel of [touched, swapped, edited]) assert.equal(fs.readFileSync(path.join(root, 'current', rel), 'utf8'), fs.readFileSync(path.join(src, rel), 'utf8'), rel);
  assert.equal((await runCli(['verify', root])).code, 0);
});

void test('releases/ on a filesystem with whole-second times, state on a finer one: a same-size edit in the second of the stamp is not trusted (control: its ctime did not move)', async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test mounts a loop filesystem: run it as root');
  const mnt = mountFs(t, 'ext4-seconds');
  const dir = tempDir(t);
  let proved = false;
  let attempt = 0;
  for (; attempt < 30 && !proved; attempt++) {
    const src = path.join(dir, `src${attempt}`);
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'app.js'), 'window.BUILD = "ci-build-0001";\n');
    fs.writeFileSync(path.join(src, 'other.js'), 'static\n');
    const root = path.join(dir, `root${attempt}`);
    fs.mkdirSync(root);
    fs.mkdirSync(path.join(mnt, `releases${attempt}`));
    fs.symlinkSync(path.join(mnt, `releases${attempt}`), path.join(root, 'releases'));
    // Just after a second begins, so the deploy's stamp and the edit share it.
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5));
    await deploy(src, root, { strategy: 'copy', fsync: false, releaseId: 'r1' });
    const live = path.join(root, 'releases', 'r1', 'app.js');
    const before = fs.statSync(live);
    // What an app or an after-switch hook rewriting its own file in place does: same size.
    const fd = fs.openSync(live, 'r+');
    fs.writeSync(fd, 'window.BUILD = "patched-live!";\n', 0);
    fs.closeSync(fd);
    const after = fs.statSync(live);
    // Control: the edit left size, inode and ctime as the stat cache saw them: a rule without the margin trusts it.
    if (after.ctimeMs !== before.ctimeMs || before.ctimeMs % 1000 !== 0) continue;
    proved = true;
    const result = await deploy(src, root, { strategy: 'hardlink', fsync: false, releaseId: 'r2' });
    assert.equal(fs.readFileSync(path.join(root, 'current', 'app.js'), 'utf8'), 'window.BUILD = "ci-build-0001";\n');
    assert.equal(result.linked, 1, 'other.js is still linked');
    assert.equal((await runCli(['verify', root])).code, 0);
  }
  assert.ok(proved, `none of ${attempt} attempts kept the edit within the second of the stamp (machine too slow?)`);
});

void test('a directory of the previous release moved into shared/ by rename and replaced by a symlink: its files keep their stamps but are copied, never linked through it (before: linked, sharing shared/\'s inode)', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(src, 'assets', 'app.css'), 'body{color:red}\n');
  fs.writeFileSync(path.join(src, 'index.html'), '<h1>hi</h1>\n');
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'r1', '--quiet'])).code, 0);
  // Capistrano style, by hand: the directory becomes a shared one, its files untouched (a rename moves no file's ctime).
  fs.mkdirSync(path.join(root, 'shared'));
  fs.renameSync(path.join(root, 'releases', 'r1', 'assets'), path.join(root, 'shared', 'assets'));
  fs.symlinkSync('../../shared/assets', path.join(root, 'releases', 'r1', 'assets'));
  const r = await runCli(['deploy', src, root, '--release-id', 'r2', '--strategy', 'hardlink', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const json = JSON.parse(r.stdout) as { linked: number; copied: number };
  assert.deepEqual([json.linked, json.copied], [1, 1]);
  assert.notEqual(fs.statSync(path.join(root, 'releases', 'r2', 'assets', 'app.css')).ino, fs.statSync(path.join(root, 'shared', 'assets', 'app.css')).ino);
  // What the app then writes into its shared directory stays there.
  fs.writeFileSync(path.join(root, 'shared', 'assets', 'app.css'), 'body{color:HACK}\n');
  assert.equal(fs.readFileSync(path.join(root, 'current', 'assets', 'app.css'), 'utf8'), 'body{color:red}\n');
  assert.equal((await runCli(['verify', root])).code, 0);
});
