/** After a fleet host's switch: its reloads, then the wait for processes still on the release it left. */
import { setTimeout as sleep } from 'node:timers/promises';
import { DeployError } from '../errors.ts';
import type { EventSink } from '../ops/events.ts';
import { checkServingOptions, DEFAULT_RELOAD_TIMEOUT_MS, hasReloads, type ServingOptions } from '../ops/serving.ts';
import { fleetStaleFails, fleetStaleReport, fleetStaleUnknown, remoteStaleReport, type FleetStaleReport } from '../plan/remote-stale.ts';
import { describeStale, PHP_FPM_SOCKET_PREFIX, staleStep, staleWaitMs, UNIT_CHECK_HINT, unitLoadProblem, type StaleReport } from '../plan/serving.ts';
import type { HostRun } from './fleet.ts';
import { frameValue } from './facts.ts';
import { rawStaleScan, reloadCheckScript, reloadScript, staleScanScript } from './stale-script.ts';

/** Between two scans of a host while waiting; each scan is one round trip over the open connection. */
const STALE_POLL_MS = 500;

const PHP_FPM_CHECK_HINT = "name the pool's pid file on that host (pid = in php-fpm.conf), and start php-fpm there first";
const PHP_FPM_SIGNAL_HINT = "php-fpm's master runs as another user there: deploy as that user or root, or leave the reload to a unit (--reload-unit)";

const RELOAD_HINT = 'reload or restart them on that host so that they run from current (--reload-unit <unit>, --reload-php-fpm <pid file>); see docs/serving.md';

/** The fleet's own limits on top of checkServingOptions: a host finds php-fpm by pid file only. */
export function checkFleetServingOptions(options: ServingOptions): void {
  checkServingOptions(options);
  const socket = options.reload?.phpFpm?.find((f) => f.startsWith(PHP_FPM_SOCKET_PREFIX));
  if (socket !== undefined) {
    throw new DeployError('USAGE', `--reload-php-fpm ${socket}: a fleet host finds php-fpm by its pid file only`, { hint: 'e.g. --reload-php-fpm /run/php/php8.2-fpm.pid' });
  }
}

/**
 * The local engine's reload check (ops/serving.ts: checkReloadTargets) on a fleet host, before its
 * lock: every unit must be one systemd has loaded there, and every php-fpm pid file must name a
 * running php-fpm master there. A mistyped unit or pid file is refused (exit 2) before any host is
 * locked or written, not found after every host switched (exit 7).
 */
export async function checkHostReloadTargets(h: HostRun, options: ServingOptions): Promise<void> {
  if (!hasReloads(options)) return;
  const units = options.reload?.units ?? [];
  const phpFpm = options.reload?.phpFpm ?? [];
  const frames = await h.remote.run(reloadCheckScript({ units, phpFpm }), 'checking the reload targets');
  if (frameValue(frames, 'checked') === undefined) throw new DeployError('REMOTE', `${h.label}: the reload check printed nothing usable`);
  const unitAnswers = frames.filter((f) => f.tag === 'unit-state' || f.tag === 'unit-problem');
  for (const [i, unit] of units.entries()) {
    const a = unitAnswers[i];
    const problem = a === undefined ? 'no answer' : unitLoadProblem(a.tag === 'unit-state' ? { state: a.value.trim() } : { problem: a.value.trim() || 'systemctl show failed' });
    if (problem !== undefined) throw new DeployError('USAGE', `${h.label}: --reload-unit ${unit}: ${problem}`, { hint: UNIT_CHECK_HINT('on that host') });
  }
  const fpmAnswers = frames.filter((f) => f.tag === 'fpm-master' || f.tag === 'fpm-problem');
  for (const [i, pidFile] of phpFpm.entries()) {
    const a = fpmAnswers[i];
    if (a?.tag === 'fpm-master') continue;
    const why = a?.value || 'no answer';
    throw new DeployError('USAGE', `${h.label}: --reload-php-fpm ${pidFile}: ${why}`, { hint: why.includes('(EPERM)') ? PHP_FPM_SIGNAL_HINT : PHP_FPM_CHECK_HINT });
  }
}

/** What a host's reloads are, as its step line names them. */
export function reloadsSaid(options: ServingOptions): string {
  return [...(options.reload?.units ?? []).map((u) => `unit ${u}`), ...(options.reload?.phpFpm ?? []).map((f) => `php-fpm (${f})`)].join(', ');
}

function reloadProgram(options: ServingOptions, embedded: boolean): string {
  return reloadScript({ units: options.reload?.units ?? [], phpFpm: options.reload?.phpFpm ?? [], timeoutS: (options.reload?.timeoutMs ?? DEFAULT_RELOAD_TIMEOUT_MS) / 1000 }, { embedded });
}

/** The reloads a deploy's armed program runs after its after-switch hooks (ArmedTail.reload), or undefined when there are none. */
export function armedReloads(options: ServingOptions): string | undefined {
  return hasReloads(options) ? reloadProgram(options, true) : undefined;
}

