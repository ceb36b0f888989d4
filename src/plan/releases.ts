import { compareReleaseIds } from './release-id.ts';

/** What the release log says about a release; `complete` is a release that was switched to. */
export type RecordedStatus = 'pending' | 'complete' | 'failed' | 'rolled-back';

export interface ReleaseFacts {
  id: string;
  /** Deploy sequence number from the release log; absent for releases made by other tools. */
  seq?: number;
  status?: RecordedStatus;
}

/** Oldest first: releases made by other tools (by id), then ours by deploy sequence. */
export function orderReleases<T extends ReleaseFacts>(releases: readonly T[]): T[] {
  return [...releases].sort((a, b) => {
    if (a.seq === undefined && b.seq === undefined) return compareReleaseIds(a.id, b.id);
    if (a.seq === undefined) return -1;
    if (b.seq === undefined) return 1;
    return a.seq - b.seq || compareReleaseIds(a.id, b.id);
  });
}

/** Failed and rolled-back releases are never a target a rollback picks by itself. */
export function isGood(release: ReleaseFacts): boolean {
  return release.status !== 'failed' && release.status !== 'rolled-back';
}

/** The release a plain `rollback` goes to: the newest good release older than current. */
export function rollbackTarget<T extends ReleaseFacts>(
  ordered: readonly T[],
  currentId: string | null,
): T | undefined {
  if (currentId === null) return undefined;
  const at = ordered.findIndex((r) => r.id === currentId);
  for (let i = at - 1; i >= 0; i--) {
    const candidate = ordered[i];
    if (candidate && isGood(candidate)) return candidate;
  }
  return undefined;
}

export type ReleaseRole = 'active' | 'previous' | 'failed' | 'rolled-back' | 'pending' | 'old';

/** How `releases` describes each release. */
export function roleOf(release: ReleaseFacts, currentId: string | null, previousId: string | undefined): ReleaseRole {
  if (release.id === currentId) return 'active';
  if (release.id === previousId) return 'previous';
  if (release.status === 'failed') return 'failed';
  if (release.status === 'rolled-back') return 'rolled-back';
  if (release.status === 'pending') return 'pending';
  return 'old';
}

export interface PruneInput {
  currentId: string | null;
  keep: number;
  /** Releases a running process still uses (cwd, root or open files under them). */
  inUse?: ReadonlySet<string>;
  force?: boolean;
}

export interface PruneDecision<T> {
  remove: { release: T; reason: string }[];
  keep: { release: T; reason: string }[];
}

/**
 * Which releases prune removes. Never: current, the rollback target, one in use (unless
 * forced). The newest `keep` good releases stay; failed and rolled-back ones never count.
 */
export function selectPrune<T extends ReleaseFacts>(ordered: readonly T[], input: PruneInput): PruneDecision<T> {
  const previous = rollbackTarget(ordered, input.currentId);
  const newestGood = ordered.filter(isGood).slice(-Math.max(0, input.keep));
  const keptGood = new Set(newestGood.map((r) => r.id));
  const decision: PruneDecision<T> = { remove: [], keep: [] };
  for (const release of [...ordered].reverse()) {
    let reason: string | undefined;
    if (release.id === input.currentId) reason = 'current';
    else if (release.id === previous?.id) reason = 'rollback target';
    else if (release.status === 'pending') reason = 'being deployed';
    else if (input.inUse?.has(release.id) && !input.force) reason = 'in use by a running process';
    else if (keptGood.has(release.id)) reason = `among the newest ${input.keep}`;
    if (reason) decision.keep.push({ release, reason });
    else {
      const why = isGood(release) ? `older than the newest ${input.keep}` : `${release.status} release`;
      decision.remove.push({ release, reason: why });
    }
  }
  return decision;
}
