/** After a switch: which processes still hold the release just left, and what the stale policy makes of them. */
import { isWithin } from './paths.ts';
import type { ProcessUse, UseKind } from './in-use.ts';

/** off: no scan; warn: name them; fail: wait for them to go, then fail if any remain. */
export type StaleMode = 'off' | 'warn' | 'fail';
export const STALE_MODES: readonly StaleMode[] = ['off', 'warn', 'fail'];

/** With `fail` and no wait given, how long the processes get to leave after the hooks and reloads. */
export const DEFAULT_STALE_WAIT_MS = 10_000;

export interface StaleHold {
  kind: UseKind;
  path: string;
}

/** One process that still runs from the release that was left: the `--json` shape. */
export interface StaleProcess {
  pid: number;
  command: string;
  holds: StaleHold[];
}

/** The scan's outcome: `unavailable` where there is no /proc (the check was not made). */
export interface StaleReport {
  check: 'proc' | 'unavailable';
  /** The release that was left, whose holders these are. */
  release: string;
  processes: StaleProcess[];
}

/** How deep a parent chain is followed before giving up (a chain of ppids is never this long). */
const MAX_ANCESTRY = 256;

/** Whether `pid` is `self` or one of its descendants, by the parent pids the scan saw. */
export function isOwnProcess(pid: number, self: number, parents: ReadonlyMap<number, number>): boolean {
  let at: number | undefined = pid;
  for (let depth = 0; at !== undefined && at > 1 && depth < MAX_ANCESTRY; depth++) {
    if (at === self) return true;
    at = parents.get(at);
  }
  return false;
}

/** The kernel appends this to the link of a file that was unlinked while open. */
const DELETED_SUFFIX = ' (deleted)';

/**
 * The processes holding anything under `releaseDir` (a real path), one entry per pid sorted by
 * pid, holds deduplicated; our own process and its descendants are left out.
 */
export function staleHolders(
  uses: readonly ProcessUse[],
  releaseDir: string,
  own: { self: number; parents: ReadonlyMap<number, number> },
): StaleProcess[] {
  const byPid = new Map<number, StaleProcess>();
  for (const use of uses) {
    const p = use.path.endsWith(DELETED_SUFFIX) ? use.path.slice(0, -DELETED_SUFFIX.length) : use.path;
    if (!p.startsWith('/') || !isWithin(p, releaseDir)) continue;
    if (isOwnProcess(use.pid, own.self, own.parents)) continue;
    const entry = byPid.get(use.pid) ?? { pid: use.pid, command: use.command, holds: [] };
    if (!entry.holds.some((h) => h.kind === use.kind && h.path === use.path)) entry.holds.push({ kind: use.kind, path: use.path });
    byPid.set(use.pid, entry);
  }
  return [...byPid.values()].sort((a, b) => a.pid - b.pid);
}

const KIND_WORDS: Record<UseKind, string> = { cwd: 'working directory', root: 'root directory', fd: 'open file', map: 'mapped file' };

/** "pid 4242 sleep (working directory releases/1), pid 17 node (open file releases/1/app.js, +2 more)". */
export function describeStale(processes: readonly StaleProcess[], releaseDir: string, limit = 10): string {
  const rel = (p: string): string => {
    const at = releaseDir.lastIndexOf('/releases/');
    return at >= 0 && p.startsWith(releaseDir) ? p.slice(at + 1) : p;
  };
  const parts = processes.slice(0, limit).map((proc) => {
    const first = proc.holds[0];
    const what = first ? `${KIND_WORDS[first.kind]} ${rel(first.path)}` : 'nothing';
    const more = proc.holds.length > 1 ? `, +${proc.holds.length - 1} more` : '';
    return `pid ${proc.pid} ${proc.command} (${what}${more})`;
  });
  const rest = processes.length - parts.length;
  return parts.join(', ') + (rest > 0 ? ` and ${rest} more process${rest === 1 ? '' : 'es'}` : '');
}

/** What to do after a scan at `elapsedMs` into the wait: stop satisfied, scan again, or give up. */
export type StaleStep = 'fresh' | 'again' | 'stale';

/**
 * The wait after the after-switch hooks and reloads. `warn` scans once (the deploy is not slowed
 * by a process nobody reloads) unless a wait was asked for; `fail` waits until the processes go.
 */
export function staleStep(input: { mode: StaleMode; remaining: number; elapsedMs: number; waitMs: number; pollMs: number }): StaleStep {
  if (input.mode === 'off' || input.remaining === 0) return 'fresh';
  // Another scan only if it can still happen inside the wait.
  return input.elapsedMs + input.pollMs <= input.waitMs ? 'again' : 'stale';
}

