// Conformance: the same scenarios against the local engine and against the remote programs run
// by dash and by BusyBox sh (BusyBox applets only on PATH); every side must give the same outcome.
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { allEngines, dashShell, localEngine, outcomeOf, shellBookkeeping, type BookkeepingRequest, type Engine, type LockOutcome, type RootOutcome, type UndoRequest } from '../harness/engines.ts';
import type { PlaceInput } from '../../src/root/place.ts';
import { requireTools, startTicks, writeOwnerLock } from '../harness/faults.ts';
import { deadPid } from '../harness/invariants.ts';
import type { RootShape } from '../../src/plan/root-shape.ts';

const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'conformance-'));
const sleepers: ChildProcess[] = [];
const threadedZombies: number[] = [];
after(() => {
  for (const s of sleepers) s.kill('SIGKILL');
  for (const pid of threadedZombies) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  fs.rmSync(BASE, { recursive: true, force: true });
});
const ENGINES = allEngines(BASE);
let n = 0;

function freshRoot(): string {
  const root = path.join(BASE, `root-${n++}`);
  fs.mkdirSync(path.join(root, 'releases'), { recursive: true });
  return root;
}

function liveSleeper(): number {
  const child = spawn('sleep', ['120'], { stdio: 'ignore' });
  sleepers.push(child);
  assert.ok(child.pid);
  return child.pid;
}

/**
 * A process that has exited but was not reaped: its parent (python, which never waits) prints its pid.
 * With `thread`, only its main thread exits while another runs on (ps shows it `Zl`): a live process.
 */
