/** Is a folder a deploy root: ours, Capistrano's, Deployer's or the bash tool's, decided from its top-level entries. */
import { CONFIG_NAMES } from './config-basics.ts';
import { shellWord } from './paths.ts';

export type EntryType = 'dir' | 'file' | 'symlink' | 'other';

export interface RootEntry {
  name: string;
  type: EntryType;
}

/** Which tool's layout a root has; `layout-only` is a root with nothing but the shared layout's names. */
export type RootTool = 'atomic-deploy' | 'capistrano' | 'deployer' | 'symlink-releases' | 'layout-only';

export type RootShape =
  | { kind: 'missing' }
  | { kind: 'empty' }
  | { kind: 'root'; tool: RootTool }
  | { kind: 'other'; entries: number };

/** Names the release layout uses (ours and the tools that share it); a folder holding only these is a root. */
const LAYOUT_NAMES: ReadonlySet<string> = new Set(['releases', 'current', 'shared', '.tmp', '.deploy.lock', '.atomic-deploy', 'repo', 'revisions.log', '.dep']);

/** A filesystem's own entry: a freshly made ext4 volume mounted as the root holds it and nothing else. */
const IGNORED: ReadonlySet<string> = new Set(['lost+found']);
/**
 * Our own config file, as `init` run in the root writes it (with `root: .`): the folder is still
 * empty, or still a root, for a deploy. Only as a regular file: anything else by that name is not ours.
 */
const OWN_FILES: ReadonlySet<string> = new Set(CONFIG_NAMES);
const ignored = (e: RootEntry): boolean => IGNORED.has(e.name) || (e.type === 'file' && OWN_FILES.has(e.name));

/** `entries` are the folder's top-level entries (undefined: the folder does not exist). */
export function classifyRoot(entries: readonly RootEntry[] | undefined): RootShape {
  if (entries === undefined) return { kind: 'missing' };
  const relevant = entries.filter((e) => !ignored(e));
  if (relevant.length === 0) return { kind: 'empty' };
  const has = (name: string, type: EntryType): boolean => relevant.some((e) => e.name === name && e.type === type);
  if (has('.atomic-deploy', 'dir')) return { kind: 'root', tool: 'atomic-deploy' };
  const onlyLayout = relevant.every((e) => LAYOUT_NAMES.has(e.name));
  if (!has('releases', 'dir')) {
    // A root prepared before its first deploy (shared/.env made by hand), or one whose current is a
    // real directory (the current checks explain that better). Markers without releases/ (a lone
    // .dep/ or repo/) are someone else's folder.
    const named = (name: string): boolean => relevant.some((e) => e.name === name);
    const prepared = onlyLayout && !named('releases') && ['current', 'shared', '.tmp', '.deploy.lock'].some(named);
    return prepared ? { kind: 'root', tool: 'layout-only' } : { kind: 'other', entries: relevant.length };
  }
  if (has('.dep', 'dir')) return { kind: 'root', tool: 'deployer' };
  if (has('revisions.log', 'file') || has('repo', 'dir')) return { kind: 'root', tool: 'capistrano' };
  if (has('current', 'symlink') || has('.deploy.lock', 'dir')) return { kind: 'root', tool: 'symlink-releases' };
  if (onlyLayout) return { kind: 'root', tool: 'layout-only' };
  return { kind: 'other', entries: relevant.length };
}

/** Whether a deploy may write its layout into a folder of this shape without being told to adopt it. */
export function deployTargetProblem(shape: RootShape): string | undefined {
  if (shape.kind === 'other') return `is not empty and not a deploy root (${shape.entries} ${shape.entries === 1 ? 'entry' : 'entries'}, no releases/ with current)`;
  return undefined;
}

/** The hint of a deploy refused by deployTargetProblem. */
export const ADOPT_HINT = 'check the path; to make this folder a deploy root anyway (its files stay, current and releases/ are added), add --adopt';

/**
 * The hint of a command refused by readRootProblem; `deployTo` is the root as a deploy's
 * arguments would name it (a shell word, and a fleet host's `--host`).
 */
export function readRootHint(shape: RootShape, deployTo: string): string {
  // A folder with files in it takes a deploy only with --adopt. Said, not handed over as a
  // command: for a mistyped path (`status /`, `verify /etc`, the build directory) a ready-made
  // `deploy <source> / --adopt` is the last thing to offer.
  return shape.kind === 'other'
    ? 'check the path: it holds files but no current, releases/ or .atomic-deploy/; a folder with files becomes a deploy root only by a deploy with --adopt'
    : `check the path; to make it a deploy root, deploy to it: atomic-deploy deploy <source> ${deployTo}`;
}

/** Why a command that reads a root cannot use a folder of this shape; undefined for a root. */
export function readRootProblem(shape: RootShape): string | undefined {
  if (shape.kind === 'root') return undefined;
  if (shape.kind === 'missing') return 'does not exist';
  if (shape.kind === 'empty') return 'is empty, not a deploy root';
  return 'is not a deploy root (no releases/ with current)';
}

/**
 * The hint for a `current` that is a real directory or a regular file. A directory cannot become
 * a symlink by one rename(2), so the hint offers no command that would leave a gap unannounced:
 * the README's FAQ gives the gap-free way (a new root) and the in-place one (a quiet moment).
 */
export function currentNotSymlinkHint(kind: 'directory' | 'file', current = 'current'): string {
  return kind === 'directory'
    ? 'rename(2) cannot turn a directory into a symlink without a gap: deploy into a new root and point the server at its current, or move it into releases/ at a quiet moment (README, FAQ: "My server serves a real directory current")'
    : `a regular file is not a release: move it aside (mv ${shellWord(current)} ${shellWord(`${current}.old`)}) and deploy again`;
}

/** The directories a deploy makes inside a root (either engine), children before their parents. */
export const ROOT_SKELETON = ['releases', '.atomic-deploy/releases', '.atomic-deploy/manifests', '.atomic-deploy', '.tmp'] as const;

/**
 * What a failed deploy takes away from a root it made itself: the skeleton, the root, then the
 * parents it made (nearest first), each only while empty. `made` lists the directories its lock
 * program made, topmost first; a root it did not make keeps everything.
 */
export function madeDirsToRemove(root: string, made: readonly string[]): string[] {
  if (!made.includes(root)) return [];
  const parents = [...new Set(made)].filter((dir) => dir !== root && root.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
  return [...ROOT_SKELETON.map((name) => `${root}/${name}`), root, ...parents];
}
