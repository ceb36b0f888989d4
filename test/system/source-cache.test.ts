// The source cache: an unchanged build is not read again, and still nothing stale is published:
// a same-size edit with its mtime put back, an edit in the same clock tick as the read (a
// whole-second filesystem makes one), and a damaged or foreign cache are all read from the build.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, jsonOf, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { mountFs } from '../harness/faults.ts';
import { requireTool } from '../harness/swappers.ts';
import { deploy } from '../../src/index.ts';
import { cachedHashes, parseSourceCache, SOURCE_CACHES_KEPT, stampKey, type SourceStamp } from '../../src/plan/source-cache.ts';

const FIXED = new Date('1985-10-26T08:15:00Z');
const FILES = 40;

interface Json {
  linked?: number;
  copied?: number;
}

/** A build with every mtime fixed, as npm tarballs and SOURCE_DATE_EPOCH builds have them. */
function build(dir: string, tag = 'A'): string {
  const files: Record<string, string> = {};
  for (let i = 0; i < FILES; i++) files[`d${i % 4}/f${i}.js`] = `export const v = "${tag}${i}";\n`;
  writeTree(dir, files);
  for (const rel of Object.keys(files)) fs.utimesSync(path.join(dir, rel), FIXED, FIXED);
  return dir;
}

const stampOf = (file: string): SourceStamp => {
  const st = fs.lstatSync(file, { bigint: true });
  return { dev: st.dev, ino: st.ino, size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
};
const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
/** The root's one source cache file (the tests here deploy one build directory per root unless they say otherwise). */
function cacheFile(root: string): string {
  const files = sourceCacheFiles(root);
  assert.equal(files.length, 1, `one source cache expected in ${root}: ${files.join(', ')}`);
  return files[0] as string;
}
/** Every source cache file of a root, one per build directory. */
const sourceCacheFiles = (root: string): string[] =>
  fs.readdirSync(path.join(root, '.atomic-deploy')).filter((n) => /^source-cache-[0-9a-f]{16}\.json$/.test(n)).sort().map((n) => path.join(root, '.atomic-deploy', n));

/** Same-size edit, mtime put back: what a build that pins times does to a changed file. */
function editKeepingMtime(file: string): void {
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('"A', '"B'));
  fs.utimesSync(file, FIXED, FIXED);
}

/** How many build files a hardlink redeploy opens, by strace. */
function buildFilesOpened(src: string, root: string, dir: string): number {
  const strace = requireTool('strace', 'strace');
  const log = path.join(dir, `trace.${Math.random().toString(36).slice(2)}`);
  execFileSync(strace, ['-f', '-qq', '-e', 'trace=openat', '-o', log, process.execPath, BIN, 'deploy', src, root, '--strategy', 'hardlink', '--quiet'], { env: { ...process.env, NO_COLOR: '1' } });
  return fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.includes(`"${src}/d`) && !l.includes('O_DIRECTORY') && !l.includes('= -1')).length;
}

