// Switches `current` while wrk loads nginx, and counts what visitors would have seen go wrong.
// Shared by the nginx system test and `bench/nginx.ts`, so the test is the benchmark, shortened.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { inspect } from 'node:util';
import { runCli, writeTree } from './cli.ts';
import { runWrk, type WrkResult } from './wrk.ts';

export interface Site {
  dir: string;
  root: string;
  /** Two builds whose index.html differ; deploys alternate them. */
  builds: [string, string];
  /** Their index.html, the only bodies a visitor may get. */
  bodies: [string, string];
  cleanup(): Promise<void>;
}

/** Two builds of a small site in a temp dir, and a deploy root beside them (not yet deployed). */
export async function makeSite(): Promise<Site> {
  const dir = await mkdtemp(path.join(tmpdir(), 'atomic-deploy-load-'));
  const page = (name: string): string =>
    `<!doctype html>\n<html><head><title>Release ${name}</title><link rel="stylesheet" href="app.css"></head>\n<body><h1>Release ${name}</h1><p>${'Served through current. '.repeat(20)}</p></body></html>\n`;
  const bodies: [string, string] = [page('A'), page('B')];
  const builds = bodies.map((body, i) =>
    writeTree(path.join(dir, `build-${'ab'[i] ?? i}`), {
      'index.html': body,
      'app.css': `h1 { color: ${i === 0 ? 'teal' : 'purple'}; }\n`,
      'assets/app.js': `console.log(${i});\n`,
    }),
  ) as [string, string];
  return { dir, root: path.join(dir, 'root'), builds, bodies, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Deploys `build` into `root` with the CLI (`bin`, default dist/'s), keeping every release (callers count them); throws with its stderr unless it exits 0. */
export async function cliDeploy(build: string, root: string, options: { extraArgs?: readonly string[]; bin?: string } = {}): Promise<void> {
  const r = await runCli(['deploy', build, root, '--quiet', '--keep', '0', ...(options.extraArgs ?? [])], { bin: options.bin });
  if (r.code !== 0) throw new Error(`atomic-deploy deploy exited ${String(r.code)}: ${r.stderr.trim()}`);
}

export interface LoadOptions {
  /** A loopback URL served from the root's `current`. */
  url: string;
  bodies: readonly string[];
  threads: number;
  connections: number;
  /** One switch of `current`; `i` counts from 0. */
  switchOnce(i: number): Promise<void>;
  /** Stop after this many switches. */
  switches?: number;
  /** Stop after this long (ms). At least one of switches and durationMs must be given. */
  durationMs?: number;
  /** Wait this long after each switch, e.g. to switch at the pace of real deploys. */
  paceMs?: number;
  /** Longest single wrk run; longer loads are several runs back to back, never switching between them. */
  chunkSec?: number;
}

export interface LoadResult {
  switches: number;
  /** Wall time of each switchOnce, in order. */
  switchMs: number[];
  elapsedMs: number;
  requests: number;
  non2xx: number;
  /** 2xx responses whose body was neither release's page. */
  foreignBodies: number;
  socketErrors: number;
  wrkRuns: number;
}

// wrk connects in a few ms; switches start only once every connection is sending requests.
const WARM_UP_MS = 300;

/**
 * Runs `switchOnce` repeatedly while wrk loads `url`. Every switch happens while a wrk run is
 * under way: a run is ended (SIGINT, after which wrk still reports) only between switches, and a
 * new one is started, and warmed up, before the next switch.
 */
export async function switchesUnderLoad(opts: LoadOptions): Promise<LoadResult> {
  if (opts.switches === undefined && opts.durationMs === undefined) throw new Error('switchesUnderLoad needs switches or durationMs');
  const chunkSec = opts.chunkSec ?? 60;
  const result: LoadResult = { switches: 0, switchMs: [], elapsedMs: 0, requests: 0, non2xx: 0, foreignBodies: 0, socketErrors: 0, wrkRuns: 0 };
  const started = performance.now();
  const wanted = (): boolean =>
    (opts.switches === undefined || result.switches < opts.switches) &&
    (opts.durationMs === undefined || performance.now() - started < opts.durationMs);
  const add = (w: WrkResult): void => {
    result.requests += w.requests;
    result.non2xx += w.non2xx;
    result.foreignBodies += w.foreignBodies;
    result.socketErrors += w.socketErrors;
    result.wrkRuns += 1;
  };

  while (wanted()) {
    const stop = new AbortController();
    const wrk = runWrk({ url: opts.url, durationSec: chunkSec, threads: opts.threads, connections: opts.connections, expectBodies: [...opts.bodies], signal: stop.signal });
    let wrkDone = false;
    wrk.then(
      () => (wrkDone = true),
      () => (wrkDone = true),
    );
    let failure: unknown;
    try {
      await sleep(WARM_UP_MS);
      const runStart = performance.now();
      let slowest = 0;
      // Leave the run before wrk could end by itself: no switch may land after its end.
      while (wanted() && performance.now() - runStart + 3 * slowest + 1000 < chunkSec * 1000 - WARM_UP_MS) {
        if (wrkDone) throw new Error('wrk ended while switches were still running');
        const t = performance.now();
        await opts.switchOnce(result.switches);
        const ms = performance.now() - t;
        result.switchMs.push(ms);
        result.switches += 1;
        slowest = Math.max(slowest, ms);
        if (opts.paceMs) await sleep(opts.paceMs);
      }
    } catch (error) {
      failure = error;
    } finally {
      stop.abort();
    }
    // Always reap wrk; a switch error outranks a wrk error.
    try {
      add(await wrk);
    } catch (error) {
      failure ??= error;
    }
    if (failure !== undefined) throw failure instanceof Error ? failure : new Error(inspect(failure));
  }
  result.elapsedMs = performance.now() - started;
  return result;
}
