/**
 * Retiring a release, defined once (see effects.ts): prune, the undo of a failed deploy and
 * recovery delete a release only through these steps, on this machine and on a host alike.
 */
import { rollbackTarget, type ReleaseFacts } from '../plan/releases.ts';
import type { Op, RootPath, RootProgram } from './effects.ts';

export function releaseDir(id: string): RootPath {
  return `releases/${id}`;
}

/**
 * The rollback target from `currentId` that removing `id` must spare. A release of ours that never
 * got its record sorts first and would pass for the target: it is left out of the judging.
 */
export function targetSparing(ordered: readonly ReleaseFacts[], currentId: string | null, id: string): string | undefined {
  return rollbackTarget(ordered.filter((r) => r.id !== id || r.seq !== undefined), currentId)?.id;
}

function parentOf(p: RootPath): RootPath {
  const slash = p.lastIndexOf('/');
  return slash === -1 ? '.' : p.slice(0, slash);
}

/**
 * Moves releases/<id> to `trash` (a fresh name, in `.tmp/` or hidden in `releases/` when that is
 * another mount), refusing current and the protected releases. Nothing happens when it is gone.
 * current is judged at the last moment, right before the rename, under the lock.
 */
export function retireOps(id: string, protect: readonly string[], trash: RootPath): Op<never>[] {
  const refuse = (why: string): Op<never> => ({ fail: 'INTERNAL', message: `refusing to delete release ${id}: it is ${why}` });
  return [
    {
      if: { is: 'dir', path: releaseDir(id) },
      then: [
        { if: { is: 'current', id }, then: [refuse('current')] },
        ...(protect.includes(id) ? [refuse('protected')] : []),
        { effect: { do: 'mkdir', path: parentOf(trash), parents: true } },
        { effect: { do: 'rename', from: releaseDir(id), to: trash, readOnlyDir: true } },
        // The move out of releases/ reaches the disk before any record says the release is gone.
        { effect: { do: 'durable', path: 'releases' } },
      ],
    },
  ];
}

/** retireOps as a program of its own: `moved` (trash holds it now, to be deleted) or `absent`. */
export function retireRelease(id: string, protect: readonly string[], trash: RootPath): RootProgram<'moved' | 'absent'> {
  return {
    name: 'retire_release',
    ops: [{ if: { is: 'dir', path: releaseDir(id) }, then: [], else: [{ end: 'absent' }] }, ...retireOps(id, protect, trash)],
    done: 'moved',
  };
}
