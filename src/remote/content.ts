/**
 * Placing a release's content on a host by manifest: the build is hashed once on this machine;
 * each host's current release manifest (trusted only when its digest matches the record) says
 * which files it already holds; those are hardlinked and checked against the build's hashes on
 * the host, the rest are sent with rsync into the stage. The new manifest travels with the stage.
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeScratchDir } from '../act/scratch.ts';
import type { SourceScan } from '../act/copy.ts';
import { hashFileSync } from '../act/manifest.ts';
import { DeployError, errnoOf, ioError } from '../errors.ts';
import { failedChecks, linkListDigest, planSend, topLevelExcludes, untouchedNames, withResent, type SendPlan } from '../plan/fleet-send.ts';
import { manifestDigest, releaseDirMode, parseManifest, serializeManifest, type Manifest, type ManifestEntry, type ReleaseRoot } from '../plan/manifest.ts';
import { linkScript, putManifestScript, readManifestScript } from './content-script.ts';
import { frameValue, type Frame } from './facts.ts';
import { runRsync, sendManifestDelta } from './rsync.ts';
import { remoteError, type ExecResult, type SshHost } from './ssh.ts';

export interface BuiltManifest {
  manifest: Manifest;
  /** The manifest file's exact bytes, and their digest (what each host's record keeps). */
  text: string;
  digest: string;
}

/** A build file's SHA-256; a file gone or unreadable since the scan is the build changing under the deploy, said as such. */
function hashBuildFile(full: string, rel: string): string {
  try {
    return hashFileSync(full).sha256;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') throw new DeployError('IO', `the build changed while it was being hashed: ${rel} is gone`, { hint: 'deploy a build that nothing writes to while it deploys', cause: error });
    throw ioError(`hashing ${rel} of the build`, error);
  }
}

/**
 * The release's manifest as it will be on every host: the scanned build, minus what shared
 * links replace, plus those links (made on the host) and the directories made for them.
 * Aborting `signal` stops the hashing (INTERRUPTED).
 */
export async function buildManifest(scan: SourceScan, shared: readonly { path: string; linkText: string; mkdirs: readonly string[] }[] = [], signal?: AbortSignal): Promise<BuiltManifest> {
  const replaced = (rel: string): boolean => shared.some((l) => rel === l.path || rel.startsWith(`${l.path}/`));
  const entries: ManifestEntry[] = [];
  let root: ReleaseRoot | undefined;
  // Hashed while the hosts connect and lock: every few milliseconds the loop lets the event loop
  // run, so that ssh's handshakes (in their own processes) and the lock programs' answers go on.
  let ran = Number.NEGATIVE_INFINITY;
  for (const e of scan.entries) {
    if (performance.now() - ran > 4) {
      await new Promise((resolve) => setImmediate(resolve));
      if (signal?.aborted) throw new DeployError('INTERRUPTED', 'interrupted while hashing the build');
      ran = performance.now();
    }
    if (e.rel === '') {
      // rsync gives the stage the build directory's mode (the send list's `.`); placing opens it to everyone.
      root = { mode: releaseDirMode(e.mode) };
      continue;
    }
    const rel = e.rel.split(path.sep).join('/');
    if (replaced(rel)) continue;
    const full = path.join(scan.dir, e.rel);
    if (e.kind === 'dir') entries.push({ path: rel, type: 'dir', mode: e.mode });
    else if (e.kind === 'symlink') entries.push({ path: rel, type: 'symlink', target: e.target ?? fs.readlinkSync(full) });
    else entries.push({ path: rel, type: 'file', mode: e.mode, size: e.size, sha256: hashBuildFile(full, rel) });
  }
  for (const l of shared) {
    for (const d of l.mkdirs) entries.push({ path: d, type: 'dir', mode: 0o755 });
    entries.push({ path: l.path, type: 'symlink', target: l.linkText });
  }
  const text = serializeManifest(entries, root);
  const parsed = parseManifest(text);
  if (!parsed.ok) throw new DeployError('INVALID_SOURCE', `the build cannot be described by a manifest: ${parsed.problem}`);
  return { manifest: parsed.manifest, text, digest: manifestDigest(text) };
}

