// What a deploy costs against the tools people would otherwise use: a full copy (cp -a = 1.0×),
// the price of durability, redeploys that hardlink unchanged files, prune, and memory.
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STANDARD_CASES } from './copy-baselines.ts';
import { benchBin } from './bin.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { median, pairedRuns, peakRssOfCommand, timeCommand } from './lib/measure.ts';
import type { CaseSummary, PairedCase } from './lib/measure.ts';
import type { Result, ResultChart, ResultTable } from './lib/report.ts';
import { copyDataSets, makeTree, mutateFraction, type DataSet } from './lib/tree.ts';
import type { TreeStats } from './lib/tree.ts';

type Log = (line: string) => void;

const BASELINE = 'cp -a';
const OURS = 'atomic-deploy deploy';
const OURS_NO_FSYNC = 'atomic-deploy deploy --no-fsync';
const ENV = { ...process.env, NO_COLOR: '1' };

async function sh(cmd: string, args: string[]): Promise<void> {
  await timeCommand(cmd, args);
}

/** rm -rf: much faster than fs.rm on 100k-file trees. */
async function remove(path: string): Promise<void> {
  await sh('rm', ['-rf', '--', path]);
}

/** Flushes earlier runs' writes, so their writeback does not land in the next timed run. */
async function settle(dir: string): Promise<void> {
  await sh('sync', ['-f', dir]);
}

async function cli(args: string[]): Promise<string> {
  return (await timeCommand(process.execPath, [benchBin(), ...args], { env: ENV })).stdout;
}

