// recoveryProgram: the one description of recovery's steps. Whatever the journal and the root,
// it only touches the root's own names, moves a release out only after judging current at that
// moment, spares the rollback target, and deletes trash only once the journal is gone.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { planRecovery, type Journal } from '../../src/plan/journal.ts';
import { planFleetRecovery } from '../../src/plan/fleet.ts';
import { orderReleases, rollbackTarget } from '../../src/plan/releases.ts';
import { effectsOf, pathsTouched, type Op } from '../../src/root/effects.ts';
import { afterRecovery, recoveryProgram } from '../../src/root/recover.ts';
import type { ReleaseRecord } from '../../src/act/state.ts';
import { renderFunction } from '../../src/root/sh.ts';

const ids = ['r1', 'r2', 'r3', 'r4'] as const;
const id = fc.constantFrom(...ids);
const journal: fc.Arbitrary<Journal> = fc.oneof(
  fc.record({
    v: fc.constant(1 as const),
    op: fc.constant('deploy' as const),
    token: fc.constant('t'),
    pid: fc.constant(1),
    startedAt: fc.constant('2026-11-27T10:00:00Z'),
    release: id,
    previous: fc.option(id, { nil: null }),
    phase: fc.constantFrom('copying' as const, 'ready' as const, 'switched' as const, 'rolling-back' as const),
  }),
  fc.record({
    v: fc.constant(1 as const),
    op: fc.constant('rollback' as const),
    token: fc.constant('t'),
    pid: fc.constant(1),
    startedAt: fc.constant('2026-11-27T10:00:00Z'),
    release: id,
    previous: id,
    phase: fc.constantFrom('switching' as const, 'switched' as const),
  }),
);
const root = fc.record({
  journal: fc.option(journal, { nil: null }),
  present: fc.subarray([...ids]),
  currentId: fc.option(id, { nil: null }),
  tmp: fc.subarray(['stage.a', 'current.b', 'trash.c', 'lock.d', 'keep']),
});

interface RootShape {
  journal: Journal | null;
  present: string[];
  currentId: string | null;
  tmp: string[];
}

function programOf(r: RootShape) {
  const ordered = orderReleases(
    r.present.map((x, i) => ({ id: x, seq: i + 1, status: 'complete' as const, previous: null })),
    r.currentId,
  );
  const actions = planRecovery(r.journal, { currentId: r.currentId, releaseExists: r.journal ? r.present.includes(r.journal.release) : false, tmpEntries: r.tmp });
  let n = 0;
  const program = recoveryProgram({ actions, records: new Map(), ordered, currentId: r.currentId, trashFor: (x) => `.tmp/trash.${x}.${n++}`, linkName: () => `current.${n++}`, now: '2026-12-01T00:00:00Z' });
  return { program, ordered, actions };
}

/** Each reachable rename out of releases/, with the ops that come before it on its path (the guards). */
function retirements(ops: readonly Op<string>[], before: readonly Op<string>[] = []): { id: string; guards: readonly Op<string>[] }[] {
  const found: { id: string; guards: readonly Op<string>[] }[] = [];
  ops.forEach((op, i) => {
    const prior = [...before, ...ops.slice(0, i)];
    if ('if' in op) found.push(...retirements(op.then, prior), ...retirements(op.else ?? [], prior));
    // A refusal standing before the rename in its block means it never runs.
    else if ('effect' in op && op.effect.do === 'rename' && op.effect.from.startsWith('releases/') && !prior.some((p) => 'fail' in p)) found.push({ id: op.effect.from.slice('releases/'.length), guards: prior });
  });
  return found;
}

test('recovery touches only the root\'s own names: .tmp/, releases/<id>, the state directory and current', () => {
  fc.assert(
    fc.property(root, (r) => {
      for (const p of effectsOf(programOf(r).program.ops).flatMap(pathsTouched)) {
        assert.ok(!p.split('/').includes('..'), p);
        assert.match(p, /^(\.|current|releases|\.tmp|releases\/r\d|\.tmp\/[^/]+|\.atomic-deploy|\.atomic-deploy\/journal\.json|\.atomic-deploy\/(releases|manifests)\/r\d(\.stat)?\.json)$/);
      }
    }),
  );
});

test('a release leaves releases/ only after a check of current in the same block, and never the rollback target', () => {
  fc.assert(
    fc.property(root, (r) => {
      const { program, ordered } = programOf(r);
      for (const { id: gone, guards } of retirements(program.ops)) {
        assert.ok(guards.some((g) => 'if' in g && g.if.is === 'current' && g.if.id === gone && g.then.some((t) => 'fail' in t)), `no current check before moving ${gone}`);
        assert.notEqual(gone, rollbackTarget(ordered, r.currentId)?.id, 'the rollback target was moved out');
      }
    }),
  );
});

