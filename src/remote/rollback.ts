/** Rolling a fleet back: every host to one release, switched all at once, or none of them. */
import { DeployError } from '../errors.ts';
import type { ServingOptions } from '../ops/serving.ts';
import type { FleetStaleReport } from '../plan/remote-stale.ts';
import type { StaleReport } from '../plan/serving.ts';
import { planFleetRollback, withoutHost } from '../plan/fleet.ts';
import type { Journal } from '../plan/journal.ts';
import { checkReleaseId, signalOf, withLists } from '../plan/validate.ts';
import { switchSkewMs } from '../plan/fleet.ts';
import { currentIdOf, currentProblem, fleetIsIdle, lockAndJournalNotes, FleetRun, hostClockSkew, fleetError, hostError, recordLine, targetsOf, viewsOf, type FleetOptions, type HostError, type HostRun } from './fleet.ts';
import { awaitArmed, awaitVerdict, commitSwitch, disarm, releasedByProgram, switchBack, switchTogether } from './armed.ts';
import { missingRootError, randomName } from './host.ts';
import { bookkeepingFailure } from './deploy.ts';
import { recoveryNote } from '../ops/recover.ts';
import { rollbackArmScript } from './script.ts';
import { connectionLost, remoteError, withOsReason, type RunningRemote } from './ssh.ts';
import type { RemoteState } from './facts.ts';
import { awaitHostFreshness, checkFleetServingOptions, checkHostReloadTargets, fleetStaleFailure, fleetStaleOf, reloadHost, staleCheckNotMade } from './stale.ts';
import { shellWord } from '../plan/paths.ts';
import { checkTargetMode, targetCheckVerdict, uncheckedVerdict, type CheckFound, type TargetCheck, type TargetCheckMode } from '../plan/target-check.ts';
import { checkHostRelease } from './verify.ts';
import { spentReserveWarning } from '../act/reserve.ts';

export interface FleetRollbackOptions extends FleetOptions, ServingOptions {
  /** Every host goes to this release (it must exist on all of them). */
  to?: string;
  /** Recorded on the release rolled back from. */
  reason?: string;
  /** Read every host and say which release each would go to; change nothing (no lock, no recovery). */
  dryRun?: boolean;
  /** The release each moving host goes to, re-hashed there against its manifest: after the rollback with `warn` (default), before any host switches with `fail` (ops/rollback.ts). */
  verify?: TargetCheckMode;
}

export interface FleetRollbackHost {
  host: string;
  root: string;
  /** switched: now on the target; unchanged: it already was (or nothing changed); unknown: connection lost; would-switch: --dry-run. */
  outcome: 'switched' | 'unchanged' | 'unknown' | 'would-switch';
  current: string | null;
  previous: string | null;
  recovered: string[];
  /** What went wrong after its switch without undoing it (a failed reload, a record it could not write), as a local rollback's `warnings`. */
  warnings?: string[];
  /** What the check of the release it goes to found there (a host that moves, unless `verify: 'off'`). */
  contents?: TargetCheck;
  error?: HostError;
}

export interface FleetRollbackResult {
  release: string;
  hosts: FleetRollbackHost[];
  skewMs: number;
  hostSkewMs?: number;
  /** A signal came after the switch (during the reloads or the stale-process wait): the rollback stands, as locally. */
  interruptedAfterSwitch?: true;
  /** Processes still on the release each host left, named with their host. */
  stale?: FleetStaleReport;
  /** --dry-run: nothing was changed; `outcome` is what would happen to each host. */
  dryRun?: true;
  /** --dry-run: what would stand in the way or come first on a host (a lock, an interrupted operation), as a local dry run notes. */
  notes?: string[];
  /** Every host was on `release` already (`--to` it): none was switched, reloaded or recorded, as a local rollback says it. */
  unchanged?: true;
}

/** The release a host is on when the rollback finds it (a dangling current's id too). */
interface From {
  from: string | null;
}

interface Armed extends From {
  session: RunningRemote;
}

interface Switched extends Armed {
  afterMs: number;
}

/**
 * Where one host stands in a fleet rollback; each phase carries what the next one needs. A host
 * not in the map is idle: it needs no switch, or it failed before arming.
 */
