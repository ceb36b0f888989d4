/**
 * Where a fleet host keeps a deploy's stage and a removed release's trash: in `.tmp/`, or, when the
 * host found `releases/` on another mount (`staging_facts` in remote/script.ts), inside `releases/`
 * under hidden names, as the local engine does (act/staging.ts). A hidden name alone says where it
 * lives, so every program on the host (`area` in remote/script.ts) and rsync's path agree.
 */
import { isReleasesLeftover } from '../plan/journal.ts';
import { randomName } from './host.ts';
import type { RemoteState } from './facts.ts';
import { inTmp, type RootPath } from '../root/effects.ts';

/** A fresh stage (`kind` 'stage') or trash name for this host's root. */
export function stagingName(state: Pick<RemoteState, 'stagingInReleases'>, kind: 'stage' | 'trash'): string {
  return `${state.stagingInReleases === true ? '.' : ''}${randomName(kind)}`;
}

/** The absolute path of a stage or trash name on the host: `releases/.<name>` or `.tmp/<name>`. */
export function stagedPath(root: string, name: string): string {
  return `${root}/${stagedRootPath(name)}`;
}

/** The same, relative to the root, as the root programs (src/root) name paths. */
export function stagedRootPath(name: string): RootPath {
  return isReleasesLeftover(name) ? `releases/${name}` : inTmp(name);
}
