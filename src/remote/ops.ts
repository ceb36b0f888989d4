/** status, releases, prune and unlock across a fleet: each host on its own, one report for all. */
import { checkKeep, checkOptionsArgument, signalOf } from '../plan/validate.ts';
import type { ReleaseRecord } from '../act/state.ts';
import type { CurrentState } from '../act/switch.ts';
import { DeployError } from '../errors.ts';
import type { LockStatus } from '../ops/status.ts';
import { summarizeFleet, type FleetSummary } from '../plan/fleet.ts';
import type { ProcessUse } from '../plan/in-use.ts';
import { isTmpLeftover } from '../plan/journal.ts';
import { IGNORED_REASON, ignoredEntry, lastLiveField, pruneIncompleteMessage, rollbackTarget, roleOf, selectPrune, type KeepRule, type PruneDecision, type ReleaseRole, type RemoveRule } from '../plan/releases.ts';
import { recoveryNote, type ReleaseView } from '../ops/recover.ts';
import { judgeRemoteLock, type HostFacts, type RemoteState } from './facts.ts';
import { currentIdOf, currentProblem, FleetRun, lockAndJournalNotes, fleetError, hostError, inUseOf, readRootProblemOf, recordLine, targetsOf, viewsOf, FLEET_EXAMPLE, type FleetOptions, type HostError, type HostRun } from './fleet.ts';
import { pruneFailures, type Step } from './script.ts';
import { stagingName } from './staging.ts';
import { shellWord } from '../plan/paths.ts';

export { fleetDeploy, fleetDeployPlan, type FleetDeployOptions, type FleetDeployPlan, type FleetDeployResult, type FleetDeployHost, type FleetWave } from './deploy.ts';
export { fleetRollback, type FleetRollbackOptions, type FleetRollbackResult, type FleetRollbackHost } from './rollback.ts';
export type { FleetHostSpec, FleetOptions } from './fleet.ts';

function lockStatusOf(state: RemoteState, facts: HostFacts): LockStatus | null {
  if (!state.lock) return null;
  const info = judgeRemoteLock(state.lock, facts);
  return {
    pid: info.owner?.pid ?? null,
    host: info.owner?.host ?? null,
    user: info.owner?.user ?? null,
    since: info.owner?.since ?? new Date(state.lock.mtimeMs ?? facts.nowMs).toISOString(),
    state: info.verdict.state,
    reason: info.verdict.reason,
  };
}

/** What the journal names: a running operation under a lock that is not stale (as the local status says), or the leftovers of an interrupted one. */
function leftoversOf(state: RemoteState, lock: FleetStatusHost['lock']): { leftovers: string[]; running?: string } {
  const found: string[] = [];
  const j = state.journal;
  const live = lock !== null && lock.state !== 'stale';
  if (j.kind === 'ok' && live) return { leftovers: [], running: `${j.journal.op} of release ${j.journal.release} (phase ${j.journal.phase})` };
  if (j.kind === 'ok') found.push(`journal of an interrupted ${j.journal.op} of release ${j.journal.release} (phase ${j.journal.phase})`);
  if (j.kind === 'garbage') found.push('an unreadable journal');
  // A running deploy's staging copy and temp links are its own, not leftovers.
  if (live) return { leftovers: found };
  for (const name of state.tmp.filter(isTmpLeftover)) found.push(`.tmp/${name}`);
  for (const name of state.hidden ?? []) found.push(`releases/${name}`);
  return { leftovers: found };
}

async function readAll(fleet: FleetRun): Promise<void> {
  await fleet.connectAll();
  await fleet.each(
    fleet.hosts.filter((h) => !h.error),
    async (h) => {
      const { facts, state } = await h.remote.readState();
      h.facts = facts;
      h.state = state;
    },
  );
}

export interface FleetStatusHost {
  host: string;
  root: string;
  current: string | null;
  currentState: CurrentState['kind'] | 'unknown';
  lock: LockStatus | null;
  leftovers: string[];
  /** The operation the live lock holder is running, from its journal (as the local status's `running`). */
  running?: string;
  recovered: string[];
  /** With `current` missing: the release to restore, the last good one the host's log says went live (as the local status's `lastLive`). */
  lastLive?: string;
  error?: HostError;
}

