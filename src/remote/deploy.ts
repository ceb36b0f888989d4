/**
 * A release to many hosts, switched all-or-nothing. Phase 1 prepares every host (lock, rsync
 * with --link-dest, shared links, before-switch hooks, durability) and leaves it armed; phase 2
 * starts only when all are armed and switches them at once, one rename each.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeScratchDir } from '../act/scratch.ts';
import { parseFailpoints } from '../act/failpoints.ts';
import { gitInfo } from '../act/git.ts';
import { nextSeq } from '../act/state.ts';
import { regularFiles, scanSourceAsync, topNames, type SourceScan } from '../act/copy.ts';
import { missingSourceWords } from '../plan/archive.ts';
import { DeployError, errnoOf, emptyPathError, pathTypeError, type ErrorCode } from '../errors.ts';
import type { DeployOptions } from '../ops/deploy.ts';
import type { ServingOptions } from '../ops/serving.ts';
import type { FleetStaleReport } from '../plan/remote-stale.ts';
import type { StaleReport } from '../plan/serving.ts';
import { decideAfterSwitch, fleetReleaseId, switchSkewMs, type FleetJournal } from '../plan/fleet.ts';
import { hostClockSkew } from './fleet.ts';
import { budgetWarning, failureBudget, overBudget, splitWaves, type Size } from '../plan/waves.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkHookAndHealth, checkKeep, checkNewReleaseId, withLists, DEFAULT_HEALTH_TIMEOUT_MS, DEFAULT_HOOK_TIMEOUT_MS, buildTopWarnings, closedBuildWarning, closedDirectoryFix, emptyBuildError, signalOf } from '../plan/validate.ts';
import { lastLive, selectPrune } from '../plan/releases.ts';
import { planShared, SHARED_MISSING_HINT, sharedCreateDenied, sharedSpecs, sharedTargetAction, type SharedPlan } from '../plan/shared.ts';
import { armedNarration, awaitArmed, awaitVerdict, beforeSwitchHookError, commitSwitch, disarm, hostOutcome, releasedByProgram, stopChecks, switchBack, switchTogether, type Session, type StoppedStep } from './armed.ts';
import { frameValue, hostSharedTargetsOf, type HostSharedTarget, type RemoteRecord, type RemoteState } from './facts.ts';
import type { ProcessUse } from '../plan/in-use.ts';
import { staleWaitMs } from '../plan/serving.ts';
import { DEFAULT_RELOAD_TIMEOUT_MS, hasReloads } from '../ops/serving.ts';
import { afterSwitchSteps } from '../ops/verify.ts';
import { currentIdOf, currentProblem, deployRootProblem, FleetRun, fleetError, hostError, inUseOf, lockAndJournalNotes, mergeRecord, recordLine, targetsOf, viewsOf, type FleetOptions, type HostError, type HostRun } from './fleet.ts';
import { inTmp } from '../root/effects.ts';
import { undoProgram } from '../root/undo.ts';
import { randomName } from './host.ts';
import { recoveryNote } from '../ops/recover.ts';
import { stagedRootPath, stagingName } from './staging.ts';
import { settleHookManifest } from './hook-manifest.ts';
import { buildManifest, placeContent, type BuiltManifest, type KnownManifests, type SendPlans } from './content.ts';
import { creatableScript, deployArmScript, sharedKindsScript, type Step } from './script.ts';
import { connectionLost, remoteError, type RunningRemote } from './ssh.ts';
import { armedReloads, awaitHostFreshness, checkFleetServingOptions, checkHostReloadTargets, fleetStaleFailure, fleetStaleOf, reloadHost, reloadsSaid, staleCheckNotMade } from './stale.ts';
import { shellWord } from '../plan/paths.ts';
import { plural } from '../plan/units.ts';
import { madeDirsToRemove } from '../plan/root-shape.ts';

export interface FleetDeployOptions
  extends FleetOptions,
    ServingOptions,
    Pick<DeployOptions, 'releaseId' | 'keep' | 'shared' | 'sharedFiles' | 'sharedDirs' | 'sharedCreate' | 'sharedReplace' | 'strategy' | 'checksum' | 'hooks' | 'healthCheck' | 'adopt'> {
  /** Beyond the failure budget: switch every switched host back (default), or keep them. */
  onFailure?: 'rollback' | 'keep';
  /** Wave sizes (`1,10%,100%`); default one wave of every host. */
  waves?: Size[];
  /** Pause between waves. */
  wavePauseMs?: number;
  /** Failed hosts tolerated across the whole rollout; default 0 (all-or-nothing). */
  maxFail?: Size;
}

export type HostOutcome = 'switched' | 'switched-back' | 'unchanged' | 'unknown';

export interface FleetDeployHost {
  host: string;
  root: string;
  /** switched: live on the new release; switched-back: it was, and is on its previous one again. */
  outcome: HostOutcome;
  /** The release current points to now, as far as known (see `outcome: unknown`). */
  current: string | null;
  previous: string | null;
  /** False when the host was never reached: its current release is not known (nothing was changed there). */
  reached: boolean;
  /** Our lock or prepared release may remain on the host; the next command there recovers them. */
  leftovers: boolean;
  /** Files rsync sent. */
  transferred?: number;
  /** Files hardlinked from the host's current release after their hash there matched the build's. */
  linked?: number;
  /** Files copied on the host from its current release instead (before-switch hooks ran in the release), checked the same way. */
  copiedOnHost?: number;
  /** The digest of the host's manifest when its before-switch hooks changed the release (made again there); else the build's. */
  manifest?: string;
  copyMs?: number;
  /** Bytes sent to store the new manifest there: the whole file, or rsync's total where it went as a delta against the host's current one. */
  manifestSentBytes?: number;
  /** When the host confirmed its switch, in ms after the switch was sent. */
  switchedAfterMs?: number;
  health?: 'ok' | 'failed';
  /** An after-switch hook or reload failed here with no health check to switch back on: the release stands (exit 7). */
  afterSwitchFailure?: string;
  /** With `--keep`: the releases pruned here once the switch was committed (empty: nothing to prune, or a signal came first). */
  pruned?: string[];
  warnings: string[];
  recovered: string[];
  error?: HostError;
}

export interface FleetDeployResult {
  release: string;
  hosts: FleetDeployHost[];
  /** First to last switch confirmation as this machine received them, in ms. */
  skewMs: number;
  /** First to last switch by the hosts' own clocks (ns resolution where `date +%N` works): the true skew when clocks agree. */
  hostSkewMs?: number;
  files: number;
  bytes: number;
  durationMs: number;
  /** Wall time of each stage: connect and lock, copy and prepare, switch, commit (the first wave's prepare and switch with --waves). */
  timings: { lockMs: number; prepareMs: number; switchMs: number; finishMs: number };
  /** The waves in order, with their hosts, times and results. */
  waves: FleetWave[];
  /** Hosts that failed within the failure budget (`--max-fail`): the rollout went on without them. */
  tolerated: string[];
  /** Processes still on the release each host left, named with their host (docs/serving.md). */
  stale?: FleetStaleReport;
  /** The hosts' after-switch failures in one line, as the local deploy's field: the CLI exits 7. */
  afterSwitchFailure?: string;
  /** A signal came once the last wave had switched: the hosts' checks ran to their end and decided (exit 128+n). */
  interruptedAfterSwitch?: true;
}

export interface FleetWave {
  wave: number;
  hosts: string[];
  /** skipped: the rollout stopped before this wave. */
  result: 'ok' | 'failed' | 'skipped';
  startedAt?: string;
  durationMs?: number;
  skewMs?: number;
  failed?: string[];
}

/** The names a host's deploy uses from the start: the stage rsync fills, the link the switch renames. */
interface Names {
  previous: string | null;
  stage: string;
  link: string;
}

/** How a host's release was made, for its record. */
function strategyOf(d: Pick<Placed, 'linked' | 'copiedOnHost'>): string {
  return d.linked > 0 ? 'rsync + manifest links' : d.copiedOnHost > 0 ? 'rsync + manifest copies' : 'rsync';
}

/** The release placed on the host, with the copy's figures. */
interface Placed extends Names {
  transferred?: number;
  linked: number;
  copiedOnHost: number;
  /** The host's manifest digest, once its before-switch hooks changed the release. */
  remade?: string;
  manifestSent?: number;
  copyMs: number;
  warnings: readonly string[];
  /** The releases its commit prunes (decided under the lock from its state, as locally). */
  prunes?: readonly string[];
}

/** Its program holds the lock and waits for the fleet's words (remote/armed.ts). */
interface Armed extends Placed {
  session: RunningRemote;
}

interface Switched extends Armed {
  afterMs: number;
  /** When the deploying side heard its switch: the record's activatedAt, kept if it goes back. */
  switchedAt: string;
}

interface Verified extends Switched {
  health?: 'ok' | 'failed';
  afterSwitchFailure?: string;
  /** Why its health check failed (or the hook or reload that failed it), in a local deploy's words. */
  failure?: string;
  /** A signal's `stop` ended its after-switch steps and nothing there had failed: unverified, not exit 7. */
  stoppedOnly?: true;
  /** With `--keep`, once committed: the releases it pruned. */
  pruned?: readonly string[];
}

/**
 * Where one host stands in a fleet deploy; each phase carries what the next one needs. A host
 * not in the map is idle: locked at most, nothing prepared (it failed first, or its wave never ran).
 */
type HostPhase =
  | ({ phase: 'preparing' } & Names)
  | ({ phase: 'placed' } & Placed)
  | ({ phase: 'armed' } & Armed)
  | ({ phase: 'switch-failed' } & Armed)
  /** `go` was sent and the answer lost: it is on either release. */
  | ({ phase: 'switch-lost' } & Armed)
  | ({ phase: 'switched' } & Switched)
  /** Switched, then the connection was lost before its hooks and health check reported. */
  | ({ phase: 'unreachable' } & Switched)
  | ({ phase: 'verified' } & Verified)
  | ({ phase: 'switched-back' } & Verified)
  /** `back` was sent and the answer lost. */
  | ({ phase: 'back-lost' } & Verified)
  /** Its `commit` or `back` came after another command took the host's lock over: it changed nothing, and the host is that command's. */
  | ({ phase: 'taken-over' } & Verified)
  /** Phase 1 undone: disarmed, prepared release removed, lock released. */
  | ({ phase: 'undone' } & Names & Partial<Placed>);

/** Switched at some point (it may have gone back since). */
function hasSwitched(p: HostPhase | undefined): p is Extract<HostPhase, Switched> {
  return p?.phase === 'switched' || p?.phase === 'unreachable' || p?.phase === 'verified' || p?.phase === 'switched-back' || p?.phase === 'back-lost' || p?.phase === 'taken-over';
}