type HostPhase =
  /** Its program ended without arming (the release is missing there, the connection went...). */
  | ({ phase: 'refused' } & From)
  | ({ phase: 'armed' } & Armed)
  | ({ phase: 'switch-failed' } & Armed)
  /** `go` was sent and the answer lost: it is on either release. */
  | ({ phase: 'switch-lost' } & Armed)
  | ({ phase: 'switched' } & Switched)
  /** Switched, then the connection was lost before it waited for the decision. */
  | ({ phase: 'unreachable' } & Switched)
  | ({ phase: 'committed' } & Switched)
  /** Another host did not switch: this one went back to where it was. */
  | ({ phase: 'back' } & Switched)
  | ({ phase: 'back-lost' } & Switched)
  /** Its `commit` or `back` came after another command took the host's lock over: it changed nothing, and the host is that command's. */
  | ({ phase: 'taken-over' } & Switched);

function outcomeOf(p: HostPhase): FleetRollbackHost['outcome'] {
  switch (p.phase) {
    case 'switched':
    case 'unreachable':
    case 'committed':
      return 'switched';
    case 'switch-lost':
    case 'back-lost':
    case 'taken-over':
      return 'unknown';
    default:
      return 'unchanged';
  }
}

function sessionOf(p: HostPhase | undefined): RunningRemote | undefined {
  if (p === undefined || p.phase === 'refused') return undefined;
  return p.session;
}

