import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  exitedUnreaped,
  listeningSocketInodes,
  parsePidFile,
  parseProcStat,
  PHP_FPM_SOCKET_PREFIX,
  phpFpmMasterProblem,
  phpFpmReexec,
  phpFpmReloadState,
  phpFpmSignalProblem,
  phpFpmSuccessor,
  socketMaster,
} from '../plan/serving.ts';
import { runShell, type ShellOutcome } from './hooks.ts';
import { NOT_REGULAR, readRegularFileBytesSync } from './read.ts';

/** How often the php-fpm reload is checked on. */
const POLL_MS = 50;

/**
 * `systemctl reload-or-restart -- <unit>` as a hook-like process: own process group, timeout,
 * output line by line. The unit reaches the shell only through the environment.
 */
export function reloadUnit(
  unit: string,
  run: { cwd: string; timeoutMs: number; signal?: AbortSignal; onLine: (stream: 'stdout' | 'stderr', line: string) => void; held?: () => PromiseLike<unknown> | undefined },
): Promise<ShellOutcome> {
  return runShell({
    command: 'exec systemctl reload-or-restart -- "$ATOMIC_DEPLOY_UNIT"',
    cwd: run.cwd,
    env: { ATOMIC_DEPLOY_UNIT: unit },
    timeoutMs: run.timeoutMs,
    signal: run.signal,
    onLine: run.onLine,
    held: run.held,
  });
}

/**
 * What systemd knows of `unit` (`systemctl show --property=LoadState`): `loaded`, `not-found`,
 * `masked`, ...; or why systemctl could not say (not installed, no systemd running). Read before
 * a deploy so that a mistyped unit is refused before the switch; it needs no privilege.
 */