/** The host's state is not known: the connection went while a word was on its way. */
function isLost(p: HostPhase | undefined): boolean {
  return p?.phase === 'switch-lost' || p?.phase === 'unreachable';
}

function healthOf(p: HostPhase | undefined): 'ok' | 'failed' | undefined {
  switch (p?.phase) {
    case 'verified':
    case 'switched-back':
    case 'back-lost':
    case 'taken-over':
      return p.health;
    default:
      return undefined;
  }
}

/** The host program of an armed (or once armed) host, while it may still be waiting for a word. */
function sessionOf(p: HostPhase | undefined): RunningRemote | undefined {
  if (p === undefined) return undefined;
  switch (p.phase) {
    case 'preparing':
    case 'placed':
    case 'undone':
      return undefined;
    default:
      return p.session;
  }
}

/** What a host's `stopped` step was, as a local deploy's interrupted verification names it. */
const STOPPED_STEP: Record<StoppedStep, string> = { hooks: 'the after-switch hooks', reloads: 'the reloads', health: 'the health check' };

function outcomeOf(p: HostPhase | undefined): HostOutcome {
  switch (p?.phase) {
    case 'switched':
    case 'unreachable':
    case 'verified':
      return 'switched';
    case 'switched-back':
      return 'switched-back';
    case 'switch-lost':
    case 'back-lost':
    case 'taken-over':
      return 'unknown';
    default:
      return 'unchanged';
  }
}

async function validateSource(source: string, signal: AbortSignal | undefined): Promise<{ sourceReal: string; scan: SourceScan }> {
  if (typeof source !== 'string') throw pathTypeError('source', source, 'the build output directory');
  if (source.length === 0) throw emptyPathError('source', 'the build output directory');
  let sourceReal: string;
  try {
    // realpath(3) itself: a `..` after a symbolic link is the link target's parent (act/layout.ts kernelPath).
    sourceReal = fs.realpathSync.native(source);
    if (!fs.statSync(sourceReal).isDirectory()) throw new DeployError('INVALID_SOURCE', `${source} is not a directory`, { hint: 'give the build output directory' });
  } catch (error) {
    if (error instanceof DeployError) throw error;
    const code = errnoOf(error);
    const missing = code === 'ENOENT' ? missingSourceWords(source) : undefined;
    throw new DeployError('INVALID_SOURCE', missing?.message ?? `cannot read ${source}: ${code ?? String(error)}`, { cause: error, hint: missing?.hint });
  }
  const scan = await scanSourceAsync(sourceReal, signal);
  // Directories alone are an empty site too, as locally.
  const empty = emptyBuildError(source, scan);
  if (empty) throw empty;
  return { sourceReal, scan };
}

function checkOptions(options: FleetDeployOptions, scan: SourceScan): SharedPlan {
  if (options.releaseId !== undefined) checkNewReleaseId(options.releaseId);
  if (options.strategy === 'reflink') throw new DeployError('USAGE', '--strategy reflink is not available for fleet deploys', { hint: 'fleet deploys link unchanged files on each host by manifest (auto, hardlink) or send every file (copy)' });
  if (options.healthCheck?.url !== undefined) {
    throw new DeployError('USAGE', '--health-url is not available for fleet deploys: one URL cannot tell which host answered', {
      hint: "check each host from the host itself: --health-check 'curl -fsS http://localhost/health'",
    });
  }
  if (options.keep !== undefined) checkKeep(options.keep);
  // The same rules as the local engine: a hook timeout of 0 would reach a host as `timeout 0`, no limit at all.
  checkHookAndHealth(options);
  checkFleetServingOptions(options);
  const plan = planShared(sharedSpecs(options), scan.entries, { replace: options.sharedReplace === true });
  if (plan.problems.length > 0) throw new DeployError('INVALID_SHARED_PATH', plan.problems.join('; '), { hint: plan.hints.join('; '), details: { problems: plan.problems } });
  return plan;
}

/** The refusals of the checks before the locks: exit 2, and nothing was changed on any host. */
const REFUSED_BEFORE_LOCKS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['INVALID_ROOT', 'INVALID_SHARED_PATH', 'SHARED_MISSING']);

/**
 * What a fleet deploy checks on every host before it locks any: the reload targets (units,
 * php-fpm pid files), as the local engine checks its own, then the root, read before the lock
 * program makes it and .tmp/ in it: a folder that holds something but is not a deploy root is
 * refused as the local deploy refuses it, unless --adopt; and in the same read, the shared targets
 * by the local rules, a target --shared-create would make where this user may not write included
 * (judged again under the lock, as locally). A refusal is exit 2 with nothing changed on any host;
 * a host that cannot be read stops the deploy here too.
 */
async function checkHostsBeforeLocks(fleet: FleetRun, options: FleetDeployOptions, shared: SharedPlan, report: () => unknown[]): Promise<void> {
  // (No round trip without reloads: checkHostReloadTargets returns at once.)
  await fleet.each(fleet.hosts, (h) => checkHostReloadTargets(h, options));
  if (fleet.failed.length > 0) throw fleetError(fleet.hosts, 'nothing was changed', { release: null, hosts: report() });
  const create = options.sharedCreate === true;
  const sharedRead = shared.links.length > 0 ? { paths: shared.links.map((l) => l.path), create } : undefined;
  await fleet.each(fleet.hosts, async (h) => {
    const read = await h.remote.readShape(sharedRead);
    const problem = deployRootProblem(h.label, h.root, read.shape, options.adopt === true);
    if (problem) throw problem;
    judgeHostShared(h, shared, create, read.shared);
  });
  if (fleet.failed.length > 0) {
    const refused = fleet.failed.every((h) => h.error !== undefined && REFUSED_BEFORE_LOCKS.has(h.error.code));
    throw fleetError(fleet.hosts, refused ? 'nothing was changed' : 'nothing was switched', { release: null, hosts: report() });
  }
}

/**
 * Every shared target on a host, judged by the local rules (sharedTargetAction; for a target
 * --shared-create would make, whether this user may: sharedCreateDenied, as ops/contents.ts
 * sharedTargetsToCreate) from what the host read (remote/script.ts sharedFactsLines). Throws the
 * refusal, in the local words with the host's name; returns each link with whether its target
 * would be made.
 */
function judgeHostShared(h: HostRun, shared: SharedPlan, create: boolean, targets: readonly HostSharedTarget[]): { path: string; target: string; create: boolean }[] {
  if (shared.links.length === 0) return [];
  const links: { path: string; target: string; create: boolean }[] = [];
  const missing: string[] = [];
  const problems: string[] = [];
  const hints = new Set<string>();
  for (const [i, link] of shared.links.entries()) {
    const target = targets[i];
    if (target === undefined) throw new DeployError('REMOTE', `${h.label}: the shared path check printed nothing usable`);
    const a = sharedTargetAction(link, target.kind, create);
    const full = path.posix.join(h.root, 'shared', link.path);
    const denied = a.kind === 'create' && target.denied ? sharedCreateDenied(link.path, a.type, { full, ...target.denied }) : undefined;
    const problem = denied ?? (a.kind === 'problem' ? a : undefined);
    if (problem) {
      problems.push(problem.problem);
      hints.add(problem.hint);
    } else if (a.kind === 'missing') missing.push(full);
    links.push({ path: link.path, target: link.linkText, create: a.kind === 'create' });
  }
  if (problems.length > 0) throw new DeployError('INVALID_SHARED_PATH', `${h.label}: ${problems.join('; ')}`, { hint: [...hints].join('; '), details: { problems } });
  if (missing.length > 0) {
    throw new DeployError('SHARED_MISSING', `${h.label}: shared ${missing.length === 1 ? 'target' : 'targets'} missing: ${missing.join(', ')}`, { hint: SHARED_MISSING_HINT });
  }
  return links;
}

/**
 * The shared targets read on a host under its lock and judged (judgeHostShared): every host's
 * before any host makes one (the arm program makes missing ones with --shared-create), so a host
 * that refuses leaves no target made on the others behind an exit 2 that says nothing changed. A
 * root not there yet (a dry run's) holds none of them; the read before the locks asked its parents.
 */
async function checkHostShared(h: HostRun, shared: SharedPlan, create: boolean, rootExists: boolean): Promise<{ path: string; target: string; create: boolean }[]> {
  if (shared.links.length === 0) return [];
  const paths = shared.links.map((l) => l.path);
  const targets = rootExists ? hostSharedTargetsOf(await h.remote.run(sharedKindsScript(h.root, paths, create), 'checking the shared paths')) : paths.map((): HostSharedTarget => ({ kind: 'missing' }));
  return judgeHostShared(h, shared, create, targets);
}

