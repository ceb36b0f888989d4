// What copying a release costs with the standard tools, so our own copy has a yardstick:
// cp -a is 1.0×, and hardlinking (cp -al) shows the floor for "nothing changed".
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeMachine, runNote } from './lib/env.ts';
import { pairedRuns, timeCommand } from './lib/measure.ts';
import type { CaseSummary, PairedCase } from './lib/measure.ts';
import type { Result, ResultTable } from './lib/report.ts';
import { copyDataSets, mutateFraction, type DataSet } from './lib/tree.ts';
import type { TreeStats } from './lib/tree.ts';

/**
 * A way of copying a release. `src` is the new release's tree, `dst` a path that does not exist
 * yet (its parent does) and must hold the copy when `run` resolves, `prev` an identical copy of
 * `src` made earlier (the previous release, for tools that link or diff against it).
 */
export interface CopyCase {
  name: string;
  run(src: string, dst: string, prev: string): Promise<void>;
}

export interface CopyBaselineOptions {
  quick: boolean;
  /** More cases measured alongside the standard tools, e.g. our own copy. */
  extraCases?: CopyCase[];
  /** Measured rounds per data set; default 5 (quick: 2). */
  runs?: number;
  /** Progress lines; default silent. */
  log?: (line: string) => void;
}

const BASELINE = 'cp -a';
const LINK_DEST_CHANGED = 'rsync -a --link-dest (1% changed)';

async function sh(cmd: string, args: string[]): Promise<void> {
  await timeCommand(cmd, args);
}

/** rm -rf: two to eight times faster than fs.rm on big trees, which adds up over 100k-file runs. */
async function remove(path: string): Promise<void> {
  await sh('rm', ['-rf', '--', path]);
}

/** The standard tools. `prev` for --link-dest is an unchanged copy, so rsync links every file. */
export const STANDARD_CASES: CopyCase[] = [
  { name: 'cp -a', run: (src, dst) => sh('cp', ['-a', src, dst]) },
  // Trailing slash on src: copy its contents into dst rather than nest src inside it.
  { name: 'rsync -a', run: (src, dst) => sh('rsync', ['-a', `${src}/`, dst]) },
  { name: 'rsync -a --link-dest', run: (src, dst, prev) => sh('rsync', ['-a', `--link-dest=${prev}`, `${src}/`, dst]) },
  { name: 'cp -al', run: (src, dst) => sh('cp', ['-al', src, dst]) },
];


interface SetOutcome {
  set: DataSet;
  stats: TreeStats;
  cases: CaseSummary[];
  changedFiles: number;
}

