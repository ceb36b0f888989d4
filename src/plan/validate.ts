/**
 * One home for the rules on a command's input: release ids, `--keep`, hook and health-check
 * options, seconds, signal names and the default timeouts. The CLI, the local engine and the
 * fleet all call these, so a value refused in one place is refused in every place. Pure: no I/O.
 */
import { DeployError, typeName } from '../errors.ts';
import { CONFIG_NAMES } from './config-basics.ts';
import { newReleaseIdProblem, releaseIdProblem } from './release-id.ts';
import { shellWord } from './paths.ts';

/** A hook that hangs must not hold the deploy lock forever. */
export const DEFAULT_HOOK_TIMEOUT_MS = 5 * 60_000;
/** The health check's budget for all attempts together. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 30_000;

export interface HookAndHealthOptions {
  hooks?: { beforeSwitch?: string[]; afterSwitch?: string[]; timeoutMs?: number };
  healthCheck?: { command?: string; url?: string; timeoutMs?: number };
}

/** A release id given by the user (`--release-id`, `--to`): safe as a directory name, or INVALID_RELEASE_ID. */
export function checkReleaseId(id: unknown, hint = 'use letters, digits, dots, dashes and underscores, e.g. --release-id v1.4.2'): asserts id is string {
  checkIdType(id);
  const problem = releaseIdProblem(id);
  if (problem) {
    throw new DeployError('INVALID_RELEASE_ID', `invalid release id ${JSON.stringify(id)}: ${problem}`, { hint });
  }
}

/** `checkReleaseId` for the id of a release about to be made (`--release-id`). */
export function checkNewReleaseId(id: unknown): asserts id is string {
  checkIdType(id);
  const problem = newReleaseIdProblem(id);
  if (problem) {
    throw new DeployError('INVALID_RELEASE_ID', `invalid release id ${JSON.stringify(id)}: ${problem}`, { hint: 'for example: --release-id v1.4.2' });
  }
}

/** A JavaScript caller's release id that is no string (a YAML 12345 read as a number): USAGE. */
export function checkIdType(id: unknown): asserts id is string {
  if (typeof id !== 'string') throw new DeployError('USAGE', `a release id must be a string, got ${typeName(id)}`, { hint: 'for example: "v1.4.2" (a number in quotes: "12345")' });
}

/** Whether a umask leaves the owner every bit of what is made (022, 027, 077 do). */
export function umaskLeavesOwner(mask: number): boolean {
  return (mask & 0o700) === 0;
}

/**
 * A umask that takes one of the owner's own bits (0277, 0777): what a command makes (the state
 * directory, the lock, the journal) would refuse the user who made it, and a deploy left a root
 * half made that refused every deploy after it. Refused before anything is made: USAGE.
 */
export function checkUmask(mask: number): void {
  if (umaskLeavesOwner(mask)) return;
  const taken = mask & 0o700;
  const bits = [taken & 0o400 ? 'read' : '', taken & 0o200 ? 'write' : '', taken & 0o100 ? 'search' : ''].filter((w) => w !== '');
  throw new DeployError('USAGE', `the umask ${mask.toString(8).padStart(4, '0')} takes ${bits.length === 1 ? bits[0] : `${bits.slice(0, -1).join(', ')} and ${bits[bits.length - 1]}`} permission from the owner of what this command makes: its own directories would refuse it`, {
    hint: 'run it under a umask that leaves the owner rwx: umask 022 (or 077 to keep the state private)',
  });
}

export function checkKeep(keep: unknown): asserts keep is number {
  if (typeof keep !== 'number' || !Number.isInteger(keep) || keep < 0) {
    throw new DeployError('USAGE', `--keep must be an integer >= 0, got ${String(keep)}`, { hint: 'for example: --keep 5' });
  }
}

/**
 * The options argument of a library function, from a JavaScript caller: an object, or nothing
 * where the function has defaults; `example` (its hint) where it needs some (prune, the fleet).
 */
