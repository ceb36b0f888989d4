/** Runs root programs (effects.ts) against this machine's filesystem: the local engine's interpreter. */
import fs from 'node:fs';
import path from 'node:path';
import { copyFileAtomic, fsyncDir, writeFileAtomic } from '../act/durable.ts';
import { layoutOf } from '../act/layout.ts';
import { directoryStat, readRegularFileSync } from '../act/read.ts';
import { releaseIdOfCurrent, switchCurrent } from '../act/switch.ts';
import { DeployError, errnoOf } from '../errors.ts';
import { OWNER_LINK, ownerLinkToken } from '../plan/lock.ts';
import { inTmp as inTmpPath, textOf, type ArgsOf, type Cond, type Effect, type LockIdentity, type Op, type RootProgram } from './effects.ts';
import { makeDirs, makeReachableDirs, widenMode } from '../act/mkdirs.ts';
import { deleteTree, removeTree } from '../act/remove-tree.ts';

/** Errors that mean "someone else got there first" (or the thing is gone): a program's orElse handles them. */
const LOSING = new Set(['ENOENT', 'EEXIST', 'ENOTEMPTY', 'EISDIR', 'ENOTDIR']);

function sameLock(dir: string, lock: LockIdentity): boolean {
  if (!('token' in lock)) {
    // A lock named by its inode may be another tool's lock file or symlink, moved aside as it is.
    const stat = fs.lstatSync(dir, { throwIfNoEntry: false });
    return stat !== undefined && String(stat.ino) === lock.inode && Math.floor(stat.mtimeMs / 1000) === lock.mtimeS;
  }
  if (directoryStat(dir) === undefined) return false;
  // A lock taken on a full disk keeps its owner in a symlink's target instead of owner.json.
  try {
    return ownerLinkToken(fs.readlinkSync(path.join(dir, OWNER_LINK))) === lock.token;
  } catch {
    // No owner link: the usual owner.json.
  }
  try {
    const owner = JSON.parse(readRegularFileSync(path.join(dir, 'owner.json'))) as { token?: unknown };
    return owner.token === lock.token;
  } catch {
    return false;
  }
}

/**
 * Whether `current` names releases/<id> (dangling or not: the guard must hold either way), or
 * reaches through it as the kernel resolves the link: a link to `releases/stable` that is itself
 * a link to <id>, or `releases/<id>/../other`. Deleting <id> would then take down what serves.
 */
function currentIs(root: string, id: string): boolean {
  try {
    const link = path.join(root, 'current');
    if (!fs.lstatSync(link).isSymbolicLink()) return false;
    const target = fs.readlinkSync(link);
    return releaseIdOfCurrent(target, root) === id || resolvesThrough(root, target, path.join(root, 'releases', id));
  } catch {
    return false;
  }
}

/**
 * Whether resolving `target` (a link's text, relative to `base`) passes through `dir` or ends
 * inside it: each step resolved as the kernel does (a `..` from where the step before really
 * is, a link followed), until a step does not exist.
 */
function resolvesThrough(base: string, target: string, dir: string): boolean {
  let dirReal: string;
  try {
    dirReal = fs.realpathSync(dir);
  } catch {
    return false;
  }
  let at: string;
  try {
    at = fs.realpathSync(path.isAbsolute(target) ? '/' : base);
  } catch {
    return false;
  }
  for (const part of target.split('/')) {
    if (part === '' || part === '.') continue;
    try {
      at = part === '..' ? path.dirname(at) : fs.realpathSync(path.join(at, part));
    } catch {
      return false;
    }
    if (at === dirReal || at.startsWith(`${dirReal}${path.sep}`)) return true;
  }
  return false;
}

/** How a program runs here: `durable: false` (--no-fsync) skips the `durable` effects and the fsync of writes. */
export interface FsOptions {
  durable?: boolean;
  /**
   * Once aborted, a `remove` stops between two unlinks and leaves the rest of its tree under the
   * same name: only for programs that remove nothing but leftovers' names and small files
   * (recovery, and the undo of a deploy, which renames a placed release to trash first).
   */
  signal?: AbortSignal;
}

function holds(root: string, cond: Cond): boolean {
  if (cond.is === 'current') return currentIs(root, cond.id);
  const abs = path.join(root, cond.path);
  switch (cond.is) {
    case 'same-lock':
      return sameLock(abs, cond.lock);
    case 'fresh-empty-dir':
      try {
        const stat = fs.lstatSync(abs);
        return stat.isDirectory() && Date.now() - stat.mtimeMs < cond.graceS * 1000 && fs.readdirSync(abs).length === 0;
      } catch {
        return false;
      }
    case 'dir':
      try {
        return fs.lstatSync(abs).isDirectory();
      } catch {
        return false;
      }
  }
}

