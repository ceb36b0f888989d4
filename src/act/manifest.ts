/**
 * Release manifests on disk: `<root>/.atomic-deploy/manifests/<id>.json` (what the release holds,
 * its digest in the release record) and `<id>.stat.json` (the stat cache that lets a later deploy
 * trust it without reading every file again). Also the hashing of files and trees, for `verify`,
 * for releases made before manifests, and for the files a hardlink deploy compares.
 */
import { isUtf8 } from 'node:buffer';
import crypto, { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DeployError, errnoOf } from '../errors.ts';
import { closeDirectories, manifestChunks, parseManifest, type Manifest, type ManifestEntry, type ReleaseRoot, type ReleaseTree } from '../plan/manifest.ts';
import { escapedName } from '../plan/paths.ts';
import { releaseIdProblem } from '../plan/release-id.ts';
import { parseStatCache, statCacheChunks, type FileStamp } from '../plan/stat-cache.ts';
import { fsyncDir, writeFileAtomic } from './durable.ts';
import type { FileHash, HashPool, WalkedFile } from './hash-pool.ts';
import type { Layout } from './layout.ts';
import { makeDirs } from './mkdirs.ts';

export function manifestDir(layout: Layout): string {
  return path.join(layout.state, 'manifests');
}

export function manifestFile(layout: Layout, id: string): string {
  return path.join(manifestDir(layout), `${id}.json`);
}

export function statCacheFile(layout: Layout, id: string): string {
  return path.join(manifestDir(layout), `${id}.stat.json`);
}

/** writeFileAtomic's temp names (`.<name>.<pid>.<random>`). */
const TEMP_NAME = /^\..+\.json\.\d+\.[0-9a-z]+$/;

/**
 * Removes half-written temp files of manifests, stat caches and records that a killed writer
 * left (and the journal's). Only under the lock: every writer of these holds it, so no live writer owns one.
 */
export async function sweepStateTemps(layout: Layout): Promise<string[]> {
  const removed: string[] = [];
  for (const dir of [manifestDir(layout), layout.log, layout.state]) {
    for (const name of await fs.promises.readdir(dir).catch(() => [] as string[])) {
      if (!TEMP_NAME.test(name)) continue;
      await fs.promises.rm(path.join(dir, name), { force: true });
      removed.push(`${path.basename(dir)}/${name}`);
    }
  }
  return removed;
}

/**
 * Writes a release's manifest whole or not at all, durable when asked (before the switch, so a
 * live release never lacks the manifest its record names). Returns its digest for the record.
 */
export async function writeManifest(layout: Layout, id: string, entries: readonly ManifestEntry[], durable: boolean, root?: ReleaseRoot): Promise<string> {
  await makeDirs(manifestDir(layout), 0o755);
  const hash = createHash('sha256');
  // Hashed as it is written: the digest is of exactly the bytes that reach the file.
  const hashed = function* (): Generator<string> {
    for (const piece of manifestChunks(entries, root)) {
      hash.update(piece);
      yield piece;
    }
  };
  await writeFileAtomic(manifestFile(layout, id), hashed(), durable);
  return `sha256:${hash.digest('hex')}`;
}

/** Writes the stat cache; never made durable on its own: a lost or stale cache only costs a re-hash. */
export async function writeStatCache(layout: Layout, id: string, stamps: ReadonlyMap<string, FileStamp>): Promise<void> {
  await makeDirs(manifestDir(layout), 0o755);
  await writeFileAtomic(statCacheFile(layout, id), statCacheChunks(stamps), false);
}

/** Removes a release's manifest and stat cache (its release is gone or was never placed). */
export async function removeManifest(layout: Layout, id: string, durable: boolean): Promise<void> {
  // Ids may come from a journal on disk: one that is not a safe name never reaches a path.
  if (releaseIdProblem(id) !== undefined) return;
  // recursive: a directory by that name is no manifest of ours, and would stop a prune with EISDIR
  // (rm never follows a symlink: one goes as the link it is).
  await fs.promises.rm(manifestFile(layout, id), { force: true, recursive: true });
  await fs.promises.rm(statCacheFile(layout, id), { force: true, recursive: true });
  if (durable) await fsyncDir(manifestDir(layout)).catch(() => undefined);
}