export function checkOptionsArgument(options: unknown, example?: string): void {
  if (options === undefined && example === undefined) return;
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new DeployError('USAGE', `the options must be an object, got ${typeName(options)}`, { hint: example ?? 'pass an object of options, or nothing' });
  }
  // `fsync: 'no'` would be true: a switch the caller meant as one thing is read as the other.
  const given = options as Record<string, unknown>;
  const artifact: unknown = given.artifact;
  const nested = typeof artifact === 'object' && artifact !== null ? (artifact as Record<string, unknown>) : {};
  for (const [name, value] of [...BOOLEAN_OPTIONS.map((n) => [n, given[n]] as const), ['artifact.keepSetid', nested.keepSetid] as const]) {
    if (value !== undefined && typeof value !== 'boolean') throw new DeployError('USAGE', `${name} must be true or false, got ${typeof value === 'string' ? JSON.stringify(value) : typeName(value)}`);
  }
  // Anything else was never looked at: a Ctrl-C the caller wired up would not stop the operation.
  for (const name of ['signal', 'secondSignal'] as const) {
    const value = given[name];
    if (value !== undefined && !(value instanceof AbortSignal)) throw new DeployError('USAGE', `${name} must be an AbortSignal, got ${typeName(value)}`, { hint: 'for example: an AbortController\'s signal, or AbortSignal.timeout(600_000)' });
  }
  for (const name of ['sha256', 'signature', 'allowedSigners'] as const) {
    const value = nested[name];
    if (value !== undefined && typeof value !== 'string') throw new DeployError('USAGE', `artifact.${name} must be a string, got ${typeName(value)}`);
  }
}

/** The options of the library's functions that are switches. */
const BOOLEAN_OPTIONS = ['fsync', 'adopt', 'dryRun', 'sharedCreate', 'sharedReplace', 'checksum', 'force', 'readOnly'] as const;

/** The list options a deploy, rollback or fleet command takes, where one string is a list of one. */
export interface ListOptions {
  shared?: string[];
  sharedFiles?: string[];
  sharedDirs?: string[];
  hooks?: { beforeSwitch?: string[]; afterSwitch?: string[] };
  healthCheck?: object;
  reload?: { units?: string[]; phpFpm?: string[] };
  artifact?: object;
}

/**
 * `options` with its lists as lists: a JavaScript caller's lone string is a list of one, as in
 * the config file (which parseConfig returns as it was written). Anything else that is no list
 * of strings, and a section (`hooks`, `reload`, ...) that is no object, is USAGE naming its type.
 */
export function withLists<T extends ListOptions>(options: T): T {
  for (const name of ['hooks', 'healthCheck', 'reload', 'artifact'] as const) {
    const section: unknown = options[name];
    if (section !== undefined && (typeof section !== 'object' || section === null || Array.isArray(section))) {
      throw new DeployError('USAGE', `${name} must be an object, got ${typeName(section)}`);
    }
  }
  const out: T = { ...options };
  for (const name of ['shared', 'sharedFiles', 'sharedDirs'] as const) if (options[name] !== undefined) out[name] = listOf(options[name], name);
  const { hooks, reload } = options;
  if (hooks) out.hooks = { ...hooks, ...listsOf(hooks, 'hooks', ['beforeSwitch', 'afterSwitch']) };
  if (reload) out.reload = { ...reload, ...listsOf(reload, 'reload', ['units', 'phpFpm']) };
  return out;
}

function listsOf<K extends string>(section: Partial<Record<K, string[]>>, at: string, names: readonly K[]): Partial<Record<K, string[]>> {
  const out: Partial<Record<K, string[]>> = {};
  for (const name of names) if (section[name] !== undefined) out[name] = listOf(section[name], `${at}.${name}`);
  return out;
}

