import fs from 'node:fs';
import path from 'node:path';
import { DeployError, errnoOf } from '../errors.ts';
import { SHARED_MISSING_HINT, sharedCreateDenied, sharedPathSteps, type SharedLink, type SharedTargetKind, type SharedType } from '../plan/shared.ts';
import type { Layout } from './layout.ts';
import { makeReachableDirs, widenMode } from './mkdirs.ts';
import { userNameOf, userOf } from './users.ts';

export function sharedMissingError(layout: Layout, missing: readonly string[]): DeployError {
  const list = missing.map((p) => path.join(layout.shared, p)).join(', ');
  return new DeployError('SHARED_MISSING', `shared ${missing.length === 1 ? 'target' : 'targets'} missing: ${list}`, {
    hint: SHARED_MISSING_HINT,
    details: { missing },
  });
}

/** What `<root>/shared/<p>` is, links followed; when nothing is there, what stops it being made. */
export function sharedTargetKind(layout: Layout, p: string): SharedTargetKind {
  try {
    const st = fs.statSync(path.join(layout.shared, p));
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  } catch (error) {
    const code = errnoOf(error);
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
  }
  // shared/ itself first: a file or a dangling link there would otherwise fail the lstat below
  // with ENOTDIR, or pass for missing and fail the mkdir of --shared-create half way.
  for (const step of ['', ...sharedPathSteps(p)]) {
    const full = path.join(layout.shared, step);
    const st = fs.lstatSync(full, { throwIfNoEntry: false });
    if (st === undefined) return 'missing';
    const followed = st.isSymbolicLink() ? fs.statSync(full, { throwIfNoEntry: false }) : st;
    if (followed === undefined) return 'dangling';
    if (step !== p && !followed.isDirectory()) return 'blocked';
  }
  return 'missing';
}

/**
 * Why this user cannot make `shared/<p>` (`--shared-create`): the folder it would be made in is
 * another user's (a shared/ the web server's user made) and may not be written. Asked before the
 * lock, so the deploy is refused (exit 2) before its release is copied. A fleet host asks the same
 * in sh (remote/script.ts `sharedFactsLines`).
 */
export function sharedCreateProblem(layout: Layout, p: string, type: SharedType): { problem: string; hint: string } | undefined {
  if (process.geteuid?.() === 0) return undefined;
  let dir = path.dirname(path.join(layout.shared, p));
  while (!fs.existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
    return undefined;
  } catch (error) {
    if (!['EACCES', 'EPERM'].includes(errnoOf(error) ?? '')) return undefined;
  }
  const uid = fs.statSync(dir).uid;
  const name = userNameOf(uid);
  return sharedCreateDenied(p, type, { full: path.join(layout.shared, p), dir, owner: { uid, ...(name === undefined ? {} : { name }) }, user: userOf(process.geteuid?.() ?? -1) });
}

/** Makes one missing shared target empty (`--shared-create`): a directory, or a file only its owner reads, since such files hold secrets. */
export async function createSharedTarget(layout: Layout, p: string, type: SharedType): Promise<void> {
  const full = path.join(layout.shared, p);
  if (type === 'dir') {
    await makeReachableDirs(full);
    return;
  }
  await makeReachableDirs(path.dirname(full));
  // wx: a file that appeared meanwhile is someone's content, never truncated.
  await fs.promises.writeFile(full, '', { flag: 'wx', mode: 0o600 }).catch((error: unknown) => {
    if (errnoOf(error) !== 'EEXIST') throw error;
  });
}

/**
 * Puts the shared links into a staged release. Runs before the release is made durable and
 * renamed into `releases/`, so the links are part of the release from its first moment there.
 * Returns the directories it made (the fsync fallback must sync them too).
 */
export async function linkShared(staging: string, links: readonly SharedLink[]): Promise<string[]> {
  const made: string[] = [];
  for (const link of links) {
    for (const dir of link.mkdirs) {
      const full = path.join(staging, dir);
      if (made.includes(full)) continue;
      await inWritableDir(path.dirname(full), () => fs.promises.mkdir(full, { mode: 0o755 }));
      // 0755 whatever the umask, as a fleet host makes them and as the build's manifest lists them.
      await widenMode(full, 0o755);
      made.push(full);
    }
    const at = path.join(staging, link.path);
    await inWritableDir(path.dirname(at), () => fs.promises.symlink(link.linkText, at));
  }
  return made;
}

/**
 * Runs `change`, which adds or removes a name in `dir`, with the owner's write bit set on `dir`
 * for its duration, then the mode as it was. A release keeps its build's modes, and a build may
 * have read-only directories (0555: a tree copied from a read-only store, an archive's `./` entry):
 * linking a shared path into one failed with EACCES for any user but root. Only the deploy's own
 * staging copy is changed this way, before it is placed.
 */
export async function inWritableDir<T>(dir: string, change: () => Promise<T>): Promise<T> {
  const mode = (await fs.promises.lstat(dir)).mode & 0o7777;
  if ((mode & 0o200) !== 0 || process.geteuid?.() === 0) return change();
  await fs.promises.chmod(dir, mode | 0o200);
  try {
    return await change();
  } finally {
    await fs.promises.chmod(dir, mode);
  }
}
