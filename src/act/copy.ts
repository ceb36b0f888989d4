import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DeployError, errnoOf } from '../errors.ts';
import type { ManifestEntry } from '../plan/manifest.ts';
import { escapedName } from '../plan/paths.ts';
import { signalOf } from '../plan/validate.ts';
import { stampOf, type FileStamp } from '../plan/stat-cache.ts';
import type { PreviousFile } from '../plan/strategy.ts';
import { hashFileSync } from './manifest.ts';

export type EntryKind = 'dir' | 'file' | 'symlink';

/** One entry of a source tree, from a single lstat. */
export interface SourceEntry {
  rel: string;
  kind: EntryKind;
  mode: number;
  size: number;
  uid: number;
  gid: number;
  /** Times in whole milliseconds (what `stat().mtime` gives), kept as numbers: 100k Dates cost GC time. */
  atimeMs: number;
  mtimeMs: number;
  /** 512-byte blocks allocated: fewer than the size needs means the file has holes. */
  blocks: number;
  /** The rest of the file's stamp, exact to the nanosecond, for the source cache. */
  dev: bigint;
  ino: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  /** A symlink's text, read by the scan as bytes and found to be UTF-8 (the copy makes this very link). */
  target?: string;
}

export interface SourceScan {
  dir: string;
  /** Pre-order: every directory comes before what it holds. */
  entries: SourceEntry[];
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
}

function kindOf(stat: fs.BigIntStats): string {
  if (stat.isDirectory()) return 'dir';
  if (stat.isFile()) return 'file';
  if (stat.isSymbolicLink()) return 'symlink';
  if (stat.isFIFO()) return 'FIFO';
  if (stat.isSocket()) return 'socket';
  if (stat.isBlockDevice()) return 'block device';
  if (stat.isCharacterDevice()) return 'character device';
  return 'special file';
}

/** Whole milliseconds, rounded as `Math.round(stat().mtimeMs)` would. */
const roundMs = (ns: bigint): number => Math.round(Number(ns) / 1e6);

function entryOf(rel: string, stat: fs.BigIntStats, kind: EntryKind): SourceEntry {
  return {
    rel,
    kind,
    mode: Number(stat.mode) & 0o7777,
    size: kind === 'file' ? Number(stat.size) : 0,
    uid: Number(stat.uid),
    gid: Number(stat.gid),
    atimeMs: roundMs(stat.atimeNs),
    mtimeMs: roundMs(stat.mtimeNs),
    blocks: Number(stat.blocks),
    dev: stat.dev,
    ino: stat.ino,
    mtimeNs: stat.mtimeNs,
    ctimeNs: stat.ctimeNs,
  };
}

/** `dir/rel` without path.join's normalising: every rel here is already normal, and this runs per file. */
function under(dir: string, rel: string): string {
  return rel === '' ? dir : `${dir}${path.sep}${rel}`;
}

/**
 * A time for utimes: seconds, or a Date before 1970, because Node turns a negative number of
 * seconds into "now" (a pre-1970 time from an archive or a build would become the deploy's time).
 */
export const secs = (ms: number): number | Date => (ms < 0 ? new Date(ms) : ms / 1000);

/**
 * Throws for a name in `dir/rel` that is not valid UTF-8. Called only when a name as read holds
 * U+FFFD: what the decoder makes of such bytes, and also a valid character a name may hold.
 */
function refuseNonUtf8(dir: string, rel: string): void {
  for (const name of fs.readdirSync(under(dir, rel), { encoding: 'buffer' })) {
    if (isUtf8(name)) continue;
    const shown = under(dir, rel === '' ? escapedName(name) : `${rel}${path.sep}${escapedName(name)}`);
    // The tar and zip readers' words for such an entry; a manifest, and a release log, can only name UTF-8 paths.
    throw new DeployError('INVALID_SOURCE', `${shown} is not valid UTF-8 (invalid bytes shown as \\xNN); a release can hold only UTF-8 names`, {
      hint: 'rename it in the build, then deploy again; nothing was written',
    });
  }
}

const EUID = process.geteuid?.() ?? 0;
const GROUPS = new Set([process.getegid?.() ?? 0, ...(process.getgroups?.() ?? [])]);

/**
 * Whether the deploying user may read a file (and search a directory), from its mode bits alone:
 * the scan's lstat already has them, so the common case costs no system call. Owner bits alone
 * count for the owner, group bits for a member, as the kernel decides.
 */
