// Zips whose entries share bytes. The non-recursive zip bomb (Fifield 2019, "A better zip bomb")
// gives each entry its own local header, but its deflate data begins with a stored block that
// quotes the next entry's local header and then goes on into that entry's data, so every entry
// expands the same kernel: here 1,506 bytes give five files of 1 MiB (3,481:1, where deflate alone
// stops near 1032:1), and the same construction with more entries and a larger kernel gives
// terabytes from megabytes. Info-ZIP's UnZip 6.0 refuses it since CVE-2019-13232 ("invalid zip
// file with overlapped components"). Every entry's bytes, [local header, end of its data and data
// descriptor), must be its own and lie before the central directory: else exit 2, one line naming
// the entries, nothing written. Zips made by Info-ZIP's zip (to a file, to a pipe, ZIP64) and by
// Python's zipfile to a stream deploy; zip's ZIP64 to a pipe, which no reader reads, is named.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { crc32Table } from '../../src/act/archive.ts';
import { rootBeside } from '../harness/archives.ts';
import { runCli, tempDir } from '../harness/cli.ts';
import { leftovers, treeSnapshot } from '../harness/invariants.ts';
import { requireTool } from '../harness/swappers.ts';

const crc32 = (data: Buffer, value = 0): number => crc32Table(data, value);

interface Fields {
  name: string;
  method: 0 | 8;
  crc: number;
  compressed: number;
  uncompressed: number;
  /** General purpose flags: bit 3 says a data descriptor follows the data. */
  flags?: number;
}

/** A local file header (30 bytes and the name, no extra field). */
function localHeader(f: Fields): Buffer {
  const name = Buffer.from(f.name);
  const b = Buffer.alloc(30);
  b.writeUInt32LE(0x04034b50, 0);
  b.writeUInt16LE(20, 4);
  b.writeUInt16LE(f.flags ?? 0, 6);
  b.writeUInt16LE(f.method, 8);
  b.writeUInt16LE(0x21, 12);
  b.writeUInt32LE(f.crc >>> 0, 14);
  b.writeUInt32LE(f.compressed, 18);
  b.writeUInt32LE(f.uncompressed, 22);
  b.writeUInt16LE(name.length, 26);
  return Buffer.concat([b, name]);
}

/** A central directory record for a file of mode 0644 made on Unix, its local header at `offset`. */
function centralRecord(f: Fields, offset: number): Buffer {
  const name = Buffer.from(f.name);
  const b = Buffer.alloc(46);
  b.writeUInt32LE(0x02014b50, 0);
  b.writeUInt16LE(0x031e, 4);
  b.writeUInt16LE(20, 6);
  b.writeUInt16LE(f.flags ?? 0, 8);
  b.writeUInt16LE(f.method, 10);
  b.writeUInt16LE(0x21, 14);
  b.writeUInt32LE(f.crc >>> 0, 16);
  b.writeUInt32LE(f.compressed, 20);
  b.writeUInt32LE(f.uncompressed, 24);
  b.writeUInt16LE(name.length, 28);
  b.writeUInt32LE((0o100644 << 16) >>> 0, 38);
  b.writeUInt32LE(offset, 42);
  return Buffer.concat([b, name]);
}