/** What a release's manifest can be trusted for. */
export type ManifestLoad =
  | { kind: 'ok'; manifest: Manifest; digest: string }
  /** The record names no digest: a release made before manifests (or by another tool). */
  | { kind: 'none' }
  | { kind: 'untrusted'; problem: string };

/**
 * Reads a regular file's bytes without ever blocking: O_NONBLOCK so a FIFO put in its place
 * opens at once, O_NOFOLLOW so a symlink is refused, and a type check on the open descriptor.
 */
export function readRegularBytes(file: string, maxBytes = Infinity): { bytes: Buffer; stat: fs.Stats } {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EFTYPE' });
    if (stat.size > maxBytes) throw Object.assign(new Error(`${file} is larger than ${maxBytes} bytes`), { code: 'EFBIG' });
    return { bytes: fs.readFileSync(fd), stat };
  } finally {
    fs.closeSync(fd);
  }
}

/** readRegularBytes, as UTF-8 text. */
export function readRegularFile(file: string, maxBytes = Infinity): { text: string; stat: fs.Stats } {
  const { bytes, stat } = readRegularBytes(file, maxBytes);
  return { text: bytes.toString('utf8'), stat };
}

/** A release's manifest, trusted only if it parses and its digest is the one its record names. */
export function readManifest(layout: Layout, id: string, expectedDigest: string | undefined): ManifestLoad {
  if (expectedDigest === undefined) return { kind: 'none' };
  let bytes: Buffer;
  try {
    // Bytes, not text: the digest is checked on them as read, and only a matching manifest is decoded.
    bytes = readRegularBytes(manifestFile(layout, id)).bytes;
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT') return { kind: 'untrusted', problem: 'it is missing' };
    if (code === 'EFTYPE' || code === 'ELOOP') return { kind: 'untrusted', problem: 'it is not a regular file' };
    return { kind: 'untrusted', problem: `it cannot be read (${code ?? String(error)})` };
  }
  const parsed = parseManifest(bytes, expectedDigest);
  return parsed.ok ? { kind: 'ok', manifest: parsed.manifest, digest: expectedDigest } : { kind: 'untrusted', problem: parsed.problem };
}

/**
 * The largest stat cache read: about 90 bytes a file, so room for millions of files. A larger one
 * is no stat cache of ours, and reading it would cost a deploy seconds; without it the previous
 * release's files are hashed, as for a release without one.
 */
export const STAT_CACHE_MAX_BYTES = 256 * 1024 * 1024;

