// verify against the tool an operator would reach for: `find . -type f -exec sha256sum {} +`
// over the same release (10,000 files, about 100 MiB), warm cache, cases alternated; then a
// one-file release for the fixed cost, and a 40,000-file release, to show how the ratio moves
// with the size of the release.
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchBin, installedBin } from './bin.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { pairedRuns, timeCommand } from './lib/measure.ts';
import type { Result } from './lib/report.ts';
import { makeLargeFiles, makeTree } from './lib/tree.ts';
import { HashPool } from '../src/act/hash-pool.ts';
import { hashTree } from '../src/act/manifest.ts';
import { POOL_MIN_BYTES, POOL_MIN_FILES } from '../src/ops/verify-release.ts';

const BASELINE = 'find . -type f -exec sha256sum {} +';
const OURS = 'atomic-deploy verify';
// The same command as installed (package.json `bin`): the esbuild bundle loads a few files instead of one module per source file.
const INSTALLED = 'atomic-deploy verify (installed bundle)';
const ENV = { ...process.env, NO_COLOR: '1' };
// What every verify pays whatever the release holds: Node start-up, loading the CLI, the record and the manifest read.
const ONE = 'atomic-deploy verify (installed bundle), a one-file release';

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
const ms = (x: number): number => Math.round(x * 10) / 10;

