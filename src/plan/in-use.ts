/** Which releases running processes still use, from what /proc says about each process. */
import { isWithin } from './paths.ts';

export type UseKind = 'cwd' | 'root' | 'fd' | 'map';

/** One path a process holds: its working directory, root, an open file or a mapped file. */
export interface ProcessUse {
  pid: number;
  command: string;
  kind: UseKind;
  path: string;
}

/** The kernel appends this to the link of a file that was unlinked while open. */
const DELETED_SUFFIX = ' (deleted)';

/** Groups uses by the release they fall under; `releases` maps id → real path of the release dir. */
export function releasesInUse(uses: readonly ProcessUse[], releases: ReadonlyMap<string, string>): Map<string, ProcessUse[]> {
  const found = new Map<string, ProcessUse[]>();
  for (const use of uses) {
    const p = use.path.endsWith(DELETED_SUFFIX) ? use.path.slice(0, -DELETED_SUFFIX.length) : use.path;
    if (!p.startsWith('/')) continue;
    for (const [id, dir] of releases) {
      if (!isWithin(p, dir)) continue;
      const list = found.get(id) ?? [];
      list.push(use);
      found.set(id, list);
    }
  }
  return found;
}

const KIND_WORDS: Record<UseKind, string> = { cwd: 'working directory', root: 'root directory', fd: 'open file', map: 'mapped file' };

/** "pid 4242 (sleep: working directory), pid 17 (node: 3 open files)"; at most `limit` processes named. */
export function describeUses(uses: readonly ProcessUse[], limit = 3): string {
  const byPid = new Map<number, ProcessUse[]>();
  for (const use of uses) byPid.set(use.pid, [...(byPid.get(use.pid) ?? []), use]);
  const parts: string[] = [];
  for (const [pid, list] of [...byPid].sort((a, b) => a[0] - b[0]).slice(0, limit)) {
    const kinds: string[] = [];
    for (const kind of ['cwd', 'root', 'fd', 'map'] as const) {
      const n = list.filter((u) => u.kind === kind).length;
      if (n === 1) kinds.push(KIND_WORDS[kind]);
      else if (n > 1) kinds.push(`${n} ${KIND_WORDS[kind]}s`);
    }
    parts.push(`pid ${pid} (${list[0]?.command ?? '?'}: ${kinds.join(', ')})`);
  }
  const more = byPid.size - parts.length;
  return parts.join(', ') + (more > 0 ? ` and ${more} more process${more === 1 ? '' : 'es'}` : '');
}
