import fs from 'node:fs';
import type { Restamper } from './restamp.ts';
import path from 'node:path';
import { errnoOf } from '../errors.ts';
import type { Layout } from './layout.ts';
import { trashPath, stagingArea } from './staging.ts';
import { removeTree } from './remove-tree.ts';
import { runOnFs } from '../root/fs.ts';
import { retireRelease } from '../root/release.ts';
import { aliasOfAnotherRelease } from './switch.ts';

export interface ReleaseEntry {
  id: string;
  /** The link's text, for a release that is a symlink to a directory elsewhere. */
  linkedTo?: string;
}

/**
 * The releases under `releases/`: its directories, and its links to a directory elsewhere (a
 * release moved to another disk and linked back is still that release: left out, prune would not
 * see it as current's neighbour and could delete the rollback target). A link to another entry of
 * releases/ (`stable -> 20261201120000`) is an alias, not a release; one that leads nowhere or to
 * a file is not one either.
 */
export async function listReleases(layout: Layout): Promise<ReleaseEntry[]> {
  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(layout.releases, { withFileTypes: true });
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return [];
    throw error;
  }
  const out: ReleaseEntry[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    if (e.isDirectory()) {
      out.push({ id: e.name });
    } else if (e.isSymbolicLink()) {
      const at = path.join(layout.releases, e.name);
      const isDir = await fs.promises.stat(at).then((st) => st.isDirectory(), () => false);
      if (isDir && !aliasOfAnotherRelease(layout, e.name)) out.push({ id: e.name, linkedTo: await fs.promises.readlink(at) });
    }
  }
  return out;
}

/** The ids of listReleases. */
export async function listReleaseDirs(layout: Layout): Promise<string[]> {
  return (await listReleases(layout)).map((r) => r.id);
}

/**
 * The only way a release is ever deleted (src/root/release.ts). It re-reads `current` at the last
 * moment and refuses the live release and any protected one (the rollback target); the release
 * is renamed to a trash name first (in `.tmp/`, or hidden in `releases/` when that is another
 * mount), so a half-deleted tree never sits under a release's name.
 * With `deferDelete` the renamed tree is left as trash and its path returned, for the
 * caller to delete with `deleteTrash()` once the lock is released.
 */
export async function removeRelease(
  layout: Layout,
  id: string,
  protect: ReadonlySet<string>,
  options: { durable: boolean; beforeDelete?: () => Promise<void>; deferDelete?: boolean },
): Promise<string | undefined> {
  // Guards and move are src/root/release.ts's, the same steps a host runs.
  const trash = trashPath(await stagingArea(layout), id);
  const moved = await runOnFs(layout.root, retireRelease(id, [...protect], path.relative(layout.root, trash)), { durable: options.durable });
  if (moved === 'absent') return undefined;
  await options.beforeDelete?.();
  if (options.deferDelete) return trash;
  await removeTree(trash);
  return undefined;
}

export interface TrashOptions {
  /** Called with the number of files removed so far, every few hundred files. */
  onProgress?: (files: number) => void;
  /** Called once after the first file is gone (a failpoint lives there). */
  midway?: () => Promise<void>;
  signal?: AbortSignal;
  /** The live release's stat cache, kept true across each unlink (act/restamp.ts). */
  restamp?: Restamper;
}

/**
 * Deletes a tree `removeRelease()` moved into `.tmp/`. Another process may be deleting the same
 * tree (recovery removes `trash.*`), so whatever vanished meanwhile counts as done. Stops early,
 * leaving the rest for the next recovery, when `signal` aborts.
 */
export async function deleteTrash(trash: string, options: TrashOptions = {}): Promise<number> {
  let files = 0;
  let reported = 0;
  let midwayDone = options.midway === undefined;
  const gone = (error: unknown): boolean => errnoOf(error) === 'ENOENT';
  const restamper = options.restamp;
  const unlinkOne = async (file: string): Promise<void> => {
    const rel = restamper ? file.slice(trash.length + 1) : '';
    // Right before and right after: the window in which another change would pass for ours is this unlink alone.
    const before = restamper?.before(rel);
    try {
      await fs.promises.unlink(file);
    } catch (error) {
      if (!gone(error)) throw error;
    }
    if (before !== undefined) restamper?.after(rel, before);
    files += 1;
    if (!midwayDone) {
      midwayDone = true;
      await options.midway?.();
    }
    if (options.onProgress && files - reported >= 256) {
      reported = files;
      options.onProgress(files);
    }
  };
  const removeDir = async (dir: string): Promise<void> => {
    if (options.signal?.aborted) return;
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (gone(error)) return;
      if (errnoOf(error) !== 'EACCES') throw error;
      // A read-only directory copied from the source: make it ours to empty.
      await fs.promises.chmod(dir, 0o700);
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    }
    if (entries.length > 0) {
      // A release copied with its modes may hold directories we may not write to.
      const stat = await fs.promises.lstat(dir).catch(() => undefined);
      if (stat && (stat.mode & 0o300) !== 0o300) await fs.promises.chmod(dir, 0o700).catch(() => undefined);
    }
    const others = entries.filter((e) => !e.isDirectory());
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < others.length) {
        const entry = others[next++] as fs.Dirent;
        await unlinkOne(path.join(dir, entry.name));
      }
    };
    await Promise.all(Array.from({ length: Math.min(32, others.length) }, worker));
    for (const entry of entries) {
      if (entry.isDirectory()) await removeDir(path.join(dir, entry.name));
    }
    if (options.signal?.aborted) return;
    try {
      await fs.promises.rmdir(dir);
    } catch (error) {
      if (gone(error)) return;
      // Something we had not listed (another deleter's view lagging ours): one more pass.
      if (errnoOf(error) !== 'ENOTEMPTY') throw error;
      await fs.promises.rm(dir, { recursive: true, force: true, maxRetries: 3 });
    }
  };
  await removeDir(trash);
  options.onProgress?.(files);
  return files;
}