/** Deploys `source` to every host's `root` (or its own root), switching all of them or none. */
export async function fleetDeploy(source: string, root: string | undefined, given: FleetDeployOptions): Promise<FleetDeployResult> {
  const started = performance.now();
  const targets = targetsOf(given, root);
  const options = withLists(given);
  const { sourceReal, scan } = await validateSource(source, options.signal);
  const shared = checkOptions(options, scan);
  const topWarnings = buildTopWarnings(topNames(scan.entries));
  const closed = closedBuildWarning(regularFiles(scan.entries), closedDirectoryFix(sourceReal));
  if (closed !== undefined) topWarnings.push(closed);
  const git = await gitInfo(sourceReal);
  const hashing = new AbortController();
  const known: KnownManifests = new Map();
  /** A local file holding the manifest's bytes for every host (rsync sends it by delta). */
  let manifestDir: string | undefined;
  const plans: SendPlans = new WeakMap();
  const fleet = new FleetRun(targets, options);
  const { emit } = fleet;
  for (const message of topWarnings) emit({ type: 'warning', message });
  const rounded = budgetWarning(options.maxFail, fleet.hosts.length);
  if (rounded !== undefined) emit({ type: 'warning', message: rounded });
  const fleetToken = randomBytes(12).toString('hex');
  // In every host's journal: a crash leaves each host the names of the others, whose state then decides (plan/fleet.ts).
  const fleetHosts = fleet.hosts.map((h) => h.label);
  const durable = options.fsync !== false;
  const afterSwitch = options.hooks?.afterSwitch ?? [];
  const beforeSwitch = options.hooks?.beforeSwitch ?? [];
  const hookTimeoutMs = options.hooks?.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS;
  const hookTimeoutS = Math.ceil(hookTimeoutMs / 1000);
  const healthTimeoutMs = options.healthCheck?.timeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS;
  // Run by each host's armed program between its after-switch hooks and its health check, as locally.
  const reloads = armedReloads(options);
  // What runs on each host after its switch, in the local engine's words (its journal's `verifying`).
  const verifying = afterSwitchSteps(options);
  const per = new Map<HostRun, HostPhase>();
  /** Hosts where our lock or prepared release may remain (the cleanup could not reach them). */
  const leftovers = new Set<HostRun>();
  let id: string | undefined;
  // Phase 1 stops early on the first failure; aborting kills copies in flight.
  const phase1 = new AbortController();
  /** The last wave has been sent `go`: from here a signal undoes nothing, the switch stands. */
  let lastWaveSwitching = false;
  let signalSaid = false;
  /** Switched (or sent `go`) and not yet done with their after-switch hooks, reloads and health check. */
  const checking = new Set<Session>();
  /** Started with before-switch hooks and not yet armed: `abort` ends the hook running (deployArmScript). */
  const hooking = new Set<Session>();
  const onSignal = (): void => {
    phase1.abort();
    // As a signal does locally: a before-switch hook is ended at once, and nothing switches.
    for (const session of hooking) disarm(session).catch(() => undefined);
    hooking.clear();
    // As a signal does locally: what runs after the switch is ended on every host (`stop`), and the switch stands.
    const stopping = checking.size > 0;
    for (const session of checking) stopChecks(session);
    checking.clear();
    if (lastWaveSwitching) {
      signalSaid = true;
      emit({ type: 'warning', message: `interrupted by ${signalOf(options.signal?.reason)} after the switch: ${stopping ? "stopping the hosts' after-switch hooks, reloads and health checks; " : ''}the switch stands` });
    }
  };
  options.signal?.addEventListener('abort', onSignal, { once: true });

  const report = (): FleetDeployHost[] =>
    fleet.hosts.map((h) => {
      const p = per.get(h);
      const previous = p ? p.previous : h.state ? currentIdOf(h.state) : null;
      const outcome = outcomeOf(p);
      const current = outcome === 'switched' ? (id ?? null) : outcome === 'unknown' ? null : previous;
      const placed: Partial<Placed> = p ?? {};
      return {
        host: h.label,
        root: h.root,
        outcome,
        current,
        previous,
        reached: h.state !== undefined,
        // A host taken over is the newer command's to finish: nothing of this one is left for the next.
        leftovers: leftovers.has(h) || (outcome === 'unknown' && p?.phase !== 'taken-over') || isLost(p),
        ...(placed.transferred === undefined ? {} : { transferred: placed.transferred }),
        ...(placed.linked === undefined ? {} : { linked: placed.linked }),
        ...(placed.copiedOnHost ? { copiedOnHost: placed.copiedOnHost } : {}),
        ...(placed.remade === undefined ? {} : { manifest: placed.remade }),
        ...(placed.copyMs === undefined ? {} : { copyMs: placed.copyMs }),
        ...(placed.manifestSent === undefined ? {} : { manifestSentBytes: placed.manifestSent }),
        ...(hasSwitched(p) ? { switchedAfterMs: Math.round(p.afterMs) } : {}),
        ...(healthOf(p) ? { health: healthOf(p) } : {}),
        ...(p?.phase === 'verified' && p.afterSwitchFailure !== undefined ? { afterSwitchFailure: p.afterSwitchFailure } : {}),
        ...(p?.phase === 'verified' && p.pruned !== undefined ? { pruned: [...p.pruned] } : {}),
        warnings: [...(placed.warnings ?? [])],
        recovered: h.recovered,
        ...(h.error ? { error: h.error } : {}),
      };
    });

  /** Undoes phase 1 on a host: disarm, remove what was prepared, release the lock. */
  const abortHost = async (h: HostRun): Promise<void> => {
    const d = per.get(h);
    const session = sessionOf(d);
    if (session) await disarm(session);
    if (!h.remote.locked) return;
    if (!h.remote.holding) {
      // The lock went with the connection: another command may hold it by now, so touch nothing.
      leftovers.add(h);
      h.remote.released();
      return;
    }
    const steps: Step[] = [];
    if (d && id !== undefined && h.state) {
      // The id was checked new on this host under the lock: a releases/<id> there now is this deploy's own.
      steps.push({ op: 'run', program: undoProgram({ id, placed: true, previous: d.previous, ordered: viewsOf(h.state), leftovers: [stagedRootPath(d.stage), inTmp(d.link)], trash: stagedRootPath(stagingName(h.state, 'trash')) }) });
    } else if (d) {
      steps.push({ op: 'remove-staged', name: d.stage }, { op: 'remove-tmp', name: d.link });
    }
    // A root this deploy made goes again once its lock is released (what is empty: nothing but what it made).
    const made = madeDirsToRemove(h.root, h.remote.locked.made);
    const after: Step[] = made.length > 0 ? [{ op: 'remove-made', dirs: made }] : [];
    try {
      await h.remote.unlock(steps, after, { afterHolder: true });
      if (d) per.set(h, { ...d, phase: 'undone' });
    } catch (error) {
      h.error ??= hostError(error);
      leftovers.add(h);
      emit({ type: 'warning', message: `${h.label}: could not clean up (${hostError(error).message}); the next command on it recovers` });
    }
  };

  /** The rollout's waves once they are planned (`--waves`): a rollout stopped in its first wave shows them too. */
  let waveRows: FleetWave[] | undefined;
  const abortAll = async (why: string): Promise<never> => {
    emit({ type: 'step', message: `phase 1 failed (${why}): no host switches; cleaning up` });
    await Promise.all(fleet.hosts.map((h) => abortHost(h)));
    const waves = waveRows === undefined ? {} : { waves: waveRows };
    if (options.signal?.aborted) {
      const sig = signalOf(options.signal.reason);
      throw new DeployError('INTERRUPTED', `interrupted by ${sig} before the switch; no host switched and the deploy was undone`, { signal: sig, details: { hosts: report(), ...waves } });
    }
    throw fleetError(fleet.hosts, 'nothing was switched', { release: id ?? null, hosts: report(), ...waves });
  };

  const marks: number[] = [];
  const mark = (): void => {
    marks.push(performance.now());
  };
  // Hashed once, while the hosts connect and lock (buildManifest yields to them): every host gets
  // the same manifest, complete before any content moves. Stopped if the deploy ends first.
  const building = (async () => {
    await fleetFailpoint('fleet-hashing');
    return buildManifest(scan, shared.links, hashing.signal);
  })();
  building.catch(() => undefined);
  try {
    await checkHostsBeforeLocks(fleet, options, shared, report);
    // Lock every host and read where it stands.
    await fleet.each(
      fleet.hosts,
      async (h) => {
        const locked = await h.remote.lock({ command: options.command ?? `fleet deploy of ${sourceReal} from ${os.hostname()}`, create: true, waitMs: options.waitMs, signal: options.signal, uses: options.keep !== undefined });
        if (locked.tookOver) emit({ type: 'warning', message: `${h.label}: took over a stale lock: ${locked.tookOver.reason}` });
        if (!locked.facts.rsync) throw new DeployError('REMOTE', `${h.label}: rsync is not installed there`, { hint: 'install rsync on every target host' });
        h.facts = locked.facts;
        h.state = locked.state;
        // The same rule on the state read under the lock: a folder filled since the read above.
        const notRoot = deployRootProblem(h.label, h.root, locked.state.shape, options.adopt === true);
        if (notRoot) throw notRoot;
        fleet.step(h, 'locked');
      },
      { failFast: true, signal: phase1.signal },
    );
    if (fleet.failed.length > 0 || phase1.signal.aborted) return await abortAll(fleet.failed.length > 0 ? 'a host could not be locked' : 'interrupted');
    const onAbort = (): void => hashing.abort();
    phase1.signal.addEventListener('abort', onAbort, { once: true });
    let build: BuiltManifest;
    try {
      build = await building;
    } catch (error) {
      if (phase1.signal.aborted) return await abortAll('interrupted');
      // The build could not be hashed: the locks go, nothing else was done on any host.
      await Promise.all(fleet.hosts.map((h) => abortHost(h)));
      throw error;
    } finally {
      phase1.signal.removeEventListener('abort', onAbort);
    }
    const manifestFile = (): string => {
      if (manifestDir === undefined) {
        manifestDir = makeScratchDir('manifest');
        fs.writeFileSync(path.join(manifestDir, 'manifest.json'), build.text);
      }
      return path.join(manifestDir, 'manifest.json');
    };

    await fleet.recover(fleet.hosts);
    for (const h of fleet.hosts) {
      const state = h.state;
      if (!state) continue;
      const problem = currentProblem(h.label, h.root, state.current);
      if (problem) h.error = hostError(problem);
    }
    if (fleet.failed.length > 0) return await abortAll('a host cannot be deployed to');

    // One id for the fleet: new on every host, after every id any host holds.
    // A damaged record's name is taken too: a new release of that name would write over it.
    const idsPerHost = fleet.hosts.map((h) => [...(h.state?.releases ?? []), ...(h.state?.records.keys() ?? []), ...(h.state?.damaged?.keys() ?? [])]);
    id = options.releaseId ?? fleetReleaseId(idsPerHost, new Date());
    const releaseId = id;
    for (const h of fleet.hosts) {
      if (idsPerHost[fleet.hosts.indexOf(h)]?.includes(releaseId)) h.error = hostError(releaseIdTakenOn(fleet.hosts, h, releaseId));
    }
    if (fleet.failed.length > 0) return await abortAll('the release id is taken');
    // Every host's shared targets, before any host makes one (checkHostShared).
    if (shared.links.length > 0) {
      await fleet.each(fleet.hosts, async (h) => void (await checkHostShared(h, shared, options.sharedCreate === true, true)));
      if (fleet.failed.length > 0) return await abortAll('a shared path cannot be used');
    }
    mark();
    emit({ type: 'step', message: `release ${releaseId}: copying ${plural(scan.files, 'file')} to ${plural(fleet.hosts.length, 'host')}` });

    const createdAt = new Date().toISOString();
    /** Phase 1 on one host: content placed by manifest, release prepared, the switch armed. */
    const prepareHost = async (h: HostRun): Promise<void> => {
        const state = h.state;
        const facts = h.facts;
        const locked = h.remote.locked;
        if (!state || !facts || !locked) throw new DeployError('INTERNAL', `${h.label}: not locked`);
        const previous = currentIdOf(state);
        const names: Names = { previous, stage: stagingName(state, 'stage'), link: randomName('current') };
        per.set(h, { ...names, phase: 'preparing' });
        const prevDigest = previous === null ? undefined : state.records.get(previous)?.digest;
        const copied = await placeContent(
          h.remote.ssh,
          {
            sourceDir: sourceReal,
            root: h.root,
            stage: names.stage,
            id: releaseId,
            build,
            previous: previous === null ? null : { id: previous, digest: prevDigest },
            incremental: options.strategy !== 'copy',
            // Hooks will run in the release: a hardlinked file would let them write into the live one.
            copyUnchanged: beforeSwitch.length > 0,
            // The parents a link needs are not in the build (nothing lies under them): the host makes them, rsync cannot send them.
            exclude: shared.links.flatMap((l) => [l.path, ...l.mkdirs]),
            known,
            plans,
            manifestFile: manifestFile(),
          },
          phase1.signal,
        );
        const d: Placed = { ...names, ...(copied.transferred === undefined ? {} : { transferred: copied.transferred }), linked: copied.linked, copiedOnHost: copied.copiedOnHost, ...(copied.manifestSent === undefined ? {} : { manifestSent: copied.manifestSent }), copyMs: copied.durationMs, warnings: copied.warnings };
        per.set(h, { ...d, phase: 'placed' });
        for (const w of copied.warnings) emit({ type: 'warning', message: `${h.label}: ${w}` });
        for (const n of copied.notes) fleet.step(h, n);
        const reused = copied.copiedOnHost > 0 ? `${copied.copiedOnHost} copied on the host from its current release (before-switch hooks will run) and checked` : `${copied.linked} linked and checked`;
        fleet.step(h, `copied (${copied.transferred ?? '?'} of ${scan.files} files sent, ${reused}, ${copied.durationMs} ms)`);
        await fleetFailpoint('fleet-copied');
        if (phase1.signal.aborted) throw new DeployError('INTERRUPTED', `${h.label}: interrupted`);

        // `verifying`: what still runs after the switch, as locally; the host writes the journal again without it once they passed.
        const journal = (phase: 'copying' | 'ready' | 'switched', verifying?: string): string =>
          JSON.stringify({ v: 1, op: 'deploy', token: locked.token, pid: locked.pid, startedAt: createdAt, release: releaseId, previous, phase, ...(verifying === undefined ? {} : { verifying }), fleet: { token: fleetToken, hosts: fleetHosts } } satisfies FleetJournal);
        const record: RemoteRecord = {
          id: releaseId,
          seq: nextSeq(state.records),
          status: 'pending',
          createdAt,
          user: facts.user,
          host: facts.host,
          source: `${os.hostname()}:${sourceReal}`,
          ...(git ? { git } : {}),
          files: scan.files,
          bytes: scan.bytes,
          durationMs: 0,
          strategy: strategyOf(d),
          ...(d.transferred === undefined ? {} : { copied: d.transferred }),
          linked: d.linked,
          ...(d.copiedOnHost > 0 ? { copiedOnHost: d.copiedOnHost } : {}),
          previous,
          fleet: { token: fleetToken },
          digest: build.digest,
        };
        // What prune does once the switch commits: decided now, from the state read under the lock.
        const views = viewsOf(state);
        const after = [...views, { id: releaseId, seq: record.seq, status: 'complete' as const, previous, createdAt: record.createdAt }];
        const { inUse } = inUseOf(state, locked.uses, false);
        const decision = options.keep === undefined ? undefined : selectPrune(after, { currentId: releaseId, keep: options.keep, ...(inUse ? { inUse } : {}) });
        const prunedAt = new Date().toISOString();
        const prune = (decision?.remove ?? []).map(({ release }) => ({
          id: release.id,
          trash: stagingName(state, 'trash'),
          record: recordLine(state, release.id, { prunedAt }),
        }));
        d.prunes = prune.map((x) => x.id);
        // With before-switch hooks, a stage of its own receives the manifest made again after them.
        const remakeStage = beforeSwitch.length > 0 ? stagingName(state, 'stage') : undefined;
        const script = deployArmScript({
          root: h.root,
          fsync: durable,
          id: releaseId,
          previous,
          stage: d.stage,
          shared: shared.links,
          sharedCreate: options.sharedCreate === true,
          beforeSwitch,
          ...(remakeStage === undefined ? {} : { remakeStage }),
          journalCopying: journal('copying'),
          journalReady: journal('ready'),
          recordPending: JSON.stringify(record),
          manifest: true,
          tail: {
            id: releaseId,
            backTo: previous,
            link: d.link,
            journalSwitched: journal('switched', verifying),
            ...(verifying === undefined ? {} : { journalVerified: journal('switched') }),
            afterSwitch,
            hookTimeoutS,
            ...(reloads === undefined ? {} : { reload: reloads }),
            ...(options.healthCheck?.command ? { healthCheck: { command: options.healthCheck.command, timeoutS: healthTimeoutMs / 1000 } } : {}),
            commitRecords: [releaseId],
            backRecords: previous === null ? [releaseId] : [releaseId, previous],
            prune,
            protect: (decision?.keep ?? []).map((k) => k.release.id),
            token: locked.token,
            ...(locked.gate ? { gate: locked.gate } : {}),
          },
        });
        const session = h.remote.ssh.start(
          script,
          armedNarration(h.label, { beforeSwitch, afterSwitch, ...(reloads === undefined ? {} : { reloads: reloadsSaid(options) }), ...(options.healthCheck?.command ? { health: `${options.healthCheck.command} (up to ${healthTimeoutMs / 1000} s)` } : {}) }, emit),
        );
        if (beforeSwitch.length > 0) {
          // A signal that came while the copy ended: the hooks stop as soon as they start.
          if (phase1.signal.aborted) void disarm(session).catch(() => undefined);
          else hooking.add(session);
        }
        try {
          if (remakeStage !== undefined) {
            const remade = await settleHookManifest(h.remote.ssh, session, {
              root: h.root,
              id: releaseId,
              stage: remakeStage,
              build: build.manifest,
              buildDigest: build.digest,
              record,
              warn: (message) => emit({ type: 'warning', message: `${h.label}: ${message}` }),
            });
            if (remade !== undefined && remade.digest !== build.digest) {
              d.remade = remade.digest;
              if (remade.sent !== undefined) d.manifestSent = (d.manifestSent ?? 0) + remade.sent;
              fleet.step(h, `the before-switch hooks changed the release: its manifest was made again (${remade.digest.slice(0, 19)}, ${remade.sent ?? '?'} bytes sent to store it)`);
            }
          }
          const answer = await awaitArmed(session);
          if (answer.kind === 'refused') throw beforeSwitchHookError(h.label, answer.result, beforeSwitch, hookTimeoutMs, releaseId) ?? remoteError(h.label, answer.result, 'preparing the release');
          per.set(h, { ...d, session: answer.session, phase: 'armed' });
          fleet.step(h, 'prepared and armed');
        } finally {
          hooking.delete(session);
        }
    };

    const reconcileHint = (h: HostRun): string => fleetStatusHint(fleet.hosts, h);
    /** A host whose `commit` or `back` came after another command took its lock over: it changed nothing there, and says so (exit 1 below). */
    const takenOver = (h: HostRun, p: Verified, why: string): void => {
      h.error ??= { code: 'REMOTE', message: `${h.label}: ${why}`, hint: reconcileHint(h) };
      per.set(h, { ...p, phase: 'taken-over' });
    };

    /** Phase 2 on a wave's armed hosts: the word goes to all of them in the same tick; then their hooks and health checks. */
    const switchWave = async (wave: readonly HostRun[], row: FleetWave): Promise<void> => {
      const armed = wave.flatMap((h) => {
        const p = per.get(h);
        return p?.phase === 'armed' ? [{ h, p }] : [];
      });
      emit({ type: 'step', message: `switching ${wave.length} host${wave.length === 1 ? '' : 's'} to ${releaseId}` });
      // From `go` on, a signal ends what runs after the switch (the word is sent in this same tick).
      for (const { p } of armed) checking.add(p.session);
      const answers = await switchTogether(armed.map(({ p }) => p.session));
      const switchedHere: { h: HostRun; p: Switched }[] = [];
      for (const [i, { h, p }] of armed.entries()) {
        const a = answers[i];
        if (a?.kind === 'switched') {
          const s: Switched = { ...p, afterMs: a.afterMs, switchedAt: new Date().toISOString() };
          per.set(h, { ...s, phase: 'switched' });
          switchedHere.push({ h, p: s });
        } else if (a?.kind === 'switch-failed') {
          checking.delete(p.session);
          per.set(h, { ...p, phase: 'switch-failed' });
          h.error = { code: 'IO', message: `${h.label}: the switch failed: ${a.message}` };
        } else {
          checking.delete(p.session);
          per.set(h, { ...p, phase: 'switch-lost' });
          h.error = { code: 'REMOTE', message: `${h.label}: connection lost after the switch was sent: it is on ${releaseId} or still on ${p.previous ?? 'no release'}`, hint: reconcileHint(h) };
        }
      }
      if (marks.length === 2) mark();
      await fleetFailpoint('fleet-switched');
      row.skewMs = Math.round(switchSkewMs(switchedHere.map(({ p }) => p.afterMs)));
      if (switchedHere.length > 0) emit({ type: 'step', message: `${switchedHere.length} of ${wave.length} switched (skew ${row.skewMs} ms)` });

      // After-switch hooks, reloads and health checks run on the hosts; each then waits for the decision.
      await Promise.all(
        switchedHere.map(async ({ h, p }) => {
          const verdict = await awaitVerdict(p.session);
          checking.delete(p.session);
          if (verdict.kind === 'lost') {
            per.set(h, { ...p, phase: 'unreachable' });
            h.error = { code: 'REMOTE', message: `${h.label}: connection lost after it switched to ${releaseId}`, hint: reconcileHint(h) };
            return;
          }
          const failed = verdict.afterSwitchFailed;
          const hookFailure = failed ? `after-switch hook ${JSON.stringify(afterSwitch[failed.hook - 1] ?? `#${failed.hook}`)} ${hostOutcome(failed.code, failed.timedOut, hookTimeoutMs)}` : undefined;
          // As locally: a hook's failure and a reload's after it (run when no health check can switch back) are both named.
          const failure = [hookFailure, verdict.reloadFailed].filter((x) => x !== undefined).join('; ') || undefined;
          // Ended by `stop`: live and unverified, as a local deploy a signal stops after its switch.
          const stopped = verdict.stopped === undefined ? undefined : `interrupted by ${signalOf(options.signal?.reason)}: ${STOPPED_STEP[verdict.stopped]} did not finish`;
          const unverified = [failure, stopped].filter((x) => x !== undefined).join('; ') || undefined;
          // Why the check failed, in a local deploy's words (its last attempt's exit code, or its time ran out).
          const code = verdict.healthCode;
          const checkFailure = code === undefined ? 'the health check failed' : `health check failed: command ${JSON.stringify(options.healthCheck?.command ?? '')} ${code.timedOut ? `timed out (--health-timeout ${healthTimeoutMs / 1000} s)` : hostOutcome(code.code, false, healthTimeoutMs)}`;
          per.set(h, { ...p, warnings: [...p.warnings, ...verdict.warnings], ...(verdict.health ? { health: verdict.health } : {}), ...(unverified !== undefined && verdict.health !== 'failed' ? { afterSwitchFailure: unverified } : {}), ...(verdict.health === 'failed' ? { failure: failure ?? checkFailure } : {}), ...(stopped !== undefined && failure === undefined ? { stoppedOnly: true as const } : {}), phase: 'verified' });
          if (verdict.health === 'failed') {
            h.error = { code: 'HEALTH_CHECK_FAILED', message: `${h.label}: ${failure ?? checkFailure}` };
            // Said when it is known, as a local check's failure is: the error's hint points here.
            emit({ type: 'warning', message: h.error.message });
          }
        }),
      );
    };

    // Waves: each is prepared, switched and health-checked before the next starts; every switched
    // host stays armed (holding its lock) until the whole rollout is decided, so any of them can go back.
    const waveHosts = splitWaves(fleet.hosts, options.waves ?? [{ percent: 100 }]);
    const budget = failureBudget(options.maxFail, fleet.hosts.length);
    const rollout = waveHosts.map((hosts, i) => {
      const row: FleetWave = { wave: i + 1, hosts: hosts.map((h) => h.label), result: 'skipped' };
      return { hosts, row };
    });
    const waves = rollout.map((w) => w.row);
    if (options.waves !== undefined) waveRows = waves;
    const ran = new Set<HostRun>();
    let failures = 0;
    let interrupted = false;
    /** The wave, not the last, in which every host failed: the rollout stopped after it. */
    let wholeWaveFailed: number | undefined;
    // Failed in its wave: anything but switched, reachable and healthy. A host left armed because
    // the budget ran out before its switch did not fail: it was not switched (listed as failed, it
    // made a healthy host look broken).
    const failedNow = (h: HostRun): boolean => {
      const p = per.get(h);
      // Not started (the wave stopped at the failure that spent the budget, --parallel hosts at a time), or armed and never sent `go`.
      if (p === undefined || p.phase === 'armed') return h.error !== undefined;
      return h.error !== undefined || p?.phase !== 'verified' || p.health === 'failed';
    };
    for (const [i, { hosts: wave, row }] of rollout.entries()) {
      if (i > 0 && (options.wavePauseMs ?? 0) > 0) {
        emit({ type: 'step', message: `pausing ${Math.round((options.wavePauseMs ?? 0) / 100) / 10} s before wave ${i + 1}` });
        await sleep(options.wavePauseMs, undefined, { signal: phase1.signal }).catch(() => undefined);
      }
      if (phase1.signal.aborted) {
        interrupted = true;
        break;
      }
      const waveStarted = performance.now();
      row.startedAt = new Date().toISOString();
      for (const h of wave) ran.add(h);
      await fleet.each(wave, prepareHost, { failFast: overBudget(failures + 1, budget), signal: phase1.signal });
      await fleetFailpoint('fleet-armed');
      for (const h of wave) if (h.error === undefined && !h.remote.holding) h.error = hostError(new DeployError('REMOTE', `${h.label}: the connection holding its lock was lost`));
      const unprepared = wave.filter((h) => h.error !== undefined);
      if (ran.size === wave.length && (phase1.signal.aborted || overBudget(failures + unprepared.length, budget))) {
        // Nothing has switched anywhere yet: undo every host, as an all-or-nothing deploy always did.
        if (phase1.signal.aborted) delete row.startedAt;
        else Object.assign(row, { durationMs: Math.round(performance.now() - waveStarted), result: 'failed', failed: unprepared.map((h) => h.label) });
        return await abortAll(phase1.signal.aborted ? 'interrupted' : unprepared.some((h) => !h.remote.holding) ? 'a host lost its lock' : 'a host could not be prepared');
      }
      if (i === 0) mark();
      await Promise.all(unprepared.map((h) => abortHost(h)));
      failures += unprepared.length;
      if (phase1.signal.aborted) interrupted = true;
      if (!interrupted && !overBudget(failures, budget)) {
        const armedHosts = wave.filter((h) => h.error === undefined);
        lastWaveSwitching = i === rollout.length - 1;
        await switchWave(armedHosts, row);
        failures += armedHosts.filter(failedNow).length;
      }
      const failedHere = wave.filter(failedNow).map((h) => h.label);
      // Prepared and armed, then never sent `go` (the budget ran out, or a signal came): not switched, and not failed either.
      const notSwitched = wave.filter((h) => (per.get(h) === undefined || per.get(h)?.phase === 'armed') && !failedNow(h)).map((h) => h.label);
      const healthy = wave.length - failedHere.length - notSwitched.length;
      row.durationMs = Math.round(performance.now() - waveStarted);
      row.result = failedHere.length === 0 ? 'ok' : 'failed';
      row.failed = failedHere;
      emit({ type: 'step', message: `wave ${i + 1} of ${waveHosts.length}: ${healthy} of ${wave.length} host${wave.length === 1 ? '' : 's'} switched and healthy${failedHere.length > 0 ? `, failed: ${failedHere.join(', ')}` : ''}${notSwitched.length > 0 ? `, not switched: ${notSwitched.join(', ')}` : ''} (failures ${failures} of ${budget} allowed)` });
      if (interrupted || overBudget(failures, budget)) break;
      // As Ansible ends a play whose whole batch failed: a wave in which no host passed (a canary)
      // is not rolled out further, whatever the budget has left.
      if (failedHere.length === wave.length && i < rollout.length - 1) {
        wholeWaveFailed = i + 1;
        emit({ type: 'warning', message: `every host of wave ${i + 1} failed: the rollout stops here, whatever the failure budget` });
        break;
      }
    }
    options.signal?.removeEventListener('abort', onSignal);
    while (marks.length < 3) mark();
    // Every host's verdict is in; nothing is decided, committed or sent back yet.
    await fleetFailpoint('fleet-verdicts');
    // Read before the decision: a host that switches back still switched in this rollout.
    const switched = fleet.hosts.flatMap((h) => {
      const p = per.get(h);
      return hasSwitched(p) ? [p.session] : [];
    });
    const skewMs = Math.max(0, ...waves.map((w) => w.skewMs ?? 0));

    const decision = decideAfterSwitch(
      fleet.hosts.map((h) => {
        const p = per.get(h);
        const health = healthOf(p);
        const didSwitch = hasSwitched(p);
        // A signal after the last wave's switch said the switch stands: a host that switched and then
        // went silent stands with it (on the release, unverified), as a local deploy's does.
        const stands = signalSaid && p?.phase === 'unreachable';
        // Not started, or armed and never sent `go` (its wave stopped when the budget ran out): not deployed, but it did not fail.
        const neverSent = (p === undefined || p.phase === 'armed') && h.error === undefined;
        return { host: h.label, switched: didSwitch, lost: isLost(p) && !stands, ...(health ? { health } : {}), skipped: !ran.has(h) || (interrupted && !didSwitch) || neverSent, failed: h.error !== undefined && !didSwitch };
      }),
      options.onFailure ?? 'rollback',
      interrupted ? -1 : budget,
    );
    const allGood = decision.ok;
    const keep = options.onFailure === 'keep';
    // Only a verified host is reachable and switched: the decision commits or sends back no other.
    const verified = (labels: readonly string[]): { h: HostRun; p: Verified }[] =>
      fleet.hosts.flatMap((h) => {
        const p = per.get(h);
        return labels.includes(h.label) && p?.phase === 'verified' ? [{ h, p }] : [];
      });
    const healthFailed = fleet.hosts.some((h) => healthOf(per.get(h)) === 'failed');
    const reason = wholeWaveFailed === undefined || decision.ok ? decision.reason : `${decision.reason}; every host of wave ${wholeWaveFailed} failed, which stops the rollout whatever the failure budget`;
    const now = (): string => new Date().toISOString();
    const staleReports = new Map<HostRun, StaleReport>();
    // Committed hosts whose scan never answered (`--stale fail` cannot vouch for them).
    const unchecked = new Set<HostRun>();
    /** Hosts whose commit came after a signal: they pruned nothing, as a local deploy does after one. */
    const pruneSkipped: string[] = [];
    /** Hosts sent back by a failed health check with no release to go back to: they keep this one, failed. */
    const keptLive: HostRun[] = [];
    /**
     * Committed hosts whose bookkeeping failed over a connection that held (a journal it could not
     * remove, a record it could not write): live there, the journal left for the next command. The
     * deploy then fails as a local one whose bookkeeping failed after its switch (exit 1).
     */
    const unrecorded = new Map<HostRun, HostError>();

    await Promise.all([
      ...verified(decision.commit).map(async ({ h, p }) => {
        // Still under the lock: the wait comes before the commit, whose record keeps the count (the reloads ran before the health check).
        const served = await servingAfterSwitch(h, releaseId, p.previous, { ...options, reload: undefined });
        if (served.stale) staleReports.set(h, served.stale);
        if (served.unchecked) unchecked.add(h);
        // A failed reload is the deploy's outcome (exit 7), as locally; the first failure on a host is the one named.
        const afterSwitchFailure = p.afterSwitchFailure ?? served.reloadFailure;
        const q: Verified = { ...p, warnings: [...p.warnings, ...served.warnings], ...(afterSwitchFailure === undefined ? {} : { afterSwitchFailure }) };
        per.set(h, { ...q, phase: 'verified' });
        const record = finalRecord(releaseId, q.remade ?? build.digest, h, q, 'complete', { activatedAt: now(), durationMs: Math.round(performance.now() - started), ...(p.health === 'failed' ? { reason: 'kept after a failed health check (--on-failure keep)' } : {}), ...(served.stale?.check === 'proc' ? { staleProcesses: served.stale.processes.length } : {}), ...(afterSwitchFailure === undefined ? {} : { afterSwitchFailure }) });
        // As locally: nothing is pruned for an unverified release, nor once a signal has come (the next deploy or prune does it).
        const signalled = options.signal?.aborted === true;
        if (signalled && afterSwitchFailure === undefined && options.keep !== undefined) pruneSkipped.push(h.label);
        const pruning = afterSwitchFailure === undefined && !signalled;
        const done = await commitSwitch(p.session, [JSON.stringify(record)], { prune: pruning });
        // What this host pruned, as a local deploy reports it: a release it could not move stays (warned below).
        const pruned = done.kind === 'committed' && options.keep !== undefined ? (pruning ? (p.prunes ?? []).filter((x) => !done.pruneFailed.some((f) => f.id === x)) : []) : undefined;
        if (pruned !== undefined) {
          per.set(h, { ...q, pruned, phase: 'verified' });
          if (pruned.length > 0) fleet.step(h, `pruned ${plural(pruned.length, 'release')} (${pruned.join(', ')})`);
        }
        if (done.kind === 'taken-over') {
          takenOver(h, q, done.why);
        } else if (done.kind === 'failed') {
          const failed = hostError(remoteError(h.label, done.result, 'recording the deploy'));
          h.error ??= failed;
          // Its journal stays for the next command there (and, when the connection went, its lock): the row says so.
          leftovers.add(h);
          // The connection went before the commit was heard: the host stays on the release and the next command records it.
          if (connectionLost(done.result)) {
            emit({ type: 'warning', message: `${failed.message}: it is on ${releaseId}, and the next command there finishes its record` });
          } else {
            // The host's program said why it could not finish its commit: the switch stands there all the same.
            unrecorded.set(h, failed);
            emit({ type: 'warning', message: `${failed.message}; release ${releaseId} stays live there, and the next command there finishes its record` });
          }
        }
        else if (done.pruneFailed.length > 0 || done.warnings.length > 0) {
          // As a local deploy's prune: a release that cannot be moved stays, the deploy stands (a warning).
          const stays = done.pruneFailed.map((f) => `pruning release ${f.id}: ${f.message}; it stays, the deploy stands`);
          // A record it could not write: live, its journal kept for the next command to finish the record.
          const said = [...done.warnings, ...stays];
          for (const w of said) emit({ type: 'warning', message: `${h.label}: ${w}` });
          per.set(h, { ...q, ...(pruned === undefined ? {} : { pruned }), warnings: [...q.warnings, ...said], phase: 'verified' });
          if (done.warnings.length > 0) {
            leftovers.add(h);
            // What it could not write, without the host's own word on what comes next (the error's hint says it).
            unrecorded.set(h, { code: 'IO', message: `${h.label}: ${done.warnings.map((w) => w.split('; ')[0] ?? w).join('; ')}` });
          }
        }
      }),
      ...verified(decision.back).map(async ({ h, p }) => {
        if (healthFailed && !interrupted && p.previous === null) {
          // Nothing to go back to (a first deploy there): as locally, the release stays live, recorded failed.
          keptLive.push(h);
          const record = finalRecord(releaseId, p.remade ?? build.digest, h, p, 'failed', { activatedAt: p.switchedAt, durationMs: Math.round(performance.now() - started), reason: p.failure ?? reason });
          const done = await commitSwitch(p.session, [JSON.stringify(record)], { prune: false });
          if (done.kind === 'taken-over') {
            takenOver(h, p, done.why);
          } else if (done.kind === 'failed') {
            h.error ??= hostError(remoteError(h.label, done.result, 'recording the deploy'));
            if (connectionLost(done.result)) leftovers.add(h);
          }
          return;
        }
        const locked = h.remote.locked;
        const status = healthFailed && p.health === 'failed' ? 'failed' : 'rolled-back';
        const journal: FleetJournal = { v: 1, op: 'deploy', token: locked?.token ?? '', pid: locked?.pid ?? 0, startedAt: createdAt, release: releaseId, previous: p.previous, phase: 'rolling-back', reason, fleet: { token: fleetToken, hosts: fleetHosts } };
        // As a local automatic rollback records it: when it went live, how long the deploy took, and why (this host's own failure first).
        const lines = [JSON.stringify(journal), JSON.stringify(finalRecord(releaseId, p.remade ?? build.digest, h, p, status, { activatedAt: p.switchedAt, endedAt: now(), durationMs: Math.round(performance.now() - started), reason: p.failure ?? reason }))];
        if (p.previous !== null) lines.push(recordLine(h.state, p.previous, { status: 'complete', activatedAt: now() }));
        const back = await switchBack(p.session, lines);
        if (back.kind === 'taken-over') {
          takenOver(h, p, back.why);
          return;
        }
        per.set(h, { ...p, phase: back.kind === 'lost' ? 'back-lost' : 'switched-back' });
        if (back.kind !== 'back') {
          h.error ??= hostError(remoteError(h.label, back.result, 'switching back'));
          return;
        }
        // An automatic rollback reloads too; its processes on the failed release are named, never fatal.
        const served = await servingAfterSwitch(h, p.previous ?? '', releaseId, { ...options, stale: options.stale === 'off' ? 'off' : 'warn' });
        if (served.stale) staleReports.set(h, served.stale);
        if (served.reloadFailure !== undefined) emit({ type: 'warning', message: `${h.label}: ${served.reloadFailure}` });
        per.set(h, { ...p, warnings: [...p.warnings, ...served.warnings, ...(served.reloadFailure === undefined ? [] : [served.reloadFailure])], phase: 'switched-back' });
      }),
      // Hosts that never switched: their prepared release goes, as in phase 1.
      ...fleet.hosts.filter((h) => decision.undo.includes(h.label)).map((h) => abortHost(h)),
    ]);
    if (signalSaid && decision.ok) {
      for (const h of fleet.hosts) {
        if (per.get(h)?.phase !== 'unreachable') continue;
        // Its journal says it switched: the next command there records it, with the others' commits as evidence.
        leftovers.add(h);
        emit({ type: 'warning', message: `${h.label}: connection lost after it switched to ${releaseId}: it stays on ${releaseId}, unverified, and the next command there finishes its record` });
      }
    }
    for (const h of fleet.hosts) {
      const p = per.get(h);
      if (isLost(p)) continue;
      const session = sessionOf(p);
      if (session) await session.done;
      // A host taken over: its lock is the newer command's, never this one's to release.
      if (session && (releasedByProgram(session) || p?.phase === 'taken-over')) h.remote.released();
      // Its commit failed before the program released the lock: released here, its journal left for the next command, as locally.
      else if (unrecorded.has(h) && h.remote.holding) await h.remote.unlock().catch(() => h.remote.stopHolder());
      else h.remote.stopHolder();
    }

    mark();
    // Read now: each host sends its clock reading just after its switch confirmation.
    const hostSkewMs = hostClockSkew(switched);
    const [a = started, b = a, c = b, e = c] = marks;
    const timings = { lockMs: Math.round(a - started), prepareMs: Math.round(b - a), switchMs: Math.round(c - b), finishMs: Math.round(e - c) };
    const stale = fleetStaleOf(fleet.hosts, staleReports);
    const hostRows = report();
    // A host whose steps a signal stopped (and nothing failed there) is said as a local deploy says
    // it, in a warning, and recorded unverified; it is not an after-switch failure (exit 7).
    const stoppedOnly = new Set(fleet.hosts.filter((h) => { const p = per.get(h); return p?.phase === 'verified' && p.stoppedOnly === true; }).map((h) => h.label));
    const stopped = (r: FleetDeployHost): boolean => stoppedOnly.has(r.host);
    const stoppedHosts = new Map<string, string[]>();
    for (const r of hostRows) if (stopped(r) && r.afterSwitchFailure !== undefined) stoppedHosts.set(r.afterSwitchFailure, [...(stoppedHosts.get(r.afterSwitchFailure) ?? []), r.host]);
    for (const [what, hosts] of stoppedHosts) emit({ type: 'warning', message: `${what} on ${hosts.join(', ')}; release ${releaseId} stays live unverified there` });
    const afterSwitchFailures = hostRows.flatMap((r) => (r.afterSwitchFailure === undefined || stopped(r) ? [] : [`${r.host}: ${r.afterSwitchFailure}`]));
    const afterSwitchFailure = afterSwitchFailures.length === 0 ? undefined : `${afterSwitchFailures.join('; ')}; release ${releaseId} stays live${options.healthCheck?.command ? '' : ' (no health check is configured to decide otherwise)'}`;
    const result: FleetDeployResult = { release: releaseId, hosts: hostRows, skewMs, ...(hostSkewMs === undefined ? {} : { hostSkewMs }), files: scan.files, bytes: scan.bytes, durationMs: Math.round(performance.now() - started), timings, waves, tolerated: decision.tolerated, ...(stale ? { stale } : {}), ...(afterSwitchFailure === undefined ? {} : { afterSwitchFailure }), ...(lastWaveSwitching && options.signal?.aborted === true ? { interruptedAfterSwitch: true as const } : {}) };
    if (interrupted) {
      const sig = signalOf(options.signal?.reason);
      // A host whose connection went after its switch (or with `go` on its way) got no word: it was not switched back.
      const lostOnIt = keep ? [] : hostRows.filter((r) => r.outcome === 'switched' || r.outcome === 'unknown');
      const first = fleet.hosts.find((h) => h.label === lostOnIt[0]?.host);
      if (first === undefined) throw new DeployError('INTERRUPTED', `interrupted by ${sig} during the rollout; every switched host was ${keep ? 'left on' : 'switched back from'} ${releaseId}`, { signal: sig, details: { ...result } });
      const be = (hosts: readonly string[]): string => (hosts.length === 1 ? 'is' : 'are');
      const onIt = lostOnIt.filter((r) => r.outcome === 'switched').map((r) => r.host);
      const maybe = lostOnIt.filter((r) => r.outcome === 'unknown').map((r) => r.host);
      const where = [
        onIt.length > 0 ? `${onIt.join(', ')} ${be(onIt)} still on ${releaseId} (the connection was lost after the switch)` : '',
        maybe.length > 0 ? `whether ${maybe.join(', ')} ${be(maybe)} on ${releaseId} is not known (the connection was lost with a switch word on its way)` : '',
      ].filter(Boolean);
      throw new DeployError('INTERRUPTED', `interrupted by ${sig} during the rollout; every other switched host was switched back from ${releaseId}; ${where.join('; ')}`, { signal: sig, hint: fleetStatusHint(fleet.hosts, first), details: { ...result } });
    }
    // Hosts another command took over before this one's last word (it was silent past its lease):
    // what they serve is that command's doing, so this deploy cannot say where its release is live.
    const overtaken = fleet.hosts.filter((h) => per.get(h)?.phase === 'taken-over').map((h) => h.label);
    if (overtaken.length > 0) throw fleetError(fleet.hosts, `release ${releaseId} was switched to, but this deploy did not finish on ${overtaken.join(', ')}`, { ...result });
    if (allGood || decision.tolerated.length > 0) {
      // A signal during the commits (after the hosts' verdicts): they finished, as every step after a switch does.
      if (result.interruptedAfterSwitch && !signalSaid) emit({ type: 'warning', message: `interrupted by ${signalOf(options.signal?.reason)} after the switch: the hosts' commits finished` });
      if (pruneSkipped.length > 0) emit({ type: 'warning', message: `interrupted by ${signalOf(options.signal?.reason)}: no release was pruned${pruneSkipped.length < decision.commit.length ? ` on ${pruneSkipped.join(', ')}` : ''} (the next deploy or prune does it)` });
      // A failed host that switched before it went silent is on the release all the same, unverified.
      const tolerated = hostRows.filter((r) => decision.tolerated.includes(r.host));
      const onIt = tolerated.filter((r) => r.outcome === 'switched').map((r) => r.host);
      // `go` sent and its answer lost: on either release, not known which.
      const maybe = tolerated.filter((r) => r.outcome === 'unknown').map((r) => r.host);
      const notOn = tolerated.filter((r) => r.outcome !== 'switched' && r.outcome !== 'unknown').map((r) => r.host);
      const be = (hosts: readonly string[]): string => (hosts.length === 1 ? 'is' : 'are');
      const where = [
        notOn.length > 0 ? `${notOn.join(', ')} ${be(notOn)} not on ${releaseId}` : '',
        onIt.length > 0 ? `${onIt.join(', ')} ${be(onIt)} on ${releaseId}, unverified` : '',
        maybe.length > 0 ? `whether ${maybe.join(', ')} ${be(maybe)} on ${releaseId} is not known (the answer to its switch was lost)` : '',
      ].filter(Boolean);
      if (tolerated.length > 0) emit({ type: 'warning', message: `within the failure budget (--max-fail ${budget}): ${decision.tolerated.join(', ')} failed (${reason})${where.map((w) => `; ${w}`).join('')}` });
      const live = fleet.hosts.length - notOn.length - maybe.length;
      // As a local deploy whose bookkeeping failed after its switch (ops/deploy.ts bookkeepingError): exit 1, the switch standing. 1 wins over 7 and 6, as there.
      if (unrecorded.size > 0) throw bookkeepingFailure(fleet.hosts, releaseId, live, unrecorded, { ...result });
      emit({ type: 'step', message: `release ${releaseId} is live on ${live} host${live === 1 ? '' : 's'}` });
      // `--stale fail`: the release is live and stays; the exit code tells that old code still runs. 7 wins over 6, as locally.
      const notChecked = fleet.hosts.filter((h) => unchecked.has(h)).map((h) => h.label);
      // A signal during the wait ends the command by its exit code, as locally: the wait was cut short, not made.
      const staleError = afterSwitchFailure === undefined && options.signal?.aborted !== true ? fleetStaleFailure(options, stale, { ...result }, notChecked, `the switch to ${releaseId} stands`) : undefined;
      if (staleError) throw staleError;
      return result;
    }
    if (!keep && keptLive.length > 0) {
      // A local deploy whose check fails with nothing to roll back to: exit 1, the release live and marked failed.
      const there = keptLive.map((h) => h.label);
      const wentBack = fleet.hosts.filter((h) => outcomeOf(per.get(h)) === 'switched-back').map((h) => h.label);
      throw new DeployError('HEALTH_CHECK_FAILED', `${reason}; there is no previous release to roll back to on ${there.join(', ')}, so release ${releaseId} stays live there${wentBack.length > 0 ? `; ${wentBack.join(', ')} switched back` : ''}`, {
        hint: 'fix the release and deploy again; it is marked failed in the release log',
        details: { ...result, live: true },
      });
    }
    const everyoneBack = fleet.hosts.every((h) => ['switched-back', 'unchanged'].includes(outcomeOf(per.get(h))));
    if (!keep && everyoneBack && switched.length > 0) {
      throw new DeployError('ROLLED_BACK', `release ${releaseId} was switched back on every host: ${reason}`, {
        hint: healthFailed ? 'see the health check output above; the release stays on the hosts as failed for inspection' : 'see the errors above and deploy again',
        details: { ...result },
      });
    }
    // Kept: say where it is live, hosts that failed included (a failed health check keeps the host on the release).
    const liveOn = hostRows.filter((r) => r.current === releaseId).length;
    const kept = liveOn === fleet.hosts.length ? `release ${releaseId} is live on every host, the failed ones included (--on-failure keep)` : `release ${releaseId} is live on ${liveOn} of ${fleet.hosts.length} hosts (--on-failure keep)`;
    // Not every host went back (one lost after its switch stays on it until a command reaches it): say which did, and why.
    const sentBack = fleet.hosts.filter((h) => outcomeOf(per.get(h)) === 'switched-back').map((h) => h.label);
    const summary = sentBack.length > 0 && reason !== '' ? `release ${releaseId} was switched back on ${sentBack.join(', ')}: ${reason}` : switched.length === 0 && !fleet.hosts.some((h) => isLost(per.get(h))) ? 'nothing was switched' : `release ${releaseId} did not switch everywhere`;
    // Kept past the budget on purpose: the way back, when no host's own error says what to run.
    const first = fleet.hosts[0];
    const wayBack = keep && liveOn > 0 && first !== undefined && !fleet.hosts.some((h) => h.error?.hint !== undefined) ? `to take the hosts back to the release they had: ${rollbackCommand(fleet.hosts, first)}` : undefined;
    throw fleetError(fleet.hosts, keep ? kept : summary, { ...result }, wayBack);
  } finally {
    hashing.abort();
    options.signal?.removeEventListener('abort', onSignal);
    await fleet.close();
    if (manifestDir !== undefined) fs.rmSync(manifestDir, { recursive: true, force: true });
  }

  /** The host's reloads (how the first failed, without the host's label), then its stale-process wait. */
  async function servingAfterSwitch(h: HostRun, live: string, left: string | null, serving: ServingOptions): Promise<{ stale?: StaleReport; warnings: string[]; reloadFailure?: string; unchecked?: true }> {
    const warnings: string[] = [];
    const failed = await reloadHost(h, serving, emit, fleet.output(h, 'reload'));
    const reloadFailure = failed?.startsWith(`${h.label}: `) ? failed.slice(h.label.length + 2) : failed;
    let unchecked = false;
    const stale = await awaitHostFreshness(h, live, left, serving, emit, options.signal).catch((error: unknown) => {
      // Said as it happens, with the host, as a rollback says it; the row keeps it too.
      const said = staleCheckNotMade(h, error);
      emit({ type: 'warning', message: said });
      warnings.push(said.slice(h.label.length + 2));
      unchecked = true;
      return undefined;
    });
    return { ...(stale ? { stale } : {}), warnings, ...(reloadFailure ? { reloadFailure } : {}), ...(unchecked ? { unchecked: true as const } : {}) };
  }

  function finalRecord(releaseId: string, digest: string, h: HostRun, d: Placed, status: RemoteRecord['status'], change: Partial<RemoteRecord>): RemoteRecord {
    const base = mergeRecord(h.state?.records ?? new Map(), releaseId, {});
    return {
      ...base,
      id: releaseId,
      status,
      seq: nextSeq(h.state?.records ?? new Map()),
      createdAt: base.createdAt || new Date().toISOString(),
      user: h.facts?.user ?? base.user,
      host: h.facts?.host ?? base.host,
      source: `${os.hostname()}:${sourceReal}`,
      ...(git ? { git } : {}),
      files: scan.files,
      bytes: scan.bytes,
      strategy: strategyOf(d),
      ...(d.transferred === undefined ? {} : { copied: d.transferred }),
      linked: d.linked,
      ...(d.copiedOnHost > 0 ? { copiedOnHost: d.copiedOnHost } : {}),
      previous: d.previous,
      fleet: { token: fleetToken },
      digest,
      ...change,
    };
  }
}

