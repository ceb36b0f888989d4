// Random-moment trial campaigns (kill -9, signals): lanes of deploy roots run side by side, each
// trial interrupts one CLI deploy and checks the root, then checks that the next command recovers.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { runCli, spawnCli, type CliResult } from './cli.ts';
import { checkRoot, makeSource, manifestOf, previousOf, randomBetween, type Manifest } from './invariants.ts';

/** Trials per campaign: RELIABILITY_TRIALS for the long run, a CI-sized default otherwise. */
export function trialCount(ciDefault: number): number {
  const raw = process.env.RELIABILITY_TRIALS;
  if (raw === undefined || raw === '') return ciDefault;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`RELIABILITY_TRIALS must be a positive integer, got ${raw}`);
  return n;
}

/** Two lanes on two cores: more would only measure the scheduler. */
export const LANES = Number(process.env.RELIABILITY_LANES ?? 2);

export interface Lane {
  root: string;
  sources: string[];
  manifests: Manifest[];
  turn: number;
  /** Names releases may hold as links to shared/ (deploys with shared paths). */
  sharedLinks?: string[];
}

/** A root with two sources already deployed, so current always has a rollback target. */
export async function makeLane(base: string, name: string, sourceOptions: Parameters<typeof makeSource>[2] = {}): Promise<Lane> {
  const dir = path.join(base, name);
  fs.mkdirSync(dir);
  const sources = ['a', 'b'].map((tag) => makeSource(path.join(dir, `src-${tag}`), `${name}-${tag}`, sourceOptions));
  const lane: Lane = { root: path.join(dir, 'root'), sources, manifests: sources.map(manifestOf), turn: 0, sharedLinks: [] };
  for (const source of sources) await mustSucceed(['deploy', source, lane.root, '--quiet']);
  return lane;
}

export function nextSource(lane: Lane): string {
  lane.turn += 1;
  return lane.sources[lane.turn % lane.sources.length] as string;
}

export async function mustSucceed(args: string[], failpoints?: string): Promise<CliResult> {
  const result = await runCli(args, { failpoints });
  assert.equal(result.code, 0, `atomic-deploy ${args.join(' ')} exited ${result.code}\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /unexpected failure|\n\s+at /, result.stderr);
  return result;
}

/**
 * Starts a command and calls `interrupt` at a random moment. Node's start-up (~150 ms, nothing
 * touched yet) would swallow most uniform draws, so the clock starts when the command first
 * touches `<root>/.tmp` (the lock draft it makes before anything else): the moment is uniform in
 * [0, window) from there. Every eighth trial draws from the spawn instead, start-up included.
 */
export async function interruptAtRandom(
  args: readonly string[],
  root: string,
  windowMs: number,
  interrupt: (child: ChildProcess) => void,
  index: number,
  options: { group?: boolean } = {},
): Promise<{ result: CliResult; delayMs: number; fromSpawn: boolean }> {
  const tmp = path.join(root, '.tmp');
  fs.mkdirSync(tmp, { recursive: true });
  const fromSpawn = index % 8 === 7;
  const delayMs = randomBetween(0, windowMs);
  let timer: NodeJS.Timeout | undefined;
  const watcher = fs.watch(tmp);
  const { child, done } = spawnCli(args, { group: options.group === true });
  const arm = (): void => {
    if (timer !== undefined) return;
    watcher.close();
    timer = setTimeout(() => interrupt(child), delayMs);
  };
  if (fromSpawn) arm();
  else watcher.once('change', arm);
  const result = await done;
  watcher.close();
  clearTimeout(timer);
  return { result, delayMs, fromSpawn };
}

/**
 * How long a deploy works once it has touched `.tmp` (median of a few): the window random
 * moments are drawn from. From the spawn when `fromSpawn`.
 */
export async function calibrate(lane: Lane, runs = 3, command: (lane: Lane) => string[] = (l) => ['deploy', nextSource(l), l.root, '--quiet']): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const tmp = path.join(lane.root, '.tmp');
    let t0 = 0;
    const watcher = fs.watch(tmp);
    watcher.once('change', () => (t0 = performance.now()));
    const spawned = performance.now();
    const result = await runCli(command(lane));
    watcher.close();
    assert.equal(result.code, 0, result.stderr);
    times.push(performance.now() - (t0 || spawned));
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] as number;
}

/** Where an interrupted deploy stood, from what it left on disk. */
export function phaseOnDisk(root: string): string {
  const journalFile = path.join(root, '.atomic-deploy', 'journal.json');
  if (fs.existsSync(journalFile)) {
    try {
      const j = JSON.parse(fs.readFileSync(journalFile, 'utf8')) as { phase?: string };
      return `journal:${j.phase ?? '?'}`;
    } catch {
      return 'journal:unreadable';
    }
  }
  const tmp = fs.existsSync(path.join(root, '.tmp')) ? fs.readdirSync(path.join(root, '.tmp')) : [];
  if (fs.existsSync(path.join(root, '.deploy.lock'))) return 'locked, no journal';
  if (tmp.some((n) => n.startsWith('lock.'))) return 'taking the lock';
  return 'no trace';
}

/** What a trial must remember from before it interrupted a command. */
export interface Before {
  current: string | null;
  previous: string | null;
  releases: string[];
}

export function before(lane: Lane): Before {
  const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, sharedLinks: lane.sharedLinks, clean: true });
  assert.deepEqual(problems, [], `root not clean before the trial: ${problems.join('; ')}`);
  return { current: state.current, previous: previousOf(lane.root, state.current), releases: state.releases };
}

/**
 * After an interrupted command: current is the old release or one the command may switch to
 * (by default: a new release), complete; the old current and its rollback target are kept.
 */
export function checkAfterInterrupt(lane: Lane, was: Before, label: string, mayGoTo?: readonly string[]): string | null {
  const keep = [was.current, was.previous].filter((x): x is string => x !== null);
  const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, sharedLinks: lane.sharedLinks, keep });
  const allowed = state.current === was.current || (mayGoTo ? mayGoTo.includes(state.current ?? '') : !was.releases.includes(state.current ?? ''));
  if (!allowed) problems.push(`current moved to ${state.current}, which this command may not switch to`);
  assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
  return state.current;
}

/** The next command recovers by itself and leaves nothing behind. */
export async function recoverAndCheck(lane: Lane, keep: readonly (string | null)[], label: string): Promise<void> {
  // --keep 0: the check is about recovery; the default keep would prune the releases it looks for.
  const result = await runCli(['deploy', nextSource(lane), lane.root, '--json', '--keep', '0']);
  assert.equal(result.code, 0, `${label}: the next deploy failed (${result.code}):\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /unexpected failure|\n\s+at /);
  const ids = keep.filter((x): x is string => x !== null);
  const { problems } = checkRoot(lane.root, { sources: lane.manifests, sharedLinks: lane.sharedLinks, keep: ids, clean: true });
  assert.deepEqual(problems, [], `${label}, after the next deploy: ${problems.join('; ')}`);
}

