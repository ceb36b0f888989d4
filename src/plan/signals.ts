/** Which signal, after the one that interrupted a command, stops the clean-up that interruption began. */

/** The same signal again within this time is the first one delivered twice, not a second request. */
export const REPEAT_WINDOW_MS = 100;

export interface Delivery {
  signal: NodeJS.Signals;
  /** When the process received it (any monotonic clock, in ms). */
  atMs: number;
}

/**
 * Whether `next`, received after `first`, asks to stop the deletes of the clean-up `first` began
 * (an undo). A hangup never does: nobody is left to wait, and one hangup often arrives twice (the
 * kernel's SIGHUP and the shell's forwarding of it). The same signal again within
 * REPEAT_WINDOW_MS is one Ctrl-C delivered twice: npm, yarn and other wrappers forward the
 * terminal's SIGINT to a child that already got it from the terminal.
 */
export function stopsCleanup(first: Delivery, next: Delivery): boolean {
  if (next.signal === 'SIGHUP') return false;
  return next.signal !== first.signal || next.atMs - first.atMs >= REPEAT_WINDOW_MS;
}
