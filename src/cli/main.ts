import fs from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { FAILPOINTS_BUILT_IN } from '../act/failpoints.ts';
import { kernelPath } from '../act/layout.ts';
import type { DeployResult } from '../ops/deploy.ts';
import { DeployError, EXIT, errnoOf, exitCodeForSignal, ioError } from '../errors.ts';
import { isUrlSource, missingSourceWords, namedLikeArtifact, redactUrl, sniffFormat } from '../plan/archive.ts';
import { listReleases } from '../ops/releases.ts';
import { status } from '../ops/status.ts';
import { addArtifactFlags, addReleaseFlags, artifactFlagsForDirectory, artifactOptionsFrom, PIN_FLAGS, type ArtifactFlags, type ReleaseFlags } from './deploy-flags.ts';
import { addServingFlags, servingOptionsFrom, type ServingFlags } from './serving-flags.ts';
import { refuseIdleFlags } from './idle-flags.ts';
import { runFlags, withRunFlags } from './hint-flags.ts';
import { oneLine, Reporter, type Streams } from './output.ts';
import { plural } from '../plan/units.ts';
import { afterSwitchError, damagedRecordWarning, renderReleases, renderStatus, renderVerify } from './render.ts';
import { VERSION } from './version.ts';
import { secondsFlag } from './number-flags.ts';
import { closest } from '../plan/suggest.ts';
import { configFileMayExist, configKeyNote, deployOptionsFrom, loadConfig, loadConfigParsers, pathFrom, type DeployFlags, type LoadedConfig } from './config.ts';
import { addLifecycleCommands, addLifecycleFlags } from './lifecycle-commands.ts';
import { addFleetFlags, rolloutFrom, fleetDeployCli, fleetHostsFrom, fleetReleasesCli, fleetRollbackCli, fleetRootFrom, fleetStatusCli, fleetUnlockCli, type FleetFlags } from './fleet.ts';
import { shellWord, tildePath } from '../plan/paths.ts';
import { TARGET_CHECK_MODES, type TargetCheckMode } from '../plan/target-check.ts';

export interface RunOptions extends Streams {
  /** Aborted (with the signal's name as reason) when the process receives SIGINT/SIGTERM/SIGHUP. */
  signal?: AbortSignal;
  /** Aborted by the next of those signals after `signal` was: stops a clean-up's deletes (the exit code stays the first's). */
  secondSignal?: AbortSignal;
  /** Told the command that runs, and whether its output is all it does (status, releases, verify, a dry run). */
  onCommand?: (name: string, reportOnly: boolean) => void;
}

/** The commands whose output is their whole result (a completion script too, often redirected into a file): one that cannot be written fails them. */
const REPORTS = new Set(['status', 'releases', 'verify', 'completion']);

interface CommonFlags {
  json?: boolean;
  quiet?: boolean;
  /** false with --no-color. */
  color?: boolean;
}

const EXAMPLES = {
  deploy: `
Examples:
  $ atomic-deploy deploy ./build /srv/www/app
  $ atomic-deploy ./build /srv/www/app                 same, the short form
  $ atomic-deploy deploy ./build /srv/www/app --release-id v1.4.2 --json
  $ atomic-deploy deploy ./build /srv/www/app --wait 60   wait for another deploy's lock
  $ atomic-deploy deploy ./build /srv/www/app --keep 5    prune to 5 good releases after the switch
  $ atomic-deploy deploy ./build /srv/www/app --dry-run   the plan; nothing is changed
  $ atomic-deploy deploy dist.tar.gz /srv/www/app --sha256 "$(cut -d' ' -f1 dist.tar.gz.sha256)"
  $ atomic-deploy deploy https://ci.example.com/dist.zip /srv/www/app --strip-components 1 \\
      --signature dist.zip.sig --allowed-signers deploy/allowed_signers
  $ atomic-deploy deploy                                  source and root from atomic-deploy.config.yaml
  $ atomic-deploy deploy ./build /srv/www/app --reload-unit app.service --stale fail

Exit codes: 0 ok, 1 failure, 2 invalid input, 3 locked, 4 rolled back by the health check,
  6 --stale fail: processes still run from the release left (the switch stands),
  7 an after-switch hook or reload failed with no health check (the switch stands), 128+n signal n
  (the first: a second Ctrl-C stops the undo's deleting, and the next command finishes it).`,
  rollback: `
Examples:
  $ atomic-deploy rollback /srv/www/app                 back to the previous good release
  $ atomic-deploy rollback /srv/www/app --to 20261127101500
  $ atomic-deploy rollback /srv/www/app --reload-php-fpm /run/php/php8.2-fpm.pid
  $ atomic-deploy rollback /srv/www/app --verify fail   refuse a release that differs from its manifest

The release rolled back to is re-hashed against its manifest: with --verify warn (the default)
once it is live, what differs named in a warning; with --verify fail before the switch.

Exit codes: 0 ok (also --to the release already current: nothing is changed; a failed reload
  warns, the rollback stands), 1 failure, 2 invalid input (with --verify fail: a release with no
  manifest, or one that cannot be trusted), 3 locked, 5 --verify fail: the release differs from
  its manifest (nothing was changed), 6 --stale fail: processes still run from the release left
  (the rollback stands), 128+n signal n.`,
  releases: `
Examples:
  $ atomic-deploy releases /srv/www/app
  $ atomic-deploy releases /srv/www/app --json | jq -r '.releases[].id'

Exit codes: 0 ok, 1 failure, 2 invalid input (not a deploy root).`,
  status: `
Examples:
  $ atomic-deploy status /srv/www/app
  $ atomic-deploy status /srv/www/app --json

Exit codes: 0 ok (a held lock is reported, not an error), 1 failure, 2 invalid input (not a deploy root),
128+n signal n (a clean-up it stopped is finished by the next command).`,
  verify: `
Examples:
  $ atomic-deploy verify /srv/www/app                   the live release
  $ atomic-deploy verify /srv/www/app --release 20261127101500 --json
  $ atomic-deploy verify /srv/www/app --host web1 --host web2   re-hashed on each host

Exit codes: 0 the release is identical to its manifest, 5 it differs (every difference is listed),
2 it has no manifest or its manifest cannot be trusted (nothing was checked), 1 failure, 128+n signal n.
With --host: 5 if any host differs, else 1 if a host was not reached, else 2 as above.`,
  unlock: `
Examples:
  $ atomic-deploy unlock /srv/www/app           only if the holder is provably gone
  $ atomic-deploy unlock /srv/www/app --force   even if it may be alive (prints who held it)

Exit codes: 0 unlocked or nothing to unlock, 1 failure, 2 invalid input, 3 the holder may be alive (nothing removed).`,
};

