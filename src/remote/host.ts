/** One deploy root on one host: its connection, its lock, and the programs run there. */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeHolder } from '../act/lock.ts';
import { DeployError, hostNoSpaceHint } from '../errors.ts';
import { noReserveHint } from '../act/reserve.ts';
import type { LockOwner } from '../plan/lock.ts';
import type { ProcessUse } from '../plan/in-use.ts';
import { frameValue, hostFactsOf, hostSharedTargetsOf, judgeRemoteLock, processUsesOf, rawLockOf, remoteShapeOf, remoteStateOf, type Frame, type HostFacts, type HostSharedTarget, type RemoteLockInfo, type RemoteState } from './facts.ts';
import type { RootShape } from '../plan/root-shape.ts';
import { applyScript, lockScript, rootShapeScript, stateScript, takeoverScript, type Step } from './script.ts';
import { remoteError, SshHost, type RootTransport, type RunningRemote, type SshOptions, type SshTarget } from './ssh.ts';
import { shellWord } from '../plan/paths.ts';

export function randomName(prefix: string): string {
  return `${prefix}.${randomBytes(8).toString('hex')}`;
}

/** Waits for `exit`, at most `ms`; the timer goes once it ends, or it would keep the process alive that long. */
async function awaitAtMost(exit: Promise<unknown>, ms: number): Promise<void> {
  const timer = new AbortController();
  try {
    await Promise.race([exit, sleep(ms, undefined, { signal: timer.signal }).catch(() => undefined)]);
  } finally {
    timer.abort();
  }
}

function madeOf(frames: readonly Frame[]): string[] {
  return frames.filter((f) => f.tag === 'made').map((f) => f.value);
}

export interface LockedRoot {
  token: string;
  /** Pid of the holder program on the host: the lock's owner. */
  pid: number;
  facts: HostFacts;
  state: RemoteState;
  /** Processes using files under releases/, when asked for and the host has /proc. */
  uses?: ProcessUse[];
  tookOver?: { owner: LockOwner | null; reason: string };
  /** The tombstone (in .tmp/) of a stale lock taken over on the way in; the sweep removes it once old. */
  gate?: string;
  /** The host's disk was full: its space reserve was deleted to take the lock. */
  spentReserve?: boolean;
  /**
   * Directories made for the root (it and its missing parents) by this command's lock programs,
   * under this name or a twin's (added when the twin meets this lock): a refused deploy takes them away.
   */
  made: string[];
}

/** A lock this command holds on a host, by token: the name it took it under, and the directories made for its root. */
export interface OwnLock {
  label: string;
  made: string[];
}

export interface LockRequest {
  command: string;
  create: boolean;
  waitMs?: number;
  signal?: AbortSignal;
  /** Also list the processes using releases (for prune). */
  uses?: boolean;
  /** On a full disk, delete the space reserve to take the lock (rollback, prune: act/reserve.ts). */
  spend?: boolean;
}

function lockedError(label: string, root: string, info: RemoteLockInfo, waitedMs = 0): DeployError {
  const holder = describeHolder(info.owner);
  const details = { host: label, lock: info.owner ? { pid: info.owner.pid, host: info.owner.host, user: info.owner.user, since: info.owner.since } : null };
  if (info.verdict.state === 'foreign') {
    return new DeployError('LOCK_FOREIGN_HOST', `${label}: ${root} is locked by ${holder}`, {
      hint: `if no deploy runs on ${info.owner?.host ?? 'that host'}, run: atomic-deploy unlock ${shellWord(root)} --host ${shellWord(label)} --force`,
      details,
    });
  }
  return new DeployError('LOCKED', `${label}: ${root} is locked by ${holder}`, {
    hint: `${waitedMs > 0 ? `it was still held after the ${waitedMs / 1000} s --wait; wait longer` : 'wait for it with --wait <seconds>'}; if that deploy is hung, stop it, then run: atomic-deploy unlock ${shellWord(root)} --host ${shellWord(label)}`,
    details,
  });
}

/** A host's root that is missing (or a file: the host cannot tell), with the local hint: deploy to it first. */
export function missingRootError(label: string, root: string): DeployError {
  return new DeployError('INVALID_ROOT', `${label}: ${root} does not exist or is not a directory`, {
    hint: `check the path; to make it a deploy root, deploy to it: atomic-deploy deploy <source> ${shellWord(root)} --host ${shellWord(label)}`,
  });
}

