/**
 * The undo of a deploy that did not switch, as one root program (see effects.ts): the local
 * engine and every fleet host clean up the same way, whichever side the deploy failed on.
 */
import type { ReleaseFacts } from '../plan/releases.ts';
import type { Op, RootPath, RootProgram } from './effects.ts';
import { JOURNAL_PATH, recordPath } from './recover.ts';
import { retireOps, targetSparing } from './release.ts';

export interface UndoInput {
  id: string;
  /** Whether this deploy placed releases/<id> itself: a release it did not place is never touched. */
  placed: boolean;
  /** The release current pointed to when the deploy began (null: none). */
  previous: string | null;
  /** Releases oldest first (orderReleases), for the rollback target the undo must spare. */
  ordered: readonly ReleaseFacts[];
  /** Staging copies and temp links the deploy made (root-relative). */
  leftovers: readonly RootPath[];
  /** A fresh root-relative trash path for the release. */
  trash: RootPath;
}

/** The releases an undo must never remove: the one current was on, and its rollback target. */
export function undoProtects(input: Pick<UndoInput, 'id' | 'previous' | 'ordered'>): string[] {
  return [input.previous, targetSparing(input.ordered, input.previous, input.id)].filter((x): x is string => typeof x === 'string');
}

export function undoProgram(input: UndoInput): RootProgram<'undone'> {
  // Best effort: a leftover that cannot go now (an immutable directory) is only ours, and the next recovery sweeps it.
  const ops: Op<never>[] = input.leftovers.map((p) => ({ effect: { do: 'remove', path: p }, bestEffort: true }));
  if (input.placed) ops.push(...retireOps(input.id, undoProtects(input), input.trash));
  ops.push(
    { effect: { do: 'remove', path: recordPath(input.id) } },
    { effect: { do: 'remove', path: `.atomic-deploy/manifests/${input.id}.json` } },
    { effect: { do: 'remove', path: `.atomic-deploy/manifests/${input.id}.stat.json` } },
    // The journal goes last: until then a crash leaves it for the next command's recovery to finish this undo.
    { effect: { do: 'remove', path: JOURNAL_PATH } },
    { effect: { do: 'durable', path: '.atomic-deploy' } },
    { effect: { do: 'durable', path: '.' } },
  );
  if (input.placed) ops.push({ effect: { do: 'remove', path: input.trash } });
  return { name: 'undo_deploy', ops, done: 'undone' };
}
