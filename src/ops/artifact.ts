/** Deploying an artifact: open it and its signature before the lock, fill the stage under it, check the digests last. */
import fs from 'node:fs';
import path from 'node:path';
import { makeScratchDir, removeScratchDir } from '../act/scratch.ts';
import { extractArtifact, isArtifactSource, openArtifact, zipSpoolLimit, zipTooLarge, type Artifact, type ExtractResult } from '../act/archive.ts';
import type { DownloadOptions } from '../act/download.ts';
import { nextSignal } from '../act/remove-tree.ts';
import { startSignatureCheck, type SignatureCheck } from '../act/signature.ts';
import { DeployError } from '../errors.ts';
import { DEFAULT_MAX_BYTES, DEFAULT_MAX_FILES, isUrlSource, parseSha256, quote, redactUrl, type ExtractLimits } from '../plan/archive.ts';
import { shellWord } from '../plan/paths.ts';
import { signalOf } from '../plan/validate.ts';
import { namesWithVerb, plural } from '../plan/units.ts';
import type { EventSink, OperationEvent } from './events.ts';

export interface ArtifactOptions {
  /** Drop this many leading path components of every entry, as tar does. */
  stripComponents?: number;
  /** Expected SHA-256 of the artifact's bytes (hex); only a match may switch. */
  sha256?: string;
  /** An OpenSSH signature of the artifact (file or URL), checked against `allowedSigners`. */
  signature?: string;
  allowedSigners?: string;
  /** Limits against decompression bombs (defaults: 1,000,000 entries, 16 GiB). */
  maxFiles?: number;
  maxBytes?: number;
  /** Keep setuid/setgid bits; only honoured when the deploy runs as root. */
  keepSetid?: boolean;
  /** Per-read timeout and retries of a URL download (defaults 30 s, 3). */
  downloadTimeoutMs?: number;
  downloadRetries?: number;
  /** The whole transfer of a URL download, every attempt included (default: no limit). */
  downloadMaxTimeMs?: number;
}

export interface OpenedArtifact {
  artifact: Artifact;
  limits: ExtractLimits;
  sha256?: string;
  signature?: SignatureCheck;
  download: DownloadOptions;
}

const IS_ROOT = process.getuid?.() === 0;

export { isArtifactSource };

function wholeNumber(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value < min) throw new DeployError('USAGE', `${name} must be a whole number >= ${min} (got ${value})`);
  return value;
}

/**
 * --sha256, --signature and --allowed-signers check the bytes of an archive: given for a directory
 * they would check nothing, and a deploy that goes on anyway looks verified when it is not. The
 * same for --strip-components above 0. The limits (--max-files, --max-bytes) guard extraction
 * only, and a directory is not extracted: they are left alone, so one config serves both sources.
 */
export function refuseChecksOnDirectory(source: string, options: ArtifactOptions | undefined): void {
  const named = (pairs: [string, unknown][]): string[] => pairs.flatMap(([flag, value]) => (value === undefined || value === false ? [] : [flag]));
  const given = named([
    ['--sha256', options?.sha256],
    ['--signature', options?.signature],
    ['--allowed-signers', options?.allowedSigners],
  ]);
  // Stripping reshapes what goes live: ignored for a directory, the release would not be laid out as
  // asked. A limit or a download setting ignored would look like a guard that is not there.
  const shaping = named([
    ['--strip-components', options?.stripComponents !== undefined && options.stripComponents > 0 ? options.stripComponents : undefined],
    ['--max-files', options?.maxFiles],
    ['--max-bytes', options?.maxBytes],
    ['--keep-setuid', options?.keepSetid],
    ['--download-timeout', options?.downloadTimeoutMs],
    ['--download-retries', options?.downloadRetries],
    ['--download-max-time', options?.downloadMaxTimeMs],
  ]);
  if (given.length === 0 && shaping.length === 0) return;
  try {
    if (!fs.statSync(source).isDirectory()) return;
  } catch {
    // Missing or unreadable: the source's own check says so.
    return;
  }
  if (given.length > 0) {
    throw new DeployError('USAGE', `${namesWithVerb(given, 'checks', 'check')} an archive or URL artifact, but the source ${source} is a directory; nothing was deployed`, {
      hint: 'deploy the archive or URL itself with these flags, or leave them out to deploy the directory',
    });
  }
  throw new DeployError('USAGE', `${namesWithVerb(shaping, 'applies', 'apply')} to an archive or URL artifact, but the source ${source} is a directory; nothing was deployed`, {
    hint: shaping.includes('--strip-components') ? 'deploy the directory the release should hold (for example dist/app), or leave --strip-components out' : `leave ${shaping.length === 1 ? 'it' : 'them'} out to deploy the directory, or deploy the archive or URL itself`,
  });
}

