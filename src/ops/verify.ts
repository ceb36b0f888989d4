/** Hooks around the switch, the health check after it, and the automatic rollback when it fails. */
import fs from 'node:fs';
import path from 'node:path';
import { scanSource } from '../act/copy.ts';
import { makeTreeDurable } from '../act/durable.ts';
import { failpoint } from '../act/failpoints.ts';
import { checkHealth, displayUrl, type HealthResult } from '../act/health.ts';
import { describeOutcome, hookEnv, runShell, type ShellOutcome } from '../act/hooks.ts';
import { releasePath, type Layout } from '../act/layout.ts';
import type { ReleaseRecord } from '../act/state.ts';
import { clearJournalRecord, recordJournal, recordRelease } from './record.ts';
import { switchCurrent } from '../act/switch.ts';
import { DeployError, ioError } from '../errors.ts';
import type { Journal } from '../plan/journal.ts';
import { checkHookAndHealth, DEFAULT_HEALTH_TIMEOUT_MS, DEFAULT_HOOK_TIMEOUT_MS, MAX_TIMEOUT_MS, signalOf as signalOfReason } from '../plan/validate.ts';
import { outputHold, type EventSink } from './events.ts';
import { awaitFreshness, hasReloads, runReloads, type ServingOptions } from './serving.ts';
import { shellWord } from '../plan/paths.ts';

export { DEFAULT_HOOK_TIMEOUT_MS, MAX_TIMEOUT_MS };

export interface VerifyOptions extends ServingOptions {
  hooks?: { beforeSwitch?: string[]; afterSwitch?: string[]; timeoutMs?: number };
  healthCheck?: { command?: string; url?: string; timeoutMs?: number };
}

export interface ReleaseContext {
  layout: Layout;
  id: string;
  previous: string | null;
  durable: boolean;
  journal: Journal;
  emit: EventSink;
  signal?: AbortSignal;
  /** A second signal: what may still stop the reloads that follow an automatic rollback. */
  secondSignal?: AbortSignal;
  /** performance.now() when the deploy began: a release rolled back records how long its deploy took too. */
  startedMs?: number;
}

export interface Verification {
  /** Fields for the new release's log record. */
  record: Partial<ReleaseRecord>;
  /** Thrown by the caller once the bookkeeping is done (a failed check with nothing to roll back to). */
  error?: DeployError;
  health?: HealthResult;
  warnings: string[];
  /** An after-switch hook failed and no health check was there to roll back on: the release stays live. */
  afterSwitchFailure?: string;
}

/** Rejects unusable hook and health-check options before anything is written (plan/validate.ts). */
export const checkVerifyOptions = checkHookAndHealth;

function hasHealthCheck(options: VerifyOptions): boolean {
  return options.healthCheck?.command !== undefined || options.healthCheck?.url !== undefined;
}

function signalOf(signal: AbortSignal | undefined): NodeJS.Signals {
  return signalOfReason(signal?.reason);
}

async function runHook(ctx: ReleaseContext, source: 'before-switch' | 'after-switch', command: string, timeoutMs: number): Promise<ShellOutcome> {
  const dir = releasePath(ctx.layout, ctx.id);
  ctx.emit({ type: 'step', message: `running ${source} hook: ${command}` });
  const outcome = await runShell({
    command,
    cwd: dir,
    env: hookEnv({ releaseId: ctx.id, releasePath: dir, previousId: ctx.previous, root: ctx.layout.root }),
    timeoutMs,
    signal: ctx.signal,
    onLine: (stream, line) => ctx.emit({ type: 'output', source, stream, line }),
    held: () => outputHold(ctx.emit),
  });
  if (outcome.detachedOutput) {
    ctx.emit({ type: 'warning', message: `${source} hook left background processes holding its output; they keep running, their output is no longer shown` });
  }
  return outcome;
}

/** Runs the before-switch hooks in `releases/<id>`; the first failure aborts the deploy (the caller undoes it). */
export async function runBeforeSwitch(ctx: ReleaseContext, options: VerifyOptions): Promise<void> {
  const commands = options.hooks?.beforeSwitch ?? [];
  if (commands.length === 0) return;
  await failpoint('before-switch-hook');
  const timeoutMs = options.hooks?.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
  for (const command of commands) {
    const outcome = await runHook(ctx, 'before-switch', command, timeoutMs);
    if (outcome.aborted || ctx.signal?.aborted) {
      const sig = signalOf(ctx.signal);
      throw new DeployError('INTERRUPTED', `interrupted by ${sig} during a before-switch hook; the deploy was undone`, { signal: sig });
    }
    if (!outcome.ok) {
      throw new DeployError('HOOK_FAILED', `before-switch hook ${JSON.stringify(command)} ${describeOutcome(outcome, timeoutMs)}; release ${ctx.id} was not switched to and was removed`, {
        hint: 'current is unchanged; fix the hook or the build and deploy again',
        details: { hook: 'before-switch', command, exitCode: outcome.code, signal: outcome.signal, timedOut: outcome.timedOut },
      });
    }
  }
  // Hooks may write into the release (caches, compiled config): durable before the switch, like the copy.
  if (ctx.durable) {
    const dir = releasePath(ctx.layout, ctx.id);
    await makeTreeDurable(dir, () => {
      const scan = scanSource(dir);
      return [...scan.entries.filter((e) => e.kind === 'file'), ...scan.entries.filter((e) => e.kind === 'dir')].map((e) => path.join(dir, e.rel));
    });
  }
}

