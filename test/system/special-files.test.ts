// A FIFO where a regular file is expected (lock owner, journal, release record, config file)
// never blocks a command: it is opened non-blocking, its type checked, and it is refused.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir, writeTree } from '../harness/cli.ts';

function mkfifo(file: string): void {
  execFileSync('mkfifo', [file]);
}

async function root(t: { after(fn: () => void): void }): Promise<{ dir: string; src: string; root: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v\n' });
  const r = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, r, '--release-id', 'r1', '--quiet'])).code, 0);
  return { dir, src, root: r };
}

void test('a FIFO as the journal: status and deploy finish, the FIFO is discarded as a journal', async (t) => {
  const { src, root: r } = await root(t);
  mkfifo(path.join(r, '.atomic-deploy', 'journal.json'));
  const status = await runCli(['status', r], { timeoutMs: 20_000 });
  assert.equal(status.signal, null, 'status hung on the FIFO and was killed');
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /discarded a journal that is not a regular file/);
  mkfifo(path.join(r, '.atomic-deploy', 'journal.json'));
  const deploy = await runCli(['deploy', src, r, '--release-id', 'r2'], { timeoutMs: 20_000 });
  assert.equal(deploy.signal, null, 'deploy hung on the FIFO and was killed');
  assert.equal(deploy.code, 0, deploy.stderr);
});

void test('a FIFO as the lock owner or a release record: commands read it as missing and finish', async (t) => {
  const { src, root: r } = await root(t);
  fs.mkdirSync(path.join(r, '.deploy.lock'));
  mkfifo(path.join(r, '.deploy.lock', 'owner.json'));
  const status = await runCli(['status', r], { timeoutMs: 20_000 });
  assert.equal(status.signal, null, 'status hung on the FIFO and was killed');
  assert.equal(status.code, 0, status.stderr);
  fs.rmSync(path.join(r, '.deploy.lock'), { recursive: true });
  fs.rmSync(path.join(r, '.atomic-deploy', 'releases', 'r1.json'));
  mkfifo(path.join(r, '.atomic-deploy', 'releases', 'r1.json'));
  const list = await runCli(['releases', r], { timeoutMs: 20_000 });
  assert.equal(list.signal, null, 'releases hung on the FIFO and was killed');
  assert.equal(list.code, 0, list.stderr);
  const deploy = await runCli(['deploy', src, r, '--release-id', 'r2', '--quiet'], { timeoutMs: 20_000 });
  assert.equal(deploy.code, 0, deploy.stderr);
});

void test('a FIFO as the config file: exit 2 at once', async (t) => {
  const dir = tempDir(t);
  const config = path.join(dir, 'atomic-deploy.config.yaml');
  mkfifo(config);
  const r = await runCli(['status', '--config', config], { timeoutMs: 20_000 });
  assert.equal(r.signal, null, 'the CLI hung on the FIFO and was killed');
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /not a regular file/);
});

void test('a before-switch hook that makes a FIFO or a socket in the release fails the deploy: exit 2, the release undone (the manifest could not describe it)', async (t) => {
  for (const [what, hook, kind] of [
    ['a FIFO', 'mkfifo pipe', 'FIFO'],
    ['a socket', `${JSON.stringify(process.execPath)} -e "require('net').createServer().listen('sock', () => process.exit(0))"`, 'socket'],
  ] as const) {
    const { src, root: r } = await root(t);
    const result = await runCli(['deploy', src, r, '--release-id', 'r2', '--before-switch', hook], { timeoutMs: 30_000 });
    assert.equal(result.code, 2, `${what}: ${result.stderr}`);
    assert.match(result.stderr, new RegExp(`^error: .*/releases/r2/(pipe|sock) is a ${kind}; a release can hold only files, directories and symlinks$`, 'm'), what);
    assert.match(result.stderr, /^hint: .*current is unchanged$/m);
    // Before: exit 0, the FIFO live, and verify of the fresh release exit 5.
    assert.equal(fs.readlinkSync(path.join(r, 'current')), 'releases/r1', what);
    assert.equal(fs.existsSync(path.join(r, 'releases', 'r2')), false, what);
    assert.equal((await runCli(['verify', r])).code, 0, what);
  }
});
