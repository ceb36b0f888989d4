import fs from 'node:fs';
import { isFullDisk } from '../act/durable.ts';
import { readJournal } from '../act/state.ts';
import { failpoint } from '../act/failpoints.ts';
import { assertTmpOnRoot } from '../act/staging.ts';
import { releasePath, type Layout } from '../act/layout.ts';
import { notAReleaseDir } from '../act/releases.ts';
import { currentIdOrThrow, readCurrent, switchCurrent } from '../act/switch.ts';
import { DeployError, errnoOf, ioError } from '../errors.ts';
import type { Journal } from '../plan/journal.ts';
import { checkOptionsArgument, checkReleaseId, checkWaitMs, signalOf, withLists } from '../plan/validate.ts';
import { rollbackTarget } from '../plan/releases.ts';
import { isolateSink, type EventSink } from './events.ts';
import { clearJournalRecord, recordJournal, recordRelease } from './record.ts';
import { recoverRoot, recoveryNotes, releaseViews, viewsAfterRecovery, type ReleaseView } from './recover.ts';
import { openRoot, rootIsIdle, lockNotes, withLock, writeProblem } from './root.ts';
import { spentReserveWarning } from '../act/reserve.ts';
import { awaitFreshness, checkReloadTargets, checkServingOptions, hasReloads, runReloads, staleFailure, type ServingOptions } from './serving.ts';
import type { StaleReport } from '../plan/serving.ts';
import { shellWord } from '../plan/paths.ts';
import { checkAgainstManifest } from './verify-release.ts';
import { checkTargetMode, targetCheckVerdict, uncheckedVerdict, type TargetCheck, type TargetCheckMode } from '../plan/target-check.ts';

export interface RollbackOptions extends ServingOptions {
  /** Switch to this release instead of the previous good one (may name a failed one). */
  to?: string;
  fsync?: boolean;
  /** Milliseconds to wait for another command's lock instead of failing with LOCKED (default 0); a finite number >= 0, else USAGE. */
  waitMs?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
  command?: string;
  /** Why (recorded on the release rolled back from), e.g. a failed health check. */
  reason?: string;
  /** Decide the target and change nothing (not even take the lock). */
  dryRun?: boolean;
  /**
   * Re-hash the release rolled back to against its manifest: `warn` (default) once it is live and
   * the lock released, naming what differs in a warning; `fail` before the switch, refusing
   * (RELEASE_DIFFERS, exit 5; a release with no trusted manifest: exit 2) with nothing changed;
   * `off` not at all.
   */
  verify?: TargetCheckMode;
}

export interface RollbackResult {
  release: string;
  /** The release current was on before (null: none, a first rollback into a root without one); `release` itself when `unchanged`. */
  previous: string | null;
  recovered: string[];
  /** Processes still running from the release rolled back from, after the reloads. */
  stale?: StaleReport;
  /** A reload that failed (the rollback stands). */
  warnings?: string[];
  /** A signal came after the switch (during the reloads or the stale wait): the rollback stands, what followed it was cut short. */
  interruptedAfterSwitch?: true;
  /** Set by a dry run: `release` is where a rollback would go; nothing was changed. */
  dryRun?: true;
  /** A dry run's warnings: a root this user cannot write, a held lock, an interrupted command's journal. */
  notes?: string[];
  /** `--to` the release already current: nothing was switched, reloaded or recorded (a retried rollback succeeds). */
  unchanged?: true;
  /** What the check of the release rolled back to against its manifest found (absent with `verify: 'off'`, or when nothing was switched). */
  contents?: TargetCheck;
}

/** The release a rollback goes to: `to` if it exists, else the previous good release; it may be current (`--to` it). */
function chooseTarget(layout: Layout, views: ReleaseView[], currentId: string | null, to: string | undefined): string {
  let target: string;
  if (to !== undefined) {
    if (!views.some((v) => v.id === to)) throw unknownRelease(layout, to);
    target = to;
  } else {
    const found = rollbackTarget(views, currentId);
    if (!found) {
      throw new DeployError('NO_PREVIOUS_RELEASE', currentId === null ? `${layout.root} has no current release to roll back from` : `release ${currentId} has no earlier good release to roll back to`, {
        // No --to can help where the live release is the only one (or there is none).
        hint: views.some((v) => v.id !== currentId)
          ? `list releases with: atomic-deploy releases ${shellWord(layout.root)}; pick one with --to <id>`
          : currentId === null
            ? `no release is in ${layout.releases} yet: deploy one first (atomic-deploy deploy <source> ${shellWord(layout.root)})`
            : `${currentId} is the only release here: deploy another first, --to cannot help (see: atomic-deploy releases ${shellWord(layout.root)})`,
      });
    }
    target = found.id;
  }
  // Already live: nothing to check, it serves (the caller reports it unchanged).
  if (target !== currentId) assertServable(layout, target, to === undefined);
  return target;
}