function listOf(value: unknown, name: string): string[] {
  if (typeof value === 'string') return [value];
  if (!Array.isArray(value)) throw new DeployError('USAGE', `${name} must be a list of strings (or one string), got ${typeName(value)}`);
  const items: unknown[] = value;
  const bad = items.findIndex((item) => typeof item !== 'string');
  if (bad >= 0) throw new DeployError('USAGE', `${name}[${bad}] must be a string, got ${typeName(items[bad])}`);
  return items as string[];
}

/** `waitMs` (the CLI's --wait): NaN and 'abc' waited for ever, a negative failed at once with LOCKED. */
export function checkWaitMs(waitMs: unknown): void {
  if (waitMs === undefined || (typeof waitMs === 'number' && Number.isFinite(waitMs) && waitMs >= 0)) return;
  throw new DeployError('USAGE', `waitMs must be a finite number of milliseconds >= 0, got ${typeof waitMs === 'number' ? String(waitMs) : typeName(waitMs)}`, {
    hint: 'for example: waitMs: 30_000 waits up to 30 s for the lock (0 fails at once if it is held)',
  });
}

export function commandProblem(command: unknown): string | undefined {
  // From JavaScript, a number or a list of words (an argv): sh takes one string.
  if (typeof command !== 'string') return `expected a string for sh to run, got ${typeName(command)}`;
  if (command.trim() === '') return 'it is empty';
  if (command.includes('\0')) return 'it contains a NUL byte';
  return undefined;
}

/** Node fires a longer timer at once (2^31 - 1 ms overflows): larger hook and health timeouts are refused. */
export const MAX_TIMEOUT_MS = 2_147_483_000;
/** The most seconds any wait or timeout takes, flag or config key: the longest timer Node keeps. */
export const MAX_SECONDS = MAX_TIMEOUT_MS / 1000;
const TOO_LONG = `at most ${MAX_SECONDS} seconds (about 24.8 days, the longest timer Node keeps)`;

/** A timeout of 0 would mean "no limit" to timeout(1) on a host: only a positive, finite time is a limit. */
export function timeoutProblem(ms: unknown): string | undefined {
  if (!(typeof ms === 'number' && Number.isFinite(ms) && ms > 0)) return 'expected a number of seconds greater than 0';
  if (ms > MAX_TIMEOUT_MS) return TOO_LONG;
  return undefined;
}

export interface CountRange {
  min: number;
  max: number;
}

/** The whole-number flags and their config keys: the smallest and the largest value each takes. */
export const COUNTS = {
  keep: { min: 0, max: 1_000_000 },
  parallel: { min: 1, max: 1000 },
  maxFiles: { min: 1, max: 1_000_000_000 },
  stripComponents: { min: 0, max: 1024 },
  downloadRetries: { min: 0, max: 100 },
} as const satisfies Record<string, CountRange>;

/**
 * A whole number as typed (`--keep`, `--parallel`, `--max-files`, ...): decimal digits only, since
 * Number() would also read 0x10, 1e3 and ' 3', within the flag's range; or the problem.
 */
export function countProblem(value: string, range: CountRange): string | undefined {
  const n = /^\d+$/.test(value) ? Number(value) : Number.NaN;
  return n >= range.min && n <= range.max ? undefined : `expected a whole number from ${range.min} to ${range.max} in decimal digits`;
}

/** A URL as it may be printed: user name and password never leave the process. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username === '' && parsed.password === '') return url;
    parsed.username = '';
    parsed.password = '';
    return parsed.toString();
  } catch {
    // Unparseable: anything before an @ may be a password.
    return url.replace(/\/\/[^/@]*@/, '//***@');
  }
}

/** A command that is one word of the form `scheme://...`: a URL, not something sh can run. */
export function looksLikeUrl(command: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:\/\/\S*$/.test(command.trim());
}

/** Why a health URL cannot be used, or undefined. */
export function healthUrlProblem(url: unknown): string | undefined {
  if (typeof url !== 'string') return `expected a string, got ${typeName(url)}`;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'it is not a URL';
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') return `only http and https are supported, not ${parsed.protocol}`;
  return undefined;
}