/** What to do with a --sha256 value that is no digest: a sha256sum line, or the name of the file that holds one. */
function sha256Hint(value: string): string {
  // A name shown in the hint is one line of plain text; one with control characters is not repeated.
  const plain = (name: string): boolean => !/[\p{Cc}]/u.test(name);
  const line = /^\s*(?:sha256:)?([0-9a-f]{64})\s+\*?(\S.*?)\s*$/is.exec(value);
  if (line) return `that is a sha256sum line (digest and file name): give the digest alone, its first word, e.g. --sha256 "$(cut -d' ' -f1 ${shellWord(plain(line[2] ?? '') ? `${line[2] ?? ''}.sha256` : 'artifact.sha256')})"`;
  let isFile = false;
  try {
    isFile = value.trim() !== '' && fs.statSync(value).isFile();
  } catch {
    // No such file: a digest mistyped.
  }
  if (isFile && plain(value)) return `that names a file: give the digest it holds, e.g. --sha256 "$(cut -d' ' -f1 ${shellWord(value)})"`;
  return 'sha256sum <artifact> prints it';
}

/** Checks the options, opens the artifact (a 4xx or a non-archive fails here) and finds the signer. */
export async function openArtifactSource(source: string, options: ArtifactOptions, context: { signal?: AbortSignal; emit: EventSink }): Promise<OpenedArtifact> {
  const limits: ExtractLimits = {
    stripComponents: wholeNumber('--strip-components', options.stripComponents, 0, 0),
    maxFiles: wholeNumber('--max-files', options.maxFiles, DEFAULT_MAX_FILES, 1),
    maxBytes: wholeNumber('--max-bytes', options.maxBytes, DEFAULT_MAX_BYTES, 1),
    keepSetid: options.keepSetid === true && IS_ROOT,
    keepOwner: IS_ROOT,
  };
  if (options.keepSetid && !IS_ROOT) context.emit({ type: 'warning', message: 'setuid/setgid bits are stripped: keeping them needs a deploy run as root' });
  let sha256: string | undefined;
  if (options.sha256 !== undefined) {
    sha256 = parseSha256(options.sha256);
    if (!sha256) throw new DeployError('USAGE', `--sha256 must be 64 hex digits (got ${JSON.stringify(options.sha256)})`, { hint: sha256Hint(options.sha256) });
  }
  if (options.signature !== undefined && options.allowedSigners === undefined) {
    throw new DeployError('USAGE', '--signature needs --allowed-signers (or artifact.allowedSigners in the config)', { hint: 'give the OpenSSH allowed_signers file of keys allowed to sign' });
  }
  // Allowed signers set (by flag or config) is a policy: an unsigned artifact is not deployed.
  if (options.allowedSigners !== undefined && options.signature === undefined) {
    throw new DeployError('USAGE', 'allowed signers are set but the artifact has no --signature; nothing was deployed', { hint: 'sign it in CI (ssh-keygen -Y sign -n atomic-deploy) and pass --signature <file|url>' });
  }
  const download: DownloadOptions = {
    timeoutMs: wholeNumber('the download timeout', options.downloadTimeoutMs, 30_000, 1),
    retries: wholeNumber('--download-retries', options.downloadRetries, 3, 0),
    ...(options.downloadMaxTimeMs === undefined ? {} : { maxTimeMs: wholeNumber('the download max time', options.downloadMaxTimeMs, 0, 1) }),
    signal: context.signal,
    onRetry: (message) => context.emit({ type: 'warning', message }),
  };
  let signature: SignatureCheck | undefined;
  try {
    signature = options.signature !== undefined && options.allowedSigners !== undefined ? await startSignatureCheck(options.signature, options.allowedSigners, download) : undefined;
    const artifact = await openArtifact(source, download);
    // Refused before the lock: a zip URL is spooled whole, and its length already says it is too much.
    if (artifact.format === 'zip' && artifact.file === undefined && artifact.totalBytes !== undefined && artifact.totalBytes > zipSpoolLimit(limits.maxBytes)) {
      await artifact.chunks.return(undefined).catch(() => undefined);
      throw zipTooLarge(source, limits.maxBytes);
    }
    return { artifact, limits, sha256, signature, download };
  } catch (error) {
    signature?.dispose();
    throw interruptedIfAborted(error, context.signal, 'while opening the artifact');
  }
}