async function unreaped(thread: boolean): Promise<number> {
  requireTools('python3');
  const script = String.raw`
import ctypes, os, sys, threading, time
pid = os.fork()
if pid == 0:
    if sys.argv[1] == 'thread':
        threading.Thread(target=lambda: (time.sleep(120), os._exit(0))).start()
        ctypes.CDLL(None).pthread_exit(None)
    os._exit(0)
print(pid, flush=True)
time.sleep(120)
`;
  const parent = spawn('python3', ['-c', script, thread ? 'thread' : 'exit'], { stdio: ['ignore', 'pipe', 'inherit'] });
  sleepers.push(parent);
  const pid = await new Promise<number>((resolve, reject) => {
    parent.stdout.once('data', (b: Buffer) => resolve(Number(String(b).trim())));
    parent.once('exit', () => reject(new Error('python3 ended before its child was made')));
  });
  if (thread) threadedZombies.push(pid);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' && fields[17] === (thread ? '2' : '1')) return pid;
    assert.ok(Date.now() < deadline, `process ${pid} never showed as ${thread ? 'a zombie leader with a live thread' : 'a zombie'}: ${stat}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const lockDir = (root: string): string => path.join(root, '.deploy.lock');
const tmpNames = (root: string): string[] => (fs.existsSync(path.join(root, '.tmp')) ? fs.readdirSync(path.join(root, '.tmp')).sort() : []);

/** What a lock attempt ended in, for comparing sides; a won lock is released again. */
async function settle(outcome: LockOutcome): Promise<string> {
  if (outcome.result !== 'locked') return outcome.result;
  await outcome.release();
  return outcome.tookOver ? 'locked after a takeover' : 'locked';
}

interface LockScenario {
  name: string;
  /** Sets the root up; returns a check of what must still be true afterwards. */
  setup(root: string): Promise<(() => void) | void>;
  expect: string;
}

const LOCK_SCENARIOS: LockScenario[] = [
  { name: 'lock free', setup: () => Promise.resolve(), expect: 'locked' },
  {
    name: 'held by a live owner',
    setup: (root) => {
      const pid = liveSleeper();
      writeOwnerLock(root, { pid, startTime: startTicks(pid) });
      const owner = fs.readFileSync(path.join(lockDir(root), 'owner.json'), 'utf8');
      return Promise.resolve(() => assert.equal(fs.readFileSync(path.join(lockDir(root), 'owner.json'), 'utf8'), owner));
    },
    expect: 'LOCKED',
  },
  {
    name: 'a fresh empty directory (a lock being taken, or the bash tool between mkdir and its pid)',
    setup: (root) => {
      fs.mkdirSync(lockDir(root));
      return Promise.resolve(() => assert.deepEqual(fs.readdirSync(lockDir(root)), [], 'the empty lock was replaced'));
    },
    expect: 'LOCKED',
  },
  {
    name: "the bash tool's pid file with a live pid",
    setup: (root) => {
      const pid = liveSleeper();
      fs.mkdirSync(lockDir(root));
      fs.writeFileSync(path.join(lockDir(root), 'pid'), `${pid}\n`);
      return Promise.resolve(() => assert.equal(fs.readFileSync(path.join(lockDir(root), 'pid'), 'utf8'), `${pid}\n`));
    },
    expect: 'LOCKED',
  },
  {
    name: "the bash tool's pid file with a dead pid",
    setup: async (root) => {
      fs.mkdirSync(lockDir(root));
      fs.writeFileSync(path.join(lockDir(root), 'pid'), `${await deadPid()}\n`);
    },
    expect: 'locked after a takeover',
  },
  {
    name: 'held by a process that exited and was never reaped (a zombie: its parent does not wait)',
    setup: async (root) => {
      const pid = await unreaped(false);
      writeOwnerLock(root, { pid, startTime: startTicks(pid) });
    },
    expect: 'locked after a takeover',
  },
  {
    name: 'held by a process whose main thread exited while another thread runs (shown as a zombie, alive)',
    setup: async (root) => {
      const pid = await unreaped(true);
      writeOwnerLock(root, { pid, startTime: startTicks(pid) });
    },
    expect: 'LOCKED',
  },
  {
    name: "another host's lock",
    setup: (root) => {
      writeOwnerLock(root, { pid: liveSleeper(), host: 'elsewhere.example' });
      return Promise.resolve();
    },
    expect: 'LOCK_FOREIGN_HOST',
  },
  {
    name: 'stale with a reused pid (live pid, another start time)',
    setup: (root) => {
      const pid = liveSleeper();
      writeOwnerLock(root, { pid, startTime: String(Number(startTicks(pid)) - 1000) });
      return Promise.resolve();
    },
    expect: 'locked after a takeover',
  },
  {
    name: 'an old empty directory',
    setup: (root) => {
      fs.mkdirSync(lockDir(root));
      const old = new Date(Date.now() - 60_000);
      fs.utimesSync(lockDir(root), old, old);
      return Promise.resolve();
    },
    expect: 'locked',
  },
  {
    name: "another tool's lock FILE (echo $$ > .deploy.lock) an hour old, its pid dead",
    setup: async (root) => {
      fs.writeFileSync(lockDir(root), `${await deadPid()}\n`);
      const old = new Date(Date.now() - 3_600_000);
      fs.utimesSync(lockDir(root), old, old);
    },
    expect: 'locked after a takeover',
  },
  {
    name: "another tool's lock FILE with a live pid",
    setup: (root) => {
      const pid = liveSleeper();
      fs.writeFileSync(lockDir(root), `${pid}\n`);
      return Promise.resolve(() => assert.equal(fs.readFileSync(lockDir(root), 'utf8'), `${pid}\n`));
    },
    expect: 'LOCKED',
  },
  {
    name: "another tool's lock that names no process (an old symlink): cannot be judged, held",
    setup: (root) => {
      fs.symlinkSync('/nonexistent', lockDir(root));
      const old = new Date(Date.now() - 3_600_000);
      fs.lutimesSync(lockDir(root), old, old);
      return Promise.resolve(() => assert.equal(fs.readlinkSync(lockDir(root)), '/nonexistent'));
    },
    expect: 'LOCKED',
  },
];

describe('lock: every side judges and takes the lock alike', () => {
  for (const scenario of LOCK_SCENARIOS) {
    test(scenario.name, async () => {
      const seen: string[] = [];
      for (const engine of ENGINES) {
        const root = freshRoot();
        const check = await scenario.setup(root);
        seen.push(`${engine.name}: ${await settle(await engine.lock(root))}`);
        check?.();
      }
      assert.deepEqual(seen, ENGINES.map((e) => `${e.name}: ${scenario.expect}`));
    });
  }
});

describe('lock: contenders on one stale lock', () => {
  const pairs: [Engine, Engine][] = ENGINES.flatMap((a) => ENGINES.map((b) => [a, b] as [Engine, Engine]));
  for (const [a, b] of pairs) {
    test(`${a.name} and ${b.name} at once: one wins, the other finds it held, one takeover at most`, async () => {
      const root = freshRoot();
      writeOwnerLock(root, { pid: await deadPid() });
      const [ra, rb] = await Promise.all([a.lock(root), b.lock(root)]);
      const results = [ra, rb];
      const winners = results.filter((r) => r.result === 'locked');
      try {
        const takeovers = winners.filter((r) => r.result === 'locked' && r.tookOver);
        const summary = results.map((r) => r.result).join(', ');
        // A late contender may find the lock free again only after the winner released it; here nobody releases before both end.
        assert.equal(winners.length, 1, summary);
        assert.ok(takeovers.length <= 1, summary);
        const loser = results.find((r) => r.result !== 'locked');
        assert.equal(loser?.result, 'LOCKED', summary);
        assert.equal(loser.holderPid, winners[0]?.holderPid, `the loser names the winner as holder (its error: ${loser.message})`);
      } finally {
        // Also when an assertion failed: a shell engine's holder is kept by a heartbeat interval,
        // which kept this file running until the runner stopped it (15 minutes).
        for (const w of winners) if (w.result === 'locked') await w.release();
      }
      assert.ok(!fs.existsSync(lockDir(root)), 'the lock remains after its release');
    });
  }
});

describe('lock: the stalled-contender tombstone race', () => {
  const pairs: [Engine, Engine][] = ENGINES.flatMap((a) => ENGINES.map((b) => [a, b] as [Engine, Engine]));
  for (const [stalled, other] of pairs) {
    test(`${stalled.name} judges a lock stale and stalls; ${other.name} takes it over, works, releases, takes it again; the stalled one must not move the newer lock`, async () => {
      const root = freshRoot();
      writeOwnerLock(root, { pid: await deadPid(), token: 'stale-one' });
      const judged = await stalled.judgeStale(root);
      const first = await other.lock(root);
      assert.equal(first.result, 'locked');
      assert.ok(first.result === 'locked' && first.tookOver);
      await first.release();
      // docs/reliability.md row 4: the tombstone outlives the release that follows the takeover.
      assert.ok(tmpNames(root).includes('stale-lock.stale-one'), `no tombstone after the release: ${tmpNames(root).join(' ')}`);
      const second = await other.lock(root);
      assert.equal(second.result, 'locked');
      const before = fs.lstatSync(lockDir(root)).ino;
      assert.equal(await judged.takeOver(), false, 'the stalled contender moved a lock');
      assert.equal(fs.lstatSync(lockDir(root)).ino, before, 'the newer lock moved');
      if (second.result === 'locked') await second.release();
    });
  }
});

function makeRelease(root: string, id: string, seq: number, status: string): void {
  fs.mkdirSync(path.join(root, 'releases', id), { recursive: true });
  fs.writeFileSync(path.join(root, 'releases', id, 'version'), id);
  const log = path.join(root, '.atomic-deploy', 'releases');
  fs.mkdirSync(log, { recursive: true });
  const record = { id, seq, status, createdAt: '2026-01-01T00:00:00.000Z', user: 'root', host: os.hostname(), source: '/src', files: 1, bytes: id.length, durationMs: 1, previous: null };
  fs.writeFileSync(path.join(log, `${id}.json`), JSON.stringify(record));
}

function setCurrent(root: string, id: string): void {
  fs.symlinkSync(`releases/${id}`, path.join(root, 'current'));
}

function writeJournal(root: string, journal: object | string): void {
  fs.mkdirSync(path.join(root, '.atomic-deploy'), { recursive: true });
  fs.writeFileSync(path.join(root, '.atomic-deploy', 'journal.json'), typeof journal === 'string' ? journal : JSON.stringify({ v: 1, token: 't', pid: 1, startedAt: '2026-01-01T00:00:00.000Z', ...journal }));
}

/** Puts `text` in place of release `id`'s record: a hand edit, a truncated copy, another release's record copied over it. */
function damageRecord(root: string, id: string, text: string): void {
  fs.writeFileSync(path.join(root, '.atomic-deploy', 'releases', `${id}.json`), text);
}

/** r1 and r2 deployed, r2 current. */
function twoReleases(root: string): void {
  makeRelease(root, 'r1', 1, 'complete');
  makeRelease(root, 'r2', 2, 'complete');
  setCurrent(root, 'r2');
}

interface RecoveryScenario {
  name: string;
  setup(root: string): void;
  expect: Partial<RootOutcome>;
}

const RECOVERY_SCENARIOS: RecoveryScenario[] = [
  {
    name: 'no journal: leftovers in .tmp/ of a crashed deploy are removed',
    setup: (root) => {
      twoReleases(root);
      for (const name of ['stage.abc/r3', 'current.def/current', 'trash.r0.123/x']) fs.mkdirSync(path.join(root, '.tmp', name), { recursive: true });
    },
    expect: { current: 'r2', releases: ['r1', 'r2'], tmp: [] },
  },
  {
    name: 'deploy, phase copying: the partial copy goes, current stays',
    setup: (root) => {
      twoReleases(root);
      fs.mkdirSync(path.join(root, '.tmp', 'stage.abc', 'r3'), { recursive: true });
      writeJournal(root, { op: 'deploy', release: 'r3', previous: 'r2', phase: 'copying' });
    },
    expect: { current: 'r2', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'complete' }, journal: false, tmp: [] },
  },
  {
    name: 'deploy, phase copying, release placed before its record was written: it is removed, never taken for the rollback target',
    setup: (root) => {
      twoReleases(root);
      fs.mkdirSync(path.join(root, 'releases', 'r3'));
      writeJournal(root, { op: 'deploy', release: 'r3', previous: 'r2', phase: 'copying' });
    },
    expect: { current: 'r2', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'complete' }, journal: false, tmp: [] },
  },
  {
    name: 'deploy, phase ready: the release that never went live is removed with its record',
    setup: (root) => {
      twoReleases(root);
      makeRelease(root, 'r3', 3, 'pending');
      writeJournal(root, { op: 'deploy', release: 'r3', previous: 'r2', phase: 'ready' });
    },
    expect: { current: 'r2', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'complete' }, journal: false },
  },
  {
    name: 'deploy, phase switched: the live release is recorded as deployed',
    setup: (root) => {
      makeRelease(root, 'r1', 1, 'complete');
      makeRelease(root, 'r2', 2, 'complete');
      makeRelease(root, 'r3', 3, 'pending');
      setCurrent(root, 'r3');
      writeJournal(root, { op: 'deploy', release: 'r3', previous: 'r2', phase: 'switched' });
    },
    expect: { current: 'r3', releases: ['r1', 'r2', 'r3'], statuses: { r1: 'complete', r2: 'complete', r3: 'complete' }, journal: false },
  },
  {
    name: 'deploy, phase rolling-back, switched back already: the release is kept, recorded failed',
    setup: (root) => {
      twoReleases(root);
      makeRelease(root, 'r3', 3, 'pending');
      writeJournal(root, { op: 'deploy', release: 'r3', previous: 'r2', phase: 'rolling-back', reason: 'health check failed' });
    },
    expect: { current: 'r2', releases: ['r1', 'r2', 'r3'], statuses: { r1: 'complete', r2: 'complete', r3: 'failed' }, journal: false },
  },
  {
    name: 'deploy, phase rolling-back, still live: recorded failed, left live for a rollback',
    setup: (root) => {
      makeRelease(root, 'r1', 1, 'complete');
      makeRelease(root, 'r2', 2, 'complete');
      makeRelease(root, 'r3', 3, 'pending');
      setCurrent(root, 'r3');
      writeJournal(root, { op: 'deploy', release: 'r3', previous: 'r2', phase: 'rolling-back', reason: 'health check failed' });
    },
    expect: { current: 'r3', releases: ['r1', 'r2', 'r3'], statuses: { r1: 'complete', r2: 'complete', r3: 'failed' }, journal: false },
  },
  {
    name: 'rollback, phase switching, not switched: nothing but the journal changes',
    setup: (root) => {
      twoReleases(root);
      writeJournal(root, { op: 'rollback', release: 'r1', previous: 'r2', phase: 'switching' });
    },
    expect: { current: 'r2', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'complete' }, journal: false },
  },
  {
    name: 'rollback, phase switched: the release rolled back from is recorded so',
    setup: (root) => {
      makeRelease(root, 'r1', 1, 'complete');
      makeRelease(root, 'r2', 2, 'complete');
      setCurrent(root, 'r1');
      writeJournal(root, { op: 'rollback', release: 'r1', previous: 'r2', phase: 'switched' });
    },
    expect: { current: 'r1', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'rolled-back' }, journal: false },
  },
  {
    name: "deploy, phase switched, the live release's record damaged (truncated): kept as it is, never rewritten with made-up fields",
    setup: (root) => {
      twoReleases(root);
      makeRelease(root, 'r3', 3, 'pending');
      damageRecord(root, 'r3', '{"id":"r3","seq":3,"status":"pend');
      fs.rmSync(path.join(root, 'current'));
      setCurrent(root, 'r3');
      writeJournal(root, { op: 'deploy', release: 'r3', previous: 'r2', phase: 'switched' });
    },
    expect: { current: 'r3', releases: ['r1', 'r2', 'r3'], statuses: { r1: 'complete', r2: 'complete', r3: 'damaged: {"id":"r3","seq":3,"status":"pend' }, journal: false },
  },
  {
    name: 'rollback, phase switched, the record of the release left names another release: kept as it is, and taken for neither',
    setup: (root) => {
      makeRelease(root, 'r1', 1, 'complete');
      makeRelease(root, 'r2', 2, 'complete');
      damageRecord(root, 'r2', '{"id":"r1","seq":1,"status":"failed"}');
      setCurrent(root, 'r1');
      writeJournal(root, { op: 'rollback', release: 'r1', previous: 'r2', phase: 'switched' });
    },
    expect: { current: 'r1', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'damaged: {"id":"r1","seq":1,"status":"failed"}' }, journal: false },
  },
  {
    name: 'an unreadable journal is discarded, no release removed',
    setup: (root) => {
      twoReleases(root);
      writeJournal(root, '{"v": 1, "op": "deploy", garbage');
    },
    expect: { current: 'r2', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'complete' }, journal: false },
  },
];

/** Only the fields a scenario names. */
function pick(outcome: RootOutcome, keys: readonly (keyof RootOutcome)[]): Partial<RootOutcome> {
  return Object.fromEntries(keys.map((k) => [k, outcome[k]]));
}

describe('recovery from every journal phase: every side leaves the same root', () => {
  for (const scenario of RECOVERY_SCENARIOS) {
    test(scenario.name, async () => {
      const keys = [...new Set([...(Object.keys(scenario.expect) as (keyof RootOutcome)[]), 'lock', 'journal'] as const)];
      const outcomes: Record<string, Partial<RootOutcome>> = {};
      for (const engine of ENGINES) {
        const root = freshRoot();
        scenario.setup(root);
        await engine.recover(root);
        outcomes[engine.name] = pick(outcomeOf(root), keys);
      }
      const expected = pick({ current: null, releases: [], statuses: {}, tmp: [], manifests: [], journalPhase: null, ...scenario.expect, journal: false, lock: false }, keys);
      assert.deepEqual(outcomes, Object.fromEntries(ENGINES.map((e) => [e.name, expected])));
    });
  }
});

interface UndoScenario {
  name: string;
  setup(root: string): void;
  deploy: UndoRequest;
  expect: Partial<RootOutcome>;
}

const UNDO_SCENARIOS: UndoScenario[] = [
  {
    name: 'a release placed, then its before-switch hook failed: the release, its record and the journal go; current and the rollback target stay',
    setup: (root) => {
      twoReleases(root);
      makeRelease(root, 'r3', 3, 'pending');
      fs.mkdirSync(path.join(root, '.tmp', 'stage.undo'), { recursive: true });
      fs.mkdirSync(path.join(root, '.atomic-deploy', 'manifests'), { recursive: true });
      fs.writeFileSync(path.join(root, '.atomic-deploy', 'manifests', 'r3.json'), '[]');
      writeJournal(root, { op: 'deploy', release: 'r3', previous: 'r2', phase: 'ready' });
    },
    deploy: { id: 'r3', previous: 'r2', placed: true, stage: '.tmp/stage.undo' },
    expect: { current: 'r2', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'complete' }, journal: false, tmp: [], manifests: [] },
  },
  {
    name: 'failed while copying, nothing placed: the staging copy and the journal go',
    setup: (root) => {
      twoReleases(root);
      fs.mkdirSync(path.join(root, '.tmp', 'stage.undo', 'r3'), { recursive: true });
      writeJournal(root, { op: 'deploy', release: 'r3', previous: 'r2', phase: 'copying' });
    },
    deploy: { id: 'r3', previous: 'r2', placed: false, stage: '.tmp/stage.undo' },
    expect: { current: 'r2', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'complete' }, journal: false, tmp: [] },
  },
  {
    name: 'first deploy of a root (no previous release): the release goes, no current appears',
    setup: (root) => {
      makeRelease(root, 'r1', 1, 'pending');
      writeJournal(root, { op: 'deploy', release: 'r1', previous: null, phase: 'ready' });
    },
    deploy: { id: 'r1', previous: null, placed: true, stage: '.tmp/stage.undo' },
    expect: { current: null, releases: [], statuses: {}, journal: false, tmp: [] },
  },
  {
    name: 'an undo aimed at the release current points to is refused: nothing is removed, the journal stays for recovery',
    setup: (root) => {
      twoReleases(root);
      writeJournal(root, { op: 'deploy', release: 'r2', previous: 'r1', phase: 'ready' });
    },
    deploy: { id: 'r2', previous: 'r1', placed: true, stage: '.tmp/stage.undo' },
    expect: { current: 'r2', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'complete' }, journal: true },
  },
  {
    name: 'an undo aimed at the rollback target is refused: nothing is removed',
    setup: (root) => {
      twoReleases(root);
      writeJournal(root, { op: 'deploy', release: 'r1', previous: 'r2', phase: 'ready' });
    },
    deploy: { id: 'r1', previous: 'r2', placed: true, stage: '.tmp/stage.undo' },
    expect: { current: 'r2', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'complete' }, journal: true },
  },
];

describe('undo of a failed deploy: every side leaves the same root', () => {
  for (const scenario of UNDO_SCENARIOS) {
    test(scenario.name, async () => {
      const keys = Object.keys(scenario.expect) as (keyof RootOutcome)[];
      const outcomes: Record<string, Partial<RootOutcome>> = {};
      for (const engine of ENGINES) {
        const root = freshRoot();
        scenario.setup(root);
        await engine.undo(root, scenario.deploy);
        outcomes[engine.name] = pick(outcomeOf(root), keys);
      }
      assert.deepEqual(outcomes, Object.fromEntries(ENGINES.map((e) => [e.name, scenario.expect])));
    });
  }
});

describe('prune guards: the one deletion path refuses current and the protected release on every side', () => {
  const cases: { name: string; id: string; protect: string[]; expect: string; through?: boolean; text?: string }[] = [
    { name: 'the current release', id: 'r3', protect: [], expect: 'INTERNAL' },
    // current -> releases/stable -> r3: the link's text names `stable`; the guard goes by what it reaches.
    { name: 'the release current reaches through a link in releases/', id: 'r3', protect: [], expect: 'INTERNAL', through: true },
    // current -> releases/r2/../r3: it reaches r3, but through r2, whose removal would leave it dangling.
    { name: 'a release current passes through on its way (releases/r2/../r3)', id: 'r2', protect: [], expect: 'INTERNAL', text: 'releases/r2/../r3' },
    { name: 'the rollback target (protected)', id: 'r2', protect: ['r2'], expect: 'INTERNAL' },
    { name: 'an old release', id: 'r1', protect: ['r2'], expect: 'removed' },
    { name: 'a release already gone', id: 'r0', protect: [], expect: 'absent' },
  ];
  for (const c of cases) {
    test(c.name, async () => {
      const seen: string[] = [];
      for (const engine of ENGINES) {
        const root = freshRoot();
        makeRelease(root, 'r1', 1, 'complete');
        makeRelease(root, 'r2', 2, 'complete');
        makeRelease(root, 'r3', 3, 'complete');
        if (c.through) {
          fs.symlinkSync('r3', path.join(root, 'releases', 'stable'));
          fs.symlinkSync('releases/stable', path.join(root, 'current'));
        } else if (c.text !== undefined) {
          fs.symlinkSync(c.text, path.join(root, 'current'));
        } else setCurrent(root, 'r3');
        const result = await engine.removeRelease(root, c.id, c.protect);
        const left = outcomeOf(root);
        seen.push(`${engine.name}: ${result}; releases ${left.releases.join(' ')}; current ${left.current}; tmp ${left.tmp.join(' ')}`);
      }
      const releases = ['r1', 'r2', 'r3', ...(c.through ? ['stable'] : [])].filter((id) => c.expect !== 'removed' || id !== c.id).join(' ');
      assert.deepEqual(seen, ENGINES.map((e) => `${e.name}: ${c.expect}; releases ${releases}; current ${c.through ? 'stable' : (c.text?.replace(/^releases\//, '') ?? 'r3')}; tmp `));
    });
  }
});