export interface FleetStatusResult extends FleetSummary {
  hosts: FleetStatusHost[];
}

/**
 * Where every host stands. Leftovers of an interrupted operation are recovered where nobody
 * live holds the lock, with the whole fleet's state as evidence: a host left on the release of
 * a fleet deploy that did not switch everywhere is switched back.
 */
export async function fleetStatus(root: string | undefined, options: FleetOptions & { readOnly?: boolean }): Promise<FleetStatusResult> {
  const fleet = new FleetRun(targetsOf(options, root), options);
  try {
    await readAll(fleet);
    if (!options.readOnly) {
      const needy = fleet.hosts.filter((h) => {
        // A folder that is not a deploy root is reported, never locked: the lock would write .tmp/ into it.
        if (!h.state || !h.facts || readRootProblemOf(h.label, h.root, h.state)) return false;
        const lock = lockStatusOf(h.state, h.facts);
        // A journal under a live lock is a deploy running, not leftovers (leftoversOf says none then).
        return leftoversOf(h.state, lock).leftovers.length > 0 && (lock === null || lock.state === 'stale');
      });
      const locked: HostRun[] = [];
      await fleet.each(needy, async (h) => {
        try {
          const l = await h.remote.lock({ command: 'fleet status', create: false });
          h.state = l.state;
          h.facts = l.facts;
          if (l.tookOver) h.recovered.push(`took over a stale lock: ${l.tookOver.reason}`);
          locked.push(h);
        } catch (error) {
          // A deploy that started meanwhile holds it now; it recovers by itself.
          if (!(error instanceof DeployError && error.code === 'LOCKED')) throw error;
        }
      });
      if (locked.length > 0) {
        await fleet.recover(locked, fleet.hosts);
        await fleet.each(locked, async (h) => {
          await h.remote.unlock();
          const fresh = await h.remote.readState();
          h.state = fresh.state;
          h.facts = fresh.facts;
        });
      }
    }
    const hosts = fleet.hosts.map((h): FleetStatusHost => {
      const state = h.state;
      const notRoot = state ? readRootProblemOf(h.label, h.root, state) : undefined;
      const lock = state && h.facts ? lockStatusOf(state, h.facts) : null;
      const found = state ? leftoversOf(state, lock) : { leftovers: [] };
      return {
        host: h.label,
        root: h.root,
        current: state ? currentIdOf(state) : null,
        currentState: state ? (state.rootExists ? state.current.kind : 'missing') : 'unknown',
        lock,
        leftovers: found.leftovers,
        ...(found.running !== undefined ? { running: found.running } : {}),
        recovered: h.recovered,
        ...(state?.rootExists === true && state.current.kind === 'missing' && !notRoot ? lastLiveField(viewsOf(state)) : {}),
        ...(h.error ? { error: h.error } : notRoot ? { error: hostError(notRoot) } : {}),
      };
    });
    return { ...summarizeFleet(hosts.map((h) => ({ host: h.host, current: h.error ? undefined : h.current }))), hosts };
  } finally {
    await fleet.close();
  }
}

/**
 * One release of a host as the local `releases --json` gives it: its log record's fields (none for
 * a release without one) with its id, whether it is current and its role.
 */
export type FleetReleaseInfo = Partial<Omit<ReleaseRecord, 'id'>> & {
  id: string;
  current: boolean;
  role: ReleaseRole;
  /** Its log record is there but damaged (why): listed, ordered and rolled back to as one without, as locally. */
  recordDamaged?: string;
};

export interface FleetReleasesHost {
  host: string;
  root: string;
  current: string | null;
  /** Newest first; null when the host's root was not read (not reached): not known, which `[]` (none) would deny. */
  releases: FleetReleaseInfo[] | null;
  /** Directories of the host's releases/ that are no release (`lost+found`), with why; absent when none. */
  ignored?: { id: string; reason: string }[];
  error?: HostError;
}

export interface FleetReleasesResult extends FleetSummary {
  hosts: FleetReleasesHost[];
}

