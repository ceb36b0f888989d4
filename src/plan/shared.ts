/** Shared paths: which links a release gets into `<root>/shared/`, decided from the source listing alone. */
import { sharedPathProblem } from './paths.ts';

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
  const plan: SharedPlan = { links: [], exclude: [], problems: [] };
  const kinds = new Map(entries.map((e) => [e.rel, e.kind]));
  const seen: string[] = [];
  for (const spec of specs) {
    const p = typeof spec === 'string' ? spec : spec.path;
    const declared = typeof spec === 'string' ? undefined : spec.type;
    const problem = sharedPathProblem(p);
    if (problem) {
      plan.problems.push(`shared path ${JSON.stringify(p)}: ${problem}`);
      continue;
    }
    const overlap = seen.find((q) => isUnder(p, q) || isUnder(q, p));
    if (overlap !== undefined) {
      plan.problems.push(overlap === p ? `shared path ${JSON.stringify(p)} is given twice` : `shared paths ${JSON.stringify(overlap)} and ${JSON.stringify(p)} overlap`);
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
      plan.problems.push(`shared path ${JSON.stringify(p)}: ${blocked}`);
      continue;
    }
    const held = kinds.has(p);
    if (held && !options.replace) {
      plan.problems.push(`the source already holds ${JSON.stringify(p)}, which is a shared path`);
      continue;
    }
    if (held) plan.exclude.push(p);
    const heldKind = kinds.get(p);
    const type = declared ?? (heldKind === 'dir' ? 'dir' : heldKind === 'file' ? 'file' : undefined);
    plan.links.push({ path: p, ...(type ? { type } : {}), linkText: sharedLinkText(p), mkdirs, replaces: held });
  }
  return plan;
}

/** The listing without the excluded paths and everything below them. */
export function withoutPaths<T extends ListedEntry>(entries: readonly T[], exclude: readonly string[]): T[] {
  if (exclude.length === 0) return [...entries];
  return entries.filter((e) => !exclude.some((p) => isUnder(e.rel, p)));
}

/** What `<root>/shared/<path>` is now (links followed). */
export type SharedTargetKind = 'file' | 'dir' | 'other' | 'missing';

export type SharedTargetAction = { kind: 'ok' } | { kind: 'missing' } | { kind: 'create'; type: SharedType } | { kind: 'problem'; problem: string };

const KIND_NAME: Record<SharedTargetKind, string> = { file: 'a file', dir: 'a directory', other: 'a special file', missing: 'missing' };

/**
 * What a deploy does about one shared target: use it, report it missing, create it empty as a
 * file or a directory (`create`), or refuse: a type that contradicts what exists, or nothing
 * anywhere to tell a file from a directory (an empty directory named .env breaks every app).
 */
export function sharedTargetAction(link: Pick<SharedLink, 'path' | 'type'>, target: SharedTargetKind, create: boolean): SharedTargetAction {
  if (target === 'missing') {
    if (!create) return { kind: 'missing' };
    if (link.type === undefined) {
      return { kind: 'problem', problem: `cannot tell whether shared path ${JSON.stringify(link.path)} is a file or a directory: nothing is at shared/${link.path} and the build does not hold it` };
    }
    return { kind: 'create', type: link.type };
  }
  if (link.type !== undefined && target !== link.type) {
    return { kind: 'problem', problem: `shared/${link.path} is ${KIND_NAME[target]}, but it is declared ${KIND_NAME[link.type]}` };
  }
  return { kind: 'ok' };
}
