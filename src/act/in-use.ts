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

/** Set by readlink when it fails: whether the link was missing (ENOENT) rather than refused. */
let linkMissing = false;

function readlink(file: string): string | undefined {
  try {
    return fs.readlinkSync(file);
  } catch (error) {
    linkMissing = (error as NodeJS.ErrnoException).code === 'ENOENT';
    return undefined;
  }
}

/**
 * For a process whose main thread has exited (`dir`'s cwd link missing while /proc lists it):
 * the /proc directory of another thread that still has a working directory, and that directory.
 * A program that calls pthread_exit() in main() runs on in its other threads, its leader kept as
 * a zombie whose cwd, root, exe, fd and maps show nothing; the threads share what it held. An
 * exited process (a zombie with no other thread) has none: undefined.
 */
function liveThread(dir: string, pid: string): { dir: string; cwd: string } | undefined {
  let tids: string[];
  try {
    tids = fs.readdirSync(`${dir}/task`);
  } catch {
    return undefined;
  }
  for (const tid of tids) {
    if (tid === pid) continue;
    const cwd = readlink(`${dir}/task/${tid}/cwd`);
    if (cwd !== undefined) return { dir: `${dir}/task/${tid}`, cwd };
  }
  return undefined;
}

/** Reused for every maps file: the scan reads one per process, megabytes in all. */
let mapsBuffer = Buffer.alloc(64 * 1024);

/** x86_64's vsyscall page: the kernel lists it after every other mapping, and no user mapping can lie at its address. */
const GATE_START = Buffer.from('ffffffffff600000-');
const GATE_END = Buffer.from(' [vsyscall]\n');

/** True when the maps read so far end with the vsyscall page's line, which the kernel always lists last. */
function endsWithGate(buffer: Buffer, length: number): boolean {
  if (length < GATE_START.length + GATE_END.length || buffer.compare(GATE_END, 0, GATE_END.length, length - GATE_END.length, length) !== 0) return false;
  const line = buffer.lastIndexOf(0x0a, length - 2) + 1;
  return buffer.compare(GATE_START, 0, GATE_START.length, line, line + GATE_START.length) === 0;
}

/**
 * Reads a /proc maps file into the shared buffer; returns its length (0: no user memory at all).
 * The kernel hands out maps about a page per read, so a short read is no end: the read that
 * returns 0 is skipped only where the text ends with the vsyscall page, listed after everything.
 */
function readMaps(file: string): number {
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
      if (endsWithGate(mapsBuffer, length)) break;
    }
    return length;
  } finally {
    fs.closeSync(fd);
  }
}

type Found = { kind: ProcessUse['kind']; path: string }[];

/** Keeps `p` if it lies under `under`; the prefix test first rules out almost every link without a regex or a path split. */
function addIfUnder(found: Found, under: string, kind: ProcessUse['kind'], p: string | undefined): void {
  if (p !== undefined && p.startsWith(under) && isWithin(p.replace(/ \(deleted\)$/, ''), under)) found.push({ kind, path: p });
}

/**
 * Every cwd, root, open file and mapped file of every process that lies under `under` (a real
 * path), from /proc. Whatever cannot be read (other users' processes, processes that just
 * exited) is skipped silently: this is a safety net, not a guarantee. With `decidedByAnyHold` (one
 * release, as the stale scan asks) a process that already holds something has its maps left
 * unsearched; prune never passes it, as one process may hold two releases. Per process: the cwd
 * link, then the maps (empty: a kernel thread, done), then root and descriptors; all of them read
 * from a live thread's task directory where the main thread has exited (its cwd link missing).
 */
export function scanProcessUses(under: string, options: { decidedByAnyHold?: boolean } = {}): InUseScan {
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
    const proc = `/proc/${name}`;
    let dir = proc;
    // The working directory first: root and descriptors sit behind the same access check, so where it fails they would too.
    let cwd = readlink(`${dir}/cwd`);
    if (cwd === undefined) {
      // Missing, not refused: the main thread has exited; its other threads, if any, tell what the process holds.
      const thread = linkMissing ? liveThread(proc, name) : undefined;
      if (thread === undefined) {
        // Gone since the listing, exited, or another user's process that we may not inspect.
        if (fs.existsSync(proc)) scan.unreadable += 1;
        continue;
      }
      ({ dir, cwd } = thread);
    }
    let mapsLength: number | undefined;
    try {
      mapsLength = readMaps(`${dir}/maps`);
    } catch {
      // Unreadable maps: the links and descriptors may still tell.
    }
    // Maps before the descriptors: empty ones mean no user memory, a kernel thread (working directory /, no descriptors) or a process on its way out.
    if (mapsLength === 0) continue;
    const found: Found = [];
    addIfUnder(found, under, 'cwd', cwd);
    const root = readlink(`${dir}/root`);
    if (root !== '/') addIfUnder(found, under, 'root', root);
    try {
      // Links built without path.join: this loop runs once per descriptor on the machine.
      const fdDir = `${dir}/fd/`;
      for (const fd of fs.readdirSync(fdDir)) addIfUnder(found, under, 'fd', readlink(fdDir + fd));
    } catch {
      // Other users' descriptors: not ours to see.
    }
    // Already decided by its cwd, root or descriptors: the maps would only add detail. One byte search rules out almost every process without decoding its maps.
    const maps = mapsLength === undefined || (options.decidedByAnyHold && found.length > 0) ? undefined : mapsBuffer.subarray(0, mapsLength);
    if (maps !== undefined && maps.indexOf(needle) >= 0) {
      const seen = new Set<string>();
      for (const line of maps.toString('utf8').split('\n')) {
        const at = line.indexOf('/');
        if (at < 0) continue;
        const p = line.slice(at);
        if (!seen.has(p)) {
          seen.add(p);
          addIfUnder(found, under, 'map', p);
        }
      }
    }
    if (found.length === 0) continue;
    // The command is read only for the few processes that hold something.
    let command = '?';
    try {
      command = fs.readFileSync(`${proc}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    for (const use of found) scan.uses.push({ pid, command, ...use });
  }
  return scan;
}
