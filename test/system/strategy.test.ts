// --strategy: copy-on-write clones on loop-mounted btrfs and xfs images made here, a clear
// refusal where clones are impossible, and hardlinks to the previous release with their guards.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, snapshot, tempDir, writeTree, type CliResult } from '../harness/cli.ts';
import { asUser, mountFs, runWrapped } from '../harness/faults.ts';
import { requireTool } from '../harness/swappers.ts';
import { treeSnapshot } from '../harness/invariants.ts';

interface Json {
  release?: string;
  strategy?: string;
  cloned?: boolean;
  linked?: number;
  copied?: number;
  files?: number;
  error?: { code: string; message: string; hint?: string };
}

/** Physical extents of a file and whether FIEMAP flags them shared, from `filefrag -v`. */
function extents(file: string): { physical: string[]; shared: boolean } {
  const out = execFileSync(requireTool('filefrag', 'e2fsprogs'), ['-v', file], { encoding: 'utf8' });
  const rows = out.split('\n').filter((l) => /^\s*\d+:/.test(l));
  return { physical: rows.map((r) => (r.split(':')[2] ?? '').trim()), shared: rows.length > 0 && rows.every((r) => /\bshared\b/.test(r)) };
}

function bigSource(dir: string): string {
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n', 'css/site.css': 'body{}\n' });
  fs.writeFileSync(path.join(src, 'big.bin'), Buffer.alloc(4 * 1024 * 1024, 7));
  return src;
}