async function measureSet(set: DataSet, cases: CopyCase[], runs: number, warmup: number, log: (l: string) => void): Promise<SetOutcome> {
  const root = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-copy-'));
  try {
    const src = join(root, 'src');
    const prev = join(root, 'prev');
    const prevChanged = join(root, 'prev-changed');
    const dst = join(root, 'dst');
    let t = Date.now();
    const stats = await set.make(src);
    await sh('cp', ['-a', src, prev]);
    // The 1%-changed previous release: rsync must copy those files and may link the rest.
    let changedFiles = 0;
    if (set.files !== null) {
      await sh('cp', ['-a', src, prevChanged]);
      changedFiles = (await mutateFraction(prevChanged, 0.01, 7)).length;
    }
    await sh('sync', ['-f', root]);
    log(`${set.label}: ${(stats.bytes / 1024 ** 2).toFixed(1)} MiB made in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const srcEntries = (await readdir(src)).length;

    const all: CopyCase[] = [...cases];
    if (set.files !== null) {
      all.splice(all.findIndex((c) => c.name === 'rsync -a --link-dest') + 1, 0, {
        name: LINK_DEST_CHANGED,
        run: (s, d) => sh('rsync', ['-a', `--link-dest=${prevChanged}`, `${s}/`, d]),
      });
    }
    const paired: PairedCase[] = all.map((c) => ({
      name: c.name,
      setup: async () => {
        await remove(dst);
        // syncfs flushes the previous runs' writes so their writeback does not land in this run.
        await sh('sync', ['-f', root]);
      },
      run: () => c.run(src, dst, prev),
      teardown: async () => {
        // A case that nests or skips the tree would look fast; check the shape before deleting.
        const got = await readdir(dst).catch(() => []);
        if (got.length !== srcEntries) throw new Error(`${c.name} left ${got.length} entries in dst, expected ${srcEntries}`);
        await remove(dst);
      },
    }));
    t = Date.now();
    const result = await pairedRuns(paired, {
      runs,
      warmup,
      baseline: BASELINE,
      onSample: (name, ms, round) => log(`  ${set.id} round ${round + 1}/${runs} ${name}: ${ms.toFixed(1)} ms`),
    });
    log(`${set.label}: measured in ${((Date.now() - t) / 1000).toFixed(1)} s`);
    return { set, stats, cases: result.cases, changedFiles };
  } finally {
    await remove(root);
  }
}

/** Measures cp -a, rsync -a, rsync --link-dest and cp -al (plus `extraCases`) on each data set. */
export async function runCopyBaselines(opts: CopyBaselineOptions): Promise<Result> {
  const { quick, extraCases = [], log = () => {} } = opts;
  const runs = opts.runs ?? (quick ? 2 : 5);
  const warmup = quick ? 0 : 1;
  const started = Date.now();
  const machine = await describeMachine({ tmpDir: tmpdir() });
  const cases = [...STANDARD_CASES, ...extraCases];

  const outcomes: SetOutcome[] = [];
  for (const set of copyDataSets(quick, ['1k', '10k'])) outcomes.push(await measureSet(set, cases, runs, warmup, log));

  // Every case of any set, in first-seen order, so the tables line up.
  const caseNames = [...new Set(outcomes.flatMap((o) => o.cases.map((c) => c.name)))];
  const pick = (o: SetOutcome, name: string): CaseSummary | undefined => o.cases.find((c) => c.name === name);
  const grid = (f: (c: CaseSummary) => number): (string | number)[][] =>
    caseNames.map((name) => [name, ...outcomes.map((o) => { const c = pick(o, name); return c ? f(c) : '–'; })]);

  const tables: ResultTable[] = [
    { caption: 'Median wall time (ms)', columns: ['case', ...outcomes.map((o) => o.set.label)], rows: grid((c) => c.median) },
    { caption: `Ratio of median to ${BASELINE} (lower is faster)`, columns: ['case', ...outcomes.map((o) => o.set.label)], rows: grid((c) => Math.round(c.ratio * 1000) / 1000) },
    {
      caption: 'Every case: spread of the runs',
      columns: ['data set', 'case', 'runs', 'median ms', 'min ms', 'max ms', `× ${BASELINE}`],
      rows: outcomes.flatMap((o) => o.cases.map((c) => [o.set.label, c.name, c.samples.length, c.median, c.min, c.max, Math.round(c.ratio * 1000) / 1000])),
    },
  ];

  const treeOutcomes = outcomes.filter((o) => o.set.files !== null);
  const ratioRows = (o: SetOutcome | undefined): { label: string; value: number }[] =>
    (o?.cases ?? []).map((c) => ({ label: c.name, value: Math.round(c.ratio * 1000) / 1000 }));
  const tenK = outcomes.find((o) => o.set.id === '10k');
  const large = outcomes.find((o) => o.set.id === 'large');
  const charts: Result['charts'] = [
    {
      file: 'copy-baselines-time-vs-files',
      caption: 'Copy time against file count (log–log)',
      spec: {
        type: 'line',
        title: 'Copying a tree of small files',
        xLabel: 'files (256 B–4 KiB each)',
        yLabel: 'median wall time (ms)',
        logX: true,
        logY: true,
        series: caseNames.map((name) => ({
          name,
          points: treeOutcomes.flatMap((o): [number, number][] => { const c = pick(o, name); return c ? [[o.set.files!, c.median]] : []; }),
        })),
      },
    },
    {
      file: 'copy-baselines-ratio-10k',
      caption: `Time relative to ${BASELINE}, 10,000 files`,
      spec: { type: 'bar', title: `10,000 small files: time relative to ${BASELINE}`, unit: '×', referenceLine: 1, rows: ratioRows(tenK) },
    },
    {
      file: 'copy-baselines-ratio-large',
      caption: `Time relative to ${BASELINE}, ${large?.set.label ?? 'large files'}`,
      spec: { type: 'bar', title: `${large?.set.label ?? 'Large files'}: time relative to ${BASELINE}`, unit: '×', referenceLine: 1, rows: ratioRows(large) },
    },
  ];

  const throughput = large
    ? large.cases.map((c) => `${c.name} ${formatMBps(large.stats.bytes, c.median)}`).join(', ')
    : '';
  const notes = [
    `Each data set: ${runs} measured round${runs === 1 ? '' : 's'}${warmup ? ` after ${warmup} warm-up round` : ''}, cases alternated and their order rotated every round; the table shows medians.`,
    'Small-file trees: 100 files per directory, sizes 256 B–4 KiB, pseudo-random content from a fixed seed. Large files: pseudo-random content.',
    'Source and target are on the same filesystem. Before every run (untimed) the target is removed and `sync -f` flushes the filesystem, so one run\'s writeback does not slow the next; the source stays in the page cache.',
    'A copy counts as done when the command exits: its data may still be in the page cache, not yet on disk.',
    'Times include starting the process (a few ms), which weighs most in the 1,000-file case.',
    `"rsync -a --link-dest" links against an unchanged previous copy (every file hardlinked); "${LINK_DEST_CHANGED}" against a previous copy where ${treeOutcomes.map((o) => `${o.changedFiles} of ${o.stats.files}`).join(', ')} files differ.`,
    ...(throughput ? [`Large-file throughput (median): ${throughput}.`] : []),
    runNote(started, machine),
  ];

  return {
    name: 'copy-baselines',
    title: 'Copy baselines: cp, rsync, hardlinks',
    description:
      'How long the standard tools take to put a release tree into a fresh directory, for 1,000 to 100,000 small files and for a few large files. `cp -a` is the 1.0× reference for every other way of copying, ours included.',
    machine,
    quick,
    tables,
    charts,
    notes,
  };
}

function formatMBps(bytes: number, ms: number): string {
  return `${Math.round(bytes / 1024 ** 2 / (ms / 1000)).toLocaleString('en-US')} MiB/s`;
}
