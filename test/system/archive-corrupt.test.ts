// Archives whose bytes are not what was built must never go live: a zip entry whose data fails its
// CRC-32, a tar cut off at an entry boundary (no end-of-archive block: the rest of the build is
// missing), and sparse files, whose PAX or GNU encodings a reader that ignores them turns into
// other names and other bytes. Each exits 2 with the root and .tmp/ as they were; the same archives
// uncorrupted deploy (controls), so the refusals come from the corruption.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import zlib from 'node:zlib';
import { rootBeside } from '../harness/archives.ts';
import { runCli, tempDir } from '../harness/cli.ts';
import { leftovers, treeSnapshot } from '../harness/invariants.ts';

/** Writes the good archives and their corrupt copies with Python (byte-level control over both). */
const WRITER = String.raw`
import gzip, io, struct, sys, tarfile, zipfile
out = sys.argv[1]
body = b'HELLO-WORLD-' * 100
for method, name in ((zipfile.ZIP_STORED, 'stored'), (zipfile.ZIP_DEFLATED, 'deflated')):
    with zipfile.ZipFile(f'{out}/{name}.zip', 'w', method) as z:
        z.writestr('index.html', b'<h1>zip</h1>\n')
        z.writestr('app.js', body)
    b = bytearray(open(f'{out}/{name}.zip', 'rb').read())
    if method == zipfile.ZIP_STORED:
        b[b.find(b'HELLO')] = ord('J')            # one byte of the data
    else:
        i = b.find(b'PK\x03\x04', 1)              # the second entry's local header
        c = b.rfind(b'PK\x01\x02')                # and its central directory record
        for crc in (i + 14, c + 16):
            b[crc] ^= 0xFF                        # its CRC-32, in both places
    open(f'{out}/{name}-corrupt.zip', 'wb').write(bytes(b))
with zipfile.ZipFile(f'{out}/inflate.zip', 'w', zipfile.ZIP_DEFLATED) as z:
    z.writestr('index.html', b'<h1>zip</h1>\n')
    z.writestr('big.txt', b'hello world ' * 1000)
b = bytearray(open(f'{out}/inflate.zip', 'rb').read())
i = b.find(b'PK\x03\x04', 1)
n, e = struct.unpack('<HH', b[i + 26:i + 30])
for k in range(i + 30 + n + e + 2, i + 30 + n + e + 12):
    b[k] ^= 0xFF                                  # the deflate stream of big.txt (zlib: invalid code lengths set)
open(f'{out}/inflate-corrupt.zip', 'wb').write(bytes(b))
with zipfile.ZipFile(f'{out}/link.zip', 'w') as z:
    z.writestr('index.html', b'<h1>zip</h1>\n')
    i = zipfile.ZipInfo('home.html'); i.create_system = 3; i.external_attr = 0o120777 << 16
    z.writestr(i, b'index.html')
b = bytearray(open(f'{out}/link.zip', 'rb').read())
at = b.find(b'index.html', b.find(b'home.html'))   # the link's target, after its local header
b[at] = ord('j')
open(f'{out}/link-corrupt.zip', 'wb').write(bytes(b))
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode='w', format=tarfile.USTAR_FORMAT) as t:
    for n in ('index.html', 'b.html'):
        ti = tarfile.TarInfo(n); ti.size = 10; ti.mode = 0o644
        t.addfile(ti, io.BytesIO(b'x' * 10))
whole = buf.getvalue()
open(f'{out}/two.tar', 'wb').write(whole)
open(f'{out}/cut.tar', 'wb').write(whole[:1024])  # the first entry's header and data, nothing after
open(f'{out}/cut.tgz', 'wb').write(gzip.compress(whole[:1024]))
`;

function sparseTar(dir: string, name: string, args: string[]): string {
  const src = path.join(dir, `sparse-src-${name}`);
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'index.html'), '<h1>sparse</h1>\n');
  execFileSync('truncate', ['-s', '3M', path.join(src, 'holes.bin')]);
  fs.appendFileSync(path.join(src, 'holes.bin'), 'end\n');
  const out = path.join(dir, `${name}.tar`);
  execFileSync('tar', ['-S', ...args, '-cf', out, '-C', src, 'index.html', 'holes.bin']);
  return out;
}