/** Rejects unusable hook and health-check options before anything is written. */
export function checkHookAndHealth(options: HookAndHealthOptions): void {
  const { hooks, healthCheck } = options;
  for (const [name, list] of [['before-switch', hooks?.beforeSwitch], ['after-switch', hooks?.afterSwitch]] as const) {
    for (const command of list ?? []) {
      const problem = commandProblem(command);
      if (problem) throw new DeployError('USAGE', `invalid ${name} hook: ${problem}`);
    }
  }
  if (hooks?.timeoutMs !== undefined) {
    const problem = timeoutProblem(hooks.timeoutMs);
    if (problem) throw new DeployError('USAGE', `invalid hook timeout: ${problem}`, { hint: 'for example: --hook-timeout 300' });
  }
  if (!healthCheck) return;
  if (healthCheck.command === undefined && healthCheck.url === undefined) {
    throw new DeployError('USAGE', 'a health timeout needs a health check', { hint: 'add --health-check <command> or --health-url <url>' });
  }
  if (healthCheck.command !== undefined) {
    const problem = commandProblem(healthCheck.command);
    if (problem) throw new DeployError('USAGE', `invalid health-check command: ${problem}`);
    // A URL given as the command: sh would answer 127 (not found) on every try, for the whole
    // timeout, and then roll the deploy back. Refused before anything is written.
    if (looksLikeUrl(healthCheck.command)) {
      throw new DeployError('USAGE', `the health-check command ${JSON.stringify(healthCheck.command.trim())} is a URL, which sh cannot run`, {
        hint: `to check a URL give it as --health-url (config: healthCheck.url), e.g. --health-url ${healthCheck.command.trim()}`,
      });
    }
  }
  if (healthCheck.url !== undefined) {
    const problem = healthUrlProblem(healthCheck.url);
    if (problem) throw new DeployError('USAGE', `invalid health URL${typeof healthCheck.url === 'string' ? ` ${JSON.stringify(displayUrl(healthCheck.url))}` : ''}: ${problem}`, { hint: 'e.g. --health-url http://127.0.0.1/health' });
  }
  if (healthCheck.timeoutMs !== undefined) {
    const problem = timeoutProblem(healthCheck.timeoutMs);
    if (problem) throw new DeployError('USAGE', `invalid health timeout: ${problem}`, { hint: 'for example: --health-timeout 30' });
  }
}

/**
 * Seconds as typed (`--wait`, `--hook-timeout`, ...): decimal digits with an optional fraction, at
 * most MAX_SECONDS, and above 0 where 0 would mean no limit; or the problem.
 */
export function secondsProblem(value: string, min: 'zero' | 'positive' = 'zero'): string | undefined {
  const n = /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
  if (!(min === 'positive' ? n > 0 : n >= 0)) return `expected a number of seconds ${min === 'positive' ? 'greater than 0' : '(>= 0)'} in decimal digits, such as 30 or 2.5`;
  return n > MAX_SECONDS ? TOO_LONG : undefined;
}

/** The signal an AbortSignal was aborted with (our CLI aborts with the signal's name); SIGTERM otherwise. */
export function signalOf(reason: unknown): NodeJS.Signals {
  return typeof reason === 'string' && /^SIG[A-Z0-9]+$/.test(reason) ? (reason as NodeJS.Signals) : 'SIGTERM';
}

/** Names at a build's top that earn it a warning, and what to say of them (the message's tail). */
interface TopWatch {
  names: readonly string[];
  says: string;
}

/**
 * A repository's metadata (`.git` may also be a file, in a worktree or submodule): a server whose
 * document root is the release would serve it (history, remote URLs, sometimes credentials). Only
 * warned: an app served from a subdirectory (`current/public`) may ship its checkout.
 */
const REPOSITORY: TopWatch = {
  names: ['.git', '.hg', '.svn'],
  says: 'a server whose document root is the release serves it (history, remote URLs, sometimes credentials); deploy the build output, or serve a subdirectory of the release',
};

