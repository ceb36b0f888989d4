// Starts a separate reader process that hammers `<root>/current/<file>` while a test switches it.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface RaceReaderTotals {
  reads: number;
  enoent: number;
  otherErrors: number;
  /** Successful reads whose content matched none of the expected contents. */
  foreign: number;
}

export interface RaceReaderReport extends RaceReaderTotals {
  /** Count per error code, for diagnosing `otherErrors`. */
  errorCodes: Record<string, number>;
  /** Up to five foreign contents, truncated. */
  foreignSamples: string[];
}

export interface RaceReader {
  /** Asks the reader to stop and returns its totals; safe to call more than once. */
  stop(): Promise<RaceReaderReport>;
  /** Kills the reader without waiting for totals, for cleanup paths. */
  kill(): void;
  pid: number;
}

type ChildMessage = { type: 'ready' } | { type: 'result'; report: RaceReaderReport };

const CHILD_SCRIPT = fileURLToPath(new URL('./race-reader-child.mjs', import.meta.url));

function isChildMessage(value: unknown): value is ChildMessage {
  return typeof value === 'object' && value !== null && 'type' in value;
}

/**
 * Forks the reader, waits until it has done its first read, and hands back a stop handle.
 * `maxMs` bounds the reader's life even if nobody ever calls stop().
 */
export async function startRaceReader(opts: {
  path: string;
  expected: string[];
  maxMs?: number;
}): Promise<RaceReader> {
  const maxMs = opts.maxMs ?? 120_000;
  // execArgv is cleared so the child does not inherit loaders or --test flags of the parent.
  const child: ChildProcess = fork(CHILD_SCRIPT, [opts.path, JSON.stringify(opts.expected), String(maxMs)], {
    execArgv: [],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error('race reader: fork returned no pid');

  let result: RaceReaderReport | undefined;
  let exited = false;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  const resultPromise = new Promise<RaceReaderReport>((resolve, reject) => {
    child.on('message', (msg: unknown) => {
      if (isChildMessage(msg) && msg.type === 'result') {
        result = msg.report;
        resolve(msg.report);
      }
    });
    child.once('exit', (code, signal) => {
      if (result === undefined) {
        reject(new Error(`race reader exited before reporting (code ${String(code)}, signal ${String(signal)})`));
      }
    });
  });
  // Handled here so that an unawaited rejection cannot crash the runner; stop() re-surfaces it.
  resultPromise.catch(() => undefined);

  await new Promise<void>((resolve, reject) => {
    const onMessage = (msg: unknown): void => {
      if (isChildMessage(msg) && msg.type === 'ready') {
        child.off('exit', onExit);
        child.off('message', onMessage);
        resolve();
      }
    };
    const onExit = (code: number | null): void => {
      child.off('message', onMessage);
      reject(new Error(`race reader exited during start (code ${String(code)})`));
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.once('error', reject);
  });

  const kill = (): void => {
    if (!exited) child.kill('SIGKILL');
  };

  let stopping: Promise<RaceReaderReport> | undefined;
  const stop = (): Promise<RaceReaderReport> => {
    stopping ??= (async () => {
      if (!exited && child.connected) child.send('stop');
      // Totals must arrive quickly; a reader that hangs is a harness bug, not a pass.
      const timer = setTimeout(kill, 10_000);
      try {
        const report = await resultPromise;
        await exitPromise;
        return report;
      } finally {
        clearTimeout(timer);
        kill();
      }
    })();
    return stopping;
  };

  return { stop, kill, pid };
}
