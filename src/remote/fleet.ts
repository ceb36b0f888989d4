/** Running one operation on many hosts: targets, connections, parallelism, recovery, per-host reports. */
import path from 'node:path';
import { sweepScratchDirs } from '../act/scratch.ts';
import type { CurrentState } from '../act/switch.ts';
import { DeployError, pathTypeError, typeName, type ErrorCode } from '../errors.ts';
import { describeAction, type ReleaseView } from '../ops/recover.ts';
import { isolateSink, outputHold, type EventSink } from '../ops/events.ts';
import { parseHostSpec } from '../plan/config-basics.ts';
import { checkOptionsArgument, checkWaitMs } from '../plan/validate.ts';
import { recordWentLive } from '../plan/journal.ts';
import { planFleetRecovery, undecidedFleetDeploys, type FleetRecoveryAction, type HostRecoveryInput } from '../plan/fleet.ts';
import { describeUses, releasesInUse, type ProcessUse } from '../plan/in-use.ts';
import { madeRoot, orderReleases, recordTimes } from '../plan/releases.ts';
import { ADOPT_HINT, currentNotSymlinkHint, deployTargetProblem, readRootHint, readRootProblem, type RootShape } from '../plan/root-shape.ts';
import { afterRecovery, recoveryProgram } from '../root/recover.ts';
import { judgeRemoteLock, type HostFacts, type RemoteRecord, type RemoteState } from './facts.ts';
import { lockAndJournalSaid, type DryRunCommand } from '../ops/root.ts';
import { missingRootError, randomName, RemoteRoot, type OwnLock } from './host.ts';
import { stagedRootPath, stagingName } from './staging.ts';
import type { Step } from './script.ts';
import { ControlDir, sshConfigProblem, type SshOptions } from './ssh.ts';
import { hintForAll, shellWord, unexpandedVariable } from '../plan/paths.ts';

/** A host given with `--host` or in the config's `hosts:`. */
export interface FleetHostSpec {
  /** `[user@]host[:port]`; also the host's name in reports. */
  host: string;
  /** This host's deploy root, when it differs from the common one. */
  root?: string;
}

export interface FleetOptions {
  hosts: readonly FleetHostSpec[];
  /** How many hosts are worked on at once (connect, copy, hooks); default 10. */
  parallel?: number;
  ssh?: SshOptions;
  fsync?: boolean;
  /** Milliseconds to wait for another command's lock instead of failing with LOCKED (default 0); a finite number >= 0, else USAGE. */
  waitMs?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
  /** Recorded in each host's lock so that others see who holds it. */
  command?: string;
}

export interface HostError {
  code: ErrorCode;
  message: string;
  hint?: string;
  /** A failed before-switch hook, as a local deploy's HOOK_FAILED error has it. */
  hook?: 'before-switch';
  command?: string;
  exitCode?: number;
  timedOut?: boolean;
  /** MANIFEST_UNTRUSTED: why the manifest is not trusted, as a local verify's error has it. */
  problem?: string;
  /** LOCKED or LOCK_FOREIGN_HOST: who holds the host's lock, as a local LOCKED error has it. */
  lock?: { pid: number; host: string; user: string; since: string } | null;
}

/** The hint for a fleet function called without its options. */
export const FLEET_EXAMPLE = "for example: { hosts: [{ host: 'deploy@web1' }] }";

/** The targets of a fleet function's arguments, as a JavaScript caller may give them too (USAGE naming a wrong type). */
export function targetsOf(options: FleetOptions, root: string | undefined): ReturnType<typeof resolveTargets> {
  checkOptionsArgument(options, FLEET_EXAMPLE);
  if (!Array.isArray(options.hosts)) throw new DeployError('USAGE', `hosts must be a list of { host, root? }, got ${typeName(options.hosts)}`);
  if (root !== undefined && typeof root !== 'string') throw pathTypeError('deploy root', root, 'the deploy root');
  return resolveTargets(options.hosts, root);
}