for (const type of ['btrfs', 'xfs'] as const) {
  void test(`${type}: --strategy reflink clones, and the release shares the source's extents`, async (t) => {
    const mnt = mountFs(t, type);
    const src = bigSource(mnt);
    execFileSync('sync', ['-f', mnt]);
    const root = path.join(mnt, 'root');
    const result = await runCli(['deploy', src, root, '--strategy', 'reflink', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const json = jsonOf<Json>(result);
    assert.equal(json.strategy, 'reflink');
    assert.equal(json.cloned, true);
    assert.equal(json.copied, 3);
    const released = path.join(root, 'releases', json.release as string, 'big.bin');
    assert.deepEqual(fs.readFileSync(released), fs.readFileSync(path.join(src, 'big.bin')));
    const a = extents(path.join(src, 'big.bin'));
    const b = extents(released);
    t.diagnostic(`${type} extents: source ${JSON.stringify(a)}, release ${JSON.stringify(b)}`);
    assert.ok(b.shared, 'release file extents are not flagged shared');
    assert.deepEqual(b.physical, a.physical, 'release and source do not use the same blocks');
    // Not a hardlink: a write to the release never reaches the source.
    assert.notEqual(fs.statSync(released).ino, fs.statSync(path.join(src, 'big.bin')).ino);

    // auto clones here as well, and says so.
    const auto = await runCli(['deploy', src, root, '--json']);
    assert.equal(auto.code, 0, auto.stderr);
    // The strategy used, not the one asked for.
    assert.equal(jsonOf<Json>(auto).strategy, 'reflink');
    assert.equal(jsonOf<Json & { strategyRequested?: string }>(auto).strategyRequested, 'auto');
    const record = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', `${String(jsonOf<Json>(auto).release)}.json`), 'utf8')) as { strategy?: string; strategyRequested?: string };
    assert.deepEqual([record.strategy, record.strategyRequested], ['reflink', 'auto'], 'the release log names the strategy used');
    assert.equal(jsonOf<Json>(auto).cloned, true);
    assert.ok(extents(path.join(root, 'current/big.bin')).shared);
  });
}

void test('btrfs: --strategy reflink with fixed mtimes and same-size edits publishes exactly the build', async (t) => {
  const mnt = mountFs(t, 'btrfs');
  const fixed = new Date('1985-10-26T08:15:00Z');
  const make = (name: string, tag: string): string => {
    const dir = writeTree(path.join(mnt, name), { 'version': `${tag}\n`, 'index.html': 'same\n' });
    for (const f of ['version', 'index.html', '.']) fs.utimesSync(path.join(dir, f), fixed, fixed);
    return dir;
  };
  const v1 = make('v1', 'v1');
  const v2 = make('v2', 'v2');
  const root = path.join(mnt, 'root');
  assert.equal((await runCli(['deploy', v1, root, '--strategy', 'reflink', '--release-id', 'one'])).code, 0);
  // Control: the size+mtime rule (rsync's quick check) keeps the stale version file.
  const control = path.join(mnt, 'control');
  execFileSync(requireTool('rsync', 'rsync'), ['-a', `--link-dest=${path.join(root, 'releases/one')}`, `${v2}/`, `${control}/`]);
  assert.equal(fs.readFileSync(path.join(control, 'version'), 'utf8'), 'v1\n');
  const result = await runCli(['deploy', v2, root, '--strategy', 'reflink', '--release-id', 'two', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(jsonOf<Json>(result).cloned, true);
  assert.equal(fs.readFileSync(path.join(root, 'current/version'), 'utf8'), 'v2\n');
  assert.equal((await runCli(['verify', root])).code, 0);
});

void test('--strategy reflink fails with a clear error on ext4 and tmpfs, changing nothing', async (t) => {
  const dir = tempDir(t);
  const src = bigSource(dir);
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', src, root, '--strategy', 'copy', '--json']);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(jsonOf<Json>(first).cloned, false);
  const fsType = execFileSync('stat', ['-f', '-c', '%T', root], { encoding: 'utf8' }).trim();
  // Times too: a probe file made and removed in releases/ would move its mtime.
  const before = treeSnapshot(root, { times: true });
  for (const extra of [[], ['--dry-run']]) {
    const refused = await runCli(['deploy', src, root, '--strategy', 'reflink', '--json', ...extra]);
    assert.equal(refused.code, 2, refused.stderr);
    const error = jsonOf<Json>(refused).error;
    assert.equal(error?.code, 'UNSUPPORTED_PLATFORM');
    assert.match(error?.message ?? '', /--strategy reflink: cannot clone files from .* \((ENOTSUP|EOPNOTSUPP|EXDEV|EINVAL)\); copy-on-write clones need the source and the root on one btrfs or xfs/);
    if (fsType === 'ext2/ext3') assert.match(error?.message ?? '', /the root is on ext2\/ext3\/ext4, which has no clones$/);
    assert.match(error?.hint ?? '', /--strategy auto/);
    assert.deepEqual(treeSnapshot(root, { times: true }), before, `${extra.join(' ')}: the root changed`);
    t.diagnostic(`refused on ${fsType}: ${error?.message ?? ''}`);
  }

  // auto falls back to a plain copy without a word of complaint.
  const auto = await runCli(['deploy', src, root, '--json']);
  assert.equal(auto.code, 0, auto.stderr);
  assert.equal(jsonOf<Json>(auto).cloned, false);

  const tmpfs = mountFs(t, 'tmpfs');
  const tsrc = bigSource(tmpfs);
  const troot = path.join(tmpfs, 'root');
  const onTmpfs = await runCli(['deploy', tsrc, troot, '--strategy', 'reflink', '--json']);
  assert.equal(onTmpfs.code, 2, onTmpfs.stderr);
  assert.equal(jsonOf<Json>(onTmpfs).error?.code, 'UNSUPPORTED_PLATFORM');
  assert.ok(!fs.existsSync(troot), 'a refused deploy created the root');
});

function tree(n: number): Record<string, string> {
  const files: Record<string, string> = {};
  for (let i = 0; i < n; i++) files[`d${i % 10}/f${i}.txt`] = `file ${i}\n`;
  return files;
}

void test('--strategy hardlink links unchanged files from the previous release and copies the rest', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), tree(200));
  const root = path.join(dir, 'root');
  const hl = ['--strategy', 'hardlink', '--json'];

  const first = await runCli(['deploy', src, root, ...hl]);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual([jsonOf<Json>(first).linked, jsonOf<Json>(first).copied], [0, 200], 'nothing to link on a first deploy');
  const v1 = jsonOf<Json>(first).release as string;

  const second = await runCli(['deploy', src, root, ...hl]);
  assert.equal(second.code, 0, second.stderr);
  const j2 = jsonOf<Json>(second);
  assert.deepEqual([j2.strategy, j2.linked, j2.copied], ['hardlink', 200, 0]);
  const v2 = j2.release as string;
  const ino = (id: string, rel: string): number => fs.statSync(path.join(root, 'releases', id, rel)).ino;
  assert.equal(ino(v1, 'd3/f3.txt'), ino(v2, 'd3/f3.txt'));
  assert.equal(fs.statSync(path.join(root, 'releases', v2, 'd3/f3.txt')).nlink, 2);

  // One file changed (content and mtime): only that one is copied.
  fs.writeFileSync(path.join(src, 'd3/f3.txt'), 'changed\n');
  const third = await runCli(['deploy', src, root, ...hl]);
  const j3 = jsonOf<Json>(third);
  assert.deepEqual([j3.linked, j3.copied], [199, 1]);
  const v3 = j3.release as string;
  assert.notEqual(ino(v3, 'd3/f3.txt'), ino(v2, 'd3/f3.txt'));
  assert.equal(ino(v3, 'd4/f4.txt'), ino(v1, 'd4/f4.txt'));
  assert.equal(fs.readFileSync(path.join(root, 'current/d3/f3.txt'), 'utf8'), 'changed\n');
  assert.equal(fs.readFileSync(path.join(root, 'releases', v2, 'd3/f3.txt'), 'utf8'), 'file 3\n', 'the copy reached the previous release');

  // Human output: the summary says how many were linked.
  const human = await runCli(['deploy', src, root, '--strategy', 'hardlink']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /200 linked, 0 copied/);
});

void test('hardlink guard: mode changes, group-writable and setuid files are always copied', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'a.txt': 'a\n', 'uploads.json': '{}\n', 'bin/tool': '#!/bin/sh\n', 'b.txt': 'b\n' });
  fs.chmodSync(path.join(src, 'uploads.json'), 0o664);
  fs.chmodSync(path.join(src, 'bin/tool'), 0o4755);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  fs.chmodSync(path.join(src, 'b.txt'), 0o600);
  const result = await runCli(['deploy', src, root, '--release-id', 'two', '--strategy', 'hardlink', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual([jsonOf<Json>(result).linked, jsonOf<Json>(result).copied], [1, 3]);
  const mode = (id: string, rel: string): number => fs.statSync(path.join(root, 'releases', id, rel)).mode & 0o7777;
  assert.equal(mode('one', 'b.txt'), 0o644, 'the previous release kept its mode');
  assert.equal(mode('two', 'b.txt'), 0o600);
  assert.equal(mode('two', 'bin/tool'), 0o4755);
  assert.equal(fs.statSync(path.join(root, 'releases/two/uploads.json')).nlink, 1);
});

