/** The deploy flags for release contents and verification: shared paths, strategy, hooks, health check. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { DeployOptions } from '../ops/deploy.ts';
import path from 'node:path';
import { parseByteCount, parseSha256 } from '../plan/archive.ts';
import { COUNTS } from '../plan/validate.ts';
import { countFlag, secondsFlag, secondsToMs } from './number-flags.ts';
import type { LoadedConfig } from './config.ts';

export interface ReleaseFlags {
  shared?: string[];
  sharedFile?: string[];
  sharedDir?: string[];
  sharedCreate?: boolean;
  sharedReplace?: boolean;
  strategy?: NonNullable<DeployOptions['strategy']>;
  checksum?: boolean;
  beforeSwitch?: string[];
  afterSwitch?: string[];
  hookTimeout?: number;
  healthCheck?: string;
  healthUrl?: string;
  healthTimeout?: number;
}

/** Repeatable flags collect into a list; absent ones stay undefined so a config file can fill them. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function nonEmpty(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('expected a non-empty value');
  return value;
}

export function addReleaseFlags(cmd: Command): Command {
  return cmd
    .option('--shared-file <path>', 'link the file releases/<id>/<path> to shared/<path>, e.g. .env (repeatable)', collect)
    .option('--shared-dir <path>', 'link the directory releases/<id>/<path> to shared/<path>, e.g. storage (repeatable)', collect)
    .option('--shared <path>', 'the same, file or directory taken from what exists (repeatable)', collect)
    .option('--shared-create', 'make missing shared targets empty (a file or a directory) instead of failing')
    .option('--shared-replace', 'link a shared path even if the source holds it (the source copy is left out)')
    .addOption(new Option('--strategy <name>', 'how files are made: auto (clone where possible, else copy), copy, reflink, hardlink').choices(['auto', 'copy', 'reflink', 'hardlink']))
    .option('--checksum', 'accepted and ignored: every strategy compares content (SHA-256), never size and mtime')
    .option('--before-switch <command>', 'shell command run in the new release before the switch; failure aborts (repeatable)', collect)
    .option('--after-switch <command>', 'shell command run in the new release after the switch (repeatable)', collect)
    .addOption(new Option('--hook-timeout <seconds>', 'kill a hook and its children after this long (default 300)').argParser(secondsFlag('positive')))
    .addOption(new Option('--health-check <command>', 'shell command that must exit 0 after the switch, or the deploy rolls back').argParser(nonEmpty))
    .addOption(new Option('--health-url <url>', 'URL that must answer 2xx after the switch, or the deploy rolls back').argParser(nonEmpty))
    .addOption(new Option('--health-timeout <seconds>', 'keep retrying the health check this long (default 30)').argParser(secondsFlag('positive')));
}

/** The flags of an artifact source (a tar, tar.gz or zip file, or an http(s) URL to one). */
export interface ArtifactFlags {
  stripComponents?: number;
  sha256?: string;
  signature?: string;
  allowedSigners?: string;
  maxFiles?: number;
  maxBytes?: number;
  keepSetuid?: boolean;
  downloadTimeout?: number;
  downloadRetries?: number;
  downloadMaxTime?: number;
}

/** A byte count: a whole number, or one with a K, M, G or T suffix (powers of 1024). */
function byteCount(value: string): number {
  const n = parseByteCount(value);
  // 0 would refuse every file with content: a limit that deploys nothing is a mistake, as --max-files 0 is.
  if (n === undefined || n === 0) throw new InvalidArgumentError('expected a size of at least 1 byte, such as 500000000, 512M or 4G');
  return n;
}

/** The pin flags (onePin): a value from ATOMIC_DEPLOY_* beside another on the command line is refused too (main.ts applyEnv). */
export const PIN_FLAGS: ReadonlySet<string> = new Set(['--sha256', '--signature', '--allowed-signers']);

/**
 * A check flag (a pin): given twice, commander keeps the last value, and a pin dropped without a
 * word is a check that looks made when it is not. The same value twice is one pin (a digest in
 * any of its forms: upper case, `sha256:` prefixed).
 */
function onePin(flag: string, canonical: (value: string) => string = (value) => value): (value: string, previous: string | undefined) => string {
  return (value, previous) => {
    const given = nonEmpty(value);
    if (previous !== undefined && canonical(previous) !== canonical(given)) {
      throw new InvalidArgumentError(`${flag} is given twice, as ${JSON.stringify(previous)} and as ${JSON.stringify(given)}: one artifact has one, and neither is dropped for the other; nothing was deployed`);
    }
    return given;
  };
}