/** Switches every host to the previous good release (the same one everywhere), or to `to`. */
export async function fleetRollback(root: string | undefined, given: FleetRollbackOptions): Promise<FleetRollbackResult> {
  const targets = targetsOf(given, root);
  const options = withLists(given);
  if (options.to !== undefined) {
    // As locally: the hint lists the releases (a deploy's --release-id is no help here).
    const sameRoot = targets.every((x) => x.root === targets[0]?.root);
    checkReleaseId(options.to, `list the releases with: atomic-deploy releases ${sameRoot && targets[0] ? `${shellWord(targets[0].root)} ${targets.map((x) => `--host ${shellWord(x.label)}`).join(' ')}` : 'with the same hosts and config'}`);
  }
  checkFleetServingOptions(options);
  const mode: TargetCheckMode = checkTargetMode(options.verify);
  const fleet = new FleetRun(targets, options);
  const { emit } = fleet;
  const per = new Map<HostRun, HostPhase>();
  let target: string | undefined;
  const staleReports = new Map<HostRun, StaleReport>();
  // Hosts whose scan never answered after their switch (`--stale fail` cannot vouch for them).
  const unchecked = new Set<HostRun>();
  // Switched, but the commit was not heard (a lost connection): live, the record left to the next command there.
  const unrecorded = new Map<HostRun, HostError>();
  // Switched, but its commit failed over a connection that held (the host said why): live, its journal left for the next command, its lock released.
  const bookkeeping = new Map<HostRun, HostError>();
  const unlockedRead = new Map<HostRun, RemoteState>();
  /** Each host's warnings after its switch, said as they come and kept for its row. */
  const warned = new Map<HostRun, string[]>();
  const warn = (h: HostRun, message: string, hint?: string): void => {
    warned.set(h, [...(warned.get(h) ?? []), message]);
    emit({ type: 'warning', message, ...(hint ? { hint } : {}) });
  };
  const checked = new Map<HostRun, TargetCheck>();
  /**
   * Each moving host re-hashes the release it goes to (`verify --host`'s program): the local
   * rollback's check and verdict, each message naming its host. `fail` checks `before` any host is
   * armed: a host that differs, or cannot be checked, fails and no host switches. `warn` checks
   * `after` the rollback stood everywhere and the locks were released, and never fails a host.
   */
  const checkTargets = async (hosts: readonly HostRun[], id: string, when: 'before' | 'after' | 'dry-run'): Promise<void> => {
    if (mode === 'off') return;
    const dryRun = when === 'dry-run';
    // The host's messages begin with its name; the verdict puts it back where it belongs.
    await fleet.each(
      hosts,
      async (h) => {
        const state = h.state;
        if (!state) return;
        if (when === 'after' && options.signal?.aborted) {
          checked.set(h, { check: 'unchecked', problem: `interrupted by ${signalOf(options.signal.reason)}` });
          return;
        }
        fleet.step(h, `checking release ${id}${when === 'after' ? ', now live,' : ''} against its manifest`);
        let found: CheckFound;
        try {
          const check = await checkHostRelease(h, id, state);
          found = check.kind === 'checked' ? { kind: 'checked', differences: check.differences } : { kind: check.kind, problem: withoutHost(check.error.message, h.label) };
        } catch (error) {
          if (when === 'after' && options.signal?.aborted) {
            checked.set(h, { check: 'unchecked', problem: `interrupted by ${signalOf(options.signal.reason)}` });
            return;
          }
          if (mode === 'fail' || options.signal?.aborted) throw error;
          const unchecked = uncheckedVerdict(withoutHost(error instanceof DeployError ? error.message : String(error), h.label), { release: id, dryRun, switched: when === 'after', where: `${h.label}: ` });
          checked.set(h, unchecked.contents);
          warn(h, unchecked.warning.message);
          return;
        }
        const verdict = targetCheckVerdict(found, { release: id, mode, dryRun, switched: when === 'after', where: `${h.label}: `, verifyCommand: `atomic-deploy verify ${shellWord(h.root)} --host ${shellWord(h.label)} --release ${shellWord(id)}` });
        checked.set(h, verdict.contents);
        if (verdict.refusal) throw new DeployError(verdict.refusal.code, verdict.refusal.message, { hint: verdict.refusal.hint });
        if (verdict.step) fleet.step(h, withoutHost(verdict.step, h.label));
        if (verdict.warning) warn(h, verdict.warning.message, verdict.warning.hint);
      },
      { signal: options.signal },
    );
  };
  const report = (): FleetRollbackHost[] =>
    fleet.hosts.map((h) => {
      const p = per.get(h);
      const seen = h.state ?? unlockedRead.get(h);
      const from = p?.from ?? (seen ? currentIdOf(seen) : null);
      const outcome = p ? outcomeOf(p) : h.error && !h.remote.connected ? 'unknown' : 'unchanged';
      return {
        host: h.label,
        root: h.root,
        outcome,
        current: outcome === 'switched' ? (target ?? null) : outcome === 'unknown' ? null : from,
        previous: from,
        recovered: h.recovered,
        ...((warned.get(h)?.length ?? 0) > 0 ? { warnings: [...(warned.get(h) ?? [])] } : {}),
        ...(checked.has(h) ? { contents: checked.get(h) } : {}),
        ...(h.error ? { error: h.error } : unrecorded.has(h) ? { error: unrecorded.get(h) } : {}),
      };
    });
  const releaseAll = async (): Promise<void> => {
    await Promise.all(
      fleet.hosts.map(async (h) => {
        const session = sessionOf(per.get(h));
        if (session) {
          await disarm(session);
          if (releasedByProgram(session)) h.remote.released();
        }
        if (!h.remote.locked) return;
        // Another command's lock now: never this one's to release or clear.
        if (per.get(h)?.phase === 'taken-over') {
          h.remote.released();
          return;
        }
        // Its journal says it switched and the next command there records it: the journal and the lock are left for that.
        if (unrecorded.has(h)) {
          h.remote.released();
          return;
        }
        // Its commit stopped before the program released the lock: released here, its journal left for the next command, as a fleet deploy's.
        if (bookkeeping.has(h) && h.remote.holding) {
          await h.remote.unlock().catch(() => h.remote.stopHolder());
          return;
        }
        // Without its holder the lock may be someone else's by now: leave the host to recovery.
        if (!h.remote.holding) {
          h.remote.released();
          return;
        }
        await h.remote.unlock(session ? [{ op: 'clear-journal' }, { op: 'durable' }] : []).catch((error: unknown) => {
          h.error ??= hostError(error);
        });
      }),
    );
  };

  // Before the switch, a signal ends the rollback as nothing else: no host failed, the hosts not yet
  // reached were skipped, and the exit code is the signal's (a fleet deploy says the same).
  const notRolledBack = (): DeployError => {
    if (options.signal?.aborted) {
      const sig = signalOf(options.signal.reason);
      return new DeployError('INTERRUPTED', `interrupted by ${sig} before the switch; no host switched and nothing was rolled back`, { signal: sig, details: { hosts: report() } });
    }
    return fleetError(fleet.hosts, 'nothing was rolled back', { hosts: report() });
  };

  const refuse = (plan: Extract<ReturnType<typeof planFleetRollback>, { ok: false }>): DeployError => {
    for (const p of plan.problems) {
      const h = fleet.hosts.find((x) => x.label === p.host);
      if (h) h.error = { code: p.code, message: p.message };
    }
    const first = plan.problems[0];
    return new DeployError(first?.code ?? 'UNKNOWN_RELEASE', `nothing was rolled back: ${plan.problems.map((p) => p.message).join('; ')}`, {
      hint: plan.hint ?? `list releases with: atomic-deploy releases <root> ${fleet.hosts.map((h) => `--host ${shellWord(h.label)}`).join(' ')}`,
      details: { hosts: report() },
    });
  };

  /**
   * The plan a rollback would follow, from each host's root as it is (read without its lock, as a
   * local dry run reads): the same refusals, exit codes and hints; a host's lock or an interrupted
   * operation's leftovers are notes, since the rollback would wait for the one and recover the other first.
   */
  const dryRun = async (): Promise<FleetRollbackResult> => {
    const notes = new Map<HostRun, string[]>();
    const before = new Map<HostRun, string | null>();
    await fleet.each(fleet.hosts, async (h) => {
      const { facts, state } = await h.remote.readState();
      h.facts = facts;
      h.state = state;
      if (!state.rootExists) throw missingRootError(h.label, h.root);
      before.set(h, currentIdOf(state));
      notes.set(h, lockAndJournalNotes(state, facts, 'rollback', options.waitMs ?? 0));
    });
    if (fleet.failed.length > 0) throw fleetError(fleet.hosts, 'nothing was rolled back', { hosts: report() });
    // The plan is the rollback's once it recovered every host (a fleet deploy cut off between
    // waves switches hosts back, and the target moves with them): what that would do, said.
    for (const [h, lines] of fleet.planRecovered(fleet.hosts)) notes.set(h, [...(notes.get(h) ?? []), ...lines.map((l) => recoveryNote(l, 'rollback'))]);
    for (const h of fleet.hosts) {
      const problem = h.state ? currentProblem(h.label, h.root, h.state.current, options.to !== undefined) : undefined;
      if (problem) h.error = hostError(problem);
    }
    if (fleet.failed.length > 0) throw fleetError(fleet.hosts, 'nothing was rolled back', { hosts: report() });
    const states = fleet.hosts.map((h) => ({ h, state: h.state as RemoteState }));
    const plan = planFleetRollback(
      states.map(({ h, state }) => ({ host: h.label, current: currentIdOf(state), ordered: viewsOf(state), empty: state.empty })),
      options.to,
    );
    if (!plan.ok) throw refuse(plan);
    const said = fleet.hosts.flatMap((h) => (notes.get(h) ?? []).map((n) => `${h.label}: ${n}`));
    for (const message of said) emit({ type: 'warning', message });
    const moving = new Set(plan.moves.map((m) => m.host));
    await checkTargets(fleet.hosts.filter((h) => moving.has(h.label)), plan.target, 'dry-run');
    if (fleet.failed.length > 0) throw fleetError(fleet.hosts, 'nothing was rolled back', { hosts: report() });
    // Each host as it is now (recovery may move it first: its notes say so), and whether it would switch.
    const hosts = report().map((row, i) => {
      const now = before.get(fleet.hosts[i] as HostRun) ?? null;
      return { ...row, current: now, previous: now, ...(moving.has(row.host) ? { outcome: 'would-switch' as const } : {}) };
    });
    return { release: plan.target, hosts, skewMs: 0, dryRun: true, notes: said, ...(plan.moves.length === 0 ? { unchanged: true as const } : {}) };
  };

  try {
    // Every host's units and php-fpm pid files, as the local rollback checks its own, before anything else: exit 2, nothing changed.
    // (No round trip without reloads: checkHostReloadTargets returns at once.)
    await fleet.each(fleet.hosts, (h) => checkHostReloadTargets(h, options));
    if (fleet.failed.length > 0) throw notRolledBack();
    if (options.dryRun === true) return await dryRun();
    // A refusal (an unknown --to, nothing to go back to, already there) is decided before the
    // locks when every host is idle, as the local rollback does: then no host changes, not even
    // its root's times. One read per host over the connection the lock then uses; a host that
    // cannot be read, or any host not idle, leaves the decision to the locked read below.
    const early = await Promise.all(fleet.hosts.map((h) => h.remote.readState().then((r) => r.state, () => undefined)));
    // What the report of a rollback stopped before the locked read shows (never evidence for recovery).
    fleet.hosts.forEach((h, i) => {
      const state = early[i];
      if (state) unlockedRead.set(h, state);
    });
    const idle = early.filter((s): s is RemoteState => s !== undefined);
    if (idle.length === fleet.hosts.length && fleetIsIdle(idle) && fleet.hosts.every((h, i) => !currentProblem(h.label, h.root, (idle[i] as RemoteState).current, options.to !== undefined))) {
      const plan = planFleetRollback(
        fleet.hosts.map((h, i) => ({ host: h.label, current: currentIdOf(idle[i] as RemoteState), ordered: viewsOf(idle[i] as RemoteState), empty: (idle[i] as RemoteState).empty })),
        options.to,
      );
      if (!plan.ok) {
        fleet.hosts.forEach((h, i) => (h.state = idle[i]));
        throw refuse(plan);
      }
      // Every host on it already: no lock taken, nothing changed anywhere.
      if (plan.moves.length === 0) return { release: plan.target, hosts: report(), skewMs: 0, unchanged: true };
    }
    await fleet.each(
      fleet.hosts,
      async (h) => {
        // A root that is not there is refused by the lock program, with the local hint (deploy to it first).
        const locked = await h.remote.lock({ command: options.command ?? 'fleet rollback', create: false, waitMs: options.waitMs, signal: options.signal, spend: true });
        if (locked.tookOver) emit({ type: 'warning', message: `${h.label}: took over a stale lock: ${locked.tookOver.reason}` });
        if (locked.spentReserve) emit({ type: 'warning', message: `${h.label}: ${spentReserveWarning(h.remote.root)}` });
        h.facts = locked.facts;
        h.state = locked.state;
        if (!locked.state.rootExists) throw missingRootError(h.label, h.root);
      },
      { failFast: true, signal: options.signal },
    );
    if (fleet.failed.length === 0) await fleet.recover(fleet.hosts);
    for (const h of fleet.hosts) {
      const problem = h.state ? currentProblem(h.label, h.root, h.state.current, options.to !== undefined) : undefined;
      if (problem) h.error ??= hostError(problem);
    }
    // Every host was read under its lock, or the rollback stops here.
    const read = fleet.hosts.flatMap((h) => (h.state && h.remote.locked ? [{ h, state: h.state, locked: h.remote.locked }] : []));
    if (fleet.failed.length > 0 || read.length < fleet.hosts.length) {
      await releaseAll();
      throw notRolledBack();
    }
    const plan = planFleetRollback(
      read.map(({ h, state }) => ({ host: h.label, current: currentIdOf(state), ordered: viewsOf(state), empty: state.empty })),
      options.to,
    );
    if (!plan.ok) {
      await releaseAll();
      throw refuse(plan);
    }
    if (plan.moves.length === 0) {
      // Found there once locked and recovered: the locks go, nothing else happens.
      await releaseAll();
      if (fleet.failed.length > 0) throw notRolledBack();
      return { release: plan.target, hosts: report(), skewMs: 0, unchanged: true };
    }
    target = plan.target;
    const releaseTarget = plan.target;
    const movers = read.filter(({ h }) => plan.moves.some((m) => m.host === h.label));
    // `fail`: under the locks, before any host is armed: a refusal, or a signal, leaves every host as it was.
    if (mode === 'fail') {
      await checkTargets(movers.map(({ h }) => h), releaseTarget, 'before');
      if (fleet.failed.length > 0 || options.signal?.aborted) {
        await releaseAll();
        throw notRolledBack();
      }
    }
    const now = (): string => new Date().toISOString();
    await fleet.each(
      movers.map(({ h }) => h),
      async (h) => {
        const mover = movers.find((m) => m.h === h);
        if (!mover) return;
        const { state, locked } = mover;
        const from = currentIdOf(state) ?? (state.current.kind === 'dangling' ? state.current.id : null);
        const journal: Journal = { v: 1, op: 'rollback', token: locked.token, pid: locked.pid, startedAt: now(), release: releaseTarget, previous: from ?? '', phase: 'switching' };
        const script = rollbackArmScript({
          root: h.root,
          fsync: options.fsync !== false,
          journalSwitching: JSON.stringify(journal),
          tail: {
            id: releaseTarget,
            backTo: from,
            link: randomName('current'),
            afterSwitch: [],
            hookTimeoutS: 300,
            commitRecords: from === null ? [releaseTarget] : [releaseTarget, from],
            backRecords: [],
            prune: [],
            protect: [],
            token: locked.token,
            ...(locked.gate ? { gate: locked.gate } : {}),
          },
        });
        const answer = await awaitArmed(h.remote.ssh.start(script, { onStderrLine: fleet.output(h) }));
        if (answer.kind === 'refused') {
          per.set(h, { phase: 'refused', from });
          const frames = answer.result.frames;
          // The program's words, with the OS's reason its tools gave on stderr.
          const said = `${h.label}: ${withOsReason(frames.find((x) => x.tag === 'message')?.value ?? 'could not prepare the switch', answer.result.stderr)}`;
          throw new DeployError(frames.find((x) => x.tag === 'error')?.value === 'UNKNOWN_RELEASE' ? 'UNKNOWN_RELEASE' : 'REMOTE', said);
        }
        per.set(h, { phase: 'armed', from, session: answer.session });
      },
      { failFast: true, signal: options.signal },
    );
    if (fleet.failed.length > 0 || options.signal?.aborted) {
      await releaseAll();
      throw notRolledBack();
    }
    const armed = movers.flatMap(({ h }) => {
      const p = per.get(h);
      return p?.phase === 'armed' ? [{ h, p }] : [];
    });

    emit({ type: 'step', message: `switching ${movers.length} host${movers.length === 1 ? '' : 's'} to ${releaseTarget}` });
    const answers = await switchTogether(armed.map(({ p }) => p.session));
    const switched: { h: HostRun; p: Switched }[] = [];
    for (const [i, { h, p }] of armed.entries()) {
      const a = answers[i];
      if (a?.kind === 'switched') {
        const s: Switched = { ...p, afterMs: a.afterMs };
        per.set(h, { ...s, phase: 'switched' });
        switched.push({ h, p: s });
      } else if (a?.kind === 'switch-failed') {
        per.set(h, { ...p, phase: 'switch-failed' });
        h.error = { code: 'IO', message: `${h.label}: the switch failed: ${a.message}` };
      } else {
        per.set(h, { ...p, phase: 'switch-lost' });
        h.error = { code: 'REMOTE', message: `${h.label}: connection lost after the switch was sent: it is on ${releaseTarget} or still on ${p.from ?? 'no release'}` };
      }
    }
    const skewMs = Math.round(switchSkewMs(switched.map(({ p }) => p.afterMs)));
    const allSwitched = switched.length === movers.length;
    await Promise.all(
      switched.map(async ({ h, p }) => {
        const verdict = await awaitVerdict(p.session);
        if (verdict.kind === 'lost') {
          per.set(h, { ...p, phase: 'unreachable' });
          h.error ??= { code: 'REMOTE', message: `${h.label}: connection lost after it switched to ${releaseTarget}` };
          return;
        }
        if (allSwitched) {
          // Still under the lock: reloads (a failure warns, as an after-switch hook's does), then the wait, then the record with its count.
          const failure = await reloadHost(h, options, emit, fleet.output(h, 'reload'));
          if (failure) warn(h, failure);
          const stale = await awaitHostFreshness(h, releaseTarget, p.from, options, emit, options.signal).catch((error: unknown) => {
            warn(h, staleCheckNotMade(h, error));
            unchecked.add(h);
            return undefined;
          });
          if (stale) staleReports.set(h, stale);
          const t = now();
          const records = [recordLine(h.state, releaseTarget, { status: 'complete', activatedAt: t, ...(stale?.check === 'proc' ? { staleProcesses: stale.processes.length } : {}) })];
          // Forward (`--to` a newer release), the release left stays good, as on a local root.
          const order = h.state ? viewsOf(h.state).map((v) => v.id) : [];
          const forward = p.from !== null && order.indexOf(releaseTarget) > order.indexOf(p.from);
          if (p.from !== null && !forward) records.push(recordLine(h.state, p.from, { status: 'rolled-back', endedAt: t, reason: options.reason ?? 'rolled back' }));
          const done = await commitSwitch(p.session, records);
          if (done.kind === 'committed') {
            for (const w of done.warnings) warn(h, `${h.label}: ${w}`);
            per.set(h, { ...p, phase: 'committed' });
          } else if (done.kind === 'taken-over') {
            // Another command took this host over while this one was silent: it changed nothing there.
            h.error ??= { code: 'REMOTE', message: `${h.label}: ${done.why}` };
            per.set(h, { ...p, phase: 'taken-over' });
          } else if (connectionLost(done.result)) {
            // The connection went before the commit was heard: the host stays on the release, its journal saying it
            // switched, and the next command there records it. The rollback stands, as a fleet deploy's does.
            const lost = hostError(remoteError(h.label, done.result, 'recording the rollback'));
            unrecorded.set(h, lost);
            emit({ type: 'warning', message: `${lost.message}: it is on ${releaseTarget}, and the next command there finishes its record` });
          } else {
            // The host's program said why it could not finish its commit (a journal it could not remove):
            // the switch stands there all the same, and its journal stays for the next command to finish the record.
            const failed = hostError(remoteError(h.label, done.result, 'recording the rollback'));
            h.error ??= failed;
            bookkeeping.set(h, failed);
            emit({ type: 'warning', message: `${failed.message}; release ${releaseTarget} stays live there, and the next command there finishes its record` });
          }
        } else {
          // No journal line and no records: the host goes back to where it was, as if nothing happened.
          const back = await switchBack(p.session, ['']);
          per.set(h, { ...p, phase: back.kind === 'back' ? 'back' : back.kind === 'taken-over' ? 'taken-over' : 'back-lost' });
          if (back.kind === 'taken-over') h.error ??= { code: 'REMOTE', message: `${h.label}: ${back.why}` };
        }
      }),
    );
    await releaseAll();
    // `warn`: once the rollback stands everywhere and the locks are released, as the local rollback checks after its switch.
    if (mode === 'warn' && allSwitched && fleet.failed.length === 0) {
      await checkTargets(switched.map(({ h }) => h), releaseTarget, 'after');
    }
    const hostSkewMs = hostClockSkew(switched.map(({ p }) => p.session));
    const stale = fleetStaleOf(fleet.hosts, staleReports);
    const result: FleetRollbackResult = { release: releaseTarget, hosts: report(), skewMs, ...(hostSkewMs === undefined ? {} : { hostSkewMs }), ...(stale ? { stale } : {}), ...(allSwitched && options.signal?.aborted === true ? { interruptedAfterSwitch: true as const } : {}) };
    // As a local rollback whose record failed after its switch (and a fleet deploy's): exit 1, the rollback standing everywhere.
    if (allSwitched && bookkeeping.size > 0 && fleet.failed.every((h) => bookkeeping.has(h))) {
      throw bookkeepingFailure(fleet.hosts, releaseTarget, fleet.hosts.length, bookkeeping, { ...result }, 'rollback');
    }
    if (allSwitched && fleet.failed.length === 0) {
      emit({ type: 'step', message: `${releaseTarget} is live on ${fleet.hosts.length} host${fleet.hosts.length === 1 ? '' : 's'}` });
      const notChecked = fleet.hosts.filter((h) => unchecked.has(h)).map((h) => h.label);
      const staleError = options.signal?.aborted === true ? undefined : fleetStaleFailure(options, stale, { ...result }, notChecked, `the rollback to ${releaseTarget} stands`);
      if (staleError) throw staleError;
      return result;
    }
    throw fleetError(fleet.hosts, allSwitched ? `rolled back to ${releaseTarget}, with errors` : `the rollback to ${releaseTarget} did not switch everywhere; switched hosts went back`, { ...result });
  } finally {
    await fleet.close();
  }
}