void test('an unchanged build is not read again: its hashes come from the source cache (control: without the cache, every file is read)', async (t) => {
  const dir = tempDir(t);
  const src = build(path.join(dir, 'src'));
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--strategy', 'hardlink'])).code, 0);
  assert.ok(fs.existsSync(cacheFile(root)));
  // Control first: the same redeploy with no cache reads every build file, so the count can fail.
  const first = cacheFile(root);
  fs.rmSync(first);
  assert.ok(buildFilesOpened(src, root, dir) >= FILES, 'without a cache every build file must be read');
  // One open at most: the clone probe looks at one build file whatever the cache says.
  assert.ok(buildFilesOpened(src, root, dir) <= 1);
  const kept = { text: fs.readFileSync(cacheFile(root), 'utf8'), ino: fs.statSync(cacheFile(root)).ino };
  const result = await runCli(['deploy', src, root, '--strategy', 'hardlink', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual([jsonOf<Json>(result).linked, jsonOf<Json>(result).copied], [FILES, 0]);
  assert.equal((await runCli(['verify', root])).code, 0);
  // Every hash came from the cache: it already says all a new one would, so it is left as it was, and still serves.
  assert.deepEqual({ text: fs.readFileSync(cacheFile(root), 'utf8'), ino: fs.statSync(cacheFile(root)).ino }, kept);
  assert.ok(buildFilesOpened(src, root, dir) <= 1);
});

void test('a same-size edit with its mtime put back (touch -r) is read and published: its ctime moved', async (t) => {
  const dir = tempDir(t);
  const src = build(path.join(dir, 'src'));
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--strategy', 'hardlink'])).code, 0);
  const victim = path.join(src, 'd0/f0.js');
  const before = fs.statSync(victim);
  // The cache holds the file: without the ctime, it would be trusted.
  const cache = parseSourceCache(fs.readFileSync(cacheFile(root), 'utf8'));
  assert.equal(cache?.files.get('d0/f0.js')?.sha256, sha(fs.readFileSync(victim, 'utf8')));
  editKeepingMtime(victim);
  const after = fs.statSync(victim);
  // Control: size, mtime and inode are the build's, so a rule on those alone publishes the old bytes.
  assert.deepEqual([after.size, after.mtimeMs, after.ino], [before.size, before.mtimeMs, before.ino]);
  assert.notEqual(after.ctimeMs, before.ctimeMs);

  const result = await runCli(['deploy', src, root, '--strategy', 'hardlink', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual([jsonOf<Json>(result).linked, jsonOf<Json>(result).copied], [FILES - 1, 1]);
  assert.equal(fs.readFileSync(path.join(root, 'current/d0/f0.js'), 'utf8'), fs.readFileSync(victim, 'utf8'));
  assert.equal((await runCli(['verify', root])).code, 0);
  // A file was read: the cache is written again, with the edit's hash.
  assert.equal(parseSourceCache(fs.readFileSync(cacheFile(root), 'utf8'))?.files.get('d0/f0.js')?.sha256, sha(fs.readFileSync(victim, 'utf8')));
});

void test('a racy edit (same second as the read, whole-second timestamps, same size and mtime) is read and published', async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test mounts a loop filesystem: run it as root');
  const mnt = mountFs(t, 'ext4-seconds');
  let proved = false;
  // Each attempt needs write, deploy and edit within one second: a loaded machine may need many.
  let attempt = 0;
  for (; attempt < 30 && !proved; attempt++) {
    const base = path.join(mnt, `try${attempt}`);
    const src = path.join(base, 'src');
    const root = path.join(base, 'root');
    // Start just after a second begins, so the write, the deploy's read and the edit share it.
    await new Promise((resolve) => setTimeout(resolve, 1000 - (Date.now() % 1000) + 5));
    build(src);
    const victim = path.join(src, 'd0/f0.js');
    const read = stampOf(victim);
    await deploy(src, root, { strategy: 'hardlink', fsync: false, releaseId: 'one' });
    editKeepingMtime(victim);
    // Control: the edit left all five stamp fields as the deploy saw them, so a cache without
    // the racy rule would give the old hash. If a second boundary passed, try again.
    if (stampKey(stampOf(victim)) !== stampKey(read)) continue;
    proved = true;
    const result = await deploy(src, root, { strategy: 'hardlink', fsync: false, releaseId: 'two' });
    assert.equal(result.linked, FILES - 1);
    assert.equal(fs.readFileSync(path.join(root, 'current/d0/f0.js'), 'utf8'), 'export const v = "B0";\n');
    const lying = { source: src, sealedNs: read.ctimeNs + 1n, files: new Map([['d0/f0.js', { stamp: stampKey(read), sha256: sha('export const v = "A0";\n') }]]) };
    assert.equal(cachedHashes(lying, src, [['d0/f0.js', stampOf(victim)]]).size, 0, 'a ctime in the sealing second is racy');
  }
  assert.ok(proved, `none of ${attempt} attempts kept the edit within the second of the read (machine too slow?)`);
});

void test('a damaged, foreign or misplaced cache is ignored: the build is read, the deploy goes on', async (t) => {
  // The row for `row` made to claim `hash` for `stamp`, sealed after it (or the racy rule alone would refuse it).
  const forge = (text: string, row: string, stamp: SourceStamp, hash: string, fixCheck: boolean, source?: string): string => {
    let body = text.replace(/\n\],"check":"[0-9a-f]{64}"\}\n$/, '').replace(/"sealedNs":"[0-9]+"/, `"sealedNs":"${stamp.ctimeNs + 1_000_000_000n}"`);
    body = body.replace(new RegExp(`\\["${row.replace('/', '\\/')}","[0-9:]+","[0-9a-f]{64}"\\]`), JSON.stringify([row, stampKey(stamp), hash]));
    if (source !== undefined) body = body.replace(/"source":"[^"]*"/, `"source":${JSON.stringify(source)}`);
    body += '\n]';
    const check = fixCheck ? sha(body) : sha(`${body}x`);
    return `${body},"check":"${check}"}\n`;
  };
  for (const damage of ['flipped', 'foreign', 'format', 'fifo', 'directory'] as const) {
    const dir = tempDir(t);
    const src = build(path.join(dir, 'src'));
    const root = path.join(dir, 'root');
    assert.equal((await runCli(['deploy', src, root, '--strategy', 'hardlink'])).code, 0);
    const victim = path.join(src, 'd0/f0.js');
    const old = sha(fs.readFileSync(victim, 'utf8'));
    editKeepingMtime(victim);
    const file = cacheFile(root);
    const text = fs.readFileSync(file, 'utf8');
    if (damage === 'flipped' || damage === 'foreign') {
      // A cache that gives the old hash for the edited file's stamp: believed, it would publish stale bytes.
      const elsewhere = damage === 'foreign' ? path.join(dir, 'other-build') : undefined;
      const believed = parseSourceCache(forge(text, 'd0/f0.js', stampOf(victim), old, true));
      assert.equal(cachedHashes(believed, src, [['d0/f0.js', stampOf(victim)]]).get('d0/f0.js'), old, 'control: the forged row must be one that would be trusted');
      fs.writeFileSync(file, forge(text, 'd0/f0.js', stampOf(victim), old, damage === 'foreign', elsewhere));
    } else if (damage === 'format') {
      fs.writeFileSync(file, text.replace('source-cache@1', 'source-cache@0'));
    } else if (damage === 'fifo') {
      fs.rmSync(file);
      execFileSync('mkfifo', [file]);
    } else {
      fs.rmSync(file);
      fs.mkdirSync(file);
    }
    const result = await runCli(['deploy', src, root, '--strategy', 'hardlink', '--json'], { timeoutMs: 30_000 });
    assert.equal(result.code, 0, `${damage}: ${result.stderr}`);
    assert.deepEqual([jsonOf<Json>(result).linked, jsonOf<Json>(result).copied], [FILES - 1, 1], damage);
    assert.equal(fs.readFileSync(path.join(root, 'current/d0/f0.js'), 'utf8'), fs.readFileSync(victim, 'utf8'), damage);
    assert.equal((await runCli(['verify', root])).code, 0, damage);
  }
});

void test('each build directory keeps its own cache: deploys alternating between two builds read only what changed (control: without its cache, a build is read whole)', async (t) => {
  const dir = tempDir(t);
  const a = build(path.join(dir, 'a'));
  const b = build(path.join(dir, 'b'));
  // One changed file, as a 1%-changed build that lives beside the other would differ.
  editKeepingMtime(path.join(b, 'd0/f0.js'));
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', a, root, '--strategy', 'hardlink'])).code, 0);
  assert.equal((await runCli(['deploy', b, root, '--strategy', 'hardlink'])).code, 0);
  assert.equal(sourceCacheFiles(root).length, 2, 'one cache per build directory');
  // a again, after b: its own cache still holds, so the only build files opened are the probe's and
  // the one that differs from the previous release (copied, and hashed as it is).
  assert.ok(buildFilesOpened(a, root, dir) <= 2, 'a redeploy of a after b must take its hashes from a\'s cache');
  assert.ok(buildFilesOpened(b, root, dir) <= 2, 'and b after a from b\'s');
  const result = await runCli(['deploy', a, root, '--strategy', 'hardlink', '--json']);
  assert.deepEqual([jsonOf<Json>(result).linked, jsonOf<Json>(result).copied], [FILES - 1, 1]);
  assert.equal(fs.readFileSync(path.join(root, 'current/d0/f0.js'), 'utf8'), fs.readFileSync(path.join(a, 'd0/f0.js'), 'utf8'));
  assert.equal((await runCli(['verify', root])).code, 0);
  // Control: with a's cache gone, the same alternation reads a whole.
  const aCache = sourceCacheFiles(root).find((f) => parseSourceCache(fs.readFileSync(f, 'utf8'))?.source === fs.realpathSync(a));
  assert.ok(aCache !== undefined);
  assert.equal((await runCli(['deploy', b, root, '--strategy', 'hardlink'])).code, 0);
  fs.rmSync(aCache);
  assert.ok(buildFilesOpened(a, root, dir) >= FILES, 'without its cache every file of a must be read');
});

void test('at most SOURCE_CACHES_KEPT build directories keep a cache: the one used longest ago goes, a cache that served is kept as used', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const builds = Array.from({ length: SOURCE_CACHES_KEPT + 1 }, (_, i) => build(path.join(dir, `b${i}`), `T${i}`));
  const cached = (): string[] => sourceCacheFiles(root).map((f) => parseSourceCache(fs.readFileSync(f, 'utf8'))?.source ?? '?').sort();
  // An old single cache (before one per build directory) is taken away with the first write.
  fs.mkdirSync(path.join(root, '.atomic-deploy'), { recursive: true });
  fs.writeFileSync(path.join(root, '.atomic-deploy/source-cache.json'), '{}');
  for (const b of builds.slice(0, SOURCE_CACHES_KEPT)) {
    assert.equal((await runCli(['deploy', b, root, '--strategy', 'hardlink', '--keep', '0'])).code, 0);
    // Distinct times for the order, on a filesystem with coarse ones too.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(fs.existsSync(path.join(root, '.atomic-deploy/source-cache.json')), false);
  assert.deepEqual(cached(), builds.slice(0, SOURCE_CACHES_KEPT).map((b) => fs.realpathSync(b)).sort());
  // b0 used again, every hash from its cache (nothing rewritten): it becomes the most recently used.
  const again = await runCli(['deploy', builds[0] as string, root, '--strategy', 'hardlink', '--keep', '0', '--json']);
  assert.equal(again.code, 0, again.stderr);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal((await runCli(['deploy', builds[SOURCE_CACHES_KEPT] as string, root, '--strategy', 'hardlink', '--keep', '0'])).code, 0);
  // b1, used longest ago, went; b0 stayed.
  const expected = [builds[0], ...builds.slice(2)].map((b) => fs.realpathSync(b as string)).sort();
  assert.deepEqual(cached(), expected);
});
