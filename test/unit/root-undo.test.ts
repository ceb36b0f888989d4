// undoProgram: the undo of a deploy that did not switch never moves out the release current was
// on or its rollback target, touches no release it did not place, and drops the journal last.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { orderReleases, rollbackTarget } from '../../src/plan/releases.ts';
import { effectsOf, type Op } from '../../src/root/effects.ts';
import { undoProgram } from '../../src/root/undo.ts';

const ids = ['r1', 'r2', 'r3', 'r4'];
const input = fc.record({
  present: fc.subarray(ids, { minLength: 1 }),
  id: fc.constantFrom(...ids),
  previous: fc.option(fc.constantFrom(...ids), { nil: null }),
  placed: fc.boolean(),
  recorded: fc.boolean(),
});

/** Ids moved out of releases/ with no refusal before them on their path. */
function unguardedMoves(ops: readonly Op<string>[]): string[] {
  const moved: string[] = [];
  for (const op of ops) {
    if ('fail' in op) return moved;
    if ('if' in op) {
      // Only the then-branch of the `dir` check holds the move; a `current` check's then holds a refusal.
      if (op.if.is === 'dir') moved.push(...unguardedMoves(op.then));
      continue;
    }
    if ('effect' in op && op.effect.do === 'rename' && op.effect.from.startsWith('releases/')) moved.push(op.effect.from.slice('releases/'.length));
  }
  return moved;
}

test('an undo never moves out the release that was current nor its rollback target', () => {
  fc.assert(
    fc.property(input, (u) => {
      const ordered = orderReleases(
        u.present.map((x, i) => (x === u.id && !u.recorded ? { id: x } : { id: x, seq: i + 1, status: 'complete' as const, previous: null })),
        u.previous,
      );
      const program = undoProgram({ id: u.id, placed: u.placed, previous: u.previous, ordered, leftovers: ['.tmp/stage.x'], trash: '.tmp/trash.x' });
      const moved = unguardedMoves(program.ops);
      if (!u.placed) assert.deepEqual(moved, []);
      assert.ok(!moved.includes(u.previous ?? ''), `moved the previous release ${u.previous}`);
      const target = rollbackTarget(ordered, u.previous)?.id;
      // A release of ours without a record is no rollback target: it never went live.
      if (u.recorded) assert.ok(!moved.includes(target ?? ''), `moved the rollback target ${target}`);
    }),
  );
});

test('the journal is removed after the release, its record and manifest, and before the trash is deleted', () => {
  const ordered = orderReleases([{ id: 'r1', seq: 1, status: 'complete' as const, previous: null }, { id: 'r2', seq: 2, status: 'pending' as const, previous: 'r1' }], 'r1');
  const effects = effectsOf(undoProgram({ id: 'r2', placed: true, previous: 'r1', ordered, leftovers: ['.tmp/stage.x'], trash: '.tmp/trash.x' }).ops);
  const at = (pred: (e: (typeof effects)[number]) => boolean): number => effects.findIndex(pred);
  const journal = at((e) => e.do === 'remove' && e.path === '.atomic-deploy/journal.json');
  assert.ok(at((e) => e.do === 'rename' && e.from === 'releases/r2') < journal);
  assert.ok(at((e) => e.do === 'remove' && e.path === '.atomic-deploy/releases/r2.json') < journal);
  assert.ok(at((e) => e.do === 'remove' && e.path === '.atomic-deploy/manifests/r2.json') < journal);
  assert.ok(journal < at((e) => e.do === 'remove' && e.path === '.tmp/trash.x'));
});
