import fs from 'node:fs';
import path from 'node:path';
import { userOf } from './act/users.ts';
import { shellWord } from './plan/paths.ts';
/** Stable error codes: scripts may match on them, so they never change meaning. */
export type ErrorCode =
  | 'USAGE'
  | 'INVALID_SOURCE'
  | 'INVALID_ROOT'
  | 'INVALID_RELEASE_ID'
  | 'RELEASE_EXISTS'
  | 'CURRENT_NOT_SYMLINK'
  | 'CURRENT_OUTSIDE_RELEASES'
  | 'CURRENT_DANGLING'
  | 'UNSUPPORTED_FILE'
  | 'UNSUPPORTED_PLATFORM'
  | 'INVALID_CONFIG'
  | 'INVALID_SHARED_PATH'
  | 'SHARED_MISSING'
  | 'UNKNOWN_RELEASE'
  | 'NO_MANIFEST'
  | 'MANIFEST_UNTRUSTED'
  | 'NO_PREVIOUS_RELEASE'
  | 'LOCKED'
  | 'LOCK_FOREIGN_HOST'
  | 'NOT_LOCKED'
  | 'RELEASE_IN_USE'
  | 'NO_SPACE'
  | 'IO'
  | 'HOOK_FAILED'
  | 'HEALTH_CHECK_FAILED'
  | 'ROLLED_BACK'
  | 'AFTER_SWITCH_FAILED'
  | 'REMOTE'
  | 'STALE_PROCESSES'
  | 'RELEASE_DIFFERS'
  | 'INTERRUPTED'
  | 'INTERNAL'
  | 'INVALID_ARCHIVE'
  | 'HOSTILE_ARCHIVE'
  | 'CHECKSUM_MISMATCH'
  | 'SIGNATURE_INVALID'
  | 'DOWNLOAD_FAILED';

/** Documented exit codes of the CLI. */
export const EXIT = {
  ok: 0,
  failure: 1,
  invalid: 2,
  locked: 3,
  rolledBack: 4,
  /** `verify`: the release differs from its manifest; `rollback --verify fail`: the release to go to does. */
  differences: 5,
  /** `--stale fail`: processes still ran from the release left behind when the wait ended; the switch stands. */
  stale: 6,
  /** An after-switch hook failed with no health check to roll back on: the new release is live. */
  afterSwitchFailed: 7,
  sigint: 130,
  sigterm: 143,
  sighup: 129,
} as const;

const INVALID_INPUT: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'USAGE',
  'INVALID_SOURCE',
  'INVALID_ROOT',
  'INVALID_RELEASE_ID',
  'RELEASE_EXISTS',
  'CURRENT_NOT_SYMLINK',
  'CURRENT_OUTSIDE_RELEASES',
  'CURRENT_DANGLING',
  'UNSUPPORTED_FILE',
  'UNSUPPORTED_PLATFORM',
  'INVALID_CONFIG',
  'INVALID_SHARED_PATH',
  'SHARED_MISSING',
  'UNKNOWN_RELEASE',
  'NO_MANIFEST',
  'MANIFEST_UNTRUSTED',
  'NO_PREVIOUS_RELEASE',
  'NOT_LOCKED',
  'RELEASE_IN_USE',
  'INVALID_ARCHIVE',
  'HOSTILE_ARCHIVE',
  'CHECKSUM_MISMATCH',
  'SIGNATURE_INVALID',
]);

export interface DeployErrorOptions {
  hint?: string;
  cause?: unknown;
  /** Machine-readable details, printed under `--json`. */
  details?: Record<string, unknown>;
  /** For INTERRUPTED: the signal that stopped the operation. */
  signal?: NodeJS.Signals;
  /**
   * What the command did although it reports a failure (`--stale fail`: the switch stood): under
   * `--json` the object printed is this result with the error in it, as for exit 7.
   */
  result?: object;
}

/** The one error type of the library: a stable code, a one-line message, an optional hint. */
export class DeployError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown> | undefined;
  readonly signal: NodeJS.Signals | undefined;
  readonly result: object | undefined;

  constructor(code: ErrorCode, message: string, options: DeployErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DeployError';
    this.code = code;
    this.hint = options.hint;
    this.details = options.details;
    this.signal = options.signal;
    this.result = options.result;
  }

  get exitCode(): number {
    if (this.code === 'LOCKED' || this.code === 'LOCK_FOREIGN_HOST') return EXIT.locked;
    if (this.code === 'INTERRUPTED') return exitCodeForSignal(this.signal);
    if (this.code === 'ROLLED_BACK') return EXIT.rolledBack;
    if (this.code === 'AFTER_SWITCH_FAILED') return EXIT.afterSwitchFailed;
    if (this.code === 'STALE_PROCESSES') return EXIT.stale;
    if (this.code === 'RELEASE_DIFFERS') return EXIT.differences;
    if (INVALID_INPUT.has(this.code)) return EXIT.invalid;
    return EXIT.failure;
  }
}

