import fs from 'node:fs';
import path from 'node:path';
import { DeployError, errnoOf } from '../errors.ts';
import type { Journal } from '../plan/journal.ts';
import { withDigest } from '../plan/manifest.ts';
import type { RecordedStatus } from '../plan/releases.ts';
import { releaseIdProblem } from '../plan/release-id.ts';
import type { Layout } from './layout.ts';
import { NOT_REGULAR, readRegularFile, readRegularFileSync } from './read.ts';
import { makeDirs } from './mkdirs.ts';

/** One release's entry in the release log, kept in `<root>/.atomic-deploy/releases/<id>.json`. */
export interface ReleaseRecord {
  id: string;
  /** Deploy order; absent for releases made before this tool took over the root. */
  seq?: number;
  status: RecordedStatus;
  createdAt: string;
  activatedAt?: string;
  /** When it stopped being current, and why, if it did by rollback or failed health check. */
  endedAt?: string;
  user: string;
  host: string;
  source: string;
  git?: { commit: string; dirty: boolean };
  /** For a release extracted from an artifact: its format, SHA-256, size and signer. */
  artifact?: { format: string; sha256: string; bytes: number; signedBy?: string };
  files: number;
  bytes: number;
  durationMs: number;
  /** What made the files (`copy`, `reflink`, `hardlink`; a fleet host: `rsync…`); `strategyRequested` when another was asked for. */
  strategy?: string;
  strategyRequested?: string;
  linked?: number;
  copied?: number;
  /** How its files were made durable before the switch; absent in records older than this field. */
  durability?: 'syncfs' | 'fsync' | 'off';
  /** `sha256:<hex>` of the release's manifest; absent for releases made before manifests. */
  digest?: string;
  previous: string | null;
  reason?: string;
  /** Processes still running from the release it replaced when it went live (absent: not checked). */
  staleProcesses?: number;
  /** Live but unverified: an after-switch hook or reload failed with no health check to decide (exit 7). */
  afterSwitchFailure?: string;
  /** When prune removed the release directory; the record stays as history. */
  prunedAt?: string;
}

export type JournalRead = { kind: 'none' } | { kind: 'ok'; journal: Journal } | { kind: 'garbage'; text: string; problem?: string };

/** Why a journal's release ids must not be used in a path, or undefined: the same rule as --release-id. */
function journalIdProblem(journal: Journal): string | undefined {
  for (const id of [journal.release, journal.previous]) {
    if (id === null && journal.op === 'deploy') continue;
    const problem = typeof id === 'string' ? releaseIdProblem(id) : 'it is not a string';
    if (problem) return `names an invalid release id ${JSON.stringify(id)}: ${problem}`;
  }
  return undefined;
}

export async function readJournal(layout: Layout): Promise<JournalRead> {
  let text: string;
  try {
    text = await readRegularFile(layout.journal);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return { kind: 'none' };
    if (errnoOf(error) === NOT_REGULAR) return { kind: 'garbage', text: '', problem: 'is not a regular file' };
    throw error;
  }
  try {
    const journal = JSON.parse(text) as Journal;
    const known = journal.v === 1 && (journal.op === 'deploy' || journal.op === 'rollback') && typeof journal.release === 'string';
    if (!known) return { kind: 'garbage', text };
    // An id that is a path (a/../../victim) would aim recovery's deletes and writes outside the root.
    const problem = journalIdProblem(journal);
    return problem ? { kind: 'garbage', text, problem } : { kind: 'ok', journal };
  } catch {
    return { kind: 'garbage', text };
  }
}

export async function ensureStateDirs(layout: Layout): Promise<void> {
  await makeDirs(layout.log, 0o755);
}

function recordFile(layout: Layout, id: string): string {
  // Last line of defence: every id was validated where it was read.
  if (releaseIdProblem(id) !== undefined) throw new DeployError('INTERNAL', `refusing a release log path for the invalid id ${JSON.stringify(id)}`);
  return path.join(layout.log, `${id}.json`);
}

