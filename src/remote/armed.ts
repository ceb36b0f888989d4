/**
 * The fleet's side of the armed-switch protocol that `armedTail` (remote/script.ts) speaks on a
 * host: wait for `ready`, send `go` to every armed host at once, read the verdict of the hooks,
 * reloads and health check (`stop` cuts them short), then `commit` or `back` (or `abort` before
 * the switch). Fleet deploy, its waves and fleet rollback all drive their hosts through these
 * functions.
 */
import { describeOutcome } from '../act/hooks.ts';
import { DeployError } from '../errors.ts';
import { outputHold, type EventSink } from '../ops/events.ts';
import { pruneFailures } from './script.ts';
import { stepMarkOf, type ExecResult, type ProgramOutput, type RunningRemote } from './ssh.ts';

/** What the protocol needs of a running host program: its frames, its stdin, its end. */
export type Session = Pick<RunningRemote, 'frames' | 'waitFor' | 'send' | 'end' | 'done'>;

/** A host program after its preparation: armed (waiting for `go`), or ended without arming. */
export type ArmAnswer<S extends Session> = { kind: 'armed'; session: S } | { kind: 'refused'; result: ExecResult };

/** What a deploy's armed program runs, to name it as a local deploy names its steps. */
export interface ArmedSteps {
  beforeSwitch: readonly string[];
  afterSwitch: readonly string[];
  /** What the reloads reload (`unit app.service, php-fpm (…)`), when there are any. */
  reloads?: string;
  /** The health check as its step line says it (`curl -fsS … (up to 30 s)`), when there is one. */
  health?: string;
}

/**
 * A host's armed program told as a local deploy tells its own: a step line as each hook, the
 * reloads and the health check begin (`host1: running before-switch hook: php artisan migrate`),
 * from its frames, and each output line labelled with the host and what printed it (`[host1
 * before-switch] …`, `reload`, `health-check`), from the marks the program writes on stderr
 * itself: stdout and stderr come on two pipes, whose order between them is not kept.
 */
export function armedNarration(label: string, steps: ArmedSteps, emit: EventSink): ProgramOutput {
  let source = label;
  return {
    onStderrLine: (line) => {
      const mark = stepMarkOf(line);
      if (mark === undefined) emit({ type: 'output', source, stream: 'stderr', line });
      else {
        // A hook's last output without a newline shares the mark's line: it is still the hook's.
        if (mark.before !== '') emit({ type: 'output', source, stream: 'stderr', line: mark.before });
        source = mark.step === '-' ? label : `${label} ${mark.step}`;
      }
      return outputHold(emit);
    },
    onFrame: (f) => {
      const hook = f.tag === 'hook' ? /^(before-switch|after-switch) (\d+)$/.exec(f.value) : null;
      if (hook?.[1] !== undefined) {
        const kind = hook[1];
        const command = (kind === 'before-switch' ? steps.beforeSwitch : steps.afterSwitch)[Number(hook[2]) - 1] ?? `#${hook[2]}`;
        emit({ type: 'step', message: `${label}: running ${kind} hook: ${command}` });
      } else if (f.tag === 'reloading') {
        emit({ type: 'step', message: `${label}: reloading ${steps.reloads ?? ''}` });
      } else if (f.tag === 'checking') {
        emit({ type: 'step', message: `${label}: health check: ${steps.health ?? ''}` });
      }
    },
  };
}

/** Waits until the host is armed; a program that ends first (an `error` frame, a lost connection) is read to its end. */
export async function awaitArmed<S extends Session>(session: S): Promise<ArmAnswer<S>> {
  const frame = await session.waitFor(['ready', 'error']).catch(() => undefined);
  if (frame?.tag === 'ready') return { kind: 'armed', session };
  return { kind: 'refused', result: await session.done };
}

/** What one host answered to `go`: `lost` means it is on either release (the word went out). */
export type SwitchAnswer = { kind: 'switched'; afterMs: number } | { kind: 'switch-failed'; message: string } | { kind: 'lost' };

