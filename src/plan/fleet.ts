/** Decisions that span several hosts: one release id, rollback targets, reconciling a fleet deploy. */
import { endedBefore, planRecovery, type Journal, type RecoveryAction, type RecoveryFacts } from './journal.ts';
import { nextReleaseId } from './release-id.ts';
import { rollbackTarget, type ReleaseFacts } from './releases.ts';

/** The id a fleet deploy uses on every host: new on each of them and after every id any of them holds. */
export function fleetReleaseId(idsPerHost: Iterable<Iterable<string>>, now: Date): string {
  const all = new Set<string>();
  for (const ids of idsPerHost) for (const id of ids) all.add(id);
  return nextReleaseId(all, now);
}

/** Milliseconds between the first and the last switch. */
export function switchSkewMs(switchedAt: readonly number[]): number {
  if (switchedAt.length < 2) return 0;
  return Math.max(...switchedAt) - Math.min(...switchedAt);
}

export interface HostOnRelease {
  host: string;
  /** null: the host has no current release; undefined: unknown (unreachable). */
  current: string | null | undefined;
}

export interface FleetSummary {
  /** Every host is known and on the same release. */
  consistent: boolean;
  /** The release every host is on, when consistent. */
  current: string | null;
  /** Hosts grouped by release, largest group first; `unknown` holds hosts whose state is not known. */
  groups: { release: string | null; hosts: string[] }[];
  unknown: string[];
}

export function summarizeFleet(hosts: readonly HostOnRelease[]): FleetSummary {
  const groups = new Map<string | null, string[]>();
  const unknown: string[] = [];
  for (const h of hosts) {
    if (h.current === undefined) {
      unknown.push(h.host);
      continue;
    }
    groups.set(h.current, [...(groups.get(h.current) ?? []), h.host]);
  }
  const list = [...groups].map(([release, members]) => ({ release, hosts: members })).sort((a, b) => b.hosts.length - a.hosts.length);
  const consistent = unknown.length === 0 && list.length === 1;
  return { consistent, current: consistent ? (list[0]?.release ?? null) : null, groups: list, unknown };
}

/**
 * A journal written by a fleet deploy carries the deploy's token, shared by every host it touched,
 * and the names of all its hosts (as given to it), so that a host of a later wave that never got
 * as far as a journal still counts as evidence.
 */
export type FleetJournal = Journal & { fleet?: { token: string; hosts?: string[] } };

export interface HostRecoveryInput {
  /** The host's name as given to this command; matched against a journal's `fleet.hosts`. */
  host?: string;
  journal: FleetJournal | null;
  facts: RecoveryFacts;
  /** Fleet tokens this host's release log records as failed or rolled back. */
  abandonedTokens: readonly string[];
  /** Fleet tokens this host's release log records as complete: the deploy committed there. */
  committedTokens?: readonly string[];
}

export type FleetRecoveryAction =
  | RecoveryAction
  /** Point current back at `to` (null: remove current, the host had none) and record `id` as `status`. */
  | { kind: 'switch-back'; id: string; to: string | null; status: 'failed' | 'rolled-back'; reason: string };

/**
 * Fleet deploys whose outcome the hosts given show was "not switched everywhere": a host of the
 * deploy is not on its release, or a host recorded it failed or rolled back. Such a deploy never
 * committed (it commits only once every host switched), so no host may keep it.
 */
export function abandonedFleetDeploys(hosts: readonly HostRecoveryInput[]): Set<string> {
  const abandoned = new Set<string>();
  const named = new Map(hosts.flatMap((h) => (h.host === undefined ? [] : [[h.host, h] as const])));
  for (const h of hosts) {
    for (const t of h.abandonedTokens) abandoned.add(t);
    const j = h.journal;
    if (j?.op !== 'deploy' || !j.fleet) continue;
    if (h.facts.currentId !== j.release) abandoned.add(j.fleet.token);
    // Another host of the same deploy, given here, that is not on its release and never recorded
    // it complete: the deploy died before that host switched (a later wave, or a host still
    // copying, which takes its lock before it writes a journal), so it never committed.
    const others = Array.isArray(j.fleet.hosts) ? j.fleet.hosts : [];
    for (const name of others) {
      const other = typeof name === 'string' ? named.get(name) : undefined;
      if (other === undefined || other === h) continue;
      if (other.facts.currentId !== j.release && !(other.committedTokens ?? []).includes(j.fleet.token)) abandoned.add(j.fleet.token);
    }
  }
  return abandoned;
}