const TOP_LEVEL_HELP = `
Examples:
  $ atomic-deploy deploy ./build /srv/www/app           publish ./build as a new release and switch to it
  $ atomic-deploy ./build /srv/www/app                  the same (the first argument must be a directory or an archive)
  $ atomic-deploy deploy ./build /srv/www/app --dry-run the plan; nothing is changed
  $ atomic-deploy rollback /srv/www/app                 back to the previous good release
  $ atomic-deploy releases /srv/www/app                 newest first, current marked
  $ atomic-deploy status /srv/www/app
  $ atomic-deploy prune /srv/www/app --keep 3

Exit codes:
  0        success
  1        any other failure; the root is as it was before the command, unless the
           error says a release is live (the switch stood, its record did not; --json:
           error.release, error.live) or that a switch stands (--stale fail with a
           host whose check got no answer)
  2        usage error or invalid input; nothing was changed on disk
  3        the lock is held by a live deploy (or by another host)
  4        the health check failed and the deploy rolled back by itself
  5        verify found differences between a release and its manifest (rollback --verify
           fail: the release to go to differs; nothing was changed)
  6        --stale fail: processes still run from the release left behind; the switch stands
  7        deploy: an after-switch hook or reload failed (no health check): the new release is
           live, unverified (a rollback's failed reload is a warning, exit 0)
  129/130/143  interrupted by SIGHUP/SIGINT/SIGTERM; a consistent state was restored (a
           second signal stops a clean-up's deleting: the next command finishes it)

Every command has --help, and takes --json, -q (--quiet) and --no-color, before or after its name.
Settings: atomic-deploy.config.yaml (see: atomic-deploy init).`;

/** `--release-id` → `ATOMIC_DEPLOY_RELEASE_ID`, `--no-fsync` → `ATOMIC_DEPLOY_NO_FSYNC`. */
export function envNameOf(option: Option): string | undefined {
  const long = option.long;
  if (!long || long === '--help' || long === '--version') return undefined;
  return envNameOfFlag(long);
}

/** `--health-url` → `ATOMIC_DEPLOY_HEALTH_URL`. */
function envNameOfFlag(long: string): string {
  return `ATOMIC_DEPLOY_${long.slice(2).replace(/-/g, '_').toUpperCase()}`;
}

const YES = new Set(['1', 'true', 'yes', 'on']);
const NO = new Set(['0', 'false', 'no', 'off', '']);

/**
 * Every flag can come from ATOMIC_DEPLOY_<FLAG>, below the command line and above the config file.
 * Read here rather than with commander's Option.env(): that one must be set before each option is
 * added, and it would take ATOMIC_DEPLOY_JSON=0 as "on".
 */
function applyEnv(command: Command, env: NodeJS.ProcessEnv): void {
  for (const option of command.options as Option[]) {
    const name = envNameOf(option);
    if (!name || !(name in env)) continue;
    const key = option.attributeName();
    const raw = env[name] ?? '';
    if (command.getOptionValueSource(key) === 'cli') {
      // A check is never dropped for another without a word: a pin from the environment (a CI
      // variable set for the job) that the command line contradicts is refused, as a pin given twice is.
      if (option.long !== undefined && PIN_FLAGS.has(option.long) && option.parseArg && raw.trim() !== '') {
        const typed = command.getOptionValue(key) as string;
        try {
          option.parseArg(raw, typed);
        } catch {
          throw new DeployError('USAGE', `${option.long} ${JSON.stringify(typed)} and ${name}=${JSON.stringify(raw)} name different values: one artifact has one, and neither is dropped for the other; nothing was deployed`, { hint: `give the same value in both, or unset ${name}` });
        }
      }
      continue;
    }
    if (option.required || option.optional) {
      let value: unknown = raw;
      try {
        if (option.parseArg) value = option.parseArg(raw, undefined);
      } catch (error) {
        throw new DeployError('USAGE', `${name}=${JSON.stringify(raw)}: ${error instanceof Error ? error.message : String(error)}`, { hint: `the same values as ${option.flags}` });
      }
      if (option.argChoices && !option.argChoices.includes(raw)) throw new DeployError('USAGE', `${name}=${JSON.stringify(raw)}: expected one of ${option.argChoices.join(', ')}`);
      command.setOptionValueWithSource(key, value, 'env');
      continue;
    }
    const flag = raw.trim().toLowerCase();
    if (!YES.has(flag) && !NO.has(flag)) throw new DeployError('USAGE', `${name}=${JSON.stringify(raw)}: expected 1 or 0 (true/false, yes/no)`);
    // `--no-config` shares its attribute with `--config <file>`: off is "no word", not a value.
    if (NO.has(flag) && option.negate && (command.options as Option[]).some((o) => o !== option && o.attributeName() === key)) continue;
    // An off word is a value too: it overrides the config file (`fsync: false` in the file,
    // ATOMIC_DEPLOY_NO_FSYNC=0 for one run), as the command line's own flag would.
    command.setOptionValueWithSource(key, YES.has(flag) !== option.negate, 'env');
  }
}

/**
 * The environment the flags are read from. A hook is given ATOMIC_DEPLOY_RELEASE_ID, its release's
 * id (with ATOMIC_DEPLOY_RELEASE_PATH beside it), which is also --release-id's name: an
 * `atomic-deploy deploy` the hook runs (say, the assets to a CDN root) took the parent's id as its
 * own, and failed on its second run. That value is the hook's information, not a flag: read as one
 * only where no hook set it (the path beside it does not end in that id).
 */
export function flagEnvironment(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const id = env.ATOMIC_DEPLOY_RELEASE_ID;
  const at = env.ATOMIC_DEPLOY_RELEASE_PATH;
  if (id === undefined || at === undefined || path.basename(at) !== id) return env;
  const { ATOMIC_DEPLOY_RELEASE_ID: _fromHook, ...rest } = env;
  return rest;
}

/**
 * ATOMIC_DEPLOY_* names that are no flag: the ones hooks and reloads are given (a hook may run
 * atomic-deploy again), the fleet's ssh config, and the fault injection of the tests.
 */
const OTHER_ENV_NAMES = ['ATOMIC_DEPLOY_RELEASE_PATH', 'ATOMIC_DEPLOY_PREVIOUS_ID', 'ATOMIC_DEPLOY_ROOT', 'ATOMIC_DEPLOY_UNIT', 'ATOMIC_DEPLOY_SSH_CONFIG', 'ATOMIC_DEPLOY_FAILPOINTS'];

/**
 * ATOMIC_DEPLOY_* variables that no command reads (`ATOMIC_DEPLOY_KEPP=2`): a setting a user meant
 * and that would pass unseen. A name another command reads (ATOMIC_DEPLOY_KEEP for `verify`) is
 * not one: a CI job sets them for all its steps.
 */
