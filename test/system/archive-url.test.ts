// A URL artifact when the server misbehaves: a connection dropped half-way is resumed (Range,
// or read again from the start when the server has no ranges); a 404 exits 2; a server that
// stalls is given up on after the timeout and the retries, exit 1. The root is unchanged by
// every failure, and nothing is left in .tmp/.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { serve } from '../harness/archives.ts';
import { jsonOf, runCli, spawnCli, tempDir } from '../harness/cli.ts';
import { leftovers, makeSource, manifestDiff, manifestOf, sameManifest, treeSnapshot } from '../harness/invariants.ts';

function setup(t: { after(fn: () => void): void }): { dir: string; src: string; root: string } {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'src'), 'v1', { files: 400 });
  execFileSync('tar', ['-czf', path.join(dir, 'site.tgz'), '-C', src, '.']);
  execFileSync('zip', ['-qry', path.join(dir, 'site.zip'), '.'], { cwd: src });
  return { dir, src, root: path.join(dir, 'root') };
}

void test('a connection dropped mid-stream is resumed, with or without Range support', async (t) => {
  const { dir, src, root } = setup(t);
  for (const mode of ['drop-once', 'drop-once-no-range'] as const) {
    for (const name of ['site.tgz', 'site.zip']) {
      const server = await serve(t, dir, mode);
      const r = await runCli(['deploy', server.url(name), root, '--download-timeout', '5']);
      assert.equal(r.code, 0, `${mode} ${name}: ${r.stderr}`);
      // With a validator the rest is asked for; without one the file is read again, and the warning says so.
      if (mode === 'drop-once') assert.match(r.stderr, /warning: .*(closed|aborted|reset|socket hang up).*; resuming at byte \d+$/im, `${mode} ${name}`);
      else assert.match(r.stderr, /warning: .*(closed|aborted|reset|socket hang up).*; reading it again from the start, as the server names no version to resume \(\d+ bytes received\)$/im, `${mode} ${name}`);
      assert.doesNotMatch(mode === 'drop-once' ? '' : r.stderr, /resuming/, `${mode} ${name}`);
      const got = manifestOf(path.join(root, 'current'));
      assert.ok(sameManifest(got, manifestOf(src)), `${mode} ${name}: ${manifestDiff(got, manifestOf(src))}`);
      assert.equal(server.requests.length, 2, `${mode} ${name}: ${JSON.stringify(server.requests)}`);
      // With a validator (ETag) the second request asks for the rest; without, the whole file is
      // read again (a Range could be answered from a newer file) and its first part compared.
      if (mode === 'drop-once') assert.match(server.requests[1]?.range ?? '', /^bytes=\d+-$/);
      else assert.equal(server.requests[1]?.range, undefined);
      await server.close();
    }
  }
});

void test('a download is never stitched from two versions: a file replaced before the resume fails the deploy (exit 1), the root unchanged', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root])).code, 0);
  const before = treeSnapshot(root);
  // The second version: the same names and sizes, other bytes (what a rebuild at a fixed path gives).
  const v2 = makeSource(path.join(dir, 'src-v2'), 'v2', { files: 400 });
  execFileSync('tar', ['-czf', path.join(dir, 'site.tgz.v2'), '-C', v2, '.']);
  execFileSync('zip', ['-qry', path.join(dir, 'site.zip.v2'), '.'], { cwd: v2 });
  const cases = [
    // No ETag or Last-Modified: no Range is asked for; the re-read's first part differs.
    ['drop-once-changed', 'site.tgz', /changed while it was downloading \(its first \d+ bytes differ when read again\)/],
    ['drop-once-changed', 'site.zip', /changed while it was downloading \(its first \d+ bytes differ when read again\)/],
    // A server that ignores If-Range and answers the Range from the new file.
    ['drop-once-etag-changed', 'site.tgz', /changed while it was downloading \(ETag "v2" in place of "v1"\)/],
    ['drop-once-wrong-start', 'site.tgz', /changed while it was downloading \(the server resumed at bytes \d+-/],
  ] as const;
  for (const [mode, name, message] of cases) {
    const server = await serve(t, dir, mode);
    const r = await runCli(['deploy', server.url(name), root, '--download-timeout', '5']);
    assert.equal(r.code, 1, `${mode} ${name}: ${r.stderr}`);
    assert.match(r.stderr, message, `${mode} ${name}`);
    assert.equal(server.requests.length, 2, `${mode} ${name}: ${JSON.stringify(server.requests)}`);
    if (mode === 'drop-once-changed') assert.equal(server.requests[1]?.range, undefined, 'no Range without a validator');
    assert.deepEqual(treeSnapshot(root), before, `${mode} ${name}: the root changed`);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], `${mode} ${name}: .tmp/ not empty`);
    await server.close();
  }
});

