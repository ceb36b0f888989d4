/**
 * The two ways a root operation runs, behind one face, so that a conformance scenario is written
 * once: the local engine (src/act) and the remote programs (src/remote) run by a real shell on
 * this machine (dash with coreutils, or BusyBox sh with nothing but BusyBox applets on PATH).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { acquireLock, inspectLock, releaseLock, takeOverLock, type LockHandle } from '../../src/act/lock.ts';
import { layoutOf } from '../../src/act/layout.ts';
import { removeRelease } from '../../src/act/releases.ts';
import { DeployError, ioError } from '../../src/errors.ts';
import { undoDeploy } from '../../src/ops/deploy.ts';
import { prune } from '../../src/ops/prune.ts';
import { recoverRoot } from '../../src/ops/recover.ts';
import { rootShapeOf } from '../../src/ops/root.ts';
import type { RootShape } from '../../src/plan/root-shape.ts';
import { placeRelease, type PlaceInput } from '../../src/root/place.ts';
import { runOnFs } from '../../src/root/fs.ts';
import { undoProgram } from '../../src/root/undo.ts';
import { planFleetRecovery } from '../../src/plan/fleet.ts';
import { recordLine, recoveryInput, recoverySteps, viewsOf } from '../../src/remote/fleet.ts';
import { RemoteRoot } from '../../src/remote/host.ts';
import { decideHostPrune, hostPruneSteps } from '../../src/remote/ops.ts';
import { LocalShell } from '../../src/remote/local-shell.ts';
import { awaitArmed, awaitVerdict, commitSwitch, switchBack, switchTogether } from '../../src/remote/armed.ts';
import { pruneFailures, rollbackArmScript } from '../../src/remote/script.ts';
import { clearJournalRecord, recordJournal, recordRelease } from '../../src/ops/record.ts';
import type { ReleaseRecord } from '../../src/act/state.ts';
import { switchCurrent } from '../../src/act/switch.ts';
import type { Journal } from '../../src/plan/journal.ts';
import { findTools } from './fleet.ts';
import { armedTail, lockAs } from './remote-programs.ts';

export type LockOutcome =
  | { result: 'locked'; tookOver: boolean; holderPid: number; release(): Promise<void> }
  | { result: 'LOCKED' | 'LOCK_FOREIGN_HOST'; holderPid: number | null; message: string };

/** A lock judged stale, kept to act on later (the stalled contender). */
export interface JudgedStale {
  takeOver(): Promise<boolean>;
}

export interface Engine {
  name: string;
  lock(root: string): Promise<LockOutcome>;
  /** Takes the lock, recovers the root as the next command would, releases the lock. */
  recover(root: string): Promise<void>;
  /** Prune's one deletion path: `removed`, `absent`, or the error code of a refusal. */
  removeRelease(root: string, id: string, protect: readonly string[]): Promise<string>;
  /** Judges the lock now; the returned handle moves it aside later, as a contender that stalled would. */
  judgeStale(root: string): Promise<JudgedStale>;
  /** Under the lock, undoes a deploy of `id` that did not switch, as a failed deploy does; a refusal leaves the journal for recovery. */
  undo(root: string, deploy: UndoRequest): Promise<void>;
  /** Under the lock, places a staged release (src/root/place.ts): `placed`, or the error code of a refusal. */
  place(root: string, request: PlaceInput): Promise<string>;
  /**
   * Prunes to `keep` as the prune command does (running processes checked): the ids removed,
   * oldest first, and those chosen that could not be moved (they stay).
   */
  prune(root: string, keep: number): Promise<{ removed: string[]; failed: string[] }>;
  /**
   * Switches to `id`, then does the bookkeeping after the switch (src/root/record.ts): the local
   * engine as ops/deploy.ts and ops/rollback.ts do, a host through the armed program and the
   * fleet's words (remote/armed.ts). Returns how it ended: `committed` or `back`.
   */
  bookkeeping(root: string, request: BookkeepingRequest): Promise<string>;
  /**
   * The folder's shape as each side judges it (plan/root-shape.ts classifyRoot): the local
   * engine's rootShapeOf, or the shape a host's state read reports; `unlisted` when it told none.
   */
  rootShape(root: string): Promise<RootShape | { kind: 'unlisted' }>;
}

export interface BookkeepingRequest {
  /** The release current switches to; `from` is where it was (and where `back` returns). */
  id: string;
  from: string;
  /** The journal written right after the switch. */
  switched: Journal;
  decision: 'commit' | 'back';
  /** `back` only: the journal written before switching back. */
  backJournal?: Journal;
  /** The changes to records once decided, merged into each record as it stands. */
  records: { id: string; change: Partial<ReleaseRecord> }[];
}

