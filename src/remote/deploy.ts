/**
 * A release to many hosts, switched all-or-nothing. Phase 1 prepares every host (lock, rsync
 * with --link-dest, shared links, before-switch hooks, durability) and leaves it armed; phase 2
 * starts only when all are armed and switches them at once, one rename each.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import { parseFailpoints } from '../act/failpoints.ts';
import { gitInfo } from '../act/git.ts';
import { nextSeq } from '../act/state.ts';
import { scanSource, type SourceScan } from '../act/copy.ts';
import { DeployError, errnoOf } from '../errors.ts';
import type { DeployOptions } from '../ops/deploy.ts';
import { decideAfterSwitch, fleetReleaseId, switchSkewMs, type FleetJournal } from '../plan/fleet.ts';
import { hostClockSkew } from './fleet.ts';
import { failureBudget, overBudget, splitWaves, type Size } from '../plan/waves.ts';
import { setTimeout as sleep } from 'node:timers/promises';
import { checkHookAndHealth, checkKeep, checkReleaseId, DEFAULT_HEALTH_TIMEOUT_MS, DEFAULT_HOOK_TIMEOUT_MS, signalOf } from '../plan/validate.ts';
import { rollbackTarget, selectPrune } from '../plan/releases.ts';
import { planShared, type SharedPlan } from '../plan/shared.ts';
import type { Frame, RemoteRecord } from './facts.ts';
import { currentIdOf, currentProblem, FleetRun, fleetError, hostError, inUseOf, mergeRecord, resolveTargets, viewsOf, type FleetOptions, type HostError, type HostRun } from './fleet.ts';
import { randomName } from './host.ts';
import { buildManifest, placeContent } from './content.ts';
import { deployArmScript, type Step } from './script.ts';
import { remoteError, type RunningRemote } from './ssh.ts';

export interface FleetDeployOptions
  extends FleetOptions,
    Pick<DeployOptions, 'releaseId' | 'keep' | 'shared' | 'sharedCreate' | 'sharedReplace' | 'strategy' | 'checksum' | 'hooks' | 'healthCheck'> {
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
  copyMs?: number;
  /** When the host confirmed its switch, in ms after the switch was sent. */
  switchedAfterMs?: number;
  health?: 'ok' | 'failed';
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

interface HostDeploy {
  previous: string | null;
  stage: string;
  link: string;
  transferred?: number;
  linked?: number;
  copyMs?: number;
  armed?: RunningRemote;
  switched: boolean;
  switchedAt?: number;
  health?: 'ok' | 'failed';
  /** The host's state after phase 2 is not known (connection lost). */
  lost: boolean;
  outcome: HostOutcome;
  warnings: string[];
}

function validateSource(source: string): { sourceReal: string; scan: SourceScan } {
  if (typeof source !== 'string' || source.length === 0) throw new DeployError('USAGE', 'the source directory is empty');
  let sourceReal: string;
  try {
    sourceReal = fs.realpathSync(source);
    if (!fs.statSync(sourceReal).isDirectory()) throw new DeployError('INVALID_SOURCE', `${source} is not a directory`, { hint: 'give the build output directory' });
  } catch (error) {
    if (error instanceof DeployError) throw error;
    const code = errnoOf(error);
    throw new DeployError('INVALID_SOURCE', code === 'ENOENT' ? `${source} does not exist` : `cannot read ${source}: ${code ?? String(error)}`, { cause: error });
  }
  const scan = scanSource(sourceReal);
  if (scan.entries.length <= 1) throw new DeployError('INVALID_SOURCE', `${source} is empty`, { hint: 'build first: an empty release would take the site down' });
  return { sourceReal, scan };
}