void test('hardlink links by content: a touched file is linked, a same-size edit with the old mtime is copied; --checksum is a no-op', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'touched.txt': 'same\n', 'sneaky.txt': 'AAAA\n', 'plain.txt': 'p\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  const sneaky = path.join(src, 'sneaky.txt');
  const old = fs.statSync(sneaky);
  fs.writeFileSync(sneaky, 'BBBB\n');
  fs.utimesSync(sneaky, old.atime, old.mtime);
  const later = new Date(Date.now() + 60_000);
  fs.utimesSync(path.join(src, 'touched.txt'), later, later);
  // Control: the edit keeps size and mtime, so the old size+mtime rule would have linked the stale file.
  const prev = fs.statSync(path.join(root, 'releases/one/sneaky.txt'));
  const now = fs.statSync(sneaky);
  assert.deepEqual([prev.size, prev.mtimeMs], [now.size, now.mtimeMs]);

  const two = await runCli(['deploy', src, root, '--release-id', 'two', '--strategy', 'hardlink', '--json']);
  assert.equal(two.code, 0, two.stderr);
  assert.deepEqual([jsonOf<Json>(two).linked, jsonOf<Json>(two).copied], [2, 1]);
  assert.equal(fs.readFileSync(path.join(root, 'releases/two/sneaky.txt'), 'utf8'), 'BBBB\n');
  assert.equal(fs.statSync(path.join(root, 'releases/two/touched.txt')).ino, fs.statSync(path.join(root, 'releases/one/touched.txt')).ino);

  // --checksum is accepted with any strategy and changes nothing.
  for (const strategy of ['hardlink', 'copy', 'auto']) {
    const again = await runCli(['deploy', src, root, '--strategy', strategy, '--checksum', '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(fs.readFileSync(path.join(root, 'current/sneaky.txt'), 'utf8'), 'BBBB\n');
  }
});

void test('hardlink refuses a previous release on another filesystem', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'a.txt': 'a\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  // The live release moved to another filesystem and left a symlink behind.
  const other = mountFs(t, 'tmpfs');
  fs.cpSync(path.join(root, 'releases/one'), path.join(other, 'one'), { recursive: true });
  fs.rmSync(path.join(root, 'releases/one'), { recursive: true });
  fs.symlinkSync(path.join(other, 'one'), path.join(root, 'releases/one'));
  const before = snapshot(root);
  const result = await runCli(['deploy', src, root, '--strategy', 'hardlink', '--json']);
  assert.equal(result.code, 2, result.stderr);
  assert.match(jsonOf<Json>(result).error?.message ?? '', /different filesystems, and a hardlink cannot cross them/);
  assert.deepEqual(snapshot(root).filter((l) => !l.startsWith('.tmp')), before.filter((l) => !l.startsWith('.tmp')));
  assert.equal(currentId(root), 'one');
  assert.deepEqual(releaseIds(root), ['one']);
});