interface PlaceScenario {
  name: string;
  setup(root: string): void;
  place: PlaceInput;
  result: string;
  expect: Partial<RootOutcome>;
  /** What must also hold afterwards. */
  check?(root: string): void;
}

const MANIFEST_TEXT = '{"format":"atomic-deploy-manifest","entries":[]}\n';
const JOURNAL_COPYING = { op: 'deploy', release: 'r3', previous: 'r2', phase: 'copying' } as const;
const placeInput = (stage: string, extra: Partial<PlaceInput> = {}): PlaceInput => ({
  id: 'r3',
  stage,
  record: JSON.stringify({ id: 'r3', seq: 3, status: 'pending', createdAt: '2026-01-01T00:00:00.000Z', user: 'root', host: 'h', source: '/src', files: 1, bytes: 2, durationMs: 0, previous: 'r2' }),
  journal: JSON.stringify({ v: 1, token: 't', pid: 1, startedAt: '2026-01-01T00:00:00.000Z', ...JOURNAL_COPYING, phase: 'ready' }),
  ...extra,
});

/** A filled stage: `dir` holds the tree (a `version` file), and `manifest` (if given) the manifest sent with it. */
function stage(root: string, dir: string, manifest?: string): void {
  fs.mkdirSync(path.join(root, dir), { recursive: true });
  fs.writeFileSync(path.join(root, dir, 'version'), 'r3');
  if (manifest !== undefined) fs.writeFileSync(path.join(root, manifest), MANIFEST_TEXT);
}

