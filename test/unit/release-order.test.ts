// Release order: ours by the release log's sequence, foreign ones (made by other tools, no log
// record) by a numeric-aware comparison of their names, and a foreign release that was live is
// never sorted as the oldest.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compareReleaseIds } from '../../src/plan/release-id.ts';
import { orderReleases, rollbackTarget, selectPrune, type ReleaseFacts } from '../../src/plan/releases.ts';

const ids = (list: readonly ReleaseFacts[]): string[] => list.map((r) => r.id);

void test("Deployer's numbered releases sort by number: 9, 10, 11", () => {
  assert.deepEqual(['11', '9', '10', '100', '2'].sort(compareReleaseIds), ['2', '9', '10', '11', '100']);
  assert.deepEqual(ids(orderReleases([{ id: '10' }, { id: '11' }, { id: '9' }])), ['9', '10', '11']);
});

void test('version names sort by their numbers: v1.9 before v1.10, v1.10 before v2', () => {
  assert.deepEqual(['v2.0', 'v1.10', 'v1.9', 'v1.9.1', 'v10'].sort(compareReleaseIds), ['v1.9', 'v1.9.1', 'v1.10', 'v2.0', 'v10']);
  assert.deepEqual(['release-10', 'release-9', 'release-9a'].sort(compareReleaseIds), ['release-9', 'release-9a', 'release-10']);
});

void test('the issue: deploying 12 over Deployer releases 9, 10, 11 with --keep 2 keeps 11 and 12; rollback goes to 11', () => {
  const ordered = orderReleases([{ id: '9' }, { id: '10' }, { id: '11' }, { id: '12', seq: 1, status: 'complete', previous: '11' }], '12');
  assert.deepEqual(ids(ordered), ['9', '10', '11', '12']);
  assert.equal(rollbackTarget(ordered, '12')?.id, '11');
  const d = selectPrune(ordered, { currentId: '12', keep: 2 });
  assert.deepEqual(d.remove.map((x) => x.release.id).sort(), ['10', '9']);
});

void test('a foreign release that was live before our deploy sits right before it, whatever its name', () => {
  // Ours a, b; another tool then made "aaa" live; our next deploy c replaced it.
  const ordered = orderReleases(
    [
      { id: 'a', seq: 1, status: 'complete', previous: null },
      { id: 'aaa' },
      { id: 'b', seq: 2, status: 'complete', previous: 'a' },
      { id: 'c', seq: 3, status: 'complete', previous: 'aaa' },
      { id: '0-old' },
    ],
    'c',
  );
  assert.deepEqual(ids(ordered), ['0-old', 'a', 'b', 'aaa', 'c']);
  assert.equal(rollbackTarget(ordered, 'c')?.id, 'aaa');
});

void test('a foreign release that is current is the newest, not the oldest', () => {
  const ordered = orderReleases([{ id: 'z', seq: 1, status: 'complete', previous: null }, { id: '1' }, { id: '0' }], '0');
  assert.deepEqual(ids(ordered), ['1', 'z', '0']);
  assert.equal(rollbackTarget(ordered, '0')?.id, 'z');
});

void test('a plain rollback never goes to a directory without a record that was never live: a root we made fresh', () => {
  // Our first deploy found no live release (previous: null): "backup-old" and "0-old" were put in
  // releases/ by hand later (a backup copy, an unpacked tarball); only `--to` goes there.
  const fresh = orderReleases(
    [
      { id: 'a', seq: 1, status: 'complete', previous: null },
      { id: 'b', seq: 2, status: 'complete', previous: 'a' },
      { id: 'backup-old' },
      { id: '0-old' },
    ],
    'a',
  );
  assert.equal(rollbackTarget(fresh, 'b')?.id, 'a');
  assert.equal(rollbackTarget(fresh, 'a'), undefined);
  // A foreign release our log names as once live stays a target in such a root.
  const named = orderReleases(
    [
      { id: 'a', seq: 1, status: 'complete', previous: null },
      { id: 'aaa' },
      { id: 'c', seq: 2, status: 'complete', previous: 'aaa' },
      { id: 'zzz' },
    ],
    'c',
  );
  assert.equal(rollbackTarget(named, 'c')?.id, 'aaa');
  assert.equal(rollbackTarget(named, 'aaa')?.id, 'a');
  // One we switched to (`rollback --to` gave it a record, without a sequence number) has served.
  const switched = orderReleases(
    [
      { id: 'a', seq: 1, status: 'complete', previous: null },
      { id: 'b', seq: 2, status: 'complete', previous: 'a' },
      { id: 'a.bak', status: 'complete', previous: null },
      { id: 'backup-old' },
    ],
    'a',
  );
  assert.equal(rollbackTarget(switched, 'a')?.id, 'a.bak');
  // A root taken over (our first deploy replaced a live release) or with no log at all: the other
  // tool's releases are its history, in name order, as before.
  const taken = orderReleases([{ id: '9' }, { id: '10' }, { id: '11' }, { id: '12', seq: 1, status: 'complete', previous: '11' }], '11');
  assert.equal(rollbackTarget(taken, '11')?.id, '10');
  assert.equal(rollbackTarget(orderReleases([{ id: '9' }, { id: '10' }], '10'), '10')?.id, '9');
});

