// Archives for the artifact tests, written byte by byte by Python's tarfile and zipfile: unlike
// tar(1), zip(1) or the Node writers, they put any name, type and link in an archive, hostile ones
// included, which is what the corpus needs.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import zlib from 'node:zlib';
import assert from 'node:assert/strict';
import { runCli } from './cli.ts';
import { makeSource, treeSnapshot } from './invariants.ts';

/** One entry to write; names are raw (Python's surrogateescape lets a test write invalid UTF-8). */
export interface Spec {
  name: string;
  type?: 'file' | 'dir' | 'symlink' | 'hardlink' | 'chr' | 'blk' | 'fifo';
  data?: string;
  /** Bytes of zeros instead of data (a compressible bomb). */
  zeros?: number;
  link?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  /** Seconds since 1970 (tar only; negative before it). */
  mtime?: number;
  /** PAX extended header records (tar only): the archive is then written in the PAX format. */
  pax?: Record<string, string>;
}

const WRITER = String.raw`
import io, json, sys, tarfile, time, zipfile
def data(s):
    return b'\0' * s['zeros'] if 'zeros' in s else s.get('data', '').encode('utf-8', 'surrogateescape')
def write(fmt, out, specs):
  if fmt == 'zip':
      with zipfile.ZipFile(out, 'w', zipfile.ZIP_DEFLATED) as z:
          for s in specs:
              t = s.get('type', 'file')
              kind = {'file': 0o100000, 'dir': 0o040000, 'symlink': 0o120000, 'chr': 0o020000, 'fifo': 0o010000}[t]
              info = zipfile.ZipInfo(s['name'], time.localtime()[:6])
              info.create_system = 3
              info.external_attr = (kind | s.get('mode', 0o755 if t == 'dir' else 0o644)) << 16
              z.writestr(info, s.get('link', '').encode() if t == 'symlink' else data(s))
  else:
      mode = {'tar': 'w', 'tar.gz': 'w:gz'}[fmt]
      tar_format = tarfile.PAX_FORMAT if any('pax' in s for s in specs) else tarfile.GNU_FORMAT
      with tarfile.open(out, mode, format=tar_format, encoding='utf-8', errors='surrogateescape') as tf:
          for s in specs:
              t = s.get('type', 'file')
              info = tarfile.TarInfo(s['name'])
              info.type = {'file': tarfile.REGTYPE, 'dir': tarfile.DIRTYPE, 'symlink': tarfile.SYMTYPE, 'hardlink': tarfile.LNKTYPE,
                           'chr': tarfile.CHRTYPE, 'blk': tarfile.BLKTYPE, 'fifo': tarfile.FIFOTYPE}[t]
              info.mode = s.get('mode', 0o755 if t == 'dir' else 0o644)
              info.uid, info.gid = s.get('uid', 0), s.get('gid', 0)
              info.mtime = s.get('mtime', 1700000000)
              if 'pax' in s:
                  info.pax_headers = s['pax']
              if t in ('symlink', 'hardlink'):
                  info.linkname = s['link']
              if t in ('chr', 'blk'):
                  info.devmajor, info.devminor = 1, 3
              body = data(s) if t == 'file' else b''
              info.size = len(body)
              tf.addfile(info, io.BytesIO(body) if t == 'file' else None)
for job in json.loads(sys.stdin.read()):
    write(job['format'], job['out'], job['specs'])
`;

export interface ArchiveJob {
  format: 'tar' | 'tar.gz' | 'zip';
  out: string;
  specs: readonly Spec[];
}

/** Writes every archive in one Python process (starting one costs a second on a loaded machine). */
export function writeArchives(jobs: readonly ArchiveJob[]): void {
  execFileSync('python3', ['-c', WRITER], { input: JSON.stringify(jobs) });
}

/** Writes `specs` as a tar, tar.gz or zip at `out`. */
export function writeArchive(format: ArchiveJob['format'], out: string, specs: readonly Spec[]): string {
  writeArchives([{ format, out, specs }]);
  return out;
}

