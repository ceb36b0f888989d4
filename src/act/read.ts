/** Reading the small state files others may have replaced: a FIFO or device must never block us. */
import fs from 'node:fs';

/** Thrown (as `code`) when a path holds something other than a regular file. */
export const NOT_REGULAR = 'ENOTREGULAR';

/** A NOT_REGULAR error names what the path holds (`kind`: `a FIFO (named pipe)`, `a directory`, …). */
function notRegular(file: string, stat: fs.Stats): NodeJS.ErrnoException & { kind: string } {
  return Object.assign(new Error(`${file} is not a regular file`), { code: NOT_REGULAR, path: file, kind: fileKindOf(stat) });
}

/** What a path that is no regular file holds, in words. */
export function fileKindOf(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO (named pipe)';
  if (stat.isCharacterDevice()) return 'a character device';
  if (stat.isBlockDevice()) return 'a block device';
  if (stat.isSocket()) return 'a socket';
  return 'not a regular file';
}

/*
 * O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, and a synchronous
 * open blocks the main thread so that no signal handler runs. The type is checked on the open
 * descriptor, so a swap between a check and the open cannot slip a FIFO in.
 */
const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;

/** Whether a name is there at all, a link that leads nowhere included (lstat); a folder this user cannot search says no. */
export function nameExists(p: string): boolean {
  try {
    return fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;
  } catch {
    return false;
  }
}

/** The text of the symbolic link at `p` (one that leads nowhere too); undefined when `p` is missing or no link. */
export function symlinkTarget(p: string): string | undefined {
  try {
    return fs.lstatSync(p).isSymbolicLink() ? fs.readlinkSync(p) : undefined;
  } catch {
    return undefined;
  }
}

/** The lstat of `p` when it is a directory itself (not a link to one); undefined otherwise, or when it cannot be read. */
export function directoryStat(p: string): fs.Stats | undefined {
  try {
    const stat = fs.lstatSync(p);
    return stat.isDirectory() ? stat : undefined;
  } catch {
    return undefined;
  }
}

/** `check` sees the opened file's own stat (never another file put in its place since) before it is read. */
export function readRegularFileSync(file: string, check?: (stat: fs.Stats) => void): string {
  return readRegularFileBytesSync(file, check).toString('utf8');
}

/**
 * readRegularFileSync's bytes, undecoded: for text whose encoding is checked rather than assumed.
 * With `maxBytes`, only the file's first `maxBytes` are read (a pid file given a log by mistake).
 */
export function readRegularFileBytesSync(file: string, check?: (stat: fs.Stats) => void, maxBytes?: number): Buffer {
  const fd = fs.openSync(file, FLAGS);
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw notRegular(file, stat);
    check?.(stat);
    if (maxBytes !== undefined) {
      const buffer = Buffer.alloc(maxBytes);
      return buffer.subarray(0, fs.readSync(fd, buffer, 0, maxBytes, 0));
    }
    return fs.readFileSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

export async function readRegularFile(file: string): Promise<string> {
  const handle = await fs.promises.open(file, FLAGS);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw notRegular(file, stat);
    return await handle.readFile('utf8');
  } finally {
    await handle.close();
  }
}
