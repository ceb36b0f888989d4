/**
 * Release manifests on disk: `<root>/.atomic-deploy/manifests/<id>.json` (what the release holds,
 * its digest in the release record) and `<id>.stat.json` (the stat cache that lets a later deploy
 * trust it without reading every file again). Also the hashing of files and trees, for `verify`,
 * for releases made before manifests, and for the files a hardlink deploy compares.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { errnoOf } from '../errors.ts';
import { comparePaths, manifestChunks, parseManifest, type Manifest, type ManifestEntry, type ReleaseTree } from '../plan/manifest.ts';
import { releaseIdProblem } from '../plan/release-id.ts';
import { parseStatCache, statCacheChunks, type FileStamp } from '../plan/stat-cache.ts';
import { fsyncDir, writeFileAtomic } from './durable.ts';
import { HashPool } from './hash-pool.ts';
import type { Layout } from './layout.ts';

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
export async function writeManifest(layout: Layout, id: string, entries: readonly ManifestEntry[], durable: boolean): Promise<string> {
  await fs.promises.mkdir(manifestDir(layout), { recursive: true, mode: 0o755 });
  const hash = createHash('sha256');
  // Hashed as it is written: the digest is of exactly the bytes that reach the file.
  const hashed = function* (): Generator<string> {
    for (const piece of manifestChunks(entries)) {
      hash.update(piece);
      yield piece;
    }
  };
  await writeFileAtomic(manifestFile(layout, id), hashed(), durable);
  return `sha256:${hash.digest('hex')}`;
}

/** Writes the stat cache; never made durable on its own: a lost or stale cache only costs a re-hash. */
export async function writeStatCache(layout: Layout, id: string, stamps: ReadonlyMap<string, FileStamp>): Promise<void> {
  await fs.promises.mkdir(manifestDir(layout), { recursive: true, mode: 0o755 });
  await writeFileAtomic(statCacheFile(layout, id), statCacheChunks(stamps), false);
}

/** Removes a release's manifest and stat cache (its release is gone or was never placed). */
export async function removeManifest(layout: Layout, id: string, durable: boolean): Promise<void> {
  // Ids may come from a journal on disk: one that is not a safe name never reaches a path.
  if (releaseIdProblem(id) !== undefined) return;
  await fs.promises.rm(manifestFile(layout, id), { force: true });
  await fs.promises.rm(statCacheFile(layout, id), { force: true });
  if (durable) await fsyncDir(manifestDir(layout)).catch(() => undefined);
}

/** What a release's manifest can be trusted for. */
export type ManifestLoad =
  | { kind: 'ok'; manifest: Manifest; digest: string }
  /** The record names no digest: a release made before manifests (or by another tool). */
  | { kind: 'none' }
  | { kind: 'untrusted'; problem: string };

/**
 * Reads a regular file without ever blocking: O_NONBLOCK so a FIFO put in its place opens at
 * once, O_NOFOLLOW so a symlink is refused, and a type check on the open descriptor.
 */
export function readRegularFile(file: string): { text: string; stat: fs.Stats } {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EFTYPE' });
    return { text: fs.readFileSync(fd, 'utf8'), stat };
  } finally {
    fs.closeSync(fd);
  }
}

/** A release's manifest, trusted only if it parses and its digest is the one its record names. */
export function readManifest(layout: Layout, id: string, expectedDigest: string | undefined): ManifestLoad {
  return expectedDigest === undefined ? { kind: 'none' } : readNamedManifest(layout, id, expectedDigest);
}

/** A release's manifest when its record names a digest: trusted or not, never absent. */
export function readNamedManifest(layout: Layout, id: string, expectedDigest: string): Exclude<ManifestLoad, { kind: 'none' }> {
  let text: string;
  try {
    text = readRegularFile(manifestFile(layout, id)).text;
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT') return { kind: 'untrusted', problem: 'it is missing' };
    if (code === 'EFTYPE' || code === 'ELOOP') return { kind: 'untrusted', problem: 'it is not a regular file' };
    return { kind: 'untrusted', problem: `it cannot be read (${code ?? String(error)})` };
  }
  const parsed = parseManifest(text, expectedDigest);
  return parsed.ok ? { kind: 'ok', manifest: parsed.manifest, digest: expectedDigest } : { kind: 'untrusted', problem: parsed.problem };
}