void test('prune leaves a directory put in releases/ by hand in a root we made fresh, and it does not count towards keep', () => {
  // The helper's finding: `backup-old` (a dump.sql in it), `20200101` and `a.bak` sat beside our
  // releases; the default keep removed them as older releases and counted them as good ones.
  const ordered = orderReleases(
    [
      { id: 'a', seq: 1, status: 'complete', previous: null },
      { id: 'b', seq: 2, status: 'complete', previous: 'a' },
      { id: 'c', seq: 3, status: 'complete', previous: 'b' },
      { id: 'backup-old' },
      { id: '20200101' },
      { id: 'a.bak' },
    ],
    'c',
  );
  const d = selectPrune(ordered, { currentId: 'c', keep: 2 });
  assert.deepEqual(d.remove.map((x) => x.release.id), ['a']);
  const byId = new Map(d.keep.map((k) => [k.release.id, k.rule]));
  for (const id of ['backup-old', '20200101', 'a.bak']) assert.equal(byId.get(id), 'never-served', id);
  assert.equal(byId.get('b'), 'rollback-target');
  // keep 3 keeps all of ours: the three hand-made folders do not take places among the newest.
  assert.deepEqual(selectPrune(ordered, { currentId: 'c', keep: 3 }).remove, []);
  // Once the first release (previous: null) is pruned, the reader marks the views from its record.
  const later = orderReleases(
    [
      { id: 'b', seq: 2, status: 'complete', previous: 'a', rootMadeByUs: true },
      { id: 'c', seq: 3, status: 'complete', previous: 'b', rootMadeByUs: true },
      { id: 'backup-old', rootMadeByUs: true },
    ],
    'b',
  );
  assert.equal(rollbackTarget(later, 'b'), undefined);
  assert.deepEqual(selectPrune(later, { currentId: 'c', keep: 1 }).keep.map((k) => k.rule), ['current', 'rollback-target', 'never-served']);
  // In a root taken over from another tool, its releases are history and age out as before.
  const taken = orderReleases([{ id: '9' }, { id: '10' }, { id: '11' }, { id: '12', seq: 1, status: 'complete', previous: '11' }], '12');
  assert.deepEqual(selectPrune(taken, { currentId: '12', keep: 2 }).remove.map((x) => x.release.id), ['10', '9']);
  // One we once switched to (rollback --to gave it a record) is a release like any other.
  const switched = orderReleases(
    [
      { id: 'a', seq: 1, status: 'complete', previous: null },
      { id: 'a.bak', status: 'complete', previous: 'a' },
      { id: 'b', seq: 2, status: 'complete', previous: 'a.bak' },
      { id: 'c', seq: 3, status: 'complete', previous: 'b' },
    ],
    'c',
  );
  assert.deepEqual(selectPrune(switched, { currentId: 'c', keep: 2 }).remove.map((x) => x.release.id).sort(), ['a', 'a.bak']);
});

const idArb = fc.oneof(
  fc.nat({ max: 200 }).map(String),
  fc.tuple(fc.nat({ max: 12 }), fc.nat({ max: 12 })).map(([a, b]) => `v${a}.${b}`),
  fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,6}$/),
);

/** A root: unique ids, some ours (with seq and the release live before each), some foreign, and a current. */
const rootArb = fc
  .record({
    names: fc.uniqueArray(idArb, { minLength: 1, maxLength: 12 }),
    oursMask: fc.array(fc.boolean(), { minLength: 12, maxLength: 12 }),
    previousPicks: fc.array(fc.option(fc.nat()), { minLength: 12, maxLength: 12 }),
    currentPick: fc.nat(),
  })
  .map(({ names, oursMask, previousPicks, currentPick }) => {
    let seq = 0;
    const releases: ReleaseFacts[] = names.map((id, i) => {
      if (!oursMask[i]) return { id };
      seq += 1;
      const pick = previousPicks[i];
      const previous = pick === null || pick === undefined ? null : (names[pick % names.length] as string);
      return { id, seq, status: 'complete' as const, previous: previous === id ? null : previous };
    });
    const currentId = (names[currentPick % names.length] as string);
    return { releases, currentId };
  });

void test('property: order is a permutation, ours keep their sequence, foreign ones keep numeric-aware name order among themselves unless anchored', () => {
  fc.assert(
    fc.property(rootArb, ({ releases, currentId }) => {
      const ordered = orderReleases(releases, currentId);
      assert.deepEqual(ids(ordered).sort(), ids(releases).sort());
      const ours = ordered.filter((r) => r.seq !== undefined);
      for (let i = 1; i < ours.length; i++) assert.ok((ours[i - 1]?.seq ?? 0) < (ours[i]?.seq ?? 0));
      // Input order never matters.
      assert.deepEqual(ids(orderReleases([...releases].reverse(), currentId)), ids(ordered));
    }),
  );
});