/** Every host's releases, newest first, current marked. Reads only. */
export async function fleetReleases(root: string | undefined, options: FleetOptions): Promise<FleetReleasesResult> {
  const fleet = new FleetRun(targetsOf(options, root), options);
  try {
    await readAll(fleet);
    const hosts = fleet.hosts.map((h): FleetReleasesHost => {
      const state = h.state;
      if (!state) return { host: h.label, root: h.root, current: null, releases: null, ...(h.error ? { error: h.error } : {}) };
      // Not a deploy root: nothing it holds is a release (a folder of its own named releases/ included).
      const notRoot = readRootProblemOf(h.label, h.root, state);
      if (notRoot) return { host: h.label, root: h.root, current: null, releases: null, error: hostError(notRoot) };
      const currentId = currentIdOf(state);
      const views = viewsOf(state);
      const previous = rollbackTarget(views, currentId);
      // As the local `releases`: a directory no release id can name is left out, and said ignored.
      const ignored = views.filter((v) => ignoredEntry(v, currentId));
      return {
        host: h.label,
        root: h.root,
        current: currentId,
        ...(ignored.length > 0 ? { ignored: ignored.map((v) => ({ id: v.id, reason: IGNORED_REASON })) } : {}),
        releases: views.filter((v) => !ignored.includes(v)).reverse().map((v) => ({ ...v.record, id: v.id, current: v.id === currentId, role: roleOf(v, currentId, previous?.id), ...(state.damaged?.has(v.id) ? { recordDamaged: state.damaged.get(v.id) } : {}) })),
      };
    });
    return { ...summarizeFleet(hosts.map((h) => ({ host: h.host, current: h.error ? undefined : h.current }))), hosts };
  } finally {
    await fleet.close();
  }
}

export interface FleetPruneHost {
  host: string;
  root: string;
  current: string | null;
  /** With the file count and size its record gives, as a local prune's `removed` has them. */
  removed: { id: string; rule: RemoveRule; reason: string; files?: number; bytes?: number }[];
  kept: { id: string; rule: KeepRule; reason: string }[];
  /** --dry-run: what the prune would meet first there (a lock, an interrupted operation), as a local dry run's `notes`. */
  notes?: string[];
  /** `proc`: running processes on the host were checked; `unavailable`: it has no /proc; `forced`: --force. */
  inUseCheck: 'proc' | 'unavailable' | 'forced';
  recovered: string[];
  /** Releases chosen but not moved out of `releases/` (immutable, another owner's): they stay, as locally. */
  failed?: { id: string; message: string }[];
  /** This host is another name of that one (the same root, locked by this very command): pruned there, not again. */
  sameAs?: string;
  error?: HostError;
}

export interface FleetPruneResult {
  dryRun: boolean;
  keep: number;
  hosts: FleetPruneHost[];
}

/** What prune removes from one host, judged by the local rules from the state and process uses read under its lock. */
export function decideHostPrune(state: RemoteState, uses: readonly ProcessUse[] | undefined, options: { keep: number; force?: boolean }): { decision: PruneDecision<ReleaseView>; inUseCheck: 'proc' | 'unavailable' | 'forced' } {
  const writing = new Set(state.journal.kind === 'ok' ? [state.journal.journal.release] : []);
  const { inUse, inUseCheck } = inUseOf(state, uses, options.force);
  return { decision: selectPrune(viewsOf(state), { currentId: currentIdOf(state), keep: options.keep, writing, force: options.force, ...(inUse ? { inUse } : {}) }), inUseCheck };
}

/**
 * A host's prune: releases moved out and recorded under the lock (`before`), their trash deleted
 * once it is released (`after`). A release that cannot be moved stays and is reported (a
 * `prune-failed` frame); the others still go.
 */
export function hostPruneSteps(state: RemoteState, decision: PruneDecision<ReleaseView>, now: string): { before: Step[]; after: Step[] } {
  const protect = decision.keep.map((k) => k.release.id);
  const before: Step[] = [];
  const after: Step[] = [];
  // Oldest first: if we stop midway, what is left is the newer, likelier-wanted releases.
  for (const { release } of [...decision.remove].reverse()) {
    const trash = stagingName(state, 'trash');
    before.push({ op: 'prune-release', id: release.id, trash, protect, record: recordLine(state, release.id, { prunedAt: now }) });
    after.push({ op: 'remove-staged', name: trash });
  }
  if (before.length > 0) before.push({ op: 'durable' });
  return { before, after };
}

