// Artifacts in a format this tool does not read: an .tar.xz, .tar.zst, .tar.bz2 or 7z is named by
// its magic bytes with a hint to pack as .tar.gz, .tar or .zip; a gzip whose content is not a tar
// says so, rather than that the archive is truncated. Exit 2, one error line, nothing written.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { rootBeside } from '../harness/archives.ts';
import { runCli, tempDir, writeTree } from '../harness/cli.ts';
import { leftovers, treeSnapshot } from '../harness/invariants.ts';

void test('xz, zstd, bzip2 and 7z artifacts are named by their magic bytes; a gzip of something else than a tar says so; exit 2, root unchanged', async (t) => {
  const dir = tempDir(t);
  const build = writeTree(path.join(dir, 'build'), { 'index.html': '<h1>ok</h1>\n'.repeat(100) });
  const at = (name: string): string => path.join(dir, name);
  execFileSync('tar', ['-cJf', at('app.tar.xz'), '-C', build, '.']);
  execFileSync('tar', ['--zstd', '-cf', at('app.tar.zst'), '-C', build, '.']);
  execFileSync('tar', ['-cjf', at('app.tar.bz2'), '-C', build, '.']);
  // A 7z signature header (no 7z writer on this machine; the magic is what is read).
  fs.writeFileSync(at('app.7z'), Buffer.concat([Buffer.from([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c, 0x00, 0x04]), Buffer.alloc(600, 1)]));
  fs.writeFileSync(at('page.gz'), execFileSync('gzip', ['-c', path.join(build, 'index.html')]));
  fs.writeFileSync(at('tiny.gz'), execFileSync('gzip', ['-c'], { input: 'hello\n' }));
  const scene = await rootBeside(dir);
  for (const [file, message, hint] of [
    ['app.tar.xz', /app\.tar\.xz is xz-compressed \(by its first bytes\); only tar, tar\.gz and zip are read$/m, /pack the build as \.tar\.gz, \.tar or \.zip/],
    ['app.tar.zst', /app\.tar\.zst is zstd-compressed \(by its first bytes\)/, /pack the build as \.tar\.gz/],
    ['app.tar.bz2', /app\.tar\.bz2 is bzip2-compressed \(by its first bytes\)/, /pack the build as \.tar\.gz/],
    ['app.7z', /app\.7z is a 7z archive \(by its first bytes\)/, /pack the build as \.tar\.gz/],
    ['page.gz', /page\.gz is gzip-compressed, but what it holds is not a tar archive; nothing was deployed$/m, /tar -czf dist\.tar\.gz -C dist \./],
    ['tiny.gz', /tiny\.gz is gzip-compressed, but what it holds is not a tar archive/, /tar -czf/],
  ] as const) {
    const r = await runCli(['deploy', at(file), scene.root, '--no-fsync']);
    assert.equal(r.code, 2, `${file}: ${r.stderr}`);
    assert.match(r.stderr, message, file);
    assert.match(r.stderr, new RegExp(`^hint: .*${hint.source}`, 'm'), file);
    assert.doesNotMatch(r.stderr, /truncated|not a directory, nor/, file);
    assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1, file);
    assert.deepEqual(treeSnapshot(scene.root), scene.rootBefore, file);
    assert.deepEqual(leftovers(scene.root), [], file);
  }
});
