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

export function removeTreeSync(p: string): void {
  try {
    fs.rmSync(p, { recursive: true, force: true });
    return;
  } catch (error) {
    if (!CLOSED.has(errnoOf(error) ?? '')) throw error;
  }
  openDirectories(p);
  fs.rmSync(p, { recursive: true, force: true });
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
