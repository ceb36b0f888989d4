// What goes live is what was built: fixed-mtime builds with same-size edits deploy exactly with
// every local strategy (rsync's quick check, the old size+mtime rule, publishes stale bytes on
// the same trees: the control), and a hardlink redeploy never carries tampered or untrusted bytes.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { jsonOf, runCli, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { manifestDiff, manifestOf } from '../harness/invariants.ts';
import { requireTool } from '../harness/swappers.ts';

interface Json {
  release?: string;
  linked?: number;
  copied?: number;
  digest?: string;
}

/** npm tarballs' time, on every file and directory. */
const FIXED = new Date('1985-10-26T08:15:00Z');
const FILES = 200;

function fixTimes(dir: string): void {
  const walk = (p: string): void => {
    const st = fs.lstatSync(p);
    if (st.isDirectory()) for (const name of fs.readdirSync(p)) walk(path.join(p, name));
    if (!st.isSymbolicLink()) fs.utimesSync(p, FIXED, FIXED);
  };
  walk(dir);
}

/** A build of FILES files; `changed` rewrites every tenth file with other bytes of the same length. */
function build(dir: string, changed: boolean): string {
  const files: Record<string, string> = {};
  for (let i = 0; i < FILES; i++) files[`d${i % 8}/f${i}.js`] = `export const v = "${changed && i % 10 === 0 ? 'B' : 'A'}${i}";\n`;
  writeTree(dir, files);
  fixTimes(dir);
  return dir;
}

/**
 * The control: rsync's quick check (size and mtime) against the previous build, as the old rule
 * did. Against a copy of it (`cp -a` keeps times): linked to the release's own files, the control
 * would give them names outside the releases, which a hardlink deploy then rightly never links.
 */
function quickCheckCopy(prev: string, next: string, out: string): string {
  const copy = `${out}.prev`;
  execFileSync('cp', ['-a', prev, copy]);
  execFileSync(requireTool('rsync', 'rsync'), ['-a', `--link-dest=${copy}`, `${next}/`, `${out}/`]);
  return out;
}

for (const strategy of ['auto', 'copy', 'hardlink'] as const) {
  void test(`fixed mtimes, 10% changed at the same size: --strategy ${strategy} publishes exactly the build`, async (t) => {
    const dir = tempDir(t);
    const v1 = build(path.join(dir, 'v1'), false);
    const v2 = build(path.join(dir, 'v2'), true);
    const root = path.join(dir, 'root');
    assert.equal((await runCli(['deploy', v1, root, '--release-id', 'one', '--strategy', strategy])).code, 0);

    // Control: the same trees through the size+mtime rule keep 20 stale files.
    const stale = manifestOf(quickCheckCopy(path.join(root, 'releases/one'), v2, path.join(dir, 'control')));
    const want = manifestOf(v2);
    const staleCount = [...want].filter(([rel, line]) => stale.get(rel) !== line).length;
    assert.equal(staleCount, FILES / 10, 'the control must publish stale bytes, or the test proves nothing');

    const result = await runCli(['deploy', v2, root, '--release-id', 'two', '--strategy', strategy, '--json']);
    assert.equal(result.code, 0, result.stderr);
    if (strategy === 'hardlink') assert.deepEqual([jsonOf<Json>(result).linked, jsonOf<Json>(result).copied], [FILES - FILES / 10, FILES / 10]);
    assert.equal(manifestDiff(manifestOf(path.join(root, 'current')), want), 'identical');
    const verify = await runCli(['verify', root]);
    assert.equal(verify.code, 0, verify.stdout);
  });
}