const PLACE_SCENARIOS: PlaceScenario[] = [
  {
    name: "the local engine's stage (.tmp/stage.*) becomes releases/r3: record pending, journal ready, current untouched",
    setup: (root) => {
      twoReleases(root);
      stage(root, '.tmp/stage.p');
      writeJournal(root, JOURNAL_COPYING);
    },
    place: placeInput('.tmp/stage.p'),
    result: 'placed',
    expect: { current: 'r2', releases: ['r1', 'r2', 'r3'], statuses: { r1: 'complete', r2: 'complete', r3: 'pending' }, journalPhase: 'ready', tmp: [], manifests: [] },
    check: (root) => assert.equal(fs.readFileSync(path.join(root, 'releases', 'r3', 'version'), 'utf8'), 'r3'),
  },
  {
    name: "a fleet host's stage (tree and manifest sent into .tmp/stage.*/): the manifest is stored, the stage directory goes",
    setup: (root) => {
      twoReleases(root);
      stage(root, '.tmp/stage.p/r3', '.tmp/stage.p/manifest.json');
      writeJournal(root, JOURNAL_COPYING);
    },
    place: placeInput('.tmp/stage.p/r3', { manifest: '.tmp/stage.p/manifest.json', leftover: '.tmp/stage.p' }),
    result: 'placed',
    expect: { current: 'r2', releases: ['r1', 'r2', 'r3'], statuses: { r1: 'complete', r2: 'complete', r3: 'pending' }, journalPhase: 'ready', tmp: [], manifests: ['r3.json'] },
    check: (root) => assert.equal(fs.readFileSync(path.join(root, '.atomic-deploy', 'manifests', 'r3.json'), 'utf8'), MANIFEST_TEXT),
  },
  {
    name: 'releases/ on another mount: the stage hidden in releases/.stage.*/ leaves no hidden name behind',
    setup: (root) => {
      twoReleases(root);
      stage(root, 'releases/.stage.p/r3', 'releases/.stage.p/manifest.json');
      writeJournal(root, JOURNAL_COPYING);
    },
    place: placeInput('releases/.stage.p/r3', { manifest: 'releases/.stage.p/manifest.json', leftover: 'releases/.stage.p' }),
    result: 'placed',
    expect: { current: 'r2', releases: ['r1', 'r2', 'r3'], statuses: { r1: 'complete', r2: 'complete', r3: 'pending' }, journalPhase: 'ready', tmp: [], manifests: ['r3.json'] },
  },
  {
    name: 'releases/r3 exists already, an empty directory rename(2) would replace: refused, nothing changes',
    setup: (root) => {
      twoReleases(root);
      fs.mkdirSync(path.join(root, 'releases', 'r3'));
      stage(root, '.tmp/stage.p/r3', '.tmp/stage.p/manifest.json');
      writeJournal(root, JOURNAL_COPYING);
    },
    place: placeInput('.tmp/stage.p/r3', { manifest: '.tmp/stage.p/manifest.json', leftover: '.tmp/stage.p' }),
    result: 'RELEASE_EXISTS',
    expect: { current: 'r2', releases: ['r1', 'r2', 'r3'], statuses: { r1: 'complete', r2: 'complete' }, journalPhase: 'copying', tmp: ['stage.p'], manifests: [] },
    check: (root) => assert.deepEqual(fs.readdirSync(path.join(root, 'releases', 'r3')), [], 'the existing releases/r3 was replaced'),
  },
  {
    name: 'the staged manifest is missing: refused before the rename, the release never enters releases/',
    setup: (root) => {
      twoReleases(root);
      stage(root, '.tmp/stage.p/r3');
      writeJournal(root, JOURNAL_COPYING);
    },
    place: placeInput('.tmp/stage.p/r3', { manifest: '.tmp/stage.p/manifest.json', leftover: '.tmp/stage.p' }),
    result: 'IO',
    expect: { current: 'r2', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'complete' }, journalPhase: 'copying', tmp: ['stage.p'], manifests: [] },
  },
];