export function addArtifactFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--strip-components <n>', 'artifact: drop this many leading path components of every entry, as tar does').argParser(countFlag(COUNTS.stripComponents)))
    .addOption(new Option('--sha256 <hex>', 'artifact: its expected SHA-256; a mismatch deploys nothing (exit 2)').argParser(onePin('--sha256', (value) => parseSha256(value) ?? value)))
    .addOption(new Option('--signature <file|url>', 'artifact: OpenSSH signature (ssh-keygen -Y sign -n atomic-deploy), checked before the switch').argParser(onePin('--signature')))
    .addOption(new Option('--allowed-signers <file>', 'with --signature: the OpenSSH allowed_signers file of keys that may sign').argParser(onePin('--allowed-signers')))
    .addOption(new Option('--max-files <n>', 'artifact: refuse one with more entries (default 1000000)').argParser(countFlag(COUNTS.maxFiles)))
    .addOption(new Option('--max-bytes <size>', 'artifact: refuse one that expands to more (default 16G)').argParser(byteCount))
    .option('--keep-setuid', 'artifact: keep setuid/setgid bits (only when run as root; stripped otherwise)')
    .addOption(new Option('--download-timeout <seconds>', 'URL artifact: retry a connection silent this long (default 30)').argParser(secondsFlag('positive')))
    .addOption(new Option('--download-retries <n>', 'URL artifact: attempts after a dropped or stalled connection or a 5xx, 408 or 429 answer (default 3)').argParser(countFlag(COUNTS.downloadRetries)))
    .addOption(new Option('--download-max-time <seconds>', 'URL artifact: give up when the whole download, every retry included, takes longer (default: no limit)').argParser(secondsFlag('positive')));
}

/** The artifact flags that tune an extraction or a download (the checks, --sha256 and the signature flags, are not among them). */
const ARTIFACT_TUNING = ['stripComponents', 'maxFiles', 'maxBytes', 'keepSetuid', 'downloadTimeout', 'downloadRetries', 'downloadMaxTime'] as const;

/**
 * The artifact flags for a directory source: a tuning value from an `ATOMIC_DEPLOY_*` variable
 * (set for every step of a CI job, artifact or not) is dropped, as the config file's `artifact:`
 * keys are; given on the command line it stays, and the deploy refuses it (exit 2). The checks
 * stay from either: a directory cannot be checked, and going on would look verified.
 */
export function artifactFlagsForDirectory<T extends ArtifactFlags>(flags: T, fromEnvironment: (key: string) => boolean): T {
  const kept = { ...flags };
  for (const key of ARTIFACT_TUNING) if (fromEnvironment(key)) delete kept[key];
  return kept;
}

/**
 * An artifact's options: each flag given, else the config file's `artifact:` value. --sha256 and
 * --signature name one build's bytes, so they have no config key.
 */
export function artifactOptionsFrom(flags: ArtifactFlags, loaded?: LoadedConfig): NonNullable<DeployOptions['artifact']> {
  const c = loaded?.config.artifact ?? {};
  // Relative to the config file, like root and source.
  const signers = c.allowedSigners === undefined || loaded === undefined ? undefined : path.resolve(loaded.dir, c.allowedSigners);
  const timeout = flags.downloadTimeout ?? c.downloadTimeout;
  const maxTime = flags.downloadMaxTime ?? c.downloadMaxTime;
  return {
    stripComponents: flags.stripComponents ?? c.stripComponents,
    sha256: flags.sha256,
    signature: flags.signature,
    allowedSigners: flags.allowedSigners ?? signers,
    maxFiles: flags.maxFiles ?? c.maxFiles,
    maxBytes: flags.maxBytes ?? (c.maxBytes === undefined ? undefined : parseByteCount(c.maxBytes)),
    keepSetid: flags.keepSetuid ?? c.keepSetuid,
    downloadTimeoutMs: timeout === undefined ? undefined : secondsToMs(timeout),
    downloadRetries: flags.downloadRetries ?? c.downloadRetries,
    downloadMaxTimeMs: maxTime === undefined ? undefined : secondsToMs(maxTime),
  };
}