/**
 * This tool's config file (`source: .` in a project, a config written into the build folder): it
 * goes live with the release, where a server serves its hosts, roots, hooks and health URLs.
 */
const OWN_CONFIG: TopWatch = {
  names: CONFIG_NAMES,
  says: 'it goes live with the release, where a server whose document root is the release serves its hosts, paths and hooks; keep the config outside the build output',
};

const TOP_WATCHES = [REPOSITORY, OWN_CONFIG];
/** Each watched name, and it as the first component of a longer path (`.git/`), for watchedTopOf. */
const WATCHED_PREFIXES = TOP_WATCHES.flatMap((w) => w.names.map((name) => ({ name, prefix: `${name}/` })));

function topWarning(watch: TopWatch, topNames: Iterable<string>): string | undefined {
  const found = [...topNames].filter((n) => watch.names.includes(n)).sort();
  return found.length === 0 ? undefined : `the build holds ${found.join(' and ')} at its top: ${watch.says}`;
}

/** The warning for a build whose top level holds a repository's metadata. */
export function repositoryWarning(topNames: Iterable<string>): string | undefined {
  return topWarning(REPOSITORY, topNames);
}

/** What a build's top level earns a warning for, on both engines. */
export function buildTopWarnings(topNames: readonly string[]): string[] {
  return TOP_WATCHES.flatMap((w) => topWarning(w, topNames) ?? []);
}

/**
 * The warning for a build none of whose files its group or other users may read (built under
 * umask 077, or packed from such a tree): a web server running as another user (nginx's
 * www-data) answers 403 for every file of the release. A warning, not a refusal: a server running
 * as the deploy user (a PHP-FPM pool, a Node server) reads them, and one private file among
 * readable ones (a 0600 key) is no mistake, so one readable file is enough for silence.
 * `files`: the build's regular files, relative path and mode. `fix`: how to make them readable.
 */
export function closedBuildWarning(files: Iterable<{ path: string; mode: number }>, fix: string): string | undefined {
  let count = 0;
  let first: { path: string; mode: number } | undefined;
  for (const f of files) {
    if ((f.mode & 0o044) !== 0) return undefined;
    count++;
    if (first === undefined || f.path < first.path) first = f;
  }
  if (first === undefined) return undefined;
  const mode = (first.mode & 0o7777).toString(8).padStart(4, '0');
  return `no file of the build is readable by its group or other users (${count === 1 ? `its one file, ${first.path}, is ${mode}` : `all ${count}, ${first.path} ${mode} among them`}: made under umask 077?): a web server running as another user answers 403 for each; ${fix}`;
}

/** How a build directory's files are made readable (closedBuildWarning). */
export function closedDirectoryFix(source: string): string {
  return `make them readable (chmod -R go+rX ${shellWord(source)}) or build under umask 022, then deploy again`;
}

/** How an archive's files are made readable (closedBuildWarning). */
export const CLOSED_ARCHIVE_FIX = 'pack the artifact from a tree made readable (chmod -R go+rX) or built under umask 022, then deploy again';

/**
 * The watched top-level name a release path is, or lies under (`.git/config` gives `.git`);
 * undefined for any other. Asked of every entry an archive writes, so it allocates nothing.
 */
export function watchedTopOf(path: string): string | undefined {
  for (const w of WATCHED_PREFIXES) if (path === w.name || path.startsWith(w.prefix)) return w.name;
  return undefined;
}

/**
 * A build with no file or symlink, only (empty) directories or nothing, is refused before
 * anything is written, by both engines: an empty release would take the site down.
 */
export function emptyBuildError(source: string, scan: { entries: readonly unknown[]; files: number; symlinks: number }): DeployError | undefined {
  if (scan.files + scan.symlinks > 0) return undefined;
  return new DeployError('INVALID_SOURCE', scan.entries.length <= 1 ? `${source} is empty` : `${source} holds no files, only empty directories`, { hint: 'build first: an empty release would take the site down' });
}
