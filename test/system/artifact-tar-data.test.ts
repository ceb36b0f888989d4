// Tar entries whose header gives data to what readers disagree has any: a hard link or a symlink
// with a size (POSIX says a link has none), and a regular-file header named with a trailing slash
// (which pre-POSIX tars use for a directory) with a size. GNU tar reads the bytes after a
// directory-named file header, or after a symlink, as that entry's data; BusyBox and Python's
// tarfile read those after a link as further entries; GNU tar reads those after a hard link as
// entries too. So the next bytes are entries for one reader and data for another: an archive that
// hides a file from `tar -t` (a CI job's listing, a scanner) could deploy it. Each such archive
// exits 2, nothing changed; the same entries with no data deploy.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { rootBeside } from '../harness/archives.ts';
import { runCli, tempDir } from '../harness/cli.ts';
import { leftovers, treeSnapshot } from '../harness/invariants.ts';
import { requireTool } from '../harness/swappers.ts';

const BLOCK = 512;

/** One ustar header block, its size field and type flag set as given (no data follows by itself). */
function header(name: string, flag: string, size: number, link = ''): Buffer {
  const block = Buffer.alloc(BLOCK);
  block.write(name, 0, 100, 'utf8');
  block.write(flag.startsWith('5') || name.endsWith('/') ? '0000755\0' : '0000644\0', 100, 'latin1');
  block.write('0000000\0', 108, 'latin1');
  block.write('0000000\0', 116, 'latin1');
  block.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  block.write(`${(1_700_000_000).toString(8).padStart(11, '0')}\0`, 136, 'latin1');
  block.write(flag, 156, 'latin1');
  block.write(link, 157, 100, 'utf8');
  block.write('ustar\x0000', 257, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

/** A regular file: its header, its data padded to whole blocks. */
function file(name: string, data: string): Buffer {
  const bytes = Buffer.from(data);
  return Buffer.concat([header(name, '0', bytes.length), bytes, Buffer.alloc((BLOCK - (bytes.length % BLOCK)) % BLOCK)]);
}

/** index.html, then `entry` with `hidden.html` (a header and a block of data) as the 1,024 bytes after it, then the end. */
function archive(entry: Buffer): Buffer {
  return Buffer.concat([file('index.html', '<h1>new</h1>\n'), entry, file('hidden.html', '<?php system($_GET["c"]);\n'), Buffer.alloc(10 * BLOCK)]);
}

/** What GNU tar lists: the reader a CI job or a scanner most often runs. */
function gnuList(tarFile: string): string[] {
  return execFileSync(requireTool('tar', 'tar'), ['-tf', tarFile], { encoding: 'utf8' }).split('\n').filter((l) => l !== '');
}

/** What Python's tarfile lists. */
function pythonList(tarFile: string): string[] {
  return JSON.parse(execFileSync(requireTool('python3', 'python3'), ['-c', 'import json,sys,tarfile; print(json.dumps(tarfile.open(sys.argv[1]).getnames()))', tarFile], { encoding: 'utf8' })) as string[];
}

/** `header` with its size field replaced by `field` (12 bytes), the checksum made again. */
function withSizeField(block: Buffer, field: string): Buffer {
  const edited = Buffer.from(block);
  edited.write(field, 124, 12, 'latin1');
  edited.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of edited) sum += byte;
  edited.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return edited;
}

const CASES = [
  // GNU tar, BusyBox and Python take 1,024 bytes of data after it: hidden.html is no entry for them.
  { name: 'a regular-file header (type 0) named with a trailing slash, with a size', entry: header('x/', '0', 1024), gnuSeesHidden: false, pythonSeesHidden: false },
  { name: 'an old regular-file header (type NUL) named with a trailing slash, with a size', entry: header('x/', '\0', 1024), gnuSeesHidden: false, pythonSeesHidden: true },
  // GNU tar, BusyBox and Python read hidden.html as the next entry; a reader taking the size skips it.
  { name: 'a hard link with a size', entry: header('h', '1', 1024, 'index.html'), gnuSeesHidden: true, pythonSeesHidden: true },
  // GNU tar takes the symlink's size as data; BusyBox and Python read hidden.html.
  { name: 'a symlink with a size', entry: header('l', '2', 1024, 'index.html'), gnuSeesHidden: false, pythonSeesHidden: true },
  // A file header whose PAX path ends with a slash: a directory for GNU tar (its data skipped), a file of those bytes for Python.
  { name: 'a regular-file header whose PAX path ends with a slash', entry: Buffer.concat([pax('path', 'x/'), header('x', '0', 1024)]), gnuSeesHidden: false, pythonSeesHidden: false },
  // A size field of NULs then digits: 0 for GNU tar, BusyBox and Python (the field ends at its first NUL), 1024 read past them.
  { name: 'a size field whose digits follow NULs', entry: withSizeField(header('a.txt', '0', 0), `${'\0'.repeat(8)}2000`), gnuSeesHidden: true, pythonSeesHidden: true },
] as const;

void test('a link or a directory-named file header that carries a size, a file header whose PAX path ends with a slash, or a size field with digits after a NUL (data or type readers disagree on), exits 2 and changes nothing; with no size, the same entries deploy', async (t) => {
  const dir = tempDir(t);
  const { root, beside, rootBefore, besideBefore } = await rootBeside(dir);
  for (const [i, c] of CASES.entries()) {
    const tarFile = path.join(dir, `case-${i}.tar`);
    fs.writeFileSync(tarFile, archive(c.entry));
    // The disagreement itself: one of the readers takes hidden.html for an entry, another for data.
    assert.equal(gnuList(tarFile).includes('hidden.html'), c.gnuSeesHidden, `${c.name}: GNU tar lists ${gnuList(tarFile).join(', ')}`);
    assert.equal(pythonList(tarFile).includes('hidden.html'), c.pythonSeesHidden, `${c.name}: Python lists ${pythonList(tarFile).join(', ')}`);
    const r = await runCli(['deploy', tarFile, root, '--no-fsync']);
    assert.equal(r.code, 2, `${c.name}: ${r.stderr}`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, `${c.name}: ${r.stderr}`);
    assert.match(errors[0] ?? '', /entry "(x\/|h|l)" is a (directory|hard link|symlink) whose header gives it 1024 bytes of data|a numeric header field has digits after a NUL|entry "x\/" is a file whose name ends with a slash/, c.name);
    assert.match(r.stderr, /^hint: .*(tar )?readers disagree/m, c.name);
    assert.deepEqual(treeSnapshot(root), rootBefore, `${c.name}: the root changed`);
    assert.deepEqual(treeSnapshot(beside), besideBefore, `${c.name}: beside the root changed`);
    assert.deepEqual(leftovers(root), [], c.name);
  }
  // Control: the same entries with no data are what tar writes, and deploy, hidden.html an entry for every reader.
  const plain = path.join(dir, 'plain.tar');
  fs.writeFileSync(plain, Buffer.concat([file('index.html', '<h1>new</h1>\n'), header('x/', '0', 0), header('h', '1', 0, 'index.html'), header('l', '2', 0, 'index.html'), file('hidden.html', 'seen\n'), Buffer.alloc(10 * BLOCK)]));
  assert.deepEqual(gnuList(plain), ['index.html', 'x/', 'h', 'l', 'hidden.html']);
  const ok = await runCli(['deploy', plain, path.join(dir, 'root-plain'), '--no-fsync']);
  assert.equal(ok.code, 0, ok.stderr);
  const live = path.join(dir, 'root-plain', 'current');
  assert.deepEqual(fs.readdirSync(live).sort(), ['h', 'hidden.html', 'index.html', 'l', 'x']);
  assert.ok(fs.statSync(path.join(live, 'x')).isDirectory());
  assert.equal(fs.statSync(path.join(live, 'h')).ino, fs.statSync(path.join(live, 'index.html')).ino);
  assert.equal(fs.readlinkSync(path.join(live, 'l')), 'index.html');
});

/** A PAX extended header (type x, or g for a global one) holding one record `key=value`. */
function pax(key: string, value: string, flag = 'x'): Buffer {
  const body = ` ${key}=${value}\n`;
  let length = body.length + 1;
  while (`${length}${body}`.length !== length) length = `${length}${body}`.length;
  const records = Buffer.from(`${length}${body}`);
  return Buffer.concat([header('PaxHeader', flag, records.length), records, Buffer.alloc((BLOCK - (records.length % BLOCK)) % BLOCK)]);
}

function globalPax(key: string, value: string): Buffer {
  return pax(key, value, 'g');
}

/** A GNU long name (type L) or long link (type K) record. */
function gnuLong(flag: 'L' | 'K', value: string): Buffer {
  const bytes = Buffer.from(`${value}\0`);
  return Buffer.concat([header('././@LongLink', flag, bytes.length), bytes, Buffer.alloc((BLOCK - (bytes.length % BLOCK)) % BLOCK)]);
}

void test('an entry named twice over (a PAX path and a GNU long name that differ, two PAX headers or two long names in a row, a global PAX path or linkpath), which readers resolve differently, exits 2 and changes nothing; one name given twice the same deploys', async (t) => {
  const dir = tempDir(t);
  const { root, beside, rootBefore, besideBefore } = await rootBeside(dir);
  const index = file('index.html', '<h1>new</h1>\n');
  const body = file('c.txt', '<?php system($_GET["c"]);\n');
  const end = Buffer.alloc(10 * BLOCK);
  const cases = [
    // GNU tar and Python name it readme.txt, BusyBox shell.php.
    { name: 'a PAX path, then a GNU long name', bytes: Buffer.concat([index, pax('path', 'readme.txt'), gnuLong('L', 'shell.php'), body, end]), message: /is named "readme\.txt" by a PAX record and "shell\.php" by a GNU long name/ },
    // GNU tar and BusyBox name it readme.txt, Python shell.php.
    { name: 'a GNU long name, then a PAX path', bytes: Buffer.concat([index, gnuLong('L', 'shell.php'), pax('path', 'readme.txt'), body, end]), message: /is named "readme\.txt" by a PAX record and "shell\.php" by a GNU long name/ },
    // GNU tar and BusyBox take the second, Python the first.
    { name: 'two PAX headers', bytes: Buffer.concat([index, pax('path', 'readme.txt'), pax('path', 'shell.php'), body, end]), message: /two PAX headers give it path "readme\.txt" and "shell\.php"/ },
    { name: 'two GNU long names', bytes: Buffer.concat([index, gnuLong('L', 'readme.txt'), gnuLong('L', 'shell.php'), body, end]), message: /two GNU long names give it "readme\.txt" and "shell\.php"/ },
    // GNU tar and Python name it shell.php, BusyBox readme.txt.
    { name: 'a global PAX path', bytes: Buffer.concat([index, globalPax('path', 'shell.php'), file('readme.txt', 'x\n'), end]), message: /a global PAX header gives every entry after it the path "shell\.php"/ },
    { name: 'a global PAX linkpath', bytes: Buffer.concat([index, globalPax('linkpath', '/etc/passwd'), header('l', '2', 0, 'index.html'), end]), message: /a global PAX header gives every entry after it the linkpath "\/etc\/passwd"/ },
    { name: 'a PAX linkpath and a GNU long link', bytes: Buffer.concat([index, pax('linkpath', 'index.html'), gnuLong('K', '/etc/passwd'), header('l', '2', 0, 'x'), end]), message: /links to "index\.html" by a PAX record and "\/etc\/passwd" by a GNU long link/ },
  ];
  for (const [i, c] of cases.entries()) {
    const tarFile = path.join(dir, `named-${i}.tar`);
    fs.writeFileSync(tarFile, c.bytes);
    const r = await runCli(['deploy', tarFile, root, '--no-fsync']);
    assert.equal(r.code, 2, `${c.name}: ${r.stderr}`);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    assert.equal(errors.length, 1, `${c.name}: ${r.stderr}`);
    assert.match(errors[0] ?? '', c.message, c.name);
    assert.match(r.stderr, /^hint: tar readers disagree on which/m, c.name);
    assert.deepEqual(treeSnapshot(root), rootBefore, `${c.name}: the root changed`);
    assert.deepEqual(treeSnapshot(beside), besideBefore, `${c.name}: beside the root changed`);
    assert.deepEqual(leftovers(root), [], c.name);
  }
  // Control: the same name from both, or given twice, is no disagreement.
  const same = path.join(dir, 'same.tar');
  fs.writeFileSync(same, Buffer.concat([index, pax('path', 'readme.txt'), gnuLong('L', 'readme.txt'), pax('path', 'readme.txt'), body, end]));
  assert.deepEqual(gnuList(same), ['index.html', 'readme.txt']);
  const ok = await runCli(['deploy', same, path.join(dir, 'root-same'), '--no-fsync']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'root-same', 'current')).sort(), ['index.html', 'readme.txt']);
});

