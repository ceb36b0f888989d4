// Switch and rollback latency against release size: the switch is one symlink and one rename, so
// a release of 100,000 files must switch as fast as one of 10 (nothing may walk the tree).
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layoutOf } from '../src/act/layout.ts';
import { switchCurrent } from '../src/act/switch.ts';
import { benchBin } from './bin.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { pairedRuns, timeCommand } from './lib/measure.ts';
import type { CaseSummary, PairedCase } from './lib/measure.ts';
import type { Result } from './lib/report.ts';
import { TREE_PRESETS, makeTree } from './lib/tree.ts';
import type { TreeOptions } from './lib/tree.ts';

type Log = (line: string) => void;

const ENV = { ...process.env, NO_COLOR: '1' };

interface Size {
  files: number;
  label: string;
  tree: TreeOptions;
}

function sizes(quick: boolean): Size[] {
  const all: Size[] = [
    { files: 10, label: '10 files', tree: { dirs: 1, filesPerDir: 10, minSize: 256, maxSize: 4096, seed: 1 } },
    { files: 1_000, label: '1,000 files', tree: TREE_PRESETS['1k'] },
    { files: 10_000, label: '10,000 files', tree: TREE_PRESETS['10k'] },
    { files: 100_000, label: '100,000 files', tree: TREE_PRESETS['100k'] },
  ];
  return quick ? all.slice(0, 2) : all;
}

async function cli(args: string[]): Promise<void> {
  await timeCommand(process.execPath, [benchBin(), ...args], { env: ENV });
}

interface Root {
  size: Size;
  root: string;
  /** Which of the two releases is live now; every run switches to the other one. */
  live: 'a' | 'b';
}

const other = (id: 'a' | 'b'): 'a' | 'b' => (id === 'a' ? 'b' : 'a');