export function unknownEnvWarnings(program: Command, env: NodeJS.ProcessEnv): { message: string; hint: string }[] {
  const known = new Set(OTHER_ENV_NAMES);
  const walk = (cmd: Command): void => {
    for (const option of cmd.options as Option[]) {
      const name = envNameOf(option);
      if (name) known.add(name);
    }
    for (const sub of cmd.commands as Command[]) walk(sub);
  };
  walk(program);
  return Object.keys(env)
    .filter((name) => name.startsWith('ATOMIC_DEPLOY_') && !known.has(name))
    .sort()
    .map((name) => {
      // The source is an argument, not a flag: the nearest spelling (FORCE) would point away from it.
      if (name === 'ATOMIC_DEPLOY_SOURCE') return { message: `${name} is set, but no command reads it; it is ignored`, hint: 'the source is an argument (atomic-deploy deploy <source> <root>) or the config file\'s source: key' };
      const near = closest(name.slice('ATOMIC_DEPLOY_'.length), [...known].map((k) => k.slice('ATOMIC_DEPLOY_'.length)));
      return {
        message: `${name} is set, but no command reads it; it is ignored`,
        hint: near ? `did you mean ATOMIC_DEPLOY_${near}?` : 'each flag has one: --release-id is ATOMIC_DEPLOY_RELEASE_ID, --no-fsync ATOMIC_DEPLOY_NO_FSYNC',
      };
    });
}

/** Enough of a file's head to tell tar (magic at offset 257), tar.gz and zip apart. */
const SNIFF_BYTES = 512;

/**
 * What the bare form `atomic-deploy <source> <root>` takes as its source: an existing directory,
 * an http(s) URL, or an existing file that starts like a tar, tar.gz or zip archive.
 */
export function isBareSource(p: string): boolean {
  if (isUrlSource(p)) return true;
  try {
    // Non-blocking and type-checked on the descriptor: a FIFO named like a command must not hang the CLI.
    const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) return true;
      if (!st.isFile()) return false;
      const head = Buffer.alloc(SNIFF_BYTES);
      return sniffFormat(head.subarray(0, fs.readSync(fd, head, 0, SNIFF_BYTES, 0))) !== undefined;
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

/**
 * The arguments commander parses. Options before the command word are that command's, moved after
 * it (`atomic-deploy --quiet releases <root>`): commander would hand them and every word after
 * them to the default command, and the bare deploy took the command word for its source (a
 * folder named `releases` where the command ran went live, exit 0). A first word that is no
 * command is the bare deploy form only when it names a directory or an archive; anything else is
 * a typo, and deploying it would say "build first".
 */
function dispatch(program: Command, argv: readonly string[]): readonly string[] {
  const names = [...program.commands.map((c) => c.name()), 'help'];
  const { front, moved, at } = leadingOptions(program, argv);
  const first = argv[at];
  // Options alone (`atomic-deploy --json`, `--config prod.yaml`) went to the default command: a
  // deploy of the config's source to its root, when someone was looking at the config or the help.
  // A deploy takes its command word or a source; help and the version still answer.
  const asks = [...front, ...moved].some((w) => ['-h', '--help', '-V', '--version'].includes(w));
  if ((first === undefined || (first === '--' && argv.length === at + 1)) && !asks) {
    throw new DeployError('USAGE', 'no command given: options alone run nothing', {
      hint: 'to deploy, name the command: atomic-deploy deploy [<source> <root>] (both may come from the config file); see: atomic-deploy --help',
    });
  }
  if (first === undefined || first === '--') return argv;
  const rest = argv.slice(at + 1);
  const unknown = (name: string, hint: string): DeployError => {
    const guess = closest(name, names);
    return new DeployError('USAGE', `unknown command '${name}'${guess ? `; did you mean '${guess}'?` : ''}`, { hint });
  };
  // Commander answers `help <anything>` with the general help and exit 0: an unknown name is a typo here too.
  const topic = rest[0];
  if (first === 'help' && topic !== undefined && !topic.startsWith('-') && !names.includes(topic)) throw unknown(topic, 'see: atomic-deploy --help');
  if (names.includes(first)) return [...front, first, ...moved, ...rest];
  if (isBareSource(first)) return [...front, 'deploy', ...moved, first, ...rest];
  // An artifact's name or a URL is no command mistyped: say what is wrong with it as deploy would.
  const named = namedLikeArtifact(first);
  if ((named.file && !fs.existsSync(first)) || named.url) {
    const { message, hint } = missingSourceWords(first);
    throw new DeployError('INVALID_SOURCE', message, { hint });
  }
  throw unknown(first, /[/.]/.test(first) ? `${first} is neither a directory nor an archive; to deploy, give the build output directory or a .tar, .tar.gz or .zip: atomic-deploy deploy <source> <root>` : 'see: atomic-deploy --help');
}

/** The program's own options, which stay before the command word. */
const PROGRAM_FLAGS = new Set(['--config', '--no-config', '-V', '--version', '-h', '--help']);

/**
 * The options before the first word that is no option: the program's (`front`), the command's
 * (`moved`), and where that word is. The word after an option that takes a value (any command's)
 * is that value, never a command: `--keep 1 prune <root>`.
 */
function leadingOptions(program: Command, argv: readonly string[]): { front: string[]; moved: string[]; at: number } {
  const valued = new Set<string>();
  for (const cmd of [program, ...program.commands]) {
    for (const o of cmd.options) {
      if (!o.required) continue;
      if (o.long !== undefined) valued.add(o.long);
      if (o.short !== undefined) valued.add(o.short);
    }
  }
  const front: string[] = [];
  const moved: string[] = [];
  let at = 0;
  while (at < argv.length) {
    const word = argv[at] as string;
    if (word === '--' || !word.startsWith('-') || word === '-') break;
    const flag = word.split('=', 1)[0] as string;
    const taken = !word.includes('=') && valued.has(flag) && at + 1 < argv.length ? argv.slice(at, at + 2) : [word];
    (PROGRAM_FLAGS.has(flag) ? front : moved).push(...taken);
    at += taken.length;
  }
  return { front, moved, at };
}

// What only some commands do (copying, archives, hosts, hashing) is imported by those commands when
// they run: `status` and `releases` start in little more than Node's own start-up time.

/** The line commander writes after a usage error (showHelpAfterError). */
const USAGE_HINT_LINE = 'hint: see --help for usage\n';

/**
 * The word of an "unknown option" error that has one dash and several letters (`-dash`): no flag
 * is spelled so, a path may be. Only a word as typed: commander splits `-n=1` into `-n` and `-=1`.
 */
function dashWord(text: string, argv: readonly string[]): string | undefined {
  const word = /^error: unknown option '(-[^-'][^']+)'\n?$/.exec(text)?.[1];
  return word !== undefined && argv.includes(word) ? word : undefined;
}

/**
 * A switch given a value (`--dry-run=false`, `-n=1`), which commander calls an unknown option:
 * the flag and the word typed, when the flag is a switch of the command it was given to.
 */
function switchGivenValue(text: string, argv: readonly string[], running: Command | undefined): { flag: string; word: string } | undefined {
  const m = /^error: unknown option '(--[^'=]+=[^']*|-=[^']*)'/.exec(text);
  if (!m || running === undefined) return undefined;
  const given = m[1] as string;
  // `-n=1` reaches commander as the switch -n and then `-=1`: the word typed is -n=1.
  const word = given.startsWith('-=') ? argv.find((w) => /^-[^-=]=/.test(w) && w.slice(2) === given.slice(1)) : given;
  if (word === undefined) return undefined;
  const flag = word.slice(0, word.indexOf('='));
  const option = (running.options as Option[]).find((o) => o.long === flag || o.short === flag);
  return option !== undefined && !option.required && !option.optional ? { flag, word } : undefined;
}