/**
 * Fleet failpoints, armed by the same variable as the local ones: `fleet-armed=sleep:3000` gives
 * a test time to break a host between the phases; `fleet-switched=crash` dies before the decision;
 * `fleet-copied=crash` dies with a host's copy complete in its stage, not yet placed;
 * `fleet-switched=signal:SIGSTOP` stops the process once its hosts have switched;
 * `fleet-verdicts=crash` dies once every host's checks answered, before any word on them.
 */
async function fleetFailpoint(name: 'fleet-hashing' | 'fleet-copied' | 'fleet-armed' | 'fleet-switched' | 'fleet-verdicts'): Promise<void> {
  const action = parseFailpoints(process.env.ATOMIC_DEPLOY_FAILPOINTS).get(name);
  if (action?.kind === 'sleep') await new Promise((resolve) => setTimeout(resolve, action.ms));
  else if (action?.kind === 'signal') {
    // `fleet-switched=signal:SIGSTOP`: a deploying process that goes silent after its switch (a suspended laptop).
    process.kill(process.pid, action.signal);
    await new Promise((resolve) => setTimeout(resolve, 10));
  } else if (action?.kind === 'crash') {
    process.kill(process.pid, 'SIGKILL');
    // SIGKILL arrives asynchronously; never run past the point meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 60_000));
  }
}

