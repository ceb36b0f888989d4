// The cost of the post-switch scan for processes still running from the release left: deploys
// with `--stale warn` (the default, one scan) against `--stale off`, alternated, on a machine
// running at least 500 processes; the scan alone, in process; and a first scan in fresh processes.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { benchBin } from './bin.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { median, pairedRuns, timeCommand } from './lib/measure.ts';
import type { Result } from './lib/report.ts';

const NODE = process.execPath;
const PROCESSES = 500;
const OFF = 'deploy --stale off';
const WARN = 'deploy --stale warn (one scan)';
// Nothing pruned: the stale check is the only reading of /proc, where a deploy that prunes shares it with prune's guard.
const OFF0 = 'deploy --keep 0 --stale off';
const WARN0 = 'deploy --keep 0 --stale warn';

/** Runs argv[2:] and writes its CPU time in seconds (user + system, all threads) to argv[1]; exits as it did. */
const CPU_OF = ['import os, sys', 'pid = os.fork()', 'if pid == 0:', '    os.execv(sys.argv[2], sys.argv[2:])', '_, status, ru = os.wait4(pid, 0)', 'open(sys.argv[1], "w").write(repr(ru.ru_utime + ru.ru_stime))', 'sys.exit(os.waitstatus_to_exitcode(status))'].join('\n');

function processCount(): number {
  return fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).length;
}

function readlinkOrNothing(file: string): string | undefined {
  try {
    return fs.readlinkSync(file);
  } catch {
    return undefined;
  }
}

/** A maps file read as the scan reads it (to the read returning 0, or to the vsyscall page's line, listed last); returns its length and the reads made. */
function readMapsLikeScan(file: string, buffer: Buffer): { length: number; reads: number } {
  const fd = fs.openSync(file, 'r');
  try {
    let length = 0;
    let reads = 0;
    for (;;) {
      const n = fs.readSync(fd, buffer, length, buffer.length - length, null);
      reads += 1;
      if (n === 0) break;
      length += n;
      const last = buffer.lastIndexOf(0x0a, length - 2) + 1;
      if (buffer.toString('latin1', length - 12, length) === ' [vsyscall]\n' && buffer.toString('latin1', last, last + 17) === 'ffffffffff600000-') break;
    }
    return { length, reads };
  } finally {
    fs.closeSync(fd);
  }
}

interface Breakdown {
  rows: (string | number)[][];
  processes: number;
  kernelThreads: number;
  mapsReads: number;
  descriptors: number;
}

/**
 * Where a scan's time goes: each kind of /proc read the scan makes, done alone for every process
 * the scan reads it for (kernel threads stop at their empty maps), alternated with the whole scan
 * over `rounds` rounds; medians of wall and CPU time.
 */
function breakdown(rounds: number, wholeScan: () => void): Breakdown {
  const pids = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n) && Number(n) !== process.pid);
  const buffer = Buffer.alloc(4 << 20);
  const user: string[] = [];
  let kernelThreads = 0;
  let mapsReads = 0;
  const links: string[] = [];
  for (const pid of pids) {
    try {
      const maps = readMapsLikeScan(`/proc/${pid}/maps`, buffer);
      mapsReads += maps.reads;
      if (maps.length === 0) kernelThreads += 1;
      else {
        user.push(pid);
        for (const fd of fs.readdirSync(`/proc/${pid}/fd`)) links.push(`/proc/${pid}/fd/${fd}`);
      }
    } catch {
      // gone, or not ours to read
    }
  }
  const parts: [string, () => void][] = [
    ['listing /proc', () => void fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))],
    ['working-directory links (every process)', () => pids.forEach((p) => readlinkOrNothing(`/proc/${p}/cwd`))],
    ['maps: open, reads, close (every process)', () => pids.forEach((p) => {
      try {
        readMapsLikeScan(`/proc/${p}/maps`, buffer);
      } catch {
        // gone
      }
    })],
    ['root links', () => user.forEach((p) => readlinkOrNothing(`/proc/${p}/root`))],
    ['descriptor listings', () => user.forEach((p) => {
      try {
        fs.readdirSync(`/proc/${p}/fd/`);
      } catch {
        // gone
      }
    })],
    ['descriptor links', () => links.forEach((l) => readlinkOrNothing(l))],
    ['the whole scan', wholeScan],
  ];
  const wall = new Map<string, number[]>();
  const cpu = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    for (const [name, run] of parts) {
      const t = performance.now();
      const c = process.cpuUsage();
      run();
      const used = process.cpuUsage(c);
      wall.set(name, [...(wall.get(name) ?? []), performance.now() - t]);
      cpu.set(name, [...(cpu.get(name) ?? []), (used.user + used.system) / 1000]);
    }
  }
  const r1 = (x: number): number => Math.round(x * 10) / 10;
  return {
    rows: parts.map(([name]) => [name, r1(median(wall.get(name) ?? [0])), r1(median(cpu.get(name) ?? [0]))]),
    processes: pids.length,
    kernelThreads,
    mapsReads,
    descriptors: links.length,
  };
}

