// The hostile-archive corpus, generated here: every case must exit 2 with one error line, and
// leave the deploy root and a directory beside it byte for byte as they were (contents, modes,
// owners, link targets), with no staging copy left in .tmp/. Each hostile entry comes after good
// ones, so a refusal has to discard files already extracted, not just refuse up front.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { rootBeside, writeArchive, writeArchives, type ArchiveJob, type Spec } from '../harness/archives.ts';
import { runCli, tempDir } from '../harness/cli.ts';
import { requireTools, runWrapped, straceInject } from '../harness/faults.ts';
import { leftovers, treeSnapshot } from '../harness/invariants.ts';

const GOOD: Spec[] = [
  { name: 'index.html', data: '<h1>new</h1>\n' },
  { name: 'assets/', type: 'dir' },
  { name: 'assets/app.js', data: 'console.log(1)\n' },
];

interface Case {
  name: string;
  formats: ('tar' | 'tar.gz' | 'zip')[];
  /** Entries after the good ones; `BESIDE` in a name or link is the directory next to the root. */
  entries: Spec[];
  args?: string[];
  message: RegExp;
  /** Entries that replace GOOD instead of following it. */
  only?: boolean;
}

const ALL: Case['formats'] = ['tar', 'tar.gz', 'zip'];
/** 4,090 bytes: within PATH_MAX as a name, beyond it once under the staging directory. */
const DEEP = Array.from({ length: 16 }, () => 'd'.repeat(250)).join('/');
const TOO_LONG_THERE = `${DEEP}/${'f'.repeat(4090 - DEEP.length - 1)}`;
const TAR: Case['formats'] = ['tar', 'tar.gz'];

