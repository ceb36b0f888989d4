/** The config file's schema and its validation: plain data in, a typed config or one error line out. */
import path from 'node:path';
// The mini build: the same checks and messages without zod's chained API and locales (a fraction of the bundle).
import * as z from 'zod/mini';
import { DeployError } from '../errors.ts';
import { parseByteCount } from './archive.ts';
import { sharedPathProblem } from './paths.ts';
import { newReleaseIdProblem } from './release-id.ts';
import { CONFIG_KEY_OF_FLAG, parseHostSpec } from './config-basics.ts';
import { closest } from './suggest.ts';
import { COUNTS, MAX_SECONDS, type CountRange } from './validate.ts';
import { parseMaxFail, parseWaves } from './waves.ts';

export { CONFIG_NAMES, parseHostSpec, type HostSpec } from './config-basics.ts';

function httpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

const text = (what: string) => z.string({ error: what }).check(z.minLength(1, { error: what }));
// Infinity (YAML's .inf, or 1e400) fails the type check, not the maximum: it gets the range's words too.
const tooBig = (input: unknown): boolean => input === Number.POSITIVE_INFINITY;
const SECONDS_POSITIVE = `a number of seconds greater than 0, at most ${MAX_SECONDS} (the longest timer Node keeps)`;
const SECONDS_ZERO = `a number of seconds from 0 to ${MAX_SECONDS} (the longest timer Node keeps)`;
const seconds = (what: string) =>
  z.number({ error: (issue) => (tooBig(issue.input) ? SECONDS_POSITIVE : what) }).check(z.positive({ error: what }), z.maximum(MAX_SECONDS, { error: SECONDS_POSITIVE }));
const secondsOrZero = z
  .number({ error: (issue) => (tooBig(issue.input) ? SECONDS_ZERO : 'a number of seconds >= 0') })
  .check(z.minimum(0, { error: 'a number of seconds >= 0' }), z.maximum(MAX_SECONDS, { error: SECONDS_ZERO }));
const nonEmptyList = <T extends z.ZodMiniType>(item: T, what: string) => z.array(item, { error: what }).check(z.minLength(1, { error: what }));
/** One item or a non-empty list of them. */
const oneOrList = <T extends z.ZodMiniType>(item: T, what: string) => z.union([item, nonEmptyList(item, what)], { error: what });
const commands = oneOrList(text('a command'), 'a command or a list of commands');
const flag = z.boolean({ error: 'true or false' });
/** Why a shared path is refused, in the words the command line's flags use, with the fix of a trailing slash. */
function sharedPathExpected(input: unknown): string {
  const p = typeof input === 'string' ? input : '';
  const problem = sharedPathProblem(p);
  const trimmed = p.replace(/\/+$/, '');
  const fix = trimmed !== p && trimmed !== '' && sharedPathProblem(trimmed) === undefined ? `: write "${trimmed}"` : '';
  return `a relative, normalised path without ".."${problem === undefined ? '' : ` (${problem})`}${fix}`;
}
const sharedPath = text('a relative path inside the release').check(z.refine((p) => sharedPathProblem(p) === undefined, { error: (issue) => sharedPathExpected(issue.input) }));
// One path or a list, as the hooks take one command or a list.
const sharedList = z.union([sharedPath, z.array(sharedPath, { error: 'a list of relative paths' })], { error: 'a relative path or a list of them' });
const opt = z.optional;
/** A whole number in the range its flag takes (COUNTS); a number out of it gets the range as the expectation. */
const count = ({ min, max }: CountRange) => {
  const range = `an integer from ${min} to ${max}`;
  return z.int({ error: (issue) => (typeof issue.input === 'number' && !(issue.input >= min && issue.input <= max) ? range : `an integer >= ${min}`) }).check(z.minimum(min, { error: `an integer >= ${min}` }), z.maximum(max, { error: range }));
};

