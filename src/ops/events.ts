import { DeployError, typeName } from '../errors.ts';

/** What an operation reports while it runs; the CLI turns these into step lines and a progress bar. */
export type OperationEvent =
  | { type: 'step'; message: string }
  | { type: 'warning'; message: string; hint?: string }
  | { type: 'progress'; phase: 'copy' | 'fsync' | 'prune'; done: number; total: number; bytes: number; totalBytes: number }
  /** An artifact read and extracted: `done` of `total` bytes of the artifact (total 0: unknown), `files` written. */
  | { type: 'progress'; phase: 'extract'; done: number; total: number; files: number }
  | { type: 'output'; source: string; stream: 'stdout' | 'stderr'; line: string };

/**
 * Receives an operation's events (`onEvent`). It is only told: a sink that throws, or an async one
 * whose promise rejects, changes nothing the operation does. That failure is dropped, and the
 * first one of each operation is reported as a process warning (code ATOMIC_DEPLOY_EVENT_SINK).
 */
export type EventSink = (event: OperationEvent) => void;

export const ignoreEvents: EventSink = () => undefined;

/** For each sink isolateSink made: the promise its caller's sink returned for an `output` event, until it settles. */
const outputHolds = new WeakMap<EventSink, Promise<void>>();

/**
 * While the caller's sink has not settled the promise it returned for an `output` event (the CLI:
 * while its standard output is behind), that promise: the command printing is not read on until
 * then (backpressure). Undefined when nothing holds the output.
 */
export function outputHold(sink: EventSink): Promise<void> | undefined {
  return outputHolds.get(sink);
}

/**
 * The caller's `onEvent` as an operation calls it: a logger that breaks must not undo a deploy or
 * fail one already live, and an async one's rejection must not reach Node's unhandled-rejection
 * exit. USAGE for a sink that is not a function.
 */
export function isolateSink(sink: unknown): EventSink {
  if (sink === undefined || sink === null) return ignoreEvents;
  if (typeof sink !== 'function') throw new DeployError('USAGE', `onEvent must be a function, got ${typeName(sink)}`);
  const told = sink as EventSink;
  let warned = false;
  const dropped = (error: unknown): void => {
    if (warned) return;
    warned = true;
    process.emitWarning(`an onEvent sink failed and was ignored (the operation goes on; later failures are not reported): ${describeFailure(error)}`, { code: 'ATOMIC_DEPLOY_EVENT_SINK' });
  };
  const isolated: EventSink = (event) => {
    try {
      // An async sink returns a promise, which the type's void allows.
      const returned: unknown = told(event);
      if (!isThenable(returned)) return;
      const settled = Promise.resolve(returned).then(() => undefined, dropped);
      if (event.type !== 'output') return;
      outputHolds.set(isolated, settled);
      void settled.then(() => {
        if (outputHolds.get(isolated) === settled) outputHolds.delete(isolated);
      });
    } catch (error) {
      dropped(error);
    }
  };
  return isolated;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

function describeFailure(error: unknown): string {
  try {
    return (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';
  } catch {
    // An object whose toString throws says nothing more.
    return typeName(error);
  }
}
