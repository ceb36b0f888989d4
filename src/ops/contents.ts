/** What goes into a new release besides the source's files: shared links, and how files are made. */
import path from 'node:path';
import type { SourceEntry, SourceScan } from '../act/copy.ts';
import { releasePath, type Layout } from '../act/layout.ts';
import { failpoint } from '../act/failpoints.ts';
import { createSharedTarget, linkShared, sharedMissingError, sharedTargetKind } from '../act/shared.ts';
import { deviceOf, hashFiles, nearestExistingDir, previousFiles, probeClone } from '../act/strategy.ts';
import { DeployError, ioError } from '../errors.ts';
import { planShared, sharedTargetAction, withoutPaths, type SharedLink, type SharedSpec, type SharedType } from '../plan/shared.ts';
import type { EventSink } from './events.ts';
import { filesToHash, isStrategy, planLinks, STRATEGIES, type FileFacts, type LinkPlan, type PreviousFile, type Strategy } from '../plan/strategy.ts';

export interface ContentsOptions {
  /** Shared paths whose type (file or directory) is inferred from what exists. */
  shared?: string[];
  sharedFiles?: string[];
  sharedDirs?: string[];
  sharedCreate?: boolean;
  sharedReplace?: boolean;
  strategy?: string;
  checksum?: boolean;
}

export interface ContentsPlan {
  /** The source listing, without shared paths it held (with sharedReplace). */
  scan: SourceScan;
  shared: SharedLink[];
  strategy: Strategy;
  checksum: boolean;
}

function recount(scan: SourceScan, entries: SourceEntry[]): SourceScan {
  const files = entries.filter((e) => e.kind === 'file');
  return {
    dir: scan.dir,
    entries,
    files: files.length,
    dirs: entries.filter((e) => e.kind === 'dir' && e.rel !== '').length,
    symlinks: entries.filter((e) => e.kind === 'symlink').length,
    bytes: files.reduce((n, e) => n + e.size, 0),
  };
}

function firstFile(scan: SourceScan): string | undefined {
  const file = scan.entries.find((e) => e.kind === 'file' && e.size > 0) ?? scan.entries.find((e) => e.kind === 'file');
  return file ? path.join(scan.dir, file.rel) : undefined;
}

/**
 * Checks shared paths and the strategy before anything is written, so that each problem
 * here ends the deploy with exit 2 and the root as it was.
 */
export async function planContents(layout: Layout, scan: SourceScan, options: ContentsOptions): Promise<ContentsPlan> {
  const strategy = options.strategy ?? 'auto';
  if (!isStrategy(strategy)) {
    throw new DeployError('USAGE', `unknown strategy ${JSON.stringify(strategy)}`, { hint: `use one of: ${STRATEGIES.join(', ')}` });
  }
  if (options.checksum && strategy !== 'hardlink') {
    throw new DeployError('USAGE', '--checksum only applies to --strategy hardlink', { hint: 'add --strategy hardlink, or drop --checksum' });
  }
  const specs: SharedSpec[] = [
    ...(options.shared ?? []).map((p) => ({ path: p })),
    ...(options.sharedFiles ?? []).map((p) => ({ path: p, type: 'file' as const })),
    ...(options.sharedDirs ?? []).map((p) => ({ path: p, type: 'dir' as const })),
  ];
  const shared = planShared(specs, scan.entries, { replace: options.sharedReplace });
  if (shared.problems.length > 0) {
    const held = shared.problems.some((p) => p.startsWith('the source already holds'));
    throw new DeployError('INVALID_SHARED_PATH', shared.problems.join('; '), {
      hint: held
        ? 'remove it from the build, or pass --shared-replace to link the shared one in its place'
        : 'give paths relative to the release, without "..", e.g. --shared .env --shared storage',
      details: { problems: shared.problems },
    });
  }
  sharedTargetsToCreate(layout, shared.links, options.sharedCreate === true);
  if (strategy === 'reflink') {
    const sample = firstFile(scan);
    // The probe file is removed at once: a refused strategy leaves the root as it was.
    const probe = sample ? await probeClone(sample, nearestExistingDir(layout.tmp)) : ({ kind: 'cloned' } as const);
    if (probe.kind === 'unsupported') {
      throw new DeployError('UNSUPPORTED_PLATFORM', `--strategy reflink: cannot clone files from ${scan.dir} into ${layout.root} (${probe.errno}); copy-on-write clones need the source and the root on one btrfs or xfs (reflink=1) filesystem`, {
        hint: 'use --strategy auto to clone where the filesystem can and copy elsewhere',
        details: { errno: probe.errno },
      });
    }
  }
  return { scan: recount(scan, withoutPaths(scan.entries, shared.exclude)), shared: shared.links, strategy, checksum: options.checksum === true };
}

