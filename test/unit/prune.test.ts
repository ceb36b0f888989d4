// Prune selection: the rules that keep a site alive (current, rollback target) and the one that
// keeps the last good release when a row of deploys failed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { countsTowardsKeep, rollbackTarget, selectPrune, type RecordedStatus, type ReleaseFacts } from '../../src/plan/releases.ts';
import { describeUses, releasesInUse, type ProcessUse } from '../../src/plan/in-use.ts';

const statusArb = fc.constantFrom<RecordedStatus | undefined>(undefined, 'complete', 'complete', 'complete', 'failed', 'rolled-back', 'pending');

/** Releases in deploy order (ids r0, r1, ... as seq), a current one (or none), a keep count, releases in use. */
const scenario = fc
  .record({
    statuses: fc.array(statusArb, { maxLength: 14 }),
    currentPick: fc.nat(),
    hasCurrent: fc.boolean(),
    keep: fc.integer({ min: 0, max: 8 }),
    inUseMask: fc.array(fc.boolean(), { maxLength: 14 }),
    writingPick: fc.option(fc.nat()),
    force: fc.boolean(),
  })
  .map(({ statuses, currentPick, hasCurrent, keep, inUseMask, writingPick, force }) => {
    const ordered: ReleaseFacts[] = statuses.map((status, i) => ({ id: `r${i}`, seq: i + 1, ...(status ? { status } : {}) }));
    // Current is a release that went live, so never pending.
    const candidates = ordered.filter((r) => r.status !== 'pending');
    const current = hasCurrent && candidates.length > 0 ? (candidates[currentPick % candidates.length] as ReleaseFacts).id : null;
    const inUse = new Map(ordered.filter((_, i) => inUseMask[i]).map((r) => [r.id, 'pid 1 (sleep: working directory)']));
    const writing = new Set(writingPick !== null && ordered.length > 0 ? [(ordered[writingPick % ordered.length] as ReleaseFacts).id] : []);
    return { ordered, current, keep, inUse, writing, force };
  });

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

const run = (s: Scenario) =>
  selectPrune(s.ordered, { currentId: s.current, keep: s.keep, inUse: s.inUse, writing: s.writing, force: s.force });

void test('every release is either kept or removed, exactly once', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const d = run(s);
      const ids = [...d.keep, ...d.remove].map((x) => x.release.id).sort();
      assert.deepEqual(ids, s.ordered.map((r) => r.id).sort());
    }),
  );
});

void test('never selects current, the rollback target, a pending release or one being written', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const d = run(s);
      const removed = new Set(d.remove.map((x) => x.release.id));
      if (s.current) assert.ok(!removed.has(s.current), 'current removed');
      const target = rollbackTarget(s.ordered, s.current);
      if (target) assert.ok(!removed.has(target.id), 'rollback target removed');
      for (const r of s.ordered) {
        if (r.status === 'pending') assert.ok(!removed.has(r.id), 'pending removed');
        if (s.writing.has(r.id)) assert.ok(!removed.has(r.id), 'release being written removed');
      }
    }),
  );
});

void test('a release in use stays unless forced', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const d = run(s);
      const removed = new Set(d.remove.map((x) => x.release.id));
      for (const id of s.inUse.keys()) if (!s.force) assert.ok(!removed.has(id), `${id} in use but removed`);
    }),
  );
});

void test('keeps exactly min(keep, good) newest good releases, and nothing else unprotected', () => {
  fc.assert(
    fc.property(scenario.filter((s) => s.keep > 0), (s) => {
      const d = run(s);
      const kept = new Set(d.keep.map((x) => x.release.id));
      const good = s.ordered.filter(countsTowardsKeep);
      const newest = s.keep === 0 ? [] : good.slice(-s.keep);
      assert.equal(newest.length, Math.min(s.keep, good.length));
      for (const r of newest) assert.ok(kept.has(r.id), `${r.id} is among the newest good but was removed`);
      for (const k of d.keep) {
        if (k.rule === 'newest') assert.ok(newest.some((r) => r.id === k.release.id));
        else assert.notEqual(k.rule, undefined);
      }
      // A kept release that is neither newest-good nor protected would be a leak.
      const target = rollbackTarget(s.ordered, s.current)?.id;
      for (const k of d.keep) {
        const protectedOne = k.release.id === s.current || k.release.id === target || k.release.status === 'pending' || s.writing.has(k.release.id) || (s.inUse.has(k.release.id) && !s.force);
        assert.ok(protectedOne || newest.some((r) => r.id === k.release.id), `${k.release.id} kept without a reason`);
      }
    }),
  );
});

