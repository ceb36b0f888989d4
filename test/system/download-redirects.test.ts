// Redirects that are not followed say why, before anything is written (exit 2): a loop (it was
// followed five times round, then "after 5 redirects"), another scheme (ftp:, file:), https down
// to http, a Location that is no URL (a TypeError, retried as a failed connection, exit 1). A
// redirect to the artifact is followed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { rootBeside } from '../harness/archives.ts';
import { runCli, tempDir } from '../harness/cli.ts';
import { leftovers, treeSnapshot } from '../harness/invariants.ts';
import { requireTool } from '../harness/swappers.ts';

/** Answers each path from `routes` with a 302 to its Location (undefined: none), and /a.tgz with `artifact`. */
function handler(routes: Record<string, string | undefined>, artifact: Buffer, seen: string[]): http.RequestListener {
  return (req, res) => {
    seen.push(req.url ?? '');
    if (req.url === '/a.tgz') {
      res.writeHead(200, { 'content-length': artifact.length });
      res.end(artifact);
      return;
    }
    if (req.url !== undefined && req.url in routes) {
      const location = routes[req.url];
      res.writeHead(302, location === undefined ? {} : { location });
      res.end();
      return;
    }
    res.writeHead(404);
    res.end();
  };
}

async function listen(t: { after(fn: () => Promise<void>): void }, server: http.Server | https.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return (server.address() as AddressInfo).port;
}

void test('a redirect loop, a redirect to another scheme or from https down to http, and a Location that is no URL exit 2 saying why, nothing changed; a redirect to the artifact is followed', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'build');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'index.html'), '<h1>new</h1>\n');
  execFileSync('tar', ['-czf', path.join(dir, 'a.tgz'), '-C', src, '.']);
  const artifact = fs.readFileSync(path.join(dir, 'a.tgz'));
  const { root, beside, rootBefore, besideBefore } = await rootBeside(dir);
  const seen: string[] = [];
  const routes: Record<string, string | undefined> = { '/loop-a': '/loop-b', '/loop-b': '/loop-a', '/ftp': 'ftp://127.0.0.1/a.tgz', '/file': 'file:///etc/passwd', '/none': undefined, '/broken': 'http://[::1', '/hop': '/a.tgz' };
  const port = await listen(t, http.createServer(handler(routes, artifact, seen)));
  const base = `http://127.0.0.1:${port}`;
  // An https server (its certificate trusted through NODE_EXTRA_CA_CERTS) that redirects to the http one.
  const openssl = requireTool('openssl', 'openssl');
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync(openssl, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const tlsPort = await listen(t, https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, handler({ '/down': `${base}/a.tgz` }, artifact, seen)));
  const env = { NODE_EXTRA_CA_CERTS: cert };
  const q = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  const cases = [
    { url: `${base}/loop-a`, said: new RegExp(`answered 302, a redirect that is not followed: it redirects in a loop \\(${q(base)}/loop-a -> ${q(base)}/loop-b -> ${q(base)}/loop-a\\)`), hint: /round in circles/ },
    { url: `${base}/ftp`, said: /answered 302, a redirect that is not followed: ftp:\/\/127\.0\.0\.1\/a\.tgz is a ftp: URL, and only http:\/\/ and https:\/\/ are fetched/, hint: /give the final URL/ },
    { url: `${base}/file`, said: /a redirect that is not followed: file:\/\/\/etc\/passwd is a file: URL/, hint: /give the final URL/ },
    { url: `${base}/none`, said: /answered 302, a redirect that is not followed: it names no Location/, hint: /give the final URL/ },
    { url: `${base}/broken`, said: /a redirect that is not followed: its Location "http:\/\/\[::1" is not a URL/, hint: /give the final URL/ },
    { url: `https://127.0.0.1:${tlsPort}/down`, said: new RegExp(`a redirect that is not followed: ${q(base)}/a\\.tgz would go from https down to http`), hint: /give the final URL/ },
  ];
  for (const c of cases) {
    const before = seen.length;
    const r = await runCli(['deploy', c.url, root, '--no-fsync', '--download-retries', '1'], { env });
    assert.equal(r.code, 2, `${c.url}: exit ${r.code}\n${r.stderr}`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, `${c.url}: ${r.stderr}`);
    assert.match(errors[0] ?? '', c.said, c.url);
    assert.match(r.stderr, new RegExp(`^hint: .*${c.hint.source}`, 'm'), c.url);
    assert.doesNotMatch(r.stderr, /^warning: .*retrying/m, `${c.url}: not retried`);
    assert.ok(seen.length - before <= 3, `${c.url}: asked ${seen.slice(before).join(', ')}`);
    assert.deepEqual(treeSnapshot(root), rootBefore, c.url);
    assert.deepEqual(treeSnapshot(beside), besideBefore, c.url);
    assert.deepEqual(leftovers(root), [], c.url);
  }
  // Control: one redirect to the artifact is followed.
  const ok = await runCli(['deploy', `${base}/hop`, root, '--no-fsync'], { env });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8'), '<h1>new</h1>\n');
});
