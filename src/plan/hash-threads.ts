/**
 * How many hashing threads `verify` adds to its own: one per core that is idle now. A thread on a
 * core that other processes keep busy only adds its start-up (tens of ms of CPU) and contention.
 */

/**
 * `cores`: the machine's parallelism; `load`: its one-minute load average (runnable processes,
 * this one counted once it runs); at most `max` threads, never more than `cores - 1`.
 */
export function hashThreads(cores: number, load: number, max = 3): number {
  const ceiling = Math.max(0, Math.min(max, cores - 1));
  // Rounded: a load of 1.0 on 2 cores leaves one core idle, a load of 1.6 leaves none.
  const idle = Number.isFinite(load) ? Math.round(cores - Math.max(0, load)) : 0;
  return Math.max(0, Math.min(ceiling, idle));
}
