import fs from 'node:fs';
import type { Layout } from '../act/layout.ts';
import { busyNames } from '../act/claims.ts';
import { acquireLock, inspectLock, releaseLock } from '../act/lock.ts';
import { readJournal } from '../act/state.ts';
import { currentIdOrThrow, readCurrent, type CurrentState } from '../act/switch.ts';
import { DeployError, errnoOf } from '../errors.ts';
import { checkOptionsArgument, umaskLeavesOwner } from '../plan/validate.ts';
import { currentUmask } from '../act/mkdirs.ts';
import { isReleasesLeftover, isTmpLeftover } from '../plan/journal.ts';
import { recoverRoot, releaseViews } from './recover.ts';
import { lastLiveField } from '../plan/releases.ts';
import { openRoot } from './root.ts';

export interface LockStatus {
  pid: number | null;
  host: string | null;
  user: string | null;
  since: string;
  state: 'held' | 'stale' | 'foreign';
  reason: string;
}

export interface StatusResult {
  current: string | null;
  /** What `current` is when it is not a link to a release: missing, dangling, outside, directory, file. */
  currentState: CurrentState['kind'];
  lock: LockStatus | null;
  /** Leftovers of an interrupted operation found (and, unless a live deploy holds the lock, cleaned). */
  leftovers: string[];
  /** The operation a live lock holder is running, from its journal; null when none runs. */
  running: string | null;
  recovered: string[];
  /**
   * With `current` missing or dangling: the release to restore, the one the log says went live last
   * of those still here that stayed good (never one failed or rolled back from; plan/releases.ts lastLiveField).
   */
  lastLive?: string;
  /** With `current` dangling: the target it names, which is not there (nothing is served through it). */
  danglingTarget?: string;
  /**
   * With `current` outside releases/, or a real directory or file: what deploy, rollback and prune
   * say when they refuse the root for it, and the way to repair it (said by status as a warning).
   */
  currentProblem?: { code: string; message: string; hint?: string; target?: string };
}

export interface StatusOptions {
  /** Only report; never take the lock to clean up. */
  readOnly?: boolean;
  fsync?: boolean;
  /** Stops the delete of leftovers (INTERRUPTED); the rest waits under their names for the next command. */
  signal?: AbortSignal;
}

/** Where a root stands; recovers an interrupted deploy when nobody live holds the lock. */
export async function status(root: string, options: StatusOptions = {}): Promise<StatusResult> {
  checkOptionsArgument(options);
  const layout = openRoot(root, { mayCreate: false });
  let info = inspectLock(layout);
  // A journal under a live holder's lock is a deploy in progress, not the leftover of one.
  const live = info !== undefined && info.verdict.state !== 'stale';
  const { leftovers, running } = await findLeftovers(layout, live);
  let recovered: string[] = [];
  // Under a umask that takes the owner's bits, the lock and what recovery writes would refuse their
  // owner: the leftovers are reported, as --read-only does, for a command under a usable umask.
  if (leftovers.length > 0 && !options.readOnly && (!info || info.verdict.state === 'stale') && umaskLeavesOwner(currentUmask())) {
    try {
      const lock = await acquireLock(layout, { command: 'status' });
      try {
        recovered = await recoverRoot(layout, options.fsync !== false, options.signal);
        if (lock.tookOver) recovered.unshift(`took over a stale lock: ${lock.tookOver.reason}`);
      } finally {
        await releaseLock(lock);
      }
    } catch (error) {
      // A deploy that started meanwhile holds the lock now; it will recover by itself. A user who
      // may not write the root (monitoring often runs as one) gets the report as --read-only does:
      // the leftovers are listed, unrecovered, for the root's owner to finish.
      const denied = ['EACCES', 'EPERM', 'EROFS'].includes(errnoOf(error instanceof DeployError ? error.cause : error) ?? '');
      if (!(error instanceof DeployError && error.code === 'LOCKED') && !denied) throw error;
    }
    info = inspectLock(layout);
  }
  const state = await readCurrent(layout);
  return {
    current: state.kind === 'release' ? state.id : null,
    currentState: state.kind,
    lock: info
      ? {
          pid: info.owner?.pid ?? null,
          host: info.owner?.host ?? null,
          user: info.owner?.user ?? null,
          since: info.owner?.since ?? new Date(info.createdAtMs).toISOString(),
          state: info.verdict.state,
          reason: info.verdict.reason,
        }
      : null,
    leftovers,
    running,
    recovered,
    ...(state.kind === 'dangling' ? { danglingTarget: state.target } : {}),
    ...currentProblemOf(state, layout),
    ...(state.kind === 'missing' || state.kind === 'dangling' ? lastLiveField(await releaseViews(layout).catch(() => [])) : {}),
  };
}

async function findLeftovers(layout: ReturnType<typeof openRoot>, live: boolean): Promise<{ leftovers: string[]; running: string | null }> {
  const found: string[] = [];
  let running: string | null = null;
  const journal = await readJournal(layout);
  if (journal.kind === 'ok') {
    const { op, release, phase } = journal.journal;
    if (live) running = `${op} of release ${release} (phase ${phase})`;
    else found.push(`journal of an interrupted ${op} of release ${release} (phase ${phase})`);
  }
  if (journal.kind === 'garbage') found.push('an unreadable journal');
  const tmp = await fs.promises.readdir(layout.tmp).catch(() => [] as string[]);
  // A running deploy's staging copy and temp links are its own, not leftovers; nor is what a live
  // process deletes after its lock (a prune's trash, a lock being released).
  if (!live) {
    const busy = busyNames(layout, tmp);
    for (const name of tmp.filter((n) => isTmpLeftover(n) && !busy.has(n))) found.push(`.tmp/${name}`);
    const inReleases = await fs.promises.readdir(layout.releases).catch(() => [] as string[]);
    for (const name of inReleases.filter((n) => isReleasesLeftover(n) && !busy.has(n))) found.push(`releases/${name}`);
  }
  return { leftovers: found, running };
}

/** The refusal a changing command would give for this `current` (act/switch.ts currentIdOrThrow), as status reports it. */
function currentProblemOf(state: CurrentState, layout: Layout): Pick<StatusResult, 'currentProblem'> {
  if (state.kind !== 'outside' && state.kind !== 'directory' && state.kind !== 'file') return {};
  try {
    currentIdOrThrow(state, layout);
    return {};
  } catch (error) {
    if (!(error instanceof DeployError)) throw error;
    return { currentProblem: { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}), ...(state.kind === 'outside' ? { target: state.target } : {}) } };
  }
}
