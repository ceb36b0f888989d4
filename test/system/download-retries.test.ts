// Answers that say "later", not "never": a 5xx, 408 or 429 on the first request or on the request
// that resumes a dropped connection is retried within --download-retries (429 and 408 honouring
// Retry-After), and a resume whose signed redirect target has expired goes through the URL given
// again. Before, a 5xx on a resume and an expired target ended the deploy with retries unused
// (exit 1), and a 429 or 408 was taken for a bad URL (exit 2, not retried).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, spawnCli, tempDir } from '../harness/cli.ts';
import { leftovers, makeSource, manifestDiff, manifestOf, sameManifest, treeSnapshot } from '../harness/invariants.ts';

interface Seen {
  path: string;
  range?: string;
  ifRange?: string;
  at: number;
}

interface Scripted {
  url: (p: string) => string;
  seen: Seen[];
}

/** A loopback server whose every answer `answer` writes, told how many requests came before it. */
async function scripted(t: { after(fn: () => Promise<void>): void }, answer: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void): Promise<Scripted> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ path: req.url ?? '', range: req.headers.range, ifRange: String(req.headers['if-range'] ?? ''), at: Date.now() });
    answer(req, res, seen.length - 1);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const port = (server.address() as AddressInfo).port;
  return { url: (p) => `http://127.0.0.1:${port}${p}`, seen };
}

/**
 * Sends `body` as a file server would: a 206 from the byte a Range asks for when an ETag is given
 * (and If-Range matches), else a 200 with all of it; `drop` sends half and then cuts the connection.
 */
function sendFile(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer, options: { etag?: string; drop?: boolean } = {}): void {
  const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
  const ranged = options.etag !== undefined && req.headers.range !== undefined && req.headers['if-range'] === options.etag;
  const start = ranged ? from : 0;
  const headers: http.OutgoingHttpHeaders = { 'content-length': body.length - start, 'content-type': 'application/octet-stream' };
  if (options.etag !== undefined) {
    headers.etag = options.etag;
    headers['accept-ranges'] = 'bytes';
  }
  if (ranged) headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
  res.writeHead(ranged ? 206 : 200, headers);
  if (options.drop) {
    res.write(body.subarray(start, start + Math.floor((body.length - start) / 2)), () => setTimeout(() => req.socket.destroy(), 50));
    return;
  }
  res.end(body.subarray(start));
}

function setup(t: { after(fn: () => void): void }): { dir: string; src: string; tgz: Buffer } {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'src'), 'v1', { files: 400 });
  execFileSync('tar', ['-czf', path.join(dir, 'site.tgz'), '-C', src, '.']);
  return { dir, src, tgz: fs.readFileSync(path.join(dir, 'site.tgz')) };
}

/** A root holding one release of other files, and its snapshot: what a failed deploy must leave as it was. */
async function deployedRoot(dir: string, name: string): Promise<{ root: string; before: string[] }> {
  const root = path.join(dir, name);
  const first = await runCli(['deploy', makeSource(path.join(dir, `${name}-old`), 'old'), root, '--no-fsync']);
  assert.equal(first.code, 0, first.stderr);
  return { root, before: treeSnapshot(root) };
}

function assertDeployed(root: string, src: string, what: string): void {
  const got = manifestOf(path.join(root, 'current'));
  assert.ok(sameManifest(got, manifestOf(src)), `${what}: ${manifestDiff(got, manifestOf(src))}`);
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], `${what}: .tmp/ not empty`);
}

function assertUnchanged(root: string, before: string[], what: string): void {
  assert.deepEqual(treeSnapshot(root), before, `${what}: the root changed`);
  assert.deepEqual(leftovers(root), [], what);
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], `${what}: .tmp/ not empty`);
}

const warnings = (stderr: string): string[] => stderr.split('\n').filter((l) => l.startsWith('warning:'));

