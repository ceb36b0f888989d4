import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeployError, errnoOf } from '../errors.ts';
import { bashLockPid, judgeLock, OWNER_LINK, OWNER_LINK_PREFIX, pidCanExist, type LockOwner, type LockVerdict } from '../plan/lock.ts';
import { exitedUnreaped, parseProcStat } from '../plan/serving.ts';
import type { LockIdentity } from '../root/effects.ts';
import { runOnFs } from '../root/fs.ts';
import { dropRemovedLock, LOCK_PATH, lockDraft, lockInstance, placeLock, releaseLock as releaseLockProgram, removeLock as removeLockProgram, takeOverLock as takeOverLockProgram } from '../root/lock.ts';
import { isFullDisk } from './durable.ts';
import { failpoint } from './failpoints.ts';
import { directoryStat, readRegularFileSync } from './read.ts';
import type { Layout } from './layout.ts';
import { makeDirs } from './mkdirs.ts';
import { spendReserve } from './reserve.ts';
import { shellWord } from '../plan/paths.ts';

/*
 * Hand-written rather than proper-lockfile: we need an owner inside the lock from its first
 * instant (a directory renamed into place), pid-reuse detection by process start time, and an
 * atomic takeover of a stale lock that two contenders cannot both win.
 */

export interface LockInfo {
  owner: LockOwner | null;
  createdAtMs: number;
  verdict: LockVerdict;
  /** Names this particular lock instance; the takeover destination is derived from it. */
  instance: string;
  /** How the takeover recognises this lock once moved. */
  identity: LockIdentity;
  /** What `.deploy.lock` is when it is no directory (another tool's lock): `file`, `symlink`, `FIFO`... */
  notADirectory?: string;
}

function fileKind(stat: fs.Stats): string {
  return stat.isFile() ? 'file' : stat.isSymbolicLink() ? 'symlink' : stat.isFIFO() ? 'FIFO' : stat.isSocket() ? 'socket' : 'special file';
}

export interface LockHandle {
  layout: Layout;
  owner: LockOwner;
  /** Set when a stale lock was taken over on the way in. */
  tookOver?: { owner: LockOwner | null; reason: string };
  /** The stale lock we moved aside: a tombstone, swept after 10 minutes, so a late contender cannot reuse its name. */
  aside?: string;
  /** The disk was full: the space reserve was deleted to take the lock. */
  spentReserve?: boolean;
}

function readText(file: string): string | undefined {
  try {
    // A FIFO in place of owner.json reads as no owner, never as a wait for a writer.
    return readRegularFileSync(file);
  } catch {
    return undefined;
  }
}

let bootIdCache: string | null | undefined;
function bootId(): string | undefined {
  if (bootIdCache === undefined) bootIdCache = readText('/proc/sys/kernel/random/boot_id')?.trim() ?? null;
  return bootIdCache ?? undefined;
}

function hostName(): string {
  return os.hostname();
}

function userName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

interface ProcessFacts {
  process: 'alive' | 'dead' | 'exited';
  startTime?: string;
  startedAtMs?: number;
}

/** A process's start time (clock ticks) and whether it has exited unreaped, from /proc/<pid>/stat. */
function procStat(pid: number): { startTime?: string; exited: boolean } {
  const text = readText(`/proc/${pid}/stat`);
  const stat = text === undefined ? undefined : parseProcStat(text);
  return stat === undefined ? { exited: false } : { startTime: stat.startTime, exited: exitedUnreaped(stat) };
}

function bootTimeMs(): number | undefined {
  const line = readText('/proc/stat')?.split('\n').find((l) => l.startsWith('btime '));
  return line ? Number(line.slice(6)) * 1000 : undefined;
}

export function processFacts(pid: number): ProcessFacts {
  // kill(2) takes a 32-bit pid: a larger number would be truncated or throw, never ESRCH.
  if (!pidCanExist(pid)) return { process: 'dead' };
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: the process exists but belongs to another user, so it is alive.
    if (errnoOf(error) === 'ESRCH') return { process: 'dead' };
  }
  const { startTime, exited } = procStat(pid);
  const btime = bootTimeMs();
  // Linux reports start time in clock ticks; USER_HZ is 100 on every architecture Node runs on.
  const startedAtMs = startTime !== undefined && btime !== undefined ? btime + Number(startTime) * 10 : undefined;
  return { process: exited ? 'exited' : 'alive', startTime, startedAtMs };
}

