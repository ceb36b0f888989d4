import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_HEALTH_TIMEOUT_MS, displayUrl, healthUrlProblem } from '../plan/validate.ts';
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
  /** While whoever shows the lines is behind: the command's output is not read on until it settles (act/hooks.ts). */
  held?: () => PromiseLike<unknown> | undefined;
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

export { displayUrl, healthUrlProblem };

/*
 * node:http rather than fetch: fetch refuses the Fetch standard's "bad ports" (6000, 10080, 5060,
 * ...) on which real servers do answer, and refuses URLs that carry credentials.
 */
async function probeUrl(url: string, timeoutMs: number, signal: AbortSignal | undefined): Promise<string | undefined> {
  const limit = AbortSignal.timeout(timeoutMs);
  const parsed = new URL(url);
  const shown = displayUrl(url);
  const auth = parsed.username !== '' || parsed.password !== '' ? `${decodeURIComponent(parsed.username)}:${decodeURIComponent(parsed.password)}` : undefined;
  parsed.username = '';
  parsed.password = '';
  const client = parsed.protocol === 'https:' ? https : http;
  return new Promise((resolve) => {
    const request = client.get(
      parsed,
      { headers: { 'user-agent': 'atomic-deploy health check' }, ...(auth === undefined ? {} : { auth }), signal: signal ? AbortSignal.any([signal, limit]) : limit },
      (response) => {
        // The body proves nothing: drop it so the socket closes.
        response.resume();
        const status = response.statusCode ?? 0;
        // A redirect (to a login page, say) proves nothing about this release: only 2xx counts.
        if (status >= 200 && status < 300) return resolve(undefined);
        const location = response.headers.location;
        resolve(`GET ${shown} returned ${status}${location ? ` (redirect to ${displayUrl(location)}; only 2xx counts)` : ''}`);
      },
    );
    request.on('error', (error) => {
      if (limit.aborted) return resolve(`GET ${shown} timed out after ${timeoutMs / 1000} s`);
      resolve(`GET ${shown} failed: ${error.message}`);
    });
  });
}

/** One attempt: the command and then the URL; the first failure is the attempt's reason. */
async function attempt(check: HealthCheck, remainingMs: number, ctx: HealthContext): Promise<string | undefined> {
  if (check.command !== undefined) {
    const outcome = await runShell({ command: check.command, cwd: ctx.cwd, env: ctx.env, timeoutMs: remainingMs, signal: ctx.signal, onLine: ctx.onLine, held: ctx.held });
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
