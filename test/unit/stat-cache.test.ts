import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Manifest } from '../../src/plan/manifest.ts';
import { carriedStamps, parseStatCache, racyStamp, restamp, serializeStatCache, stampedPrevious, trustedHashes, type FileStamp, type SeenStamp } from '../../src/plan/stat-cache.ts';

const H = (c: string): string => c.repeat(64);
const T = 1_796_142_231_369.923;

const manifest: Manifest = {
  entries: [
    { path: 'a', type: 'file', mode: 0o644, size: 3, sha256: H('a') },
    { path: 'b', type: 'file', mode: 0o644, size: 3, sha256: H('b') },
    { path: 'd', type: 'dir', mode: 0o755 },
    { path: 'd/c', type: 'file', mode: 0o644, size: 5, sha256: H('c') },
    { path: 'l', type: 'symlink', target: 'a' },
  ],
};

const stamp = (ino: number, size = 3, ctimeMs = T): FileStamp => ({ ino, size, ctimeMs });

void test('serialize → parse gives back the same stamps, with their owners where they have them', () => {
  const owner = fc.option(fc.tuple(fc.nat({ max: 0xffffffff }), fc.nat({ max: 0xffffffff })), { nil: undefined });
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.string({ minLength: 1 }), fc.nat(), fc.nat(), fc.double({ min: 0, max: 4e12, noNaN: true }), owner), { maxLength: 30 }),
      (rows) => {
        const stamps = new Map(rows.map(([rel, ino, size, ctimeMs, o]): [string, FileStamp] => [rel, o === undefined ? { ino, size, ctimeMs } : { ino, size, ctimeMs, uid: o[0], gid: o[1] }]));
        assert.deepEqual(parseStatCache(serializeStatCache(stamps)), stamps);
      },
    ),
  );
});

void test('a cache of the first format (no owners) is still read: its stamps carry no owner', () => {
  const v1 = '{"format":"atomic-deploy/stat-cache@1","files":[\n["a",7,3,1796142231369.923],\n["d/c",8,5,1796142231369.5]\n]}\n';
  assert.deepEqual(parseStatCache(v1), new Map([['a', { ino: 7, size: 3, ctimeMs: 1_796_142_231_369.923 }], ['d/c', { ino: 8, size: 5, ctimeMs: 1_796_142_231_369.5 }]]));
  // Rows of one format under the other's name are damage.
  assert.equal(parseStatCache(v1.replace('@1', '@2')), undefined);
  assert.equal(parseStatCache(serializeStatCache(new Map([['a', { ...stamp(1), uid: 0, gid: 0 }]])).replace('@2', '@1')), undefined);
});

void test('a damaged cache is no cache: nothing from it is trusted', () => {
  const good = serializeStatCache(new Map([['a', { ...stamp(1), uid: 1000, gid: 1000 }]]));
  for (const bad of [good.slice(0, -5), '', 'null', '[]', '{"format":"other","files":[]}', good.replace('[\n["a"', '[\n["a",1'), good.replace('"a",1', '"a",-1'), good.replace('"a",1', '"a","1"'), good.replace(',1000,1000]', ',-2,1000]'), good.replace(',1000,1000]', ',1000,1.5]'), good.replace(',1000,1000]', ',1000]')]) {
    assert.equal(parseStatCache(bad), undefined, bad);
  }
});

void test('trusted: same inode, size and ctime as recorded, recorded before the cache was sealed', () => {
  const cache = new Map([['a', stamp(1)], ['b', stamp(2)], ['d/c', stamp(3, 5)]]);
  const now = new Map([['a', stamp(1)], ['b', stamp(2, 3, T + 4)], ['d/c', stamp(3, 5)]]);
  assert.deepEqual(trustedHashes(manifest, cache, T + 10, now), new Map([['a', H('a')], ['d/c', H('c')]]));
  // A file swapped for another (new inode) or resized is not trusted either.
  assert.deepEqual(trustedHashes(manifest, cache, T + 10, new Map([['a', stamp(9)], ['d/c', stamp(3, 6)]])), new Map());
  // Racy: a ctime in the tick the cache was written proves nothing.
  assert.deepEqual(trustedHashes(manifest, cache, T, now), new Map());
  // A cache row whose size disagrees with the manifest: the manifest is not about that file.
  assert.deepEqual(trustedHashes(manifest, new Map([['a', stamp(1, 4)]]), T + 10, new Map([['a', stamp(1, 4)]])), new Map());
});

