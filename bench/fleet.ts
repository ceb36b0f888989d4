// Fleet deploys over ssh to 1, 3 and 10 hosts (sshd in network namespaces on this machine): how
// the time grows with the host count, how far apart the hosts switch, and what linking unchanged files saves
// when 1% of the files changed.
import { execFileSync } from 'node:child_process';
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetDeploy, type FleetDeployResult } from '../src/remote/deploy.ts';
import { createFleet, type Fleet } from '../test/harness/fleet.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { allProcs, readProc } from './lib/proc.ts';
import { median, pairedRuns, type CaseSummary, type PairedCase } from './lib/measure.ts';
import type { Result, ResultTable } from './lib/report.ts';
import { makeTree, mutateFraction, TREE_PRESETS, type TreeOptions, type TreeStats } from './lib/tree.ts';

export interface FleetBenchOptions {
  quick: boolean;
  log?: (line: string) => void;
}

interface Sample {
  hosts: number;
  kind: 'full' | 'redeploy';
  result: FleetDeployResult;
  cpu: CpuSpent;
}

/** CPU time (ms) a deploy cost on each side: this process with its children (ssh, rsync), and the hosts' sshd trees. */
interface CpuSpent {
  deployer: number;
  targets: number;
}

/** utime + stime (+ cutime + cstime with `children`) of a process, in ms; 0 once it is gone. */
function cpuOf(pid: number | 'self', children: boolean): number {
  const p = readProc(pid);
  return p === undefined ? 0 : children ? p.cpuMs : p.ownCpuMs;
}

/** How many live processes have one of `parents` as their parent. */
function childrenOf(parents: ReadonlySet<number | null>): number {
  return allProcs().filter((p) => parents.has(p.ppid)).length;
}

