/** What goes into a new release besides the source's files: shared links, and how files are made. */
import fs from 'node:fs';
import path from 'node:path';
import type { ExtractResult } from '../act/archive.ts';
import { slashedRel, type SourceEntry, type SourceScan } from '../act/copy.ts';
import { releasePath, type Layout } from '../act/layout.ts';
import { failpoint } from '../act/failpoints.ts';
import { createSharedTarget, inWritableDir, linkShared, sharedCreateProblem, sharedMissingError, sharedTargetKind } from '../act/shared.ts';
import { deleteTree } from '../act/remove-tree.ts';
import { listReleaseDirs } from '../act/releases.ts';
import { hashFileSync, readManifest, readStatCache } from '../act/manifest.ts';
import type { ReleaseRecord } from '../act/state.ts';
import type { StagingArea } from '../act/staging.ts';
import { deviceOf, nearestExistingDir, noClonesOn, previousFiles, probeClone } from '../act/strategy.ts';
import type { LinkSource } from '../act/copy.ts';
import { stampedPrevious, trustedHashes, type FileStamp } from '../plan/stat-cache.ts';
import { filesystemNow, readSourceCache } from '../act/source-cache.ts';
import { cachedHashes, type SourceStamp } from '../plan/source-cache.ts';
import { DeployError, ioError } from '../errors.ts';
import { plural } from '../plan/units.ts';
import { planShared, sharedSpecs, sharedTargetAction, withoutPaths, type SharedLink, type SharedType } from '../plan/shared.ts';
import type { EventSink } from './events.ts';
import { filesToHash, isStrategy, planLinks, STRATEGIES, type CopyOwner, type LinkPlan, type PreviousFile, type Strategy } from '../plan/strategy.ts';

export interface ContentsOptions {
  /** Shared paths whose type (file or directory) is inferred from what exists. */
  shared?: string[];
  sharedFiles?: string[];
  sharedDirs?: string[];
  sharedCreate?: boolean;
  sharedReplace?: boolean;
  strategy?: string;
  /** Accepted and ignored: content decides every link now. */
  checksum?: boolean;
  /** Before-switch hooks run in the new release: with them, `hardlink` links nothing (planFiles). */
  hooks?: { beforeSwitch?: readonly string[] };
}

export interface ContentsPlan {
  /** The source listing, without shared paths it held (with sharedReplace). */
  scan: SourceScan;
  shared: SharedLink[];
  strategy: Strategy;
  /** Before-switch hooks will run in the release (they may write into any of its files). */
  beforeSwitchHooks: boolean;
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
  const shared = planShared(sharedSpecs(options), scan.entries, { replace: options.sharedReplace });
  if (shared.problems.length > 0) {
    throw new DeployError('INVALID_SHARED_PATH', shared.problems.join('; '), { hint: shared.hints.join('; '), details: { problems: shared.problems } });
  }
  sharedTargetsToCreate(layout, shared.links, options.sharedCreate === true);
  if (strategy === 'reflink') {
    const sample = firstFile(scan);
    const into = nearestExistingDir(layout.releases);
    // On a filesystem that never clones, no probe: its file would still move the directory's times.
    const none = sample === undefined ? undefined : (noClonesOn(into) ?? noClonesOn(scan.dir));
    // The probe file is removed at once: a refused strategy leaves the root as it was.
    const probe = none !== undefined ? ({ kind: 'unsupported', errno: 'EOPNOTSUPP' } as const) : sample ? await probeClone(sample, into) : ({ kind: 'cloned' } as const);
    if (probe.kind === 'unsupported') {
      const which = none === undefined ? '' : `; ${noClonesOn(into) === undefined ? 'the source' : 'the root'} is on ${none}, which has no clones`;
      throw new DeployError('UNSUPPORTED_PLATFORM', `--strategy reflink: cannot clone files from ${scan.dir} into ${layout.root} (${probe.errno}); copy-on-write clones need the source and the root on one btrfs or xfs (reflink=1) filesystem${which}`, {
        hint: 'use --strategy auto to clone where the filesystem can and copy elsewhere',
        details: { errno: probe.errno },
      });
    }
  }
  return { scan: recount(scan, withoutPaths(scan.entries, shared.exclude)), shared: shared.links, strategy, beforeSwitchHooks: (options.hooks?.beforeSwitch ?? []).length > 0 };
}

export interface FilePlan {
  /** Files to hardlink from the previous release: relative path → existing file and its hash. */
  linkFrom?: Map<string, LinkSource>;
  links?: LinkPlan;
  /** Whether copies are copy-on-write clones here (auto and reflink); undefined if unknown. */
  cloned?: boolean;
  /** How the previous release's contents were known: its manifest, hashing it, or not at all. */
  previousContents?: 'manifest' | 'hashed' | 'untrusted';
  /** The filesystem clock before any build file was read: the source cache's seal (undefined: no cache is written). */
  sourceClock?: bigint;
  /** Build files whose hash came from the source cache, unread. */
  sourceCached?: number;
  /** `hardlink` with before-switch hooks: every file is cloned or copied, as `auto` would (planFiles). */
  copiedForHooks?: boolean;
}


