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
  /** Permission bits with setuid/setgid/sticky (`st_mode & 0o7777`). */
  mode: number;
  uid: number;
  gid: number;
}

export interface PreviousFile extends FileFacts {
  /** Only a regular file can be linked; anything else at that path is copied over. */
  regular: boolean;
  /** For the stat cache: a file unchanged since its release was made keeps both. */
  ino: number;
  ctimeMs: number;
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

export type CopyReason = 'new' | 'not a regular file before' | 'size' | 'content' | 'mode' | 'owner' | 'writable by group or others' | 'setuid or setgid';

/** Who owns a file the deploy copies when that is not the build's owner (a deploy not run as root). */
export interface CopyOwner {
  uid: number;
  gid: number;
}

/**
 * The metadata test a file must pass before its content is compared. Never mtime: builds fix it.
 * `owner`: not root, a copy belongs to the deploying user whatever the build's owner, so a linked
 * file must have the owner a copy would get (comparing the build's would link nothing).
 */
function metadataVerdict(file: FileFacts, before: PreviousFile | undefined, owner?: CopyOwner): CopyReason | undefined {
  const guard = linkGuard(file.mode);
  if (guard) return guard as CopyReason;
  if (!before) return 'new';
  if (!before.regular) return 'not a regular file before';
  if (before.size !== file.size) return 'size';
  // Linking shares one inode: its mode and owner are the previous release's, so they must agree.
  if (before.mode !== file.mode) return 'mode';
  const want = owner ?? file;
  if (before.uid !== want.uid || before.gid !== want.gid) return 'owner';
  return undefined;
}

/** The files whose contents must be known (both sides) before deciding: the rest are copied anyway. */
export function filesToHash(files: readonly FileFacts[], previous: ReadonlyMap<string, PreviousFile>, owner?: CopyOwner): string[] {
  return files.filter((f) => metadataVerdict(f, previous.get(f.rel), owner) === undefined).map((f) => f.rel);
}

export interface LinkPlan {
  /** Files linked from the previous release, by relative path. */
  link: string[];
  /** How many files are copied, by the first reason that ruled linking out. */
  copy: Partial<Record<CopyReason, number>>;
}

export interface LinkInput {
  /** SHA-256 of the build's files and of the previous release's files (as they are now). */
  sourceHashes: ReadonlyMap<string, string>;
  previousHashes: ReadonlyMap<string, string>;
  /** The owner copies get when it is not the build's (see metadataVerdict). */
  owner?: CopyOwner;
}

/**
 * Which build files are byte-for-byte the previous release's file at the same path (same
 * SHA-256 of both as they are now), with the same size, mode and owner, and not ruled out by
 * linkGuard. Modification times play no part: a build with fixed mtimes deploys exactly.
 */
export function planLinks(files: readonly FileFacts[], previous: ReadonlyMap<string, PreviousFile>, input: LinkInput): LinkPlan {
  const plan: LinkPlan = { link: [], copy: {} };
  for (const file of files) {
    let reason = metadataVerdict(file, previous.get(file.rel), input.owner);
    if (reason === undefined) {
      const a = input.sourceHashes.get(file.rel);
      const b = input.previousHashes.get(file.rel);
      if (a === undefined || b === undefined || a !== b) reason = 'content';
    }
    if (reason === undefined) plan.link.push(file.rel);
    else plan.copy[reason] = (plan.copy[reason] ?? 0) + 1;
  }
  return plan;
}