/**
 * Each host is pruned on its own: a fleet deploy cut off on this host is not this host's alone to
 * finish (finished without the other hosts' evidence, it could split the fleet for good), so a
 * journal naming other hosts refuses the prune there, and its dry run alike.
 */
function unfinishedFleetDeploy(h: HostRun, state: RemoteState): DeployError | undefined {
  const j = state.journal.kind === 'ok' ? state.journal.journal : undefined;
  const others = j?.op === 'deploy' && Array.isArray(j.fleet?.hosts) ? j.fleet.hosts.filter((n) => n !== h.label) : [];
  if (!j || others.length === 0) return undefined;
  const all = [h.label, ...others];
  return new DeployError('INTERRUPTED', `${h.label}: a fleet deploy of ${j.release} to ${all.join(', ')} was cut off here and is not finished; prune does not finish it on one host alone`, {
    hint: `finish it first with every host of that deploy: atomic-deploy status ${shellWord(h.root)} ${all.map((n) => `--host ${shellWord(n)}`).join(' ')}`,
  });
}

/** Prunes every host with the local rules (current, rollback target and the newest `keep` good releases stay). */
export async function fleetPrune(root: string | undefined, options: FleetOptions & { keep: number; dryRun?: boolean; force?: boolean }): Promise<FleetPruneResult> {
  checkOptionsArgument(options, FLEET_EXAMPLE);
  checkKeep(options.keep);
  const fleet = new FleetRun(targetsOf(options, root), options);
  const out = new Map<HostRun, Pick<FleetPruneHost, 'removed' | 'kept' | 'current' | 'inUseCheck' | 'sameAs' | 'notes'>>();
  try {
    await fleet.connectAll();
    await fleet.each(
      fleet.hosts.filter((h) => !h.error),
      async (h) => {
        let uses: ProcessUse[] | undefined;
        let recovering: string[] = [];
        if (options.dryRun) {
          const read = await h.remote.readState({ uses: !options.force });
          h.facts = read.facts;
          h.state = read.state;
          uses = read.uses;
          // Noted as read (a lock, a journal), then planned as the prune would find the host once
          // it recovered it (with its own state as evidence, as the prune's recovery has).
          const unfinished = unfinishedFleetDeploy(h, read.state);
          if (unfinished) throw unfinished;
          recovering = lockAndJournalNotes(read.state, read.facts, 'prune', options.waitMs ?? 0);
          if (!readRootProblemOf(h.label, h.root, read.state)) recovering.push(...(fleet.planRecovered([h]).get(h) ?? []).map((l) => recoveryNote(l, 'prune')));
        } else {
          // A signal before this host was begun: it is left as it is (a local prune stops between releases).
          if (options.signal?.aborted) throw notPrunedHere(h, options.signal);
          // Read before the lock, whose program makes .tmp/ in the folder: one that is not a deploy root is refused untouched.
          const notRoot = readRootProblemOf(h.label, h.root, (await h.remote.readState()).state);
          if (notRoot) throw notRoot;
          let l;
          try {
            l = await h.remote.lock({ command: 'fleet prune', create: false, waitMs: options.waitMs, signal: options.signal, uses: !options.force, spend: true });
          } catch (error) {
            // One machine under two names (docs/fleet.md: prune may go over such a root twice):
            // the other name holds the lock and prunes it. Refusing here, after that one removed
            // releases, said "nothing was changed" (exit 2) about a root that had changed.
            const twin = error instanceof DeployError ? error.details?.sameAs : undefined;
            if (typeof twin !== 'string') throw error;
            out.set(h, { current: null, removed: [], kept: [], inUseCheck: 'unavailable', sameAs: twin });
            fleet.step(h, `the same root as ${twin}: pruned there`);
            return;
          }
          h.facts = l.facts;
          h.state = l.state;
          uses = l.uses;
          const unfinished = unfinishedFleetDeploy(h, l.state);
          if (unfinished) throw unfinished;
          await fleet.recover([h]);
        }
        const state = h.state;
        const notRoot = readRootProblemOf(h.label, h.root, state);
        if (notRoot) throw notRoot;
        const problem = currentProblem(h.label, h.root, state.current);
        if (problem) throw problem;
        const currentId = currentIdOf(state);
        const { decision, inUseCheck } = decideHostPrune(state, uses, options);
        const chosen = { current: currentId, inUseCheck, kept: decision.keep.map(({ release, rule, reason }) => ({ id: release.id, rule, reason })) };
        const removed = decision.remove.map(({ release, rule, reason }) => ({ id: release.id, rule, reason, ...(release.record ? { files: release.record.files, bytes: release.record.bytes } : {}) }));
        // Until the host answers, nothing is known to be gone.
        out.set(h, { ...chosen, removed: options.dryRun ? removed : [] });
        if (options.dryRun) {
          for (const note of recovering) fleet.emit({ type: 'warning', message: `${h.label}: ${note}` });
          if (recovering.length > 0) out.set(h, { ...chosen, removed, notes: recovering });
          return;
        }
        // A signal while this host was locked and read: its lock goes, and nothing is removed there.
        if (options.signal?.aborted) throw notPrunedHere(h, options.signal);
        const { before, after } = hostPruneSteps(state, decision, new Date().toISOString());
        const frames = await h.remote.unlock(before, after).catch((error: unknown) => {
          // Cut off midway (a lost connection): some of the releases may be gone already, so the row's
          // empty `removed` is not known to be true; the error says so and how to look.
          if (!(error instanceof DeployError) || removed.length === 0) throw error;
          throw new DeployError(error.code, `${error.message}; whether ${removed.map((r) => r.id).join(', ')} ${removed.length === 1 ? 'was' : 'were'} pruned there is not known`, {
            hint: `list what the host holds with: atomic-deploy releases ${shellWord(h.root)} --host ${shellWord(h.label)}`,
            ...(error.details ? { details: error.details } : {}),
          });
        });
        const failed = pruneFailures(frames);
        const gone = removed.filter((r) => !failed.some((f) => f.id === r.id));
        out.set(h, { ...chosen, removed: gone, ...(failed.length > 0 ? { failed } : {}) });
        if (gone.length > 0) fleet.step(h, `pruned ${gone.map((r) => r.id).join(', ')}`);
        const first = failed[0];
        if (first !== undefined) {
          // As the local prune's: the others are gone, these stay; exit 1.
          throw new DeployError('IO', `${h.label}: ${pruneIncompleteMessage(gone.map((r) => r.id), failed.map((f) => f.id), first.message)}`, {
            hint: 'an immutable or append-only attribute (lsattr -d <path>, chattr -i <path>), or another owner: it stays until it can be moved',
          });
        }
      },
    );
    await fleet.each(fleet.hosts.filter((h) => h.remote.locked), async (h) => void (await h.remote.unlock()));
    const result: FleetPruneResult = {
      dryRun: options.dryRun === true,
      keep: options.keep,
      hosts: fleet.hosts.map((h) => ({
        host: h.label,
        root: h.root,
        ...(out.get(h) ?? { current: h.state ? currentIdOf(h.state) : null, removed: [], kept: [], inUseCheck: 'unavailable' as const }),
        recovered: h.recovered,
        ...(h.error ? { error: h.error } : {}),
      })),
    };
    if (options.signal?.aborted && !options.dryRun) throw interruptedPrune(fleet.hosts, result, options.signal);
    if (fleet.failed.length > 0) throw fleetError(fleet.hosts, 'prune failed on some hosts', { ...result });
    return result;
  } finally {
    await fleet.close();
  }
}