/**
 * The hint of a host's full disk that refused the lock, in the local words: prune for a deploy;
 * for a rollback or prune that had no space reserve left to spend, space freed by hand.
 */
function noSpaceHinted(error: DeployError, label: string, root: string, spends: boolean): DeployError {
  if (error.code !== 'NO_SPACE' || error.hint !== undefined) return error;
  const hint = spends ? noReserveHint(root, 'command', label) : hostNoSpaceHint(label, root);
  return new DeployError('NO_SPACE', error.message, { hint, details: { host: label } });
}

export class RemoteRoot {
  readonly ssh: SshHost;
  /** What runs this root's programs: the ssh connection, unless another transport is given. */
  private readonly transport: RootTransport;
  private holder: RunningRemote | undefined;
  private beat: NodeJS.Timeout | undefined;
  private holderEnded = false;
  private holderExit: Promise<unknown> | undefined;
  locked: LockedRoot | undefined;
  /** The host was reached at least once during this operation. */
  connected = false;

  /**
   * The locks this command holds on every host, by token, shared by the fleet's roots: a lock found
   * busy with one of these tokens is this command's own, reached through another name for the same
   * root (an alias, an address, a user@ form), which no wait would ever free.
   */
  ownLocks: Map<string, OwnLock> | undefined;

  constructor(
    readonly label: string,
    target: SshTarget,
    readonly root: string,
    options: SshOptions,
    socket: string,
    readonly fsync: boolean,
    transport?: RootTransport,
  ) {
    this.ssh = new SshHost(label, target, options, socket);
    this.transport = transport ?? this.ssh;
  }

  async connect(): Promise<void> {
    await this.transport.connect();
    this.connected = true;
  }

  /** The connection, opened again if it went away (a lock attempt that found the lock busy ends it). */
  private async ensureConnected(): Promise<void> {
    if (!this.transport.up) await this.connect();
  }

  /** Whether the lock holder still runs: once it is gone, the lock no longer protects this deploy. */
  get holding(): boolean {
    return this.locked !== undefined && !this.holderEnded;
  }

  async run(script: string, what: string, onStderrLine?: (line: string) => void | Promise<void>): Promise<Frame[]> {
    await this.ensureConnected();
    const result = await this.transport.exec(script, { onStderrLine });
    if (result.code !== 0 || result.frames.some((f) => f.tag === 'error')) throw remoteError(this.label, result, what);
    return result.frames;
  }

  /**
   * The root's shape only (undefined: the host could not list it): cheaper than a state read. With
   * `shared`, each shared target too (its kind, and whether `--shared-create` could make it).
   */
  async readShape(shared?: { paths: readonly string[]; create: boolean }): Promise<{ shape: RootShape | undefined; shared: HostSharedTarget[] }> {
    const script = rootShapeScript({ root: this.root, fsync: this.fsync, ...(shared ? { shared } : {}) });
    const read = (frames: readonly Frame[]): { shape: RootShape | undefined; shared: HostSharedTarget[] } => ({ shape: remoteShapeOf(frames), shared: hostSharedTargetsOf(frames) });
    if (this.transport.up) return read(await this.run(script, 'reading the deploy root'));
    // Not connected yet: the connection's own first session reads the shape, then waits for its
    // stdin to end as that session always does (ssh.ts connect): one ssh process, one session and
    // one shell fewer than connecting and then running the read.
    const first = await this.transport.connect(`${script}\nread _ || :`);
    this.connected = true;
    try {
      await first.waitFor(['end']);
    } catch {
      throw remoteError(this.label, await first.done, 'reading the deploy root');
    }
    if (first.frames.some((f) => f.tag === 'error')) throw remoteError(this.label, await first.done, 'reading the deploy root');
    return read(first.frames);
  }

  /** `rsync`: also whether rsync is installed there (facts.rsync), as the lock program tells. */
  async readState(options: { uses?: boolean; rsync?: boolean } = {}): Promise<{ facts: HostFacts; state: RemoteState; uses?: ProcessUse[] }> {
    const frames = await this.run(stateScript({ root: this.root, fsync: this.fsync, uses: options.uses === true, rsync: options.rsync === true }), 'reading the deploy root');
    const uses = processUsesOf(frames);
    return { facts: hostFactsOf(frames), state: remoteStateOf(frames, this.root), ...(uses ? { uses } : {}) };
  }