/** Why `id` cannot be used on host `h`, in the local engine's words (ops/plan-deploy.ts releaseIdTaken). */
export function releaseIdTakenOn(hosts: readonly { label: string; root: string }[], h: { label: string; root: string; state?: Pick<RemoteState, 'releases' | 'empty' | 'damaged'> | undefined }, id: string): DeployError {
  const state = h.state;
  if (state?.empty?.includes(id)) return new DeployError('RELEASE_EXISTS', `${h.label}: ${h.root}/releases/${id} is taken by an empty directory, not a release`, { hint: 'pick another release id, or remove that empty directory' });
  if (state?.releases.includes(id)) {
    const sameRoot = hosts.every((x) => x.root === h.root);
    const switchTo = sameRoot ? `atomic-deploy rollback ${shellWord(h.root)} ${hosts.map((x) => `--host ${shellWord(x.label)}`).join(' ')} --to ${shellWord(id)}` : `atomic-deploy rollback --to ${shellWord(id)} with the same hosts and config`;
    return new DeployError('RELEASE_EXISTS', `${h.label}: release ${id} already exists in ${h.root}/releases`, { hint: `release ids are never reused: pick a new id, or switch to it with: ${switchTo}` });
  }
  if (state?.damaged?.has(id)) return new DeployError('RELEASE_EXISTS', `${h.label}: release id ${id} has a damaged record in the release log (${state.damaged.get(id) ?? 'unreadable'})`, { hint: 'release ids are never reused: pick a new id' });
  return new DeployError('RELEASE_EXISTS', `${h.label}: release id ${id} was used before: that release was pruned, and its record stays in the release log`, { hint: 'release ids are never reused: pick a new id' });
}