void test('control: with no retries the same dropped connection fails the deploy (exit 1) and changes nothing', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root])).code, 0);
  const before = treeSnapshot(root);
  const server = await serve(t, dir, 'drop-once');
  const r = await runCli(['deploy', server.url('site.tgz'), root, '--download-retries', '0']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /error: downloading .* failed/);
  assert.deepEqual(treeSnapshot(root), before);
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), []);
});

void test('a 404 exits 2 before anything is written', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root])).code, 0);
  const before = treeSnapshot(root, { times: true });
  const server = await serve(t, dir, 'ok');
  const r = await runCli(['deploy', server.url('missing.tgz'), root]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /answered 404/);
  assert.equal(server.requests.length, 1, 'a 4xx is not retried');
  assert.deepEqual(treeSnapshot(root, { times: true }), before);
});

void test('a server that stalls is given up on after the timeout and the retries: exit 1, root unchanged', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root])).code, 0);
  const before = treeSnapshot(root);
  const server = await serve(t, dir, 'stall');
  const started = Date.now();
  const r = await runCli(['deploy', server.url('site.tgz'), root, '--download-timeout', '1', '--download-retries', '2']);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /sent nothing for 1 s/);
  assert.equal(server.requests.length, 3, JSON.stringify(server.requests));
  assert.ok(Date.now() - started >= 3000, 'three silent seconds at least');
  assert.deepEqual(treeSnapshot(root), before);
  assert.deepEqual(leftovers(root), []);
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), []);
});