describe('placing a release: every side leaves the same root', () => {
  for (const scenario of PLACE_SCENARIOS) {
    test(scenario.name, async () => {
      const keys = Object.keys(scenario.expect) as (keyof RootOutcome)[];
      const outcomes: Record<string, unknown> = {};
      for (const engine of ENGINES) {
        const root = freshRoot();
        scenario.setup(root);
        const result = await engine.place(root, scenario.place);
        outcomes[engine.name] = { result, ...pick(outcomeOf(root), keys) };
        scenario.check?.(root);
      }
      assert.deepEqual(outcomes, Object.fromEntries(ENGINES.map((e) => [e.name, { result: scenario.result, ...scenario.expect }])));
    });
  }
});

describe('placing a release where releases/ is missing, under umask 077: every side makes it 0755', () => {
  // The first release of a root: releases/ is on the way to every release a web server serves,
  // so it is 0755 whatever the umask of the deploy (or of a fleet host's ssh session).
  test('releases/ is made 0755, and the release keeps its own mode', async () => {
    const seen: Record<string, string> = {};
    const old = process.umask(0o077);
    try {
      for (const engine of ENGINES) {
        const root = freshRoot();
        fs.rmdirSync(path.join(root, 'releases'));
        stage(root, '.tmp/stage.p');
        fs.chmodSync(path.join(root, '.tmp', 'stage.p'), 0o755);
        writeJournal(root, JOURNAL_COPYING);
        const result = await engine.place(root, placeInput('.tmp/stage.p'));
        const mode = (p: string): string => (fs.statSync(path.join(root, p)).mode & 0o777).toString(8);
        seen[engine.name] = `${result}: releases ${mode('releases')}, releases/r3 ${mode('releases/r3')}`;
      }
    } finally {
      process.umask(old);
    }
    assert.deepEqual(seen, Object.fromEntries(ENGINES.map((e) => [e.name, 'placed: releases 755, releases/r3 755'])));
  });
});