void test('failed and rolled-back releases never count towards keep: a row of failures cannot push out the last good release', () => {
  fc.assert(
    fc.property(scenario, fc.array(fc.constantFrom<RecordedStatus>('failed', 'rolled-back'), { minLength: 1, maxLength: 10 }), (s, failures) => {
      const before = run(s);
      const more: ReleaseFacts[] = failures.map((status, i) => ({ id: `f${i}`, seq: s.ordered.length + i + 1, status }));
      const after = selectPrune([...s.ordered, ...more], { currentId: s.current, keep: s.keep, inUse: s.inUse, writing: s.writing, force: s.force });
      const keptBefore = before.keep.filter((k) => k.rule === 'newest').map((k) => k.release.id);
      const keptAfter = new Set(after.keep.map((k) => k.release.id));
      for (const id of keptBefore) assert.ok(keptAfter.has(id), `${id} was pushed out by failed releases`);
      for (const r of more) assert.ok(!after.keep.some((k) => k.release.id === r.id && k.rule === 'newest'), 'a failed release counted towards keep');
    }),
  );
});

void test('a larger keep never removes more (0 is no limit, tested on its own)', () => {
  fc.assert(
    fc.property(scenario.filter((s) => s.keep > 0), fc.integer({ min: 0, max: 5 }), (s, extra) => {
      const a = new Set(run(s).remove.map((x) => x.release.id));
      const b = selectPrune(s.ordered, { currentId: s.current, keep: s.keep + extra, inUse: s.inUse, writing: s.writing, force: s.force });
      for (const x of b.remove) assert.ok(a.has(x.release.id));
    }),
  );
});

void test('the issue example: five failed deploys after the last good one', () => {
  const ordered: ReleaseFacts[] = [
    { id: 'a', seq: 1, status: 'complete' },
    { id: 'b', seq: 2, status: 'complete' },
    { id: 'c', seq: 3, status: 'complete' },
    ...[4, 5, 6, 7, 8].map((n) => ({ id: `x${n}`, seq: n, status: 'failed' as const })),
  ];
  const d = selectPrune(ordered, { currentId: 'c', keep: 2, inUse: new Map(), force: false });
  assert.deepEqual(d.keep.map((k) => [k.release.id, k.rule]), [['c', 'current'], ['b', 'rollback-target']]);
  assert.deepEqual(d.remove.map((r) => [r.release.id, r.rule]), [['x8', 'failed'], ['x7', 'failed'], ['x6', 'failed'], ['x5', 'failed'], ['x4', 'failed'], ['a', 'older']]);
  assert.match(d.remove[5]?.reason ?? '', /older than the newest 2 good releases/);
});

void test('keep 0 turns pruning off: every release stays, failed ones too', () => {
  fc.assert(
    fc.property(scenario, (s) => {
      const d = run({ ...s, keep: 0 });
      assert.deepEqual(d.remove, []);
      assert.equal(d.keep.length, s.ordered.length);
    }),
  );
  const ordered: ReleaseFacts[] = ['a', 'b', 'c', 'd'].map((id, i) => ({ id, seq: i + 1, status: i === 0 ? 'failed' : 'complete' }));
  const d = selectPrune(ordered, { currentId: 'd', keep: 0 });
  assert.deepEqual(d.keep.map((k) => [k.release.id, k.rule]), [['d', 'current'], ['c', 'rollback-target'], ['b', 'no-limit'], ['a', 'no-limit']]);
});

void test('with force, a release in use is removed and the reason says so', () => {
  const ordered: ReleaseFacts[] = ['a', 'b', 'c'].map((id, i) => ({ id, seq: i + 1, status: 'complete' }));
  const inUse = new Map([['a', 'pid 7 (sleep: working directory)']]);
  assert.deepEqual(selectPrune(ordered, { currentId: 'c', keep: 1, inUse }).keep.map((k) => [k.release.id, k.rule]), [['c', 'current'], ['b', 'rollback-target'], ['a', 'in-use']]);
  const forced = selectPrune(ordered, { currentId: 'c', keep: 1, inUse, force: true });
  assert.equal(forced.remove[0]?.release.id, 'a');
  assert.match(forced.remove[0]?.reason ?? '', /in use by pid 7.*--force/);
});

void test('in-use matching: only paths under a release count, "(deleted)" is stripped, prefixes are not enough', () => {
  const releases = new Map([
    ['r1', '/srv/app/releases/r1'],
    ['r10', '/srv/app/releases/r10'],
  ]);
  const uses: ProcessUse[] = [
    { pid: 10, command: 'sleep', kind: 'cwd', path: '/srv/app/releases/r1' },
    { pid: 11, command: 'node', kind: 'fd', path: '/srv/app/releases/r10/app.js (deleted)' },
    { pid: 11, command: 'node', kind: 'fd', path: '/srv/app/releases/r10/lib.js' },
    { pid: 12, command: 'bash', kind: 'cwd', path: '/srv/app/releases' },
    { pid: 13, command: 'cat', kind: 'fd', path: 'pipe:[1234]' },
  ];
  const found = releasesInUse(uses, releases);
  assert.deepEqual([...found.keys()].sort(), ['r1', 'r10']);
  assert.deepEqual(found.get('r1')?.map((u) => u.pid), [10]);
  assert.equal(describeUses(found.get('r10') ?? []), 'pid 11 (node: 2 open files)');
  assert.equal(describeUses(found.get('r1') ?? []), 'pid 10 (sleep: working directory)');
});