/**
 * After `--` every word is an argument: a flag of the command among them (`deploy -- ./-odd www
 * --dry-run`) made "too many arguments". The hint moves the flags before `--`.
 */
function optionsAfterDashes(text: string, argv: readonly string[], running: Command | undefined): string | undefined {
  if (!/^error: too many arguments for '/.test(text) || running === undefined) return undefined;
  const at = argv.indexOf('--');
  if (at < 0) return undefined;
  const after = argv.slice(at + 1);
  const known = (w: string): boolean => (running.options as Option[]).some((o) => o.long === w.split('=', 1)[0] || o.short === w);
  const flags = after.filter((w) => w.startsWith('-') && known(w));
  const first = flags[0];
  if (first === undefined) return undefined;
  // A flag that takes a value takes the word after it along.
  const moved: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < after.length; i++) {
    const w = after[i] as string;
    if (!flags.includes(w)) {
      rest.push(w);
      continue;
    }
    moved.push(w);
    const option = (running.options as Option[]).find((o) => o.long === w || o.short === w);
    if (option?.required && i + 1 < after.length) moved.push(after[++i] as string);
  }
  const example = [...argv.slice(0, at), ...moved, '--', ...rest];
  return `after --, every word is an argument, ${first} too: give the options before --: atomic-deploy ${example.map(shellWord).join(' ')}`;
}

/**
 * The words commander took as arguments beyond what the command takes (`deploy a b c`), to name
 * in "too many arguments": the count alone left the user to find which word it was.
 */
function extraArguments(text: string, running: Command | undefined): string[] | undefined {
  const m = /^error: too many arguments for '[^']+'\. Expected (\d+) arguments? but got (\d+)\./.exec(text);
  if (!m || running === undefined) return undefined;
  const extra = running.args.slice(Number(m[1]));
  return extra.length > 0 && running.args.length === Number(m[2]) ? extra : undefined;
}

/**
 * Short switches run together with a number (`-qn2`): commander reads -q, -n and then `-2`, a
 * negative number, as an argument, so the error is "too many arguments". The hint says how the
 * word was read and that no option of the command takes a number that way.
 */
function bundledNumber(text: string, argv: readonly string[], running: Command | undefined): string | undefined {
  const extra = extraArguments(text, running);
  if (extra === undefined || running === undefined) return undefined;
  for (const w of argv) {
    const m = /^-([A-Za-z]+)(\d[\d.]*)$/.exec(w);
    if (!m || !extra.includes(`-${m[2]}`)) continue;
    const letters = [...(m[1] as string)];
    const switches = letters.map((c) => (running.options as Option[]).find((o) => o.short === `-${c}`));
    if (switches.some((o) => o === undefined || o.required || o.optional)) continue;
    return `${w} is read as ${letters.map((c) => `-${c}`).join(' ')} and then the argument -${m[2]}: ${letters.length > 1 ? 'these switches take' : 'this switch takes'} no value; give each option on its own (see --help)`;
  }
  return undefined;
}

/**
 * A value flag given twice (`--keep 10 … --keep 1`): the last is taken, as with most commands (a
 * wrapper's `"$@"` after its defaults overrides them), but not without a word: each is said in
 * `overridden`, for a warning. The same value twice is one value, and a repeatable flag (one that
 * collects a list) is left alone.
 */
function noteValuesGivenTwice(cmd: Command, overridden: string[]): void {
  for (const option of cmd.options as Option[]) {
    if (!option.required && !option.optional) continue;
    const key = option.attributeName();
    let last: { raw: string; value: unknown } | undefined;
    cmd.on(`option:${option.name()}`, (raw: unknown) => {
      if (typeof raw !== 'string') return;
      const value: unknown = cmd.getOptionValue(key);
      if (Array.isArray(value)) return;
      const before = last;
      last = { raw, value };
      if (before === undefined || before.raw === raw || JSON.stringify(before.value) === JSON.stringify(value)) return;
      overridden.push(`${option.long ?? option.flags} is given twice, as ${JSON.stringify(before.raw)} and then as ${JSON.stringify(raw)}: the last, ${JSON.stringify(raw)}, is taken`);
    });
  }
}

/** How to pass `word` as an argument: the options, then `--`, then it and the other arguments. */
function dashHint(word: string, argv: readonly string[]): string {
  const at = argv.indexOf(word);
  const before = argv.slice(0, at);
  const after = argv.slice(at + 1);
  const example = [...before, ...after.filter((w) => w.startsWith('-')), '--', word, ...after.filter((w) => !w.startsWith('-'))];
  return `if ${word} is a path, end the options before it with --: atomic-deploy ${example.map(shellWord).join(' ')}`;
}

function oneLineSuggestion(text: string): string {
  return text.replace(/\n\(Did you mean (.+?)\?\)/g, '; did you mean $1?');
}

/**
 * Commander's message for an unknown option, made to say so when the flag belongs to other
 * commands: `releases --keep` got "did you mean --help?", the nearest spelling among the
 * command's own flags, where the mistake is the command.
 */
