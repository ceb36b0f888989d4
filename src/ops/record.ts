/**
 * The local engine's journal and release-log bookkeeping: src/root/record.ts's programs run on
 * this machine, the same programs an armed fleet host runs after its switch.
 */
import type { Layout } from '../act/layout.ts';
import { readRecords, recordDamage, type ReleaseRecord } from '../act/state.ts';
import { DeployError } from '../errors.ts';
import type { Journal } from '../plan/journal.ts';
import { releaseIdProblem } from '../plan/release-id.ts';
import { runOnFs } from '../root/fs.ts';
import { clearJournalProgram, journalProgram, recordProgram, type Recorded } from '../root/record.ts';
import { mergedRecord } from '../root/recover.ts';

function written(outcome: Recorded, what: string): void {
  // Locally only a lost race lands here (a directory where the file goes): the write did not happen.
  if (outcome === 'unwritten') throw new DeployError('IO', `cannot write ${what}`);
}

/** The journal replaced whole (temp file, fsync, rename, fsync of the state directory). */
export async function recordJournal(layout: Layout, journal: Journal, durable: boolean): Promise<void> {
  written(await runOnFs(layout.root, journalProgram(), { durable, args: { journal: JSON.stringify(journal) } }), 'the journal');
}

/** Release `id`'s record with `change` merged in, replaced whole; a directory of another tool whose name is no valid id gets none. */
export async function recordRelease(layout: Layout, id: string, change: Partial<ReleaseRecord>, durable: boolean): Promise<void> {
  if (releaseIdProblem(id) !== undefined) return;
  // A damaged record is evidence of a hand edit or a copy from elsewhere: kept as it is (its
  // release is read as one without a record, and `releases` warns), never replaced by made-up fields.
  if (recordDamage(layout, id) !== undefined) return;
  const record = mergedRecord(await readRecords(layout, [id]), id, change);
  written(await runOnFs(layout.root, recordProgram(id), { durable, args: { record: JSON.stringify(record, null, 2) } }), `the record of ${id}`);
}

/** The journal removed, and its removal made durable. */
export async function clearJournalRecord(layout: Layout, durable: boolean): Promise<void> {
  await runOnFs(layout.root, clearJournalProgram(), { durable });
}