void test('property: a foreign release named as the live one before our deploy is directly before the first such deploy', () => {
  fc.assert(
    fc.property(rootArb, ({ releases, currentId }) => {
      const ordered = orderReleases(releases, currentId);
      const foreign = new Set(releases.filter((r) => r.seq === undefined).map((r) => r.id));
      const seen = new Set<string>();
      ordered.forEach((r, i) => {
        if (r.seq !== undefined && typeof r.previous === 'string' && foreign.has(r.previous) && !seen.has(r.previous)) {
          assert.equal(ordered[i - 1]?.id, r.previous, `${r.previous} should be right before ${r.id}: ${ids(ordered).join(' ')}`);
        }
        if (typeof r.previous === 'string') seen.add(r.previous);
      });
    }),
  );
});

void test('property: current is never the oldest of two or more, unless a deploy of ours names it as the release it replaced', () => {
  fc.assert(
    fc.property(rootArb, ({ releases, currentId }) => {
      const ordered = orderReleases(releases, currentId);
      const replaced = releases.some((r) => r.previous === currentId);
      const isOurs = releases.some((r) => r.id === currentId && r.seq !== undefined);
      if (ordered.length >= 2 && !replaced && !isOurs) assert.notEqual(ordered[0]?.id, currentId);
    }),
  );
});

void test('property: prune never removes current or the rollback target, whatever the names', () => {
  fc.assert(
    fc.property(rootArb, fc.nat({ max: 4 }), ({ releases, currentId }, keep) => {
      const ordered = orderReleases(releases, currentId);
      const d = selectPrune(ordered, { currentId, keep });
      const removed = new Set(d.remove.map((x) => x.release.id));
      assert.ok(!removed.has(currentId));
      const target = rollbackTarget(ordered, currentId);
      if (target) assert.ok(!removed.has(target.id));
    }),
  );
});

void test('property: in a root our log began fresh, prune never removes a directory without a record that never served', () => {
  fc.assert(
    fc.property(rootArb, fc.nat({ max: 4 }), ({ releases, currentId }, keep) => {
      const ordered = orderReleases(releases, currentId);
      const fresh = releases.some((r) => r.seq !== undefined && r.previous === null);
      const named = new Set(releases.map((r) => r.previous));
      const removed = selectPrune(ordered, { currentId, keep }).remove.map((x) => x.release);
      for (const r of removed) assert.ok(r.seq !== undefined || !fresh || named.has(r.id), `${r.id} was never served`);
    }),
  );
});

void test('a taken-over root with current on an older release: what sorts after it (the old tool rolled back from it) is older than the way back', () => {
  const ordered = orderReleases([{ id: '20240101120000' }, { id: '20240201120000' }, { id: '20240301120000' }], '20240201120000');
  assert.deepEqual(ids(ordered), ['20240301120000', '20240101120000', '20240201120000']);
  assert.equal(rollbackTarget(ordered, '20240201120000')?.id, '20240101120000');
  assert.deepEqual(selectPrune(ordered, { currentId: '20240201120000', keep: 2 }).remove.map((x) => x.release.id), ['20240301120000']);
  // Deployer numbers alike: current 10, rolled back from 11.
  assert.equal(rollbackTarget(orderReleases([{ id: '9' }, { id: '10' }, { id: '11' }], '10'), '10')?.id, '9');
});

void test('a folder whose name no release id can have, or (among timestamp releases) no timestamp, is never served: never a target, never pruned', () => {
  for (const odd of ['lost+found', 'backup', 'old copy']) {
    const ordered = orderReleases([{ id: '20240101120000' }, { id: odd }, { id: '20240201120000' }], '20240201120000');
    assert.equal(rollbackTarget(ordered, '20240201120000')?.id, '20240101120000', odd);
    const d = selectPrune(ordered, { currentId: '20240201120000', keep: 1 });
    assert.deepEqual(d.keep.filter((k) => k.release.id === odd).map((k) => k.rule), ['never-served'], odd);
  }
  // Without timestamp releases (Deployer's numbers, tags) a plain name is a release as before; lost+found never is.
  const tags = orderReleases([{ id: 'v1' }, { id: 'lost+found' }, { id: 'v2' }, { id: 'v3' }], 'v3');
  assert.equal(rollbackTarget(tags, 'v3')?.id, 'v2');
  assert.equal(rollbackTarget(tags, 'v2')?.id, 'v1');
  assert.deepEqual(selectPrune(tags, { currentId: 'v3', keep: 1 }).remove.map((x) => x.release.id), ['v1']);
});
