import fs from 'node:fs';
import path from 'node:path';
import { errnoOf } from '../errors.ts';

/**
 * `mkdir -p`. Hand-written: Node's `{ recursive: true }` loops forever, in a thread-pool call that
 * no signal can end, where mkdir(2) answers ENOENT under a parent that exists (procfs, sysfs,
 * some FUSE filesystems): it makes the parent (EEXIST) and tries the child again, without end.
 * Here the child is tried once more after its parent is made, and that answer stands.
 * With `exact`, each directory it makes gets `mode` whatever the umask (a directory that was
 * there keeps its own): see `makeReachableDirs`.
 */
export async function makeDirs(dir: string, mode = 0o755, exact = false): Promise<void> {
  const made = async (): Promise<void> => {
    if (exact) await fs.promises.chmod(dir, mode);
  };
  try {
    await fs.promises.mkdir(dir, { mode });
    return await made();
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'EEXIST' && (await isDirectory(dir))) return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw error;
  }
  await makeDirs(path.dirname(dir), mode, exact);
  try {
    await fs.promises.mkdir(dir, { mode });
  } catch (error) {
    if (errnoOf(error) === 'EEXIST' && (await isDirectory(dir))) return;
    throw error;
  }
  await made();
}

/**
 * `mkdir -p` of a directory a release is reached through (the root and its missing parents,
 * `releases/`, `shared/` and what is made in it): each one made is 0755 whatever the umask. Who
 * can read a release is decided by the build's modes, which the release keeps; under umask 027
 * or 077, `releases/` made 0750 or 0700 left a web server running as another user answering 403.
 */
export function makeReachableDirs(dir: string): Promise<void> {
  return makeDirs(dir, 0o755, true);
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await fs.promises.stat(dir)).isDirectory();
  } catch {
    return false;
  }
}
