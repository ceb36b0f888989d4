// The tar reader against an independent writer (tar-stream's pack, which uses PAX records for long
// and non-ASCII names): every entry comes back whole, whatever the chunk boundaries, and nothing
// of a chunk is used after push returns (each chunk's buffer is scribbled over right after).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import tar from 'tar-stream';
import { sniffFormat } from '../../src/plan/archive.ts';
import { decodeHeader, decodePax, MAX_TRAILING, TarFormatError, TarParser, type TarHeader } from '../../src/plan/tar.ts';

interface Spec {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'link';
  data: Buffer;
  linkname?: string;
  mode: number;
  mtime: number;
}

async function pack(specs: readonly Spec[]): Promise<Buffer> {
  const p = tar.pack();
  for (const s of specs) {
    const header = { name: s.name, type: s.type, mode: s.mode, mtime: new Date(s.mtime * 1000), uid: 1000, gid: 100, ...(s.linkname !== undefined ? { linkname: s.linkname } : {}) };
    if (s.type === 'file') p.entry({ ...header, size: s.data.length }, s.data);
    else p.entry(header);
  }
  p.finalize();
  const parts: Buffer[] = [];
  for await (const chunk of p) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

interface Seen {
  header: TarHeader;
  data: Buffer;
}

/** Parses `bytes` in chunks of the given sizes, each lent in one buffer that is overwritten after push. */
function parse(bytes: Buffer, sizes: readonly number[]): Seen[] {
  const seen: Seen[] = [];
  const parser = new TarParser({
    entry(header) {
      const entry: Seen = { header, data: Buffer.alloc(0) };
      seen.push(entry);
      return { data: (b) => void (entry.data = Buffer.concat([entry.data, b])), end: () => undefined };
    },
  });
  const lent = Buffer.alloc(bytes.length + 1);
  let off = 0;
  let i = 0;
  while (off < bytes.length) {
    const n = Math.max(1, Math.min(sizes[i++ % sizes.length] ?? 1, bytes.length - off));
    bytes.copy(lent, 0, off, off + n);
    parser.push(lent.subarray(0, n));
    lent.fill(0xa5);
    off += n;
  }
  parser.finish();
  return seen;
}

const TYPES = { file: 'file', directory: 'dir', symlink: 'symlink', link: 'hardlink' } as const;

const specArb = fc.record({
  name: fc.oneof(fc.stringMatching(/^[a-z0-9._-]{1,20}$/), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).map((s) => `d/${s.replace(/[\0/]/g, '_')}`), fc.stringMatching(/^[a-z]{1,30}$/).map((s) => `${'long/'.repeat(30)}${s}`)),
  type: fc.constantFrom<Spec['type'][]>('file', 'file', 'directory', 'symlink', 'link'),
  data: fc.uint8Array({ maxLength: 3000 }).map((a) => Buffer.from(a)),
  linkname: fc.stringMatching(/^[a-z/]{1,150}$/),
  mode: fc.constantFrom(0o644, 0o755, 0o600, 0o4755),
  mtime: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
});

/** Rewrites a header block's checksum after a test edited its fields. */
function withChecksum(block: Buffer): Buffer {
  block.write('        ', 148);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

/** Runs `body` in a fresh temporary directory, removed afterwards (for archives made by tar(1)). */
function inTempDir(prefix: string, body: (dir: string) => void): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  try {
    body(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void test('every entry tar-stream writes is read back, name, type, link, mode, owner, time and data, at any chunk boundaries', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(specArb, { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 1500 }), { minLength: 1, maxLength: 5 }), async (raw, sizes) => {
      const specs: Spec[] = raw.map((s) => ({ ...s, data: s.type === 'file' ? s.data : Buffer.alloc(0), ...(s.type === 'symlink' || s.type === 'link' ? {} : { linkname: undefined }) }));
      const bytes = await pack(specs);
      const seen = parse(bytes, sizes);
      assert.equal(seen.length, specs.length);
      for (const [i, s] of specs.entries()) {
        const got = seen[i] as Seen;
        assert.equal(got.header.name.replace(/\/+$/, ''), s.name.replace(/\/+$/, ''));
        assert.equal(got.header.type, TYPES[s.type]);
        assert.equal(got.header.mode, s.mode);
        assert.equal(got.header.uid, 1000);
        assert.equal(got.header.gid, 100);
        assert.equal(got.header.mtimeMs, s.mtime * 1000);
        assert.equal(got.header.linkname, s.linkname);
        assert.deepEqual(got.data, s.data);
      }
    }),
    { numRuns: 150 },
  );
});

