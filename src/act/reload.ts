import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { listeningSocketInodes, parsePidFile, parseProcStat, PHP_FPM_SOCKET_PREFIX, phpFpmReloadState, socketMaster } from '../plan/serving.ts';
import { runShell, type ShellOutcome } from './hooks.ts';

/** How often the php-fpm reload is checked on. */
const POLL_MS = 50;

/**
 * `systemctl reload-or-restart -- <unit>` as a hook-like process: own process group, timeout,
 * output line by line. The unit reaches the shell only through the environment.
 */
export function reloadUnit(unit: string, run: { cwd: string; timeoutMs: number; signal?: AbortSignal; onLine: (stream: 'stdout' | 'stderr', line: string) => void }): Promise<ShellOutcome> {
  return runShell({
    command: 'exec systemctl reload-or-restart -- "$ATOMIC_DEPLOY_UNIT"',
    cwd: run.cwd,
    env: { ATOMIC_DEPLOY_UNIT: unit },
    timeoutMs: run.timeoutMs,
    signal: run.signal,
    onLine: run.onLine,
  });
}

/**
 * What systemd knows of `unit` (`systemctl show --property=LoadState`): `loaded`, `not-found`,
 * `masked`, ...; or why systemctl could not say (not installed, no systemd running). Read before
 * a deploy so that a mistyped unit is refused before the switch; it needs no privilege.
 */
export function unitLoadState(unit: string, timeoutMs = 10_000): Promise<{ state: string } | { problem: string }> {
  return new Promise((resolve) => {
    execFile('systemctl', ['show', '--property=LoadState', '--value', '--', unit], { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? 'systemctl is not installed (no systemd here)' : (stderr.trim().split('\n').at(-1) ?? '') || `systemctl exited with ${String(code ?? error.message)}`;
        resolve({ problem: why });
        return;
      }
      resolve({ state: stdout.trim() });
    });
  });
}

export interface PhpFpmReload {
  ok: boolean;
  /** Why it failed, in words that follow "php-fpm reload (<pid file>) ". */
  problem?: string;
  master?: number;
  workersBefore: number;
  durationMs: number;
}

function workerIds(master: number): string[] | undefined {
  let names: string[];
  try {
    names = fs.readdirSync('/proc');
  } catch {
    return undefined;
  }
  const out: string[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let stat: ReturnType<typeof parseProcStat>;
    try {
      stat = parseProcStat(fs.readFileSync(`/proc/${name}/stat`, 'utf8'));
    } catch {
      continue;
    }
    if (stat?.ppid === master && stat.state !== 'Z') out.push(`${name}:${stat.startTime}`);
  }
  return out;
}

function masterAlive(master: number, startTime: string): boolean {
  try {
    const stat = parseProcStat(fs.readFileSync(`/proc/${master}/stat`, 'utf8'));
    return stat !== undefined && stat.startTime === startTime && stat.state !== 'Z';
  } catch {
    return false;
  }
}

/** The master of the pool listening on `socketPath`: socket inode from /proc/net/unix, its holders from /proc/<pid>/fd. */
function masterBySocket(socketPath: string): { master?: number; problem?: string } {
  let inodes: string[];
  try {
    inodes = listeningSocketInodes(fs.readFileSync('/proc/net/unix', 'utf8'), socketPath);
  } catch (error) {
    return { problem: `cannot read /proc/net/unix: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
  }
  if (inodes.length === 0) return { problem: `no process listens on ${socketPath}` };
  const wanted = new Set(inodes.map((i) => `socket:[${i}]`));
  const holders: { pid: number; ppid: number }[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${name}/fd/`);
    } catch {
      continue;
    }
    const holds = fds.some((fd) => {
      try {
        return wanted.has(fs.readlinkSync(`/proc/${name}/fd/${fd}`));
      } catch {
        return false;
      }
    });
    if (!holds) continue;
    try {
      const stat = parseProcStat(fs.readFileSync(`/proc/${name}/stat`, 'utf8'));
      if (stat) holders.push({ pid: Number(name), ppid: stat.ppid });
    } catch {
      // Exited since the listing.
    }
  }
  const master = socketMaster(holders);
  return master === undefined ? { problem: `cannot tell the php-fpm master among the ${holders.length} processes holding ${socketPath}` } : { master };
}