export async function runSwitchBench(opts: { quick: boolean; log?: Log }): Promise<Result> {
  const { quick } = opts;
  const log = opts.log ?? ((): void => undefined);
  const started = Date.now();
  const machine = await describeMachine();
  const work = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-switch-'));
  const rollbackRuns = quick ? 2 : 21;
  const checkedRuns = quick ? 2 : 5;
  const switchRuns = quick ? 20 : 300;
  let rollback: CaseSummary[] = [];
  let checked: CaseSummary[] = [];
  let library: CaseSummary[] = [];
  try {
    const roots: Root[] = [];
    for (const size of sizes(quick)) {
      const t = Date.now();
      const build = join(work, `build-${size.files}`);
      const root = join(work, `root-${size.files}`);
      await makeTree(build, size.tree);
      // Two real releases of the same size: a full copy, then a second deploy.
      await cli(['deploy', build, root, '--quiet', '--release-id', 'a']);
      await cli(['deploy', build, root, '--quiet', '--release-id', 'b', '--strategy', 'hardlink']);
      await timeCommand('rm', ['-rf', '--', build]);
      roots.push({ size, root, live: 'b' });
      log(`switch: ${size.label}: two releases made in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    }
    await timeCommand('sync', ['-f', work]);

    // Sizes alternate round by round, so drift on a shared machine hits them all alike.
    // The switch path: `--verify off`, so nothing but the switch and its bookkeeping is timed (the
    // target: nothing walks the tree). The default, whose re-hash of the release comes after the
    // switch, is timed beside it: what the whole command then costs.
    const rollbackCases = (flags: string[]): PairedCase[] =>
      roots.map((r) => ({
        name: r.size.label,
        run: async () => {
          const to = other(r.live);
          await cli(['rollback', r.root, '--to', to, '--quiet', ...flags]);
          r.live = to;
        },
      }));
    rollback = (await pairedRuns(rollbackCases(['--verify', 'off']), { runs: rollbackRuns, warmup: quick ? 1 : 2, onSample: (n, ms, i) => log(`  rollback ${i + 1}/${rollbackRuns} ${n}: ${ms.toFixed(1)} ms`) })).cases;
    checked = (await pairedRuns(rollbackCases([]), { runs: checkedRuns, warmup: 1, onSample: (n, ms, i) => log(`  rollback, default check ${i + 1}/${checkedRuns} ${n}: ${ms.toFixed(1)} ms`) })).cases;

    const libraryCases: PairedCase[] = roots.map((r) => {
      const layout = layoutOf(r.root);
      return {
        name: r.size.label,
        run: async () => {
          const to = other(r.live);
          await switchCurrent(layout, to, { durable: true });
          r.live = to;
        },
      };
    });
    library = (await pairedRuns(libraryCases, { runs: switchRuns, warmup: 10 })).cases;
    log(`switch: library switch medians ${library.map((c) => `${c.name} ${c.median.toFixed(2)} ms`).join(', ')}`);
  } finally {
    await timeCommand('rm', ['-rf', '--', work]);
  }

  const smallest = rollback[0];
  const biggest = rollback[rollback.length - 1];
  const ratio = smallest && biggest ? biggest.median / smallest.median : NaN;
  const libRatio = library.length > 1 ? library[library.length - 1]!.median / library[0]!.median : NaN;
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  return {
    name: 'switch',
    title: 'Switch and rollback latency against release size',
    description:
      'The library switch (`switchCurrent`: a symlink in `.tmp/`, one rename over `current`, an fsync of the root) and a whole `atomic-deploy rollback --to <id> --verify off` (Node start-up, lock, recovery check, switch, release log), each alternating a root between two releases of the same size; beside them, the default rollback, which also re-hashes the release once it is live.',
    machine,
    quick,
    tables: [
      {
        caption: 'Targets',
        columns: ['target', 'goal', 'measured', 'met'],
        rows: [
          [
            `CLI rollback --verify off on ${biggest?.name ?? '?'} / on ${smallest?.name ?? '?'}`,
            '≤ 1.2',
            r2(ratio),
            ratio <= 1.2 ? 'met' : 'MISSED',
          ],
        ],
      },
      {
        caption: 'Median latency (ms) by release size',
        columns: ['release size', 'library switch', 'CLI rollback --verify off', 'rollback × smallest', 'CLI rollback (default: re-hash after the switch)'],
        rows: rollback.map((c, i) => [c.name, r2(library[i]?.median ?? NaN), Math.round(c.median * 10) / 10, r2(c.ratio), Math.round((checked[i]?.median ?? NaN) * 10) / 10]),
      },
      {
        caption: 'Spread of the runs (ms)',
        columns: ['release size', 'what', 'runs', 'median', 'min', 'max'],
        rows: [
          ...library.map((c) => [c.name, 'library switch', c.samples.length, r2(c.median), r2(c.min), r2(c.max)]),
          ...rollback.map((c) => [c.name, 'CLI rollback --verify off', c.samples.length, Math.round(c.median), Math.round(c.min), Math.round(c.max)]),
          ...checked.map((c) => [c.name, 'CLI rollback (default)', c.samples.length, Math.round(c.median), Math.round(c.min), Math.round(c.max)]),
        ],
      },
    ],
    charts: [
      {
        file: 'switch-latency',
        caption: 'Switch and rollback latency against release size (log–log)',
        spec: {
          type: 'line',
          title: 'Latency against release size: flat',
          xLabel: 'files in each release',
          yLabel: 'median latency (ms)',
          logX: true,
          logY: true,
          series: [
            { name: 'CLI rollback --verify off', points: rollback.map((c, i) => [sizes(quick)[i]!.files, c.median] as [number, number]) },
            { name: 'library switch', points: library.map((c, i) => [sizes(quick)[i]!.files, c.median] as [number, number]) },
          ],
        },
      },
    ],
    notes: [
      `CLI rollback: ${rollbackRuns} measured rounds after ${quick ? 1 : 2} warm-up round(s); library switch: ${switchRuns} rounds after 10, in one process. Sizes alternate within every round.`,
      `Library switch, largest / smallest release: ${r2(libRatio)}×. Its time is mostly the fsync of the root directory.`,
      'A CLI rollback is mostly Node starting and loading the CLI; the switch itself is the library row.',
      `The default rollback (${checkedRuns} rounds after 1 warm-up) re-hashes the release it went to against its manifest once it is live and the lock is released (--verify warn: docs/lifecycle.md), so its command takes longer on a larger release while its switch does not: it switches where the --verify off row does, then reads the release as verify does. --verify fail makes that check before the switch instead.`,
      runNote(started, machine),
    ],
  };
}