void test('property: a trusted hash is always the manifest\'s, for a file whose stamp did not move', () => {
  const stampArb = fc.record({ ino: fc.integer({ min: 1, max: 3 }), size: fc.constantFrom(3, 5), ctimeMs: fc.constantFrom(T, T + 1, T + 2) });
  const paths = ['a', 'b', 'd/c', 'l', 'x'];
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom(...paths), stampArb), fc.dictionary(fc.constantFrom(...paths), stampArb), fc.constantFrom(T, T + 1, T + 3), (then, seen, sealed) => {
      const cache = new Map(Object.entries(then));
      const now = new Map(Object.entries(seen));
      for (const [rel, sha] of trustedHashes(manifest, cache, sealed, now)) {
        const entry = manifest.entries.find((e) => e.path === rel);
        assert.ok(entry?.type === 'file' && entry.sha256 === sha);
        // Spread: fast-check may build null-prototype records, which strict deepEqual tells apart.
        assert.deepEqual({ ...cache.get(rel) }, { ...now.get(rel) });
        assert.ok((cache.get(rel)?.ctimeMs ?? Infinity) < sealed);
      }
    }),
  );
});

const seen = (s: FileStamp, nlink: number, mtimeMs = 5): SeenStamp => ({ ...s, nlink, mtimeMs });

void test('restamp: an unlink of another name (one link fewer, ctime moved, nothing else) carries the stamp to the new ctime', () => {
  const cached = stamp(7);
  assert.deepEqual(restamp(cached, seen(cached, 3), seen(stamp(7, 3, T + 9), 2)), stamp(7, 3, T + 9));
  // Not the same inode's name (the old twin was another file): nothing moved, the stamp stays as it is.
  assert.equal(restamp(cached, seen(cached, 1), seen(cached, 1)), cached);
});

void test('restamp: anything beyond the unlink, or a file already changed before it, drops the stamp', () => {
  fc.assert(
    fc.property(
      fc.record({ ino: fc.integer({ min: 1, max: 3 }), size: fc.integer({ min: 1, max: 3 }), ctimeMs: fc.constantFrom(T, T + 1, T + 2) }),
      fc.record({ ino: fc.integer({ min: 1, max: 3 }), size: fc.integer({ min: 1, max: 3 }), ctimeMs: fc.constantFrom(T, T + 1, T + 2), nlink: fc.integer({ min: 1, max: 4 }), mtimeMs: fc.constantFrom(5, 6) }),
      fc.record({ ino: fc.integer({ min: 1, max: 3 }), size: fc.integer({ min: 1, max: 3 }), ctimeMs: fc.constantFrom(T, T + 1, T + 2), nlink: fc.integer({ min: 1, max: 4 }), mtimeMs: fc.constantFrom(5, 6) }),
      (cached, before, after) => {
        const out = restamp(cached, before, after);
        const untouchedBefore = before.ino === cached.ino && before.size === cached.size && before.ctimeMs === cached.ctimeMs;
        const onlyOurUnlink = after.ino === before.ino && after.size === before.size && after.mtimeMs === before.mtimeMs && after.nlink === before.nlink - 1;
        const nothingMoved = after.ino === before.ino && after.size === before.size && after.mtimeMs === before.mtimeMs && after.nlink === before.nlink && after.ctimeMs === before.ctimeMs;
        if (!untouchedBefore || !(onlyOurUnlink || nothingMoved)) assert.equal(out, undefined);
        else if (nothingMoved) assert.equal(out, cached);
        else assert.deepEqual(out, { ino: after.ino, size: after.size, ctimeMs: after.ctimeMs });
      },
    ),
  );
});

