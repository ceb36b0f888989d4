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
      /**
       * With switched: what still runs after the switch to verify the release, in words (`its
       * after-switch hooks and health check`); the journal is written again without it once they
       * passed. A process that ended meanwhile leaves its release live but unverified. Absent in
       * journals of older versions, which recovery reads as verified, as they always were.
       */
      verifying?: string;
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
  /**
   * Whether the release log says `journal.release` went live (a status other than `pending`, or
   * an `activatedAt`): a journal left over from its deploy must not take it for one that never
   * switched once current has moved on (by hand, or the journal is older than the root's state).
   */
  releaseWentLive?: boolean;
  /** Names inside `<root>/.tmp/`. */
  tmpEntries: readonly string[];
}

export type RecoveryAction =
  | { kind: 'remove-tmp'; name: string }
  | { kind: 'remove-release'; id: string; reason: string }
  /** A release the journal names as being deployed that switched and is no longer live: it stays, a release like any other. */
  | { kind: 'keep-release'; id: string }
  /** `unverified`: why the release went live unverified (its process ended before the steps after its switch finished). */
  | { kind: 'mark-deployed'; id: string; previous: string | null; unverified?: string }
  | { kind: 'mark-rolled-back'; id: string; to: string }
  | { kind: 'mark-failed'; id: string; reason?: string; live?: boolean; to?: string }
  | { kind: 'clear-journal' };

/** Leftovers that only ever hold our own temporary state; current never points into `.tmp/`. `deleting.` is a claim (act/claims.ts). */
const TMP_LEFTOVER = /^(current|stage|trash|link|deleting)\./;

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

/** Whether a release log record says its release went live: any status but `pending`, or an activation time. */
export function recordWentLive(record: { status?: string; activatedAt?: string }): boolean {
  return (record.status !== undefined && record.status !== 'pending') || record.activatedAt !== undefined;
}

/** A journal's `verifying` as words to print: anything but plain words (a hand-edited journal) is said generically. */
function verifyingWords(verifying: unknown): string {
  return typeof verifying === 'string' && /^[a-z][a-z ,-]{0,99}$/.test(verifying) ? verifying : 'its after-switch steps';
}

/** Why recovery records a release unverified, from the `verifying` of the journal that was cut off. */
export function endedBefore(verifying: unknown): string {
  return `its process ended before ${verifyingWords(verifying)} finished`;
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
    // Switched with its after-switch steps unfinished: never verified, as a signal there records it.
    const unverified = journal.phase === 'switched' && journal.verifying !== undefined ? { unverified: endedBefore(journal.verifying) } : {};
    if (live) {
      actions.push({ kind: 'mark-deployed', id: journal.release, previous: journal.previous, ...unverified });
    } else if (facts.releaseExists && facts.releaseWentLive === true) {
      // Switched and recorded, then current moved on (pointed back by hand after a kill): it served,
      // so it is kept for prune's rules to judge, never removed as a deploy that did not switch.
      actions.push({ kind: 'keep-release', id: journal.release });
    } else if (facts.releaseExists && journal.phase === 'switched') {
      // Switched, cut off before its record said so, and current moved on since: it served too.
      actions.push({ kind: 'mark-deployed', id: journal.release, previous: journal.previous, ...unverified }, { kind: 'keep-release', id: journal.release });
    } else if (facts.releaseExists) {
      actions.push({ kind: 'remove-release', id: journal.release, reason: 'interrupted before the switch' });
    }
  } else if (live) {
    actions.push({ kind: 'mark-rolled-back', id: journal.previous, to: journal.release });
  }
  actions.push({ kind: 'clear-journal' });
  return actions;
}