export function exitCodeForSignal(signal: NodeJS.Signals | undefined): number {
  if (signal === 'SIGINT') return EXIT.sigint;
  if (signal === 'SIGHUP') return EXIT.sighup;
  return EXIT.sigterm;
}

export function isDeployError(error: unknown): error is DeployError {
  return error instanceof DeployError;
}

/** A path argument given as an empty string: most often a shell variable that was not set. */
export function emptyPathError(what: 'source' | 'deploy root', give: string): DeployError {
  return new DeployError('USAGE', `the ${what} is an empty string`, { hint: `give ${give} (an unset shell variable expands to nothing: quote it and check it is set)` });
}

/** A value's type as a JavaScript caller's mistake is named: null and array apart from object. */
export function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

/** A path argument that is no string, from a JavaScript caller (TypeScript refuses it). */
export function pathTypeError(what: 'source' | 'deploy root', value: unknown, give: string): DeployError {
  return new DeployError('USAGE', `the ${what} must be a string path, got ${typeName(value)}`, { hint: `give ${give} as a string` });
}

/** The errno code of a Node system error, if any. */
export function errnoOf(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code: unknown = error.code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * Turns a system error during an operation into a DeployError with a useful message. `root`: the
 * deploy root the operation works in, for hints that name it (else the one the failing path lies in).
 */
export function ioError(what: string, error: unknown, root?: string): DeployError {
  if (isDeployError(error)) return error;
  const errno = errnoOf(error);
  const reason = error instanceof Error ? error.message : String(error);
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    const named = (error as NodeJS.ErrnoException).path;
    const where = root ?? (typeof named === 'string' ? rootAround(named) : undefined);
    return new DeployError('NO_SPACE', `no space left on device while ${what}`, {
      cause: error,
      hint: noSpaceHint(where, where === undefined ? undefined : quietly(releaseCount, where)),
    });
  }
  if (errno === 'EMFILE' || errno === 'ENFILE') {
    const limit = errno === 'EMFILE' ? OPEN_FILE_LIMIT : undefined;
    return new DeployError('IO', `${errno === 'EMFILE' ? `too many open files${limit === undefined ? '' : ` (ulimit -n ${limit})`}` : "the system's table of open files is full"} while ${what}: ${reason}`, {
      cause: error,
      hint: errno === 'EMFILE' ? `raise the limit of open files: ulimit -n 1024 (a deploy needs at least ${MIN_OPEN_FILES})` : 'close files other programs hold open, or raise the system limit (sysctl fs.file-max)',
    });
  }
  if (errno === 'EROFS') {
    return new DeployError('IO', `read-only file system while ${what}`, {
      cause: error,
      hint: 'the deploy root is on a read-only mount: remount it read-write (mount -o remount,rw <mount point>) or deploy to a writable root',
    });
  }
  const owners = ownersRefused(error, errno);
  if (owners !== undefined) {
    return new DeployError('IO', `cannot give the release's files their owners while ${what}: ${reason}`, { cause: error, hint: owners });
  }
  if (errno === 'EACCES' || errno === 'EPERM') {
    // Root is refused by an attribute or the filesystem, never by owners or modes.
    const asRoot = process.getuid?.() === 0;
    return new DeployError('IO', `permission denied while ${what}: ${reason}`, {
      cause: error,
      hint: asRoot ? 'root was refused: an immutable or append-only attribute (lsattr -d <path>, chattr -i <path>), or a filesystem that refuses root (NFS root_squash)' : (quietly(ownModeHint, error) ?? quietly(ownerHint, error) ?? quietly(newRootHint, error) ?? 'run as the user that owns the deploy root'),
    });
  }
  return new DeployError('IO', `${what} failed: ${reason}`, { cause: error });
}

/**
 * The hint for a full disk under a deploy root that holds `releases` releases (pure). Prune keeps
 * the live release and its rollback target whatever --keep says: with no more than those, it
 * cannot free anything, and the hint says where else the space goes.
 */
