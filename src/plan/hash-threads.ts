/**
 * How many hashing threads `verify` adds to its own: one per core that is idle now. A thread on a
 * core that other processes keep busy only adds its start-up (tens of ms of CPU) and contention.
 */

/**
 * `cores`: the machine's parallelism; `load`: how many threads are runnable now, this one
 * included (`runnableThreads`), or the one-minute load average where that is unknown; at most
 * `max` threads, never more than `cores - 1`.
 */
export function hashThreads(cores: number, load: number, max = 3): number {
  const ceiling = Math.max(0, Math.min(max, cores - 1));
  // Rounded: a load of 1.0 on 2 cores leaves one core idle, a load of 1.6 leaves none.
  const idle = Number.isFinite(load) ? Math.round(cores - Math.max(0, load)) : 0;
  return Math.max(0, Math.min(ceiling, idle));
}

/**
 * The threads runnable on the whole machine at this instant, the reader's own included: the
 * fourth field of Linux's /proc/loadavg (`0.52 0.58 0.59 2/123 4567`), undefined for anything else.
 * The one-minute average still counts a build that ended seconds ago, and the sha256sum a user
 * just ran: on an idle machine it would deny the idle core.
 */
export function runnableThreads(loadavg: string): number | undefined {
  const match = /^\S+ \S+ \S+ (\d+)\/\d+ /.exec(loadavg);
  const n = match ? Number(match[1]) : Number.NaN;
  return Number.isSafeInteger(n) && n >= 1 ? n : undefined;
}
