/** Shared paths: which links a release gets into `<root>/shared/`, decided from the source listing alone. */
import { sharedPathProblem, shellWord } from './paths.ts';

export interface ListedEntry {
  rel: string;
  kind: 'dir' | 'file' | 'symlink';
}

/** What a shared path is: Capistrano's linked_files and linked_dirs. */
export type SharedType = 'file' | 'dir';

/** A shared path as given: `type` from --shared-file / --shared-dir, none for --shared (inferred). */
export interface SharedSpec {
  path: string;
  type?: SharedType;
}

export interface SharedLink {
  /** The path inside the release, e.g. `storage/logs`. */
  path: string;
  /** Declared, or what the source held at this path; undefined when neither says. */
  type?: SharedType;
  /** `type` is what the source held, not what was declared. */
  typeFromBuild?: true;
  /** What the symlink holds: relative, so the root can move and readers inside a chroot still resolve it. */
  linkText: string;
  /** Parent directories the source lacks, outermost first; made in the release before linking. */
  mkdirs: string[];
  /** The source held this path and it is left out of the copy (with `replace`). */
  replaces: boolean;
}

export interface SharedPlan {
  links: SharedLink[];
  /** Paths left out of the copy: each with everything below it. */
  exclude: string[];
  problems: string[];
  /** What to do about the problems, one line each, in the order first met. */
  hints: string[];
}

/** The specs of the three flags: --shared (type from what exists), --shared-file, --shared-dir. */
export function sharedSpecs(options: { shared?: readonly string[]; sharedFiles?: readonly string[]; sharedDirs?: readonly string[] }): SharedSpec[] {
  return [
    ...(options.shared ?? []).map((p) => ({ path: p })),
    ...(options.sharedFiles ?? []).map((p) => ({ path: p, type: 'file' as const })),
    ...(options.sharedDirs ?? []).map((p) => ({ path: p, type: 'dir' as const })),
  ];
}

function flagOf(type: SharedType | undefined): string {
  return type === 'file' ? '--shared-file' : type === 'dir' ? '--shared-dir' : '--shared';
}

/** The hint for a path sharedPathProblem refuses: a trailing slash is the common slip, and names its fix. */
function pathHint(p: string, type: SharedType | undefined): string {
  const trimmed = p.replace(/\/+$/, '');
  if (trimmed !== p && trimmed !== '' && sharedPathProblem(trimmed) === undefined) {
    return `write it without the trailing slash: ${flagOf(type)} ${trimmed}${type === undefined ? ` (--shared-dir ${trimmed} says it is a directory)` : ''}`;
  }
  return 'give paths relative to the release, without "..", e.g. --shared-file .env --shared-dir storage';
}

/**
 * The link text for `releases/<id>/<p>` → `shared/<p>`. The staging copy lives at
 * `.tmp/stage.*`, also two levels below the root, so the same text resolves there too.
 */
export function sharedLinkText(p: string): string {
  const depth = p.split('/').length;
  return `${'../'.repeat(depth + 1)}shared/${p}`;
}

function isUnder(rel: string, p: string): boolean {
  return rel === p || rel.startsWith(`${p}/`);
}