/**
 * What to run after a host was lost mid-deploy: status on every host of the deploy, not the lost
 * one alone. Run on that host only, recovery sees no other host and commits the release there
 * while the others went back, leaving the fleet mixed for good. Hosts with roots of their own
 * (the config's `hosts:` list) are named by the config the deploy ran with.
 */
export function fleetStatusHint(hosts: readonly { label: string; root: string }[], lost: { root: string }): string {
  return `find out and reconcile on every host of this deploy (recovery needs all of them): ${statusCommand(hosts, lost)}`;
}

/** The fleet `rollback` of this deploy's hosts, or how to run it when their roots differ. */
function rollbackCommand(hosts: readonly { label: string; root: string }[], one: { root: string }): string {
  if (hosts.some((x) => x.root !== one.root)) return 'run atomic-deploy rollback with the same hosts and config as this deploy';
  return `atomic-deploy rollback ${shellWord(one.root)} ${hosts.map((x) => `--host ${shellWord(x.label)}`).join(' ')}`;
}

/** The `status` that recovers this deploy's hosts together, or how to run it when their roots differ. */
function statusCommand(hosts: readonly { label: string; root: string }[], one: { root: string }): string {
  if (hosts.some((x) => x.root !== one.root)) return 'run atomic-deploy status with the same hosts and config as this deploy';
  return `atomic-deploy status ${shellWord(one.root)} ${hosts.map((x) => `--host ${shellWord(x.label)}`).join(' ')}`;
}