export interface FilePlan {
  /** Files to hardlink from the previous release: relative path → existing file. */
  linkFrom?: Map<string, string>;
  links?: LinkPlan;
  /** Whether copies are copy-on-write clones here (auto and reflink); undefined if unknown. */
  cloned?: boolean;
}

/** Decides, under the lock, which files are linked from the previous release and which are copied. */
export async function planFiles(layout: Layout, plan: ContentsPlan, previous: string | null, signal?: AbortSignal): Promise<FilePlan> {
  const result: FilePlan = {};
  const sample = firstFile(plan.scan);
  if (plan.strategy === 'reflink') result.cloned = true;
  else if (plan.strategy === 'copy') result.cloned = false;
  else if (sample) {
    // A `stage.` name: recovery sweeps it if a crash lands between the clone and its removal.
    const probe = await probeClone(sample, layout.tmp, 'stage.clone-probe');
    result.cloned = probe.kind === 'unknown' ? undefined : probe.kind === 'cloned';
  }
  if (plan.strategy !== 'hardlink' || previous === null) return result;

  const prevDir = releasePath(layout, previous);
  if (deviceOf(prevDir) !== deviceOf(layout.tmp)) {
    throw new DeployError('UNSUPPORTED_PLATFORM', `--strategy hardlink: release ${previous} and ${layout.tmp} are on different filesystems, and a hardlink cannot cross them`, {
      hint: 'keep releases/ and .tmp/ on one filesystem, or use --strategy auto',
    });
  }
  const files: FileFacts[] = plan.scan.entries
    .filter((e) => e.kind === 'file')
    .map((e) => ({ rel: e.rel, size: e.size, mtimeMs: e.mtimeMs, mode: e.mode, uid: e.uid, gid: e.gid }));
  let before: Map<string, PreviousFile>;
  let sourceHashes: Map<string, string> | undefined;
  let previousHashes: Map<string, string> | undefined;
  try {
    before = previousFiles(prevDir, files.map((f) => f.rel));
    if (plan.checksum) {
      const toHash = filesToHash(files, before);
      [sourceHashes, previousHashes] = await Promise.all([hashFiles(plan.scan.dir, toHash, signal), hashFiles(prevDir, toHash, signal)]);
    }
  } catch (error) {
    throw ioError(`comparing the source with release ${previous}`, error);
  }
  const links = planLinks(files, before, { checksum: plan.checksum, sourceHashes, previousHashes });
  result.links = links;
  result.linkFrom = new Map(links.link.map((rel) => [rel, `${prevDir}${path.sep}${rel}`]));
  return result;
}

/** The shared targets to create empty; throws when one is missing (without `create`), mistyped, or its type is a guess. */
export function sharedTargetsToCreate(layout: Layout, links: readonly SharedLink[], create: boolean): { path: string; type: SharedType }[] {
  const creates: { path: string; type: SharedType }[] = [];
  const missing: string[] = [];
  const problems: string[] = [];
  for (const link of links) {
    const action = sharedTargetAction(link, sharedTargetKind(layout, link.path), create);
    if (action.kind === 'create') creates.push({ path: link.path, type: action.type });
    else if (action.kind === 'missing') missing.push(link.path);
    else if (action.kind === 'problem') problems.push(action.problem);
  }
  if (problems.length > 0) {
    throw new DeployError('INVALID_SHARED_PATH', problems.join('; '), {
      hint: 'say which it is: --shared-file <path> (e.g. .env) or --shared-dir <path> (e.g. storage), or sharedFiles: / sharedDirs: in the config file',
      details: { problems },
    });
  }
  if (missing.length > 0) throw sharedMissingError(layout, missing);
  return creates;
}

/**
 * Links the shared paths into the staged release. Targets are checked again under the lock
 * (one may have gone since the first check); `create` makes missing ones empty, as files or directories.
 */
export async function placeShared(layout: Layout, staging: string, links: readonly SharedLink[], options: { create: boolean; emit: EventSink }): Promise<string[]> {
  if (links.length === 0) return [];
  for (const target of sharedTargetsToCreate(layout, links, options.create)) {
    await createSharedTarget(layout, target.path, target.type);
    options.emit({ type: 'step', message: `created empty shared ${target.type === 'dir' ? 'directory' : 'file'} shared/${target.path}` });
  }
  const made = await linkShared(staging, links);
  options.emit({ type: 'step', message: `linked shared ${links.map((l) => l.path).join(', ')}` });
  await failpoint('shared-linked');
  return made;
}