/** One entry of `hosts` from a JavaScript caller: `{ host, root? }` with strings, or USAGE naming what is not. */
function hostSpecOf(h: unknown, i: number): FleetHostSpec {
  if (typeof h !== 'object' || h === null || Array.isArray(h)) throw new DeployError('USAGE', `hosts[${i}] must be an object { host, root? }, got ${typeName(h)}`);
  const { host, root } = h as Record<string, unknown>;
  if (typeof host !== 'string') throw new DeployError('USAGE', `hosts[${i}].host must be a string, got ${typeName(host)}`);
  if (root !== undefined && typeof root !== 'string') throw new DeployError('USAGE', `hosts[${i}].root must be a string path, got ${typeName(root)}`);
  return h as FleetHostSpec;
}

/** Parses and checks the targets: every host must be `[user@]host[:port]` with an absolute root. */
export function resolveTargets(hosts: readonly FleetHostSpec[], root: string | undefined): { label: string; spec: NonNullable<ReturnType<typeof parseHostSpec>>; root: string }[] {
  if (hosts.length === 0) throw new DeployError('USAGE', 'no hosts given', { hint: 'pass --host [user@]host[:port] (repeatable), or list hosts: in the config' });
  const seen = new Set<string>();
  return hosts.map(hostSpecOf).map((h) => {
    const spec = parseHostSpec(h.host);
    if (!spec) throw new DeployError('USAGE', `invalid host ${JSON.stringify(h.host)}: expected [user@]host[:port]`, { hint: 'for example: --host deploy@web1.example.com:2222' });
    const r = h.root ?? root;
    if (r === undefined || r === '') throw new DeployError('USAGE', `no deploy root for host ${h.host}`, { hint: 'give <root>, or root: for that host in the config' });
    if (r.includes('\0')) throw new DeployError('INVALID_ROOT', 'the deploy root contains a NUL byte');
    if (!r.startsWith('/')) throw new DeployError('INVALID_ROOT', `the deploy root on ${h.host} must be an absolute path, got ${JSON.stringify(r)}`, { hint: 'remote roots are absolute: for example /srv/www/app' });
    // A host's root is taken as written (no shell on either side expands it), and no host can be
    // asked beforehand whether a folder by that name exists: `/srv/$APP` or a name Node got with
    // U+FFFD for bytes that were not UTF-8 would make that folder on every host and go live there.
    const variable = unexpandedVariable(r);
    if (variable !== undefined) {
      throw new DeployError('INVALID_ROOT', `the deploy root on ${h.host} ${JSON.stringify(r)} holds ${variable}, which no shell expanded: remote roots are taken as written`, {
        hint: `write the path out, or give <root> on the command line where the shell expands it ("${variable}", not '${variable}')`,
      });
    }
    if (r.includes('\uFFFD')) {
      throw new DeployError('INVALID_ROOT', `the deploy root on ${h.host} ${JSON.stringify(r)} holds bytes that are not UTF-8 (shown as \uFFFD), which reach this program replaced: it would name another folder than the one typed`, {
        hint: 'give the folder a UTF-8 name on the host (convmv -f latin1 -t utf-8 --notest <folder>), or reach it through a symbolic link whose path is UTF-8',
      });
    }
    const normal = path.posix.normalize(r).replace(/(.)\/+$/, '$1');
    const key = `${h.host}\0${normal}`;
    if (seen.has(key)) throw new DeployError('USAGE', `host ${h.host} with root ${normal} is given twice`);
    // One root inside another on the same host: one deploy would write into the other's releases.
    for (const other of seen) {
      const [otherHost, otherRoot] = other.split('\0') as [string, string];
      if (otherHost !== h.host) continue;
      const [outer, inner] = isPosixWithin(normal, otherRoot) ? [otherRoot, normal] : isPosixWithin(otherRoot, normal) ? [normal, otherRoot] : [];
      if (outer !== undefined) {
        throw new DeployError('USAGE', `host ${h.host}: the deploy root ${inner} is inside the deploy root ${outer}, also given for it`, { hint: 'give each host roots side by side, none inside another' });
      }
    }
    seen.add(key);
    return { label: h.host, spec, root: normal };
  });
}

/** Whether normalised absolute POSIX path `inner` lies strictly below `outer`. */
function isPosixWithin(inner: string, outer: string): boolean {
  return inner !== outer && inner.startsWith(outer === '/' ? '/' : `${outer}/`);
}

