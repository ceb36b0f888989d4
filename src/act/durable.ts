import fs from 'node:fs';
import path from 'node:path';

/** fsync a directory so that the names created, renamed or removed in it survive a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, fs.constants.O_RDONLY);
  try {
    await handle.sync();
  } catch (error) {
    // Some filesystems refuse fsync on a directory handle; the data itself is still synced.
    if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
  } finally {
    await handle.close();
  }
}

/** Writes a file whole or not at all: temp file, fsync, rename, fsync the directory. */
/** Errors that mean the filesystem has no room left (blocks or quota). */
export function isFullDisk(error: unknown): boolean {
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** The temp name a whole-file replacement of `file` is written under (`.<name>.<pid>.<random>`, what sweepStateTemps knows). */
function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}`);
}

export async function writeFileAtomic(file: string, data: string | Iterable<string>, durable = true): Promise<void> {
  const dir = path.dirname(file);
  const tmp = tempPathFor(file);
  const handle = await fs.promises.open(tmp, 'wx', 0o644);
  try {
    if (typeof data === 'string') await handle.writeFile(data);
    // Piece by piece: a large file (a 100k-entry manifest) is never one string in memory.
    else {
      for (const piece of data) {
        const bytes = Buffer.from(piece);
        // A short write (a disk filling up) is continued, never left as a silently cut file.
        for (let at = 0; at < bytes.length; ) at += (await handle.write(bytes, at, bytes.length - at)).bytesWritten;
      }
    }
    if (durable) await handle.sync();
  } catch (error) {
    // A full disk fails the write after the name exists: the empty temp file must not stay.
    await handle.close().catch(() => undefined);
    await fs.promises.rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await fs.promises.rename(tmp, file);
  } catch (error) {
    await fs.promises.rm(tmp, { force: true });
    throw error;
  }
  if (durable) await fsyncDir(dir);
}

/** Copies `from` to `file` whole or not at all: a copy under writeFileAtomic's temp name, fsync, rename, fsync the directory. */
export async function copyFileAtomic(from: string, file: string, durable = true): Promise<void> {
  const dir = path.dirname(file);
  const tmp = tempPathFor(file);
  try {
    await fs.promises.copyFile(from, tmp, fs.constants.COPYFILE_EXCL);
    if (durable) {
      const handle = await fs.promises.open(tmp, 'r+');
      await handle.sync().finally(() => handle.close());
    }
    await fs.promises.rename(tmp, file);
  } catch (error) {
    await fs.promises.rm(tmp, { force: true });
    throw error;
  }
  if (durable) await fsyncDir(dir);
}

let syncfsWorks: boolean | undefined;

/** One syncfs(2) of the filesystem holding `dir`, via coreutils `sync -f`; false if unavailable. */
async function syncFilesystem(dir: string): Promise<boolean> {
  if (syncfsWorks === false) return false;
  // Loaded here: status and releases load this module but never sync, and child_process costs start-up time.
  const { spawn } = await import('node:child_process');
  return new Promise((resolve) => {
    // In the command's process group, unlike ssh and rsync: a terminal's signal ends it with the
    // command, which then falls back to fsync per file. In a group of its own, a syncfs held up by
    // the filesystem's other writes could keep an interrupted command waiting on it (docs/reliability.md, row 130).
    const child = spawn('sync', ['-f', dir], { stdio: 'ignore' });
    child.on('error', () => {
      syncfsWorks = false;
      resolve(false);
    });
    child.on('exit', (code) => {
      syncfsWorks = code === 0;
      resolve(code === 0);
    });
  });
}

/**
 * Gets a tree's data moving to disk while it is still being copied: a background `sync -f` each
 * time enough has been written since the last one, never two at once. The disk works while the
 * copy runs, and the final syncfs (which alone gives the guarantee) waits only for the rest.
 * A failing one is treated like a failing final syncfs: fsync of every file instead.
 */
export class EarlyWriteback {
  private running: Promise<boolean> | undefined;
  private mark = { files: 0, bytes: 0 };

  constructor(
    private readonly dir: string,
    private readonly every = { files: 2000, bytes: 32 * 1024 * 1024 },
  ) {}

  /** Called with the copy's progress. */
  progress(files: number, bytes: number): void {
    if (this.running || syncfsWorks === false) return;
    if (files - this.mark.files < this.every.files && bytes - this.mark.bytes < this.every.bytes) return;
    this.mark = { files, bytes };
    this.running = syncFilesystem(this.dir).finally(() => (this.running = undefined));
  }

  /** Waits for the one in flight, if any. */
  async settle(): Promise<void> {
    await this.running;
  }
}

async function fsyncFile(file: string): Promise<void> {
  const handle = await fs.promises.open(file, fs.constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export interface DurableOptions {
  /**
   * Skip syncfs and fsync just the listed paths: right when the list is short, because syncfs
   * also waits for every other dirty page of the filesystem (a busy server's logs and databases).
   */
  targeted?: boolean;
}

/**
 * Makes a tree durable. One syncfs where the system has it (about 90 ms for 10k files here);
 * otherwise, or when `targeted`, fsync of every listed file and directory, 16 in flight.
 */
export async function makeTreeDurable(dir: string, listTree: () => string[], options: DurableOptions = {}): Promise<'syncfs' | 'fsync'> {
  if (!options.targeted && (await syncFilesystem(dir))) {
    // syncfs flushes data and names of the whole filesystem, including this tree's directories.
    return 'syncfs';
  }
  // Files before directories: a directory's fsync makes its names durable once their data is.
  const queue = listTree();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < queue.length) {
      const item = queue[next++] as string;
      await fsyncFile(item);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return 'fsync';
}
