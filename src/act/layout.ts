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

export function layoutOf(root: string): Layout {
  const abs = path.resolve(root);
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