void test('corrupt zip data, a tar cut at an entry boundary and sparse tar entries exit 2 and change nothing', async (t) => {
  const dir = tempDir(t);
  execFileSync('python3', ['-c', WRITER, dir]);
  const { root, beside, rootBefore: before, besideBefore } = await rootBeside(dir);
  const cases: [string, RegExp][] = [
    ['stored-corrupt.zip', /"app\.js".*CRC-32/],
    // zlib's own error (Z_DATA_ERROR) before any CRC: corruption as well, not an I/O failure.
    ['inflate-corrupt.zip', /^error: .*inflate-corrupt\.zip is not a readable zip: entry "big\.txt" holds corrupt compressed data \(.+\)$/m],
    ['deflated-corrupt.zip', /"app\.js".*CRC-32/],
    ['link-corrupt.zip', /"home\.html".*CRC-32/],
    ['cut.tar', /end-of-archive|truncated/],
    ['cut.tgz', /end-of-archive|truncated/],
    [sparseTar(dir, 'pax-1.0', ['--format=posix']), /sparse/],
    [sparseTar(dir, 'pax-0.1', ['--format=posix', '--sparse-version=0.1']), /sparse/],
    [sparseTar(dir, 'pax-0.0', ['--format=posix', '--sparse-version=0.0']), /sparse/],
    [sparseTar(dir, 'gnu', ['--format=gnu']), /sparse/],
  ];
  for (const [file, message] of cases) {
    const r = await runCli(['deploy', path.isAbsolute(file) ? file : path.join(dir, file), root, '--no-fsync']);
    const what = path.basename(file);
    assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, message, what);
    assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: stack trace`);
    assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1, what);
    assert.deepEqual(treeSnapshot(root), before, `${what}: the root changed`);
    assert.deepEqual(treeSnapshot(beside), besideBefore, `${what}: the directory beside changed`);
    assert.deepEqual(leftovers(root), [], what);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], `${what}: .tmp/ not empty`);
  }
});

void test('control: the same archives whole deploy exactly, and verify passes', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  execFileSync('python3', ['-c', WRITER, dir]);
  for (const name of ['stored.zip', 'deflated.zip']) {
    const r = await runCli(['deploy', path.join(dir, name), root, '--no-fsync']);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    assert.equal(fs.readFileSync(path.join(root, 'current', 'app.js'), 'utf8'), 'HELLO-WORLD-'.repeat(100));
  }
  const link = await runCli(['deploy', path.join(dir, 'link.zip'), root, '--no-fsync']);
  assert.equal(link.code, 0, link.stderr);
  assert.equal(fs.readlinkSync(path.join(root, 'current', 'home.html')), 'index.html');
  const tar = await runCli(['deploy', path.join(dir, 'two.tar'), root, '--no-fsync']);
  assert.equal(tar.code, 0, tar.stderr);
  assert.deepEqual(fs.readdirSync(path.join(root, 'current')).sort(), ['b.html', 'index.html']);
  // The same tree without -S (holes written as zeros) deploys whole.
  const src = path.join(dir, 'holes');
  fs.mkdirSync(src);
  execFileSync('truncate', ['-s', '3M', path.join(src, 'holes.bin')]);
  execFileSync('tar', ['--format=posix', '-cf', path.join(dir, 'dense.tar'), '-C', src, 'holes.bin']);
  const dense = await runCli(['deploy', path.join(dir, 'dense.tar'), root, '--no-fsync']);
  assert.equal(dense.code, 0, dense.stderr);
  assert.equal(fs.statSync(path.join(root, 'current', 'holes.bin')).size, 3 * 1024 * 1024);
  const verify = await runCli(['verify', root]);
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
});

void test('more than 1 MiB after the end of a tar (in the file, inside the gzip stream or after it) exits 2 and changes nothing; tar\'s own record padding, even 1 MiB records, deploys', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'site');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'index.html'), '<h1>padded</h1>\n');
  const tar = path.join(dir, 'site.tar');
  execFileSync('tar', ['-cf', tar, '-C', src, '.']);
  const tgz = path.join(dir, 'site.tgz');
  execFileSync('tar', ['-czf', tgz, '-C', src, '.']);
  const zeros = Buffer.alloc(2 * 1024 * 1024);
  const cases: [string, Buffer][] = [
    ['zeros-after.tar', Buffer.concat([fs.readFileSync(tar), zeros])],
    // Inside the gzip stream: the tar's end, then 2 MiB of zeros compressed with it.
    ['zeros-inside.tgz', zlib.gzipSync(Buffer.concat([fs.readFileSync(tar), zeros]))],
    // After the gzip member: zlib skips zero bytes there without a word.
    ['zeros-after.tgz', Buffer.concat([fs.readFileSync(tgz), zeros])],
  ];
  const { root, beside, rootBefore: before, besideBefore } = await rootBeside(dir);
  for (const [name, bytes] of cases) {
    fs.writeFileSync(path.join(dir, name), bytes);
    const r = await runCli(['deploy', path.join(dir, name), root, '--no-fsync']);
    assert.equal(r.code, 2, `${name}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^error: .* is not a readable archive: more than 1048576 bytes \(1 MiB\) follow the end of the archive$/m, name);
    assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1, name);
    assert.deepEqual(treeSnapshot(root), before, `${name}: the root changed`);
    assert.deepEqual(treeSnapshot(beside), besideBefore, `${name}: the directory beside changed`);
    assert.deepEqual(leftovers(root), [], name);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], `${name}: .tmp/ not empty`);
  }
  // Controls: GNU tar's records (10 KiB by default, 1 MiB with -b 2048), and a few zeros after a gzip member.
  const big = path.join(dir, 'big-records.tar');
  execFileSync('tar', ['-b', '2048', '-cf', big, '-C', src, '.']);
  assert.equal(fs.statSync(big).size, 1024 * 1024);
  fs.writeFileSync(path.join(dir, 'few-after.tgz'), Buffer.concat([fs.readFileSync(tgz), Buffer.alloc(4096)]));
  for (const file of [tar, tgz, big, path.join(dir, 'few-after.tgz')]) {
    const r = await runCli(['deploy', file, root, '--no-fsync']);
    assert.equal(r.code, 0, `${path.basename(file)}: ${r.stderr}`);
    assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8'), '<h1>padded</h1>\n');
  }
});