function modeLetsRead(stat: fs.BigIntStats, kind: EntryKind): boolean {
  if (EUID === 0) return true;
  const need = kind === 'dir' ? 5 : 4;
  const mode = Number(stat.mode);
  const bits = Number(stat.uid) === EUID ? mode >> 6 : GROUPS.has(Number(stat.gid)) ? mode >> 3 : mode;
  return (bits & need) === need;
}

/**
 * Refuses a file or directory the deploy could not read, while nothing is written yet: found at
 * copy time, the root would already hold a staging directory. The mode bits decide unless they
 * say no; then access(2) does, since an ACL may still allow it.
 */
function refuseUnreadable(dir: string, rel: string, stat: fs.BigIntStats, kind: EntryKind): void {
  if (kind === 'symlink' || modeLetsRead(stat, kind)) return;
  const at = under(dir, rel);
  try {
    fs.accessSync(at, kind === 'dir' ? fs.constants.R_OK | fs.constants.X_OK : fs.constants.R_OK);
  } catch (error) {
    throw new DeployError('INVALID_SOURCE', `cannot read ${at}: permission denied; nothing was deployed`, { cause: error });
  }
}

/**
 * A build's symlink text, which must be UTF-8 like its names: read as text, other bytes would turn
 * into U+FFFD and the release's link would point somewhere the build's does not.
 */
function linkText(dir: string, rel: string): string {
  const bytes = fs.readlinkSync(under(dir, rel), { encoding: 'buffer' });
  if (isUtf8(bytes)) return bytes.toString('utf8');
  throw new DeployError('INVALID_SOURCE', `${under(dir, rel)} is a symlink to ${escapedName(bytes)}, which is not valid UTF-8 (invalid bytes shown as \\xNN); a release can hold only UTF-8 link targets`, {
    hint: 'rename its target in the build, then deploy again; nothing was written',
  });
}

/** What the scan refuses: every entry the release cannot take, found in one run, refused together at the end. */
interface Refusal {
  error: DeployError;
  what: string;
}

/** Entries the walk reads between two chances for the event loop (a power of two). */
const SCAN_STEP = 64;

/**
 * The scan's walk, SCAN_STEP entries per step: a generator, so that the asynchronous scan can let the
 * event loop (and a Ctrl-C) in between entries while the synchronous one runs straight through.
 * An explicit stack, not recursion, keeps the pre-order of a recursive walk (a directory, then
 * what it holds, then its next sibling) at any depth.
 */
function* walkSource(dir: string, scan: SourceScan, refused: Refusal[]): Generator<void, void, void> {
  const refuse = (run: () => void, what: string): boolean => {
    try {
      run();
      return false;
    } catch (error) {
      if (!(error instanceof DeployError)) throw error;
      refused.push({ error, what });
      return true;
    }
  };
  const stack: { rel: string; names: string[]; next: number }[] = [];
  const open = (rel: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(under(dir, rel));
    } catch (error) {
      refused.push({ error: new DeployError('INVALID_SOURCE', `cannot read ${under(dir, rel)}: ${errnoOf(error) ?? String(error)}`, { cause: error }), what: `${under(dir, rel)} (${errnoOf(error) ?? 'unreadable'})` });
      return;
    }
    if (names.some((name) => name.includes('\uFFFD')) && refuse(() => refuseNonUtf8(dir, rel), `a name in ${under(dir, rel)} (not UTF-8)`)) return;
    names.sort();
    stack.push({ rel, names, next: 0 });
  };
  open('');
  let count = 0;
  for (let frame = stack.at(-1); frame !== undefined; frame = stack.at(-1)) {
    const name = frame.names[frame.next++];
    if (name === undefined) {
      stack.pop();
      continue;
    }
    if ((++count & (SCAN_STEP - 1)) === 0) yield;
    const childRel = frame.rel === '' ? name : `${frame.rel}${path.sep}${name}`;
    const stat = fs.lstatSync(under(dir, childRel), { bigint: true });
    const kind = kindOf(stat);
    if (kind !== 'dir' && kind !== 'file' && kind !== 'symlink') {
      refused.push({
        error: new DeployError('UNSUPPORTED_FILE', `${under(dir, childRel)} is a ${kind}; a release can hold only files, directories and symlinks`, {
          hint: 'remove it from the build, or make it at start-up from a shared path',
        }),
        what: `${under(dir, childRel)} (a ${kind})`,
      });
      continue;
    }
    if (refuse(() => refuseUnreadable(dir, childRel, stat, kind), `${under(dir, childRel)} (permission denied)`)) continue;
    const entry = entryOf(childRel, stat, kind);
    if (kind === 'symlink' && refuse(() => (entry.target = linkText(dir, childRel)), `${under(dir, childRel)} (a link target not UTF-8)`)) continue;
    scan.entries.push(entry);
    if (kind === 'dir') {
      scan.dirs += 1;
      open(childRel);
    } else if (kind === 'file') {
      scan.files += 1;
      scan.bytes += Number(stat.size);
    } else {
      scan.symlinks += 1;
    }
  }
}