/**
 * A failure that a signal caused (a download cut by the abort, a read given up) is the signal's:
 * the command exits 128+n, as it would at any other point before the switch.
 */
export function interruptedIfAborted(error: unknown, signal: AbortSignal | undefined, when: string): unknown {
  if (!signal?.aborted || (error instanceof DeployError && error.code === 'INTERRUPTED')) return error;
  const sig = signalOf(signal.reason);
  return new DeployError('INTERRUPTED', `interrupted by ${sig} ${when}; nothing was deployed`, { signal: sig, cause: error });
}

/**
 * Extracts the artifact into `staging` and then checks the whole artifact's digest and signature:
 * a stream is known whole only at its end, so a mismatch throws and the caller discards the stage.
 */
export async function fillStage(opened: OpenedArtifact, staging: string, context: { signal?: AbortSignal; emit: EventSink; onFiles?: (files: number, bytes: number) => void }): Promise<ExtractResult> {
  const { artifact } = opened;
  const total = artifact.totalBytes ?? 0;
  try {
    const result = await extractArtifact(artifact, staging, {
      limits: opened.limits,
      spool: `${staging}.zip`,
      signal: context.signal,
      onRaw: opened.signature ? (chunk) => opened.signature?.write(chunk) : undefined,
      onProgress: (p) => {
        context.onFiles?.(p.files, p.bytes);
        context.emit({ type: 'progress', phase: 'extract', done: p.rawBytes, total, files: p.files });
      },
    });
    if (context.signal?.aborted) return result;
    if (opened.sha256 !== undefined && result.sha256 !== opened.sha256) {
      throw new DeployError('CHECKSUM_MISMATCH', `${isUrlSource(artifact.source) ? redactUrl(artifact.source) : path.basename(artifact.source)}: sha256 is ${result.sha256}, expected ${opened.sha256}; nothing was deployed`, {
        hint: 'the artifact changed or is not the one built: check --sha256 against sha256sum of the build output',
        details: { expected: opened.sha256, actual: result.sha256 },
      });
    }
    await opened.signature?.finish();
    return result;
  } finally {
    opened.signature?.dispose();
  }
}

/**
 * An artifact that left the release no file: empty, or (with --strip-components) every file
 * stripped away, which is the flag's doing, not a build that failed.
 */
export function emptyArtifactError(source: string, result: ExtractResult, stripComponents: number): DeployError | undefined {
  if (result.files + result.symlinks > 0) return undefined;
  const away = result.strippedAway;
  if (away !== undefined && stripComponents > 0) {
    const keep = away.deepest.components - 1;
    return new DeployError('INVALID_SOURCE', `--strip-components ${stripComponents} removes every file of ${redactUrl(source)}: its deepest, ${quote(away.deepest.name)}, has ${plural(away.deepest.components, 'component')} (\`.\` counts); nothing was deployed`, {
      hint: keep === 0 ? 'leave --strip-components out: the files are at the top of the archive' : `give --strip-components ${keep} or less (tar -tvf or unzip -l lists the entries)`,
    });
  }
  return new DeployError('INVALID_SOURCE', `${redactUrl(source)} holds no files`, { hint: 'build first: an empty release would take the site down' });
}