void test('not root: a build whose group is not the deploying user\'s still links its unchanged files (a copy is the user\'s anyway); the step line says why the others were copied', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n', 'app.js': 'x'.repeat(100), 'style.css': 'y'.repeat(50) });
  // The build belongs to nobody, with root's group (a CI checkout by another account, say).
  execFileSync('chown', ['-R', 'nobody:root', src]);
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  fs.chownSync(root, 65534, 65534);
  const asNobody = (args: string[]): Promise<CliResult> => runWrapped(args, { prefix: asUser('nobody') });
  const first = await asNobody(['deploy', src, root, '--strategy', 'hardlink', '--no-fsync', '--json']);
  assert.equal(first.code, 0, first.stderr);
  execFileSync('sh', ['-c', 'printf "v2\\n" > "$1/index.html"', 'sh', src]);
  const second = await asNobody(['deploy', src, root, '--strategy', 'hardlink', '--no-fsync']);
  assert.equal(second.code, 0, second.stderr);
  // The old rule compared the build's group (root) with the release's (the deploying user's): 0 linked, ever.
  assert.match(second.stdout, /hardlink: 2 of 3 files are unchanged since release \S+ and are to be linked, not copied \(copied, by reason: 1 content\)/);
  const third = await asNobody(['deploy', src, root, '--strategy', 'hardlink', '--no-fsync', '--json']);
  assert.deepEqual([jsonOf<Json>(third).linked, jsonOf<Json>(third).copied], [3, 0]);
  const verify = await asNobody(['verify', root]);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
});