export const configSchema = z.strictObject({
  root: opt(text('a directory path')),
  source: opt(text('a directory path')),
  keep: opt(count(COUNTS.keep)),
  // YAML reads releaseId: 12345 (or 1.10, as 1.1) as a number: the fix is quotes, which the message says.
  releaseId: opt(z.string({ error: (issue) => (typeof issue.input === 'number' ? 'a release id as a string (the file holds a number here: quote it)' : 'a release id') }).check(z.minLength(1, { error: 'a release id' })).check(z.refine((id) => newReleaseIdProblem(id) === undefined, { error: 'a release id: letters, digits, dots, dashes, underscores, not starting with "." or "-", not current, shared or releases' }))),
  fsync: opt(flag),
  wait: opt(secondsOrZero),
  shared: opt(sharedList),
  sharedFiles: opt(sharedList),
  sharedDirs: opt(sharedList),
  sharedCreate: opt(flag),
  sharedReplace: opt(flag),
  strategy: opt(z.enum(['copy', 'reflink', 'hardlink', 'auto'], { error: 'one of copy, reflink, hardlink, auto' })),
  checksum: opt(flag),
  hooks: opt(
    z.strictObject(
      {
        beforeSwitch: opt(commands),
        afterSwitch: opt(commands),
        timeout: opt(seconds('a number of seconds > 0')),
      },
      { error: 'a mapping with beforeSwitch, afterSwitch, timeout' },
    ),
  ),
  healthCheck: opt(
    z
      .strictObject(
        {
          command: opt(text('a command')),
          url: opt(text('an http:// or https:// URL').check(z.refine(httpUrl, { error: 'an http:// or https:// URL' }))),
          timeout: opt(seconds('a number of seconds > 0')),
        },
        { error: 'a mapping with command, url, timeout' },
      )
      .check(z.refine((h) => h.command !== undefined || h.url !== undefined, { error: 'a command or a url (or both)' })),
  ),
  reload: opt(
    z.strictObject(
      {
        units: opt(oneOrList(text('a systemd unit name'), 'a systemd unit name or a list of them')),
        phpFpm: opt(oneOrList(text('a php-fpm pid file path'), 'a php-fpm pid file path or a list of them')),
        timeout: opt(seconds('a number of seconds > 0')),
      },
      { error: 'a mapping with units, phpFpm, timeout' },
    ),
  ),
  stale: opt(z.enum(['warn', 'fail', 'off'], { error: 'one of warn, fail, off' })),
  staleWait: opt(secondsOrZero),
  rollbackVerify: opt(z.enum(['warn', 'fail', 'off'], { error: 'one of warn, fail, off' })),
  waves: opt(
    z
      .union([z.string(), z.number()], { error: 'wave sizes such as "1,10%,100%"' })
      .check(z.refine((w) => typeof parseWaves(String(w)) !== 'string', { error: 'wave sizes such as "1,10%,100%" (hosts >= 1 or percentages)' })),
  ),
  wavePause: opt(secondsOrZero),
  maxFail: opt(
    z
      .union([z.string(), z.number()], { error: 'a number of hosts or a percentage such as 10%' })
      .check(z.refine((m) => typeof parseMaxFail(String(m)) !== 'string', { error: 'a number of hosts (>= 0) or a percentage such as 10%' })),
  ),
  onFailure: opt(z.enum(['rollback', 'keep'], { error: 'rollback or keep' })),
  artifact: opt(
    z.strictObject(
      {
        stripComponents: opt(count(COUNTS.stripComponents)),
        maxFiles: opt(count(COUNTS.maxFiles)),
        maxBytes: opt(
          z
            .union([z.number(), z.string()], { error: 'a size such as 500000000, 512M or 4G' })
            .check(z.refine((v) => (parseByteCount(v) ?? 0) > 0, { error: 'a size of at least 1 byte, such as 500000000, 512M or 4G' })),
        ),
        allowedSigners: opt(text('an OpenSSH allowed_signers file path')),
        keepSetuid: opt(flag),
        downloadTimeout: opt(seconds('a number of seconds > 0')),
        downloadRetries: opt(count(COUNTS.downloadRetries)),
        downloadMaxTime: opt(seconds('a number of seconds > 0')),
      },
      { error: 'a mapping with stripComponents, maxFiles, maxBytes, allowedSigners, keepSetuid, downloadTimeout, downloadRetries, downloadMaxTime' },
    ),
  ),
  hosts: opt(
    z.array(
      z.strictObject(
        {
          host: text('[user@]host[:port]').check(z.refine((h) => parseHostSpec(h) !== undefined, { error: '[user@]host[:port]' })),
          root: opt(text('an absolute path').check(z.refine((p) => path.posix.isAbsolute(p), { error: 'an absolute path' }))),
        },
        { error: 'a mapping with host and root' },
      ),
      { error: 'a list of hosts' },
    ).check(z.minLength(1, { error: 'a non-empty list of hosts' })),
  ),
});