/** The lock's owner as a symlink target, when the disk is full: `atomic-deploy-owner:1 <pid> <start> <token> <boot> <since ms> <host> <user>`. */

function ownerLinkText(owner: LockOwner): string {
  const field = (v: string | undefined): string => (v === undefined || v === '' ? '-' : v.replace(/\s/g, '_'));
  return [OWNER_LINK_PREFIX, String(owner.pid), field(owner.startTime), owner.token, field(owner.bootId), String(Date.parse(owner.since)), field(owner.host), field(owner.user)].join(' ');
}

function parseOwnerLink(text: string): Omit<LockOwner, 'format'> | undefined {
  const [prefix, pid, startTime, token, boot, since, host, user] = text.split(' ');
  if (prefix !== OWNER_LINK_PREFIX || !pid || !/^\d+$/.test(pid) || !token || !host || !since || !/^\d+$/.test(since)) return undefined;
  const known = (v: string | undefined): string | undefined => (v === undefined || v === '-' ? undefined : v);
  return { pid: Number(pid), startTime: known(startTime), token, bootId: known(boot), since: new Date(Number(since)).toISOString(), host, user: known(user) ?? 'unknown' };
}

/** Writes one small file of a lock draft; on failure (a full disk) the empty file does not stay. */
async function writeOwnerFile(dir: string, name: string, text: string): Promise<void> {
  const file = path.join(dir, name);
  try {
    await fs.promises.writeFile(file, text, { mode: 0o644, flag: 'wx' });
  } catch (error) {
    await fs.promises.rm(file, { force: true }).catch(() => undefined);
    throw error;
  }
}

function parseOwner(dir: string, stat: fs.Stats): LockOwner | null {
  let link: string | undefined;
  try {
    link = fs.readlinkSync(path.join(dir, OWNER_LINK));
  } catch {
    link = undefined;
  }
  if (link !== undefined) {
    const o = parseOwnerLink(link);
    return o ? { ...o, format: 'atomic-deploy' } : null;
  }
  const json = readText(path.join(dir, 'owner.json'));
  if (json !== undefined) {
    try {
      const o = JSON.parse(json) as Partial<LockOwner>;
      if (typeof o.pid === 'number' && Number.isInteger(o.pid) && o.pid > 0 && typeof o.host === 'string' && typeof o.token === 'string') {
        return {
          pid: o.pid,
          host: o.host,
          user: typeof o.user === 'string' ? o.user : 'unknown',
          since: typeof o.since === 'string' ? o.since : new Date(stat.mtimeMs).toISOString(),
          token: o.token,
          startTime: typeof o.startTime === 'string' ? o.startTime : undefined,
          bootId: typeof o.bootId === 'string' ? o.bootId : undefined,
          command: typeof o.command === 'string' ? o.command : undefined,
          format: 'atomic-deploy',
        };
      }
    } catch {
      // Garbage in owner.json: treated like a lock with no owner.
    }
    return null;
  }
  // The classic bash deploy script's lock: mkdir .deploy.lock && echo $$ > .deploy.lock/pid.
  return bashOwner(readText(path.join(dir, 'pid')), stat);
}

/** The owner a bash tool's pid (in `.deploy.lock/pid`, or a `.deploy.lock` file) names, judged as any other. */
function bashOwner(pidText: string | undefined, stat: fs.Stats): LockOwner | null {
  const pid = bashLockPid(pidText);
  if (pid === undefined) return null;
  let user = 'unknown';
  try {
    user = os.userInfo({ encoding: 'utf8' }).uid === stat.uid ? userName() : `uid ${stat.uid}`;
  } catch {
    user = `uid ${stat.uid}`;
  }
  return {
    pid,
    host: hostName(),
    user,
    since: new Date(stat.mtimeMs).toISOString(),
    token: `bash-${pid}-${stat.ino}`,
    format: 'bash',
  };
}

