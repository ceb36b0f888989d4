import type { EventSink } from './events.ts';
import fs from 'node:fs';
import path from 'node:path';
import { DeployError, errnoOf, ioError, emptyPathError, pathTypeError } from '../errors.ts';
import { acquireLock, describeHolder, inspectLock, releaseLock, type LockHandle, type LockInfo } from '../act/lock.ts';
import { readJournal } from '../act/state.ts';
import { assertTmpOnRoot } from '../act/staging.ts';
import { kernelPath, layoutOf, type Layout } from '../act/layout.ts';
import { symlinkTarget } from '../act/read.ts';
import { classifyRoot, readRootHint, readRootProblem, type EntryType, type RootEntry, type RootShape } from '../plan/root-shape.ts';
import { shellWord } from '../plan/paths.ts';
import { checkUmask } from '../plan/validate.ts';
import { currentUmask } from '../act/mkdirs.ts';
import { keepReserve, noReserveHint } from '../act/reserve.ts';

export function assertSupportedPlatform(): void {
  if (process.platform === 'win32') {
    throw new DeployError('UNSUPPORTED_PLATFORM', 'Windows is not supported: renaming over a directory link is not atomic there', {
      hint: 'deploy from WSL or a Linux, macOS or BSD host',
    });
  }
}

/**
 * Whether no operation holds the root's lock or left a journal: a refusal decided now is then
 * the one the lock would give, and can be made without taking it (so that it changes nothing,
 * not even the root's times). With either there, recovery may change the answer.
 */
export async function rootIsIdle(layout: Layout): Promise<boolean> {
  return inspectLock(layout) === undefined && (await readJournal(layout)).kind === 'none';
}

/** Resolves and checks a deploy root; with `mayCreate`, a missing root is fine (deploy makes it). */
export function openRoot(root: string, options: { mayCreate: boolean }): Layout {
  assertSupportedPlatform();
  if (typeof root !== 'string') throw pathTypeError('deploy root', root, 'the deploy root');
  if (root.length === 0) throw emptyPathError('deploy root', 'the deploy root');
  if (root.includes('\0')) throw new DeployError('INVALID_ROOT', 'the deploy root contains a NUL byte');
  const layout = layoutOf(root);
  try {
    const stat = fs.statSync(layout.root);
    if (!stat.isDirectory()) {
      throw new DeployError('INVALID_ROOT', `${layout.root} is not a directory`, { hint: 'give the directory that holds (or will hold) current and releases/' });
    }
  } catch (error) {
    if (error instanceof DeployError) throw error;
    const code = errnoOf(error);
    // A dangling link reads as missing to stat, but mkdir -p cannot make it (EEXIST): say what it is.
    const target = code === 'ENOENT' ? symlinkTarget(layout.root) : undefined;
    if (target !== undefined) {
      throw new DeployError('INVALID_ROOT', `the deploy root ${layout.root} is a symbolic link to ${target}, which does not exist`, { hint: DANGLING_HINT });
    }
    if (code === 'ENOENT' && options.mayCreate) {
      assertCreatable(layout.root);
      assertNotNested(layout.root);
      return layout;
    }
    if (code === 'ENOENT') {
      const outer = enclosingRoot(layout.root);
      throw new DeployError('INVALID_ROOT', `${layout.root} does not exist`, { hint: outer ? `it would be inside the deploy root ${outer.root} (${outer.place}): give that root` : `check the path; to make it a deploy root, deploy to it: atomic-deploy deploy <source> ${shellWord(layout.root)}` });
    }
    if (code === 'ENOTDIR') throw new DeployError('INVALID_ROOT', `${layout.root} is not a directory (a parent is a file)`);
    const denied = code === 'EACCES' || code === 'EPERM';
    throw new DeployError('INVALID_ROOT', `cannot use ${layout.root}: ${denied ? 'permission denied (a directory on the way is not searchable by this user)' : (code ?? String(error))}`, {
      cause: error,
      ...(denied ? { hint: 'run as the user that owns the deploy root, or make the directories above it searchable (chmod a+x)' } : {}),
    });
  }
  if (!options.mayCreate) assertDeployRoot(layout.root);
  else assertNotNested(layout.root);
  // The layout's own directories: a file by one of their names is in the way of every command.
  for (const dir of [layout.releases, layout.tmp, layout.state]) {
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(dir);
    } catch {
      // Missing (made when needed), or a dangling link (releases/ as a link is checked where it is used).
    }
    if (stat && !stat.isDirectory()) {
      throw new DeployError('INVALID_ROOT', `${dir} is not a directory; atomic-deploy needs that name for its own directory`, { hint: `move it away (mv ${shellWord(dir)} ${shellWord(`${dir}.old`)}), then run the command again` });
    }
  }
  // Recovery deletes leftovers in .tmp/ by name, prune a pruned release's manifest and stat cache:
  // a link at any of these would aim those deletes (and the writes) outside the root.
  for (const internal of [layout.tmp, layout.state, layout.log, path.join(layout.state, 'manifests')]) {
    if (isSymlink(internal)) {
      throw new DeployError('INVALID_ROOT', `${internal} is a symbolic link; atomic-deploy keeps its own temporary files and state there and never follows a link out of the root`, {
        // .tmp holds nothing to keep; the state's directories hold the release log and manifests.
        hint: internal === layout.tmp ? `remove the link (rm ${shellWord(internal)}); it is recreated as a directory` : `put the directory it leads to in its place (rm ${shellWord(internal)} && mv ${shellWord(readLinkOr(internal))} ${shellWord(internal)})`,
      });
    }
  }
  return layout;
}