export interface UndoRequest {
  id: string;
  previous: string | null;
  placed: boolean;
  /** Root-relative staging copy the deploy made. */
  stage: string;
}

function lockedOutcome(error: unknown): LockOutcome {
  if (error instanceof DeployError && (error.code === 'LOCKED' || error.code === 'LOCK_FOREIGN_HOST')) {
    const lock = (error.details as { lock?: { pid?: number } | null } | undefined)?.lock;
    return { result: error.code, holderPid: lock?.pid ?? null, message: error.message };
  }
  throw error;
}

export const localEngine: Engine = {
  name: 'local engine',
  rootShape: (root) => Promise.resolve(rootShapeOf(root)),
  async lock(root) {
    let handle: LockHandle;
    try {
      handle = await acquireLock(layoutOf(root), { command: 'conformance' });
    } catch (error) {
      return lockedOutcome(error);
    }
    return { result: 'locked', tookOver: handle.tookOver !== undefined, holderPid: handle.owner.pid, release: () => releaseLock(handle) };
  },
  judgeStale(root) {
    const layout = layoutOf(root);
    const info = inspectLock(layout);
    if (info?.verdict.state !== 'stale') return Promise.reject(new Error(`local engine: the lock is not stale: ${JSON.stringify(info?.verdict)}`));
    return Promise.resolve({ takeOver: async () => (await takeOverLock(layout, info)) !== undefined });
  },
  async recover(root) {
    const handle = await acquireLock(layoutOf(root), { command: 'conformance' });
    try {
      await recoverRoot(layoutOf(root), false);
    } finally {
      await releaseLock(handle);
    }
  },
  async undo(root, deploy) {
    const handle = await acquireLock(layoutOf(root), { command: 'conformance' });
    try {
      await undoDeploy(layoutOf(root), { id: deploy.id, staging: path.join(root, deploy.stage), placed: deploy.placed, previous: deploy.previous, durable: false });
    } finally {
      await releaseLock(handle);
    }
  },
  async place(root, request) {
    const handle = await acquireLock(layoutOf(root), { command: 'conformance' });
    try {
      // As ops/deploy.ts does once its stage is filled.
      return await runOnFs(root, placeRelease(request), { durable: false });
    } catch (error) {
      return ioError('placing the release', error).code;
    } finally {
      await releaseLock(handle);
    }
  },
  async prune(root, keep) {
    try {
      const result = await prune(root, { keep, fsync: false, command: 'conformance' });
      return { removed: result.removed.map((r) => r.id).reverse(), failed: [] };
    } catch (error) {
      // A prune that left some releases in place (ops/prune.ts pruneIncompleteError) names both lists.
      const details = error instanceof DeployError ? (error.details as { removed?: { id: string }[]; failed?: { id: string }[] } | undefined) : undefined;
      if (details?.removed === undefined || details.failed === undefined) throw error;
      return { removed: details.removed.map((r) => r.id).reverse(), failed: details.failed.map((f) => f.id) };
    }
  },
  async bookkeeping(root, request) {
    const layout = layoutOf(root);
    await switchCurrent(layout, request.id, { durable: false });
    await recordJournal(layout, request.switched, false);
    if (request.decision === 'back') {
      if (request.backJournal) await recordJournal(layout, request.backJournal, false);
      await switchCurrent(layout, request.from, { durable: false });
    }
    for (const r of request.records) await recordRelease(layout, r.id, r.change, false);
    await clearJournalRecord(layout, false);
    return request.decision === 'commit' ? 'committed' : 'back';
  },
  async removeRelease(root, id, protect) {
    const layout = layoutOf(root);
    if (!fs.existsSync(path.join(layout.releases, id))) return 'absent';
    try {
      await removeRelease(layout, id, new Set(protect), { durable: false });
      return 'removed';
    } catch (error) {
      if (error instanceof DeployError) return error.code;
      throw error;
    }
  },
};

let bbBin: string | undefined;
/** A directory holding every BusyBox applet and nothing else. */
export function busyboxBin(base: string): string {
  if (bbBin && fs.existsSync(bbBin)) return bbBin;
  const { busybox } = findTools(['busybox'] as const);
  const dir = path.join(base, 'busybox-bin');
  fs.mkdirSync(dir, { recursive: true });
  for (const applet of execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
    fs.symlinkSync(busybox, path.join(dir, applet));
  }
  bbBin = dir;
  return dir;
}

function shellRoot(root: string, shell: LocalShell): RemoteRoot {
  return new RemoteRoot('conformance', { host: 'localhost' }, root, {}, path.join(root, '.no-ssh-socket'), false, shell);
}

