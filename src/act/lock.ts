import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeployError, errnoOf } from '../errors.ts';
import { judgeLock, OWNERLESS_GRACE_MS, pidCanExist, type LockOwner, type LockVerdict } from '../plan/lock.ts';
import { fsyncDir, isFullDisk } from './durable.ts';
import { failpoint } from './failpoints.ts';
import { readRegularFileSync } from './read.ts';
import type { Layout } from './layout.ts';

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
}

export interface LockHandle {
  layout: Layout;
  owner: LockOwner;
  /** Set when a stale lock was taken over on the way in. */
  tookOver?: { owner: LockOwner | null; reason: string };
  /** The stale lock we moved aside: a tombstone, swept after 10 minutes, so a late contender cannot reuse its name. */
  aside?: string;
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
  process: 'alive' | 'dead';
  startTime?: string;
  startedAtMs?: number;
}

/** Field 22 of /proc/<pid>/stat, after the parenthesised command name (which may hold spaces). */
function procStartTicks(pid: number): string | undefined {
  const stat = readText(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19];
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
  const startTime = procStartTicks(pid);
  const btime = bootTimeMs();
  // Linux reports start time in clock ticks; USER_HZ is 100 on every architecture Node runs on.
  const startedAtMs = startTime !== undefined && btime !== undefined ? btime + Number(startTime) * 10 : undefined;
  return { process: 'alive', startTime, startedAtMs };
}

/** The lock's owner as a symlink target, when the disk is full: `atomic-deploy-owner:1 <pid> <start> <token> <boot> <since ms> <host> <user>`. */
const OWNER_LINK = 'owner';
const OWNER_LINK_PREFIX = 'atomic-deploy-owner:1';

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
  const pidText = readText(path.join(dir, 'pid'))?.trim();
  if (pidText && /^\d+$/.test(pidText) && Number(pidText) > 0) {
    let user = 'unknown';
    try {
      user = os.userInfo({ encoding: 'utf8' }).uid === stat.uid ? userName() : `uid ${stat.uid}`;
    } catch {
      user = `uid ${stat.uid}`;
    }
    return {
      pid: Number(pidText),
      host: hostName(),
      user,
      since: new Date(stat.mtimeMs).toISOString(),
      token: `bash-${pidText}-${stat.ino}`,
      format: 'bash',
    };
  }
  return null;
}

/** Reads and judges the lock of a root; undefined when nobody holds it. */
export function inspectLock(layout: Layout): LockInfo | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(layout.lock);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return undefined;
    throw error;
  }
  const owner = stat.isDirectory() ? parseOwner(layout.lock, stat) : null;
  const createdAtMs = stat.mtimeMs;
  const facts = owner ? processFacts(owner.pid) : { process: 'dead' as const };
  const verdict = judgeLock(owner, {
    thisHost: hostName(),
    thisBootId: bootId(),
    process: facts.process,
    processStartTime: facts.startTime,
    processStartedAtMs: facts.startedAtMs,
    lockCreatedAtMs: createdAtMs,
    nowMs: Date.now(),
  });
  const instance = owner ? owner.token : `noowner-${stat.ino}-${Math.floor(stat.mtimeMs)}`;
  return { owner, createdAtMs, verdict, instance: instance.replace(/[^A-Za-z0-9._-]/g, '_') };
}

export function describeHolder(owner: LockOwner | null): string {
  if (!owner) return 'an unknown process (the lock records no owner)';
  const cmd = owner.command ? ` (${owner.command})` : '';
  return `pid ${owner.pid} of ${owner.user}@${owner.host} since ${owner.since}${cmd}`;
}

function lockedError(layout: Layout, info: LockInfo): DeployError {
  const holder = describeHolder(info.owner);
  const details = { lock: info.owner ? { pid: info.owner.pid, host: info.owner.host, user: info.owner.user, since: info.owner.since } : null };
  if (info.verdict.state === 'foreign') {
    return new DeployError('LOCK_FOREIGN_HOST', `${layout.root} is locked by ${holder}`, {
      hint: `if no deploy runs on ${info.owner?.host ?? 'that host'}, run: atomic-deploy unlock ${layout.root} --force`,
      details,
    });
  }
  return new DeployError('LOCKED', `${layout.root} is locked by ${holder}`, {
    hint: `wait for it with --wait <seconds>; if that process is hung, stop it, then run: atomic-deploy unlock ${layout.root}`,
    details,
  });
}

/**
 * Moves a lock aside so it can be deleted. The destination is named after the lock instance, so
 * of two processes taking over the same stale lock only one rename can succeed: the other finds
 * the destination occupied (or the lock gone). Returns false if someone else got there first.
 */
async function moveLockAside(layout: Layout, info: LockInfo, prefix: string): Promise<string | undefined> {
  const aside = path.join(layout.tmp, `${prefix}.${info.instance}`);
  try {
    await fs.promises.rename(layout.lock, aside);
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT' || code === 'ENOTEMPTY' || code === 'EEXIST') return undefined;
    throw error;
  }
  // We may have moved a fresher lock that replaced the stale one an instant ago: put it back.
  const moved = inspectLockAt(aside);
  if (moved !== info.instance) {
    await fs.promises.rename(aside, layout.lock).catch(() => undefined);
    return undefined;
  }
  // While this tombstone stands, a contender that judged the same lock stale and stalled cannot
  // move a newer lock onto its name (ENOTEMPTY); its mtime starts the sweep's 10-minute clock.
  const now = new Date();
  if (prefix === 'stale-lock') await fs.promises.utimes(aside, now, now).catch(() => undefined);
  return aside;
}