export interface PlaceRequest {
  sourceDir: string;
  root: string;
  stage: string;
  id: string;
  build: BuiltManifest;
  /** The host's current release and the manifest digest its record holds; undefined digest: made before manifests. */
  previous: { id: string; digest: string | undefined } | null;
  /** False (`--strategy copy`): send every file. */
  incremental: boolean;
  /** Copy the unchanged files from the host's current release instead of hardlinking them (before-switch hooks will run in the release). */
  copyUnchanged?: boolean;
  /** Paths under shared links: never sent (the host links them). */
  exclude: readonly string[];
  /** Manifests this deploy has read and trusted, by digest, shared by its hosts (see KnownManifests). */
  known?: KnownManifests;
  /** Send plans this deploy has made, shared by its hosts (see SendPlans). */
  plans?: SendPlans;
  /** The build's manifest in a local file (`text`'s bytes): sent by delta where the host holds a trusted previous one. */
  manifestFile?: string;
}

/**
 * The previous releases' manifests a fleet deploy has read, by digest. Hosts on the same release
 * hold byte-identical manifests, so after the first one a host only proves that its file has the
 * digest its record names (its SHA-256, computed there) and the copy already parsed is used: one
 * manifest crosses the network and is parsed per release, not per host.
 */
export type KnownManifests = Map<string, Promise<Manifest | null>>;

/** A send plan and the digest of the list of files it links (what the host's own list must hash to). */
interface PlannedSend {
  plan: SendPlan;
  linkDigest: string;
}

/**
 * The send plans a fleet deploy has made, by the previous manifest they were made against (the
 * one object KnownManifests hands every host on that release) and the paths left out. Hosts on
 * the same release get the same plan and list digest, made once: the deploying side's work per
 * host stays flat as the fleet grows, instead of a pass over every file for each host.
 */
export type SendPlans = WeakMap<Manifest, Map<string, PlannedSend>>;

function plannedSend(build: Manifest, have: Manifest | null, exclude: readonly string[], plans: SendPlans | undefined): PlannedSend {
  const make = (): PlannedSend => {
    const excluded = (p: string): boolean => exclude.some((x) => p === x || p.startsWith(`${x}/`));
    const built: Manifest = exclude.length === 0 ? build : { entries: build.entries.filter((e) => !excluded(e.path)) };
    const plan = planSend(built, have);
    return { plan, linkDigest: linkListDigest(plan.link) };
  };
  if (have === null || plans === undefined) return make();
  const key = exclude.join('\0');
  let byExclude = plans.get(have);
  if (byExclude === undefined) plans.set(have, (byExclude = new Map<string, PlannedSend>()));
  let planned = byExclude.get(key);
  if (planned === undefined) byExclude.set(key, (planned = make()));
  return planned;
}

export interface Placed {
  /** Files rsync sent. */
  transferred?: number;
  /** Files linked from the previous release and confirmed by their hash on the host. */
  linked: number;
  /** Files copied on the host from the previous release instead (copyUnchanged), confirmed the same way. */
  copiedOnHost: number;
  /** Bytes this side sent to store the new manifest on the host: the whole file, or rsync's total for a delta. */
  manifestSent?: number;
  durationMs: number;
  warnings: string[];
  notes: string[];
}

async function execWithInput(ssh: SshHost, script: string, input: string | Buffer, what: string): Promise<ExecResult> {
  const run = ssh.start(script);
  run.child.stdin?.end(input);
  const result = await run.done;
  if (result.code !== 0) throw remoteError(ssh.label, result, what);
  return result;
}

type PreviousManifest = { manifest: Manifest | null; warning?: string; note?: string };