async function entryCount(dir: string): Promise<number> {
  return (await readdir(dir).catch(() => [])).length;
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
const ms = (x: number): number => Math.round(x * 10) / 10;


interface CopyOutcome {
  set: DataSet;
  stats: TreeStats;
  cases: CaseSummary[];
}

/** Full copies into a fresh directory: the standard tools and our deploy into a fresh root, alternated. */
async function measureCopy(set: DataSet, src: string, work: string, runs: number, warmup: number, log: Log): Promise<CaseSummary[]> {
  const prev = join(work, 'prev');
  const dst = join(work, 'dst');
  await sh('cp', ['-a', src, prev]);
  const srcEntries = await entryCount(src);
  const tools: PairedCase[] = STANDARD_CASES.map((c) => ({
    name: c.name,
    run: () => c.run(src, dst, prev),
  }));
  const ours = (name: string, extra: string[]): PairedCase => ({
    name,
    // --release-id: a known path to check; the root is new every run, as for a first deploy.
    run: async () => void (await cli(['deploy', src, dst, '--quiet', '--release-id', 'r', ...extra])),
  });
  const cases = [...tools, ours(OURS, []), ours(OURS_NO_FSYNC, ['--no-fsync'])].map(
    (c): PairedCase => ({
      ...c,
      setup: async () => {
        await remove(dst);
        await settle(work);
      },
      teardown: async () => {
        // A case that nests or skips the tree would look fast; check the shape before deleting.
        const copy = c.name.startsWith('atomic-deploy') ? join(dst, 'releases', 'r') : dst;
        const got = await entryCount(copy);
        await remove(dst);
        if (got !== srcEntries) throw new Error(`${c.name} left ${got} entries in ${copy}, expected ${srcEntries}`);
      },
    }),
  );
  const result = await pairedRuns(cases, {
    runs,
    warmup,
    baseline: BASELINE,
    onSample: (name, t, round) => log(`  ${set.id} round ${round + 1}/${runs} ${name}: ${t.toFixed(1)} ms`),
  });
  return result.cases;
}

/** Deploy with fsync against --no-fsync on the same tree: what durability costs. */
async function measureDurability(src: string, work: string, runs: number, warmup: number, log: Log): Promise<CaseSummary[]> {
  const dst = join(work, 'dur-root');
  const make = (name: string, extra: string[]): PairedCase => ({
    name,
    setup: async () => {
      await remove(dst);
      await settle(work);
    },
    run: async () => void (await cli(['deploy', src, dst, '--quiet', ...extra])),
    teardown: () => remove(dst),
  });
  const result = await pairedRuns([make(OURS_NO_FSYNC, ['--no-fsync']), make(OURS, [])], {
    runs,
    warmup,
    onSample: (name, t, round) => log(`  durability round ${round + 1}/${runs} ${name}: ${t.toFixed(1)} ms`),
  });
  return result.cases;
}

const HL = 'deploy --strategy hardlink';
const HL_NF = 'deploy --strategy hardlink --no-fsync';
const RS = 'rsync -a --link-dest=<previous release>';
const RSC = 'rsync -a --checksum --link-dest=<previous release>';

/**
 * Redeploys onto a previous release: our hardlink strategy against rsync --link-dest, for an
 * unchanged tree and for one with 1% of its files changed. Each of our cases has its own root,
 * where every deploy links against the one before (the changed case alternates two builds).
 */
async function measureIncremental(src: string, work: string, runs: number, warmup: number, log: Log): Promise<{ cases: CaseSummary[]; changed: number }> {
  const changedSrc = join(work, 'src-changed');
  await sh('cp', ['-a', src, changedSrc]);
  const changed = (await mutateFraction(changedSrc, 0.01, 7)).length;
  const dst = join(work, 'inc-dst');
  const roots: Record<string, { root: string; deploys: number }> = {};
  const rootFor = async (key: string): Promise<{ root: string; deploys: number }> => {
    if (!roots[key]) {
      const root = join(work, `inc-root-${Object.keys(roots).length}`);
      // The first release, untimed: a full copy of the unchanged build.
      await cli(['deploy', src, root, '--quiet']);
      roots[key] = { root, deploys: 0 };
    }
    return roots[key];
  };
  // The release made from the unchanged build: what rsync links against in both of its cases.
  const base = await rootFor('rsync-base');
  const baseRelease = join(base.root, 'releases', (await readdir(join(base.root, 'releases')))[0] as string);

  const ours = (name: string, key: string, changedEveryOther: boolean, extra: string[]): PairedCase => ({
    name,
    setup: async () => {
      await rootFor(key);
      await settle(work);
    },
    run: async () => {
      const r = roots[key]!;
      // Alternating the builds keeps exactly the changed files different from the previous release.
      const from = changedEveryOther && r.deploys % 2 === 0 ? changedSrc : src;
      r.deploys += 1;
      // --keep 0: like rsync, which only fills a directory, nothing is deleted (the default keep would prune a 10k-file release per deploy once five stand).
      await cli(['deploy', from, r.root, '--quiet', '--strategy', 'hardlink', '--keep', '0', ...extra]);
    },
  });
  const rsync = (name: string, from: string, extra: string[] = []): PairedCase => ({
    name,
    setup: async () => {
      await remove(dst);
      await settle(work);
    },
    run: () => sh('rsync', ['-a', ...extra, `--link-dest=${baseRelease}`, `${from}/`, dst]),
    teardown: () => remove(dst),
  });
  const cases: PairedCase[] = [
    ours(`${HL}, unchanged`, 'u', false, []),
    ours(`${HL_NF}, unchanged`, 'unf', false, ['--no-fsync']),
    rsync(`${RS}, unchanged`, src),
    // The correct peer: like ours, it decides by content, so it reads every file on both sides.
    rsync(`${RSC}, unchanged`, src, ['--checksum']),
    ours(`${HL}, 1% changed`, 'c', true, []),
    ours(`${HL_NF}, 1% changed`, 'cnf', true, ['--no-fsync']),
    rsync(`${RS}, 1% changed`, changedSrc),
  ];
  const result = await pairedRuns(cases, {
    runs,
    warmup,
    baseline: `${RS}, unchanged`,
    onSample: (name, t, round) => log(`  incremental round ${round + 1}/${runs} ${name}: ${t.toFixed(1)} ms`),
  });
  return { cases: result.cases, changed };
}

interface PruneSample {
  wallMs: number;
  /** The deploy's own duration up to its switch and bookkeeping, before any prune (from --json). */
  durationMs: number;
  renameMs: number;
  deleteMs: number;
  removed: number;
}

/**
 * A small deploy into a root holding an old release of `bigFiles` files: with `--keep 1` the old
 * release is pruned (renamed into .tmp/ under the lock, deleted after it), without it nothing is.
 */
async function measurePrune(big: string, small: string, work: string, runs: number, warmup: number, log: Log): Promise<{ cases: CaseSummary[]; samples: Record<string, PruneSample[]> }> {
  const root = join(work, 'prune-root');
  const samples: Record<string, PruneSample[]> = {};
  const make = (name: string, extra: string[]): PairedCase => ({
    name,
    setup: async () => {
      await remove(root);
      await cli(['deploy', small, root, '--quiet', '--release-id', 'old']);
      // The big tree as hardlinks: cheap to set up, and its deletion still unlinks every name.
      await sh('cp', ['-al', big, join(root, 'releases', 'old', 'big')]);
      await cli(['deploy', small, root, '--quiet', '--release-id', 'prev']);
      await settle(work);
    },
    run: async () => {
      const t = performance.now();
      const out = await cli(['deploy', small, root, '--json', ...extra]);
      const wallMs = performance.now() - t;
      const r = JSON.parse(out) as { durationMs: number; prune?: { renameMs: number; deleteMs: number; removed: unknown[] } };
      (samples[name] ??= []).push({ wallMs, durationMs: r.durationMs, renameMs: r.prune?.renameMs ?? 0, deleteMs: r.prune?.deleteMs ?? 0, removed: r.prune?.removed.length ?? 0 });
    },
    teardown: () => remove(root),
  });
  const result = await pairedRuns([make('deploy', []), make('deploy --keep 1', ['--keep', '1'])], {
    runs,
    warmup,
    onSample: (name, t, round) => log(`  prune round ${round + 1}/${runs} ${name}: ${t.toFixed(1)} ms`),
  });
  // pairedRuns records warm-up rounds nowhere; drop ours too (the first sample of each case).
  for (const k of Object.keys(samples)) samples[k] = samples[k]!.slice(warmup);
  if ((samples['deploy --keep 1'] ?? []).some((s) => s.removed !== 1)) throw new Error('deploy --keep 1 did not prune exactly the old release');
  return { cases: result.cases, samples };
}

/** Peak RSS (KiB) of a first deploy of `src` into a fresh root; the largest of `runs`. */
async function peakRss(src: string, work: string, runs: number): Promise<number[]> {
  const root = join(work, 'rss-root');
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    await remove(root);
    out.push(await peakRssOfCommand(process.execPath, [benchBin(), 'deploy', src, root, '--quiet'], { env: ENV }));
  }
  await remove(root);
  return out;
}