function explainUnknownOption(text: string, program: Command, argv: readonly string[] = [], running?: Command): string {
  const switched = switchGivenValue(text, argv, running);
  if (switched) return text.replace(/^error: unknown option '[^']*'[^\n]*/, `error: option '${switched.flag}' takes no value (given as ${switched.word}): give ${switched.flag} alone to turn it on, or leave it out`);
  // `init deploy/prod.yaml`: the file init writes is named by --config, as every command reads it.
  const extra = /^error: too many arguments for 'init'\. Expected 0 arguments but got \d+\./.exec(text);
  if (extra) return text.replace(extra[0], `error: init takes no arguments: name the file to write with --config (atomic-deploy init --config <file>)`);
  const extraWords = extraArguments(text, running);
  if (extraWords !== undefined) return text.replace(/^(error: too many arguments for [^\n]*?)\.?(\n|$)/, `$1; not taken: ${extraWords.map(shellWord).join(' ')}$2`);
  const m = /^error: unknown option '(--[^'=]+)(?:=[^']*)?'[^\n]*/.exec(text);
  if (!m) return text;
  const flag = m[1] as string;
  const owners = (program.commands as Command[]).filter((c) => (c.options as Option[]).some((o) => o.long === flag)).map((c) => c.name());
  if (owners.length === 0) return text;
  return text.replace(m[0], `error: unknown option '${flag}' for this command; it is an option of ${owners.join(', ')}`);
}

/** Runs the CLI and returns its exit code; it never exits the process itself. */
export async function runCli(argv: readonly string[], options: RunOptions): Promise<number> {
  // Before the flags are parsed (a usage error, a bad ATOMIC_DEPLOY_* value), the reporter follows
  // the words and the environment as they are: JSON asked for either way still gets JSON.
  const envYes = (name: string): boolean => YES.has((process.env[name] ?? '').trim().toLowerCase());
  const wantsJson = argv.includes('--json') || envYes('ATOMIC_DEPLOY_JSON');
  const warned: string[] = [];
  let reporter = new Reporter(options, { json: wantsJson, quiet: argv.includes('--quiet') || argv.includes('-q') || envYes('ATOMIC_DEPLOY_QUIET'), color: !argv.includes('--no-color'), warned });
  // An error naming a flag that the config file set (not typed, nor from the environment): where to look for it.
  const typed = (flag: string): boolean => argv.some((w) => w === flag || w.startsWith(`${flag}=`)) || envNameOfFlag(flag) in process.env;
  const noteFor = (message: string): string | undefined => configKeyNote(message, loaded, typed);
  // The commands hints suggest, with the --config/--no-config and --ssh-config this run was given (set before the action runs).
  let hintCommands: ((hint: string) => string) | undefined;
  const use = (flags: CommonFlags): Reporter => {
    reporter = new Reporter(options, { json: flags.json === true, quiet: flags.quiet === true, color: flags.color !== false, noteFor, warned, ...(hintCommands ? { hintCommands } : {}) });
    return reporter;
  };
  const signal = options.signal;
  const secondSignal = options.secondSignal;
  let exitCode: number = EXIT.ok;
  const afterSignal = (): void => {
    // The operation finished (the switch stood), but a signal asked us to stop: say so by exit code.
    if (signal?.aborted) exitCode = exitCodeForSignal(signal.reason as NodeJS.Signals);
  };

  let dashed: string | undefined;
  // The hint that replaces "see --help for usage" after commander's error (after -- , a flag is an argument).
  let usageHint: string | undefined;
  // The command commander parses for (after dispatch), whose own flags a usage error is about.
  let running: Command | undefined;
  // Value flags given twice, the last taken (noteValuesGivenTwice): warned once the command runs.
  const overridden: string[] = [];
  const program = new Command('atomic-deploy')
    .description('Zero-downtime release deploys by atomic symlink switch.')
    .version(VERSION, '-V, --version')
    .option('--config <file>', 'settings file (default: atomic-deploy.config.yaml, .yml or .json here or in a parent, up to the git top level)')
    .option('--no-config', 'read no settings file (one found here or above is ignored)')
    .showHelpAfterError(USAGE_HINT_LINE.trimEnd())
    .addHelpText('after', TOP_LEVEL_HELP)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => options.stdout.write(s),
      // One line, as our own suggestions are: commander puts "(Did you mean --keep?)" on a line of its own.
      // A word like `-dash` may be a path: the hint after its error says how to pass one.
      writeErr: (s) => {
        const dash = dashWord(s, argv);
        if (dash !== undefined) dashed = dash;
        usageHint ??= optionsAfterDashes(s, argv, running);
        usageHint ??= bundledNumber(s, argv, running);
        if (dashed !== undefined) usageHint ??= dashHint(dashed, argv);
        options.stderr.write(s === USAGE_HINT_LINE && usageHint !== undefined ? `hint: ${usageHint}\n` : explainUnknownOption(oneLineSuggestion(s), program, argv, running));
      },
    });
  const common = (cmd: Command): Command =>
    cmd
      .option('--json', 'print one JSON object on stdout and nothing else there')
      .option('-q, --quiet', 'print only warnings and errors')
      .option('--no-color', 'no colour, even on a terminal (NO_COLOR=1 does the same)');
  let loaded: LoadedConfig | undefined;
  // `--config <file>` sets a path, `--no-config` false (commander's pair for one attribute).
  const configPath = (): string | undefined => {
    const c = program.opts<{ config?: string | false }>().config;
    return typeof c === 'string' ? c : undefined;
  };
  const noConfig = (): boolean => program.opts<{ config?: string | false }>().config === false;
  const cwd = workingDirectory();
  // Without a working directory the search for a config file (which starts there) is skipped:
  // `rollback /srv/app` from a pruned release's folder runs with the flags alone.
  const config = (): LoadedConfig => (loaded ??= noConfig() || (cwd === undefined && configPath() === undefined) ? { config: {}, dir: cwd ?? '/' } : loadConfig(configPath(), cwd ?? '/'));
  program.hook('preAction', async (_program, action) => {
    const env = flagEnvironment(process.env);
    applyEnv(program, env);
    applyEnv(action, env);
    // `--config ""` named the working directory ("is not a regular file"), or init wrote there.
    const named = configPath();
    if (named === '') {
      throw new DeployError('USAGE', 'the config file is an empty string', { hint: '--config (or ATOMIC_DEPLOY_CONFIG) was given an empty value: an unset shell variable?' });
    }
    // As for root and source: a `~` no shell expanded (quoted, or a CI variable) is no folder named ~.
    if (named !== undefined && tildePath(named, '').tilde) {
      throw new DeployError('USAGE', `the config file ${JSON.stringify(named)} starts with ~, which no shell expanded (quoted, or set in a variable)`, { hint: 'write it as an absolute path or with $HOME/ where a shell expands it' });
    }
    if (cwd === undefined) refuseRelativeWithoutCwd(action, named);
    const given = runFlags({
      ...(program.getOptionValueSource('config') === 'cli' ? { config: noConfig() ? false : configPath() } : {}),
      ...(action.getOptionValueSource('sshConfig') === 'cli' ? { sshConfig: action.opts<{ sshConfig?: string }>().sshConfig } : {}),
    });
    const subcommands = (program.commands as Command[]).map((c) => c.name());
    hintCommands = (hint) => withRunFlags(hint, given, subcommands);
    // Reporter flags may have come from the environment.
    use(action.opts<CommonFlags>());
    options.onCommand?.(action.name(), REPORTS.has(action.name()) || action.opts<{ dryRun?: boolean }>().dryRun === true);
    for (const w of unknownEnvWarnings(program, process.env)) reporter.warn(w.message, w.hint);
    for (const said of overridden) reporter.warn(said);
    // A setup test run with the installed command would otherwise believe it had crashed a deploy.
    if (process.env.ATOMIC_DEPLOY_FAILPOINTS && !FAILPOINTS_BUILT_IN) {
      reporter.warn('ATOMIC_DEPLOY_FAILPOINTS is set, but this build has no failpoints; it is ignored', 'failpoints exist only in a source checkout\'s build: npm run build, then node dist/cli/bin.js');
    }
    if (!noConfig() && (cwd === undefined ? configPath() !== undefined : configFileMayExist(configPath(), cwd))) await loadConfigParsers();
  });
  // A flag given on the command line or through ATOMIC_DEPLOY_<FLAG> overrides the config file.
  const given = (cmd: Command, flag: string): boolean => ['cli', 'env'].includes(cmd.getOptionValueSource(flag) ?? '');
  const onCommandLine = (cmd: Command, flag: string): boolean => cmd.getOptionValueSource(flag) === 'cli';
  const fromEnvironment = (cmd: Command) => (flag: string): boolean => cmd.getOptionValueSource(flag) === 'env';
  // A missing root or source is taken from the config file, which, without a working directory, was not searched for.
  const fromArgOrConfig = (arg: string | undefined, what: 'root' | 'source'): string => {
    if (arg === undefined && cwd === undefined && !noConfig() && configPath() === undefined) throw workingDirectoryGone(`the config file is searched for from there, and no ${what} was given`);
    return pathFrom(arg, config().config[what], config(), what);
  };
  const rootOf = (arg: string | undefined): string => fromArgOrConfig(arg, 'root');
  // A file found by the search (a parent folder's, another app's) sets keep, hooks and checks
  // without a word: the commands that change a root say which file they read, and warn when its
  // root is not the one the command was given.
  const sayConfig = (out: Reporter, rootArg: string | undefined, fleet: boolean): void => {
    const read = config();
    if (read.file === undefined) return;
    out.event({ type: 'step', message: `settings from ${read.file}` });
    const named = read.config.root;
    if (fleet || rootArg === undefined || named === undefined) return;
    const fromFile = pathFrom(undefined, named, read, 'root');
    const asked = kernelPath(rootArg);
    if (fromFile === asked) return;
    out.warn(`${read.file} is for the root ${fromFile}, but this command's root is ${asked}: the file's other settings (keep, hooks, shared paths, checks) apply to it too`, 'if the file is not meant for this root, add --no-config or name another with --config <file>');
  };

  common(addFleetFlags(addServingFlags(addLifecycleFlags(addArtifactFlags(addReleaseFlags(
    program
      .command('deploy', { isDefault: true })
      .description('copy <source> into a new release of <root> and switch current to it atomically')
      .argument('[source]', 'build directory, archive (.tar, .tar.gz/.tgz, .zip) or http(s) URL to one, to publish (default: source from the config file)')
      .argument('[root]', 'deploy root, holds current, releases/, shared/ (default: root from the config file)')
      .option('--release-id <id>', 'release id instead of the UTC timestamp')
      .addOption(new Option('--wait <seconds>', 'wait for a held lock instead of failing').argParser(secondsFlag()))
      .option('--no-fsync', 'skip making the release and the switch durable (faster, not power-cut safe)')
      .option('--adopt', 'make a non-empty folder that is not a deploy root into one (its files stay)')
      .addHelpText('after', EXAMPLES.deploy),
  )))), { deploy: true })).action(async (sourceArg: string | undefined, rootArg: string | undefined, flags: CommonFlags & ReleaseFlags & DeployFlags & FleetFlags & ArtifactFlags & ServingFlags & { fsync: boolean }, cmd: Command) => {
    const out = use(flags);
    const source = fromArgOrConfig(sourceArg, 'source');
    const hosts = fleetHostsFrom(flags, config());
    sayConfig(out, rootArg, hosts !== undefined);
    const options = deployOptionsFrom(config(), flags, (flag) => given(cmd, flag));
    refuseIdleFlags(options, (flag) => onCommandLine(cmd, flag));
    if (hosts) {
      const fleetOptions = options;
      const fleetRoot = fleetRootFrom(rootArg, config(), hosts);
      // Before an artifact is fetched: a --wave-pause with no waves is refused here.
      const rollout = rolloutFrom(flags, config(), (flag) => onCommandLine(cmd, flag));
      // An artifact is read and checked once, here; the hosts get the extracted tree by rsync.
      const { isArtifactSource, refuseChecksOnDirectory, stageArtifactLocally } = await import('../ops/artifact.ts');
      // Refused before an artifact is fetched or extracted, not after, in the local words.
      if (fleetOptions.dryRun && isArtifactSource(source)) throw new DeployError('USAGE', '--dry-run needs a source directory; an archive would have to be read to plan its release', { hint: 'list it with tar -tvf or unzip -l' });
      if (!isArtifactSource(source)) refuseChecksOnDirectory(source, artifactOptionsFrom(artifactFlagsForDirectory(flags, fromEnvironment(cmd))));
      const stage = isArtifactSource(source) ? await stageArtifactLocally(source, artifactOptionsFrom(flags, config()), { signal, secondSignal, emit: out.event }) : undefined;
      try {
        exitCode = await fleetDeployCli({ out, hosts, flags, signal }, stage?.dir ?? source, fleetRoot, { ...fleetOptions, ...rollout, command: `fleet deploy ${redactUrl(source)}` });
      } finally {
        const left = await stage?.remove();
        if (left !== undefined) {
          out.warn(`a signal stopped the removal of the artifact's local stage: ${left} is left (outside the root: the next fleet command removes it)`, `rm -rf -- ${shellWord(left)}`);
          afterSignal();
        }
      }
      return;
    }
    const root = rootOf(rootArg);
    // Each flag given on the command line overrides the config file's value.
    const [{ deploy }, { isArtifactSource }] = await Promise.all([import('../ops/deploy.ts'), import('../ops/artifact.ts')]);
    const result = await deploy(source, root, {
      ...options,
      // The config's artifact: keys are for artifacts (allowedSigners is their policy); for a
      // directory only the flags go on, and the deploy refuses --sha256 and the signature flags.
      artifact: isArtifactSource(source) ? artifactOptionsFrom(flags, config()) : artifactOptionsFrom(artifactFlagsForDirectory(flags, fromEnvironment(cmd))),
      signal,
      secondSignal,
      onEvent: out.event,
      // The lock's owner file (world-readable) and the messages of deploys that meet it: no URL credentials.
      command: `deploy ${redactUrl(source)}`,
    }).catch(async (error: unknown) => {
      // `--stale fail` (exit 6): the deploy is done and live; its line is said before the error, as exit 7's is.
      if (error instanceof DeployError && error.code === 'STALE_PROCESSES' && error.result !== undefined) {
        const { deploySummary } = await import('./render-lifecycle.ts');
        out.print(deploySummary(error.result as DeployResult));
      }
      throw error;
    });
    afterSignal();
    const { deploySummary, renderPlan } = await import('./render-lifecycle.ts');
    if (result.plan) {
      out.print(renderPlan(result.plan, warned));
      out.result(undefined, result.plan);
      return;
    }
    if (result.afterSwitchFailure !== undefined) {
      const error = afterSwitchError(result.release, result.afterSwitchFailure, `atomic-deploy rollback ${shellWord(root)}`);
      out.result(deploySummary(result), { ...result, error: { code: error.code, message: error.message, hint: error.hint, ...error.details } });
      out.error(error.message, error.hint);
      if (exitCode === EXIT.ok) exitCode = error.exitCode;
      return;
    }
    out.result(deploySummary(result), result);
  });

  common(addFleetFlags(addServingFlags(
    program
      .command('rollback')
      .description('switch current back to the previous good release, or to --to <id>')
      .argument('[root]', 'deploy root (default: root from the config file)')
      .option('--to <id>', 'release to switch to')
      .option('-n, --dry-run', 'say which release it would switch to; change nothing')
      .addOption(new Option('--wait <seconds>', 'wait for a held lock instead of failing').argParser(secondsFlag()))
      .option('--no-fsync', 'skip the fsync of the root after the switch')
      .addOption(new Option('--verify <mode>', 'the release to go to, re-hashed against its manifest: warn (default: after the switch, name what differs), fail (before it: exit 5, nothing changed), off').choices(TARGET_CHECK_MODES))
      .addHelpText('after', EXAMPLES.rollback),
  ))).action(async (rootArg: string | undefined, flags: CommonFlags & FleetFlags & ServingFlags & { to?: string; wait?: number; fsync: boolean; dryRun?: boolean; verify?: TargetCheckMode }, cmd: Command) => {
    const out = use(flags);
    const hosts = fleetHostsFrom(flags, config());
    sayConfig(out, rootArg, hosts !== undefined);
    const serving = servingOptionsFrom(config().config, flags, (flag) => given(cmd, flag));
    refuseIdleFlags(serving, (flag) => onCommandLine(cmd, flag));
    // A config whose after-switch hooks reload what serves would leave it on the release rolled away from, unseen.
    const deployHooks = config().config.hooks?.afterSwitch;
    if (deployHooks !== undefined && deployHooks.length > 0) {
      out.warn(`rollback does not run the config file's after-switch hooks: they belong to deploys`, 'reload what serves with --reload-unit or --reload-php-fpm (reload: in the config file), which every switch runs, rollbacks included');
    }
    // Nor its health check: the release rolled back to is taken as good (it served before); said, not left to be assumed.
    if (config().config.healthCheck !== undefined) {
      out.warn("rollback does not run the config file's health check: it checks deploys, and the release rolled back to is one that served", 'check the site yourself after the rollback (the same command or URL)');
    }
    const verify = given(cmd, 'verify') ? flags.verify : config().config.rollbackVerify;
    if (hosts) {
      const wait = given(cmd, 'wait') ? flags.wait : config().config.wait;
      exitCode = await fleetRollbackCli({ out, hosts, flags, signal }, fleetRootFrom(rootArg, config(), hosts), { to: flags.to, fsync: given(cmd, 'fsync') ? flags.fsync : config().config.fsync, waitMs: (wait ?? 0) * 1000, dryRun: flags.dryRun === true, ...(verify ? { verify } : {}), ...serving });
      return;
    }
    const root = rootOf(rootArg);
    const fsync = given(cmd, 'fsync') ? flags.fsync : config().config.fsync;
    const wait = given(cmd, 'wait') ? flags.wait : config().config.wait;
    const { rollback } = await import('../ops/rollback.ts');
    const result = await rollback(root, { to: flags.to, fsync, waitMs: (wait ?? 0) * 1000, signal, onEvent: out.event, dryRun: flags.dryRun === true, ...(verify ? { verify } : {}), ...serving });
    afterSignal();
    if (result.unchanged) {
      out.result(`${result.dryRun ? 'dry run: ' : ''}release ${oneLine(result.release)} is already current; nothing ${result.dryRun ? 'would change' : 'was changed'}`, result);
      return;
    }
    if (result.dryRun) {
      out.result(`dry run: would roll back to ${oneLine(result.release)} (from ${result.previous ? oneLine(result.previous) : 'nothing'}); nothing was changed`, result);
      return;
    }
    out.result(`rolled back to ${oneLine(result.release)} (from ${result.previous ? oneLine(result.previous) : 'nothing'})`, result);
  });

  common(addFleetFlags(
    program
      .command('releases')
      .description('list releases, newest first, current marked')
      .argument('[root]', 'deploy root (default: root from the config file)')
      .addHelpText('after', EXAMPLES.releases),
  )).action(async (rootArg: string | undefined, flags: CommonFlags & FleetFlags) => {
    const out = use(flags);
    const hosts = fleetHostsFrom(flags, config());
    if (hosts) {
      exitCode = await fleetReleasesCli({ out, hosts, flags, signal }, fleetRootFrom(rootArg, config(), hosts));
      return;
    }
    const result = await listReleases(rootOf(rootArg));
    out.print(renderReleases(result, { header: options.stdout.isTTY === true, colors: out.stdoutColors }));
    for (const r of result.releases) {
      if (r.recordDamaged !== undefined) out.warn(...damagedRecordWarning(r.id, r.recordDamaged));
    }
    for (const i of result.ignored ?? []) out.warn(`releases/${oneLine(i.id)} is ignored, it is no release: ${i.reason}`);
    out.result(undefined, {
      current: result.current,
      ...(result.ignored ? { ignored: result.ignored } : {}),
      releases: result.releases.map((r) => ({ ...r.record, id: r.id, current: r.current, role: r.role, ...(r.recordDamaged === undefined ? {} : { recordDamaged: r.recordDamaged }) })),
    });
  });

  common(addFleetFlags(
    program
      .command('status')
      .description('current release, lock holder, leftovers of an interrupted deploy (recovered when safe)')
      .argument('[root]', 'deploy root (default: root from the config file)')
      .option('--read-only', 'report only; do not clean up leftovers (also what a user who may not write the root gets)')
      .addHelpText('after', EXAMPLES.status),
  )).action(async (rootArg: string | undefined, flags: CommonFlags & FleetFlags & { readOnly?: boolean }) => {
    const out = use(flags);
    const hosts = fleetHostsFrom(flags, config());
    if (hosts) {
      exitCode = await fleetStatusCli({ out, hosts, flags, signal }, fleetRootFrom(rootArg, config(), hosts), { readOnly: flags.readOnly });
      return;
    }
    const root = rootOf(rootArg);
    const result = await status(root, { readOnly: flags.readOnly, signal });
    afterSignal();
    // The site serves nothing through a dangling current: said as a warning, not only as a state.
    if (result.danglingTarget !== undefined) {
      out.warn(`current points to ${result.danglingTarget}, which is not there: nothing is served through it`, result.lastLive === undefined ? 'deploy a release to bring the site back' : `restore the last good release that was live: atomic-deploy rollback ${shellWord(root)} --to ${shellWord(result.lastLive)}`);
    }
    // A current that deploy, rollback and prune refuse: said as they would say it, with its repair.
    if (result.currentProblem !== undefined) out.warn(`${result.currentProblem.message}: deploy, rollback and prune refuse this root until it is repaired`, result.currentProblem.hint);
    out.print(renderStatus(result, root));
    out.result(undefined, result);
  });

  common(addFleetFlags(
    program
      .command('unlock')
      .description("remove a deploy lock whose owner is provably gone (--force: any lock)")
      .argument('[root]', 'deploy root (default: root from the config file)')
      .option('--force', 'remove the lock even if its holder may be alive or on another host')
      .addHelpText('after', EXAMPLES.unlock),
  )).action(async (rootArg: string | undefined, flags: CommonFlags & FleetFlags & { force?: boolean }) => {
    const out = use(flags);
    const hosts = fleetHostsFrom(flags, config());
    if (hosts) {
      exitCode = await fleetUnlockCli({ out, hosts, flags, signal }, fleetRootFrom(rootArg, config(), hosts), { force: flags.force });
      return;
    }
    const { unlock } = await import('../ops/unlock.ts');
    const result = await unlock(rootOf(rootArg), { force: flags.force, onEvent: out.event });
    out.result(result.unlocked ? `unlocked (${result.reason})` : `nothing to unlock: ${result.reason}`, result);
  });

  common(addFleetFlags(
    program
      .command('verify')
      .description('re-hash a release (default: the live one) and list every path that differs from its manifest')
      .argument('[root]', 'deploy root (default: root from the config file)')
      .option('--release <id>', 'release to check instead of the live one')
      .addHelpText('after', EXAMPLES.verify),
  )).action(async (rootArg: string | undefined, flags: CommonFlags & FleetFlags & { release?: string }) => {
    const out = use(flags);
    const hosts = fleetHostsFrom(flags, config());
    if (hosts) {
      const { fleetVerifyCli } = await import('./fleet-verify.ts');
      exitCode = await fleetVerifyCli({ out, hosts, flags, signal }, fleetRootFrom(rootArg, config(), hosts), { release: flags.release });
      return;
    }
    const { verify } = await import('../ops/verify-release.ts');
    const result = await verify(rootOf(rootArg), { release: flags.release, signal });
    afterSignal();
    if (!result.identical && exitCode === EXIT.ok) exitCode = EXIT.differences;
    out.result(renderVerify(result), result);
    // --quiet leaves only warnings and errors, and differences are this command's failure (exit 5): one line says so.
    if (!result.identical && flags.quiet === true && flags.json !== true) {
      out.error(`release ${oneLine(result.release)} differs from its manifest: ${plural(result.differences.length, 'difference')}`, 'run verify without --quiet to list them');
    }
  });

  addLifecycleCommands(program, { common, use, config, configPath, sayConfig, signal, afterSignal, given, setExitCode: (code) => (exitCode = code) });

  program
    .command('completion')
    .description('print a completion script for bash, zsh or fish')
    .argument('<shell>', 'bash, zsh or fish')
    .addHelpText('after', `
Examples:
  $ eval "$(atomic-deploy completion bash)"          in ~/.bashrc
  $ source <(atomic-deploy completion zsh)           in ~/.zshrc
  $ atomic-deploy completion fish > ~/.config/fish/completions/atomic-deploy.fish

Exit codes: 0 ok, 2 a shell other than bash, zsh or fish.`)
    .action(async (shell: string) => {
      const { completionScript, completionSpec } = await import('./completion.ts');
      options.stdout.write(completionScript(shell, completionSpec(program)));
    });

  try {
    if (argv.length === 0) {
      program.outputHelp();
      return EXIT.ok;
    }
    // --json prints one JSON object on stdout, whatever else is asked: the version too.
    const words = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
    if (wantsJson && (words.includes('--version') || words.includes('-V'))) {
      options.stdout.write(JSON.stringify({ version: VERSION }) + '\n');
      return EXIT.ok;
    }
    const dispatched = dispatch(program, argv);
    // `-- <source> <root>` is the bare deploy form, which commander hands to deploy, the default command.
    const word = dispatched[leadingOptions(program, dispatched).at];
    running = program.commands.find((c) => c.name() === (word === '--' ? 'deploy' : word)) ?? program;
    for (const cmd of [program, ...program.commands]) noteValuesGivenTwice(cmd, overridden);
    await program.parseAsync([...dispatched], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return EXIT.ok;
      // The hint stderr gets from showHelpAfterError goes into the JSON object too.
      if (wantsJson) options.stdout.write(JSON.stringify({ error: { code: 'USAGE', message: explainUnknownOption(oneLineSuggestion(error.message), program, argv, running).replace(/^error: /, ''), hint: usageHint ?? 'see --help for usage' } }) + '\n');
      return EXIT.invalid;
    }
    // A refusal by the system that no step turned into a DeployError (a read-only command in a
    // root whose releases/ or state the user may not read): the user's to fix, not a bug.
    const known = error instanceof DeployError ? error : isEnvironmentError(error) ? ioError('running the command', error) : undefined;
    if (known) {
      reporter.error(known.message, known.hint);
      reporter.result(undefined, { ...known.result, error: { code: known.code, message: known.message, hint: reporter.hintFor(known.message, known.hint), ...known.details } });
      return known.exitCode;
    }
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    reporter.error(`unexpected failure: ${message}`, 'this is a bug in atomic-deploy; please report it with the output above at https://github.com/atomic-deploy/atomic-deploy/issues');
    reporter.result(undefined, { error: { code: 'INTERNAL', message: String(error) } });
    return EXIT.failure;
  }
}

