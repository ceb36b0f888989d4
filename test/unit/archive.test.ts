import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { archivePath, EntryChecker, parseSha256, quoteBytes, redactUrl, shownName, sniffFormat, urlProblem, zipCentralRecord, zipDescriptorLength, zipLayout, type ArchiveHeader, type ExtractLimits, type HeaderType } from '../../src/plan/archive.ts';
import { manifestPathProblem } from '../../src/plan/manifest.ts';

const LIMITS: ExtractLimits = { maxFiles: 1_000_000, maxBytes: 1e12, stripComponents: 0, keepSetid: false, keepOwner: false };

void test('the format comes from the first bytes, not the name', () => {
  const tar = Buffer.alloc(512);
  tar.write('ustar', 257, 'latin1');
  assert.equal(sniffFormat(tar), 'tar');
  assert.equal(sniffFormat(Buffer.from([0x1f, 0x8b, 8, 0])), 'tar.gz');
  assert.equal(sniffFormat(Buffer.from('PK\x03\x04rest', 'latin1')), 'zip');
  assert.equal(sniffFormat(Buffer.from('PK\x05\x06', 'latin1')), 'zip');
  assert.equal(sniffFormat(Buffer.from('<html>not an archive</html>')), undefined);
  assert.equal(sniffFormat(Buffer.alloc(0)), undefined);
  assert.equal(sniffFormat(tar.subarray(0, 261)), undefined);
  // An empty tar is its zero blocks alone; a shorter run of zeros is nothing known.
  assert.equal(sniffFormat(Buffer.alloc(1024)), 'tar');
  assert.equal(sniffFormat(Buffer.alloc(512)), 'tar');
  assert.equal(sniffFormat(Buffer.alloc(511)), undefined);
  const almost = Buffer.alloc(512);
  almost[511] = 1;
  assert.equal(sniffFormat(almost), undefined);
});

void test('archive names: unsafe ones are refused, the rest normalised like tar does', () => {
  assert.deepEqual(archivePath('./a/b/', 0), { path: 'a/b' });
  assert.deepEqual(archivePath('a//./b', 0), { path: 'a/b' });
  assert.deepEqual(archivePath('dist/a/b', 1), { path: 'a/b' });
  assert.ok('skip' in archivePath('dist/', 1));
  assert.ok('skip' in archivePath('./', 0));
  assert.match((archivePath('../x', 0) as { problem: string }).problem, /\.\./);
  assert.match((archivePath('a/../../x', 1) as { problem: string }).problem, /\.\./);
  assert.match((archivePath('/etc/passwd', 0) as { problem: string }).problem, /absolute/);
  assert.match((archivePath('a\0b', 0) as { problem: string }).problem, /NUL/);
  assert.match((archivePath(`${'x'.repeat(256)}`, 0) as { problem: string }).problem, /255 bytes/);
  assert.match((archivePath('bad-\uFFFD-utf8', 0) as { problem: string }).problem, /UTF-8/);
});

void test('--strip-components counts components as GNU and BusyBox tar do: `.` is one, a run of slashes one separator', () => {
  const cases: [string, number, string | undefined][] = [
    ['./sub/f', 1, 'sub/f'],
    ['./g', 1, 'g'],
    ['./', 1, undefined],
    ['./sub/f', 2, 'f'],
    ['dist/./a', 1, 'a'],
    ['dist//a', 1, 'a'],
    ['dist/a', 1, 'a'],
    ['./dist/a', 0, 'dist/a'],
  ];
  for (const [name, strip, want] of cases) {
    const r = archivePath(name, strip);
    assert.deepEqual('path' in r ? r.path : undefined, want, `${name} --strip-components ${strip}`);
  }
  assert.deepEqual(archivePath('./', 0), { skip: 'is the archive root' });
  assert.deepEqual(archivePath('./', 1), { skip: 'is removed by --strip-components' });
});

void test('every path archivePath accepts is a safe manifest path with at most the components given', () => {
  const part = fc.constantFrom('', '.', '..', 'a', 'b.c', 'é', ' ', '...', 'x'.repeat(300));
  fc.assert(
    fc.property(fc.array(part, { maxLength: 6 }), fc.boolean(), fc.nat({ max: 3 }), (parts, absolute, strip) => {
      const name = (absolute ? '/' : '') + parts.join('/');
      const r = archivePath(name, strip);
      if ('path' in r) {
        assert.equal(manifestPathProblem(r.path), undefined, r.path);
        assert.ok(!absolute);
        assert.ok(!parts.includes('..'));
      }
    }),
  );
});

