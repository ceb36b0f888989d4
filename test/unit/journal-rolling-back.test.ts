// Recovery of a deploy that was switching back after a failed health check when it crashed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { planRecovery, type Journal, type RecoveryAction } from '../../src/plan/journal.ts';

const journal = (over: Partial<Extract<Journal, { op: 'deploy' }>> = {}): Journal => ({
  v: 1,
  op: 'deploy',
  token: 't',
  pid: 1,
  startedAt: '2026-11-27T00:00:00Z',
  release: 'new',
  previous: 'old',
  phase: 'rolling-back',
  reason: 'health check failed: GET /health returned 404',
  ...over,
});

void test('crash after the switch back: the failed release is marked failed, never removed', () => {
  const actions = planRecovery(journal(), { currentId: 'old', releaseExists: true, tmpEntries: [] });
  assert.deepEqual(actions, [
    { kind: 'mark-failed', id: 'new', reason: 'health check failed: GET /health returned 404', to: 'old' },
    { kind: 'clear-journal' },
  ]);
});

void test('crash before the switch back: still live, marked failed, current left alone', () => {
  const actions = planRecovery(journal(), { currentId: 'new', releaseExists: true, tmpEntries: ['current.abc'] });
  assert.deepEqual(actions, [
    { kind: 'remove-tmp', name: 'current.abc' },
    { kind: 'mark-failed', id: 'new', reason: 'health check failed: GET /health returned 404', live: true },
    { kind: 'clear-journal' },
  ]);
});

void test('a rolling-back journal whose release is gone only clears the journal', () => {
  assert.deepEqual(planRecovery(journal(), { currentId: 'old', releaseExists: false, tmpEntries: [] }), [{ kind: 'clear-journal' }]);
});

void test('property: a rolling-back journal never removes a release and never touches current', () => {
  fc.assert(
    fc.property(
      fc.constantFrom('old', 'new', 'other', null),
      fc.boolean(),
      fc.option(fc.constant('old'), { nil: null }),
      fc.option(fc.string(), { nil: undefined }),
      (currentId, releaseExists, previous, reason) => {
        const actions: RecoveryAction[] = planRecovery(journal({ previous, reason }), { currentId, releaseExists, tmpEntries: [] });
        assert.ok(actions.every((a) => a.kind !== 'remove-release'));
        assert.equal(actions.at(-1)?.kind, 'clear-journal');
        const marks = actions.filter((a) => a.kind === 'mark-failed');
        if (currentId === 'new' || releaseExists) assert.equal(marks.length, 1);
        for (const mark of marks) {
          assert.equal(mark.id, 'new');
          assert.equal(mark.live === true, currentId === 'new');
          if (mark.to !== undefined) assert.equal(mark.to, currentId);
        }
      },
    ),
    { numRuns: 300 },
  );
});