function readLinkOr(link: string): string {
  try {
    return fs.readlinkSync(link);
  } catch {
    return '<its target>';
  }
}

/**
 * A root that would be made inside another deploy root (in a release, through current, in its
 * state): refused before anything is written, whatever the folder holds itself. The path is
 * resolved first, so `app/current/public` is seen to be in app's live release.
 */
function assertNotNested(root: string): void {
  const outer = enclosingRoot(root);
  if (outer !== undefined) {
    throw new DeployError('INVALID_ROOT', `the deploy root ${root} is inside the deploy root ${outer.root} (${outer.place})`, {
      hint: `a deploy root's folders belong to its releases and state: give a folder outside ${outer.root}`,
    });
  }
}

/**
 * Where a file would be written in a deploy root's releases or state (through `current` too): a
 * config file `init` wrote there would be served with the release and reported by verify. The
 * root's own folder and shared/ are not such places. Undefined when the file is in neither.
 */
export function inReleaseOrState(file: string): { root: string; place: string } | undefined {
  const outer = enclosingRoot(file);
  if (outer === undefined) return undefined;
  const rel = path.relative(outer.root, realpathLoose(file));
  return !rel.includes(path.sep) || rel.split(path.sep)[0] === 'shared' ? undefined : outer;
}

/** The nearest deploy root a path lies inside (resolved through links), and where in it. */
function enclosingRoot(dir: string): { root: string; place: string } | undefined {
  const real = realpathLoose(dir);
  for (let p = path.dirname(real); ; p = path.dirname(p)) {
    if (isEnclosingRoot(p)) return { root: p, place: placeIn(p, path.relative(p, real)) };
    if (path.dirname(p) === p) return undefined;
  }
}

/**
 * Whether a folder bears the marks of a deploy root (plan/root-shape.ts classifyRoot, less its
 * weakest case: a folder holding only layout names). Asked of each ancestor by name, a few
 * lstat(2)s each, so a large parent (/tmp, /home) is never listed. The fleet hosts' lock program
 * asks the same (remote/script.ts enclosing_root).
 */