/**
 * A fleet deploy (or rollback, `op`) whose switch stands but whose bookkeeping failed on some hosts (`unrecorded`: each
 * host's reason), as the local engine's bookkeepingError says it: the release is live, what failed,
 * and that the next command (once what refused it is fixed) finishes the records.
 */
export function bookkeepingFailure(hosts: readonly { label: string; root: string }[], id: string, live: number, unrecorded: ReadonlyMap<{ label: string; root: string }, HostError>, details: Record<string, unknown>, op: 'deploy' | 'rollback' = 'deploy'): DeployError {
  const failed = [...unrecorded];
  const first = failed[0];
  const code = first && new DeployError(first[1].code, '').exitCode === 1 ? first[1].code : 'IO';
  const where = failed.map(([h]) => h.label).join(', ');
  return new DeployError(code, `release ${id} is live on ${plural(live, 'host')}, but recording the ${op} failed: ${failed.map(([, e]) => e.message).join('; ')}`, {
    hint: `its journal stays on ${where}: once what refused the record is fixed there, the next atomic-deploy command with this ${op}'s hosts finishes it by itself (${first ? statusCommand(hosts, first[0]) : 'atomic-deploy status'})`,
    details: { ...details, release: id, live: true },
  });
}

/** One host in a fleet deploy's plan (`deploy --dry-run --host`). */
export interface FleetDeployPlanHost {
  host: string;
  root: string;
  /** Where the release would be made there. */
  path: string;
  /** The release live there now: its rollback target after the deploy. */
  previous: string | null;
  /** The root is not there yet: the deploy would make it. */
  createsRoot: boolean;
  /** Each shared link, and whether its target would be made there (`--shared-create`). */
  shared: { path: string; target: string; create: boolean }[];
  /** With --keep: what prune would remove there after the switch, and why each kept release stays. */
  prune: { remove: { id: string; rule: string; reason: string }[]; kept: { id: string; rule: string; reason: string }[]; inUseCheck: 'proc' | 'unavailable' | 'forced' } | null;
  /** What the deploy would meet first there: a held lock, an interrupted operation to recover. */
  notes: string[];
  error?: HostError;
}

