/** How a release's files are made: copied, cloned, or hardlinked from the previous release. */

export const STRATEGIES = ['auto', 'copy', 'reflink', 'hardlink'] as const;
export type Strategy = (typeof STRATEGIES)[number];

export function isStrategy(value: unknown): value is Strategy {
  return typeof value === 'string' && (STRATEGIES as readonly string[]).includes(value);
}

/** What copyTree does with the files it copies (hardlink copies the rest like auto). */
export function cloneModeOf(strategy: Strategy): 'auto' | 'always' | 'never' {
  if (strategy === 'reflink') return 'always';
  if (strategy === 'copy') return 'never';
  return 'auto';
}

export interface FileFacts {
  rel: string;
  size: number;
  mtimeMs: number;
  /** Permission bits with setuid/setgid/sticky (`st_mode & 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
}

export interface PreviousFile extends FileFacts {
  /** Only a regular file can be linked; anything else at that path is copied over. */
  regular: boolean;
}

/**
 * Same modification time at millisecond precision. Both sides are rounded: Node's `stat().mtime`
 * rounds to the nearest ms and `utimes` stores it with float error, so a copy made by us may read
 * 0.001 ms early or a whole rounded ms late. Rounding both sides matches either, and a tree copied
 * with full nanoseconds (cp -a, rsync) as well.
 */
export function sameMtime(a: number, b: number): boolean {
  return Math.round(a) === Math.round(b);
}

/**
 * Why a file is never linked, whatever the previous release holds. Group- or world-writable
 * files are the ones a process other than the deploy user (the app, the web server) can change
 * in place, and a change in place reaches every release sharing the inode; setuid/setgid files
 * keep a private inode so that a chmod on one release never widens another.
 */
export function linkGuard(mode: number): string | undefined {
  if (mode & 0o022) return 'writable by group or others';
  if (mode & 0o6000) return 'setuid or setgid';
  return undefined;
}

export type CopyReason = 'new' | 'not a regular file before' | 'size' | 'mtime' | 'content' | 'mode' | 'owner' | 'writable by group or others' | 'setuid or setgid';

/** The metadata test a file must pass before it is linked (or, with checksum, hashed). */
function metadataVerdict(file: FileFacts, before: PreviousFile | undefined, checksum: boolean): CopyReason | undefined {
  const guard = linkGuard(file.mode);
  if (guard) return guard as CopyReason;
  if (!before) return 'new';
  if (!before.regular) return 'not a regular file before';
  if (before.size !== file.size) return 'size';
  // Linking shares one inode: its mode and owner are the previous release's, so they must agree.
  if (before.mode !== file.mode) return 'mode';
  if (before.uid !== file.uid || before.gid !== file.gid) return 'owner';
  if (!checksum && !sameMtime(before.mtimeMs, file.mtimeMs)) return 'mtime';
  return undefined;
}

/** With `checksum`: the files whose contents must be hashed (both sides) before deciding. */
export function filesToHash(files: readonly FileFacts[], previous: ReadonlyMap<string, PreviousFile>): string[] {
  return files.filter((f) => metadataVerdict(f, previous.get(f.rel), true) === undefined).map((f) => f.rel);
}

export interface LinkPlan {
  /** Files linked from the previous release, by relative path. */
  link: string[];
  /** How many files are copied, by the first reason that ruled linking out. */
  copy: Partial<Record<CopyReason, number>>;
}

export interface LinkInput {
  /** Compare contents instead of modification times. */
  checksum: boolean;
  /** With checksum: content hashes of the source files and of the previous release's files. */
  sourceHashes?: ReadonlyMap<string, string>;
  previousHashes?: ReadonlyMap<string, string>;
}

/**
 * Which source files are identical to the previous release's file at the same path: same
 * size, mode, owner and mtime (or same content with `checksum`), and not ruled out by linkGuard.
 */
export function planLinks(files: readonly FileFacts[], previous: ReadonlyMap<string, PreviousFile>, input: LinkInput): LinkPlan {
  const plan: LinkPlan = { link: [], copy: {} };
  for (const file of files) {
    let reason = metadataVerdict(file, previous.get(file.rel), input.checksum);
    if (reason === undefined && input.checksum) {
      const a = input.sourceHashes?.get(file.rel);
      const b = input.previousHashes?.get(file.rel);
      if (a === undefined || b === undefined || a !== b) reason = 'content';
    }
    if (reason === undefined) plan.link.push(file.rel);
    else plan.copy[reason] = (plan.copy[reason] ?? 0) + 1;
  }
  return plan;
}