/** The wait to use: the one given, else the mode's default (none for warn). */
export function staleWaitMs(mode: StaleMode, waitMs: number | undefined): number {
  if (waitMs !== undefined) return waitMs;
  return mode === 'fail' ? DEFAULT_STALE_WAIT_MS : 0;
}

/** Whether the outcome fails the command: only `fail`, only when a check was made and processes remain. */
export function staleFails(mode: StaleMode, report: StaleReport | undefined): boolean {
  return mode === 'fail' && report !== undefined && report.check === 'proc' && report.processes.length > 0;
}

/** A pid file's content: one positive integer, surrounding whitespace allowed. */
export function parsePidFile(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^\d{1,10}$/.test(trimmed)) return undefined;
  const pid = Number(trimmed);
  return pid > 1 && pid <= 4_194_304 ? pid : undefined;
}

/** The fields of `/proc/<pid>/stat` we need; the command may hold spaces and parentheses. */
export function parseProcStat(text: string): { ppid: number; state: string; threads: number; startTime: string; image: string } | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = text.slice(close + 2).trim().split(' ');
  // After "(comm) ": state, ppid, ..., num_threads is field 20 of the line and starttime field 22
  // (indexes 17 and 19 here); startcode, endcode and startstack are fields 26 to 28.
  const state = fields[0];
  const ppid = Number(fields[1]);
  const threads = Number(fields[17]);
  const startTime = fields[19];
  if (state === undefined || !Number.isInteger(ppid) || !Number.isInteger(threads) || startTime === undefined) return undefined;
  return { ppid, state, threads, startTime, image: fields.slice(23, 26).join(' ') };
}

/**
 * Whether a process has exited and waits only to be reaped (a zombie). State Z (or X) with one
 * thread; Z with more is a process whose main thread exited while others run on: alive.
 */
export function exitedUnreaped(stat: { state: string; threads: number }): boolean {
  return (stat.state === 'Z' || stat.state === 'X') && stat.threads === 1;
}

/** The title php-fpm gives its master once it has started (workers are "php-fpm: pool <name>"). */
export const PHP_FPM_MASTER_TITLE = 'php-fpm: master process';

/**
 * Whether the master has re-executed itself since the signal: the addresses of its code and stack
 * (`image`, /proc/<pid>/stat fields 26-28) are new after an exec where the kernel randomizes them,
 * and its title is back once the new image has started. `unobservable` where the kernel does not
 * randomize (kernel.randomize_va_space=0) or hides the addresses from us (zeros).
 */
export function phpFpmReexec(before: string, now: { image: string; title: string }, randomized: boolean): 'seen' | 'not-yet' | 'unobservable' {
  if (!randomized || !/[1-9]/.test(before)) return 'unobservable';
  return now.image !== before && now.title.startsWith(PHP_FPM_MASTER_TITLE) ? 'seen' : 'not-yet';
}

/**
 * Where a php-fpm graceful reload stands. php-fpm lets every worker finish its request, re-execs
 * only once all have exited, and spawns none meanwhile: so once the master has re-exec'd (and
 * none of the workers that ran before the signal is left) no worker can serve old code, whether
 * or not new workers are up (an ondemand pool starts none until a request comes). Where the
 * re-exec cannot be seen, the old workers' exit is all there is to wait for. Workers are
 * `pid:starttime`, so a recycled pid is not taken for an old worker.
 */
export function phpFpmReloadState(
  before: readonly string[],
  now: { masterAlive: boolean; workers: readonly string[]; reexec: 'seen' | 'not-yet' | 'unobservable' },
): 'old-workers' | 'not-reexeced' | 'done' | 'master-gone' {
  if (!now.masterAlive) return 'master-gone';
  const old = new Set(before);
  if (now.workers.some((w) => old.has(w))) return 'old-workers';
  return now.reexec === 'not-yet' ? 'not-reexeced' : 'done';
}

/**
 * After the signalled master went away: php-fpm with `daemonize = yes` re-execs and forks again,
 * so the pool comes back under a new master that rewrites the pid file. The reload is done once
 * the spec names a running master that is not the old one (another pid, or the same pid started
 * anew) and none of the old workers is left.
 */
export function phpFpmSuccessor(old: { master: number; startTime: string }, found: { master: number; startTime: string } | undefined, oldWorkersLeft: number): boolean {
  if (found === undefined || oldWorkersLeft > 0) return false;
  return found.master !== old.master || found.startTime !== old.startTime;
}

