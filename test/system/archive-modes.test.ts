// What an archive's headers say an entry is, and with which mode, against what tar -xp and unzip
// make of them: zip permission bits without type bits, a zip entry's kind (the trailing slash
// decides), a name only the central directory's Unicode Path field gives, the archive root's mode,
// a directory listed twice, the limits' messages, and names that are not UTF-8 shown byte by byte.
// Every refusal exits 2 with the root as it was; every deploy passes verify right after.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { rootBeside } from '../harness/archives.ts';
import { jsonOf, runCli, tempDir } from '../harness/cli.ts';
import { leftovers, treeSnapshot } from '../harness/invariants.ts';

/** Runs a Python snippet with `out` (a directory) as sys.argv[1]. */
function python(code: string, out: string): void {
  execFileSync('python3', ['-c', code, out]);
}

/** A root with one release and a directory beside it, in `dir/scene` (rootBeside's). */
function sceneIn(dir: string): ReturnType<typeof rootBeside> {
  fs.mkdirSync(path.join(dir, 'scene'));
  return rootBeside(path.join(dir, 'scene'));
}

const modeOf = (p: string): number => fs.lstatSync(p).mode & 0o7777;

async function deployed(source: string, root: string): Promise<void> {
  const r = await runCli(['deploy', source, root, '--no-fsync']);
  assert.equal(r.code, 0, `${path.basename(source)}: ${r.stderr}`);
  const v = await runCli(['verify', root]);
  assert.equal(v.code, 0, `${path.basename(source)}: verify: ${v.stdout}${v.stderr}`);
}

/** Deploys `source` expecting a refusal: exit 2, HOSTILE_ARCHIVE, one error line, nothing changed in or beside the root. */
async function refused(source: string, scene: Awaited<ReturnType<typeof rootBeside>>, message: RegExp): Promise<void> {
  const what = path.basename(source);
  const r = await runCli(['deploy', source, scene.root, '--no-fsync']);
  assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, message, what);
  assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1, what);
  const j = await runCli(['deploy', source, scene.root, '--no-fsync', '--json']);
  assert.equal(jsonOf<{ error: { code: string } }>(j).error.code, 'HOSTILE_ARCHIVE', what);
  assert.deepEqual(treeSnapshot(scene.root), scene.rootBefore, `${what}: the root changed`);
  assert.deepEqual(treeSnapshot(scene.beside), scene.besideBefore, `${what}: the directory beside changed`);
  assert.deepEqual(leftovers(scene.root), [], what);
}

void test('zip entries made on Unix whose attributes hold permission bits but no file type get those bits, as unzip gives them; setuid is stripped as ever', async (t) => {
  const dir = tempDir(t);
  python(String.raw`
import sys, zipfile
with zipfile.ZipFile(sys.argv[1] + '/perm.zip', 'w') as z:
    z.writestr('index.html', b'ok\n')                          # writestr's default: 0o600 << 16
    for name, mode in (('run.sh', 0o755), ('tool', 0o4755), ('lib/', 0o700)):
        i = zipfile.ZipInfo(name, (2023, 11, 14, 22, 13, 20)); i.create_system = 3; i.external_attr = mode << 16
        z.writestr(i, b'' if name.endswith('/') else b'#!/bin/sh\necho hi\n')
`, dir);
  const root = path.join(dir, 'root');
  await deployed(path.join(dir, 'perm.zip'), root);
  const current = path.join(root, 'current');
  // Not 0644 (nor 0755 for lib/), whatever the bits said.
  assert.equal(modeOf(path.join(current, 'index.html')), 0o600);
  assert.equal(modeOf(path.join(current, 'run.sh')), 0o755);
  assert.equal(modeOf(path.join(current, 'tool')), 0o755, 'setuid stripped without --keep-setuid');
  assert.equal(modeOf(path.join(current, 'lib')), 0o700);
  // Control: unzip applies the same bits.
  const ux = path.join(dir, 'ux');
  fs.mkdirSync(ux);
  execFileSync('unzip', ['-q', path.join(dir, 'perm.zip')], { cwd: ux });
  assert.equal(modeOf(path.join(ux, 'index.html')), 0o600);
  assert.equal(modeOf(path.join(ux, 'run.sh')), 0o755);
});