async function perform<P extends string>(root: string, effect: Effect<P>, durable: boolean, args: ArgsOf<P> | undefined, signal: AbortSignal | undefined): Promise<void> {
  switch (effect.do) {
    case 'mkdir':
      if (effect.reachable === true) return makeReachableDirs(path.join(root, effect.path));
      await fs.promises.mkdir(path.join(root, effect.path), { recursive: effect.parents === true, mode: 0o755 });
      return;
    case 'rename':
      if (effect.readOnlyDir === true) return renameReadOnlyDir(path.join(root, effect.from), path.join(root, effect.to));
      await fs.promises.rename(path.join(root, effect.from), path.join(root, effect.to));
      return;
    case 'open-dir':
      return widenMode(path.join(root, effect.path), 0o555);
    case 'remove':
      if (signal) await deleteTree(path.join(root, effect.path), { signal });
      else await removeTree(path.join(root, effect.path));
      return;
    case 'touch': {
      const now = new Date();
      await fs.promises.utimes(path.join(root, effect.path), now, now);
      return;
    }
    case 'durable':
      if (durable) await fsyncDir(path.join(root, effect.path));
      return;
    case 'write': {
      const file = path.join(root, effect.path);
      await makeDirs(path.dirname(file), 0o755);
      await writeFileAtomic(file, `${textOf(effect.text, args)}\n`, durable);
      return;
    }
    case 'copy': {
      const file = path.join(root, effect.to);
      await makeDirs(path.dirname(file), 0o755);
      await copyFileAtomic(path.join(root, effect.from), file, durable);
      return;
    }
    case 'switch':
      if (effect.to !== null) {
        await switchCurrent(layoutOf(root), effect.to, { durable: false });
        return;
      }
      await makeDirs(path.join(root, '.tmp'));
      await fs.promises.rename(path.join(root, 'current'), path.join(root, inTmpPath(effect.via)));
      await removeTree(path.join(root, inTmpPath(effect.via)));
      return;
    case 'sweep': {
      const dir = path.join(root, effect.dir);
      const cutoff = Date.now() - effect.olderThanS * 1000;
      for (const name of await fs.promises.readdir(dir).catch(() => [] as string[])) {
        if (!effect.prefixes.some((p) => name.startsWith(p))) continue;
        const full = path.join(dir, name);
        const stat = await fs.promises.lstat(full).catch(() => undefined);
        if (stat && stat.mtimeMs < cutoff) await removeTree(full);
      }
      return;
    }
  }
}

/** Runs ops in order; returns the outcome of an `end` reached, undefined when they all ran. */
async function runOps<O extends string, P extends string>(root: string, ops: readonly Op<O, P>[], durable: boolean, args: ArgsOf<P> | undefined, signal: AbortSignal | undefined): Promise<O | undefined> {
  for (const op of ops) {
    if ('end' in op) return op.end;
    if ('fail' in op) throw new DeployError(op.fail, op.message);
    let ended: O | undefined;
    if ('if' in op) {
      ended = await runOps(root, holds(root, op.if) ? op.then : (op.else ?? []), durable, args, signal);
    } else {
      try {
        await perform(root, op.effect, durable, args, signal);
      } catch (error) {
        if (op.bestEffort) continue;
        if (!op.orElse || !LOSING.has(errnoOf(error) ?? '')) throw error;
        ended = await runOps(root, op.orElse, durable, args, signal);
      }
    }
    if (ended !== undefined) return ended;
  }
  return undefined;
}

/** Runs a program on the root at `root` and returns its outcome; unexpected errors are thrown as they come. */
export function runOnFs<O extends string>(root: string, program: RootProgram<O>, options?: FsOptions): Promise<O>;
/** A program with parameters runs only with `args`, one value for each. */
export function runOnFs<O extends string, P extends string>(root: string, program: RootProgram<O, P>, options: FsOptions & { args: ArgsOf<P> }): Promise<O>;
export async function runOnFs<O extends string, P extends string>(root: string, program: { ops: readonly Op<O, P>[]; done: O }, options: FsOptions & { args?: ArgsOf<P> } = {}): Promise<O> {
  return (await runOps(root, program.ops, options.durable !== false, options.args, options.signal)) ?? program.done;
}

/**
 * rename(2) of a directory that its owner may not write (a 0555 build, a Nix output): moving a
 * directory to another parent rewrites its `..`, which needs write permission on it, so u+w is
 * lent for the move and taken back after; a user who may write it (root always may) just renames.
 */
async function renameReadOnlyDir(from: string, to: string): Promise<void> {
  try {
    await fs.promises.access(from, fs.constants.W_OK);
    await fs.promises.rename(from, to);
    return;
  } catch (error) {
    if (errnoOf(error) !== 'EACCES') throw error;
  }
  const mode = (await fs.promises.lstat(from)).mode & 0o7777;
  await fs.promises.chmod(from, mode | 0o200);
  try {
    await fs.promises.rename(from, to);
  } catch (error) {
    await fs.promises.chmod(from, mode).catch(() => undefined);
    throw error;
  }
  await fs.promises.chmod(to, mode);
}
