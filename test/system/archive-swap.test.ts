// A local artifact replaced or rewritten while it deploys must never put bytes live that --sha256
// and the signature did not check. A zip is read twice (hashed in order, extracted from its end):
// CI publishing `dist.zip` by rename while a deploy reads it had one file checked and the other
// extracted. Every read now checks it holds the inode first opened, unwritten since.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { extractArtifact, openArtifact } from '../../src/act/archive.ts';
import { sha256Of, writeArchives } from '../harness/archives.ts';
import { runCli, tempDir } from '../harness/cli.ts';

const LIMITS = { stripComponents: 0, maxFiles: 1000, maxBytes: 1 << 30, keepSetid: false, keepOwner: false };
const DOWNLOAD = { timeoutMs: 10_000, retries: 0 };

function builds(dir: string): { good: Record<'zip' | 'tar' | 'tar.gz', string>; evil: Record<'zip' | 'tar' | 'tar.gz', string> } {
  const formats = ['zip', 'tar', 'tar.gz'] as const;
  const files = (mark: string): { name: string; data: string }[] => [
    { name: 'index.html', data: `${mark}\n` },
    { name: 'app.js', data: `${mark} `.repeat(20_000) },
  ];
  const good = Object.fromEntries(formats.map((f) => [f, path.join(dir, `good.${f}`)])) as Record<(typeof formats)[number], string>;
  const evil = Object.fromEntries(formats.map((f) => [f, path.join(dir, `evil.${f}`)])) as Record<(typeof formats)[number], string>;
  writeArchives(formats.flatMap((format) => [
    { format, out: good[format], specs: files('GOOD') },
    { format, out: evil[format], specs: files('EVIL') },
  ]));
  return { good, evil };
}

void test('an artifact replaced by rename, or written in place, after it was opened: the extraction fails naming it; unchanged, it extracts', async (t) => {
  const dir = tempDir(t);
  const { good, evil } = builds(dir);
  for (const format of ['zip', 'tar', 'tar.gz'] as const) {
    const cases: [string, (file: string) => void, RegExp | undefined][] = [
      ['unchanged', () => undefined, undefined],
      ['replaced by rename', (file) => {
        fs.copyFileSync(evil[format], `${file}.new`);
        fs.renameSync(`${file}.new`, file);
      }, /changed while it was read \(it was replaced by another file\); nothing was deployed$/],
      ['rewritten in place, same size', (file) => {
        const fd = fs.openSync(file, 'r+');
        fs.writeSync(fd, fs.readFileSync(evil[format]), 0, fs.statSync(file).size, 0);
        fs.closeSync(fd);
      }, /changed while it was read \(it was written to\); nothing was deployed$/],
    ];
    for (const [label, change, refused] of cases) {
      const file = path.join(dir, `dist-${format}-${label.replace(/\W+/g, '-')}.${format}`);
      fs.copyFileSync(good[format], file);
      // Same size, so only the identity check can tell (a timestamp tick apart).
      assert.equal(fs.statSync(good[format]).size, fs.statSync(evil[format]).size, format);
      const artifact = await openArtifact(file, DOWNLOAD);
      await new Promise((resolve) => setTimeout(resolve, 20));
      change(file);
      const dest = path.join(dir, `out-${format}-${label.replace(/\W+/g, '-')}`);
      fs.mkdirSync(dest);
      const run = extractArtifact(artifact, dest, { limits: LIMITS, spool: `${dest}.zip` });
      if (refused === undefined) {
        const result = await run;
        assert.equal(result.sha256, sha256Of(good[format]), `${format} ${label}`);
        assert.equal(fs.readFileSync(path.join(dest, 'index.html'), 'utf8'), 'GOOD\n', `${format} ${label}`);
      } else {
        await assert.rejects(run, (error: Error) => refused.test(error.message), `${format} ${label}`);
      }
      await artifact.chunks.return(undefined);
    }
  }
});

void test('a zip republished by rename over and over while it deploys with --sha256 of the good one: never the other build live (the old double open did)', async (t) => {
  const dir = tempDir(t);
  const { good, evil } = builds(dir);
  const dist = path.join(dir, 'dist.zip');
  fs.copyFileSync(good.zip, dist);
  const sha = sha256Of(good.zip);
  // The publisher: copy one of the two builds to a temporary name, rename it over dist.zip, again.
  const publisher = spawn('python3', ['-c', String.raw`
import os, shutil, sys, time
good, evil, dist = sys.argv[1:4]
i = 0
while True:
    shutil.copyfile((good, evil)[i % 2], dist + '.tmp'); os.rename(dist + '.tmp', dist); i += 1; time.sleep(0.0005)
`, good.zip, evil.zip, dist], { stdio: 'ignore' });
  const stopped = new Promise((resolve) => publisher.once('exit', resolve));
  try {
    await deployWhilePublished(dist, path.join(dir, 'root'), sha);
  } finally {
    publisher.kill('SIGKILL');
    await stopped;
  }
});

async function deployWhilePublished(dist: string, root: string, sha: string): Promise<void> {
  const outcomes = { live: 0, changed: 0, mismatch: 0 };
  for (let i = 0; i < 20; i++) {
    const r = await runCli(['deploy', dist, root, '--sha256', sha, '--keep', '0', '--no-fsync', '--quiet']);
    if (r.code === 0) {
      assert.equal(fs.readFileSync(path.join(root, 'current/index.html'), 'utf8'), 'GOOD\n', `deploy ${i}: the other build went live with exit 0`);
      outcomes.live++;
    } else if (/changed while it was read/.test(r.stderr)) {
      assert.equal(r.code, 1, r.stderr);
      outcomes.changed++;
    } else {
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /sha256 is [0-9a-f]{64}, expected/);
      outcomes.mismatch++;
    }
  }
  // The publisher really raced the deploys: some were refused.
  assert.ok(outcomes.changed + outcomes.mismatch > 0, JSON.stringify(outcomes));
}

void test('an artifact replaced by rename twice (the second file can take the first one\'s freed inode number) is reported as replaced, not as written to', async (t) => {
  const dir = tempDir(t);
  const { good, evil } = builds(dir);
  for (const format of ['zip', 'tar', 'tar.gz'] as const) {
    const file = path.join(dir, `twice.${format}`);
    fs.copyFileSync(good[format], file);
    const artifact = await openArtifact(file, DOWNLOAD);
    const first = fs.statSync(file).ino;
    // Publish twice by rename: while nothing holds the first file open, its inode is freed by the
    // first rename and its number can go to the second publish's new file.
    let reused = false;
    for (let i = 0; i < 50 && !reused; i++) {
      fs.copyFileSync(evil[format], `${file}.new`);
      fs.renameSync(`${file}.new`, file);
      reused = fs.statSync(file).ino === first;
    }
    const dest = path.join(dir, `out-twice-${format}`);
    fs.mkdirSync(dest);
    await assert.rejects(extractArtifact(artifact, dest, { limits: LIMITS, spool: `${dest}.zip` }), (error: Error & { hint?: string }) => {
      assert.match(error.message, /changed while it was read \(it was replaced by another file\); nothing was deployed$/, format);
      assert.doesNotMatch(error.hint ?? '', /rename it into place/, format);
      return true;
    });
    await artifact.chunks.return(undefined);
    artifact.release?.();
  }
});