const CASES: Case[] = [
  { name: '.. out of the staging directory into the directory beside', formats: ALL, entries: [{ name: '../../../beside/evil', data: 'x' }], message: /"\.\." component|relative path/ },
  { name: '.. into the live release', formats: ALL, entries: [{ name: 'a/../../../current/evil', data: 'x' }], message: /"\.\." component|relative path/ },
  { name: 'absolute path', formats: ALL, entries: [{ name: 'BESIDE/evil', data: 'x' }], message: /absolute path/ },
  { name: 'symlink to outside, then a file through it', formats: ALL, entries: [{ name: 'out', type: 'symlink', link: 'BESIDE' }, { name: 'out/evil', data: 'x' }], message: /goes through the symlink "out"/ },
  { name: 'relative symlink up, then a file through it', formats: ALL, entries: [{ name: 'assets/up', type: 'symlink', link: '../../../../beside' }, { name: 'assets/up/evil', data: 'x' }], message: /through the symlink "assets\/up"/ },
  { name: 'symlink over a directory the archive made', formats: ALL, entries: [{ name: 'assets', type: 'symlink', link: 'BESIDE' }], message: /would replace a directory/ },
  { name: 'hard link to a file outside the archive (absolute)', formats: TAR, entries: [{ name: 'pw', type: 'hardlink', link: 'BESIDE/keep.txt' }], message: /hard link/ },
  { name: 'hard link to a file outside the archive (..)', formats: TAR, entries: [{ name: 'pw', type: 'hardlink', link: '../../../beside/keep.txt' }], message: /"\.\." component|hard link/ },
  { name: 'hard link to a name no earlier entry made', formats: TAR, entries: [{ name: 'pw', type: 'hardlink', link: 'later.txt' }, { name: 'later.txt', data: 'x' }], message: /hard link to "later.txt"/ },
  { name: 'character device', formats: ALL, entries: [{ name: 'null', type: 'chr' }], message: /character device/ },
  { name: 'block device', formats: TAR, entries: [{ name: 'disk', type: 'blk' }], message: /block device/ },
  { name: 'FIFO', formats: ALL, entries: [{ name: 'pipe', type: 'fifo' }], message: /FIFO/ },
  { name: 'file replacing a directory', formats: ALL, entries: [{ name: 'assets', data: 'x' }], message: /would replace a directory/ },
  { name: 'directory replacing a file', formats: TAR, entries: [{ name: 'index.html/', type: 'dir' }], message: /replace a file|appears twice/ },
  { name: 'the same file twice', formats: ALL, entries: [{ name: 'index.html', data: 'other' }], message: /appears twice/ },
  { name: 'a name longer than 255 bytes', formats: ALL, entries: [{ name: `${'n'.repeat(256)}.html`, data: 'x' }], message: /longer than 255 bytes/ },
  { name: 'a name that is not UTF-8', formats: TAR, entries: [{ name: 'bad-\udcff.html', data: 'x' }], message: /not valid UTF-8/ },
  { name: 'a zip name with a backslash', formats: ['zip'], entries: [{ name: '..\\..\\..\\beside\\evil', data: 'x' }], message: /backslash|invalid characters|relative path/i },
  { name: 'a symlink target longer than 4095 bytes', formats: ALL, entries: [{ name: 'long', type: 'symlink', link: 't'.repeat(5000) }], message: /symlink with a target longer than 4095 bytes/ },
  { name: 'more entries than --max-files', formats: ALL, entries: Array.from({ length: 30 }, (_, i) => ({ name: `many/f${i}`, data: 'x' })), args: ['--max-files', '20'], message: /--max-files/ },
  { name: 'a path within PATH_MAX that is longer than it under the staging directory', formats: ALL, entries: [{ name: TOO_LONG_THERE, data: 'x' }], message: /entry "d{50,}.*\(4090 bytes\).*f" is a path too long for the filesystem/ },
  { name: 'a PAX mtime past any date a file can hold', formats: TAR, entries: [{ name: 'far.txt', data: 'x', pax: { mtime: '99999999999999999999' } }], message: /entry "far\.txt" has a modification time out of range/ },
  { name: 'a PAX mtime on a directory before any date a file can hold', formats: TAR, entries: [{ name: 'old/', type: 'dir', pax: { mtime: '-99999999999999999' } }], message: /entry "old\/" has a modification time out of range/ },
  { name: 'a base-256 mtime past any date a file can hold', formats: TAR, entries: [{ name: 'far.txt', data: 'x', mtime: 2 ** 52 }], message: /entry "far\.txt" has a modification time out of range/ },
  { name: 'decompression bomb over --max-bytes', formats: ['tar.gz', 'zip'], entries: [{ name: 'bomb.bin', zeros: 8 * 1024 * 1024 }], args: ['--max-bytes', '1M'], message: /--max-bytes/ },
];

