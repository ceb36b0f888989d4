import fs from 'node:fs';
import path from 'node:path';
import { errnoOf } from '../errors.ts';

/**
 * `mkdir -p`. Hand-written: Node's `{ recursive: true }` loops forever, in a thread-pool call that
 * no signal can end, where mkdir(2) answers ENOENT under a parent that exists (procfs, sysfs,
 * some FUSE filesystems): it makes the parent (EEXIST) and tries the child again, without end.
 * Here the child is tried once more after its parent is made, and that answer stands.
 * With `exact`, each directory it makes gets at least `mode` whatever the umask (a directory
 * that was there keeps its own): see `makeReachableDirs`.
 */
export async function makeDirs(dir: string, mode = 0o755, exact = false): Promise<void> {
  const made = async (): Promise<void> => {
    if (exact) await widenMode(dir, mode);
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
 * `releases/`, `shared/` and what is made in it): each one made is at least 0755 whatever the
 * umask (an inherited setgid bit stays). Who can read a release is decided by the build's modes,
 * which the release keeps; under umask 027 or 077, `releases/` made 0750 or 0700 left a web
 * server running as another user answering 403.
 */
export function makeReachableDirs(dir: string): Promise<void> {
  return makeDirs(dir, 0o755, true);
}

/**
 * Adds the bits of `mode` a directory lacks, keeping the rest: a setgid bit it inherited from its
 * parent (a group-shared /srv/www) would be cleared by a plain chmod to `mode`.
 */
export async function widenMode(dir: string, mode: number): Promise<void> {
  const st = await fs.promises.stat(dir);
  if ((st.mode & mode) !== mode) await fs.promises.chmod(dir, (st.mode & 0o7777) | mode);
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await fs.promises.stat(dir)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The process's umask, read from /proc where there is one: process.umask() reads it by setting
 * it to 0 and back, and a directory the thread pool made in between would get 0777.
 */
export function currentUmask(): number {
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number.parseInt(m[1] as string, 8);
  } catch {
    // No procfs (macOS, BSD): the call below.
  }
  return process.umask();
}