function unverified(ctx: ReleaseContext, what: string, warnings: string[]): Verification {
  const message = `interrupted by ${signalOf(ctx.signal)}: ${what} did not finish; release ${ctx.id} stays live unverified`;
  ctx.emit({ type: 'warning', message });
  warnings.push(message);
  // Recorded as an exit 7 is (`releases`: active, unverified): only a warning said so before, and it is gone once read.
  return { record: { afterSwitchFailure: message }, warnings };
}

/**
 * What verifyAfterSwitch will run, in words for the journal (`its after-switch hooks and health
 * check`): a process that ends before they finish leaves its release live but unverified.
 */
export function afterSwitchSteps(options: VerifyOptions): string | undefined {
  const steps = [(options.hooks?.afterSwitch ?? []).length > 0 ? 'after-switch hooks' : '', hasReloads(options) ? 'reloads' : '', hasHealthCheck(options) ? 'health check' : ''].filter(Boolean);
  if (steps.length === 0) return undefined;
  return `its ${steps.length === 1 ? steps[0] : `${steps.slice(0, -1).join(', ')} and ${steps.at(-1)}`}`;
}

/**
 * After the switch: the after-switch hooks, then the health check. A failure with a health
 * check configured switches back to the previous release and throws ROLLED_BACK; a failing
 * hook without one is a warning. A signal stops verification but never undoes the switch.
 */
export async function verifyAfterSwitch(ctx: ReleaseContext, options: VerifyOptions, switchedAt: string): Promise<Verification> {
  const warnings: string[] = [];
  const commands = options.hooks?.afterSwitch ?? [];
  const health = hasHealthCheck(options);
  const reloads = hasReloads(options);
  if (commands.length === 0 && !health && !reloads) return { record: {}, warnings };
  if (ctx.signal?.aborted) return unverified(ctx, commands.length > 0 ? 'the after-switch hooks' : reloads ? 'the reloads' : 'the health check', warnings);

  let failure: string | undefined;
  if (commands.length > 0) {
    const timeoutMs = options.hooks?.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
    try {
      await failpoint('after-switch-hook');
    } catch (error) {
      failure = `after-switch hook failed: ${error instanceof Error ? error.message : String(error)}`;
    }
    for (const command of failure === undefined ? commands : []) {
      const outcome = await runHook(ctx, 'after-switch', command, timeoutMs);
      if (outcome.aborted || ctx.signal?.aborted) return unverified(ctx, 'the after-switch hooks', warnings);
      if (!outcome.ok) {
        failure = `after-switch hook ${JSON.stringify(command)} ${describeOutcome(outcome, timeoutMs)}`;
        break;
      }
    }
  }
  // Reloads come after the hooks (which may build caches) and before the health check, which must see the reloaded service.
  // After a failed hook they still run when no health check can roll back: the release stays live, and what serves must be it.
  if (reloads && (failure === undefined || !health)) {
    const reloadFailure = await runReloads(ctx, options);
    if (ctx.signal?.aborted) return unverified(ctx, 'the reloads', warnings);
    if (reloadFailure !== undefined) failure = failure === undefined ? reloadFailure : `${failure}; ${reloadFailure}`;
  }
  if (failure !== undefined && !health) {
    const message = `${failure}; release ${ctx.id} stays live (no health check is configured to decide otherwise)`;
    // No warning event: the caller reports it as the deploy's outcome (the CLI: an error line and exit 7).
    warnings.push(message);
    return { record: {}, warnings, afterSwitchFailure: message };
  }
  if (failure === undefined && !health) return { record: {}, warnings };

  let result: HealthResult | undefined;
  if (failure === undefined) {
    const check = options.healthCheck ?? {};
    const timeoutMs = check.timeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
    const dir = releasePath(ctx.layout, ctx.id);
    ctx.emit({ type: 'step', message: `health check: ${[check.command, check.url === undefined ? undefined : displayUrl(check.url)].filter(Boolean).join(' and ')} (up to ${timeoutMs / 1000} s)` });
    try {
      await failpoint('health-check');
      result = await checkHealth(
        { command: check.command, url: check.url, timeoutMs },
        {
          cwd: dir,
          env: hookEnv({ releaseId: ctx.id, releasePath: dir, previousId: ctx.previous, root: ctx.layout.root }),
          signal: ctx.signal,
          onLine: (stream, line) => ctx.emit({ type: 'output', source: 'health-check', stream, line }),
          held: () => outputHold(ctx.emit),
          onRetry: (attempt, reason, delayMs) => ctx.emit({ type: 'step', message: `health check attempt ${attempt} failed (${reason}); retrying in ${delayMs} ms` }),
        },
      );
    } catch (error) {
      result = { ok: false, attempts: 1, durationMs: 0, reason: error instanceof Error ? error.message : String(error) };
    }
    if (result.aborted) return unverified(ctx, 'the health check', warnings);
    if (result.ok) {
      ctx.emit({ type: 'step', message: `health check passed (attempt ${result.attempts}, ${result.durationMs} ms)` });
      return { record: {}, health: result, warnings };
    }
    failure = `health check failed: ${result.reason ?? 'unknown reason'}`;
  }

  const previous = ctx.previous;
  if (previous === null || !fs.existsSync(releasePath(ctx.layout, previous))) {
    const why = previous === null ? 'there is no previous release to roll back to' : `the previous release ${previous} is gone`;
    const message = `${failure}; ${why}, so release ${ctx.id} stays live`;
    // Said once, as the command's error (the deploy throws it once its bookkeeping is done), not also as a warning.
    return {
      record: { status: 'failed', reason: failure },
      health: result,
      warnings: [...warnings, message],
      error: new DeployError('HEALTH_CHECK_FAILED', message, {
        hint: 'fix the release and deploy again; it is marked failed in the release log',
        details: { release: ctx.id, reason: failure, live: true },
      }),
    };
  }
  return rollBackFailed(ctx, previous, failure, switchedAt, options);
}

