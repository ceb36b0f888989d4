import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Manifest } from '../../src/plan/manifest.ts';
import { parseStatCache, serializeStatCache, trustedHashes, type FileStamp } from '../../src/plan/stat-cache.ts';

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

void test('serialize → parse gives back the same stamps', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.string({ minLength: 1 }), fc.nat(), fc.nat(), fc.double({ min: 0, max: 4e12, noNaN: true })), { maxLength: 30 }),
      (rows) => {
        const stamps = new Map(rows.map(([rel, ino, size, ctimeMs]) => [rel, { ino, size, ctimeMs }]));
        assert.deepEqual(parseStatCache(serializeStatCache(stamps)), stamps);
      },
    ),
  );
});

void test('a damaged cache is no cache: nothing from it is trusted', () => {
  const good = serializeStatCache(new Map([['a', stamp(1)]]));
  for (const bad of [good.slice(0, -5), '', 'null', '[]', '{"format":"other","files":[]}', good.replace('[\n["a"', '[\n["a",1'), good.replace('"a",1', '"a",-1'), good.replace('"a",1', '"a","1"')]) {
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