/** Runs the host's reloads; returns how the first one failed (treated like a failed after-switch hook), or undefined. */
export async function reloadHost(h: HostRun, options: ServingOptions, emit: EventSink, output: (line: string) => void | Promise<void>): Promise<string | undefined> {
  if (!hasReloads(options)) return undefined;
  emit({ type: 'step', message: `${h.label}: reloading ${reloadsSaid(options)}` });
  try {
    const frames = await h.remote.run(reloadProgram(options, false), 'reloading', output);
    const failed = frameValue(frames, 'failed');
    if (failed !== undefined) return `${h.label}: ${failed}`;
    if (frameValue(frames, 'reloaded') === undefined) return `${h.label}: the reloads did not finish`;
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Scans the host for processes holding `left` (the release its switch left), waiting for them to
 * go as the stale mode says; names those that stay, with the host, in one warning.
 */
export async function awaitHostFreshness(h: HostRun, live: string, left: string | null, options: ServingOptions, emit: EventSink, signal?: AbortSignal): Promise<StaleReport | undefined> {
  const mode = options.stale ?? 'warn';
  if (mode === 'off' || left === null || left === live) return undefined;
  const dir = `${h.root}/releases/${left}`;
  const waitMs = staleWaitMs(mode, options.staleWaitMs);
  const started = performance.now();
  let announced = false;
  for (;;) {
    const raw = rawStaleScan(await h.remote.run(staleScanScript(dir), 'looking for processes on the release left'));
    if (!raw) throw new DeployError('REMOTE', `${h.label}: the stale-process scan printed nothing usable`);
    const report = remoteStaleReport(raw, left);
    if (report.check === 'unavailable') {
      emit({ type: 'step', message: `${h.label}: stale-process check not made: no /proc on this host` });
      return report;
    }
    const step = staleStep({ mode, remaining: report.processes.length, elapsedMs: performance.now() - started, waitMs, pollMs: STALE_POLL_MS });
    if (step === 'again' && !signal?.aborted) {
      if (!announced) emit({ type: 'step', message: `${h.label}: waiting up to ${waitMs / 1000} s for ${report.processes.length} process(es) to leave release ${left}` });
      announced = true;
      await sleep(STALE_POLL_MS);
      continue;
    }
    if (report.processes.length > 0) {
      const n = report.processes.length;
      emit({
        type: 'warning',
        message: `${h.label}: ${n} process${n === 1 ? '' : 'es'} still run${n === 1 ? 's' : ''} from release ${left}, not the live ${live}: ${describeStale(report.processes, raw.dir)}`,
        hint: RELOAD_HINT,
      });
    }
    return report;
  }
}

/** The fleet's report from each host's, in the fleet's host order (not the order the scans ended); undefined when no host was checked. */
export function fleetStaleOf(hosts: readonly HostRun[], reports: ReadonlyMap<HostRun, StaleReport>): FleetStaleReport | undefined {
  if (reports.size === 0) return undefined;
  return fleetStaleReport(hosts.flatMap((h) => {
    const report = reports.get(h);
    return report ? [{ host: h.label, report }] : [];
  }));
}

/** The warning for a host whose scan ended without an answer (its connection lost after the switch): the host named, its own label once. */
export function staleCheckNotMade(h: HostRun, error: unknown): string {
  const why = error instanceof Error ? error.message : String(error);
  return `${h.label}: stale-process check not made: ${why.startsWith(`${h.label}: `) ? why.slice(h.label.length + 2) : why}`;
}

/**
 * The failure `--stale fail` ends a fleet command with, the switch standing: a host still has
 * processes on the release it left (exit 6), or a host's scan never answered (exit 1: the
 * freshness asked for is not known there). `unchecked` is in the fleet's host order; `stands`
 * says what stands.
 */
export function fleetStaleFailure(options: ServingOptions, report: FleetStaleReport | undefined, details: Record<string, unknown>, unchecked: readonly string[] = [], stands = 'the switch stands'): DeployError | undefined {
  const mode = options.stale ?? 'warn';
  const notChecked = unchecked.length > 0 ? `; not checked on ${unchecked.join(', ')} (no answer)` : '';
  if (fleetStaleFails(mode, report) && report) {
    const n = report.processes.length;
    const hosts = [...new Set(report.processes.map((p) => p.host))];
    const waited = staleWaitMs(mode, options.staleWaitMs) / 1000;
    return new DeployError('STALE_PROCESSES', `${n} process${n === 1 ? '' : 'es'} on ${hosts.join(', ')} still held the release left after waiting ${waited} s${notChecked}; the switch stands`, {
      hint: RELOAD_HINT,
      details: { ...details, stale: report },
    });
  }
  if (!fleetStaleUnknown(mode, unchecked)) return undefined;
  return new DeployError('REMOTE', `--stale fail: the stale-process check could not be made on ${unchecked.join(', ')}; whether processes still run from the release left there is not known; ${stands}`, {
    hint: `once ${unchecked.length === 1 ? 'it answers' : 'they answer'}, reload or restart there what may still run from the release left (--reload-unit <unit>, --reload-php-fpm <pid file>); see docs/serving.md`,
    details: { ...details, staleUnchecked: unchecked },
  });
}