void test('every hostile archive exits 2 and changes nothing inside or outside the root', async (t) => {
  const dir = tempDir(t);
  const { root, beside, rootBefore, besideBefore } = await rootBeside(dir);
  const runs = CASES.flatMap((c) => c.formats.map((format) => ({ c, format })));
  const jobs: ArchiveJob[] = runs.map(({ c, format }, i) => ({
    format,
    out: path.join(dir, `case-${i}.${format === 'zip' ? 'zip' : format === 'tar' ? 'tar' : 'tgz'}`),
    specs: (c.only ? c.entries : [...GOOD, ...c.entries]).map((e) => ({ ...e, name: e.name.replace('BESIDE', beside), link: e.link?.replace('BESIDE', beside) })),
  }));
  writeArchives(jobs);
  let ran = 0;
  for (const [i, { c, format }] of runs.entries()) {
    {
      const file = jobs[i]?.out ?? '';
      const r = await runCli(['deploy', file, root, '--no-fsync', ...(c.args ?? [])]);
      const what = `${c.name} (${format})`;
      assert.equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, c.message, what);
      assert.match(r.stderr, /^error: refused /m, what);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: stack trace`);
      // One short error line, however long the entry's name.
      assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1, what);
      assert.ok(r.stderr.split('\n').every((l) => l.length <= 400), `${what}: a line of ${Math.max(...r.stderr.split('\n').map((l) => l.length))} characters`);
      assert.deepEqual(treeSnapshot(root), rootBefore, `${what}: the root changed`);
      assert.deepEqual(treeSnapshot(beside), besideBefore, `${what}: the directory beside changed`);
      assert.deepEqual(leftovers(root), [], what);
      assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], `${what}: .tmp/ not empty`);
      ran++;
    }
  }
  assert.ok(ran >= 54, `${ran} cases`);
});

void test('control: the same good entries without the hostile tail deploy, so the refusals above come from the hostile entries', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  writeArchives(ALL.map((format) => ({ format, out: path.join(dir, `good.${format}`), specs: GOOD })));
  for (const format of ALL) {
    const r = await runCli(['deploy', path.join(dir, `good.${format}`), root, '--no-fsync']);
    assert.equal(r.code, 0, `${format}: ${r.stderr}`);
    assert.equal(fs.readFileSync(path.join(root, 'current', 'assets', 'app.js'), 'utf8'), 'console.log(1)\n');
  }
  // Within the limits, a symlink out of the release is kept verbatim (never followed), as a directory source's is.
  const linked = writeArchive('tar', path.join(dir, 'link.tar'), [...GOOD, { name: 'logs', type: 'symlink', link: '/var/log/app' }, { name: 'same', type: 'hardlink', link: 'index.html' }]);
  const r = await runCli(['deploy', linked, root, '--no-fsync', '--max-files', '5']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readlinkSync(path.join(root, 'current', 'logs')), '/var/log/app');
  assert.equal(fs.statSync(path.join(root, 'current', 'same')).ino, fs.statSync(path.join(root, 'current', 'index.html')).ino);
});

void test('setuid/setgid bits are stripped unless root passes --keep-setuid; owners are kept as root', async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test runs as root, as CI does');
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const file = writeArchive('tar', path.join(dir, 'suid.tar'), [...GOOD, { name: 'bin/', type: 'dir' }, { name: 'bin/tool', data: '#!/bin/sh\n', mode: 0o6755, uid: 1234, gid: 2345 }]);
  const plain = await runCli(['deploy', file, root, '--no-fsync']);
  assert.equal(plain.code, 0, plain.stderr);
  const st = fs.statSync(path.join(root, 'current', 'bin', 'tool'));
  assert.equal(st.mode & 0o7777, 0o755);
  assert.equal(st.uid, 1234);
  assert.equal(st.gid, 2345);
  const kept = await runCli(['deploy', file, root, '--no-fsync', '--keep-setuid']);
  assert.equal(kept.code, 0, kept.stderr);
  assert.equal(fs.statSync(path.join(root, 'current', 'bin', 'tool')).mode & 0o7777, 0o6755);
});

void test('a root that exists but was never deployed to (empty, or a Capistrano layout) stays as it was when an archive is refused', async (t) => {
  const dir = tempDir(t);
  const hostile = writeArchive('tar', path.join(dir, 'hostile.tar'), [...GOOD, { name: 'out', type: 'symlink', link: '/tmp' }, { name: 'out/evil', data: 'x' }]);
  const good = writeArchive('tar', path.join(dir, 'good.tar'), GOOD);
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  const capistrano = path.join(dir, 'capistrano');
  fs.mkdirSync(path.join(capistrano, 'releases', '20250101000000'), { recursive: true });
  fs.writeFileSync(path.join(capistrano, 'releases', '20250101000000', 'index.html'), 'old\n');
  fs.symlinkSync('releases/20250101000000', path.join(capistrano, 'current'));
  for (const root of [empty, capistrano]) {
    const before = treeSnapshot(root);
    for (const args of [[hostile], [good, '--sha256', '0'.repeat(64)]]) {
      const r = await runCli(['deploy', args[0] as string, root, '--no-fsync', ...args.slice(1)]);
      assert.equal(r.code, 2, r.stderr);
      // The skeleton the deploy made (.atomic-deploy/, .tmp/, releases/) goes with it.
      assert.deepEqual(treeSnapshot(root), before, `${path.basename(root)} ${args.slice(1).join(' ')}: the root changed`);
    }
  }
});

void test('as root, an owner chown(2) cannot take is refused (exit 2); a time before 1970 is kept, not made the deploy time', async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test runs as root, as CI does');
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const old = writeArchive('tar', path.join(dir, 'old.tar'), [...GOOD, { name: 'epoch.txt', data: 'x\n', mtime: -1_000_000_000 }]);
  const r = await runCli(['deploy', old, root, '--no-fsync']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.lstatSync(path.join(root, 'current', 'epoch.txt')).mtimeMs, -1_000_000_000_000);
  const before = treeSnapshot(root);
  for (const [uid, gid] of [[2 ** 40, 0], [0, 2 ** 32 - 1]]) {
    const file = writeArchive('tar', path.join(dir, `owner-${uid}-${gid}.tar`), [...GOOD, { name: 'owned.txt', data: 'x\n', uid, gid }]);
    const refused = await runCli(['deploy', file, root, '--no-fsync']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /^error: refused .*entry "owned\.txt" has (uid|gid) \d+, more than any system's largest \(4294967294\)$/m);
    assert.deepEqual(treeSnapshot(root), before);
  }
});

void test('a hard link the filesystem refuses (EMLINK: as many links to one file as it allows) exits 2 and changes nothing', async (t) => {
  requireTools('strace');
  const dir = tempDir(t);
  const { root, beside, rootBefore, besideBefore } = await rootBeside(dir);
  // ext4 allows 65,000 links to a file; link(2) past that fails with EMLINK, injected here.
  const file = writeArchive('tar', path.join(dir, 'links.tar'), [...GOOD, { name: 'same.html', type: 'hardlink', link: 'index.html' }]);
  const r = await runWrapped(['deploy', file, root, '--no-fsync'], { prefix: straceInject('link,linkat', 'EMLINK') });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: refused .*links\.tar: entry "same\.html" is a hard link to "index\.html", which has as many links as the filesystem allows$/m);
  assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1);
  assert.deepEqual(treeSnapshot(root), rootBefore);
  assert.deepEqual(treeSnapshot(beside), besideBefore);
  assert.deepEqual(leftovers(root), []);
  // Control: the same archive without the fault deploys the link.
  const ok = await runCli(['deploy', file, root, '--no-fsync']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(fs.statSync(path.join(root, 'current', 'same.html')).ino, fs.statSync(path.join(root, 'current', 'index.html')).ino);
});

/** Zips whose local file headers disagree with their central directory, written by Python and patched. */
const MISMATCH_WRITER = String.raw`
import io, struct, sys, zipfile
out = sys.argv[1]
def make(name, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(f'{out}/{name}', 'w', method) as z:
        z.writestr('index.html', b'<h1>new</h1>\n')
        z.writestr('safe.txt', b'hello ' * 80)
    b = bytearray(open(f'{out}/{name}', 'rb').read())
    return b, b.find(b'PK\x03\x04', 1)           # the second entry's local header
def save(name, b):
    open(f'{out}/{name}', 'wb').write(bytes(b))
b, i = make('name.zip'); b[i + 30:i + 38] = b'../evil!'; save('name.zip', b)
b, i = make('method.zip'); b[i + 8:i + 10] = struct.pack('<H', 0); save('method.zip', b)
b, i = make('crc.zip'); b[i + 14] ^= 0xFF; save('crc.zip', b)
b, i = make('size.zip'); b[i + 22:i + 26] = struct.pack('<I', 999); save('size.zip', b)
b, i = make('encrypted.zip', zipfile.ZIP_STORED); b[i + 6] |= 1; save('encrypted.zip', b)
class Unseekable(io.RawIOBase):
    def __init__(self, f): self.f = f
    def writable(self): return True
    def write(self, data): return self.f.write(data)
with open(f'{out}/streamed.zip', 'wb') as f:                 # sizes and CRC after the data (bit 3)
    with zipfile.ZipFile(Unseekable(f), 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr('index.html', b'<h1>new</h1>\n')
        with z.open('safe.txt', 'w') as e: e.write(b'hello ' * 80)
`;

void test('a zip whose local headers disagree with its central directory (name, method, CRC, sizes, encryption) exits 2 and changes nothing', async (t) => {
  const dir = tempDir(t);
  execFileSync('python3', ['-c', MISMATCH_WRITER, dir]);
  const { root, beside, rootBefore, besideBefore } = await rootBeside(dir);
  const cases: [string, RegExp][] = [
    ['name.zip', /the zip's local header for "safe\.txt" names "\.\.\/evil!"/],
    ['method.zip', /the zip's local header for "safe\.txt" says compression method 0 \(stored\), the central directory 8 \(deflate\)/],
    ['crc.zip', /the zip's local header for "safe\.txt" says CRC-32 [0-9a-f]{8}, the central directory [0-9a-f]{8}/],
    ['size.zip', /the zip's local header for "safe\.txt" says 999 bytes uncompressed, the central directory 480/],
    ['encrypted.zip', /the zip's local header for "safe\.txt" says the entry is encrypted, the central directory that it is not/],
  ];
  for (const [name, message] of cases) {
    const r = await runCli(['deploy', path.join(dir, name), root, '--no-fsync']);
    assert.equal(r.code, 2, `${name}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^error: refused /m, name);
    assert.match(r.stderr, message, name);
    assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1, name);
    assert.deepEqual(treeSnapshot(root), rootBefore, `${name}: the root changed`);
    assert.deepEqual(treeSnapshot(beside), besideBefore, `${name}: the directory beside changed`);
    assert.deepEqual(leftovers(root), [], name);
  }
  // Control: sizes and CRC in a data descriptor (local fields zero, bit 3 set) are not a disagreement.
  const streamed = await runCli(['deploy', path.join(dir, 'streamed.zip'), root, '--no-fsync']);
  assert.equal(streamed.code, 0, streamed.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current', 'safe.txt'), 'utf8'), 'hello '.repeat(80));
});

void test('an archive holding a deploy root\'s layout (.atomic-deploy/, releases/, current) is deployed as files, and no command takes the live release for a root', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const file = writeArchive('tar', path.join(dir, 'rooty.tar'), [
    ...GOOD,
    { name: '.atomic-deploy/', type: 'dir' },
    { name: '.atomic-deploy/journal.json', data: '{}\n' },
    { name: 'releases/a/f', data: 'a\n' },
    { name: 'releases/b/f', data: 'b\n' },
    { name: 'current', type: 'symlink', link: 'releases/b' },
  ]);
  const r = await runCli(['deploy', file, root, '--no-fsync']);
  assert.equal(r.code, 0, r.stderr);
  // The root's own state is <root>/.atomic-deploy; the archive's lands in the release.
  assert.equal(fs.readFileSync(path.join(root, 'current', '.atomic-deploy', 'journal.json'), 'utf8'), '{}\n');
  const before = treeSnapshot(root);
  for (const command of [['rollback'], ['status'], ['prune', '--keep', '1'], ['unlock', '--force']]) {
    const run = await runCli([command[0] as string, path.join(root, 'current'), ...command.slice(1)]);
    assert.equal(run.code, 2, `${command.join(' ')}: exit ${run.code}\n${run.stdout}${run.stderr}`);
    assert.match(run.stderr, /is inside the deploy root .*root/, command.join(' '));
    assert.deepEqual(treeSnapshot(root), before, `${command.join(' ')}: the root changed`);
  }
});