void test('a 5xx, 429 or 408 on the request that resumes a dropped connection is retried: the deploy completes from the byte reached', async (t) => {
  const { dir, src, tgz } = setup(t);
  for (const [status, extra] of [[503, {}], [500, {}], [429, { 'retry-after': '1' }], [408, {}]] as const) {
    // The first GET drops half-way; the resume is answered `status` once; the next resume is served.
    const server = await scripted(t, (req, res, n) => {
      if (n === 1) {
        res.writeHead(status, { 'content-type': 'text/plain', ...extra }).end('later\n');
        return;
      }
      sendFile(req, res, tgz, { etag: '"v1"', drop: n === 0 });
    });
    const root = path.join(dir, `root-${status}`);
    const r = await runCli(['deploy', server.url('/site.tgz'), root, '--download-timeout', '5', '--no-fsync']);
    const what = `${status} on the resume`;
    assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
    assertDeployed(root, src, what);
    assert.equal(server.seen.length, 3, `${what}: ${JSON.stringify(server.seen)}`);
    const resumedAt = /^bytes=(\d+)-$/.exec(server.seen[1]?.range ?? '')?.[1];
    assert.ok(resumedAt !== undefined && Number(resumedAt) > 0, `${what}: ${JSON.stringify(server.seen)}`);
    assert.equal(server.seen[2]?.range, `bytes=${resumedAt}-`, `${what}: the retry asks for the same byte`);
    const w = warnings(r.stderr);
    assert.equal(w.length, 2, `${what}: ${r.stderr}`);
    assert.match(w[0] ?? '', new RegExp(`; resuming at byte ${resumedAt}$`), what);
    assert.match(w[1] ?? '', new RegExp(`^warning: download of http://127\\.0\\.0\\.1:\\d+/site\\.tgz: the server answered ${status}\\b.*; resuming at byte ${resumedAt}`), what);
    if (status === 429) {
      assert.match(w[1] ?? '', /in 1 s, as its Retry-After asks$/, what);
      assert.ok((server.seen[2]?.at ?? 0) - (server.seen[1]?.at ?? 0) >= 950, `${what}: Retry-After: 1 was not waited for`);
    }
  }
});

void test('a 503 on every resume fails the deploy after the retries (exit 1), the root unchanged', async (t) => {
  const { dir, tgz } = setup(t);
  const { root, before } = await deployedRoot(dir, 'root');
  const server = await scripted(t, (req, res, n) => {
    if (n > 0) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('down\n');
      return;
    }
    sendFile(req, res, tgz, { etag: '"v1"', drop: true });
  });
  const r = await runCli(['deploy', server.url('/site.tgz'), root, '--download-timeout', '5', '--download-retries', '2', '--no-fsync']);
  assert.equal(r.code, 1, r.stderr);
  // The drop and the first 503 are retried; the second 503 is the last attempt's failure.
  assert.equal(server.seen.length, 3, JSON.stringify(server.seen));
  assert.match(r.stderr, /^error: downloading http:\/\/127\.0\.0\.1:\d+\/site\.tgz failed: the server answered 503 Service Unavailable when asked again after byte \d+ \(after 2 retries\)$/m);
  assert.equal(warnings(r.stderr).length, 2, r.stderr);
  assertUnchanged(root, before, '503 on every resume');
});

/**
 * A release-asset host: `/dl/<name>` (the URL given, with a token of its own) answers 302 to a
 * signed `/signed/<name>?X-Amz-Signature=<n>` that serves one request and answers 403 after
 * (it has expired). `version` says which file (and ETag) each newly signed URL serves.
 */
async function assetHost(t: { after(fn: () => Promise<void>): void }, files: (signed: number) => { body: Buffer; etag?: string }, options: { dropFirst: boolean }): Promise<Scripted> {
  let signed = 0;
  const used = new Set<string>();
  return scripted(t, (req, res) => {
    const u = new URL(req.url ?? '/', 'http://x');
    if (u.pathname.startsWith('/dl/')) {
      signed++;
      res.writeHead(302, { location: `/signed/${u.pathname.slice(4)}?X-Amz-Expires=60&X-Amz-Signature=TOKEN${signed}` }).end();
      return;
    }
    const token = u.searchParams.get('X-Amz-Signature') ?? '';
    if (used.has(token)) {
      res.writeHead(403, { 'content-type': 'application/xml' }).end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>\n');
      return;
    }
    used.add(token);
    const { body, etag } = files(Number(token.slice('TOKEN'.length)));
    sendFile(req, res, body, { etag, drop: options.dropFirst && token === 'TOKEN1' });
  });
}

