/**
 * Keeps a release's stat cache true across prune's deletion of an older release that shares its
 * inodes (--strategy hardlink): every unlink(2) of another name moves the shared inode's ctime,
 * and without this the next deploy would find every stamp moved and re-hash the whole release.
 * Each file is lstat-ed right before and right after the unlink of its old twin, and its new
 * stamp is kept only when nothing but that unlink changed it (plan/stat-cache.ts restamp).
 */
import fs from 'node:fs';
import { releasePath, type Layout } from './layout.ts';
import { readStatCache, writeStatCache } from './manifest.ts';
import { filesystemNow } from './source-cache.ts';
import { carriedStamps, restamp, stampOf, type SeenStamp } from '../plan/stat-cache.ts';

export interface Restamper {
  /** The live file at `rel` (slashed, relative to the release) before an unlink of the same path in an older release; undefined: not tracked. */
  before(rel: string): SeenStamp | undefined;
  after(rel: string, before: SeenStamp): void;
  /** Writes the cache again if a stamp changed; false when nothing needed writing or the release is gone. */
  save(): Promise<boolean>;
}

function seen(file: string): SeenStamp | undefined {
  try {
    const s = fs.lstatSync(file);
    return s.isFile() ? { ...stampOf(s), nlink: s.nlink, mtimeMs: s.mtimeMs } : undefined;
  } catch {
    return undefined;
  }
}

/** A restamper for release `id`'s stat cache; undefined when it has none (nothing to keep true). */
export function restamperFor(layout: Layout, id: string): Restamper | undefined {
  const cache = readStatCache(layout, id);
  if (cache === undefined) return undefined;
  const dir = releasePath(layout, id);
  // Written again, the cache gets a later seal: stamps racy under the old one must not come out trusted.
  const stamps = carriedStamps(cache.stamps, cache.sealedAtMs);
  let changed = false;
  let latest = 0;
  return {
    before: (rel) => (stamps.has(rel) ? seen(`${dir}/${rel}`) : undefined),
    after: (rel, before) => {
      const cached = stamps.get(rel);
      if (cached === undefined) return;
      const now = seen(`${dir}/${rel}`);
      const next = now === undefined ? undefined : restamp(cached, before, now);
      if (next === cached) return;
      changed = true;
      if (next === undefined) stamps.delete(rel);
      else {
        stamps.set(rel, next);
        latest = Math.max(latest, next.ctimeMs);
      }
    },
    save: async () => {
      // Pruned meanwhile by another command: its cache went with it, and must not come back.
      if (!changed || !fs.existsSync(dir)) return false;
      // Sealed on a later tick of the filesystem clock than the last unlink: else those stamps would be racy, and re-hashed.
      for (let i = 0; i < 50 && Number(filesystemNow(layout)) / 1e6 <= latest + 1; i++) await new Promise((resolve) => setTimeout(resolve, 2));
      await writeStatCache(layout, id, stamps);
      return true;
    },
  };
}