/** Decides every shared link; `problems` lists each path that cannot be linked and why. */
export function planShared(specs: readonly (string | SharedSpec)[], entries: readonly ListedEntry[], options: { replace?: boolean } = {}): SharedPlan {
  const plan: SharedPlan = { links: [], exclude: [], problems: [], hints: [] };
  const refuse = (problem: string, hint: string): void => {
    plan.problems.push(problem);
    if (!plan.hints.includes(hint)) plan.hints.push(hint);
  };
  const kinds = new Map(entries.map((e) => [e.rel, e.kind]));
  const seen: string[] = [];
  for (const spec of specs) {
    const p = typeof spec === 'string' ? spec : spec.path;
    const declared = typeof spec === 'string' ? undefined : spec.type;
    const problem = sharedPathProblem(p);
    if (problem) {
      refuse(`shared path ${JSON.stringify(p)}: ${problem}`, pathHint(p, declared));
      continue;
    }
    const overlap = seen.find((q) => isUnder(p, q) || isUnder(q, p));
    if (overlap !== undefined) {
      refuse(
        overlap === p ? `shared path ${JSON.stringify(p)} is given twice` : `shared paths ${JSON.stringify(overlap)} and ${JSON.stringify(p)} overlap`,
        'give each shared path once, and none inside another: sharing a directory shares what is below it',
      );
      continue;
    }
    seen.push(p);
    const parts = p.split('/');
    const mkdirs: string[] = [];
    let blocked: string | undefined;
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const kind = kinds.get(parent);
      if (kind === undefined) mkdirs.push(parent);
      // A link through a symlinked parent could land outside the release.
      else if (kind !== 'dir') blocked = `the source holds ${JSON.stringify(parent)} as a ${kind === 'file' ? 'file' : 'symlink'}, not a directory`;
      if (blocked) break;
    }
    if (blocked) {
      refuse(`shared path ${JSON.stringify(p)}: ${blocked}`, 'a shared path is placed under real directories of the build: make that parent a directory in the build, or share the parent itself');
      continue;
    }
    const held = kinds.has(p);
    if (held && !options.replace) {
      refuse(`the source already holds ${JSON.stringify(p)}, which is a shared path`, 'remove it from the build, or pass --shared-replace to link the shared one in its place');
      continue;
    }
    if (held) plan.exclude.push(p);
    const heldKind = kinds.get(p);
    const type = declared ?? (heldKind === 'dir' ? 'dir' : heldKind === 'file' ? 'file' : undefined);
    plan.links.push({ path: p, ...(type ? { type } : {}), ...(declared === undefined && type ? { typeFromBuild: true as const } : {}), linkText: sharedLinkText(p), mkdirs, replaces: held });
  }
  return plan;
}

/** The listing without the excluded paths and everything below them. */
export function withoutPaths<T extends ListedEntry>(entries: readonly T[], exclude: readonly string[]): T[] {
  if (exclude.length === 0) return [...entries];
  return entries.filter((e) => !exclude.some((p) => isUnder(e.rel, p)));
}

/**
 * What `<root>/shared/<path>` is now (links followed). `dangling`: the path, or a part of it
 * (shared/ included), is a symlink to nothing (a volume not mounted, a secret not yet written);
 * `blocked`: a part of it (shared/ included) is not a directory. Neither can be linked to or made, with `--shared-create` or without.
 */
export type SharedTargetKind = 'file' | 'dir' | 'other' | 'missing' | 'dangling' | 'blocked';

/** The paths a shared target is reached through, under shared/, and itself: `a/b` gives `a`, `a/b`. */
export function sharedPathSteps(p: string): string[] {
  const parts = p.split('/');
  return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
}

export type SharedTargetAction = { kind: 'ok' } | { kind: 'missing' } | { kind: 'create'; type: SharedType } | { kind: 'problem'; problem: string; hint: string };

/** A folder's owner as the machine that holds it names them: a name, a uid without one, or neither (a host without `stat`). */
export interface FolderOwner {
  uid?: number;
  name?: string;
}

/**
 * `--shared-create` refused: the folder `shared/<p>` would be made in (or the nearest one on the way
 * that exists) is another user's and this user may not write in it (a shared/ the web server's user
 * made). The words of the local engine and of every fleet host, with the command that makes it as
 * its owner; `full` is `<root>/shared/<p>` on the machine that holds it.
 */
export function sharedCreateDenied(p: string, type: SharedType, at: { full: string; dir: string; owner: FolderOwner; user: string }): { problem: string; hint: string } {
  const { uid, name } = at.owner;
  const owner = name ?? (uid === undefined ? undefined : `uid ${uid}`);
  // sudo takes a uid as `#N`.
  const sudoUser = name !== undefined ? shellWord(name) : uid !== undefined ? shellWord(`#${uid}`) : '<its owner>';
  return {
    problem: `cannot create shared/${p}: ${at.dir} is ${owner === undefined ? "another user's" : `${owner}'s`}, and this user (${at.user}) may not write in it`,
    hint: `make it as ${owner ?? 'its owner'} (sudo -u ${sudoUser} ${type === 'dir' ? 'mkdir -p' : 'touch'} ${shellWord(at.full)}), then deploy again without --shared-create for it`,
  };
}

