import fs from 'node:fs';
import path from 'node:path';

/** Every path of a deploy root, named once. */
export interface Layout {
  root: string;
  current: string;
  releases: string;
  shared: string;
  /** Temp links, staging copies and trash: same filesystem as `current`, so rename is atomic. */
  tmp: string;
  lock: string;
  /** Internal state (journal, release log), outside anything a web server serves. */
  state: string;
  journal: string;
  log: string;
}

/**
 * `p` made absolute with each `..` taken as the kernel takes it: after a symbolic link, the parent
 * of the link's target (`srv/app/../build` with `srv/app -> ../data/app` is `data/build`, as ls,
 * cp and nginx read it), never by cutting text as path.resolve does, which named another folder.
 * Only a path with `..` in it is touched: up to its last `..` it must exist (as the kernel needs),
 * and it comes back through realpath(3); the rest may not exist yet. Otherwise path.resolve's.
 */
export function kernelPath(p: string): string {
  const parts = p.split('/');
  const last = parts.lastIndexOf('..');
  if (last < 0) return path.resolve(p);
  let head: string;
  try {
    // realpath(3) itself, on the text as given: fs.realpathSync normalizes it first.
    head = fs.realpathSync.native(parts.slice(0, last + 1).join('/') || '/');
  } catch {
    // Missing or unreadable: the command's own checks say so, on the path as written.
    return path.resolve(p);
  }
  return path.join(head, ...parts.slice(last + 1));
}

export function layoutOf(root: string): Layout {
  const abs = kernelPath(root);
  const state = path.join(abs, '.atomic-deploy');
  return {
    root: abs,
    current: path.join(abs, 'current'),
    releases: path.join(abs, 'releases'),
    shared: path.join(abs, 'shared'),
    tmp: path.join(abs, '.tmp'),
    lock: path.join(abs, '.deploy.lock'),
    state,
    journal: path.join(state, 'journal.json'),
    log: path.join(state, 'releases'),
  };
}

export function releasePath(layout: Layout, id: string): string {
  return path.join(layout.releases, id);
}