void test('a redirect (as release assets answer) is followed to the artifact', async (t) => {
  const { dir, src, root } = setup(t);
  const server = await serve(t, dir, 'ok');
  const r = await runCli(['deploy', server.url('redirect/site.tgz'), root]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(sameManifest(manifestOf(path.join(root, 'current')), manifestOf(src)));
  assert.equal(server.requests.length, 2);
});

void test('a signal while a download waits for headers or for data exits with that signal\'s code, no trace, the root unchanged', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root])).code, 0);
  const before = treeSnapshot(root);
  const codes = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
  for (const mode of ['silent', 'stall'] as const) {
    for (const [sig, code] of Object.entries(codes) as [keyof typeof codes, number][]) {
      const server = await serve(t, dir, mode);
      const run = spawnCli(['deploy', server.url('site.tgz'), root, '--download-timeout', '30']);
      // Until the request is in (and, stalling, a first part of the body has been read).
      for (let i = 0; i < 200 && server.requests.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 700));
      run.child.kill(sig);
      const r = await run.done;
      const what = `${mode} ${sig}`;
      assert.equal(r.code, code, `${what}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, /interrupted/, what);
      assert.doesNotMatch(r.stderr, /\n\s+at |unexpected failure|a bug in/, `${what}: ${r.stderr}`);
      assert.deepEqual(treeSnapshot(root), before, `${what}: the root changed`);
      assert.deepEqual(leftovers(root), [], what);
      assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], `${what}: .tmp/ not empty`);
      await server.close();
    }
  }
});

void test('a response with a Content-Encoding (gzip on the fly) is refused, exit 2, nothing changed; the request asks for identity', async (t) => {
  const { dir, src, root } = setup(t);
  execFileSync('tar', ['-cf', path.join(dir, 'site.tar'), '-C', src, '.']);
  assert.equal((await runCli(['deploy', src, root])).code, 0);
  const beside = path.join(dir, 'beside');
  fs.mkdirSync(beside);
  fs.writeFileSync(path.join(beside, 'keep.txt'), 'precious\n');
  const before = treeSnapshot(root);
  const besideBefore = treeSnapshot(beside);
  const sha = createHash('sha256').update(fs.readFileSync(path.join(dir, 'site.tar'))).digest('hex');
  // The encoded bytes sniff as a tar.gz: read as such they gave "truncated" or "not ustar" errors, or a wrong digest.
  for (const [name, args] of [['site.tgz', []], ['site.zip', []], ['site.tar', []], ['site.tar', ['--sha256', sha]]] as const) {
    const server = await serve(t, dir, 'content-encoding-gzip');
    const r = await runCli(['deploy', server.url(name), root, '--download-timeout', '5', ...args]);
    const what = `${name} ${args.join(' ')}`;
    assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^error: http:\/\/127\.0\.0\.1:\d+\/site\.\w+ was sent with Content-Encoding: gzip, not as its own bytes$/m, what);
    assert.match(r.stderr, /^hint: /m, what);
    assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1, what);
    assert.deepEqual(server.requests.map((q) => q.acceptEncoding), ['identity'], what);
    assert.deepEqual(treeSnapshot(root), before, `${what}: the root changed`);
    assert.deepEqual(treeSnapshot(beside), besideBefore, `${what}: the directory beside changed`);
    assert.deepEqual(leftovers(root), [], what);
    await server.close();
  }
});

void test('a zip URL that never ends is spooled only up to what --max-bytes allows: exit 2, the spool gone, the root unchanged; so is one whose Content-Length says too much', async (t) => {
  const { src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  const before = treeSnapshot(root);
  let sent = 0;
  // A zip's first bytes, then zeros without end (or a length far beyond the limit).
  const server = http.createServer((req, res) => {
    if (req.url === '/declared.zip') {
      res.writeHead(200, { 'content-length': String(200 * 1024 ** 3) });
      res.write(Buffer.concat([Buffer.from('PK\x03\x04'), Buffer.alloc(8192)]));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/zip' });
    res.write(Buffer.from('PK\x03\x04'));
    zerosForever(res, 1 << 20, (n) => (sent += n));
  });
  const port = await listenLoopback(t, server);
  let peak = 0;
  const watch = setInterval(() => {
    for (const name of fs.readdirSync(path.join(root, '.tmp'))) {
      const st = fs.statSync(path.join(root, '.tmp', name), { throwIfNoEntry: false });
      if (st?.isFile()) peak = Math.max(peak, st.size);
    }
  }, 5);
  try {
    const r = await runCli(['deploy', `http://127.0.0.1:${port}/endless.zip`, root, '--max-bytes', '1M', '--no-fsync'], { timeoutMs: 120_000 });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^error: .*the zip is larger than --max-bytes \(1048576 bytes of contents\) allows: more than \d+ bytes/m);
  } finally {
    clearInterval(watch);
  }
  // The old code spooled until the disk or the connection ended (hundreds of MiB in a second here).
  assert.ok(peak <= 1024 * 1024 + 1024 + 64 * 1024 ** 2 + (1 << 21), `the spool grew to ${peak} bytes`);
  assert.ok(sent < 512 * 1024 ** 2, `the server sent ${sent} bytes`);
  // Found under the lock: directory times aside (docs/reliability.md, known limits), nothing changed.
  assert.deepEqual(leftovers(root), []);
  assert.deepEqual(treeSnapshot(root), before);
  const unchanged = treeSnapshot(root, { times: true });
  // A length that says too much is refused before the lock: not even a time changes.
  const declared = await runCli(['deploy', `http://127.0.0.1:${port}/declared.zip`, root, '--no-fsync', '--download-timeout', '5']);
  assert.equal(declared.code, 2, declared.stderr);
  assert.match(declared.stderr, /the zip is larger than --max-bytes/);
  assert.deepEqual(treeSnapshot(root, { times: true }), unchanged);
});