/** A `.deploy.lock` that is a file (`echo $$ > .deploy.lock`, an old tool's): the pid it names, if that is all it holds. */
function lockFileOwner(file: string, stat: fs.Stats): LockOwner | null {
  // A pid and a newline; anything longer names no process and is not read whole.
  return stat.isFile() && stat.size <= 32 ? bashOwner(readText(file), stat) : null;
}

/**
 * Whether `dir` (a lock directory under another name: `.tmp/trash.lock.<token>`, a lock being
 * released) names a live owner. One that names none is a leftover, not a lock "made moments ago":
 * a lock is renamed there whole, owner included, so only its removal empties it, and a releaser
 * killed mid-removal (its owner file gone, the directory not yet) left a directory whose mtime that
 * removal had just made young, which the next deploy then took for a live release and left.
 */
export function lockDirOwnerAlive(dir: string): boolean {
  const stat = directoryStat(dir);
  if (stat === undefined) return false;
  const owner = parseOwner(dir, stat);
  return owner !== null && judgeOwner(owner, stat.mtimeMs).state !== 'stale';
}

/** Reads and judges the lock of a root; undefined when nobody holds it. */
/** A synchronous pause of a few ms for inspectLock's second look (Atomics.wait on a word nobody sets). */
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

export function inspectLock(layout: Layout): LockInfo | undefined {
  let stat: fs.Stats;
  let owner: LockOwner | null;
  // The owner is read by path after the lstat: a takeover between the two (the stale lock moved
  // aside, the winner's renamed in) would pair one lock's times with another's owner, or with none,
  // and a young lock with no owner is held: a contender would exit 3 naming "an unknown process".
  // So the lock is read until the one in place after the owner read is the one lstat saw; and a
  // directory found without an owner is read again a few ms later, since the inode of a lock moved
  // aside and deleted can be the next one's (a bash tool's lock being filled in is ownerless that
  // long too, and held either way).
  for (let attempt = 0; ; attempt++) {
    try {
      stat = fs.lstatSync(layout.lock);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return undefined;
      throw error;
    }
    owner = stat.isDirectory() ? parseOwner(layout.lock, stat) : lockFileOwner(layout.lock, stat);
    if (attempt >= 8) break;
    const after = fs.lstatSync(layout.lock, { throwIfNoEntry: false });
    if (after?.ino !== stat.ino || after.dev !== stat.dev) continue;
    if (owner !== null || !stat.isDirectory() || attempt >= 3) break;
    Atomics.wait(PAUSE, 0, 0, 2);
  }
  const notADirectory = !stat.isDirectory();
  const createdAtMs = stat.mtimeMs;
  const verdict = judgeOwner(owner, createdAtMs, notADirectory);
  const mtimeS = Math.floor(stat.mtimeMs / 1000);
  const identity: LockIdentity = owner?.format === 'atomic-deploy' ? { token: owner.token } : { inode: String(stat.ino), mtimeS };
  return { owner, createdAtMs, verdict, instance: lockInstance(owner?.token, String(stat.ino), mtimeS), identity, ...(notADirectory ? { notADirectory: fileKind(stat) } : {}) };
}

/** Whether the process an owner names (a lock's, a scratch directory's) still runs: the facts of this host, judged. */
export function judgeOwner(owner: LockOwner | null, createdAtMs: number, notADirectory = false): LockVerdict {
  const facts = owner ? processFacts(owner.pid) : { process: 'dead' as const };
  return judgeLock(owner, {
    thisHost: hostName(),
    thisBootId: bootId(),
    process: facts.process,
    processStartTime: facts.startTime,
    processStartedAtMs: facts.startedAtMs,
    lockCreatedAtMs: createdAtMs,
    nowMs: Date.now(),
    notADirectory,
  });
}

/** This process as an owner: what judgeOwner needs to tell it from a later process with its pid. */
export function thisProcess(): Pick<LockOwner, 'pid' | 'host' | 'startTime' | 'bootId'> {
  return { pid: process.pid, host: hostName(), startTime: procStat(process.pid).startTime, bootId: bootId() };
}

