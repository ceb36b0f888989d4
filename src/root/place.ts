/**
 * Placing a finished release, defined once (see effects.ts): its manifest stored, the stage renamed
 * to releases/<id>, the pending record and the `ready` journal written. The local engine runs it
 * after filling its stage; a fleet host runs it rendered, after rsync filled the stage there.
 */
import type { Op, RootPath, RootProgram } from './effects.ts';
import { JOURNAL_PATH, recordPath } from './recover.ts';
import { releaseDir } from './release.ts';

export function manifestPath(id: string): RootPath {
  return `.atomic-deploy/manifests/${id}.json`;
}

export interface PlaceInput {
  id: string;
  /** The finished tree (root-relative), on the mount of releases/: `.tmp/...`, or hidden inside releases/. */
  stage: RootPath;
  /**
   * A manifest file staged with the tree (a fleet host's, sent by rsync), stored as the release's
   * manifest. The local engine writes its own from memory, hashing as it writes, before this runs.
   */
  manifest?: RootPath;
  /** What is left of the stage once the tree is out of it (a fleet host's stage directory). */
  leftover?: RootPath;
  /** The release's record, status pending. */
  record: string;
  /** The journal, phase `ready`. */
  journal: string;
}

export function placeRelease(input: PlaceInput): RootProgram<'placed'> {
  const ops: Op<never>[] = [
    // rename(2) would silently replace an empty directory: an id that exists is refused, never taken over.
    { if: { is: 'dir', path: releaseDir(input.id) }, then: [{ fail: 'RELEASE_EXISTS', message: `release ${input.id} already exists in releases/` }] },
    { effect: { do: 'mkdir', path: 'releases', parents: true, reachable: true } },
  ];
  // Before the rename: a release in releases/ never lacks its manifest (verify and the next deploy's links trust it).
  if (input.manifest !== undefined) ops.push({ effect: { do: 'copy', from: input.manifest, to: manifestPath(input.id) } }, { effect: { do: 'durable', path: '.atomic-deploy/manifests' } });
  ops.push(
    // Readable by others only now, once whole: the release directory is on the way to every file
    // served, whatever the build's top directory allowed (rsync gives a fleet host's stage that mode).
    { effect: { do: 'open-dir', path: input.stage } },
    // One rename(2): the stage is on the mount of releases/, so a partial tree never sits there.
    { effect: { do: 'rename', from: input.stage, to: releaseDir(input.id), readOnlyDir: true } },
    // The release's name reaches the disk before any record or journal says it is there.
    { effect: { do: 'durable', path: 'releases' } },
  );
  // Best effort: only ours, and the next recovery removes a stage leftover.
  if (input.leftover !== undefined) ops.push({ effect: { do: 'remove', path: input.leftover }, bestEffort: true });
  ops.push(
    { effect: { do: 'write', path: recordPath(input.id), text: input.record } },
    // The journal last: `ready` says the release, its manifest and its record are all on disk.
    { effect: { do: 'write', path: JOURNAL_PATH, text: input.journal } },
    { effect: { do: 'durable', path: '.atomic-deploy' } },
  );
  return { name: 'place_release', ops, done: 'placed' };
}
