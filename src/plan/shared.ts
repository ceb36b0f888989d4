/** Shared paths: which links a release gets into `<root>/shared/`, decided from the source listing alone. */
import { sharedPathProblem } from './paths.ts';

export interface ListedEntry {
  rel: string;
  kind: 'dir' | 'file' | 'symlink';
}

export interface SharedLink {
  /** The path inside the release, e.g. `storage/logs`. */
  path: string;
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
export function planShared(paths: readonly string[], entries: readonly ListedEntry[], options: { replace?: boolean } = {}): SharedPlan {
  const plan: SharedPlan = { links: [], exclude: [], problems: [] };
  const kinds = new Map(entries.map((e) => [e.rel, e.kind]));
  const seen: string[] = [];
  for (const p of paths) {
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
    plan.links.push({ path: p, linkText: sharedLinkText(p), mkdirs, replaces: held });
  }
  return plan;
}

/** The listing without the excluded paths and everything below them. */
export function withoutPaths<T extends ListedEntry>(entries: readonly T[], exclude: readonly string[]): T[] {
  if (exclude.length === 0) return [...entries];
  return entries.filter((e) => !exclude.some((p) => isUnder(e.rel, p)));
}
