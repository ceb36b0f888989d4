import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  diffManifests,
  manifestDigest,
  manifestPathProblem,
  parseManifest,
  serializeManifest,
  unchangedFiles,
  type Manifest,
  type ManifestEntry,
} from '../../src/plan/manifest.ts';

const H = (c: string): string => c.repeat(64);

const sample: ManifestEntry[] = [
  { path: 'index.html', type: 'file', mode: 0o644, size: 3, sha256: H('a') },
  { path: 'assets', type: 'dir', mode: 0o755 },
  { path: 'assets/app.js', type: 'file', mode: 0o644, size: 10, sha256: H('b') },
  { path: 'latest', type: 'symlink', target: 'assets/app.js' },
];

// A tree of unique, parent-first paths: names from a small alphabet so paths collide and nest.
const treeArb = fc.uniqueArray(fc.array(fc.constantFrom('a', 'b', 'c-d', 'é', 'x.y'), { minLength: 1, maxLength: 3 }), { selector: (p) => p.join('/'), maxLength: 25 }).map((paths) => {
  const dirs = new Set<string>();
  for (const parts of paths) for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  const entries: ManifestEntry[] = [...dirs].map((p) => ({ path: p, type: 'dir', mode: 0o755 }));
  for (const parts of paths) {
    const p = parts.join('/');
    if (dirs.has(p)) continue;
    entries.push(p.length % 2 === 0 ? { path: p, type: 'file', mode: 0o644, size: p.length, sha256: H('0') } : { path: p, type: 'symlink', target: `../${p}` });
  }
  return entries;
});

void test('serialize → parse gives back the same entries, whatever their order, and the same bytes', () => {
  fc.assert(
    fc.property(treeArb, (entries) => {
      const text = serializeManifest(entries);
      const read = parseManifest(text, manifestDigest(text));
      assert.ok(read.ok, read.ok ? '' : read.problem);
      assert.equal(serializeManifest(read.manifest.entries), text);
      assert.equal(serializeManifest([...entries].reverse()), text);
      assert.deepEqual(diffManifests(read.manifest, { entries }), []);
    }),
  );
});

void test('a manifest is never trusted when its digest, JSON, shape, paths or order are wrong', () => {
  const text = serializeManifest(sample);
  const bad = (t: string, digest?: string): string => {
    const r = parseManifest(t, digest);
    assert.ok(!r.ok, `accepted: ${t.slice(0, 80)}`);
    return r.problem;
  };
  assert.match(bad(text, manifestDigest(text + ' ')), /digest/);
  assert.match(bad(text.slice(0, text.length - 20)), /JSON/);
  assert.match(bad('{"entries":[]}'), /manifest/);
  assert.match(bad(text.replace('"assets/app.js"', '"../app.js"')), /\.\./);
  assert.match(bad(text.replace('"assets/app.js"', '"/etc/passwd"')), /absolute/);
  assert.match(bad(text.replace('"index.html"', '"assets"')), /order|repeated/);
  assert.match(bad(text.replace('"type":"dir"', '"type":"fifo"')), /unknown type/);
  assert.match(bad(text.replace(H('a'), 'zz')), /sha256/);
  assert.match(bad(serializeManifest([{ path: 'a/b', type: 'dir', mode: 0o755 }])), /parent/);
  assert.ok(parseManifest(text, manifestDigest(text)).ok);
  // As bytes (how a release's manifest is read): the same entries, the same digest rule.
  assert.deepEqual(parseManifest(Buffer.from(text), manifestDigest(text)), parseManifest(text, manifestDigest(text)));
  assert.match((parseManifest(Buffer.from(text), manifestDigest(text + ' ')) as { problem: string }).problem, /digest/);
  // Bytes that are not UTF-8 never pass for the text they decode to: the digest is of the bytes.
  const invalid = Buffer.from(text.replace('index.html', 'index.\u00e9tml'));
  invalid[invalid.indexOf('.\u00e9') + 1] = 0xff;
  assert.equal(parseManifest(invalid, manifestDigest(invalid.toString('utf8'))).ok, false);
});

void test('path rule', () => {
  assert.equal(manifestPathProblem('a/b.c'), undefined);
  for (const p of ['', '/a', 'a//b', 'a/./b', 'a/..', 'a\0b', '.', '..', './a', 'a/', '../a', 'a/.']) assert.ok(manifestPathProblem(p), p);
  for (const p of ['...', '.a', 'a.', '..a', 'a/...', 'a/.b/..c']) assert.equal(manifestPathProblem(p), undefined, p);
});

void test('path rule: a path is refused exactly when a component is empty, "." or "..", or it holds a NUL', () => {
  const byComponents = (p: string): boolean => p.includes('\0') || p.split('/').some((c) => c === '' || c === '.' || c === '..');
  fc.assert(
    fc.property(fc.array(fc.constantFrom('a', '.', '/', '\0', 'é'), { maxLength: 8 }), (chars) => {
      const p = chars.join('');
      assert.equal(manifestPathProblem(p) !== undefined, byComponents(p), JSON.stringify(p));
    }),
    { numRuns: 2000 },
  );
});

void test('diff names every kind of change, sorted by path', () => {
  const expected: Manifest = { entries: sample };
  const actual: Manifest = {
    entries: [
      { path: 'index.html', type: 'file', mode: 0o600, size: 3, sha256: H('c') },
      { path: 'assets', type: 'file', mode: 0o644, size: 1, sha256: H('d') },
      { path: 'latest', type: 'symlink', target: 'elsewhere' },
      { path: 'new.txt', type: 'file', mode: 0o644, size: 1, sha256: H('e') },
    ],
  };
  assert.deepEqual(
    diffManifests(expected, actual).map((d) => `${d.path} ${d.kind}`),
    ['assets type', 'assets/app.js removed', 'index.html mode', 'index.html modified', 'latest retargeted', 'new.txt added'],
  );
});

void test('unchangedFiles: same path, size and hash only', () => {
  const have: Manifest = { entries: sample };
  const build: Manifest = {
    entries: [
      { path: 'index.html', type: 'file', mode: 0o600, size: 3, sha256: H('a') },
      { path: 'assets', type: 'dir', mode: 0o755 },
      { path: 'assets/app.js', type: 'file', mode: 0o644, size: 10, sha256: H('f') },
      { path: 'latest', type: 'file', mode: 0o644, size: 3, sha256: H('a') },
    ],
  };
  assert.deepEqual([...unchangedFiles(build, have)], ['index.html']);
});