const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * SHA-256 of these files under `dir`, read synchronously with a turn for the loop every 256. Each
 * is read to the size its lstat gave (`sizes`): a short read that reaches it is the end, without
 * a second read(2) to see the 0, and a file that is not that size hashes differently anyway.
 */
async function hashAll(dir: string, rels: readonly string[], sizes: ReadonlyMap<string, { size: number }>, signal?: AbortSignal): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (const [i, rel] of rels.entries()) {
    if (signal?.aborted) break;
    hashes.set(rel, hashFileSync(`${dir}${path.sep}${rel}`, true, sizes.get(rel)?.size).sha256);
    if (i % 256 === 255) await turn();
  }
  return hashes;
}

/** A map keyed by manifest paths (`/`-separated) keyed by native relative paths instead: itself wherever path.sep is `/`. */
function nativeKeys<V>(byManifestPath: Map<string, V>): Map<string, V> {
  return path.sep === '/' ? byManifestPath : new Map([...byManifestPath].map(([p, v]) => [p.split('/').join(path.sep), v]));
}

/** The stamps of these previous files by manifest path (`/`-separated). */
function slashedStamps(before: ReadonlyMap<string, PreviousFile>, rels: readonly string[]): Map<string, FileStamp> {
  const now = new Map<string, FileStamp>();
  for (const rel of rels) {
    const b = before.get(rel);
    if (b) now.set(slashedRel(rel), b);
  }
  return now;
}

/** What the previous release's manifest and stat cache say, read once before anything is decided. */
interface PreviousState {
  load: ReturnType<typeof readManifest>;
  cache: ReturnType<typeof readStatCache>;
}

function previousState(layout: Layout, previous: string, record: ReleaseRecord | undefined): PreviousState {
  const load = readManifest(layout, previous, record?.digest);
  return { load, cache: load.kind === 'ok' ? readStatCache(layout, previous) : undefined };
}

/**
 * The previous release's SHA-256 for each candidate, as its files are now. From its manifest
 * where the stat cache proves a file untouched since (inode, size, ctime); hashed again otherwise.
 * A release without a manifest (made before manifests) is hashed; an untrusted manifest (missing,
 * damaged, digest mismatch) is not worked around: nothing is linked, and the caller warns.
 */
async function previousHashes(layout: Layout, previous: string, state: PreviousState, before: ReadonlyMap<string, PreviousFile>, candidates: readonly string[], signal?: AbortSignal): Promise<{ hashes: Map<string, string>; reread: ReadonlySet<string>; contents: NonNullable<FilePlan['previousContents']>; problem?: string }> {
  const prevDir = releasePath(layout, previous);
  const { load, cache } = state;
  if (load.kind === 'untrusted') return { hashes: new Map(), reread: new Set(), contents: 'untrusted', problem: load.problem };
  let trusted = new Map<string, string>();
  // A PreviousFile is a FileStamp, and its rel the manifest's path where path.sep is '/': no second map of 10k stamps.
  if (load.kind === 'ok' && cache) trusted = trustedHashes(load.manifest, cache.stamps, cache.sealedAtMs, path.sep === '/' ? before : slashedStamps(before, candidates));
  const hashes = nativeKeys(trusted);
  const rest = candidates.filter((rel) => !hashes.has(rel));
  for (const [rel, hash] of await hashAll(prevDir, rest, before, signal)) hashes.set(rel, hash);
  return { hashes, reread: new Set(rest), contents: load.kind === 'ok' ? 'manifest' : 'hashed' };
}

/**
 * The previous release's file at each build file's path: from its manifest and stat cache where
 * they can say (stampedPrevious: no system call; copyTree proves each stamp by one lstat just
 * before it links), by an lstat now for the rest (previousFiles).
 */
function previousFacts(prevDir: string, state: PreviousState, files: readonly SourceEntry[]): Map<string, PreviousFile> {
  const { load, cache } = state;
  const stamped = load.kind === 'ok' && cache ? stampedPrevious(load.manifest, cache.stamps, cache.sealedAtMs, files, slashedRel) : new Map<string, PreviousFile>();
  const rest = stamped.size === files.length ? [] : files.filter((f) => !stamped.has(f.rel)).map((f) => f.rel);
  if (rest.length === 0) return stamped;
  for (const [rel, file] of previousFiles(prevDir, rest)) stamped.set(rel, file);
  return stamped;
}