/** Runs a deploy and says what CPU it cost where. */
async function withCpu(fleet: Fleet, n: number, deploy: () => Promise<FleetDeployResult>): Promise<{ result: FleetDeployResult; cpu: CpuSpent }> {
  const sshd = (): number => fleet.hosts.slice(0, n).reduce((sum, h) => sum + (h.sshdPid() === null ? 0 : cpuOf(h.sshdPid() as number, true)), 0);
  const self0 = cpuOf('self', true);
  const sshd0 = sshd();
  const result = await deploy();
  const deployer = cpuOf('self', true) - self0;
  // A connection's sshd is reaped (and counted) only after it exits, shortly after the deploy.
  const listeners = new Set(fleet.hosts.slice(0, n).map((h) => h.sshdPid()));
  for (let i = 0; i < 60 && childrenOf(listeners) > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  return { result, cpu: { deployer, targets: sshd() - sshd0 } };
}

/** The trees: a small site, many small files, and fewer larger ones (where bytes, not files, cost). */
const TREES = {
  '1k': TREE_PRESETS['1k'],
  '10k': TREE_PRESETS['10k'],
  assets: { dirs: 10, filesPerDir: 100, minSize: 32 * 1024, maxSize: 256 * 1024, seed: 3 },
} as const satisfies Record<string, TreeOptions>;
type TreeId = keyof typeof TREES;

interface TreeOutcome {
  id: TreeId;
  counts: number[];
  stats: TreeStats;
  changed: number;
  cases: CaseSummary[];
  samples: Sample[];
}

const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** "1,000 files of 256 B–4 KiB": enough to tell the trees apart in a caption. */
function treeLabel(id: TreeId, files: number): string {
  const t = TREES[id];
  const size = (b: number): string => (b >= 1024 ? `${b / 1024} KiB` : `${b} B`);
  return `${files.toLocaleString('en-US')} files of ${size(t.minSize)}–${size(t.maxSize)}`;
}

async function measureTree(fleet: Fleet, id: TreeId, counts: number[], runs: number, warmup: number, log: (l: string) => void): Promise<TreeOutcome> {
  const work = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-fleet-'));
  try {
    const base = join(work, 'src');
    const stats = await makeTree(base, TREES[id]);
    log(`${id}: ${stats.files} files, ${(stats.bytes / 1024 ** 2).toFixed(1)} MiB`);
    const samples: Sample[] = [];
    let serial = 0;
    let changed = 0;
    const cases: PairedCase[] = [];
    for (const n of counts) {
      const hosts = fleet.hosts.slice(0, n).map((h) => ({ host: h.alias }));
      const options = { hosts, ssh: { configFile: fleet.sshConfigPath } };
      // Full: into roots that have never seen a release.
      let fullRoot = '';
      cases.push({
        name: `full, ${n} host${n === 1 ? '' : 's'}`,
        setup: () => {
          fullRoot = `bench-${id}-full-${n}-${++serial}`;
          return Promise.resolve();
        },
        run: async () => {
          samples.push({ hosts: n, kind: 'full', ...(await withCpu(fleet, n, () => fleetDeploy(base, `/srv/${fullRoot}`, options))) });
        },
        teardown: async () => {
          await Promise.all(fleet.hosts.slice(0, n).map((h) => rm(join(h.srvDir, fullRoot), { recursive: true, force: true })));
        },
      });
      // Redeploy: its own copy of the source, 1% of the files changed before every run; the
      // previous release on the hosts is the last run's (the warm-up round makes the first).
      const src = join(work, `src-${n}`);
      await cp(base, src, { recursive: true });
      const root = `bench-${id}-redeploy-${n}`;
      let seed = 100 * n;
      cases.push({
        name: `1% changed, ${n} host${n === 1 ? '' : 's'}`,
        setup: async () => {
          changed = (await mutateFraction(src, 0.01, ++seed)).length;
        },
        run: async () => {
          samples.push({ hosts: n, kind: 'redeploy', ...(await withCpu(fleet, n, () => fleetDeploy(src, `/srv/${root}`, options))) });
        },
      });
    }
    const result = await pairedRuns(cases, {
      runs,
      warmup,
      onSample: (name, ms, r) => log(`  ${id} round ${r + 1}/${runs} ${name}: ${ms.toFixed(0)} ms`),
    });
    // Warm-up runs pushed samples too; keep the measured ones (the last `runs` per case).
    const measured = counts.flatMap((n) =>
      (['full', 'redeploy'] as const).flatMap((kind) => samples.filter((s) => s.hosts === n && s.kind === kind).slice(-runs)),
    );
    for (const h of fleet.hosts) execFileSync('rm', ['-rf', '--', ...counts.map((n) => join(h.srvDir, `bench-${id}-redeploy-${n}`))]);
    return { id, counts, stats, changed, cases: result.cases, samples: measured };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Deploy time to 1, 3 and 10 hosts, switch skew, and a 1%-changed redeploy against a full one. */
export async function runFleetBench(opts: FleetBenchOptions): Promise<Result> {
  const log = opts.log ?? (() => undefined);
  const started = Date.now();
  const machine = await describeMachine({ tmpDir: tmpdir() });
  const counts = opts.quick ? [1, 3] : [1, 3, 10];
  const runs = opts.quick ? 1 : 5;
  const warmup = 1;
  const most = Math.max(...counts);
  // Host scaling on the small site; the redeploy ratio on heavier trees, at 1 and at the most hosts.
  const plan: { id: TreeId; counts: number[]; runs: number }[] = opts.quick
    ? [{ id: '1k', counts, runs }]
    : [
        { id: '1k', counts, runs },
        { id: '10k', counts: [1, most], runs: 3 },
        { id: 'assets', counts: [1, most], runs: 3 },
      ];
  const t0 = Date.now();
  const fleet = await createFleet(Math.max(...counts), { prefix: 'afb' });
  log(`${fleet.hosts.length} namespace hosts up in ${Date.now() - t0} ms`);
  const outcomes: TreeOutcome[] = [];
  try {
    for (const p of plan) outcomes.push(await measureTree(fleet, p.id, p.counts, p.runs, warmup, log));
  } finally {
    await fleet.destroy();
  }

  const caseOf = (o: TreeOutcome, kind: 'full' | 'redeploy', n: number): CaseSummary | undefined =>
    o.cases.find((c) => c.name === `${kind === 'full' ? 'full' : '1% changed'}, ${n} host${n === 1 ? '' : 's'}`);
  const pick = (o: TreeOutcome, n: number, kind: 'full' | 'redeploy'): Sample[] => o.samples.filter((s) => s.hosts === n && s.kind === kind);
  const med = (xs: number[]): number | string => (xs.length === 0 ? '–' : round(median(xs), 1));

  const tables: ResultTable[] = [];
  for (const o of outcomes) {
    const label = treeLabel(o.id, o.stats.files);
    tables.push({
      caption: `${label}: median deploy time (ms) and ratio to one host`,
      columns: ['hosts', 'full deploy ms', '× 1 host', '1% changed ms', '× 1 host', '1% changed ÷ full'],
      rows: o.counts.map((n) => {
        const full = caseOf(o, 'full', n)?.median ?? NaN;
        const re = caseOf(o, 'redeploy', n)?.median ?? NaN;
        const full1 = caseOf(o, 'full', 1)?.median ?? NaN;
        const re1 = caseOf(o, 'redeploy', 1)?.median ?? NaN;
        return [n, round(full, 0), round(full / full1, 2), round(re, 0), round(re / re1, 2), round(re / full, 2)];
      }),
    });
    tables.push({
      caption: `${label}: where the time goes (medians, ms): connect and lock, copy and prepare, switch, commit`,
      columns: ['hosts', 'deploy', 'lock', 'prepare', 'switch', 'commit'],
      rows: o.counts.flatMap((n) =>
        (['full', 'redeploy'] as const).map((kind) => {
          const s = pick(o, n, kind);
          return [`${n} (${kind === 'full' ? 'full' : '1% changed'})`, med(s.map((x) => x.result.durationMs)), med(s.map((x) => x.result.timings.lockMs)), med(s.map((x) => x.result.timings.prepareMs)), med(s.map((x) => x.result.timings.switchMs)), med(s.map((x) => x.result.timings.finishMs))];
        }),
      ),
    });
  }
  for (const o of outcomes) {
    tables.push({
      caption: `${treeLabel(o.id, o.stats.files)}: CPU time per deploy (medians, ms), and per host`,
      columns: ['hosts', 'deploying side (node, ssh, rsync)', 'targets (sshd, shells, rsync)', 'per host: deploying side', 'per host: target'],
      rows: o.counts.flatMap((n) =>
        (['full', 'redeploy'] as const).map((kind) => {
          const s = pick(o, n, kind);
          const dep = median(s.map((x) => x.cpu.deployer));
          const tgt = median(s.map((x) => x.cpu.targets));
          return [`${n} (${kind === 'full' ? 'full' : '1% changed'})`, round(dep, 0), round(tgt, 0), round(dep / n, 0), round(tgt / n, 0)];
        }),
      ),
    });
  }
  const skewRows = counts
    .filter((n) => n > 1)
    .map((n) => {
      const s = outcomes.flatMap((o) => [...pick(o, n, 'full'), ...pick(o, n, 'redeploy')]);
      const host = s.map((x) => x.result.hostSkewMs).filter((x): x is number => x !== undefined);
      const seen = s.map((x) => x.result.skewMs);
      return [n, s.length, med(host), host.length ? round(Math.max(...host), 1) : '–', med(seen), seen.length ? Math.max(...seen) : '–'];
    });
  tables.push({
    caption: 'Switch skew, first to last host (ms), over every deploy measured',
    columns: ['hosts', 'deploys', 'median by host clocks', 'max by host clocks', 'median as received', 'max as received'],
    rows: skewRows,
  });

  const first = outcomes[0];
  const ratio = (o: TreeOutcome | undefined, kind: 'full' | 'redeploy'): number => {
    const a = o ? caseOf(o, kind, most)?.median : undefined;
    const b = o ? caseOf(o, kind, 1)?.median : undefined;
    return a !== undefined && b !== undefined ? round(a / b, 2) : NaN;
  };
  const skewAll = outcomes.flatMap((o) => [...pick(o, most, 'full'), ...pick(o, most, 'redeploy')]).map((x) => x.result.hostSkewMs).filter((x): x is number => x !== undefined);
  const reFull = (o: TreeOutcome): number => round((caseOf(o, 'redeploy', most)?.median ?? NaN) / (caseOf(o, 'full', most)?.median ?? NaN), 2);
  tables.push({
    caption: `Targets (${most} hosts)`,
    columns: ['measure', 'target', 'measured', 'met'],
    rows: [
      [`${most} hosts ÷ 1 host, ${first ? treeLabel(first.id, first.stats.files) : '?'}, 1% changed`, '≤ 2', ratio(first, 'redeploy'), ratio(first, 'redeploy') <= 2 ? 'yes' : 'no'],
      [`${most} hosts ÷ 1 host, ${first ? treeLabel(first.id, first.stats.files) : '?'}, full`, '≤ 2', ratio(first, 'full'), ratio(first, 'full') <= 2 ? 'yes' : 'no'],
      [`switch skew at ${most} hosts (max, host clocks)`, '≤ 100 ms', skewAll.length ? round(Math.max(...skewAll), 1) : '–', skewAll.length && Math.max(...skewAll) <= 100 ? 'yes' : 'no'],
      ...outcomes.map((o) => [`1% changed ÷ full, ${most} hosts, ${treeLabel(o.id, o.stats.files)}`, '≤ 0.3', reFull(o), reFull(o) <= 0.3 ? 'yes' : 'no']),
    ],
  });

  const charts: Result['charts'] = outcomes.filter((o) => o.counts.length > 2).map((o) => ({
    file: `fleet-hosts-${o.id}`,
    caption: `Deploy time against host count, ${treeLabel(o.id, o.stats.files)}`,
    spec: {
      type: 'line' as const,
      title: `Fleet deploy, ${treeLabel(o.id, o.stats.files)}`,
      xLabel: 'hosts',
      yLabel: 'median wall time (ms)',
      series: (['full', 'redeploy'] as const).map((kind) => ({
        name: kind === 'full' ? 'full deploy' : '1% changed',
        points: o.counts.map((n): [number, number] => [n, caseOf(o, kind, n)?.median ?? 0]),
      })),
    },
  }));

  const notes = [
    `Every host is an OpenSSH sshd in its own network namespace on this machine (test/harness/fleet.ts), so all ${most} "hosts" and the deploying process share its ${machine.cores} CPU cores and one disk: the receiving side's work (sshd, rsync, the shell programs, hardlinking or writing every file) grows with the host count on the same cores, which a real fleet spreads over its machines.`,
    `Each deploy is the library's fleetDeploy (what the CLI runs, without the process start): connect (one ssh master per host), lock, place the content (unchanged files, by the host's current manifest, listed by the host from its two manifests, hardlinked there and checked against the build's hashes and modes; the new manifest sent as a delta and the rest with rsync), prepare and arm, switch, commit, close. ${runs} measured round${runs === 1 ? '' : 's'} after ${warmup} warm-up, cases alternated and rotated every round; medians.`,
    '"full": into roots that never held a release (every file sent). "1% changed": the same roots as the previous run, after changing the content of 1% of the files (untimed), so rsync sends those and the host hardlinks the rest from the current release.',
    `CPU (from /proc/<pid>/stat, user + system): "deploying side" is this process and every child it reaped (the ssh master connections, ssh clients, rsync senders); "targets" is what each host's sshd listener reaped (its connection's sshd, the shells, the rsync receivers). On separate machines only the deploying side's CPU would be shared; here both sides share ${machine.cores} cores.`,
    'Switch skew "by host clocks" is the spread of the ctimes the renames gave the new `current` links (the hosts share this machine\'s clock); "as received" is the spread of the switch confirmations as the deploying process read them.',
    `Trees: ${outcomes.map((o) => `${treeLabel(o.id, o.stats.files)} (${(o.stats.bytes / 1024 ** 2).toFixed(1)} MiB, ${o.changed} changed per redeploy, ${o.samples.length / o.counts.length / 2} measured rounds)`).join('; ')}.`,
    runNote(started, machine),
  ];

  return {
    name: 'fleet',
    title: 'Fleet deploys over ssh: 1, 3 and 10 hosts',
    description: 'Deploy time as the number of hosts grows, the skew between the first and the last host to switch, and a redeploy with 1% of the files changed against a full one.',
    machine,
    quick: opts.quick,
    tables,
    charts,
    notes,
  };
}
