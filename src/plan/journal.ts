/** The on-disk record of an operation in flight, and what the next run does about it. */

export type Journal =
  | {
      v: 1;
      op: 'deploy';
      token: string;
      pid: number;
      startedAt: string;
      release: string;
      previous: string | null;
      /**
       * copying: release not complete; ready: complete and durable, not yet live; switched: live;
       * rolling-back: it failed its health check and current is going back to `previous`.
       */
      phase: 'copying' | 'ready' | 'switched' | 'rolling-back';
      /** With rolling-back: why the release failed. */
      reason?: string;
    }
  | {
      v: 1;
      op: 'rollback';
      token: string;
      pid: number;
      startedAt: string;
      release: string;
      previous: string;
      phase: 'switching' | 'switched';
    };

export interface RecoveryFacts {
  currentId: string | null;
  /** Whether `releases/<journal.release>` exists. */
  releaseExists: boolean;
  /** Names inside `<root>/.tmp/`. */
  tmpEntries: readonly string[];
}

export type RecoveryAction =
  | { kind: 'remove-tmp'; name: string }
  | { kind: 'remove-release'; id: string; reason: string }
  | { kind: 'mark-deployed'; id: string; previous: string | null }
  | { kind: 'mark-rolled-back'; id: string; to: string }
  | { kind: 'mark-failed'; id: string; reason?: string; live?: boolean; to?: string }
  | { kind: 'clear-journal' };

/** Leftovers that only ever hold our own temporary state; current never points into `.tmp/`. */
const TMP_LEFTOVER = /^(current|stage|trash|link)\./;

export function isTmpLeftover(name: string): boolean {
  return TMP_LEFTOVER.test(name);
}

/**
 * Staging copies and trash kept inside `releases/` (on another filesystem than `.tmp/`): hidden,
 * never ids. Only the names we make: `.stage.<id>.<12 hex>` (src/act/staging.ts), `.stage.<16 hex>`
 * (a fleet host's, src/remote/staging.ts), the same for `.trash.`, and the mount probe
 * `.stage.mount-probe.<pid>`. A folder a user named `.stage.old` is theirs and is never swept.
 */
const RELEASES_LEFTOVER = /^\.(?:(?:stage|trash)\.(?:.+\.)?[0-9a-f]{12}(?:[0-9a-f]{4})?|stage\.mount-probe\.\d+)$/;

export function isReleasesLeftover(name: string): boolean {
  return RELEASES_LEFTOVER.test(name);
}

/** Decides recovery after a crash: finish what switched, undo what did not, never touch current. */
export function planRecovery(journal: Journal | null, facts: RecoveryFacts): RecoveryAction[] {
  const actions: RecoveryAction[] = facts.tmpEntries
    .filter(isTmpLeftover)
    .map((name) => ({ kind: 'remove-tmp', name }) as const);
  if (journal === null) return actions;

  const live = facts.currentId === journal.release;
  if (journal.op === 'deploy' && journal.phase === 'rolling-back') {
    // It failed verification: keep it for inspection, whether or not the switch back happened.
    const reason = journal.reason ?? 'failed its health check';
    const back = journal.previous !== null && facts.currentId === journal.previous;
    if (live) actions.push({ kind: 'mark-failed', id: journal.release, reason, live: true });
    else if (facts.releaseExists) actions.push({ kind: 'mark-failed', id: journal.release, reason, ...(back ? { to: journal.previous ?? undefined } : {}) });
  } else if (journal.op === 'deploy') {
    if (live) {
      actions.push({ kind: 'mark-deployed', id: journal.release, previous: journal.previous });
    } else if (facts.releaseExists) {
      actions.push({ kind: 'remove-release', id: journal.release, reason: 'interrupted before the switch' });
    }
  } else if (live) {
    actions.push({ kind: 'mark-rolled-back', id: journal.previous, to: journal.release });
  }
  actions.push({ kind: 'clear-journal' });
  return actions;
}
