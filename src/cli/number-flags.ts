/** The one parser of each kind of number a flag (or its ATOMIC_DEPLOY_* form) takes: whole numbers and seconds. */
import { InvalidArgumentError } from 'commander';
import { countProblem, secondsProblem, type CountRange } from '../plan/validate.ts';

/** A whole number in decimal digits within `range` (see COUNTS). */
export function countFlag(range: CountRange): (value: string) => number {
  return (value) => {
    const problem = countProblem(value, range);
    if (problem) throw new InvalidArgumentError(problem);
    return Number(value);
  };
}

/** Seconds in decimal digits (a fraction allowed), at most the longest timer Node keeps; `positive` refuses 0. */
export function secondsFlag(min: 'zero' | 'positive' = 'zero'): (value: string) => number {
  return (value) => {
    const problem = secondsProblem(value, min);
    if (problem) throw new InvalidArgumentError(problem);
    return Number(value);
  };
}

/** Seconds as whole milliseconds; a positive time under half a millisecond is 1 ms, never 0 (which timeouts refuse). */
export function secondsToMs(seconds: number): number {
  const ms = Math.round(seconds * 1000);
  return seconds > 0 ? Math.max(1, ms) : ms;
}