/** Reads and checks the previous release's manifest on the host; `hashOnly` first asks for its SHA-256 only, and `same` is the manifest that digest stands for. */
async function readPrevious(ssh: SshHost, root: string, previous: { id: string; digest: string }, seed: string | undefined, same?: Manifest): Promise<PreviousManifest> {
  const result = await ssh.exec(readManifestScript(root, previous.id, { hashOnly: same !== undefined, ...(seed === undefined ? {} : { seed }) }));
  if (result.code !== 0) throw remoteError(ssh.label, result, 'reading the current release manifest');
  const sha = frameValue(result.frames, 'manifest-sha256');
  // The same bytes as a manifest already parsed and trusted: that one, not a second copy.
  if (same !== undefined && sha !== undefined && `sha256:${sha}` === previous.digest) return { manifest: same, note: `the manifest of release ${previous.id} has the digest of the copy already read from another host: checked by its SHA-256 there, not sent again` };
  // Another digest: the whole file, so that the warning says what is wrong with it.
  if (sha !== undefined) return readPrevious(ssh, root, previous, seed);
  const text = frameValue(result.frames, 'manifest');
  if (text === undefined) return { manifest: null, warning: `the manifest of release ${previous.id} is missing and not trusted: every file is sent` };
  const read = parseManifest(text, previous.digest);
  if (!read.ok) return { manifest: null, warning: `the manifest of release ${previous.id} is not trusted (${read.problem}): every file is sent` };
  return { manifest: read.manifest };
}

/** The previous release's manifest, or null with the reason it is not used. */
async function previousManifest(ssh: SshHost, root: string, previous: { id: string; digest: string | undefined }, known: KnownManifests | undefined, seed: string | undefined): Promise<PreviousManifest> {
  const digest = previous.digest;
  if (digest === undefined) return { manifest: null, note: `release ${previous.id} has no manifest (made before manifests): every file is sent` };
  const prior = known?.get(digest);
  // The first host on this release reads it whole; the others wait for it, then send only a hash.
  const same = prior === undefined ? undefined : await prior;
  if (same) return readPrevious(ssh, root, { id: previous.id, digest }, seed, same);
  const reading = readPrevious(ssh, root, { id: previous.id, digest }, seed);
  if (known !== undefined && (prior === undefined || same === null)) known.set(digest, reading.then((r) => r.manifest, () => null));
  return reading;
}

/** What a host's link step said: which linked files to send after all, or why none of them can be trusted. */
export type LinkVerdict = { kind: 'checked'; failed: string[] } | { kind: 'unchecked'; why: string } | { kind: 'stored-other'; sha256: string };

/**
 * Reads the link step's frames (remote/content-script.ts linkScript): the stored manifest must be
 * the build's (`digest`), the host's list of linked files must be the planned one (`linkDigest`,
 * plan/fleet-send.ts linkListDigest), and the check must account for every linked file; short of
 * that, every linked file is sent.
 */
export function linkVerdict(frames: readonly Frame[], digest: string, linkDigest: string, linked: readonly string[]): LinkVerdict {
  if (frameValue(frames, 'no-sum') === 'yes') return { kind: 'unchecked', why: 'no sha256sum or shasum on the host: linked files cannot be checked, so every file is sent' };
  if (frameValue(frames, 'no-stat') === 'yes') return { kind: 'unchecked', why: 'no stat on the host that prints modes: linked files cannot be checked, so every file is sent' };
  if (frameValue(frames, 'no-awk') === 'yes') return { kind: 'unchecked', why: 'no awk on the host: the files to link cannot be listed there, so every file is sent' };
  if (frameValue(frames, 'no-find-links') === 'yes') return { kind: 'unchecked', why: 'no find on the host that tests link counts (-links): the names of linked files cannot be checked, so every file is sent' };
  const stored = frameValue(frames, 'stored-sha256');
  if (stored !== undefined && `sha256:${stored}` !== digest) return { kind: 'stored-other', sha256: stored };
  const list = frameValue(frames, 'link-list');
  if (stored !== undefined && list !== undefined && list !== linkDigest) return { kind: 'unchecked', why: 'the files the host would link from its current release are not the ones planned here (its manifest changed during the deploy?): every file is sent' };
  const checked = frameValue(frames, 'checked');
  const lines = frameValue(frames, 'failed');
  const found = stored === undefined || list === undefined || checked === undefined || lines === undefined || !/^\d+$/.test(checked) ? undefined : failedChecks(lines, Number(checked), linked);
  if (found === undefined) return { kind: 'unchecked', why: "the host's check of the linked files could not be read: every file is sent" };
  return { kind: 'checked', failed: found };
}

