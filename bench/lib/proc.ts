// Reading processes from /proc/<pid>/stat: CPU times and parentage, for the fleet benchmarks.
import { readdirSync, readFileSync } from 'node:fs';

// Linux reports process times in clock ticks of 1/100 s (USER_HZ).
const TICK_MS = 10;

export interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  /** utime + stime, ms. */
  ownCpuMs: number;
  /** utime + stime + cutime + cstime (children it reaped), ms. */
  cpuMs: number;
}

/** One process's stat line, parsed; undefined once it is gone. */
export function readProc(pid: number | string): Proc | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const f = stat.slice(close + 2).split(' ').map(Number);
    // After the command name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    const own = (f[11] ?? 0) + (f[12] ?? 0);
    return { pid: Number(stat.slice(0, stat.indexOf(' '))), ppid: f[1] ?? 0, comm: stat.slice(stat.indexOf('(') + 1, close), ownCpuMs: own * TICK_MS, cpuMs: (own + (f[13] ?? 0) + (f[14] ?? 0)) * TICK_MS };
  } catch {
    return undefined;
  }
}

/** Every live process. */
export function allProcs(): Proc[] {
  return readdirSync('/proc')
    .filter((n) => /^\d+$/.test(n))
    .map(readProc)
    .filter((p): p is Proc => p !== undefined);
}