void test('a drop after a signed redirect target expired is resumed through the URL given, which signs a fresh one; no token in any message', async (t) => {
  const { dir, src, tgz } = setup(t);
  for (const etag of ['"v1"', undefined]) {
    const server = await assetHost(t, () => ({ body: tgz, etag }), { dropFirst: true });
    const root = path.join(dir, `root-${etag === undefined ? 'no-etag' : 'etag'}`);
    const given = server.url('/dl/site.tgz?token=TOKEN0').replace('http://', 'http://alice:s3cr3t@');
    const r = await runCli(['deploy', given, root, '--download-timeout', '5', '--no-fsync']);
    const what = etag === undefined ? 'no validator' : 'ETag';
    assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
    assertDeployed(root, src, what);
    // Given, its target (dropped), the target again (403, expired), given again, the fresh target.
    assert.deepEqual(server.seen.map((s) => s.path.replace(/\?.*/, '')), ['/dl/site.tgz', '/signed/site.tgz', '/signed/site.tgz', '/dl/site.tgz', '/signed/site.tgz'], `${what}: ${JSON.stringify(server.seen)}`);
    assert.match(server.seen[4]?.path ?? '', /TOKEN2$/, what);
    if (etag !== undefined) {
      assert.match(server.seen[4]?.range ?? '', /^bytes=\d+-$/, `${what}: the fresh target is asked for the rest`);
      assert.equal(server.seen[4]?.ifRange, etag, what);
    } else {
      assert.equal(server.seen[4]?.range, undefined, `${what}: no Range without a validator`);
    }
    assert.match(r.stderr, /^warning: http:\/\/127\.0\.0\.1:\d+\/signed\/site\.tgz answered 403 Forbidden \(a signed URL may have expired\); asking http:\/\/127\.0\.0\.1:\d+\/dl\/site\.tgz again$/m, what);
    assert.doesNotMatch(r.stdout + r.stderr, /s3cr3t|TOKEN|X-Amz/, `${what}: a credential or token in the output`);
  }
});

void test('a freshly signed target that serves another version of the file fails the deploy (exit 1), the root unchanged', async (t) => {
  const { dir, tgz } = setup(t);
  const v2 = makeSource(path.join(dir, 'src-v2'), 'v2', { files: 400 });
  execFileSync('tar', ['-czf', path.join(dir, 'site-v2.tgz'), '-C', v2, '.']);
  const tgz2 = fs.readFileSync(path.join(dir, 'site-v2.tgz'));
  const { root, before } = await deployedRoot(dir, 'root');
  const cases = [
    ['"v1"', /changed while it was downloading \(ETag "v2" in place of "v1"\)|changed while it was downloading \("v2" in place of "v1"\)/],
    [undefined, /changed while it was downloading \(its first \d+ bytes differ when read again\)/],
  ] as const;
  for (const [etag, message] of cases) {
    const server = await assetHost(t, (n) => (n === 1 ? { body: tgz, etag } : { body: tgz2, etag: etag === undefined ? undefined : '"v2"' }), { dropFirst: true });
    const r = await runCli(['deploy', server.url('/dl/site.tgz'), root, '--download-timeout', '5', '--no-fsync']);
    const what = etag ?? 'no validator';
    assert.equal(r.code, 1, `${what}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, message, what);
    assert.equal(server.seen.length, 5, `${what}: ${JSON.stringify(server.seen)}`);
    assertUnchanged(root, before, what);
  }
});

void test('a 429 (Retry-After in seconds or as a date) or a 408 on the first request is retried, and the deploy completes', async (t) => {
  const { dir, src, tgz } = setup(t);
  const cases: [string, number, http.OutgoingHttpHeaders, number][] = [
    ['429 Retry-After: 1', 429, { 'retry-after': '1' }, 950],
    // An HTTP date two seconds ahead (whole seconds: at least one second from now).
    ['429 Retry-After: <date>', 429, { 'retry-after': '' }, 950],
    ['408', 408, {}, 0],
  ];
  for (const [i, [what, status, headers, waited]] of cases.entries()) {
    const server = await scripted(t, (req, res, n) => {
      if (n === 0) {
        const h = headers['retry-after'] === '' ? { 'retry-after': new Date(Date.now() + 2000).toUTCString() } : headers;
        res.writeHead(status, { 'content-type': 'text/plain', ...h }).end('later\n');
        return;
      }
      sendFile(req, res, tgz, { etag: '"v1"' });
    });
    const root = path.join(dir, `root-${i}`);
    const r = await runCli(['deploy', server.url('/site.tgz'), root, '--download-timeout', '5', '--no-fsync']);
    assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`);
    assertDeployed(root, src, what);
    assert.equal(server.seen.length, 2, `${what}: ${JSON.stringify(server.seen)}`);
    const w = warnings(r.stderr);
    assert.equal(w.length, 1, `${what}: ${r.stderr}`);
    assert.match(w[0] ?? '', new RegExp(`^warning: http://127\\.0\\.0\\.1:\\d+/site\\.tgz answered ${status} [A-Z][\\w ]+; retrying`), what);
    assert.ok((server.seen[1]?.at ?? 0) - (server.seen[0]?.at ?? 0) >= waited, `${what}: retried too soon`);
  }
});

