/**
 * The lock's operations on a root, defined once (see effects.ts): placing a lock whose owner is
 * already written, moving a lock aside (takeover with its tombstone, unlock), releasing our own
 * lock, and sweeping what old takeovers and crashed contenders left in `.tmp/`.
 */
import { OWNERLESS_GRACE_MS } from '../plan/lock.ts';
import { inTmp, type LockIdentity, type Op, type RootProgram } from './effects.ts';

export const LOCK_PATH = '.deploy.lock';
/** How long a takeover's tombstone (and a crashed contender's draft) stays in `.tmp/`. */
export const TOMBSTONE_S = 600;
/** Names in `.tmp/` the sweep may remove once old: tombstones, lock drafts, lock holders' heartbeat files. */
export const LOCK_LEFTOVERS = ['stale-lock.', 'lock.', 'beat.'] as const;

/** Safe for a file name: names a lock instance's tombstone. */
export function lockInstance(token: string | undefined, inode: string, mtimeS: number): string {
  return (token ?? `noowner-${inode}-${mtimeS}`).replace(/[^A-Za-z0-9._-]/g, '_');
}

/** Where a lock being taken is drafted, owner and all, before one rename makes it the lock. */
export function lockDraft(token: string): string {
  return inTmp(`lock.${token}`);
}

/**
 * Renames the draft onto `.deploy.lock`. rename(2) fails on a lock (a non-empty directory) but
 * silently replaces an empty one, which may be a lock someone is filling in (or the bash tool's,
 * between its mkdir and its pid): a fresh empty directory is left to be judged instead.
 */
export function placeLock(token: string): RootProgram<'locked' | 'busy'> {
  return {
    name: 'place_lock',
    ops: [
      { if: { is: 'fresh-empty-dir', path: LOCK_PATH, graceS: OWNERLESS_GRACE_MS / 1000 }, then: [{ end: 'busy' }] },
      { effect: { do: 'rename', from: lockDraft(token), to: LOCK_PATH }, orElse: [{ end: 'busy' }] },
      // Best effort: a lock need not survive a power cut (after a reboot its holder is gone).
      { effect: { do: 'durable', path: '.' }, bestEffort: true },
    ],
    done: 'locked',
  };
}

/**
 * Moves the lock named by `lock` to `.tmp/<prefix>.<instance>`. The destination is named after
 * the lock instance, so of two contenders moving one lock only one rename can succeed; a fresher
 * lock moved by mistake (it replaced the judged one an instant before) is put back.
 */
export function moveLockAside(prefix: 'stale-lock' | 'trash.lock', instance: string, lock: LockIdentity, name: string): RootProgram<'moved' | 'lost' | 'changed'> {
  const aside = inTmp(`${prefix}.${instance}`);
  return {
    name,
    ops: [
      { effect: { do: 'mkdir', path: '.tmp', parents: true } },
      { effect: { do: 'rename', from: LOCK_PATH, to: aside }, orElse: [{ end: 'lost' }] },
      { if: { is: 'same-lock', path: aside, lock }, then: [], else: [{ effect: { do: 'rename', from: aside, to: LOCK_PATH }, bestEffort: true }, { end: 'changed' }] },
    ],
    done: 'moved',
  };
}

/**
 * Takes over a lock judged stale. The lock moved aside stays as a tombstone until the sweep: a
 * contender that judged the same lock stale and stalled cannot then move a newer lock onto its
 * name (the rename finds a non-empty directory). Its mtime starts the sweep's clock.
 */
export function takeOverLock(instance: string, lock: LockIdentity): RootProgram<'moved' | 'lost' | 'changed'> {
  const aside = moveLockAside('stale-lock', instance, lock, 'take_over_lock');
  // A holder on a host keeps a heartbeat file next to its lock: it goes with the lock (only a token that is a plain name).
  const beat: Op<'moved' | 'lost' | 'changed'>[] = 'token' in lock && /^[A-Za-z0-9_-]+$/.test(lock.token) ? [{ effect: { do: 'remove', path: inTmp(`beat.${lock.token}`) } }] : [];
  return {
    ...aside,
    ops: [...aside.ops, { effect: { do: 'touch', path: inTmp(`stale-lock.${instance}`) }, bestEffort: true }, ...beat, { effect: { do: 'durable', path: '.' }, bestEffort: true }],
  };
}

/** The first half of removing a lock someone decided may go (`unlock`): moved aside, so only the judged lock is deleted. */
export function removeLock(instance: string, lock: LockIdentity): RootProgram<'moved' | 'lost' | 'changed'> {
  return moveLockAside('trash.lock', instance, lock, 'remove_lock');
}

/** The second half: the lock moved aside by removeLock is deleted. */
export function dropRemovedLock(instance: string): RootProgram<'dropped'> {
  return {
    name: 'drop_removed_lock',
    ops: [{ effect: { do: 'remove', path: inTmp(`trash.lock.${instance}`) } }, { effect: { do: 'durable', path: '.' }, bestEffort: true }],
    done: 'dropped',
  };
}

/** The first step of every program that acts as the holder of `token`'s lock: anything else ends it with `not-ours`. */
function stillOurs(token: string): Op<'not-ours'> {
  return { if: { is: 'same-lock', path: LOCK_PATH, lock: { token } }, then: [], else: [{ end: 'not-ours' }] };
}

/**
 * Whether the lock is still the one `token` took. A fleet host's armed program asks before it
 * acts on the deploying machine's word: a deploying process silent for longer than the lease
 * (stopped, suspended, its network gone) has its lock taken over by the next command, and its
 * `go`, `back` or `commit` arriving afterwards must not undo what that command did.
 */
export function ownsLock(token: string): RootProgram<'ours' | 'not-ours'> {
  return { name: 'owns_lock', ops: [stillOurs(token)], done: 'ours' };
}

/**
 * Releases our own lock; a lock that is not ours is left alone. Tombstones of takeovers stay
 * (see takeOverLock): only the sweep removes them, once old.
 */
export function releaseLock(token: string): RootProgram<'released' | 'not-ours'> {
  const trash = inTmp(`trash.lock.${token}`);
  return {
    name: 'release_lock',
    ops: [
      stillOurs(token),
      { effect: { do: 'mkdir', path: '.tmp', parents: true } },
      { effect: { do: 'rename', from: LOCK_PATH, to: trash }, orElse: [{ end: 'not-ours' }] },
      { if: { is: 'same-lock', path: trash, lock: { token } }, then: [], else: [{ effect: { do: 'rename', from: trash, to: LOCK_PATH }, bestEffort: true }, { end: 'not-ours' }] },
      { effect: { do: 'remove', path: trash } },
      { effect: { do: 'remove', path: inTmp(`beat.${token}`) } },
      { effect: { do: 'sweep', dir: '.tmp', prefixes: LOCK_LEFTOVERS, olderThanS: TOMBSTONE_S } },
      { effect: { do: 'durable', path: '.' }, bestEffort: true },
    ],
    done: 'released',
  };
}
