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
