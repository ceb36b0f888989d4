import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cachedHashes, cachesToEvict, isRacy, parseSourceCache, racyAgainst, serializeSourceCache, SOURCE_CACHE_MAX_FILES, SOURCE_CACHE_NAME, SOURCE_CACHES_KEPT, sourceCacheName, sourceCacheOf, stampKey, stampOfKey, type SourceCache, type SourceStamp } from '../../src/plan/source-cache.ts';

const H = (c: string): string => c.repeat(64);
/** 2026-12-01, with nanoseconds. */
const T = 1_796_142_231_369_923_117n;
const MS = 1_000_000n;

const stamp = (ino: bigint, over: Partial<SourceStamp> = {}): SourceStamp => ({ dev: 64769n, ino, size: 3, mtimeNs: T, ctimeNs: T, ...over });
const cacheOf = (rows: [string, SourceStamp, string][], sealedNs = T + 5n * MS, source = '/build'): SourceCache => sourceCacheOf(source, sealedNs, rows);

const stampArb = fc.record({
  dev: fc.constantFrom(1n, 2n),
  ino: fc.bigInt({ min: 1n, max: 2n ** 64n - 1n }),
  size: fc.nat(),
  mtimeNs: fc.bigInt({ min: 0n, max: 4n * 10n ** 18n }),
  ctimeNs: fc.bigInt({ min: 0n, max: 4n * 10n ** 18n }),
});

void test('a stamp key gives back its stamp', () => {
  fc.assert(fc.property(stampArb, (s) => assert.deepEqual(stampOfKey(stampKey(s)), { ...s })));
});

// Paths are unique, as a scan lists each once: with a path twice, which read counts would be the generator's choice.
void test('the cache keeps every file read that is not racy; serialize → parse gives it back whole', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.tuple(fc.string({ minLength: 1 }), stampArb, fc.constantFrom(H('a'), H('b'))), { maxLength: 20, selector: (row) => row[0] }), fc.bigInt({ min: 0n, max: 4n * 10n ** 18n }), (rows, sealedNs) => {
      const cache = cacheOf(rows, sealedNs, '/srv/build "x"');
      const last = new Map(rows.map(([rel, s, sha]) => [rel, { s, sha }]));
      assert.deepEqual([...cache.files.keys()].sort(), [...last].filter(([, r]) => !isRacy(r.s, sealedNs)).map(([rel]) => rel).sort());
      for (const [rel, f] of cache.files) assert.deepEqual(stampOfKey(f.stamp), { ...last.get(rel)?.s });
      const back = parseSourceCache(serializeSourceCache(cache));
      assert.ok(back);
      assert.equal(back.source, cache.source);
      assert.equal(back.sealedNs, sealedNs);
      assert.deepEqual([...back.files], [...cache.files]);
    }),
  );
});

void test('a damaged, cut, edited or foreign cache is no cache', () => {
  const good = serializeSourceCache(cacheOf([['a', stamp(1n), H('a')], ['b', stamp(2n), H('b')]]));
  assert.ok(parseSourceCache(good));
  const forged = good.replace(H('a'), H('c'));
  assert.notEqual(forged, good);
  for (const bad of [good.slice(0, -3), good.slice(0, 80), '', 'null', '{}', forged, good.replace('"source":"/build"', '"source":"/other"'), good.replace('source-cache@1', 'source-cache@2'), good.replace(/"check":"[0-9a-f]{64}"/, `"check":"${H('0')}"`)]) {
    assert.equal(parseSourceCache(bad), undefined, bad.slice(0, 120));
  }
  // Intact bytes of another format (the stat cache beside a manifest) are refused too.
  assert.equal(parseSourceCache('{"format":"atomic-deploy/stat-cache@1","files":[]}\n'), undefined);
});

void test('racy: a ctime or mtime not strictly older than the seal, or within 2 s of it when in whole seconds', () => {
  const sealed = T + 10n * MS;
  assert.equal(isRacy(stamp(1n), sealed), false);
  assert.equal(isRacy(stamp(1n, { ctimeNs: sealed }), sealed), true);
  assert.equal(isRacy(stamp(1n, { ctimeNs: sealed + 1n }), sealed), true);
  assert.equal(isRacy(stamp(1n, { mtimeNs: sealed }), sealed), true);
  assert.equal(isRacy(stamp(1n, { ctimeNs: sealed - 1n }), sealed), false);
  // Whole seconds: the filesystem may have cut up to 2 s off a write made after the seal.
  const second = (sealed / 1_000_000_000n) * 1_000_000_000n;
  assert.equal(isRacy(stamp(1n, { ctimeNs: second - 1_000_000_000n }), sealed), true);
  assert.equal(isRacy(stamp(1n, { ctimeNs: second - 3_000_000_000n }), sealed), false);
  // A fixed-mtime build (1985) is old, whole seconds or not.
  assert.equal(isRacy(stamp(1n, { mtimeNs: 499_076_100_000_000_000n }), sealed), false);
});

