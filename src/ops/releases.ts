import type { ReleaseRecord } from '../act/state.ts';
import { readCurrent } from '../act/switch.ts';
import { IGNORED_REASON, ignoredEntry, rollbackTarget, roleOf, type ReleaseRole } from '../plan/releases.ts';
import { releaseViews } from './recover.ts';
import { openRoot } from './root.ts';

export interface ReleaseInfo {
  id: string;
  current: boolean;
  role: ReleaseRole;
  record?: ReleaseRecord;
  /** Its log record is there but damaged (why): listed, ordered and rolled back to as one without. */
  recordDamaged?: string;
}

export interface ReleasesResult {
  current: string | null;
  /** Newest first. */
  releases: ReleaseInfo[];
  /** Directories of releases/ that are no release (a name no release id can have: `lost+found`), with why; absent when none. */
  ignored?: { id: string; reason: string }[];
}

/** Lists the releases of a root, newest first, current marked. Reads only. */
export async function listReleases(root: string): Promise<ReleasesResult> {
  const layout = openRoot(root, { mayCreate: false });
  const state = await readCurrent(layout);
  const currentId = state.kind === 'release' ? state.id : null;
  const views = await releaseViews(layout);
  const previous = rollbackTarget(views, currentId);
  const ignored = views.filter((v) => ignoredEntry(v, currentId));
  const listed = views.filter((v) => !ignored.includes(v));
  return {
    current: currentId,
    ...(ignored.length > 0 ? { ignored: ignored.map((v) => ({ id: v.id, reason: IGNORED_REASON })) } : {}),
    releases: listed.reverse().map((v) => ({ id: v.id, current: v.id === currentId, role: roleOf(v, currentId, previous?.id), record: v.record, ...(v.recordDamaged === undefined ? {} : { recordDamaged: v.recordDamaged }) })),
  };
}