test('trash is deleted only after the journal is removed and the root made durable', () => {
  fc.assert(
    fc.property(root, (r) => {
      const effects = effectsOf(programOf(r).program.ops);
      const journalGone = effects.findIndex((e) => e.do === 'remove' && e.path === '.atomic-deploy/journal.json');
      const lastDurable = effects.findLastIndex((e) => e.do === 'durable' && e.path === '.');
      effects.forEach((e, i) => {
        if (e.do !== 'remove' || !e.path.startsWith('.tmp/trash.r')) return;
        assert.ok(journalGone !== -1 && journalGone < i && lastDurable < i, `trash ${e.path} deleted at ${i}, journal at ${journalGone}`);
      });
    }),
  );
});

test('rendered, the current check comes before the rename and a refusal fails the program', () => {
  const { program } = programOf({ journal: { v: 1, op: 'deploy', token: 't', pid: 1, startedAt: '', release: 'r3', previous: 'r2', phase: 'ready' }, present: ['r1', 'r2', 'r3'], currentId: 'r2', tmp: [] });
  const text = renderFunction(program);
  assert.ok(text.indexOf("is_current 'r3'") !== -1 && text.indexOf("is_current 'r3'") < text.indexOf('rename_dir'), text);
  assert.match(text, /fail INTERNAL 'refusing to delete release r3: it is current'/);
});

// The dry runs plan from afterRecovery (what recovery leaves of the log, the releases and current),
// recovery itself runs recoveryProgram: the two must agree on every record, release and switch,
// for the plans recovery makes (a fleet deploy's abandoned journal switches a host back).
void test('property: afterRecovery leaves exactly the records, releases and current that recoveryProgram writes', () => {
  const status = fc.constantFrom('pending' as const, 'complete' as const, 'failed' as const, 'rolled-back' as const);
  fc.assert(
    // A journal's release is never its previous (a deploy makes a new id; a rollback to the live release is refused).
    fc.property(root.filter((x) => x.journal === null || x.journal.previous !== x.journal.release), fc.array(status, { minLength: 4, maxLength: 4 }), fc.boolean(), fc.boolean(), (r, statuses, fleetJournal, abandoned) => {
      const present: string[] = [...r.present];
      const records = new Map<string, ReleaseRecord>(present.map((x, i) => [x, { id: x, seq: i + 1, status: statuses[i] ?? 'complete', createdAt: 'c', user: 'u', host: 'h', source: 's', files: 1, bytes: 1, durationMs: 1, previous: null }]));
      const ordered = orderReleases(present.map((x, i) => ({ id: x, seq: i + 1, status: statuses[i] ?? 'complete', previous: null })), r.currentId);
      const journal = r.journal && fleetJournal && r.journal.op === 'deploy' ? { ...r.journal, fleet: { token: 'f' } } : r.journal;
      const facts = { currentId: r.currentId, releaseExists: journal ? present.includes(journal.release) : false, tmpEntries: r.tmp };
      const actions = planFleetRecovery([{ journal, facts, abandonedTokens: abandoned ? ['f'] : [] }])[0] ?? [];
      const now = '2026-12-01T00:00:00Z';
      let n = 0;
      const program = recoveryProgram({ actions, records, ordered, currentId: r.currentId, trashFor: (x) => `.tmp/trash.${x}.${n++}`, linkName: () => `current.${n++}`, now });
      const after = afterRecovery({ actions, records, releases: present, currentId: r.currentId, now });
      // What the program leaves: each record as last written (or removed), and current as last switched.
      const written = new Map(records);
      let current: string | null = r.currentId;
      for (const e of effectsOf(program.ops)) {
        const m = /^\.atomic-deploy\/releases\/(.+)\.json$/.exec('path' in e ? String(e.path) : '');
        if (e.do === 'write' && m?.[1] && typeof e.text === 'string') written.set(m[1], JSON.parse(e.text) as ReleaseRecord);
        if (e.do === 'remove' && m?.[1]) written.delete(m[1]);
        if (e.do === 'switch') current = e.to;
      }
      assert.deepEqual(after.records, written);
      assert.equal(after.currentId, current);
      const removed = actions.flatMap((a) => (a.kind === 'remove-release' ? [a.id] : []));
      assert.deepEqual(after.releases, present.filter((x) => !removed.includes(x)));
    }),
    { numRuns: 500 },
  );
});