void test('property: the per-seal racy check answers as isRacy, at and around every edge (whole seconds, the 2 s slack, the seal)', () => {
  const S = 1_000_000_000n;
  // Times near the seal, on and off whole seconds, where the fast path and the slack meet.
  const near = (sealed: bigint): fc.Arbitrary<bigint> => fc.oneof(
    fc.bigInt({ min: sealed - 4n * S, max: sealed + S }),
    fc.integer({ min: -4, max: 1 }).chain((k) => fc.constantFrom(-1n, 0n, 1n).map((d) => (sealed / S + BigInt(k)) * S + d)),
    fc.constant(499_076_100_000_000_000n),
  );
  fc.assert(
    fc.property(fc.bigInt({ min: 10n * S, max: 2n ** 62n }).chain((sealed) => fc.tuple(fc.constant(sealed), near(sealed), near(sealed))), ([sealed, ctimeNs, mtimeNs]) => {
      const s = stamp(1n, { ctimeNs, mtimeNs });
      assert.equal(racyAgainst(sealed)(s), isRacy(s, sealed));
    }),
    { numRuns: 2000 },
  );
});

void test('lookup: the hash only for the same source and all five stamp fields, never for a racy entry', () => {
  const cache = cacheOf([['a', stamp(1n), H('a')], ['b', stamp(2n), H('b')], ['c', stamp(3n, { ctimeNs: T + 5n * MS }), H('c')]]);
  const now: [string, SourceStamp][] = [['a', stamp(1n)], ['b', stamp(2n)], ['c', stamp(3n, { ctimeNs: T + 5n * MS })]];
  assert.deepEqual(cachedHashes(cache, '/build', now), new Map([['a', H('a')], ['b', H('b')]]));
  assert.deepEqual(cachedHashes(cache, '/other', now), new Map());
  assert.deepEqual(cachedHashes(undefined, '/build', now), new Map());
  for (const over of [{ dev: 9n }, { ino: 9n }, { size: 4 }, { mtimeNs: T - 1n }, { ctimeNs: T + 1n }] satisfies Partial<SourceStamp>[]) {
    assert.deepEqual(cachedHashes(cache, '/build', [['a', { ...stamp(1n), ...over }]]), new Map(), JSON.stringify(Object.keys(over)));
  }
});

void test('property: every hash taken from the cache is for an identical, non-racy stamp of the same source', () => {
  const small = fc.record({ dev: fc.constantFrom(1n), ino: fc.constantFrom(1n, 2n), size: fc.constantFrom(3, 4), mtimeNs: fc.constantFrom(T, T + MS), ctimeNs: fc.constantFrom(T, T + MS, T + 2n * MS) });
  const paths = ['a', 'b', 'c/d'];
  fc.assert(
    fc.property(fc.dictionary(fc.constantFrom(...paths), small), fc.dictionary(fc.constantFrom(...paths), small), fc.constantFrom(T, T + MS, T + 3n * MS), fc.constantFrom('/build', '/other'), (then, seen, sealed, source) => {
      // Written as a tampered cache could be: racy rows included, so the lookup's own check is what is tested.
      const cache: SourceCache = { source: '/build', sealedNs: sealed, files: new Map(Object.entries(then).map(([rel, s]) => [rel, { stamp: stampKey(s), sha256: H(rel[0] ?? 'x') }])) };
      for (const [rel, sha] of cachedHashes(cache, source, Object.entries(seen))) {
        assert.equal(source, '/build');
        assert.equal(sha, H(rel[0] ?? 'x'));
        assert.deepEqual({ ...then[rel] }, { ...seen[rel] });
        assert.ok((then[rel]?.ctimeNs ?? sealed) < sealed && (then[rel]?.mtimeNs ?? sealed) < sealed);
      }
    }),
  );
});

void test('bounded: past the file limit the rest is left out, and what is written still parses', () => {
  const rows: [string, SourceStamp, string][] = Array.from({ length: SOURCE_CACHE_MAX_FILES + 10 }, (_, i) => [`f${i}`, stamp(BigInt(i + 1)), H('a')]);
  const back = parseSourceCache(serializeSourceCache(cacheOf(rows)));
  assert.equal(back?.files.size, SOURCE_CACHE_MAX_FILES);
});

void test('one cache file per build directory, named by its path; eviction keeps the ones used last', () => {
  assert.match(sourceCacheName('/build/a'), SOURCE_CACHE_NAME);
  assert.notEqual(sourceCacheName('/build/a'), sourceCacheName('/build/b'));
  assert.equal(sourceCacheName('/build/a'), sourceCacheName('/build/a'));
  const files = [
    { name: 'w', usedMs: 40 },
    { name: 'x', usedMs: 10 },
    { name: 'y', usedMs: 30 },
    { name: 'z', usedMs: 20 },
    { name: 'v', usedMs: 30 },
  ];
  assert.deepEqual(cachesToEvict(files, 4), ['x']);
  assert.deepEqual(cachesToEvict(files, 2), ['y', 'z', 'x']);
  assert.deepEqual(cachesToEvict(files, SOURCE_CACHES_KEPT + 1), []);
  assert.deepEqual(cachesToEvict([], 1), []);
});
