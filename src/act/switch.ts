import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DeployError, errnoOf } from '../errors.ts';
import { releaseIdFromLink, shellWord } from '../plan/paths.ts';
import { currentNotSymlinkHint } from '../plan/root-shape.ts';
import { fsyncDir } from './durable.ts';
import type { Layout } from './layout.ts';

export type CurrentState =
  | { kind: 'missing' }
  | { kind: 'release'; id: string; target: string }
  /** `notDir`: `releases/<id>` exists but is no directory (a file where a release belongs). */
  | { kind: 'dangling'; id: string; target: string; notDir?: true }
  /** `aliasOf`: `releases/<name>` is a link to that other release (`releases/stable -> r1`). */
  | { kind: 'outside'; target: string; aliasOf?: string }
  | { kind: 'directory' }
  | { kind: 'file' };

/**
 * The release `current`'s target names, if it names one of `<root>/releases/`: by its text (a
 * relative link, or an absolute one through the root's given or real path), else, for an absolute
 * link through another alias of the root (`/var/www/app` linked to `/srv/app`, as a Capistrano
 * deploy_to often is), by the real path of the directory it names.
 */
export function releaseIdOfCurrent(target: string, root: string): string | undefined {
  const rootReal = fs.realpathSync(root);
  const id = releaseIdFromLink(target, rootReal, root);
  if (id !== undefined || !path.isAbsolute(target)) return id;
  const name = path.basename(target);
  if (name === '' || name === '.' || name === '..' || target.split(path.sep).includes('..')) return undefined;
  try {
    // releases/ may itself be a link to another volume: compared real path to real path.
    return fs.realpathSync(path.dirname(target)) === fs.realpathSync(path.join(rootReal, 'releases')) ? name : undefined;
  } catch {
    return undefined;
  }
}

/** What `current` is now, without following it further than one readlink. */
export async function readCurrent(layout: Layout): Promise<CurrentState> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.lstat(layout.current);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return { kind: 'missing' };
    throw error;
  }
  if (stat.isDirectory()) return { kind: 'directory' };
  if (!stat.isSymbolicLink()) return { kind: 'file' };
  const target = await fs.promises.readlink(layout.current);
  const id = releaseIdOfCurrent(target, layout.root);
  if (id === undefined) return { kind: 'outside', target };
  try {
    // `releases/stable` as a link to another release is not a release: taken for one, the release
    // it reaches would go unguarded (prune deleted what served). A release moved to another disk
    // and linked back (`releases/<id> -> /mnt/other/<id>`) is still that release.
    const link = await fs.promises.lstat(path.join(layout.releases, id));
    if (link.isSymbolicLink() && aliasOfAnotherRelease(layout, id)) return { kind: 'outside', target, aliasOf: path.basename(fs.realpathSync(path.join(layout.releases, id))) };
    const st = await fs.promises.stat(path.join(layout.releases, id));
    if (!st.isDirectory()) return { kind: 'dangling', id, target, notDir: true };
  } catch (error) {
    if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') return { kind: 'dangling', id, target };
    throw error;
  }
  return { kind: 'release', id, target };
}

/** Whether `releases/<id>`, a link, leads to another entry of releases/ (by real paths). */
export function aliasOfAnotherRelease(layout: Layout, id: string): boolean {
  try {
    const reached = fs.realpathSync(path.join(layout.releases, id));
    return path.dirname(reached) === fs.realpathSync(layout.releases) && path.basename(reached) !== id;
  } catch {
    return false;
  }
}

/** The live release id, or an error saying why `current` is not something we may replace. */
export function currentIdOrThrow(state: CurrentState, layout: Layout, options: { allowDangling?: boolean } = {}): string | null {
  switch (state.kind) {
    case 'missing':
      return null;
    case 'release':
      return state.id;
    case 'dangling':
      if (options.allowDangling) return null;
      throw new DeployError('CURRENT_DANGLING', `${layout.current} points to ${state.target}, which ${state.notDir ? 'is not a directory' : 'does not exist'}`, {
        hint: `repair it with: atomic-deploy rollback ${shellWord(layout.root)} --to <id> (see: atomic-deploy releases ${shellWord(layout.root)})`,
      });
    case 'outside':
      // A link between releases: `rollback --to` points current at a release itself, in one rename, as for a dangling current.
      if (state.aliasOf !== undefined && options.allowDangling) return null;
      if (state.aliasOf !== undefined) {
        throw new DeployError('CURRENT_OUTSIDE_RELEASES', `${layout.current} points to ${state.target}, a link to the release ${state.aliasOf}, not a release itself (prune and rollback could not tell that ${state.aliasOf} serves)`, {
          hint: `point current at the release itself, in one rename: atomic-deploy rollback ${shellWord(layout.root)} --to ${shellWord(state.aliasOf)}`,
        });
      }
      throw new DeployError('CURRENT_OUTSIDE_RELEASES', `${layout.current} points to ${state.target}, which is not a release directory in ${layout.releases}`, {
        hint: 'move that tree into releases/<id>/ and point current at it, or deploy into another root',
      });
    case 'directory':
    case 'file':
      throw new DeployError('CURRENT_NOT_SYMLINK', `${layout.current} is a ${state.kind === 'directory' ? 'real directory' : 'regular file'}, not a symlink`, {
        hint: currentNotSymlinkHint(state.kind, layout.current),
      });
  }
}

export interface SwitchHooks {
  /** Called once the temp link exists, before the rename (failpoints live here). */
  beforeRename?: () => Promise<void>;
  /** Called right after the rename succeeded: from here on the switch stands. */
  afterRename?: () => void;
}

/**
 * Points `current` at `releases/<id>` with one rename(2) of a fresh symlink, which replaces
 * the old link atomically on every POSIX system: readers see the old or the new tree, never
 * nothing. Hand-written because `ln -sfn` unlinks first on BusyBox and BSD; no library gives it.
 */
export async function switchCurrent(layout: Layout, id: string, options: { durable: boolean } & SwitchHooks): Promise<void> {
  // Unpredictable name: nobody can plant a link at the name we are about to rename from.
  const temp = path.join(layout.tmp, `current.${randomBytes(8).toString('hex')}`);
  await fs.promises.symlink(path.join('releases', id), temp);
  try {
    await options.beforeRename?.();
    await fs.promises.rename(temp, layout.current);
  } catch (error) {
    await fs.promises.rm(temp, { force: true }).catch(() => undefined);
    throw error;
  }
  options.afterRename?.();
  // Without this fsync a power cut right after the deploy could bring back the old link.
  if (options.durable) await fsyncDir(layout.root);
}
