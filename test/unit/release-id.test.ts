// Release ids: generated ids are new, valid and sort in deploy order whatever the clock does;
// validation refuses anything that could escape releases/ or confuse a terminal or a shell.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareReleaseIds, MAX_RELEASE_ID_BYTES, newReleaseIdProblem, nextReleaseId, releaseIdProblem, timestampOf } from '../../src/plan/release-id.ts';

// Within the years a timestamp id can spell (4-digit years).
const date = fc.date({ min: new Date('2000-01-01T00:00:00Z'), max: new Date('2999-12-31T23:59:59Z'), noInvalidDate: true });
const stampId = fc.tuple(date, fc.option(fc.integer({ min: 1, max: 999 }), { nil: undefined })).map(([d, n]) => (n === undefined ? timestampOf(d) : `${timestampOf(d)}-${String(n).padStart(3, '0')}`));
const otherId = fc.stringMatching(/^[A-Za-z0-9_][A-Za-z0-9._-]{0,20}$/).filter((s) => !s.includes('..'));
const anyId = fc.oneof(stampId, otherId);

void test('a generated id is new, valid, and sorts after every existing timestamp id', () => {
  fc.assert(
    fc.property(fc.array(anyId, { maxLength: 30 }), date, (existing, now) => {
      const id = nextReleaseId(existing, now);
      assert.ok(!existing.includes(id));
      assert.equal(releaseIdProblem(id), undefined);
      assert.match(id, /^\d{14}(-\d{3})?$/);
      for (const other of existing) if (/^\d{14}(-\d{3})?$/.test(other)) assert.ok(compareReleaseIds(other, id) < 0, `${other} vs ${id}`);
    }),
    { numRuns: 500 },
  );
});

void test('ids generated one after another sort in deploy order, even when the clock steps back or stands still', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: -5000, max: 3000 }), { minLength: 2, maxLength: 60 }), date, (steps, start) => {
      const ids: string[] = [];
      let clock = start.getTime();
      for (const step of steps) {
        clock += step;
        ids.push(nextReleaseId(ids, new Date(clock)));
      }
      assert.equal(new Set(ids).size, ids.length);
      assert.deepEqual([...ids].sort(compareReleaseIds), ids);
      // Plain byte order (ls, a web server's directory listing) agrees.
      assert.deepEqual([...ids].sort(), ids);
    }),
    { numRuns: 300 },
  );
});

void test('a thousand deploys in one second still get distinct ordered ids (the suffix rolls into the next second)', () => {
  const now = new Date('2026-11-27T10:00:00Z');
  const ids: string[] = [];
  for (let i = 0; i < 1200; i++) ids.push(nextReleaseId(ids, now));
  assert.equal(new Set(ids).size, 1200);
  assert.deepEqual([...ids].sort(compareReleaseIds), ids);
  assert.equal(ids[999], '20261127100000-999');
  assert.equal(ids[1000], '20261127100001');
});

void test('compareReleaseIds is a total order', () => {
  fc.assert(
    fc.property(anyId, anyId, anyId, (a, b, c) => {
      // `+ 0`: -0 and 0 are the same answer here, though not to Object.is.
      assert.equal(Math.sign(compareReleaseIds(a, b)) + 0, -Math.sign(compareReleaseIds(b, a)) + 0);
      assert.equal(compareReleaseIds(a, b) === 0, a === b);
      if (compareReleaseIds(a, b) <= 0 && compareReleaseIds(b, c) <= 0) assert.ok(compareReleaseIds(a, c) <= 0);
    }),
    { numRuns: 1000 },
  );
});