export function describeHolder(owner: LockOwner | null): string {
  if (!owner) return 'an unknown process (the lock records no owner)';
  const cmd = owner.command ? ` (${owner.command})` : '';
  return `pid ${owner.pid} of ${owner.user}@${owner.host} since ${owner.since}${cmd}`;
}

function lockedError(layout: Layout, info: LockInfo, waitedMs = 0): DeployError {
  const holder = describeHolder(info.owner);
  const details = { lock: info.owner ? { pid: info.owner.pid, host: info.owner.host, user: info.owner.user, since: info.owner.since } : null };
  if (info.verdict.state === 'foreign') {
    return new DeployError('LOCK_FOREIGN_HOST', `${layout.root} is locked by ${holder}`, {
      hint: `if no deploy runs on ${info.owner?.host ?? 'that host'}, run: atomic-deploy unlock ${shellWord(layout.root)} --force`,
      details,
    });
  }
  if (info.owner === null && info.notADirectory !== undefined) {
    // Another tool's lock that names no process: nothing tells whether its holder still runs.
    return new DeployError('LOCKED', `${layout.root} is locked by another tool: ${LOCK_PATH} is a ${info.notADirectory} that names no process`, {
      hint: `${waitedMs > 0 ? `it was still there after the ${waitedMs / 1000} s --wait; ` : ''}if no other deploy tool is running on this root, run: atomic-deploy unlock ${shellWord(layout.root)} --force`,
      details,
    });
  }
  return new DeployError('LOCKED', `${layout.root} is locked by ${holder}`, {
    hint: `${waitedMs > 0 ? `it was still held after the ${waitedMs / 1000} s --wait; wait longer` : 'wait for it with --wait <seconds>'}; if that process is hung, stop it, then run: atomic-deploy unlock ${shellWord(layout.root)}`,
    details,
  });
}

/** Moves a lock judged stale aside, leaving its tombstone; undefined if another contender won or the lock changed. */
export async function takeOverLock(layout: Layout, info: LockInfo): Promise<string | undefined> {
  const outcome = await runOnFs(layout.root, takeOverLockProgram(info.instance, info.identity));
  return outcome === 'moved' ? path.join(layout.tmp, `stale-lock.${info.instance}`) : undefined;
}

export interface AcquireOptions {
  /** How long to wait for a live holder; 0 fails at once. */
  waitMs?: number;
  command?: string;
  signal?: AbortSignal;
  /** Told, before the wait begins and whenever the holder changes, whom we wait for. */
  onWait?: (holder: string, waitMs: number) => void;
  /** On a full disk, delete the space reserve to take the lock (rollback and prune: act/reserve.ts). */
  spendReserve?: boolean;
}

async function writeDraft(staging: string, owner: LockOwner): Promise<void> {
  try {
    await writeOwnerFile(staging, 'owner.json', JSON.stringify(owner, null, 2) + '\n');
  } catch (error) {
    if (!isFullDisk(error)) throw error;
    // A full disk has no block for owner.json, but a short symlink lives in its inode: the owner
    // goes into the link's target, so rollback and prune can still take the lock and free space.
    await fs.promises.symlink(ownerLinkText(owner), path.join(staging, OWNER_LINK));
  }
  // Also the classic script's format, so an old deploy.sh running by mistake sees the lock as held.
  await writeOwnerFile(staging, 'pid', `${process.pid}\n`).catch((error: unknown) => {
    if (!isFullDisk(error)) throw error;
  });
}

