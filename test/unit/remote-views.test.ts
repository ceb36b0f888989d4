// A fleet host's releases, as the deploying machine orders them: the host sends its whole release
// log, so a pruned first release still tells that the root was made by us.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { rollbackTarget, selectPrune } from '../../src/plan/releases.ts';
import type { RemoteRecord, RemoteState } from '../../src/remote/facts.ts';
import { planFleetRecovery } from '../../src/plan/fleet.ts';
import { recoveryInput, viewsOf } from '../../src/remote/fleet.ts';

function record(id: string, seq: number, previous: string | null): RemoteRecord {
  return { id, seq, previous, status: 'complete', createdAt: '', user: 'u', host: 'h', source: 's', files: 1, bytes: 1, durationMs: 1 };
}

function host(records: RemoteRecord[], releases: string[], current: string): RemoteState {
  return {
    rootExists: true,
    current: { kind: 'release', id: current, target: `releases/${current}` },
    releases,
    records: new Map(records.map((r) => [r.id, r])),
    journal: { kind: 'none' },
    tmp: [],
    lock: null,
  };
}

void test('a host whose first release was pruned: a folder put in releases/ by hand is neither pruned nor a rollback target', () => {
  const records = [record('r1', 1, null), record('r2', 2, 'r1'), record('r3', 3, 'r2')];
  const views = viewsOf(host(records, ['backup-old', 'r2', 'r3'], 'r3'));
  assert.equal(rollbackTarget(views, 'r3')?.id, 'r2');
  assert.equal(rollbackTarget(views, 'r2'), undefined);
  const d = selectPrune(views, { currentId: 'r3', keep: 1 });
  assert.deepEqual(d.remove, []);
  assert.deepEqual(d.keep.map((k) => [k.release.id, k.rule]), [['r3', 'current'], ['r2', 'rollback-target'], ['backup-old', 'never-served']]);
});

void test('a host taken over from another tool: its releases are history, pruned by age as before', () => {
  const views = viewsOf(host([record('12', 1, '11')], ['9', '10', '11', '12'], '12'));
  const d = selectPrune(views, { currentId: '12', keep: 2 });
  assert.deepEqual(d.remove.map((x) => x.release.id), ['10', '9']);
});

// The local rule on a host: a deploy journal whose release switched (its record says so) and is
// not current any more keeps it; one whose record is still pending is removed as never switched.
void test('host recovery keeps a release its record says went live when current moved on, and removes a pending one', () => {
  const journal = { v: 1 as const, op: 'deploy' as const, token: 't', pid: 1, startedAt: '', release: 'r3', previous: 'r2', phase: 'ready' as const };
  for (const [status, kept] of [['complete', true], ['pending', false]] as const) {
    const state = host([record('r1', 1, null), record('r2', 2, 'r1'), { ...record('r3', 3, 'r2'), status }], ['r1', 'r2', 'r3'], 'r2');
    state.journal = { kind: 'ok', journal };
    const [actions] = planFleetRecovery([recoveryInput(state)]);
    const kinds = (actions ?? []).map((a) => a.kind);
    assert.deepEqual(kinds, kept ? ['keep-release', 'clear-journal'] : ['remove-release', 'clear-journal'], status);
  }
});