/**
 * A hint when every entry sits under one directory and no --strip-components was given: a build
 * packed as `tar -czf app.tgz dist` or a GitHub tarball (`repo-abc123/...`) goes live one level
 * down. Only a hint: a build whose one top entry is `public/`, served from `current/public`, is right.
 */
export function singleTopDirWarning(source: string, result: ExtractResult, stripGiven: boolean): OperationEvent | undefined {
  const top = result.singleTopDir;
  if (top === undefined || stripGiven) return undefined;
  return {
    type: 'warning',
    message: `every entry of ${isUrlSource(source) ? redactUrl(source) : path.basename(source)} is under ${quote(`${top}/`)}: the release holds ${quote(`${top}/`)}, not its contents, at its top`,
    hint: `if the web server serves the release's top (current/), deploy with --strip-components 1; if it serves current/${top}, nothing is wrong`,
  };
}

/** Ends what openArtifactSource started (the download, ssh-keygen, temp files), whatever happened. */
export async function closeArtifact(opened: OpenedArtifact | undefined): Promise<void> {
  if (!opened) return;
  opened.signature?.dispose();
  await opened.artifact.chunks.return(undefined).catch(() => undefined);
  opened.artifact.release?.();
}

export interface LocalStage {
  /** A directory holding the extracted release, for a fleet deploy to send. */
  dir: string;
  result: ExtractResult;
  /**
   * Deletes the stage; the next signal stops the delete between two files (the second, after a
   * first that ended the fleet deploy). Returns the directory a signal left: it lies outside every
   * root, so the user must hear its name; the next fleet command removes it (act/scratch.ts).
   */
  remove(): Promise<string | undefined>;
}

/** `error` with the local stage a signal left named in its message, and how to remove it. */
function naming(error: unknown, left: string | undefined): unknown {
  if (left === undefined || !(error instanceof DeployError)) return error;
  return new DeployError(error.code, `${error.message}; its local stage ${left} is left`, {
    hint: `${error.hint === undefined ? '' : `${error.hint}; `}rm -rf -- ${shellWord(left)} removes the stage`,
    cause: error.cause,
    ...(error.signal ? { signal: error.signal } : {}),
    ...(error.details ? { details: error.details } : {}),
  });
}

/**
 * For a fleet: the artifact is read once, checked (entries, --sha256, signature) and extracted
 * into a private local directory; the fleet deploy then sends that directory to every host.
 */
export async function stageArtifactLocally(source: string, options: ArtifactOptions, context: { signal?: AbortSignal; secondSignal?: AbortSignal; emit: EventSink }): Promise<LocalStage> {
  const opened = await openArtifactSource(source, options, context);
  const parent = makeScratchDir('stage');
  // Stoppable like an undo's deletes: a large artifact's tree takes seconds, and Ctrl-C must end them.
  const remove = async (): Promise<string | undefined> => {
    const signal = nextSignal(context.signal, context.secondSignal);
    // Its owner link goes last: a stage a signal leaves is one the next fleet command recognises and removes.
    return (await removeScratchDir(parent, { signal })) ? undefined : parent;
  };
  try {
    const dir = path.join(parent, 'release');
    fs.mkdirSync(dir, { mode: 0o700 });
    context.emit({ type: 'step', message: `extracting ${opened.artifact.format} ${redactUrl(source)} into a local stage for the fleet` });
    const result = await fillStage(opened, dir, context);
    if (context.signal?.aborted) throw interruptedIfAborted(undefined, context.signal, 'while extracting the artifact');
    const empty = emptyArtifactError(source, result, opened.limits.stripComponents);
    if (empty) throw empty;
    const single = singleTopDirWarning(source, result, options.stripComponents !== undefined);
    if (single) context.emit(single);
    return { dir, result, remove };
  } catch (error) {
    const left = await remove();
    throw naming(interruptedIfAborted(error, context.signal, 'while extracting the artifact'), left);
  } finally {
    await closeArtifact(opened);
  }
}
