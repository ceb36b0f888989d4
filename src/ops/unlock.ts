import { describeHolder, inspectLock, removeLock } from '../act/lock.ts';
import fs from 'node:fs';
import { DeployError, errnoOf, ioError } from '../errors.ts';
import { isolateSink, type EventSink } from './events.ts';
import { openRoot } from './root.ts';
import { shellWord } from '../plan/paths.ts';
import { checkOptionsArgument } from '../plan/validate.ts';

export interface UnlockOptions {
  /** Remove the lock even though its holder may be alive or on another host. */
  force?: boolean;
  onEvent?: EventSink;
}

export interface UnlockResult {
  unlocked: boolean;
  holder: { pid: number; host: string; user: string; since: string } | null;
  reason: string;
}

/** Removes a lock whose owner is provably gone; anything else needs `force`. */
export async function unlock(root: string, options: UnlockOptions = {}): Promise<UnlockResult> {
  checkOptionsArgument(options);
  const emit = isolateSink(options.onEvent);
  const layout = openRoot(root, { mayCreate: false });
  const info = inspectLock(layout);
  if (!info) return { unlocked: false, holder: null, reason: 'not locked' };
  const holder = info.owner ? { pid: info.owner.pid, host: info.owner.host, user: info.owner.user, since: info.owner.since } : null;
  if (info.verdict.state !== 'stale') {
    if (!options.force) {
      throw new DeployError(info.verdict.state === 'foreign' ? 'LOCK_FOREIGN_HOST' : 'LOCKED', `the lock is held by ${describeHolder(info.owner)}: ${info.verdict.reason}`, {
        hint: `if you are sure no deploy is running, run: atomic-deploy unlock ${shellWord(layout.root)} --force`,
        details: { lock: holder },
      });
    }
    emit({ type: 'warning', message: `forcibly removing a lock held by ${describeHolder(info.owner)}` });
  }
  let removed: boolean;
  try {
    // A file, a symlink or a FIFO by the lock's name was never a lock of ours (ours is a directory):
    // it has no owner to check it against, and moving it aside would only find it "changed hands".
    // unlink(2) cannot remove a directory, so a real lock made meanwhile stays.
    removed = notADirectory(layout.lock) ? unlinkIfNotDirectory(layout.lock) : await removeLock(layout, info);
  } catch (error) {
    throw ioError(`removing the lock of ${layout.root}`, error);
  }
  return { unlocked: removed, holder, reason: removed ? info.verdict.reason : 'the lock changed hands meanwhile; run unlock again' };
}

function notADirectory(file: string): boolean {
  const st = fs.lstatSync(file, { throwIfNoEntry: false });
  return st !== undefined && !st.isDirectory();
}

function unlinkIfNotDirectory(file: string): boolean {
  try {
    fs.unlinkSync(file);
    return true;
  } catch (error) {
    const code = errnoOf(error);
    // A directory now (EISDIR on Linux, EPERM on BSD and macOS): someone took the lock meanwhile.
    if (code === 'ENOENT' || code === 'EISDIR' || (code === 'EPERM' && !notADirectory(file))) return false;
    throw error;
  }
}
