/**
 * Trees a live process is deleting with no lock held, which no other command may take for
 * leftovers: a prune deletes the releases it retired once it has released the lock (so that the
 * next deploy need not wait for the delete), and releasing a lock renames it to
 * `.tmp/trash.lock.<token>` an instant before removing it. A `status` that took either for the
 * leftover of a killed process took the lock to delete it (reporting what it "removed"), and a
 * deploy started meanwhile exited 3.
 *
 * Each retired tree gets `.tmp/deleting.<its name>`, a symlink naming its deleter (act/scratch.ts
 * owner links), made under the lock and removed once the tree is gone. A claim whose process is
 * gone is a leftover like the tree it names. Hand-written: the rule is the lock's own.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Layout } from './layout.ts';
import { lockDirOwnerAlive } from './lock.ts';
import { ownerLinkAlive, ownerLinkText } from './scratch.ts';

export const CLAIM_PREFIX = 'deleting.';

function claimOf(layout: Layout, tree: string): string {
  return path.join(layout.tmp, `${CLAIM_PREFIX}${path.basename(tree)}`);
}

/** Claims `tree` (in `.tmp/`, or `releases/` on another mount) for this process; best effort: without it the tree reads as a leftover, as before. */
export function claimTree(layout: Layout, tree: string): void {
  try {
    fs.symlinkSync(ownerLinkText(), claimOf(layout, tree));
  } catch {
    // A full disk, say: the delete goes on unclaimed.
  }
}

/** Drops this process's claim on `tree` (deleted, or left for the next command). */
export function dropClaim(layout: Layout, tree: string): void {
  try {
    fs.unlinkSync(claimOf(layout, tree));
  } catch {
    // Never made, or already gone.
  }
}

/**
 * The names among `.tmp/`'s entries (`tmpNames`) and `releases/`'s hidden trash that a live
 * process is working on: claimed trees and their claims, and locks being released.
 */
export function busyNames(layout: Layout, tmpNames: readonly string[]): Set<string> {
  const busy = new Set<string>();
  for (const name of tmpNames) {
    const at = path.join(layout.tmp, name);
    if (name.startsWith(CLAIM_PREFIX)) {
      let text: string;
      let madeAtMs: number;
      try {
        text = fs.readlinkSync(at);
        madeAtMs = fs.lstatSync(at).mtimeMs;
      } catch {
        continue;
      }
      if (!ownerLinkAlive(text, madeAtMs)) continue;
      busy.add(name);
      busy.add(name.slice(CLAIM_PREFIX.length));
    } else if (name.startsWith('trash.lock.') && lockDirOwnerAlive(at)) {
      busy.add(name);
    }
  }
  return busy;
}