/** Ids of every release the log has a record of (pruned ones included): one readdir, no record read. */
export async function listRecordIds(layout: Layout): Promise<string[]> {
  try {
    return (await fs.promises.readdir(layout.log))
      .filter((n) => n.endsWith('.json') && !n.startsWith('.'))
      .map((n) => n.slice(0, -'.json'.length))
      .filter((id) => releaseIdProblem(id) === undefined);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return [];
    throw error;
  }
}

export type RecordLoad = { kind: 'ok'; record: ReleaseRecord } | { kind: 'missing' } | { kind: 'damaged'; why: string };

/**
 * The record of release `id` from its file's text, the one rule for both engines (a fleet host
 * sends its records' texts with their file names): not JSON, not an object, or naming another
 * release is damaged, never taken for a record.
 */
export function recordFromText(text: string, id: string): RecordLoad {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { kind: 'damaged', why: text.trim() === '' ? 'empty' : 'not valid JSON' };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { kind: 'damaged', why: 'not a JSON object' };
  const record = parsed as ReleaseRecord;
  if (record.id !== id) return { kind: 'damaged', why: `it names another release (${JSON.stringify(record.id)})` };
  // A previous that is not a release id is dropped: it orders releases and must never reach a path.
  const previous = typeof record.previous === 'string' && releaseIdProblem(record.previous) === undefined ? record.previous : null;
  return { kind: 'ok', record: withDigest({ ...record, previous }) };
}

/** One release's record as its file holds it: readRecord and recordDamage are two views of this. */
function loadRecord(layout: Layout, id: string): RecordLoad {
  if (releaseIdProblem(id) !== undefined) return { kind: 'missing' };
  let text: string;
  try {
    text = readRegularFileSync(recordFile(layout, id));
  } catch (error) {
    // A log this user may not read is no missing log: statuses read as absent would make a failed
    // release a rollback target and let prune misjudge; the command stops with permission denied.
    const code = errnoOf(error);
    if (code === 'EACCES' || code === 'EPERM') throw error;
    return { kind: 'missing' };
  }
  return recordFromText(text, id);
}

/**
 * One release's record; undefined when there is none or it is damaged (that only loses this
 * release's metadata; the release itself is untouched).
 */
export function readRecord(layout: Layout, id: string): ReleaseRecord | undefined {
  const load = loadRecord(layout, id);
  return load.kind === 'ok' ? load.record : undefined;
}

/**
 * Why the record of `id` exists yet was read as absent (not JSON, not this release's, not an
 * object), or undefined when it is missing or fine. Asked only where readRecord found none: a
 * damaged record loses its release's status and order, which a user should hear about.
 */
export function recordDamage(layout: Layout, id: string): string | undefined {
  const load = loadRecord(layout, id);
  return load.kind === 'damaged' ? load.why : undefined;
}

/**
 * The records of these releases, or of every release the log knows when `ids` is left out. The
 * log keeps a record per deploy for good, so commands read only the records of the releases
 * still in releases/: a root with years of history costs one readdir, not thousands of reads.
 */
export async function readRecords(layout: Layout, ids?: readonly string[]): Promise<Map<string, ReleaseRecord>> {
  const records = new Map<string, ReleaseRecord>();
  // Small files read one after another: cheaper than a promise and a thread-pool trip each.
  for (const id of ids ?? (await listRecordIds(layout))) {
    const record = readRecord(layout, id);
    if (record) records.set(record.id, record);
  }
  return records;
}

export async function removeRecord(layout: Layout, id: string): Promise<void> {
  if (releaseIdProblem(id) !== undefined) return;
  await fs.promises.rm(recordFile(layout, id), { force: true });
}

/**
 * The sequence number of a new release: after every release in `records`, which must hold the
 * records of every release in releases/ (the ones it is ordered among; a pruned release's
 * record is history and may share a number).
 */
export function nextSeq(records: ReadonlyMap<string, ReleaseRecord>): number {
  let max = 0;
  for (const r of records.values()) max = Math.max(max, r.seq ?? 0);
  return max + 1;
}