/** Sends `go` to every session in the same tick (before awaiting any answer), then collects the answers in order. */
export async function switchTogether(sessions: readonly Session[]): Promise<SwitchAnswer[]> {
  const sentAt = performance.now();
  for (const s of sessions) s.send('go');
  return Promise.all(
    sessions.map(async (s): Promise<SwitchAnswer> => {
      try {
        const f = await s.waitFor(['switched', 'switch-failed']);
        if (f.tag === 'switched') return { kind: 'switched', afterMs: (f.at ?? performance.now()) - sentAt };
        return { kind: 'switch-failed', message: f.value.trim() || 'rename refused' };
      } catch {
        return { kind: 'lost' };
      }
    }),
  );
}

/** Which hook failed (1-based), its exit code, and whether its time ran out (`--hook-timeout`). */
export interface HookFailure {
  hook: number;
  code: number;
  timedOut: boolean;
}

/** What a host was doing after its switch when `stop` ended it. */
export type StoppedStep = 'hooks' | 'reloads' | 'health';

/**
 * A switched host's after-switch hooks, reloads and health check, done (or ended by `stop`): it
 * now waits for the fleet's decision. `reloadFailed`: how the first reload failed.
 */
export type Verdict =
  | { kind: 'waiting'; health?: 'ok' | 'failed'; healthCode?: { code: number; timedOut: boolean }; afterSwitchFailed?: HookFailure; reloadFailed?: string; stopped?: StoppedStep; warnings: string[] }
  | { kind: 'lost' };

/** `after-switch-failed N CODE [1]` from armedTail, `hook-failed` too (1: its time ran out); anything else malformed is no failure report. */
export function hookFailureOf(value: string | undefined): HookFailure | undefined {
  const m = /^(\d+) (\d+)( 1)?$/.exec(value ?? '');
  return m ? { hook: Number(m[1]), code: Number(m[2]), timedOut: m[3] !== undefined } : undefined;
}

/** How a host's command ended, in a local deploy's words (the host knows its exit code and whether its time ran out). */
export function hostOutcome(code: number, timedOut: boolean, timeoutMs: number): string {
  return describeOutcome({ ok: false, code, signal: null, timedOut, aborted: false, detachedOutput: false, durationMs: 0 }, timeoutMs);
}

/**
 * A host's failed before-switch hook (its `hook-failed` frame), as a local deploy's HOOK_FAILED:
 * the same message, hint and details, the host named; undefined for any other failure.
 */
export function beforeSwitchHookError(label: string, result: ExecResult, commands: readonly string[], timeoutMs: number, release: string): DeployError | undefined {
  const failed = hookFailureOf(result.frames.find((f) => f.tag === 'hook-failed')?.value);
  if (failed === undefined) return undefined;
  const command = commands[failed.hook - 1] ?? `#${failed.hook}`;
  return new DeployError('HOOK_FAILED', `${label}: before-switch hook ${JSON.stringify(command)} ${hostOutcome(failed.code, failed.timedOut, timeoutMs)}; release ${release} was not switched to and was removed`, {
    hint: 'current is unchanged on every host; fix the hook or the build and deploy again',
    details: { host: label, hook: 'before-switch', command, exitCode: failed.code, timedOut: failed.timedOut },
  });
}

export async function awaitVerdict(session: Session): Promise<Verdict> {
  const waiting = await session.waitFor(['waiting']).catch(() => undefined);
  if (!waiting) return { kind: 'lost' };
  const warnings = session.frames.filter((f) => f.tag === 'warning').map((f) => f.value);
  const health = session.frames.find((f) => f.tag === 'health')?.value;
  const failed = hookFailureOf(session.frames.find((f) => f.tag === 'after-switch-failed')?.value);
  const reloadFailed = session.frames.find((f) => f.tag === 'reload-failed')?.value;
  const stopped = session.frames.find((f) => f.tag === 'stopped')?.value;
  // The exit code of the check's last attempt, and ` 1` when its time ran out, when it failed.
  const code = /^(\d+)( 1)?$/.exec(session.frames.find((f) => f.tag === 'health-code')?.value ?? '');
  return {
    kind: 'waiting',
    warnings,
    ...(health === 'ok' || health === 'failed' ? { health } : {}),
    ...(health === 'failed' && code ? { healthCode: { code: Number(code[1]), timedOut: code[2] !== undefined } } : {}),
    ...(failed ? { afterSwitchFailed: failed } : {}),
    ...(reloadFailed === undefined ? {} : { reloadFailed: reloadFailed.trim() || 'a reload failed' }),
    ...(stopped === 'hooks' || stopped === 'reloads' || stopped === 'health' ? { stopped } : {}),
  };
}