/** The source cache's hashes for these build files (by their scan stamps); empty when there is no usable cache. */
function buildHashesFromCache(layout: Layout, scan: SourceScan, files: readonly SourceEntry[], rels: readonly string[]): Map<string, string> {
  const cache = readSourceCache(layout, scan.dir);
  if (cache === undefined) return new Map();
  // Every file linkable is the common redeploy: then no set of 10k names to test against.
  const wanted = rels.length === files.length ? undefined : new Set(rels);
  const now: [string, SourceStamp][] = [];
  for (const e of files) {
    if (wanted === undefined || wanted.has(e.rel)) now.push([slashedRel(e.rel), e]);
  }
  return nativeKeys(cachedHashes(cache, scan.dir, now));
}

/** Decides, under the lock, which files are linked from the previous release and which are copied. */
export async function planFiles(layout: Layout, area: StagingArea, plan: ContentsPlan, previous: string | null, previousRecord: ReleaseRecord | undefined, emit: EventSink, signal?: AbortSignal): Promise<FilePlan> {
  const result: FilePlan = {};
  // Before the clone probe or any hash reads a build file: a write after this moment moves its ctime past it.
  if (plan.scan.files > 0) {
    try {
      result.sourceClock = filesystemNow(layout);
    } catch {
      // No clock, no cache written: the deploy itself does not need it.
    }
  }
  const sample = firstFile(plan.scan);
  if (plan.strategy === 'reflink') result.cloned = true;
  else if (plan.strategy === 'copy') result.cloned = false;
  else if (sample) {
    // A `stage.` name: recovery sweeps it if a crash lands between the clone and its removal.
    const probe = await probeClone(sample, area.dir, `${area.prefix}stage.clone-probe`);
    result.cloned = probe.kind === 'unknown' ? undefined : probe.kind === 'cloned';
  }
  if (plan.strategy !== 'hardlink' || previous === null) return result;
  if (plan.beforeSwitchHooks) {
    // A hook writes in the new release before the switch, and in place as often as not (`>>`,
    // PHP's file_put_contents, composer dump-autoload, a chmod): into a linked file, that is the
    // live release's inode, served while the hook runs and left half-written by a crash. So no
    // file is shared with the live release until the hooks are done: all are cloned or copied.
    result.copiedForHooks = true;
    emit({ type: 'step', message: `hardlink: before-switch hooks will run in the new release, so no file is linked from release ${previous} (a hook writing into a linked file would write into the live release): every file is ${result.cloned === true ? 'cloned' : 'copied'}` });
    return result;
  }

  const prevDir = releasePath(layout, previous);
  const dev = deviceOf(prevDir);
  if (dev !== deviceOf(area.dir)) {
    throw new DeployError('UNSUPPORTED_PLATFORM', `--strategy hardlink: release ${previous} and ${area.dir} are on different filesystems, and a hardlink cannot cross them`, {
      hint: 'keep every release on the filesystem of releases/, or use --strategy auto',
    });
  }
  // A SourceEntry is the FileFacts of its file: no copy of 10k of them.
  const files: SourceEntry[] = plan.scan.entries.filter((e) => e.kind === 'file');
  let links: LinkPlan;
  let sourceHashes: Map<string, string>;
  let before: Map<string, PreviousFile>;
  // Previous files hashed now: their stamp was not the stat cache's (no cache, racy, or it moved),
  // so a name may have been added to them since. The others are proved by the cache's stamp.
  let reread: ReadonlySet<string> = new Set();
  try {
    const state = previousState(layout, previous, previousRecord);
    before = previousFacts(prevDir, state, files);
    const owner = copyOwner(area.dir);
    const candidates = filesToHash(files, before, owner);
    const prev = await previousHashes(layout, previous, state, before, candidates, signal);
    reread = prev.reread;
    result.previousContents = prev.contents;
    if (prev.problem !== undefined) {
      emit({ type: 'warning', message: `the manifest of release ${previous} is not trusted (${prev.problem}): every file is copied, none linked` });
    } else if (prev.contents === 'hashed') {
      emit({ type: 'step', message: `release ${previous} has no manifest (made before manifests): hashed ${candidates.length} of its files to compare` });
    }
    // Only the files that can still be linked are read now; the copy hashes the rest as it goes.
    const linkable = candidates.filter((rel) => prev.hashes.has(rel));
    const cached = linkable.length > 0 ? buildHashesFromCache(layout, plan.scan, files, linkable) : new Map<string, string>();
    result.sourceCached = cached.size;
    if (cached.size > 0) emit({ type: 'step', message: `source cache: ${cached.size} of ${plural(linkable.length, 'build file')} unchanged since they were last read (inode, size, mtime, ctime), not read again` });
    const unread = linkable.filter((rel) => !cached.has(rel));
    // A linkable file passed the size test, so its previous file's size is the build's.
    sourceHashes = cached;
    for (const [rel, sha] of await hashAll(plan.scan.dir, unread, before, signal)) sourceHashes.set(rel, sha);
    links = planLinks(files, before, { sourceHashes, previousHashes: prev.hashes, ...(owner ? { owner } : {}) });
  } catch (error) {
    throw ioError(`comparing the source with release ${previous}`, error);
  }
  result.links = links;
  const realDir = fs.realpathSync(prevDir);
  // Where the names of a linked inode may be (see copy.ts namesAllInReleases): one array for every file.
  const releaseDirs = (await listReleaseDirs(layout)).map((id) => releasePath(layout, id));
  result.linkFrom = new Map(links.link.map((rel) => {
    const stamp = before.get(rel) as PreviousFile;
    return [rel, { from: `${prevDir}${path.sep}${rel}`, sha256: sourceHashes.get(rel) as string, stamp, dev, realDir, cached: !reread.has(rel), releaseDirs }];
  }));
  return result;
}