void test('hardlink never links a previous file that also has a name outside the releases (`ln -f`, a dedup tool such as hardlink(1), rdfind or jdupes): a write in place there would reach the new live release (before: linked)', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'app.js': 'app v1\n', 'lib.js': 'lib\n', 'a.txt': 'twin\n', 'b.txt': 'twin\n', 'kept.txt': 'kept\n' });
  // Another tree on the same filesystem holding the same bytes: what a dedup run over the disk links.
  const elsewhere = writeTree(path.join(dir, 'elsewhere'), { 'app.js': 'app v1\n', 'lib.js': 'lib\n' });
  const hl = ['--strategy', 'hardlink', '--json'];
  const ino = (p: string): number => fs.statSync(p).ino;
  for (const cache of ['with its stat cache', 'without a stat cache'] as const) {
    const root = path.join(dir, `root ${cache}`);
    assert.equal((await runCli(['deploy', src, root, '--release-id', 'one', ...hl])).code, 0);
    const one = path.join(root, 'releases/one');
    // The dedup keeps the release's inode for app.js and the other tree's for lib.js, and makes
    // the release's b.txt a second name of its a.txt.
    fs.rmSync(path.join(elsewhere, 'app.js'));
    fs.linkSync(path.join(one, 'app.js'), path.join(elsewhere, 'app.js'));
    fs.rmSync(path.join(one, 'lib.js'));
    fs.linkSync(path.join(elsewhere, 'lib.js'), path.join(one, 'lib.js'));
    fs.rmSync(path.join(one, 'b.txt'));
    fs.linkSync(path.join(one, 'a.txt'), path.join(one, 'b.txt'));
    if (cache === 'without a stat cache') fs.rmSync(path.join(root, '.atomic-deploy/manifests/one.stat.json'));
    // Control: the bytes are the build's, so verify finds nothing to say; only the link counts tell.
    assert.equal((await runCli(['verify', root])).code, 0, cache);

    const two = await runCli(['deploy', src, root, '--release-id', 'two', ...hl]);
    assert.equal(two.code, 0, two.stderr);
    assert.deepEqual([jsonOf<Json>(two).linked, jsonOf<Json>(two).copied], [1, 4], cache);
    const rel = path.join(root, 'releases/two');
    assert.equal(ino(path.join(rel, 'kept.txt')), ino(path.join(one, 'kept.txt')), `${cache}: an untouched file is still linked`);
    for (const name of ['app.js', 'lib.js', 'a.txt', 'b.txt']) {
      assert.equal(fs.statSync(path.join(rel, name)).nlink, 1, `${cache}: ${name} is a copy of its own`);
    }
    // What the shared inode would have done: a write in place in the other tree reached the live release.
    fs.writeFileSync(path.join(elsewhere, 'app.js'), 'edited elsewhere\n');
    fs.writeFileSync(path.join(elsewhere, 'lib.js'), 'edited elsewhere\n');
    assert.equal(fs.readFileSync(path.join(root, 'current/app.js'), 'utf8'), 'app v1\n', cache);
    assert.equal(fs.readFileSync(path.join(root, 'current/lib.js'), 'utf8'), 'lib\n', cache);
    assert.equal((await runCli(['verify', root])).code, 0, cache);
    writeTree(elsewhere, { 'app.js': 'app v1\n', 'lib.js': 'lib\n' });

    // The chain goes on as before: a redeploy on top links every file of the clean release.
    const three = await runCli(['deploy', src, root, '--release-id', 'three', ...hl]);
    assert.equal(three.code, 0, three.stderr);
    assert.deepEqual([jsonOf<Json>(three).linked, jsonOf<Json>(three).copied], [5, 0], cache);
    // And after a rollback (stamps of `two` moved by three's links), every name is a release's: still linked.
    assert.equal((await runCli(['rollback', root, '--to', 'two'])).code, 0);
    const four = await runCli(['deploy', src, root, '--release-id', 'four', ...hl]);
    assert.equal(four.code, 0, four.stderr);
    assert.deepEqual([jsonOf<Json>(four).linked, jsonOf<Json>(four).copied], [5, 0], cache);
  }
});