  async apply(steps: readonly Step[], what: string, onStderrLine?: (line: string) => void | Promise<void>): Promise<Frame[]> {
    if (steps.length === 0) return [];
    return this.run(applyScript({ root: this.root, fsync: this.fsync, steps }), what, onStderrLine);
  }

  /** Moves a lock judged stale aside; `remove` deletes it too (unlock). Returns whether it was this lock that moved. */
  async takeOver(info: RemoteLockInfo, remove: boolean): Promise<boolean> {
    const frames = await this.run(takeoverScript({ root: this.root, fsync: this.fsync, instance: info.instance, lock: info.identity, remove }), 'moving a stale lock aside');
    return frames.some((f) => f.tag === 'takeover' && f.value === 'ok');
  }

  /** Judges the lock as it is now, without taking it. */
  async inspectLock(): Promise<{ facts: HostFacts; info: RemoteLockInfo | null; state: RemoteState }> {
    const { facts, state } = await this.readState();
    return { facts, state, info: state.lock ? judgeRemoteLock(state.lock, facts) : null };
  }

  /**
   * Takes the root's lock with a holder program that stays on the host; a stale lock is taken
   * over (atomically, one contender wins), a live one waited for up to `waitMs`.
   */
  async lock(request: LockRequest): Promise<LockedRoot> {
    const deadline = Date.now() + (request.waitMs ?? 0);
    let tookOver: LockedRoot['tookOver'];
    let gate: string | undefined;
    // Answers of `busy` with no lock there to judge, in a row.
    let unplaced = 0;
    const made: string[] = [];
    for (;;) {
      if (request.signal?.aborted) throw new DeployError('INTERRUPTED', `${this.label}: interrupted while waiting for the lock`);
      const token = randomBytes(12).toString('hex');
      // Known before the lock is placed: a twin that finds it busy at once must already see it as ours.
      this.ownLocks?.set(token, { label: this.label, made });
      const script = lockScript({ root: this.root, fsync: this.fsync, token, command: request.command, create: request.create, uses: request.uses === true, spend: request.spend === true });
      // Not connected yet: the holder becomes the connection's own first session.
      const holder = this.transport.up ? this.transport.start(script) : await this.transport.connect(script);
      this.connected = true;
      let first: Frame;
      try {
        first = await holder.waitFor(['locked', 'busy', 'error']);
      } catch {
        throw remoteError(this.label, await holder.done, 'taking the lock');
      }
      if (first.tag === 'error') {
        const ended = await holder.done;
        // Every command but deploy locks a root that must be there: refused with the local hint.
        if (ended.frames.some((f) => f.tag === 'root' && f.value === 'missing')) throw missingRootError(this.label, this.root);
        throw noSpaceHinted(remoteError(this.label, ended, 'taking the lock'), this.label, this.root, request.spend === true);
      }
      if (first.tag === 'locked') {
        try {
          await holder.waitFor(['end']);
        } catch {
          const ended = await holder.done;
          await this.releaseOrphan(token);
          throw remoteError(this.label, ended, 'reading the deploy root');
        }
        this.holder = holder;
        this.holderEnded = false;
        void holder.done.then(() => {
          this.holderEnded = true;
        });
        // The holder exits when these lines stop: a deploy that vanished cannot keep the lock.
        this.beat = setInterval(() => holder.send(''), 1000);
        const frames = holder.frames;
        made.push(...madeOf(frames));
        const uses = processUsesOf(frames);
        this.locked = {
          token,
          pid: Number(first.value),
          facts: hostFactsOf(frames),
          state: remoteStateOf(frames, this.root),
          ...(uses ? { uses } : {}),
          ...(frameValue(frames, 'reserve') === 'spent' ? { spentReserve: true } : {}),
          ...(tookOver ? { tookOver } : {}),
          ...(gate ? { gate } : {}),
          made,
        };
        return this.locked;
      }
      const result = await holder.done;
      made.push(...madeOf(result.frames));
      const facts = hostFactsOf(result.frames);
      const raw = rawLockOf(result.frames);
      if (!raw) {
        // Busy, and no lock to judge: one released in between (worth another try), or a rename
        // into the root that is refused whatever holds it (an immutable or read-only root). Tried
        // forever, the latter held every other host's lock with it; a third time in a row is that.
        if (++unplaced >= 3) {
          throw new DeployError('IO', `${this.label}: cannot take the lock: the rename that places ${this.root}/.deploy.lock is refused there, and no lock holds it`, {
            hint: `an immutable or append-only attribute (lsattr -d ${this.root}; chattr -i ${this.root}), or a read-only mount`,
            details: { host: this.label },
          });
        }
        await sleep(100 + Math.random() * 200);
        continue;
      }
      unplaced = 0;
      const info = judgeRemoteLock(raw, facts);
      const own = info.owner ? this.ownLocks?.get(info.owner.token) : undefined;
      if (own !== undefined) {
        // Made for the same root, maybe racing the other name: the name that holds the lock takes them away if refused.
        own.made.push(...made);
        const twin = own.label;
        throw new DeployError('USAGE', `${this.label} is ${twin} again: ${this.root} there is locked by this very command, through ${twin}`, {
          hint: 'list each host once: an alias, an address and a user@ form of one machine are one host',
          details: { host: this.label, sameAs: twin },
        });
      }
      if (info.verdict.state === 'stale') {
        if (await this.takeOver(info, false)) {
          tookOver = { owner: info.owner, reason: info.verdict.reason };
          gate = `stale-lock.${info.instance}`;
        }
        continue;
      }
      if (info.verdict.state === 'foreign' || Date.now() >= deadline) throw lockedError(this.label, this.root, info, request.waitMs ?? 0);
      await sleep(300 + Math.random() * 400);
    }
  }