/**
 * Ends the after-switch hooks, reloads or health check a switched host is running (the deploying
 * side was interrupted); the host then says `stopped` and waits for the decision as usual. Sent to
 * a host that has already given its verdict, it changes nothing.
 */
export function stopChecks(session: Session): void {
  session.send('stop');
}

/**
 * `commit`, then one line per release record the host writes (ArmedTail.commitRecords); the host
 * prunes and releases its lock. `prune: false` (the word `commit-unverified`): the same without the
 * prune, as a local deploy prunes nothing that exits 7, or that a signal reached after its switch.
 */
export async function commitSwitch(
  session: Session,
  records: readonly string[],
  options: { prune?: boolean } = {},
): Promise<{ kind: 'committed'; pruneFailed: { id: string; message: string }[]; warnings: string[] } | { kind: 'failed'; result: ExecResult } | { kind: 'taken-over'; why: string }> {
  const before = session.frames.length;
  session.send(options.prune === false ? 'commit-unverified' : 'commit');
  for (const line of records) session.send(line);
  session.end();
  const done = await session.waitFor(['committed']).catch(() => undefined);
  // The commit's own warnings (a release log it could not write): the caller reports them.
  const warnings = session.frames.slice(before).filter((f) => f.tag === 'warning').map((f) => f.value);
  // A release prune could not move stays (named), as locally: the commit goes on without it.
  if (done) return { kind: 'committed', pruneFailed: pruneFailures(session.frames), warnings };
  const result = await session.done;
  const why = takenOver(result);
  return why === undefined ? { kind: 'failed', result } : { kind: 'taken-over', why };
}

/**
 * Why a host program did not carry out its `commit` or `back`: its lock is another command's now
 * (taken over while the deploying process was silent past its lease, or removed). It changed
 * nothing there, so the host is that command's, not this one's: the caller cannot call it committed.
 */
function takenOver(result: ExecResult): string | undefined {
  return result.frames.find((f) => f.tag === 'not-carried-out')?.value;
}

/**
 * `back`, then the journal line and one line per record (ArmedTail.backRecords). `switched-back`:
 * current is on the old release again but the program did not finish (its lock and journal are
 * left for recovery); `lost`: not known whether it went back.
 */
export async function switchBack(session: Session, lines: readonly string[]): Promise<{ kind: 'back' } | { kind: 'switched-back' | 'lost'; result: ExecResult } | { kind: 'taken-over'; why: string }> {
  session.send('back');
  for (const line of lines) session.send(line);
  session.end();
  const done = await session.waitFor(['back']).catch(() => undefined);
  if (done) return { kind: 'back' };
  const result = await session.done;
  const why = takenOver(result);
  if (why !== undefined) return { kind: 'taken-over', why };
  return { kind: result.frames.some((f) => f.tag === 'switched-back') ? 'switched-back' : 'lost', result };
}

/** Disarms a host that has not switched (any word but `go` does), and waits for its program to end. */
export async function disarm(session: Session): Promise<ExecResult> {
  session.send('abort');
  session.end();
  return session.done;
}

/** The host program released the lock itself (after `commit` or `back`): there is nothing left to unlock. */
export function releasedByProgram(session: Session): boolean {
  return session.frames.some((f) => f.tag === 'committed' || f.tag === 'back');
}