describe('prune guard: a live process in a release keeps it on every side', () => {
  // r1..r4 complete, r4 current: keep 1 leaves r4 and its rollback target r3, and would remove r1 and r2.
  const fourReleases = (root: string): void => {
    for (const [i, id] of ['r1', 'r2', 'r3', 'r4'].entries()) makeRelease(root, id, i + 1, 'complete');
    setCurrent(root, 'r4');
  };
  for (const held of [false, true]) {
    test(held ? 'a sleep process whose working directory is releases/r1: r1 stays, r2 goes' : 'control, nothing running in a release: r1 and r2 go', async () => {
      const seen: Record<string, string> = {};
      for (const engine of ENGINES) {
        const root = freshRoot();
        fourReleases(root);
        const child = held ? spawn('sleep', ['120'], { stdio: 'ignore', cwd: path.join(root, 'releases', 'r1') }) : undefined;
        if (child) sleepers.push(child);
        try {
          const { removed } = await engine.prune(root, 1);
          seen[engine.name] = `removed ${removed.join(' ')}; releases ${outcomeOf(root).releases.join(' ')}`;
        } finally {
          child?.kill('SIGKILL');
        }
      }
      const expected = held ? 'removed r2; releases r1 r3 r4' : 'removed r1 r2; releases r3 r4';
      assert.deepEqual(seen, Object.fromEntries(ENGINES.map((e) => [e.name, expected])));
    });
  }
});