export type Config = z.infer<typeof configSchema>;

/** The keys that take a whole number only (a count, a number of hosts, bytes): the schema refuses 3.5 there. */
export const WHOLE_NUMBER_KEYS: ReadonlySet<string> = new Set(['keep', 'waves', 'maxFail', 'artifact.stripComponents', 'artifact.maxFiles', 'artifact.maxBytes', 'artifact.downloadRetries']);

/**
 * A number as the file spells it (`source`), held to the command line's notation: decimal digits,
 * and no fraction for a whole-number key. YAML and JSON read 0x10, 1e3 and 3.0 as 16, 1000 and 3,
 * which the schema alone cannot tell from 16, 1000 and 3. `key` is the dotted path (`artifact.maxFiles`).
 */
export function numberNotationProblem(key: string, source: string): { said: string; hint?: string } | undefined {
  const at = key === '' ? '' : `${key}: `;
  if (!/^-?\d+(\.\d+)?$/.test(source)) return { said: `${at}got ${JSON.stringify(source)}, expected a number in decimal digits (write 16, not 0x10; 1000, not 1e3), as on the command line` };
  if (!WHOLE_NUMBER_KEYS.has(key) || !source.includes('.')) return undefined;
  const whole = source.slice(0, source.indexOf('.'));
  return { said: `${at}got ${JSON.stringify(source)}, expected a whole number in decimal digits (write ${whole}, not ${source}), as on the command line`, hint: `write ${key}: ${whole}` };
}

const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': Object.keys(configSchema.shape),
  hooks: ['beforeSwitch', 'afterSwitch', 'timeout'],
  healthCheck: ['command', 'url', 'timeout'],
  reload: ['units', 'phpFpm', 'timeout'],
  hosts: ['host', 'root'],
  artifact: ['stripComponents', 'maxFiles', 'maxBytes', 'allowedSigners', 'keepSetuid', 'downloadTimeout', 'downloadRetries', 'downloadMaxTime'],
};

/** A key as a flag-style spelling of it is looked up: case, `-` and `_` left out. */
const flagWord = (key: string): string => key.toLowerCase().replace(/[-_]/g, '');

/**
 * Keys written the way the flags are (a flag list turned into a file), at the top level, and where
 * they belong: each flag whose key is spelt otherwise (`--before-switch` is `hooks.beforeSwitch`),
 * and a few more. `closest` cannot find these: the right key is in another section.
 */
const FLAG_STYLE_KEYS: Record<string, string> = {
  ...Object.fromEntries(Object.entries(CONFIG_KEY_OF_FLAG).flatMap(([flag, key]) => (flagWord(flag.slice(2)) === flagWord(key) ? [] : [[flagWord(flag.slice(2)), key]]))),
  healthcommand: 'healthCheck.command',
  reloadunits: 'reload.units',
  host: 'hosts (a list: - host: web1)',
  nofsync: 'fsync (fsync: false)',
  timeout: 'hooks.timeout, healthCheck.timeout or reload.timeout',
};

/** Where a key that is unknown where it stands belongs, when it is a known mistake; undefined otherwise. */
function belongsUnder(parent: string, key: string): string | undefined {
  const word = flagWord(key);
  if (parent === '') {
    const at = FLAG_STYLE_KEYS[word];
    // A key that differs from the right one only in case or separators is closest's to name.
    return at !== undefined && !(KNOWN_KEYS[''] ?? []).some((k) => k.toLowerCase() === word) ? at : undefined;
  }
  if (parent === 'hosts' && (word === 'user' || word === 'port')) return 'the host string itself: host: user@web1:2222';
  return undefined;
}

/** `hooks.beforeSwitch`, `hosts[1].host`. */
export function formatKeyPath(keys: readonly PropertyKey[]): string {
  let out = '';
  for (const key of keys) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(top level)' : out;
}

