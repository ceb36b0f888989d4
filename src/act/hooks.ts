import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';

/** After SIGTERM, how long a timed-out or interrupted command's process group gets before SIGKILL. */
export const KILL_GRACE_MS = 3_000;
/** After the shell exits, how long its output may still arrive before we stop reading it. */
const DRAIN_MS = 500;
/** A line longer than this is cut: output without newlines must not grow without bound. */
const MAX_LINE = 64 * 1024;

export interface ShellRun {
  /** The user's own shell text, given to `sh -c` as one argument: nothing of ours is pasted into it. */
  command: string;
  cwd: string;
  /** Added to the environment; paths reach the command only this way. */
  env: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void;
  /**
   * Asked after each piece of output is passed on: a promise while whoever shows the lines is
   * behind (a pipe read slower than the command writes), during which the command's output is not
   * read, so that the command waits on its own writes instead of our memory filling up.
   */
  held?: () => PromiseLike<unknown> | undefined;
  killGraceMs?: number;
}

export interface ShellOutcome {
  ok: boolean;
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  /** Stopped because the caller's AbortSignal fired. */
  aborted: boolean;
  /** The shell could not be started at all. */
  spawnError?: string;
  /** Processes the command left in the background still held its output when it exited. */
  detachedOutput: boolean;
  durationMs: number;
  /**
   * For sh's 126 (found, not run): the script the command starts with (`./hook.sh`), and whether
   * its mode lets it run (then its filesystem is mounted noexec, and chmod +x would not help).
   */
  script?: { name: string; executable: boolean };
}

/** The environment every hook and health-check command sees. */
export function hookEnv(info: { releaseId: string; releasePath: string; previousId: string | null; root: string }): Record<string, string> {
  return {
    ATOMIC_DEPLOY_RELEASE_ID: info.releaseId,
    ATOMIC_DEPLOY_RELEASE_PATH: info.releasePath,
    ATOMIC_DEPLOY_PREVIOUS_ID: info.previousId ?? '',
    ATOMIC_DEPLOY_ROOT: info.root,
  };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    // EPERM: a member changed user; it is still there.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    // Negative pid: the whole group, so grandchildren (`sleep` under `sh -c`) die too.
    process.kill(-pgid, signal);
  } catch {
    // Already gone.
  }
}

function splitLines(stream: Readable, emit: (line: string) => void, hold: () => PromiseLike<unknown> | undefined): () => void {
  let buffer = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    buffer += chunk;
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      emit(buffer.slice(0, nl).replace(/\r$/, ''));
      buffer = buffer.slice(nl + 1);
    }
    while (buffer.length > MAX_LINE) {
      emit(buffer.slice(0, MAX_LINE));
      buffer = buffer.slice(MAX_LINE);
    }
    // Not read on until the lines passed on are taken: the pipe fills and the command waits, as it would writing to a slow terminal.
    const held = hold();
    if (held !== undefined) {
      stream.pause();
      const resume = (): void => void stream.resume();
      held.then(resume, resume);
    }
  });
  return () => {
    if (buffer.length > 0) emit(buffer.replace(/\r$/, ''));
    buffer = '';
  };
}

/** Human words for how a command ended. */
export function describeOutcome(outcome: ShellOutcome, timeoutMs: number): string {
  if (outcome.spawnError) return `could not start: ${outcome.spawnError}`;
  if (outcome.timedOut) return `timed out after ${timeoutMs / 1000} s; its process group was killed`;
  if (outcome.aborted) return 'interrupted; its process group was killed';
  if (outcome.signal) return `killed by ${outcome.signal}`;
  // sh's own codes for a command it could not find (127) or run (126): hooks run in the release, where a relative script path points.
  if (outcome.code === 127) return 'exited with code 127 (command not found: hooks run in the release directory with sh -c, so a script outside the release needs its absolute path)';
  if (outcome.code === 126) {
    const script = outcome.script;
    if (script?.executable === true) return `exited with code 126 (${script.name} is executable, but could not be run: its filesystem may be mounted noexec; run it with sh ${script.name})`;
    if (script?.executable === false) return `exited with code 126 (${script.name} is not executable: chmod +x it, or run it with sh ${script.name})`;
    // Where the script's mode is not known (a fleet host's hook): both ways.
    return 'exited with code 126 (found but could not be run: chmod +x it; if it is executable, its filesystem may be mounted noexec: run it with sh <script>)';
  }
  return `exited with code ${String(outcome.code)}`;
}

