/**
 * The bookkeeping after a switch, defined once (see effects.ts): the journal written right after
 * the rename (`switched`, or `rolling-back` before a switch back), each release's record, and the
 * journal cleared once the records are down. Their texts are arguments: the local engine gives
 * them to runOnFs, an armed host reads them from stdin when the fleet's word comes.
 */
import { DeployError } from '../errors.ts';
import { releaseIdProblem } from '../plan/release-id.ts';
import type { RootProgram } from './effects.ts';
import { JOURNAL_PATH, recordPath } from './recover.ts';

export const STATE_DIR = '.atomic-deploy';

/**
 * `unwritten`: on a host any failure, locally only a lost race (ENOENT...): the caller decides
 * whether that stops it. Other local errors (a full disk, EIO) are thrown, as before.
 */
export type Recorded = 'written' | 'unwritten';

/** The journal replaced by the text given when the program runs. */
export function journalProgram(): RootProgram<Recorded, 'journal'> {
  return {
    name: 'write_journal',
    params: ['journal'],
    ops: [{ effect: { do: 'write', path: JOURNAL_PATH, text: { arg: 'journal' } }, orElse: [{ end: 'unwritten' }] }],
    done: 'written',
  };
}

/** Release `id`'s record replaced by the text given when the program runs; `name` tells the shell functions of several records apart. */
export function recordProgram(id: string, name = 'write_record'): RootProgram<Recorded, 'record'> {
  // Last line of defence: every id was validated where it was read, and this one becomes a path.
  const problem = releaseIdProblem(id);
  if (problem !== undefined) throw new DeployError('INTERNAL', `refusing a release log path for the invalid id ${JSON.stringify(id)}: ${problem}`);
  return {
    name,
    params: ['record'],
    ops: [{ effect: { do: 'write', path: recordPath(id), text: { arg: 'record' } }, orElse: [{ end: 'unwritten' }] }],
    done: 'written',
  };
}

/** The journal removed once the records say how the operation ended; its removal reaches the disk before the lock is released. */
export function clearJournalProgram(): RootProgram<'cleared'> {
  return {
    name: 'clear_journal',
    ops: [{ effect: { do: 'remove', path: JOURNAL_PATH } }, { effect: { do: 'durable', path: STATE_DIR } }],
    done: 'cleared',
  };
}