/** A release log record changed the way the local engine changes one (root/recover.ts mergedRecord). */
export function mergeRecord(records: ReadonlyMap<string, RemoteRecord>, id: string, change: Partial<RemoteRecord>): RemoteRecord {
  const existing: RemoteRecord = records.get(id) ?? { id, status: 'complete', createdAt: '', user: '', host: '', source: '', files: 0, bytes: 0, durationMs: 0, previous: null };
  return { ...existing, ...change };
}

/**
 * A record changed as mergeRecord does, as the line a host's program writes; for a damaged one
 * the empty line, which leaves it as it is: the local engine never rewrites a damaged record
 * either (ops/record.ts recordRelease).
 */
export function recordLine(state: RemoteState | undefined, id: string, change: Partial<RemoteRecord>): string {
  if (state?.damaged?.has(id) === true) return '';
  return JSON.stringify(mergeRecord(state?.records ?? new Map(), id, change));
}

/** Every release directory with what the log knows of it, oldest first (ops/recover.ts releaseViews). */
export function viewsOf(state: RemoteState): ReleaseView[] {
  // The host sends its whole log, records of pruned releases too: one of them may be the deploy
  // of ours that found the root without a live release (see rollbackTarget).
  const madeByUs = [...state.records.values()].some(madeRoot);
  return orderReleases(
    state.releases.map((id) => {
      const record = state.records.get(id);
      const view: ReleaseView = record ? { id, seq: record.seq, status: record.status, previous: record.previous, ...recordTimes(record), record } : { id };
      if (madeByUs) view.rootMadeByUs = true;
      return view;
    }),
    currentIdOf(state),
  );
}

export function currentIdOf(state: RemoteState): string | null {
  return state.current.kind === 'release' ? state.current.id : null;
}

/** The local engine's refusals for a `current` we must not replace, phrased for a host. */
export function currentProblem(label: string, root: string, current: CurrentState, allowDangling = false): DeployError | undefined {
  switch (current.kind) {
    case 'missing':
    case 'release':
      return undefined;
    case 'dangling':
      if (allowDangling) return undefined;
      return new DeployError('CURRENT_DANGLING', `${label}: ${root}/current points to ${current.target}, which does not exist`, {
        hint: `repair it with: atomic-deploy rollback ${shellWord(root)} --host ${shellWord(label)} --to <id>`,
      });
    case 'outside':
      return new DeployError('CURRENT_OUTSIDE_RELEASES', `${label}: ${root}/current points to ${current.target}, which is not a release directory in ${root}/releases`, {
        hint: 'move that tree into releases/<id>/ and point current at it, or deploy into another root',
      });
    case 'directory':
    case 'file':
      return new DeployError('CURRENT_NOT_SYMLINK', `${label}: ${root}/current is a ${current.kind === 'directory' ? 'real directory' : 'regular file'}, not a symlink`, {
        hint: currentNotSymlinkHint(current.kind, `${root}/current`),
      });
  }
}

/**
 * The local deploy's refusal of a folder that holds something but is not a deploy root
 * (ops/deploy.ts checkTarget), for a host: undefined with `adopt`, or when the host could not
 * list its root (the lock then reports what stops it).
 */
export function deployRootProblem(label: string, root: string, shape: RootShape | undefined, adopt: boolean): DeployError | undefined {
  const problem = shape === undefined || adopt ? undefined : deployTargetProblem(shape);
  return problem === undefined ? undefined : new DeployError('INVALID_ROOT', `${label}: ${root} ${problem}`, { hint: ADOPT_HINT });
}

/**
 * The local refusal of `status`, `releases`, `prune` and `unlock` on a folder that is not a deploy
 * root (ops/root.ts assertDeployRoot), for a host; a root that is missing or a file keeps the
 * fleet's own words, since the host cannot tell the two apart.
 */
export function readRootProblemOf(label: string, root: string, state: RemoteState): DeployError | undefined {
  if (!state.rootExists) return missingRootError(label, root);
  const problem = state.shape === undefined ? undefined : readRootProblem(state.shape);
  if (problem === undefined || state.shape === undefined) return undefined;
  return new DeployError('INVALID_ROOT', `${label}: ${root} ${problem}`, { hint: readRootHint(state.shape, `${shellWord(root)} --host ${shellWord(label)}`) });
}

