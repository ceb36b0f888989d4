// Failed reads while `current` is switched: a reader process hammers `current/index.html` while
// each way of switching runs for a fixed time. Non-atomic switches show failures; atomic ones 0.
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startRaceReader, type RaceReaderReport } from '../test/harness/race-reader.ts';
import {
  busyboxLnSfn,
  gnuLnSfn,
  lnMvT,
  makeRaceRoot,
  renameSwap,
  switchLoop,
  unlinkSymlinkSwap,
  type Swapper,
} from '../test/harness/swappers.ts';
import { describeMachine } from './lib/env.ts';
import { saveResult, type Result } from './lib/report.ts';

/** One way of switching `current`; `root` is the deploy root, `target` is `releases/<id>`. */
export interface RaceRow {
  name: string;
  swap: Swapper;
  /** Keep switching until this many switches, even past the row's time (slow rows such as a CLI per switch). */
  minSwitches?: number;
  /** Hard ceiling for the row; default switchLoop's. */
  maxMs?: number;
}

/**
 * The rows, in report order. Rows still to come are appended by their owners (push onto this
 * array, or pass `rows`):
 *   - "library switch": the library's own switch of `current`
 *   - "CLI deploy": a full deploy through the CLI
 */
export const raceRows: RaceRow[] = [
  { name: 'unlink + symlink', swap: unlinkSymlinkSwap },
  { name: 'busybox ln -sfn', swap: busyboxLnSfn },
  { name: 'GNU ln -sfn', swap: gnuLnSfn },
  { name: 'ln -s + mv -T', swap: lnMvT },
  { name: 'rename swap', swap: renameSwap },
  // hook: { name: 'library switch', swap: ... },
  // hook: { name: 'CLI deploy', swap: ... },
];

export interface RaceRowResult {
  name: string;
  switches: number;
  reads: number;
  /** enoent + foreign + otherErrors: every read that did not return a whole release's content. */
  failures: number;
  enoent: number;
  foreign: number;
  otherErrors: number;
  durationMs: number;
  /** Set when the row itself could not run (e.g. a tool is missing). */
  error?: string;
}

export type RaceBenchResult = Result & { rows: RaceRowResult[] };

export interface RaceBenchOptions {
  quick: boolean;
  /** Defaults to `raceRows`. */
  rows?: readonly RaceRow[];
  /** Defaults to bench/results (quick: bench/results/quick, so smoke runs never replace real numbers). */
  resultsDir?: string;
  log?: (line: string) => void;
}

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));

async function runRow(row: RaceRow, durationMs: number): Promise<RaceRowResult> {
  // A fresh root per row: a row that breaks `current` cannot spoil the rows after it.
  const race = await makeRaceRoot(['a', 'b']);
  try {
    const reader = await startRaceReader({ path: join(race.root, 'current', 'index.html'), expected: race.contents });
    let report: RaceReaderReport;
    let switches = 0;
    let elapsed = 0;
    try {
      const loop = await switchLoop({ root: race.root, targets: race.targets, swap: row.swap, minMs: durationMs, minSwitches: row.minSwitches, maxMs: row.maxMs });
      switches = loop.switches;
      elapsed = loop.elapsedMs;
      report = await reader.stop();
    } finally {
      reader.kill();
    }
    return {
      name: row.name,
      switches,
      reads: report.reads,
      failures: report.enoent + report.foreign + report.otherErrors,
      enoent: report.enoent,
      foreign: report.foreign,
      otherErrors: report.otherErrors,
      durationMs: Math.round(elapsed),
    };
  } finally {
    await race.cleanup();
  }
}

/** Runs every row against a reader process; quick mode takes well under 30 s. */
export async function runRaceBench(opts: RaceBenchOptions): Promise<RaceBenchResult> {
  const log = opts.log ?? ((): void => undefined);
  const rows = opts.rows ?? raceRows;
  const durationMs = opts.quick ? 1500 : 5000;
  const results: RaceRowResult[] = [];
  for (const row of rows) {
    try {
      const r = await runRow(row, durationMs);
      log(`race: ${row.name}: ${r.switches} switches, ${r.reads} reads, ${r.failures} failures`);
      results.push(r);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      log(`race: ${row.name}: FAILED: ${message}`);
      results.push({ name: row.name, switches: 0, reads: 0, failures: 0, enoent: 0, foreign: 0, otherErrors: 0, durationMs: 0, error: message });
    }
  }

  const result: RaceBenchResult = {
    name: 'race',
    title: 'Failed reads during switches of `current`',
    description:
      `A separate reader process opens, reads and closes \`current/index.html\` in a tight loop while ` +
      `\`current\` is switched back and forth between two releases for ${durationMs / 1000} s per row. ` +
      'A failure is a read that got ENOENT, another error, or content of neither release.',
    machine: await describeMachine(),
    quick: opts.quick,
    tables: [
      {
        caption: 'Reads and failures per way of switching',
        columns: ['switch', 'switches', 'reads', 'failures', 'ENOENT', 'foreign', 'other errors'],
        rows: results.map((r) =>
          r.error !== undefined
            ? [r.name, '–', '–', `error: ${r.error}`, '–', '–', '–']
            : [r.name, r.switches, r.reads, r.failures, r.enoent, r.foreign, r.otherErrors],
        ),
      },
    ],
    charts: [],
    notes: [
      'unlink + symlink and BusyBox `ln -sfn` leave a moment in which `current` does not exist; they are the controls that show the reader can see a failure at all.',
      'GNU `ln -sfn` has replaced the link through a temporary name and rename(2) since coreutils 8.27, so it is atomic here; BSD/macOS `ln` and BusyBox are not.',
      'Rows that spawn a process per switch make far fewer switches in the same time; compare failures with the switch count.',
    ],
    rows: results,
  };
  const dir = opts.resultsDir ?? (opts.quick ? join(BENCH_DIR, 'results', 'quick') : join(BENCH_DIR, 'results'));
  await mkdir(dir, { recursive: true });
  const file = await saveResult(result, dir);
  log(`race: wrote ${file}`);
  return result;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const quick = process.argv.includes('--quick');
  const result = await runRaceBench({ quick, log: (line) => console.error(line) });
  console.table(result.rows);
  // A row that could not run is a broken benchmark, not a result.
  process.exitCode = result.rows.some((r) => r.error !== undefined) ? 1 : 0;
}
