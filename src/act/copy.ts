import fs from 'node:fs';
import path from 'node:path';
import { DeployError, errnoOf } from '../errors.ts';

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

function kindOf(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'dir';
  if (stat.isFile()) return 'file';
  if (stat.isSymbolicLink()) return 'symlink';
  if (stat.isFIFO()) return 'FIFO';
  if (stat.isSocket()) return 'socket';
  if (stat.isBlockDevice()) return 'block device';
  if (stat.isCharacterDevice()) return 'character device';
  return 'special file';
}

function entryOf(rel: string, stat: fs.Stats, kind: EntryKind): SourceEntry {
  return {
    rel,
    kind,
    mode: stat.mode & 0o7777,
    size: kind === 'file' ? stat.size : 0,
    uid: stat.uid,
    gid: stat.gid,
    atimeMs: Math.round(stat.atimeMs),
    mtimeMs: Math.round(stat.mtimeMs),
  };
}

/** `dir/rel` without path.join's normalising: every rel here is already normal, and this runs per file. */
function under(dir: string, rel: string): string {
  return rel === '' ? dir : `${dir}${path.sep}${rel}`;
}

/** utimes takes seconds. */
const secs = (ms: number): number => ms / 1000;

/**
 * Lists a source tree before anything is written, so a FIFO, socket or device deep inside
 * is refused while the deploy root is still untouched. Symlinks are listed, never followed.
 */
export function scanSource(dir: string): SourceScan {
  const scan: SourceScan = { dir, entries: [], files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  const rootStat = fs.statSync(dir);
  scan.entries.push(entryOf('', rootStat, 'dir'));
  const walk = (rel: string): void => {
    let names: string[];
    try {
      names = fs.readdirSync(under(dir, rel));
    } catch (error) {
      throw new DeployError('INVALID_SOURCE', `cannot read ${under(dir, rel)}: ${errnoOf(error) ?? String(error)}`, { cause: error });
    }
    names.sort();
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}${path.sep}${name}`;
      const stat = fs.lstatSync(under(dir, childRel));
      const kind = kindOf(stat);
      if (kind !== 'dir' && kind !== 'file' && kind !== 'symlink') {
        throw new DeployError('UNSUPPORTED_FILE', `${under(dir, childRel)} is a ${kind}; a release can hold only files, directories and symlinks`, {
          hint: 'remove it from the build, or make it at start-up from a shared path',
        });
      }
      scan.entries.push(entryOf(childRel, stat, kind));
      if (kind === 'dir') {
        scan.dirs += 1;
        walk(childRel);
      } else if (kind === 'file') {
        scan.files += 1;
        scan.bytes += stat.size;
      } else {
        scan.symlinks += 1;
      }
    }
  };
  walk('');
  return scan;
}

export interface CopyProgress {
  files: number;
  bytes: number;
}

export interface CopyOptions {
  /** Copy-on-write clone where the filesystem can (btrfs, xfs, APFS); a plain copy elsewhere. */
  reflink?: 'auto' | 'always' | 'never';
  /** Files to hardlink instead of copy (rel path → existing file). */
  linkFrom?: ReadonlyMap<string, string>;
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
}

const IS_ROOT = process.getuid?.() === 0;

/** Files up to this size are copied synchronously (see copyEntries). */
const SMALL_FILE = 64 * 1024;

/** Copies a scanned tree into `dest` (an empty directory the caller made): contents, modes, times, links verbatim. */
export async function copyTree(scan: SourceScan, dest: string, options: CopyOptions = {}): Promise<CopyResult> {
  const { signal } = options;
  const copyMode = options.reflink === 'always'
    ? fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE_FORCE
    : options.reflink === 'never'
      ? fs.constants.COPYFILE_EXCL
      : fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE;
  const result: CopyResult = { files: 0, bytes: 0, linked: 0, copied: 0 };
  const half = Math.ceil(scan.files / 2);
  let halfFired = false;

  // Directories first, synchronously: cheap, and everything else needs them.
  for (const entry of scan.entries) {
    if (entry.kind === 'dir' && entry.rel !== '') fs.mkdirSync(under(dest, entry.rel), { mode: 0o700 });
  }

  const others = scan.entries.filter((e) => e.kind !== 'dir');
  let next = 0;
  let lastReport = 0;
  let failure: { error: unknown } | undefined;
  const worker = async (): Promise<void> => {
    try {
      await copyEntries();
    } catch (error) {
      failure ??= { error };
    }
  };
  const counted = async (entry: SourceEntry): Promise<void> => {
    result.files += 1;
    result.bytes += entry.size;
    if (!halfFired && result.files >= half) {
      halfFired = true;
      await options.onHalf?.();
    }
    if (options.onProgress && (result.files - lastReport >= 256 || result.files === scan.files)) {
      lastReport = result.files;
      options.onProgress({ files: result.files, bytes: result.bytes });
    }
  };
  let syncRun = 0;
  const copyEntries = async (): Promise<void> => {
    while (next < others.length) {
      // Stop every worker at the first failure: the caller removes dest only once all are idle.
      if (failure || signal?.aborted) return;
      const entry = others[next++] as SourceEntry;
      const from = under(scan.dir, entry.rel);
      const to = under(dest, entry.rel);
      if (entry.kind === 'symlink') {
        // Verbatim: the link text is copied, its target never is.
        await fs.promises.symlink(await fs.promises.readlink(from), to);
        if (IS_ROOT) await fs.promises.lchown(to, entry.uid, entry.gid);
        await fs.promises.lutimes(to, secs(entry.atimeMs), secs(entry.mtimeMs));
        continue;
      }
      // A link, or a small file, is a few short system calls: made synchronously they cost a few
      // microseconds each, through the thread pool and a promise several times that in CPU, which
      // a busy 2-core server notices more than the wall clock does. Large files go through the
      // pool, so their data moves while the loop goes on. The event loop gets a turn every 256
      // synchronous entries, so a signal or an abort is still seen within milliseconds.
      const existing = options.linkFrom?.get(entry.rel);
      if (existing !== undefined) {
        fs.linkSync(existing, to);
        result.linked += 1;
      } else if (entry.size <= SMALL_FILE) {
        fs.copyFileSync(from, to, copyMode);
        if (IS_ROOT && (entry.uid !== 0 || entry.gid !== 0)) fs.chownSync(to, entry.uid, entry.gid);
        // copyFile keeps permission bits but not setuid/setgid/sticky after a chown.
        if (entry.mode & 0o7000) fs.chmodSync(to, entry.mode);
        fs.utimesSync(to, secs(entry.atimeMs), secs(entry.mtimeMs));
        result.copied += 1;
      } else {
        await fs.promises.copyFile(from, to, copyMode);
        if (IS_ROOT && (entry.uid !== 0 || entry.gid !== 0)) await fs.promises.chown(to, entry.uid, entry.gid);
        if (entry.mode & 0o7000) await fs.promises.chmod(to, entry.mode);
        await fs.promises.utimes(to, secs(entry.atimeMs), secs(entry.mtimeMs));
        result.copied += 1;
        syncRun = 0;
      }
      if (++syncRun % 256 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      await counted(entry);
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
