import fs from 'node:fs';
import path from 'node:path';
import type { ProcessUse } from '../plan/in-use.ts';
import { isWithin } from '../plan/paths.ts';

export interface InUseScan {
  /** False where there is no /proc to read (macOS, BSD): nothing could be checked. */
  supported: boolean;
  uses: ProcessUse[];
  /** Processes looked at, and how many of them we were not allowed to inspect (other users'). */
  processes: number;
  unreadable: number;
}

function readlink(file: string): string | undefined {
  try {
    return fs.readlinkSync(file);
  } catch {
    return undefined;
  }
}

/**
 * Every cwd, root, open file and mapped file of every process that lies under `under` (a real
 * path), from /proc. Whatever cannot be read (other users' processes, processes that just
 * exited) is skipped silently: this is a safety net, not a guarantee.
 */
export function scanProcessUses(under: string): InUseScan {
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name));
    // An empty or foreign /proc (no procfs mounted) would look like a system with no processes.
    if (!fs.existsSync('/proc/self/stat')) throw new Error('no procfs');
  } catch {
    return { supported: false, uses: [], processes: 0, unreadable: 0 };
  }
  const scan: InUseScan = { supported: true, uses: [], processes: 0, unreadable: 0 };
  for (const name of pids) {
    const pid = Number(name);
    // Our own descriptors are the ones prune itself opens.
    if (pid === process.pid) continue;
    scan.processes += 1;
    const dir = `/proc/${name}`;
    let command = '?';
    try {
      command = fs.readFileSync(`${dir}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    const found: ProcessUse[] = [];
    const add = (kind: ProcessUse['kind'], p: string | undefined): void => {
      if (p !== undefined && p.startsWith('/') && isWithin(p.replace(/ \(deleted\)$/, ''), under)) found.push({ pid, command, kind, path: p });
    };
    const cwd = readlink(`${dir}/cwd`);
    const root = readlink(`${dir}/root`);
    if (cwd === undefined && root === undefined) {
      scan.unreadable += 1;
      continue;
    }
    add('cwd', cwd);
    if (root !== '/') add('root', root);
    try {
      for (const fd of fs.readdirSync(`${dir}/fd`)) add('fd', readlink(path.join(dir, 'fd', fd)));
    } catch {
      // Other users' descriptors: not ours to see.
    }
    try {
      const seen = new Set<string>();
      for (const line of fs.readFileSync(`${dir}/maps`, 'utf8').split('\n')) {
        const at = line.indexOf('/');
        if (at < 0) continue;
        const p = line.slice(at);
        if (!seen.has(p)) {
          seen.add(p);
          add('map', p);
        }
      }
    } catch {
      // Same: skipped silently.
    }
    scan.uses.push(...found);
  }
  return scan;
}
