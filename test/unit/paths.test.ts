// Path validation: containment without the prefix trap, source/root overlap in both directions,
// shared paths that cannot leave a release, and `current` targets read back as release ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fc from 'fast-check';
import { isWithin, releaseIdFromLink, sharedPathProblem, sourceRootProblem, tildePath } from '../../src/plan/paths.ts';

const segment = fc.stringMatching(/^[a-z0-9 ._'$()-]{1,8}$/).filter((s) => s !== '.' && s !== '..');
const absPath = fc.array(segment, { minLength: 1, maxLength: 5 }).map((parts) => `/${parts.join('/')}`);

void test('isWithin: a path is within itself and its ancestors, never within a sibling sharing a prefix', () => {
  fc.assert(
    fc.property(absPath, fc.array(segment, { minLength: 1, maxLength: 3 }), fc.stringMatching(/^[a-z0-9]{1,4}$/), (base, rest, suffix) => {
      const inner = path.join(base, ...rest);
      assert.ok(isWithin(base, base));
      assert.ok(isWithin(inner, base));
      assert.ok(!isWithin(base, inner));
      // '/srv/app2' is not inside '/srv/app': the classic startsWith() trap.
      assert.ok(!isWithin(base + suffix, base));
    }),
    { numRuns: 2000 },
  );
});

void test('sourceRootProblem: same, source inside root and root inside source are refused; disjoint paths pass', () => {
  fc.assert(
    fc.property(absPath, fc.array(segment, { minLength: 1, maxLength: 3 }), absPath, (a, rest, b) => {
      const inside = path.join(a, ...rest);
      assert.match(sourceRootProblem(a, a) ?? '', /is the deploy root/);
      assert.match(sourceRootProblem(inside, a) ?? '', /source is inside the deploy root/);
      assert.match(sourceRootProblem(a, inside) ?? '', /deploy root is inside the source/);
      if (!isWithin(a, b) && !isWithin(b, a)) assert.equal(sourceRootProblem(a, b), undefined);
    }),
    { numRuns: 2000 },
  );
});

void test('sharedPathProblem: normalised relative paths pass; absolute, .., ., empty segments and control characters fail', () => {
  fc.assert(
    fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), (parts) => {
      const p = parts.join('/');
      assert.equal(sharedPathProblem(p), undefined, p);
      // Whatever passes stays inside the release it is joined to.
      assert.ok(isWithin(path.join('/r/releases/x', p), '/r/releases/x'));
    }),
    { numRuns: 1000 },
  );
  const bad = fc.oneof(
    absPath,
    fc.array(segment, { maxLength: 3 }).map((parts) => [...parts, '..', 'etc'].join('/')),
    fc.array(segment, { minLength: 1, maxLength: 3 }).map((parts) => [...parts, '.'].join('/')),
    fc.array(segment, { minLength: 2, maxLength: 3 }).map((parts) => parts.join('//')),
    fc.tuple(segment, fc.integer({ min: 1, max: 31 })).map(([s, c]) => s + String.fromCharCode(c)),
    fc.constant(''),
  );
  fc.assert(fc.property(bad, (p) => assert.notEqual(sharedPathProblem(p), undefined, JSON.stringify(p))), { numRuns: 2000 });
});

void test('releaseIdFromLink: relative and absolute (Capistrano) links to releases/<id> give <id>; anything else gives nothing', () => {
  const root = '/srv/www/app';
  const real = '/data/app';
  fc.assert(
    fc.property(segment, (id) => {
      assert.equal(releaseIdFromLink(`releases/${id}`, real, root), id);
      assert.equal(releaseIdFromLink(`${root}/releases/${id}`, real, root), id);
      assert.equal(releaseIdFromLink(`${real}/releases/${id}`, real, root), id);
      assert.equal(releaseIdFromLink(`releases/${id}/`, real, root), id);
      assert.equal(releaseIdFromLink(`/elsewhere/releases/${id}`, real, root), undefined);
      assert.equal(releaseIdFromLink(`releases/${id}/sub`, real, root), undefined);
      assert.equal(releaseIdFromLink(`shared/${id}`, real, root), undefined);
    }),
    { numRuns: 1000 },
  );
  // Whatever it accepts names exactly one entry directly under releases/.
  fc.assert(
    fc.property(fc.string({ maxLength: 30 }), (target) => {
      const got = releaseIdFromLink(target, real, root);
      if (got === undefined) return;
      assert.ok(got !== '' && got !== '.' && got !== '..' && !got.includes('/'), JSON.stringify({ target, got }));
      assert.equal(path.dirname(path.join(root, 'releases', got)), path.join(root, 'releases'));
    }),
    { numRuns: 5000 },
  );
  // A link through another release (`releases/p2/../p1`) reaches p1 only while p2 exists: deleting
  // p2 would leave current dangling, so such a link names no release.
  for (const through of ['releases/p2/../p1', `${root}/releases/p2/../p1`, `${real}/releases/p2/../p1`, 'releases/../releases/p1', `${root}/x/../releases/p1`]) {
    assert.equal(releaseIdFromLink(through, real, root), undefined, through);
  }
  for (const escape of ['releases/../../etc', 'releases/..', 'releases/.', '../releases/x', 'releases']) {
    assert.equal(releaseIdFromLink(escape, real, root), undefined, escape);
  }
});

void test('tildePath reads ~ as a shell does for this user, and leaves ~user to the shell', () => {
  assert.deepEqual(tildePath('~', '/home/me'), { tilde: true, expanded: '/home/me' });
  assert.deepEqual(tildePath('~/www/app', '/home/me'), { tilde: true, expanded: '/home/me/www/app' });
  assert.deepEqual(tildePath('~/', '/home/me'), { tilde: true, expanded: '/home/me' });
  assert.deepEqual(tildePath('~www-data/app', '/home/me'), { tilde: true });
  assert.deepEqual(tildePath('~odd', '/home/me'), { tilde: true });
  for (const p of ['./~odd', '/srv/~/x', 'www~', '']) assert.deepEqual(tildePath(p, '/home/me'), { tilde: false }, p);
});
