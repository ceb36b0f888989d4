// Health URLs on ports fetch refuses ("bad ports": 6000, 10080, 5060, ...) and URLs with
// credentials: both reach the server, and the password is never printed.
import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, runCli, tempDir, writeTree } from '../harness/cli.ts';

/** Ports of the Fetch standard's block list; the first free one is used. */
const BAD_PORTS = [6000, 6665, 6666, 6667, 6668, 6669, 6697, 10080, 5060, 5061];

async function serve(t: { after(fn: () => void): void }, handler: http.RequestListener): Promise<number> {
  for (const port of BAD_PORTS) {
    const server = http.createServer(handler);
    const ok = await new Promise<boolean>((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (ok) {
      t.after(() => server.close());
      return port;
    }
  }
  throw new Error(`none of the ports ${BAD_PORTS.join(', ')} is free on 127.0.0.1`);
}

async function twoReleases(t: { after(fn: () => void): void }): Promise<{ src: string; root: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'good', '--quiet'])).code, 0);
  return { src, root };
}

void test('a health URL on a port fetch blocks reaches the server: the deploy stands', async (t) => {
  const port = await serve(t, (_req, res) => res.end('ok'));
  const { src, root } = await twoReleases(t);
  const r = await runCli(['deploy', src, root, '--release-id', 'next', '--health-url', `http://127.0.0.1:${port}/health`, '--health-timeout', '5']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(currentId(root), 'next');
});

void test('credentials in a health URL are sent as basic auth and never printed, pass or fail', async (t) => {
  const expected = `Basic ${Buffer.from('deploy:s3cr3t-pw').toString('base64')}`;
  const port = await serve(t, (req, res) => {
    res.statusCode = req.headers.authorization === expected && req.url === '/health' ? 200 : 401;
    res.end();
  });
  const { src, root } = await twoReleases(t);
  const ok = await runCli(['deploy', src, root, '--release-id', 'next', '--health-url', `http://deploy:s3cr3t-pw@127.0.0.1:${port}/health`, '--health-timeout', '5']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.doesNotMatch(ok.stdout + ok.stderr, /s3cr3t-pw/);
  const bad = await runCli(['deploy', src, root, '--release-id', 'bad', '--health-url', `http://deploy:s3cr3t-pw@127.0.0.1:${port}/nope`, '--health-timeout', '1', '--json']);
  assert.equal(bad.code, 4, bad.stderr);
  assert.match(bad.stderr, /returned 401/);
  assert.doesNotMatch(bad.stdout + bad.stderr, /s3cr3t-pw/);
  const plan = await runCli(['deploy', src, root, '--dry-run', '--health-url', `http://deploy:s3cr3t-pw@127.0.0.1:${port}/health`, '--json']);
  assert.doesNotMatch(plan.stdout + plan.stderr, /s3cr3t-pw/);
});