void test('a truncated archive, a bad checksum, an unknown format and data after the end block are format errors', async () => {
  const bytes = await pack([{ name: 'a.txt', type: 'file', data: Buffer.from('hello'), mode: 0o644, mtime: 1 }]);
  assert.throws(() => parse(bytes.subarray(0, 512 + 3), [4096]), TarFormatError);
  assert.throws(() => parse(bytes.subarray(0, 100), [4096]), TarFormatError);
  const bad = Buffer.from(bytes);
  bad[0] = 0x62;
  assert.throws(() => parse(bad, [4096]), /checksum/);
  const unknown = Buffer.from(bytes);
  unknown.write('xxxxx', 257, 'latin1');
  assert.throws(() => parse(unknown, [4096]), /unknown format/);
  // Zero padding after the end block is normal; anything else (a second archive appended) is refused.
  assert.equal(parse(Buffer.concat([bytes, Buffer.alloc(70_000)]), [7, 65_536]).length, 1);
  // Up to MAX_TRAILING (1 MiB) of it: past that it is no padding (a body that never ends), whatever the chunks.
  // tar-stream ends with two zero blocks: the bytes after the first are what is counted.
  const afterEnd = bytes.length - 512;
  assert.equal(parse(Buffer.concat([bytes.subarray(0, afterEnd), Buffer.alloc(MAX_TRAILING)]), [65_536, 3]).length, 1);
  assert.throws(() => parse(Buffer.concat([bytes.subarray(0, afterEnd), Buffer.alloc(MAX_TRAILING + 1)]), [65_536, 3]), /more than 1048576 bytes \(1 MiB\) follow the end of the archive/);
  assert.throws(() => parse(Buffer.concat([bytes, bytes]), [4096]), /follows the end/);
  assert.throws(() => parse(Buffer.concat([bytes, Buffer.alloc(100_000), Buffer.from('x')]), [9000]), /follows the end/);
  // Cut at an entry boundary: no end-of-archive block, so nothing tells it from an archive whose
  // later entries are missing (a body cut where no Content-Length says so): refused.
  assert.throws(() => parse(bytes.subarray(0, 1024), [300]), /no end-of-archive block/);
  // One zero block ends it (tar writes two, some writers one).
  assert.equal(parse(bytes.subarray(0, 1536), [300]).length, 1);
});

void test('numbers in GNU base-256 and PAX records decode; a malformed PAX record is refused', () => {
  const block = Buffer.alloc(512);
  block.write('big', 0);
  block.write('0000644\0', 100);
  block.write('0000000\0', 108);
  block.write('0000000\0', 116);
  // 2^33 bytes in base-256: more than 11 octal digits hold.
  block[124] = 0x80;
  block.writeUIntBE(2 ** 33, 130, 6);
  block.write('00000000000\0', 136);
  block.write('0', 156);
  block.write('ustar\x0000', 257, 'latin1');
  const raw = decodeHeader(withChecksum(block));
  assert.equal(raw.kind, 'entry');
  assert.equal(raw.kind === 'entry' ? raw.header.size : 0, 2 ** 33);
  assert.deepEqual(decodePax(Buffer.from('17 path=é/x.txt\n11 size=42\n')), new Map([['path', 'é/x.txt'], ['size', '42']]));
  assert.throws(() => decodePax(Buffer.from('99 path=x\n')), TarFormatError);
  assert.throws(() => decodePax(Buffer.from('nonsense')), TarFormatError);
});

void test('a v7 tar (no magic) is told by its first header checksum and decodes as ustar without a prefix', () => {
  inTempDir('v7-', (dir) => {
    fs.mkdirSync(path.join(dir, 'src/sub'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'src/sub/a.txt'), 'hello\n');
    execFileSync('tar', ['--format=v7', '-cf', path.join(dir, 'old.tar'), '-C', path.join(dir, 'src'), 'sub']);
    const bytes = fs.readFileSync(path.join(dir, 'old.tar'));
    assert.equal(sniffFormat(bytes.subarray(0, 512)), 'tar');
    const got = parse(bytes, [333]);
    assert.deepEqual(got.map((e) => [e.header.name, e.header.type]), [['sub/', 'dir'], ['sub/a.txt', 'file']]);
    assert.equal(got[1]?.data.toString(), 'hello\n');
    // The same block with one byte changed is no tar at all: the checksum is all that tells a v7 header.
    const bad = Buffer.from(bytes);
    bad[5] = (bad[5] ?? 0) ^ 1;
    assert.equal(sniffFormat(bad.subarray(0, 512)), undefined);
  });
});