export function hostError(error: unknown): HostError {
  if (error instanceof DeployError) {
    const d = error.details ?? {};
    const hook = d.hook === 'before-switch' ? { hook: 'before-switch' as const, command: String(d.command), exitCode: Number(d.exitCode), timedOut: d.timedOut === true } : {};
    const lock = (error.code === 'LOCKED' || error.code === 'LOCK_FOREIGN_HOST') && 'lock' in d ? { lock: d.lock as HostError['lock'] } : {};
    const problem = error.code === 'MANIFEST_UNTRUSTED' && typeof d.problem === 'string' ? { problem: d.problem } : {};
    return { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}), ...hook, ...lock, ...problem };
  }
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/** One host's part in an operation. */
export class HostRun {
  error: HostError | undefined;
  recovered: string[] = [];
  facts: HostFacts | undefined;
  state: RemoteState | undefined;

  constructor(readonly remote: RemoteRoot) {}

  get label(): string {
    return this.remote.label;
  }

  get root(): string {
    return this.remote.root;
  }
}

/**
 * The fleet side of an operation: opens one master connection per host (sockets in a private
 * directory), runs per-host work with a parallel limit, and closes everything at the end.
 */
export class FleetRun {
  readonly hosts: HostRun[];
  readonly emit: EventSink;
  private readonly control: ControlDir;
  private readonly swept: Promise<unknown>;
  private readonly parallel: number;

  constructor(
    targets: ReturnType<typeof resolveTargets>,
    readonly options: FleetOptions,
  ) {
    const parallel = options.parallel ?? 10;
    if (!Number.isInteger(parallel) || parallel < 1) throw new DeployError('USAGE', `--parallel must be an integer >= 1, got ${String(parallel)}`);
    checkWaitMs(options.waitMs);
    this.parallel = parallel;
    const config = sshConfigProblem(options.ssh ?? {});
    if (config) throw new DeployError('USAGE', config.problem, { hint: config.hint });
    this.emit = isolateSink(options.onEvent);
    this.control = ControlDir.create();
    // Beside the work, never in its way: what a killed deploy left in the temp dir (act/scratch.ts).
    this.swept = sweepScratchDirs({
      signal: options.signal,
      onRemove: (left) => this.emit({ type: 'step', message: `removing ${left.dir}, left by atomic-deploy process ${left.pid}, which is gone` }),
    });
    const fsync = options.fsync !== false;
    this.hosts = targets.map((t, i) => new HostRun(new RemoteRoot(t.label, t.spec, t.root, options.ssh ?? {}, this.control.socket(i), fsync)));
    const ownLocks = new Map<string, OwnLock>();
    for (const h of this.hosts) h.remote.ownLocks = ownLocks;
  }

  step(host: HostRun, message: string): void {
    this.emit({ type: 'step', message: `${host.label}: ${message}` });
  }

  /** A host program's stderr lines, labelled with the host and what printed them (`[web1 reload] …`). */
  output(host: HostRun, what?: string): (line: string) => void | Promise<void> {
    const source = what === undefined ? host.label : `${host.label} ${what}`;
    return (line) => {
      this.emit({ type: 'output', source, stream: 'stderr', line });
      // Held while the caller's sink is behind (ops/events.ts): the host's stderr is not read on meanwhile.
      return outputHold(this.emit);
    };
  }

