/** After every switch: reload what serves the release, then look for processes still running from the one left. */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeOutcome } from '../act/hooks.ts';
import { releasePath, type Layout } from '../act/layout.ts';
import { findPhpFpmMaster, reloadPhpFpm, reloadUnit, unitLoadState } from '../act/reload.ts';
import { scanProcessUses, type InUseScan } from '../act/in-use.ts';
import { scanStale } from '../act/stale.ts';
import { DeployError } from '../errors.ts';
import { signalOf, timeoutProblem } from '../plan/validate.ts';
import { describeStale, PHP_FPM_SOCKET_PREFIX, STALE_MODES, staleFails, staleStep, staleWaitMs, UNIT_CHECK_HINT, unitLoadProblem, unitNameProblem, type StaleMode, type StaleReport } from '../plan/serving.ts';
import { outputHold, type EventSink } from './events.ts';
import { isWithin } from '../plan/paths.ts';
import { realpathLoose } from './root.ts';

/** A reload that hangs must not hold the deploy lock for long. */
export const DEFAULT_RELOAD_TIMEOUT_MS = 60_000;
/** Between two scans while waiting for stale processes to go. */
const STALE_POLL_MS = 200;

export interface ServingOptions {
  /** Run after every switch (deploy, rollback, automatic rollback), after the after-switch hooks. */
  reload?: { units?: string[]; phpFpm?: string[]; timeoutMs?: number };
  /** What processes still holding the release left behind mean (default warn). */
  stale?: StaleMode;
  /** How long they get to go; default 10 s with `fail`, no wait with `warn`. */
  staleWaitMs?: number;
}

export interface ServingContext {
  layout: Layout;
  /** The release now live. */
  id: string;
  emit: EventSink;
  signal?: AbortSignal;
  /** A prune follows: scan all of releases/ once, and leave that scan here for prune's guard. */
  share?: SharedScan;
}

/** One /proc scan of all of releases/ (`under`, a real path), made by the stale check and reused by prune's guard. */
export interface SharedScan {
  under: string;
  last?: InUseScan;
}

/** Rejects unusable reload and stale options before anything is written. */
export function checkServingOptions(options: ServingOptions): void {
  for (const unit of options.reload?.units ?? []) {
    const problem = unitNameProblem(unit);
    if (problem) throw new DeployError('USAGE', `invalid unit ${JSON.stringify(unit)} for --reload-unit: ${problem}`, { hint: 'e.g. --reload-unit php8.2-fpm.service' });
  }
  for (const file of options.reload?.phpFpm ?? []) {
    if (typeof file !== 'string' || file.trim() === '' || file.includes('\0')) throw new DeployError('USAGE', 'invalid php-fpm pid file: it is empty or holds a NUL byte', { hint: 'e.g. --reload-php-fpm /run/php/php8.2-fpm.pid' });
    // A relative path would be found from wherever the command runs (on a fleet host, the ssh
    // login's directory for the check and / after the hooks), never from the config file or from
    // php-fpm's prefix, which is what a relative `pid =` in php-fpm.conf is relative to.
    const named = file.startsWith(PHP_FPM_SOCKET_PREFIX) ? file.slice(PHP_FPM_SOCKET_PREFIX.length) : file;
    if (!path.posix.isAbsolute(named)) {
      const socket = named !== file;
      throw new DeployError('USAGE', `invalid php-fpm ${socket ? 'socket' : 'pid file'} ${JSON.stringify(named)} for --reload-php-fpm: not an absolute path`, {
        hint: socket ? 'give the path php-fpm listens on (listen = in the pool\'s config), e.g. unix:/run/php/php8.2-fpm.sock' : 'give the path php-fpm writes (pid = in php-fpm.conf), e.g. /run/php/php8.2-fpm.pid',
      });
    }
  }
  const timeout = options.reload?.timeoutMs;
  // Past the longest timer Node keeps, the timer fires at once: the reload was killed as "timed out after 3000000 s".
  const timeoutWrong = timeout === undefined ? undefined : timeoutProblem(timeout);
  if (timeoutWrong !== undefined) throw new DeployError('USAGE', `invalid reload timeout: ${timeoutWrong}`);
  if (options.stale !== undefined && !STALE_MODES.includes(options.stale)) {
    throw new DeployError('USAGE', `invalid stale mode ${JSON.stringify(options.stale)}: expected one of ${STALE_MODES.join(', ')}`);
  }
  const wait = options.staleWaitMs;
  if (wait !== undefined && !(Number.isFinite(wait) && wait >= 0)) throw new DeployError('USAGE', 'invalid stale wait: expected a number of seconds >= 0');
}

/**
 * Local deploys and rollbacks: every unit to reload must be one systemd knows, and every php-fpm
 * pool must be running on this machine now, so that a mistyped unit, pid file or socket is refused
 * before anything is written, not found after the switch (exit 7). A fleet host runs the same
 * checks before its lock (remote/stale.ts: checkHostReloadTargets).
 */
export async function checkReloadTargets(options: ServingOptions, signal?: AbortSignal): Promise<void> {
  for (const unit of options.reload?.units ?? []) {
    const known = await unitLoadState(unit, undefined, signal);
    if ('interrupted' in known || signal?.aborted === true) {
      const sig = signalOf(signal?.reason);
      throw new DeployError('INTERRUPTED', `interrupted by ${sig} while asking systemd about --reload-unit ${unit}; nothing was changed`, { signal: sig });
    }
    const problem = unitLoadProblem(known);
    if (problem !== undefined) throw new DeployError('USAGE', `--reload-unit ${unit}: ${problem}; nothing was changed`, { hint: UNIT_CHECK_HINT('here') });
  }
  for (const spec of options.reload?.phpFpm ?? []) {
    const found = findPhpFpmMaster(spec);
    if ('problem' in found) {
      throw new DeployError('USAGE', `--reload-php-fpm ${spec}: ${found.problem}; nothing was changed`, {
        // A master we may not signal is found and running: the message says what to do, this hint would not.
        hint: found.problem.includes('(EPERM)') ? "php-fpm's master runs as another user: deploy as that user or root, or leave --reload-php-fpm to a reload unit (--reload-unit)" : "name the pool's pid file (pid = in php-fpm.conf) or its socket (--reload-php-fpm unix:/run/php/php8.2-fpm.sock), and start php-fpm first",
      });
    }
  }
}

