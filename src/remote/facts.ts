/** Decoding what the remote programs print: NUL-framed pairs into the facts the planners take. */
import { recordFromText, type ReleaseRecord } from '../act/state.ts';
import type { CurrentState } from '../act/switch.ts';
import type { FleetJournal } from '../plan/fleet.ts';
import type { ProcessUse } from '../plan/in-use.ts';
import { isReleasesLeftover } from '../plan/journal.ts';
import { bashLockPid, judgeLock, type LockOwner, type LockVerdict } from '../plan/lock.ts';
import { releaseIdFromLink } from '../plan/paths.ts';
import { releaseIdProblem } from '../plan/release-id.ts';
import { classifyRoot, type EntryType, type RootShape } from '../plan/root-shape.ts';
import type { FolderOwner, SharedTargetKind } from '../plan/shared.ts';
import type { LockIdentity } from '../root/effects.ts';
import { lockInstance } from '../root/lock.ts';

export interface Frame {
  tag: string;
  value: string;
  /**
   * The value's bytes, kept only when its text holds U+FFFD: what the decoder makes of bytes that
   * are not UTF-8 (a host's file name), which the text alone can no longer tell from the character.
   */
  raw?: Buffer;
  /** performance.now() when the frame arrived (set for programs that stream). */
  at?: number;
}

/**
 * Splits a stream of `tag\0value\0` pairs as it arrives; a partial pair waits for the next chunk.
 * Linear in the bytes read: only each new chunk is searched for the NUL, and the pieces of a field
 * that spans chunks are joined once, when it ends (a manifest or a list of sums arrives in hundreds
 * of chunks: joining and searching everything pending on every chunk made that quadratic).
 */
export class FrameReader {
  /** The current field's bytes so far, from earlier chunks. */
  private parts: Buffer[] = [];
  private tag: string | undefined;

  push(chunk: Buffer): Frame[] {
    const frames: Frame[] = [];
    let start = 0;
    for (let i = chunk.indexOf(0); i !== -1; i = chunk.indexOf(0, start)) {
      const piece = chunk.subarray(start, i);
      const bytes = this.parts.length === 0 ? piece : Buffer.concat([...this.parts, piece]);
      const text = bytes.toString('utf8');
      this.parts = [];
      start = i + 1;
      if (this.tag === undefined) {
        this.tag = text;
      } else {
        // A copy: `piece` is a view of a chunk the stream may reuse.
        frames.push(text.includes('\uFFFD') ? { tag: this.tag, value: text, raw: Buffer.from(bytes) } : { tag: this.tag, value: text });
        this.tag = undefined;
      }
    }
    if (start < chunk.length) this.parts.push(chunk.subarray(start));
    return frames;
  }
}

export function parseFrames(output: Buffer | string): Frame[] {
  return new FrameReader().push(typeof output === 'string' ? Buffer.from(output) : output);
}

export function frameValue(frames: readonly Frame[], tag: string): string | undefined {
  return frames.find((f) => f.tag === tag)?.value;
}

/** What a target says about itself. */
export interface HostFacts {
  host: string;
  user: string;
  bootId?: string;
  /** The target's clock, which lock ages are measured against. */
  nowMs: number;
  btimeMs?: number;
  rsync: boolean;
}

export interface RawLock {
  kind: 'dir' | 'other';
  ownerJson?: string;
  pidFile?: string;
  inode: string;
  mtimeMs?: number;
  pid?: number;
  /** Whether that pid answers kill -0; `exited`: only as a zombie (see proc_start). */
  alive?: boolean | 'exited';
  /** Start time (clock ticks) of whatever process has that pid now. */
  pstart?: string;
}

export type RemoteJournal = { kind: 'none' } | { kind: 'ok'; journal: FleetJournal } | { kind: 'garbage'; text: string };

/**
 * A release log record as read from a target; `fleet` ties it to the fleet deploy that made it;
 * `digest` is its manifest's (read from `manifest` in records written before 2026-12-04, see
 * plan/manifest.ts withDigest); `copiedOnHost` counts the files copied on the host from its
 * current release instead of linked (before-switch hooks ran in the release).
 */
export type RemoteRecord = ReleaseRecord & { fleet?: { token: string }; copiedOnHost?: number };

