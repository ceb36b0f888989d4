import fs from 'node:fs';
import path from 'node:path';
import { claimTree, dropClaim } from '../act/claims.ts';
import { failpoint } from '../act/failpoints.ts';
import { assertTmpOnRoot } from '../act/staging.ts';
import { scanProcessUses, type InUseScan } from '../act/in-use.ts';
import { isFullDisk } from '../act/durable.ts';
import { releasePath, type Layout } from '../act/layout.ts';
import { removeManifest } from '../act/manifest.ts';
import { removeRelease } from '../act/releases.ts';
import { deleteTree, deniedDelete, whyNotDeleted } from '../act/remove-tree.ts';
import { restamperFor, type Restamper } from '../act/restamp.ts';
import { readJournal } from '../act/state.ts';
import { recordRelease } from './record.ts';
import { currentIdOrThrow, readCurrent } from '../act/switch.ts';
import { DeployError, ioError } from '../errors.ts';
import { describeUses, releasesInUse } from '../plan/in-use.ts';
import { pruneIncompleteMessage, selectPrune, type KeepRule, type PruneDecision, type RemoveRule } from '../plan/releases.ts';
import { checkKeep, checkOptionsArgument, checkWaitMs, signalOf } from '../plan/validate.ts';
import { isolateSink, type EventSink } from './events.ts';
import { recoverRoot, recoveryNotes, releaseViews, viewsAfterRecovery, type ReleaseView } from './recover.ts';
import { openRoot, realpathLoose, rootIsIdle, lockNotes, withLock, writeProblem } from './root.ts';
import { shellWord } from '../plan/paths.ts';

export interface PruneOptions {
  /** Good releases to keep; failed and rolled-back ones never count. Current and the rollback target always stay. */
  keep: number;
  /** Report what would go and why each kept one stays; change nothing (not even take the lock). */
  dryRun?: boolean;
  /** Remove releases that running processes still use. */
  force?: boolean;
  fsync?: boolean;
  /** Milliseconds to wait for another command's lock instead of failing with LOCKED (default 0); a finite number >= 0, else USAGE. */
  waitMs?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
  command?: string;
}

export interface PrunedRelease {
  id: string;
  rule: RemoveRule;
  reason: string;
  /** From the release log, when it knows. */
  files?: number;
  bytes?: number;
}

export interface KeptRelease {
  id: string;
  rule: KeepRule;
  reason: string;
}

export interface PruneResult {
  dryRun: boolean;
  keep: number;
  current: string | null;
  /** Newest first; with dryRun, what would be removed. */
  removed: PrunedRelease[];
  /** Newest first, each with why it stays. */
  kept: KeptRelease[];
  /** `proc`: running processes were checked; `unavailable`: no /proc here, nothing was checked. */
  inUseCheck: 'proc' | 'unavailable' | 'forced';
  /** Time the releases took to leave `releases/` (renames into `.tmp/`), and to be deleted after. */
  renameMs: number;
  deleteMs: number;
  recovered: string[];
  /** Releases prune chose but could not move out of `releases/` (immutable, another owner's); they stay. */
  failed?: { id: string; message: string }[];
  /** A dry run's warnings: a root this user cannot write, a held lock, an interrupted command's journal. */
  notes?: string[];
  /** Set when a signal stopped the delete: the trash directories (relative to the root, or to releases/'s parent) still to go. */
  leftToDelete?: string[];
}

export const assertKeep: (keep: unknown) => asserts keep is number = checkKeep;