/** `--to` the release already current: a retry of a rollback that went through is a success that changed nothing. */
function unchangedResult(target: string, recovered: string[]): RollbackResult {
  return { release: target, previous: target, recovered, unchanged: true };
}

function unknownRelease(layout: Layout, id: string): DeployError {
  const taken = notAReleaseDir(releasePath(layout, id));
  return new DeployError('UNKNOWN_RELEASE', taken ?? `release ${id} does not exist in ${layout.releases}`, {
    hint: `list them with: atomic-deploy releases ${shellWord(layout.root)}`,
  });
}

/**
 * A release directory with nothing in it (a folder made by hand for a backup that never came) would
 * serve nothing; no deploy makes one (an empty build is refused), so it is never a target.
 */
function assertServable(layout: Layout, id: string, plain: boolean): void {
  let entries: string[];
  try {
    entries = fs.readdirSync(releasePath(layout, id));
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') throw unknownRelease(layout, id);
    // Unreadable or not a directory: the switch and the health check speak for themselves.
    return;
  }
  if (entries.length === 0) {
    throw new DeployError('UNKNOWN_RELEASE', `release ${id} is an empty directory: switching to it would serve nothing`, {
      hint: plain ? `pick another with --to <id> (atomic-deploy releases ${shellWord(layout.root)} lists them), or remove the empty directory` : `list the releases with: atomic-deploy releases ${shellWord(layout.root)}`,
    });
  }
}