void test('a server that never answers: one "retrying" warning per retry made, none after the last attempt; a timeout under a millisecond is taken as 1 ms', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  for (const retries of [0, 1]) {
    const server = await serve(t, dir, 'silent');
    const r = await runCli(['deploy', server.url('site.tgz'), root, '--download-timeout', '0.5', '--download-retries', String(retries), '--no-fsync']);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(server.requests.length, retries + 1, JSON.stringify(server.requests));
    assert.equal(r.stderr.split('\n').filter((l) => /; retrying$/.test(l)).length, retries, r.stderr);
  }
  // 0.0004 s is greater than 0, as the flag asks: it was rounded to 0 ms and refused as "a whole number >= 1 (got 0)".
  const server = await serve(t, dir, 'silent');
  const tiny = await runCli(['deploy', server.url('site.tgz'), root, '--download-timeout', '0.0004', '--download-retries', '0', '--no-fsync']);
  assert.equal(tiny.code, 1, tiny.stderr);
  assert.doesNotMatch(tiny.stderr, /whole number/);
  assert.match(tiny.stderr, /downloading .* failed/);
});

/** Writes zero bytes to `res` until the client goes away, telling `count` each chunk written: a body without end. */
function zerosForever(res: http.ServerResponse, chunkBytes: number, count: (bytes: number) => void): void {
  const chunk = Buffer.alloc(chunkBytes);
  const pump = (): void => {
    while (!res.destroyed && res.write(chunk)) count(chunk.length);
    if (!res.destroyed) res.once('drain', pump);
  };
  pump();
}

/** Listens on a loopback port, closed (its connections too) after the test; returns the port. */
async function listenLoopback(t: { after(fn: () => Promise<void>): void }, server: http.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  return (server.address() as AddressInfo).port;
}

/** A loopback server that sends the named file of `dir` and then zero bytes for ever, with no Content-Length. */
async function endless(t: { after(fn: () => Promise<void>): void }, dir: string): Promise<{ url: (name: string) => string; sent: () => number }> {
  let sent = 0;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write(fs.readFileSync(path.join(dir, (req.url ?? '/').slice(1))));
    zerosForever(res, 64 * 1024, (n) => (sent += n));
  });
  const port = await listenLoopback(t, server);
  return { url: (name) => `http://127.0.0.1:${port}/${name}`, sent: () => sent };
}

