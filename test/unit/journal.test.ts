// planRecovery: whatever the journal says and whatever was found on disk, recovery never removes
// the release current points to, only ever removes our own temp names, and always ends by
// clearing the journal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import path from 'node:path';
import { stagePath, trashPath } from '../../src/act/staging.ts';
import { isReleasesLeftover, isTmpLeftover, planRecovery, recordWentLive, type Journal, type RecoveryFacts } from '../../src/plan/journal.ts';
import { stagingName } from '../../src/remote/staging.ts';

const id = fc.constantFrom('r1', 'r2', 'r3', '20261127100000', '20261127100000-001');
const journal: fc.Arbitrary<Journal> = fc.oneof(
  fc.record({
    v: fc.constant(1 as const),
    op: fc.constant('deploy' as const),
    token: fc.constant('t'),
    pid: fc.integer({ min: 1, max: 1e6 }),
    startedAt: fc.constant('2026-11-27T10:00:00Z'),
    release: id,
    previous: fc.option(id, { nil: null }),
    phase: fc.constantFrom('copying' as const, 'ready' as const, 'switched' as const, 'rolling-back' as const),
    reason: fc.option(fc.string(), { nil: undefined }),
    verifying: fc.option(fc.constantFrom('its health check', 'its after-switch hooks and health check', 'bad\u001b[2J words'), { nil: undefined }),
  }),
  fc.record({
    v: fc.constant(1 as const),
    op: fc.constant('rollback' as const),
    token: fc.constant('t'),
    pid: fc.integer({ min: 1, max: 1e6 }),
    startedAt: fc.constant('2026-11-27T10:00:00Z'),
    release: id,
    previous: id,
    phase: fc.constantFrom('switching' as const, 'switched' as const),
  }),
);
const tmpName = fc.oneof(
  fc.constantFrom('current.', 'stage.', 'trash.', 'link.', 'lock.', 'stale-lock.', 'trash.lock.', 'keep', 'current', 'stage').chain((p) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), maxLength: 8 }).map((h) => p + h)),
  fc.string({ maxLength: 12 }),
);
const facts: fc.Arbitrary<RecoveryFacts> = fc.record({
  currentId: fc.option(id, { nil: null }),
  releaseExists: fc.boolean(),
  tmpEntries: fc.array(tmpName, { maxLength: 8 }),
  releaseWentLive: fc.option(fc.boolean(), { nil: undefined }),
});

void test('recovery never removes the release current points to', () => {
  fc.assert(
    fc.property(fc.option(journal, { nil: null }), facts, (j, f) => {
      for (const a of planRecovery(j, f)) {
        if (a.kind === 'remove-release') assert.notEqual(a.id, f.currentId, JSON.stringify({ j, f, a }));
      }
    }),
    { numRuns: 5000 },
  );
});

void test('recovery removes a release only for an unswitched deploy, and only the one it was making', () => {
  fc.assert(
    fc.property(journal, facts, (j, f) => {
      const removed = planRecovery(j, f).filter((a) => a.kind === 'remove-release');
      const switched = j.op === 'deploy' && (j.phase === 'switched' || f.releaseWentLive === true);
      if (j.op === 'rollback' || j.phase === 'rolling-back' || f.currentId === j.release || !f.releaseExists || switched) assert.deepEqual(removed, []);
      else assert.deepEqual(removed.map((a) => a.id), [j.release]);
    }),
    { numRuns: 3000 },
  );
});

// A deploy killed after its switch, then current pointed back by hand: the release served, and
// a journal at `switched` or a record that says it went live keeps it (it was removed as "interrupted before the switch").
void test('a release that switched (journal at switched, or its record says it went live) is never removed, and ends recorded as deployed', () => {
  fc.assert(
    fc.property(journal, facts, (j, f) => {
      if (j.op !== 'deploy' || j.phase === 'rolling-back' || !f.releaseExists) return;
      if (j.phase !== 'switched' && f.releaseWentLive !== true) return;
      const actions = planRecovery(j, f);
      assert.ok(actions.every((a) => a.kind !== 'remove-release'), JSON.stringify({ j, f, actions }));
      // Its record says it went live already, or recovery makes it say so.
      if (f.releaseWentLive !== true) assert.ok(actions.some((a) => a.kind === 'mark-deployed' && a.id === j.release), JSON.stringify({ j, f, actions }));
    }),
    { numRuns: 3000 },
  );
});

