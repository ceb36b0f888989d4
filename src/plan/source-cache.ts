/**
 * The source cache (git's index, for builds): for every build file, the (dev, inode, size,
 * mtime ns, ctime ns) it had when it was read, and the SHA-256 of what was read. A later deploy
 * of the same build directory takes a file's hash from here, without reading it, only while all
 * five still match and the file's times are strictly older than the moment its bytes were read
 * (`sealedNs`). ctime cannot be set from user space, so a build that restores mtimes (`touch -r`,
 * SOURCE_DATE_EPOCH) still moves it; a write in the same clock tick as the read would not, which
 * is why an entry that is not older than that moment ("racy", as in git) is never written or trusted.
 *
 * Pure: serialisation with a checksum, parsing (untrusted input), the racy rule and the lookup.
 */
import { createHash } from 'node:crypto';

export const SOURCE_CACHE_FORMAT = 'atomic-deploy/source-cache@1';
/**
 * Bounds: past either, the remaining files are left out (they are only hashed again). A build of
 * more files than this gets no cache at all: it would cost a deploy tens of MiB at its peak.
 */
export const SOURCE_CACHE_MAX_FILES = 50_000;
export const SOURCE_CACHE_MAX_BYTES = 48 * 1024 * 1024;
/**
 * Build directories a root keeps a cache for, one file each: a deploy reads only its own. More
 * than one, so builds made side by side (two checkouts, a hotfix tree, builds that alternate)
 * do not each make the next deploy read the other one whole.
 */
export const SOURCE_CACHES_KEPT = 4;

/** The cache file's name for a build directory (its real path): 64 bits of its SHA-256; the file's own `source` field decides. */
export function sourceCacheName(source: string): string {
  return `source-cache-${createHash('sha256').update(source).digest('hex').slice(0, 16)}.json`;
}

export const SOURCE_CACHE_NAME = /^source-cache-[0-9a-f]{16}\.json$/;

/** Which of a root's cache files to remove so that `kept` remain: those used longest ago (then by name, for a fixed order). */
export function cachesToEvict(files: readonly { name: string; usedMs: number }[], kept = SOURCE_CACHES_KEPT): string[] {
  return [...files].sort((x, y) => y.usedMs - x.usedMs || (x.name < y.name ? -1 : x.name > y.name ? 1 : 0)).slice(kept).map((f) => f.name);
}

