import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { copyTree, regularFiles, scanSourceAsync, slashedRel, topNames, type SourceScan } from '../act/copy.ts';
import { touchSourceCache, writeSourceCache } from '../act/source-cache.ts';
import { SOURCE_CACHE_MAX_FILES, sourceCacheOf, type SourceCache, type SourceStamp } from '../plan/source-cache.ts';
import { hashTree, writeManifest, writeStatCache } from '../act/manifest.ts';
import { EarlyWriteback, makeTreeDurable } from '../act/durable.ts';
import { failpoint } from '../act/failpoints.ts';
import { gitInfo } from '../act/git.ts';
import { kernelPath, releasePath, type Layout } from '../act/layout.ts';
import { listReleaseDirs } from '../act/releases.ts';
import { lastLive, recordTimes } from '../plan/releases.ts';
import { userOf } from '../act/users.ts';
import { assertTmpOnRoot, stagePath, stagingArea, trashPath } from '../act/staging.ts';
import type { HealthResult } from '../act/health.ts';
import { ensureStateDirs, listRecordIds, nextSeq, readRecords, type ReleaseRecord } from '../act/state.ts';
import { currentIdOrThrow, readCurrent, switchCurrent } from '../act/switch.ts';
import { DeployError, errnoOf, ioError, emptyPathError, pathTypeError } from '../errors.ts';
import type { Journal } from '../plan/journal.ts';
import { isUrlSource, missingSourceWords, PATH_MAX, redactUrl } from '../plan/archive.ts';
import { manifestFiles, releaseDirMode, type ManifestEntry } from '../plan/manifest.ts';
import type { SharedLink } from '../plan/shared.ts';
import { shellWord, sourceRootProblem } from '../plan/paths.ts';
import { ADOPT_HINT, deployTargetProblem, ROOT_SKELETON } from '../plan/root-shape.ts';
import { nextReleaseId } from '../plan/release-id.ts';
import { buildTopWarnings, CLOSED_ARCHIVE_FIX, closedBuildWarning, closedDirectoryFix, checkNewReleaseId, checkOptionsArgument, checkWaitMs, emptyBuildError, signalOf, withLists } from '../plan/validate.ts';
import { formatBytes, plural } from '../plan/units.ts';
import { cloneModeOf, type Strategy } from '../plan/strategy.ts';
import { runOnFs } from '../root/fs.ts';
import { placeRelease } from '../root/place.ts';
import { undoProgram } from '../root/undo.ts';
import { isolateSink, type EventSink } from './events.ts';
import { placeShared, planContents, planFiles, sharedOverExtracted } from './contents.ts';
import type { ExtractResult } from '../act/archive.ts';
import { closeArtifact, emptyArtifactError, fillStage, isArtifactSource, openArtifactSource, refuseChecksOnDirectory, singleTopDirWarning, type ArtifactOptions } from './artifact.ts';
import { afterSwitchSteps, checkVerifyOptions, isVerdict, runBeforeSwitch, verifyAfterSwitch } from './verify.ts';
import { buildDeployPlan, journalablePrevious, releaseIdTaken, type DeployPlan } from './plan-deploy.ts';
import { awaitFreshness, checkReloadTargets, checkServingOptions, staleFailure, type ServingOptions, type SharedScan } from './serving.ts';
import type { StaleReport } from '../plan/serving.ts';
import { assertKeep, finishPrune, pruneUnderLock, type PruneResult, type RetiredPrune } from './prune.ts';
import { clearJournalRecord, recordJournal, recordRelease } from './record.ts';
import { recoverRoot, releaseViews } from './recover.ts';
import { assertOwnerUmask, openRoot, realpathLoose, rootShapeOf, withLock, writeProblem } from './root.ts';
import { makeDirs, makeReachableDirs } from '../act/mkdirs.ts';
import { nextSignal } from '../act/remove-tree.ts';

export interface DeployOptions extends ServingOptions {
  /** Use this id instead of the UTC timestamp; it must be new and a safe directory name. */
  releaseId?: string;
  /** fsync the release before the switch and the root after it (default true). */
  fsync?: boolean;
  /** Milliseconds to wait for another command's lock instead of failing with LOCKED (default 0); a finite number >= 0, else USAGE. */
  waitMs?: number;
  /** Aborting before the switch undoes the deploy; after it, the switch stands. */
  signal?: AbortSignal;
  /**
   * Aborting it once `signal` has been (a second Ctrl-C) stops the undo's deletes: what is left
   * stays under leftover names (never a release's) for the next command. An undo that a failure
   * started stops at `signal` itself.
   */
  secondSignal?: AbortSignal;
  onEvent?: EventSink;
  /** Recorded in the lock so that others see who holds it. */
  command?: string;

  /** Write the layout into a non-empty folder that is not a deploy root (its files stay). */
  adopt?: boolean;

  // Release lifecycle (prune, dry run).
  /** Prune after a successful switch, keeping this many good releases. */
  keep?: number;
  /** Print the plan and change nothing. */
  dryRun?: boolean;

  // Release contents (shared paths, strategies).
  /** Paths linked from `releases/<id>/<path>` to `shared/<path>` before the switch; file or directory inferred. */
  shared?: string[];
  /** Shared paths that are files (`.env`), and that are directories (`storage`): Capistrano's linked_files and linked_dirs. */
  sharedFiles?: string[];
  sharedDirs?: string[];
  /** Create missing shared targets empty (a file or a directory, as declared or inferred) instead of failing. */
  sharedCreate?: boolean;
  /** Replace a shared path the source already holds instead of failing. */
  sharedReplace?: boolean;
  /** copy | reflink | hardlink | auto (default: auto). */
  strategy?: 'copy' | 'reflink' | 'hardlink' | 'auto';
  /** Accepted for compatibility and ignored: a file is linked only when its bytes match, always. */
  checksum?: boolean;