/**
 * The running php-fpm master that `spec` names (a pid file, or `unix:<socket>`), checked by its
 * /proc entry (a stale pid file may name a recycled pid: never one that is not php-fpm), or why
 * there is none. Read before a deploy too, so that a mistyped pid file is refused before the switch.
 */
export function findPhpFpmMaster(spec: string): { master: number; startTime: string } | { problem: string; master?: number } {
  let master: number | undefined;
  if (spec.startsWith(PHP_FPM_SOCKET_PREFIX)) {
    const found = masterBySocket(spec.slice(PHP_FPM_SOCKET_PREFIX.length));
    if (found.master === undefined) return { problem: found.problem ?? 'no php-fpm master found' };
    master = found.master;
  } else {
    let text: string;
    try {
      text = fs.readFileSync(spec, 'utf8');
    } catch (error) {
      return { problem: `cannot read the pid file: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
    }
    master = parsePidFile(text);
    if (master === undefined) return { problem: `the pid file holds no pid (${JSON.stringify(text.slice(0, 40))})` };
  }
  let comm: string;
  let startTime: string;
  try {
    comm = fs.readFileSync(`/proc/${master}/comm`, 'utf8').trim();
    const stat = parseProcStat(fs.readFileSync(`/proc/${master}/stat`, 'utf8'));
    if (!stat) throw new Error('unreadable stat');
    startTime = stat.startTime;
  } catch {
    return { problem: `no process ${master} is running (stale pid file?)`, master };
  }
  if (!comm.startsWith('php-fpm')) return { problem: `process ${master} is ${comm}, not php-fpm (stale pid file?)`, master };
  return { master, startTime };
}

/**
 * Graceful reload of the php-fpm master named by `pidFile` (or found from its socket, `unix:<path>`): SIGUSR2, then wait until every
 * worker that ran before has exited and new ones are up. php-fpm sends its workers SIGQUIT
 * first, which lets a request in flight finish (within the pool's `process_control_timeout`).
 */
export async function reloadPhpFpm(pidFile: string, run: { timeoutMs: number; signal?: AbortSignal; onLine: (line: string) => void }): Promise<PhpFpmReload> {
  const started = performance.now();
  const done = (r: Omit<PhpFpmReload, 'durationMs'>): PhpFpmReload => ({ ...r, durationMs: Math.round(performance.now() - started) });
  const found = findPhpFpmMaster(pidFile);
  if ('problem' in found) return done({ ok: false, problem: found.problem, ...(found.master === undefined ? {} : { master: found.master }), workersBefore: 0 });
  const { master, startTime } = found;
  const before = workerIds(master) ?? [];
  try {
    process.kill(master, 'SIGUSR2');
  } catch (error) {
    return done({ ok: false, problem: `cannot signal php-fpm master ${master}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, master, workersBefore: before.length });
  }
  run.onLine(`sent SIGUSR2 to php-fpm master ${master}; ${before.length} worker${before.length === 1 ? '' : 's'} finish their requests`);
  const deadline = Date.now() + run.timeoutMs;
  for (;;) {
    const state = phpFpmReloadState(before, { masterAlive: masterAlive(master, startTime), workers: workerIds(master) ?? [] });
    if (state === 'done') {
      run.onLine(`php-fpm master ${master} reloaded`);
      return done({ ok: true, master, workersBefore: before.length });
    }
    if (state === 'master-gone') return done({ ok: false, problem: `php-fpm master ${master} exited during the reload (see its error log)`, master, workersBefore: before.length });
    if (run.signal?.aborted) return done({ ok: false, problem: 'was interrupted', master, workersBefore: before.length });
    if (Date.now() >= deadline) return done({ ok: false, problem: `timed out after ${run.timeoutMs / 1000} s with old workers still running`, master, workersBefore: before.length });
    await sleep(POLL_MS);
  }
}