/**
 * Fleet deploys whose outcome the hosts read cannot tell, by token, with the hosts they wait for:
 * every host read is on the release (nothing shows it abandoned), none recorded it complete, and
 * a host it names was given to this command but not reached. That host may never have switched:
 * finishing the deploy on the others could split the fleet for good (its copy of the release is
 * then removed as never switched). Such a deploy is left as it is, journals and all, until a
 * command reaches every host. (A host given alone is recovered as the local engine would: the
 * others were not asked about, docs/fleet.md.)
 */
export function undecidedFleetDeploys(hosts: readonly HostRecoveryInput[], unreached: readonly string[]): Map<string, string[]> {
  const undecided = new Map<string, string[]>();
  if (unreached.length === 0) return undecided;
  const abandoned = abandonedFleetDeploys(hosts);
  const committed = new Set(hosts.flatMap((h) => h.committedTokens ?? []));
  for (const h of hosts) {
    const j = h.journal;
    if (j?.op !== 'deploy' || !j.fleet || j.phase === 'rolling-back' || abandoned.has(j.fleet.token) || committed.has(j.fleet.token)) continue;
    const named = Array.isArray(j.fleet.hosts) ? j.fleet.hosts.filter((n): n is string => typeof n === 'string') : [];
    const waiting = named.filter((n) => n !== h.host && unreached.includes(n));
    if (waiting.length > 0) undecided.set(j.fleet.token, [...new Set([...(undecided.get(j.fleet.token) ?? []), ...waiting])]);
  }
  return undecided;
}

/**
 * Fleet deploys cut off while a host's after-switch hooks, reloads or health check ran, by token:
 * that host's journal at `switched` still names them (a host writes it again without them once
 * its own steps passed), with the hosts that say so and what they ran. No host committed such a
 * deploy (the fleet commits only once every host's verdict is in), so it was never verified as a
 * whole, and every host of it is recorded unverified, as a local deploy killed there is.
 */
export function unverifiedFleetDeploys(hosts: readonly HostRecoveryInput[]): Map<string, { hosts: string[]; verifying: unknown }> {
  const committed = new Set(hosts.flatMap((h) => h.committedTokens ?? []));
  const unverified = new Map<string, { hosts: string[]; verifying: unknown }>();
  for (const h of hosts) {
    const j = h.journal;
    if (j?.op !== 'deploy' || !j.fleet || j.phase !== 'switched' || j.verifying === undefined || committed.has(j.fleet.token)) continue;
    const seen = unverified.get(j.fleet.token);
    unverified.set(j.fleet.token, { hosts: [...(seen?.hosts ?? []), ...(h.host === undefined ? [] : [h.host])], verifying: seen?.verifying ?? j.verifying });
  }
  return unverified;
}

/**
 * Recovery for each host, as the local engine would do it, except that a host left live on the
 * release of an abandoned fleet deploy is switched back instead of having the deploy finished:
 * all-or-nothing holds even after a lost connection. A deploy whose outcome waits on a host given
 * but not reached (`unreached`: undecidedFleetDeploys) is left unfinished: only the leftovers in
 * `.tmp/` of such a host go. A deploy finished while another host's checks were cut off
 * (unverifiedFleetDeploys) is recorded unverified on this host too, naming the hosts that were.
 */
export function planFleetRecovery(hosts: readonly HostRecoveryInput[], unreached: readonly string[] = []): FleetRecoveryAction[][] {
  const abandoned = abandonedFleetDeploys(hosts);
  const undecided = undecidedFleetDeploys(hosts, unreached);
  const unverified = unverifiedFleetDeploys(hosts);
  return hosts.map((h) => {
    const actions: FleetRecoveryAction[] = planRecovery(h.journal, h.facts);
    const j = h.journal;
    if (j?.op === 'deploy' && j.fleet && undecided.has(j.fleet.token)) return actions.filter((a) => a.kind === 'remove-tmp');
    const cut = j?.op === 'deploy' && j.fleet ? unverified.get(j.fleet.token) : undefined;
    const elsewhere = cut?.hosts.filter((name) => name !== h.host) ?? [];
    // Its own checks passed (its journal no longer names them), another host's were cut off.
    const finished = cut === undefined || elsewhere.length === 0 ? actions : actions.map((a) => (a.kind === 'mark-deployed' && a.unverified === undefined ? { ...a, unverified: `${endedBefore(cut.verifying)} on ${elsewhere.join(', ')}` } : a));
    if (j?.op !== 'deploy' || !j.fleet || h.facts.currentId !== j.release) return finished;
    const rollingBack = j.phase === 'rolling-back';
    if (!rollingBack && !abandoned.has(j.fleet.token)) return finished;
    const reason = rollingBack ? (j.reason ?? 'failed its health check') : 'the fleet deploy did not switch on every host';
    const status = rollingBack ? 'failed' : 'rolled-back';
    return actions.map((a) => (a.kind === 'mark-deployed' || (a.kind === 'mark-failed' && a.live) ? { kind: 'switch-back', id: j.release, to: j.previous, status, reason } : a));
  });
}