  // Hooks and health check.
  hooks?: { beforeSwitch?: string[]; afterSwitch?: string[]; timeoutMs?: number };
  healthCheck?: { command?: string; url?: string; timeoutMs?: number };

  /** For a source that is an archive (tar, tar.gz, zip) or an http(s) URL to one. */
  artifact?: ArtifactOptions;
}

export interface DeployResult {
  release: string;
  path: string;
  previous: string | null;
  files: number;
  bytes: number;
  durationMs: number;
  /** `sha256:<hex>` of the release's manifest (what `verify` checks it against). */
  digest?: string;
  /** How the release was made durable: one syncfs, fsync of every file, or not at all. */
  durability: 'syncfs' | 'fsync' | 'off';
  /** What was cleaned up from an earlier interrupted run. */
  recovered: string[];
  /** Set when a signal arrived after the switch: the deploy completed anyway. */
  interruptedAfterSwitch?: boolean;
  /** The strategy used: `auto` resolves to reflink (copies were clones) or copy; `strategyRequested` is what was asked. */
  strategy?: Strategy;
  strategyRequested?: Strategy;
  cloned?: boolean;
  /** Files hardlinked from the previous release, and files copied (or cloned). */
  linked?: number;
  copied?: number;
  /** Shared paths linked into the release. */
  shared?: string[];
  /** The health check's outcome, when one ran and passed. */
  health?: HealthResult;
  /** What went wrong without failing the deploy (an after-switch hook with no health check). */
  warnings?: string[];
  /** Set when an after-switch hook failed with no health check configured: the release is live, unverified. */
  afterSwitchFailure?: string;
  /** With `keep`: what prune removed after the switch (deleted after the lock was released). */
  prune?: PruneResult;
  /** With `dryRun`: the plan; nothing on disk was changed. */
  plan?: DeployPlan;
  /** For an artifact source: its format and the SHA-256 of its bytes. */
  artifact?: { format: string; sha256: string; bytes: number; signedBy?: string };
  /** Processes still running from the previous release after the hooks and reloads (docs/serving.md). */
  stale?: StaleReport;
}

export interface Validated {
  layout: Layout;
  sourceReal: string;
  scan: SourceScan;
}

/** At most this many copied files are fsynced one by one (when the rest are linked); more get one syncfs. */
const TARGETED_FSYNC_MAX = 1000;

/** Whether a release's files were on disk before it went live, by its record (none: not known). */
function durableRecord(record: ReleaseRecord | undefined): boolean {
  return record?.durability === 'syncfs' || record?.durability === 'fsync';
}

function validateSource(source: string, root: string, adopt: boolean): { sourceReal: string; layout: Layout } {
  if (typeof source !== 'string') throw pathTypeError('source', source, 'the build output directory');
  if (source.length === 0) throw emptyPathError('source', 'the build output directory');
  if (source.includes('\0')) throw new DeployError('INVALID_SOURCE', 'the source path contains a NUL byte');
  const layout = openRoot(root, { mayCreate: true });
  let sourceReal: string;
  try {
    // realpath(3) itself: a `..` after a symbolic link is the link target's parent (act/layout.ts kernelPath).
    sourceReal = fs.realpathSync.native(source);
    if (!fs.statSync(sourceReal).isDirectory()) {
      throw new DeployError('INVALID_SOURCE', `${source} is not a directory`, { hint: 'give the build output directory' });
    }
  } catch (error) {
    if (error instanceof DeployError) throw error;
    const code = errnoOf(error);
    if (code === 'ENOENT') {
      const { message, hint } = missingSourceWords(source);
      throw new DeployError('INVALID_SOURCE', message, { cause: error, hint });
    }
    throw new DeployError('INVALID_SOURCE', `cannot read ${source}: ${code ?? String(error)}`, {
      cause: error,
      hint: code === 'EACCES' || code === 'EPERM' ? 'this user may not read it: deploy as a user who can, or make it readable (chmod u+rx on it and the directories above it)' : undefined,
    });
  }
  const problem = sourceRootProblem(sourceReal, realpathLoose(layout.root));
  if (problem) {
    throw new DeployError('INVALID_SOURCE', `${problem} (${sourceReal}, ${layout.root})`, {
      hint: 'keep the deploy root and the build apart: neither may be inside the other (give a root outside the build, or build outside the root)',
    });
  }
  // Swapped arguments would copy a whole root into a release and spread a layout through the build.
  const targetShape = rootShapeOf(layout.root);
  const sourceShape = rootShapeOf(sourceReal, 'source');
  if (sourceShape.kind === 'root') {
    throw new DeployError('INVALID_SOURCE', `${source} is a deploy root, not a build directory`, {
      // Swapped only if the other argument is something to deploy: a path that does not exist is not.
      hint: targetShape.kind === 'root' || targetShape.kind === 'missing' ? 'give the build output directory as the source' : `the arguments look swapped; did you mean: atomic-deploy deploy ${shellWord(root)} ${shellWord(source)}`,
    });
  }
  checkTarget(layout, adopt, targetShape);
  return { sourceReal, layout };
}

/** A non-empty folder that is not a deploy root gets the layout only when asked to (--adopt). */
function checkTarget(layout: Layout, adopt: boolean, shape = rootShapeOf(layout.root)): void {
  const problem = deployTargetProblem(shape);
  if (problem && !adopt) {
    throw new DeployError('INVALID_ROOT', `${layout.root} ${problem}`, { hint: ADOPT_HINT });
  }
}