describe('prune: a damaged record of a pruned release is kept as it is on every side', () => {
  for (const [what, text] of [['not JSON', '{"id":"r1","seq":1,"status":"comp'], ['naming another release', '{"id":"r3","seq":3,"status":"complete"}']] as const) {
    test(`r1's record ${what}: r1 and r2 go, r1's record keeps its text (no prunedAt merged into made-up fields)`, async () => {
      const seen: Record<string, unknown> = {};
      for (const engine of ENGINES) {
        const root = freshRoot();
        for (const [i, id] of ['r1', 'r2', 'r3', 'r4'].entries()) makeRelease(root, id, i + 1, 'complete');
        setCurrent(root, 'r4');
        // r2's deploy replaced r1: so r1 went live, and a release read as without a record is pruned like any other.
        const r2 = path.join(root, '.atomic-deploy', 'releases', 'r2.json');
        fs.writeFileSync(r2, JSON.stringify({ ...(JSON.parse(fs.readFileSync(r2, 'utf8')) as object), previous: 'r1' }));
        damageRecord(root, 'r1', text);
        const { removed } = await engine.prune(root, 1);
        seen[engine.name] = { removed, releases: outcomeOf(root).releases, r1: fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', 'r1.json'), 'utf8') };
      }
      assert.deepEqual(seen, Object.fromEntries(ENGINES.map((e) => [e.name, { removed: ['r1', 'r2'], releases: ['r3', 'r4'], r1: text }])));
    });
  }
});

describe('prune: a release that cannot be moved stays and is named on every side, the others go', () => {
  test('releases/r1 immutable (chattr +i): r1 failed, r2 removed, the lock released', async (t) => {
    requireTools('chattr');
    const seen: Record<string, string> = {};
    for (const engine of ENGINES) {
      const root = freshRoot();
      for (const [i, id] of ['r1', 'r2', 'r3', 'r4'].entries()) makeRelease(root, id, i + 1, 'complete');
      setCurrent(root, 'r4');
      const stuck = path.join(root, 'releases', 'r1');
      execFileSync('chattr', ['+i', stuck]);
      t.after(() => execFileSync('chattr', ['-i', stuck]));
      try {
        const { removed, failed } = await engine.prune(root, 1);
        const outcome = outcomeOf(root);
        seen[engine.name] = `removed ${removed.join(' ')}; failed ${failed.join(' ')}; releases ${outcome.releases.join(' ')}; lock ${outcome.lock}`;
      } finally {
        execFileSync('chattr', ['-i', stuck]);
      }
    }
    assert.deepEqual(seen, Object.fromEntries(ENGINES.map((e) => [e.name, 'removed r2; failed r1; releases r1 r3 r4; lock false'])));
  });
});

interface BookkeepingScenario {
  name: string;
  setup(root: string): void;
  request: BookkeepingRequest;
  result: string;
  expect: Partial<RootOutcome>;
}

/** Text that a shell must pass through untouched: quotes, expansions, backslashes, a tab, non-ASCII. */
const HOSTILE_REASON = `it's "bad" $(touch pwned) \`id\` $HOME \\n \\ \t tab ✓ 100%`;
const STARTED = '2026-01-01T00:00:00.000Z';
const deployJournal = (phase: 'ready' | 'switched' | 'rolling-back', reason?: string): BookkeepingRequest['switched'] => ({ v: 1, op: 'deploy', token: 't', pid: 1, startedAt: STARTED, release: 'r3', previous: 'r2', phase, ...(reason === undefined ? {} : { reason }) });

/** A rollback from r2 to `id`, switched and committed: `id` complete again, r2 rolled back. */
const rollbackFromR2 = (id: string): BookkeepingRequest => ({
  id,
  from: 'r2',
  switched: { v: 1, op: 'rollback', token: 't', pid: 1, startedAt: STARTED, release: id, previous: 'r2', phase: 'switched' },
  decision: 'commit',
  records: [
    { id, change: { status: 'complete', activatedAt: '2026-01-01T00:01:00.000Z' } },
    { id: 'r2', change: { status: 'rolled-back', endedAt: '2026-01-01T00:01:00.000Z', reason: 'rolled back' } },
  ],
});

/** r1 and r2 complete, r3 placed (pending), r2 current, the deploy's journal at `ready`. */
function placedR3(root: string): void {
  twoReleases(root);
  makeRelease(root, 'r3', 3, 'pending');
  writeJournal(root, deployJournal('ready'));
}

const BOOKKEEPING_SCENARIOS: BookkeepingScenario[] = [
  {
    name: 'a deploy committed: switched journal, the live record, the journal cleared',
    setup: placedR3,
    request: { id: 'r3', from: 'r2', switched: deployJournal('switched'), decision: 'commit', records: [{ id: 'r3', change: { status: 'complete', activatedAt: '2026-01-01T00:01:00.000Z', durationMs: 1234, staleProcesses: 0 } }] },
    result: 'committed',
    expect: { current: 'r3', releases: ['r1', 'r2', 'r3'], statuses: { r1: 'complete', r2: 'complete', r3: 'complete' }, journal: false, tmp: [] },
  },
  {
    name: "a deploy switched back (health check failed): the back journal, the failed release's record with a reason no shell may read as code, the previous record, the journal cleared",
    setup: placedR3,
    request: {
      id: 'r3',
      from: 'r2',
      switched: deployJournal('switched'),
      decision: 'back',
      backJournal: deployJournal('rolling-back', HOSTILE_REASON),
      records: [
        { id: 'r3', change: { status: 'failed', activatedAt: '2026-01-01T00:01:00.000Z', endedAt: '2026-01-01T00:02:00.000Z', reason: HOSTILE_REASON } },
        { id: 'r2', change: { status: 'complete', activatedAt: '2026-01-01T00:02:00.000Z' } },
      ],
    },
    result: 'back',
    expect: { current: 'r2', releases: ['r1', 'r2', 'r3'], statuses: { r1: 'complete', r2: 'complete', r3: 'failed' }, journal: false, tmp: [] },
  },
  {
    name: 'a rollback committed: the target live again, the release left recorded rolled-back, the journal cleared',
    setup: (root) => {
      twoReleases(root);
      writeJournal(root, { op: 'rollback', release: 'r1', previous: 'r2', phase: 'switching' });
    },
    request: rollbackFromR2('r1'),
    result: 'committed',
    expect: { current: 'r1', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'rolled-back' }, journal: false, tmp: [] },
  },
  {
    name: 'a rollback committed, the record of the release left damaged (empty): kept as it is on every side',
    setup: (root) => {
      twoReleases(root);
      damageRecord(root, 'r2', '');
      writeJournal(root, { op: 'rollback', release: 'r1', previous: 'r2', phase: 'switching' });
    },
    request: rollbackFromR2('r1'),
    result: 'committed',
    expect: { current: 'r1', releases: ['r1', 'r2'], statuses: { r1: 'complete', r2: 'damaged: ' }, journal: false, tmp: [] },
  },
  {
    name: 'a release of another tool without a record gets one that keeps its order (no seq)',
    setup: (root) => {
      twoReleases(root);
      fs.mkdirSync(path.join(root, 'releases', 'foreign'));
      fs.rmSync(path.join(root, '.atomic-deploy', 'releases', 'r2.json'));
      writeJournal(root, { op: 'rollback', release: 'foreign', previous: 'r2', phase: 'switching' });
    },
    request: rollbackFromR2('foreign'),
    result: 'committed',
    expect: { current: 'foreign', releases: ['foreign', 'r1', 'r2'], statuses: { foreign: 'complete', r1: 'complete', r2: 'rolled-back' }, journal: false, tmp: [] },
  },
];

/** Every record in the release log, parsed (the local engine writes them pretty-printed, a host as the one line it was sent); one that is no JSON as its text. */
function recordsOf(root: string): Record<string, unknown> {
  const log = path.join(root, '.atomic-deploy', 'releases');
  const parsed = (text: string): unknown => {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return text;
    }
  };
  return Object.fromEntries(fs.readdirSync(log).sort().map((n) => [n, parsed(fs.readFileSync(path.join(log, n), 'utf8'))]));
}

describe('bookkeeping after the switch: every side leaves the same journal and records', () => {
  for (const scenario of BOOKKEEPING_SCENARIOS) {
    test(scenario.name, async () => {
      const keys = Object.keys(scenario.expect) as (keyof RootOutcome)[];
      const outcomes: Record<string, unknown> = {};
      const records: Record<string, unknown> = {};
      for (const engine of ENGINES) {
        const root = freshRoot();
        scenario.setup(root);
        // A locked root has .tmp/: the switch makes its link there.
        fs.mkdirSync(path.join(root, '.tmp'), { recursive: true });
        const result = await engine.bookkeeping(root, scenario.request);
        outcomes[engine.name] = { result, ...pick(outcomeOf(root), keys), pwned: [root, BASE, process.cwd()].some((dir) => fs.existsSync(path.join(dir, 'pwned'))) };
        records[engine.name] = recordsOf(root);
      }
      assert.deepEqual(outcomes, Object.fromEntries(ENGINES.map((e) => [e.name, { result: scenario.result, ...scenario.expect, pwned: false }])));
      const [first, ...rest] = ENGINES;
      assert.ok(first);
      for (const e of rest) assert.deepEqual(records[e.name], records[first.name], `${e.name} wrote other records than ${first.name}`);
    });
  }
});

