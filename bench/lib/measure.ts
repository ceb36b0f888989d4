// Timing helpers for noisy shared machines: alternate the cases so drift hits them all alike,
// report medians and ratios (which hold better than absolute times).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PairedCase {
  name: string;
  /** Untimed preparation before every run (e.g. remove the previous target). */
  setup?(): Promise<void>;
  /** The timed part. */
  run(): Promise<void>;
  /** Untimed cleanup after every run. */
  teardown?(): Promise<void> | void;
}

export interface PairedOptions {
  /** Measured rounds; every case runs once per round. */
  runs: number;
  /** Unrecorded rounds first, to warm caches and the JIT; default 1. */
  warmup?: number;
  /** Name of the case the ratios are relative to; default the first case. */
  baseline?: string;
  /** Called after every measured sample, e.g. for progress output. */
  onSample?(name: string, ms: number, round: number): void;
}

export interface CaseSummary {
  name: string;
  /** Wall times in milliseconds, in the order they were measured. */
  samples: number[];
  median: number;
  min: number;
  max: number;
  /** This case's median divided by the baseline's median. */
  ratio: number;
}

export interface PairedResult {
  baseline: string;
  cases: CaseSummary[];
  /** Case order of every measured round, to show the alternation. */
  rounds: string[][];
}

/** Median of a non-empty list (mean of the two middle values for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of an empty list');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  // Non-null: mid and mid-1 are in range because the list is non-empty.
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Case order for round `round`: the list rotated left by `round`, so no case is always first. */
export function roundOrder<T>(items: readonly T[], round: number): T[] {
  const n = items.length;
  if (n === 0) return [];
  const shift = ((round % n) + n) % n;
  return [...items.slice(shift), ...items.slice(0, shift)];
}

/**
 * Runs the cases alternated (ABC, BCA, CAB, …) for `warmup` unrecorded rounds and then `runs`
 * measured rounds, timing only `run()` with the monotonic clock.
 */
export async function pairedRuns(cases: readonly PairedCase[], options: PairedOptions): Promise<PairedResult> {
  const { runs, warmup = 1 } = options;
  if (cases.length === 0) throw new Error('pairedRuns needs at least one case');
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`runs must be a positive integer, got ${runs}`);
  const names = cases.map((c) => c.name);
  if (new Set(names).size !== names.length) throw new Error(`duplicate case names: ${names.join(', ')}`);
  const baseline = options.baseline ?? names[0]!;
  if (!names.includes(baseline)) throw new Error(`baseline "${baseline}" is not one of ${names.join(', ')}`);

  const samples = new Map<string, number[]>(names.map((n) => [n, []]));
  const rounds: string[][] = [];
  for (let round = 0; round < warmup + runs; round++) {
    const measured = round >= warmup;
    const order = roundOrder(cases, round);
    if (measured) rounds.push(order.map((c) => c.name));
    for (const c of order) {
      await c.setup?.();
      const start = process.hrtime.bigint();
      try {
        await c.run();
      } finally {
        // Stop the clock before teardown even when run() throws, then clean up anyway.
        const ms = Number(process.hrtime.bigint() - start) / 1e6;
        if (measured) {
          samples.get(c.name)!.push(ms);
        }
        await c.teardown?.();
        if (measured) options.onSample?.(c.name, ms, round - warmup);
      }
    }
  }

  const summaries = names.map((name) => {
    const s = samples.get(name)!;
    return { name, samples: s, median: median(s), min: Math.min(...s), max: Math.max(...s), ratio: 0 };
  });
  const base = summaries.find((s) => s.name === baseline)!.median;
  for (const s of summaries) s.ratio = s.median / base;
  return { baseline, cases: summaries, rounds };
}

export interface CommandOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Resolve instead of rejecting when the command exits non-zero or by a signal. */
  allowFailure?: boolean;
}

export interface CommandTiming {
  /** Wall time from spawn to exit in milliseconds, including process start-up. */
  ms: number;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawns `cmd args` (no shell) and measures its wall time with the monotonic clock. */
export function timeCommand(cmd: string, args: readonly string[], opts: CommandOptions = {}): Promise<CommandTiming> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (exitCode, signal) => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      const result = {
        ms,
        exitCode,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
      if (!opts.allowFailure && (exitCode !== 0 || signal !== null)) {
        const why = signal !== null ? `signal ${signal}` : `exit code ${exitCode}`;
        reject(new Error(`${cmd} ${args.join(' ')} failed with ${why}: ${result.stderr.trim()}`));
      } else {
        resolve(result);
      }
    });
  });
}

const GNU_TIME = '/usr/bin/time';

// Python's os.wait4 reads the same rusage as GNU time; used only where GNU time is missing.
const PY_WAIT4 = [
  'import os, sys',
  'pid = os.fork()',
  'if pid == 0:',
  '    try:',
  '        os.execvp(sys.argv[1], sys.argv[1:])',
  '    finally:',
  '        os._exit(127)',
  '_, status, ru = os.wait4(pid, 0)',
  'print(ru.ru_maxrss, file=sys.stderr)',
  'sys.exit(os.waitstatus_to_exitcode(status) if os.waitstatus_to_exitcode(status) >= 0 else 1)',
].join('\n');

let rssTool: 'gnu-time' | 'python' | null | undefined;

async function findRssTool(): Promise<'gnu-time' | 'python' | null> {
  if (rssTool !== undefined) return rssTool;
  rssTool = null;
  if (existsSync(GNU_TIME)) {
    // BusyBox or other `time` binaries print other formats (BusyBox's -v also over-reports 4x).
    const v = await timeCommand(GNU_TIME, ['--version'], { allowFailure: true });
    if (/GNU Time/i.test(v.stdout + v.stderr)) rssTool = 'gnu-time';
  }
  if (rssTool === null) {
    const py = await timeCommand('python3', ['-c', 'import os; os.wait4'], { allowFailure: true }).catch(() => null);
    if (py?.exitCode === 0) rssTool = 'python';
  }
  return rssTool;
}

/**
 * Peak resident set size of `cmd args` in KiB, from the kernel's rusage of the waited-for child
 * (GNU time `-f %M`). For a process tree it is the largest single member's peak, not the sum.
 */
export async function peakRssOfCommand(
  cmd: string,
  args: readonly string[],
  opts: Omit<CommandOptions, 'allowFailure'> = {},
): Promise<number> {
  const tool = await findRssTool();
  if (tool === null) throw new Error('peakRssOfCommand needs GNU time (Debian package "time") or python3');
  if (tool === 'python') {
    const r = await timeCommand('python3', ['-c', PY_WAIT4, cmd, ...args], opts);
    const lines = r.stderr.trim().split('\n');
    return parseKiB(lines[lines.length - 1] ?? '');
  }
  // -o keeps the number apart from whatever the command itself writes to stderr.
  const dir = await mkdtemp(join(tmpdir(), 'bench-rss-'));
  try {
    const outFile = join(dir, 'rss');
    await timeCommand(GNU_TIME, ['-f', '%M', '-o', outFile, cmd, ...args], opts);
    return parseKiB((await readFile(outFile, 'utf8')).trim());
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function parseKiB(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`unexpected peak RSS output: ${JSON.stringify(text)}`);
  return n;
}
