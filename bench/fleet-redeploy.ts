// The fleet target of the release-manifest work: a redeploy to 3 hosts of a 10k-file build with
// 1% of its files changed, against a full deploy of the same build to 3 fresh roots, alternated.
// Each host is an sshd in a network namespace on this machine (test/harness/fleet.ts).
import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetDeploy, type FleetDeployResult } from '../src/remote/deploy.ts';
import { createFleet } from '../test/harness/fleet.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { median, pairedRuns } from './lib/measure.ts';
import type { Result } from './lib/report.ts';
import { makeTree, mutateFraction, TREE_PRESETS } from './lib/tree.ts';

const HOSTS = 3;
const FULL = `full deploy, ${HOSTS} hosts (new roots)`;
const CHANGED = `1% changed, ${HOSTS} hosts (redeploy)`;

type Phases = FleetDeployResult['timings'];

export async function runFleetRedeployBench(opts: { quick: boolean; log?: (line: string) => void }): Promise<Result> {
  const log = opts.log ?? ((): void => undefined);
  const started = Date.now();
  const machine = await describeMachine({ tmpDir: tmpdir() });
  const runs = opts.quick ? 1 : 5;
  const fleet = await createFleet(HOSTS, { prefix: 'afr' });
  const work = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-fleet-redeploy-'));
  const phases = new Map<string, Phases[]>([
    [FULL, []],
    [CHANGED, []],
  ]);
  const sent = new Map<string, number[]>([
    [FULL, []],
    [CHANGED, []],
  ]);
  try {
    const base = join(work, 'src');
    const stats = await makeTree(base, opts.quick ? TREE_PRESETS['1k'] : TREE_PRESETS['10k']);
    const src = join(work, 'src-changed');
    await cp(base, src, { recursive: true });
    const options = { hosts: fleet.hosts.map((h) => ({ host: h.alias })), ssh: { configFile: fleet.sshConfigPath } };
    const keep = (name: string, r: FleetDeployResult): void => {
      phases.get(name)?.push(r.timings);
      sent.get(name)?.push(r.hosts.reduce((n, h) => n + (h.transferred ?? 0), 0));
    };
    let serial = 0;
    let fullRoot = '';
    let seed = 0;
    let changed = 0;
    const result = await pairedRuns(
      [
        {
          name: FULL,
          setup: () => {
            fullRoot = `bench-full-${++serial}`;
            return Promise.resolve();
          },
          run: async () => keep(FULL, await fleetDeploy(base, `/srv/${fullRoot}`, options)),
          teardown: async () => {
            await Promise.all(fleet.hosts.map((h) => rm(join(h.srvDir, fullRoot), { recursive: true, force: true })));
          },
        },
        {
          // The previous release on the hosts is the last round's (the warm-up round makes the first).
          name: CHANGED,
          setup: async () => {
            changed = (await mutateFraction(src, 0.01, ++seed)).length;
          },
          run: async () => keep(CHANGED, await fleetDeploy(src, '/srv/bench-redeploy', options)),
        },
      ],
      { runs, warmup: 1, baseline: FULL, onSample: (name, ms, round) => log(`  round ${round + 1}/${runs} ${name}: ${ms.toFixed(0)} ms`) },
    );
    const full = result.cases.find((c) => c.name === FULL);
    const re = result.cases.find((c) => c.name === CHANGED);
    const ratio = full && re ? re.median / full.median : NaN;
    const r3 = (x: number): number => Math.round(x * 1000) / 1000;
    const phaseRow = (name: string): (string | number)[] => {
      const list = (phases.get(name) ?? []).slice(-runs);
      const m = (k: keyof Phases): number => Math.round(median(list.map((p) => p[k])));
      return [name, m('lockMs'), m('prepareMs'), m('switchMs'), m('finishMs'), Math.round(median((sent.get(name) ?? []).slice(-runs)))];
    };
    return {
      name: 'fleet-redeploy',
      title: `Fleet redeploy with 1% changed, ${HOSTS} hosts`,
      description: `A fleet redeploy of a ${stats.files.toLocaleString('en-US')}-file build (256 B–4 KiB files) with ${changed} files changed, to ${HOSTS} hosts that hold the previous build, against a full deploy of the same build to ${HOSTS} new roots; alternated, medians.`,
      machine,
      quick: opts.quick,
      charts: [],
      tables: [
        {
          caption: 'Target',
          columns: ['target', 'goal', 'measured', 'met'],
          rows: [[`${CHANGED} ÷ ${FULL}`, '≤ 0.3', r3(ratio), ratio <= 0.3 ? 'met' : 'MISSED']],
        },
        {
          caption: `Median wall time of ${runs} alternated rounds (after 1 warm-up round)`,
          columns: ['case', 'median ms', 'min ms', 'max ms', `× ${FULL}`],
          rows: result.cases.map((c) => [c.name, Math.round(c.median), Math.round(c.min), Math.round(c.max), r3(c.ratio)]),
        },
        {
          caption: 'Where the time goes (medians, ms): connect and lock, content and prepare, switch, commit (after-switch scan and prune included); files rsync sent, all hosts',
          columns: ['case', 'lock', 'prepare', 'switch', 'finish', 'files sent'],
          rows: [phaseRow(FULL), phaseRow(CHANGED)],
        },
      ],
      notes: [
        'A redeploy reads each host\'s current manifest (the first host sends it whole, the others its SHA-256), hardlinks the unchanged files on the host from the current release and checks them there against the build\'s hashes (sha256sum -c: only the count and the failures come back), and sends the changed ones with rsync; after its switch it scans /proc on each host for processes left on the previous release (a full deploy into a new root has none to look for).',
        `Every "host" shares this machine's ${machine.cores} cores and disk with the deploying process, so the hosts' work (sshd, shells, rsync, cp, sha256sum) is paid on the same cores.`,
        runNote(started, machine),
      ],
    };
  } finally {
    await rm(work, { recursive: true, force: true });
    await fleet.destroy();
  }
}
