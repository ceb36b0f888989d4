import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_HEALTH_TIMEOUT_MS, healthUrlProblem } from '../plan/validate.ts';
import { describeOutcome, runShell } from './hooks.ts';

export { DEFAULT_HEALTH_TIMEOUT_MS };
/** One HTTP request never waits longer than this, so a hung server still leaves time to retry. */
const REQUEST_TIMEOUT_MS = 10_000;
const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5_000;

export interface HealthCheck {
  command?: string;
  url?: string;
  timeoutMs: number;
}

export interface HealthContext {
  cwd: string;
  env: Record<string, string>;
  signal?: AbortSignal;
  onLine?: (stream: 'stdout' | 'stderr', line: string) => void;
  /** Called after each failed attempt that will be retried. */
  onRetry?: (attempt: number, reason: string, delayMs: number) => void;
}

export interface HealthResult {
  ok: boolean;
  attempts: number;
  durationMs: number;
  /** The last attempt's failure. */
  reason?: string;
  /** Stopped by the caller's AbortSignal: the release is neither proven good nor bad. */
  aborted?: boolean;
}

export { healthUrlProblem };

async function probeUrl(url: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<string | undefined> {
  const limit = AbortSignal.timeout(timeoutMs);
  try {
    const response = await fetch(url, {
      // A redirect (to a login page, say) proves nothing about this release: only 2xx counts.
      redirect: 'manual',
      headers: { 'user-agent': 'atomic-deploy health check' },
      signal: signal ? AbortSignal.any([signal, limit]) : limit,
    });
    await response.body?.cancel();
    if (response.status >= 200 && response.status < 300) return undefined;
    const location = response.headers.get('location');
    return `GET ${url} returned ${response.status}${location ? ` (redirect to ${location}; only 2xx counts)` : ''}`;
  } catch (error) {
    if (limit.aborted) return `GET ${url} timed out after ${timeoutMs / 1000} s`;
    const cause: unknown = error instanceof Error ? error.cause : undefined;
    const detail = cause instanceof Error ? cause.message : error instanceof Error ? error.message : String(error);
    return `GET ${url} failed: ${detail}`;
  }
}

/** One attempt: the command and then the URL; the first failure is the attempt's reason. */
async function attempt(check: HealthCheck, remainingMs: number, ctx: HealthContext): Promise<string | undefined> {
  if (check.command !== undefined) {
    const outcome = await runShell({ command: check.command, cwd: ctx.cwd, env: ctx.env, timeoutMs: remainingMs, signal: ctx.signal, onLine: ctx.onLine });
    if (!outcome.ok) return `command ${JSON.stringify(check.command)} ${describeOutcome(outcome, remainingMs)}`;
  }
  if (check.url !== undefined) {
    return probeUrl(check.url, Math.min(REQUEST_TIMEOUT_MS, remainingMs), ctx.signal);
  }
  return undefined;
}

/**
 * Retries the check with doubling delays until it passes or the budget is spent. The first
 * attempt always runs, and every attempt gets at least one second, even with a tiny budget.
 */
export async function checkHealth(check: HealthCheck, ctx: HealthContext): Promise<HealthResult> {
  const started = Date.now();
  const deadline = started + check.timeoutMs;
  let delay = FIRST_DELAY_MS;
  let attempts = 0;
  let reason: string | undefined;
  const done = (ok: boolean, aborted = false): HealthResult => ({ ok, attempts, durationMs: Date.now() - started, reason: ok ? undefined : reason, ...(aborted ? { aborted } : {}) });
  for (;;) {
    if (ctx.signal?.aborted) return done(false, true);
    attempts += 1;
    reason = await attempt(check, Math.max(1_000, deadline - Date.now()), ctx);
    if (ctx.signal?.aborted) return done(false, true);
    if (reason === undefined) return done(true);
    const remaining = deadline - Date.now();
    if (remaining < 100) return done(false);
    const wait = Math.min(delay, remaining);
    ctx.onRetry?.(attempts, reason, wait);
    try {
      await sleep(wait, undefined, { signal: ctx.signal });
    } catch {
      return done(false, true);
    }
    delay = Math.min(delay * 2, MAX_DELAY_MS);
  }
}
