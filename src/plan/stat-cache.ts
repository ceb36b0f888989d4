/**
 * The stat cache kept next to a release's manifest: for every file, the inode, size and ctime
 * it had once the release was made. A later deploy trusts the manifest's SHA-256 for a file only
 * while those still match: any write, chmod, chown, rename or link(2) of the inode moves its ctime,
 * and a file swapped for another has another inode. Everything else is hashed again.
 *
 * Pure: serialisation, parsing (untrusted input), and the trust decision.
 */
import type { Manifest } from './manifest.ts';

export const STAT_CACHE_FORMAT = 'atomic-deploy/stat-cache@1';

export interface FileStamp {
  ino: number;
  size: number;
  /** `stat().ctimeMs`: the same (sec, nsec) always gives the same number. */
  ctimeMs: number;
}

/** The cache file's bytes in pieces (see manifestChunks: never the whole text at once). */
export function* statCacheChunks(stamps: ReadonlyMap<string, FileStamp>): Generator<string> {
  let chunk = `{"format":${JSON.stringify(STAT_CACHE_FORMAT)},"files":[\n`;
  let i = 0;
  for (const [rel, s] of stamps) {
    // Numbers print as JSON.stringify prints them: only the path needs quoting, not an array per row.
    chunk += `${i === 0 ? '' : ',\n'}[${JSON.stringify(rel)},${s.ino},${s.size},${s.ctimeMs}]`;
    if (++i % 2048 === 0) {
      yield chunk;
      chunk = '';
    }
  }
  yield `${chunk}\n]}\n`;
}

export function serializeStatCache(stamps: ReadonlyMap<string, FileStamp>): string {
  return [...statCacheChunks(stamps)].join('');
}

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** The cache's stamps, or undefined when the text is anything but a well-formed cache (then nothing is trusted). */
export function parseStatCache(text: string): Map<string, FileStamp> | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || !('format' in raw) || !('files' in raw)) return undefined;
  if (raw.format !== STAT_CACHE_FORMAT || !Array.isArray(raw.files)) return undefined;
  const stamps = new Map<string, FileStamp>();
  for (const row of raw.files as unknown[]) {
    if (!Array.isArray(row) || row.length !== 4) return undefined;
    const [rel, ino, size, ctimeMs] = row as unknown[];
    if (typeof rel !== 'string' || !isCount(ino) || !isCount(size) || typeof ctimeMs !== 'number' || !Number.isFinite(ctimeMs)) return undefined;
    stamps.set(rel, { ino, size, ctimeMs });
  }
  return stamps;
}

/**
 * The SHA-256 a release's manifest gives for each of `files` that provably has not changed since
 * the cache was written: same inode, size and ctime as then, and a ctime earlier than the cache
 * file itself (`sealedAtMs`, its mtime on the same filesystem clock). A ctime equal to or after
 * that is "racy": a write in the same clock tick as the cache would not move it, so it is re-hashed.
 */
export function trustedHashes(
  manifest: Manifest,
  cache: ReadonlyMap<string, FileStamp>,
  sealedAtMs: number,
  now: ReadonlyMap<string, FileStamp>,
): Map<string, string> {
  const trusted = new Map<string, string>();
  for (const e of manifest.entries) {
    if (e.type !== 'file') continue;
    const then = cache.get(e.path);
    const seen = now.get(e.path);
    if (then === undefined || seen === undefined) continue;
    if (then.ctimeMs >= sealedAtMs) continue;
    if (then.ino !== seen.ino || then.size !== seen.size || then.ctimeMs !== seen.ctimeMs || then.size !== e.size) continue;
    trusted.set(e.path, e.sha256);
  }
  return trusted;
}

/** What an lstat of a live file shows that a restamp needs beyond its stamp. */
export interface SeenStamp extends FileStamp {
  nlink: number;
  mtimeMs: number;
}

/**
 * The stamp a release's stat cache may keep for one of its files across the unlink(2) of another
 * name of that inode (prune deleting an older release that shared it, which moves the ctime).
 * `before` and `after` are lstats of the file taken right before and right after that unlink.
 * Kept only when `before` is exactly the cached stamp and `after` differs by our unlink alone:
 * same inode, size and mtime, one link fewer; the same file with no link fewer keeps its stamp
 * only if its ctime did not move either. Anything else drops it, and the file is re-hashed.
 */
export function restamp(cached: FileStamp, before: SeenStamp, after: SeenStamp): FileStamp | undefined {
  if (before.ino !== cached.ino || before.size !== cached.size || before.ctimeMs !== cached.ctimeMs) return undefined;
  if (after.ino !== before.ino || after.size !== before.size || after.mtimeMs !== before.mtimeMs) return undefined;
  if (after.nlink === before.nlink) return after.ctimeMs === before.ctimeMs ? cached : undefined;
  if (after.nlink !== before.nlink - 1) return undefined;
  return { ino: after.ino, size: after.size, ctimeMs: after.ctimeMs };
}

/** The stamps a cache written again (a later seal) may carry over: a racy one under its old seal stays untrusted by leaving. */
export function carriedStamps(stamps: ReadonlyMap<string, FileStamp>, sealedAtMs: number): Map<string, FileStamp> {
  const kept = new Map<string, FileStamp>();
  for (const [rel, s] of stamps) if (s.ctimeMs < sealedAtMs) kept.set(rel, s);
  return kept;
}
