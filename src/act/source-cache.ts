/**
 * The source cache on disk: `<root>/.atomic-deploy/source-cache.json`, one per root, for the
 * build directory deployed last. Replaced whole by rename; never made durable (a lost cache only
 * costs reading the build again); ignored when unreadable, too large or not intact.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseSourceCache, SOURCE_CACHE_MAX_BYTES, sourceCacheChunks, type SourceCache } from '../plan/source-cache.ts';
import { writeFileAtomic } from './durable.ts';
import type { Layout } from './layout.ts';
import { readRegularFile } from './manifest.ts';

export function sourceCacheFile(layout: Layout): string {
  return path.join(layout.state, 'source-cache.json');
}

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
export function readSourceCache(layout: Layout): SourceCache | undefined {
  try {
    const file = sourceCacheFile(layout);
    // Bounded before reading: a huge file put here is never loaded into memory.
    const st = fs.lstatSync(file, { throwIfNoEntry: false });
    if (!st?.isFile() || st.size > SOURCE_CACHE_MAX_BYTES) return undefined;
    return parseSourceCache(readRegularFile(file).text);
  } catch {
    return undefined;
  }
}

/** Replaces the cache whole (temp file + rename), racy entries left out; not fsynced. */
export async function writeSourceCache(layout: Layout, cache: SourceCache): Promise<void> {
  await writeFileAtomic(sourceCacheFile(layout), sourceCacheChunks(cache), false);
}