export interface HostReleases {
  host: string;
  current: string | null;
  /** Oldest first, as orderReleases gives them. */
  ordered: readonly ReleaseFacts[];
  /** Release directories that hold nothing on this host. */
  empty?: readonly string[];
}

export interface HostProblem {
  host: string;
  code: 'NO_PREVIOUS_RELEASE' | 'UNKNOWN_RELEASE';
  message: string;
}

export type FleetRollbackPlan =
  | { ok: true; target: string; moves: { host: string; from: string | null }[]; stays: string[] }
  | { ok: false; problems: HostProblem[]; hint?: string };

function isOlder(ordered: readonly ReleaseFacts[], a: string, b: string): boolean {
  const ia = ordered.findIndex((r) => r.id === a);
  const ib = ordered.findIndex((r) => r.id === b);
  return ia !== -1 && ib !== -1 && ia < ib;
}

/**
 * Where a fleet rollback takes every host: `to` when given; else, on a fleet that agrees, the
 * previous good release (which must be the same everywhere); on a mixed fleet, the release the
 * hosts behind are on, provided every host ahead holds it as an older release.
 */
export function planFleetRollback(hosts: readonly HostReleases[], to?: string): FleetRollbackPlan {
  const finish = (target: string): FleetRollbackPlan => {
    const missing = hosts.filter((h) => !h.ordered.some((r) => r.id === target));
    if (missing.length > 0) {
      return { ok: false, problems: missing.map((h) => ({ host: h.host, code: 'UNKNOWN_RELEASE', message: `release ${target} does not exist on ${h.host}` })) };
    }
    // As locally: a folder made by hand that holds nothing would serve nothing.
    const empty = hosts.filter((h) => h.current !== target && h.empty?.includes(target));
    if (empty.length > 0) {
      return { ok: false, problems: empty.map((h) => ({ host: h.host, code: 'UNKNOWN_RELEASE', message: `release ${target} is an empty directory on ${h.host}: switching to it would serve nothing` })) };
    }
    // No move at all (every host on it already, as a retried `--to` finds them): a plan that changes nothing, as locally.
    const moves = hosts.filter((h) => h.current !== target).map((h) => ({ host: h.host, from: h.current }));
    return { ok: true, target, moves, stays: hosts.filter((h) => h.current === target).map((h) => h.host) };
  };
  if (to !== undefined) return finish(to);

  const currents = [...new Set(hosts.map((h) => h.current))];
  if (currents.length === 1) {
    const current = currents[0] ?? null;
    const targets = hosts.map((h) => ({ host: h.host, target: rollbackTarget(h.ordered, current)?.id }));
    const none = targets.filter((t) => t.target === undefined);
    if (none.length > 0) {
      return {
        ok: false,
        problems: none.map((t) => ({
          host: t.host,
          code: 'NO_PREVIOUS_RELEASE',
          message: current === null ? `${t.host} has no current release to roll back from` : `release ${current} has no earlier good release to roll back to on ${t.host}`,
        })),
      };
    }
    const distinct = [...new Set(targets.map((t) => t.target))];
    if (distinct.length > 1) {
      return {
        ok: false,
        problems: targets.map((t) => ({ host: t.host, code: 'UNKNOWN_RELEASE', message: `${t.host} would roll back to ${t.target ?? '?'}` })),
        hint: 'the hosts disagree on the previous release: choose one with --to <id>',
      };
    }
    return finish(distinct[0] as string);
  }
  // Mixed fleet: go back to the release that every host ahead of it also holds as older.
  const candidates = currents.filter((c): c is string => c !== null && hosts.every((h) => h.current === c || (h.current !== null && isOlder(h.ordered, c, h.current))));
  if (candidates.length === 1) return finish(candidates[0] as string);
  return {
    ok: false,
    problems: hosts.map((h) => ({ host: h.host, code: 'UNKNOWN_RELEASE', message: `${h.host} is on ${h.current ?? 'no release'}` })),
    hint: 'the hosts are on different releases: choose the one to go to with --to <id>',
  };
}