/** An artifact has no listing before it streams in: its scan is the empty release root. */
function artifactSource(source: string, root: string, options: DeployOptions): { sourceReal: string; layout: Layout } {
  if (options.strategy === 'hardlink' || options.strategy === 'reflink') {
    throw new DeployError('USAGE', `--strategy ${options.strategy} needs a source directory; an archive is always extracted`, { hint: 'drop --strategy, or extract the archive and deploy the directory' });
  }
  if (options.dryRun) throw new DeployError('USAGE', '--dry-run needs a source directory; an archive would have to be read to plan its release', { hint: 'list it with tar -tvf or unzip -l' });
  const layout = openRoot(root, { mayCreate: true });
  checkTarget(layout, options.adopt === true);
  return { sourceReal: isUrlSource(source) ? source : kernelPath(source), layout };
}

async function validate(source: string, root: string, options: DeployOptions, artifact: boolean): Promise<Validated> {
  const { sourceReal, layout } = artifact ? artifactSource(source, root, options) : validateSource(source, root, options.adopt === true);
  if (!artifact) refuseChecksOnDirectory(source, options.artifact);
  if (options.releaseId !== undefined) {
    checkNewReleaseId(options.releaseId);
    // lstat, not exists: a symlink whose target is gone (a volume not mounted) takes the name too.
    if (fs.lstatSync(releasePath(layout, options.releaseId), { throwIfNoEntry: false }) !== undefined) {
      const current = await readCurrent(layout);
      throw releaseIdTaken(layout, options.releaseId, current.kind === 'release' ? current.id : null);
    }
  }
  if (artifact) return { layout, sourceReal, scan: { dir: sourceReal, entries: [], files: 0, dirs: 0, symlinks: 0, bytes: 0 } };
  const scan = await scanSourceOrExplain(sourceReal, options.signal);
  // Directories alone are an empty site too (an archive of only directories is refused the same way).
  const empty = emptyBuildError(source, scan);
  if (empty) throw empty;
  refuseTooLongPaths(scan, layout, options.releaseId);
  return { layout, sourceReal, scan };
}

/**
 * A build path that fits PATH_MAX in the build may not once under the release's stage
 * (`<root>/.tmp/stage.<id>.<hex>/`, or `releases/.stage.<hex>/<id>/`): found here, before the lock,
 * rather than as an I/O error after the copy. `rel.length * 3` bounds its bytes, so only paths
 * near the limit are measured.
 */
function refuseTooLongPaths(scan: SourceScan, layout: Layout, releaseId: string | undefined): void {
  const id = Buffer.byteLength(releaseId ?? 'YYYYMMDDHHMMSS-NNN');
  const prefix = Math.max(Buffer.byteLength(path.resolve(layout.tmp)) + '/stage.'.length + id + 1 + 16, Buffer.byteLength(path.resolve(layout.releases)) + '/.stage.'.length + 16 + 1 + id) + 1;
  for (const entry of scan.entries) {
    if (prefix + entry.rel.length * 3 <= PATH_MAX) continue;
    if (prefix + Buffer.byteLength(entry.rel) <= PATH_MAX) continue;
    const shown = entry.rel.length > 80 ? `${entry.rel.slice(0, 40)}…${entry.rel.slice(-40)}` : entry.rel;
    throw new DeployError('INVALID_SOURCE', `a path in the build is too long to deploy under ${layout.root}: ${JSON.stringify(shown)} (${Buffer.byteLength(entry.rel)} bytes; with the release's own path it passes PATH_MAX, 4096 bytes)`, {
      hint: 'flatten the directory nesting of the build, or deploy to a root with a shorter path',
    });
  }
}

const SOURCE_READ_HINT = 'make the build readable by the user that deploys (for example: chmod -R u+rX <source>)';

/** The source scan, with its failures phrased as problems of the source (exit 2), never as bugs. */
async function scanSourceOrExplain(sourceReal: string, signal: AbortSignal | undefined): Promise<SourceScan> {
  try {
    return await scanSourceAsync(sourceReal, signal);
  } catch (error) {
    if (error instanceof DeployError) {
      if (error.code !== 'INVALID_SOURCE' || error.hint !== undefined) throw error;
      throw new DeployError('INVALID_SOURCE', error.message, { cause: error.cause, hint: SOURCE_READ_HINT });
    }
    const code = errnoOf(error);
    if (code === 'ENAMETOOLONG') {
      throw new DeployError('INVALID_SOURCE', `a path in ${sourceReal} is longer than the system allows (PATH_MAX)`, { cause: error, hint: 'flatten the directory nesting of the build' });
    }
    if (code === 'EACCES' || code === 'EPERM') throw new DeployError('INVALID_SOURCE', `cannot read ${sourceReal}: ${code}`, { cause: error, hint: SOURCE_READ_HINT });
    throw error;
  }
}

/** A copy failure that is the source's fault (unreadable file): the root's owner is not the problem. */
function sourceReadError(sourceReal: string, error: unknown): DeployError | undefined {
  const code = errnoOf(error);
  const file = typeof error === 'object' && error !== null && 'path' in error && typeof error.path === 'string' ? error.path : undefined;
  if ((code === 'EACCES' || code === 'EPERM') && file !== undefined && (file === sourceReal || file.startsWith(sourceReal + path.sep))) {
    return new DeployError('INVALID_SOURCE', `cannot read ${file}: permission denied; nothing was deployed`, { cause: error, hint: SOURCE_READ_HINT });
  }
  return undefined;
}

