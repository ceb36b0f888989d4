/** A fleet host's stale-process scan, decoded from what its sh printed, and the fleet-wide verdict. */
import type { ProcessUse } from './in-use.ts';
import { staleHolders, type StaleMode, type StaleProcess, type StaleReport } from './serving.ts';

/** What the host's scan printed (src/remote/stale-script.ts), each part as one text. */
export interface RawStaleScan {
  check: 'proc' | 'unavailable';
  /** The scanning shell's pid: it and its children are ours. */
  self: number;
  /** The release left, as a real path on the host. */
  dir: string;
  /**
   * `ls -l` of cwd and root links and fd directories (lines naming the release, and fd headers),
   * and the ns/mnt links of processes in another mount namespace; for a process whose main thread
   * has exited, those of a live thread (`/proc/<pid>/task/<tid>/...`), which stand for the process.
   */
  links: string;
  /** `grep` of the maps files for the release (a live thread's, as above). */
  maps: string;
  /** "pid ppid comm" per process; a zombie's stat line as well, after `/proc/<pid>/stat:`. */
  procs: string;
}

/**
 * The holders of `raw.dir`, as the local scan would name them. Processes in another mount
 * namespace are left out: a container's `/srv/app` is another directory under the same name.
 */
export function remoteStaleReport(raw: RawStaleScan, release: string): StaleReport {
  if (raw.check === 'unavailable') return { check: 'unavailable', release, processes: [] };
  const parents = new Map<number, number>();
  const commands = new Map<number, string>();
  for (const line of raw.procs.split('\n')) {
    const m = /^(\d+) (\d+) (.*)$/.exec(line);
    if (!m) continue;
    parents.set(Number(m[1]), Number(m[2]));
    commands.set(Number(m[1]), m[3] ?? '?');
  }
  const foreign = new Set<number>();
  const uses: ProcessUse[] = [];
  const add = (pid: number, kind: ProcessUse['kind'], p: string): void => {
    uses.push({ pid, command: commands.get(pid) ?? '?', kind, path: p });
  };
  let fdOf: number | undefined;
  for (const line of raw.links.split('\n')) {
    const header = /^\/proc\/(\d+)(?:\/task\/\d+)?\/fd:$/.exec(line);
    if (header) {
      fdOf = Number(header[1]);
      continue;
    }
    const ns = /\/proc\/(\d+)(?:\/task\/\d+)?\/ns\/mnt -> /.exec(line);
    if (ns) {
      foreign.add(Number(ns[1]));
      continue;
    }
    const link = /\/proc\/(\d+)(?:\/task\/\d+)?\/(cwd|root) -> (.*)$/.exec(line);
    if (link) {
      add(Number(link[1]), link[2] === 'cwd' ? 'cwd' : 'root', link[3] ?? '');
      continue;
    }
    const fd = / \d+ -> (\/.*)$/.exec(line);
    if (fd && fdOf !== undefined) add(fdOf, 'fd', fd[1] ?? '');
  }
  for (const line of raw.maps.split('\n')) {
    const m = /^\/proc\/(\d+)(?:\/task\/\d+)?\/maps:\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\/.*)$/.exec(line);
    if (m) add(Number(m[1]), 'map', m[2] ?? '');
  }
  const local = uses.filter((u) => !foreign.has(u.pid));
  return { check: 'proc', release, processes: staleHolders(local, raw.dir, { self: raw.self, parents }) };
}

/** One host's part in a fleet's stale check. */
export interface HostStale {
  host: string;
  check: 'proc' | 'unavailable';
  /** The release left on that host. */
  release: string;
  count: number;
}

/** The fleet's stale check: every process named with its host, and what each host's check was. */
export interface FleetStaleReport {
  processes: (StaleProcess & { host: string })[];
  hosts: HostStale[];
}

export function fleetStaleReport(reports: readonly { host: string; report: StaleReport }[]): FleetStaleReport {
  return {
    processes: reports.flatMap(({ host, report }) => report.processes.map((p) => ({ host, ...p }))),
    hosts: reports.map(({ host, report }) => ({ host, check: report.check, release: report.release, count: report.processes.length })),
  };
}

/** Whether `--stale fail` fails the fleet command: some host still has processes on the release it left. */
export function fleetStaleFails(mode: StaleMode, report: FleetStaleReport | undefined): boolean {
  return mode === 'fail' && report !== undefined && report.processes.length > 0;
}

/**
 * Whether `--stale fail` cannot vouch for the fleet: a host's scan got no answer after its switch
 * (`unchecked`), so whether old code still runs there is not known. A host without /proc is not
 * one of them: it has no check to make, as locally.
 */
export function fleetStaleUnknown(mode: StaleMode, unchecked: readonly string[]): boolean {
  return mode === 'fail' && unchecked.length > 0;
}
