import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
// The one nonblocking, type-checked read of a file someone else may have replaced by a FIFO.
import { kernelPath } from '../act/layout.ts';
import { nameExists, NOT_REGULAR, readRegularFileBytesSync, symlinkTarget } from '../act/read.ts';
import { DeployError, errnoOf } from '../errors.ts';
import type { DeployOptions } from '../ops/deploy.ts';
import type { ReleaseFlags } from './deploy-flags.ts';
import { secondsToMs } from './number-flags.ts';
import { asList, servingOptionsFrom, type ServingFlags } from './serving-flags.ts';
import { CONFIG_KEY_OF_FLAG, CONFIG_NAMES, configText } from '../plan/config-basics.ts';
import { shellWord, tildePath, unexpandedVariable } from '../plan/paths.ts';
import { DEFAULT_KEEP } from '../plan/releases.ts';
import type { Config } from '../plan/config.ts';

export interface LoadedConfig {
  config: Config;
  /** The file it came from; undefined when there is none. */
  file?: string;
  /** Relative paths in the file are resolved from here. */
  dir: string;
}

function invalid(message: string, file: string, cause?: unknown, hint = 'see docs/lifecycle.md (or atomic-deploy init --config example.yaml for a commented example); --no-config runs without the file'): DeployError {
  return new DeployError('INVALID_CONFIG', message, { cause, details: { file }, hint });
}

interface Parsers {
  parseDocument: typeof import('yaml').parseDocument;
  visit: typeof import('yaml').visit;
  isPair: typeof import('yaml').isPair;
  isScalar: typeof import('yaml').isScalar;
  parseConfig: typeof import('../plan/config.ts').parseConfig;
  numberNotationProblem: typeof import('../plan/config.ts').numberNotationProblem;
}
let parsers: Parsers | undefined;

/**
 * The config files of the nearest directory that has one: `cwd`, then each parent, stopping at a
 * git work tree's top (a parent project's file is not this one's) or the filesystem root.
 */
export function findConfigFiles(cwd: string): string[] {
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    // A link counts even when it leads nowhere (a volume not mounted): its hooks and health check
    // dropped without a word would be worse than the error reading it gives.
    const found = CONFIG_NAMES.map((name) => path.join(dir, name)).filter(nameExists);
    if (found.length > 0) return found;
    if (fs.existsSync(path.join(dir, '.git')) || path.dirname(dir) === dir) return [];
  }
}

/**
 * A file found by the search (not named by --config) is read only when it is this user's or
 * root's and no other user may write it. The search climbs to folders others can write (/tmp,
 * /var/tmp), where any local user could leave a file whose hooks would run as whoever deploys
 * there, root included; as git refuses a repository another user owns (safe.directory).
 */
function trustFound(file: string, stat: fs.Stats): void {
  const hint = 'a config file found above the working directory runs its hooks as you: give it with --config if you trust it, or run with --no-config';
  const me = process.geteuid?.();
  if (me !== undefined && stat.uid !== me && stat.uid !== 0) throw invalid(`config file ${file} belongs to another user (uid ${stat.uid}), not to you or root: it was not read`, file, undefined, hint);
  if ((stat.mode & 0o002) !== 0) throw invalid(`config file ${file} may be written by every user (mode ${(stat.mode & 0o7777).toString(8).padStart(4, '0')}): it was not read`, file, undefined, `chmod o-w ${shellWord(file)}; or ${hint.replace(/^.*: /, '')}`);
}

/** Whether loadConfig would read a file: `--config` was given, or a config file was found from `cwd` up. */
export function configFileMayExist(explicit: string | undefined, cwd: string): boolean {
  return explicit !== undefined || findConfigFiles(cwd).length > 0;
}

/**
 * Loads yaml and the schema (zod/mini) once. They take longer to load than the rest of the CLI, so
 * the CLI loads them only when there is a config file to read (see configFileMayExist).
 */
export async function loadConfigParsers(): Promise<void> {
  if (parsers) return;
  const [yaml, schema] = await Promise.all([import('yaml'), import('../plan/config.ts')]);
  parsers = { parseDocument: yaml.parseDocument, visit: yaml.visit, isPair: yaml.isPair, isScalar: yaml.isScalar, parseConfig: schema.parseConfig, numberNotationProblem: schema.numberNotationProblem };
}