/** A host a signal kept from pruning: nothing was removed there. */
function notPrunedHere(h: HostRun, signal: AbortSignal): DeployError {
  return new DeployError('INTERRUPTED', `${h.label}: interrupted by ${signalOf(signal.reason)} before its prune; nothing was removed there`, { signal: signalOf(signal.reason) });
}

/**
 * A prune a signal reached, as the local one says it (exit 128+n): what each host removed (a host
 * whose removal had begun finishes it: its program runs to its end), and which hosts it left as
 * they were; another host's failure is named too.
 */
function interruptedPrune(hosts: readonly HostRun[], result: FleetPruneResult, signal: AbortSignal): DeployError {
  const sig = signalOf(signal.reason);
  const pruned = result.hosts.filter((r) => r.removed.length > 0).map((r) => `${r.removed.map((x) => x.id).join(', ')} on ${r.host}`);
  const untouched = result.hosts.filter((r) => r.removed.length === 0 && r.error?.code === 'INTERRUPTED').map((r) => r.host);
  const failed = hosts.filter((h) => h.error !== undefined && h.error.code !== 'INTERRUPTED').map((h) => h.error?.message ?? '');
  const parts = [pruned.length > 0 ? `pruned ${pruned.join('; ')}` : 'nothing was pruned', ...(untouched.length > 0 && pruned.length > 0 ? [`nothing on ${untouched.join(', ')}`] : []), ...failed];
  return new DeployError('INTERRUPTED', `interrupted by ${sig}: ${parts.join('; ')}`, { signal: sig, details: { ...result } });
}