export function shellEngine(name: string, shell: LocalShell): Engine {
  return {
    name,
    async lock(root) {
      const remote = shellRoot(root, shell);
      try {
        const locked = await remote.lock({ command: 'conformance', create: false });
        return {
          result: 'locked',
          tookOver: locked.tookOver !== undefined,
          holderPid: locked.pid,
          release: async () => {
            await remote.unlock();
            await remote.close();
          },
        };
      } catch (error) {
        await remote.close();
        return lockedOutcome(error);
      }
    },
    async judgeStale(root) {
      const remote = shellRoot(root, shell);
      const { info } = await remote.inspectLock();
      if (info?.verdict.state !== 'stale') throw new Error(`${name}: the lock is not stale: ${JSON.stringify(info?.verdict)}`);
      return { takeOver: () => remote.takeOver(info, false) };
    },
    async recover(root) {
      const remote = shellRoot(root, shell);
      try {
        const locked = await remote.lock({ command: 'conformance', create: false });
        const [actions] = planFleetRecovery([recoveryInput(locked.state)]);
        const steps = recoverySteps(locked.state, actions ?? [], new Date().toISOString());
        await remote.apply(steps, 'recovering');
        await remote.unlock();
        await remote.close();
      } finally {
        await remote.close();
      }
    },
    async undo(root, deploy) {
      const remote = shellRoot(root, shell);
      try {
        const locked = await remote.lock({ command: 'conformance', create: false });
        // As a fleet deploy's abort does (src/remote/deploy.ts abortHost).
        const program = undoProgram({ ...deploy, ordered: viewsOf(locked.state), leftovers: [deploy.stage], trash: `.tmp/trash.${deploy.id}.conformance` });
        await remote.unlock([{ op: 'run', program }]).catch((error: unknown) => {
          if (!(error instanceof DeployError)) throw error;
        });
      } finally {
        await remote.close();
      }
    },
    async place(root, request) {
      const remote = shellRoot(root, shell);
      try {
        await remote.lock({ command: 'conformance', create: false });
        // The program deployArmScript renders on a host (src/remote/script.ts), run on its own.
        await remote.apply([{ op: 'run', program: placeRelease(request) }], 'placing the release');
        return 'placed';
      } catch (error) {
        if (error instanceof DeployError) return error.code;
        throw error;
      } finally {
        await remote.unlock().catch(() => undefined);
        await remote.close();
      }
    },
    async prune(root, keep) {
      const remote = shellRoot(root, shell);
      try {
        // As fleet prune does on each host (src/remote/ops.ts fleetPrune).
        const locked = await remote.lock({ command: 'conformance', create: false, uses: true });
        const { decision } = decideHostPrune(locked.state, locked.uses, { keep });
        const { before, after } = hostPruneSteps(locked.state, decision, new Date().toISOString());
        const failed = pruneFailures(await remote.unlock(before, after)).map((f) => f.id);
        return { removed: decision.remove.map((r) => r.release.id).filter((id) => !failed.includes(id)).reverse(), failed };
      } finally {
        await remote.close();
      }
    },
    bookkeeping: (root, request) => shellBookkeeping(name, shell, root, request),
    async rootShape(root) {
      // The read every fleet command starts with (src/remote/ops.ts, deploy.ts): no lock, nothing written.
      const remote = shellRoot(root, shell);
      try {
        return (await remote.readState()).state.shape ?? { kind: 'unlisted' };
      } finally {
        await remote.close();
      }
    },
    async removeRelease(root, id, protect) {
      if (!fs.existsSync(path.join(root, 'releases', id))) return 'absent';
      const remote = shellRoot(root, shell);
      try {
        await remote.apply([{ op: 'remove-release', id, trash: `trash.${id}.conformance`, protect: [...protect] }, { op: 'remove-staged', name: `trash.${id}.conformance` }], 'removing a release');
        return 'removed';
      } catch (error) {
        if (error instanceof DeployError) return error.code;
        throw error;
      } finally {
        await remote.close();
      }
    },
  };
}

/**
 * A host's bookkeeping after its switch: the armed program (rollbackArmScript) run by `shell`,
 * driven by the fleet's own words (remote/armed.ts). `edit` changes the program first (a control).
 */