void test('carriedStamps: a stamp racy under the old seal does not survive into a cache sealed later', () => {
  const stamps = new Map([['a', stamp(1, 3, T - 1)], ['b', stamp(2, 3, T)], ['c', stamp(3, 3, T + 1)]]);
  assert.deepEqual([...carriedStamps(stamps, T).keys()], ['a']);
});

void test('stampedPrevious: the previous files a manifest and an owned, non-racy stamp describe alone; the rest are left to an lstat', () => {
  const seal = T + 10;
  const owned = (ino: number, size = 3, ctimeMs = T): FileStamp => ({ ino, size, ctimeMs, uid: 1000, gid: 100 });
  const cache = new Map<string, FileStamp>([
    ['a', owned(1)],
    ['b', stamp(2)], // an @1 stamp: no owner
    ['d/c', owned(3, 5, seal)], // racy: not older than the seal
    ['l', owned(4)], // a symlink in the manifest
    ['x', owned(5)], // not in the manifest
  ]);
  const files = ['a', 'b', 'd/c', 'l', 'x', 'new'].map((rel) => ({ rel, size: 3, mode: 0o644, uid: 1000, gid: 100 }));
  const found = stampedPrevious(manifest, cache, seal, files);
  assert.deepEqual([...found.keys()], ['a']);
  assert.deepEqual(found.get('a'), { rel: 'a', regular: true, size: 3, mode: 0o644, uid: 1000, gid: 100, ino: 1, ctimeMs: T });
  // A stamp whose size is not the manifest's describes another file: left to the lstat.
  assert.equal(stampedPrevious(manifest, new Map([['a', owned(1, 4)]]), seal, files).size, 0);
  // Native paths map to manifest paths through the function given (a Windows-style separator here).
  const native = stampedPrevious(manifest, new Map([['d/c', owned(3, 5)]]), seal, [{ rel: 'd\\c', size: 5, mode: 0o644, uid: 1000, gid: 100 }], (rel) => rel.split('\\').join('/'));
  assert.equal(native.get('d\\c')?.ino, 3);
});

void test('restamp keeps the owner the file shows after the unlink', () => {
  const cached: FileStamp = { ...stamp(1), uid: 1000, gid: 100 };
  const before: SeenStamp = { ...cached, nlink: 2, mtimeMs: T - 5 };
  const after: SeenStamp = { ...before, nlink: 1, ctimeMs: T + 1 };
  assert.deepEqual(restamp(cached, before, after), { ino: 1, size: 3, ctimeMs: T + 1, uid: 1000, gid: 100 });
});

void test('a ctime in whole seconds (a filesystem that keeps only seconds, maybe not the seal\'s) is racy up to 2 s before the seal; a finer one only up to the seal', () => {
  const second = Math.floor(T / 1000) * 1000;
  const seal = second + 358.5;
  // Whole-second ctime, seal 0.36 s later on a nanosecond filesystem: a write later in that second keeps the ctime.
  assert.equal(racyStamp(second, seal), true);
  assert.equal(racyStamp(second - 1000, seal), true);
  assert.equal(racyStamp(second - 2000, seal), false);
  // A ctime with a fraction came from a fine clock: racy only from the seal on.
  assert.equal(racyStamp(second + 0.001, seal), false);
  assert.equal(racyStamp(seal, seal), true);
  // Used by every trust decision: the same whole-second stamp is re-hashed, not trusted.
  const manifest: Manifest = { format: 'atomic-deploy/manifest@1', entries: [{ path: 'a', type: 'file', mode: 0o644, size: 3, sha256: 'a'.repeat(64) }] } as Manifest;
  const stamp: FileStamp = { ino: 7, size: 3, ctimeMs: second, uid: 0, gid: 0 };
  assert.equal(trustedHashes(manifest, new Map([['a', stamp]]), seal, new Map([['a', stamp]])).size, 0);
  assert.equal(stampedPrevious(manifest, new Map([['a', stamp]]), seal, [{ rel: 'a', size: 3, mode: 0o644, uid: 0, gid: 0 }]).size, 0);
  assert.equal(carriedStamps(new Map([['a', stamp]]), seal).size, 0);
  assert.equal(trustedHashes(manifest, new Map([['a', stamp]]), second + 2000.5, new Map([['a', stamp]])).size, 1);
});