/** The hint for a shared path whose type nothing tells. */
export const SHARED_TYPE_HINT = 'say which it is: --shared-file <path> (e.g. .env) or --shared-dir <path> (e.g. storage), or sharedFiles: / sharedDirs: in the config file';

const KIND_NAME: Record<SharedTargetKind, string> = { file: 'a file', dir: 'a directory', other: 'a special file', missing: 'missing', dangling: 'a symlink to nothing', blocked: 'unreachable' };

/** What to do about shared targets that are missing, locally and on a fleet's hosts. */
export const SHARED_MISSING_HINT = 'create them (a file such as .env must hold its content), or pass --shared-create to make missing ones empty (a path the build does not hold needs its type: --shared-file or --shared-dir, config sharedFiles or sharedDirs)';

/**
 * What a deploy does about one shared target: use it, report it missing, create it empty as a
 * file or a directory (`create`), or refuse: a type that contradicts what exists, or nothing
 * anywhere to tell a file from a directory (an empty directory named .env breaks every app).
 */
export function sharedTargetAction(link: Pick<SharedLink, 'path' | 'type' | 'typeFromBuild'>, target: SharedTargetKind, create: boolean): SharedTargetAction {
  const p = link.path;
  // Before `missing`: creating through a dangling link fails half way (mkdir: EEXIST), or writes
  // wherever the link points; the link may also be a volume that is not mounted yet.
  if (target === 'dangling') {
    return { kind: 'problem', problem: `shared/${p} leads through a symlink to a path that does not exist`, hint: `make what the link points to (a volume that is not mounted?), or remove the link and deploy again${create ? '' : ' with --shared-create'}` };
  }
  if (target === 'blocked') {
    return { kind: 'problem', problem: `shared/${p} cannot exist: shared/ or a part of the path under it is not a directory`, hint: 'move that file aside, or change the shared path' };
  }
  if (target === 'missing') {
    if (!create) return { kind: 'missing' };
    if (link.type === undefined) {
      return { kind: 'problem', problem: `cannot tell whether shared path ${JSON.stringify(p)} is a file or a directory: nothing is at shared/${p} and the build does not hold it`, hint: SHARED_TYPE_HINT };
    }
    return { kind: 'create', type: link.type };
  }
  if (link.type === undefined || target === link.type) return { kind: 'ok' };
  const wanted = KIND_NAME[link.type];
  if (target === 'other') {
    return { kind: 'problem', problem: `shared/${p} is ${KIND_NAME[target]}, but it is ${link.typeFromBuild ? `${wanted} in the build` : `declared ${wanted}`}`, hint: `replace shared/${p} with ${wanted}` };
  }
  const flag = target === 'file' ? '--shared-file' : '--shared-dir';
  const key = target === 'file' ? 'sharedFiles:' : 'sharedDirs:';
  if (link.typeFromBuild) {
    return {
      kind: 'problem',
      problem: `shared/${p} is ${KIND_NAME[target]}, but the build holds ${JSON.stringify(p)} as ${wanted}`,
      hint: `make them agree: change the build, or move shared/${p} aside (mv ${shellWord(`shared/${p}`)} ${shellWord(`shared/${p}.old`)}) and deploy again with --shared-create to start ${wanted}`,
    };
  }
  return {
    kind: 'problem',
    problem: `shared/${p} is ${KIND_NAME[target]}, but it is declared ${wanted}`,
    hint: `to link the ${target === 'file' ? 'file' : 'directory'} that is there, declare it with ${flag} ${p} (${key} in the config file); to start ${wanted}, move shared/${p} aside (mv ${shellWord(`shared/${p}`)} ${shellWord(`shared/${p}.old`)}) and deploy again with --shared-create`,
  };
}
