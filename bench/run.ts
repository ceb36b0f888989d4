// `npm run bench [-- --quick] [-- --only a,b]`: runs the registered benchmarks, stores each result
// as JSON and regenerates docs/benchmarks.md from all stored results.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { runArtifactBench } from './artifact.ts';
import { runCopyBaselines } from './copy-baselines.ts';
import { runFleetBench } from './fleet.ts';
import { runFleetScaleBench } from './fleet-scale.ts';
import { runFleetRedeployBench } from './fleet-redeploy.ts';
import { runNginxBench } from './nginx.ts';
import { raceRows, runRaceBench } from './race.ts';
import { ourRaceRows } from './race-rows.ts';
import { runStaleScanBench } from './stale-scan.ts';
import { runStartupBench } from './startup.ts';
import { runSwitchBench } from './switch.ts';
import { runThroughput } from './throughput.ts';
import { runVerifyBench } from './verify.ts';
import { runManifestTargetsBench } from './manifest-targets.ts';
import { saveResult, writeReport } from './lib/report.ts';
import type { Result } from './lib/report.ts';

export interface BenchmarkContext {
  /** Smoke-test sizes: prove the script runs end to end in seconds, not minutes. */
  quick: boolean;
  log: (line: string) => void;
}

export interface Benchmark {
  /** Also the result's `name` and its file name: `bench/results/<name>.json`. */
  name: string;
  run(ctx: BenchmarkContext): Promise<Result>;
}

/** Every benchmark, in report order. Add new ones here. */
export const BENCHMARKS: Benchmark[] = [
  { name: 'race', run: runRace },
  { name: 'nginx', run: ({ quick, log }) => runNginxBench({ quick, log }) },
  { name: 'throughput', run: ({ quick, log }) => runThroughput({ quick, log }) },
  { name: 'verify', run: ({ quick, log }) => runVerifyBench({ quick, log }) },
  { name: 'switch', run: ({ quick, log }) => runSwitchBench({ quick, log }) },
  { name: 'startup', run: ({ quick, log }) => runStartupBench({ quick, log }) },
  { name: 'copy-baselines', run: ({ quick, log }) => runCopyBaselines({ quick, log }) },
  { name: 'fleet', run: ({ quick, log }) => runFleetBench({ quick, log }) },
  { name: 'fleet-scale', run: ({ quick, log }) => runFleetScaleBench({ quick, log }) },
  { name: 'stale-scan', run: ({ quick, log }) => runStaleScanBench({ quick, log }) },
  { name: 'artifact', run: ({ quick, log }) => runArtifactBench({ quick, log }) },
  { name: 'manifest-targets', run: ({ quick, log }) => runManifestTargetsBench({ quick, log }) },
  { name: 'fleet-redeploy', run: ({ quick, log }) => runFleetRedeployBench({ quick, log }) },
];

/** The race table with our rows (library switch, CLI deploy) after the reference ones. */
async function runRace({ quick, log }: BenchmarkContext): Promise<Result> {
  const ours = await ourRaceRows({ quick });
  try {
    const result = await runRaceBench({ quick, log, rows: [...raceRows, ...ours.rows] });
    const broken = result.rows.filter((r) => r.error !== undefined);
    // A row that could not run is a broken benchmark, not a result.
    if (broken.length > 0) throw new Error(`race rows failed: ${broken.map((r) => `${r.name}: ${r.error ?? ''}`).join('; ')}`);
    return result;
  } finally {
    await ours.cleanup();
  }
}

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const RESULTS_DIR = join(BENCH_DIR, 'results');
// Quick results live apart so a smoke run never replaces the numbers the report quotes.
export const QUICK_RESULTS_DIR = join(RESULTS_DIR, 'quick');

export async function main(argv: string[]): Promise<number> {
  let values: { quick: boolean; only?: string; help: boolean; 'report-only': boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, help: { type: 'boolean', default: false }, 'report-only': { type: 'boolean', default: false } },
      strict: true,
    }));
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    return 2;
  }
  if (values.help) {
    console.log(`usage: node --import tsx bench/run.ts [--quick] [--only ${BENCHMARKS.map((b) => b.name).join(',')}] [--report-only]`);
    return 0;
  }
  const quick = values.quick;
  const wanted = values.only?.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = (wanted ?? []).filter((n) => !BENCHMARKS.some((b) => b.name === n));
  if (unknown.length > 0) {
    console.error(`unknown benchmark(s): ${unknown.join(', ')}; known: ${BENCHMARKS.map((b) => b.name).join(', ')}`);
    return 2;
  }
  // --report-only redraws the report (e.g. after a chart style change) from the stored results.
  const selected = values['report-only'] ? [] : BENCHMARKS.filter((b) => !wanted || wanted.includes(b.name));
  const outDir = quick ? QUICK_RESULTS_DIR : RESULTS_DIR;
  const t0 = Date.now();
  const log = (line: string): void => console.error(`[${((Date.now() - t0) / 1000).toFixed(1).padStart(6)} s] ${line}`);

  let failed = 0;
  for (const b of selected) {
    log(`${b.name}: start${quick ? ' (quick)' : ''}`);
    try {
      const result = await b.run({ quick, log });
      if (result.name !== b.name) throw new Error(`benchmark ${b.name} returned a result named ${result.name}`);
      const file = await saveResult({ ...result, quick }, outDir);
      log(`${b.name}: wrote ${file}`);
    } catch (err) {
      failed++;
      log(`${b.name}: FAILED: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  const order = BENCHMARKS.map((b) => b.name);
  // A quick run checks the report code on its own results, in its own folder, leaving docs/ alone.
  const report = quick
    ? await writeReport({ resultsDir: QUICK_RESULTS_DIR, docsFile: join(QUICK_RESULTS_DIR, 'benchmarks.md'), order })
    : await writeReport({ resultsDir: RESULTS_DIR, order });
  log(`report: ${report.docsFile} (${report.results.length} result(s), ${report.charts.length} chart(s))`);
  log(`done in ${((Date.now() - t0) / 1000).toFixed(1)} s${failed ? `, ${failed} benchmark(s) failed` : ''}`);
  return failed > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = await main(process.argv.slice(2));
}