/** A release's stat cache and when it was written (its mtime), or undefined if absent or damaged. */
export function readStatCache(layout: Layout, id: string): { stamps: Map<string, FileStamp>; sealedAtMs: number } | undefined {
  try {
    const { text, stat } = readRegularFile(statCacheFile(layout, id));
    const stamps = parseStatCache(text);
    return stamps ? { stamps, sealedAtMs: stat.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
}

const CHUNK = 1024 * 1024;
let chunk: Buffer | undefined;

/**
 * SHA-256 and size of a regular file's bytes, read once; refuses (EFTYPE) anything else put at
 * that path. `lstatted`: the caller has just seen a regular file there, so the fstat (a Stats
 * object and four Dates each on Node 20) is skipped; O_NONBLOCK still keeps a FIFO swapped in
 * from blocking, and its empty read only makes the hash differ.
 */
export function hashFileSync(file: string, lstatted = false, expected?: number): { sha256: string; size: number } {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  try {
    return hashFd(fd, lstatted ? expected : regularSize(fd, file).size);
  } finally {
    fs.closeSync(fd);
  }
}

/** Size and mode of an open descriptor, refusing (EFTYPE) anything but a regular file. */
function regularSize(fd: number, file: string): { size: number; mode: number } {
  const st = fs.fstatSync(fd);
  if (!st.isFile()) throw Object.assign(new Error(`${file} is not a regular file`), { code: 'EFTYPE' });
  return { size: st.size, mode: st.mode & 0o7777 };
}

function hashFd(fd: number, known: number | undefined): { sha256: string; size: number } {
  chunk ??= Buffer.allocUnsafe(CHUNK);
  const hash = createHash('sha256');
  let size = 0;
  for (;;) {
    const n = fs.readSync(fd, chunk, 0, CHUNK, null);
    if (n === 0) break;
    hash.update(chunk.subarray(0, n));
    size += n;
    // A short read that reaches the size the stat gave is the end: no extra read(2) to see the 0. Elsewhere (FUSE, procfs) a short read is not.
    if (n < CHUNK && size === known) break;
  }
  return { sha256: hash.digest('hex'), size };
}

export type TreeHash = ReleaseTree;

/** Yields to the event loop, so a signal is seen during a long synchronous walk. */
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Files per message to a hashing thread. */
const BATCH = 64;

/** What the kind of a non-regular, non-directory, non-symlink entry is called in differences. */
function specialKind(st: { isFIFO(): boolean; isSocket(): boolean }): string {
  return st.isFIFO() ? 'FIFO' : st.isSocket() ? 'socket' : 'device';
}

/** What an open-and-fstat of a path gave: a file's hash and mode, or the errno that stopped it. */
type FileOutcome = { sha256: string; size: number; mode: number } | { code: string; message: string };

/** hashFileSync with the mode of the descriptor it read; a failure is an answer, as from the pool. */
function hashStatSync(file: string): FileOutcome {
  try {
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
    try {
      const { size, mode } = regularSize(fd, file);
      return { ...hashFd(fd, size), mode };
    } finally {
      fs.closeSync(fd);
    }
  } catch (error) {
    return { code: errnoOf(error) ?? 'EIO', message: error instanceof Error ? error.message : String(error) };
  }
}

/**
 * A release as it is now, as manifest entries: every directory, file (hashed) and symlink under
 * `dir`, `/`-separated paths. The walk reads directories only (their entries' types come with
 * them); each file's mode, size and bytes come from one open descriptor, on the pool's threads
 * when there is a `pool` (the caller's, started early so they boot meanwhile) and here otherwise.
 * `whileHashing` runs once the walk has handed out every file, while the threads still hash.
 */
export async function hashTree(dir: string, signal?: AbortSignal, options: { pool?: HashPool; whileHashing?: () => void } = {}): Promise<TreeHash> {
  const out: TreeHash = { entries: [], special: [] };
  const { pool } = options;
  const hashed: Promise<void>[] = [];
  type Pending = { full: string; rel: string; index: number };
  /** Files whose open found something else there (replaced mid-walk): looked at again at the end. */
  const again: Pending[] = [];
  const fileEntries: ({ path: string; type: 'file'; mode: number; size: number; sha256: string } | undefined)[] = [];
  const settle = (p: Pending, o: FileOutcome): void => {
    if ('code' in o) {
      // Replaced or removed since the directory was read: the end of the walk looks again.
      if (o.code === 'EFTYPE' || o.code === 'ELOOP' || o.code === 'ENOENT') {
        again.push(p);
        return;
      }
      throw Object.assign(new Error(o.message), { code: o.code, path: p.full });
    }
    fileEntries[p.index] = { path: p.rel, type: 'file', mode: o.mode, size: o.size, sha256: o.sha256 };
  };
  let batch: Pending[] = [];
  const flush = (): void => {
    if (pool === undefined || batch.length === 0) return;
    const files = batch;
    batch = [];
    hashed.push(pool.hashStat(files.map((f) => f.full)).then((outcomes) => {
      for (const [i, o] of outcomes.entries()) settle(files[i] as Pending, o);
    }));
  };
  // Entries in walk order; a file's slot is filled when its hash comes back.
  const order: (ManifestEntry | number)[] = [];
  let count = 0;
  const walk = async (rel: string): Promise<void> => {
    const dirents = fs.readdirSync(rel === '' ? dir : `${dir}/${rel}`, { withFileTypes: true }).sort((a, b) => comparePaths(a.name, b.name));
    for (const d of dirents) {
      if (signal?.aborted) return;
      const childRel = rel === '' ? d.name : `${rel}/${d.name}`;
      const full = `${dir}/${childRel}`;
      if (d.isFile()) {
        const p = { full, rel: childRel, index: fileEntries.length };
        fileEntries.push(undefined);
        order.push(p.index);
        if (pool) {
          batch.push(p);
          if (batch.length >= BATCH) flush();
        } else {
          settle(p, hashStatSync(full));
        }
        if (++count % 1024 === 0) await turn();
      } else if (d.isDirectory()) {
        order.push({ path: childRel, type: 'dir', mode: fs.lstatSync(full).mode & 0o7777 });
        await walk(childRel);
      } else if (d.isSymbolicLink()) {
        order.push({ path: childRel, type: 'symlink', target: fs.readlinkSync(full) });
      } else {
        out.special.push({ path: childRel, kind: specialKind(d) });
      }
    }
  };
  let failure: { error: unknown } | undefined;
  try {
    await walk('');
    flush();
    options.whileHashing?.();
  } catch (error) {
    failure = { error };
  }
  // Every batch settled before returning or throwing: none may still write into the entries, or reject unheard.
  const settled = await Promise.allSettled(hashed);
  if (failure) throw failure.error;
  for (const s of settled) if (s.status === 'rejected') throw s.reason;
  const replaced = new Map<number, ManifestEntry | undefined>();
  for (const p of again) replaced.set(p.index, lookAgain(p.full, p.rel, out));
  for (const item of order) {
    if (typeof item !== 'number') out.entries.push(item);
    else {
      const entry = replaced.has(item) ? replaced.get(item) : fileEntries[item];
      if (entry !== undefined) out.entries.push(entry);
    }
  }
  return out;
}

/** A path that was a file when its directory was read and was not one when opened: what is there now. */
function lookAgain(full: string, rel: string, out: TreeHash): ManifestEntry | undefined {
  const st = fs.lstatSync(full, { throwIfNoEntry: false });
  if (st === undefined) return undefined;
  if (st.isDirectory()) return { path: rel, type: 'dir', mode: st.mode & 0o7777 };
  if (st.isSymbolicLink()) return { path: rel, type: 'symlink', target: fs.readlinkSync(full) };
  if (st.isFile()) {
    const o = hashStatSync(full);
    if ('code' in o) throw Object.assign(new Error(o.message), { code: o.code, path: full });
    return { path: rel, type: 'file', mode: o.mode, size: o.size, sha256: o.sha256 };
  }
  out.special.push({ path: rel, kind: specialKind(st) });
  return undefined;
}
