/**
 * Private directories in the deploying machine's temp dir (ssh control sockets, an artifact's
 * local stage, the manifest and send list of a fleet deploy), and the sweep of those a killed
 * process left. Every other exit removes its own; SIGKILL (a CI job's timeout) cannot, and an
 * artifact's stage can be hundreds of MiB in a /tmp that is cleared only at boot.
 *
 * Each directory holds `.owner`, a symlink whose target names the process that made it (pid,
 * start time, boot id, pid namespace, host). A directory is swept only when that link names a
 * process of this host, boot and pid namespace that is gone, and only by its own user: a
 * directory without the link (not ours, or made an instant ago) is never touched. Hand-written
 * for that rule; temp-dir libraries remove on exit only. The link is removed last, so a sweep
 * that is stopped midway leaves a directory the next sweep recognises.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { errnoOf } from '../errors.ts';
import type { LockOwner } from '../plan/lock.ts';
import { tempDirError } from '../plan/temp-dir.ts';
import { judgeOwner, thisProcess } from './lock.ts';
import { deleteTree } from './remove-tree.ts';

export type ScratchKind = 'ad' | 'stage' | 'sig' | 'remade' | 'manifest' | 'send';

export const SCRATCH_OWNER = '.owner';
const OWNER_PREFIX = 'atomic-deploy-scratch:1';
/** `ad-` (control sockets: a short name, socket paths are limited) or `atomic-deploy-<kind>-`, then mkdtemp's six characters. */
const SCRATCH_NAME = /^(?:ad|atomic-deploy-(?:stage|sig|remade|manifest|send))-[A-Za-z0-9]{6}$/;

function prefixOf(kind: ScratchKind): string {
  return kind === 'ad' ? 'ad-' : `atomic-deploy-${kind}-`;
}

let pidNamespaceCache: string | null | undefined;
function pidNamespace(): string | undefined {
  if (pidNamespaceCache === undefined) {
    try {
      pidNamespaceCache = fs.readlinkSync('/proc/self/ns/pid');
    } catch {
      pidNamespaceCache = null;
    }
  }
  return pidNamespaceCache ?? undefined;
}

const field = (v: string | undefined): string => (v === undefined || v === '' ? '-' : v.replace(/\s/g, '_'));
const known = (v: string | undefined): string | undefined => (v === undefined || v === '-' ? undefined : v);

/** `atomic-deploy-scratch:1 <pid> <start> <boot> <pid ns> <host>`: one symlink, made in one call. */
export function scratchOwnerText(owner: Pick<LockOwner, 'pid' | 'host' | 'startTime' | 'bootId'>, pidNs: string | undefined): string {
  return [OWNER_PREFIX, String(owner.pid), field(owner.startTime), field(owner.bootId), field(pidNs), field(owner.host)].join(' ');
}

/** This process, as an owner link names it. */
export function ownerLinkText(): string {
  return scratchOwnerText(thisProcess(), pidNamespace());
}

/** Whether a parsed owner link names a process of this host, boot and pid namespace that is gone (another namespace's pids mean nothing here). */
function ownerGone(parsed: { owner: LockOwner; pidNs: string | undefined }, madeAtMs: number): boolean {
  return parsed.pidNs === pidNamespace() && judgeOwner(parsed.owner, madeAtMs).state === 'stale';
}

/** Whether an owner link's process may still run: false for one that is gone (ownerGone) and for a text that is no owner link of ours. */
export function ownerLinkAlive(text: string, madeAtMs: number): boolean {
  const parsed = parseScratchOwner(text);
  return parsed !== undefined && !ownerGone(parsed, madeAtMs);
}

