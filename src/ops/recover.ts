import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Layout } from '../act/layout.ts';
import { removeManifest, sweepStateTemps } from '../act/manifest.ts';
import { listReleases } from '../act/releases.ts';
import { deleteTree, removeTree, whyNotDeleted } from '../act/remove-tree.ts';
import { stagingArea, trashPath } from '../act/staging.ts';
import { listRecordIds, readJournal, readRecord, readRecords, recordDamage, type ReleaseRecord } from '../act/state.ts';
import { readCurrent } from '../act/switch.ts';
import { DeployError } from '../errors.ts';
import { isReleasesLeftover, planRecovery, recordWentLive, type RecoveryAction } from '../plan/journal.ts';
import { compareReleaseIds } from '../plan/release-id.ts';
import { shellWord } from '../plan/paths.ts';
import { signalOf } from '../plan/validate.ts';
import { madeRoot, orderReleases, recordTimes, type ReleaseFacts } from '../plan/releases.ts';
import { runOnFs } from '../root/fs.ts';
import { afterRecovery, recoveryProgram } from '../root/recover.ts';
import { inspectLock } from '../act/lock.ts';
import { busyNames } from '../act/claims.ts';

export interface ReleaseView extends ReleaseFacts {
  record?: ReleaseRecord;
  /** Its log record exists but could not be read as one (recordDamage): it is ordered as one without. */
  recordDamaged?: string;
}

/** Every release directory with what the release log knows of it, oldest first. */
export async function releaseViews(layout: Layout): Promise<ReleaseView[]> {
  const entries = await listReleases(layout);
  const records = await readRecords(layout, entries.map((e) => e.id));
  const current = await readCurrent(layout);
  const views: ReleaseView[] = entries.map(({ id, linkedTo }) => {
    const record = records.get(id);
    const link = linkedTo === undefined ? {} : { linkedTo };
    if (record) return { id, seq: record.seq, status: record.status, previous: record.previous, ...recordTimes(record), record, ...link };
    const damage = recordDamage(layout, id);
    return damage === undefined ? { id, ...link } : { id, recordDamaged: damage, ...link };
  });
  // Whether a directory without a record may have served depends on how our log began (see
  // rollbackTarget); once the first release is pruned only its record still says so. Read the rest
  // of the log only when such a directory is here and the releases present do not tell.
  if (views.some((v) => v.record === undefined) && !views.some(madeRoot)) {
    // Oldest name first, one at a time: with timestamp ids the first deploy's record comes first
    // and settles it, so a root with years of history still costs one read here, not thousands.
    const rest = (await listRecordIds(layout)).filter((id) => !records.has(id)).sort(compareReleaseIds);
    for (const id of rest) {
      const record = readRecord(layout, id);
      if (record === undefined) continue;
      if (madeRoot(record)) {
        for (const v of views) v.rootMadeByUs = true;
        break;
      }
      // Our first deploy replaced a live release: a root taken over.
      if (record.seq === 1) break;
    }
  }
  return orderReleases(views, current.kind === 'release' ? current.id : null);
}

/**
 * The releases as the next command that locks would find them once it recovered, and what its
 * recovery would do (said as a dry run notes it): the dry runs plan from these, as the commands do
 * after recovering. Under a live holder's lock nothing is recovered (the command would wait for it,
 * or exit 3): the releases as they are. Reads only.
 */
export async function viewsAfterRecovery(layout: Layout): Promise<{ views: ReleaseView[]; recovering: RecoveryAction[] }> {
  const views = fs.existsSync(layout.releases) ? await releaseViews(layout) : [];
  const lock = fs.existsSync(layout.root) ? inspectLock(layout) : undefined;
  const journalRead = fs.existsSync(layout.root) ? await readJournal(layout) : { kind: 'none' as const };
  if ((lock && lock.verdict.state !== 'stale') || journalRead.kind !== 'ok') return { views, recovering: [] };
  const journal = journalRead.journal;
  const current = await readCurrent(layout);
  const currentId = current.kind === 'release' ? current.id : null;
  const seen = views.find((v) => v.id === journal.release);
  const actions = planRecovery(journal, { currentId, releaseExists: seen !== undefined, tmpEntries: [], releaseWentLive: seen?.record !== undefined && recordWentLive(seen.record) });
  const records = new Map(views.flatMap((v) => (v.record ? [[v.id, v.record] as const] : [])));
  const after = afterRecovery({ actions, records, releases: views.map((v) => v.id), currentId, now: new Date().toISOString() });
  const left = views.flatMap((v): ReleaseView[] => {
    if (!after.releases.includes(v.id)) return [];
    const record = after.records.get(v.id);
    if (!record) return [v];
    return [{ ...v, seq: record.seq, status: record.status, previous: record.previous, ...recordTimes(record), record }];
  });
  return { views: left, recovering: actions };
}