function isEnclosingRoot(dir: string): boolean {
  const is = (name: string, type: EntryType): boolean => {
    const at = path.join(dir, name);
    if (type === 'symlink') return fs.lstatSync(at, { throwIfNoEntry: false })?.isSymbolicLink() === true;
    const st = fs.statSync(at, { throwIfNoEntry: false });
    return type === 'dir' ? st?.isDirectory() === true : st?.isFile() === true;
  };
  try {
    if (is('.atomic-deploy', 'dir')) return true;
    // releases/ may be a link to a directory on another volume, as the root's own check allows.
    if (!is('releases', 'dir')) return false;
    return is('current', 'symlink') || is('.deploy.lock', 'dir') || is('.dep', 'dir') || is('revisions.log', 'file') || is('repo', 'dir');
  } catch {
    // An ancestor this user cannot search is not known to be a root: nothing to say about it.
    return false;
  }
}

/** Where in an enclosing root a path lies: "in release R1, the live one", "in shared/". */
function placeIn(outer: string, rel: string): string {
  const [top, id] = rel.split(path.sep);
  if (top !== 'releases' || id === undefined || !fs.existsSync(path.join(outer, 'releases', id))) return `in ${top}/`;
  let live = false;
  try {
    live = fs.realpathSync(path.join(outer, 'current')) === fs.realpathSync(path.join(outer, 'releases', id));
  } catch {
    // No current, or the release is not there yet.
  }
  return `in release ${id}${live ? ', the live one' : ''}`;
}

const DANGLING_HINT = "create the link's target first, or give another root";

/**
 * A root that does not exist yet must be one mkdir -p can make: its nearest existing ancestor a
 * directory, reached through no dangling link (stat reports both as "missing").
 */
function assertCreatable(root: string): void {
  for (let p = path.dirname(root); ; p = path.dirname(p)) {
    let link: fs.Stats | undefined;
    try {
      link = fs.lstatSync(p);
    } catch {
      if (path.dirname(p) === p) return;
      continue;
    }
    let stat: fs.Stats | undefined;
    try {
      stat = fs.statSync(p);
    } catch {
      // Only a link can exist and not resolve.
    }
    if (stat === undefined && link.isSymbolicLink()) {
      throw new DeployError('INVALID_ROOT', `cannot create ${root}: ${p} is a symbolic link to ${fs.readlinkSync(p)}, which does not exist`, { hint: DANGLING_HINT });
    }
    if (stat !== undefined && !stat.isDirectory()) throw new DeployError('INVALID_ROOT', `cannot create ${root}: ${p} is not a directory`);
    const kind = stat === undefined ? undefined : pseudoFilesystem(p);
    if (kind !== undefined) {
      throw new DeployError('INVALID_ROOT', `cannot create the deploy root ${root}: ${p} is on a ${kind} filesystem, which cannot hold one`, { hint: 'give a root on a filesystem that holds files and directories' });
    }
    return;
  }
}

/**
 * Linux's kernel interfaces, by statfs f_type (linux/magic.h): they hold no directories a user
 * makes, and mkdir there fails only once the deploy has begun (ENOENT under /proc, EPERM or EROFS
 * under /sys). Known by name, the dry run gives the deploy's answer without writing.
 */
const PSEUDO_FILESYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x62656570, 'configfs'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
  [0xf97cff8c, 'selinuxfs'],
  [0x42494e4d, 'binfmt_misc'],
  [0x19800202, 'mqueue'],
]);

function pseudoFilesystem(dir: string): string | undefined {
  // f_type numbers are Linux's own; other systems number their filesystems differently.
  if (process.platform !== 'linux') return undefined;
  try {
    return PSEUDO_FILESYSTEMS.get(fs.statfsSync(dir).type);
  } catch {
    return undefined;
  }
}

function entryType(entry: fs.Dirent): EntryType {
  if (entry.isDirectory()) return 'dir';
  if (entry.isFile()) return 'file';
  if (entry.isSymbolicLink()) return 'symlink';
  return 'other';
}