/** Runs `trials` trials over the lanes, one lane per worker, and tallies the labels they return. */
export async function runTrials(
  lanes: readonly Lane[],
  trials: number,
  trial: (lane: Lane, index: number) => Promise<string>,
): Promise<Map<string, number>> {
  const tally = new Map<string, number>();
  let next = 0;
  await Promise.all(
    lanes.map(async (lane) => {
      let done = 0;
      while (next < trials) {
        const index = next++;
        const label = await trial(lane, index);
        tally.set(label, (tally.get(label) ?? 0) + 1);
        // Every release is re-hashed after each trial: keep a long run from growing quadratic.
        if (++done % 25 === 0) await mustSucceed(['prune', lane.root, '--keep', '3', '--quiet']);
      }
    }),
  );
  return tally;
}

export function formatTally(tally: Map<string, number>): string {
  return [...tally.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${v}`).join(', ');
}

export { spawnCli };

/** Ways a command's reader goes away: its stdout or stderr pipe closed, or its terminal hung up. */
export const LOSSES = ['close-stdout', 'close-stderr', 'hangup'] as const;
export type Loss = (typeof LOSSES)[number];

/**
 * Runs a command and takes its reader away at a uniformly random moment in [0, windowMs) from
 * the spawn. Returns the exit code (128 + n for a signal) and whether the loss happened before it ended.
 */
export async function loseOutputAtRandom(dir: string, args: readonly string[], loss: Loss, windowMs: number): Promise<{ code: number | null; lost: boolean; output: string }> {
  const { runClosingPipe, runHangingUp } = await import('./lost-output.ts');
  const afterMs = randomBetween(0, windowMs);
  if (loss === 'hangup') {
    const r = await runHangingUp(dir, args, { afterMs });
    return { code: r.code, lost: r.hungUp, output: r.screen };
  }
  const r = await runClosingPipe(args, loss === 'close-stdout' ? 'stdout' : 'stderr', { afterMs });
  return { code: r.signal ? null : r.code, lost: r.closed, output: r.stdout + r.stderr };
}