  /**
   * Runs `fn` on the hosts, at most `parallel` at once. A failure is kept on the host; with
   * `failFast`, hosts not yet started are skipped once one has failed (or the signal fired).
   */
  async each(hosts: readonly HostRun[], fn: (host: HostRun) => Promise<void>, options: { failFast?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (next < hosts.length) {
        const host = hosts[next++] as HostRun;
        if (options.failFast && (failed || options.signal?.aborted)) continue;
        try {
          await fn(host);
        } catch (error) {
          host.error ??= hostError(error);
          failed = true;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.parallel, hosts.length) }, worker));
  }

  /** Connects to every host; each host's failure is kept on it. */
  async connectAll(options: { failFast?: boolean; signal?: AbortSignal } = {}): Promise<void> {
    await this.each(this.hosts, (h) => h.remote.connect(), options);
  }

  get failed(): HostRun[] {
    return this.hosts.filter((h) => h.error !== undefined);
  }

  /**
   * Reconciles the hosts that are locked, with what every host's state shows about fleet
   * deploys: finishes what switched everywhere, switches back what a fleet deploy abandoned,
   * removes what never switched. Hosts whose state changed are read again.
   */
  async recover(hosts: readonly HostRun[], evidence: readonly HostRun[] = hosts): Promise<void> {
    const { inputs, plans, held } = recoveryPlans(evidence);
    const now = new Date().toISOString();
    await this.each(hosts, async (h) => {
      const i = inputs.indexOf(h);
      const actions = i === -1 ? [] : (plans[i] ?? []);
      if (!h.state || !h.remote.locked) return;
      const waits = held.get(h);
      if (waits) this.emit({ type: 'warning', message: heldMessage(h, waits) });
      const steps = recoverySteps(h.state, actions, now);
      if (steps.length === 0) return;
      await h.remote.apply([...steps, { op: 'durable' }], 'recovering an interrupted operation', this.output(h));
      const lines = actions.map((a) => describeFleetAction(a)).filter((l): l is string => l !== undefined);
      for (const name of h.state.hidden ?? []) lines.push(`removed leftover releases/${name}`);
      if (h.state.journal.kind === 'garbage') lines.push('discarded an unreadable journal (no release was removed)');
      h.recovered.push(...lines);
      for (const line of lines) this.step(h, `recovered: ${line}`);
      const fresh = await h.remote.readState();
      // Only the lock holder probes the mounts; they did not change while it held the lock.
      h.state = { ...fresh.state, ...(h.state.stagingInReleases ? { stagingInReleases: true } : {}) };
      h.facts = fresh.facts;
    });
  }

  /**
   * For the dry runs: each host's state as this command would find it once it recovered (the
   * same plan `recover` acts on, with `evidence` for the whole fleet's records), and what that
   * recovery would do there, said. A host a live holder's lock holds is left as read: the command
   * would wait for it, or exit 3.
   */
  planRecovered(hosts: readonly HostRun[], evidence: readonly HostRun[] = hosts): Map<HostRun, string[]> {
    const { inputs, plans, held } = recoveryPlans(evidence);
    const now = new Date().toISOString();
    const said = new Map<HostRun, string[]>();
    for (const h of hosts) {
      const state = h.state;
      const i = inputs.indexOf(h);
      if (!state || i === -1 || !state.rootExists) continue;
      if (state.lock && h.facts && judgeRemoteLock(state.lock, h.facts).verdict.state !== 'stale') continue;
      const actions = plans[i] ?? [];
      const waits = held.get(h);
      // Left unfinished: the host stays as read, its journal with it.
      h.state = waits ? state : stateAfterRecovery(state, actions, now);
      said.set(h, [...actions.map((a) => describeFleetAction(a)).filter((l): l is string => l !== undefined), ...(waits ? [heldMessage(h, waits).slice(h.label.length + 2)] : [])]);
    }
    return said;
  }

  async close(): Promise<void> {
    await Promise.all([...this.hosts.map((h) => h.remote.close()), this.swept]);
    this.control.remove();
  }
}

/**
 * Whether states read without the locks are the ones the locks would give: no host locked, none
 * with a journal, a leftover stage or trash inside releases/, and recovery planned across them all
 * (another host's records can call for a switch-back) doing nothing. A refusal decided on such a
 * read changes nothing on any host, as the local engine's refusals before its lock.
 */
export function fleetIsIdle(states: readonly RemoteState[]): boolean {
  if (states.some((s) => !s.rootExists || s.lock !== null || s.journal.kind !== 'none' || (s.hidden?.length ?? 0) > 0)) return false;
  return planFleetRecovery(states.map(recoveryInput)).every((actions) => actions.length === 0);
}

/**
 * The recovery each host that was read gets, with every one of them as evidence (planFleetRecovery):
 * what `recover` runs and a dry run plans from. A host of `evidence` not read (not reached) is
 * evidence missing: a fleet deploy that waits on it is left unfinished (`held`: its release, and
 * the hosts it waits for, by host).
 */
function recoveryPlans(evidence: readonly HostRun[]): { inputs: HostRun[]; plans: FleetRecoveryAction[][]; held: Map<HostRun, { release: string; waiting: string[] }> } {
  const inputs = evidence.filter((h) => h.state !== undefined);
  const unreached = evidence.filter((h) => h.state === undefined).map((h) => h.label);
  const recovery = inputs.map((h) => ({ ...recoveryInput(h.state as RemoteState), host: h.label }));
  const undecided = undecidedFleetDeploys(recovery, unreached);
  const held = new Map<HostRun, { release: string; waiting: string[] }>();
  for (const [i, h] of inputs.entries()) {
    const j = recovery[i]?.journal;
    const waiting = j?.op === 'deploy' && j.fleet ? undecided.get(j.fleet.token) : undefined;
    if (j && waiting) held.set(h, { release: j.release, waiting });
  }
  return { inputs, plans: planFleetRecovery(recovery, unreached), held };
}

