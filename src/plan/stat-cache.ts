/**
 * The stat cache kept next to a release's manifest: for every file, the inode, size and ctime
 * it had once the release was made. A later deploy trusts the manifest's SHA-256 for a file only
 * while those still match: any write, chmod, chown, rename or link(2) of the inode moves its ctime,
 * and a file swapped for another has another inode. Everything else is hashed again.
 *
 * Since @2 each row also keeps the file's owner: with the manifest's mode, a later hardlink deploy
 * then knows every fact its link decision needs from these two files alone, and lstats each
 * previous file once, just before linking it, to prove the stamp still holds (see stampedPrevious).
 *
 * Pure: serialisation, parsing (untrusted input), and the trust decision.
 */
import type { Manifest } from './manifest.ts';
import type { FileFacts, PreviousFile } from './strategy.ts';

export const STAT_CACHE_FORMAT = 'atomic-deploy/stat-cache@2';
/** Caches written before owners were kept: still read, their stamps trusted only against an lstat. */
export const STAT_CACHE_FORMAT_1 = 'atomic-deploy/stat-cache@1';

export interface FileStamp {
  ino: number;
  size: number;
  /** `stat().ctimeMs`: the same (sec, nsec) always gives the same number. */
  ctimeMs: number;
  /** The owner once the file was final (absent in @1 caches): a chown moves the ctime, so a matching stamp proves it still. */
  uid?: number;
  gid?: number;
}

/** The stamp a stat of a final file gives (fs.Stats and the like): what the cache keeps of it. */
export function stampOf(st: { ino: number; size: number; ctimeMs: number; uid: number; gid: number }): FileStamp {
  return { ino: st.ino, size: st.size, ctimeMs: st.ctimeMs, uid: st.uid, gid: st.gid };
}

/** The cache file's bytes in pieces (see manifestChunks: never the whole text at once). */
export function* statCacheChunks(stamps: ReadonlyMap<string, FileStamp>): Generator<string> {
  let chunk = `{"format":${JSON.stringify(STAT_CACHE_FORMAT)},"files":[\n`;
  let i = 0;
  for (const [rel, s] of stamps) {
    // Numbers print as JSON.stringify prints them: only the path needs quoting, not an array per row.
    // A stamp without its owner (carried from an @1 cache) is written with -1s, which parse as "unknown".
    chunk += `${i === 0 ? '' : ',\n'}[${JSON.stringify(rel)},${s.ino},${s.size},${s.ctimeMs},${s.uid ?? -1},${s.gid ?? -1}]`;
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
/** A uid or gid, or -1 for "not recorded". */
const isOwner = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= -1 && (v as number) <= 0xffffffff;

/** The cache's stamps, or undefined when the text is anything but a well-formed cache (then nothing is trusted). */
export function parseStatCache(text: string): Map<string, FileStamp> | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || !('format' in raw) || !('files' in raw)) return undefined;
  const columns = raw.format === STAT_CACHE_FORMAT ? 6 : raw.format === STAT_CACHE_FORMAT_1 ? 4 : 0;
  if (columns === 0 || !Array.isArray(raw.files)) return undefined;
  const stamps = new Map<string, FileStamp>();
  for (const row of raw.files as unknown[]) {
    if (!Array.isArray(row) || row.length !== columns) return undefined;
    const [rel, ino, size, ctimeMs, uid, gid] = row as unknown[];
    if (typeof rel !== 'string' || !isCount(ino) || !isCount(size) || typeof ctimeMs !== 'number' || !Number.isFinite(ctimeMs)) return undefined;
    if (columns === 4) {
      stamps.set(rel, { ino, size, ctimeMs });
      continue;
    }
    if (!isOwner(uid) || !isOwner(gid)) return undefined;
    stamps.set(rel, uid === -1 || gid === -1 ? { ino, size, ctimeMs } : { ino, size, ctimeMs, uid, gid });
  }
  return stamps;
}

/**
 * Whether a stamp's ctime is too close to the cache's seal to prove anything ("racy", as in git):
 * a write in the same clock tick would not have moved it. The seal is the cache file's mtime, on
 * the state directory's filesystem; the ctime is from the release's, which may be another one
 * (releases/ on another mount). A ctime in whole seconds may come from a filesystem that keeps only
 * seconds (ext4 with 128-byte inodes), where a later write in the same second keeps the same
 * ctime while the seal, kept to the nanosecond elsewhere, looks later: such ctimes need 2 s of
 * margin (FAT's 2-second times included), as the source cache's do.
 */
export function racyStamp(ctimeMs: number, sealedAtMs: number): boolean {
  const slack = ctimeMs % 1000 === 0 ? 2000 : 0;
  return ctimeMs + slack >= sealedAtMs;
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
    if (racyStamp(then.ctimeMs, sealedAtMs)) continue;
    if (then.ino !== seen.ino || then.size !== seen.size || then.ctimeMs !== seen.ctimeMs || then.size !== e.size) continue;
    trusted.set(e.path, e.sha256);
  }
  return trusted;
}

/**
 * The previous release's files as its manifest and stat cache describe them, for the build files
 * whose link decision they can make alone: a stamp with its owner, not racy against the seal, of a
 * file the manifest lists with the stamp's size (its mode is the manifest's). The link decision
 * (plan/strategy.ts) then compares them with the build file as it would an lstat, and takes the
 * manifest's hash for the previous file. Nothing here proves the file is still so: copyTree
 * lstats it just before link(2) and links it only if the stamp (device, inode, size, ctime, mode,
 * owner) still holds, else hashes it again or copies the build's. Every other build file is left
 * to an lstat of the previous release now, as before.
 */
export function stampedPrevious(
  manifest: Manifest,
  cache: ReadonlyMap<string, FileStamp>,
  sealedAtMs: number,
  files: Iterable<FileFacts>,
  /** A build file's manifest path (`/`-separated) from its relative path. */
  manifestPath: (rel: string) => string = (rel) => rel,
): Map<string, PreviousFile> {
  const listed = new Map<string, { size: number; mode: number }>();
  for (const e of manifest.entries) if (e.type === 'file') listed.set(e.path, e);
  const found = new Map<string, PreviousFile>();
  for (const f of files) {
    const p = manifestPath(f.rel);
    const then = cache.get(p);
    const entry = listed.get(p);
    if (then === undefined || entry === undefined || then.uid === undefined || then.gid === undefined) continue;
    if (racyStamp(then.ctimeMs, sealedAtMs) || then.size !== entry.size) continue;
    found.set(f.rel, { rel: f.rel, regular: true, size: then.size, mode: entry.mode, uid: then.uid, gid: then.gid, ino: then.ino, ctimeMs: then.ctimeMs });
  }
  return found;
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
  return { ino: after.ino, size: after.size, ctimeMs: after.ctimeMs, ...owner(after) };
}

/** A stamp's owner fields, when it has them. */
function owner(s: FileStamp): { uid?: number; gid?: number } {
  return s.uid === undefined || s.gid === undefined ? {} : { uid: s.uid, gid: s.gid };
}

/** The stamps a cache written again (a later seal) may carry over: a racy one under its old seal stays untrusted by leaving. */
export function carriedStamps(stamps: ReadonlyMap<string, FileStamp>, sealedAtMs: number): Map<string, FileStamp> {
  const kept = new Map<string, FileStamp>();
  for (const [rel, s] of stamps) if (!racyStamp(s.ctimeMs, sealedAtMs)) kept.set(rel, s);
  return kept;
}