/** A value as it appears in the error line: JSON, cut short. */
export function formatValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  // JSON has no Infinity or NaN (it would print null): YAML's .inf, .nan and 1e400 are named as they are.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  let s: string;
  try {
    s = JSON.stringify(value) ?? typeof value;
  } catch {
    s = typeof value;
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

const UNIT_SECONDS: Record<string, number> = { s: 1, sec: 1, m: 60, min: 60, h: 3600 };

/**
 * The value a number key was given as text it resembles: `"30"` (quoted, so text in YAML) or a
 * duration with a unit (`30s`, `1m`), which the keys do not take: the number to write instead.
 */
function numberValueHint(key: string, input: unknown, expected: string): string {
  if (typeof input !== 'string' || !/number|integer/.test(expected)) return '';
  if (/^\s*\d+(\.\d+)?\s*$/.test(input)) return `a number in quotes is text: write ${key}: ${input.trim()}; `;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h)\s*$/.exec(input);
  const unit = m?.[2] === undefined ? undefined : UNIT_SECONDS[m[2]];
  if (m?.[1] === undefined || unit === undefined || !/seconds/.test(expected)) return '';
  return `seconds are a bare number: write ${key}: ${Number(m[1]) * unit}; `;
}

/**
 * Validates parsed config data; the error names the key path, the value and what was expected, on
 * one line. `spelled` gives a number's spelling in the file by its dotted key path (YAML reads
 * `releaseId: 1.0` as 1, and "got 1" named a value the file does not hold).
 */
export function parseConfig(data: unknown, file: string, spelled?: (key: string) => string | undefined): Config {
  // An empty YAML file parses to null: no settings.
  const input = data ?? {};
  const result = configSchema.safeParse(input, { reportInput: true });
  if (result.success) return result.data;
  const issues = result.error.issues;
  const first = issues[0];
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  let line: string;
  if (first === undefined) {
    line = 'invalid config';
  } else if (first.code === 'unrecognized_keys') {
    const key = first.keys[0] ?? '';
    const keyPath = formatKeyPath([...first.path, key]);
    const parent = first.path.filter((k) => typeof k === 'string').join('.');
    const known = KNOWN_KEYS[parent] ?? [];
    const input: unknown = first.input;
    const value = typeof input === 'object' && input !== null ? (input as Record<string, unknown>)[key] : undefined;
    const under = belongsUnder(parent, key);
    const guess = under === undefined ? closest(key, known) : undefined;
    line =
      key === '<<'
        ? `${keyPath}: a YAML merge key (<<: *anchor), which this file does not read; write the keys out (anchors and aliases of whole values work)`
        : `${keyPath}: unknown key (value ${formatValue(value)});${under ? ` it belongs in ${under};` : ''}${guess ? ` did you mean '${guess}'?` : ''} expected one of ${known.join(', ')}`;
  } else if (first.path.length === 0) {
    line = `got ${formatValue(first.input)}, expected a mapping of settings`;
  } else {
    const source = typeof first.input === 'number' && first.path.every((k) => typeof k === 'string') ? spelled?.(first.path.join('.')) : undefined;
    const got = source !== undefined && source !== String(first.input) ? `${source} (read as the number ${formatValue(first.input)})` : formatValue(first.input);
    line = `${formatKeyPath(first.path)}: got ${got}, expected ${first.message}`;
  }
  // YAML reads a bare `~` (and nothing after the colon) as null: `root: ~` means no value, not the home directory.
  const nullHint = first !== undefined && first.input === null && first.path.length > 0 ? 'in YAML a bare ~ or an empty value is null: quote it (root: "~/app") or give a value; ' : '';
  const leaf = first?.path.filter((k) => typeof k === 'string').at(-1);
  const numberHint = first === undefined || leaf === undefined ? '' : numberValueHint(String(leaf), first.input, first.message);
  // A number where text is expected (an id, a path, a command): quoted, as the file spells it.
  const spelling = first !== undefined && typeof first.input === 'number' && first.code === 'invalid_type' && first.expected === 'string' && first.path.every((k) => typeof k === 'string') ? spelled?.(first.path.join('.')) : undefined;
  const quoteHint = spelling === undefined || first === undefined ? '' : `quote it: ${formatKeyPath(first.path)}: "${spelling}"; `;
  throw new DeployError('INVALID_CONFIG', `${file}: ${line}${more}`, {
    hint: `${nullHint}${numberHint}${quoteHint}see docs/lifecycle.md for every key (or atomic-deploy init --config example.yaml for a commented example); --no-config runs without the file`,
    details: { file },
  });
}