  /**
   * Releases the lock `token` placed when its holder ended before reporting the root (a probe
   * that found no inode, a killed shell): left, it held the root until taken over as stale. Best
   * effort, and only while the lock is still that one; the holder's own error is the one reported.
   */
  private async releaseOrphan(token: string): Promise<void> {
    await this.apply([{ op: 'release-lock', token }], 'releasing the lock').catch(() => undefined);
  }

  /** Stops the holder program (its lock must already be released, or be left for recovery). */
  stopHolder(): void {
    if (this.beat) clearInterval(this.beat);
    this.beat = undefined;
    const holder = this.holder;
    this.holder = undefined;
    if (!holder) return;
    // The holder exits when its stdin ends (or with the connection, closed right after).
    holder.end();
    this.holderExit = holder.done;
  }

  /** The lock was released on the host by a program of ours (commit or switch back). */
  released(): void {
    this.locked = undefined;
    this.stopHolder();
  }

  /**
   * Runs `before` under the lock, releases it (if the connection allows), runs `after`, stops the
   * holder; returns the program's frames (none when nothing was held). `afterHolder`: `after` runs
   * once the holder has ended, in a program of its own (removing a root the deploy made: the
   * holder's heartbeat file in .tmp/ would keep it, and its parents, from being empty).
   */
  async unlock(before: readonly Step[] = [], after: readonly Step[] = [], options: { afterHolder?: boolean } = {}): Promise<Frame[]> {
    const locked = this.locked;
    const later = options.afterHolder === true ? after : [];
    let frames: Frame[] = [];
    if (locked && this.connected) {
      try {
        frames = await this.apply([...before, { op: 'release-lock', token: locked.token, ...(locked.gate ? { gate: locked.gate } : {}) }, ...(later.length > 0 ? [] : after)], 'releasing the lock');
      } finally {
        this.locked = undefined;
      }
    }
    this.locked = undefined;
    this.stopHolder();
    if (locked && this.connected && later.length > 0) {
      if (this.holderExit) await awaitAtMost(this.holderExit, 2000);
      frames = [...frames, ...(await this.apply(later, 'removing the root it made'))];
    }
    return frames;
  }

  async close(): Promise<void> {
    this.stopHolder();
    // A holder cleans up its heartbeat file as it exits: a moment, unless the host stopped answering.
    if (this.holderExit) await awaitAtMost(this.holderExit, 2000);
    this.holderExit = undefined;
    await this.transport.disconnect().catch(() => undefined);
    this.connected = false;
  }
}