export function noSpaceHint(root: string | undefined, releases: number | undefined): string {
  if (root === undefined) return 'free space on that filesystem and run the command again';
  const r = shellWord(root);
  if (releases !== undefined && releases <= 2) {
    const held = releases === 0 ? 'no release yet' : releases === 1 ? 'only the live release, which always stays' : 'only the live release and its rollback target, which always stay';
    return `prune cannot free space here: ${root} holds ${held}; free space elsewhere on its filesystem (shared/, other files: df -h ${r}) or make it larger, then deploy again`;
  }
  return `free space (for example: atomic-deploy prune ${r} --keep 2${releases === undefined ? '' : `, which can remove up to ${releases - 2} of its ${releases} releases`}) and deploy again`;
}

/** The hint for a fleet host's full disk met by a deploy (its copy or its lock): prune that host. */
export function hostNoSpaceHint(label: string, root: string): string {
  return `free space on ${label} (for example: atomic-deploy prune ${shellWord(root)} --host ${shellWord(label)} --keep 2) and deploy again`;
}

/** How many releases a root holds: the directories in releases/ (a stage's dot name is none). */
function releaseCount(root: string): number {
  return fs.readdirSync(path.join(root, 'releases'), { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.')).length;
}

/** The system calls that give a file its owner. */
const CHOWN_CALLS = new Set(['chown', 'fchown', 'lchown']);

/**
 * The hint for uid 0 refused a chown: in a user namespace that does not map the owner (EINVAL),
 * or without CAP_CHOWN (EPERM). A deploy as root keeps the build's owners (docs/security.md), so
 * one that cannot is refused rather than going live with other owners. Undefined otherwise.
 */
function ownersRefused(error: unknown, errno: string | undefined): string | undefined {
  if (process.getuid?.() !== 0 || !CHOWN_CALLS.has((error as NodeJS.ErrnoException).syscall ?? '')) return undefined;
  if (errno === 'EINVAL') return "this process is uid 0 in a user namespace (unshare -r, a rootless container) that does not map the build's owners: deploy outside it, or from a build whose files are owned by ids it maps";
  if (errno === 'EPERM' && quietly(hasCapChown, undefined) === false) return 'this process is uid 0 without CAP_CHOWN (a container or setpriv that dropped it): deploy with CAP_CHOWN, or from a build owned by root';
  return undefined;
}

/** Whether this process holds CAP_CHOWN (bit 0 of its effective capabilities), from /proc. */
function hasCapChown(): boolean | undefined {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? (Number.parseInt((m[1] as string).slice(-1), 16) & 1) === 1 : undefined;
}

/** The fewest open files a deploy needs (measured: Node itself, its thread pool, the modules it loads, the copy). */
const MIN_OPEN_FILES = 32;

/**
 * This process's soft limit of open files (`ulimit -n`), from /proc where there is one. Read once,
 * when this module loads: at the limit there is no descriptor left to read it with.
 */
const OPEN_FILE_LIMIT = ((): string | undefined => {
  try {
    return /^Max open files\s+(\d+|unlimited)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
})();

/**
 * A hint built by looking at the disk, or undefined when that look fails too: the hint is for an
 * error being reported, and a second refusal while building it (the path that failed is one this
 * user may not even lstat) must not replace that error with an uncaught one.
 */
function quietly<A, R>(look: (arg: A) => R | undefined, arg: A): R | undefined {
  try {
    return look(arg);
  } catch {
    return undefined;
  }
}

/** System calls that change a directory's entries: they need its owner's write bit as well as search. */
const CHANGES_ENTRIES = new Set(['mkdir', 'rename', 'unlink', 'rmdir', 'symlink', 'link', 'mkdtemp', 'copyfile']);
/** System calls that read a directory's entries: they need its owner's read bit as well as search. */
const READS_ENTRIES = new Set(['scandir', 'opendir']);

/**
 * The owner's bits a directory on the way to a failed call needs (pure): search for every one;
 * write for the one whose entries the call changes (an open that failed on a missing file was
 * creating it); read and search for the one the call lists.
 */
export function ownerBitsNeeded(role: 'above' | 'parent' | 'named', syscall: string | undefined, namedExists: boolean): number {
  if (role === 'above') return 0o100;
  if (role === 'parent') return CHANGES_ENTRIES.has(syscall ?? '') || (syscall === 'open' && !namedExists) ? 0o300 : 0o100;
  return READS_ENTRIES.has(syscall ?? '') ? 0o500 : 0;
}

/**
 * The hint for a directory that is this user's own but whose mode refuses its owner (a root given
 * `chmod -R 644`, its state directory `chmod 000`, a directory made under a umask that took the
 * owner's bits): "run as the user that owns the deploy root" would send them to themselves. The
 * directory is the first on the way to the failing path (from /) that is theirs and lacks a bit
 * the call needed of it; undefined when there is none (another user's directory refused: ownerHint).
 */
function ownModeHint(error: unknown): string | undefined {
  const uid = process.getuid?.();
  const e = error as NodeJS.ErrnoException | undefined;
  const named = e?.path;
  if (uid === undefined || typeof named !== 'string' || !path.isAbsolute(named)) return undefined;
  const chain: string[] = [];
  for (let p = named; ; p = path.dirname(p)) {
    chain.unshift(p);
    if (path.dirname(p) === p) break;
  }
  const seen = chain.map((p) => {
    try {
      return fs.lstatSync(p, { throwIfNoEntry: false });
    } catch {
      // Not visible: a directory above it refused.
      return undefined;
    }
  });
  const namedExists = seen[seen.length - 1] !== undefined;
  for (const [i, p] of chain.entries()) {
    const st = seen[i];
    // Not visible: the directory above refused, and it was not this user's own (or it was said).
    if (st === undefined) return undefined;
    const role = i === chain.length - 1 ? 'named' : i === chain.length - 2 ? 'parent' : 'above';
    const needed = ownerBitsNeeded(role, e?.syscall, namedExists);
    if (!st.isDirectory() || st.uid !== uid || (st.mode & needed) === needed) continue;
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    return `${p} is this user's own, but its mode is ${mode}, which refuses its owner: chmod u+rwx ${shellWord(p)}`;
  }
  return undefined;
}

/**
 * The hint for a root that is this user's while the path that refused them is another user's (a
 * first deploy run as root in a folder that is this user's made the root's state root's): "run as
 * the user that owns the deploy root" would send them to themselves. Undefined otherwise (the
 * path named is this user's, or lies in no root, or the root is another user's: the plain hint).
 */
function ownerHint(error: unknown): string | undefined {
  const uid = process.getuid?.();
  const named = (error as NodeJS.ErrnoException | undefined)?.path;
  if (uid === undefined || typeof named !== 'string') return undefined;
  const root = rootAround(named);
  if (root === undefined || fs.lstatSync(root, { throwIfNoEntry: false })?.uid !== uid) return undefined;
  for (const p of [named, path.dirname(named)]) {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (st === undefined) continue;
    if (st.uid === uid) return undefined;
    const owner = userOf(st.uid);
    const me = userOf(uid);
    return `${root} is ${me}'s, but ${p} in it is ${owner}'s${st.uid === 0 ? ' (made by a command run as root?)' : ''}: run as ${owner}, or give the root's state back to this user (chown -R ${me} ${root})`;
  }
  return undefined;
}

/**
 * The hint for a directory this user may not make because the folder it goes in is another
 * user's (a first deploy into /srv/www/app with /srv/www root's): there is no deploy root yet
 * whose owner "run as the user that owns the deploy root" could name. Undefined otherwise.
 */
function newRootHint(error: unknown): string | undefined {
  const uid = process.getuid?.();
  const e = error as NodeJS.ErrnoException | undefined;
  const named = e?.path;
  if (uid === undefined || e?.syscall !== 'mkdir' || typeof named !== 'string' || !path.isAbsolute(named)) return undefined;
  if (fs.lstatSync(named, { throwIfNoEntry: false }) !== undefined) return undefined;
  const parent = path.dirname(named);
  const st = fs.lstatSync(parent, { throwIfNoEntry: false });
  if (st === undefined || !st.isDirectory() || st.uid === uid) return undefined;
  const owner = userOf(st.uid);
  const me = userOf(uid);
  return `${parent} is ${owner}'s, and ${me} may not create ${path.basename(named)} in it: make the root as ${owner} and give it to ${me} (install -d -o ${me} ${shellWord(named)}), or deploy into a folder ${me} may write`;
}

/** The names a deploy root holds for its own state: a path under one of them lies in that root. */
const ROOT_STATE_NAMES = new Set(['.tmp', 'releases', '.atomic-deploy', '.deploy.lock', 'shared']);

/** The deploy root a path lies in, by the state directory it is under; undefined when it is under none. */
function rootAround(p: string): string | undefined {
  for (let dir = p; path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    if (ROOT_STATE_NAMES.has(path.basename(dir))) return path.dirname(dir);
  }
  return undefined;
}