/** What `deploy --dry-run --host` prints: the local plan's fields, and one entry per host. */
export interface FleetDeployPlan {
  dryRun: true;
  /** The id the deploy would use now on every host; another deploy starting first would take it. */
  release: string;
  source: string;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  strategy: 'auto' | 'hardlink' | 'copy';
  fsync: boolean;
  hooks: { beforeSwitch: string[]; afterSwitch: string[]; timeoutMs?: number };
  healthCheck: { command?: string; timeoutMs?: number } | null;
  reload: { units: string[]; phpFpm: string[]; timeoutMs: number } | null;
  stale: { mode: NonNullable<ServingOptions['stale']>; waitMs: number };
  keep: number | null;
  /** The hosts of each wave, in order (one wave unless --waves). */
  waves: string[][];
  hosts: FleetDeployPlanHost[];
}

/**
 * The plan of a fleet deploy, worked out as the deploy would (the same checks, refusals and exit
 * codes up to its locks) from every host's root as it stands, read without a lock: nothing is
 * written on any host, not even the root a first deploy would make. What each host would be sent
 * is not planned: the deploy decides it by manifest under its lock, once the build is hashed.
 */
export async function fleetDeployPlan(source: string, root: string | undefined, given: FleetDeployOptions): Promise<FleetDeployPlan> {
  const targets = targetsOf(given, root);
  const options = withLists(given);
  const { sourceReal, scan } = await validateSource(source, options.signal);
  const shared = checkOptions(options, scan);
  const fleet = new FleetRun(targets, options);
  for (const message of buildTopWarnings(topNames(scan.entries))) fleet.emit({ type: 'warning', message });
  const closed = closedBuildWarning(regularFiles(scan.entries), closedDirectoryFix(sourceReal));
  if (closed !== undefined) fleet.emit({ type: 'warning', message: closed });
  const rounded = budgetWarning(options.maxFail, fleet.hosts.length);
  if (rounded !== undefined) fleet.emit({ type: 'warning', message: rounded });
  const rows = new Map<HostRun, Omit<FleetDeployPlanHost, 'host' | 'root' | 'path' | 'error'>>();
  const uses = new Map<HostRun, ProcessUse[] | undefined>();
  const notes = new Map<HostRun, string[]>();
  const report = (id: string | null): FleetDeployPlanHost[] =>
    fleet.hosts.map((h) => ({
      host: h.label,
      root: h.root,
      path: id === null ? '' : path.posix.join(h.root, 'releases', id),
      ...(rows.get(h) ?? { previous: h.state ? currentIdOf(h.state) : null, createsRoot: h.state?.rootExists === false, shared: [], prune: null, notes: [] }),
      ...(h.error ? { error: h.error } : {}),
    }));
  // Refused as the deploy refuses once its hosts are locked: "nothing was switched" (the checks before its locks say "nothing was changed").
  const refusedRows = (id: string | null): unknown[] => report(id).map((r) => ({ ...r, outcome: 'unchanged' }));
  const refused = (id: string | null): DeployError => fleetError(fleet.hosts, 'nothing was switched', { release: id, hosts: refusedRows(id) });
  try {
    await checkHostsBeforeLocks(fleet, options, shared, () => refusedRows(null));
    await fleet.each(fleet.hosts, async (h) => {
      const read = await h.remote.readState({ uses: options.keep !== undefined, rsync: true });
      h.facts = read.facts;
      h.state = read.state;
      uses.set(h, read.uses);
      if (!read.facts.rsync) throw new DeployError('REMOTE', `${h.label}: rsync is not installed there`, { hint: 'install rsync on every target host' });
      // A root the read cannot see may be a path the lock program could not make (a file, a dangling link).
      if (!read.state.rootExists) {
        // Refused in the lock program's words (and the local engine's), with its hint.
        const frames = await h.remote.run(creatableScript(h.root), 'reading the deploy root');
        if (frameValue(frames, 'creatable') !== 'yes') {
          const hint = frameValue(frames, 'hint');
          throw new DeployError('INVALID_ROOT', `${h.label}: ${frameValue(frames, 'why') ?? `cannot create ${h.root}`}`, hint ? { hint } : {});
        }
      }
      notes.set(h, lockAndJournalNotes(read.state, read.facts, 'deploy', options.waitMs ?? 0));
    });
    if (fleet.failed.length > 0) throw refused(null);
    // The plan is the deploy's once it recovered every host (a fleet deploy cut off between waves
    // switches hosts back, one that switched is recorded): what that would do, said per host.
    for (const [h, lines] of fleet.planRecovered(fleet.hosts)) notes.set(h, [...(notes.get(h) ?? []), ...lines.map((l) => recoveryNote(l, 'deploy'))]);
    for (const h of fleet.hosts) {
      const state = h.state as RemoteState;
      const problem = state.rootExists ? currentProblem(h.label, h.root, state.current) : undefined;
      if (problem) h.error = hostError(problem);
      const last = state.rootExists && state.current.kind === 'missing' ? lastLive(viewsOf(state)) : undefined;
      if (last) notes.set(h, [...(notes.get(h) ?? []), `current is missing, though the release log says ${last.id} was live last: ${last.id} would be kept as the release live before this one`]);
    }
    if (fleet.failed.length > 0) throw refused(null);
    const idsPerHost = fleet.hosts.map((h) => [...(h.state?.releases ?? []), ...(h.state?.records.keys() ?? []), ...(h.state?.damaged?.keys() ?? [])]);
    const id = options.releaseId ?? fleetReleaseId(idsPerHost, new Date());
    for (const [i, h] of fleet.hosts.entries()) {
      if (idsPerHost[i]?.includes(id)) h.error = hostError(releaseIdTakenOn(fleet.hosts, h, id));
    }
    if (fleet.failed.length > 0) throw refused(id);
    await fleet.each(fleet.hosts, async (h) => {
      const state = h.state as RemoteState;
      // The deploy's own rule for each shared target (a root not there yet has none of them).
      const links = await checkHostShared(h, shared, options.sharedCreate === true, state.rootExists);
      const previous = currentIdOf(state);
      let prune: FleetDeployPlanHost['prune'] = null;
      if (options.keep !== undefined) {
        const { inUse, inUseCheck } = inUseOf(state, uses.get(h), false);
        const after = [...viewsOf(state), { id, seq: nextSeq(state.records), status: 'complete' as const, previous, createdAt: new Date().toISOString() }];
        const decision = selectPrune(after, { currentId: id, keep: options.keep, ...(inUse ? { inUse } : {}) });
        const said = (list: readonly { release: { id: string }; rule: string; reason: string }[]): { id: string; rule: string; reason: string }[] => list.map(({ release, rule, reason }) => ({ id: release.id, rule, reason }));
        prune = { remove: said(decision.remove), kept: said(decision.keep), inUseCheck };
      }
      rows.set(h, { previous, createsRoot: !state.rootExists, shared: links, prune, notes: notes.get(h) ?? [] });
    });
    if (fleet.failed.length > 0) throw refused(id);
    for (const h of fleet.hosts) for (const note of rows.get(h)?.notes ?? []) fleet.emit({ type: 'warning', message: `${h.label}: ${note}` });
    return {
      dryRun: true,
      release: id,
      source: sourceReal,
      files: scan.files,
      dirs: scan.dirs,
      symlinks: scan.symlinks,
      bytes: scan.bytes,
      strategy: options.strategy === 'copy' ? 'copy' : options.strategy === 'hardlink' ? 'hardlink' : 'auto',
      fsync: options.fsync !== false,
      hooks: { beforeSwitch: options.hooks?.beforeSwitch ?? [], afterSwitch: options.hooks?.afterSwitch ?? [], ...(options.hooks?.timeoutMs === undefined ? {} : { timeoutMs: options.hooks.timeoutMs }) },
      healthCheck: options.healthCheck?.command ? { command: options.healthCheck.command, ...(options.healthCheck.timeoutMs === undefined ? {} : { timeoutMs: options.healthCheck.timeoutMs }) } : null,
      reload: hasReloads(options) ? { units: options.reload?.units ?? [], phpFpm: options.reload?.phpFpm ?? [], timeoutMs: options.reload?.timeoutMs ?? DEFAULT_RELOAD_TIMEOUT_MS } : null,
      stale: { mode: options.stale ?? 'warn', waitMs: staleWaitMs(options.stale ?? 'warn', options.staleWaitMs) },
      keep: options.keep ?? null,
      waves: splitWaves(fleet.hosts, options.waves ?? [{ percent: 100 }]).map((w) => w.map((h) => h.label)),
      hosts: report(id),
    };
  } finally {
    await fleet.close();
  }
}