/** A dry run's notes of what its command's recovery would do first. */
export function recoveryNotes(actions: readonly RecoveryAction[], command: string): string[] {
  return actions.flatMap((a) => {
    const line = describeAction(a);
    return line === undefined ? [] : [recoveryNote(line, command)];
  });
}

/** A recovery line (said in the past, as a command that recovered says it) as a dry run says it: what would come first. */
export function recoveryNote(line: string, command: string): string {
  const planned = line.replace(/^(removed|finished|marked|kept|switched) /, (_all, verb: string) => `${{ removed: 'remove', finished: 'finish', marked: 'mark', kept: 'keep', switched: 'switch' }[verb] ?? verb} `);
  return `the ${command} would recover first: ${planned}`;
}

export function describeAction(action: RecoveryAction): string | undefined {
  switch (action.kind) {
    case 'remove-tmp':
      return `removed leftover .tmp/${action.name}`;
    case 'remove-release':
      return `removed release ${action.id} (${action.reason})`;
    case 'mark-deployed':
      return `finished recording deploy of ${action.id} (it had switched${action.unverified === undefined ? '' : `; ${action.unverified}: live, unverified`})`;
    case 'keep-release':
      return `kept release ${action.id}: its deploy switched to it before it was cut off, and current has moved on since`;
    case 'mark-rolled-back':
      return `finished recording rollback from ${action.id} to ${action.to}`;
    case 'mark-failed':
      if (action.live) return `marked release ${action.id} failed (${action.reason ?? 'failed'}); it is still live because the switch back was interrupted: run atomic-deploy rollback`;
      return `marked release ${action.id} failed${action.reason ? ` (${action.reason})` : ''}${action.to ? `; ${action.to} is live` : ''}`;
    case 'clear-journal':
      return undefined;
  }
}

/**
 * Brings a root back to a consistent state after a crash: runs under the lock, finishes what
 * had switched, undoes what had not, and never removes current or the rollback target.
 * When `signal` aborts, the deletes of leftovers stop (the other steps are quick and still run)
 * and INTERRUPTED is thrown: what is left sits under leftover names, for the next command.
 */