void test('a zip entry\'s kind: a trailing slash makes a directory whatever the type bits; directory bits on a name without one, or a symlink on one with one, are refused', async (t) => {
  const dir = tempDir(t);
  python(String.raw`
import sys, zipfile
def add(z, n, mode, data=b''):
    i = zipfile.ZipInfo(n, (2023, 11, 14, 22, 13, 20)); i.create_system = 3; i.external_attr = mode << 16; z.writestr(i, data)
def write(name, entries):
    with zipfile.ZipFile(sys.argv[1] + '/' + name, 'w') as z:
        add(z, 'index.html', 0o100644, b'ok\n')
        for e in entries: add(z, *e)
write('slash-file-bits.zip', [('assets/', 0o100755), ('assets/app.js', 0o100644, b'js\n'), ('foo/', 0o100750, b'file-data')])
write('dir-bits-no-slash.zip', [('bar', 0o040755)])
write('symlink-slash.zip', [('up/', 0o120777, b'/etc')])
`, dir);
  const root = path.join(dir, 'root');
  await deployed(path.join(dir, 'slash-file-bits.zip'), root);
  const current = path.join(root, 'current');
  assert.ok(fs.lstatSync(path.join(current, 'assets')).isDirectory());
  assert.equal(fs.readFileSync(path.join(current, 'assets', 'app.js'), 'utf8'), 'js\n');
  assert.ok(fs.lstatSync(path.join(current, 'foo')).isDirectory(), 'foo/ is a directory, as unzip and Python make it');
  assert.equal(modeOf(path.join(current, 'foo')), 0o750);
  const scene = await sceneIn(dir);
  await refused(path.join(dir, 'dir-bits-no-slash.zip'), scene, /^error: refused .*: entry "bar" has a directory's mode but a name without the trailing "\/" \(zip readers disagree on what it is\)$/m);
  await refused(path.join(dir, 'symlink-slash.zip'), scene, /^error: refused .*: entry "up\/" is named as a directory \(a trailing "\/"\) but its mode says symlink$/m);
});

/** A zip written field by field: `central_extra` and `local_extra` per entry (Python's zipfile cannot put a field in one header alone). */
const RAW_ZIP = String.raw`
import struct, sys, zlib
def upath(name, raw):
    d = b'\x01' + struct.pack('<I', zlib.crc32(raw) & 0xffffffff) + name
    return struct.pack('<HH', 0x7075, len(d)) + d
def build(path, entries):
    out = b''; central = b''
    for e in entries:
        name, data = e['name'], e['data']; crc = zlib.crc32(data) & 0xffffffff
        le, ce = e.get('local_extra', b''), e.get('central_extra', b'')
        off = len(out)
        out += struct.pack('<IHHHHHIIIHH', 0x04034b50, 20, 0, 0, 0, 0x5772, crc, len(data), len(data), len(name), len(le)) + name + le + data
        central += struct.pack('<IHHHHHHIIIHHHHHII', 0x02014b50, 3 << 8 | 20, 20, 0, 0, 0, 0x5772, crc, len(data), len(data), len(name), len(ce), 0, 0, 0, 0o100644 << 16, off) + name + ce
    out += central + struct.pack('<IHHHHIIH', 0x06054b50, 0, 0, len(entries), len(entries), len(central), len(out), 0)
    open(path, 'wb').write(out)
d = sys.argv[1]
index = dict(name=b'index.html', data=b'ok\n')
build(d + '/renamed.zip', [index, dict(name=b'plain.txt', data=b'<script>alert(1)</script>\n', central_extra=upath(b'renamed.html', b'plain.txt'))])
build(d + '/renamed-local.zip', [index, dict(name=b'plain.txt', data=b'x\n', local_extra=upath(b'renamed.html', b'plain.txt'))])
# A DOS tool's name (0x82 is e-acute in CP437) with the UTF-8 name in a Unicode Path field in both headers, as Info-ZIP writes it.
f = upath('café.txt'.encode(), b'caf\x82.txt')
build(d + '/genuine.zip', [index, dict(name=b'caf\x82.txt', data=b'unicode\n', local_extra=f, central_extra=f)])
`;

void test('an Info-ZIP Unicode Path field in one header alone (a name no local header shows) is refused; in both, matching, it names the entry', async (t) => {
  const dir = tempDir(t);
  python(RAW_ZIP, dir);
  const scene = await sceneIn(dir);
  await refused(path.join(dir, 'renamed.zip'), scene, /^error: refused .*: the zip's local header for "renamed\.html" names "plain\.txt" \(an Info-ZIP Unicode Path field in one header alone renames it\)$/m);
  await refused(path.join(dir, 'renamed-local.zip'), scene, /^error: refused .*: the zip's local header for "plain\.txt" names "renamed\.html"/m);
  const root = path.join(dir, 'root');
  await deployed(path.join(dir, 'genuine.zip'), root);
  assert.equal(fs.readFileSync(path.join(root, 'current', 'café.txt'), 'utf8'), 'unicode\n');
});

void test('the archive root\'s mode (`./` in a tar) is the release directory\'s, as a directory deploy gives it, with read and search added for everyone (tar -xp keeps 0700); the manifest agrees', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  for (const mode of [0o750, 0o700, 0o755, 0o775]) {
    const src = path.join(dir, `dist-${mode.toString(8)}`);
    fs.mkdirSync(src);
    fs.writeFileSync(path.join(src, 'index.html'), 'ok\n');
    fs.chmodSync(src, mode);
    const tar = path.join(dir, `${mode.toString(8)}.tar`);
    execFileSync('tar', ['-cf', tar, '-C', src, '.']);
    const ux = path.join(dir, `ux-${mode.toString(8)}`);
    fs.mkdirSync(ux);
    execFileSync('tar', ['-xpf', tar, '-C', ux]);
    assert.equal(modeOf(ux), mode, 'control: tar -xp applies it');
    for (const source of [tar, src]) {
      await deployed(source, root);
      const release = fs.realpathSync(path.join(root, 'current'));
      // On the way to every file served: a web server running as another user must get through it.
      assert.equal(modeOf(release), mode | 0o555, `${path.basename(source)}: release directory mode`);
      const manifest = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy', 'manifests', `${path.basename(release)}.json`), 'utf8')) as { root: { mode: number } };
      assert.equal(manifest.root.mode, mode | 0o555, `${path.basename(source)}: manifest root mode`);
    }
  }
  // A tar with no root entry, and a zip (which has none): 755, as before.
  const flat = path.join(dir, 'flat.tar');
  execFileSync('tar', ['-cf', flat, '-C', path.join(dir, 'dist-700'), 'index.html']);
  await deployed(flat, root);
  assert.equal(modeOf(fs.realpathSync(path.join(root, 'current'))), 0o755);
});

void test('a directory listed twice takes its last header\'s mode, as tar -x gives it, and the manifest records that mode', async (t) => {
  const dir = tempDir(t);
  python(String.raw`
import io, sys, tarfile
with tarfile.open(sys.argv[1] + '/twice.tar', 'w') as tf:
    for name, typ, mode, data in (('index.html', tarfile.REGTYPE, 0o644, b'ok\n'), ('d', tarfile.DIRTYPE, 0o755, b''), ('d/f', tarfile.REGTYPE, 0o644, b'f\n'), ('d/', tarfile.DIRTYPE, 0o700, b'')):
        t = tarfile.TarInfo(name); t.type = typ; t.mode = mode; t.size = len(data); tf.addfile(t, io.BytesIO(data))
`, dir);
  const root = path.join(dir, 'root');
  await deployed(path.join(dir, 'twice.tar'), root);
  assert.equal(modeOf(path.join(root, 'current', 'd')), 0o700);
  const ux = path.join(dir, 'ux');
  fs.mkdirSync(ux);
  execFileSync('tar', ['-xpf', path.join(dir, 'twice.tar'), '-C', ux]);
  assert.equal(modeOf(path.join(ux, 'd')), 0o700, 'control: tar -x gives the last mode');
});

void test('--max-files and --max-bytes refusals say what was counted and hint at the limit, not at hostile paths', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'dist');
  fs.mkdirSync(path.join(src, 'a', 'b', 'c'), { recursive: true });
  fs.writeFileSync(path.join(src, 'a', 'b', 'c', 'index.html'), 'ok\n');
  fs.writeFileSync(path.join(src, 'zeros'), Buffer.alloc(2_000_000));
  execFileSync('tar', ['-cf', path.join(dir, 'one.tar'), '-C', src, 'a/b/c/index.html']);
  execFileSync('tar', ['-czf', path.join(dir, 'z.tgz'), '-C', src, 'zeros']);
  const scene = await sceneIn(dir);
  for (const [file, args, message, hint] of [
    ['one.tar', ['--max-files', '3'], /^error: refused .*one\.tar: the archive makes more than 3 files, directories and links, the parent directories its entries imply included \(--max-files\)$/m, /^hint: nothing was deployed; give a larger --max-files \(or artifact\.maxFiles\) if the build is this large$/m],
    ['z.tgz', ['--max-bytes', '1M'], /^error: refused .*z\.tgz: the archive expands to more than 1048576 bytes \(--max-bytes\)$/m, /^hint: nothing was deployed; give a larger --max-bytes \(or artifact\.maxBytes\) if the build is this large$/m],
  ] as const) {
    const r = await runCli(['deploy', path.join(dir, file), scene.root, '--no-fsync', ...args]);
    assert.equal(r.code, 2, `${file}: ${r.stderr}`);
    assert.match(r.stderr, message, file);
    assert.match(r.stderr, hint, file);
    assert.doesNotMatch(r.stderr, /plain relative paths/, file);
    assert.deepEqual(treeSnapshot(scene.root), scene.rootBefore, file);
  }
  // The same tar within the limit: the file and its three implied directories are four.
  const ok = await runCli(['deploy', path.join(dir, 'one.tar'), scene.root, '--no-fsync', '--max-files', '4']);
  assert.equal(ok.code, 0, ok.stderr);
});

