import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { errnoOf } from '../errors.ts';
import type { PreviousFile } from '../plan/strategy.ts';

/**
 * What the previous release holds at each of these paths (one lstat each; absent paths are left
 * out). Only files reached through real directories count: lstat follows a symlink on the way, so
 * a file under a linked directory (a shared path, or a link put there by hand) is another file,
 * maybe outside the root, and must never be hardlinked into a release. Each directory on the way
 * costs one lstat, once; one that cannot be read hides its files (they are copied).
 */
export function previousFiles(releaseDir: string, rels: readonly string[]): Map<string, PreviousFile> {
  const found = new Map<string, PreviousFile>();
  const realDirs = new Map<string, boolean>([['', true]]);
  const parentOf = (rel: string): string => rel.slice(0, Math.max(0, rel.lastIndexOf(path.sep)));
  const isRealDir = (rel: string): boolean => {
    const known = realDirs.get(rel);
    if (known !== undefined) return known;
    let real = isRealDir(parentOf(rel));
    if (real) {
      try {
        real = fs.lstatSync(`${releaseDir}${path.sep}${rel}`, { throwIfNoEntry: false })?.isDirectory() === true;
      } catch {
        real = false;
      }
    }
    realDirs.set(rel, real);
    return real;
  };
  for (const rel of rels) {
    if (!isRealDir(parentOf(rel))) continue;
    let stat: fs.Stats | undefined;
    try {
      // Most misses are new files: no exception for those, it costs more than the lstat.
      stat = fs.lstatSync(`${releaseDir}${path.sep}${rel}`, { throwIfNoEntry: false });
    } catch (error) {
      const code = errnoOf(error);
      if (code === 'ENOTDIR' || code === 'EACCES') continue;
      throw error;
    }
    if (!stat) continue;
    found.set(rel, { rel, regular: stat.isFile(), size: stat.size, mode: stat.mode & 0o7777, uid: stat.uid, gid: stat.gid, ino: stat.ino, ctimeMs: stat.ctimeMs });
  }
  return found;
}

/** Device of a path, for the same-filesystem test a hardlink needs. */
export function deviceOf(p: string): number {
  return fs.statSync(p).dev;
}

/** Filesystems (statfs f_type) with no copy-on-write clones at all. */
const NO_CLONES = new Map<number, string>([
  // ext2, ext3 and ext4 share one magic number.
  [0xef53, 'ext2/ext3/ext4'],
  [0x01021994, 'tmpfs'],
  [0x858458f6, 'ramfs'],
  [0x4d44, 'vfat'],
  [0x2011bab0, 'exfat'],
  [0x5346544e, 'ntfs'],
  [0x7366746e, 'ntfs3'],
  [0xf2f52010, 'f2fs'],
  [0x3153464a, 'jfs'],
  [0x52654973, 'reiserfs'],
  [0x73717368, 'squashfs'],
]);

/**
 * The name of `dir`'s filesystem when it is one that cannot clone: a reflink deploy there is
 * refused on that alone, with no probe file, so the root stays as it was, times included. Any
 * other filesystem (btrfs, xfs, whatever is not listed) is left to the probe.
 */
export function noClonesOn(dir: string): string | undefined {
  try {
    return NO_CLONES.get(fs.statfsSync(dir).type >>> 0);
  } catch {
    return undefined;
  }
}

export type CloneProbe = { kind: 'cloned' } | { kind: 'unsupported'; errno: string } | { kind: 'unknown'; why: string };

/**
 * Tries one copy-on-write clone of `sample` into `dir` (FICLONE_FORCE) and removes it at once:
 * the only reliable way to learn whether the two filesystems can share extents.
 */
export async function probeClone(sample: string, dir: string, prefix = '.atomic-deploy-clone-probe'): Promise<CloneProbe> {
  const probe = path.join(dir, `${prefix}.${randomBytes(6).toString('hex')}`);
  try {
    await fs.promises.copyFile(sample, probe, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE_FORCE);
    return { kind: 'cloned' };
  } catch (error) {
    const code = errnoOf(error) ?? 'error';
    // Not allowed to write there: that says nothing about cloning.
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOSPC' || code === 'ENOENT') return { kind: 'unknown', why: code };
    return { kind: 'unsupported', errno: code };
  } finally {
    await fs.promises.rm(probe, { force: true });
  }
}

/** The nearest directory that exists at or above `p`. */
export function nearestExistingDir(p: string): string {
  for (let d = path.resolve(p); ; d = path.dirname(d)) {
    try {
      if (fs.statSync(d).isDirectory()) return d;
    } catch {
      // keep climbing
    }
    if (path.dirname(d) === d) return d;
  }
}