/** A release's stat cache and when it was written (its mtime), or undefined if absent, damaged or too large. */
export function readStatCache(layout: Layout, id: string): { stamps: Map<string, FileStamp>; sealedAtMs: number } | undefined {
  try {
    const { text, stat } = readRegularFile(statCacheFile(layout, id), STAT_CACHE_MAX_BYTES);
    const stamps = parseStatCache(text);
    return stamps ? { stamps, sealedAtMs: stat.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
}

const CHUNK = 1024 * 1024;
let chunk: Buffer | undefined;

// One call where Node has it (20.12 and later): no Hash object per file for the collector to finalise.
const oneShot = typeof crypto.hash === 'function' ? crypto.hash : undefined;

/**
 * SHA-256 and size of an open file, read into the reused buffer. A short read that reaches
 * `known` (the size a stat gave) is the end: no extra read(2) to see the 0 (one read for most
 * files). Elsewhere (FUSE, procfs) a short read is not.
 */
function hashOpenFile(fd: number, known: number | undefined): FileHash {
  chunk ??= Buffer.allocUnsafe(CHUNK);
  let n = fs.readSync(fd, chunk, 0, CHUNK, null);
  if (oneShot !== undefined && n < CHUNK && n === known) return { sha256: oneShot('sha256', chunk.subarray(0, n), 'hex'), size: n };
  const hash = createHash('sha256');
  let size = 0;
  while (n > 0) {
    hash.update(chunk.subarray(0, n));
    size += n;
    if (n < CHUNK && size === known) break;
    n = fs.readSync(fd, chunk, 0, CHUNK, null);
  }
  return { sha256: hash.digest('hex'), size };
}

/**
 * SHA-256 and size of a regular file's bytes, read once; refuses (EFTYPE) anything else put at
 * that path. `lstatted`: the caller has just seen a regular file there, so the fstat (a Stats
 * object and four Dates each on Node 20) is skipped; O_NONBLOCK still keeps a FIFO swapped in
 * from blocking, and its empty read only makes the hash differ.
 */
export function hashFileSync(file: string, lstatted = false, expected?: number): FileHash {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  try {
    let known = expected;
    if (!lstatted) {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EFTYPE' });
      known = st.size;
    }
    return hashOpenFile(fd, known);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * A file the walk's directory entry called regular, opened without following a symlink or
 * waiting on a FIFO, checked and measured on its descriptor (no lstat by path), then hashed.
 * `other` if it is no longer a regular file; the walk then looks again by lstat.
 */
export function hashWalkedFileSync(file: string): WalkedFile {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  } catch (error) {
    if (errnoOf(error) === 'ELOOP') return { other: true };
    throw error;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return { other: true };
    return { ...hashOpenFile(fd, st.size), mode: st.mode & 0o7777 };
  } finally {
    fs.closeSync(fd);
  }
}

export type TreeHash = ReleaseTree;

export interface HashTreeOptions {
  pool?: HashPool;
  /**
   * `verify`: a name that is not valid UTF-8 is put in the tree's `misnamed` (escaped), and a
   * symlink whose text is not, in its `mistargeted`, instead of failing the walk with
   * UNSUPPORTED_FILE; and a file or directory permission keeps it from reading in its
   * `unreadable` (what is under such a directory is left out) instead of failing with EACCES;
   * and a name gone by the time it is looked at (a file an app deletes, a directory removed with
   * what it held) is left out, as it is now, instead of failing with ENOENT or ENOTDIR.
   */
  report?: boolean;
}

/** Yields to the event loop, so a signal is seen during a long synchronous walk. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Files per message to a hashing thread: small, so that a few large files are shared too. */
const BATCH = 16;
/** Files walked between two turns of the event loop; answers from the pool arrive only then. */
const TURN = 256;

type FileEntry = Extract<ManifestEntry, { type: 'file' }>;

/** A directory entry as the walk uses it: its name as text, and whether it said regular file. */
interface Named {
  name: string;
  isFile(): boolean;
}

const byName = (a: Named, b: Named): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function specialKind(st: fs.Stats | fs.Dirent): string {
  return st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : 'device';
}

/** What is at a path, in the words of a difference (`file`, `directory`, `symlink -> x`, `FIFO`). */
function kindAt(at: Buffer): string | undefined {
  const st = fs.lstatSync(at, { throwIfNoEntry: false });
  if (st === undefined) return undefined;
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return `symlink -> ${escapedName(fs.readlinkSync(at, { encoding: 'buffer' }))}`;
  return specialKind(st);
}

/**
 * A directory's entries read again by their bytes, when a name read as text held U+FFFD: that is
 * what the decoder makes of bytes that are not UTF-8, and such a name is not the one on disk (nor
 * told apart from a sibling whose name is that text). Valid names go on as text; `misnamed` gets
 * the others, escaped, with what they are.
 */
function utf8Entries(at: string, rel: string, misnamed: (rel: string, at: Buffer) => void): Named[] {
  const out: Named[] = [];
  for (const d of fs.readdirSync(at, { encoding: 'buffer', withFileTypes: true })) {
    if (isUtf8(d.name)) out.push({ name: d.name.toString('utf8'), isFile: () => d.isFile() });
    else misnamed(rel === '' ? escapedName(d.name) : `${rel}/${escapedName(d.name)}`, Buffer.concat([Buffer.from(`${at}/`), d.name]));
  }
  return out;
}

/**
 * A release as it is now, as manifest entries: every directory, file (hashed) and symlink under
 * `dir`, `/`-separated paths. The directory entries' types decide what to do with each name, so a
 * file costs open, fstat, read and close and no lstat; a FIFO, socket or device is never opened.
 * Files are read synchronously one by one: from the page cache that beats a thread-pool trip per
 * file, and the loop gets a turn every TURN files. With a `pool` (the caller's; its threads boot
 * while this one starts walking), batches go in turns to its threads and to this one, which
 * hashes its own between its walking: every core works.
 */
export async function hashTree(dir: string, signal?: AbortSignal, options: HashTreeOptions = {}): Promise<TreeHash> {
  const out: TreeHash = { entries: [], special: [] };
  // The release directory's own mode (through a link: a release moved to another disk and linked back is the tree it leads to).
  const top = await fs.promises.stat(dir).catch(() => undefined);
  if (top?.isDirectory()) out.root = { mode: top.mode & 0o7777 };
  const { pool } = options;
  // A name that is not UTF-8 can be no manifest's path: reported as found, or refused.
  const misnamed = (rel: string, at: Buffer): void => {
    if (options.report !== true) {
      throw new DeployError('UNSUPPORTED_FILE', `${dir}/${rel} is not valid UTF-8 (invalid bytes shown as \\xNN); a release can hold only UTF-8 names`, {
        hint: 'whatever wrote it into the release (a before-switch hook) must write UTF-8 names',
      });
    }
    const kind = kindAt(at);
    if (kind !== undefined) (out.misnamed ??= []).push({ path: rel, kind });
  };
  const mistargeted = (rel: string, bytes: Buffer): void => {
    if (options.report !== true) {
      throw new DeployError('UNSUPPORTED_FILE', `${dir}/${rel} is a symlink to ${escapedName(bytes)}, which is not valid UTF-8 (invalid bytes shown as \\xNN); a release can hold only UTF-8 link targets`, {
        hint: 'whatever wrote it into the release (a before-switch hook) must write UTF-8 link targets',
      });
    }
    (out.mistargeted ??= []).push({ path: rel, target: escapedName(bytes) });
  };
  const hashed: Promise<void>[] = [];
  // Files that were something else by the time they were opened (swapped after the readdir): looked at again by lstat.
  const again: FileEntry[] = [];
  const settle = (entry: FileEntry, found: WalkedFile): void => {
    if ('other' in found) again.push(entry);
    else {
      entry.sha256 = found.sha256;
      entry.size = found.size;
      entry.mode = found.mode;
    }
  };
  let batch: { full: string; entry: FileEntry }[] = [];
  let batches = 0;
  // In turns: the pool's threads get a batch each, then this thread hashes one. The pool's first,
  // so they work while this one hashes: hashing here first would hold the next batch back.
  const dispatch = (files: { full: string; entry: FileEntry }[]): void => {
    if (pool === undefined || files.length === 0) return;
    // A thread that falls behind by two turns' share gets no more until it answers.
    if (batches++ % (pool.size + 1) === pool.size || pool.queued() >= 2 * TURN * pool.size) {
      for (const f of files) settle(f.entry, walked(f.full));
      return;
    }
    hashed.push(pool.hash(files.map((f) => f.full)).then((found) => {
      for (const [i, h] of found.entries()) settle((files[i] as (typeof files)[number]).entry, h);
    }));
  };
  const flush = (last = false): void => {
    const files = batch;
    batch = [];
    if (!last || pool === undefined) return dispatch(files);
    // The last batch, maybe all there is (a few large files): shared by every thread, this one last.
    const share = Math.ceil(files.length / (pool.size + 1));
    batches = 0;
    for (let i = 0; i < files.length; i += share) dispatch(files.slice(i, i + share));
  };
  // Directories whose entries could not be read or looked at (no read or no search permission).
  const closed: string[] = [];
  const denied = (error: unknown): boolean => options.report === true && (errnoOf(error) === 'EACCES' || errnoOf(error) === 'EPERM');
  // Gone since its directory was read (or a directory on its way replaced by a file): not there now.
  const gone = (error: unknown): boolean => options.report === true && (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR');
  // A file it may not open, or one gone, is looked at again by lstat, which tells a file's mode
  // from a closed directory, and a file gone from one replaced by something else.
  const walked = (full: string): WalkedFile => {
    try {
      return hashWalkedFileSync(full);
    } catch (error) {
      if (denied(error) || gone(error)) return { other: true };
      throw error;
    }
  };
  let count = 0;
  const walk = async (rel: string): Promise<void> => {
    const at = rel === '' ? dir : `${dir}/${rel}`;
    let dirents: Named[];
    try {
      dirents = fs.readdirSync(at, { withFileTypes: true });
    } catch (error) {
      if (rel !== '' && gone(error)) {
        // Removed since its lstat: no directory there now (the release itself gone is the caller's to tell).
        const i = out.entries.findLastIndex((e) => e.path === rel);
        if (i >= 0) out.entries.splice(i, 1);
        return;
      }
      if (!denied(error)) throw error;
      closed.push(rel);
      return;
    }
    for (const d of dirents) {
      if (!d.name.includes('\uFFFD')) continue;
      dirents = utf8Entries(at, rel, misnamed);
      break;
    }
    dirents.sort(byName);
    for (const d of dirents) {
      if (signal?.aborted) return;
      const childRel = rel === '' ? d.name : `${rel}/${d.name}`;
      const full = `${dir}/${childRel}`;
      if (d.isFile()) {
        // Filled in when it is hashed; the entries keep the walk's order.
        const entry: FileEntry = { path: childRel, type: 'file', mode: 0, size: 0, sha256: '' };
        out.entries.push(entry);
        if (pool) {
          batch.push({ full, entry });
          if (batch.length >= BATCH) flush();
        } else {
          settle(entry, walked(full));
        }
        if (++count % TURN === 0) await turn();
      } else if (!(await visit(childRel, full))) {
        return;
      }
    }
  };
  /**
   * Everything but a regular file, by lstat: directories (for their mode), symlinks, and what no
   * entry can describe. False when the lstat is denied: the directory holding it cannot be searched.
   */
  const visit = async (childRel: string, full: string): Promise<boolean> => {
    let st: fs.Stats;
    try {
      st = fs.lstatSync(full);
    } catch (error) {
      if (gone(error)) return true;
      if (!denied(error)) throw error;
      const slash = childRel.lastIndexOf('/');
      const parent = slash < 0 ? '' : childRel.slice(0, slash);
      if (!closed.includes(parent)) closed.push(parent);
      return false;
    }
    if (st.isDirectory()) {
      out.entries.push({ path: childRel, type: 'dir', mode: st.mode & 0o7777 });
      await walk(childRel);
    } else if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = fs.readlinkSync(full);
      } catch (error) {
        // Gone, or no longer a link (EINVAL): looked at once more, as it is now.
        if (gone(error)) return true;
        if (options.report === true && errnoOf(error) === 'EINVAL') return visit(childRel, full);
        throw error;
      }
      // As with names: U+FFFD may be a decoder's stand-in for bytes that are not UTF-8.
      const bytes = target.includes('\uFFFD') ? fs.readlinkSync(full, { encoding: 'buffer' }) : undefined;
      if (bytes !== undefined && !isUtf8(bytes)) mistargeted(childRel, bytes);
      else out.entries.push({ path: childRel, type: 'symlink', target });
    } else if (st.isFile()) {
      let found: WalkedFile;
      try {
        found = hashWalkedFileSync(full);
      } catch (error) {
        if (gone(error)) return true;
        if (!denied(error)) throw error;
        (out.unreadable ??= []).push({ path: childRel, type: 'file', mode: st.mode & 0o7777 });
        return true;
      }
      if ('other' in found) throw Object.assign(new Error(`${full} keeps changing type while it is read`), { code: 'EAGAIN', path: full });
      out.entries.push({ path: childRel, type: 'file', ...found });
    } else {
      out.special.push({ path: childRel, kind: specialKind(st) });
    }
    return true;
  };
  let walkFailure: { error: unknown } | undefined;
  try {
    await walk('');
    flush(true);
  } catch (error) {
    walkFailure = { error };
  }
  // Every batch settled before returning or throwing: none may still write into the entries, or reject unheard.
  const settled = await Promise.allSettled(hashed);
  if (walkFailure) throw walkFailure.error;
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  if (again.length > 0) {
    const swapped = new Set<ManifestEntry>(again);
    out.entries = out.entries.filter((e) => !swapped.has(e));
    for (const e of again) await visit(e.path, `${dir}/${e.path}`);
  }
  closeDirectories(out, closed);
  return out;
}
