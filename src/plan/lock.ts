/** Deciding whether a lock's holder is still alive: pure, so every case is testable. */

export interface LockOwner {
  pid: number;
  host: string;
  user: string;
  since: string;
  /** Random per acquisition: tells one holder from the next one with the same pid. */
  token: string;
  /** The holder's start time as the kernel reports it (Linux: /proc/<pid>/stat field 22). */
  startTime?: string;
  bootId?: string;
  command?: string;
  /** `bash` for a `.deploy.lock/pid` written by the classic deploy script. */
  format: 'atomic-deploy' | 'bash';
}

export interface LockFacts {
  thisHost: string;
  thisBootId?: string;
  /**
   * kill(pid, 0): ESRCH is dead; EPERM means alive under another user. `exited`: the pid answers
   * but only as a zombie (every thread has exited; its parent has not reaped it yet).
   */
  process: 'alive' | 'dead' | 'exited';
  /** Start time of whatever process has that pid now, if the system tells. */
  processStartTime?: string;
  /** Wall-clock start of that process in ms, if known. */
  processStartedAtMs?: number;
  lockCreatedAtMs: number;
  nowMs: number;
  /**
   * `.deploy.lock` is a file, a symlink or a FIFO: never a lock of ours (ours is a directory from
   * its first instant), so one with no pid in it is another tool's that nothing here can judge.
   */
  notADirectory?: boolean;
}

export type LockVerdict =
  | { state: 'held'; reason: string }
  | { state: 'stale'; reason: string }
  | { state: 'foreign'; reason: string };

/** Linux's PID_MAX_LIMIT (2^22): no process anywhere has a larger pid. */
export const MAX_PID = 4_194_304;

/** Whether some process could have this pid; 2^31 and beyond is not even a valid argument to kill(2). */
export function pidCanExist(pid: number): boolean {
  return Number.isSafeInteger(pid) && pid > 0 && pid <= MAX_PID;
}

/**
 * The pid a bash tool's lock names: `.deploy.lock/pid` of the classic script (mkdir, then echo $$
 * into it), or a `.deploy.lock` file written with `echo $$ > .deploy.lock`. Undefined for anything else.
 */
export function bashLockPid(text: string | undefined): number | undefined {
  const pid = text?.trim();
  return pid !== undefined && /^\d+$/.test(pid) && Number(pid) > 0 ? Number(pid) : undefined;
}

/** A lock directory with no readable owner may be one a writer is still filling in. */
export const OWNERLESS_GRACE_MS = 10_000;
/** Clock granularity between a lock's mtime and a process's start time. */
const START_SLACK_MS = 2_000;

export function judgeLock(owner: LockOwner | null, facts: LockFacts): LockVerdict {
  if (owner === null) {
    if (facts.notADirectory === true) {
      return { state: 'held', reason: 'the lock is not a directory and names no process: another tool\'s lock, which cannot be judged' };
    }
    const age = facts.nowMs - facts.lockCreatedAtMs;
    return age < OWNERLESS_GRACE_MS
      ? { state: 'held', reason: 'the lock has no owner yet and was made moments ago' }
      : { state: 'stale', reason: 'the lock records no owner' };
  }
  if (owner.host !== facts.thisHost) {
    return { state: 'foreign', reason: `the lock was taken on host ${owner.host}` };
  }
  if (!pidCanExist(owner.pid)) {
    return { state: 'stale', reason: `pid ${owner.pid} cannot belong to any process` };
  }
  if (owner.bootId && facts.thisBootId && owner.bootId !== facts.thisBootId) {
    return { state: 'stale', reason: 'the host rebooted since the lock was taken' };
  }
  if (facts.process === 'dead') {
    return { state: 'stale', reason: `process ${owner.pid} is gone` };
  }
  if (facts.process === 'exited') {
    return { state: 'stale', reason: `process ${owner.pid} has exited (a zombie its parent has not reaped)` };
  }
  if (owner.startTime && facts.processStartTime && owner.startTime !== facts.processStartTime) {
    return { state: 'stale', reason: `pid ${owner.pid} now belongs to another process` };
  }
  if (!owner.startTime && facts.processStartedAtMs !== undefined &&
      facts.processStartedAtMs > facts.lockCreatedAtMs + START_SLACK_MS) {
    return { state: 'stale', reason: `pid ${owner.pid} now belongs to a process started after the lock` };
  }
  return { state: 'held', reason: `process ${owner.pid} is running` };
}

/** Name, and first word of the target, of the symlink that holds a lock's owner when the disk had no block for owner.json. */
export const OWNER_LINK = 'owner';
export const OWNER_LINK_PREFIX = 'atomic-deploy-owner:1';

/** The token in an owner link's target (`<prefix> <pid> <start> <token> ...`), or undefined. */
export function ownerLinkToken(text: string): string | undefined {
  const fields = text.split(' ');
  return fields[0] === OWNER_LINK_PREFIX && fields[3] ? fields[3] : undefined;
}