/** What prune would do in this root now: reads only. `extra` adds a release about to exist (dry run of a deploy). */
export async function decidePrune(
  layout: Layout,
  input: { keep: number; force?: boolean; currentId: string | null; extra?: ReleaseView; scan?: InUseScan; planned?: Awaited<ReturnType<typeof viewsAfterRecovery>> },
): Promise<{ decision: PruneDecision<ReleaseView>; inUseCheck: PruneResult['inUseCheck'] }> {
  // A dry run decides on the releases as its command would find them once it recovered (`planned`).
  const views = input.planned ? [...input.planned.views] : fs.existsSync(layout.releases) ? await releaseViews(layout) : [];
  if (input.extra) views.push(input.extra);
  const journal = fs.existsSync(layout.root) ? await readJournal(layout) : { kind: 'none' as const };
  // Once recovered (a dry run whose command would recover first), no release is being written.
  const recovered = (input.planned?.recovering.length ?? 0) > 0;
  const writing = new Set(journal.kind === 'ok' && !recovered ? [journal.journal.release] : []);
  let inUse = new Map<string, string>();
  // No release to look for: nothing to scan, but the check would have run where /proc is.
  let inUseCheck: PruneResult['inUseCheck'] = input.force ? 'forced' : fs.existsSync('/proc/self/stat') ? 'proc' : 'unavailable';
  if (!input.force && views.length > 0) {
    const releasesReal = realpathLoose(layout.releases);
    const scan = input.scan ?? scanProcessUses(releasesReal);
    inUseCheck = scan.supported ? 'proc' : 'unavailable';
    const dirs = new Map(views.map((v) => [v.id, realpathLoose(releasePath(layout, v.id))]));
    inUse = new Map([...releasesInUse(scan.uses, dirs)].map(([id, uses]) => [id, describeUses(uses)]));
  }
  const decision = selectPrune(views, { currentId: input.currentId, keep: input.keep, inUse, writing, force: input.force });
  return { decision, inUseCheck };
}

export function describeDecision(decision: PruneDecision<ReleaseView>): Pick<PruneResult, 'removed' | 'kept'> {
  return {
    removed: decision.remove.map(({ release, rule, reason }) => ({ id: release.id, rule, reason, files: release.record?.files, bytes: release.record?.bytes })),
    kept: decision.keep.map(({ release, rule, reason }) => ({ id: release.id, rule, reason })),
  };
}

/**
 * Moves the releases prune removes out of `releases/` into `.tmp/` (one rename each, under the
 * lock) and returns the trash to delete once the lock is released.
 */
export async function retireReleases(
  layout: Layout,
  decision: PruneDecision<ReleaseView>,
  options: { durable: boolean; signal?: AbortSignal; emit?: EventSink },
): Promise<{ trash: string[]; removed: string[]; failed: { id: string; error: DeployError }[] }> {
  const protect = new Set(decision.keep.map((k) => k.release.id));
  const trash: string[] = [];
  const removed: string[] = [];
  const failed: { id: string; error: DeployError }[] = [];
  // Oldest first: if we stop midway, what is left is the newer, likelier-wanted releases.
  for (const { release } of [...decision.remove].reverse()) {
    if (options.signal?.aborted) break;
    let moved: string | undefined;
    try {
      moved = await removeRelease(layout, release.id, protect, { durable: options.durable, deferDelete: true });
    } catch (error) {
      // One release that cannot leave (chattr +i, another owner's directory) must not stop the
      // others, nor hide that those before it already left: it stays, named in the result.
      failed.push({ id: release.id, error: ioError(`pruning release ${release.id}`, error) });
      continue;
    }
    await failpoint('prune-rename');
    if (moved) {
      trash.push(moved);
      // Claimed under the lock: once it is released, no status or recovery takes the tree for a leftover while we delete it.
      claimTree(layout, moved);
    }
    removed.push(release.id);
    // Kept as history (ids are never reused); marked so nobody looks for the directory.
    await recordRelease(layout, release.id, { prunedAt: new Date().toISOString() }, options.durable).catch((error: unknown) => {
      // The mark is history only (records of pruned releases are never read as releases), and the
      // release has left already: a full disk (why prune runs) or a record that refuses the write
      // (immutable, another owner's) must not stop the prune with the release gone unsaid.
      if (!isFullDisk(error)) options.emit?.({ type: 'warning', message: `release ${release.id} was pruned, but its record could not be marked so: ${ioError(`writing the record of ${release.id}`, error).message}` });
    });
    // The record stays as history (its digest included); the manifest served only the release.
    // The release has left already: a manifest that will not go (immutable, another owner's) is
    // said and left, never a reason to stop the prune with what it removed unsaid.
    await removeManifest(layout, release.id, false).catch((error: unknown) => {
      options.emit?.({ type: 'warning', message: `release ${release.id} was pruned, but its manifest could not be removed: ${ioError(`removing the manifest of ${release.id}`, error).message}` });
    });
  }
  return { trash, removed, failed };
}

/** The error of a prune that left some of its releases in place (the others are gone). */
export function pruneIncompleteError(result: PruneResult, failed: readonly { id: string; error: DeployError }[]): DeployError | undefined {
  const first = failed[0];
  if (first === undefined) return undefined;
  return new DeployError(first.error.code, pruneIncompleteMessage(result.removed.map((r) => r.id), failed.map((f) => f.id), first.error.message), {
    hint: first.error.hint,
    cause: first.error,
    // `removed` as a prune that succeeds gives it ({ id, rule, reason, files, bytes }): one shape for scripts.
    details: { removed: result.removed, failed: failed.map((f) => ({ id: f.id, message: f.error.message })) },
  });
}

