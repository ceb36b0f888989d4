/**
 * Recovery after an interrupted operation, as one root program (see effects.ts): the actions
 * planRecovery (or planFleetRecovery) decided become the same steps on this machine and on a host.
 */
import type { ReleaseRecord } from '../act/state.ts';
import type { FleetRecoveryAction } from '../plan/fleet.ts';
import { releaseIdProblem } from '../plan/release-id.ts';
import type { ReleaseFacts } from '../plan/releases.ts';
import { inTmp, type Op, type RootPath, type RootProgram } from './effects.ts';
import { retireOps, targetSparing } from './release.ts';

export const JOURNAL_PATH = '.atomic-deploy/journal.json';

export function recordPath(id: string): RootPath {
  return `.atomic-deploy/releases/${id}.json`;
}

/** A release's record with `change` merged in; a release without one gets a record that keeps its order (no seq). */
export function mergedRecord(records: ReadonlyMap<string, ReleaseRecord>, id: string, change: Partial<ReleaseRecord>): ReleaseRecord {
  const existing = records.get(id) ?? { id, status: 'complete', createdAt: '', user: '', host: '', source: '', files: 0, bytes: 0, durationMs: 0, previous: null };
  return { ...existing, ...change };
}

/** The record of a deploy that had switched: live, and unverified (as exit 7 or a signal records it) when its after-switch steps had not finished. */
function deployedRecord(action: { id: string; unverified?: string }, now: string): Partial<ReleaseRecord> {
  return { status: 'complete', activatedAt: now, ...(action.unverified === undefined ? {} : { afterSwitchFailure: `${action.unverified}; release ${action.id} went live unverified` }) };
}

export interface RecoveryInput {
  actions: readonly FleetRecoveryAction[];
  /** The records read under the lock: each change is merged into the record as it stands. */
  records: ReadonlyMap<string, ReleaseRecord>;
  /** Releases whose record is there but damaged: kept as they are, never rewritten. */
  damaged?: ReadonlySet<string>;
  /** Releases oldest first (orderReleases), for the rollback target a removal must spare. */
  ordered: readonly ReleaseFacts[];
  currentId: string | null;
  /** A fresh root-relative trash path for release `id`. */
  trashFor(id: string): RootPath;
  /** A fresh name in `.tmp/` for a switch's new link. */
  linkName(): string;
  now: string;
}

export function recoveryProgram(input: RecoveryInput): RootProgram<'recovered'> {
  const ops: Op<never>[] = [];
  const trash: RootPath[] = [];
  const record = (id: string, change: Partial<ReleaseRecord>): Op<never>[] =>
    // A directory of another tool whose name is no valid id (a newline, a leading dash) gets no record.
    releaseIdProblem(id) === undefined && input.damaged?.has(id) !== true ? [{ effect: { do: 'write', path: recordPath(id), text: JSON.stringify(mergedRecord(input.records, id, change), null, 2) } }] : [];
  // afterRecovery (below) applies the same record changes and switches for the dry runs: change both together.
  for (const action of input.actions) {
    switch (action.kind) {
      case 'remove-tmp':
        // Best effort: a leftover that cannot go (an immutable directory) must not keep the root from recovering.
        ops.push({ effect: { do: 'remove', path: inTmp(action.name) }, bestEffort: true });
        break;
      case 'remove-release': {
        const target = targetSparing(input.ordered, input.currentId, action.id);
        const to = input.trashFor(action.id);
        trash.push(to);
        ops.push(
          ...retireOps(action.id, target ? [target] : [], to),
          { effect: { do: 'remove', path: recordPath(action.id) } },
          { effect: { do: 'remove', path: `.atomic-deploy/manifests/${action.id}.json` } },
          { effect: { do: 'remove', path: `.atomic-deploy/manifests/${action.id}.stat.json` } },
        );
        break;
      }
      case 'mark-deployed':
        ops.push(...record(action.id, deployedRecord(action, input.now)));
        break;
      case 'keep-release':
        break;
      case 'mark-rolled-back':
        ops.push(...record(action.id, { status: 'rolled-back', endedAt: input.now }));
        break;
      case 'mark-failed':
        ops.push(...record(action.id, { status: 'failed', ...(action.live ? {} : { endedAt: input.now }), ...(action.reason ? { reason: action.reason } : {}) }));
        break;
      case 'switch-back':
        ops.push({ effect: { do: 'switch', to: action.to, via: input.linkName() } }, ...record(action.id, { status: action.status, endedAt: input.now, reason: action.reason }));
        if (action.to !== null) ops.push(...record(action.to, { status: 'complete', activatedAt: input.now }));
        break;
      case 'clear-journal':
        ops.push({ effect: { do: 'remove', path: JOURNAL_PATH } }, { effect: { do: 'durable', path: '.atomic-deploy' } });
        break;
    }
  }
  // Trash is deleted last: once the journal is gone, a crash mid-delete leaves only leftovers the next sweep removes.
  if (ops.length > 0) ops.push({ effect: { do: 'durable', path: '.' } });
  for (const t of trash) ops.push({ effect: { do: 'remove', path: t } });
  return { name: 'recover_root', ops, done: 'recovered' };
}

/**
 * What a recovery leaves of a root's release log, its releases and `current`, without running it:
 * the dry runs plan from it, as the commands they stand for plan once they have recovered (a deploy
 * that switched is then recorded, one that did not is gone, a fleet host may be switched back).
 * The same changes as recoveryProgram's records and switches, with the records' times at `now`.
 */
export function afterRecovery<R extends ReleaseRecord>(input: {
  actions: readonly FleetRecoveryAction[];
  records: ReadonlyMap<string, R>;
  damaged?: ReadonlySet<string>;
  releases: readonly string[];
  currentId: string | null;
  now: string;
}): { records: Map<string, R>; releases: string[]; currentId: string | null } {
  const records = new Map(input.records);
  let releases = [...input.releases];
  let currentId = input.currentId;
  const record = (id: string, change: Partial<ReleaseRecord>): void => {
    if (releaseIdProblem(id) === undefined && input.damaged?.has(id) !== true) records.set(id, mergedRecord(records, id, change) as R);
  };
  for (const action of input.actions) {
    switch (action.kind) {
      case 'remove-release':
        releases = releases.filter((r) => r !== action.id);
        records.delete(action.id);
        break;
      case 'mark-deployed':
        record(action.id, deployedRecord(action, input.now));
        break;
      case 'mark-rolled-back':
        record(action.id, { status: 'rolled-back', endedAt: input.now });
        break;
      case 'mark-failed':
        record(action.id, { status: 'failed', ...(action.live ? {} : { endedAt: input.now }), ...(action.reason ? { reason: action.reason } : {}) });
        break;
      case 'switch-back':
        currentId = action.to;
        record(action.id, { status: action.status, endedAt: input.now, reason: action.reason });
        if (action.to !== null) record(action.to, { status: 'complete', activatedAt: input.now });
        break;
      case 'remove-tmp':
      case 'keep-release':
      case 'clear-journal':
        break;
    }
  }
  return { records, releases, currentId };
}
