import fs from 'node:fs';
import path from 'node:path';
import { errnoOf } from '../errors.ts';

/**
 * `mkdir -p`. Hand-written: Node's `{ recursive: true }` loops forever, in a thread-pool call that
 * no signal can end, where mkdir(2) answers ENOENT under a parent that exists (procfs, sysfs,
 * some FUSE filesystems): it makes the parent (EEXIST) and tries the child again, without end.
 * Here the child is tried once more after its parent is made, and that answer stands.
 */
export async function makeDirs(dir: string, mode = 0o755): Promise<void> {
  try {
    await fs.promises.mkdir(dir, { mode });
    return;
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'EEXIST' && (await isDirectory(dir))) return;
    const parent = path.dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw error;
  }
  await makeDirs(path.dirname(dir), mode);
  try {
    await fs.promises.mkdir(dir, { mode });
  } catch (error) {
    if (errnoOf(error) === 'EEXIST' && (await isDirectory(dir))) return;
    throw error;
  }
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await fs.promises.stat(dir)).isDirectory();
  } catch {
    return false;
  }
}