/**
 * Reads `--config <file>`, or the one config file found from `cwd` up; an empty config when there is none.
 * When there is a file, loadConfigParsers must have run.
 */
export function loadConfig(explicit: string | undefined, cwd: string): LoadedConfig {
  let file: string;
  const searched = explicit === undefined;
  if (explicit !== undefined) {
    // Joined as text: kernelPath resolves a `..` after a symbolic link as the kernel does.
    file = kernelPath(path.isAbsolute(explicit) ? explicit : `${cwd}/${explicit}`);
  } else {
    const found = findConfigFiles(cwd);
    if (found.length === 0) return { config: {}, dir: cwd };
    if (found.length > 1) throw invalid(`found ${found.map((f) => path.basename(f)).join(' and ')} in ${path.dirname(found[0] ?? cwd)}; keep one`, found[0] ?? cwd, undefined, 'only one is read: merge them into one, and remove or rename the other');
    file = found[0] as string;
  }
  if (!parsers) throw new Error('loadConfig: call loadConfigParsers() before reading a config file');
  const { parseDocument, visit, isPair, isScalar, parseConfig, numberNotationProblem } = parsers;
  let notation: { said: string; hint?: string } | undefined;
  let text: string;
  try {
    const decoded = configText(readRegularFileBytesSync(file, searched ? (stat) => trustFound(file, stat) : undefined));
    if ('problem' in decoded) {
      throw invalid(`${file}${decoded.line === undefined ? '' : `:${decoded.line}:${decoded.col}`}: ${decoded.problem}`, file, undefined, `save it as UTF-8: iconv -f ${decoded.line === undefined ? 'utf-16' : 'latin1'} -t utf-8 ${shellWord(file)} > ${shellWord(`${file}.utf8`)} && mv ${shellWord(`${file}.utf8`)} ${shellWord(file)}; --no-config runs without the file`);
    }
    text = decoded.text;
  } catch (error) {
    if (error instanceof DeployError) throw error;
    const code = errnoOf(error);
    const link = code === 'ENOENT' ? symlinkTarget(file) : undefined;
    // Each with the way on that works for it: `init` writes no file over one that exists.
    const [why, hint] =
      link !== undefined
        ? [`config file ${file} is a symbolic link to ${link}, which does not exist`, 'create (or mount) what it points to, or remove the link']
        : code === 'ENOENT'
          ? [`config file ${file} does not exist`, `check the path; to write an example there: atomic-deploy init --config ${shellWord(file)}`]
          : code === NOT_REGULAR
            ? [`config file ${file} is not a regular file`, 'name a config file (YAML or JSON)']
            : code === 'EACCES' || code === 'EPERM'
              ? [`cannot read config file ${file}: permission denied`, `check its owner and mode (ls -l ${shellWord(file)}) and those of the folders above it`]
              : [`cannot read config file ${file}: ${code ?? String(error)}`, undefined];
    throw invalid(why, file, error, hint);
  }
  // Numbers as the flags and variables take them: the file's spelling of each number, which its value has lost.
  // Checked once the schema has passed, so a value out of range keeps the schema's message.
  // Each number's spelling by its key path, for a schema error about it (parseConfig `spelled`).
  const spellings = new Map<string, string>();
  const checkNotation = (doc: import('yaml').Document): void => {
    visit(doc, {
      Scalar(_key, node, at) {
        if (typeof node.value !== 'number' || node.source === undefined) return;
        const key = at.flatMap((n) => (isPair(n) ? [String(isScalar(n.key) ? n.key.value : n.key)] : [])).join('.');
        // A key inside a list (hosts) has no index here: its spelling is not kept.
        if (!at.some((n) => !isPair(n) && 'items' in n && Array.isArray(n.items) && !n.items.some((i) => isPair(i)))) spellings.set(key, node.source);
        notation ??= numberNotationProblem(key, node.source);
      },
    });
  };
  let data: unknown;
  // As init writes it: `.JSON` is JSON too.
  if (file.toLowerCase().endsWith('.json')) {
    try {
      data = JSON.parse(text) as unknown;
    } catch (error) {
      const said = error instanceof Error ? error.message : String(error);
      throw invalid(`${file}${jsonErrorAt(text, said)}: not valid JSON: ${said}`, file, error);
    }
    // JSON is YAML's flow style: read again for the spelling of its numbers (JSON.parse keeps none)
    // and for a key given twice in one object, which JSON.parse settles silently (the last wins) and
    // the YAML form refuses: a hidden second `keep` or `hooks` is the mistake a config check is for.
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    const duplicate = doc.errors.find((e) => e.code === 'DUPLICATE_KEY');
    if (duplicate) {
      const at = duplicate.linePos?.[0];
      throw invalid(`${file}${at ? `:${at.line}:${at.col}` : ''}: a key is given twice in one object (JSON readers keep the last one silently)`, file, duplicate, 'give each key once');
    }
    if (doc.errors.length === 0) checkNotation(doc);
  } else {
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    const problem = doc.errors[0];
    if (problem) {
      const at = problem.linePos?.[0];
      // The library's words for a second document name its own API (parseAllDocuments()): said in ours.
      const said = problem.code === 'MULTIPLE_DOCS' ? 'it holds more than one YAML document (a --- line after the settings); a config file is one document' : (problem.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      throw invalid(`${file}${at ? `:${at.line}:${at.col}` : ''}: not valid YAML: ${said}`, file, problem);
    }
    checkNotation(doc);
    try {
      data = doc.toJS() as unknown;
    } catch (error) {
      // The yaml library refuses alias bombs (a billion laughs) while expanding them.
      throw invalid(`${file}: not usable YAML: ${error instanceof Error ? error.message : String(error)}`, file, error);
    }
  }
  const config = parseConfig(data, file, (key) => spellings.get(key));
  if (notation !== undefined) throw invalid(`${file}: ${notation.said}`, file, undefined, notation.hint);
  return { config, file, dir: path.dirname(file) };
}

/**
 * An error names a flag the user never typed when the value came from the config file
 * (`--health-url is not available for fleet deploys` for `healthCheck.url`): the key and the file
 * that set it, for the hint. Undefined when the message names no such flag, or it was given.
 */
export function configKeyNote(message: string, loaded: LoadedConfig | undefined, given: (flag: string) => boolean): string | undefined {
  if (loaded?.file === undefined) return undefined;
  for (const [flag, key] of Object.entries(CONFIG_KEY_OF_FLAG)) {
    if (!new RegExp(`(?:^|[^\\w-])${flag}(?![\\w-])`).test(message) || given(flag)) continue;
    let value: unknown = loaded.config;
    for (const part of key.split('.')) value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[part] : undefined;
    if (value !== undefined) return `${flag} here is ${key} in ${loaded.file}`;
  }
  // An id the file fixes is every deploy's: the second one finds it taken, and no flag is named.
  const id = loaded.config.releaseId;
  if (id !== undefined && !given('--release-id') && message.includes(`release ${id} already exists`)) {
    return `the release id is releaseId in ${loaded.file}, which every deploy with this file takes: give --release-id <new id> or remove the key`;
  }
  return undefined;
}

/** The deploy flags the CLI knows; each one given on the command line overrides the config. */
export interface DeployFlags extends ReleaseFlags, ServingFlags {
  releaseId?: string;
  wait?: number;
  fsync?: boolean;
  keep?: number;
  dryRun?: boolean;
  adopt?: boolean;
}

const ms = (seconds: number | undefined): number | undefined => (seconds === undefined ? undefined : secondsToMs(seconds));

/**
 * The options a deploy runs with: the config file's values, each replaced by its flag when the
 * flag was given (`given` tells, since `--no-fsync` has a default). Lists are replaced, not merged.
 */
export function deployOptionsFrom(loaded: LoadedConfig, flags: DeployFlags, given: (flag: keyof DeployFlags) => boolean): DeployOptions {
  const c = loaded.config;
  const pick = <K extends keyof DeployFlags, T>(flag: K, fromConfig: T | undefined): DeployFlags[K] | T | undefined =>
    given(flag) ? flags[flag] : fromConfig;
  const hooks = {
    beforeSwitch: pick('beforeSwitch', asList(c.hooks?.beforeSwitch)),
    afterSwitch: pick('afterSwitch', asList(c.hooks?.afterSwitch)),
    timeoutMs: ms(pick('hookTimeout', c.hooks?.timeout)),
  };
  const healthCheck = {
    command: pick('healthCheck', c.healthCheck?.command),
    url: pick('healthUrl', c.healthCheck?.url),
    timeoutMs: ms(pick('healthTimeout', c.healthCheck?.timeout)),
  };
  const options: DeployOptions = {
    releaseId: pick('releaseId', c.releaseId),
    fsync: pick('fsync', c.fsync),
    waitMs: ms(pick('wait', c.wait)) ?? 0,
    // keep 0 turns pruning off; without a keep anywhere, releases would pile up.
    keep: keepOf(pick('keep', c.keep)),
    dryRun: flags.dryRun === true ? true : undefined,
    // Only ever from the command line: adopting a folder is a one-time, deliberate act.
    adopt: flags.adopt === true ? true : undefined,
    shared: pick('shared', asList(c.shared)),
    sharedFiles: pick('sharedFile', asList(c.sharedFiles)),
    sharedDirs: pick('sharedDir', asList(c.sharedDirs)),
    sharedCreate: pick('sharedCreate', c.sharedCreate),
    sharedReplace: pick('sharedReplace', c.sharedReplace),
    strategy: pick('strategy', c.strategy),
    checksum: pick('checksum', c.checksum),
    hooks: hooks.beforeSwitch || hooks.afterSwitch || hooks.timeoutMs !== undefined ? hooks : undefined,
    healthCheck: healthCheck.command || healthCheck.url ? healthCheck : undefined,
    ...servingOptionsFrom(c, flags, given),
  };
  // Absent keys stay absent, so the library's defaults apply.
  for (const key of Object.keys(options) as (keyof DeployOptions)[]) if (options[key] === undefined) delete options[key];
  return options;
}

function keepOf(keep: number | undefined): number | undefined {
  const n = keep ?? DEFAULT_KEEP;
  return n === 0 ? undefined : n;
}

/**
 * Where JSON.parse stopped, as `:line:col`: Node 20 names a character offset ("at position 15"),
 * or nothing at the end of the text ("Unexpected end of JSON input"); YAML errors have line and column.
 */
function jsonErrorAt(text: string, said: string): string {
  const m = / at position (\d+)/.exec(said);
  const offset = m ? Number(m[1]) : /end of JSON input/.test(said) ? text.length : undefined;
  if (offset === undefined || offset > text.length) return '';
  const lines = text.slice(0, offset).split('\n');
  return `:${lines.length}:${[...(lines[lines.length - 1] ?? '')].length + 1}`;
}

/**
 * A path from the command line (relative to cwd) or else from the config (relative to its file).
 * A `~` the shell left alone is never taken as a directory named `~` (a deploy there would go
 * live nowhere the server looks): from the command line it was quoted, and is refused; in the
 * config, where no shell reads it, `~` and `~/…` are the home directory, `~user/…` is refused.
 */
export function pathFrom(arg: string | undefined, fromConfig: string | undefined, loaded: LoadedConfig, what: 'root' | 'source'): string {
  if (arg !== undefined) {
    if (tildePath(arg, '').tilde) {
      throw new DeployError('USAGE', `the ${what} ${JSON.stringify(arg)} starts with ~, which the shell did not expand (quoted?)`, {
        hint: `write it unquoted or as an absolute path ($HOME/...); for a directory whose name starts with ~, write ./${arg}`,
      });
    }
    // `'$DEPLOY_ROOT'` single-quoted, or a CI's literal text: a folder by that name is made nowhere the server looks.
    const variable = unexpandedVariable(arg);
    if (variable !== undefined && !nameExists(arg)) {
      throw new DeployError('USAGE', `the ${what} ${JSON.stringify(arg)} holds ${variable}, which no shell expanded (single quotes, or a variable that was not set where the command line was made)`, {
        hint: `write it where the shell expands it ("${variable}", not '${variable}'), and check that the variable is set; for a folder of that name, create it first`,
      });
    }
    // Node decodes the command line as UTF-8, each byte that is none becoming U+FFFD: such a path
    // names another folder than the one typed (a deploy would make a new root by that name). A
    // name that holds U+FFFD itself exists as decoded and is taken.
    if (arg.includes('\uFFFD') && !nameExists(arg)) {
      throw new DeployError('USAGE', `the ${what} ${JSON.stringify(arg)} holds bytes that are not UTF-8 (shown as \uFFFD), which reach this program replaced: it would name another folder than the one typed`, {
        hint: `give the folder a UTF-8 name (convmv -f latin1 -t utf-8 --notest <folder>), or reach it through a symbolic link whose path is UTF-8`,
      });
    }
    return arg;
  }
  if (fromConfig !== undefined) {
    const home = os.homedir();
    const tilde = tildePath(fromConfig, home);
    if (!tilde.tilde) {
      const resolved = path.resolve(loaded.dir, fromConfig);
      // No shell reads the file: `root: $HOME/app` is a folder named `$HOME` beside it.
      const variable = unexpandedVariable(fromConfig);
      if (variable !== undefined && !nameExists(resolved)) {
        throw invalid(`the ${what} ${JSON.stringify(fromConfig)} in ${loaded.file ?? 'the config'} holds ${variable}, which no shell expanded: no shell reads the config file`, loaded.file ?? loaded.dir, undefined, `write the path out (~/ is this user's home), or give the ${what} on the command line, where the shell expands it`);
      }
      return resolved;
    }
    // HOME set but empty (or relative): `~/x` would become `x`, relative to wherever the command runs.
    if (tilde.expanded !== undefined && !path.isAbsolute(home)) {
      throw invalid(`${what}: ${JSON.stringify(fromConfig)} in ${loaded.file ?? 'the config'}: ~ cannot be expanded, HOME is ${home === '' ? 'empty' : `not an absolute path (${JSON.stringify(home)})`}`, loaded.file ?? loaded.dir);
    }
    if (tilde.expanded !== undefined) return tilde.expanded;
    throw invalid(`${what}: ${JSON.stringify(fromConfig)} in ${loaded.file ?? 'the config'}: only ~ and ~/ (this user's home) are expanded`, loaded.file ?? loaded.dir);
  }
  // Worded like commander's own message for a missing argument.
  const where = loaded.file ? `${loaded.file} has no "${what}" key` : 'and no atomic-deploy.config.yaml here to take it from';
  throw new DeployError('USAGE', `missing required argument '${what}' (${where})`, {
    hint: what === 'root' ? 'give it as an argument, or set root: in the config file' : 'give it as an argument (atomic-deploy deploy <source> <root>), or set source: in the config file',
  });
}

/** The commented example `atomic-deploy init` writes; every setting past the first three is commented out. */
export const EXAMPLE_CONFIG = `# atomic-deploy configuration (see docs/lifecycle.md).
# Flags given on the command line override these values; relative paths are resolved from
# the directory of this file. Unknown keys are errors.

# Deploy root: holds current, releases/, shared/ and .atomic-deploy/.
root: /srv/www/app
# Build output to publish as a new release.
source: ./build
# Good releases kept after each deploy (and by \`atomic-deploy prune\`). Current and the
# release a rollback would go to always stay; failed and rolled-back releases never count.
keep: 5

# Release id instead of the UTC timestamp (ids are never reused, so mostly for one-offs).
#releaseId: v1.4.2
# Make the release and the switch durable before reporting success (power-cut safe).
#fsync: true
# Seconds to wait for another deploy's lock instead of failing at once.
#wait: 0

# Paths that outlive releases, linked from releases/<id>/<path> to shared/<path>:
# files (Capistrano's linked_files) and directories (linked_dirs).
#sharedFiles:
#  - .env
#sharedDirs:
#  - storage
# Either: a file or a directory, whichever exists in shared/ or the build (never guessed).
#shared:
#  - public/uploads
# Create missing shared targets empty (files as files, directories as directories) instead of failing.
#sharedCreate: false
# Replace a shared path the build already holds instead of failing.
#sharedReplace: false

# How files get into the release: auto (clone where the filesystem can, else copy),
# copy, reflink (clone or fail), or hardlink (link files whose bytes equal the previous release's).
#strategy: auto
# Accepted and ignored: a file is linked only when its bytes match (SHA-256), always.
#checksum: false

# Commands run in the release directory, before and after the switch (one or a list).
# (Reload what serves with reload: below, which rollbacks run too; after-switch hooks do not.)
#hooks:
#  beforeSwitch: npm ci --omit=dev
#  afterSwitch:
#    - ./bin/warm-cache
#  timeout: 300

# Verified after the switch; on failure the deploy switches back by itself (exit code 4).
#healthCheck:
#  url: http://127.0.0.1/healthz
#  command: ./bin/smoke-test
#  timeout: 30

# After every switch (deploy, rollback, automatic rollback): reload what serves the release
# (see docs/serving.md), then look for processes still running from the release left behind:
# warn names them, fail also exits 6 if they are still there after staleWait seconds.
#reload:
#  units: [app.service]
#  phpFpm: [/run/php/php8.2-fpm.pid]
#  timeout: 60
#stale: warn
#staleWait: 10

# rollback re-hashes the release it goes to against its manifest: warn (after the switch) names
# what differs, fail (before it) refuses it (exit 5, nothing changed), off skips the check.
#rollbackVerify: warn

# When the source is an artifact (.tar, .tar.gz, .zip or a URL to one). --sha256 and
# --signature name one build's bytes, so they stay flags; allowedSigners here makes every
# artifact deploy need a --signature from one of these keys.
#artifact:
#  stripComponents: 1
#  maxFiles: 1000000
#  maxBytes: 16G
#  allowedSigners: ./deploy/allowed_signers
#  keepSetuid: false
#  downloadTimeout: 30
#  downloadRetries: 3
#  downloadMaxTime: 900          # seconds for the whole download (default: no limit)

# Hosts for fleet deploys: "[user@]host[:port]", each with its own root if it differs.
#hosts:
#  - host: deploy@web1.example.com
#  - host: web2.example.com:2222
#    root: /srv/www/app
# Fleet rollout in waves: the first host alone, then 10% of the hosts, then the rest.
#waves: 1,10%,100%
# Seconds between waves.
#wavePause: 30
# Failed hosts tolerated across the whole rollout (a number, or a percentage of the hosts).
#maxFail: 0
# Beyond that budget: switch every switched host back (rollback), or leave them (keep).
#onFailure: rollback
`;

/** The example for a `.json` config file: JSON has no comments, so the three settings every root needs. */
export const EXAMPLE_CONFIG_JSON = JSON.stringify({ root: '/srv/www/app', source: './build', keep: 5 }, null, 2) + '\n';

const { O_WRONLY, O_CREAT, O_EXCL, O_TRUNC, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/**
 * Writes the example (JSON for a `.json` name, else YAML) to a new file, or over a regular file
 * with `force`. A directory, device, FIFO or socket is refused, and so is a symbolic link: --force
 * replaces the file named, never one a link leads to. Exit 2 for each, nothing written.
 */
export function writeExampleConfig(file: string, force: boolean): void {
  let existing: fs.Stats | undefined;
  try {
    existing = fs.lstatSync(file);
  } catch {
    // Missing (the usual case), or a path whose problem the open below names.
  }
  const refuse = (why: string, hint?: string): DeployError => new DeployError('USAGE', `${file} ${why}; nothing was written`, { hint });
  if (existing?.isSymbolicLink()) throw refuse(`is a symbolic link (to ${fs.readlinkSync(file)})`, 'give the file it points to as --config, or remove the link');
  if (existing?.isDirectory()) throw refuse('is a directory, not a config file', `name a file in it: --config ${path.join(file, CONFIG_NAMES[0])}`);
  if (existing && !existing.isFile()) throw refuse('is not a regular file', 'name a new file, or a config file to overwrite with --force');
  if (existing && !force) throw refuse('already exists', 'use --force to overwrite it');
  // O_NOFOLLOW and O_NONBLOCK: a link or a FIFO put there since the check fails the open, never blocks it or is followed.
  const flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | (force ? O_TRUNC : O_EXCL);
  let fd: number;
  try {
    fd = fs.openSync(file, flags, 0o644);
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'EEXIST') throw refuse('already exists', 'use --force to overwrite it');
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new DeployError('USAGE', `cannot write ${file}: ${path.dirname(file)} ${code === 'ENOENT' ? 'does not exist' : 'is not a directory'}; nothing was written`, { hint: 'create the directory first, or name a file in one that exists' });
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new DeployError('IO', `cannot write ${file}: ${code === 'EROFS' ? 'the filesystem is read-only' : `permission denied (${path.dirname(file)} is not writable by this user)`}; nothing was written`, {
        cause: error,
        hint: 'run init in a folder you can write to, or name a file there with --config <file>',
      });
    }
    throw new DeployError('IO', `cannot write ${file}: ${code ?? String(error)}`, { cause: error });
  }
  try {
    fs.writeFileSync(fd, file.toLowerCase().endsWith('.json') ? EXAMPLE_CONFIG_JSON : EXAMPLE_CONFIG);
  } catch (error) {
    throw new DeployError('IO', `cannot write ${file}: ${errnoOf(error) ?? String(error)}`, { cause: error });
  } finally {
    fs.closeSync(fd);
  }
}
