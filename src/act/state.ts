import fs from 'node:fs';
import path from 'node:path';
import { errnoOf } from '../errors.ts';
import type { Journal } from '../plan/journal.ts';
import type { RecordedStatus } from '../plan/releases.ts';
import { fsyncDir, writeFileAtomic } from './durable.ts';
import type { Layout } from './layout.ts';

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
  files: number;
  bytes: number;
  durationMs: number;
  strategy?: string;
  linked?: number;
  copied?: number;
  previous: string | null;
  reason?: string;
  /** When prune removed the release directory; the record stays as history. */
  prunedAt?: string;
}

export type JournalRead = { kind: 'none' } | { kind: 'ok'; journal: Journal } | { kind: 'garbage'; text: string };

export async function readJournal(layout: Layout): Promise<JournalRead> {
  let text: string;
  try {
    text = await fs.promises.readFile(layout.journal, 'utf8');
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return { kind: 'none' };
    throw error;
  }
  try {
    const journal = JSON.parse(text) as Journal;
    const known = journal.v === 1 && (journal.op === 'deploy' || journal.op === 'rollback') && typeof journal.release === 'string';
    return known ? { kind: 'ok', journal } : { kind: 'garbage', text };
  } catch {
    return { kind: 'garbage', text };
  }
}

export async function writeJournal(layout: Layout, journal: Journal, durable: boolean): Promise<void> {
  // A root taken over from another tool has no state directory yet.
  await fs.promises.mkdir(layout.state, { recursive: true, mode: 0o755 });
  await writeFileAtomic(layout.journal, JSON.stringify(journal) + '\n', durable);
}

export async function clearJournal(layout: Layout, durable: boolean): Promise<void> {
  await fs.promises.rm(layout.journal, { force: true });
  if (durable) await fsyncDir(layout.state);
}

export async function ensureStateDirs(layout: Layout): Promise<void> {
  await fs.promises.mkdir(layout.log, { recursive: true, mode: 0o755 });
}

function recordFile(layout: Layout, id: string): string {
  return path.join(layout.log, `${id}.json`);
}

export async function readRecords(layout: Layout): Promise<Map<string, ReleaseRecord>> {
  const records = new Map<string, ReleaseRecord>();
  let names: string[];
  try {
    names = await fs.promises.readdir(layout.log);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return records;
    throw error;
  }
  await Promise.all(
    names.filter((n) => n.endsWith('.json') && !n.startsWith('.')).map(async (name) => {
      try {
        const record = JSON.parse(await fs.promises.readFile(path.join(layout.log, name), 'utf8')) as ReleaseRecord;
        if (typeof record.id === 'string') records.set(record.id, record);
      } catch {
        // A damaged record only loses that release's metadata; the release itself is untouched.
      }
    }),
  );
  return records;
}

export async function writeRecord(layout: Layout, record: ReleaseRecord, durable: boolean): Promise<void> {
  await fs.promises.mkdir(layout.log, { recursive: true, mode: 0o755 });
  await writeFileAtomic(recordFile(layout, record.id), JSON.stringify(record, null, 2) + '\n', durable);
}

export async function updateRecord(
  layout: Layout,
  id: string,
  change: Partial<ReleaseRecord>,
  durable: boolean,
): Promise<void> {
  const records = await readRecords(layout);
  // A release made by another tool gets a record without a sequence number, so its order stays.
  const existing = records.get(id) ?? { id, status: 'complete', createdAt: '', user: '', host: '', source: '', files: 0, bytes: 0, durationMs: 0, previous: null };
  await writeRecord(layout, { ...existing, ...change }, durable);
}

export async function removeRecord(layout: Layout, id: string): Promise<void> {
  await fs.promises.rm(recordFile(layout, id), { force: true });
}

export function nextSeq(records: ReadonlyMap<string, ReleaseRecord>): number {
  let max = 0;
  for (const r of records.values()) max = Math.max(max, r.seq ?? 0);
  return max + 1;
}