/** What a host whose fleet deploy was left unfinished says (recoveryPlans `held`). */
export function heldMessage(h: { label: string }, held: { release: string; waiting: string[] }): string {
  const them = held.waiting.length === 1 ? `${held.waiting[0] ?? ''}, one of its hosts, was` : `${held.waiting.join(', ')}, hosts of it, were`;
  return `${h.label}: the fleet deploy of ${held.release} is left unfinished here: ${them} not reached, so whether it switched everywhere is not known (its journal stays; run the command again once ${held.waiting.length === 1 ? 'it answers' : 'they answer'})`;
}

export function recoveryInput(state: RemoteState): HostRecoveryInput {
  const journal = state.journal.kind === 'ok' ? state.journal.journal : null;
  const releaseExists = journal ? state.releases.includes(journal.release) : false;
  const abandonedTokens = [...state.records.values()].filter((r) => (r.status === 'failed' || r.status === 'rolled-back') && r.fleet?.token).map((r) => r.fleet?.token as string);
  const committedTokens = [...state.records.values()].filter((r) => r.status === 'complete' && r.fleet?.token).map((r) => r.fleet?.token as string);
  return {
    journal,
    facts: {
      currentId: currentIdOf(state),
      releaseExists,
      tmpEntries: state.tmp,
      releaseWentLive: journal !== null && releaseExists && recordWentLive(state.records.get(journal.release) ?? { status: 'pending' }),
    },
    abandonedTokens,
    committedTokens,
  };
}

export function describeFleetAction(action: FleetRecoveryAction): string | undefined {
  if (action.kind === 'switch-back') return `switched back to ${action.to ?? 'no release'} from ${action.id} (${action.reason})`;
  return describeAction(action);
}

/** The steps that carry out recovery actions on a host: src/root/recover.ts's program, as the local engine runs it. */
export function recoverySteps(state: RemoteState, actions: readonly FleetRecoveryAction[], now: string): Step[] {
  // An unreadable journal is discarded first, as the local engine does (it names nothing to act on).
  const all: FleetRecoveryAction[] = state.journal.kind === 'garbage' ? [{ kind: 'clear-journal' }, ...actions] : [...actions];
  const steps: Step[] = [];
  if (all.length > 0) {
    const program = recoveryProgram({
      actions: all,
      records: state.records,
      ...(state.damaged ? { damaged: new Set(state.damaged.keys()) } : {}),
      ordered: viewsOf(state),
      currentId: currentIdOf(state),
      trashFor: () => stagedRootPath(stagingName(state, 'trash')),
      linkName: () => randomName('current'),
      now,
    });
    steps.push({ op: 'run', program });
  }
  // Stages and trash hidden in releases/ (another mount than .tmp/): only ever ours, and nobody live holds the lock.
  for (const name of state.hidden ?? []) steps.push({ op: 'remove-staged', name });
  return steps;
}

/** The fleet error: locked anywhere wins (exit 3); invalid input everywhere gives 2; anything else 1. */
export function fleetError(hosts: readonly { label: string; error?: HostError | undefined }[], summary: string, details: Record<string, unknown>, hint?: string): DeployError {
  const errors = hosts.map((h) => h.error).filter((e): e is HostError => e !== undefined);
  const probe = (code: ErrorCode): number => new DeployError(code, '').exitCode;
  const locked = errors.find((e) => probe(e.code) === 3);
  // A host whose release differs from its manifest (rollback --verify fail) is said as verify --host says it: 5 before 1 or 2.
  const differs = errors.find((e) => probe(e.code) === 5);
  const allInvalid = errors.length > 0 && errors.every((e) => probe(e.code) === 2);
  const code: ErrorCode = locked?.code ?? differs?.code ?? (allInvalid ? (errors[0]?.code ?? 'REMOTE') : (errors.find((e) => probe(e.code) === 1)?.code ?? 'REMOTE'));
  const first = locked ?? errors[0];
  const message = errors.length === 1 && first ? `${summary}: ${first.message}` : `${summary}: ${errors.map((e) => e.message).join('; ')}`;
  return new DeployError(code, message, { hint: hint ?? (first ? hintForAll(hosts, first) : undefined), details });
}