void test('a name that is not UTF-8 is shown with each invalid byte as \\xNN (tar, tar.gz, and a zip flagged UTF-8), not as U+FFFD', async (t) => {
  const dir = tempDir(t);
  python(String.raw`
import io, sys, tarfile, zipfile
d = sys.argv[1]
for fmt, mode in (('tar', 'w'), ('tgz', 'w:gz')):
    with tarfile.open(f'{d}/bad.{fmt}', mode, format=tarfile.GNU_FORMAT, encoding='utf-8', errors='surrogateescape') as tf:
        for name in ('index.html', 'a\\b-caf\udce9-\udcff.txt'):
            t = tarfile.TarInfo(name); t.size = 2; tf.addfile(t, io.BytesIO(b'x\n'))
with zipfile.ZipFile(f'{d}/bad.zip', 'w') as z:
    z.writestr('index.html', b'ok\n')
    z.writestr('caf?.txt', b'x\n')
b = bytearray(open(f'{d}/bad.zip', 'rb').read())
for at in [k for k in range(len(b)) if b[k:k + 8] == b'caf?.txt']: b[at + 3] = 0xe9
# The UTF-8 flag (bit 11) in every local header and central record: zipfile writes it only for names it encoded itself.
for sig, flag in ((b'PK\x03\x04', 7), (b'PK\x01\x02', 9)):
    for at in [k for k in range(len(b)) if b[k:k + 4] == sig]: b[at + flag] |= 0x08
open(f'{d}/bad.zip', 'wb').write(bytes(b))
`, dir);
  const scene = await sceneIn(dir);
  await refused(path.join(dir, 'bad.tar'), scene, /^error: refused .*: entry "a\\\\b-caf\\xe9-\\xff\.txt" is not valid UTF-8 \(invalid bytes shown as \\xNN\)$/m);
  await refused(path.join(dir, 'bad.tgz'), scene, /entry "a\\\\b-caf\\xe9-\\xff\.txt" is not valid UTF-8/);
  await refused(path.join(dir, 'bad.zip'), scene, /^error: refused .*: entry "caf\\xe9\.txt" is not valid UTF-8 \(invalid bytes shown as \\xNN\)$/m);
  const r = await runCli(['deploy', path.join(dir, 'bad.tar'), scene.root, '--no-fsync']);
  assert.doesNotMatch(r.stderr, /\uFFFD/);
});