export interface SourceStamp {
  dev: bigint;
  ino: bigint;
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

export interface CachedFile {
  /** stampKey of the file when it was read. */
  stamp: string;
  sha256: string;
}

export interface SourceCache {
  /** The build directory (real path) the entries are relative to. */
  source: string;
  /** A filesystem-clock time taken before any of these files was read. */
  sealedNs: bigint;
  files: Map<string, CachedFile>;
}

const SECOND = 1_000_000_000n;

/**
 * Whether a file's times are too close to `sealedNs` to prove anything. A time in whole seconds
 * may come from a filesystem that keeps only seconds (ext4 with small inodes, FAT's 2 s), where
 * a later write can look up to 2 s older than it was: such times need 2 s of margin.
 */
export function isRacy(stamp: SourceStamp, sealedNs: bigint): boolean {
  const slack = (t: bigint): bigint => (t % SECOND === 0n ? 2n * SECOND : 0n);
  return stamp.ctimeNs + slack(stamp.ctimeNs) >= sealedNs || stamp.mtimeNs + slack(stamp.mtimeNs) >= sealedNs;
}

/** isRacy against one seal, for many files: times more than the largest slack before it are never racy, with two compares and no BigInt arithmetic. */
export function racyAgainst(sealedNs: bigint): (stamp: SourceStamp) => boolean {
  const settled = sealedNs - 2n * SECOND;
  return (stamp) => !(stamp.ctimeNs < settled && stamp.mtimeNs < settled) && isRacy(stamp, sealedNs);
}

/** The five fields as one string (`dev:ino:size:mtimeNs:ctimeNs`): equal strings, equal stamps; one compare, one field in the file. */
export function stampKey(s: SourceStamp): string {
  return `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;
}

const KEY = /^(?:0|[1-9][0-9]*)(?::(?:0|[1-9][0-9]*)){4}$/;

/** The stamp a key stands for (keys are checked by KEY before they get here). */
export function stampOfKey(key: string): SourceStamp {
  const [dev, ino, size, mtimeNs, ctimeNs] = key.split(':') as [string, string, string, string, string];
  return { dev: BigInt(dev), ino: BigInt(ino), size: Number(size), mtimeNs: BigInt(mtimeNs), ctimeNs: BigInt(ctimeNs) };
}

/**
 * The hashes the cache gives for the build as it is now: same directory, same five stamp
 * fields as recorded, and not racy against the cache's seal. Everything else must be read.
 */
export function cachedHashes(cache: SourceCache | undefined, source: string, now: Iterable<readonly [string, SourceStamp]>): Map<string, string> {
  const hashes = new Map<string, string>();
  if (cache === undefined || cache.source !== source) return hashes;
  const racy = racyAgainst(cache.sealedNs);
  for (const [rel, stamp] of now) {
    const hit = cache.files.get(rel);
    // Checked again on reading: a cache is input, and one that holds a racy entry proves nothing for it.
    if (hit === undefined || hit.stamp !== stampKey(stamp) || racy(stamp)) continue;
    hashes.set(rel, hit.sha256);
  }
  return hashes;
}

/** The cache to write after a deploy: every file read whose stamp is not racy against `sealedNs`. */
export function sourceCacheOf(source: string, sealedNs: bigint, read: Iterable<readonly [string, SourceStamp, string]>): SourceCache {
  const files = new Map<string, CachedFile>();
  const racy = racyAgainst(sealedNs);
  for (const [rel, stamp, sha256] of read) if (!racy(stamp)) files.set(rel, { stamp: stampKey(stamp), sha256 });
  return { source, sealedNs, files };
}

const SHA256 = /^[0-9a-f]{64}$/;
const NAT = /^(?:0|[1-9][0-9]*)$/;
const CHECK_TAIL = /,"check":"([0-9a-f]{64})"\}\n$/;

/**
 * The cache file's bytes in pieces, everything past the bounds left out. The
 * last piece carries the SHA-256 of all before it, so a cut or edited file is never trusted.
 */
export function* sourceCacheChunks(cache: SourceCache): Generator<string> {
  const hash = createHash('sha256');
  let piece = `{"format":${JSON.stringify(SOURCE_CACHE_FORMAT)},"source":${JSON.stringify(cache.source)},"sealedNs":"${cache.sealedNs}","files":[\n`;
  let bytes = 0;
  let rows = 0;
  for (const [rel, { stamp, sha256 }] of cache.files) {
    const row = `${rows === 0 ? '' : ',\n'}[${JSON.stringify(rel)},"${stamp}","${sha256}"]`;
    if (rows >= SOURCE_CACHE_MAX_FILES || bytes + piece.length + row.length > SOURCE_CACHE_MAX_BYTES - 256) break;
    piece += row;
    rows += 1;
    if (piece.length >= 64 * 1024) {
      bytes += piece.length;
      hash.update(piece);
      yield piece;
      piece = '';
    }
  }
  piece += '\n]';
  hash.update(piece);
  yield `${piece},"check":"${hash.digest('hex')}"}\n`;
}

export function serializeSourceCache(cache: SourceCache): string {
  return [...sourceCacheChunks(cache)].join('');
}

/** The cache, or undefined for anything but an intact cache of this format (then nothing is taken from it). */
export function parseSourceCache(text: string): SourceCache | undefined {
  const tail = CHECK_TAIL.exec(text);
  if (tail === null) return undefined;
  const body = text.slice(0, tail.index);
  if (createHash('sha256').update(body).digest('hex') !== tail[1]) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null || !('format' in raw) || raw.format !== SOURCE_CACHE_FORMAT) return undefined;
  if (!('source' in raw) || typeof raw.source !== 'string' || !('sealedNs' in raw) || typeof raw.sealedNs !== 'string' || !NAT.test(raw.sealedNs)) return undefined;
  if (!('files' in raw) || !Array.isArray(raw.files)) return undefined;
  const files = new Map<string, CachedFile>();
  for (const row of raw.files as unknown[]) {
    if (!Array.isArray(row) || row.length !== 3) return undefined;
    const [rel, stamp, sha256] = row as unknown[];
    if (typeof rel !== 'string' || rel === '' || typeof stamp !== 'string' || !KEY.test(stamp) || typeof sha256 !== 'string' || !SHA256.test(sha256)) return undefined;
    files.set(rel, { stamp, sha256 });
  }
  return { source: raw.source, sealedNs: BigInt(raw.sealedNs), files };
}
