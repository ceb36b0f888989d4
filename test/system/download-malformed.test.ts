// Answers that break HTTP/1.1 framing, from a raw loopback server (net.createServer: node:http
// would not send them). A body longer than its Content-Length: Node's parser keeps the announced
// bytes and fails on the rest as the start of a next answer, which nobody read, so the deploy went
// on with a cut artifact and said only what the archive reader saw ("not a readable archive:
// unexpected end of file", "End of central directory record signature not found"), nothing of the
// server. Now: exit 1 saying the server sent more than its Content-Length, nothing changed. An
// answer with both Content-Length and Transfer-Encoding said "Parse Error: …": now it says the
// answer is not valid HTTP.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { rootBeside } from '../harness/archives.ts';
import { runCli, tempDir } from '../harness/cli.ts';
import { leftovers, treeSnapshot } from '../harness/invariants.ts';

/** A raw server answering every request with `head` (the status line and headers), then `body`, in one write. */
async function raw(t: { after(fn: () => Promise<void>): void }, head: (body: Buffer) => string, body: Buffer): Promise<string> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    let got = '';
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if (!got.includes('\r\n\r\n')) return;
      got = '';
      socket.write(Buffer.concat([Buffer.from(`${head(body)}\r\n`, 'latin1'), body]));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy();
    server.close(() => resolve());
  }));
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

void test('a server that sends more than its Content-Length: exit 1 naming it, for a tar.gz, a zip and a tar (whose cut in the padding read as whole), nothing changed', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'build');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'index.html'), '<h1>new</h1>\n');
  fs.writeFileSync(path.join(src, 'data.txt'), Array.from({ length: 20000 }, (_, i) => `${i}\n`).join(''));
  execFileSync('tar', ['-czf', path.join(dir, 'a.tgz'), '-C', src, '.']);
  execFileSync('tar', ['-cf', path.join(dir, 'a.tar'), '-C', src, '.']);
  execFileSync('zip', ['-qr', path.join(dir, 'a.zip'), '.'], { cwd: src });
  const { root, beside, rootBefore, besideBefore } = await rootBeside(dir);
  for (const name of ['a.tgz', 'a.zip', 'a.tar']) {
    const bytes = fs.readFileSync(path.join(dir, name));
    // The whole file, announced 1,000 bytes short (a file written to while it was served, a proxy's stale length).
    const base = await raw(t, (b) => `HTTP/1.1 200 OK\r\nContent-Length: ${b.length - 1000}\r\n`, bytes);
    const r = await runCli(['deploy', `${base}/${name}`, root, '--no-fsync', '--download-retries', '0']);
    assert.equal(r.code, 1, `${name}: exit ${r.code}\n${r.stderr}`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, `${name}: ${r.stderr}`);
    assert.match(errors[0] ?? '', new RegExp(`failed: the server sent more than the ${bytes.length - 1000} bytes its Content-Length announced`), name);
    assert.match(r.stderr, /^hint: .*announces a wrong length/m, name);
    assert.deepEqual(treeSnapshot(root), rootBefore, `${name}: the root changed`);
    assert.deepEqual(treeSnapshot(beside), besideBefore, `${name}: beside the root changed`);
    assert.deepEqual(leftovers(root), [], name);
  }
  // Control: the right length deploys, from the same raw server.
  const good = await raw(t, (b) => `HTTP/1.1 200 OK\r\nContent-Length: ${b.length}\r\n`, fs.readFileSync(path.join(dir, 'a.tgz')));
  const ok = await runCli(['deploy', `${good}/a.tgz`, root, '--no-fsync']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8'), '<h1>new</h1>\n');
});

void test('an answer that is not valid HTTP (Content-Length and Transfer-Encoding both, two Content-Lengths) says so, not "Parse Error"', async (t) => {
  const dir = tempDir(t);
  const { root, rootBefore } = await rootBeside(dir);
  const cases = [
    { name: 'Content-Length and Transfer-Encoding', head: (b: Buffer) => `HTTP/1.1 200 OK\r\nContent-Length: ${b.length}\r\nTransfer-Encoding: chunked\r\n`, said: /its answer is not valid HTTP \(Transfer-Encoding can't be present with Content-Length\)/ },
    { name: 'two Content-Lengths', head: (b: Buffer) => `HTTP/1.1 200 OK\r\nContent-Length: ${b.length}\r\nContent-Length: ${b.length + 1}\r\n`, said: /its answer is not valid HTTP \(Duplicate Content-Length\)/ },
  ];
  for (const c of cases) {
    const base = await raw(t, c.head, Buffer.from('0123456789'));
    const r = await runCli(['deploy', `${base}/a.tgz`, root, '--no-fsync', '--download-retries', '1']);
    assert.equal(r.code, 1, `${c.name}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^warning: .*its answer is not valid HTTP .*; retrying$/m, c.name);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, `${c.name}: ${r.stderr}`);
    assert.match(errors[0] ?? '', c.said, c.name);
    assert.doesNotMatch(r.stderr, /Parse Error/, c.name);
    assert.deepEqual(treeSnapshot(root), rootBefore, c.name);
  }
});

void test('a resume answered 206 with the same validator but another total length in its Content-Range (a file rewritten within the second of its Last-Modified) fails, not stitched; the same length resumes', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'build');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'index.html'), '<h1>new</h1>\n');
  fs.writeFileSync(path.join(src, 'noise.bin'), Buffer.from(Array.from({ length: 400_000 }, (_, i) => (i * 7919 + (i >> 7)) % 251)));
  execFileSync('tar', ['-czf', path.join(dir, 'a.tgz'), '-C', src, '.']);
  const body = fs.readFileSync(path.join(dir, 'a.tgz'));
  const { root, beside, rootBefore, besideBefore } = await rootBeside(dir);
  const modified = new Date(1_700_000_000_000).toUTCString();
  for (const grown of [5, 0]) {
    let dropped = false;
    const server = http.createServer((req, res) => {
      const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? -1);
      if (from < 0) {
        res.writeHead(200, { 'content-length': body.length, 'last-modified': modified });
        // Half the file, then the connection drops: the client resumes with Range and If-Range.
        res.write(body.subarray(0, body.length >> 1), () => setTimeout(() => req.socket.destroy(), 50));
        dropped = true;
        return;
      }
      // The rest, under a Content-Range whose total is `grown` bytes longer than the first answer's length.
      res.writeHead(206, { 'content-length': body.length - from, 'last-modified': modified, 'content-range': `bytes ${from}-${body.length - 1}/${body.length + grown}` });
      res.end(body.subarray(from));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }));
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/a.tgz`;
    const r = await runCli(['deploy', url, root, '--no-fsync']);
    assert.ok(dropped);
    if (grown === 0) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stderr, /resuming at byte \d+/);
      continue;
    }
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`changed while it was downloading \\(it is ${body.length + grown} bytes long in the answer resuming it, ${body.length} in the first\\)`));
    assert.deepEqual(treeSnapshot(root), rootBefore);
    assert.deepEqual(treeSnapshot(beside), besideBefore);
    assert.deepEqual(leftovers(root), []);
  }
});
