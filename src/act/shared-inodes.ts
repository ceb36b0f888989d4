/**
 * Before-switch hooks run in a release whose unchanged files are hardlinks: the same inodes as
 * the live release (and older ones) hold. A hook that writes into such a file in place (`>>`,
 * PHP's file_put_contents, `composer dump-autoload`, a chmod) writes into every release sharing
 * it, the live one included, and a failed deploy would leave that change behind. After the hooks,
 * this finds each linked inode that no longer holds what it was linked for, gives the new release
 * its own copy of what the hook made (when the deploy goes on), and writes the built bytes back
 * into the shared inode from a private copy of the build file checked against the hash it was
 * linked by. Hand-written: no library knows which inodes a deploy shared.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FileStamp } from '../plan/stat-cache.ts';
import { fsyncDir } from './durable.ts';
import { hashFileSync } from './manifest.ts';

/** A file the copy linked from the previous release, and what it must go on holding there. */
export interface LinkedFile {
  /** `/`-separated, for messages. */
  rel: string;
  /** Its path in the new release. */
  at: string;
  /** Its path in the release it was linked from. */
  from: string;
  /** The build file whose bytes it holds. */
  build: string;
  dev: number;
  /** Right after the link (link(2) moved the ctime). */
  stamp: FileStamp;
  sha256: string;
  mode: number;
  atimeMs: number;
  mtimeMs: number;
}

export interface SharedInodeRepair {
  /** Shared files a hook changed, written back to the build's bytes and mode in the releases sharing them. */
  restored: string[];
  /** Of those, the ones the new release got its own copy of (the hook's version). */
  unshared: string[];
}

const CHUNK = 1024 * 1024;
const READ = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK;

/** Copies `fromFd` (from its start) to `toFd`, returning the SHA-256 of the bytes copied. */
function copyFd(fromFd: number, toFd: number, buf: Buffer): string {
  const hash = createHash('sha256');
  let pos = 0;
  for (;;) {
    const n = fs.readSync(fromFd, buf, 0, buf.length, pos);
    if (n === 0) break;
    hash.update(buf.subarray(0, n));
    fs.writeSync(toFd, buf, 0, n, pos);
    pos += n;
  }
  fs.ftruncateSync(toFd, pos);
  return hash.digest('hex');
}

const tempBeside = (file: string): string => path.join(path.dirname(file), `.${path.basename(file)}.unshare.${process.pid}.${Math.random().toString(36).slice(2)}`);

/** Whether the shared inode still holds what it was linked for: one lstat when untouched, a read when its ctime moved. */
function intact(file: LinkedFile): { intact: true } | { intact: false; ino: number } | undefined {
  const st = fs.lstatSync(file.from, { throwIfNoEntry: false });
  // Gone or replaced in the previous release: not the inode this deploy shared.
  if (st === undefined || !st.isFile() || st.ino !== file.stamp.ino || st.dev !== file.dev) return undefined;
  if (st.ctimeMs === file.stamp.ctimeMs) return { intact: true };
  // The ctime also moves when a link to it goes (a hook's `sed -i` renames a new file over the release's): read it.
  const sameOwner = file.stamp.uid === undefined || (st.uid === file.stamp.uid && st.gid === file.stamp.gid);
  if ((st.mode & 0o7777) === file.mode && st.size === file.stamp.size && sameOwner && hashFileSync(file.from, true, st.size).sha256 === file.sha256) return { intact: true };
  return { intact: false, ino: st.ino };
}

/** The new release's own copy of what a hook left in the shared inode, renamed over its link. */
function unshare(file: LinkedFile, ino: number, buf: Buffer, durable: boolean): boolean {
  const st = fs.lstatSync(file.at, { throwIfNoEntry: false });
  if (st === undefined || st.ino !== ino) return false;
  const temp = tempBeside(file.at);
  const src = fs.openSync(file.at, READ);
  try {
    const dst = fs.openSync(temp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    try {
      copyFd(src, dst, buf);
      if (process.getuid?.() === 0) fs.fchownSync(dst, st.uid, st.gid);
      fs.fchmodSync(dst, st.mode & 0o7777);
      fs.futimesSync(dst, st.atime, st.mtime);
      if (durable) fs.fsyncSync(dst);
    } finally {
      fs.closeSync(dst);
    }
    fs.renameSync(temp, file.at);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  } finally {
    fs.closeSync(src);
  }
  return true;
}

/**
 * Writes the build's bytes, owner, mode and times back into the shared inode, through the previous
 * release's path, checked to be that inode once open. The bytes come from a private copy of the
 * build file whose hash was checked first: a build changed since the deploy read it is never
 * written into a live release.
 */
function restore(file: LinkedFile, ino: number, buf: Buffer, durable: boolean, scratch: string): void {
  const spare = `${scratch}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  const build = fs.openSync(file.build, READ);
  let copy: number | undefined;
  try {
    copy = fs.openSync(spare, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
    if (copyFd(build, copy, buf) !== file.sha256) {
      throw Object.assign(new Error(`${file.build} changed since the deploy read it; ${file.from} still holds what a before-switch hook wrote into it`), { code: 'ESTALE' });
    }
    const shared = fs.openSync(file.from, fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(shared);
      if (!st.isFile() || st.ino !== ino || st.dev !== file.dev) throw Object.assign(new Error(`${file.from} was replaced while it was being restored`), { code: 'ESTALE' });
      copyFd(copy, shared, buf);
      // The owner first: a chown clears setuid and setgid bits, which the mode then sets again.
      if (file.stamp.uid !== undefined && file.stamp.gid !== undefined && (st.uid !== file.stamp.uid || st.gid !== file.stamp.gid)) fs.fchownSync(shared, file.stamp.uid, file.stamp.gid);
      fs.fchmodSync(shared, file.mode);
      fs.futimesSync(shared, file.atimeMs / 1000, file.mtimeMs / 1000);
      if (durable) fs.fsyncSync(shared);
    } finally {
      fs.closeSync(shared);
    }
  } finally {
    if (copy !== undefined) fs.closeSync(copy);
    fs.closeSync(build);
    fs.rmSync(spare, { force: true });
  }
}

/**
 * After the before-switch hooks: every linked file whose shared inode a hook changed is written
 * back to the build's bytes, mode and times in the releases sharing it; with `unshare` (the
 * deploy goes on) the new release first gets its own copy of the hook's version.
 */
export async function repairSharedInodes(files: readonly LinkedFile[], options: { unshare: boolean; durable: boolean; scratch: string }): Promise<SharedInodeRepair> {
  const buf = Buffer.allocUnsafe(CHUNK);
  // `scratch` is a name recovery sweeps (a `stage.` name in the staging area): a kill here leaves nothing behind.
  const out: SharedInodeRepair = { restored: [], unshared: [] };
  const dirs = new Set<string>();
  for (const file of files) {
    const verdict = intact(file);
    if (verdict === undefined || verdict.intact) continue;
    if (options.unshare && unshare(file, verdict.ino, buf, options.durable)) {
      out.unshared.push(file.rel);
      dirs.add(path.dirname(file.at));
    }
    restore(file, verdict.ino, buf, options.durable, options.scratch);
    out.restored.push(file.rel);
  }
  if (options.durable) for (const dir of dirs) await fsyncDir(dir);
  return out;
}