/** What phase 2 knows of one host once the switch word went out. */
export interface SwitchReport {
  host: string;
  /** It confirmed its switch. */
  switched: boolean;
  /** The connection ended before its answers were in: it may have switched or not. */
  lost: boolean;
  health?: 'ok' | 'failed';
  /** Its wave never ran (the rollout stopped first): not a failure, but not deployed either. */
  skipped?: boolean;
  /** It failed before it could switch (connection, copy, before-switch hook). */
  failed?: boolean;
}

export interface FleetDecision {
  /** Every host switched and passed its health check. */
  ok: boolean;
  /** Hosts told to keep the new release and record it. */
  commit: string[];
  /** Hosts told to switch back to their previous release. */
  back: string[];
  /** Hosts that never switched: their prepared release goes, as in phase 1. */
  undo: string[];
  /** Why the deploy did not commit everywhere ('' when it did). */
  reason: string;
  /** Failed hosts the budget (`--max-fail`) tolerated: switched back or undone while the rest commit. */
  tolerated: string[];
}

/** A host that counts against the failure budget. */
export function hostFailed(h: SwitchReport): boolean {
  return h.skipped !== true && (h.failed === true || !h.switched || h.lost || h.health === 'failed');
}

/**
 * The fleet's word once the rollout is over. Within the failure budget (`maxFail` hosts, across
 * every wave) the healthy switched hosts commit and the failed ones go back; beyond it every
 * reachable switched host goes back, unless `keep` leaves them on the new release. A host whose
 * connection was lost gets no word: the next command reconciles it.
 */
export function decideAfterSwitch(hosts: readonly SwitchReport[], onFailure: 'rollback' | 'keep', maxFail = 0): FleetDecision {
  const failed = hosts.filter(hostFailed);
  const skipped = hosts.some((h) => h.skipped === true);
  const ok = failed.length === 0 && !skipped;
  const healthy = (h: SwitchReport): boolean => h.switched && !h.lost && h.health !== 'failed';
  // A budget lets a rollout go on without some hosts; it never makes one that left no host healthy
  // on the release a success (`--max-fail 100%` with every host failing exited 0, live nowhere).
  const noneHealthy = !hosts.some(healthy);
  const within = !skipped && failed.length <= maxFail && !noneHealthy;
  const reachable = hosts.filter((h) => h.switched && !h.lost);
  const unhealthy = hosts.filter((h) => h.health === 'failed').map((h) => h.host);
  // A host that switched and then went silent is on the release, its checks unheard: not a switch that did not complete.
  const lostAfter = failed.filter((h) => h.health !== 'failed' && h.switched && h.lost && h.failed !== true).map((h) => h.host);
  const incomplete = failed.filter((h) => h.health !== 'failed' && !lostAfter.includes(h.host)).map((h) => h.host);
  const why = [
    unhealthy.length > 0 ? `the health check failed on ${unhealthy.join(', ')}` : '',
    incomplete.length > 0 ? `the switch did not complete on ${incomplete.join(', ')}` : '',
    lostAfter.length > 0 ? `the connection to ${lostAfter.join(', ')} was lost after ${lostAfter.length === 1 ? 'its' : 'their'} switch (${lostAfter.length === 1 ? 'it stays' : 'they stay'} on the release, unverified, until a command reaches ${lostAfter.length === 1 ? 'it' : 'them'})` : '',
  ].filter(Boolean).join('; ');
  const undo = hosts.filter((h) => !h.switched && !h.lost).map((h) => h.host);
  if (ok) return { ok, commit: reachable.map((h) => h.host), back: [], undo, reason: '', tolerated: [] };
  if (within) {
    return { ok, commit: reachable.filter(healthy).map((h) => h.host), back: reachable.filter((h) => !healthy(h)).map((h) => h.host), undo, reason: why, tolerated: failed.map((h) => h.host) };
  }
  const keepNew = onFailure === 'keep';
  const beyond = !skipped && failed.length > 0 && failed.length <= maxFail && noneHealthy ? `${why}: no host passed, which no failure budget tolerates` : why;
  const reason = beyond || 'the rollout stopped before every wave ran';
  return { ok, commit: keepNew ? reachable.map((h) => h.host) : [], back: keepNew ? [] : reachable.map((h) => h.host), undo, reason, tolerated: [] };
}

/** A host's message without its leading `<host>: ` (a table row, or a verdict that puts it back, names the host already); the host named later in it stays. */
export function withoutHost(message: string, host: string): string {
  return message.startsWith(`${host}: `) ? message.slice(host.length + 2) : message;
}