function checkOptions(options: FleetDeployOptions, scan: SourceScan): SharedPlan {
  if (options.releaseId !== undefined) checkReleaseId(options.releaseId);
  if (options.strategy === 'reflink') throw new DeployError('USAGE', '--strategy reflink is not available for fleet deploys', { hint: 'fleet deploys copy with rsync --link-dest (auto, hardlink) or a plain rsync (copy)' });
  if (options.healthCheck?.url !== undefined) {
    throw new DeployError('USAGE', '--health-url is not available for fleet deploys: one URL cannot tell which host answered', {
      hint: "check each host from the host itself: --health-check 'curl -fsS http://localhost/health'",
    });
  }
  if (options.keep !== undefined) checkKeep(options.keep);
  // The same rules as the local engine: a hook timeout of 0 would reach a host as `timeout 0`, no limit at all.
  checkHookAndHealth(options);
  const plan = planShared(options.shared ?? [], scan.entries, { replace: options.sharedReplace === true });
  if (plan.problems.length > 0) throw new DeployError('INVALID_SHARED_PATH', plan.problems.join('; '), { hint: 'shared paths are relative to the release, e.g. --shared .env --shared storage' });
  return plan;
}

/** Deploys `source` to every host's `root` (or its own root), switching all of them or none. */
export async function fleetDeploy(source: string, root: string | undefined, options: FleetDeployOptions): Promise<FleetDeployResult> {
  const started = performance.now();
  const targets = resolveTargets(options.hosts, root);
  const { sourceReal, scan } = validateSource(source);
  const shared = checkOptions(options, scan);
  const git = await gitInfo(sourceReal);
  // Hashed once here, before any host is locked: every host gets the same manifest.
  const build = buildManifest(scan, shared.links);
  const fleet = new FleetRun(targets, options);
  const { emit } = fleet;
  const fleetToken = randomBytes(12).toString('hex');
  const durable = options.fsync !== false;
  const per = new Map<HostRun, HostDeploy>();
  /** Hosts where our lock or prepared release may remain (the cleanup could not reach them). */
  const leftovers = new Set<HostRun>();
  // A host never prepared (its wave did not run, or it failed first) reads as idle, never stored.
  const stateOf = (h: HostRun): HostDeploy => per.get(h) ?? { previous: h.state ? currentIdOf(h.state) : null, stage: '', link: '', switched: false, lost: false, outcome: 'unchanged', warnings: [] };
  let id: string | undefined;
  // Phase 1 stops early on the first failure; aborting kills copies in flight.
  const phase1 = new AbortController();
  const onSignal = (): void => phase1.abort();
  options.signal?.addEventListener('abort', onSignal, { once: true });

  const report = (): FleetDeployHost[] =>
    fleet.hosts.map((h) => {
      const d = per.get(h);
      const previous = d?.previous ?? (h.state ? currentIdOf(h.state) : null);
      const outcome: HostOutcome = d?.outcome ?? 'unchanged';
      const current = outcome === 'switched' ? (id ?? null) : outcome === 'unknown' ? null : previous;
      return {
        host: h.label,
        root: h.root,
        outcome,
        current,
        previous,
        reached: h.state !== undefined,
        leftovers: leftovers.has(h) || outcome === 'unknown' || d?.lost === true,
        ...(d?.transferred === undefined ? {} : { transferred: d.transferred }),
        ...(d?.linked === undefined ? {} : { linked: d.linked }),
        ...(d?.copyMs === undefined ? {} : { copyMs: d.copyMs }),
        ...(d?.switchedAt === undefined ? {} : { switchedAfterMs: Math.round(d.switchedAt) }),
        ...(d?.health ? { health: d.health } : {}),
        warnings: d?.warnings ?? [],
        recovered: h.recovered,
        ...(h.error ? { error: h.error } : {}),
      };
    });

  /** Undoes phase 1 on a host: disarm, remove what was prepared, release the lock. */
  const abortHost = async (h: HostRun): Promise<void> => {
    const d = per.get(h);
    if (d?.armed) {
      d.armed.send('abort');
      d.armed.end();
      await d.armed.done;
    }
    if (!h.remote.locked) return;
    if (!h.remote.holding) {
      // The lock went with the connection: another command may hold it by now, so touch nothing.
      leftovers.add(h);
      h.remote.released();
      return;
    }
    const steps: Step[] = [];
    if (d) steps.push({ op: 'remove-tmp', name: d.stage }, { op: 'remove-tmp', name: d.link });
    if (id !== undefined && h.state && d) {
      const target = rollbackTarget(viewsOf(h.state), d.previous);
      const trash = randomName('trash');
      steps.push(
        { op: 'remove-release', id, trash, protect: [d.previous, target?.id].filter((x): x is string => typeof x === 'string') },
        { op: 'remove-record', id },
        { op: 'clear-journal' },
        { op: 'durable' },
        { op: 'delete-trash', trash },
      );
    }
    try {
      await h.remote.unlock(steps);
      if (d) d.outcome = 'unchanged';
    } catch (error) {
      h.error ??= hostError(error);
      leftovers.add(h);
      emit({ type: 'warning', message: `${h.label}: could not clean up (${hostError(error).message}); the next command on it recovers` });
    }
  };

  const abortAll = async (why: string): Promise<never> => {
    emit({ type: 'step', message: `phase 1 failed (${why}): no host switches; cleaning up` });
    await Promise.all(fleet.hosts.map((h) => abortHost(h)));
    if (options.signal?.aborted) {
      const sig = signalOf(options.signal.reason);
      throw new DeployError('INTERRUPTED', `interrupted by ${sig} before the switch; no host switched and the deploy was undone`, { signal: sig, details: { hosts: report() } });
    }
    throw fleetError(fleet.hosts, 'nothing was switched', { release: id ?? null, hosts: report() });
  };

  const marks: number[] = [];
  const mark = (): void => {
    marks.push(performance.now());
  };
  try {
    // Lock every host and read where it stands.
    await fleet.each(
      fleet.hosts,
      async (h) => {
        const locked = await h.remote.lock({ command: options.command ?? `fleet deploy of ${sourceReal} from ${os.hostname()}`, create: true, waitMs: options.waitMs, signal: options.signal, uses: options.keep !== undefined });
        if (locked.tookOver) emit({ type: 'warning', message: `${h.label}: took over a stale lock: ${locked.tookOver.reason}` });
        if (!locked.facts.rsync) throw new DeployError('REMOTE', `${h.label}: rsync is not installed there`, { hint: 'install rsync on every target host' });
        h.facts = locked.facts;
        h.state = locked.state;
        fleet.step(h, 'locked');
      },
      { failFast: true, signal: phase1.signal },
    );
    if (fleet.failed.length > 0 || phase1.signal.aborted) return await abortAll(fleet.failed.length > 0 ? 'a host could not be locked' : 'interrupted');

    await fleet.recover(fleet.hosts);
    for (const h of fleet.hosts) {
      const state = h.state;
      if (!state) continue;
      const problem = currentProblem(h.label, h.root, state.current);
      if (problem) h.error = hostError(problem);
    }
    if (fleet.failed.length > 0) return await abortAll('a host cannot be deployed to');

    // One id for the fleet: new on every host, after every id any host holds.
    const idsPerHost = fleet.hosts.map((h) => [...(h.state?.releases ?? []), ...(h.state?.records.keys() ?? [])]);
    id = options.releaseId ?? fleetReleaseId(idsPerHost, new Date());
    const releaseId = id;
    for (const h of fleet.hosts) {
      if (idsPerHost[fleet.hosts.indexOf(h)]?.includes(releaseId)) {
        h.error = hostError(new DeployError('RELEASE_EXISTS', `${h.label}: release ${releaseId} already exists`, { hint: 'release ids are never reused: pick a new id' }));
      }
    }
    if (fleet.failed.length > 0) return await abortAll('the release id is taken');
    mark();
    emit({ type: 'step', message: `release ${releaseId}: copying ${scan.files} files to ${fleet.hosts.length} host${fleet.hosts.length === 1 ? '' : 's'}` });

    const createdAt = new Date().toISOString();
    /** Phase 1 on one host: content placed by manifest, release prepared, the switch armed. */
    const prepareHost = async (h: HostRun): Promise<void> => {
        const state = h.state;
        const facts = h.facts;
        const locked = h.remote.locked;
        if (!state || !facts || !locked) throw new DeployError('INTERNAL', `${h.label}: not locked`);
        const previous = currentIdOf(state);
        const d: HostDeploy = { previous, stage: randomName('stage'), link: randomName('current'), switched: false, lost: false, outcome: 'unchanged', warnings: [] };
        per.set(h, d);
        const prevDigest = previous === null ? undefined : state.records.get(previous)?.manifest;
        const copied = await placeContent(
          h.remote.ssh,
          {
            sourceDir: sourceReal,
            root: h.root,
            stage: d.stage,
            id: releaseId,
            build,
            previous: previous === null ? null : { id: previous, digest: prevDigest },
            incremental: options.strategy !== 'copy',
            exclude: shared.links.map((l) => l.path),
          },
          phase1.signal,
        );
        d.transferred = copied.transferred;
        d.linked = copied.linked;
        d.copyMs = copied.durationMs;
        d.warnings.push(...copied.warnings);
        for (const w of copied.warnings) emit({ type: 'warning', message: `${h.label}: ${w}` });
        for (const n of copied.notes) fleet.step(h, n);
        fleet.step(h, `copied (${copied.transferred ?? '?'} of ${scan.files} files sent, ${copied.linked} linked and checked, ${copied.durationMs} ms)`);
        if (phase1.signal.aborted) throw new DeployError('INTERRUPTED', `${h.label}: interrupted`);

        const journal = (phase: 'copying' | 'ready' | 'switched'): string =>
          JSON.stringify({ v: 1, op: 'deploy', token: locked.token, pid: locked.pid, startedAt: createdAt, release: releaseId, previous, phase, fleet: { token: fleetToken } } satisfies FleetJournal);
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
          strategy: d.linked !== undefined && d.linked > 0 ? 'rsync + manifest links' : 'rsync',
          ...(d.transferred === undefined ? {} : { copied: d.transferred }),
          ...(d.linked === undefined ? {} : { linked: d.linked }),
          previous,
          fleet: { token: fleetToken },
          manifest: build.digest,
        };
        // What prune does once the switch commits: decided now, from the state read under the lock.
        const views = viewsOf(state);
        const after = [...views, { id: releaseId, seq: record.seq, status: 'complete' as const }];
        const { inUse } = inUseOf(state, locked.uses, false);
        const decision = options.keep === undefined ? undefined : selectPrune(after, { currentId: releaseId, keep: options.keep, ...(inUse ? { inUse } : {}) });
        const prunedAt = new Date().toISOString();
        const prune = (decision?.remove ?? []).map(({ release }) => ({
          id: release.id,
          trash: randomName('trash'),
          record: JSON.stringify(mergeRecord(state.records, release.id, { prunedAt })),
        }));
        const script = deployArmScript({
          root: h.root,
          fsync: durable,
          id: releaseId,
          previous,
          stage: d.stage,
          shared: shared.links,
          sharedCreate: options.sharedCreate === true,
          beforeSwitch: options.hooks?.beforeSwitch ?? [],
          journalCopying: journal('copying'),
          journalReady: journal('ready'),
          recordPending: JSON.stringify(record),
          manifest: true,
          tail: {
            id: releaseId,
            backTo: previous,
            link: d.link,
            journalSwitched: journal('switched'),
            afterSwitch: options.hooks?.afterSwitch ?? [],
            hookTimeoutS: Math.ceil((options.hooks?.timeoutMs ?? DEFAULT_HOOK_TIMEOUT_MS) / 1000),
            ...(options.healthCheck?.command ? { healthCheck: { command: options.healthCheck.command, timeoutS: (options.healthCheck.timeoutMs ?? DEFAULT_HEALTH_TIMEOUT_MS) / 1000 } } : {}),
            commitRecords: [releaseId],
            backRecords: previous === null ? [releaseId] : [releaseId, previous],
            prune,
            protect: (decision?.keep ?? []).map((k) => k.release.id),
            token: locked.token,
            ...(locked.gate ? { gate: locked.gate } : {}),
          },
        });
        const armed = h.remote.ssh.start(script, { onStderrLine: fleet.output(h) });
        d.armed = armed;
        let frame: Frame;
        try {
          frame = await armed.waitFor(['ready', 'error']);
        } catch {
          throw remoteError(h.label, await armed.done, 'preparing the release');
        }
        if (frame.tag === 'error') throw remoteError(h.label, await armed.done, 'preparing the release');
        fleet.step(h, 'prepared and armed');
    };

    /** Phase 2 on a wave's armed hosts: the word goes to all of them in the same tick; then their hooks and health checks. */
    const switchWave = async (wave: readonly HostRun[], report: FleetWave): Promise<void> => {
      emit({ type: 'step', message: `switching ${wave.length} host${wave.length === 1 ? '' : 's'} to ${releaseId}` });
      const sentAt = performance.now();
      for (const h of wave) stateOf(h).armed?.send('go');
      await Promise.all(
        wave.map(async (h) => {
          const d = stateOf(h);
          const armed = d.armed;
          if (!armed) return;
          try {
            const f = await armed.waitFor(['switched', 'switch-failed']);
            if (f.tag === 'switched') {
              d.switched = true;
              d.outcome = 'switched';
              d.switchedAt = (f.at ?? performance.now()) - sentAt;
            } else {
              h.error = { code: 'IO', message: `${h.label}: the switch failed: ${f.value.trim() || 'rename refused'}` };
            }
          } catch {
            d.lost = true;
            d.outcome = 'unknown';
            h.error = { code: 'REMOTE', message: `${h.label}: connection lost after the switch was sent: it is on ${releaseId} or still on ${d.previous ?? 'no release'}`, hint: `find out with: atomic-deploy status ${h.root} --host ${h.label}` };
          }
        }),
      );
      if (marks.length === 2) mark();
      await fleetFailpoint('fleet-switched');
      const switchedHere = wave.filter((h) => stateOf(h).switched);
      report.skewMs = Math.round(switchSkewMs(switchedHere.map((h) => stateOf(h).switchedAt ?? 0)));
      if (switchedHere.length > 0) emit({ type: 'step', message: `${switchedHere.length} of ${wave.length} switched (skew ${report.skewMs} ms)` });

      // After-switch hooks and health checks run on the hosts; each then waits for the decision.
      await Promise.all(
        switchedHere.map(async (h) => {
          const d = stateOf(h);
          const armed = d.armed;
          if (!armed) return;
          try {
            await armed.waitFor(['waiting']);
          } catch {
            d.lost = true;
            h.error = { code: 'REMOTE', message: `${h.label}: connection lost after it switched to ${releaseId}`, hint: `the next command on it reconciles: atomic-deploy status ${h.root} --host ${h.label}` };
            return;
          }
          for (const f of armed.frames) if (f.tag === 'warning') d.warnings.push(f.value);
          const health = armed.frames.find((f) => f.tag === 'health')?.value;
          if (health === 'ok' || health === 'failed') d.health = health;
          if (health === 'failed') h.error = { code: 'HEALTH_CHECK_FAILED', message: `${h.label}: the health check failed` };
        }),
      );
    };

    // Waves: each is prepared, switched and health-checked before the next starts; every switched
    // host stays armed (holding its lock) until the whole rollout is decided, so any of them can go back.
    const waveHosts = splitWaves(fleet.hosts, options.waves ?? [{ percent: 100 }]);
    const budget = failureBudget(options.maxFail, fleet.hosts.length);
    const waves: FleetWave[] = waveHosts.map((hs, i) => ({ wave: i + 1, hosts: hs.map((h) => h.label), result: 'skipped' }));
    const ran = new Set<HostRun>();
    let failures = 0;
    let interrupted = false;
    const failedNow = (h: HostRun): boolean => h.error !== undefined || stateOf(h).lost || stateOf(h).health === 'failed' || !stateOf(h).switched;
    for (const [i, wave] of waveHosts.entries()) {
      const report = waves[i] as FleetWave;
      if (i > 0 && (options.wavePauseMs ?? 0) > 0) {
        emit({ type: 'step', message: `pausing ${Math.round((options.wavePauseMs ?? 0) / 100) / 10} s before wave ${i + 1}` });
        await sleep(options.wavePauseMs, undefined, { signal: phase1.signal }).catch(() => undefined);
      }
      if (phase1.signal.aborted) {
        interrupted = true;
        break;
      }
      const waveStarted = performance.now();
      report.startedAt = new Date().toISOString();
      for (const h of wave) ran.add(h);
      await fleet.each(wave, prepareHost, { failFast: overBudget(failures + 1, budget), signal: phase1.signal });
      await fleetFailpoint('fleet-armed');
      for (const h of wave) if (h.error === undefined && !h.remote.holding) h.error = hostError(new DeployError('REMOTE', `${h.label}: the connection holding its lock was lost`));
      const unprepared = wave.filter((h) => h.error !== undefined);
      if (ran.size === wave.length && (phase1.signal.aborted || overBudget(failures + unprepared.length, budget))) {
        // Nothing has switched anywhere yet: undo every host, as an all-or-nothing deploy always did.
        return await abortAll(phase1.signal.aborted ? 'interrupted' : unprepared.some((h) => !h.remote.holding) ? 'a host lost its lock' : 'a host could not be prepared');
      }
      if (i === 0) mark();
      await Promise.all(unprepared.map((h) => abortHost(h)));
      failures += unprepared.length;
      if (phase1.signal.aborted) interrupted = true;
      if (!interrupted && !overBudget(failures, budget)) {
        const armedHosts = wave.filter((h) => h.error === undefined);
        await switchWave(armedHosts, report);
        failures += armedHosts.filter(failedNow).length;
      }
      const failedHere = wave.filter(failedNow).map((h) => h.label);
      report.durationMs = Math.round(performance.now() - waveStarted);
      report.result = failedHere.length === 0 ? 'ok' : 'failed';
      report.failed = failedHere;
      emit({ type: 'step', message: `wave ${i + 1} of ${waveHosts.length}: ${wave.length - failedHere.length} of ${wave.length} host${wave.length === 1 ? '' : 's'} switched and healthy${failedHere.length > 0 ? `, failed: ${failedHere.join(', ')}` : ''} (failures ${failures} of ${budget} allowed)` });
      if (interrupted || overBudget(failures, budget)) break;
    }
    options.signal?.removeEventListener('abort', onSignal);
    while (marks.length < 3) mark();
    const switched = fleet.hosts.filter((h) => stateOf(h).switched);
    const skewMs = Math.max(0, ...waves.map((w) => w.skewMs ?? 0));

    const decision = decideAfterSwitch(
      fleet.hosts.map((h) => {
        const d = stateOf(h);
        return { host: h.label, switched: d.switched, lost: d.lost, ...(d.health ? { health: d.health } : {}), skipped: !ran.has(h) || (interrupted && !d.switched), failed: h.error !== undefined && !d.switched };
      }),
      options.onFailure ?? 'rollback',
      interrupted ? -1 : budget,
    );
    const allGood = decision.ok;
    const keep = options.onFailure === 'keep';
    const commitHosts = fleet.hosts.filter((h) => decision.commit.includes(h.label));
    const backHosts = fleet.hosts.filter((h) => decision.back.includes(h.label));
    const healthFailed = fleet.hosts.some((h) => stateOf(h).health === 'failed');
    const reason = decision.reason;
    const now = (): string => new Date().toISOString();

    await Promise.all([
      ...commitHosts.map(async (h) => {
        const d = stateOf(h);
        const armed = d.armed;
        if (!armed) return;
        armed.send('commit');
        armed.send(JSON.stringify(finalRecord(h, d, 'complete', { activatedAt: now(), durationMs: Math.round(performance.now() - started), ...(d.health === 'failed' ? { reason: 'kept after a failed health check (--on-failure keep)' } : {}) })));
        armed.end();
        try {
          await armed.waitFor(['committed']);
        } catch {
          const result = await armed.done;
          h.error ??= hostError(remoteError(h.label, result, 'recording the deploy'));
        }
      }),
      ...backHosts.map(async (h) => {
        const d = stateOf(h);
        const armed = d.armed;
        if (!armed) return;
        const locked = h.remote.locked;
        const status = healthFailed && d.health === 'failed' ? 'failed' : 'rolled-back';
        armed.send('back');
        armed.send(JSON.stringify({ v: 1, op: 'deploy', token: locked?.token ?? '', pid: locked?.pid ?? 0, startedAt: createdAt, release: releaseId, previous: d.previous, phase: 'rolling-back', reason, fleet: { token: fleetToken } } satisfies FleetJournal));
        armed.send(JSON.stringify(finalRecord(h, d, status, { endedAt: now(), reason })));
        if (d.previous !== null) armed.send(JSON.stringify(mergeRecord(h.state?.records ?? new Map(), d.previous, { status: 'complete', activatedAt: now() })));
        armed.end();
        try {
          await armed.waitFor(['back']);
          d.outcome = 'switched-back';
        } catch {
          const result = await armed.done;
          d.outcome = result.frames.some((f) => f.tag === 'switched-back') ? 'switched-back' : 'unknown';
          h.error ??= hostError(remoteError(h.label, result, 'switching back'));
        }
      }),
      // Hosts that never switched: their prepared release goes, as in phase 1.
      ...fleet.hosts.filter((h) => decision.undo.includes(h.label)).map((h) => abortHost(h)),
    ]);
    for (const h of fleet.hosts) {
      const d = stateOf(h);
      if (d.lost) continue;
      if (d.armed) await d.armed.done;
      if (d.armed && (d.armed.frames.some((f) => f.tag === 'committed' || f.tag === 'back'))) h.remote.released();
      else h.remote.stopHolder();
    }

    mark();
    // Read now: each host sends its clock reading just after its switch confirmation.
    const hostSkewMs = hostClockSkew(switched.flatMap((h) => stateOf(h).armed ?? []));
    const [a = started, b = a, c = b, e = c] = marks;
    const timings = { lockMs: Math.round(a - started), prepareMs: Math.round(b - a), switchMs: Math.round(c - b), finishMs: Math.round(e - c) };
    const result: FleetDeployResult = { release: releaseId, hosts: report(), skewMs, ...(hostSkewMs === undefined ? {} : { hostSkewMs }), files: scan.files, bytes: scan.bytes, durationMs: Math.round(performance.now() - started), timings, waves, tolerated: decision.tolerated };
    if (interrupted) {
      const sig = signalOf(options.signal?.reason);
      throw new DeployError('INTERRUPTED', `interrupted by ${sig} during the rollout; every switched host was ${keep ? 'left on' : 'switched back from'} ${releaseId}`, { signal: sig, details: { ...result } });
    }
    if (allGood || decision.tolerated.length > 0) {
      if (decision.tolerated.length > 0) emit({ type: 'warning', message: `within the failure budget (--max-fail ${budget}): ${decision.tolerated.join(', ')} failed and ${decision.tolerated.length === 1 ? 'is' : 'are'} not on ${releaseId} (${reason})` });
      const live = fleet.hosts.length - decision.tolerated.length;
      emit({ type: 'step', message: `release ${releaseId} is live on ${live} host${live === 1 ? '' : 's'}` });
      return result;
    }
    const everyoneBack = fleet.hosts.every((h) => stateOf(h).outcome === 'switched-back' || stateOf(h).outcome === 'unchanged');
    if (!keep && everyoneBack && switched.length > 0) {
      throw new DeployError('ROLLED_BACK', `release ${releaseId} was switched back on every host: ${reason}`, {
        hint: healthFailed ? 'see the health check output above; the release stays on the hosts as failed for inspection' : 'see the errors above and deploy again',
        details: { ...result },
      });
    }
    throw fleetError(fleet.hosts, keep ? `release ${releaseId} is live on some hosts only (--on-failure keep)` : `release ${releaseId} did not switch everywhere`, { ...result });
  } finally {
    options.signal?.removeEventListener('abort', onSignal);
    await fleet.close();
  }

  function finalRecord(h: HostRun, d: HostDeploy, status: RemoteRecord['status'], change: Partial<RemoteRecord>): RemoteRecord {
    const releaseId = id as string;
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
      strategy: d.linked !== undefined && d.linked > 0 ? 'rsync + manifest links' : 'rsync',
      ...(d.transferred === undefined ? {} : { copied: d.transferred }),
      ...(d.linked === undefined ? {} : { linked: d.linked }),
      previous: d.previous,
      fleet: { token: fleetToken },
      manifest: build.digest,
      ...change,
    };
  }
}

/**
 * Fleet failpoints, armed by the same variable as the local ones: `fleet-armed=sleep:3000` gives
 * a test time to break a host between the phases; `fleet-switched=crash` dies before the decision.
 */
async function fleetFailpoint(name: 'fleet-armed' | 'fleet-switched'): Promise<void> {
  const action = parseFailpoints(process.env.ATOMIC_DEPLOY_FAILPOINTS).get(name);
  if (action?.kind === 'sleep') await new Promise((resolve) => setTimeout(resolve, action.ms));
  else if (action?.kind === 'crash') {
    process.kill(process.pid, 'SIGKILL');
    // SIGKILL arrives asynchronously; never run past the point meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 60_000));
  }
}