/** `body` (the local headers and data), then a central directory of `records` and its end record. */
function withDirectory(body: Buffer, records: { fields: Fields; offset: number }[]): Buffer {
  const directory = Buffer.concat(records.map((r) => centralRecord(r.fields, r.offset)));
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(records.length, 8);
  end.writeUInt16LE(records.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(body.length, 16);
  return Buffer.concat([body, directory, end]);
}

/**
 * Fifield's quoted overlap: local headers one after another, each but the last followed by the
 * 5-byte header of a non-final stored block as long as the next local header, then one deflate
 * kernel. Entry i's data runs from its stored block to the end of the kernel, so it inflates to
 * every later local header and then the kernel's output. Sizes and CRC-32s are computed from the
 * last entry back, each local header agreeing with its central record.
 */
function quotedOverlap(names: string[], kernelBytes: number): Buffer {
  const plain = Buffer.alloc(kernelBytes, 'a');
  const kernel = zlib.deflateRawSync(plain, { level: 9 });
  const headers: Buffer[] = [];
  const fields: Fields[] = [];
  for (let i = names.length - 1; i >= 0; i--) {
    const later = headers.slice(0); // headers of entries i+1.. in order
    let crc = 0;
    for (const h of later) crc = crc32(h, crc);
    crc = crc32(plain, crc);
    const quoted = later.reduce((n, h) => n + h.length, 0);
    // The next entry's stored block header and local header, then its data; the last entry: the kernel.
    const next = later[0] && fields[0] ? 5 + later[0].length + fields[0].compressed : kernel.length;
    const f: Fields = { name: names[i] as string, method: 8, crc, compressed: next, uncompressed: quoted + plain.length };
    fields.unshift(f);
    headers.unshift(localHeader(f));
  }
  const parts: Buffer[] = [];
  const offsets: number[] = [];
  let at = 0;
  for (const [i, h] of headers.entries()) {
    offsets.push(at);
    parts.push(h);
    at += h.length;
    const next = headers[i + 1];
    if (next) {
      const block = Buffer.alloc(5); // BFINAL 0, BTYPE 00 (stored), then LEN and NLEN
      block.writeUInt16LE(next.length, 1);
      block.writeUInt16LE(~next.length & 0xffff, 3);
      parts.push(block);
      at += 5;
    }
  }
  parts.push(kernel);
  return withDirectory(Buffer.concat(parts), fields.map((f, i) => ({ fields: f, offset: offsets[i] as number })));
}

/** A stored entry whose data is a whole second entry (its local header and data), both listed. */
function hiddenInside(): Buffer {
  const innerData = Buffer.from('<?php system($_GET["c"]);\n');
  const inner: Fields = { name: 'inner.php', method: 0, crc: crc32(innerData), compressed: innerData.length, uncompressed: innerData.length };
  const outerData = Buffer.concat([localHeader(inner), innerData]);
  const outer: Fields = { name: 'outer.bin', method: 0, crc: crc32(outerData), compressed: outerData.length, uncompressed: outerData.length };
  const outerHeader = localHeader(outer);
  return withDirectory(Buffer.concat([outerHeader, outerData]), [
    { fields: outer, offset: 0 },
    { fields: inner, offset: outerHeader.length },
  ]);
}

/** index.html deflated, its compressed size (local and central alike) counting 40 bytes of the central directory. */
function intoDirectory(): Buffer {
  const data = Buffer.from('<h1>new</h1>\n'.repeat(20));
  const deflated = zlib.deflateRawSync(data);
  const f: Fields = { name: 'index.html', method: 8, crc: crc32(data), compressed: deflated.length + 40, uncompressed: data.length };
  return withDirectory(Buffer.concat([localHeader(f), deflated]), [{ fields: f, offset: 0 }]);
}

/** a.txt says a data descriptor follows its data (flag bit 3), but b.txt's local header starts there. */
function descriptorOverNext(): Buffer {
  const a = Buffer.from('first\n');
  const b = Buffer.from('second\n');
  const fa: Fields = { name: 'a.txt', method: 0, crc: crc32(a), compressed: a.length, uncompressed: a.length, flags: 0x8 };
  const fb: Fields = { name: 'b.txt', method: 0, crc: crc32(b), compressed: b.length, uncompressed: b.length };
  const la = localHeader({ ...fa, crc: 0, compressed: 0, uncompressed: 0 });
  return withDirectory(Buffer.concat([la, a, localHeader(fb), b]), [
    { fields: fa, offset: 0 },
    { fields: fb, offset: la.length + a.length },
  ]);
}

void test('a zip whose entries overlap (the quoted-overlap zip bomb, an entry inside another, data running into the central directory or a data descriptor over the next header) exits 2 naming the entries and changes nothing', async (t) => {
  const dir = tempDir(t);
  const { root, beside, rootBefore, besideBefore } = await rootBeside(dir);
  const bomb = path.join(dir, 'bomb.zip');
  fs.writeFileSync(bomb, quotedOverlap(['a.txt', 'b.txt', 'c.txt', 'd.txt', 'e.txt'], 1 << 20));
  // What it is: every entry reads as a whole file of more than 1 MiB, from 1,506 bytes.
  const listed = execFileSync(requireTool('python3', 'python3'), ['-c', 'import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); print(sum(len(z.read(n)) for n in z.namelist()))', bomb], { encoding: 'utf8' });
  assert.ok(Number(listed) > 5 * 1024 * 1024, listed);
  assert.ok(fs.statSync(bomb).size < 2000);
  // Debian's UnZip 6.0 (with the CVE-2019-13232 fix) refuses it.
  const unzip = spawnSync(requireTool('unzip', 'unzip'), ['-t', bomb], { encoding: 'utf8' });
  assert.notEqual(unzip.status, 0);
  assert.match(unzip.stdout + unzip.stderr, /overlapped components/);

  const cases = [
    { name: 'the quoted-overlap bomb', file: bomb, message: /entries "a\.txt" and "b\.txt" overlap in the zip/ },
    { name: 'an entry inside another', bytes: hiddenInside(), message: /entries "outer\.bin" and "inner\.php" overlap in the zip/ },
    { name: 'data running into the central directory', bytes: intoDirectory(), message: /entry "index\.html" runs into the zip's central directory/ },
    { name: 'a data descriptor over the next local header', bytes: descriptorOverNext(), message: /entries "a\.txt" and "b\.txt" overlap in the zip/ },
  ];
  for (const [i, c] of cases.entries()) {
    const file = c.file ?? path.join(dir, `overlap-${i}.zip`);
    if (c.bytes) fs.writeFileSync(file, c.bytes);
    const r = await runCli(['deploy', file, root, '--no-fsync']);
    assert.equal(r.code, 2, `${c.name}: exit ${r.code}\n${r.stderr}`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, `${c.name}: ${r.stderr}`);
    assert.match(errors[0] ?? '', /^error: refused /, c.name);
    assert.match(errors[0] ?? '', c.message, c.name);
    assert.match(r.stderr, /^hint: nothing was deployed; .*each entry's bytes/m, c.name);
    assert.deepEqual(treeSnapshot(root), rootBefore, `${c.name}: the root changed`);
    assert.deepEqual(treeSnapshot(beside), besideBefore, `${c.name}: beside the root changed`);
    assert.deepEqual(leftovers(root), [], c.name);
  }
});

/** Python's zipfile writing to a stream it cannot seek: every entry's sizes in a data descriptor. */
const STREAMED = String.raw`
import io, sys, zipfile
class Unseekable(io.RawIOBase):
    def __init__(self, f): self.f = f
    def writable(self): return True
    def write(self, data): return self.f.write(data)
out, src = sys.argv[1], sys.argv[2]
with open(out, 'wb') as f:
    with zipfile.ZipFile(Unseekable(f), 'w', zipfile.ZIP_DEFLATED) as z:
        for name in sys.argv[3:]:
            with z.open(name, 'w') as e: e.write(open(f'{src}/{name}', 'rb').read())
`;

void test('zips made by Info-ZIP zip (to a file, to a pipe, ZIP64) and by Python to a stream, data descriptors included, deploy: adjacent entries are no overlap; zip -fz to a pipe (unreadable to unzip too) says what it is', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(src, 'index.html'), '<h1>new</h1>\n');
  fs.writeFileSync(path.join(src, 'assets', 'app.js'), 'console.log(1)\n'.repeat(5000));
  fs.writeFileSync(path.join(src, 'assets', 'empty.txt'), '');
  fs.writeFileSync(path.join(src, 'assets', 'random.bin'), Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7919) % 251)));
  const zip = requireTool('zip', 'zip');
  const files = ['index.html', 'assets/app.js', 'assets/empty.txt', 'assets/random.bin'];
  execFileSync(zip, ['-qr', path.join(dir, 'plain.zip'), '.'], { cwd: src });
  execFileSync(zip, ['-qr', '-fz', path.join(dir, 'zip64.zip'), '.'], { cwd: src });
  // To a pipe: zip cannot seek back, so each entry has a data descriptor (with its signature).
  execFileSync('sh', ['-c', `"${zip}" -qr - . | cat > "${path.join(dir, 'piped.zip')}"`], { cwd: src });
  execFileSync(requireTool('python3', 'python3'), ['-c', STREAMED, path.join(dir, 'python.zip'), src, ...files]);
  for (const name of ['plain.zip', 'zip64.zip', 'piped.zip', 'python.zip']) {
    const root = path.join(dir, `root-${name}`);
    const r = await runCli(['deploy', path.join(dir, name), root, '--no-fsync']);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    for (const f of files) assert.ok(fs.readFileSync(path.join(root, 'current', f)).equals(fs.readFileSync(path.join(src, f))), `${name}: ${f}`);
  }
  // ZIP64 to a pipe: zip 3.0 leaves the end record's offset 0xFFFFFFFF and writes no ZIP64 end
  // record, a zip that unzip and Python cannot read either; said so (it was "unexpected EOF").
  const broken = path.join(dir, 'piped64.zip');
  execFileSync('sh', ['-c', `"${zip}" -qr -fz - . | cat > "${broken}"`], { cwd: src });
  assert.notEqual(spawnSync(requireTool('unzip', 'unzip'), ['-tq', broken]).status, 0);
  const root = path.join(dir, 'root-piped64');
  const r = await runCli(['deploy', broken, root, '--no-fsync']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: .*piped64\.zip is not a readable zip: its end record puts the central directory at byte 4294967295, past the end of the file \(\d+ bytes\)$/m);
  assert.match(r.stderr, /^hint: .*zip -fz writing to a pipe/m);
  assert.equal(fs.existsSync(root), false);
});