/**
 * Not root, every file the deploy writes is the deploying user's, with its group, or the group of
 * a setgid staging area (a group-shared root): the owner a copy gets, whatever the build's. Root
 * gives copies the build's owners, so there the build's are compared (undefined).
 */
function copyOwner(stagingArea: string): CopyOwner | undefined {
  if (process.getuid === undefined || process.getuid() === 0) return undefined;
  const st = fs.statSync(stagingArea);
  return { uid: process.geteuid?.() ?? process.getuid(), gid: st.mode & 0o2000 ? st.gid : (process.getegid?.() ?? st.gid) };
}

/** The shared targets to create empty; throws when one is missing (without `create`), mistyped, or its type is a guess. */
export function sharedTargetsToCreate(layout: Layout, links: readonly SharedLink[], create: boolean): { path: string; type: SharedType }[] {
  const creates: { path: string; type: SharedType }[] = [];
  const missing: string[] = [];
  const problems: string[] = [];
  const hints = new Set<string>();
  for (const link of links) {
    const action = sharedTargetAction(link, sharedTargetKind(layout, link.path), create);
    const denied = action.kind === 'create' ? sharedCreateProblem(layout, link.path, action.type) : undefined;
    if (denied) {
      problems.push(denied.problem);
      hints.add(denied.hint);
    } else if (action.kind === 'create') creates.push({ path: link.path, type: action.type });
    else if (action.kind === 'missing') missing.push(link.path);
    else if (action.kind === 'problem') {
      problems.push(action.problem);
      hints.add(action.hint);
    }
  }
  if (problems.length > 0) {
    throw new DeployError('INVALID_SHARED_PATH', problems.join('; '), {
      hint: [...hints].join('; '),
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

/**
 * An artifact's shared paths, decided again once it is extracted: at plan time nothing was known of
 * what it holds. The rules are a directory's: a path the archive holds is refused without
 * --shared-replace (exit 2; the stage is removed with the deploy, and no shared target has been
 * made yet), and with it, what the archive put there leaves the stage and the manifest before the
 * link takes its place. A parent the archive made a file or a symlink is refused, as in a build.
 */
export async function sharedOverExtracted(staging: string, extracted: ExtractResult, options: ContentsOptions): Promise<{ links: SharedLink[]; extracted: ExtractResult }> {
  const specs = sharedSpecs(options);
  if (specs.length === 0) return { links: [], extracted };
  const plan = planShared(specs, extracted.manifest.map((e) => ({ rel: e.path, kind: e.type })), { replace: options.sharedReplace });
  if (plan.problems.length > 0) {
    throw new DeployError('INVALID_SHARED_PATH', plan.problems.join('; '), { hint: plan.hints.join('; '), details: { problems: plan.problems } });
  }
  if (plan.exclude.length === 0) return { links: plan.links, extracted };
  // Each path passed sharedPathProblem (relative, no ".."), and its parents are directories the
  // archive made in the stage (planShared refuses a file or a symlink there): the delete stays inside.
  for (const p of plan.exclude) {
    const at = path.join(staging, p);
    // deleteTree makes read-only directories below ours to empty; the parent may be read-only too.
    await inWritableDir(path.dirname(at), () => deleteTree(at));
  }
  const under = (rel: string): boolean => plan.exclude.some((p) => rel === p || rel.startsWith(`${p}/`));
  const manifest = extracted.manifest.filter((e) => !under(e.path));
  const left = manifest.filter((e) => e.type === 'file');
  return {
    links: plan.links,
    extracted: {
      ...extracted,
      manifest,
      files: left.length,
      dirs: manifest.filter((e) => e.type === 'dir').length,
      symlinks: manifest.filter((e) => e.type === 'symlink').length,
      bytes: left.reduce((sum, e) => sum + (e.type === 'file' ? e.size : 0), 0),
      stamps: new Map([...extracted.stamps].filter(([rel]) => !under(rel))),
    },
  };
}
