import fs from 'node:fs';
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
 * caller to delete with `deleteTree()` (act/remove-tree.ts) once the lock is released.
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

/**
 * What stands at a release's path when it is no release directory, in words: a file, a symlink
 * (to another release, or to nothing: a volume not mounted). Undefined when nothing is there, or a
 * directory. For the messages of commands that found no release there ("does not exist" was wrong).
 */
export function entryNotRelease(dir: string): string | undefined {
  const st = fs.lstatSync(dir, { throwIfNoEntry: false });
  if (st === undefined || st.isDirectory()) return undefined;
  if (!st.isSymbolicLink()) return 'a file';
  let target = '?';
  try {
    target = fs.readlinkSync(dir);
  } catch {
    // Gone meanwhile: the words below still hold.
  }
  const dangling = fs.statSync(dir, { throwIfNoEntry: false }) === undefined;
  return `a symlink to ${JSON.stringify(target)}${dangling ? ', which does not exist (a volume not mounted?)' : ''}`;
}

/** `<dir> is <what>, not a release directory`, or undefined (entryNotRelease). */
export function notAReleaseDir(dir: string): string | undefined {
  const what = entryNotRelease(dir);
  return what === undefined ? undefined : `${dir} is ${what}, not a release directory`;
}