describe('control: the bookkeeping comparison fails for a host that changes the text it is given', () => {
  test("a naive writer (echo, whose escapes dash expands) in place of put_file: the failed release's record differs from the local engine's", async () => {
    const scenario = BOOKKEEPING_SCENARIOS.find((s) => s.request.decision === 'back');
    assert.ok(scenario);
    const prepared = (): string => {
      const root = freshRoot();
      scenario.setup(root);
      fs.mkdirSync(path.join(root, '.tmp'), { recursive: true });
      return root;
    };
    let edits = 0;
    const naive = (script: string): string =>
      script.replace(/put_file ("\$root\/"'[^']*') ('[^']*') "\$\{1\}"/g, (_all, dir: string, file: string) => {
        edits += 1;
        return `echo "\${1}" > ${dir}/${file}`;
      });
    const local = prepared();
    assert.equal(await localEngine.bookkeeping(local, scenario.request), 'back');
    const host = prepared();
    assert.equal(await shellBookkeeping('dash, naive writer', dashShell(), host, scenario.request, naive), 'back');
    assert.ok(edits >= 3, `the control changed ${edits} writers`);
    // The same outcome by every other measure: only the bytes of the text differ (the record no longer parses).
    const rest = (root: string): unknown => ({ current: fs.readlinkSync(path.join(root, 'current')), journal: fs.existsSync(path.join(root, '.atomic-deploy', 'journal.json')), tmp: tmpNames(root) });
    assert.deepEqual(rest(host), rest(local));
    assert.notDeepEqual(recordsOf(host)['r3.json'], recordsOf(local)['r3.json']);
    assert.deepEqual(recordsOf(host)['r2.json'], recordsOf(local)['r2.json']);
  });
});

interface ShapeScenario {
  name: string;
  /** Makes the folder (absent: it does not exist). */
  setup?(dir: string): void;
  expect: RootShape;
}

const site = (dir: string): void => {
  fs.mkdirSync(path.join(dir, 'html', 'css'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'html', 'index.html'), '<h1>old</h1>\n');
  fs.writeFileSync(path.join(dir, 'config.php'), '<?php\n');
};

const SHAPE_SCENARIOS: ShapeScenario[] = [
  { name: 'missing', expect: { kind: 'missing' } },
  { name: 'empty', setup: () => undefined, expect: { kind: 'empty' } },
  { name: 'lost+found alone (a fresh volume)', setup: (dir) => fs.mkdirSync(path.join(dir, 'lost+found')), expect: { kind: 'empty' } },
  { name: 'a hand-made site', setup: site, expect: { kind: 'other', entries: 2 } },
  {
    name: 'hidden names, a name with a newline and a space, a fifo, a link to nothing',
    setup: (dir) => {
      fs.writeFileSync(path.join(dir, '.env'), 'x\n');
      fs.writeFileSync(path.join(dir, '..two-dots'), 'x\n');
      fs.writeFileSync(path.join(dir, 'a\nb c'), 'x\n');
      execFileSync('mkfifo', [path.join(dir, 'pipe')]);
      fs.symlinkSync('nowhere', path.join(dir, 'link'));
    },
    expect: { kind: 'other', entries: 5 },
  },
  {
    name: 'ours',
    setup: (dir) => {
      fs.mkdirSync(path.join(dir, 'releases', 'r1'), { recursive: true });
      fs.mkdirSync(path.join(dir, '.atomic-deploy'));
      fs.symlinkSync('releases/r1', path.join(dir, 'current'));
    },
    expect: { kind: 'root', tool: 'atomic-deploy' },
  },
  {
    name: "Capistrano's",
    setup: (dir) => {
      fs.mkdirSync(path.join(dir, 'releases', 'r1'), { recursive: true });
      fs.mkdirSync(path.join(dir, 'repo'));
      fs.writeFileSync(path.join(dir, 'revisions.log'), '');
      fs.symlinkSync(path.join(dir, 'releases', 'r1'), path.join(dir, 'current'));
    },
    expect: { kind: 'root', tool: 'capistrano' },
  },
  {
    name: "Deployer's",
    setup: (dir) => {
      fs.mkdirSync(path.join(dir, 'releases', '1'), { recursive: true });
      fs.mkdirSync(path.join(dir, '.dep'));
      fs.symlinkSync('releases/1', path.join(dir, 'current'));
    },
    expect: { kind: 'root', tool: 'deployer' },
  },
  {
    name: "the bash tool's, its releases/ a link to a directory on another volume",
    setup: (dir) => {
      const volume = `${dir}-volume`;
      fs.mkdirSync(path.join(volume, 'r1'), { recursive: true });
      fs.symlinkSync(volume, path.join(dir, 'releases'));
      fs.symlinkSync('releases/r1', path.join(dir, 'current'));
      fs.writeFileSync(path.join(dir, 'notes.txt'), 'x\n');
    },
    expect: { kind: 'root', tool: 'symlink-releases' },
  },
  { name: 'prepared by hand before its first deploy (shared/ alone)', setup: (dir) => fs.mkdirSync(path.join(dir, 'shared', 'storage'), { recursive: true }), expect: { kind: 'root', tool: 'layout-only' } },
  {
    name: 'releases/ as a link to nothing, beside a site',
    setup: (dir) => {
      site(dir);
      fs.symlinkSync(`${dir}-gone`, path.join(dir, 'releases'));
    },
    expect: { kind: 'other', entries: 3 },
  },
  { name: "a lone repo/ (someone else's folder)", setup: (dir) => fs.mkdirSync(path.join(dir, 'repo')), expect: { kind: 'other', entries: 1 } },
];

describe('root shapes: every side judges a folder alike (the rule a deploy and the read commands refuse by)', () => {
  for (const scenario of SHAPE_SCENARIOS) {
    test(scenario.name, async () => {
      const dir = path.join(BASE, `shape-${n++}`);
      if (scenario.setup) {
        fs.mkdirSync(dir);
        scenario.setup(dir);
      }
      const shapes: Record<string, unknown> = {};
      for (const engine of ENGINES) shapes[engine.name] = await engine.rootShape(dir);
      assert.deepEqual(shapes, Object.fromEntries(ENGINES.map((e) => [e.name, scenario.expect])));
    });
  }
  test('the root directory of this machine (a root typed as /)', async () => {
    const shapes: Record<string, unknown> = {};
    for (const engine of ENGINES) shapes[engine.name] = await engine.rootShape('/');
    const local = shapes[localEngine.name] as RootShape;
    assert.equal(local.kind, 'other');
    assert.deepEqual(shapes, Object.fromEntries(ENGINES.map((e) => [e.name, local])));
  });
});