/**
 * The working directory, or undefined for a shell left in a folder removed since (a release prune
 * took it): Node's process.cwd() throws ENOENT there. A command whose paths are all absolute runs
 * without it (the config search, which starts there, is skipped); workingDirectoryGone is the
 * error for what needs it.
 */
function workingDirectory(): string | undefined {
  try {
    return process.cwd();
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw error;
    return undefined;
  }
}

/** A command that needs the working directory for `why` (a relative path, the config search) when there is none. */
function workingDirectoryGone(why: string): DeployError {
  return new DeployError('USAGE', `the working directory no longer exists (it was removed or moved after the shell entered it), and ${why}`, {
    hint: 'give absolute paths, or cd to a directory that exists (cd ~) and run the command again',
  });
}

/**
 * Without a working directory, what a command cannot resolve: a relative path among its
 * arguments (a URL source is none), a relative --config, init's default file (written there).
 */
function refuseRelativeWithoutCwd(action: Command, config: string | undefined): void {
  if (config !== undefined && !path.isAbsolute(config)) throw workingDirectoryGone(`the config file ${config} is a relative path`);
  if (action.name() === 'completion') return;
  if (action.name() === 'init' && config === undefined) throw workingDirectoryGone('init writes its file there (or name it with --config <absolute path>)');
  const relative = action.args.find((a) => a !== '' && !a.startsWith('~') && !path.isAbsolute(a) && !isUrlSource(a));
  if (relative !== undefined) throw workingDirectoryGone(`${relative} is a relative path`);
}

/** A system call refused for a reason outside the program: permissions, a read-only or full disk, too few open files. */
function isEnvironmentError(error: unknown): boolean {
  const code = errnoOf(error);
  return code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOSPC' || code === 'EDQUOT' || code === 'EMFILE' || code === 'ENFILE';
}