/**
 * php-fpm's command name (comm): `php-fpm`, or with its version as distributions name the binary
 * (`php-fpm8.2`, Alpine's `php-fpm83`). Not any name that starts so: a recycled pid may now be
 * `php-fpm_exporter` (comm `php-fpm_exporte`), which SIGUSR2 ends.
 */
export function isPhpFpmCommand(comm: string): boolean {
  return /^php-fpm[0-9.]*$/.test(comm);
}

/**
 * Why a process named as a php-fpm master is not one, from its /proc entry and its parent's
 * command; undefined for a master. A worker has the master's command, and SIGUSR2 would end it in
 * the middle of a request, not reload the pool.
 */
export function phpFpmMasterProblem(p: { pid: number; comm: string; ppid: number; parentComm: string | undefined }): string | undefined {
  if (!isPhpFpmCommand(p.comm)) return `process ${p.pid} is ${p.comm}, not php-fpm (stale pid file?)`;
  if (p.parentComm !== undefined && isPhpFpmCommand(p.parentComm)) return `process ${p.pid} is a php-fpm worker of master ${p.ppid}, not a master (stale pid file?)`;
  return undefined;
}

/** Why the deploy may not signal the master, from kill(pid, 0)'s error code. */
export function phpFpmSignalProblem(master: number, code: string): string {
  return code === 'EPERM' ? `cannot signal php-fpm master ${master} (EPERM): run the deploy as the pool's user or root` : `cannot signal php-fpm master ${master} (${code})`;
}

/** A systemd unit name as `systemctl` takes it; refused: empty, option-like, control characters. */
export function unitNameProblem(unit: string): string | undefined {
  if (unit.trim() === '') return 'it is empty';
  if (unit.startsWith('-')) return 'it starts with "-"';
  if ([...unit].some((c) => c.charCodeAt(0) < 0x21 || c.charCodeAt(0) === 0x7f || c === '/')) return 'it contains a space, slash or control character';
  return undefined;
}

/** `--reload-php-fpm unix:<path>`: the pool's master is found from its listening socket, not a pid file. */
/**
 * Why a unit named for --reload-unit cannot be reloaded here, from what `systemctl show
 * --property=LoadState --value` said (its output, or why it failed); undefined when systemd has it
 * loaded. One rule for the local check and a fleet host's.
 */
export function unitLoadProblem(known: { state: string } | { problem: string }): string | undefined {
  if ('problem' in known) return known.problem;
  return known.state === 'loaded' ? undefined : `systemd says ${known.state === '' ? 'nothing of it' : known.state}`;
}

/** The hints for a reload target the check refused; `where` names the machine ("here", "on that host"). */
export const UNIT_CHECK_HINT = (where: string): string => `name a unit systemctl knows ${where} (systemctl list-units --type=service), or drop --reload-unit`;

export const PHP_FPM_SOCKET_PREFIX = 'unix:';

/**
 * The inodes of the listening unix sockets bound to `socketPath`, from /proc/net/unix (columns:
 * Num RefCount Protocol Flags Type St Inode Path; flag 0x10000 is __SO_ACCEPTCON, a listener).
 * `resolve` gives a path's real path (undefined if it has none): a socket named through a symlink
 * or spelled otherwise than it was bound (a double slash, a symlinked directory) is the same socket.
 */
export function listeningSocketInodes(procNetUnix: string, socketPath: string, resolve: (p: string) => string | undefined = () => undefined): string[] {
  const wanted = resolve(socketPath) ?? socketPath;
  const out: string[] = [];
  for (const line of procNetUnix.split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 8) continue;
    const flags = Number.parseInt(cols[3] ?? '', 16);
    // A path may hold spaces: everything after the inode column is the path.
    const path = cols.slice(7).join(' ');
    if ((flags & 0x10000) === 0 || cols[6] === undefined) continue;
    if (path === socketPath || (path.startsWith('/') && (path === wanted || resolve(path) === wanted))) out.push(cols[6]);
  }
  return out;
}

/**
 * The master among the processes holding a pool's listening socket (master and workers all do):
 * the one holder whose parent is not a holder. Undefined when there is none, or several pools.
 */
export function socketMaster(holders: readonly { pid: number; ppid: number }[]): number | undefined {
  const pids = new Set(holders.map((h) => h.pid));
  const roots = holders.filter((h) => !pids.has(h.ppid));
  return roots.length === 1 ? roots[0]?.pid : undefined;
}
