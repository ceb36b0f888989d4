// What one fleet deploy costs the deploying machine per host, from 1 to 20 hosts (sshd in
// network namespaces): CPU, memory and open connections. Per-host cost, not wall time, is what
// this 2-core machine can show; docs/fleet.md builds the 1,000-host model from these numbers.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetDeploy } from '../src/remote/deploy.ts';
import { createFleet, type Fleet } from '../test/harness/fleet.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { allProcs, readProc, type Proc } from './lib/proc.ts';
import { median } from './lib/measure.ts';
import type { Result } from './lib/report.ts';
import { makeTree, TREE_PRESETS } from './lib/tree.ts';

export interface FleetScaleOptions {
  quick: boolean;
  log?: (line: string) => void;
}

const SAMPLE_MS = 20;

/** This process's live descendants, leaving out the subtrees of `exclude` (the fleet harness's own processes). */
function descendants(exclude: ReadonlySet<number> = new Set()): Proc[] {
  const all = allProcs();
  const children = new Map<number, Proc[]>();
  for (const p of all) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p]);
  const out: Proc[] = [];
  const stack = [process.pid];
  while (stack.length > 0) {
    for (const c of children.get(stack.pop() as number) ?? []) {
      if (exclude.has(c.pid)) continue;
      out.push(c);
      stack.push(c.pid);
    }
  }
  return out;
}

/** ssh master connections among our descendants: each is one TCP connection to a host. */
function isMaster(p: Proc): boolean {
  if (p.comm !== 'ssh') return false;
  try {
    return readFileSync(`/proc/${p.pid}/cmdline`, 'utf8').includes('ControlMaster=yes');
  } catch {
    return false;
  }
}