void test('validation refuses every id with a slash, .., NUL, a control character, a leading . or -, or too many bytes', () => {
  const bad = fc.oneof(
    fc.tuple(fc.string(), fc.constantFrom('/', '\\', '\0', '..', '\n', '\r', '\t', '\x1b', '\x7f'), fc.string()).map(([a, x, b]) => a + x + b),
    fc.string().map((s) => `.${s}`),
    fc.string().map((s) => `-${s}`),
    fc.string({ unit: 'grapheme', minLength: MAX_RELEASE_ID_BYTES + 1, maxLength: MAX_RELEASE_ID_BYTES + 40 }).filter((s) => Buffer.byteLength(s) > MAX_RELEASE_ID_BYTES),
    fc.constant(''),
  );
  fc.assert(fc.property(bad, (id) => assert.notEqual(releaseIdProblem(id), undefined, JSON.stringify(id))), { numRuns: 2000 });
});

void test('validation accepts ordinary names: letters, digits, dots, dashes, underscores, non-ASCII letters', () => {
  const good = fc
    .string({ unit: fc.constantFrom(...'abcXYZ019._-éü✓'.split('')), minLength: 1, maxLength: 40 })
    .filter((s) => !s.startsWith('.') && !s.startsWith('-') && !s.includes('..'));
  fc.assert(fc.property(good, (id) => assert.equal(releaseIdProblem(id), undefined, id)), { numRuns: 1000 });
  // Anything accepted is one path segment that stays inside releases/.
  fc.assert(
    fc.property(fc.string({ maxLength: 50 }), (id) => {
      if (releaseIdProblem(id) !== undefined) return;
      assert.ok(!id.includes('/') && id !== '.' && id !== '..' && !id.includes('\0'));
    }),
    { numRuns: 3000 },
  );
});

void test('a new id ending in .stat is refused (its manifest would be another release\'s stat cache); the id before it and other dotted ids are not', () => {
  for (const id of ['a.stat', '20261201120000.stat']) assert.match(newReleaseIdProblem(id) ?? '', /ends in "\.stat": .* of release [^ ]+$/, id);
  // Named as written; the clash is only where case is ignored.
  assert.equal(newReleaseIdProblem('v1.STAT'), 'it ends in ".STAT": the manifest of release v1.STAT would be the stat cache file of release v1 on a filesystem that ignores case');
  for (const id of ['a.stats', 'a.stat1', 'stat', 'a.status', 'v1.2.3']) assert.equal(newReleaseIdProblem(id), undefined, id);
  // Made by another tool, such a name is still read as a release.
  assert.equal(releaseIdProblem('a.stat'), undefined);
});

void test('a new id typed decomposed (e + U+0301) is told to be written composed, which is accepted', () => {
  const decomposed = 'caf\u0065\u0301';
  assert.equal(newReleaseIdProblem(decomposed), `it is written in decomposed Unicode (a letter and a combining mark apart): write it composed, "caf\u00e9"`);
  assert.equal(newReleaseIdProblem(decomposed.normalize('NFC')), undefined);
  // A mark that composes with nothing stays the character it is.
  assert.match(newReleaseIdProblem('a\u200f') ?? '', /^it contains /);
});

// An invisible character (a zero-width space pasted with a tag, a no-break space) was shown as
// itself: `it contains "\u200b"`, quotes around nothing the user could see or search for.
void test('a new release id with a character that shows as nothing or as a space names its code point', () => {
  assert.equal(newReleaseIdProblem('v1\u200b'), 'it contains "\u200b" (U+200B, which shows as nothing or as a space); a new release id holds only letters, digits, dots, dashes and underscores');
  assert.equal(newReleaseIdProblem('v1\u00a0b'), 'it contains "\u00a0" (U+00A0, which shows as nothing or as a space); a new release id holds only letters, digits, dots, dashes and underscores');
  assert.equal(newReleaseIdProblem('v1\ufeff'), 'it contains "\ufeff" (U+FEFF, which shows as nothing or as a space); a new release id holds only letters, digits, dots, dashes and underscores');
  // A visible one is shown as it is.
  assert.equal(newReleaseIdProblem('a:b'), 'it contains ":"; a new release id holds only letters, digits, dots, dashes and underscores');
  assert.equal(newReleaseIdProblem('a b'), 'it contains " "; a new release id holds only letters, digits, dots, dashes and underscores');
});