void test('a GNU tar of a file dated before 1970 (a negative base-256 time) decodes; a negative size stays refused', () => {
  inTempDir('old-time-', (dir) => {
    fs.writeFileSync(path.join(dir, 'old.txt'), 'from 1960\n');
    execFileSync('touch', ['-d', '1960-01-01T00:00:00Z', path.join(dir, 'old.txt')]);
    execFileSync('tar', ['--format=gnu', '-cf', path.join(dir, 'old.tar'), '-C', dir, 'old.txt']);
    const bytes = fs.readFileSync(path.join(dir, 'old.tar'));
    assert.ok(((bytes[136] ?? 0) & 0xc0) === 0xc0, 'GNU tar wrote the time in negative base-256');
    const [entry] = parse(bytes, [4096]);
    assert.equal(entry?.header.mtimeMs, Date.parse('1960-01-01T00:00:00Z'));
    assert.equal(entry?.data.toString(), 'from 1960\n');
    // The same bytes in the size field are still nonsense.
    const block = Buffer.from(bytes.subarray(0, 512));
    bytes.copy(block, 124, 136, 148);
    assert.throws(() => decodeHeader(withChecksum(block)), /negative/);
  });
});

void test('a name that is not UTF-8 keeps its bytes for messages, from the header, a GNU long name or a PAX path; a UTF-8 one has none', () => {
  const header = (name: Buffer, flag = '0', size = 0): Buffer => {
    const block = Buffer.alloc(512);
    name.copy(block, 0, 0, Math.min(100, name.length));
    block.write('0000644\0', 100, 'latin1');
    block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
    block.write(flag, 156, 'latin1');
    block.write('ustar\0' + '00', 257, 'latin1');
    return withChecksum(block);
  };
  const padded = (data: Buffer): Buffer => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);
  const bad = Buffer.from('caf\xe9.txt', 'latin1');
  const long = Buffer.concat([Buffer.alloc(120, 0x64), Buffer.from('/'), bad]);
  const paxRecord = (value: Buffer): Buffer => {
    const body = Buffer.concat([Buffer.from(' path='), value, Buffer.from('\n')]);
    let n = body.length + 1;
    while (String(n).length + body.length !== n) n = String(n).length + body.length;
    return Buffer.concat([Buffer.from(String(n)), body]);
  };
  const record = paxRecord(bad);
  const tar = Buffer.concat([
    header(bad),
    header(Buffer.from('././@LongLink'), 'L', long.length + 1), padded(Buffer.concat([long, Buffer.from([0])])), header(Buffer.from('short')),
    header(Buffer.from('pax'), 'x', record.length), padded(record), header(Buffer.from('placeholder')),
    header(Buffer.from('fine.txt')),
    Buffer.alloc(1024),
  ]);
  const seen = parse(tar, [100, 512, 4096]);
  assert.deepEqual(seen.map((s) => s.header.rawName), [bad, long, bad, undefined]);
  assert.ok(seen.slice(0, 3).every((s) => s.header.name.includes('\uFFFD')));
});

void test('a link, or a file header named as a directory, that carries a size is a format error (readers disagree on what follows); with size 0 it decodes', async () => {
  const sized = (spec: Spec, flag: string | undefined, size: number): Promise<Buffer> =>
    pack([spec]).then((bytes) => {
      const block = Buffer.from(bytes.subarray(0, 512));
      if (flag !== undefined) block.write(flag, 156, 'latin1');
      block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
      // The bytes after the header: data for a reader that takes the size, a header for one that does not.
      return Buffer.concat([withChecksum(block), Buffer.alloc(size), bytes.subarray(512)]);
    });
  const base = { data: Buffer.alloc(0), mode: 0o644, mtime: 1 };
  const cases = [
    [{ ...base, name: 'l', type: 'symlink', linkname: 'a' }, undefined, /entry "l" is a symlink whose header gives it 1024 bytes of data/],
    [{ ...base, name: 'h', type: 'link', linkname: 'a' }, undefined, /entry "h" is a hard link whose header gives it 512 bytes of data/],
    [{ ...base, name: 'x/', type: 'file' }, '0', /entry "x\/" is a directory whose header gives it 1024 bytes of data/],
    [{ ...base, name: 'x/', type: 'file' }, '\0', /entry "x\/" is a directory whose header gives it 512 bytes of data/],
  ] as const;
  for (const [spec, flag, message] of cases) {
    const size = /1024/.test(message.source) ? 1024 : 512;
    const bytes = await sized(spec, flag, size);
    assert.throws(() => parse(bytes, [512]), (error: unknown) => error instanceof TarFormatError && message.test(error.message) && /tar readers disagree/.test(error.hint ?? ''));
    const none = await sized(spec, flag, 0);
    assert.equal(parse(none, [512]).length, 1, spec.name);
  }
  // A directory (type 5) with a size is read as every reader reads it: no data.
  const dir = await pack([{ ...base, name: 'd', type: 'directory' }]);
  const block = Buffer.from(dir.subarray(0, 512));
  block.write(`${(512).toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  assert.deepEqual(parse(Buffer.concat([withChecksum(block), dir.subarray(512)]), [512]).map((s) => s.header.type), ['dir']);
});