export async function recoverRoot(layout: Layout, durable: boolean, signal?: AbortSignal): Promise<string[]> {
  const journalRead = await readJournal(layout);
  // A `current` made by hand to point into a leftover (`.tmp/stage.x`, `releases/.stage.x/sub`)
  // serves from it: every other command refuses such a current, and the sweeps keep what it reaches.
  const served = realpathOrUndefined(layout.current);
  const serves = (dir: string): boolean => {
    const real = realpathOrUndefined(dir);
    return served !== undefined && real !== undefined && (served === real || served.startsWith(`${real}${path.sep}`));
  };
  const kept: string[] = [];
  const inTmp = await fs.promises.readdir(layout.tmp).catch(() => [] as string[]);
  // What a live process deletes after its lock (act/claims.ts) is its own to finish.
  const busy = busyNames(layout, inTmp);
  const tmpEntries = inTmp.filter((name) => {
    if (busy.has(name)) return false;
    if (!serves(path.join(layout.tmp, name))) return true;
    kept.push(`kept .tmp/${name}: current points into it (move that tree into releases/<id>/ and point current at it)`);
    return false;
  });
  const journal = journalRead.kind === 'ok' ? journalRead.journal : null;
  const current = await readCurrent(layout);
  const currentId = current.kind === 'release' ? current.id : null;
  const releaseExists = journal ? fs.existsSync(path.join(layout.releases, journal.release)) : false;
  const record = journal && releaseExists ? readRecord(layout, journal.release) : undefined;
  const actions = planRecovery(journal, { currentId, releaseExists, tmpEntries, releaseWentLive: record !== undefined && recordWentLive(record) });
  const done: string[] = [];
  if (journalRead.kind === 'garbage') {
    actions.push({ kind: 'clear-journal' });
    done.push(journalRead.problem ? `discarded a journal that ${journalRead.problem} (nothing it names was touched)` : 'discarded an unreadable journal (no release was removed)');
  }
  for (const name of await sweepStateTemps(layout)) done.push(`removed a half-written ${name}`);
  const ordered = await releaseViews(layout);
  const named = actions.flatMap((a) => ('id' in a ? [a.id] : []));
  const area = await stagingArea(layout);
  // Every tree this recovery deletes, root-relative: what a signal may leave of them is named.
  const deleting = actions.flatMap((a) => (a.kind === 'remove-tmp' ? [path.relative(layout.root, path.join(layout.tmp, a.name))] : []));
  const program = recoveryProgram({
    actions,
    records: await readRecords(layout, named),
    damaged: new Set(named.filter((id) => recordDamage(layout, id) !== undefined)),
    ordered,
    currentId,
    trashFor: (id) => {
      const trash = path.relative(layout.root, trashPath(area, id));
      deleting.push(trash);
      return trash;
    },
    linkName: () => `current.${randomBytes(8).toString('hex')}`,
    now: new Date().toISOString(),
  });
  await runOnFs(layout.root, program, { durable, ...(signal ? { signal } : {}) });
  for (const action of actions) {
    // The program's delete of a leftover is best effort: one still there is said kept, with why.
    const stayed = action.kind === 'remove-tmp' && !signal?.aborted ? await undeleted(path.join(layout.tmp, action.name)) : undefined;
    const line = stayed === undefined ? describeAction(action) : `kept leftover .tmp/${action.kind === 'remove-tmp' ? action.name : ''}: ${stayed}`;
    if (line) done.push(line);
  }
  // Staging copies and trash kept inside releases/ (another mount than .tmp/); current never names them.
  for (const name of await fs.promises.readdir(layout.releases).catch(() => [] as string[])) {
    if (!isReleasesLeftover(name) || name === currentId || busy.has(name)) continue;
    if (serves(path.join(layout.releases, name))) {
      kept.push(`kept releases/${name}: current points into it (move that tree into releases/<id>/ and point current at it)`);
      continue;
    }
    deleting.push(path.relative(layout.root, path.join(layout.releases, name)));
    await deleteTree(path.join(layout.releases, name), { signal });
    if (signal?.aborted) break;
    done.push(`removed leftover releases/${name}`);
  }
  // A deploy cut off after writing its manifest but before placing its release leaves the manifest alone.
  if (journal?.op === 'deploy' && !fs.existsSync(path.join(layout.releases, journal.release))) await removeManifest(layout, journal.release, false);
  if (signal?.aborted) {
    const left = deleting.filter((p) => fs.existsSync(path.join(layout.root, p)));
    const sig = signalOf(signal.reason);
    const more = left.length > 1 ? ` (and ${left.length - 1} more)` : '';
    if (left[0] !== undefined) throw new DeployError('INTERRUPTED', `interrupted by ${sig} while removing ${left[0]}${more}, left by an interrupted operation; the next command removes the rest`, { signal: sig });
  }
  return [...done, ...kept];
}

/**
 * Why `dir` is still there after a best-effort delete (another user's files in it: an application's
 * sessions written into a release), with the way to remove it; undefined once it is gone.
 */
async function undeleted(dir: string): Promise<string | undefined> {
  if (!fs.existsSync(dir)) return undefined;
  try {
    await removeTree(dir);
    return undefined;
  } catch (error) {
    return `${whyNotDeleted(error)}; remove it as a user who may: rm -rf ${shellWord(dir)}`;
  }
}

function realpathOrUndefined(p: string): string | undefined {
  try {
    return fs.realpathSync(p);
  } catch {
    return undefined;
  }
}