void test('a global PAX size, which GNU tar and Python give every later entry and BusyBox ignores, exits 2 saying so; the same archive without it deploys', async (t) => {
  const dir = tempDir(t);
  const { root, beside, rootBefore, besideBefore } = await rootBeside(dir);
  // a.txt's 512 bytes are the header of hidden.php: entries for a reader taking the global size 0, data for BusyBox.
  const carrier = Buffer.concat([header('a.txt', '0', BLOCK), header('hidden.php', '0', 0)]);
  const end = Buffer.alloc(10 * BLOCK);
  const tarFile = path.join(dir, 'global-size.tar');
  fs.writeFileSync(tarFile, Buffer.concat([file('index.html', '<h1>new</h1>\n'), globalPax('size', '0'), carrier, end]));
  const busybox = execFileSync(requireTool('busybox', 'busybox'), ['tar', '-tf', tarFile], { encoding: 'utf8' }).split('\n').filter((l) => l !== '');
  assert.deepEqual(busybox, ['index.html', 'a.txt']);
  const r = await runCli(['deploy', tarFile, root, '--no-fsync']);
  assert.equal(r.code, 2, r.stderr);
  const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
  assert.equal(errors.length, 1, r.stderr);
  assert.match(errors[0] ?? '', /a global PAX header gives every entry after it the size "0"/);
  assert.match(r.stderr, /^hint: tar readers disagree on whether it replaces each header's own size/m);
  assert.deepEqual(treeSnapshot(root), rootBefore);
  assert.deepEqual(treeSnapshot(beside), besideBefore);
  assert.deepEqual(leftovers(root), []);
  // Control: a global header of other records (a comment, as git archive writes one) deploys.
  const plain = path.join(dir, 'global-comment.tar');
  fs.writeFileSync(plain, Buffer.concat([file('index.html', '<h1>new</h1>\n'), globalPax('comment', 'abc123'), file('a.txt', 'x\n'), end]));
  const ok = await runCli(['deploy', plain, path.join(dir, 'root-comment'), '--no-fsync']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'root-comment', 'current')).sort(), ['a.txt', 'index.html']);
});