export async function shellBookkeeping(name: string, shell: LocalShell, root: string, request: BookkeepingRequest, edit: (script: string) => string = (script) => script): Promise<string> {
  // The lines the fleet sends with its word: each record merged into the host's as the host's
  // state reports it (remote/fleet.ts recordLine; an empty line for a damaged record).
  const reader = shellRoot(root, shell);
  const { state } = await reader.readState().finally(() => reader.close());
  const lines = request.records.map((r) => recordLine(state, r.id, r.change));
  const ids = request.records.map((r) => r.id);
  const journal = path.join(root, '.atomic-deploy', 'journal.json');
  // A fleet host's armed program runs under its deploy's lock, and acts on a word only while it holds it.
  lockAs(root, 'conformance');
  const tail = armedTail({ id: request.id, token: 'conformance', backTo: request.from, journalSwitched: JSON.stringify(request.switched), ...(request.decision === 'commit' ? { commitRecords: ids } : { backRecords: ids }) });
  // The journal as it stands is written again first: the scenario's root, not the rollback's `switching`, is what the tail starts from.
  const armed = await awaitArmed(shell.start(edit(rollbackArmScript({ root, fsync: false, journalSwitching: fs.readFileSync(journal, 'utf8').trim(), tail }))));
  if (armed.kind !== 'armed') throw new Error(`${name}: not armed: ${JSON.stringify(armed.result.frames)}`);
  const [answer] = await switchTogether([armed.session]);
  if (answer?.kind !== 'switched') throw new Error(`${name}: did not switch: ${JSON.stringify(answer)}`);
  if ((await awaitVerdict(armed.session)).kind !== 'waiting') throw new Error(`${name}: lost before the decision`);
  if (request.decision === 'commit') {
    const done = await commitSwitch(armed.session, lines);
    return done.kind === 'committed' ? 'committed' : done.kind === 'taken-over' ? `taken over: ${done.why}` : `failed: ${JSON.stringify(done.result.frames)}`;
  }
  const back = await switchBack(armed.session, [request.backJournal ? JSON.stringify(request.backJournal) : '', ...lines]);
  return back.kind === 'back' ? 'back' : back.kind === 'taken-over' ? `taken over: ${back.why}` : `${back.kind}: ${JSON.stringify(back.result.frames)}`;
}

/** The local engine and the remote programs under dash and under BusyBox sh. */
/** dash with coreutils, as a host's login shell would run the programs. */
export function dashShell(): LocalShell {
  return new LocalShell({ shell: [findTools(['dash'] as const).dash], path: '/usr/bin:/bin' });
}

export function allEngines(base: string): Engine[] {
  return [
    localEngine,
    shellEngine('dash', dashShell()),
    shellEngine('busybox sh', new LocalShell({ shell: [path.join(busyboxBin(base), 'sh')], path: busyboxBin(base) })),
  ];
}

/** What a recovery left: comparable across sides (times and hosts left out). */
export interface RootOutcome {
  current: string | null;
  releases: string[];
  statuses: Record<string, string>;
  journal: boolean;
  /** The journal's phase (null: no journal, or none readable). */
  journalPhase: string | null;
  tmp: string[];
  lock: boolean;
  /** Names in .atomic-deploy/manifests/. */
  manifests: string[];
}

export function outcomeOf(root: string): RootOutcome {
  const current = fs.existsSync(path.join(root, 'current')) || isLink(path.join(root, 'current')) ? fs.readlinkSync(path.join(root, 'current')).replace(/^releases\//, '') : null;
  const list = (dir: string): string[] => (fs.existsSync(dir) ? fs.readdirSync(dir).sort() : []);
  const log = path.join(root, '.atomic-deploy', 'releases');
  const statuses: Record<string, string> = {};
  for (const name of list(log).filter((n) => n.endsWith('.json'))) {
    // A damaged record (not JSON, or naming another release) as its text: every side must leave it so.
    const text = fs.readFileSync(path.join(log, name), 'utf8');
    const id = name.slice(0, -5);
    try {
      const record = JSON.parse(text) as { id?: unknown; status: string };
      statuses[id] = record.id === id ? record.status : `damaged: ${text}`;
    } catch {
      statuses[id] = `damaged: ${text}`;
    }
  }
  return {
    current,
    releases: list(path.join(root, 'releases')),
    statuses,
    journal: fs.existsSync(path.join(root, '.atomic-deploy', 'journal.json')),
    journalPhase: phaseOf(path.join(root, '.atomic-deploy', 'journal.json')),
    tmp: list(path.join(root, '.tmp')),
    lock: fs.existsSync(path.join(root, '.deploy.lock')),
    manifests: list(path.join(root, '.atomic-deploy', 'manifests')),
  };
}

function phaseOf(file: string): string | null {
  try {
    const phase = (JSON.parse(fs.readFileSync(file, 'utf8')) as { phase?: unknown }).phase;
    return typeof phase === 'string' ? phase : null;
  } catch {
    return null;
  }
}

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}