void test('a tar or tar.gz URL whose body goes on with zeros after the archive (no Content-Length) is cut off past 1 MiB: exit 2 at once, root unchanged, lock released', async (t) => {
  const { dir, src, root } = setup(t);
  execFileSync('tar', ['-cf', path.join(dir, 'site.tar'), '-C', src, '.']);
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  const before = treeSnapshot(root);
  const server = await endless(t, dir);
  for (const name of ['site.tar', 'site.tgz']) {
    const started = Date.now();
    // Neither limit stopped it before: data keeps flowing, and padding is no content.
    const r = await runCli(['deploy', server.url(name), root, '--no-fsync', '--download-timeout', '2', '--max-bytes', '100M'], { timeoutMs: 60_000 });
    assert.equal(r.code, 2, `${name}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^error: http:\/\/127\.0\.0\.1:\d+\/site\.t\w+ is not a readable archive: more than 1048576 bytes \(1 MiB\) follow the end of the archive$/m, name);
    assert.ok(Date.now() - started < 30_000, `${name}: took ${Date.now() - started} ms`);
    assert.deepEqual(treeSnapshot(root), before, `${name}: the root changed`);
    assert.deepEqual(leftovers(root), [], name);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], `${name}: .tmp/ not empty`);
  }
  assert.ok(server.sent() < 512 * 1024 ** 2, `the server sent ${server.sent()} bytes`);
  // The lock was released: the next deploy runs.
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
});

void test('a URL that does not parse exits 2 at once, naming why, with no retry and nothing written', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const cases: [string, RegExp][] = [
    ['http://127.0.0.1:99999/dist.tgz', /^error: http:\/\/127\.0\.0\.1:99999\/dist\.tgz is not a valid URL: its port 99999 is out of range \(0 to 65535\); nothing was deployed$/m],
    ['http://', /^error: http:\/\/ is not a valid URL: it names no host; nothing was deployed$/m],
    ['http://[::1/dist.tgz', /^error: http:\/\/\[::1\/dist\.tgz is not a valid URL: its IPv6 address has no closing "\]"; nothing was deployed$/m],
    // Credentials and a query are not shown, even in a URL that does not parse.
    ['https://alice:s3cr3t@example.com:70000/a.tgz?X-Amz-Signature=TOKEN', /^error: https:\/\/example\.com:70000\/a\.tgz is not a valid URL: its port 70000 is out of range/m],
  ];
  for (const [url, message] of cases) {
    const r = await runCli(['deploy', url, root, '--json']);
    assert.equal(r.code, 2, `${url}: exit ${r.code}\n${r.stderr}`);
    assert.equal(jsonOf<{ error: { code: string } }>(r).error.code, 'INVALID_SOURCE', url);
    const plain = await runCli(['deploy', url, root]);
    assert.equal(plain.code, 2, url);
    assert.match(plain.stderr, message, url);
    // Each retry is announced with a warning first (the test below sees them): none, so no request was retried.
    assert.doesNotMatch(plain.stderr + r.stderr, /retrying|s3cr3t|TOKEN/, url);
    assert.equal(fs.existsSync(root), false, `${url}: the root was created`);
  }
});

void test('download messages: a retry before any answer names the URL (redacted), "1 retry" in the singular', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  // A port nothing listens on: refused connections, retried once.
  const closed = http.createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((resolve) => closed.close(() => resolve()));
  const refused = await runCli(['deploy', `http://alice:s3cr3t@127.0.0.1:${port}/site.tgz?token=TOKEN`, root, '--download-retries', '1', '--no-fsync']);
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, new RegExp(`^warning: http://127\\.0\\.0\\.1:${port}/site\\.tgz: connect ECONNREFUSED .*; retrying$`, 'm'));
  assert.doesNotMatch(refused.stderr, /s3cr3t|TOKEN/);
  const server = await serve(t, dir, 'stall');
  const stalled = await runCli(['deploy', server.url('site.tgz'), root, '--download-timeout', '0.5', '--download-retries', '1', '--no-fsync']);
  assert.equal(stalled.code, 1, stalled.stderr);
  assert.match(stalled.stderr, /\(after 1 retry\)$/m);
  const none = await runCli(['deploy', server.url('site.tgz'), root, '--download-timeout', '0.5', '--download-retries', '0', '--no-fsync']);
  assert.equal(none.code, 1, none.stderr);
  assert.match(none.stderr, /\(with no retries\)$/m);
});

void test('a corrupt archive at a URL with credentials and a signed query: the message shows neither', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  // Corrupt archives: a tar.gz cut short, a zip without its end record.
  fs.writeFileSync(path.join(dir, 'cut.tgz'), fs.readFileSync(path.join(dir, 'site.tgz')).subarray(0, 100));
  const zip = fs.readFileSync(path.join(dir, 'site.zip'));
  // Its end-of-central-directory record cut off.
  fs.writeFileSync(path.join(dir, 'bad.zip'), zip.subarray(0, zip.length - 30));
  const ok = await serve(t, dir, 'ok');
  const before = treeSnapshot(root);
  for (const [name, message] of [['cut.tgz', /is not a readable archive/], ['bad.zip', /is not a readable zip/]] as const) {
    const url = ok.url(name).replace('http://', 'http://alice:s3cr3t@') + '?X-Amz-Signature=TOKEN';
    const r = await runCli(['deploy', url, root, '--no-fsync']);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, message, name);
    assert.match(r.stderr, new RegExp(`error: http://127\\.0\\.0\\.1:\\d+/${name.replace('.', '\\.')} is not`), name);
    assert.doesNotMatch(r.stderr, /s3cr3t|TOKEN/, name);
    assert.deepEqual(treeSnapshot(root), before, name);
  }
});
