/**
 * Rolling waves and the failure budget of a fleet deploy. `1,10%,100%` is a list of wave sizes,
 * as Ansible's `serial` reads it: the first wave has one host, the next 10% of the hosts (at
 * least one), then 100% (the rest); the last size repeats until every host has a wave. The
 * budget (`--max-fail n|p%`) counts failed hosts across the whole rollout, not per wave.
 */

export type Size = { count: number } | { percent: number };

/** One size: a whole number >= 1, or a percentage in (0, 100]. */
export function parseSize(text: string): Size | string {
  const t = text.trim();
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (pct?.[1] !== undefined) {
    const p = Number(pct[1]);
    return p > 0 && p <= 100 ? { percent: p } : `${JSON.stringify(t)}: a percentage must be over 0% and at most 100%`;
  }
  if (/^\d+$/.test(t) && Number(t) >= 1) return { count: Number(t) };
  return `${JSON.stringify(t)}: expected a number of hosts (>= 1) or a percentage such as 10%`;
}

/** `--waves 1,10%,100%`: the sizes, or the problem. */
export function parseWaves(text: string): Size[] | string {
  const parts = text.split(',');
  const sizes: Size[] = [];
  for (const part of parts) {
    const size = parseSize(part);
    if (typeof size === 'string') return `invalid --waves ${size}`;
    sizes.push(size);
  }
  return sizes.length > 0 ? sizes : 'invalid --waves: empty';
}

/** How many of `total` hosts a size means: a percentage is rounded down, and never below one host. */
export function sizeOf(size: Size, total: number): number {
  return 'count' in size ? size.count : Math.max(1, Math.floor((total * size.percent) / 100));
}

/** The number of hosts in each wave: each > 0, summing to `total`; the last size repeats. */
export function planWaves(sizes: readonly Size[], total: number): number[] {
  const waves: number[] = [];
  let left = total;
  for (let i = 0; left > 0; i++) {
    const size = sizes[Math.min(i, sizes.length - 1)] ?? { percent: 100 };
    const n = Math.min(left, sizeOf(size, total));
    waves.push(n);
    left -= n;
  }
  return waves;
}

/** Splits the hosts, in the order given, into waves. */
export function splitWaves<T>(hosts: readonly T[], sizes: readonly Size[]): T[][] {
  const out: T[][] = [];
  let at = 0;
  for (const n of planWaves(sizes, hosts.length)) {
    out.push(hosts.slice(at, at + n));
    at += n;
  }
  return out;
}

/** `--max-fail 2` or `--max-fail 5%` (of all hosts, rounded down; 0 allowed): the size, or the problem. */
export function parseMaxFail(text: string): Size | string {
  const t = text.trim();
  // Zero however it is written in digits (`00`, `0.0%`): the budget of an all-or-nothing rollout.
  if (/^0+$/.test(t) || /^0+(?:\.0+)?%$/.test(t)) return { count: 0 };
  const size = parseSize(t);
  // A budget may be 0, where a wave may not: the message parseSize gives says ">= 1".
  if (typeof size !== 'string') return size;
  return t.endsWith('%') ? `invalid --max-fail ${size}` : `invalid --max-fail ${JSON.stringify(t)}: expected a number of hosts (>= 0) or a percentage such as 5%`;
}

/** How many hosts may fail in the whole rollout before it stops (and, by default, switches every host back). */
export function failureBudget(maxFail: Size | undefined, total: number): number {
  if (maxFail === undefined) return 0;
  return 'count' in maxFail ? maxFail.count : Math.floor((total * maxFail.percent) / 100);
}

/** The rollout goes on only while the failures so far fit in the budget. */
export function overBudget(failures: number, budget: number): boolean {
  return failures > budget;
}

/**
 * A percentage budget that rounds down to no host at all (`--max-fail 10%` of 3 hosts): said, since
 * the rollout is then all-or-nothing although a budget was given. Undefined otherwise.
 */
export function budgetWarning(maxFail: Size | undefined, total: number): string | undefined {
  if (maxFail === undefined || !('percent' in maxFail) || failureBudget(maxFail, total) > 0) return undefined;
  return `--max-fail ${maxFail.percent}% of ${total} host${total === 1 ? '' : 's'} rounds down to 0: the first failed host stops the rollout (give a number of hosts, --max-fail 1, to tolerate one)`;
}
