import fs from 'node:fs';
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

/** Reused for every maps file: the scan reads one per process, megabytes in all. */
let mapsBuffer = Buffer.alloc(64 * 1024);

/**
 * The text of a /proc maps file if its bytes contain `needle`, else undefined: one byte search
 * rules out almost every process without decoding or splitting its lines.
 */
function mapsMentioning(file: string, needle: Buffer): string | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    let length = 0;
    for (;;) {
      if (length === mapsBuffer.length) {
        const bigger = Buffer.alloc(mapsBuffer.length * 2);
        mapsBuffer.copy(bigger);
        mapsBuffer = bigger;
      }
      const n = fs.readSync(fd, mapsBuffer, length, mapsBuffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    const bytes = mapsBuffer.subarray(0, length);
    return bytes.indexOf(needle) >= 0 ? bytes.toString('utf8') : undefined;
  } finally {
    fs.closeSync(fd);
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
  const needle = Buffer.from(under);
  for (const name of pids) {
    const pid = Number(name);
    // Our own descriptors are the ones prune itself opens.
    if (pid === process.pid) continue;
    scan.processes += 1;
    const dir = `/proc/${name}`;
    const found: { kind: ProcessUse['kind']; path: string }[] = [];
    const add = (kind: ProcessUse['kind'], p: string | undefined): void => {
      if (p !== undefined && p.startsWith('/') && isWithin(p.replace(/ \(deleted\)$/, ''), under)) found.push({ kind, path: p });
    };
    const cwd = readlink(`${dir}/cwd`);
    const root = readlink(`${dir}/root`);
    if (cwd === undefined && root === undefined) {
      // Gone since the listing, or another user's process that we may not inspect.
      if (fs.existsSync(dir)) scan.unreadable += 1;
      continue;
    }
    add('cwd', cwd);
    if (root !== '/') add('root', root);
    try {
      // Links built without path.join: this loop runs once per descriptor on the machine.
      const fdDir = `${dir}/fd/`;
      for (const fd of fs.readdirSync(fdDir)) add('fd', readlink(fdDir + fd));
    } catch {
      // Other users' descriptors: not ours to see.
    }
    try {
      const maps = mapsMentioning(`${dir}/maps`, needle);
      if (maps !== undefined) {
        const seen = new Set<string>();
        for (const line of maps.split('\n')) {
          const at = line.indexOf('/');
          if (at < 0) continue;
          const p = line.slice(at);
          if (!seen.has(p)) {
            seen.add(p);
            add('map', p);
          }
        }
      }
    } catch {
      // Same: skipped silently.
    }
    if (found.length === 0) continue;
    // The command is read only for the few processes that hold something.
    let command = '?';
    try {
      command = fs.readFileSync(`${dir}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    for (const use of found) scan.uses.push({ pid, command, ...use });
  }
  return scan;
}