const TYPES: HeaderType[] = ['file', 'dir', 'symlink', 'hardlink', 'FIFO', 'character device', 'block device', 'socket', 'unknown'];
const headerArb: fc.Arbitrary<ArchiveHeader> = fc.record({
  name: fc.array(fc.constantFrom('a', 'b', 'c', '..', '.'), { minLength: 1, maxLength: 3 }).map((p) => p.join('/')),
  type: fc.constantFrom(...TYPES),
  linkname: fc.constantFrom('a', 'a/b', 'b', '../x', '/etc', ''),
  mode: fc.constantFrom(0o644, 0o755, 0o4755, 0o2755, 0o1777, 0o7777),
  size: fc.nat({ max: 100 }),
  uid: fc.nat({ max: 2000 }),
  gid: fc.nat({ max: 2000 }),
});

void test('whatever the entries, what is written is a tree: no path twice, nothing through a link, links only to earlier files', () => {
  fc.assert(
    fc.property(fc.array(headerArb, { maxLength: 30 }), fc.boolean(), (headers, keepSetid) => {
      const checker = new EntryChecker({ ...LIMITS, keepSetid });
      const made = new Map<string, 'dir' | 'file' | 'symlink'>();
      for (const h of headers) {
        const d = checker.decide(h);
        if (d.action !== 'write') continue;
        assert.equal(manifestPathProblem(d.path), undefined);
        const parts = d.path.split('/');
        for (let i = 1; i < parts.length; i++) {
          const parent = parts.slice(0, i).join('/');
          if (d.parents.includes(parent)) {
            assert.equal(made.get(parent), undefined, `parent ${parent} made twice`);
            made.set(parent, 'dir');
          }
          assert.equal(made.get(parent), 'dir', `${d.path} under a ${made.get(parent) ?? 'missing'} ${parent}`);
        }
        const before = made.get(d.path);
        if (before !== undefined) assert.ok(before === 'dir' && d.kind === 'dir', `${d.path}: ${d.kind} over ${before}`);
        if (d.kind === 'hardlink') assert.equal(made.get(d.linkTo ?? ''), 'file');
        if (!keepSetid) assert.equal(d.mode & 0o6000, 0);
        assert.equal(d.owner, undefined);
        assert.ok(['dir', 'file', 'symlink', 'hardlink'].includes(d.kind));
        made.set(d.path, d.kind === 'hardlink' ? 'file' : d.kind);
      }
    }),
  );
});