export function unitLoadState(unit: string, timeoutMs = 10_000, signal?: AbortSignal): Promise<{ state: string } | { problem: string } | { interrupted: true }> {
  return new Promise((resolve) => {
    // A systemd that does not answer (a wedged D-Bus) must not keep Ctrl-C waiting for the timeout.
    execFile('systemctl', ['show', '--property=LoadState', '--value', '--', unit], { timeout: timeoutMs, encoding: 'utf8', ...(signal ? { signal } : {}) }, (error, stdout, stderr) => {
      if (signal?.aborted === true) {
        resolve({ interrupted: true });
        return;
      }
      if (error) {
        const failed = error as NodeJS.ErrnoException & { killed?: boolean; signal?: NodeJS.Signals | null };
        // A number when systemctl exited non-zero, a string (ENOENT) when it could not start.
        const code = failed.code as string | number | undefined;
        const last = stderr.trim().split('\n').at(-1) ?? '';
        // Node's own error text (`Command failed: systemctl show ...`) is no reason: say what happened instead.
        const why =
          code === 'ENOENT'
            ? 'systemctl is not installed (no systemd here)'
            : failed.killed === true
              ? `systemctl show did not answer within ${timeoutMs / 1000} s`
              : last || (typeof code === 'number' ? `systemctl exited with code ${code}` : `systemctl was ended by ${failed.signal ?? String(code)}`);
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

function readStat(pid: number): ReturnType<typeof parseProcStat> {
  try {
    return parseProcStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

function masterAlive(master: number, startTime: string): boolean {
  const stat = readStat(master);
  return stat !== undefined && stat.startTime === startTime && stat.state !== 'Z';
}

/** The workers of `before` (`pid:starttime`) still running, wherever they are now. */
function stillRunning(before: readonly string[]): number {
  return before.filter((w) => {
    const [pid, start] = w.split(':');
    const stat = readStat(Number(pid));
    return stat !== undefined && stat.startTime === start && stat.state !== 'Z';
  }).length;
}

/** A process's title: its command line up to the first NUL (php-fpm writes its title there). */
function title(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[0] ?? '';
  } catch {
    return '';
  }
}

/** Whether the kernel randomizes where a program is mapped, which makes an exec visible in /proc/<pid>/stat. */
function randomized(): boolean {
  try {
    return fs.readFileSync('/proc/sys/kernel/randomize_va_space', 'utf8').trim() !== '0';
  } catch {
    return false;
  }
}

function realPath(p: string): string | undefined {
  try {
    return fs.realpathSync(p);
  } catch {
    return undefined;
  }
}

/** The master of the pool listening on `socketPath`: socket inode from /proc/net/unix, its holders from /proc/<pid>/fd. */
function masterBySocket(socketPath: string): { master?: number; problem?: string } {
  let inodes: string[];
  try {
    inodes = listeningSocketInodes(fs.readFileSync('/proc/net/unix', 'utf8'), socketPath, realPath);
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

/** What a pid file holds at most: a pid and a newline; a longer file is not one (a log given by mistake). */
const PID_FILE_MAX = 4096;

/**
 * The start of a pid file, read without blocking (act/read.ts): a FIFO named as one would block the
 * process in a synchronous read, its signal handlers with it (Ctrl-C and SIGTERM did nothing), and
 * a character device such as /dev/zero never ends. Only a regular file is read, and only its start.
 */
function readPidFile(file: string): { text: string } | { problem: string } {
  try {
    return { text: readRegularFileBytesSync(file, undefined, PID_FILE_MAX).toString('utf8') };
  } catch (error) {
    const failed = error as NodeJS.ErrnoException & { kind?: string };
    if (failed.code === NOT_REGULAR) return { problem: `cannot read the pid file: it is ${failed.kind ?? 'not a regular file'}, not a file php-fpm wrote` };
    const code = failed.code ?? String(error);
    // Opening a socket fails with ENXIO: the pool's socket was given without unix:.
    const socket = code === 'ENXIO' ? ` (it is a socket: did you mean ${PHP_FPM_SOCKET_PREFIX}${path.resolve(file)}?)` : '';
    return { problem: `cannot read the pid file: ${code}${socket}` };
  }
}

/**
 * The running php-fpm master that `spec` names (a pid file, or `unix:<socket>`), checked by its
 * /proc entry (a stale pid file may name a recycled pid: never one that is not php-fpm, nor one of
 * its workers) and by kill(pid, 0) (a master we may not signal would fail only after the switch),
 * or why there is none. Read before a deploy too, so that a mistyped pid file is refused before the switch.
 */
export function findPhpFpmMaster(spec: string): { master: number; startTime: string } | { problem: string; master?: number } {
  let master: number | undefined;
  if (spec.startsWith(PHP_FPM_SOCKET_PREFIX)) {
    const found = masterBySocket(spec.slice(PHP_FPM_SOCKET_PREFIX.length));
    if (found.master === undefined) return { problem: found.problem ?? 'no php-fpm master found' };
    master = found.master;
  } else {
    const read = readPidFile(spec);
    if ('problem' in read) return read;
    const text = read.text;
    master = parsePidFile(text);
    if (master === undefined) return { problem: `the pid file holds no pid (${JSON.stringify(text.slice(0, 40))})` };
  }
  let comm: string;
  const stat = readStat(master);
  try {
    comm = fs.readFileSync(`/proc/${master}/comm`, 'utf8').trim();
    if (!stat || exitedUnreaped(stat)) throw new Error('exited');
  } catch {
    return { problem: `no process ${master} is running (stale pid file?)`, master };
  }
  let parentComm: string | undefined;
  try {
    parentComm = fs.readFileSync(`/proc/${stat.ppid}/comm`, 'utf8').trim();
  } catch {
    parentComm = undefined;
  }
  const problem = phpFpmMasterProblem({ pid: master, comm, ppid: stat.ppid, parentComm });
  if (problem !== undefined) return { problem, master };
  try {
    process.kill(master, 0);
  } catch (error) {
    return { problem: phpFpmSignalProblem(master, (error as NodeJS.ErrnoException).code ?? String(error)), master };
  }
  return { master, startTime: stat.startTime };
}

/**
 * Graceful reload of the php-fpm master named by `spec` (a pid file, or `unix:<socket>`): SIGUSR2,
 * then wait until every worker that ran before has exited and the master has re-exec'd
 * (plan/serving.ts: phpFpmReloadState). php-fpm sends its workers SIGQUIT first, which lets a
 * request in flight finish (within the pool's `process_control_timeout`). A master that goes away
 * is looked for again by the same spec until the deadline: with `daemonize = yes` php-fpm forks
 * a new master after its re-exec.
 */
export async function reloadPhpFpm(spec: string, run: { timeoutMs: number; signal?: AbortSignal; onLine: (line: string) => void }): Promise<PhpFpmReload> {
  const started = performance.now();
  const done = (r: Omit<PhpFpmReload, 'durationMs'>): PhpFpmReload => ({ ...r, durationMs: Math.round(performance.now() - started) });
  const found = findPhpFpmMaster(spec);
  if ('problem' in found) return done({ ok: false, problem: found.problem, ...(found.master === undefined ? {} : { master: found.master }), workersBefore: 0 });
  const { master, startTime } = found;
  const before = workerIds(master) ?? [];
  const image = readStat(master)?.image ?? '';
  const visible = randomized();
  try {
    process.kill(master, 'SIGUSR2');
  } catch (error) {
    return done({ ok: false, problem: `cannot signal php-fpm master ${master}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, master, workersBefore: before.length });
  }
  run.onLine(`sent SIGUSR2 to php-fpm master ${master}; ${before.length} worker${before.length === 1 ? '' : 's'} finish their requests`);
  const deadline = Date.now() + run.timeoutMs;
  for (;;) {
    const now = readStat(master);
    const state = phpFpmReloadState(before, {
      masterAlive: masterAlive(master, startTime),
      workers: workerIds(master) ?? [],
      reexec: phpFpmReexec(image, { image: now?.image ?? '', title: title(master) }, visible),
    });
    if (state === 'done') {
      run.onLine(`php-fpm master ${master} reloaded`);
      return done({ ok: true, master, workersBefore: before.length });
    }
    if (state === 'master-gone') {
      const found = findPhpFpmMaster(spec);
      const next = 'problem' in found ? undefined : found;
      if (next !== undefined && phpFpmSuccessor({ master, startTime }, next, stillRunning(before))) {
        run.onLine(`php-fpm master ${master} reloaded as ${next.master} (daemonized)`);
        return done({ ok: true, master: next.master, workersBefore: before.length });
      }
    }
    if (run.signal?.aborted) return done({ ok: false, problem: 'was interrupted', master, workersBefore: before.length });
    if (Date.now() >= deadline) {
      const why =
        state === 'master-gone'
          ? `php-fpm master ${master} exited during the reload and no new master came up (see its error log)`
          : state === 'old-workers'
            ? `timed out after ${run.timeoutMs / 1000} s with old workers still running`
            : `timed out after ${run.timeoutMs / 1000} s before php-fpm master ${master} re-executed (see its error log)`;
      return done({ ok: false, problem: why, master, workersBefore: before.length });
    }
    await sleep(POLL_MS);
  }
}