/** Proportional set size (shared pages divided among their users), bytes; 0 once gone. */
function pssOf(pid: number | 'self'): number {
  try {
    return Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

interface Sample {
  hosts: number;
  parallel: number;
  wallMs: number;
  /** CPU of this process and every child it reaped, ms. */
  cpuMs: number;
  /** Most ssh master connections open at once. */
  maxConnections: number;
  /** Most processes under this one at once (ssh masters, ssh clients, rsync senders). */
  maxChildren: number;
  /** Peak of this process's PSS plus its descendants', bytes. */
  peakPss: number;
  /** This process's own PSS at its peak during the deploy, bytes. */
  peakNodePss: number;
}

async function measure(fleet: Fleet, harness: ReadonlySet<number>, src: string, n: number, parallel: number, serial: number): Promise<Sample> {
  const hosts = fleet.hosts.slice(0, n).map((h) => ({ host: h.alias }));
  const root = `scale-${n}-${serial}`;
  let maxConnections = 0;
  let maxChildren = 0;
  let peakPss = 0;
  let peakNodePss = 0;
  let ticks = 0;
  const sample = (): void => {
    const ds = descendants(harness);
    maxConnections = Math.max(maxConnections, ds.filter(isMaster).length);
    maxChildren = Math.max(maxChildren, ds.length);
    // smaps_rollup walks every mapping: memory is read on every fifth tick only.
    if (ticks++ % 5 !== 0) return;
    const node = pssOf('self');
    peakNodePss = Math.max(peakNodePss, node);
    peakPss = Math.max(peakPss, node + ds.reduce((sum, p) => sum + pssOf(p.pid), 0));
  };
  const self0 = readProc(process.pid)?.cpuMs ?? 0;
  const timer = setInterval(sample, SAMPLE_MS);
  const t0 = performance.now();
  try {
    await fleetDeploy(src, `/srv/${root}`, { hosts, parallel, ssh: { configFile: fleet.sshConfigPath }, fsync: false });
  } finally {
    clearInterval(timer);
  }
  const wallMs = performance.now() - t0;
  // Children are counted in cutime/cstime once reaped; the masters end with the deploy.
  for (let i = 0; i < 60 && descendants(harness).length > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
  const cpuMs = (readProc(process.pid)?.cpuMs ?? 0) - self0;
  await Promise.all(fleet.hosts.slice(0, n).map((h) => rm(join(h.srvDir, root), { recursive: true, force: true })));
  return { hosts: n, parallel, wallMs, cpuMs, maxConnections, maxChildren, peakPss, peakNodePss };
}

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;
const mib = (b: number): number => round(b / 1024 ** 2, 1);

/** Full deploys of a 1,000-file site to 1, 5, 10 and 20 hosts; what each costs per host. */
export async function runFleetScaleBench(opts: FleetScaleOptions): Promise<Result> {
  const log = opts.log ?? (() => undefined);
  const started = Date.now();
  const machine = await describeMachine({ tmpDir: tmpdir() });
  const counts = opts.quick ? [1, 3] : [1, 5, 10, 20];
  const runs = opts.quick ? 1 : 2;
  // --parallel 10 (the default) and 5: below the host count from 10 hosts on.
  const parallels = opts.quick ? [2] : [10, 5];
  const work = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-scale-'));
  const t0 = Date.now();
  const fleet = await createFleet(Math.max(...counts), { prefix: 'afs' });
  log(`${fleet.hosts.length} namespace hosts up in ${Date.now() - t0} ms`);
  // What runs under this process before any deploy (sshd listeners, namespace holders, the loader's helpers) is not the deploy's.
  const harness = new Set(descendants().map((p) => p.pid));
  const samples: Sample[] = [];
  try {
    const src = join(work, 'src');
    const stats = await makeTree(src, TREE_PRESETS['1k']);
    log(`tree: ${stats.files} files, ${mib(stats.bytes)} MiB`);
    let serial = 0;
    // Rounds alternate the host counts so drift on the shared machine hits them alike; one warm-up.
    for (let r = -1; r < runs; r++) {
      for (const parallel of parallels) {
        for (const n of r % 2 === 0 ? counts : [...counts].reverse()) {
          const s = await measure(fleet, harness, src, n, parallel, ++serial);
          log(`  round ${r + 1}/${runs} ${n} hosts, --parallel ${parallel}: ${s.wallMs.toFixed(0)} ms, cpu ${s.cpuMs} ms, ${s.maxConnections} connections, ${s.maxChildren} processes, ${mib(s.peakPss)} MiB`);
          if (r >= 0) samples.push(s);
        }
      }
    }
  } finally {
    await fleet.destroy();
    await rm(work, { recursive: true, force: true });
  }

  const rows = parallels.flatMap((parallel) =>
    counts.map((n) => {
      const s = samples.filter((x) => x.hosts === n && x.parallel === parallel);
      const cpu = median(s.map((x) => x.cpuMs));
      const pss = median(s.map((x) => x.peakPss));
      return [n, parallel, round(median(s.map((x) => x.wallMs)), 0), round(cpu, 0), round(cpu / n, 0), Math.max(...s.map((x) => x.maxConnections)), Math.max(...s.map((x) => x.maxChildren)), mib(median(s.map((x) => x.peakNodePss))), mib(pss), mib(pss / n)];
    }),
  );
  const per = (n: number, parallel: number): { cpu: number } => {
    const s = samples.filter((x) => x.hosts === n && x.parallel === parallel);
    return { cpu: median(s.map((x) => x.cpuMs)) / n };
  };
  const most = Math.max(...counts);
  const p0 = parallels[0] as number;
  const cpuFlat = round(per(most, p0).cpu / per(1, p0).cpu, 2);
  const conn = Math.max(...samples.filter((x) => x.hosts === most).map((x) => x.maxConnections));
  return {
    name: 'fleet-scale',
    title: `Fleet scale: the deploying side's cost per host, 1 to ${most} hosts`,
    description: `Full deploys of a 1,000-file site to ${counts.join(', ')} sshd hosts in network namespaces, with --parallel ${parallels.join(' and ')}: the deploying machine's CPU, memory and open connections, per host.`,
    machine,
    quick: opts.quick,
    tables: [
      {
        caption: 'Per deploy (medians over the measured rounds; connections and processes are the most seen at once)',
        columns: ['hosts', '--parallel', 'wall ms', 'CPU ms (node, ssh, rsync)', 'CPU ms per host', 'ssh connections', 'child processes', 'node PSS MiB', 'PSS MiB with children', 'PSS MiB per host'],
        rows,
      },
      {
        caption: `Targets (${most} hosts)`,
        columns: ['measure', 'target', 'measured', 'met'],
        rows: [
          [`CPU per host, ${most} hosts ÷ 1 host (--parallel ${p0})`, 'flat (≤ 1.2)', cpuFlat, cpuFlat <= 1.2 ? 'yes' : 'no'],
          [`open ssh connections at ${most} hosts`, `≤ --parallel (${Math.min(...parallels)})`, conn, conn <= Math.min(...parallels) ? 'yes' : 'no'],
        ],
      },
    ],
    charts: [
      {
        file: 'fleet-scale-cpu',
        caption: 'Deploying side CPU per host against host count',
        spec: {
          type: 'line' as const,
          title: 'Fleet deploy, 1,000 files: CPU per host on the deploying side',
          xLabel: 'hosts',
          yLabel: 'median CPU ms per host',
          series: parallels.map((parallel) => ({ name: `--parallel ${parallel}`, points: counts.map((n): [number, number] => [n, round(per(n, parallel).cpu, 0)]) })),
        },
      },
    ],
    notes: [
      `Every host is an sshd in its own network namespace on this machine (test/harness/fleet.ts). Each deploy is the library's fleetDeploy with --no-fsync into a root that never held a release; ${runs} measured round${runs === 1 ? '' : 's'} after one warm-up, host counts alternated forwards and backwards.`,
      `Sampled every ${SAMPLE_MS} ms from /proc: "ssh connections" counts our ssh master processes (one TCP connection each), "child processes" every process the deploy started under this one (the fleet harness's sshd listeners and their sessions, which are the hosts' side, are left out), memory is the proportional set size (PSS, shared pages divided among the processes sharing them) of this process plus theirs, read every ${SAMPLE_MS * 5} ms. CPU is this process's user + system time plus that of every child it reaped (ssh masters and clients, rsync senders).`,
      'A fleet deploy keeps one master connection per host from its lock to its commit: the connection holds the host\'s lock and carries the armed switch, so the connections grow with the hosts of the rollout, not with --parallel, which bounds the hosts worked on at once (copy and prepare).',
      runNote(started, machine),
    ],
  };
}