/**
 * A ctime as `stat` prints it, in ns: GNU `%.9Z` (seconds.nanoseconds), BSD `%Fc` (the same), or
 * BusyBox, whose `%.9Z` has no fraction but whose `%z` (2026-11-27 17:10:47.821289307 +0000) does.
 */
export function parseCtimeNs(text: string): bigint | undefined {
  const exact = /^(\d+)\.(\d{1,9})\b/.exec(text.trim());
  if (exact?.[1] && exact[2]) return BigInt(exact[1]) * 1_000_000_000n + BigInt(exact[2].padEnd(9, '0'));
  const human = /(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)\.(\d{1,9}) ([+-]\d\d)(\d\d)/.exec(text);
  if (!human?.[1] || !human[3]) return undefined;
  const ms = Date.parse(`${human[1]}T${human[2]}${human[4]}:${human[5]}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms / 1000) * 1_000_000_000n + BigInt(human[3].padEnd(9, '0'));
}

/** Skew by the hosts' clocks (the ctime each rename gave the new link); undefined unless every host told. */
export function hostClockSkew(sessions: readonly { frames: readonly { tag: string; value: string }[] }[]): number | undefined {
  const ns = sessions.map((s) => parseCtimeNs(s.frames.find((f) => f.tag === 'switched-ctime')?.value ?? ''));
  if (ns.length === 0 || ns.some((v) => v === undefined)) return undefined;
  const values = ns as bigint[];
  const min = values.reduce((a, b) => (b < a ? b : a));
  const max = values.reduce((a, b) => (b > a ? b : a));
  return Math.round(Number(max - min) / 1e4) / 100;
}

/** Which releases running processes on the host use, described for prune; how it was found out. */
export function inUseOf(state: RemoteState, uses: readonly ProcessUse[] | undefined, force: boolean | undefined): { inUse?: Map<string, string>; inUseCheck: 'proc' | 'unavailable' | 'forced' } {
  if (force) return { inUseCheck: 'forced' };
  const base = state.rootReal ?? '';
  // The listing is `ls -l` text: line-based, and BusyBox ls prints non-ASCII bytes as '?'. A root
  // path outside printable ASCII could hide a use, so the check says it did not look.
  if (!uses || !/^[\x20-\x7e]*$/.test(base)) return { inUseCheck: 'unavailable' };
  const dirs = new Map(state.releases.map((id) => [id, `${base}/releases/${id}`]));
  return { inUse: new Map([...releasesInUse(uses, dirs)].map(([id, list]) => [id, describeUses(list)])), inUseCheck: 'proc' };
}

/**
 * What a dry run notes about a host's root, as the local dry runs do (ops/root.ts lockNotes): a
 * lock there (which the command would wait for, or take over when stale) and a journal (an
 * operation running under that lock, or an interrupted one the command would recover first).
 */
export function lockAndJournalNotes(state: RemoteState, facts: HostFacts, command: DryRunCommand, waitMs = 0): string[] {
  return lockAndJournalSaid(state.lock ? judgeRemoteLock(state.lock, facts) : undefined, state.journal.kind !== 'none', command, waitMs);
}

/** A host's state once `actions` (its recovery) ran and its stale lock was taken over: what a dry run plans from. */
export function stateAfterRecovery(state: RemoteState, actions: readonly FleetRecoveryAction[], now: string): RemoteState {
  const after = afterRecovery({ actions, records: state.records, ...(state.damaged ? { damaged: new Set(state.damaged.keys()) } : {}), releases: state.releases, currentId: currentIdOf(state), now });
  const switched = actions.some((a) => a.kind === 'switch-back');
  const current: CurrentState = !switched ? state.current : after.currentId === null ? { kind: 'missing' } : { kind: 'release', id: after.currentId, target: `releases/${after.currentId}` };
  return { ...state, records: after.records, releases: after.releases, current, journal: { kind: 'none' }, tmp: [], hidden: [], lock: null };
}
