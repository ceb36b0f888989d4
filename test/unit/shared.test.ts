import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fc from 'fast-check';
import { hostSharedTargetsOf } from '../../src/remote/facts.ts';
import { planShared, sharedCreateDenied, sharedLinkText, withoutPaths, type ListedEntry } from '../../src/plan/shared.ts';

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

void test('--shared-create refused: the owner by name, by uid (sudo\'s #N), or unknown; a path the shell would split is quoted in the command', () => {
  const at = { full: '/srv/app/shared/.env', dir: '/srv/app/shared', user: 'deploy' };
  assert.deepEqual(sharedCreateDenied('.env', 'file', { ...at, owner: { uid: 33, name: 'www-data' } }), {
    problem: "cannot create shared/.env: /srv/app/shared is www-data's, and this user (deploy) may not write in it",
    hint: 'make it as www-data (sudo -u www-data touch /srv/app/shared/.env), then deploy again without --shared-create for it',
  });
  const byUid = sharedCreateDenied('cache', 'dir', { ...at, full: '/srv/my app/shared/cache', owner: { uid: 4242 } });
  assert.equal(byUid.problem, "cannot create shared/cache: /srv/app/shared is uid 4242's, and this user (deploy) may not write in it");
  assert.equal(byUid.hint, "make it as uid 4242 (sudo -u '#4242' mkdir -p '/srv/my app/shared/cache'), then deploy again without --shared-create for it");
  assert.match(sharedCreateDenied('.env', 'file', { ...at, owner: {} }).problem, /\/srv\/app\/shared is another user's, and this user \(deploy\)/);
});

void test('a host\'s shared-target frames: each kind with the refusal that follows it; an owner without a name (GNU, BusyBox: UNKNOWN; a BSD: the number) by uid', () => {
  const f = (tag: string, value: string): { tag: string; value: string } => ({ tag, value });
  assert.deepEqual(
    hostSharedTargetsOf([
      f('root', 'ok'),
      f('sharedkind', 'missing'),
      f('shareddenied', '/srv/a b/shared'),
      f('sharedowner', '33 www-data'),
      f('shareduser', 'deploy'),
      f('sharedkind', 'dir'),
      f('sharedkind', 'missing'),
      f('shareddenied', '/srv/x'),
      f('sharedowner', '4242 UNKNOWN'),
      f('shareduser', 'uid 1001'),
      f('sharedkind', 'missing'),
      f('shareddenied', '/srv/y'),
      f('sharedowner', '4243 4243'),
      f('shareduser', 'deploy'),
      f('sharedkind', 'missing'),
      f('shareddenied', '/srv/z'),
      f('sharedowner', ''),
      f('shareduser', 'deploy'),
    ]),
    [
      { kind: 'missing', denied: { dir: '/srv/a b/shared', owner: { uid: 33, name: 'www-data' }, user: 'deploy' } },
      { kind: 'dir' },
      { kind: 'missing', denied: { dir: '/srv/x', owner: { uid: 4242 }, user: 'uid 1001' } },
      { kind: 'missing', denied: { dir: '/srv/y', owner: { uid: 4243 }, user: 'deploy' } },
      { kind: 'missing', denied: { dir: '/srv/z', owner: {}, user: 'deploy' } },
    ],
  );
  // A kind cut short stops the reading: the caller says the check printed nothing usable.
  assert.deepEqual(hostSharedTargetsOf([f('sharedkind', 'file'), f('sharedkind', 'mis')]), [{ kind: 'file' }]);
});