function startScan(dir: string): { scan: SourceScan; refused: Refusal[] } {
  const scan: SourceScan = { dir, entries: [], files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  // BigInt stats: the source cache compares times to the nanosecond, which a double cannot hold.
  const rootStat = fs.statSync(dir, { bigint: true });
  refuseUnreadable(dir, '', rootStat, 'dir');
  scan.entries.push(entryOf('', rootStat, 'dir'));
  return { scan, refused: [] };
}

function endScan(scan: SourceScan, refused: readonly Refusal[]): SourceScan {
  const [first, ...others] = refused;
  if (first === undefined) return scan;
  if (others.length === 0) throw first.error;
  const shown = others.slice(0, MORE_REFUSED_SHOWN).map((r) => r.what);
  const more = others.length > shown.length ? `, and ${others.length - shown.length} more` : '';
  throw new DeployError(first.error.code, `${first.error.message}; also ${shown.join(', ')}${more}`, { cause: first.error.cause, hint: first.error.hint });
}

/**
 * Lists a source tree before anything is written, so a FIFO, socket or device deep inside
 * is refused while the deploy root is still untouched. Symlinks are listed, never followed.
 */
export function scanSource(dir: string): SourceScan {
  const { scan, refused } = startScan(dir);
  for (const _ of walkSource(dir, scan, refused));
  return endScan(scan, refused);
}

/** How long the asynchronous scan reads before it lets the event loop run (a signal's handler among it). */
const SCAN_SLICE_MS = 25;

/**
 * scanSource for a command that a signal may stop: the same walk, with the event loop let in every
 * SCAN_SLICE_MS, so Ctrl-C during the scan of a large build is answered within that time rather
 * than after the whole tree (seconds at 100,000 files). Aborted, it throws INTERRUPTED: nothing has
 * been written while a build is scanned.
 */
export async function scanSourceAsync(dir: string, signal?: AbortSignal): Promise<SourceScan> {
  const { scan, refused } = startScan(dir);
  let sliceEnd = performance.now() + SCAN_SLICE_MS;
  for (const _ of walkSource(dir, scan, refused)) {
    if (performance.now() < sliceEnd) continue;
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (signal?.aborted) {
      const sig = signalOf(signal.reason);
      throw new DeployError('INTERRUPTED', `interrupted by ${sig} while reading ${dir}; nothing changed`, { signal: sig });
    }
    sliceEnd = performance.now() + SCAN_SLICE_MS;
  }
  return endScan(scan, refused);
}

/** How many more refused build entries one error line names after the first. */
const MORE_REFUSED_SHOWN = 5;

export interface CopyProgress {
  files: number;
  bytes: number;
}

/** A file taken from the previous release by hardlink, and the SHA-256 its bytes were found to have. */
export interface LinkSource {
  from: string;
  sha256: string;
  /** The file as it was when that hash was decided (an lstat, or its release's stat cache): it is linked only if it is still that. */
  stamp: PreviousFile;
  /** The previous release's device: a path that now leads to another filesystem is not the file decided on. */
  dev: number;
  /** The previous release's directory, symlinks resolved: where `stamp.rel` must still lead for a re-read file to be linked. */
  realDir: string;
  /**
   * Whether `stamp` is the one the previous release's stat cache took when that release was made:
   * while it holds, no name was added to the inode since. Otherwise (no cache, or the ctime moved)
   * every name of the inode must be accounted for in `releaseDirs` before it is linked.
   */
  cached?: boolean;
  /** Every release directory of the root (the previous one included), where an inode's names may legitimately be. */
  releaseDirs?: readonly string[];
}

/**
 * Whether every name of this inode is the same path in a release (`st.nlink` of them): a release
 * file hardlinked from elsewhere (`ln -f`, or a dedup tool such as hardlink(1), rdfind or jdupes
 * run over the disk) shares it with a build tree, `shared/` or another path of its release, and a
 * write in place there would reach every release linking it. A name not found is one elsewhere.
 */
function namesAllInReleases(st: fs.Stats, source: LinkSource): boolean {
  if (st.nlink <= 1) return true;
  const dirs = source.releaseDirs;
  if (dirs === undefined) return false;
  let names = 0;
  for (const dir of dirs) {
    const other = lstatOrNone(`${dir}${path.sep}${source.stamp.rel}`);
    if (other !== undefined && other.dev === st.dev && other.ino === st.ino) names += 1;
    if (names >= st.nlink) return true;
  }
  return false;
}

/** A directory's real path, or '' if it has none now. */
function realOr(dir: string): string {
  try {
    return fs.realpathSync(dir);
  } catch {
    return '';
  }
}

/** Whether an lstat shows the file the link was decided on: same device, inode, size, ctime, mode and owner. */
function sameFile(st: fs.Stats, source: LinkSource): boolean {
  const s = source.stamp;
  return st.isFile() && st.dev === source.dev && st.ino === s.ino && st.size === s.size && st.ctimeMs === s.ctimeMs && (st.mode & 0o7777) === s.mode && st.uid === s.uid && st.gid === s.gid;
}

/**
 * Whether a file of the previous release may be linked now: still the one whose hash was decided
 * (sameFile), proved by one lstat just before link(2), which itself moves the ctime, so after the
 * link the stamp can no longer tell. A write in between (the live release's own app, seconds
 * later) moves the ctime. A file whose ctime alone moved (a chmod back, a touch, another link to
 * it) is read again: it is linked only if it is still reached through the release's own
 * directories, its bytes are still the build's, and a second lstat shows that nothing moved while
 * they were read. Anything else is copied from the build.
 */
function mayLink(source: LinkSource, realDirs: Map<string, boolean>): boolean {
  const st = lstatOrNone(source.from);
  if (st === undefined) return false;
  // The file is reached through the release's own directories, checked once per directory: one
  // moved into shared/ by rename and replaced by a symlink keeps its files' stamps (a rename of a
  // directory moves no ctime of what it holds), and a link through it would share them with shared/.
  const dir = path.dirname(source.from);
  let real = realDirs.get(dir);
  if (real === undefined) {
    real = realOr(dir) === path.dirname(path.join(source.realDir, source.stamp.rel));
    realDirs.set(dir, real);
  }
  if (!real) return false;
  if (sameFile(st, source)) return source.cached === true || namesAllInReleases(st, source);
  const s = source.stamp;
  const moved: LinkSource = { ...source, stamp: { ...s, ino: st.ino, ctimeMs: st.ctimeMs } };
  if (st.ino !== s.ino || !sameFile(st, moved)) return false;
  // Another link to the inode moves its ctime too: one made through a directory swapped for a
  // symlink (into shared/, say) since the check above would share the file with whatever is
  // there. Its real directory must still be the release's.
  if (realOr(dir) !== path.dirname(path.join(source.realDir, s.rel))) return false;
  try {
    if (hashFileSync(source.from, true, st.size).sha256 !== source.sha256) return false;
  } catch {
    return false;
  }
  const again = lstatOrNone(source.from);
  return again !== undefined && sameFile(again, moved) && namesAllInReleases(again, source);
}

/**
 * The previous release's file, or none when it cannot be looked at: gone, or a directory on its
 * path replaced by a file or a symlink loop since (ENOTDIR, ELOOP), or closed to us. Whatever the
 * reason, the build's file is copied instead, which is always right.
 */
function lstatOrNone(file: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(file, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

export interface CopyOptions {
  /**
   * `always`: copy-on-write clones or fail; `auto`: clones where `cloneWorks` says the filesystem
   * can (falling back to a copy per file); `never`: plain copies. Every copy is hashed as it is made.
   */
  reflink?: 'auto' | 'always' | 'never';
  /** Whether a clone probe succeeded (auto only); clones are then tried first. */
  cloneWorks?: boolean;
  /** Files to hardlink instead of copy (rel path → existing file and its known hash). */
  linkFrom?: ReadonlyMap<string, LinkSource>;
  onProgress?: (progress: CopyProgress) => void;
  /** Called once when half the files are written (a failpoint lives there). */
  onHalf?: () => Promise<void>;
  signal?: AbortSignal;
  /** Files in flight; the thread pool does the work. */
  concurrency?: number;
}

export interface CopyResult {
  files: number;
  bytes: number;
  linked: number;
  copied: number;
  /** What the copy holds, hashed from the bytes as they were written (linked files: their known hash). */
  manifest: ManifestEntry[];
  /** Inode, size and ctime of every file once it was final: the stat cache. */
  stamps: Map<string, FileStamp>;
}

const IS_ROOT = process.getuid?.() === 0;

/** Files up to this size are copied synchronously (see copyEntries). */
const SMALL_FILE = 64 * 1024;
/** Read/write unit of the copy: a sparse file's holes are kept at this granularity. */
const CHUNK = 256 * 1024;
const ZEROES = Buffer.alloc(CHUNK);

/** A file has holes when it has fewer blocks than its size needs (what `cp --sparse=auto` asks too). */
const looksSparse = (entry: SourceEntry): boolean => entry.blocks * 512 < entry.size;

const isZero = (buf: Buffer, n: number): boolean => buf.subarray(0, n).equals(ZEROES.subarray(0, n));

const OPEN_SOURCE = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW;
const OPEN_DEST = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL;

function notRegular(from: string): DeployError {
  return new DeployError('UNSUPPORTED_FILE', `${from} stopped being a regular file while it was copied`, {
    hint: 'let the build finish before deploying; a release can hold only files, directories and symlinks',
  });
}

interface Copied {
  sha256: string;
  size: number;
  stamp: FileStamp;
}

/** Owner, mode and times from the scan, on the open descriptor, then its stamp (after the last change). */
function finishSync(fd: number, entry: SourceEntry): FileStamp {
  if (IS_ROOT && (entry.uid !== 0 || entry.gid !== 0)) fs.fchownSync(fd, entry.uid, entry.gid);
  // After the chown, which clears setuid/setgid.
  fs.fchmodSync(fd, entry.mode);
  fs.futimesSync(fd, secs(entry.atimeMs), secs(entry.mtimeMs));
  const st = fs.fstatSync(fd);
  return stampOf(st);
}

/**
 * Copies one file through user space, hashing the bytes on their way: one read of the source,
 * the SHA-256 for free. Node's copyFile (copy_file_range) would be as fast but hides the bytes,
 * and hashing them after would be a second read. Zero chunks of a file with holes are skipped
 * (seek, not write), so holes stay holes.
 */
function copyHashedSync(from: string, to: string, entry: SourceEntry, buf: Buffer): Copied {
  const src = fs.openSync(from, OPEN_SOURCE);
  try {
    if (!fs.fstatSync(src).isFile()) throw notRegular(from);
    const dst = fs.openSync(to, OPEN_DEST, 0o600);
    try {
      const hash = createHash('sha256');
      const sparse = looksSparse(entry);
      let pos = 0;
      for (;;) {
        const n = fs.readSync(src, buf, 0, buf.length, null);
        if (n === 0) break;
        hash.update(buf.subarray(0, n));
        if (!sparse || !isZero(buf, n)) fs.writeSync(dst, buf, 0, n, pos);
        pos += n;
      }
      if (sparse) fs.ftruncateSync(dst, pos);
      return { sha256: hash.digest('hex'), size: pos, stamp: finishSync(dst, entry) };
    } finally {
      fs.closeSync(dst);
    }
  } finally {
    fs.closeSync(src);
  }
}

/** The same for large files, through the thread pool, so their data moves while the loop goes on. */
async function copyHashed(from: string, to: string, entry: SourceEntry, buf: Buffer): Promise<Copied> {
  const src = await fs.promises.open(from, OPEN_SOURCE);
  try {
    if (!(await src.stat()).isFile()) throw notRegular(from);
    const dst = await fs.promises.open(to, OPEN_DEST, 0o600);
    try {
      const hash = createHash('sha256');
      const sparse = looksSparse(entry);
      let pos = 0;
      for (;;) {
        const { bytesRead: n } = await src.read(buf, 0, buf.length, null);
        if (n === 0) break;
        hash.update(buf.subarray(0, n));
        if (!sparse || !isZero(buf, n)) await dst.write(buf, 0, n, pos);
        pos += n;
      }
      if (sparse) await dst.truncate(pos);
      if (IS_ROOT && (entry.uid !== 0 || entry.gid !== 0)) await dst.chown(entry.uid, entry.gid);
      await dst.chmod(entry.mode);
      await dst.utimes(secs(entry.atimeMs), secs(entry.mtimeMs));
      const st = await dst.stat();
      return { sha256: hash.digest('hex'), size: pos, stamp: stampOf(st) };
    } finally {
      await dst.close();
    }
  } finally {
    await src.close();
  }
}

const PROC_FD = process.platform === 'linux' && fs.existsSync('/proc/self/fd');

/** A name for an open descriptor's file that a rename cannot retarget (Linux /proc); elsewhere the path. */
function pinnedPath(fd: number, from: string): string {
  return PROC_FD ? `/proc/self/fd/${fd}` : from;
}

/**
 * A copy-on-write clone, then one read of the clone to hash it: a clone moves no bytes through
 * user space, and hashing the clone (not the source) describes exactly what the release holds.
 */
async function cloneHashed(from: string, to: string, entry: SourceEntry, mode: number, buf: Buffer): Promise<Copied> {
  // copyFile opens its source blocking: it gets the checked descriptor's own file, never a FIFO swapped in since.
  const src = await fs.promises.open(from, OPEN_SOURCE);
  try {
    if (!(await src.stat()).isFile()) throw notRegular(from);
    await fs.promises.copyFile(pinnedPath(src.fd, from), to, mode);
  } finally {
    await src.close();
  }
  const dst = await fs.promises.open(to, fs.constants.O_RDWR | fs.constants.O_NOFOLLOW);
  try {
    const hash = createHash('sha256');
    let size = 0;
    for (;;) {
      const { bytesRead: n } = await dst.read(buf, 0, buf.length, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      size += n;
    }
    if (IS_ROOT && (entry.uid !== 0 || entry.gid !== 0)) await dst.chown(entry.uid, entry.gid);
    await dst.chmod(entry.mode);
    await dst.utimes(secs(entry.atimeMs), secs(entry.mtimeMs));
    const st = await dst.stat();
    return { sha256: hash.digest('hex'), size, stamp: stampOf(st) };
  } finally {
    await dst.close();
  }
}

/** `/`-separated, as manifests have them (the same as `rel` wherever path.sep is `/`). */
export const slashedRel = (rel: string): string => (path.sep === '/' ? rel : rel.split(path.sep).join('/'));

/**
 * Copies a scanned tree into `dest` (an empty directory the caller made): contents, modes, times,
 * links verbatim, and the manifest of what was written, every file hashed from the bytes it got.
 */
export async function copyTree(scan: SourceScan, dest: string, options: CopyOptions = {}): Promise<CopyResult> {
  const { signal } = options;
  const clone = options.reflink === 'always' || (options.reflink !== 'never' && options.cloneWorks === true);
  const cloneMode = options.reflink === 'always'
    ? fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE_FORCE
    : fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE;
  const result: CopyResult = { files: 0, bytes: 0, linked: 0, copied: 0, manifest: [], stamps: new Map() };
  const half = Math.ceil(scan.files / 2);
  let halfFired = false;

  // Directories first, synchronously: cheap, and everything else needs them.
  for (const entry of scan.entries) {
    if (entry.kind !== 'dir' || entry.rel === '') continue;
    fs.mkdirSync(under(dest, entry.rel), { mode: 0o700 });
    result.manifest.push({ path: slashedRel(entry.rel), type: 'dir', mode: entry.mode });
  }

  const others = scan.entries.filter((e) => e.kind !== 'dir');
  const small = Buffer.allocUnsafe(CHUNK);
  let next = 0;
  let lastReport = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    try {
      await copyEntries(Buffer.allocUnsafe(CHUNK));
    } catch (error) {
      failure ??= { error };
    }
  };
  // A promise only at the halfway point: an await per file would cost a microtask turn for each of 10k links.
  const counted = (entry: SourceEntry): Promise<void> | undefined => {
    result.files += 1;
    result.bytes += entry.size;
    if (halfFired || result.files < half) return undefined;
    halfFired = true;
    return options.onHalf?.();
  };
  const reported = (): void => {
    if (options.onProgress && (result.files - lastReport >= 256 || result.files === scan.files)) {
      lastReport = result.files;
      options.onProgress({ files: result.files, bytes: result.bytes });
    }
  };
  const record = (entry: SourceEntry, copied: Copied): void => {
    const p = slashedRel(entry.rel);
    result.manifest.push({ path: p, type: 'file', mode: entry.mode, size: copied.size, sha256: copied.sha256 });
    result.stamps.set(p, copied.stamp);
  };
  let syncRun = 0;
  // One turn of the event loop shared by every worker: a worker's own setImmediate would resume in
  // the same check phase as the others', and the loop would see its signals once per 256 entries
  // of each of the 32 workers (8,192 files, seconds on a slow disk) instead of once per 256.
  let turn: Promise<void> | undefined;
  const giveTurn = (): Promise<void> =>
    (turn ??= new Promise<void>((resolve) => setImmediate(() => {
      turn = undefined;
      resolve();
    })));
  const realDirs = new Map<string, boolean>();
  const copyEntries = async (buf: Buffer): Promise<void> => {
    while (next < others.length) {
      if (turn) {
        await turn;
        continue;
      }
      // Stop every worker at the first failure: the caller removes dest only once all are idle.
      if (failure || signal?.aborted) return;
      const entry = others[next++] as SourceEntry;
      const to = under(dest, entry.rel);
      if (entry.kind === 'symlink') {
        // Verbatim: the link text (as the scan read it, UTF-8) is copied, its target never is.
        const target = entry.target ?? linkText(scan.dir, entry.rel);
        await fs.promises.symlink(target, to);
        if (IS_ROOT) await fs.promises.lchown(to, entry.uid, entry.gid);
        await fs.promises.lutimes(to, secs(entry.atimeMs), secs(entry.mtimeMs));
        result.manifest.push({ path: slashedRel(entry.rel), type: 'symlink', target });
        continue;
      }
      // A link, or a small file, is a few short system calls: made synchronously they cost a few
      // microseconds each, through the thread pool and a promise several times that in CPU, which
      // a busy 2-core server notices more than the wall clock does. Large files go through the
      // pool, so their data moves while the loop goes on. The event loop gets a turn every 256
      // synchronous entries of all workers together, so a signal or an abort is seen within milliseconds.
      const decided = options.linkFrom?.get(entry.rel);
      const existing = decided !== undefined && mayLink(decided, realDirs) ? decided : undefined;
      const from = existing === undefined ? under(scan.dir, entry.rel) : existing.from;
      if (existing !== undefined) {
        fs.linkSync(from, to);
        // Stamped after the link: link(2) itself moves the shared inode's ctime.
        const st = fs.lstatSync(to);
        record(entry, { sha256: existing.sha256, size: st.size, stamp: stampOf(st) });
        result.linked += 1;
      } else if (clone) {
        record(entry, await cloneHashed(from, to, entry, cloneMode, buf));
        result.copied += 1;
        syncRun = 0;
      } else if (entry.size <= SMALL_FILE) {
        record(entry, copyHashedSync(from, to, entry, small));
        result.copied += 1;
      } else {
        record(entry, await copyHashed(from, to, entry, buf));
        result.copied += 1;
        syncRun = 0;
      }
      if (++syncRun % 256 === 0) await giveTurn();
      const halfway = counted(entry);
      if (halfway) await halfway;
      reported();
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 32 }, worker));
  if (failure) throw failure.error;
  if (signal?.aborted) return result;

  // Directories last and deepest first, so writing their contents cannot touch their times again.
  for (let i = scan.entries.length - 1; i >= 0; i--) {
    const entry = scan.entries[i] as SourceEntry;
    if (entry.kind !== 'dir') continue;
    const to = under(dest, entry.rel);
    if (IS_ROOT && (entry.uid !== 0 || entry.gid !== 0)) fs.lchownSync(to, entry.uid, entry.gid);
    fs.chmodSync(to, entry.mode);
    fs.utimesSync(to, secs(entry.atimeMs), secs(entry.mtimeMs));
  }
  options.onProgress?.({ files: result.files, bytes: result.bytes });
  return result;
}

/** A scanned build's regular files, path and mode (plan/validate.ts closedBuildWarning). */
export function* regularFiles(entries: readonly SourceEntry[]): Generator<{ path: string; mode: number }> {
  for (const e of entries) if (e.kind === 'file') yield { path: e.rel, mode: e.mode };
}

/** The names at the top of a scanned build. */
export function topNames(entries: readonly SourceEntry[]): string[] {
  return entries.filter((e) => e.rel !== '' && !e.rel.includes(path.sep)).map((e) => e.rel);
}