export async function runThroughput(opts: { quick: boolean; log?: Log }): Promise<Result> {
  const { quick } = opts;
  const log = opts.log ?? ((): void => undefined);
  const started = Date.now();
  const machine = await describeMachine({ tmpDir: tmpdir() });
  const runs = quick ? 1 : 5;
  const warmup = quick ? 0 : 1;
  const copy: CopyOutcome[] = [];
  let durability: CaseSummary[] = [];
  let incremental: { cases: CaseSummary[]; changed: number } | undefined;
  let prune: Awaited<ReturnType<typeof measurePrune>> | undefined;
  const rss: { label: string; files: number; kib: number[] }[] = [];
  const midId = quick ? '1k' : '10k';
  const midLabel = quick ? '1,000 files' : '10,000 files';
  const smallBuild = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-small-'));

  try {
    await makeTree(smallBuild, { dirs: 2, filesPerDir: 5, minSize: 256, maxSize: 4096, seed: 3 });
    for (const set of copyDataSets(quick, ['1k'])) {
      const work = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-throughput-'));
      try {
        const src = join(work, 'src');
        let t = Date.now();
        const stats = await set.make(src);
        await settle(work);
        log(`${set.label}: ${(stats.bytes / 1024 ** 2).toFixed(1)} MiB made in ${((Date.now() - t) / 1000).toFixed(1)} s`);
        t = Date.now();
        // The biggest trees take minutes per round: no warm-up round there.
        const cases = await measureCopy(set, src, work, runs, set.id === '100k' || set.id === 'large' ? 0 : warmup, log);
        copy.push({ set, stats, cases });
        log(`${set.label}: copies measured in ${((Date.now() - t) / 1000).toFixed(1)} s`);
        if (set.files !== null) {
          const kib = await peakRss(src, work, quick || set.id === '100k' ? 1 : 2);
          rss.push({ label: set.label, files: set.files, kib });
          log(`${set.label}: peak RSS ${kib.map((k) => Math.round(k / 1024)).join(', ')} MiB`);
        }
        if (set.id === midId) {
          durability = await measureDurability(src, work, quick ? 1 : 9, warmup, log);
          incremental = await measureIncremental(src, work, quick ? 1 : 7, warmup, log);
        }
        if (set.id === (quick ? '1k' : '100k')) prune = await measurePrune(src, smallBuild, work, quick ? 1 : 5, warmup, log);
      } finally {
        await remove(work);
      }
    }
  } finally {
    await remove(smallBuild);
  }

  // ---- tables ----
  const caseNames = [...new Set(copy.flatMap((o) => o.cases.map((c) => c.name)))];
  const pick = (o: CopyOutcome, name: string): CaseSummary | undefined => o.cases.find((c) => c.name === name);
  const grid = (f: (c: CaseSummary) => number): (string | number)[][] =>
    caseNames.map((name) => [name, ...copy.map((o) => { const c = pick(o, name); return c ? f(c) : '–'; })]);
  const mid = copy.find((o) => o.set.id === midId);
  const oursMid = mid && pick(mid, OURS_NO_FSYNC);
  const oursMidFsync = mid && pick(mid, OURS);
  const durNo = durability.find((c) => c.name === OURS_NO_FSYNC);
  const durYes = durability.find((c) => c.name === OURS);
  const durRatio = durNo && durYes ? durYes.median / durNo.median : NaN;
  const inc = (name: string): CaseSummary | undefined => incremental?.cases.find((c) => c.name === name);
  const hlU = inc(`${HL}, unchanged`);
  const hlC = inc(`${HL}, 1% changed`);
  const hlnfU = inc(`${HL_NF}, unchanged`);
  const hlnfC = inc(`${HL_NF}, 1% changed`);
  const rsU = inc(`${RS}, unchanged`);
  const rscU = inc(`${RSC}, unchanged`);
  const big = rss.find((r) => r.files === 100_000) ?? rss[rss.length - 1];
  const bigMiB = big ? Math.max(...big.kib) / 1024 : NaN;
  const pr = (name: string): PruneSample[] => prune?.samples[name] ?? [];
  const prMedian = (name: string, f: (s: PruneSample) => number): number => (pr(name).length ? median(pr(name).map(f)) : NaN);
  const switchNo = prMedian('deploy', (s) => s.durationMs);
  const switchKeep = prMedian('deploy --keep 1', (s) => s.durationMs);
  const renameMs = prMedian('deploy --keep 1', (s) => s.renameMs);
  const deleteMs = prMedian('deploy --keep 1', (s) => s.deleteMs);
  const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
  const pruneFiles = quick ? '1,000' : '100,000';

  const tables: ResultTable[] = [
    {
      caption: 'Targets',
      columns: ['target', 'goal', 'measured', 'met'],
      rows: [
        [`full copy, ${midLabel}: ${OURS_NO_FSYNC} / cp -a`, '≤ 1.2', oursMid ? round3(oursMid.ratio) : '–', met((oursMid?.ratio ?? Infinity) <= 1.2)],
        [`durability, ${midLabel}: deploy / deploy --no-fsync`, '≤ 1.15', round3(durRatio), met(durRatio <= 1.15)],
        [`unchanged redeploy, ${midLabel}: ${HL} / ${RS}`, '< 1.0', hlU && rsU ? round3(hlU.median / rsU.median) : '–', met(!!hlU && !!rsU && hlU.median < rsU.median)],
        [`unchanged redeploy, ${midLabel}: ${HL} / ${RSC}`, '≤ 0.5', hlU && rscU ? round3(hlU.median / rscU.median) : '–', met(!!hlU && !!rscU && hlU.median / rscU.median <= 0.5)],
        [`1% changed / unchanged, ${HL}`, '≤ 1.2', hlU && hlC ? round3(hlC.median / hlU.median) : '–', met(!!hlU && !!hlC && hlC.median / hlU.median <= 1.2)],
        [`peak RSS of a deploy of ${big?.label ?? '?'}`, '≤ 200 MiB', `${Math.round(bigMiB)} MiB`, met(bigMiB <= 200)],
        [
          `prune of a ${pruneFiles}-file release: time to the switch, deploy --keep 1 / deploy`,
          '≤ 1.2 (delete after the switch)',
          round3(switchKeep / switchNo),
          met(switchKeep / switchNo <= 1.2),
        ],
      ],
    },
    { caption: 'Full copy: median wall time (ms)', columns: ['case', ...copy.map((o) => o.set.label)], rows: grid((c) => ms(c.median)) },
    { caption: `Full copy: ratio of median to ${BASELINE} (lower is faster)`, columns: ['case', ...copy.map((o) => o.set.label)], rows: grid((c) => round3(c.ratio)) },
    {
      caption: `Durability, ${midLabel}: deploy with and without fsync (median of ${durability[0]?.samples.length ?? 0})`,
      columns: ['case', 'median ms', 'min ms', 'max ms', '× --no-fsync'],
      rows: durability.map((c) => [c.name, ms(c.median), ms(c.min), ms(c.max), round3(c.ratio)]),
    },
    {
      caption: `Redeploy onto the previous release, ${midLabel} (${incremental?.changed ?? 0} files changed in the 1% case)`,
      columns: ['case', 'median ms', 'min ms', 'max ms', `× ${RS}, unchanged`],
      rows: (incremental?.cases ?? []).map((c) => [c.name, ms(c.median), ms(c.min), ms(c.max), round3(c.ratio)]),
    },
    {
      caption: `Prune of a ${pruneFiles}-file release by deploy --keep 1 (small deploy, medians)`,
      columns: ['case', 'wall ms', 'to the switch ms (durationMs)', 'rename under the lock ms', 'delete after the lock ms'],
      rows: ['deploy', 'deploy --keep 1'].map((name) => [
        name,
        ms(prune?.cases.find((c) => c.name === name)?.median ?? NaN),
        ms(prMedian(name, (s) => s.durationMs)),
        ms(prMedian(name, (s) => s.renameMs)),
        ms(prMedian(name, (s) => s.deleteMs)),
      ]),
    },
    {
      caption: 'Peak RSS of a first deploy (GNU time %M)',
      columns: ['tree', 'MiB (each run)'],
      rows: rss.map((r) => [r.label, r.kib.map((k) => Math.round(k / 1024)).join(', ')]),
    },
    {
      caption: 'Full copy: every case, spread of the runs',
      columns: ['data set', 'case', 'runs', 'median ms', 'min ms', 'max ms', `× ${BASELINE}`],
      rows: copy.flatMap((o) => o.cases.map((c) => [o.set.label, c.name, c.samples.length, ms(c.median), ms(c.min), ms(c.max), round3(c.ratio)])),
    },
  ];

  const trees = copy.filter((o) => o.set.files !== null);
  const large = copy.find((o) => o.set.id === 'large');
  const ratioRows = (o: CopyOutcome | undefined): { label: string; value: number }[] => (o?.cases ?? []).map((c) => ({ label: c.name, value: round3(c.ratio) }));
  const charts: ResultChart[] = [
    {
      file: 'throughput-time-vs-files',
      caption: 'Full copy: time against file count (log–log)',
      spec: {
        type: 'line',
        title: 'Putting a tree of small files into a new release',
        xLabel: 'files (256 B–4 KiB each)',
        yLabel: 'median wall time (ms)',
        logX: true,
        logY: true,
        series: caseNames.map((name) => ({
          name,
          points: trees.flatMap((o): [number, number][] => { const c = pick(o, name); return c ? [[o.set.files!, c.median]] : []; }),
        })),
      },
    },
    {
      file: `throughput-ratio-${midId}`,
      caption: `Full copy, ${midLabel}: time relative to ${BASELINE}`,
      spec: { type: 'bar', title: `${midLabel}: time relative to ${BASELINE}`, unit: '×', referenceLine: 1, rows: ratioRows(mid) },
    },
    {
      file: 'throughput-ratio-large',
      caption: `Full copy, ${large?.set.label ?? 'large files'}: time relative to ${BASELINE}`,
      spec: { type: 'bar', title: `${large?.set.label ?? 'Large files'}: time relative to ${BASELINE}`, unit: '×', referenceLine: 1, rows: ratioRows(large) },
    },
    {
      file: 'throughput-incremental',
      caption: `Redeploy, ${midLabel}: time relative to rsync --link-dest of an unchanged tree`,
      spec: {
        type: 'bar',
        title: `Redeploy of ${midLabel}: relative to rsync -a --link-dest (unchanged)`,
        unit: '×',
        referenceLine: 1,
        rows: (incremental?.cases ?? []).map((c) => ({ label: c.name.replace('=<previous release>', ''), value: round3(c.ratio) })),
      },
    },
  ];

  const oursVs = (c: CaseSummary | undefined, base: CaseSummary | undefined): string => (c && base ? `${Math.round(c.median)} ms vs ${Math.round(base.median)} ms` : '–');
  const notes = [
    `Full copies: ${runs} measured rounds per data set${warmup ? ` (after ${warmup} warm-up round, except 100,000 files and the large files)` : ''}, cases alternated and their order rotated every round. Before every run (untimed) the target is removed and \`sync -f\` flushes the filesystem.`,
    `"${OURS}" is the whole CLI into a fresh root (Node start-up, checks, lock, journal, copy, one syncfs, rename, switch, release log); "${OURS_NO_FSYNC}" is the same without the syncfs and fsyncs. The copy target is judged on the --no-fsync run, because cp -a and rsync leave their data in the page cache too; durability has its own target.`,
    `Our deploy pays a fixed cost that the C tools do not: starting Node and loading the CLI (see the start-up benchmark) and the deploy bookkeeping, which is why the ratio is worst on the smallest tree.${oursMidFsync && oursMid ? ` At ${midLabel}: with fsync ${oursVs(oursMidFsync, pick(mid, BASELINE))} for cp -a; without ${oursVs(oursMid, pick(mid, BASELINE))}.` : ''}`,
    'syncfs(2) flushes every dirty page of the filesystem, not only the release: on a machine where other work writes to the same disk, the fsync case also pays for that work.',
    `Redeploys: each of our cases deploys into its own root with --keep 0 (like rsync, it deletes nothing; until 2026-12-04 these rows kept the default 5, so once five releases stood each deploy also pruned one: the release-manifest benchmark measures that case on its own), so every deploy links against the release before it; the 1% case alternates two builds (two directories) that differ in ${incremental?.changed ?? 0} files; each directory keeps its own source cache, so only the changed files are read (until 2026-12-04 a root kept one cache, for the directory deployed last, and each of these redeploys read the whole build: 1.22× to 1.30× the unchanged one). rsync links against a release of the unchanged build. ${hlnfU && hlnfC ? `Without fsync: unchanged ${Math.round(hlnfU.median)} ms, 1% changed ${Math.round(hlnfC.median)} ms.` : ''}`,
    `Prune: the old release (the ${pruneFiles}-file tree as hardlinks, plus a small build) leaves releases/ by one rename under the lock; its tree is deleted after the lock is released and after the new release is live, before the process exits. "to the switch" is the deploy's own duration from --json, measured before prune starts; the wall time includes the deletion (median ${Math.round(deleteMs)} ms) and the rename (median ${Math.round(renameMs)} ms, which includes the check of /proc for processes using the release).`,
    'Peak RSS is the largest resident set of the deploy process (the kernel\'s rusage via GNU time), including Node itself.',
    runNote(started, machine),
  ];

  return {
    name: 'throughput',
    title: 'Deploy throughput against cp and rsync',
    description:
      'How long a deploy takes to put a build into a new release, against `cp -a` (1.0×), `rsync -a`, `rsync -a --link-dest` and `cp -al`, for 1,000 to 100,000 small files and a few large files; what durability costs; redeploys that hardlink unchanged files against `rsync --link-dest`; prune; and the memory a deploy needs.',
    machine,
    quick,
    tables,
    charts,
    notes,
  };
}
