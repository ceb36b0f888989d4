// A URL's user:password@ and query (a signed URL's token) never reach a message, the lock's owner
// file (world-readable) or the messages of a deploy that meets the lock. The release log and the
// step lines were redacted; errors for a checksum, a corrupt or empty archive, the signature, and
// the lock printed the URL as given.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { runCli, spawnCli, tempDir } from '../harness/cli.ts';
import { serve, writeArchive } from '../harness/archives.ts';
import { requireTools } from '../harness/faults.ts';

const SECRET = /s3cr3t|TOKEN/;

void test('credentials and query tokens of artifact and signature URLs appear in no message and not in the lock', async (t) => {
  requireTools('ssh-keygen');
  const dir = tempDir(t);
  const files = path.join(dir, 'files');
  fs.mkdirSync(files);
  const dist = writeArchive('tar.gz', path.join(files, 'dist.tgz'), [{ name: 'index.html', data: 'ok\n' }]);
  fs.writeFileSync(path.join(files, 'cut.tgz'), fs.readFileSync(dist).subarray(0, 60));
  writeArchive('tar', path.join(files, 'empty.tar'), [{ name: 'd', type: 'dir' }]);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ci', '-f', path.join(dir, 'key')]);
  fs.writeFileSync(path.join(dir, 'allowed'), `ci namespaces="atomic-deploy" ${fs.readFileSync(path.join(dir, 'key.pub'), 'utf8')}`);
  fs.writeFileSync(path.join(files, 'other.tgz'), Buffer.concat([fs.readFileSync(dist), Buffer.from('x')]));
  execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', path.join(dir, 'key'), '-n', 'atomic-deploy', path.join(files, 'other.tgz')]);
  // Larger than what the stalling server sends before it stalls (1 KiB), and not compressible.
  writeArchive('tar', path.join(files, 'big.tar'), [{ name: 'index.html', data: 'ok\n' }, { name: 'blob', data: crypto.randomBytes(256 * 1024).toString('hex') }]);
  const server = await serve(t, files, 'ok');
  const secret = (name: string): string => server.url(name).replace('http://', 'http://alice:s3cr3t@') + '?X-Amz-Signature=TOKEN';

  const cases: [string, string[], RegExp][] = [
    ['checksum mismatch', [secret('dist.tgz'), '--sha256', '0'.repeat(64)], /sha256 is [0-9a-f]{64}, expected/],
    ['a corrupt archive', [secret('cut.tgz')], /is not a readable archive/],
    ['an archive with no files', [secret('empty.tar')], /holds no files/],
    ['a signature of other bytes', [dist, '--signature', secret('other.tgz.sig'), '--allowed-signers', path.join(dir, 'allowed')], /does not match the artifact/],
    ['a signature URL that is no signature', [dist, '--signature', secret('dist.tgz'), '--allowed-signers', path.join(dir, 'allowed')], /is not an SSH signature/],
  ];
  for (const [what, args, said] of cases) {
    for (const json of [[], ['--json']]) {
      const r = await runCli(['deploy', ...args, path.join(dir, 'root'), ...json]);
      assert.equal(r.code, 2, `${what}: ${r.stdout}${r.stderr}`);
      assert.match(r.stdout + r.stderr, said, what);
      assert.doesNotMatch(r.stdout + r.stderr, SECRET, `${what}: a credential in the output`);
    }
  }

  // The lock's owner file and the error of a deploy that meets it: a download held in a stall.
  const stalled = await serve(t, files, 'stall');
  const held = spawnCli(['deploy', stalled.url('big.tar').replace('http://', 'http://alice:s3cr3t@') + '?X-Amz-Signature=TOKEN', path.join(dir, 'locked'), '--download-timeout', '30']);
  const owner = path.join(dir, 'locked', '.deploy.lock', 'owner.json');
  for (let i = 0; i < 400 && !fs.existsSync(owner); i++) await sleep(25);
  assert.ok(fs.existsSync(owner), 'the stalled deploy never took the lock');
  const text = fs.readFileSync(owner, 'utf8');
  assert.match(text, /deploy http:\/\/127\.0\.0\.1:\d+\/big\.tar/);
  assert.doesNotMatch(text, SECRET, `the lock's owner file: ${text}`);
  const second = await runCli(['deploy', dist, path.join(dir, 'locked')]);
  assert.equal(second.code, 3, second.stderr);
  assert.doesNotMatch(second.stderr, SECRET, second.stderr);
  const status = await runCli(['status', path.join(dir, 'locked'), '--json']);
  assert.doesNotMatch(status.stdout + status.stderr, SECRET, status.stdout);
  held.child.kill('SIGTERM');
  assert.equal((await held.done).code, 143);
});