function inspectLockAt(dir: string): string {
  const stat = fs.lstatSync(dir);
  const owner = parseOwner(dir, stat);
  return (owner ? owner.token : `noowner-${stat.ino}-${Math.floor(stat.mtimeMs)}`).replace(/[^A-Za-z0-9._-]/g, '_');
}

function isFreshEmptyLock(layout: Layout): boolean {
  try {
    const stat = fs.lstatSync(layout.lock);
    return stat.isDirectory() && Date.now() - stat.mtimeMs < OWNERLESS_GRACE_MS && fs.readdirSync(layout.lock).length === 0;
  } catch {
    return false;
  }
}

export interface AcquireOptions {
  /** How long to wait for a live holder; 0 fails at once. */
  waitMs?: number;
  command?: string;
  signal?: AbortSignal;
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

export async function acquireLock(layout: Layout, options: AcquireOptions = {}): Promise<LockHandle> {
  await fs.promises.mkdir(layout.tmp, { recursive: true, mode: 0o755 });
  const owner: LockOwner = {
    pid: process.pid,
    host: hostName(),
    user: userName(),
    since: new Date().toISOString(),
    token: randomBytes(12).toString('hex'),
    startTime: procStartTicks(process.pid),
    bootId: bootId(),
    command: options.command,
    format: 'atomic-deploy',
  };
  // The owner is written before the lock exists, so there is never a lock without an owner.
  const staging = path.join(layout.tmp, `lock.${owner.token}`);
  await fs.promises.mkdir(staging, { mode: 0o755 });
  try {
    await writeDraft(staging, owner);
  } catch (error) {
    await fs.promises.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
  const deadline = Date.now() + (options.waitMs ?? 0);
  let tookOver: LockHandle['tookOver'];
  let aside: string | undefined;
  try {
    for (;;) {
      if (options.signal?.aborted) {
        // The abort reason is the signal's name: without it every signal would exit as SIGTERM.
        const reason: unknown = options.signal.reason;
        const signal = typeof reason === 'string' && reason.startsWith('SIG') ? (reason as NodeJS.Signals) : undefined;
        throw new DeployError('INTERRUPTED', `interrupted${signal ? ` by ${signal}` : ''} while waiting for the lock; nothing changed`, { signal });
      }
      try {
        // rename(2) silently replaces an empty directory, such as a lock the classic script has
        // just made (mkdir, then its pid): leave a fresh one to the judgement below.
        if (!isFreshEmptyLock(layout)) {
          await fs.promises.rename(staging, layout.lock);
          // Best effort: a lock need not survive a power cut (after a reboot its holder is gone),
          // and failing here would leave a lock behind that nobody holds.
          await fsyncDir(layout.root).catch(() => undefined);
          return { layout, owner, tookOver, aside };
        }
      } catch (error) {
        const code = errnoOf(error);
        if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && code !== 'EISDIR' && code !== 'ENOTDIR') throw error;
      }
      const info = inspectLock(layout);
      if (!info) continue;
      if (info.verdict.state === 'stale') {
        const moved = await moveLockAside(layout, info, 'stale-lock');
        if (moved) {
          tookOver = { owner: info.owner, reason: info.verdict.reason };
          aside = moved;
        }
        continue;
      }
      if (Date.now() >= deadline) throw lockedError(layout, info);
      await sleep(50 + Math.random() * 150);
    }
  } catch (error) {
    await fs.promises.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    throw error;
  }
}

/** Releases our own lock; a lock that is no longer ours is left alone. */
export async function releaseLock(handle: LockHandle): Promise<void> {
  const { layout, owner } = handle;
  const info = inspectLock(layout);
  if (!info || info.owner?.token !== owner.token) return;
  const aside = await moveLockAside(layout, info, 'trash.lock');
  if (!aside) return;
  await fs.promises.rm(aside, { recursive: true, force: true });
  // handle.aside stays: removing it now would let a stalled contender move the next holder's lock.
  await sweepLockLeftovers(layout);
  await fsyncDir(layout.root).catch(() => undefined);
}

/** Old stale locks moved aside and lock drafts of contenders that crashed mid-acquire. */
async function sweepLockLeftovers(layout: Layout): Promise<void> {
  const cutoff = Date.now() - 10 * 60_000;
  for (const name of await fs.promises.readdir(layout.tmp).catch(() => [] as string[])) {
    if (!name.startsWith('stale-lock.') && !name.startsWith('lock.')) continue;
    const full = path.join(layout.tmp, name);
    const stat = await fs.promises.lstat(full).catch(() => undefined);
    if (stat && stat.mtimeMs < cutoff) await fs.promises.rm(full, { recursive: true, force: true });
  }
}

/** Removes someone else's lock (`unlock`); the caller has decided it may. */
export async function removeLock(layout: Layout, info: LockInfo): Promise<boolean> {
  await fs.promises.mkdir(layout.tmp, { recursive: true, mode: 0o755 });
  const aside = await moveLockAside(layout, info, 'trash.lock');
  if (!aside) return false;
  await failpoint('unlock-rename');
  await fs.promises.rm(aside, { recursive: true, force: true });
  await fsyncDir(layout.root).catch(() => undefined);
  return true;
}