export interface FleetUnlockHost {
  host: string;
  root: string;
  unlocked: boolean;
  holder: { pid: number; host: string; user: string; since: string } | null;
  reason: string;
  error?: HostError;
}

/** Removes each host's lock when its owner is provably gone; anything else needs `force`. */
export async function fleetUnlock(root: string | undefined, options: FleetOptions & { force?: boolean }): Promise<{ hosts: FleetUnlockHost[] }> {
  const fleet = new FleetRun(targetsOf(options, root), options);
  const out = new Map<HostRun, Omit<FleetUnlockHost, 'host' | 'root' | 'error'>>();
  try {
    await fleet.connectAll();
    await fleet.each(
      fleet.hosts.filter((h) => !h.error),
      async (h) => {
        const { state, info } = await h.remote.inspectLock();
        const notRoot = readRootProblemOf(h.label, h.root, state);
        if (notRoot) throw notRoot;
        if (!info) {
          out.set(h, { unlocked: false, holder: null, reason: 'not locked' });
          return;
        }
        const holder = info.owner ? { pid: info.owner.pid, host: info.owner.host, user: info.owner.user, since: info.owner.since } : null;
        if (info.verdict.state !== 'stale') {
          const who = info.owner ? `pid ${info.owner.pid} of ${info.owner.user}@${info.owner.host} since ${info.owner.since}${info.owner.command ? ` (${info.owner.command})` : ''}` : 'an unknown process';
          if (!options.force) {
            out.set(h, { unlocked: false, holder, reason: info.verdict.reason });
            throw new DeployError(info.verdict.state === 'foreign' ? 'LOCK_FOREIGN_HOST' : 'LOCKED', `${h.label}: the lock is held by ${who}: ${info.verdict.reason}`, {
              hint: `if you are sure no deploy is running there, run: atomic-deploy unlock ${shellWord(h.root)} --host ${shellWord(h.label)} --force`,
            });
          }
          fleet.emit({ type: 'warning', message: `${h.label}: forcibly removing a lock held by ${who}` });
        }
        const removed = await h.remote.takeOver(info, true);
        out.set(h, { unlocked: removed, holder, reason: removed ? info.verdict.reason : 'the lock changed hands meanwhile; run unlock again' });
      },
    );
    // A host without a row failed before its lock was judged: not reached, or a root that is not a deploy root there.
    const unjudged = (h: HostRun): string => (h.error === undefined ? 'not reached' : h.error.code === 'INVALID_ROOT' ? 'not a deploy root' : h.remote.connected ? 'not read' : 'not reached');
    const hosts = fleet.hosts.map((h) => ({ host: h.label, root: h.root, ...(out.get(h) ?? { unlocked: false, holder: null, reason: unjudged(h) }), ...(h.error ? { error: h.error } : {}) }));
    const anyUnlocked = hosts.some((h) => h.unlocked);
    if (fleet.failed.length > 0) throw fleetError(fleet.hosts, anyUnlocked ? 'some locks stay' : 'no lock was removed', { hosts });
    return { hosts };
  } finally {
    await fleet.close();
  }
}