export async function runVerifyBench(opts: { quick: boolean; log?: (line: string) => void }): Promise<Result> {
  const { quick } = opts;
  const log = opts.log ?? ((): void => undefined);
  const started = Date.now();
  const machine = await describeMachine({ tmpDir: tmpdir() });
  const work = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-verify-'));
  const runs = quick ? 1 : 9;
  const files = quick ? 1000 : 10_000;
  try {
    const src = join(work, 'src');
    // 2–18 KiB, about 10 KiB a file: 100 MiB for 10,000 files.
    const stats = await makeTree(src, { dirs: files / 100, filesPerDir: 100, minSize: 2048, maxSize: 18_432, seed: 5 });
    log(`verify: ${stats.files} files, ${(stats.bytes / 1024 ** 2).toFixed(1)} MiB`);
    const root = join(work, 'root');
    await timeCommand(process.execPath, [benchBin(), 'deploy', src, root, '--quiet', '--release-id', 'r'], { env: ENV });
    const rel = join(root, 'releases', 'r');
    if ((await readdir(rel)).length === 0) throw new Error('the deploy made an empty release');
    const one = join(work, 'one');
    await mkdir(one);
    await writeFile(join(one, 'index.html'), 'one\n');
    const oneRoot = join(work, 'one-root');
    await timeCommand(process.execPath, [installedBin(), 'deploy', one, oneRoot, '--quiet', '--release-id', 'r'], { env: ENV });
    const verifyCase = (name: string, bin: string, at: string): { name: string; run: () => Promise<void> } => ({
      name,
      run: async (): Promise<void> => {
        const out = await timeCommand(process.execPath, [bin, 'verify', at, '--json'], { env: ENV });
        if (!(JSON.parse(out.stdout) as { identical?: boolean }).identical) throw new Error('verify found differences in an untouched release');
      },
    });
    const sha256sum = (name: string, cwd: string): { name: string; run: () => Promise<void> } => ({ name, run: async () => void (await timeCommand('sh', ['-c', 'find . -type f -exec sha256sum {} + >/dev/null'], { cwd })) });
    const result = await pairedRuns(
      [sha256sum(BASELINE, rel), verifyCase(OURS, benchBin(), root), verifyCase(INSTALLED, installedBin(), root), verifyCase(ONE, installedBin(), oneRoot)],
      { runs, warmup: 1, baseline: BASELINE, onSample: (name, t, round) => log(`  verify round ${round + 1}/${runs} ${name}: ${t.toFixed(1)} ms`) },
    );
    // Where a hashing thread pays: this process's hashTree alone, and with one thread started for
    // it (its start included), over a small and a large release of 25 MiB files and many small files.
    const poolRows: (string | number)[][] = [];
    const trees = [
      ...(quick ? [2, 8] : [6, 32]).map((count) => ({
        name: `large-${count}`,
        make: (dir: string) => makeLargeFiles(dir, { count, sizeMB: 25, seed: count }),
        label: (mib: string) => `${count} × 25 MiB (${mib} MiB)`,
      })),
      // Many small files, below and past the file threshold: the threads' share depends on the
      // batching and the per-file system calls, not on a few large reads.
      ...(quick ? [1000, 4000] : [4000, 10_000, 40_000]).map((count) => ({
        name: `small-${count}`,
        make: (dir: string) => makeTree(dir, { dirs: count / 100, filesPerDir: 100, minSize: 4096, maxSize: 12_288, seed: 9 }),
        label: (mib: string) => `${count.toLocaleString('en-US')} files of 4–12 KiB (${mib} MiB)`,
      })),
    ];
    for (const tree of trees) {
      const dir = join(work, tree.name);
      const made = await tree.make(dir);
      const label = tree.label((made.bytes / 1024 ** 2).toFixed(0));
      const alone = `hashTree, ${label}, this thread alone`;
      const paired = await pairedRuns(
        [
          { name: alone, run: async () => void (await hashTree(dir)) },
          {
            name: `hashTree, ${label}, with 1 hashing thread (its start included)`,
            run: async () => {
              const pool = new HashPool(1);
              try {
                await hashTree(dir, undefined, { pool });
              } finally {
                await pool.close();
              }
            },
          },
        ],
        { runs, warmup: 1, baseline: alone, onSample: (name, t, round) => log(`  pool round ${round + 1}/${runs} ${name}: ${t.toFixed(1)} ms`) },
      );
      for (const c of paired.cases) poolRows.push([c.name, ms(c.median), ms(c.min), ms(c.max), round3(c.ratio)]);
      await rm(dir, { recursive: true, force: true });
    }
    // The target is the command users run: the installed bundle (as for the start-up target).
    const ours = result.cases.find((c) => c.name === INSTALLED);
    const ratio = ours?.ratio ?? NaN;
    const fixed = result.cases.find((c) => c.name === ONE)?.median ?? NaN;
    const base = result.cases.find((c) => c.name === BASELINE)?.median ?? NaN;
    // The ratio a release large enough for the fixed cost to vanish tends to.
    const perFile = ours ? (ours.median - fixed) / base : NaN;

    // The same at 40,000 files (about 400 MiB): the fixed cost weighs a quarter as much.
    const bigFiles = quick ? 2000 : 40_000;
    const bigSrc = join(work, 'big');
    const bigStats = await makeTree(bigSrc, { dirs: bigFiles / 100, filesPerDir: 100, minSize: 2048, maxSize: 18_432, seed: 6 });
    const bigRoot = join(work, 'big-root');
    await timeCommand(process.execPath, [installedBin(), 'deploy', bigSrc, bigRoot, '--quiet', '--release-id', 'r'], { env: ENV });
    await rm(bigSrc, { recursive: true, force: true });
    const bigLabel = `${bigStats.files.toLocaleString('en-US')} files, ${(bigStats.bytes / 1024 ** 2).toFixed(0)} MiB`;
    const bigBaseline = `${BASELINE} (${bigLabel})`;
    const bigOurs = `${INSTALLED} (${bigLabel})`;
    const bigRuns = quick ? 1 : 5;
    const scale = await pairedRuns([sha256sum(bigBaseline, join(bigRoot, 'releases', 'r')), verifyCase(bigOurs, installedBin(), bigRoot)], {
      runs: bigRuns,
      warmup: 1,
      baseline: bigBaseline,
      onSample: (name, t, round) => log(`  verify at scale round ${round + 1}/${bigRuns} ${name}: ${t.toFixed(1)} ms`),
    });
    const atScale = scale.cases.find((c) => c.name === bigOurs)?.ratio ?? NaN;
    return {
      name: 'verify',
      title: 'verify',
      description: `Re-hashing a release of ${stats.files.toLocaleString('en-US')} files (${(stats.bytes / 1024 ** 2).toFixed(0)} MiB) against its manifest, against sha256sum over the same files.`,
      machine,
      quick,
      tables: [
        {
          caption: 'Target',
          columns: ['target', 'goal', 'measured', 'met'],
          rows: [[`${INSTALLED} / ${BASELINE}`, '≤ 1.0', round3(ratio), ratio <= 1 ? 'met' : 'MISSED']],
        },
        {
          caption: `Median wall time of ${runs} alternated rounds (after 1 warm-up round)`,
          columns: ['case', 'median ms', 'min ms', 'max ms', `× ${BASELINE}`],
          rows: result.cases.map((c) => [c.name, ms(c.median), ms(c.min), ms(c.max), round3(c.ratio)]),
        },
        {
          caption: 'How the ratio moves with the size of the release (not targets: what the fixed cost hides)',
          columns: ['ratio', 'value'],
          rows: [
            [`${INSTALLED} / ${BASELINE}`, round3(ratio)],
            [`(${INSTALLED} − ${ONE}) / ${BASELINE}: the ratio a release large enough for the fixed cost to vanish tends to`, round3(perFile)],
            [`${bigOurs} / ${bigBaseline}, measured`, round3(atScale)],
          ],
        },
        {
          caption: `${bigLabel}: median wall time of ${bigRuns} alternated rounds (after 1 warm-up round)`,
          columns: ['case', 'median ms', 'min ms', 'max ms', `× ${BASELINE}`],
          rows: scale.cases.map((c) => [c.name, ms(c.median), ms(c.min), ms(c.max), round3(c.ratio)]),
        },
        {
          caption: `Hashing threads: hashTree in this process, alone and with one thread, median of ${runs} alternated rounds`,
          columns: ['case', 'median ms', 'min ms', 'max ms', '× alone'],
          rows: poolRows,
        },
      ],
      charts: [],
      notes: [
        `"${OURS}" is the whole CLI (Node start-up included): it reads the record and the manifest, checks the digest, walks the release and hashes every file, and compares. Hashing threads are added only for a release of at least ${POOL_MIN_BYTES / 1024 ** 2} MiB or ${POOL_MIN_FILES.toLocaleString('en-US')} files (by its manifest), one per core idle when it starts (the runnable threads of /proc/loadavg), ${availableParallelism()} cores here: below that, one thread's start costs more than it saves (last table). The release here (${stats.files.toLocaleString('en-US')} files) ${stats.files >= POOL_MIN_FILES || stats.bytes >= POOL_MIN_BYTES ? 'gets one when a core is idle as verify starts' : 'is hashed on the main thread alone'}. sha256sum only hashes, on one core; both read from a warm page cache.`,
        `The fixed cost (the one-file row, ${ms(fixed)} ms here, of which \`node -e 0\` is about 100 ms on this machine: see the start-up benchmark) is paid once per verify; sha256sum starts in a millisecond. Take it away and our verify of ${stats.files.toLocaleString('en-US')} files does its per-file work in ${round3(perFile)}× the time of the whole find and sha256sum: the ratio a larger release tends to, which the ${bigLabel} rows measure.`,
        `Load average (1 / 5 / 15 min) at the end: ${loadavg().map((l) => l.toFixed(1)).join(' / ')}.`,
        `"${INSTALLED}" is the same command as package.json's \`bin\` installs it (dist/bin/atomic-deploy.cjs, bundled by esbuild); the target row measures it, as the start-up, redeploy and artifact targets do; the tsc output (dist/cli/bin.js, which the other benchmarks run) is the row beside it.`,
        runNote(started, machine),
      ],
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