void test('recordWentLive: any status but pending, or an activation time', () => {
  assert.equal(recordWentLive({ status: 'pending' }), false);
  assert.equal(recordWentLive({}), false);
  for (const status of ['complete', 'failed', 'rolled-back']) assert.equal(recordWentLive({ status }), true, status);
  assert.equal(recordWentLive({ status: 'pending', activatedAt: '2026-12-05T00:00:00Z' }), true);
});

void test('only our own temp names in .tmp/ are removed; lock drafts and tombstones are left to the lock', () => {
  fc.assert(
    fc.property(fc.option(journal, { nil: null }), facts, (j, f) => {
      const removed = planRecovery(j, f).flatMap((a) => (a.kind === 'remove-tmp' ? [a.name] : []));
      for (const name of removed) {
        assert.ok(f.tmpEntries.includes(name));
        assert.match(name, /^(current|stage|trash|link)\./);
      }
      for (const name of f.tmpEntries) if (/^(lock|stale-lock)\./.test(name)) assert.ok(!removed.includes(name), name);
      assert.equal(removed.length, f.tmpEntries.filter(isTmpLeftover).length);
    }),
    { numRuns: 3000 },
  );
});

void test('a journal is always cleared, exactly once and last; no journal, nothing but temp names', () => {
  fc.assert(
    fc.property(fc.option(journal, { nil: null }), facts, (j, f) => {
      const actions = planRecovery(j, f);
      const clears = actions.filter((a) => a.kind === 'clear-journal').length;
      if (j === null) {
        assert.equal(clears, 0);
        assert.ok(actions.every((a) => a.kind === 'remove-tmp'));
      } else {
        assert.equal(clears, 1);
        assert.equal(actions[actions.length - 1]?.kind, 'clear-journal');
      }
    }),
    { numRuns: 3000 },
  );
});

void test('a deploy that had switched is recorded as deployed, not undone', () => {
  fc.assert(
    fc.property(journal, facts, (j, f) => {
      fc.pre(j.op === 'deploy' && j.phase !== 'rolling-back');
      const actions = planRecovery(j, { ...f, currentId: j.release, releaseExists: true });
      assert.ok(actions.some((a) => a.kind === 'mark-deployed' && a.id === j.release));
    }),
  );
});

void test('a switched deploy whose after-switch steps had not finished is recorded unverified; one from an older journal, or verified, is not', () => {
  fc.assert(
    fc.property(journal, facts, (j, f) => {
      fc.pre(j.op === 'deploy' && j.phase === 'switched');
      const actions = planRecovery(j, { ...f, currentId: j.release, releaseExists: true });
      const mark = actions.find((a) => a.kind === 'mark-deployed');
      assert.ok(mark?.kind === 'mark-deployed');
      if (j.verifying === undefined) assert.equal(mark.unverified, undefined);
      else assert.match(mark.unverified ?? '', /^its process ended before its [a-z ,-]+ finished$/);
    }),
  );
});

void test('releases/ leftovers are the names we make, nothing a user named alike', () => {
  const area = { dir: '/r/releases', prefix: '.' as const };
  for (const id of ['r1', 'v1.2.3', '20261205111846-001']) {
    assert.ok(isReleasesLeftover(path.basename(stagePath(area, id))), id);
    assert.ok(isReleasesLeftover(path.basename(trashPath(area, id))), id);
  }
  assert.ok(isReleasesLeftover(stagingName({ stagingInReleases: true }, 'stage')));
  assert.ok(isReleasesLeftover(stagingName({ stagingInReleases: true }, 'trash')));
  assert.ok(isReleasesLeftover('.stage.mount-probe.4242'));
  for (const name of ['.stage.mine', '.stage.old', '.trash.', '.stage.r1.0123', '.trash.dead', 'stage.0123456789abcdef', '.stage.0123456789ABCDEF', '.stage.mount-probe.x']) {
    assert.ok(!isReleasesLeftover(name), name);
  }
});
