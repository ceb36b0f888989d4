import { compareReleaseIds, isTimestampId, newReleaseIdProblem, releaseIdProblem } from './release-id.ts';

/** What the release log says about a release; `complete` is a release that was switched to. */
export type RecordedStatus = 'pending' | 'complete' | 'failed' | 'rolled-back';

export interface ReleaseFacts {
  id: string;
  /** Deploy sequence number from the release log; absent for releases made by other tools. */
  seq?: number;
  status?: RecordedStatus;
  /** From the release log: the release that was live when this one was deployed. */
  previous?: string | null;
  /** From the release log: when it last went live (a deploy's switch, or a rollback to it). */
  activatedAt?: string;
  /** From the release log: when its deploy made it. */
  createdAt?: string;
  /** Where `releases/<id>` leads when it is a symlink (a release moved to another disk and linked back). */
  linkedTo?: string;
  /**
   * Set by the reader when a record of a release already pruned shows a deploy of ours that found
   * no live release: the root is one we made, though the release that says so is gone.
   */
  rootMadeByUs?: true;
}

/**
 * Oldest first. Ours by deploy sequence. Releases made by other tools (no log record) by
 * numeric-aware name (9 < 10 < 11, v1.9 < v1.10), before ours, except the ones that were live:
 * one that a deploy of ours replaced sits right before the first such deploy, and one that is
 * current and was never replaced is the newest. So neither is ever taken for the oldest. Those
 * that sort after such a current by name are what the other tool rolled back from: they go first,
 * the oldest, so that a plain rollback goes back, never forward to them.
 */
export function orderReleases<T extends ReleaseFacts>(releases: readonly T[], currentId: string | null = null): T[] {
  const ours = releases.filter((r) => r.seq !== undefined).sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0) || compareReleaseIds(a.id, b.id));
  const foreign = releases.filter((r) => r.seq === undefined).sort((a, b) => compareReleaseIds(a.id, b.id));
  const foreignIds = new Set(foreign.map((r) => r.id));
  const replacedBy = new Map<string, string>();
  for (const r of ours) {
    if (typeof r.previous === 'string' && foreignIds.has(r.previous) && !replacedBy.has(r.previous)) replacedBy.set(r.previous, r.id);
  }
  const before = new Map<string, T>();
  for (const f of foreign) {
    const by = replacedBy.get(f.id);
    if (by !== undefined) before.set(by, f);
  }
  // A foreign current that sorts before other foreign releases: the old tool rolled back from them.
  // They sort first, older than the way back, so neither rollback nor prune takes them for newer.
  const foreignCurrent = currentId !== null && foreignIds.has(currentId) && !replacedBy.has(currentId);
  const rolledBackFrom = (f: T): boolean => foreignCurrent && compareReleaseIds(f.id, currentId) > 0;
  const unanchored = foreign.filter((f) => !replacedBy.has(f.id) && f.id !== currentId);
  const ordered = [...unanchored.filter(rolledBackFrom), ...unanchored.filter((f) => !rolledBackFrom(f))];
  for (const r of ours) {
    const f = before.get(r.id);
    if (f) ordered.push(f);
    ordered.push(r);
  }
  ordered.push(...foreign.filter((f) => !replacedBy.has(f.id) && f.id === currentId));
  return ordered;
}

/** Failed and rolled-back releases are never a target a rollback picks by itself. */
export function isGood(release: ReleaseFacts): boolean {
  return release.status !== 'failed' && release.status !== 'rolled-back';
}

/**
 * The release a plain `rollback` goes to: the newest good release older than current that went
 * live (a `pending` one is a deploy still being written, or one a crash cut short). A directory
 * whose name `--to` would refuse (a newline, an escape, a leading dash) is never picked.
 *
 * A release without a record (another tool's) counts as once live where the log cannot say
 * otherwise: in a root taken over, or one with no log, those are the other tool's history. Where
 * our log begins on a fresh root (a deploy that found no live release), such a directory went live
 * only if a record names it as the release its deploy replaced, or we switched to it (`rollback
 * --to` gives it a record): anything else there was put in releases/ by hand (a backup copy, an
 * unpacked tarball), and only `--to` goes to it.
 */
export function rollbackTarget<T extends ReleaseFacts>(
  ordered: readonly T[],
  currentId: string | null,
): T | undefined {
  if (currentId === null) return undefined;
  const wentLive = wentLiveTest(ordered);
  const at = ordered.findIndex((r) => r.id === currentId);
  for (let i = at - 1; i >= 0; i--) {
    const candidate = ordered[i];
    if (candidate && isGood(candidate) && wentLive(candidate) && releaseIdProblem(candidate.id) === undefined) return candidate;
  }
  return undefined;
}

/** A record of a deploy of ours that found no live release: our log began in a root we made. */
export function madeRoot(record: { seq?: number; previous?: string | null }): boolean {
  return record.seq !== undefined && record.previous === null;
}

