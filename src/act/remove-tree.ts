/**
 * `rm -rf` for trees copied with their build's or archive's modes. A directory without write
 * permission for its owner (0555, as every Nix store path and many read-only build outputs have)
 * cannot be emptied by a deploy user who is not root: fs.rm fails with EACCES and the stage,
 * trash or undone release stays behind for good. Where that happens, every directory of the tree
 * is opened to its owner (u+rwx) and the removal runs once more. Hand-written: fs.rm has no such
 * mode. The walk never follows a symbolic link, so nothing outside the tree is ever chmod-ed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { errnoOf } from '../errors.ts';
import type { Restamper } from './restamp.ts';
import { userOf } from './users.ts';

const CLOSED = new Set(['EACCES', 'EPERM']);

export async function removeTree(p: string): Promise<void> {
  try {
    await fs.promises.rm(p, { recursive: true, force: true });
    return;
  } catch (error) {
    if (!CLOSED.has(errnoOf(error) ?? '')) throw error;
  }
  openDirectories(p);
  await fs.promises.rm(p, { recursive: true, force: true });
}

/** Gives the owner rwx on every directory under `top` (top included), parents before children; links are never followed. */
function openDirectories(top: string): void {
  const pending = [top];
  for (let dir = pending.pop(); dir !== undefined; dir = pending.pop()) {
    const st = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (!st?.isDirectory()) continue;
    if ((st.mode & 0o700) !== 0o700) {
      try {
        fs.chmodSync(dir, (st.mode & 0o7777) | 0o700);
      } catch {
        continue;
      }
    }
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) pending.push(path.join(dir, name));
  }
}

/**
 * What stops the deletes of a clean-up that begins now: the next signal. After a first signal
 * (which started the clean-up, an undo) that is the second; a clean-up a failure started stops at the first.
 */
export function nextSignal(signal: AbortSignal | undefined, secondSignal: AbortSignal | undefined): AbortSignal | undefined {
  return signal?.aborted === true ? secondSignal : signal;
}

export interface DeleteTreeOptions {
  /** Called with the number of files removed so far, every few hundred files. */
  onProgress?: (files: number) => void;
  /** Called once after the first file is gone (a failpoint lives there). */
  midway?: () => Promise<void>;
  /** Stops the delete between two unlinks: what is left stays under the tree's own name. */
  signal?: AbortSignal;
  /** The live release's stat cache, kept true across each unlink (act/restamp.ts). */
  restamp?: Restamper;
}

/**
 * Deletes a tree that already sits under a leftover's name (trash a prune or recovery moved out
 * of `releases/`, a staging copy): a file or link is unlinked. Another process may be deleting
 * the same tree (recovery removes `trash.*`), so whatever vanished meanwhile counts as done.
 * Stops early, leaving the rest for the next recovery, when `signal` aborts: the name it leaves
 * is never a release's, so the rest can wait. Returns the number of files removed.
 */
export async function deleteTree(top: string, options: DeleteTreeOptions = {}): Promise<number> {
  let files = 0;
  let reported = 0;
  let midwayDone = options.midway === undefined;
  const gone = (error: unknown): boolean => errnoOf(error) === 'ENOENT';
  const restamper = options.restamp;
  const unlinkOne = async (file: string): Promise<void> => {
    const rel = restamper ? file.slice(top.length + 1) : '';
    // Right before and right after: the window in which another change would pass for ours is this unlink alone.
    const before = restamper?.before(rel);
    try {
      await fs.promises.unlink(file);
    } catch (error) {
      if (!gone(error)) throw error;
    }
    if (before !== undefined) restamper?.after(rel, before);
    files += 1;
    if (!midwayDone) {
      midwayDone = true;
      await options.midway?.();
    }
    if (options.onProgress && files - reported >= 256) {
      reported = files;
      options.onProgress(files);
    }
  };
  const removeDir = async (dir: string): Promise<void> => {
    if (options.signal?.aborted) return;
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (gone(error)) return;
      if (errnoOf(error) !== 'EACCES') throw error;
      // A read-only directory copied from the source: make it ours to empty.
      await fs.promises.chmod(dir, 0o700);
      entries = await fs.promises.readdir(dir, { withFileTypes: true });
    }
    if (entries.length > 0) {
      // A release copied with its modes may hold directories we may not write to.
      const stat = await fs.promises.lstat(dir).catch(() => undefined);
      if (stat && (stat.mode & 0o300) !== 0o300) await fs.promises.chmod(dir, 0o700).catch(() => undefined);
    }
    const others = entries.filter((e) => !e.isDirectory());
    let next = 0;
    const worker = async (): Promise<void> => {
      // Checked before every unlink: one directory may hold tens of thousands of files.
      while (next < others.length && options.signal?.aborted !== true) {
        const entry = others[next++] as fs.Dirent;
        await unlinkOne(path.join(dir, entry.name));
      }
    };
    await Promise.all(Array.from({ length: Math.min(32, others.length) }, worker));
    for (const entry of entries) {
      if (entry.isDirectory()) await removeDir(path.join(dir, entry.name));
    }
    if (options.signal?.aborted) return;
    try {
      await fs.promises.rmdir(dir);
    } catch (error) {
      if (gone(error)) return;
      // Something we had not listed (another deleter's view lagging ours): one more pass.
      if (errnoOf(error) !== 'ENOTEMPTY') throw error;
      await fs.promises.rm(dir, { recursive: true, force: true, maxRetries: 3 });
    }
  };
  const stat = await fs.promises.lstat(top).catch((error: unknown) => {
    if (gone(error)) return undefined;
    throw error;
  });
  if (stat?.isDirectory()) await removeDir(top);
  else if (stat) await unlinkOne(top);
  options.onProgress?.(files);
  return files;
}

/**
 * Why a tree could not be deleted, for a message: `permission denied on <file> (its folder
 * belongs to <user>)` for a file another user made in a folder of their own (an application's
 * sessions written into its release), else the error's own words.
 */
export function whyNotDeleted(error: unknown): string {
  const file = (error as NodeJS.ErrnoException | undefined)?.path;
  if (!CLOSED.has(errnoOf(error) ?? '') || file === undefined) return error instanceof Error ? error.message : String(error);
  const folder = fs.lstatSync(path.dirname(file), { throwIfNoEntry: false });
  return `permission denied on ${file}${folder ? ` (its folder belongs to ${userOf(folder.uid)})` : ''}`;
}

/** Whether deleting failed for want of permission (another user's files): no later command of the same user does better. */
export function deniedDelete(error: unknown): boolean {
  return CLOSED.has(errnoOf(error) ?? '');
}