/** Fills `.tmp/<stage>/<id>` on the host with exactly the build's bytes, and `.tmp/<stage>/manifest.json` with its manifest. */
export async function placeContent(ssh: SshHost, request: PlaceRequest, signal?: AbortSignal): Promise<Placed> {
  const started = performance.now();
  const warnings: string[] = [];
  const notes: string[] = [];
  let have: Manifest | null = null;
  if (request.incremental && request.previous !== null) {
    // The previous manifest is also copied into the stage, as the basis of the new one's delta.
    const prev = await previousManifest(ssh, request.root, request.previous, request.known, request.manifestFile === undefined ? undefined : request.stage);
    have = prev.manifest;
    if (prev.warning) warnings.push(prev.warning);
    if (prev.note) notes.push(prev.note);
  }
  const { plan, linkDigest } = plannedSend(request.build.manifest, have, request.exclude, request.plans);
  // The manifest goes first: the host decides what to link from it, and the stage is complete as
  // soon as rsync ends. Against a trusted previous manifest (which the host copied into the stage
  // as it read it) rsync sends only the blocks that differ; the link step then proves the stored
  // file is the build's by its SHA-256. Otherwise it goes whole.
  let manifestSent: number | undefined;
  if (request.manifestFile !== undefined && plan.link.length > 0 && request.previous !== null) {
    manifestSent = await sendManifestDelta(ssh, request.manifestFile, request.root, request.stage, signal);
  } else {
    await execWithInput(ssh, putManifestScript(request.root, request.stage), request.build.text, 'storing the release manifest');
    manifestSent = Buffer.byteLength(request.build.text);
  }
  let failed: string[] = [];
  if (plan.link.length > 0 && request.previous !== null) {
    const result = await ssh.exec(linkScript(request.root, request.previous.id, request.stage, request.id, request.copyUnchanged === true));
    if (result.code !== 0) throw remoteError(ssh.label, result, 'linking unchanged files');
    const verdict = linkVerdict(result.frames, request.build.digest, linkDigest, plan.link);
    if (verdict.kind === 'stored-other') throw new DeployError('REMOTE', `${ssh.label}: the manifest stored on the host is not the one sent (its SHA-256 is ${verdict.sha256})`, { details: { host: ssh.label } });
    if (verdict.kind === 'unchecked') {
      warnings.push(verdict.why);
      failed = plan.link;
    } else {
      failed = verdict.failed;
      if (failed.length > 0) warnings.push(`${failed.length} file${failed.length === 1 ? '' : 's'} of release ${request.previous.id} no longer match${failed.length === 1 ? 'es' : ''} its manifest or owner, or ha${failed.length === 1 ? 's' : 've'} a name outside the releases (edited, chmod-ed or chown-ed in place, or hardlinked elsewhere?): sent again`);
    }
  }
  const listDir = makeScratchDir('send');
  try {
    const filesFrom = path.join(listDir, 'files');
    fs.writeFileSync(filesFrom, `${withResent(plan, failed).join('\0')}\0`);
    const excludes = topLevelExcludes(untouchedNames(plan, failed, request.exclude));
    const excludeFrom = excludes.length === 0 ? undefined : path.join(listDir, 'exclude');
    if (excludeFrom !== undefined) fs.writeFileSync(excludeFrom, `${excludes.join('\0')}\0`);
    // rsync replaces a listed file by writing a temp file and renaming it, so a failed link's
    // inode (shared with the previous release) is never written into.
    const copied = await runRsync(ssh, { source: request.sourceDir, root: request.root, stage: request.stage, id: request.id, filesFrom, ...(excludeFrom === undefined ? {} : { excludeFrom }) }, signal);
    // Taken from the current release and checked there: linked, or copied when hooks will run.
    const reused = plan.link.length - failed.length;
    const copies = request.copyUnchanged === true;
    return { ...(copied.transferred === undefined ? {} : { transferred: copied.transferred }), linked: copies ? 0 : reused, copiedOnHost: copies ? reused : 0, ...(manifestSent === undefined ? {} : { manifestSent }), durationMs: Math.round(performance.now() - started), warnings, notes };
  } finally {
    fs.rmSync(listDir, { recursive: true, force: true });
  }
}
