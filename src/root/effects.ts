/**
 * The vocabulary of root effects: every step that changes a deploy root, as plain data. A program
 * is written once and run two ways: against this machine's filesystem (fs.ts) or rendered to
 * POSIX sh for a host (sh.ts), so the local engine and the fleet cannot drift apart.
 *
 * Paths are relative to the root ('.' is the root itself). A program ends with one of its named
 * outcomes: where an `end` says, or with `done` when it runs off its last step.
 *
 * A program may declare parameters `P`: texts bound when it runs, not when it is built (a record
 * whose times and health only the fleet knows once a host has switched). Each interpreter demands
 * exactly those: runOnFs takes `args`, a rendered function takes them as positional parameters.
 */

import { DeployError, type ErrorCode } from '../errors.ts';

export type RootPath = string;

/** How a lock is recognised: by its owner token, or (no owner of ours) by its directory's inode and mtime. */
export type LockIdentity = { token: string } | { inode: string; mtimeS: number };

/** A text given when the program runs: the value bound to parameter `arg`. */
export interface Arg<P extends string> {
  arg: P;
}

/** A text fixed when the program is built, or (for a program with parameters) one bound when it runs. */
export type Text<P extends string> = string | Arg<P>;

export type Effect<P extends string = never> =
  /** `reachable`: a directory releases are reached through; it and the parents it makes are 0755 whatever the umask. */
  | { do: 'mkdir'; path: RootPath; parents?: true; reachable?: true }
  /**
   * rename(2) onto exactly `to`: fails if `to` is a non-empty directory, never moves into it.
   * `readOnlyDir`: `from` may be a directory its owner may not write (a 0555 build, a Nix output);
   * moving a directory to another parent rewrites its `..`, which needs write permission on it, so
   * its owner lends it u+w for the move and takes it back after (root needs neither).
   */
  | { do: 'rename'; from: RootPath; to: RootPath; readOnlyDir?: true }
  /** A directory gets read and search for everyone (chmod a+rx), its other bits kept: see plan/manifest.ts releaseDirMode. */
  | { do: 'open-dir'; path: RootPath }
  /** rm -rf; a missing path is fine. */
  | { do: 'remove'; path: RootPath }
  /** Its mtime becomes now. */
  | { do: 'touch'; path: RootPath }
  /** The directory's entries reach the disk (fsync of the directory, or syncfs). */
  | { do: 'durable'; path: RootPath }
  /** Entries of `dir` whose names start with one of `prefixes` and whose mtime is older than `olderThanS`. */
  | { do: 'sweep'; dir: RootPath; prefixes: readonly string[]; olderThanS: number }
  /** `text` and a newline replace the file whole, by one rename of a temp file; its directory is made if missing. */
  | { do: 'write'; path: RootPath; text: Text<P> }
  /** The file `from` replaces `to` whole, by one rename of a copy made next to it; `to`'s directory is made if missing. */
  | { do: 'copy'; from: RootPath; to: RootPath }
  /**
   * `current` points at `releases/<to>` by one rename(2) of a fresh link made under `.tmp/<via>`,
   * or (to null) is moved to `.tmp/<via>` and deleted: the root had no release before.
   */
  | { do: 'switch'; to: string | null; via: string };

export type Cond =
  | { is: 'same-lock'; path: RootPath; lock: LockIdentity }
  /** A directory with no entries whose mtime is less than `graceS` old. */
  | { is: 'fresh-empty-dir'; path: RootPath; graceS: number }
  /** A directory, not a symlink to one. */
  | { is: 'dir'; path: RootPath }
  /** `current` names `releases/<id>`. */
  | { is: 'current'; id: string };

export type Op<O extends string, P extends string = never> =
  /**
   * An effect. If it fails: `orElse` runs (the fs interpreter sends only the expected losing
   * errors there, ENOENT, EEXIST, ENOTEMPTY..., and throws others), or with `bestEffort` the
   * failure is ignored, or else the program fails.
   */
  | { effect: Effect<P>; orElse?: readonly Op<O, P>[]; bestEffort?: true }
  | { if: Cond; then: readonly Op<O, P>[]; else?: readonly Op<O, P>[] }
  /** The program stops with this error (a refusal: nothing after it runs). */
  | { fail: ErrorCode; message: string }
  | { end: O };

interface ProgramBody<O extends string, P extends string> {
  /** A shell function name, and the program's name in error messages. */
  name: string;
  ops: readonly Op<O, P>[];
  /** The outcome when the last step has run. */
  done: O;
}

/** A program; one with parameters names them in `params`, in the order of the rendered function's positional parameters. */
export type RootProgram<O extends string, P extends string = never> = ProgramBody<O, P> & ([P] extends [never] ? { params?: readonly [] } : { params: readonly P[] });

/** The values a program's parameters are bound to when it runs. */
export type ArgsOf<P extends string> = Readonly<Record<P, string>>;

/** The text an effect writes, its parameter bound from `args` (the types make a missing value unreachable; it is refused all the same). */
export function textOf<P extends string>(text: Text<P>, args: ArgsOf<P> | undefined): string {
  if (typeof text === 'string') return text;
  const value = args?.[text.arg];
  if (value === undefined) throw new DeployError('INTERNAL', `a root program ran without its argument ${text.arg}`);
  return value;
}

/** Root-relative path of a name in `.tmp/`. */
export function inTmp(name: string): RootPath {
  return `.tmp/${name}`;
}

/** Every effect a program may perform, on any branch (for checks of what a program may touch). */
export function effectsOf<O extends string, P extends string = never>(ops: readonly Op<O, P>[]): Effect<P>[] {
  return ops.flatMap((op) => ('end' in op || 'fail' in op ? [] : 'if' in op ? [...effectsOf(op.then), ...effectsOf(op.else ?? [])] : [op.effect, ...effectsOf(op.orElse ?? [])]));
}

/** The root-relative paths an effect changes. */
export function pathsTouched<P extends string>(effect: Effect<P>): RootPath[] {
  switch (effect.do) {
    case 'rename':
      return [effect.from, effect.to];
    case 'copy':
      return [effect.to];
    case 'sweep':
      return [effect.dir];
    case 'switch':
      return ['current', inTmp(effect.via)];
    default:
      return [effect.path];
  }
}
