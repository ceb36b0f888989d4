/**
 * What a rollback says of the release it goes to once that release was re-hashed against its
 * manifest (ops/rollback.ts, remote/rollback.ts): pure, so both engines say it in the same words.
 */
import { DeployError, type ErrorCode } from '../errors.ts';
import type { Difference } from './manifest.ts';

/** `warn`: say what differs and roll back; `fail`: refuse, nothing changed; `off`: no check. */
export type TargetCheckMode = 'warn' | 'fail' | 'off';
export const TARGET_CHECK_MODES: readonly TargetCheckMode[] = ['warn', 'fail', 'off'];

/** The `verify` option of `rollback()` and `fleetRollback()` (default `warn`); anything else is USAGE. */
export function checkTargetMode(mode: unknown): TargetCheckMode {
  if (mode === undefined) return 'warn';
  if (mode === 'warn' || mode === 'fail' || mode === 'off') return mode;
  throw new DeployError('USAGE', `verify: got ${typeof mode === 'string' ? JSON.stringify(mode) : typeof mode}, expected warn, fail or off`, { hint: "e.g. rollback(root, { verify: 'fail' })" });
}

/** The check's outcome, as `--json` reports it (`contents`). */
export interface TargetCheck {
  /** `unchecked`: the check itself failed (an unreadable release, say); `warn` rolled back without it. */
  check: 'identical' | 'differs' | 'no-manifest' | 'untrusted' | 'unchecked';
  /** With `differs`: every difference, as `verify` lists them. */
  differences?: Difference[];
  /** With `no-manifest`, `untrusted` and `unchecked`: why nothing could be checked. */
  problem?: string;
}

export type CheckFound = { kind: 'checked'; differences: Difference[] } | { kind: 'no-manifest' | 'untrusted'; problem: string };

export interface TargetVerdict {
  contents: TargetCheck;
  /** A line of progress (the release matches, or has no manifest to check). */
  step?: string;
  warning?: { message: string; hint?: string };
  /** `fail`: the rollback stops before anything is written, with this error. */
  refusal?: { code: ErrorCode; message: string; hint: string };
}

/** How many differences a message names before it says how many more there are. */
const NAMED = 3;

/** `modified index.php, mode config.php (644 -> 666), added x.php and 4 more`: sizes and hashes are left to `verify`. */
export function differenceList(differences: readonly Difference[]): string {
  // A name or link target holding a line break would end the message's line: written escaped, as JSON writes it.
  const inline = (text: string): string => JSON.stringify(text).slice(1, -1);
  const named = differences.slice(0, NAMED).map((d) => {
    const change = d.kind !== 'modified' && d.expected !== undefined && d.actual !== undefined ? ` (${inline(d.expected)} -> ${inline(d.actual)})` : '';
    return `${d.kind} ${inline(d.path)}${change}`;
  });
  const more = differences.length - named.length;
  return more > 0 ? `${named.join(', ')} and ${more} more` : named.join(', ');
}

/** How the release goes live, in the verdict's words: `warn` checks once it is live (the switch never waits for a re-hash), the dry run and `fail` before. */
function goesLive(dryRun: boolean, switched: boolean): string {
  return dryRun ? 'a rollback would put it live' : switched ? 'it is live' : 'it goes live';
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/**
 * The verdict on release `release` from what its check found. `where` prefixes the messages (a
 * fleet host's `host1: `); `verifyCommand` is the command that lists every difference.
 */
export function targetCheckVerdict(found: CheckFound, options: { release: string; mode: Exclude<TargetCheckMode, 'off'>; dryRun: boolean; verifyCommand: string; where?: string; switched?: boolean }): TargetVerdict {
  const { release, mode, dryRun, verifyCommand } = options;
  const goes = goesLive(dryRun, options.switched === true);
  const where = options.where ?? '';
  const unchanged = dryRun ? 'nothing was changed (dry run)' : 'nothing was changed';
  if (found.kind === 'checked') {
    if (found.differences.length === 0) return { contents: { check: 'identical' }, step: `${where}release ${release} matches its manifest` };
    const contents: TargetCheck = { check: 'differs', differences: found.differences };
    const what = `${where}release ${release} differs from its manifest (${plural(found.differences.length, 'difference')}: ${differenceList(found.differences)})`;
    if (mode === 'fail') {
      return { contents, refusal: { code: 'RELEASE_DIFFERS', message: `${what}; ${dryRun ? 'the rollback would refuse it' : 'the rollback refuses it'}, ${unchanged}`, hint: `see every difference with: ${verifyCommand}; roll back to it as it is with --verify warn, or to another release with --to <id>` } };
    }
    return { contents, warning: { message: `${what}; ${goes} as it is`, hint: `see every difference with: ${verifyCommand}; --verify fail checks before the switch and refuses such a rollback` } };
  }
  const contents: TargetCheck = { check: found.kind, problem: found.problem };
  if (mode === 'fail') {
    return { contents, refusal: { code: found.kind === 'untrusted' ? 'MANIFEST_UNTRUSTED' : 'NO_MANIFEST', message: `${where}${found.problem}; --verify fail refuses a release that cannot be checked, ${unchanged}`, hint: 'roll back to it unchecked with --verify warn (or off), or to another release with --to <id>' } };
  }
  const unchecked = `${goes} unchecked`;
  if (found.kind === 'no-manifest') return { contents, step: `${where}release ${release} has no manifest to check it against; ${unchecked}` };
  return { contents, warning: { message: `${where}${found.problem}; ${unchecked}`, hint: `see why with: ${verifyCommand}` } };
}

/** `warn` when the check itself failed (an unreadable release, a lost connection): said, and the rollback goes on. */
export function uncheckedVerdict(reason: string, options: { release: string; dryRun: boolean; switched: boolean; where?: string }): Required<Pick<TargetVerdict, 'contents' | 'warning'>> {
  return {
    contents: { check: 'unchecked', problem: reason },
    warning: { message: `${options.where ?? ''}release ${options.release} could not be checked against its manifest (${reason}); ${goesLive(options.dryRun, options.switched)} unchecked` },
  };
}