/**
 * INTERRUPTED for a deploy undone before its switch. `left`: what a signal during the undo kept it
 * from deleting, `by` the second signal that stopped an undo the first had started, or `failure`
 * the error that started an undo the (first) signal then stopped.
 */
function interrupted(signal: AbortSignal | undefined, undo?: { left: readonly string[]; by?: AbortSignal | undefined; failure?: DeployError }): DeployError {
  const sig = signalOf(signal?.reason);
  const [first, ...rest] = undo?.left ?? [];
  if (first === undefined) return new DeployError('INTERRUPTED', `interrupted by ${sig} before the switch; the deploy was undone`, { signal: sig });
  const where = `while removing ${first}${rest.length > 0 ? ` (and ${rest.length} more)` : ''}; the next command removes the rest`;
  if (undo?.failure) return new DeployError('INTERRUPTED', `interrupted by ${sig} during the undo of a failed deploy (${undo.failure.message}): stopped ${where}`, { signal: sig, cause: undo.failure });
  const by = signalOf(undo?.by?.reason);
  return new DeployError('INTERRUPTED', `interrupted by ${sig} before the switch; ${by === sig ? `a second ${by}` : `a second signal (${by})`} stopped the undo ${where}`, { signal: sig });
}

/** Publishes `source` as a new release of `root` and switches `current` to it atomically. */
export async function deploy(source: string, root: string, given: DeployOptions = {}): Promise<DeployResult> {
  const started = performance.now();
  checkOptionsArgument(given);
  const options = withLists(given);
  checkWaitMs(options.waitMs);
  const emit = isolateSink(options.onEvent);
  const durable = options.fsync !== false;
  const isArtifact = typeof source === 'string' && isArtifactSource(source);
  const { layout, sourceReal, scan: scanned } = await validate(source, root, options, isArtifact);
  {
    // Refuse a root whose current we must not replace before creating anything in it.
    const existing = fs.existsSync(layout.root) ? await readCurrent(layout) : { kind: 'missing' as const };
    journalablePrevious(currentIdOrThrow(existing, layout), layout);
  }
  checkVerifyOptions(options);
  checkServingOptions(options);
  await checkReloadTargets(options, options.signal);
  // Shared paths and the strategy are checked before anything is written: exit 2, root untouched.
  const contents = await planContents(layout, scanned, options);
  const scan = contents.scan;
  if (options.keep !== undefined) assertKeep(options.keep);
  for (const message of buildTopWarnings(topNames(scan.entries))) emit({ type: 'warning', message });
  const closed = closedBuildWarning(regularFiles(scan.entries), closedDirectoryFix(sourceReal));
  if (closed !== undefined) emit({ type: 'warning', message: closed });
  if (options.dryRun) {
    const plan = await buildDeployPlan({ layout, sourceReal, scan }, options, contents);
    // A root this user cannot write is a warning, as rollback's and prune's dry runs say it (it stays among the plan's notes).
    const unwritable = writeProblem(layout);
    if (unwritable !== undefined) emit({ type: 'warning', message: unwritable });
    return dryRunResult(plan);
  }
  assertOwnerUmask();
  // Opened before anything is written: a 404, a non-archive or an unknown signer changes nothing.
  const opened = isArtifact ? await openArtifactSource(source, options.artifact ?? {}, { signal: options.signal, emit }) : undefined;
  const rootExisted = fs.existsSync(layout.root);
  const foreignOwner = rootOwnerWarning(layout.root);
  if (foreignOwner !== undefined) emit({ type: 'warning', message: foreignOwner });
  // What of the skeleton this deploy makes: a failed deploy takes it away again (an existing root
  // that had none of it, a Capistrano root with releases/ only, stays as it was).
  const made = skeletonOf(layout).filter((dir) => !fs.existsSync(dir));
  await assertTmpOnRoot(layout);
  try {
    // The root and releases/ are on the way to every release: 0755 whatever the umask.
    await makeReachableDirs(layout.releases);
    await makeDirs(layout.tmp, 0o755);
    await ensureStateDirs(layout);
  } catch (error) {
    // The path cannot hold a root (a filesystem that refuses new directories, as /proc does; a
    // file in the way): invalid input, and nothing was made.
    const code = errnoOf(error);
    if (!rootExisted && (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EEXIST')) {
      throw new DeployError('INVALID_ROOT', `cannot create the deploy root ${layout.root}: ${code} from mkdir; nothing was deployed`, { cause: error, hint: 'give a root on a filesystem that holds files and directories' });
    }
    throw ioError(`creating the layout in ${layout.root}`, error, layout.root);
  }
  const git = opened ? undefined : await gitInfo(sourceReal);

  let retired: RetiredPrune | undefined;
  const result: DeployResult = await withLock(layout, { waitMs: options.waitMs, command: options.command ?? 'deploy', signal: options.signal, emit }, async (lock) => {
    if (lock.tookOver) emit({ type: 'warning', message: `took over a stale lock: ${lock.tookOver.reason}` });
    await failpoint('lock-taken');
    const recovered = await recoverRoot(layout, durable, options.signal);
    for (const line of recovered) emit({ type: 'step', message: `recovered: ${line}` });

    const previous = journalablePrevious(currentIdOrThrow(await readCurrent(layout), layout), layout);
    const dirs = await listReleaseDirs(layout);
    const records = await readRecords(layout, dirs);
    const missed = previous === null ? missingCurrentWarning(records) : undefined;
    if (missed !== undefined) emit({ type: 'warning', message: missed });
    // Ids are never reused, not even a pruned release's: the log still has its record.
    const existingIds = new Set([...dirs, ...(await listRecordIds(layout))]);
    const id = options.releaseId ?? nextReleaseId(existingIds, new Date());
    const finalPath = releasePath(layout, id);
    if (existingIds.has(id) || fs.lstatSync(finalPath, { throwIfNoEntry: false }) !== undefined) {
      throw releaseIdTaken(layout, id, previous);
    }
    // Staged on the mount of releases/, so the rename that places it cannot fail with EXDEV.
    const area = await stagingArea(layout);
    if (area.dir === layout.releases) emit({ type: 'step', message: 'releases/ is on another filesystem than .tmp/: staging inside releases/' });
    const staging = stagePath(area, id);
    const journal: Journal = { v: 1, op: 'deploy', token: lock.owner.token, pid: process.pid, startedAt: new Date().toISOString(), release: id, previous, phase: 'copying' };
    let placed = false;
    let switched = false;
    let durability: DeployResult['durability'] = 'off';
    let sharedDirs: string[] = [];
    // An artifact's are decided again once it is extracted (sharedOverExtracted).
    let sharedLinks = contents.shared;
    let counts = { linked: 0, copied: 0 };
    let artifactFacts: DeployResult['artifact'];
    let totals = { files: scan.files, bytes: scan.bytes };
    let digest = '';
    let buildRead: SourceCache | undefined;
    let cacheServed = false;
    const verifyCtx = { layout, id, previous, durable, journal, emit, signal: options.signal, secondSignal: options.secondSignal, startedMs: started };
    const files = await planFiles(layout, area, contents, previous, previous === null ? undefined : records.get(previous), emit, options.signal);
    // What makes the files, as the record and the result say: `auto` resolves to reflink (copies
    // are clones) or copy; a hardlink deploy with before-switch hooks copies; an archive is extracted.
    const strategyUsed: Strategy = opened ? 'copy' : contents.strategy === 'auto' || files.copiedForHooks === true ? (files.cloned === true ? 'reflink' : 'copy') : contents.strategy;
    if (files.links) {
      const copied = Object.entries(files.links.copy).map(([reason, n]) => `${n} ${reason}`);
      emit({ type: 'step', message: `hardlink: ${files.links.link.length} of ${plural(scan.files, 'file')} are unchanged since release ${previous ?? ''} and are to be linked, not copied${copied.length > 0 ? ` (copied, by reason: ${copied.join(', ')})` : ''}` });
    }

    try {
      await recordJournal(layout, journal, durable);
      await failpoint('journal-written');
      // Copied into .tmp/ and renamed into releases/ when whole: a partial tree never sits there.
      await fs.promises.mkdir(staging, { mode: 0o700 });
      await failpoint('release-dir-made');
      // Not for a release made mostly of links: it has little data, and fsyncs what it copied.
      const writeback = durable && !files.linkFrom?.size ? new EarlyWriteback(staging) : undefined;
      let extracted: ExtractResult | undefined;
      if (opened) {
        emit({ type: 'step', message: `extracting ${opened.artifact.format} ${redactUrl(opened.artifact.source)} into release ${id}` });
        extracted = await fillStage(opened, staging, { signal: options.signal, emit, onFiles: (n, bytes) => writeback?.progress(n, bytes) });
        if (!options.signal?.aborted) {
          const empty = emptyArtifactError(opened.artifact.source, extracted, opened.limits.stripComponents);
          if (empty) throw empty;
          const single = singleTopDirWarning(opened.artifact.source, extracted, options.artifact?.stripComponents !== undefined);
          if (single) emit(single);
        }
        // As for a build directory, from the names the extraction saw (the archive is read once).
        for (const message of buildTopWarnings(extracted.watchedTopNames)) emit({ type: 'warning', message });
        const closed = closedBuildWarning(manifestFiles(extracted.manifest), CLOSED_ARCHIVE_FIX);
        if (closed !== undefined) emit({ type: 'warning', message: closed });
        if (!options.signal?.aborted) ({ links: sharedLinks, extracted } = await sharedOverExtracted(staging, extracted, options));
        artifactFacts = { format: opened.artifact.format, sha256: extracted.sha256, bytes: extracted.rawBytes, signedBy: opened.signature?.principal };
      } else {
        // With files to link from the previous release, say so: most of them may not be copied at all.
        const verb = files.linkFrom?.size ? 'linking unchanged files and copying the rest of' : 'copying';
        emit({ type: 'step', message: `${verb} ${plural(scan.files, 'file')} (${formatBytes(scan.bytes)}) into release ${id}` });
      }
      const copied = extracted ? { files: extracted.files, bytes: extracted.bytes, linked: 0, copied: extracted.files, manifest: extracted.manifest, stamps: extracted.stamps } : await copyTree(scan, staging, {
        signal: options.signal,
        reflink: cloneModeOf(contents.strategy),
        cloneWorks: files.cloned,
        linkFrom: files.linkFrom,
        onHalf: () => failpoint('copy-half'),
        onProgress: (p) => {
          writeback?.progress(p.files, p.bytes);
          emit({ type: 'progress', phase: 'copy', done: p.files, total: scan.files, bytes: p.bytes, totalBytes: scan.bytes });
        },
      });
      await writeback?.settle();
      if (options.signal?.aborted) throw interrupted(options.signal);
      await failpoint('copy-done');
      counts = { linked: copied.linked, copied: copied.copied };
      totals = { files: copied.files, bytes: copied.bytes };
      // Linked before the release is made durable and renamed, so releases/<id> never lacks them.
      sharedDirs = await placeShared(layout, staging, sharedLinks, { create: options.sharedCreate === true, emit });

      if (durable) {
        emit({ type: 'progress', phase: 'fsync', done: 0, total: scan.files, bytes: 0, totalBytes: scan.bytes });
        await failpoint('before-fsync');
        // Data and names on disk before the switch, or a power cut could leave current on empty files.
        // A linked file is the previous release's inode: durable already when that release was
        // made durable (its record says so), so only the new names need a sync. With few files
        // copied, fsync of those and of the directories spares the wait for the rest of the disk.
        const linkedDurable = copied.linked > 0 && durableRecord(records.get(previous ?? ''));
        const linkFrom = linkedDurable ? files.linkFrom : undefined;
        durability = await makeTreeDurable(
          staging,
          () => extracted ? extracted.manifest.filter((e) => e.type !== 'symlink').map((e) => path.join(staging, e.path)).concat(staging, sharedDirs) : [
            ...scan.entries.filter((e) => e.kind === 'file' && !linkFrom?.has(e.rel)).map((e) => path.join(staging, e.rel)),
            ...scan.entries.filter((e) => e.kind === 'dir').map((e) => path.join(staging, e.rel)),
            ...sharedDirs,
          ],
          { targeted: linkedDurable && copied.copied <= TARGETED_FSYNC_MAX },
        );
        await failpoint('fsync-done');
      }
      // The manifest is durable before the release is placed: a live release never lacks it.
      // The release directory's mode as placing leaves it: the build directory's (the archive's `./`,
      // else 755), opened to everyone (src/root/place.ts).
      const root = { mode: releaseDirMode(fs.lstatSync(staging).mode) };
      digest = await writeManifest(layout, id, [...copied.manifest, ...sharedEntries(staging, sharedLinks)], durable, root);
      await writeStatCache(layout, id, copied.stamps);
      // Every build file's hash came from the cache (same stamps): it already says all the new one would.
      if (!extracted && files.sourceClock !== undefined && files.sourceCached !== scan.files) buildRead = sourceCacheOfBuild(scan, copied.manifest, files.sourceClock);
      cacheServed = !extracted && scan.files > 0 && files.sourceCached === scan.files;
      await failpoint('manifest-written');
      const record: ReleaseRecord = {
        id,
        seq: nextSeq(records),
        status: 'pending',
        createdAt: new Date().toISOString(),
        user: lock.owner.user,
        host: os.hostname(),
        source: opened ? redactUrl(sourceReal) : sourceReal,
        git,
        ...(artifactFacts ? { artifact: artifactFacts } : {}),
        files: copied.files,
        bytes: copied.bytes,
        strategy: strategyUsed,
        ...(strategyUsed === contents.strategy ? {} : { strategyRequested: contents.strategy }),
        linked: copied.linked,
        copied: copied.copied,
        durability: durable ? durability : 'off',
        digest,
        durationMs: 0,
        previous,
      };
      // src/root/place.ts, as on a fleet host: the rename into releases/, the pending record, the journal at `ready`.
      const place = placeRelease({ id, stage: path.relative(layout.root, staging), record: JSON.stringify(record, null, 2), journal: JSON.stringify({ ...journal, phase: 'ready' }) });
      try {
        await runOnFs(layout.root, place, { durable });
      } finally {
        // The stage is gone only once the rename made it releases/<id>: from then on the undo retires the release.
        placed = !fs.existsSync(staging);
      }
      await failpoint('release-ready');
      if (options.signal?.aborted) throw interrupted(options.signal);
      await runBeforeSwitch(verifyCtx, options);
      if (contents.beforeSwitchHooks) {
        // What goes live includes what the hooks wrote: the manifest is made again from the release.
        const after = await hashTree(finalPath, options.signal);
        if (options.signal?.aborted) throw interrupted(options.signal);
        // As a build holding one is refused: the manifest could not describe what would go live.
        const [special, ...more] = after.special;
        if (special !== undefined) {
          throw new DeployError('UNSUPPORTED_FILE', `${finalPath}/${special.path} is a ${special.kind}${more.length > 0 ? ` (and ${more.length} more such)` : ''}; a release can hold only files, directories and symlinks`, {
            hint: 'whatever wrote it into the release (a before-switch hook) must not; make it at start-up from a shared path. current is unchanged',
          });
        }
        digest = await writeManifest(layout, id, after.entries, durable, after.root);
        await recordRelease(layout, id, { digest }, durable);
      }

      emit({ type: 'step', message: `switching current to releases/${id}` });
      await switchCurrent(layout, id, {
        durable,
        beforeRename: async () => {
          await failpoint('temp-link-made');
          // The last moment a signal can still undo the deploy.
          if (options.signal?.aborted) throw interrupted(options.signal);
        },
        afterRename: () => {
          switched = true;
        },
      });
    } catch (error) {
      if (switched) throw bookkeepingError(id, error, layout.root);
      const failure = error instanceof DeployError ? error : (sourceReadError(sourceReal, error) ?? ioError(`deploying release ${id}`, error, layout.root));
      const signalled = options.signal?.aborted === true;
      // The next signal stops the undo's deletes: the second one if a signal started the undo, else the first.
      const stop = nextSignal(options.signal, options.secondSignal);
      if (signalled) emit({ type: 'step', message: `interrupted by ${signalOf(options.signal?.reason)}: undoing the deploy (a second signal stops the deleting; the next command finishes it)` });
      const left = await undoDeploy(layout, { id, staging, placed, previous, durable, signal: stop });
      if (left.length > 0) throw signalled ? interrupted(options.signal, { left, by: stop }) : interrupted(options.signal, { left, failure });
      // A failure the signal caused (a download or a child cut short) is the signal's: exit 128+n.
      if (options.signal?.aborted && !(error instanceof DeployError && error.code === 'INTERRUPTED')) throw interrupted(options.signal);
      throw failure;
    }

    // From here on the switch stands: finish the bookkeeping whatever happens, signals included.
    try {
      await failpoint('after-switch');
      const switchedAt = new Date().toISOString();
      // What is still to verify goes into the journal: killed before it finished, the release is recorded unverified.
      const verifying = afterSwitchSteps(options);
      await recordJournal(layout, { ...journal, phase: 'switched', ...(verifying === undefined ? {} : { verifying }) }, durable);
      // After-switch hooks and the health check; a failure there rolls back and throws ROLLED_BACK.
      const verified = await verifyAfterSwitch(verifyCtx, options, switchedAt);
      // Verified: a kill from here on is recovered as a verified release. Failed or unverified, the journal keeps saying so.
      if (verifying !== undefined && verified.error === undefined && verified.afterSwitchFailure === undefined && verified.record.afterSwitchFailure === undefined) {
        await recordJournal(layout, { ...journal, phase: 'switched' }, durable);
      }
      // After the hooks and reloads, which are what moves processes off the release left behind.
      // With a prune to follow, the stale check scans all of releases/ and prune's guard reuses that scan (made a moment earlier, under the same lock).
      const share: SharedScan | undefined = options.keep !== undefined ? { under: realpathLoose(layout.releases) } : undefined;
      const stale = verified.error ? undefined : await awaitFreshness({ layout, id, emit, signal: options.signal, share }, previous, options);
      const durationMs = Math.round(performance.now() - started);
      const staleCount = stale?.check === 'proc' ? { staleProcesses: stale.processes.length } : {};
      const unverified = verified.afterSwitchFailure === undefined ? {} : { afterSwitchFailure: verified.afterSwitchFailure };
      await recordRelease(layout, id, { status: 'complete', activatedAt: switchedAt, durationMs, ...staleCount, ...unverified, ...verified.record }, durable);
      await failpoint('log-written');
      await clearJournalRecord(layout, durable);
      // Only once the switch stands: a deploy undone before it leaves the root as it found it, cache included.
      if (buildRead) await writeSourceCache(layout, buildRead).catch(() => undefined);
      else if (cacheServed) touchSourceCache(layout, scan.dir);
      await failpoint('journal-cleared');
      if (verified.error) throw verified.error;
      emit({ type: 'step', message: `release ${id} is live${previous ? ` (previous: ${previous})` : ''}` });
      // Prune only once the new release is live and verified (a failed after-switch hook leaves it
      // live but unverified: exit 7, nothing pruned); a signal meanwhile skips it.
      if (options.keep !== undefined && options.signal?.aborted) {
        emit({ type: 'warning', message: `interrupted by ${signalOf(options.signal.reason)}: no release was pruned (the next deploy or prune does it)` });
      } else if (options.keep !== undefined && verified.afterSwitchFailure === undefined) {
        retired = await pruneUnderLock(layout, { keep: options.keep, durable, signal: options.signal, emit, scan: share?.last }).catch((error: unknown) => {
          emit({ type: 'warning', message: `prune stopped: ${ioError('pruning', error).message}; the deploy stands` });
          return undefined;
        });
        for (const f of retired?.failed ?? []) emit({ type: 'warning', message: `${f.error.message}; it stays, the deploy stands` });
      }
      return {
        release: id,
        path: finalPath,
        previous,
        files: totals.files,
        bytes: totals.bytes,
        durationMs,
        artifact: artifactFacts,
        durability: durable ? durability : 'off',
        recovered,
        interruptedAfterSwitch: options.signal?.aborted ? true : undefined,
        digest,
        strategy: strategyUsed,
        strategyRequested: contents.strategy,
        cloned: files.cloned,
        ...counts,
        shared: contents.shared.length > 0 ? contents.shared.map((l) => l.path) : undefined,
        health: verified.health,
        warnings: verified.warnings.length > 0 ? verified.warnings : undefined,
        afterSwitchFailure: verified.afterSwitchFailure,
        stale,
      };
    } catch (error) {
      if (isVerdict(error)) throw error;
      throw bookkeepingError(id, error, layout.root);
    }
  }).catch(async (error: unknown) => {
    // A deploy that failed leaves no empty skeleton behind: only what it made, and rmdir removes only empty directories.
    await removeSkeleton(made);
    throw error;
  }).finally(() => closeArtifact(opened));
  // The trees leave releases/ by rename under the lock; deleting them waits until it is released.
  if (retired) result.prune = await finishPrune(retired, { emit, signal: options.signal });
  // `--stale fail`: the deploy is complete and stands; the exit code tells that old code still runs.
  // A failed after-switch hook came first (and skipped the reloads): its exit code is the one to report.
  const stale = result.afterSwitchFailure === undefined ? staleFailure(options, result.stale, { live: result.release, result, signal: options.signal }) : undefined;
  if (stale) throw stale;
  return result;
}

/**
 * The next source cache: this build's stamps and the hashes of the bytes read from it (linked
 * files: the hash they were linked by). A cache that cannot be written costs only reads later.
 */
function sourceCacheOfBuild(scan: SourceScan, written: readonly ManifestEntry[], sealedNs: bigint): SourceCache | undefined {
  // Held across the switch: a large build's cache would raise the deploy's peak memory.
  if (scan.files > SOURCE_CACHE_MAX_FILES) return undefined;
  const sha = new Map<string, { sha256: string; size: number }>();
  for (const e of written) if (e.type === 'file') sha.set(e.path, e);
  const read: [string, SourceStamp, string][] = [];
  for (const e of scan.entries) {
    if (e.kind !== 'file') continue;
    const rel = slashedRel(e.rel);
    const hash = sha.get(rel);
    // A size other than the scan's: the file changed between the scan and the read; its stamp describes neither.
    if (hash !== undefined && hash.size === e.size) read.push([rel, e, hash.sha256]);
  }
  return sourceCacheOf(scan.dir, sealedNs, read);
}

/** The directories a deploy makes in a root, children before their parents. */
function skeletonOf(layout: Layout): string[] {
  // Then the root's parents, nearest first, up to the first that exists: a deploy into a/b/root
  // makes a and a/b as `mkdir -p` would, and a failed first deploy must take them away too.
  const parents: string[] = [];
  for (let dir = path.dirname(layout.root); dir !== path.dirname(dir) && !fs.existsSync(dir); dir = path.dirname(dir)) parents.push(dir);
  return [...ROOT_SKELETON.map((name) => path.join(layout.root, name)), layout.root, ...parents];
}

async function removeSkeleton(made: readonly string[]): Promise<void> {
  for (const dir of made) await fs.promises.rmdir(dir).catch(() => undefined);
}

/** The dry run of `deploy`: the same checks, the plan, and nothing changed on disk. */
export async function planDeploy(source: string, root: string, options: DeployOptions = {}): Promise<DeployPlan> {
  // Before the spread, to which null is no options at all.
  checkOptionsArgument(options);
  const { plan } = await deploy(source, root, { ...options, dryRun: true });
  if (!plan) throw new DeployError('INTERNAL', 'a dry run returned no plan');
  return plan;
}

function dryRunResult(plan: DeployPlan): DeployResult {
  return { release: plan.release, path: plan.path, previous: plan.previous, files: plan.files, bytes: plan.bytes, durationMs: 0, durability: 'off', recovered: [], plan };
}

/** Manifest entries of the shared links and the directories made for them (their modes as made). */
function sharedEntries(staging: string, links: readonly SharedLink[]): ManifestEntry[] {
  const out = new Map<string, ManifestEntry>();
  for (const link of links) {
    for (const dir of link.mkdirs) out.set(dir, { path: dir, type: 'dir', mode: fs.lstatSync(path.join(staging, dir)).mode & 0o7777 });
    out.set(link.path, { path: link.path, type: 'symlink', target: link.linkText });
  }
  return [...out.values()];
}

/** The switch stood and only what followed it failed: said in fields too (`release`, `live`), as rollback's is, so a script need not read the message. */
function bookkeepingError(id: string, error: unknown, root: string): DeployError {
  const base = ioError('recording the deploy', error);
  return new DeployError(base.code, `release ${id} is live, but ${base.message}`, {
    cause: error,
    // A full disk: the record waits for space (deploying again would need more of it).
    hint: base.code === 'NO_SPACE' ? `free space on the root's filesystem (atomic-deploy prune ${shellWord(root)} --keep 3 removes old releases); the next atomic-deploy command then finishes the record by itself` : 'the next atomic-deploy command finishes the record by itself',
    details: { release: id, live: true },
  });
}

/**
 * Undoes a deploy that did not switch (src/root/undo.ts): the new release goes, current and its
 * rollback target stay. Once `signal` aborts, the deletes stop and the quick steps still run (the
 * release renamed to trash first, its record, manifest and the journal removed), as in recovery.
 * Returns the root-relative trees a signal left, under leftover names, for the next command.
 */
export async function undoDeploy(
  layout: Layout,
  state: { id: string; staging: string; placed: boolean; previous: string | null; durable: boolean; signal?: AbortSignal },
): Promise<string[]> {
  try {
    const stage = path.relative(layout.root, state.staging);
    const trash = path.relative(layout.root, trashPath(await stagingArea(layout), state.id));
    const program = undoProgram({ id: state.id, placed: state.placed, previous: state.previous, ordered: await releaseViews(layout), leftovers: [stage], trash });
    await runOnFs(layout.root, program, { durable: state.durable, signal: state.signal });
    return state.signal?.aborted === true ? [stage, trash].filter((p) => fs.existsSync(path.join(layout.root, p))) : [];
  } catch {
    // The journal stays; the next command finishes the clean-up under the lock.
    return [];
  }
}

/**
 * A deploy into a root whose `current` is missing while its log says a release went live (a link
 * removed by hand): it goes on as a first deploy would, and its prune keeps that release as the one
 * live before it (plan/releases.ts selectPrune), the last tree known to have served.
 */
export function missingCurrentWarning(records: ReadonlyMap<string, ReleaseRecord>): string | undefined {
  const last = lastLive([...records.values()].map((r) => ({ id: r.id, ...recordTimes(r) })));
  return last === undefined ? undefined : `current was missing, though the release log says ${last.id} was live last: ${last.id} is kept as the release live before this one`;
}

/**
 * Root deploying into a root another user owns: what it makes there (releases, the state, the
 * lock's directory) is root's, and that user's own deploys are then refused. Said before anything
 * is made; the deploy goes on (an operator may mean it).
 */
function rootOwnerWarning(root: string): string | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const owner = fs.statSync(root, { throwIfNoEntry: false })?.uid;
  if (owner === undefined || owner === 0) return undefined;
  const user = userOf(owner);
  return `deploying as root into ${root}, which is ${user}'s: what this deploy makes there will be root's, and ${user}'s own deploys refused (deploy as ${user}, or chown -R ${user} ${root} after)`;
}
