/**
 * The space reserve: a file of RESERVE_BYTES in `.atomic-deploy/` that a deploy, rollback or prune
 * that succeeded makes whole while the root's filesystem has room, and that rollback and prune
 * delete when a full disk refuses them the lock. On ext4, every VM's default, the lock's draft directory needs a data block
 * (a directory is never inline there) and its owner a block of its own, so a full disk refused
 * the very commands that free space or restore the previous release; tmpfs, where the tests of a
 * full disk used to run, needs none for a directory. The reserve's bytes are random: a compressing
 * filesystem (btrfs, ZFS) keeps zeros in no space at all.
 */
import { randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Layout } from './layout.ts';
import { shellWord } from '../plan/paths.ts';

export const RESERVE_NAME = 'space-reserve';
/** Enough for the lock (draft, owner, pid), a rollback's journal and records, and a prune's trash, in 4 KiB blocks, with room to spare. */
export const RESERVE_BYTES = 256 * 1024;
/** The reserve is made only while the filesystem has this much free for it: never the last bytes a deploy needs. */
export const RESERVE_ROOM_BYTES = 16 * RESERVE_BYTES;

function reservePath(layout: Pick<Layout, 'state'>): string {
  return path.join(layout.state, RESERVE_NAME);
}

/**
 * Makes the reserve whole when it is missing or short and the filesystem has room for it, under the
 * lock of a command that succeeded (a refused one changes nothing). Best effort: a reserve that
 * cannot be made (no room, a read-only `.atomic-deploy/`, another filesystem than `.tmp/`'s,
 * where it could not help the lock) is no reason to fail a command.
 */
export function keepReserve(layout: Pick<Layout, 'state' | 'tmp'>): void {
  const file = reservePath(layout);
  try {
    const stat = fs.lstatSync(file, { throwIfNoEntry: false });
    if (stat !== undefined && (!stat.isFile() || stat.size >= RESERVE_BYTES)) return;
    const state = fs.statSync(layout.state);
    if (state.dev !== fs.statSync(layout.tmp).dev) return;
    const free = fs.statfsSync(layout.state);
    if (free.bavail * free.bsize < RESERVE_ROOM_BYTES) return;
    // Written in place, not renamed in: a reserve cut short by a crash is only a smaller one, made whole next time.
    const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.writeSync(fd, randomFillSync(Buffer.allocUnsafe(RESERVE_BYTES)));
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // No reserve this time: removed, so that a half-written one is not taken for whole.
    try {
      fs.rmSync(file, { force: true });
    } catch {
      // Nothing more to do.
    }
  }
}

/** Deletes the reserve, to free its space on a full disk; whether there was one. */
export function spendReserve(layout: Pick<Layout, 'state'>): boolean {
  const file = reservePath(layout);
  try {
    const stat = fs.lstatSync(file, { throwIfNoEntry: false });
    if (stat === undefined || !stat.isFile() || stat.size === 0) return false;
    fs.unlinkSync(file);
    return true;
  } catch {
    // One this user may not delete: the full disk's error stands.
    return false;
  }
}

/** What a rollback says when it took the lock on a full disk by deleting the space reserve. */
export function spentReserveWarning(root: string): string {
  return `the filesystem of ${root} is full: the lock was taken by deleting its space reserve (${RESERVE_BYTES / 1024} KiB in .atomic-deploy/); free space (atomic-deploy prune ${shellWord(root)} removes old releases; df -h ${shellWord(root)}), and the next deploy, rollback or prune makes the reserve again`;
}

/**
 * The hint of a rollback or prune refused the lock by a full disk with no space reserve left to
 * spend: prune cannot free space then either, so space is freed by hand, with the releases prune's
 * dry run (which needs no lock, and keeps every guard) names as removable. `host`: a fleet host's.
 */
export function noReserveHint(root: string, command: string, host?: string): string {
  const r = shellWord(root);
  return `no space reserve was left to spend${host === undefined ? '' : ' there'} (.atomic-deploy/space-reserve), so prune cannot take the lock either: free a few KiB on its filesystem by hand (df -h ${r}), for example rm -rf ${r}/releases/<id> of a release that atomic-deploy prune ${r}${host === undefined ? '' : ` --host ${shellWord(host)}`} --dry-run says it would remove, then run the ${command} again`;
}