export function parseScratchOwner(text: string): { owner: LockOwner; pidNs: string | undefined } | undefined {
  const [prefix, pid, startTime, boot, pidNs, host, ...rest] = text.split(' ');
  if (prefix !== OWNER_PREFIX || rest.length > 0 || pid === undefined || !/^\d+$/.test(pid) || host === undefined || host === '' || host === '-') return undefined;
  return {
    owner: { pid: Number(pid), host, user: '', since: '', token: '', startTime: known(startTime), bootId: known(boot), format: 'atomic-deploy' },
    pidNs: known(pidNs),
  };
}

/** Makes `<base>/<prefix>XXXXXX` (0700) with this process's `.owner` link in it. */
export function makeScratchDir(kind: ScratchKind, base: string = os.tmpdir()): string {
  let dir: string;
  try {
    dir = fs.mkdtempSync(path.join(base, prefixOf(kind)));
  } catch (error) {
    // TMPDIR's problem, named as such: not a bug, nor the deploy root's.
    throw tempDirError(base, errnoOf(error), error instanceof Error ? error.message : String(error), process.env, error);
  }
  try {
    fs.symlinkSync(scratchOwnerText(thisProcess(), pidNamespace()), path.join(dir, SCRATCH_OWNER));
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return dir;
}

/** Where scratch directories are made: the temp dir, and /tmp where control sockets go instead (a long TMPDIR). */
export function scratchBases(): string[] {
  return [...new Set([os.tmpdir(), '/tmp'])];
}

export interface LeftScratch {
  dir: string;
  pid: number;
}

/** The scratch directories in `base` whose owner is gone: ours by name, user and `.owner`; judged as a lock's holder is. */
export function leftScratchDirs(base: string): LeftScratch[] {
  let names: string[];
  try {
    names = fs.readdirSync(base);
  } catch {
    return [];
  }
  const uid = process.getuid?.();
  const left: LeftScratch[] = [];
  for (const name of names) {
    if (!SCRATCH_NAME.test(name)) continue;
    const dir = path.join(base, name);
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    if (!stat?.isDirectory() || (uid !== undefined && stat.uid !== uid)) continue;
    let text: string;
    try {
      text = fs.readlinkSync(path.join(dir, SCRATCH_OWNER));
    } catch {
      continue;
    }
    const parsed = parseScratchOwner(text);
    // Another pid namespace sharing this /tmp (a container): its pids mean nothing here.
    if (parsed && ownerGone(parsed, stat.mtimeMs)) left.push({ dir, pid: parsed.owner.pid });
  }
  return left;
}

/**
 * Removes a scratch directory, its `.owner` link last: stopped by `signal` midway, it is left with
 * its owner named, for the next sweep. Another sweep may remove the same entries meanwhile: what
 * vanished counts as done. True when the directory is gone.
 */
export async function removeScratchDir(dir: string, options: { signal?: AbortSignal } = {}): Promise<boolean> {
  const gone = (error: unknown): void => {
    if (errnoOf(error) !== 'ENOENT') throw error;
  };
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    gone(error);
    return true;
  }
  for (const entry of entries) {
    if (entry.name === SCRATCH_OWNER) continue;
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await deleteTree(p, { signal: options.signal });
    else await fs.promises.unlink(p).catch(gone);
    if (options.signal?.aborted) return false;
  }
  await fs.promises.unlink(path.join(dir, SCRATCH_OWNER)).catch(gone);
  await fs.promises.rmdir(dir).catch(gone);
  return true;
}

/** Removes what leftScratchDirs finds. Never throws: a leftover that cannot go stays. */
export async function sweepScratchDirs(options: { signal?: AbortSignal; onRemove?: (left: LeftScratch) => void } = {}): Promise<LeftScratch[]> {
  const removed: LeftScratch[] = [];
  for (const base of scratchBases()) {
    for (const left of leftScratchDirs(base)) {
      if (options.signal?.aborted) return removed;
      options.onRemove?.(left);
      try {
        if (await removeScratchDir(left.dir, options)) removed.push(left);
      } catch {
        // Not this command's failure.
      }
    }
  }
  return removed;
}
