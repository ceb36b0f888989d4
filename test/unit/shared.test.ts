import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fc from 'fast-check';
import { planShared, sharedLinkText, withoutPaths, type ListedEntry } from '../../src/plan/shared.ts';

const segment = fc.stringMatching(/^[A-Za-z0-9_.-]{1,8}$/).filter((s) => s !== '.' && s !== '..');
const sharedPath = fc.array(segment, { minLength: 1, maxLength: 5 }).map((parts) => parts.join('/'));

void test('property: the link text resolves to shared/<p> from releases/<id>/ and from the staging dir', () => {
  fc.assert(
    fc.property(sharedPath, segment, (p, id) => {
      const text = sharedLinkText(p);
      assert.ok(!path.posix.isAbsolute(text));
      for (const home of [`releases/${id}`, `.tmp/stage.${id}.abc123`]) {
        const linkDir = path.posix.dirname(path.posix.join(home, p));
        assert.equal(path.posix.normalize(path.posix.join(linkDir, text)), `shared/${p}`);
      }
    }),
    { numRuns: 500 },
  );
  assert.equal(sharedLinkText('.env'), '../../shared/.env');
  assert.equal(sharedLinkText('storage/logs'), '../../../shared/storage/logs');
});

const entries: ListedEntry[] = [
  { rel: '', kind: 'dir' },
  { rel: 'index.html', kind: 'file' },
  { rel: '.env', kind: 'file' },
  { rel: 'storage', kind: 'dir' },
  { rel: 'storage/cache', kind: 'dir' },
  { rel: 'storage/cache/x', kind: 'file' },
  { rel: 'vendor', kind: 'symlink' },
];

void test('links, the parents to make, and what a replace leaves out', () => {
  const plan = planShared(['storage/logs', 'uploads/a/b', '.env'], entries, { replace: true });
  assert.deepEqual(plan.problems, []);
  assert.deepEqual(
    plan.links.map((l) => [l.path, l.mkdirs, l.replaces]),
    [
      ['storage/logs', [], false],
      ['uploads/a/b', ['uploads', 'uploads/a'], false],
      ['.env', [], true],
    ],
  );
  assert.deepEqual(plan.exclude, ['.env']);
  assert.deepEqual(withoutPaths(entries, ['storage']).map((e) => e.rel), ['', 'index.html', '.env', 'vendor']);
});

void test('a path the source holds is an error unless replace is set', () => {
  const plan = planShared(['.env', 'storage/cache'], entries);
  assert.equal(plan.links.length, 0);
  assert.equal(plan.problems.length, 2);
  assert.match(plan.problems[0] ?? '', /already holds "\.env"/);
  const replaced = planShared(['storage/cache'], entries, { replace: true });
  assert.deepEqual(replaced.exclude, ['storage/cache']);
  assert.deepEqual(withoutPaths(entries, replaced.exclude).map((e) => e.rel), ['', 'index.html', '.env', 'storage', 'vendor']);
});

void test('invalid, duplicate, overlapping and symlink-parented paths are refused', () => {
  const bad = ['', '../etc', 'a/../../b', '/etc/passwd', 'a//b', './a', 'a/.', 'x\ny'];
  for (const p of bad) {
    const plan = planShared([p], entries);
    assert.equal(plan.links.length, 0, p);
    assert.equal(plan.problems.length, 1, p);
  }
  assert.match(planShared(['logs', 'logs'], entries).problems[0] ?? '', /given twice/);
  assert.match(planShared(['data', 'data/x'], entries).problems[0] ?? '', /overlap/);
  assert.match(planShared(['data/x', 'data'], entries).problems[0] ?? '', /overlap/);
  // Linking through a symlinked parent could write outside the release.
  assert.match(planShared(['vendor/cache'], entries).problems[0] ?? '', /as a symlink/);
  assert.match(planShared(['index.html/x'], entries).problems[0] ?? '', /as a file/);
});