/** releases/ or shared/ as a link to a directory on another volume: a layout admins set up before the first deploy. */
function linkedVolume(dir: string, entry: fs.Dirent): boolean {
  if (!entry.isSymbolicLink() || (entry.name !== 'releases' && entry.name !== 'shared')) return false;
  try {
    return fs.statSync(path.join(dir, entry.name)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The shape of a folder (missing, empty, a deploy root of some tool, something else), from its top
 * level. `role`: what the folder is to the command, which names the error (a build that cannot be
 * read is INVALID_SOURCE, not the root's problem).
 */
export function rootShapeOf(dir: string, role: 'root' | 'source' = 'root'): RootShape {
  let entries: RootEntry[] | undefined;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true }).map((e) => ({ name: e.name, type: linkedVolume(dir, e) ? 'dir' : entryType(e) }));
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT') return classifyRoot(undefined);
    const denied = code === 'EACCES' || code === 'EPERM';
    throw new DeployError(role === 'source' ? 'INVALID_SOURCE' : 'INVALID_ROOT', `cannot read ${dir}: ${denied ? 'permission denied' : (code ?? String(error))}`, {
      cause: error,
      ...(denied ? { hint: role === 'source' ? 'make the build readable by the user that deploys (for example: chmod -R u+rX <source>)' : 'run as the user that owns the deploy root' } : {}),
    });
  }
  return classifyRoot(entries);
}

/** Commands that read a root refuse a folder that is not one before they create anything in it. */
export function assertDeployRoot(dir: string): void {
  const shape = rootShapeOf(dir);
  const problem = readRootProblem(shape);
  if (problem) {
    // `status app/current`: the root meant is the one the path lies in, never a new one inside it.
    const outer = enclosingRoot(dir);
    throw new DeployError('INVALID_ROOT', `${dir} ${problem}`, {
      hint: outer ? `it is inside the deploy root ${outer.root} (${outer.place}): give that root` : readRootHint(shape, shellWord(dir)),
    });
  }
  // A release that holds a root's layout (a build or archive shipping .atomic-deploy/, or releases/
  // and current) looks like a root itself: `rollback app/current` would switch the link inside
  // the live release. Deploy already refuses a root inside another; so does every other command.
  assertNotNested(dir);
}

function isSymlink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** realpath of a path that may not exist yet: the real nearest ancestor plus the rest. */
export function realpathLoose(p: string): string {
  const abs = kernelPath(p);
  const rest: string[] = [];
  for (let d = abs; ; d = path.dirname(d)) {
    try {
      return path.join(fs.realpathSync(d), ...rest.reverse());
    } catch {
      if (path.dirname(d) === d) return abs;
      rest.push(path.basename(d));
    }
  }
}

export interface LockOptions {
  waitMs?: number;
  command?: string;
  signal?: AbortSignal;
  /** Where `--wait` says whom it waits for. */
  emit?: EventSink;
  /** On a full disk, delete the space reserve to take the lock (rollback, prune: act/reserve.ts). */
  spendReserve?: boolean;
}

function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10} s`;
}

/** A system error (errno code) is an expected failure, reported as such; anything else stays a bug. */
function expected(what: string, error: unknown, root: string): unknown {
  return /^E[A-Z0-9]+$/.test(errnoOf(error) ?? '') ? ioError(what, error, root) : error;
}

/** Refuses (USAGE) a umask that takes the owner's own bits, before a command makes anything. */
export function assertOwnerUmask(): void {
  checkUmask(currentUmask());
}

/** A rollback or prune refused the lock by a full disk with no space reserve left: the hint frees space by hand. */
function fullWithoutReserve(error: unknown, root: string, command: string): unknown {
  if (!(error instanceof DeployError) || error.code !== 'NO_SPACE') return error;
  return new DeployError('NO_SPACE', error.message, { cause: error.cause, hint: noReserveHint(root, command) });
}

/** Runs `body` holding the root's lock; the lock is released however `body` ends. */
export async function withLock<T>(layout: Layout, options: LockOptions, body: (lock: LockHandle) => Promise<T>): Promise<T> {
  assertOwnerUmask();
  let lock: LockHandle;
  try {
    const emit = options.emit;
    // A person waiting on a silent command cannot tell a queue from a hang: name the holder.
    const onWait = emit ? (holder: string, waitMs: number) => emit({ type: 'step', message: `waiting up to ${seconds(waitMs)} for the lock of ${layout.root}, held by ${holder}` }) : undefined;
    await assertTmpOnRoot(layout);
    lock = await acquireLock(layout, { waitMs: options.waitMs, command: options.command, signal: options.signal, onWait, spendReserve: options.spendReserve });
  } catch (error) {
    const failed = expected(`taking the lock ${layout.lock}`, error, layout.root);
    throw options.spendReserve ? fullWithoutReserve(failed, layout.root, options.command ?? 'command') : failed;
  }
  try {
    const result = await body(lock);
    // Made by a command that succeeded, never by one that fails (a refused deploy changes nothing): so
    // it is there before the next deploy fills the disk. A prune deletes after the lock: the next command makes it.
    keepReserve(layout);
    return result;
  } catch (error) {
    throw expected(options.command ?? 'the operation', error, layout.root);
  } finally {
    await releaseLock(lock).catch((error: unknown) => {
      throw expected(`releasing the lock ${layout.lock}`, error, layout.root);
    });
  }
}

/**
 * What a dry run notes of the root's lock beside its plan (deploy, rollback and prune alike): a
 * held lock, and a journal, which is either the holder's own operation, running now, or an
 * interrupted one the command would recover first. Read only: nothing is taken over or recovered.
 */
export async function lockNotes(layout: Layout, command: DryRunCommand, waitMs = 0): Promise<string[]> {
  if (!fs.existsSync(layout.root)) return [];
  return lockAndJournalSaid(inspectLock(layout), (await readJournal(layout)).kind !== 'none', command, waitMs);
}

export type DryRunCommand = 'deploy' | 'rollback' | 'prune';

/**
 * The dry runs' notes of a root's lock (judged: its owner and verdict) and of a journal in it, in
 * the same words for a local root and a fleet host: what the command would do about each.
 */
export function lockAndJournalSaid(lock: Pick<LockInfo, 'owner' | 'verdict'> | undefined, journal: boolean, command: DryRunCommand, waitMs: number): string[] {
  const notes: string[] = [];
  // A journal under a live holder's lock is that operation's own, running now: not interrupted.
  const running = lock !== undefined && lock.verdict.state !== 'stale';
  if (lock) notes.push(`the root is locked by ${describeHolder(lock.owner)} (${lock.verdict.state}: ${lock.verdict.reason}): ${running ? waitFor(command, waitMs) : `the ${command} would take it over`}`);
  if (journal) notes.push(running ? 'an operation is running (its journal is in the root)' : `an interrupted operation left a journal: the ${command} recovers it first`);
  return notes;
}

/**
 * Whether this user may write where the command would (the root and the directories every
 * command writes in, or the nearest existing parent of a root still to be made): a dry run that
 * planned a deploy into a read-only mount or another user's root said nothing of it, and the
 * deploy then failed. The dry runs of deploy, rollback and prune note it; nothing is written to find out.
 */
export function writeProblem(layout: Layout): string | undefined {
  let dir = layout.root;
  while (!fs.existsSync(dir) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  const places = dir === layout.root ? [layout.root, layout.releases, layout.state, layout.tmp].filter((p) => fs.existsSync(p)) : [dir];
  for (const place of places) {
    try {
      fs.accessSync(place, fs.constants.W_OK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'refused';
      const why = code === 'EROFS' ? 'a read-only filesystem' : code === 'EACCES' || code === 'EPERM' ? 'no write permission for this user' : code;
      return `this user cannot write ${place} (${why}): the command itself would fail there`;
    }
  }
  return undefined;
}

/** What a command does about a live holder's lock, as a dry run says it: wait, as long as --wait allows, then exit 3. */
export function waitFor(command: string, waitMs: number): string {
  return waitMs > 0 ? `the ${command} would wait for it up to ${waitMs / 1000} s (--wait), then exit 3` : `the ${command} would exit 3 (or wait for it, with --wait)`;
}