/** Switches `current` back to the previous good release, or to `to`, atomically. */
export async function rollback(root: string, given: RollbackOptions = {}): Promise<RollbackResult> {
  checkOptionsArgument(given);
  const options = withLists(given);
  checkWaitMs(options.waitMs);
  const emit = isolateSink(options.onEvent);
  const durable = options.fsync !== false;
  const layout = openRoot(root, { mayCreate: false });
  if (options.to !== undefined) {
    checkReleaseId(options.to, `list the releases with: atomic-deploy releases ${shellWord(layout.root)}`);
  }
  // A dangling current can be repaired only by naming the release to go to.
  const before = await readCurrent(layout);
  const beforeId = currentIdOrThrow(before, layout, { allowDangling: options.to !== undefined });
  checkServingOptions(options);
  const mode = checkTargetMode(options.verify);
  await checkReloadTargets(options, options.signal);
  if (options.dryRun) {
    // From the releases as the rollback would find them once it recovered.
    const planned = await viewsAfterRecovery(layout);
    const target = chooseTarget(layout, planned.views, beforeId, options.to);
    const notes = [writeProblem(layout), ...(await lockNotes(layout, 'rollback', options.waitMs ?? 0)), ...recoveryNotes(planned.recovering, 'rollback')].filter((n) => n !== undefined);
    for (const note of notes) emit({ type: 'warning', message: note });
    if (target === beforeId) return { ...unchangedResult(target, []), dryRun: true, notes };
    // Read-only, as the rest of the dry run: what the check would find, said as the rollback would say it.
    const contents = mode === 'off' ? undefined : await checkTarget(layout, target, mode, emit, options.signal, 'dry-run');
    return { release: target, previous: beforeId ?? (before.kind === 'dangling' ? before.id : null), recovered: [], dryRun: true, notes, ...(contents ? { contents } : {}) };
  }
  // A refusal (nothing to go back to, an unknown --to) is made before the lock, after the root's
  // own problems (a .tmp/ apart), which the lock would name first; so is a --to already current,
  // which then takes no lock and changes nothing.
  if (await rootIsIdle(layout)) {
    await assertTmpOnRoot(layout);
    const target = chooseTarget(layout, await releaseViews(layout), beforeId, options.to);
    if (target === beforeId) return unchangedResult(target, []);
  } else if (options.to !== undefined && !(await releaseViews(layout)).some((v) => v.id === options.to)) {
    // A lock or a crash's leftovers: taking over a stale lock and recovering would change the root
    // before an unknown --to is refused. Only the release a deploy in flight is writing may yet come.
    const journal = await readJournal(layout);
    if (journal.kind !== 'ok' || journal.journal.release !== options.to) throw unknownRelease(layout, options.to);
  }

  const result = await withLock(layout, { waitMs: options.waitMs, command: options.command ?? 'rollback', signal: options.signal, emit, spendReserve: true }, async (lock) => {
    if (lock.tookOver) emit({ type: 'warning', message: `took over a stale lock: ${lock.tookOver.reason}` });
    if (lock.spentReserve) emit({ type: 'warning', message: spentReserveWarning(layout.root) });
    const recovered = await recoverRoot(layout, durable, options.signal);
    for (const line of recovered) emit({ type: 'step', message: `recovered: ${line}` });
    const state = await readCurrent(layout);
    const currentId = currentIdOrThrow(state, layout, { allowDangling: options.to !== undefined });
    // Through a link between releases (`releases/stable -> r1`), r1 served: left for another, it is the one rolled back from.
    const through = state.kind === 'outside' && state.aliasOf !== undefined && state.aliasOf !== options.to ? state.aliasOf : null;
    const from = currentId ?? (state.kind === 'dangling' ? state.id : through);
    const views = await releaseViews(layout);
    const target = chooseTarget(layout, views, currentId, options.to);
    // Found live once the lock was ours and the root recovered (an earlier rollback's record finished): nothing to switch.
    if (target === currentId) return unchangedResult(target, recovered);
    // Going forward (`--to` a newer release), the release left was not rolled back from: it stays
    // good, as one a deploy replaces does, so prune keeps it and a plain rollback can return to it.
    const forward = from !== null && views.findIndex((v) => v.id === target) > views.findIndex((v) => v.id === from);
    if (options.signal?.aborted) throw new DeployError('INTERRUPTED', 'interrupted before the switch; nothing changed', { signal: signalOfAbort(options.signal) });
    // `fail` checks before the journal: a refusal, or a signal while hashing, leaves the root as it
    // was. `warn` checks once the release is live and the lock released: the switch never waits for a re-hash.
    const contents = mode === 'fail' ? await checkTarget(layout, target, mode, emit, options.signal, 'before') : undefined;
    if (options.signal?.aborted) throw new DeployError('INTERRUPTED', 'interrupted before the switch; nothing changed', { signal: signalOfAbort(options.signal) });

    const journal: Journal = { v: 1, op: 'rollback', token: lock.owner.token, pid: process.pid, startedAt: new Date().toISOString(), release: target, previous: from ?? '', phase: 'switching' };
    emit({ type: 'step', message: `switching current to releases/${target}` });
    let switched = false;
    // On a full disk the journal and the log may have no room; the switch itself needs none (a
    // short symlink lives in its inode), and a rollback is how space gets freed: go on without them.
    const bookkeeping = async (what: string, write: () => Promise<void>): Promise<void> => {
      try {
        await write();
      } catch (error) {
        if (!isFullDisk(error)) throw error;
        emit({ type: 'warning', message: `no space left on device for ${what}; the rollback goes on without it` });
      }
    };
    try {
      await bookkeeping('the journal', () => recordJournal(layout, journal, durable));
      await switchCurrent(layout, target, {
        durable,
        beforeRename: async () => {
          await failpoint('rollback-temp-link-made');
          if (options.signal?.aborted) throw new DeployError('INTERRUPTED', 'interrupted before the switch; nothing changed', { signal: signalOfAbort(options.signal) });
        },
        afterRename: () => {
          switched = true;
        },
      });
    } catch (error) {
      if (!switched) await clearJournalRecord(layout, durable).catch(() => undefined);
      throw ioError('switching current', error);
    }
    const now = new Date().toISOString();
    try {
      // In the try: an error here comes after the switch, and is said as one (the release live).
      await failpoint('rollback-after-switch');
      await bookkeeping('the journal', () => recordJournal(layout, { ...journal, phase: 'switched' }, durable));
      if (from !== null && !forward) await bookkeeping(`the record of ${from}`, () => recordRelease(layout, from, { status: 'rolled-back', endedAt: now, reason: options.reason ?? 'rolled back' }, durable));
      await bookkeeping(`the record of ${target}`, () => recordRelease(layout, target, { status: 'complete', activatedAt: now }, durable));
      await clearJournalRecord(layout, durable);
    } catch (error) {
      // The switch stands: say so, as a deploy does; the journal left behind lets the next command finish the record.
      const base = ioError('recording the rollback', error);
      throw new DeployError(base.code, `release ${target} is live (rolled back from ${from ?? 'nothing'}), but ${base.message}`, {
        cause: error,
        hint: `the next atomic-deploy command finishes the record by itself${base.hint ? `; ${base.hint}` : ''}`,
        details: { release: target, live: true },
      });
    }
    emit({ type: 'step', message: `release ${target} is live (rolled back from ${from ?? 'nothing'})` });
    // Like after a deploy: reload what serves, then look for what still runs from the release left.
    const ctx = { layout, id: target, emit, signal: options.signal };
    const reloadFailure = hasReloads(options) ? await runReloads(ctx, options) : undefined;
    const warnings: string[] = [];
    if (reloadFailure !== undefined) {
      const message = `${reloadFailure}; release ${target} stays live`;
      emit({ type: 'warning', message });
      warnings.push(message);
    }
    const stale = await awaitFreshness(ctx, from, options);
    if (stale?.check === 'proc') await bookkeeping(`the record of ${target}`, () => recordRelease(layout, target, { staleProcesses: stale.processes.length }, durable));
    return { release: target, previous: from, recovered, stale, warnings: warnings.length > 0 ? warnings : undefined, ...(contents ? { contents } : {}), ...(options.signal?.aborted ? { interruptedAfterSwitch: true as const } : {}) };
  });
  if (mode === 'warn' && !result.unchanged) {
    // After the switch, outside the lock (verify takes none): a signal now cuts the check, never the rollback, which stands.
    if (options.signal?.aborted) {
      result.contents = { check: 'unchecked', problem: `interrupted by ${signalOfAbort(options.signal)}` };
    } else {
      result.contents = await checkTarget(layout, result.release, mode, emit, options.signal, 'after');
      if (options.signal?.aborted) result.interruptedAfterSwitch = true;
    }
  }
  const stale = staleFailure(options, result.stale, { live: result.release, result, signal: options.signal });
  if (stale) throw stale;
  return result;
}