void test('in-use description names at most three processes', () => {
  const uses: ProcessUse[] = [1, 2, 3, 4, 5].map((pid) => ({ pid, command: 'php-fpm', kind: 'cwd', path: '/r' }));
  assert.equal(describeUses(uses), 'pid 1 (php-fpm: working directory), pid 2 (php-fpm: working directory), pid 3 (php-fpm: working directory) and 2 more processes');
});

void test('the release that was live when current was deployed is never removed (after rollback --to an older one; marked failed too)', () => {
  fc.assert(
    fc.property(scenario.filter((s) => s.current !== null && s.ordered.length > 1), fc.nat(), (s, pick) => {
      const others = s.ordered.filter((r) => r.id !== s.current);
      const before = others[pick % others.length] as ReleaseFacts;
      const ordered = s.ordered.map((r) => (r.id === s.current ? { ...r, previous: before.id } : r));
      const d = selectPrune(ordered, { currentId: s.current, keep: s.keep, inUse: s.inUse, writing: s.writing, force: s.force });
      const removed = d.remove.some((x) => x.release.id === before.id);
      assert.ok(!removed, `${before.id} (${before.status ?? 'complete'}), live before ${String(s.current)}, was removed`);
    }),
  );
  // The example: a b c d e deployed, rollback --to b (e marked rolled back), then f deployed from b with keep 1.
  const ordered: ReleaseFacts[] = ['a', 'b', 'c', 'd', 'e', 'f'].map((id, i) => ({ id, seq: i + 1, ...(id === 'e' ? { status: 'rolled-back' as const } : {}), ...(id === 'f' ? { previous: 'b' } : {}) }));
  const d = selectPrune(ordered, { currentId: 'f', keep: 1 });
  assert.deepEqual(d.keep.map((k) => [k.release.id, k.rule]), [['f', 'current'], ['d', 'rollback-target'], ['b', 'live-before']]);
  // r1's health check failed with nothing to roll back to, so it stayed live; r2 was deployed from it.
  const failedLive: ReleaseFacts[] = [{ id: 'r1', seq: 1, status: 'failed' }, { id: 'r2', seq: 2, previous: 'r1' }];
  const k = selectPrune(failedLive, { currentId: 'r2', keep: 5 });
  assert.deepEqual(k.remove, []);
  assert.deepEqual(k.keep.map((x) => [x.release.id, x.rule, x.reason]), [['r2', 'current', 'current'], ['r1', 'live-before', 'live before current (it served, though marked failed)']]);
});

// current removed by hand: neither current nor the rollback target names the release that served last.
void test('with current missing, the release the log says went live last stays, as live before; on a fresh root nothing is kept for it', () => {
  const at = (n: number): string => new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();
  const ordered: ReleaseFacts[] = [
    { id: 'r1', seq: 1, status: 'complete', previous: null, activatedAt: at(40) },
    { id: 'r2', seq: 2, status: 'complete', previous: 'r1', activatedAt: at(20) },
    { id: 'r3', seq: 3, status: 'rolled-back', previous: 'r2', activatedAt: at(30) },
  ];
  const prune = selectPrune(ordered, { currentId: null, keep: 1 });
  assert.deepEqual(prune.keep.find((k) => k.release.id === 'r1')?.rule, 'live-before');
  assert.ok(!prune.remove.some((r) => r.release.id === 'r1'));
  // A deploy that found no live release (r4, previous null): r1 stays for that deploy's prune too.
  const deployed = selectPrune([...ordered, { id: 'r4', seq: 4, status: 'complete', previous: null, createdAt: at(45), activatedAt: at(50) }], { currentId: 'r4', keep: 1 });
  assert.deepEqual(deployed.keep.map((k) => [k.release.id, k.rule]), [['r4', 'current'], ['r2', 'rollback-target'], ['r1', 'live-before']]);
  // The first deploy of a fresh root: nothing else went live, nothing more is kept.
  const fresh = selectPrune([{ id: 'r1', seq: 1, status: 'complete', previous: null, activatedAt: at(1) }], { currentId: 'r1', keep: 1 });
  assert.deepEqual(fresh.keep.map((k) => k.rule), ['current']);
  // A fresh root's first release, rolled back to after r2: r2 went live after r1 was made, so r1's
  // deploy did not find it live; it is the release rolled back from, and nothing keeps it.
  const back = selectPrune(
    [
      { id: 'r1', seq: 1, status: 'complete', previous: null, createdAt: at(1), activatedAt: at(30) },
      { id: 'r2', seq: 2, status: 'rolled-back', previous: 'r1', createdAt: at(10), activatedAt: at(20) },
    ],
    { currentId: 'r1', keep: 1 },
  );
  assert.deepEqual(back.remove.map((r) => [r.release.id, r.rule]), [['r2', 'rolled-back']]);
});