/** Deletes retired releases after the lock is released, reporting progress in files. */
export async function deleteRetired(
  trash: readonly string[],
  totals: { files: number; bytes: number },
  options: { emit: EventSink; signal?: AbortSignal; restamp?: Restamper },
): Promise<number> {
  const started = performance.now();
  let before = 0;
  for (const dir of trash) {
    if (options.signal?.aborted) break;
    const files = await deleteTree(dir, {
      signal: options.signal,
      restamp: options.restamp,
      midway: () => failpoint('prune-delete'),
      onProgress: (n) => options.emit({ type: 'progress', phase: 'prune', done: Math.min(before + n, totals.files), total: totals.files, bytes: 0, totalBytes: 0 }),
    });
    before += files;
  }
  options.emit({ type: 'progress', phase: 'prune', done: totals.files, total: totals.files, bytes: 0, totalBytes: 0 });
  // A lost cache only costs the next deploy a re-hash: never a reason to fail the prune.
  await options.restamp?.save().catch(() => undefined);
  return Math.round(performance.now() - started);
}

function interruptedError(signal: AbortSignal, done: number, total: number): DeployError {
  const reason: unknown = signal.reason;
  const sig = signalOf(reason);
  return new DeployError('INTERRUPTED', `interrupted by ${sig}: ${done} of ${total} releases were pruned; the rest stay`, { signal: sig });
}

/** A prune whose releases have left `releases/` under the lock; their trees still wait in `.tmp/`. */
export interface RetiredPrune {
  result: PruneResult;
  trash: string[];
  files: number;
  bytes: number;
  /** How many releases were selected (fewer are retired when a signal stopped it, or one could not move). */
  selected: number;
  /** The releases that could not move, each with its error. */
  failed: { id: string; error: DeployError }[];
  /** The live release's stat cache, kept true while the trees go (they may share its inodes). */
  restamp?: Restamper;
  /** Where the trees' claims are (act/claims.ts). */
  layout: Layout;
}

/** Runs under the caller's lock, after recovery: decides and retires. */
export async function pruneUnderLock(
  layout: Layout,
  options: { keep: number; force?: boolean; durable: boolean; signal?: AbortSignal; emit: EventSink; recovered?: string[]; scan?: InUseScan },
): Promise<RetiredPrune> {
  const currentId = currentIdOrThrow(await readCurrent(layout), layout);
  const { decision, inUseCheck } = await decidePrune(layout, { keep: options.keep, force: options.force, currentId, scan: options.scan });
  const started = performance.now();
  const n = decision.remove.length;
  if (n > 0) options.emit({ type: 'step', message: `pruning ${n} release${n === 1 ? '' : 's'}: ${decision.remove.map((r) => r.release.id).join(', ')}` });
  let retired: Awaited<ReturnType<typeof retireReleases>>;
  try {
    retired = await retireReleases(layout, decision, { durable: options.durable, signal: options.signal, emit: options.emit });
  } catch (error) {
    throw ioError('pruning releases', error);
  }
  const failed = retired.failed.map((f) => ({ id: f.id, message: f.error.message }));
  const described = describeDecision(decision);
  const removed = described.removed.filter((r) => retired.removed.includes(r.id));
  return {
    result: {
      dryRun: false,
      keep: options.keep,
      current: currentId,
      removed,
      kept: described.kept,
      inUseCheck,
      renameMs: Math.round(performance.now() - started),
      deleteMs: 0,
      recovered: options.recovered ?? [],
      ...(failed.length > 0 ? { failed } : {}),
    },
    failed: retired.failed,
    trash: retired.trash,
    layout,
    // Read under the lock, while it is the live release's and its cache is the one the next deploy reads.
    restamp: retired.trash.length > 0 && currentId !== null ? restamperFor(layout, currentId) : undefined,
    files: removed.reduce((sum, r) => sum + (r.files ?? 0), 0),
    bytes: removed.reduce((sum, r) => sum + (r.bytes ?? 0), 0),
    selected: n,
  };
}

