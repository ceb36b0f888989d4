/** `verify`: re-hash a release and compare it with the manifest written when it was made. */
import fs from 'node:fs';
import { releasePath, type Layout } from '../act/layout.ts';
import { listReleaseDirs, notAReleaseDir } from '../act/releases.ts';
import { extraHashThreads, HashPool } from '../act/hash-pool.ts';
import { hashTree, manifestFile, readManifest } from '../act/manifest.ts';
import { readRecord, recordDamage } from '../act/state.ts';
import { aliasOfAnotherRelease, readCurrent, type CurrentState } from '../act/switch.ts';
import { DeployError, ioError } from '../errors.ts';
import { diffRelease, type Difference } from '../plan/manifest.ts';
import { releaseIdProblem } from '../plan/release-id.ts';
import { openRoot } from './root.ts';
import { shellWord } from '../plan/paths.ts';
import { checkIdType, checkOptionsArgument } from '../plan/validate.ts';

/** The bytes, or the files, a release must hold before `verify` adds hashing threads to its own. */
export const POOL_MIN_BYTES = 256 * 1024 * 1024;
/** Many small files cost the walk more in open/fstat/read/close than in hashing: threads pay sooner. */
export const POOL_MIN_FILES = 8192;

export interface VerifyOptions {
  /** The release to check (default: the live one). */
  release?: string;
  signal?: AbortSignal;
}

export interface VerifyResult {
  root: string;
  release: string;
  /** The digest its record names, which the manifest matched. */
  digest: string;
  identical: boolean;
  /** Every path that differs from the manifest, sorted by path. */
  differences: Difference[];
  /** What the manifest lists. */
  files: number;
  dirs: number;
  symlinks: number;
}

function interrupted(signal: AbortSignal): DeployError {
  const reason: unknown = signal.reason;
  const sig = typeof reason === 'string' && reason.startsWith('SIG') ? (reason as NodeJS.Signals) : 'SIGTERM';
  return new DeployError('INTERRUPTED', `interrupted by ${sig}; verify changed nothing`, { signal: sig });
}

/**
 * Re-hashes a release (default: the live one) and names every path that was modified, added,
 * removed, changed mode or type, or retargeted since its manifest was written. Reads only.
 * Throws NO_MANIFEST for a release made before manifests and MANIFEST_UNTRUSTED for a manifest
 * that is missing, damaged or not the one its record names.
 */
export async function verify(root: string, options: VerifyOptions = {}): Promise<VerifyResult> {
  checkOptionsArgument(options);
  if (options.release !== undefined) checkIdType(options.release);
  const layout = openRoot(root, { mayCreate: false });
  let id = options.release;
  if (id === undefined) {
    const current = await readCurrent(layout);
    if (current.kind !== 'release') throw noLiveRelease(layout.root, current, undefined, (await listReleaseDirs(layout)).length > 0);
    id = current.id;
  }
  const problem = releaseIdProblem(id);
  if (problem) {
    throw new DeployError('INVALID_RELEASE_ID', `invalid release id ${JSON.stringify(id)}: ${problem}`, { hint: `list the releases with: atomic-deploy releases ${shellWord(layout.root)}` });
  }
  const dir = releasePath(layout, id);
  const st = fs.lstatSync(dir, { throwIfNoEntry: false });
  // A release moved to another disk and linked back is still that release: the tree it leads to is checked.
  const linked = st?.isSymbolicLink() === true && fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory() === true && !aliasOfAnotherRelease(layout, id);
  if (!st?.isDirectory() && !linked) {
    throw new DeployError('UNKNOWN_RELEASE', notAReleaseDir(dir) ?? `release ${id} does not exist in ${layout.releases}`, { hint: `list the releases with: atomic-deploy releases ${shellWord(layout.root)}` });
  }
  const check = await checkAgainstManifest(layout, id, dir, options.signal);
  if (check.kind !== 'checked') throw check.error;
  return check.result;
}

/**
 * verify with no release named and none live: why, and the way on that works for that `current`;
 * on a fleet host, `host` names it (message and hint), as the fleet's verify says it. A root with
 * no release at all is not told to name one.
 */
export function noLiveRelease(root: string, current: Exclude<CurrentState, { kind: 'release' }>, host?: string, releasesExist = true): DeployError {
  const on = host === undefined ? '' : ` --host ${shellWord(host)}`;
  if (!releasesExist && current.kind === 'missing') {
    return new DeployError('UNKNOWN_RELEASE', `${host === undefined ? '' : `${host}: `}${root} has no release to verify yet`, { hint: `deploy first: atomic-deploy deploy <source> ${shellWord(root)}${on}` });
  }
  const name = 'name one with --release <id>';
  const said = (why: string, hint = name): DeployError => new DeployError('UNKNOWN_RELEASE', `${host === undefined ? '' : `${host}: `}${root} has no live release to verify${why}`, { hint });
  switch (current.kind) {
    // Only a root with no current yet is one a deploy fixes: deploy refuses every other current too.
    case 'missing':
      return said('', `${name}, or deploy first`);
    case 'dangling':
      return said(` (current points at ${current.target}, which is gone)`, `${name}; point current at a release again with: atomic-deploy rollback ${shellWord(root)}${on} --to <id>`);
    case 'outside':
      return said(` (current points outside releases/: ${current.target})`);
    case 'directory':
    case 'file':
      return said(` (current is a ${current.kind}, not a link)`);
  }
}