export function hasReloads(options: ServingOptions): boolean {
  return (options.reload?.units?.length ?? 0) + (options.reload?.phpFpm?.length ?? 0) > 0;
}

/**
 * Runs the reloads in order; returns how the first one failed (the caller treats it like a
 * failed after-switch hook), or undefined. An interruption stops them and says so.
 */
export async function runReloads(ctx: ServingContext, options: ServingOptions): Promise<string | undefined> {
  const timeoutMs = options.reload?.timeoutMs ?? DEFAULT_RELOAD_TIMEOUT_MS;
  const cwd = releasePath(ctx.layout, ctx.id);
  for (const unit of options.reload?.units ?? []) {
    ctx.emit({ type: 'step', message: `reloading unit ${unit}: systemctl reload-or-restart ${unit}` });
    const outcome = await reloadUnit(unit, { cwd, timeoutMs, signal: ctx.signal, onLine: (stream, line) => ctx.emit({ type: 'output', source: 'reload-unit', stream, line }), held: () => outputHold(ctx.emit) });
    if (!outcome.ok) return `reload of unit ${unit} ${describeOutcome(outcome, timeoutMs)}`;
  }
  for (const pidFile of options.reload?.phpFpm ?? []) {
    ctx.emit({ type: 'step', message: `reloading php-fpm gracefully (${pidFile.startsWith('unix:') ? `socket ${pidFile.slice(5)}` : `pid file ${pidFile}`})` });
    const outcome = await reloadPhpFpm(pidFile, { timeoutMs, signal: ctx.signal, onLine: (line) => ctx.emit({ type: 'output', source: 'reload-php-fpm', stream: 'stdout', line }) });
    if (!outcome.ok) return `php-fpm reload (${pidFile}) failed: ${outcome.problem ?? 'unknown reason'}`;
  }
  return undefined;
}

const RELOAD_HINT = 'reload or restart them so that they run from current (--reload-unit <unit>, --reload-php-fpm <pid file>); see docs/serving.md';

/**
 * Looks for processes still holding release `left`, waiting for them to go as the stale mode
 * says; names those that stay in one warning. Undefined when there was nothing to check.
 */
export async function awaitFreshness(ctx: ServingContext, left: string | null, options: ServingOptions): Promise<StaleReport | undefined> {
  const mode = options.stale ?? 'warn';
  if (mode === 'off' || left === null || left === ctx.id) return undefined;
  const dir = releasePath(ctx.layout, left);
  const waitMs = staleWaitMs(mode, options.staleWaitMs);
  const started = performance.now();
  let announced = false;
  // One scan serves both questions: reading /proc costs about the same whatever it looks for, and a deploy that prunes would read it twice.
  const share = ctx.share && isWithin(realpathLoose(dir), ctx.share.under) ? ctx.share : undefined;
  for (;;) {
    let wide: InUseScan | undefined;
    if (share) wide = share.last = scanProcessUses(share.under);
    const report = scanStale(dir, left, wide);
    if (report.check === 'unavailable') {
      ctx.emit({ type: 'step', message: `stale-process check not made: no /proc on this system` });
      return report;
    }
    const step = staleStep({ mode, remaining: report.processes.length, elapsedMs: performance.now() - started, waitMs, pollMs: STALE_POLL_MS });
    if (step === 'again' && !ctx.signal?.aborted) {
      if (!announced) ctx.emit({ type: 'step', message: `waiting up to ${waitMs / 1000} s for ${report.processes.length} process(es) to leave release ${left}` });
      announced = true;
      await sleep(STALE_POLL_MS);
      continue;
    }
    if (announced && step === 'again') {
      ctx.emit({ type: 'warning', message: `interrupted by ${signalOf(ctx.signal?.reason)}: the wait for processes to leave release ${left} did not finish; release ${ctx.id} stays live` });
    }
    if (report.processes.length > 0) {
      const n = report.processes.length;
      ctx.emit({
        type: 'warning',
        message: `${n} process${n === 1 ? '' : 'es'} still run${n === 1 ? 's' : ''} from release ${left}, not the live ${ctx.id}: ${describeStale(report.processes, dir)}`,
        hint: RELOAD_HINT,
      });
    }
    return report;
  }
}

/**
 * The failure `--stale fail` ends with when processes remain; undefined when it does not fail,
 * and when a signal stopped the command (its exit code says that, and the wait was not made).
 * `result` is what the command did: the switch to `live` stands.
 */
export function staleFailure(options: ServingOptions, report: StaleReport | undefined, outcome: { live: string; result: object; signal?: AbortSignal }): DeployError | undefined {
  const mode = options.stale ?? 'warn';
  if (!report || !staleFails(mode, report) || outcome.signal?.aborted) return undefined;
  const n = report.processes.length;
  const waited = staleWaitMs(mode, options.staleWaitMs) / 1000;
  return new DeployError('STALE_PROCESSES', `${n} process${n === 1 ? '' : 'es'} still held release ${report.release} after waiting ${waited} s; release ${outcome.live} is live (the switch stands)`, {
    hint: RELOAD_HINT,
    details: { release: outcome.live, live: true, stale: report },
    result: outcome.result,
  });
}