/**
 * Whether each release may have served (see rollbackTarget): ours unless still `pending`; one
 * without a record unless our log begins on a fresh root and neither names it as replaced nor
 * switched to it.
 */
export function wentLiveTest(ordered: readonly ReleaseFacts[]): (release: ReleaseFacts) => boolean {
  const fresh = ordered.some((r) => r.rootMadeByUs === true || madeRoot(r));
  const replaced = new Set(ordered.map((r) => r.previous));
  // Releases are timestamp ids here (ours by default, Capistrano's, the bash script's): a folder
  // named otherwise with no record was made by hand (`backup`, `old-copy`), not by a deploy.
  const stamped = ordered.some((r) => isTimestampId(r.id));
  // A record without a sequence number is written only for a release we switched to (rollback --to, recovery).
  return (r) => {
    if (r.seq !== undefined) return r.status !== 'pending';
    if (replaced.has(r.id) || r.status === 'complete') return true;
    if (notAReleaseName(r.id) || (stamped && !isTimestampId(r.id))) return false;
    return !fresh;
  };
}

/**
 * A name no release id can have (`lost+found`, which mkfs makes when releases/ is a mount; a
 * space, a control character): `--release-id` refuses it, and no deploy tool we know makes one.
 */
export function notAReleaseName(id: string): boolean {
  return newReleaseIdProblem(id) !== undefined;
}

/**
 * Whether a directory of releases/ is no release at all: a name no release id can have, with no
 * record (we never switched to it) and not current. `releases` leaves it out and says it is
 * ignored; a plain rollback never goes there and prune leaves it (wentLiveTest: never served).
 */
/** Why `releases` leaves such a directory out (ignoredEntry), in both engines' words. */
export const IGNORED_REASON = 'no release id has such a name: never a rollback target, never pruned';