/** The script path a command starts with (`./hook.sh --flag` → `./hook.sh`): a first word with a slash and no shell syntax. */
export function scriptOf(command: string): string | undefined {
  const first = /^\s*([^\s'"`$\\;&|<>(){}*?[\]]+)(?:\s|$)/.exec(command)?.[1];
  return first !== undefined && first.includes('/') ? first : undefined;
}

/** For a command sh found but could not run (126): its script, and whether the script's mode lets it run. */
function scriptAfter126(command: string, cwd: string | undefined): ShellOutcome['script'] {
  const name = scriptOf(command);
  if (name === undefined) return undefined;
  try {
    const st = fs.statSync(path.resolve(cwd ?? '.', name));
    return st.isFile() ? { name, executable: (st.mode & 0o111) !== 0 } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs `sh -c <command>` in its own process group and streams its output line by line. On
 * timeout or abort the whole group gets SIGTERM, then SIGKILL after a grace. Never rejects.
 */
export async function runShell(run: ShellRun): Promise<ShellOutcome> {
  const started = performance.now();
  const grace = run.killGraceMs ?? KILL_GRACE_MS;
  const outcome: ShellOutcome = { ok: false, code: null, signal: null, timedOut: false, aborted: false, detachedOutput: false, durationMs: 0 };
  if (run.signal?.aborted) {
    outcome.aborted = true;
    return outcome;
  }
  const child = spawn('sh', ['-c', run.command], {
    cwd: run.cwd,
    env: { ...process.env, ...run.env },
    // Its own group, so that a timeout can kill everything it started, not just the shell.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Once the shell has exited, what is left in its pipes is read at once: nothing waits on it any more.
  let shellExited = false;
  const hold = (): PromiseLike<unknown> | undefined => (shellExited ? undefined : run.held?.());
  const flushOut = splitLines(child.stdout, (line) => run.onLine?.('stdout', line), hold);
  const flushErr = splitLines(child.stderr, (line) => run.onLine?.('stderr', line), hold);
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null } | { error: Error }>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => resolve({ error }));
  });

  let stopping: 'timeout' | 'abort' | undefined;
  let killAt = 0;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (why: 'timeout' | 'abort'): void => {
    const pid = child.pid;
    if (stopping || pid === undefined) return;
    stopping = why;
    killAt = Date.now() + grace;
    killGroup(pid, 'SIGTERM');
    // Even a shell that ignores SIGTERM must not outlive the grace.
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), grace);
  };
  const timer = setTimeout(() => stop('timeout'), run.timeoutMs);
  const onAbort = (): void => stop('abort');
  run.signal?.addEventListener('abort', onAbort, { once: true });

  try {
    const end = await exited;
    shellExited = true;
    child.stdout.resume();
    child.stderr.resume();
    if ('error' in end) {
      outcome.spawnError = end.error.message;
      return outcome;
    }
    outcome.code = end.code;
    outcome.signal = end.signal;
    if (stopping && child.pid !== undefined) {
      // The shell is gone; children that ignore SIGTERM may not be. Wait out the grace, then SIGKILL.
      while (groupAlive(child.pid) && Date.now() < killAt) await sleep(25);
      killGroup(child.pid, 'SIGKILL');
    }
    let drainTimer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      closed.then(() => true),
      new Promise<boolean>((resolve) => {
        drainTimer = setTimeout(() => resolve(false), DRAIN_MS);
      }),
    ]);
    clearTimeout(drainTimer);
    if (!drained) {
      // A background process it started still holds the pipes: stop reading, leave it running.
      outcome.detachedOutput = true;
      child.stdout.destroy();
      child.stderr.destroy();
    }
    flushOut();
    flushErr();
    outcome.timedOut = stopping === 'timeout';
    outcome.aborted = stopping === 'abort';
    outcome.ok = !stopping && end.code === 0;
    if (end.code === 126) outcome.script = scriptAfter126(run.command, run.cwd);
    return outcome;
  } finally {
    clearTimeout(timer);
    clearTimeout(killTimer);
    run.signal?.removeEventListener('abort', onAbort);
    outcome.durationMs = Math.round(performance.now() - started);
  }
}
