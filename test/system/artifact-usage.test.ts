// Usage of the artifact flags: --max-bytes 0 (which would refuse every file with content) is
// refused as --max-files 0 is, from the flag, the environment and the config file, with nothing
// written; `deploy --help` says the source may be an archive or a URL.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir, writeTree } from '../harness/cli.ts';

void test('--max-bytes 0 is a usage error (exit 2, nothing made) from the flag, ATOMIC_DEPLOY_MAX_BYTES and artifact.maxBytes; deploy --help names archives and URLs', async (t) => {
  const dir = tempDir(t);
  const build = writeTree(path.join(dir, 'build'), { 'index.html': 'ok\n' });
  const tgz = path.join(dir, 'app.tgz');
  execFileSync('tar', ['-czf', tgz, '-C', build, '.']);
  const root = path.join(dir, 'root');
  const config = path.join(dir, 'c.yaml');
  fs.writeFileSync(config, 'artifact:\n  maxBytes: 0\n');
  for (const [args, env, message] of [
    [['--max-bytes', '0'], {}, /^error: option '--max-bytes <size>' argument '0' is invalid\. expected a size of at least 1 byte/m],
    [['--max-bytes', '0K'], {}, /expected a size of at least 1 byte/],
    [[], { ATOMIC_DEPLOY_MAX_BYTES: '0' }, /^error: ATOMIC_DEPLOY_MAX_BYTES="0": expected a size of at least 1 byte/m],
    [['--config', config], {}, /artifact\.maxBytes.*a size of at least 1 byte/],
  ] as const) {
    const r = await runCli(['deploy', tgz, root, '--no-fsync', ...args], { env: { ...process.env, ...env } });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.ok(!fs.existsSync(root), `${args.join(' ')}: the root was made`);
  }
  // Control: --max-files 0 is refused the same way.
  const files = await runCli(['deploy', tgz, root, '--max-files', '0']);
  assert.equal(files.code, 2);
  const help = await runCli(['deploy', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout.replace(/\s+/g, " "), /source build directory, archive \(\.tar, \.tar\.gz\/\.tgz, \.zip\) or http\(s\) URL to one, to publish/);
});

// Sources that are not there, or not fetched, got the build directory's words ("build first, then
// deploy the build output directory"), `unknown command` in the short form, or, for
// `http:///dist.tgz` (an empty host variable), three DNS retries of the host "dist.tgz".
void test('a missing artifact, a URL of another scheme, "-" and a pipe, and a URL with no host each say what they are (exit 2, nothing made)', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const cases: [string[], RegExp, RegExp][] = [
    [['deploy', 'missing.tgz', root], /^error: missing\.tgz does not exist$/m, /^hint: check the path; an artifact a failed download or build step did not leave/m],
    [['missing.tgz', root], /^error: missing\.tgz does not exist$/m, /^hint: check the path; an artifact/m],
    [['deploy', 'ftp://user:secret@h/x.tgz?sig=abc', root], /^error: ftp:\/\/h\/x\.tgz: ftp:\/\/ URLs are not fetched, only http:\/\/ and https:\/\/ ones$/m, /^hint: download it first and deploy the file/m],
    [['s3://bucket/x.tgz', root], /^error: s3:\/\/bucket\/x\.tgz: s3:\/\/ URLs are not fetched/m, /^hint: download it first/m],
    [['deploy', '-', root], /^error: the source "-": an archive on standard input is not read$/m, /^hint: save it to a file and deploy that file/m],
    [['deploy', 'http:///dist.tgz', root], /^error: http:\/\/\/dist\.tgz is not a valid URL: it names no host \(three slashes after the scheme\); nothing was deployed$/m, /^hint: check the URL/m],
  ];
  for (const [args, message, hint] of cases) {
    const r = await runCli(args, { cwd: dir });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.match(r.stderr, hint);
    assert.doesNotMatch(r.stderr, /secret|sig=|retrying/);
  }
  // A pipe (`<(curl …)`, /dev/stdin): the same, from its type.
  const fifo = path.join(dir, 'pipe');
  execFileSync('mkfifo', [fifo]);
  const piped = await runCli(['deploy', fifo, root], { cwd: dir });
  assert.equal(piped.code, 2, piped.stderr);
  assert.match(piped.stderr, /is neither a directory nor a regular file \(a pipe: an archive on standard input is not read\)$/m);
  assert.equal(fs.existsSync(root), false);
  // A file that exists under an archive's name but is none is still "neither a directory nor an archive".
  fs.writeFileSync(path.join(dir, 'fake.zip'), 'no\n');
  assert.match((await runCli(['fake.zip', root], { cwd: dir })).stderr, /fake\.zip is neither a directory nor an archive/);
});