/** The lock's draft directory with its owner written; on failure nothing of it stays. */
async function makeDraft(staging: string, owner: LockOwner): Promise<void> {
  await fs.promises.mkdir(staging, { mode: 0o755 });
  try {
    await writeDraft(staging, owner);
  } catch (error) {
    await fs.promises.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
}

/** How long a command waits, whatever its --wait, for a lock `status` holds (its clean-up of a killed command's leftovers). */
export const BRIEF_HOLDER_WAIT_MS = 10_000;

export async function acquireLock(layout: Layout, options: AcquireOptions = {}): Promise<LockHandle> {
  await makeDirs(layout.tmp, 0o755);
  const owner: LockOwner = {
    pid: process.pid,
    host: hostName(),
    user: userName(),
    since: new Date().toISOString(),
    token: randomBytes(12).toString('hex'),
    startTime: procStat(process.pid).startTime,
    bootId: bootId(),
    command: options.command,
    format: 'atomic-deploy',
  };
  // The owner is written before the lock exists, so there is never a lock without an owner.
  const staging = path.join(layout.root, lockDraft(owner.token));
  let spentReserve = false;
  try {
    await makeDraft(staging, owner);
  } catch (error) {
    // A full disk: the commands that free space or go back may spend the reserve (act/reserve.ts), once.
    if (!isFullDisk(error) || !options.spendReserve || !spendReserve(layout)) throw error;
    spentReserve = true;
    await makeDraft(staging, owner);
  }
  const started = Date.now();
  let tookOver: LockHandle['tookOver'];
  let aside: string | undefined;
  let announced: string | undefined;
  const tried = new Set<string>();
  const unmovable = new Set<string>();
  try {
    for (;;) {
      if (options.signal?.aborted) {
        // The abort reason is the signal's name: without it every signal would exit as SIGTERM.
        const reason: unknown = options.signal.reason;
        const signal = typeof reason === 'string' && reason.startsWith('SIG') ? (reason as NodeJS.Signals) : undefined;
        throw new DeployError('INTERRUPTED', `interrupted${signal ? ` by ${signal}` : ''} while waiting for the lock; nothing changed`, { signal });
      }
      if ((await runOnFs(layout.root, placeLock(owner.token))) === 'locked') return { layout, owner, tookOver, aside, ...(spentReserve ? { spentReserve } : {}) };
      const info = inspectLock(layout);
      if (!info) {
        // A rename that failed with the lock free: only a vanished draft explains it, and retrying would spin.
        if (!fs.existsSync(staging)) throw new DeployError('IO', `the lock draft ${staging} vanished while taking the lock`);
        continue;
      }
      // A stale lock is moved aside once: lost to another contender, the next look finds its lock;
      // changed meanwhile, a new instance. The same lock failing twice cannot be moved by us, and
      // is waited for as a held one (--wait, then exit 3), never retried in a busy loop.
      if (info.verdict.state === 'stale' && !unmovable.has(info.instance)) {
        const moved = await takeOverLock(layout, info);
        if (moved) {
          tookOver = { owner: info.owner, reason: info.verdict.reason };
          aside = moved;
        } else if (tried.has(info.instance)) {
          unmovable.add(info.instance);
        } else {
          tried.add(info.instance);
        }
        continue;
      }
      // `status` holds the lock only to clean up after a killed command: a deploy meeting it waits
      // that out (up to BRIEF_HOLDER_WAIT_MS) instead of failing because a dashboard polled.
      const brief = info.owner?.command === 'status' && info.verdict.state === 'held';
      const waitMs = brief ? Math.max(options.waitMs ?? 0, BRIEF_HOLDER_WAIT_MS) : (options.waitMs ?? 0);
      if (Date.now() >= started + waitMs) throw lockedError(layout, info, options.waitMs ?? 0);
      const holder = describeHolder(info.owner);
      if (holder !== announced) {
        announced = holder;
        options.onWait?.(holder, waitMs);
      }
      // A fresh mtime keeps a long --wait's draft from the sweep of old drafts (TOMBSTONE_S).
      const now = new Date();
      await fs.promises.utimes(staging, now, now).catch(() => undefined);
      await sleep(50 + Math.random() * 150);
    }
  } catch (error) {
    await fs.promises.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
}

/** Releases our own lock; a lock that is no longer ours is left alone (handle.aside, a tombstone, stays). */
export async function releaseLock(handle: LockHandle): Promise<void> {
  await runOnFs(handle.layout.root, releaseLockProgram(handle.owner.token));
}

/** Removes someone else's lock (`unlock`); the caller has decided it may. */
export async function removeLock(layout: Layout, info: LockInfo): Promise<boolean> {
  if ((await runOnFs(layout.root, removeLockProgram(info.instance, info.identity))) !== 'moved') return false;
  await failpoint('unlock-rename');
  await runOnFs(layout.root, dropRemovedLock(info.instance));
  return true;
}