/** The directory at `dir` (through a link): undefined when nothing is there, `unknown` when it cannot be looked at. */
function statOf(dir: string): fs.Stats | undefined | 'unknown' {
  try {
    return fs.statSync(dir, { throwIfNoEntry: false });
  } catch {
    return 'unknown';
  }
}

/**
 * The error for a release no longer at `dir` since the walk began (nothing there now, or another
 * directory), if it is so. What cannot be looked at is left to the walk to report (`unreadable`).
 */
function releaseGone(layout: Layout, id: string, dir: string, began: fs.Stats | undefined | 'unknown'): DeployError | undefined {
  if (began === 'unknown') return undefined;
  const now = statOf(dir);
  if (now === 'unknown') return undefined;
  if (began !== undefined && now !== undefined && now.dev === began.dev && now.ino === began.ino) return undefined;
  return new DeployError('UNKNOWN_RELEASE', `release ${id} was removed from ${layout.releases} while it was being verified`, {
    hint: `a prune (or a deploy's --keep) ran beside it; list the releases with: atomic-deploy releases ${shellWord(layout.root)}`,
    details: { release: id },
  });
}

/** What a release's manifest allows: a check, or why there is none (the manifest is absent, or not to be trusted). */
export type ManifestCheck =
  | { kind: 'checked'; result: VerifyResult }
  | { kind: 'no-manifest'; error: DeployError }
  | { kind: 'untrusted'; error: DeployError };

/**
 * Re-hashes release `id` at `dir` against its manifest, or says why it cannot (the error `verify`
 * throws for it). `verify` and the check a rollback makes of the release it goes to.
 */
export async function checkAgainstManifest(layout: Layout, id: string, dir: string, signal: AbortSignal | undefined): Promise<ManifestCheck> {
  const record = readRecord(layout, id);
  const load = readManifest(layout, id, record?.digest);
  if (load.kind === 'none' && fs.existsSync(manifestFile(layout, id))) {
    // The digest that proves a manifest is in the release's log record: without one, a manifest file proves nothing.
    const damage = record === undefined ? recordDamage(layout, id) : undefined;
    const missing = record === undefined ? (damage === undefined ? 'no release log record' : `a damaged release log record (${damage})`) : 'no digest in its release log record';
    return {
      kind: 'no-manifest',
      error: new DeployError('NO_MANIFEST', `release ${id} has a manifest file but ${missing} to prove it, so nothing can be checked against it`, {
        hint: 'the release log (.atomic-deploy/releases/) was changed or lost; deploy the build again to get a release with a trusted manifest',
        details: { release: id },
      }),
    };
  }
  if (load.kind === 'none') {
    return {
      kind: 'no-manifest',
      error: new DeployError('NO_MANIFEST', `release ${id} has no manifest: it was made before atomic-deploy kept manifests, or by another tool`, {
        hint: 'deploy the build again (atomic-deploy deploy <source> <root>): every new release gets a manifest',
        details: { release: id },
      }),
    };
  }
  if (load.kind === 'untrusted') {
    return {
      kind: 'untrusted',
      error: new DeployError('MANIFEST_UNTRUSTED', `the manifest of release ${id} cannot be trusted: ${load.problem}`, {
        hint: 'nothing can be checked against it; deploy the build again to get a release with a trusted manifest',
        details: { release: id, problem: load.problem },
      }),
    };
  }
  let bytes = 0;
  let files = 0;
  for (const e of load.manifest.entries) {
    if (e.type !== 'file') continue;
    bytes += e.size;
    files += 1;
  }
  // Threads only where they pay: each costs tens of ms to start, and below a few hundred MiB or
  // several thousand files this thread hashes faster than that (docs/benchmarks.md, verify). They
  // boot while it walks.
  const extra = bytes >= POOL_MIN_BYTES || files >= POOL_MIN_FILES ? extraHashThreads() : 0;
  const pool = extra > 0 ? new HashPool(extra) : undefined;
  // The release as it was when the walk began: one moved out or deleted meanwhile (a prune, a
  // deploy's --keep beside this verify) would read as every path removed, or fail on the first.
  const began = statOf(dir);
  let tree;
  try {
    tree = await hashTree(dir, signal, { pool, report: true });
  } catch (error) {
    if (signal?.aborted) throw interrupted(signal);
    throw releaseGone(layout, id, dir, began) ?? ioError(`hashing release ${id}`, error);
  } finally {
    await pool?.close();
  }
  if (signal?.aborted) throw interrupted(signal);
  const goneMeanwhile = releaseGone(layout, id, dir, began);
  if (goneMeanwhile) throw goneMeanwhile;
  const differences = diffRelease(load.manifest, tree);
  const counts = { file: 0, dir: 0, symlink: 0 };
  for (const e of load.manifest.entries) counts[e.type] += 1;
  return {
    kind: 'checked',
    result: {
      root: layout.root,
      release: id,
      digest: load.digest,
      identical: differences.length === 0,
      differences,
      files: counts.file,
      dirs: counts.dir,
      symlinks: counts.symlink,
    },
  };
}