export function ignoredEntry(release: ReleaseFacts, currentId: string | null): boolean {
  return release.id !== currentId && release.seq === undefined && release.status === undefined && notAReleaseName(release.id);
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

/**
 * The release the log says went live last (the latest `activatedAt`), other than `except`: with
 * `current` missing (removed by hand, say), the last tree known to have served. A deploy there
 * finds no live release, and neither the rollback target nor "live before current" would name it.
 */
export function lastLive<T extends ReleaseFacts>(ordered: readonly T[], except: string | null = null, before?: string): T | undefined {
  let found: T | undefined;
  const limit = before === undefined ? Infinity : Date.parse(before);
  for (const r of ordered) {
    if (r.id === except || r.activatedAt === undefined || Number.isNaN(Date.parse(r.activatedAt))) continue;
    // Live before `before` (the deploy that found no live release): one that went live after it was made was not replaced by it.
    if (!(Date.parse(r.activatedAt) < limit)) continue;
    if (found === undefined || Date.parse(r.activatedAt) >= Date.parse(found.activatedAt ?? '')) found = r;
  }
  return found;
}

/**
 * `lastLive` as a status reports it, with `current` missing or dangling: the release to restore,
 * `{ lastLive: <id> }`, or nothing. Of the releases still in releases/ (`ordered`), the one that
 * went live last and stayed good: one failed or rolled back from went live too, and is what a
 * user restoring the site must not be sent back to (a plain rollback never picks it either).
 */
export function lastLiveField(ordered: readonly ReleaseFacts[]): { lastLive?: string } {
  const found = lastLive(ordered.filter((r) => isGood(r) && releaseIdProblem(r.id) === undefined));
  return found === undefined ? {} : { lastLive: found.id };
}

export interface PruneInput {
  currentId: string | null;
  /** How many good releases stay; failed and rolled-back ones never count. */
  keep: number;
  /** Releases a running process still uses (cwd, root or open files under them), with who uses them. */
  inUse?: ReadonlyMap<string, string>;
  /** Releases an in-flight deploy is writing (from its journal). */
  writing?: ReadonlySet<string>;
  /** Remove releases in use all the same. */
  force?: boolean;
}

/** Good releases a deploy keeps when no keep is given (Capistrano's keep_releases default). */
export const DEFAULT_KEEP = 5;

export type KeepRule = 'current' | 'rollback-target' | 'live-before' | 'being-deployed' | 'in-use' | 'linked' | 'never-served' | 'newest' | 'no-limit';
export type RemoveRule = 'older' | 'failed' | 'rolled-back';

export interface PruneDecision<T> {
  /** Newest first. */
  remove: { release: T; rule: RemoveRule; reason: string }[];
  /** Newest first. */
  keep: { release: T; rule: KeepRule; reason: string }[];
}

/** A release that counts towards `keep`: one that went live and was never failed or rolled back. */
export function countsTowardsKeep(release: ReleaseFacts): boolean {
  return release.status === undefined || release.status === 'complete';
}

/**
 * What a prune that left some releases in place says, locally and on a fleet host alike:
 * `pruned r2; could not prune r1: <why the first one stayed>`.
 */
export function pruneIncompleteMessage(removed: readonly string[], failed: readonly string[], reason: string): string {
  const gone = removed.length > 0 ? `pruned ${removed.join(', ')}; ` : '';
  return `${gone}could not prune ${failed.join(', ')}: ${reason}`;
}

/**
 * Which releases prune removes. Never: current, the rollback target, the release that was live
 * when current was deployed, even one marked failed or rolled back (after `rollback --to` an older
 * one, the rollback target by order can be a newer release that was skipped, while the one live a
 * moment ago is older; a release whose health check failed with nothing to roll back to stays
 * live, and is then the only tree known to have served), one being deployed, one in use (unless
 * forced), a directory put there by hand that never served. The newest `keep` good releases stay;
 * failed and rolled-back ones never count, so a row of failed deploys cannot push out the last
 * good release.
 */
export function selectPrune<T extends ReleaseFacts>(ordered: readonly T[], input: PruneInput): PruneDecision<T> {
  const keep = Math.max(0, Math.floor(input.keep));
  const previous = rollbackTarget(ordered, input.currentId);
  const current = ordered.find((r) => r.id === input.currentId);
  // With no live release (current missing), or a deploy that found none where releases had
  // served: the one the log says went live last is "live before", as the release current replaced is.
  const foundNoLive = input.currentId === null || (current?.seq !== undefined && current.previous === null);
  // A first deploy of a fresh root found none either: only a release live before current was made counts.
  const liveBefore = current?.previous ?? (foundNoLive ? lastLive(ordered, input.currentId, current?.createdAt)?.id : undefined);
  const wentLive = wentLiveTest(ordered);
  const good = ordered.filter((r) => countsTowardsKeep(r) && wentLive(r));
  // slice(-0) would keep everything.
  const keptGood = new Set((keep === 0 ? [] : good.slice(-keep)).map((r) => r.id));
  const newest = `the newest ${keep} good release${keep === 1 ? '' : 's'}`;
  const decision: PruneDecision<T> = { remove: [], keep: [] };
  for (const release of [...ordered].reverse()) {
    const holders = input.inUse?.get(release.id);
    let kept: { rule: KeepRule; reason: string } | undefined;
    if (release.id === input.currentId) kept = { rule: 'current', reason: 'current' };
    else if (release.id === previous?.id) kept = { rule: 'rollback-target', reason: 'rollback target' };
    // Whatever its status: a release that failed its health check with nothing to roll back to
    // stayed live, and after the next deploy it is the only tree known to have served.
    else if (release.id === liveBefore) {
      const what = current?.previous ? 'live before current' : input.currentId === null ? 'live last, by the release log (current is missing)' : 'live last, by the release log, before current (deployed while current was missing)';
      kept = { rule: 'live-before', reason: isGood(release) ? what : `${what} (it served, though marked ${release.status ?? ''})` };
    }
    else if (release.status === 'pending' || input.writing?.has(release.id)) kept = { rule: 'being-deployed', reason: 'being deployed' };
    else if (holders !== undefined && !input.force) kept = { rule: 'in-use', reason: `in use by ${holders}` };
    // Its tree is not in releases/ (another disk, most likely): prune deletes only trees it holds, --force or not.
    else if (release.linkedTo !== undefined) kept = { rule: 'linked', reason: `a link to ${release.linkedTo}; prune leaves it (remove the link and that tree by hand)` };
    // A directory put in releases/ by hand in a root our log began (a backup copy with a database
    // dump in it, an unpacked tarball): no deploy made it and none served it, so it is not a
    // release prune may age out, and it does not count towards keep. Only the user removes it.
    else if (release.seq === undefined && !wentLive(release)) {
      kept = { rule: 'never-served', reason: ignoredEntry(release, input.currentId) ? 'not a release (no release id has such a name); prune leaves it' : 'never served (not made by a deploy); prune leaves it' };
    }
    else if (keptGood.has(release.id)) kept = { rule: 'newest', reason: `among ${newest}` };
    // keep 0 turns pruning off, so a config with `keep: 0` can never empty releases/ through `prune`.
    else if (keep === 0) kept = { rule: 'no-limit', reason: 'keep 0 keeps every release' };
    if (kept) {
      decision.keep.push({ release, ...kept });
      continue;
    }
    const rule: RemoveRule = release.status === 'failed' ? 'failed' : release.status === 'rolled-back' ? 'rolled-back' : 'older';
    let reason = rule === 'older' ? `older than ${newest}` : `${rule} (does not count towards keep)`;
    if (holders !== undefined) reason += `; in use by ${holders}, removed because of --force`;
    decision.remove.push({ release, rule, reason });
  }
  return decision;
}

/** The times of a release log record a release's facts carry (when it was made, when it last went live). */
export function recordTimes(record: { activatedAt?: string; createdAt?: string }): Pick<ReleaseFacts, 'activatedAt' | 'createdAt'> {
  return { ...(record.activatedAt === undefined ? {} : { activatedAt: record.activatedAt }), ...(record.createdAt === undefined || record.createdAt === '' ? {} : { createdAt: record.createdAt }) };
}
