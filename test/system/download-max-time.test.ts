// --download-max-time bounds the whole transfer of a URL artifact. --download-timeout bounds a
// connection's silence only: a server that trickles a few bytes at a time, just inside it, held
// the deploy and the root's lock for as long as it liked (the control below is still running
// after 6 s). With the limit (flag or artifact.downloadMaxTime) the deploy fails in time, exit 1,
// the root as it was; a download that finishes in time deploys, and its timer keeps nothing alive.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { jsonOf, runCli, spawnCli, tempDir } from '../harness/cli.ts';
import { leftovers, lockExists, makeSource, treeSnapshot } from '../harness/invariants.ts';

/** Serves `body` at /site.tgz with its length, `trickle` bytes every 100 ms (all at once when 0). */
async function server(t: { after(fn: () => Promise<void>): void }, body: Buffer, trickle: number): Promise<string> {
  const srv = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-length': body.length, 'content-type': 'application/octet-stream' });
    if (trickle === 0) {
      res.end(body);
      return;
    }
    let at = 0;
    const timer = setInterval(() => {
      if (res.destroyed) return clearInterval(timer);
      res.write(body.subarray(at, at + trickle));
      at += trickle;
      if (at >= body.length) {
        clearInterval(timer);
        res.end();
      }
    }, 100);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    srv.closeAllConnections();
    srv.close(() => resolve());
  }));
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}/site.tgz`;
}

function setup(t: { after(fn: () => void): void }): { dir: string; tgz: Buffer; root: string } {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'src'), 'v1', { files: 50 });
  // Incompressible: the .tgz stays about as large.
  fs.writeFileSync(path.join(src, 'noise.bin'), randomBytes(32 * 1024));
  execFileSync('tar', ['-czf', path.join(dir, 'site.tgz'), '-C', src, '.']);
  return { dir, tgz: fs.readFileSync(path.join(dir, 'site.tgz')), root: path.join(dir, 'root') };
}

void test('a trickling server: --download-max-time (or artifact.downloadMaxTime) fails the deploy in time, exit 1, the root as it was; without it the deploy is still running', async (t) => {
  const { dir, tgz, root } = setup(t);
  const old = await runCli(['deploy', makeSource(path.join(dir, 'old'), 'old'), root, '--no-fsync']);
  assert.equal(old.code, 0, old.stderr);
  const before = treeSnapshot(root);
  // 16 bytes every 100 ms: never silent for a second, finished in minutes.
  const url = await server(t, tgz, 16);
  assert.ok(tgz.length > 16 * 10 * 60, `the artifact (${tgz.length} bytes) would arrive in under a minute`);

  const started = Date.now();
  const r = await runCli(['deploy', url, root, '--no-fsync', '--download-timeout', '5', '--download-max-time', '2', '--json'], { timeoutMs: 60_000 });
  const took = Date.now() - started;
  assert.equal(r.code, 1, r.stderr);
  const error = jsonOf<{ error: { code: string; message: string; hint: string } }>(r).error;
  assert.equal(error.code, 'DOWNLOAD_FAILED');
  assert.match(error.message, /^downloading http:\/\/127\.0\.0\.1:\d+\/site\.tgz did not finish within the 2 s of --download-max-time \(\d[\d.,]* (B|KiB) received\); nothing was deployed$/);
  assert.match(error.hint, /raise --download-max-time/);
  assert.ok(took < 15_000, `the deploy ended ${took} ms after it started`);
  assert.deepEqual(treeSnapshot(root), before);
  assert.deepEqual(leftovers(root), []);
  assert.equal(lockExists(root), false, 'the lock is released');

  // The config file's key does the same.
  const config = path.join(dir, 'deploy.yaml');
  fs.writeFileSync(config, 'artifact:\n  downloadMaxTime: 1.5\n');
  const fromConfig = await runCli(['--config', config, 'deploy', url, root, '--no-fsync'], { timeoutMs: 60_000 });
  assert.equal(fromConfig.code, 1, fromConfig.stderr);
  assert.match(fromConfig.stderr, /did not finish within the 1\.5 s of --download-max-time/);
  assert.deepEqual(treeSnapshot(root), before);

  // Control: without the limit, the same deploy is still downloading, its lock held, after 6 s.
  const run = spawnCli(['deploy', url, root, '--no-fsync', '--download-timeout', '5'], { timeoutMs: 60_000 });
  await new Promise((resolve) => setTimeout(resolve, 6000));
  const stillRunning = run.child.exitCode === null && run.child.signalCode === null;
  const held = lockExists(root);
  run.child.kill('SIGTERM');
  await run.done;
  assert.ok(stillRunning, 'without --download-max-time the deploy had ended within 6 s: the control shows nothing');
  assert.ok(held, 'the trickling download held the lock');
  assert.deepEqual(treeSnapshot(root), before);
});

void test('a download that finishes in time deploys, and the process ends at once (the limit\'s timer holds nothing); a directory source refuses the flag (exit 2)', async (t) => {
  const { dir, tgz, root } = setup(t);
  const url = await server(t, tgz, 0);
  const started = Date.now();
  const r = await runCli(['deploy', url, root, '--no-fsync', '--download-max-time', '120'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(Date.now() - started < 30_000, 'the deploy waited for the limit\'s timer');
  assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8').length > 0, true);
  const src = makeSource(path.join(dir, 'dir-src'), 'd');
  const before = treeSnapshot(root);
  const refused = await runCli(['deploy', src, root, '--download-max-time', '60']);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /^error: --download-max-time applies to an archive or URL artifact, but the source .* is a directory; nothing was deployed$/m);
  assert.deepEqual(treeSnapshot(root), before);
});