void test('tampering in place (same size, same mtime) is never carried into a hardlink redeploy', async (t) => {
  const dir = tempDir(t);
  const v1 = build(path.join(dir, 'v1'), false);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', v1, root, '--release-id', 'one', '--strategy', 'hardlink'])).code, 0);
  const victim = path.join(root, 'releases/one/d0/f0.js');
  const before = fs.statSync(victim);
  fs.writeFileSync(victim, fs.readFileSync(victim, 'utf8').replace('A0', 'X0'));
  fs.utimesSync(victim, FIXED, FIXED);
  // Control: size and mtime are the build's, and the manifest still claims the built bytes, so
  // either a metadata rule or a manifest trusted blindly would link the tampered file.
  const after = fs.statSync(victim);
  assert.deepEqual([after.size, after.mtimeMs, after.ino], [before.size, before.mtimeMs, before.ino]);
  const manifest = fs.readFileSync(path.join(root, '.atomic-deploy/manifests/one.json'), 'utf8');
  const built = execFileSync('sha256sum', [path.join(v1, 'd0/f0.js')], { encoding: 'utf8' }).split(' ')[0] ?? '';
  assert.ok(manifest.includes(`"path":"d0/f0.js","type":"file","mode":420,"size":${before.size},"sha256":"${built}"`));
  assert.equal((await runCli(['verify', root])).code, 5);

  const result = await runCli(['deploy', v1, root, '--release-id', 'two', '--strategy', 'hardlink', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual([jsonOf<Json>(result).linked, jsonOf<Json>(result).copied], [FILES - 1, 1]);
  assert.equal(fs.readFileSync(path.join(root, 'current/d0/f0.js'), 'utf8'), fs.readFileSync(path.join(v1, 'd0/f0.js'), 'utf8'));
  assert.equal(manifestDiff(manifestOf(path.join(root, 'current')), manifestOf(v1)), 'identical');
  assert.equal((await runCli(['verify', root])).code, 0);
});

void test('an untrusted previous manifest: the hardlink deploy copies everything, with a warning', async (t) => {
  for (const damage of ['truncate', 'remove', 'edit'] as const) {
    const dir = tempDir(t);
    const v1 = build(path.join(dir, 'v1'), false);
    const root = path.join(dir, 'root');
    assert.equal((await runCli(['deploy', v1, root, '--release-id', 'one'])).code, 0);
    const file = path.join(root, '.atomic-deploy/manifests/one.json');
    if (damage === 'truncate') fs.truncateSync(file, 100);
    else if (damage === 'remove') fs.rmSync(file);
    else fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(/"sha256":"[0-9a-f]{64}"/, `"sha256":"${'0'.repeat(64)}"`));
    const result = await runCli(['deploy', v1, root, '--release-id', 'two', '--strategy', 'hardlink', '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual([jsonOf<Json>(result).linked, jsonOf<Json>(result).copied], [0, FILES], damage);
    assert.match(result.stderr, /the manifest of release one is not trusted \(.+\): every file is copied, none linked/, damage);
    assert.equal((await runCli(['verify', root])).code, 0);
  }
});

void test('a root from before manifests: the next hardlink deploy hashes the previous release first, then links', async (t) => {
  const dir = tempDir(t);
  const v1 = build(path.join(dir, 'v1'), false);
  const v2 = build(path.join(dir, 'v2'), true);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', v1, root, '--release-id', 'one'])).code, 0);
  const recordFile = path.join(root, '.atomic-deploy/releases/one.json');
  const record = JSON.parse(fs.readFileSync(recordFile, 'utf8')) as Record<string, unknown>;
  delete record.digest;
  fs.writeFileSync(recordFile, JSON.stringify(record));
  fs.rmSync(path.join(root, '.atomic-deploy/manifests'), { recursive: true });
  const result = await runCli(['deploy', v2, root, '--release-id', 'two', '--strategy', 'hardlink']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /release one has no manifest \(made before manifests\): hashed 200 of its files to compare/);
  assert.match(result.stdout, /180 linked, 20 copied/);
  assert.equal(manifestDiff(manifestOf(path.join(root, 'current')), manifestOf(v2)), 'identical');
  assert.equal((await runCli(['verify', root])).code, 0);
  assert.equal((await runCli(['verify', root, '--release', 'one'])).code, 2);
});

void test('a hardlink redeploy links no file reached through a symlinked directory of the previous release (a shared directory the build now ships)', async (t) => {
  const dir = tempDir(t);
  const v1 = build(path.join(dir, 'v1'), false);
  const root = path.join(dir, 'root');
  fs.mkdirSync(path.join(root, 'shared/storage'), { recursive: true });
  assert.equal((await runCli(['deploy', v1, root, '--release-id', 'one', '--shared-dir', 'storage'])).code, 0);
  fs.writeFileSync(path.join(root, 'shared/storage/settings.ini'), 'config=1\n');
  // The next build ships storage/ itself, with the same bytes the live shared file holds.
  const v2 = build(path.join(dir, 'v2'), false);
  writeTree(v2, { 'storage/settings.ini': 'config=1\n' });
  const result = await runCli(['deploy', v2, root, '--release-id', 'two', '--strategy', 'hardlink', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual([jsonOf<Json>(result).linked, jsonOf<Json>(result).copied], [FILES, 1]);
  const shipped = fs.statSync(path.join(root, 'releases/two/storage/settings.ini'));
  const shared = fs.statSync(path.join(root, 'shared/storage/settings.ini'));
  assert.notEqual(shipped.ino, shared.ino, 'the release shares an inode with shared/: a write there would change the live release');
  fs.writeFileSync(path.join(root, 'shared/storage/settings.ini'), 'config=9\n');
  assert.equal(fs.readFileSync(path.join(root, 'current/storage/settings.ini'), 'utf8'), 'config=1\n');
  assert.equal((await runCli(['verify', root])).code, 0);
});

void test('a file written in the previous release while a hardlink deploy plans is copied from the build, and the next deploy does not trust it either', async (t) => {
  const dir = tempDir(t);
  const v1 = build(path.join(dir, 'v1'), false);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', v1, root, '--release-id', 'one'])).code, 0);
  const victim = path.join(root, 'releases/one/d0/f0.js');
  const journal = path.join(root, '.atomic-deploy/journal.json');
  // The hashes are decided before the journal is written; the links are made after the pause.
  const running = spawnCli(['deploy', v1, root, '--release-id', 'two', '--strategy', 'hardlink', '--json'], { failpoints: 'journal-written=sleep:1500' });
  for (let i = 0; i < 1000 && !fs.existsSync(journal); i++) await new Promise((r) => setTimeout(r, 5));
  assert.ok(fs.existsSync(journal), 'the deploy never reached its journal');
  fs.writeFileSync(victim, fs.readFileSync(victim, 'utf8').replace('A0', 'X0'));
  fs.utimesSync(victim, FIXED, FIXED);
  const result = await running.done;
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual([jsonOf<Json>(result).linked, jsonOf<Json>(result).copied], [FILES - 1, 1]);
  assert.equal(fs.readFileSync(path.join(root, 'current/d0/f0.js'), 'utf8'), fs.readFileSync(path.join(v1, 'd0/f0.js'), 'utf8'));
  assert.equal((await runCli(['verify', root])).code, 0);
  // Nothing races now: the next redeploy links release two's files, all of them the build's.
  const next = await runCli(['deploy', v1, root, '--release-id', 'three', '--strategy', 'hardlink', '--json']);
  assert.equal(next.code, 0, next.stderr);
  assert.equal(manifestDiff(manifestOf(path.join(root, 'current')), manifestOf(v1)), 'identical');
  assert.equal((await runCli(['verify', root])).code, 0);
});