/**
 * The release a rollback goes to, re-hashed against its manifest: a file edited in place in a
 * release that shares inodes with it (hardlinked releases), a chmod, an added or removed file would
 * otherwise go live unseen, where `verify` would call it changed. `warn` checks `after` the switch
 * (a rollback is how a broken site is left: it must not wait for a re-hash, and the release left
 * may be worse) and says what differs; `fail` checks `before` it and refuses, nothing changed; a
 * dry run checks and says what the rollback would do.
 */
async function checkTarget(layout: Layout, target: string, mode: Exclude<TargetCheckMode, 'off'>, emit: EventSink, signal: AbortSignal | undefined, when: 'before' | 'after' | 'dry-run'): Promise<TargetCheck> {
  emit({ type: 'step', message: `checking release ${target}${when === 'after' ? ', now live,' : ''} against its manifest` });
  const dryRun = when === 'dry-run';
  let check;
  try {
    check = await checkAgainstManifest(layout, target, releasePath(layout, target), signal);
  } catch (error) {
    if (signal?.aborted) {
      if (when === 'after') return { check: 'unchecked', problem: `interrupted by ${signalOfAbort(signal)}` };
      throw new DeployError('INTERRUPTED', dryRun ? `interrupted by ${signalOfAbort(signal)}; nothing changed` : 'interrupted before the switch; nothing changed', { signal: signalOfAbort(signal) });
    }
    // A check that could not be made never keeps a site on the release it is being rolled back
    // from: `warn` says so; `fail` refuses, as for any release it cannot check.
    if (mode === 'fail') throw error;
    const unchecked = uncheckedVerdict(error instanceof DeployError ? error.message : ioError(`hashing release ${target}`, error).message, { release: target, dryRun, switched: when === 'after' });
    emit({ type: 'warning', message: unchecked.warning.message });
    return unchecked.contents;
  }
  const verdict = targetCheckVerdict(check.kind === 'checked' ? { kind: 'checked', differences: check.result.differences } : { kind: check.kind, problem: check.error.message }, {
    release: target,
    mode,
    dryRun,
    switched: when === 'after',
    verifyCommand: `atomic-deploy verify ${shellWord(layout.root)} --release ${shellWord(target)}`,
  });
  if (verdict.refusal) throw new DeployError(verdict.refusal.code, verdict.refusal.message, { hint: verdict.refusal.hint, details: { release: target, contents: verdict.contents } });
  if (verdict.step) emit({ type: 'step', message: verdict.step });
  if (verdict.warning) emit({ type: 'warning', message: verdict.warning.message, ...(verdict.warning.hint ? { hint: verdict.warning.hint } : {}) });
  return verdict.contents;
}

function signalOfAbort(signal: AbortSignal): NodeJS.Signals {
  return signalOf(signal.reason);
}
