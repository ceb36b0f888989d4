import fs from 'node:fs';
import path from 'node:path';
import type { Layout } from '../act/layout.ts';
import { removeManifest, sweepStateTemps } from '../act/manifest.ts';
import { listReleaseDirs, removeRelease } from '../act/releases.ts';
import { clearJournal, readJournal, readRecords, removeRecord, updateRecord, type ReleaseRecord } from '../act/state.ts';
import { readCurrent } from '../act/switch.ts';
import { planRecovery, type RecoveryAction } from '../plan/journal.ts';
import { orderReleases, rollbackTarget, type ReleaseFacts } from '../plan/releases.ts';

export interface ReleaseView extends ReleaseFacts {
  record?: ReleaseRecord;
}

/** Every release directory with what the release log knows of it, oldest first. */
export async function releaseViews(layout: Layout): Promise<ReleaseView[]> {
  const dirs = await listReleaseDirs(layout);
  const records = await readRecords(layout, dirs);
  const current = await readCurrent(layout);
  return orderReleases(
    dirs.map((id) => {
      const record = records.get(id);
      return record ? { id, seq: record.seq, status: record.status, previous: record.previous, record } : { id };
    }),
    current.kind === 'release' ? current.id : null,
  );
}

export function describeAction(action: RecoveryAction): string | undefined {
  switch (action.kind) {
    case 'remove-tmp':
      return `removed leftover .tmp/${action.name}`;
    case 'remove-release':
      return `removed release ${action.id} (${action.reason})`;
    case 'mark-deployed':
      return `finished recording deploy of ${action.id} (it was already live)`;
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
 */
export async function recoverRoot(layout: Layout, durable: boolean): Promise<string[]> {
  const journalRead = await readJournal(layout);
  const tmpEntries = await fs.promises.readdir(layout.tmp).catch(() => [] as string[]);
  const journal = journalRead.kind === 'ok' ? journalRead.journal : null;
  const current = await readCurrent(layout);
  const currentId = current.kind === 'release' ? current.id : null;
  const releaseExists = journal ? fs.existsSync(path.join(layout.releases, journal.release)) : false;
  const actions = planRecovery(journal, { currentId, releaseExists, tmpEntries });
  const done: string[] = [];
  if (journalRead.kind === 'garbage') {
    actions.push({ kind: 'clear-journal' });
    done.push(journalRead.problem ? `discarded a journal that ${journalRead.problem} (nothing it names was touched)` : 'discarded an unreadable journal (no release was removed)');
  }
  for (const name of await sweepStateTemps(layout)) done.push(`removed a half-written ${name}`);
  const now = new Date().toISOString();
  for (const action of actions) {
    switch (action.kind) {
      case 'remove-tmp':
        await fs.promises.rm(path.join(layout.tmp, action.name), { recursive: true, force: true });
        break;
      case 'remove-release': {
        const target = rollbackTarget(await releaseViews(layout), currentId);
        await removeRelease(layout, action.id, new Set(target ? [target.id] : []), { durable });
        await removeRecord(layout, action.id);
        await removeManifest(layout, action.id, false);
        break;
      }
      case 'mark-deployed':
        await updateRecord(layout, action.id, { status: 'complete', activatedAt: now }, durable);
        break;
      case 'mark-rolled-back':
        await updateRecord(layout, action.id, { status: 'rolled-back', endedAt: now }, durable);
        break;
      case 'mark-failed':
        await updateRecord(layout, action.id, { status: 'failed', ...(action.live ? {} : { endedAt: now }), ...(action.reason ? { reason: action.reason } : {}) }, durable);
        break;
      case 'clear-journal':
        await clearJournal(layout, durable);
        break;
    }
    const line = describeAction(action);
    if (line) done.push(line);
  }
  // A deploy cut off after writing its manifest but before placing its release leaves the manifest alone.
  if (journal?.op === 'deploy' && !fs.existsSync(path.join(layout.releases, journal.release))) await removeManifest(layout, journal.release, false);
  return done;
}