void test('the hostile cases are refused with a reason', () => {
  const refuse = (headers: ArchiveHeader[], pattern: RegExp, limits: Partial<ExtractLimits> = {}): void => {
    const checker = new EntryChecker({ ...LIMITS, ...limits });
    const decisions = headers.map((h) => checker.decide(h));
    const last = decisions.at(-1);
    assert.equal(last?.action, 'refuse', JSON.stringify(decisions));
    assert.match(last?.action === 'refuse' ? last.problem : '', pattern);
    assert.ok(decisions.slice(0, -1).every((d) => d.action !== 'refuse'));
  };
  const f = (name: string, extra: Partial<ArchiveHeader> = {}): ArchiveHeader => ({ name, type: 'file', mode: 0o644, size: 1, ...extra });
  refuse([f('../evil')], /"\.\." component/);
  refuse([f('/etc/cron.d/evil')], /absolute/);
  refuse([f('link', { type: 'symlink', linkname: '/etc' }), f('link/cron.d/evil')], /goes through the symlink "link"/);
  refuse([f('d/link', { type: 'symlink', linkname: '..' }), f('d/link/x')], /through the symlink "d\/link"/);
  refuse([f('h', { type: 'hardlink', linkname: '/etc/passwd' })], /hard link/);
  refuse([f('h', { type: 'hardlink', linkname: 'later' })], /hard link to "later"/);
  refuse([f('s', { type: 'symlink', linkname: 'x' }), f('h', { type: 'hardlink', linkname: 's' })], /hard link/);
  refuse([f('dev', { type: 'character device' })], /character device/);
  refuse([f('dev', { type: 'block device' })], /block device/);
  refuse([f('pipe', { type: 'FIFO' })], /FIFO/);
  refuse([f('sock', { type: 'socket' })], /socket/);
  refuse([f('d/x'), f('d')], /would replace a directory/);
  refuse([f('d', { type: 'dir', mode: 0o755 }), f('d', { type: 'symlink', linkname: '/' })], /would replace a directory/);
  refuse([f('.', { type: 'symlink', linkname: '/etc' })], /"\." is the archive's root, but a symlink, not a directory/);
  refuse([f('./', { type: 'file' })], /"\.\/" is the archive's root, but a file/);
  refuse([f('a'), f('.', { type: 'hardlink', linkname: 'a' })], /is the archive's root, but a hard link/);
  assert.equal(new EntryChecker(LIMITS).decide(f('./', { type: 'dir', mode: 0o755 })).action, 'root');
  // The root is held to a directory's rules: one the deploying user could not list is refused.
  refuse([f('./', { type: 'dir', mode: 0o600 })], /"\.\/" is a directory of mode 0600/);
  // Not root (keepOwner false): what the deploying user could not read or list back once it is theirs.
  refuse([f('s', { mode: 0o000 })], /"s" is a file of mode 0000, which the user that deploys could not read back/);
  refuse([f('w', { mode: 0o244 })], /"w" is a file of mode 0244/);
  refuse([f('d', { type: 'dir', mode: 0o000 })], /"d" is a directory of mode 0000, which the user that deploys could not list back/);
  refuse([f('d', { type: 'dir', mode: 0o644 })], /"d" is a directory of mode 0644/);
  refuse([f('a'), f('a')], /appears twice/);
  refuse([f('a'), f('a/b')], /needs "a" to be a directory/);
  refuse([f('a'), f('b'), f('c')], /--max-files/, { maxFiles: 2 });
  refuse([f('a', { size: 10 }), f('b', { size: 10 })], /--max-bytes/, { maxBytes: 15 });
  refuse([f('x'.repeat(256))], /255 bytes/);
  // A time utimes cannot take (Date range, 64-bit time_t): refused, not left to fail with EINVAL.
  for (const mtimeMs of [1e23, -1e20, 8.64e15 + 1, Infinity, NaN]) refuse([f('t', { mtimeMs })], /"t" has a modification time out of range/);
  for (const mtimeMs of [8.64e15, -8.64e15, 0, -1000]) assert.equal(new EntryChecker(LIMITS).decide(f('t', { mtimeMs })).action, 'write', `${mtimeMs}`);
  // An owner chown(2) cannot take is refused where owners apply (as root), ignored elsewhere.
  refuse([f('o', { uid: 2 ** 40, gid: 0 })], /has uid 1099511627776, more than any system's largest \(4294967294\)/, { keepOwner: true });
  refuse([f('o', { uid: 0, gid: 4294967295 })], /has gid 4294967295/, { keepOwner: true });
  assert.equal(new EntryChecker(LIMITS).decide(f('o', { uid: 2 ** 40, gid: 2 ** 40 })).action, 'write');
  assert.equal(new EntryChecker({ ...LIMITS, keepOwner: true }).decide(f('o', { uid: 4294967294, gid: 0 })).action, 'write');
  // Root keeps the archive's owners, and reads whatever the mode: a 0000 file is the archive's business.
  assert.equal(new EntryChecker({ ...LIMITS, keepOwner: true }).decide(f('s', { mode: 0o000, uid: 33, gid: 33 })).action, 'write');
});

void test('setuid/setgid survive only with keepSetid; owners only with keepOwner; strip applies to hard-link targets', () => {
  const h: ArchiveHeader = { name: 'bin/tool', type: 'file', mode: 0o6755, size: 1, uid: 7, gid: 8 };
  const strip = new EntryChecker(LIMITS).decide(h);
  assert.ok(strip.action === 'write' && strip.mode === 0o755 && strip.owner === undefined);
  const keep = new EntryChecker({ ...LIMITS, keepSetid: true, keepOwner: true }).decide(h);
  assert.ok(keep.action === 'write' && keep.mode === 0o6755);
  assert.deepEqual(keep.action === 'write' ? keep.owner : undefined, { uid: 7, gid: 8 });
  const c = new EntryChecker({ ...LIMITS, stripComponents: 1 });
  assert.equal(c.decide({ name: 'dist/', type: 'dir', mode: 0o755, size: 0 }).action, 'skip');
  assert.equal(c.decide({ name: 'dist/a', type: 'file', mode: 0o644, size: 1 }).action, 'write');
  const link = c.decide({ name: 'dist/b', type: 'hardlink', linkname: 'dist/a', mode: 0o644, size: 0 });
  assert.ok(link.action === 'write' && link.linkTo === 'a');
});

void test('--sha256 values and URLs for the log', () => {
  const hex = 'ab'.repeat(32);
  assert.equal(parseSha256(hex.toUpperCase()), hex);
  assert.equal(parseSha256(`sha256:${hex}`), hex);
  assert.equal(parseSha256('abc'), undefined);
  assert.equal(parseSha256(`${hex}0`), undefined);
  assert.equal(redactUrl('https://user:pw@ci.example.com/a.tgz?token=secret#x'), 'https://ci.example.com/a.tgz');
  assert.equal(redactUrl('./dist.tgz'), './dist.tgz');
});

void test('the table CRC-32 (for Node before 20.15) agrees with zlib.crc32, whole and continued', async () => {
  const { crc32Table } = await import('../../src/act/archive.ts');
  const zlib = await import('node:zlib');
  const { randomBytes } = await import('node:crypto');
  for (const size of [0, 1, 7, 4096, 70_001]) {
    const data = randomBytes(size);
    assert.equal(crc32Table(data), zlib.crc32(data), `${size} bytes`);
    const cut = Math.floor(size / 3);
    assert.equal(crc32Table(data.subarray(cut), crc32Table(data.subarray(0, cut))), zlib.crc32(data), `${size} bytes in two parts`);
  }
  assert.equal(crc32Table(Buffer.from('123456789')), 0xcbf43926);
});

void test('the archive root entry gives the release directory its mode (setuid/setgid only with keepSetid), owner (only with keepOwner) and time; with --strip-components it is skipped', () => {
  const root: ArchiveHeader = { name: './', type: 'dir', mode: 0o2750, size: 0, uid: 33, gid: 44, mtimeMs: 1000 };
  assert.deepEqual(new EntryChecker(LIMITS).decide(root), { action: 'root', mode: 0o750, mtimeMs: 1000 });
  assert.deepEqual(new EntryChecker({ ...LIMITS, keepSetid: true, keepOwner: true }).decide({ ...root, name: '.' }), { action: 'root', mode: 0o2750, owner: { uid: 33, gid: 44 }, mtimeMs: 1000 });
  assert.equal(new EntryChecker({ ...LIMITS, stripComponents: 1 }).decide(root).action, 'skip');
});

void test('--max-files counts the parent directories an entry implies, and its refusal says so and hints at the limit', () => {
  const checker = new EntryChecker({ ...LIMITS, maxFiles: 3 });
  const d = checker.decide({ name: 'a/b/c/index.html', type: 'file', mode: 0o644, size: 1 });
  assert.equal(d.action, 'refuse');
  assert.match(d.action === 'refuse' ? d.problem : '', /^the archive makes more than 3 files, directories and links, the parent directories its entries imply included \(--max-files\)$/);
  assert.match(d.action === 'refuse' ? (d.hint ?? '') : '', /larger --max-files/);
  const bytes = new EntryChecker({ ...LIMITS, maxBytes: 1 }).decide({ name: 'f', type: 'file', mode: 0o644, size: 2 });
  assert.match(bytes.action === 'refuse' ? (bytes.hint ?? '') : '', /larger --max-bytes/);
});

void test('names that are not UTF-8 are quoted with each invalid byte as \\xNN, a backslash of the name as \\\\', () => {
  assert.equal(quoteBytes(Buffer.from('caf\xe9.txt', 'latin1')), String.raw`"caf\xe9.txt"`);
  assert.equal(quoteBytes(Buffer.from([0x61, 0x5c, 0x78, 0x66, 0x66, 0xff])), String.raw`"a\\xff\xff"`);
  assert.equal(quoteBytes(Buffer.from('é\n"', 'utf8')), JSON.stringify('é\n"'));
  assert.equal(shownName({ name: 'a\uFFFD', rawName: Buffer.from([0x61, 0x80]) }), String.raw`"a\x80"`);
  assert.equal(shownName({ name: 'plain' }), '"plain"');
  // Long names are cut as quote cuts them.
  assert.match(quoteBytes(Buffer.concat([Buffer.alloc(300, 0x61), Buffer.from([0xff])])), /…\(301 bytes\)…a+\\xff"$/);
});

void test('a URL that does not parse: the problem named, the URL shown without credentials or query', () => {
  assert.equal(urlProblem('https://example.com/a.tgz'), undefined);
  assert.equal(urlProblem('http://[::1]:8080/a.tgz'), undefined);
  assert.deepEqual(urlProblem('http://127.0.0.1:99999/x.tgz'), { shown: 'http://127.0.0.1:99999/x.tgz', problem: 'its port 99999 is out of range (0 to 65535)' });
  assert.deepEqual(urlProblem('http://'), { shown: 'http://', problem: 'it names no host' });
  assert.deepEqual(urlProblem('http://[::1/x.tgz'), { shown: 'http://[::1/x.tgz', problem: 'its IPv6 address has no closing "]"' });
  assert.deepEqual(urlProblem('http://u:pw@host:http/x?token=t'), { shown: 'http://host:http/x', problem: 'its port is not a number' });
  // A password holding a "/" ends the authority early for the parser: nothing of it is shown.
  const slash = urlProblem('http://user:pa/ss@host/x.tgz');
  assert.ok(slash && !slash.shown.includes('pa') && !slash.problem.includes('pa'), JSON.stringify(slash));
  assert.deepEqual(urlProblem('http://exa mple.com/x'), { shown: 'http://exa mple.com/x', problem: 'its host is not a valid host name or address' });
});

void test('the checker finds the one directory every entry sits under, and what --strip-components removed whole', () => {
  const h = (name: string, type: HeaderType = 'file', linkname?: string): ArchiveHeader => ({ name, type, mode: type === 'dir' ? 0o755 : 0o644, size: 0, ...(linkname ? { linkname } : {}) });
  const run = (headers: ArchiveHeader[], strip = 0): EntryChecker => {
    const checker = new EntryChecker({ ...LIMITS, stripComponents: strip });
    for (const header of headers) assert.notEqual(checker.decide(header).action, 'refuse', header.name);
    return checker;
  };
  assert.equal(run([h('./', 'dir'), h('./dist/', 'dir'), h('./dist/index.html')]).singleTopDir(), 'dist');
  assert.equal(run([h('repo-abc/a/b.txt')]).singleTopDir(), 'repo-abc');
  assert.equal(run([h('dist/index.html'), h('composer.json')]).singleTopDir(), undefined);
  assert.equal(run([h('index.html')]).singleTopDir(), undefined, 'a file alone at the top');
  assert.equal(run([h('dist/', 'dir')]).singleTopDir(), undefined, 'an empty directory holds nothing to strip to');
  assert.equal(run([h('a/x'), h('a/b/y')], 1).strippedAway(), undefined, 'nothing removed whole');
  assert.deepEqual(run([h('./app/x'), h('./app/b/y')], 4).strippedAway(), { count: 2, deepest: { name: './app/b/y', components: 4 } });
  // A hard link whose target the strip removed: refused for that reason, not as a missing target.
  const checker = new EntryChecker({ ...LIMITS, stripComponents: 1 });
  checker.decide(h('top.txt'));
  const d = checker.decide(h('app/copy.txt', 'hardlink', 'top.txt'));
  assert.ok(d.action === 'refuse' && /which --strip-components 1 removes$/.test(d.problem), JSON.stringify(d));
  const missing = new EntryChecker({ ...LIMITS, stripComponents: 1 }).decide(h('app/copy.txt', 'hardlink', 'app/nowhere'));
  assert.ok(missing.action === 'refuse' && /not a file earlier in the archive/.test(missing.problem), JSON.stringify(missing));
});

void test('zip entries may touch but not overlap, nor reach the central directory, in any order of records', () => {
  const spans = (pairs: [number, number][]): [Float64Array, Float64Array] => [Float64Array.from(pairs.map((p) => p[0])), Float64Array.from(pairs.map((p) => p[1]))];
  // Adjacent: each entry's next in the file, the last bounded by the directory at 300.
  assert.deepEqual(zipLayout(...spans([[0, 100], [100, 200], [200, 300]]), 300), { next: Int32Array.from([1, 2, -1]) });
  // Records out of file order are sorted first.
  assert.deepEqual(zipLayout(...spans([[200, 300], [0, 100], [100, 200]]), 300), { next: Int32Array.from([-1, 2, 0]) });
  // The quoted overlap: every entry's data runs to the end of the last one's.
  assert.deepEqual(zipLayout(...spans([[0, 1229], [40, 1229], [80, 1229]]), 1229), { overlap: [0, 1] });
  // Out of order, the one starting first is named first.
  assert.deepEqual(zipLayout(...spans([[100, 150], [0, 120]]), 300), { overlap: [1, 0] });
  // Two records on one local header.
  assert.deepEqual(zipLayout(...spans([[0, 50], [0, 50]]), 300), { overlap: [0, 1] });
  assert.deepEqual(zipLayout(...spans([[0, 100], [100, 301]]), 300), { central: 1 });
  assert.deepEqual(zipLayout(...spans([]), 0), { next: new Int32Array(0) });
  // A data descriptor: 12 bytes, 16 signed, 8 more with ZIP64 sizes; none without flag bit 3.
  assert.equal(zipDescriptorLength(0x8, false, false), 12);
  assert.equal(zipDescriptorLength(0x8, false, true), 16);
  assert.equal(zipDescriptorLength(0x8, true, true), 24);
  assert.equal(zipDescriptorLength(0x800, true, true), 0);
});

void test('a central directory record reads its size and offset from the ZIP64 field where the 32-bit fields say 0xFFFFFFFF, as yauzl does', () => {
  const record = (fields: { compressed: number; uncompressed: number; offset: number }, zip64: Buffer | undefined): Buffer => {
    const name = Buffer.from('big.bin');
    const extra = zip64 ? Buffer.concat([Buffer.from([0x55, 0x54, 1, 0, 0]), Buffer.from([1, 0, zip64.length, 0]), zip64]) : Buffer.alloc(0);
    const b = Buffer.alloc(46);
    b.writeUInt32LE(0x02014b50, 0);
    b.writeUInt32LE(fields.compressed, 20);
    b.writeUInt32LE(fields.uncompressed, 24);
    b.writeUInt16LE(name.length, 28);
    b.writeUInt16LE(extra.length, 30);
    b.writeUInt32LE(fields.offset, 42);
    return Buffer.concat([b, name, extra]);
  };
  const u64 = (n: number): Buffer => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    return b;
  };
  const plain = record({ compressed: 10, uncompressed: 20, offset: 30 }, undefined);
  assert.deepEqual(zipCentralRecord(Buffer.concat([Buffer.alloc(3), plain]), 3), { length: plain.length, localOffset: 30, compressedSize: 10, flags: 0, name: Buffer.from('big.bin'), extra: Buffer.alloc(0) });
  // Uncompressed and offset in the field (compressed is not marked, so the field's second value is the offset).
  const wide = record({ compressed: 10, uncompressed: 0xffffffff, offset: 0xffffffff }, Buffer.concat([u64(5 * 2 ** 32), u64(2 ** 33 + 7)]));
  const read = zipCentralRecord(wide, 0);
  assert.ok(read && !('problem' in read));
  assert.equal(read.localOffset, 2 ** 33 + 7);
  assert.equal(read.compressedSize, 10);
  const all = record({ compressed: 0xffffffff, uncompressed: 0xffffffff, offset: 0xffffffff }, Buffer.concat([u64(1), u64(2 ** 32 + 1), u64(3)]));
  assert.deepEqual(((r) => r && !('problem' in r) && [r.compressedSize, r.localOffset])(zipCentralRecord(all, 0)), [2 ** 32 + 1, 3]);
  assert.deepEqual(zipCentralRecord(record({ compressed: 0xffffffff, uncompressed: 1, offset: 0 }, u64(1).subarray(0, 4)), 0), { problem: 'zip64 extended information extra field does not include compressed size' });
  // A record cut short is undefined (the caller reads on), another signature a problem.
  assert.equal(zipCentralRecord(plain.subarray(0, plain.length - 1), 0), undefined);
  assert.equal(zipCentralRecord(plain.subarray(0, 45), 0), undefined);
  assert.match((zipCentralRecord(Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), plain]), 0) as { problem: string }).problem, /signature: 0x4034b50/);
});
