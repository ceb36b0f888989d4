/**
 * The source cache on disk: `<root>/.atomic-deploy/source-cache-<hash of the build directory>.json`,
 * one per build directory, for the SOURCE_CACHES_KEPT used last. Each is replaced whole by rename;
 * never made durable (a lost cache only costs reading the build again); ignored when unreadable,
 * too large or not intact.
 */
import fs from 'node:fs';
import path from 'node:path';
import { cachesToEvict, parseSourceCache, SOURCE_CACHE_MAX_BYTES, SOURCE_CACHE_NAME, sourceCacheChunks, sourceCacheName, type SourceCache } from '../plan/source-cache.ts';
import { writeFileAtomic } from './durable.ts';
import type { Layout } from './layout.ts';
import { readRegularFile } from './manifest.ts';

/** The cache file of a build directory (its real path). */
export function sourceCacheFile(layout: Layout, source: string): string {
  return path.join(layout.state, sourceCacheName(source));
}

/** The single cache of roots deployed before there was one per build directory: removed at the next write. */
const OLD_SINGLE_CACHE = 'source-cache.json';

/**
 * Now, on the filesystem clock: the mtime of a file made for the purpose. Date.now() reads a
 * finer clock than the one the kernel stamps files with, so a write just after it can carry an
 * earlier time; a file's own stamp cannot. The name is one sweepStateTemps removes if a kill lands here.
 */
export function filesystemNow(layout: Layout): bigint {
  const marker = path.join(layout.state, `.source-cache-clock.json.${process.pid}.${Math.random().toString(36).slice(2)}`);
  const fd = fs.openSync(marker, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    return fs.fstatSync(fd, { bigint: true }).mtimeNs;
  } finally {
    fs.closeSync(fd);
    fs.rmSync(marker, { force: true });
  }
}

/** The cache, or undefined when there is none or it cannot be trusted (then every file is read). */
export function readSourceCache(layout: Layout, source: string): SourceCache | undefined {
  try {
    const file = sourceCacheFile(layout, source);
    // Bounded before reading: a huge file put here is never loaded into memory.
    const st = fs.lstatSync(file, { throwIfNoEntry: false });
    if (!st?.isFile() || st.size > SOURCE_CACHE_MAX_BYTES) return undefined;
    return parseSourceCache(readRegularFile(file).text);
  } catch {
    return undefined;
  }
}

/** Replaces the build directory's cache whole (temp file + rename), racy entries left out; not fsynced. Then evicts. */
export async function writeSourceCache(layout: Layout, cache: SourceCache): Promise<void> {
  await writeFileAtomic(sourceCacheFile(layout, cache.source), sourceCacheChunks(cache), false);
  await evictSourceCaches(layout);
}

/**
 * Marks a build directory's cache as used now (its mtime) when a deploy took every hash from it
 * and so left it unwritten: the eviction goes by use, not by the last write. Best effort.
 */
export function touchSourceCache(layout: Layout, source: string): void {
  const now = new Date();
  try {
    fs.utimesSync(sourceCacheFile(layout, source), now, now);
  } catch {
    // A cache that cannot be marked is only evicted sooner.
  }
}

/** Keeps the SOURCE_CACHES_KEPT caches used last, removes the rest and the old single cache. Under the lock; best effort. */
async function evictSourceCaches(layout: Layout): Promise<void> {
  const names = await fs.promises.readdir(layout.state).catch(() => [] as string[]);
  const files: { name: string; usedMs: number }[] = [];
  for (const name of names) {
    if (!SOURCE_CACHE_NAME.test(name)) continue;
    const st = await fs.promises.lstat(path.join(layout.state, name)).catch(() => undefined);
    if (st !== undefined) files.push({ name, usedMs: st.mtimeMs });
  }
  const gone = cachesToEvict(files);
  if (names.includes(OLD_SINGLE_CACHE)) gone.push(OLD_SINGLE_CACHE);
  for (const name of gone) await fs.promises.rm(path.join(layout.state, name), { force: true }).catch(() => undefined);
}