export interface RemoteState {
  rootExists: boolean;
  /**
   * What the folder is, by its top-level entries (plan/root-shape.ts classifyRoot, the local
   * engine's rule); absent when the host could not list it.
   */
  shape?: RootShape;
  rootReal?: string;
  current: CurrentState;
  releases: string[];
  /** Releases whose directory holds nothing (made by hand): no rollback goes there. */
  empty?: string[];
  records: Map<string, RemoteRecord>;
  /** Releases whose record is there but damaged (why): read as without one, and never rewritten. */
  damaged?: Map<string, string>;
  journal: RemoteJournal;
  tmp: string[];
  /** Hidden stages and trash inside releases/ (`.stage.*`, `.trash.*`), left by an interrupted operation. */
  hidden?: string[];
  /** releases/ is another mount than .tmp/ (told by the lock holder): stages and trash go inside it. */
  stagingInReleases?: boolean;
  lock: RawLock | null;
}

function num(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

export function hostFactsOf(frames: readonly Frame[]): HostFacts {
  const now = num(frameValue(frames, 'now'));
  const btime = num(frameValue(frames, 'btime'));
  const bootId = frameValue(frames, 'bootid')?.trim();
  return {
    host: frameValue(frames, 'host') ?? '',
    user: frameValue(frames, 'user') ?? 'unknown',
    ...(bootId ? { bootId } : {}),
    nowMs: now === undefined ? Date.now() : now * 1000,
    ...(btime === undefined ? {} : { btimeMs: btime * 1000 }),
    rsync: frameValue(frames, 'rsync') === 'yes',
  };
}

/** The lock facts `lock_facts` printed, or null when there is no lock. */
export function rawLockOf(frames: readonly Frame[]): RawLock | null {
  const kind = frameValue(frames, 'lock');
  if (kind === undefined || kind === 'none') return null;
  const pid = num(frameValue(frames, 'pid'));
  const alive = frameValue(frames, 'alive');
  const mtime = num(frameValue(frames, 'mtime'));
  const pstart = frameValue(frames, 'pstart');
  const ownerJson = frameValue(frames, 'owner');
  const pidFile = frameValue(frames, 'pidfile');
  return {
    kind: kind === 'dir' ? 'dir' : 'other',
    inode: frameValue(frames, 'inode') ?? '',
    ...(ownerJson !== undefined ? { ownerJson } : {}),
    ...(pidFile !== undefined ? { pidFile } : {}),
    ...(mtime === undefined ? {} : { mtimeMs: mtime * 1000 }),
    ...(pid === undefined ? {} : { pid }),
    ...(alive === undefined ? {} : { alive: alive === '1' ? true : alive === 'exited' ? 'exited' : false }),
    ...(pstart ? { pstart } : {}),
  };
}

/** The owner a lock records, read as the local engine reads it (its own format or the bash tool's pid file). */
export function lockOwnerOf(raw: RawLock, facts: HostFacts): LockOwner | null {
  const since = new Date(raw.mtimeMs ?? facts.nowMs).toISOString();
  if (raw.kind === 'dir' && raw.ownerJson !== undefined) {
    try {
      const o = JSON.parse(raw.ownerJson) as Partial<LockOwner>;
      if (typeof o.pid === 'number' && Number.isInteger(o.pid) && o.pid > 0 && typeof o.host === 'string' && typeof o.token === 'string') {
        return {
          pid: o.pid,
          host: o.host,
          user: typeof o.user === 'string' ? o.user : 'unknown',
          since: typeof o.since === 'string' ? o.since : since,
          token: o.token,
          ...(typeof o.startTime === 'string' ? { startTime: o.startTime } : {}),
          ...(typeof o.bootId === 'string' ? { bootId: o.bootId } : {}),
          ...(typeof o.command === 'string' ? { command: o.command } : {}),
          format: 'atomic-deploy',
        };
      }
    } catch {
      // Garbage in owner.json: a lock with no owner.
    }
    return null;
  }
  // `.deploy.lock/pid` of the classic script, or a `.deploy.lock` file holding a pid (another tool's).
  const pid = bashLockPid(raw.pidFile);
  if (pid === undefined) return null;
  return { pid, host: facts.host, user: 'unknown', since, token: `bash-${pid}-${raw.inode}`, format: 'bash' };
}

export interface RemoteLockInfo {
  owner: LockOwner | null;
  verdict: LockVerdict;
  /** Safe for a file name; names the takeover's tombstone. */
  instance: string;
  /** How the takeover recognises this lock once moved. */
  identity: LockIdentity;
}

/** Judges a remote lock with the same rules as a local one, from facts gathered on its host. */
export function judgeRemoteLock(raw: RawLock, facts: HostFacts): RemoteLockInfo {
  const owner = lockOwnerOf(raw, facts);
  const ticks = raw.pstart;
  const startedAtMs = ticks !== undefined && facts.btimeMs !== undefined ? facts.btimeMs + Number(ticks) * 10 : undefined;
  const verdict = judgeLock(owner, {
    thisHost: facts.host,
    ...(facts.bootId ? { thisBootId: facts.bootId } : {}),
    process: !owner ? 'dead' : raw.alive === true ? 'alive' : raw.alive === 'exited' ? 'exited' : 'dead',
    ...(ticks ? { processStartTime: ticks } : {}),
    ...(startedAtMs === undefined ? {} : { processStartedAtMs: startedAtMs }),
    lockCreatedAtMs: raw.mtimeMs ?? facts.nowMs,
    nowMs: facts.nowMs,
    notADirectory: raw.kind !== 'dir',
  });
  const mtimeS = Math.floor((raw.mtimeMs ?? 0) / 1000);
  const identity: LockIdentity = owner?.format === 'atomic-deploy' ? { token: owner.token } : { inode: raw.inode, mtimeS };
  return { owner, verdict, instance: lockInstance(owner?.token, raw.inode, mtimeS), identity };
}

function currentOf(frames: readonly Frame[], root: string, rootReal: string, releases: readonly string[]): CurrentState {
  const kind = frameValue(frames, 'current');
  if (kind === 'directory') return { kind: 'directory' };
  if (kind === 'file') return { kind: 'file' };
  if (kind !== 'link') return { kind: 'missing' };
  const target = frameValue(frames, 'target') ?? '';
  const id = releaseIdFromLink(target, rootReal, root);
  if (id === undefined) return { kind: 'outside', target };
  return releases.includes(id) ? { kind: 'release', id, target } : { kind: 'dangling', id, target };
}

function journalOf(text: string | undefined): RemoteJournal {
  if (text === undefined) return { kind: 'none' };
  try {
    const journal = JSON.parse(text) as FleetJournal;
    const known = journal.v === 1 && (journal.op === 'deploy' || journal.op === 'rollback') && typeof journal.release === 'string';
    return known ? { kind: 'ok', journal } : { kind: 'garbage', text };
  } catch {
    return { kind: 'garbage', text };
  }
}

const ENTRY_TYPES: Readonly<Record<string, EntryType>> = { d: 'dir', f: 'file', l: 'symlink', o: 'other' };

/** What rootShapeScript (or a state read) printed: missing, or the shape its entries make; undefined when the host could not list the root. */
export function remoteShapeOf(frames: readonly Frame[]): RootShape | undefined {
  return frameValue(frames, 'root') === 'ok' ? shapeOf(frames) : { kind: 'missing' };
}

/** A shared target as a host read it (remote/script.ts sharedFactsLines): its kind, and who may not make it. */
export interface HostSharedTarget {
  kind: SharedTargetKind;
  /** `--shared-create` could not make it: the folder this user may not write in, its owner, this user. */
  denied?: { dir: string; owner: FolderOwner; user: string };
}

const TARGET_KINDS: readonly string[] = ['file', 'dir', 'other', 'missing', 'dangling', 'blocked'] satisfies SharedTargetKind[];

/** The `sharedkind` frames in order, each with the `shareddenied`, `sharedowner` and `shareduser` frames that follow it. */
export function hostSharedTargetsOf(frames: readonly Frame[]): HostSharedTarget[] {
  const targets: HostSharedTarget[] = [];
  let denied: { dir: string; owner: FolderOwner; user: string } | undefined;
  for (const f of frames) {
    if (f.tag === 'sharedkind') {
      // A kind the host's shell did not print whole stops the reading: the caller says the check printed nothing usable.
      if (!TARGET_KINDS.includes(f.value)) break;
      targets.push({ kind: f.value as SharedTargetKind });
      denied = undefined;
      continue;
    }
    const last = targets.at(-1);
    if (last === undefined) continue;
    if (f.tag === 'shareddenied') {
      denied = { dir: f.value, owner: {}, user: 'unknown' };
      last.denied = denied;
    } else if (f.tag === 'sharedowner' && denied) {
      const m = /^(\d+)(?: (.*))?$/.exec(f.value.trim());
      const name = m?.[2];
      // GNU and BusyBox print UNKNOWN for a uid without a name, a BSD the number.
      denied.owner = m ? { uid: Number(m[1]), ...(name && name !== 'UNKNOWN' && name !== m[1] ? { name } : {}) } : {};
    } else if (f.tag === 'shareduser' && denied) {
      denied.user = f.value;
    }
  }
  return targets;
}

/** The root's shape from its `rootentry` frames (`<d|f|l|o> <name>`); undefined unless the host listed it. */
function shapeOf(frames: readonly Frame[]): RootShape | undefined {
  if (frameValue(frames, 'rootlisted') !== 'yes') return undefined;
  const entries = frames.filter((f) => f.tag === 'rootentry').map((f) => ({ name: f.value.slice(2), type: ENTRY_TYPES[f.value[0] ?? ''] ?? 'other' }));
  return classifyRoot(entries);
}

/** What `state_facts` printed about the root at `root`. */
export function remoteStateOf(frames: readonly Frame[], root: string): RemoteState {
  const all = (tag: string): string[] => frames.filter((f) => f.tag === tag).map((f) => f.value);
  if (frameValue(frames, 'root') !== 'ok') {
    return { rootExists: false, shape: { kind: 'missing' }, current: { kind: 'missing' }, releases: [], records: new Map(), journal: { kind: 'none' }, tmp: [], lock: null };
  }
  const shape = shapeOf(frames);
  const rootReal = frameValue(frames, 'rootreal') || root;
  const releases = all('release').filter((id) => id !== '' && !id.startsWith('.'));
  const records = new Map<string, RemoteRecord>();
  const damaged = new Map<string, string>();
  const texts = all('record');
  for (const [i, name] of all('recordname').entries()) {
    const id = name.endsWith('.json') ? name.slice(0, -'.json'.length) : '';
    if (releaseIdProblem(id) !== undefined) continue;
    // The local engine's rule (act/state.ts): a damaged record only loses that release's metadata,
    // and is never rewritten; one naming another release is no record of either.
    const load = recordFromText(texts[i] ?? '', id);
    if (load.kind === 'ok') records.set(id, load.record);
    else if (load.kind === 'damaged') damaged.set(id, load.why);
  }
  return {
    rootExists: true,
    ...(shape ? { shape } : {}),
    rootReal,
    current: currentOf(frames, root, rootReal, releases),
    releases,
    empty: all('empty'),
    records,
    ...(damaged.size > 0 ? { damaged } : {}),
    journal: journalOf(frameValue(frames, 'journal')),
    tmp: all('tmp'),
    hidden: all('hidden').filter(isReleasesLeftover),
    ...(frameValue(frames, 'staging') === 'releases' ? { stagingInReleases: true } : {}),
    lock: rawLockOf(frames),
  };
}

/**
 * Process uses as `use_facts` listed them; undefined when the host has no /proc to look at. A
 * live thread's `/proc/<pid>/task/<tid>/` entries (listed where the main thread has exited) are
 * the process's own; the zombies' stat lines among the maps lines are no use.
 */
export function processUsesOf(frames: readonly Frame[]): ProcessUse[] | undefined {
  if (frameValue(frames, 'inuse') !== 'proc') return undefined;
  const uses: ProcessUse[] = [];
  const commands = new Map<number, string>();
  let fdOf: number | undefined;
  for (const line of (frameValue(frames, 'uses') ?? '').split('\n')) {
    const header = /^\/proc\/(\d+)(?:\/task\/\d+)?\/fd:$/.exec(line);
    if (header) {
      fdOf = Number(header[1]);
      continue;
    }
    const link = /\/proc\/(\d+)(?:\/task\/\d+)?\/(cwd|root|exe) -> (.*)$/.exec(line);
    if (link) {
      const pid = Number(link[1]);
      const target = link[3] ?? '';
      if (link[2] === 'exe') commands.set(pid, target.replace(/ \(deleted\)$/, '').split('/').pop() ?? '?');
      else uses.push({ pid, command: '', kind: link[2] === 'cwd' ? 'cwd' : 'root', path: target });
      continue;
    }
    const fd = / \d+ -> (\/.*)$/.exec(line);
    if (fd && fdOf !== undefined) uses.push({ pid: fdOf, command: '', kind: 'fd', path: fd[1] ?? '' });
  }
  for (const line of (frameValue(frames, 'maps') ?? '').split('\n')) {
    const m = /^\/proc\/(\d+)(?:\/task\/\d+)?\/maps:\S+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\/.*)$/.exec(line);
    if (m) uses.push({ pid: Number(m[1]), command: '', kind: 'map', path: m[2] ?? '' });
  }
  return uses.map((u) => ({ ...u, command: commands.get(u.pid) ?? '?' }));
}