export function sha256Of(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

export type ServeMode =
  | 'ok'
  /** Sends half the body, then closes the connection, once; later requests get the rest. */
  | 'drop-once'
  /** Like drop-once, but ignores Range: a retry must read it again from the start. */
  | 'drop-once-no-range'
  /** Sends the headers and a few bytes, then nothing, on every request. */
  | 'stall'
  /** Takes the request and never answers (no headers). */
  | 'silent'
  | 'not-found'
  /** Like drop-once-no-range, then every later request is answered from `<file>.v2` (206 to a Range): a file replaced meanwhile, on a server with no validator. */
  | 'drop-once-changed'
  /** Like drop-once (ETag "v1"), then a Range is answered from `<file>.v2` with ETag "v2", If-Range ignored. */
  | 'drop-once-etag-changed'
  /** Like drop-once, then a Range is answered 512 bytes later than asked (same ETag). */
  | 'drop-once-wrong-start'
  /** The file gzipped on the fly with `Content-Encoding: gzip`, whatever the request's Accept-Encoding. */
  | 'content-encoding-gzip';

export interface Server {
  url: (name: string) => string;
  requests: { range?: string; acceptEncoding?: string; via?: string }[];
  /** Connections from an address other than `onlyFrom`, closed unanswered. */
  refused: string[];
  close: () => Promise<void>;
}

export interface ServeOptions {
  /** Bytes per 10 ms tick, so that a test can interrupt the extraction half-way. */
  rate?: number;
  /** Serve over TLS with this key and certificate (PEM): the URLs are https://. */
  tls?: { key: string; cert: string };
  /** Close at once every connection from another address: a server only a proxy bound to this address can reach. */
  onlyFrom?: string;
}

/** A loopback HTTP server for the files of `dir`, misbehaving as `mode` says. */
export async function serve(t: { after(fn: () => Promise<void> | void): void }, dir: string, mode: ServeMode, options: ServeOptions = {}): Promise<Server> {
  const requests: { range?: string; acceptEncoding?: string; via?: string }[] = [];
  const refused: string[] = [];
  let dropped = false;
  const sockets = new Set<import('node:net').Socket>();
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    requests.push({ range: req.headers.range, acceptEncoding: req.headers['accept-encoding'], via: req.headers.via });
    if (req.url?.startsWith('/redirect/')) {
      // Where release assets and object stores send a client: a 302 to the file itself.
      res.writeHead(302, { location: req.url.slice('/redirect'.length) }).end();
      return;
    }
    if (mode === 'silent') return;
    const file = `${dir}/${decodeURIComponent((req.url ?? '/').slice(1).split('?')[0] ?? '')}`;
    if (mode === 'not-found' || !fs.existsSync(file)) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    const later = dropped && (mode === 'drop-once-changed' || mode === 'drop-once-etag-changed');
    const body = fs.readFileSync(later ? `${file}.v2` : file);
    if (mode === 'content-encoding-gzip') {
      const encoded = zlib.gzipSync(body);
      res.writeHead(200, { 'content-length': encoded.length, 'content-type': 'application/octet-stream', 'content-encoding': 'gzip' }).end(encoded);
      return;
    }
    const misbehaving = mode === 'drop-once-changed' || mode === 'drop-once-etag-changed' || mode === 'drop-once-wrong-start';
    if (misbehaving) {
      const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      const start = mode === 'drop-once-wrong-start' && from > 0 ? from + 512 : from;
      const headers: http.OutgoingHttpHeaders = { 'content-length': body.length - start };
      if (mode !== 'drop-once-changed') headers.etag = later ? '"v2"' : '"v1"';
      if (req.headers.range) headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
      res.writeHead(req.headers.range ? 206 : 200, headers);
      if (!dropped) {
        dropped = true;
        res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => req.socket.destroy(), 50));
        return;
      }
      res.end(body.subarray(start));
      return;
    }
    if (mode === 'stall') {
      const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
      res.writeHead(from > 0 ? 206 : 200, { 'content-length': body.length - from, etag: '"v1"', ...(from > 0 ? { 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` } : {}) });
      res.write(body.subarray(from, Math.min(from + 1024, body.length)));
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && mode !== 'drop-once-no-range') {
      const from = Number(range[1]);
      res.writeHead(206, { 'content-length': body.length - from, 'content-range': `bytes ${from}-${body.length - 1}/${body.length}`, etag: '"v1"' });
      res.end(body.subarray(from));
      return;
    }
    const headers: http.OutgoingHttpHeaders = { 'content-length': body.length, 'content-type': 'application/octet-stream' };
    if (mode !== 'drop-once-no-range') {
      headers.etag = '"v1"';
      headers['accept-ranges'] = 'bytes';
    }
    res.writeHead(200, headers);
    if ((mode === 'drop-once' || mode === 'drop-once-no-range') && !dropped) {
      dropped = true;
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => req.socket.destroy(), 50));
      return;
    }
    const rate = options.rate;
    if (rate) {
      // Slowly, so that a test can interrupt the extraction half-way.
      let at = 0;
      const tick = (): void => {
        if (res.destroyed) return;
        const next = Math.min(body.length, at + rate);
        const more = res.write(body.subarray(at, next));
        at = next;
        if (at >= body.length) res.end();
        else if (more) setTimeout(tick, 10);
        else res.once('drain', () => setTimeout(tick, 10));
      };
      tick();
      return;
    }
    res.end(body);
  };
  const server = options.tls ? https.createServer({ key: options.tls.key, cert: options.tls.cert }, handler) : http.createServer(handler);
  // 'connection' is the TCP connection, before any TLS: the address is the client's or the proxy's.
  server.on('connection', (s: import('node:net').Socket) => {
    if (options.onlyFrom !== undefined && s.remoteAddress !== options.onlyFrom) {
      refused.push(s.remoteAddress ?? '');
      s.destroy();
      return;
    }
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const close = async (): Promise<void> => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  t.after(close);
  return { url: (name) => `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}/${name}`, requests, refused, close };
}

/**
 * The scene of a refused artifact: `<dir>/root` with one release and `<dir>/beside`, a directory
 * next to it holding a private file, with snapshots of both to compare after the refusal.
 */
export async function rootBeside(dir: string): Promise<{ root: string; beside: string; rootBefore: string[]; besideBefore: string[] }> {
  const root = path.join(dir, 'root');
  const beside = path.join(dir, 'beside');
  fs.mkdirSync(beside);
  fs.writeFileSync(path.join(beside, 'keep.txt'), 'precious\n', { mode: 0o600 });
  const first = await runCli(['deploy', makeSource(path.join(dir, 'src'), 'v1'), root, '--no-fsync']);
  assert.equal(first.code, 0, first.stderr);
  return { root, beside, rootBefore: treeSnapshot(root), besideBefore: treeSnapshot(beside) };
}
