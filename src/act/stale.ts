import fs from 'node:fs';
import { parseProcStat, staleHolders, type StaleReport } from '../plan/serving.ts';
import { scanProcessUses, type InUseScan } from './in-use.ts';

function readStat(pid: number): ReturnType<typeof parseProcStat> {
  try {
    return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * The processes that still hold `releaseDir` (release `release`), from /proc. Only the holders'
 * parent chains are read, so that our own children are told apart at little cost. `covering`: a
 * scan already made of a directory that holds the release (all of releases/, for prune), used
 * instead of reading /proc again.
 */
export function scanStale(releaseDir: string, release: string, covering?: InUseScan): StaleReport {
  let real = releaseDir;
  try {
    real = fs.realpathSync(releaseDir);
  } catch {
    // A release already gone is held by nobody under its old real path either.
  }
  const scan = covering ?? scanProcessUses(real, { decidedByAnyHold: true });
  if (!scan.supported) return { check: 'unavailable', release, processes: [] };
  const parents = new Map<number, number>();
  for (const use of scan.uses) {
    let pid = use.pid;
    while (pid > 1 && !parents.has(pid) && pid !== process.pid) {
      const stat = readStat(pid);
      if (!stat) break;
      parents.set(pid, stat.ppid);
      pid = stat.ppid;
    }
  }
  return { check: 'proc', release, processes: staleHolders(scan.uses, real, { self: process.pid, parents }) };
}