/**
 * Switches back to the release that was live before this deploy, with the same journal and
 * rename as any switch: a crash midway leaves a `rolling-back` journal that recovery finishes.
 */
async function rollBackFailed(ctx: ReleaseContext, previous: string, reason: string, switchedAt: string, options: ServingOptions): Promise<never> {
  const { layout, id, durable, emit } = ctx;
  emit({ type: 'warning', message: `${reason}; rolling back to ${previous}` });
  const details = { release: id, rolledBackTo: previous, reason };
  // Deliberately deaf to the AbortSignal: once decided, the rollback is the quickest way to safety.
  try {
    if (ctx.journal.op !== 'deploy') throw new DeployError('INTERNAL', 'rollback after a failed check needs a deploy journal');
    await recordJournal(layout, { ...ctx.journal, phase: 'rolling-back', reason }, durable);
    await switchCurrent(layout, previous, { durable, beforeRename: () => failpoint('rollback-temp-link-made') });
  } catch (error) {
    const base = ioError('switching current back', error);
    throw new DeployError('HEALTH_CHECK_FAILED', `${reason}; switching back to ${previous} failed (${base.message}), so release ${id} is still live`, {
      cause: error,
      hint: `roll back by hand: atomic-deploy rollback ${shellWord(layout.root)}`,
      details: { ...details, live: true },
    });
  }
  const message = `${reason}; rolled back to ${previous}`;
  try {
    // In the try: an error here comes after the switch back, and is said as one (ROLLED_BACK, not "release <id> is live").
    await failpoint('rollback-after-switch');
    const now = new Date().toISOString();
    const took = ctx.startedMs === undefined ? {} : { durationMs: Math.round(performance.now() - ctx.startedMs) };
    await recordRelease(layout, id, { status: 'failed', activatedAt: switchedAt, endedAt: now, reason, ...took }, durable);
    await recordRelease(layout, previous, { activatedAt: now }, durable);
    await clearJournalRecord(layout, durable);
  } catch (error) {
    throw new DeployError('ROLLED_BACK', `${message} (recording it failed: ${ioError('recording', error).message}; the next command finishes the record)`, { cause: error, details });
  }
  emit({ type: 'step', message: `release ${previous} is live again; release ${id} is marked failed` });
  // Services reloaded for the failed release must load the previous one again; only warnings now, exit 4 says the rest.
  // Like the switch back, a first signal does not stop them, before or during (they are the way back
  // to what served): a second one does, and their timeout bounds them.
  const back = { layout, id: previous, emit, signal: ctx.secondSignal };
  const reloadFailure = hasReloads(options) ? await runReloads(back, options) : undefined;
  if (reloadFailure !== undefined) emit({ type: 'warning', message: `${reloadFailure} after rolling back to ${previous}` });
  // The wait for processes to leave the failed release is no way back, only a warning to come: a first signal ends it.
  const stale = await awaitFreshness({ ...back, signal: ctx.signal }, id, { ...options, stale: options.stale === 'off' ? 'off' : 'warn' }).catch(() => undefined);
  // As a rollback records it: the count belongs to the release that went live again.
  if (stale?.check === 'proc') await recordRelease(layout, previous, { staleProcesses: stale.processes.length }, durable).catch(() => undefined);
  throw new DeployError('ROLLED_BACK', message, {
    hint: `the failed release stays in ${releasePath(layout, id)} for inspection; plain rollbacks skip it`,
    details: stale ? { ...details, stale } : details,
  });
}

/** Errors that already tell the whole story of a verified deploy and must reach the user as they are. */
export function isVerdict(error: unknown): error is DeployError {
  return error instanceof DeployError && (error.code === 'ROLLED_BACK' || error.code === 'HEALTH_CHECK_FAILED');
}