/** Deletes the retired trees once the lock is released; a failure here only leaves work for the next recovery. */
export async function finishPrune(retired: RetiredPrune, options: { emit: EventSink; signal?: AbortSignal }): Promise<PruneResult> {
  try {
    retired.result.deleteMs = await deleteRetired(retired.trash, { files: retired.files, bytes: retired.bytes }, { ...options, restamp: retired.restamp });
  } catch (error) {
    // Another user's files (an application writing into its release): no later command of this user deletes them either.
    const left = retired.trash.filter((dir) => fs.existsSync(dir));
    const message = deniedDelete(error) && left.length > 0
      ? `cannot delete every file of the pruned releases: ${whyNotDeleted(error)}; they stay in ${left.map((d) => path.relative(retired.layout.root, d)).join(', ')} until a user who may deletes them: rm -rf ${left.map((d) => shellWord(d)).join(' ')}`
      : `${ioError('deleting pruned releases', error).message}; the next command finishes it`;
    options.emit({ type: 'warning', message });
  } finally {
    // Deleted, or left (a signal, an error) for the next command, which takes what is left for a leftover.
    for (const dir of retired.trash) dropClaim(retired.layout, dir);
  }
  if (options.signal?.aborted) {
    // The releases are pruned (out of releases/ under the lock); only their files wait in the trash.
    const left = retired.trash.filter((dir) => fs.existsSync(dir));
    if (left.length > 0) {
      const names = left.map((dir) => path.relative(path.dirname(path.dirname(dir)), dir));
      retired.result.leftToDelete = names;
      const sig = signalOf(options.signal.reason);
      options.emit({ type: 'warning', message: `interrupted by ${sig} while deleting the pruned releases' files: ${names.join(', ')} ${left.length === 1 ? 'remains' : 'remain'}; the next command deletes ${left.length === 1 ? 'it' : 'them'}` });
    }
  }
  return retired.result;
}

/**
 * Removes old releases of a root, keeping the newest `keep` good ones, current, the rollback
 * target, a release being deployed, and releases running processes still use (unless `force`).
 * Each release leaves `releases/` by one rename under the lock; the trees are deleted after it.
 */
export async function prune(root: string, options: PruneOptions): Promise<PruneResult> {
  checkOptionsArgument(options, 'for example: { keep: 5 }');
  assertKeep(options.keep);
  checkWaitMs(options.waitMs);
  const emit = isolateSink(options.onEvent);
  const durable = options.fsync !== false;
  const layout = openRoot(root, { mayCreate: false });
  const keep = options.keep;

  if (options.dryRun) {
    const currentId = currentIdOrThrow(await readCurrent(layout), layout);
    const planned = await viewsAfterRecovery(layout);
    const { decision, inUseCheck } = await decidePrune(layout, { keep, force: options.force, currentId, planned });
    const unwritable = decision.remove.length > 0 ? writeProblem(layout) : undefined;
    const notes = [unwritable, ...(await lockNotes(layout, 'prune', options.waitMs ?? 0)), ...recoveryNotes(planned.recovering, 'prune')].filter((n) => n !== undefined);
    for (const note of notes) emit({ type: 'warning', message: note });
    return { dryRun: true, keep, current: currentId, ...describeDecision(decision), inUseCheck, renameMs: 0, deleteMs: 0, recovered: [], notes };
  }
  // A `current` that is no release (outside, a directory, dangling) is refused before the lock,
  // after the root's own problems (a .tmp/ apart), which the lock would name first.
  if (await rootIsIdle(layout)) {
    await assertTmpOnRoot(layout);
    currentIdOrThrow(await readCurrent(layout), layout);
  }

  const retired = await withLock(layout, { waitMs: options.waitMs, command: options.command ?? 'prune', signal: options.signal, emit, spendReserve: true }, async (lock) => {
    if (lock.tookOver) emit({ type: 'warning', message: `took over a stale lock: ${lock.tookOver.reason}` });
    const recovered = await recoverRoot(layout, durable, options.signal);
    for (const line of recovered) emit({ type: 'step', message: `recovered: ${line}` });
    return pruneUnderLock(layout, { keep, force: options.force, durable, signal: options.signal, emit, recovered });
  });
  const result = await finishPrune(retired, { emit, signal: options.signal });
  if (options.signal?.aborted && result.removed.length + retired.failed.length < retired.selected) {
    throw interruptedError(options.signal, result.removed.length, retired.selected);
  }
  const incomplete = pruneIncompleteError(result, retired.failed);
  if (incomplete) throw incomplete;
  return result;
}