void test('a 429 on every request: exit 1 after the retries (not 2), naming the status, with a hint about rate limits; the root unchanged', async (t) => {
  const { dir } = setup(t);
  const { root, before } = await deployedRoot(dir, 'root');
  const server = await scripted(t, (_req, res) => {
    res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '1' }).end('slow down\n');
  });
  const given = server.url('/site.tgz?token=TOKEN').replace('http://', 'http://alice:s3cr3t@');
  const r = await runCli(['deploy', given, root, '--download-timeout', '5', '--download-retries', '2', '--no-fsync']);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(server.seen.length, 3, JSON.stringify(server.seen));
  assert.match(r.stderr, /^error: downloading http:\/\/127\.0\.0\.1:\d+\/site\.tgz failed: http:\/\/127\.0\.0\.1:\d+\/site\.tgz answered 429 Too Many Requests \(after 2 retries\)$/m);
  assert.match(r.stderr, /^hint: .*rate limit/m);
  assert.doesNotMatch(r.stderr, /CI artifact may have expired/);
  assert.equal(warnings(r.stderr).filter((l) => /answered 429 Too Many Requests; retrying in 1 s, as its Retry-After asks$/.test(l)).length, 2, r.stderr);
  assert.doesNotMatch(r.stdout + r.stderr, /s3cr3t|TOKEN/);
  assertUnchanged(root, before, '429 every time');
  // A 404 is still invalid input: exit 2, not retried.
  const missing = await scripted(t, (_req, res) => res.writeHead(404).end());
  const m = await runCli(['deploy', missing.url('/site.tgz'), root, '--no-fsync']);
  assert.equal(m.code, 2, m.stderr);
  assert.equal(missing.seen.length, 1);
});

void test('a signal during a Retry-After wait (before the lock, or on a resume under it) exits at once with its code, the root unchanged', async (t) => {
  const { dir, tgz } = setup(t);
  const { root, before } = await deployedRoot(dir, 'root');
  for (const where of ['first request', 'resume'] as const) {
    const server = await scripted(t, (req, res, n) => {
      if (where === 'first request' || n > 0) {
        res.writeHead(429, { 'content-type': 'text/plain', 'retry-after': '50' }).end('slow down\n');
        return;
      }
      sendFile(req, res, tgz, { etag: '"v1"', drop: true });
    });
    const run = spawnCli(['deploy', server.url('/site.tgz'), root, '--download-timeout', '5', '--no-fsync']);
    const answered = where === 'first request' ? 1 : 2;
    for (let i = 0; i < 400 && server.seen.length < answered; i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 500));
    const sent = Date.now();
    run.child.kill('SIGTERM');
    const r = await run.done;
    assert.equal(r.code, 143, `${where}: exit ${r.code}\n${r.stderr}`);
    assert.ok(Date.now() - sent < 10_000, `${where}: took ${Date.now() - sent} ms to stop`);
    assert.match(r.stderr, /interrupted/, where);
    assert.equal(server.seen.length, answered, `${where}: ${JSON.stringify(server.seen)}`);
    assertUnchanged(root, before, where);
  }
});
