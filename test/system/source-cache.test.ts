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
import { cachedHashes, parseSourceCache, stampKey, type SourceStamp } from '../../src/plan/source-cache.ts';

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
const cacheFile = (root: string): string => path.join(root, '.atomic-deploy/source-cache.json');

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
  fs.rmSync(cacheFile(root));
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
