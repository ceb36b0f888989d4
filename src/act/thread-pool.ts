import fs from 'node:fs';

/** Set on globalThis while a timer runs: shared by every bundled copy of this module. */
const RUNNING = Symbol.for('atomic-deploy.thread-pool-timer');

/**
 * Keeps libuv's thread pool from sleeping on queued work. glibc's condition variables can lose a
 * wakeup (sourceware bug 25847, fixed in glibc 2.41; Debian 12 and Ubuntu 24.04 ship older ones):
 * an fs call is queued, the signal to the sleeping pool threads is lost, every thread keeps
 * sleeping, and the call's promise never settles. A deploy then hangs with nothing to show for it
 * (seen here deleting a 100,000-file release: one request queued, four idle threads). Any work
 * posted later signals again, and the woken thread drains the whole queue, so a cheap call posted
 * on a timer bounds the stall to one period. Hand-written: Node has no option for it, and the
 * guarantee (a deploy finishes) cannot wait for every host's glibc to be updated.
 *
 * The timer is unref'd (it never keeps the process alive) and posts one `stat("/")` per period.
 * Returns a function that stops it. One timer per process: the installed command starts it in its
 * CommonJS launcher (cli/launch.ts) and again in cli/bin.ts, which are bundled apart, so the
 * mark is a global; a call while a timer runs starts none and returns a stop that does nothing
 * (the first caller owns the timer).
 */
export function keepThreadPoolAwake(periodMs = 500): () => void {
  const holder = globalThis as { [RUNNING]?: boolean };
  if (holder[RUNNING] === true) return () => undefined;
  holder[RUNNING] = true;
  const timer = setInterval(() => fs.stat('/', () => undefined), periodMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    holder[RUNNING] = false;
  };
}