export async function runStaleScanBench(opts: { quick: boolean; log?: (line: string) => void }): Promise<Result> {
  const { quick } = opts;
  const log = opts.log ?? ((): void => undefined);
  const started = Date.now();
  const machine = await describeMachine();
  const BIN = benchBin();
  const dir = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-stale-'));
  const children: ChildProcess[] = [];
  try {
    const src = join(dir, 'src');
    fs.mkdirSync(src);
    for (let i = 0; i < 20; i++) fs.writeFileSync(join(src, `f${i}.txt`), `file ${i}\n`);
    const root = join(dir, 'root');
    await timeCommand(NODE, [BIN, 'deploy', src, root, '--no-fsync', '--quiet']);
    // Idle processes up to the target count; a few sit in current like forgotten workers.
    // Topped up until the count holds: other processes on a shared machine come and go.
    let spawned = 0;
    for (let round = 0; round < 5 && processCount() < PROCESSES + 10; round++) {
      const extra = PROCESSES + 10 - processCount();
      for (let i = 0; i < extra; i++) {
        const cwd = spawned < 5 ? join(root, 'current') : dir;
        children.push(spawn('sleep', ['3600'], { cwd, stdio: 'ignore' }));
        spawned += 1;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    const running = processCount();
    log(`stale-scan: ${running} processes running (${spawned} started)`);
    if (running < PROCESSES) throw new Error(`only ${running} processes running, wanted ${PROCESSES}`);

    const runs = quick ? 3 : 21;
    // Each deploy's CPU time (all threads, user + system) from wait4's rusage, in microseconds (GNU time rounds to 10 ms): on a busy machine wall time also counts waiting for a core.
    const cpuFile = join(dir, 'cpu.txt');
    const deployCpu = new Map<string, number[]>();
    const deploy = (name: string, mode: string, extra: string[] = []) => async (): Promise<void> => {
      await timeCommand('python3', ['-c', CPU_OF, cpuFile, NODE, BIN, 'deploy', src, root, '--no-fsync', '--quiet', '--stale', mode, ...extra]);
      deployCpu.set(name, [...(deployCpu.get(name) ?? []), Number(fs.readFileSync(cpuFile, 'utf8')) * 1000]);
    };
    const result = await pairedRuns(
      [
        { name: OFF, run: deploy(OFF, 'off') },
        { name: WARN, run: deploy(WARN, 'warn') },
        { name: OFF0, run: deploy(OFF0, 'off', ['--keep', '0']) },
        { name: WARN0, run: deploy(WARN0, 'warn', ['--keep', '0']) },
      ],
      { runs, warmup: quick ? 1 : 3, baseline: OFF },
    );
    const byName = (name: string): (typeof result.cases)[number] => {
      const c = result.cases.find((x) => x.name === name);
      if (!c) throw new Error(`missing case ${name}`);
      return c;
    };
    const off = byName(OFF);
    const warn = byName(WARN);
    const added = warn.median - off.median;
    const added0 = byName(WARN0).median - byName(OFF0).median;
    // The first rounds are warm-up: only the last `runs` samples of each case count, as for wall time.
    const cpuOf = (name: string): number => median((deployCpu.get(name) ?? [NaN]).slice(-runs));
    const cpuAdded = cpuOf(WARN) - cpuOf(OFF);
    const cpuAdded0 = cpuOf(WARN0) - cpuOf(OFF0);

    // The scan alone: what the deploy does after the switch, measured inside one process.
    const staleUrl = pathToFileURL(join(dirname(dirname(BIN)), 'act', 'stale.js')).href;
    const stale = (await import(staleUrl)) as typeof import('../src/act/stale.ts');
    const current = fs.readlinkSync(join(root, 'current'));
    const scanMs: number[] = [];
    const cpuMs: number[] = [];
    let found = 0;
    for (let i = 0; i < (quick ? 3 : 41); i++) {
      const t = performance.now();
      const cpu = process.cpuUsage();
      const report = stale.scanStale(join(root, current), 'x');
      const used = process.cpuUsage(cpu);
      scanMs.push(performance.now() - t);
      // CPU time (user + system) is what the scan costs on an idle machine; wall time here includes waiting for a core.
      cpuMs.push((used.user + used.system) / 1000);
      found = report.processes.length;
    }
    const scan = median(scanMs);
    const scanCpu = median(cpuMs);
    // A deploy runs the scan once, in a process whose JIT has not warmed to it: a first scan in a fresh process each time.
    const first = 'const [url, dir] = process.argv.slice(1); const { scanStale } = await import(url); const c = process.cpuUsage(); const t = performance.now(); scanStale(dir, "x"); const u = process.cpuUsage(c); console.log(JSON.stringify({ wall: performance.now() - t, cpu: (u.user + u.system) / 1000 }));';
    const firstMs: number[] = [];
    const firstCpuMs: number[] = [];
    // The same with V8's optimizing compiler off, alternated: how much of a first scan's CPU is that compiler at work (on a thread of its own).
    const noOptCpuMs: number[] = [];
    for (let i = 0; i < (quick ? 3 : 15); i++) {
      const m = JSON.parse(execFileSync(NODE, ['--input-type=module', '-e', first, staleUrl, join(root, current)], { encoding: 'utf8' })) as { wall: number; cpu: number };
      firstMs.push(m.wall);
      firstCpuMs.push(m.cpu);
      const n = JSON.parse(execFileSync(NODE, ['--no-opt', '--input-type=module', '-e', first, staleUrl, join(root, current)], { encoding: 'utf8' })) as { cpu: number };
      noOptCpuMs.push(n.cpu);
    }
    const firstWall = median(firstMs);
    const firstCpu = median(firstCpuMs);
    const noOptCpu = median(noOptCpuMs);
    const inUseUrl = pathToFileURL(join(dirname(dirname(BIN)), 'act', 'in-use.js')).href;
    const inUse = (await import(inUseUrl)) as typeof import('../src/act/in-use.ts');
    const where = join(root, current);
    const parts = breakdown(quick ? 3 : 21, () => void inUse.scanProcessUses(where, { decidedByAnyHold: true }));
    const userProcesses = parts.processes - parts.kernelThreads;
    // Per user process: cwd link, maps open + reads + close, root link, 5 calls to list the descriptors (open, fstat, 2 getdents, close), one link each.
    const callsPerProcess = (userProcesses * 9 + parts.mapsReads + parts.descriptors + parts.kernelThreads * 3) / Math.max(1, parts.processes);
    const fds = fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n)).reduce((sum, n) => {
      try {
        return sum + fs.readdirSync(`/proc/${n}/fd`).length;
      } catch {
        return sum;
      }
    }, 0);
    const load = fs.readFileSync('/proc/loadavg', 'utf8').split(' ')[0] ?? '?';
    log(`stale-scan: off ${off.median.toFixed(1)} ms, warn ${warn.median.toFixed(1)} ms, added ${added.toFixed(1)} ms (${added0.toFixed(1)} ms with --keep 0), CPU added ${cpuAdded.toFixed(1)} ms (${cpuAdded0.toFixed(1)} ms with --keep 0); scan alone ${scan.toFixed(1)} ms wall, ${scanCpu.toFixed(1)} ms CPU; first scan ${firstWall.toFixed(1)} ms wall, ${firstCpu.toFixed(1)} ms CPU (${noOptCpu.toFixed(1)} with --no-opt); ${fds} descriptors; load ${load}`);
    const r1 = (x: number): number => Math.round(x * 10) / 10;
    return {
      name: 'stale-scan',
      title: 'Cost of the stale-process scan after the switch',
      description: `A deploy of 20 files (\`--no-fsync\`, to keep disk noise out) with \`--stale warn\`, which scans /proc once after the switch, against \`--stale off\`, alternated, both with the default keep (each deploy prunes; prune's guard reuses the stale check's scan) and with \`--keep 0\` (no prune, so the stale check is the only reading of /proc), while the machine runs at least ${PROCESSES} processes (topped up with idle \`sleep\`s where fewer run, the first 5 of them in \`current\`). Also the scan alone: repeated in one process, and as the first scan of a fresh process (what a deploy pays, before the JIT has warmed to it). CPU time (user + system; for a deploy, of all its threads, from the kernel's rusage) is given next to wall time: a busy machine inflates wall time more. Last, where a scan's time goes: each kind of /proc read it makes, alone.`,
      machine,
      quick,
      tables: [
        {
          caption: 'Target',
          columns: ['target', 'goal', 'measured', 'met'],
          rows: [
            ['median(warn) − median(off), default keep (a deploy that prunes), ms', '≤ 50', r1(added), added <= 50 ? 'met' : 'MISSED'],
            ['the same with --keep 0 (nothing pruned: the stale check reads /proc alone), ms', '≤ 50', r1(added0), added0 <= 50 ? 'met' : 'MISSED'],
            ['CPU time: median(warn) − median(off) of a deploy, default keep, ms', '≤ 50', r1(cpuAdded), cpuAdded <= 50 ? 'met' : 'MISSED'],
            ['CPU time: the same with --keep 0, ms', '≤ 50', r1(cpuAdded0), cpuAdded0 <= 50 ? 'met' : 'MISSED'],
            ['the scan alone, CPU ms', '≤ 50', r1(scanCpu), scanCpu <= 50 ? 'met' : 'MISSED'],
            ['a first scan in a fresh process, CPU ms', '≤ 50', r1(firstCpu), firstCpu <= 50 ? 'met' : 'MISSED'],
          ],
        },
        {
          caption: `Wall time of a deploy (median of ${runs}, alternated) with ${running} processes running`,
          columns: ['case', 'median ms', 'min ms', 'max ms', `× ${OFF}`, 'median CPU ms (user + system)'],
          rows: result.cases.map((c) => [c.name, r1(c.median), r1(c.min), r1(c.max), Math.round(c.ratio * 100) / 100, r1(cpuOf(c.name))]),
        },
        {
          caption: `The scan alone (medians: ${cpuMs.length} in one process, ${firstCpuMs.length} fresh processes); load average ${load} at the end of the run`,
          columns: ['processes', 'open descriptors', 'wall ms', 'CPU ms (user + system)', 'first scan wall ms', 'first scan CPU ms', 'first scan CPU ms, node --no-opt', 'holders found'],
          rows: [[running, fds, r1(scan), r1(scanCpu), r1(firstWall), r1(firstCpu), r1(noOptCpu), found]],
        },
        {
          caption: `Where the scan's time goes: each kind of read alone, for the ${parts.processes} processes (${parts.kernelThreads} kernel threads, read up to their empty maps only), alternated with the whole scan over ${quick ? 3 : 21} rounds; ${parts.descriptors} descriptors, ${parts.mapsReads} reads of maps files, about ${Math.round(callsPerProcess * 10) / 10} system calls per process`,
          columns: ['part', 'wall ms', 'CPU ms (user + system)'],
          rows: parts.rows,
        },
      ],
      charts: [],
      notes: [
        'Per process the scan reads its working directory link first (where that cannot be read, as for another user\'s process, it stops there), then its memory maps (empty maps are a kernel thread: it stops there), then its root link and every open descriptor; the maps are searched, by one byte search, only for processes not already found holding something; each link is ruled out by a prefix test before any path parsing; only the holders get their parent chain read (to leave out our own processes). For an idle process with 5 descriptors that is 15 system calls on x86_64 (1 + 3 for the maps: open, one read per page of text, close, with no read for the end where the text ends with the vsyscall page, which the kernel lists last + 1 + 5 for the descriptor listing + 5), 16 elsewhere: the floor of a scan that finds every kind of hold through Node\'s fs.',
        'Tried and left out, each measured slower here and not kept: the descriptor count that procfs gives as the size of /proc/<pid>/fd, to read links 0 to n-1 without listing (most processes have gaps in their descriptor tables, each miss costs a thrown error and the listing anyway, and a process filling a gap meanwhile would be missed); asynchronous reads with many processes in flight on the thread pool (more CPU than the synchronous loop); reading each process through a chdir into its /proc directory; a worker thread to split the processes between two cores (its start-up alone is of the order of a scan on a busy machine, and it would have to start long before the switch). These are not rows of this benchmark: the code is not kept.',
        'A first scan costs more CPU than a repeated one; part of the difference is V8\'s optimizing compiler at work on the hot fs functions and the scan loop, on a thread of its own: the `node --no-opt` column (alternated with the plain first scans) shows that part. On an idle second core it costs CPU, not wall time.',
        runNote(started, machine),
      ],
    };
  } finally {
    for (const c of children) c.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}
