// The programs src/remote/script.ts generates, run here through real shells (dash as /bin/sh, and
// BusyBox sh with nothing but BusyBox applets on PATH) against roots no shell could take unquoted.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspectLock } from '../../src/act/lock.ts';
import { treeFromListing } from '../../src/plan/fleet-verify.ts';
import { layoutOf } from '../../src/act/layout.ts';
import { FrameReader, hostFactsOf, hostSharedTargetsOf, judgeRemoteLock, processUsesOf, rawLockOf, remoteStateOf, type Frame } from '../../src/remote/facts.ts';
import { inUseOf, parseCtimeNs } from '../../src/remote/fleet.ts';
import { parseStats, rsyncArgs } from '../../src/remote/rsync.ts';
import { sharedTargetAction, type SharedTargetKind } from '../../src/plan/shared.ts';
import { applyScript, deployArmScript, lockScript, rollbackArmScript, rootShapeScript, sharedKindsScript, stateScript, takeoverScript, type ArmedTail, type DeployArmScript } from '../../src/remote/script.ts';
import { uidOf } from '../harness/faults.ts';
import { findTools } from '../harness/fleet.ts';
import { treeSnapshot } from '../harness/invariants.ts';
import { armedTail as tail, lockAs, programShells, runProgram, SCRIPT_APPLETS, startProgram, talkTo, type Shell } from '../harness/remote-programs.ts';
import { buildExitedLeader, EXITED_LEADER_COMMAND, startExitedLeader } from '../harness/exited-leader.ts';
import { rawStaleScan, staleScanScript } from '../../src/remote/stale-script.ts';
import { remoteStaleReport } from '../../src/plan/remote-stale.ts';

const TOOLS = findTools(['busybox', 'strace', 'dash'] as const);
const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'remote-script-'));
after(() => fs.rmSync(BASE, { recursive: true, force: true }));

const SHELLS = programShells(BASE, TOOLS, SCRIPT_APPLETS);

let exitedLeader: string | undefined;
/** The program whose main thread exits (harness/exited-leader.c), built once: gcc is needed. */
function exitedLeaderProgram(): string {
  exitedLeader ??= buildExitedLeader(BASE);
  return exitedLeader;
}

// Every character a shell might act on, a leading dash, a newline and non-ASCII.
const HOSTILE = "-a dir 'q' \"dq\" $(touch PWNED) `touch PWNED` ; & | * ?\nline ✓";
const HOSTILE_ID = "v1 'q' $(touch PWNED) ✓";
let serial = 0;

function freshRoot(): string {
  const dir = path.join(BASE, `case-${++serial}`, HOSTILE);
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** A root live on `old`, the deploy-arm options every armed-program test shares, and a stage maker (`.tmp/stage.<id>/<id>/index.html`). */
function armedFixture(): { root: string; base: Omit<DeployArmScript, 'id' | 'stage' | 'tail'>; prepare: (id: string) => string } {
  const root = freshRoot();
  makeRelease(root, 'old', 'old\n');
  fs.symlinkSync('releases/old', path.join(root, 'current'));
  const base = { root, fsync: false, previous: 'old', shared: [], sharedCreate: false, beforeSwitch: [], journalCopying: '{}', journalReady: '{}', recordPending: '{}' };
  const prepare = (id: string): string => {
    fs.mkdirSync(path.join(root, '.tmp', `stage.${id}`, id), { recursive: true });
    fs.writeFileSync(path.join(root, '.tmp', `stage.${id}`, id, 'index.html'), `${id}\n`);
    return `stage.${id}`;
  };
  return { root, base, prepare };
}

function run(shell: Shell, script: string, input = ''): ReturnType<typeof runProgram> {
  return runProgram(shell, script, BASE, input);
}

/** Whether process `pid` is gone within 3 s (a stopped command may take a moment to be reaped). */
async function exits(pid: number): Promise<boolean> {
  // Up to 10 s: on a loaded machine (a full suite beside other work) a stopped step once took longer
  // than the 3 s this allowed. A zombie has stopped running too: reaping it is its parent's (or,
  // reparented, init's) business, and kill(pid, 0) still finds one.
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return true;
    }
    let stat = '';
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return true;
    }
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

function tags(frames: readonly Frame[]): string[] {
  return frames.map((f) => f.tag);
}

function assertNoInjection(): void {
  assert.equal(fs.existsSync(path.join(BASE, 'PWNED')), false, 'a quoted value was executed');
}

/** A lock holder running in the background, as ssh would keep it. */
function startHolder(shell: Shell, root: string, token: string): { frames: Frame[]; done: Promise<void>; ready: Promise<void>; stop: () => void } {
  const p = startProgram(shell, lockScript({ root, fsync: false, token, command: "deploy 'x' \"y\" \\ ✓", create: true, leaseS: 2 }), BASE, (f) => f.tag === 'end' || f.tag === 'busy');
  return { frames: p.frames, done: p.closed, ready: p.reached, stop: () => p.end() };
}

function makeRelease(root: string, id: string, content: string): void {
  fs.mkdirSync(path.join(root, 'releases', id), { recursive: true });
  fs.writeFileSync(path.join(root, 'releases', id, 'index.html'), content);
}


/** The arm program for release `id`, staged in `stage` of a root live on `old` under token `tok`; `over` sets the rest. */
function armOnOld(root: string, id: string, stage: string, over: Partial<DeployArmScript> = {}): string {
  return deployArmScript({
    root,
    fsync: false,
    id,
    previous: 'old',
    stage,
    shared: [],
    sharedCreate: false,
    beforeSwitch: [],
    journalCopying: '{}',
    journalReady: '{}',
    recordPending: JSON.stringify({ id }),
    tail: tail({ id, token: 'tok', backTo: 'old', journalSwitched: '{}', commitRecords: [id] }),
    ...over,
  });
}

/** A fresh root live on release `old` (holding `old\n` in index.html), locked by a holder with token `tok`. */
async function liveOnOld(shell: Shell): Promise<{ root: string; holder: ReturnType<typeof startHolder> }> {
  const root = freshRoot();
  makeRelease(root, 'old', 'old\n');
  fs.symlinkSync('releases/old', path.join(root, 'current'));
  const holder = startHolder(shell, root, 'tok');
  await holder.ready;
  return { root, holder };
}

for (const shell of SHELLS) {
  void describe(`generated programs under ${shell.name}`, () => {
    void test("the lock sweeps put_file's private directories that killed programs left in .atomic-deploy/, and nothing else", async () => {
      const root = freshRoot();
      const state = path.join(root, '.atomic-deploy');
      fs.mkdirSync(path.join(state, '.put.4242'), { recursive: true });
      fs.writeFileSync(path.join(state, '.put.4242', 'r1.json'), '{}');
      fs.mkdirSync(path.join(state, 'releases'));
      fs.writeFileSync(path.join(state, 'releases', 'r1.json'), '{}');
      fs.writeFileSync(path.join(state, '.putting'), 'x');
      const holder = startHolder(shell, root, 'tok1');
      await holder.ready;
      assert.ok(tags(holder.frames).includes('locked'), JSON.stringify(holder.frames));
      // The space reserve the lock makes where the filesystem has room (and the shell's df) is no leftover.
      assert.deepEqual(fs.readdirSync(state).filter((n) => n !== 'space-reserve').sort(), ['.putting', 'releases']);
      assert.deepEqual(fs.readdirSync(path.join(state, 'releases')), ['r1.json']);
      holder.stop();
      await holder.done;
    });

    void test('the lock: taken with an owner in the local format, judged held while its holder lives, stale after, taken over', async () => {
      const root = freshRoot();
      const holder = startHolder(shell, root, 'tok1');
      await holder.ready;
      assert.ok(tags(holder.frames).includes('locked'), JSON.stringify(holder.frames));
      const owner = JSON.parse(fs.readFileSync(path.join(root, '.deploy.lock', 'owner.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(owner.token, 'tok1');
      assert.equal(owner.command, "deploy 'x' \"y\" \\ ✓");
      assert.equal(owner.host, os.hostname());
      assert.equal(fs.readFileSync(path.join(root, '.deploy.lock', 'pid'), 'utf8').trim(), String(owner.pid));
      // The local engine on that host reads the same lock and sees a live holder.
      assert.equal(inspectLock(layoutOf(root))?.verdict.state, 'held');

      const busy = run(shell, lockScript({ root, fsync: false, token: 'tok2', command: 'other', create: false }));
      assert.ok(tags(busy.frames).includes('busy'));
      const info = judgeRemoteLock(rawLockOf(busy.frames) as NonNullable<ReturnType<typeof rawLockOf>>, hostFactsOf(busy.frames));
      assert.equal(info.verdict.state, 'held', info.verdict.reason);
      assert.equal(info.owner?.pid, owner.pid);

      // Its stdin ends (the deploy's connection went away): the holder exits and the lock is stale.
      holder.stop();
      await holder.done;
      const again = run(shell, lockScript({ root, fsync: false, token: 'tok3', command: 'other', create: false }));
      const stale = judgeRemoteLock(rawLockOf(again.frames) as NonNullable<ReturnType<typeof rawLockOf>>, hostFactsOf(again.frames));
      assert.equal(stale.verdict.state, 'stale');
      assert.equal(inspectLock(layoutOf(root))?.verdict.state, 'stale', 'the local engine agrees');

      // Two contenders judge the same stale lock: only one may move it aside.
      const first = run(shell, takeoverScript({ root, fsync: false, instance: stale.instance, lock: stale.identity, remove: false }));
      const second = run(shell, takeoverScript({ root, fsync: false, instance: stale.instance, lock: stale.identity, remove: false }));
      assert.deepEqual([first.frames.at(-1)?.value, second.frames.at(-1)?.value], ['ok', 'lost']);
      assert.equal(fs.existsSync(path.join(root, '.deploy.lock')), false);
      assert.equal(fs.existsSync(path.join(root, '.tmp', 'beat.tok1')), false, "the stale holder's heartbeat file went with it");

      const next = startHolder(shell, root, 'tok4');
      await next.ready;
      assert.ok(tags(next.frames).includes('locked'));
      const released = run(shell, applyScript({ root, fsync: false, steps: [{ op: 'release-lock', token: 'tok4', gate: `stale-lock.${stale.instance}` }] }));
      assert.deepEqual(released.frames.filter((f) => f.tag === 'unlocked').map((f) => f.value), ['yes'], released.stderr);
      next.stop();
      await next.done;
      assert.equal(fs.existsSync(path.join(root, '.deploy.lock')), false);
      // The takeover's tombstone outlives the release (docs/reliability.md, row 4); the sweep takes it once old.
      assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [`stale-lock.${stale.instance}`]);
      assertNoInjection();
    });

    void test('a lock that is not ours is never released; a fresher lock is put back by a takeover', async () => {
      const root = freshRoot();
      const holder = startHolder(shell, root, 'mine');
      await holder.ready;
      const r = run(shell, applyScript({ root, fsync: false, steps: [{ op: 'release-lock', token: 'someone-else' }] }));
      assert.deepEqual(r.frames.filter((f) => f.tag === 'unlocked').map((f) => f.value), ['no']);
      assert.ok(fs.existsSync(path.join(root, '.deploy.lock', 'owner.json')));
      // A takeover aimed at an older lock instance finds this one and puts it back.
      const t = run(shell, takeoverScript({ root, fsync: false, instance: 'old', lock: { token: 'old' }, remove: true }));
      assert.equal(t.frames.at(-1)?.value, 'changed');
      assert.ok(fs.existsSync(path.join(root, '.deploy.lock', 'owner.json')), 'the live lock is back in place');
      holder.stop();
      await holder.done;
    });

    void test('state: current, releases, records and journal read back exactly, hostile names included', () => {
      const root = freshRoot();
      const weird = "r 'x'\nnewline";
      makeRelease(root, HOSTILE_ID, 'a');
      makeRelease(root, weird, 'b');
      fs.mkdirSync(path.join(root, 'releases', '.hidden'));
      fs.symlinkSync(`releases/${HOSTILE_ID}`, path.join(root, 'current'));
      fs.mkdirSync(path.join(root, '.atomic-deploy', 'releases'), { recursive: true });
      fs.writeFileSync(path.join(root, '.atomic-deploy', 'releases', `${HOSTILE_ID}.json`), JSON.stringify({ id: HOSTILE_ID, seq: 1, status: 'complete' }, null, 2) + '\n');
      fs.writeFileSync(path.join(root, '.atomic-deploy', 'journal.json'), JSON.stringify({ v: 1, op: 'deploy', token: 't', pid: 1, startedAt: '', release: weird, previous: HOSTILE_ID, phase: 'ready' }));
      fs.mkdirSync(path.join(root, '.tmp', 'stage.abc'), { recursive: true });
      const r = run(shell, stateScript({ root, fsync: false }));
      assert.equal(r.code, 0, r.stderr);
      const state = remoteStateOf(r.frames, root);
      assert.deepEqual(state.current, { kind: 'release', id: HOSTILE_ID, target: `releases/${HOSTILE_ID}` });
      assert.deepEqual([...state.releases].sort(), [HOSTILE_ID, weird].sort());
      assert.deepEqual(state.empty, [], 'every release holds a file');
      assert.equal(state.records.get(HOSTILE_ID)?.status, 'complete');
      assert.equal(state.journal.kind === 'ok' && state.journal.journal.release, weird);
      assert.deepEqual(state.tmp, ['stage.abc']);
      assert.equal(state.rootReal, fs.realpathSync(root));
      assert.equal(state.lock, null);
      assert.equal(hostFactsOf(r.frames).host, os.hostname());
      assertNoInjection();
    });

    void test('state: a release directory that holds nothing is reported empty; one holding only a dot file, a link or an empty folder is not', () => {
      const root = freshRoot();
      makeRelease(root, 'full', 'a');
      for (const id of ['bare', 'dotfile', 'link', 'dir', "e 'q'\nx"]) fs.mkdirSync(path.join(root, 'releases', id));
      fs.writeFileSync(path.join(root, 'releases', 'dotfile', '.env'), '');
      fs.symlinkSync('nowhere', path.join(root, 'releases', 'link', 'x'));
      fs.mkdirSync(path.join(root, 'releases', 'dir', 'sub'));
      fs.symlinkSync('releases/full', path.join(root, 'current'));
      const r = run(shell, stateScript({ root, fsync: false }));
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual([...(remoteStateOf(r.frames, root).empty ?? [])].sort(), ['bare', "e 'q'\nx"].sort());
    });

    void test('state: each record goes by its file name, as locally; one not JSON, not an object, or naming another release is damaged and taken for no record', () => {
      const root = freshRoot();
      for (const id of ['r1', 'r2', 'r3', 'r4']) makeRelease(root, id, id);
      const log = path.join(root, '.atomic-deploy', 'releases');
      fs.mkdirSync(log, { recursive: true });
      const record = (id: string, extra: object = {}): string => JSON.stringify({ id, seq: 1, status: 'complete', previous: null, ...extra });
      fs.writeFileSync(path.join(log, 'r1.json'), record('r1', { previous: '../elsewhere' }));
      fs.writeFileSync(path.join(log, 'r2.json'), '{"id":"r2","seq"');
      fs.writeFileSync(path.join(log, 'r3.json'), '[]');
      // Read after r1.json: before, it took r1's place in the log, as a failed release.
      fs.writeFileSync(path.join(log, 'r4.json'), record('r1', { status: 'failed' }));
      const r = run(shell, stateScript({ root, fsync: false }));
      assert.equal(r.code, 0, r.stderr);
      const state = remoteStateOf(r.frames, root);
      assert.deepEqual([...state.records.keys()], ['r1']);
      assert.equal(state.records.get('r1')?.status, 'complete');
      assert.equal(state.records.get('r1')?.previous, null, 'a previous that is no release id is dropped, as locally');
      assert.deepEqual(Object.fromEntries(state.damaged ?? []), { r2: 'not valid JSON', r3: 'not a JSON object', r4: 'it names another release ("r1")' });
    });

    void test('deploy: armed, then one rename on "go"; commit records it and releases the lock', async () => {
      const { root, holder } = await liveOnOld(shell);
      const id = HOSTILE_ID;
      const stage = 'stage.0001';
      fs.mkdirSync(path.join(root, '.tmp', stage, id, 'sub'), { recursive: true });
      fs.writeFileSync(path.join(root, '.tmp', stage, id, 'index.html'), 'new\n');
      fs.mkdirSync(path.join(root, 'shared', 'storage'), { recursive: true });
      const script = deployArmScript({
        root,
        fsync: true,
        id,
        previous: 'old',
        stage,
        shared: [{ path: 'storage', linkText: '../../shared/storage', mkdirs: [], replaces: false }],
        sharedCreate: false,
        beforeSwitch: ['echo "hook in $PWD for $ATOMIC_DEPLOY_RELEASE_ID" >&2; test -L storage'],
        journalCopying: '{"v":1,"op":"deploy","phase":"copying"}',
        journalReady: '{"v":1,"op":"deploy","phase":"ready"}',
        recordPending: JSON.stringify({ id, status: 'pending' }),
        tail: tail({ id, token: 'tok', backTo: 'old', journalSwitched: '{"v":1,"op":"deploy","phase":"switched"}', commitRecords: [id] }),
      });
      const record = JSON.stringify({ id, status: 'complete', note: "it's \"done\" \\ ✓" });
      const r = await talkTo(shell, script, BASE, [['ready', 'go\n'], ['waiting', `commit\n${record}\n`]]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        tags(r.frames).filter((t) => t !== 'hook' && t !== 'switched-ctime'),
        ['placed', 'ready', 'switched', 'waiting', 'unlocked', 'committed'],
        r.stderr,
      );
      assert.ok(r.stderr.includes(`hook in ${path.join(root, 'releases', id)} for ${id}\n`), r.stderr);
      assert.equal(fs.readlinkSync(path.join(root, 'current')), `releases/${id}`);
      assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8'), 'new\n');
      assert.deepEqual(fs.readdirSync(path.join(root, 'releases', 'old')), ['index.html'], 'nothing was moved into the old release');
      assert.equal(fs.readlinkSync(path.join(root, 'releases', id, 'storage')), '../../shared/storage');
      assert.equal(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', `${id}.json`), 'utf8'), `${record}\n`);
      assert.equal(fs.existsSync(path.join(root, '.atomic-deploy', 'journal.json')), false);
      assert.equal(fs.existsSync(path.join(root, '.deploy.lock')), false);
      assert.ok(parseCtimeNs(r.frames.find((f) => f.tag === 'switched-ctime')?.value ?? '') !== undefined, 'the switch time came back');
      holder.stop();
      await holder.done;
      assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), []);
      assertNoInjection();
    });

    void test('deploy with before-switch hooks: the release is listed after them, and the manifest made again replaces the release\'s once its SHA-256 checks out', async () => {
      const { root, holder } = await liveOnOld(shell);
      const id = HOSTILE_ID;
      const [stage, remakeStage] = ['stage.0002', 'stage.0003'];
      fs.mkdirSync(path.join(root, '.tmp', stage, id), { recursive: true });
      fs.writeFileSync(path.join(root, '.tmp', stage, id, 'index.html'), 'new\n');
      fs.writeFileSync(path.join(root, '.tmp', stage, 'manifest.json'), 'the build manifest\n');
      const remade = 'the manifest made again\n';
      fs.mkdirSync(path.join(root, '.tmp', remakeStage));
      fs.writeFileSync(path.join(root, '.tmp', remakeStage, 'manifest.json'), remade);
      const script = armOnOld(root, id, stage, {
        beforeSwitch: ['echo cached > "odd name\nwith newline" && printf x >> index.html'],
        remakeStage,
        manifest: true,
        journalCopying: '{"v":1,"op":"deploy","phase":"copying"}',
        journalReady: '{"v":1,"op":"deploy","phase":"ready"}',
        recordPending: JSON.stringify({ id, status: 'pending' }),
        tail: tail({ id, token: 'tok', backTo: 'old', journalSwitched: '{"v":1,"op":"deploy","phase":"switched"}', commitRecords: [id] }),
      });
      const sha = createHash('sha256').update(remade).digest('hex');
      const record = JSON.stringify({ id, status: 'pending', digest: `sha256:${sha}` });
      const r = await talkTo(shell, script, BASE, [['listed', `manifest ${sha}\n${record}\n`], ['ready', 'abort\n']]);
      assert.equal(r.code, 0, r.stderr);
      const order = tags(r.frames).filter((t) => ['placed', 'hooked', 'listed', 'ready', 'disarmed'].includes(t));
      assert.deepEqual(order, ['placed', 'hooked', 'listed', 'ready', 'disarmed'], r.stderr);
      const tree = treeFromListing(r.frames.slice(r.frames.findIndex((f) => f.tag === 'hooked') + 1));
      assert.deepEqual(
        tree.entries.map((e) => (e.type === 'file' ? `${e.path} ${e.size} ${e.sha256.slice(0, 8)}` : e.path)),
        [`index.html 5 ${createHash('sha256').update('new\nx').digest('hex').slice(0, 8)}`, `odd name\nwith newline 7 ${createHash('sha256').update('cached\n').digest('hex').slice(0, 8)}`],
        'the listing is the release as the hook left it',
      );
      assert.equal(fs.readFileSync(path.join(root, '.atomic-deploy', 'manifests', `${id}.json`), 'utf8'), remade);
      assert.equal(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', `${id}.json`), 'utf8'), `${record}\n`);
      assert.equal(fs.existsSync(path.join(root, '.tmp', remakeStage)), false, 'the remake stage is gone');
      holder.stop();
      await holder.done;
      assertNoInjection();
    });

    void test('deploy: the directories a shared path needs are made 755 whatever the session\'s umask, as the build manifest lists them', async () => {
      const { root, holder } = await liveOnOld(shell);
      fs.mkdirSync(path.join(root, '.tmp', 'stage.0006', 'r3'), { recursive: true });
      fs.mkdirSync(path.join(root, 'shared', 'config', 'app'), { recursive: true });
      fs.writeFileSync(path.join(root, 'shared', 'config', 'app', '.env'), 'X=1\n');
      const script = armOnOld(root, 'r3', 'stage.0006', { shared: [{ path: 'config/app/.env', linkText: '../../../../shared/config/app/.env', mkdirs: ['config', 'config/app'], replaces: false }] });
      // pam_umask gives Debian users 002 in ssh sessions; 077 is the strictest.
      const r = run(shell, `umask 077\n${script}`, 'abort\n');
      assert.equal(r.code, 0, r.stderr);
      for (const d of ['config', 'config/app']) assert.equal(fs.statSync(path.join(root, 'releases', 'r3', d)).mode & 0o777, 0o755, d);
      holder.stop();
      await holder.done;
    });

    void test('under umask 077 a new root (and a parent it needs) and the shared targets --shared-create makes are 0755, a made shared file 0600, as the local engine makes them', async () => {
      const parent = path.join(BASE, `case-${++serial}`);
      fs.mkdirSync(parent, { mode: 0o755 });
      const root = path.join(parent, 'srv', HOSTILE);
      const p = startProgram(shell, `umask 077\n${lockScript({ root, fsync: false, token: 'tok', command: 'deploy', create: true, leaseS: 2 })}`, BASE, (f) => f.tag === 'end' || f.tag === 'busy' || f.tag === 'locked');
      await p.reached;
      assert.ok(tags(p.frames).includes('locked'), JSON.stringify(p.frames));
      for (const d of [path.join(parent, 'srv'), root]) assert.equal((fs.statSync(d).mode & 0o777).toString(8), '755', d);
      // Each directory it made is named, topmost first (a refused deploy takes exactly those away); the parent that was there is not.
      assert.deepEqual(p.frames.filter((f) => f.tag === 'made').map((f) => f.value), [path.join(parent, 'srv'), root]);
      p.end();
      await p.closed;
      const live = await liveOnOld(shell);
      fs.mkdirSync(path.join(live.root, '.tmp', 'stage.0007', 'r4'), { recursive: true });
      const script = armOnOld(live.root, 'r4', 'stage.0007', {
        sharedCreate: true,
        shared: [
          { path: 'storage/uploads', linkText: '../../../shared/storage/uploads', mkdirs: ['storage'], replaces: false, type: 'dir' },
          { path: 'config/app/.env', linkText: '../../../../shared/config/app/.env', mkdirs: ['config', 'config/app'], replaces: false, type: 'file' },
        ],
      });
      const r = run(shell, `umask 077\n${script}`, 'abort\n');
      assert.equal(r.code, 0, r.stderr);
      for (const d of ['shared', 'shared/storage', 'shared/storage/uploads', 'shared/config', 'shared/config/app']) assert.equal((fs.statSync(path.join(live.root, d)).mode & 0o777).toString(8), '755', d);
      assert.equal((fs.statSync(path.join(live.root, 'shared', 'config', 'app', '.env')).mode & 0o777).toString(8), '600');
      live.holder.stop();
      await live.holder.done;
    });

    void test('deploy: a shared target reached through a symlink to nothing, or through a file, is refused as the local engine refuses it, with nothing made', async () => {
      const live = await liveOnOld(shell);
      const shared = path.join(live.root, 'shared');
      const elsewhere = path.join(path.dirname(live.root), `elsewhere-${serial}`);
      fs.mkdirSync(shared);
      fs.mkdirSync(elsewhere);
      fs.symlinkSync(path.join(elsewhere, '.env'), path.join(shared, '.env'));
      fs.symlinkSync(path.join(elsewhere, 'gone'), path.join(shared, 'conf'));
      fs.writeFileSync(path.join(shared, 'cache'), 'a file\n');
      fs.mkdirSync(path.join(live.root, '.tmp', 'stage.0008', 'r5'), { recursive: true });
      const cases: [DeployArmScript['shared'][number], SharedTargetKind][] = [
        [{ path: '.env', linkText: '../../shared/.env', mkdirs: [], replaces: false, type: 'file' }, 'dangling'],
        [{ path: 'conf/app.env', linkText: '../../../shared/conf/app.env', mkdirs: ['conf'], replaces: false, type: 'file' }, 'dangling'],
        [{ path: 'cache/views', linkText: '../../../shared/cache/views', mkdirs: ['cache'], replaces: false, type: 'dir' }, 'blocked'],
      ];
      for (const [link, kind] of cases) {
        for (const sharedCreate of [true, false]) {
          const expected = sharedTargetAction(link, kind, sharedCreate);
          assert.equal(expected.kind, 'problem');
          const r = run(shell, armOnOld(live.root, 'r5', 'stage.0008', { sharedCreate, shared: [link] }), 'abort\n');
          const label = `${link.path}, sharedCreate ${String(sharedCreate)}: ${JSON.stringify(r.frames)}`;
          assert.equal(r.code, 1, label);
          assert.equal(r.frames.find((f) => f.tag === 'error')?.value, 'INVALID_SHARED_PATH', label);
          assert.equal(r.frames.find((f) => f.tag === 'message')?.value, expected.kind === 'problem' ? expected.problem : '', label);
          assert.ok(!tags(r.frames).includes('ready'), label);
        }
      }
      assert.deepEqual(fs.readdirSync(elsewhere), [], 'made through the link');
      assert.deepEqual(fs.readdirSync(shared).sort(), ['.env', 'cache', 'conf']);
      assert.equal(fs.readlinkSync(path.join(live.root, 'current')), 'releases/old');
      live.holder.stop();
      await live.holder.done;
    });

    void test('deploy: shared/ itself a file, or a symlink to nothing, is refused as the local engine refuses it, with nothing made', async () => {
      const elsewhere = path.join(BASE, `not-mounted-${++serial}`);
      const makers: [SharedTargetKind, (shared: string) => void][] = [
        ['blocked', (shared) => fs.writeFileSync(shared, 'a file\n')],
        ['dangling', (shared) => fs.symlinkSync(elsewhere, shared)],
      ];
      for (const [kind, make] of makers) {
        const live = await liveOnOld(shell);
        make(path.join(live.root, 'shared'));
        fs.mkdirSync(path.join(live.root, '.tmp', 'stage.0008', 'r5'), { recursive: true });
        const links: DeployArmScript['shared'] = [
          { path: 'storage', linkText: '../../shared/storage', mkdirs: [], replaces: false, type: 'dir' },
          { path: '.env', linkText: '../../shared/.env', mkdirs: [], replaces: false, type: 'file' },
        ];
        for (const link of links) {
          for (const sharedCreate of [true, false]) {
            const expected = sharedTargetAction(link, kind, sharedCreate);
            assert.equal(expected.kind, 'problem');
            const r = run(shell, armOnOld(live.root, 'r5', 'stage.0008', { sharedCreate, shared: [link] }), 'abort\n');
            const label = `${kind} ${link.path}, sharedCreate ${String(sharedCreate)}: ${JSON.stringify(r.frames)}`;
            assert.equal(r.code, 1, label);
            assert.equal(r.frames.find((f) => f.tag === 'error')?.value, 'INVALID_SHARED_PATH', label);
            assert.equal(r.frames.find((f) => f.tag === 'message')?.value, expected.kind === 'problem' ? expected.problem : '', label);
            assert.ok(!tags(r.frames).includes('ready'), label);
          }
        }
        assert.equal(fs.existsSync(elsewhere), false, 'made through the link');
        assert.equal(fs.readlinkSync(path.join(live.root, 'current')), 'releases/old');
        live.holder.stop();
        await live.holder.done;
      }
    });

    void test('deploy with before-switch hooks: a manifest whose SHA-256 is not the one sent, or any other word, stops the program before it arms', async () => {
      for (const [word, message] of [
        [`manifest ${'0'.repeat(64)}`, /the manifest stored after the before-switch hooks is not the one sent/],
        ['abort', /stopped by the deploying side after the before-switch hooks/],
      ] as const) {
        const { root, holder } = await liveOnOld(shell);
        const id = 'r2';
        fs.mkdirSync(path.join(root, '.tmp', 'stage.0004', id), { recursive: true });
        fs.writeFileSync(path.join(root, '.tmp', 'stage.0004', 'manifest.json'), 'the build manifest\n');
        fs.mkdirSync(path.join(root, '.tmp', 'stage.0005'));
        fs.writeFileSync(path.join(root, '.tmp', 'stage.0005', 'manifest.json'), 'another manifest\n');
        const r = await talkTo(shell, armOnOld(root, id, 'stage.0004', { beforeSwitch: ['true'], remakeStage: 'stage.0005', manifest: true }), BASE, [['listed', `${word}\n{"id":"r2","x":1}\ngo\n`]]);
        assert.equal(r.code, 1, r.stderr);
        assert.ok(!tags(r.frames).includes('ready'), `${word}: never armed`);
        assert.match(r.frames.find((f) => f.tag === 'message')?.value ?? '', message);
        assert.equal(fs.readFileSync(path.join(root, '.atomic-deploy', 'manifests', `${id}.json`), 'utf8'), 'the build manifest\n', `${word}: the release keeps the manifest it was placed with`);
        assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/old');
        holder.stop();
        await holder.done;
      }
    });

    void test('deploy: anything but "go" disarms; a refused rename reports switch-failed; "back" returns to the previous release', async () => {
      const { root, base, prepare } = armedFixture();

      // Armed programs run under their deploy's lock (token t), as the fleet's always do.
      lockAs(root, 't');
      const disarmed = run(shell, deployArmScript({ ...base, id: 'a', stage: prepare('a'), tail: tail({ id: 'a', token: 't', backTo: 'old' }) }), 'abort\n');
      assert.deepEqual(tags(disarmed.frames), ['placed', 'ready', 'disarmed']);
      assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/old');

      const back = run(shell, deployArmScript({ ...base, id: 'b', stage: prepare('b'), tail: tail({ id: 'b', token: 't', backTo: 'old', backRecords: ['b', 'old'] }) }), 'go\nback\n{"phase":"rolling-back"}\n{"id":"b","status":"rolled-back"}\n{"id":"old","status":"complete"}\n');
      assert.ok(tags(back.frames).includes('switched-back'), back.stderr);
      assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/old');
      assert.equal((JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', 'b.json'), 'utf8')) as { status: string }).status, 'rolled-back');

      // current replaced by a real directory between arming and the switch: rename(2) refuses.
      const armed = startProgram(shell, deployArmScript({ ...base, id: 'c', stage: prepare('c'), tail: tail({ id: 'c', token: 't', backTo: 'old' }) }), BASE, (f) => f.tag === 'ready');
      await armed.reached;
      fs.rmSync(path.join(root, 'current'));
      fs.mkdirSync(path.join(root, 'current', 'keep'), { recursive: true });
      armed.end('go\n');
      await armed.closed;
      assert.deepEqual(tags(armed.frames), ['placed', 'ready', 'switch-failed']);
      assert.ok(fs.statSync(path.join(root, 'current', 'keep')).isDirectory(), 'the directory was not replaced');
      assertNoInjection();
    });

    // A deploying process stopped for longer than the lease (SIGSTOP, a suspended laptop) had its
    // hosts' locks taken over by the next deploy; resumed, its `go` switched the hosts back to its
    // own release, and its `back` to the one before both, undoing the newer deploy.
    // A record the commit could not write (a full disk, an immutable file): the host cleared its
    // journal all the same and the deploy exited 0 without a word, leaving the live release
    // `pending` for good (and no longer a rollback target).
    // After the switch, as locally: hooks, then reloads, then the health check, which sees the
    // reloaded service; a failed reload fails the check without running it.
    void test('after the switch: hooks, reloads, health check, in that order; a failed reload fails the check unrun', async () => {
      const { root, base, prepare } = armedFixture();
      const order = path.join(root, 'order');
      const reload = (fails: boolean): string => `emit() { printf '%s\\000%s\\000' "$1" "$2"; }; emit reloading .; echo r >> "$ATOMIC_DEPLOY_ROOT/order"; ${fails ? "emit reload-failed 'reload of unit x failed'; exit 1" : 'emit reloaded ok'}`;
      for (const fails of [false, true]) {
        fs.rmSync(order, { force: true });
        lockAs(root, 't');
        const id = fails ? 'f' : 'o';
        const p = startProgram(shell, deployArmScript({ ...base, id, stage: prepare(id), tail: tail({ id, token: 't', backTo: 'old', afterSwitch: ['echo h >> "$ATOMIC_DEPLOY_ROOT/order"'], reload: reload(fails), healthCheck: { command: 'echo c >> "$ATOMIC_DEPLOY_ROOT/order"', timeoutS: 5 }, commitRecords: [id] }) }), BASE, (f) => f.tag === 'ready');
        await p.reached;
        const waiting = p.next((f) => f.tag === 'waiting');
        p.send('go\n');
        await waiting;
        assert.equal(fs.readFileSync(order, 'utf8'), fails ? 'h\nr\n' : 'h\nr\nc\n', `reload fails: ${fails}`);
        assert.equal(p.frames.find((f) => f.tag === 'health')?.value, fails ? 'failed' : 'ok');
        assert.equal(p.frames.find((f) => f.tag === 'reload-failed')?.value, fails ? 'reload of unit x failed' : undefined);
        p.end(`commit\n{"id":"${id}","status":"complete"}\n`);
        await p.closed;
        assert.ok(tags(p.frames).includes('committed'), JSON.stringify(p.frames));
      }
    });

    // The deploying process killed while a host's health check ran: the host's journal said only
    // `switched`, so the next command recorded a release never checked as a verified one. The
    // journal now names the steps after the switch, and the host writes it again without them once
    // they passed there, as the local engine does; a failed step, or a lock another command has
    // taken over meanwhile, leaves it as it was.
    void test('the switched journal names the after-switch steps until they pass here; a failure or a lock taken over leaves it', async (t) => {
      const { root, base, prepare } = armedFixture();
      // A failed assertion must not leave a program waiting on its stdin (the file would never end).
      const started: { end: (input?: string) => void }[] = [];
      t.after(() => {
        for (const p of started) p.end();
      });
      const journalFile = path.join(root, '.atomic-deploy', 'journal.json');
      const switched = '{"phase":"switched","verifying":"its after-switch hooks and health check"}';
      const verified = '{"phase":"switched"}';
      const takeOver = `printf '{"token":"other"}' > "$ATOMIC_DEPLOY_ROOT/.deploy.lock/owner.json"`;
      const cases: { label: string; over: Partial<ArmedTail>; journal: string }[] = [
        { label: 'passed', over: { afterSwitch: ['true'], healthCheck: { command: 'true', timeoutS: 5 } }, journal: verified },
        { label: 'check failed', over: { afterSwitch: ['true'], healthCheck: { command: 'false', timeoutS: 1 } }, journal: switched },
        { label: 'hook failed', over: { afterSwitch: ['false'], healthCheck: { command: 'true', timeoutS: 5 } }, journal: switched },
        { label: 'hook failed, no check', over: { afterSwitch: ['false'] }, journal: switched },
        { label: 'lock taken over during the check', over: { afterSwitch: ['true'], healthCheck: { command: takeOver, timeoutS: 5 } }, journal: switched },
      ];
      for (const [i, c] of cases.entries()) {
        lockAs(root, 't');
        const id = `j${i}`;
        const p = startProgram(shell, deployArmScript({ ...base, id, stage: prepare(id), tail: tail({ id, token: 't', backTo: 'old', journalSwitched: switched, journalVerified: verified, commitRecords: [id], ...c.over }) }), BASE, (f) => f.tag === 'ready');
        started.push(p);
        await p.reached;
        const waiting = p.next((f) => f.tag === 'waiting');
        p.send('go\n');
        await waiting;
        assert.equal(fs.readFileSync(journalFile, 'utf8').trim(), c.journal, `${c.label}: ${JSON.stringify(p.frames)}`);
        // Cut off before the word: the journal stays for the next command, as it is.
        p.end();
        await p.closed;
        assert.equal(tags(p.frames).at(-1), 'undecided', c.label);
        assert.equal(fs.readFileSync(journalFile, 'utf8').trim(), c.journal, c.label);
        fs.rmSync(path.join(root, '.deploy.lock'), { recursive: true, force: true });
      }
    });

    // A signal on the deploying side after the switch: `stop` ends what runs there at once (each
    // step here would run 60 s), the host says what it stopped and waits for the decision as usual.
    void test('stop ends the after-switch hook, reload or health check running; the host then waits for the decision', async (t) => {
      const { root, base, prepare } = armedFixture();
      // A failed assertion must not leave a program waiting on its stdin (the file would never end).
      const started: { end: (input?: string) => void }[] = [];
      t.after(() => {
        for (const p of started) p.end();
      });
      const pidFile = path.join(root, 'step.pid');
      const slow = 'echo $$ > "$ATOMIC_DEPLOY_ROOT/step.pid"; exec sleep 60';
      const cases: { step: string; over: Partial<ArmedTail> }[] = [
        { step: 'hooks', over: { afterSwitch: ['true', slow, 'echo never > "$ATOMIC_DEPLOY_ROOT/ran"'], hookTimeoutS: 90, healthCheck: { command: 'echo never > "$ATOMIC_DEPLOY_ROOT/ran"', timeoutS: 5 } } },
        { step: 'reloads', over: { reload: slow, healthCheck: { command: 'echo never > "$ATOMIC_DEPLOY_ROOT/ran"', timeoutS: 5 } } },
        { step: 'health', over: { afterSwitch: ['true'], healthCheck: { command: slow, timeoutS: 90 } } },
      ];
      for (const [i, c] of cases.entries()) {
        fs.rmSync(pidFile, { force: true });
        lockAs(root, 't');
        const id = `s${i}`;
        const p = startProgram(shell, deployArmScript({ ...base, id, stage: prepare(id), tail: tail({ id, token: 't', backTo: 'old', commitRecords: [id], ...c.over }) }), BASE, (f) => f.tag === 'ready');
        started.push(p);
        await p.reached;
        p.send('go\n');
        for (let n = 0; n < 500 && !(fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').endsWith('\n')); n++) await new Promise((r) => setTimeout(r, 10));
        const pid = Number(fs.readFileSync(pidFile, 'utf8'));
        assert.ok(pid > 1, `${c.step}: the step began`);
        const waiting = p.next((f) => f.tag === 'waiting');
        const sent = performance.now();
        p.send('stop\n');
        await waiting;
        const tookMs = performance.now() - sent;
        assert.ok(tookMs < 5000, `${c.step}: stopped in ${Math.round(tookMs)} ms`);
        assert.equal(p.frames.find((f) => f.tag === 'stopped')?.value, c.step, JSON.stringify(p.frames));
        // Stopped is no failure, and nothing after the stopped step ran.
        assert.deepEqual(tags(p.frames).filter((t) => ['health', 'after-switch-failed', 'reload-failed'].includes(t)), [], c.step);
        assert.equal(fs.existsSync(path.join(root, 'ran')), false, `${c.step}: a later step ran`);
        assert.ok(await exits(pid), `${c.step}: the stopped command (pid ${pid}) still runs`);
        assert.equal(fs.readlinkSync(path.join(root, 'current')), `releases/${id}`, 'the switch stands');
        p.end(`commit-unverified\n{"id":"${id}","status":"complete"}\n`);
        await p.closed;
        assert.ok(tags(p.frames).includes('committed'), JSON.stringify(p.frames));
        assert.equal(fs.existsSync(path.join(root, '.deploy.lock')), false, 'the lock was released');
      }
      // `stop` right behind `go` (a signal the moment the word went out), before any step began:
      // stopped at the first step, none run (a trap set after the reader began could miss it, or die
      // of it). Ten times: the TERM can reach the hook between its fork and its exec, where bash (with
      // an EXIT trap) used to lose it, and the hook ran to its end (1 in 7 here, under load).
      for (let n = 0; n < 10; n++) {
        const id = `early${n}`;
        lockAs(root, 't');
        const early = startProgram(shell, deployArmScript({ ...base, id, stage: prepare(id), tail: tail({ id, token: 't', backTo: 'old', afterSwitch: [slow], hookTimeoutS: 90, commitRecords: [id] }) }), BASE, (f) => f.tag === 'ready');
        started.push(early);
        await early.reached;
        const earlyWaiting = early.next((f) => f.tag === 'waiting');
        const sentEarly = performance.now();
        early.send('go\nstop\n');
        await earlyWaiting;
        assert.ok(performance.now() - sentEarly < 5000, `run ${n}: stopped at once`);
        assert.equal(early.frames.find((f) => f.tag === 'stopped')?.value, 'hooks', JSON.stringify(early.frames));
        early.end(`commit-unverified\n{"id":"${id}","status":"complete"}\n`);
        await early.closed;
        assert.ok(tags(early.frames).includes('committed'), JSON.stringify(early.frames));
      }

      // A stop that crosses the verdict (nothing was running) changes nothing: the next word decides.
      lockAs(root, 't');
      const p = startProgram(shell, deployArmScript({ ...base, id: 'late', stage: prepare('late'), tail: tail({ id: 'late', token: 't', backTo: 'old', afterSwitch: ['true'], commitRecords: ['late'] }) }), BASE, (f) => f.tag === 'ready');
      await p.reached;
      const waiting = p.next((f) => f.tag === 'waiting');
      p.send('go\n');
      await waiting;
      p.end('stop\ncommit\n{"id":"late","status":"complete"}\n');
      await p.closed;
      assert.ok(tags(p.frames).includes('committed'), JSON.stringify(p.frames));
      assert.ok(!tags(p.frames).includes('stopped'), JSON.stringify(p.frames));
    });

    // A signal on the deploying side during the before-switch hooks: its `abort` (or the connection's
    // end) ends the hook at once (each would run 60 s), and the program fails before it arms.
    void test('a line or the end of stdin during the before-switch hooks ends the hook running; the program fails INTERRUPTED and never arms', async (t) => {
      const { root, base, prepare } = armedFixture();
      const started: { end: (input?: string) => void }[] = [];
      t.after(() => {
        for (const p of started) p.end();
      });
      const pidFile = path.join(root, 'hook.pid');
      const slow = 'echo $$ > "$ATOMIC_DEPLOY_ROOT/hook.pid"; exec sleep 60';
      for (const [i, word] of ['abort\n', null].entries()) {
        const how = word === null ? 'the end of stdin' : JSON.stringify(word);
        fs.rmSync(pidFile, { force: true });
        lockAs(root, 't');
        const id = `h${i}`;
        const stage = prepare(id);
        fs.writeFileSync(path.join(root, '.tmp', stage, 'manifest.json'), 'the build manifest\n');
        const script = deployArmScript({ ...base, id, stage, manifest: true, remakeStage: `stage.remake${i}`, beforeSwitch: ['true', slow, 'echo never > "$ATOMIC_DEPLOY_ROOT/ran"'], tail: tail({ id, token: 't', backTo: 'old', hookTimeoutS: 90, commitRecords: [id] }) });
        const p = startProgram(shell, script, BASE, (f) => f.tag === 'placed');
        started.push(p);
        await p.reached;
        for (let n = 0; n < 500 && !(fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').endsWith('\n')); n++) await new Promise((r) => setTimeout(r, 10));
        const pid = Number(fs.readFileSync(pidFile, 'utf8'));
        assert.ok(pid > 1, `${how}: the hook began`);
        const sent = performance.now();
        if (word === null) p.end();
        else p.send(word);
        await p.closed;
        const tookMs = performance.now() - sent;
        assert.ok(tookMs < 5000, `${how}: stopped in ${Math.round(tookMs)} ms`);
        assert.equal(p.frames.find((f) => f.tag === 'error')?.value, 'INTERRUPTED', JSON.stringify(p.frames));
        assert.match(p.frames.find((f) => f.tag === 'message')?.value ?? '', /^stopped by the deploying side during the before-switch hooks; nothing was switched here$/);
        assert.deepEqual(tags(p.frames).filter((f) => ['hooked', 'ready', 'switched'].includes(f)), [], `${how}: never armed`);
        assert.equal(p.frames.filter((f) => f.tag === 'hook').length, 2, `${how}: the third hook did not start`);
        assert.equal(fs.existsSync(path.join(root, 'ran')), false, `${how}: a later hook ran`);
        assert.ok(await exits(pid), `${how}: the stopped hook (pid ${pid}) still runs`);
        assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/old', 'nothing switched');
      }
      // A hook that fails, with stdin open and silent (as the fleet keeps it): said as a failed hook, the rest not run.
      lockAs(root, 't');
      const failed = startProgram(shell, deployArmScript({ ...base, id: 'f', stage: prepare('f'), beforeSwitch: ['exit 3', 'echo never > "$ATOMIC_DEPLOY_ROOT/ran"'], tail: tail({ id: 'f', token: 't', backTo: 'old', commitRecords: ['f'] }) }), BASE, () => false);
      started.push(failed);
      await failed.closed;
      assert.equal(failed.frames.find((f) => f.tag === 'error')?.value, 'HOOK_FAILED', JSON.stringify(failed.frames));
      assert.equal(failed.frames.find((f) => f.tag === 'message')?.value, 'before-switch hook 1 exited with code 3');
      assert.equal(fs.existsSync(path.join(root, 'ran')), false, 'the hook after a failed one ran');
    });

    // GNU timeout runs in a process group of its own and forwards a TERM to its command, but a
    // TERM that reaches it after its fork and before it has the child's pid ends it alone (its
    // handler exits when it knows no child). On a loaded machine the hook had started by then:
    // it ran on, orphaned, holding the program's stderr, and the stop took the hook's whole 60 s
    // (seen once in a full run). A stand-in timeout that always exits so shows it every time.
    void test('a stop during a before-switch hook ends the hook even when timeout dies without passing the TERM on', async (t) => {
      const { root, base, prepare } = armedFixture();
      const bin = fs.mkdtempSync(path.join(BASE, 'deaf-timeout-'));
      fs.writeFileSync(
        path.join(bin, 'timeout'),
        `#!/usr/bin/perl
# timeout's own process group and fork, with the race lost: a TERM ends it alone, its command left running.
use POSIX ();
while (@ARGV && $ARGV[0] =~ /^-/) { my $o = shift @ARGV; shift @ARGV if $o eq '-s' || $o eq '-k'; }
shift @ARGV;
setpgrp(0, 0);
$SIG{TERM} = sub { POSIX::_exit(143) };
my $pid = fork();
if ($pid == 0) { $SIG{TERM} = 'DEFAULT'; exec @ARGV; POSIX::_exit(127); }
waitpid($pid, 0);
exit($? >> 8);
`,
        { mode: 0o755 },
      );
      const deaf = { ...shell, env: { ...shell.env, PATH: `${bin}:${shell.env.PATH ?? ''}` } };
      const pidFile = path.join(root, 'hook.pid');
      lockAs(root, 't');
      const stage = prepare('d1');
      fs.writeFileSync(path.join(root, '.tmp', stage, 'manifest.json'), 'the build manifest\n');
      const script = deployArmScript({ ...base, id: 'd1', stage, manifest: true, remakeStage: 'stage.remake-d', beforeSwitch: ['echo $$ > "$ATOMIC_DEPLOY_ROOT/hook.pid"; exec sleep 60'], tail: tail({ id: 'd1', token: 't', backTo: 'old', hookTimeoutS: 90, commitRecords: ['d1'] }) });
      const p = startProgram(deaf, script, BASE, (f) => f.tag === 'placed');
      t.after(() => p.end());
      await p.reached;
      for (let n = 0; n < 500 && !(fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').endsWith('\n')); n++) await new Promise((r) => setTimeout(r, 10));
      const pid = Number(fs.readFileSync(pidFile, 'utf8'));
      assert.ok(pid > 1, 'the hook began');
      t.after(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone, as it should be
        }
      });
      const sent = performance.now();
      p.send('abort\n');
      await p.closed;
      const tookMs = performance.now() - sent;
      assert.ok(tookMs < 5000, `stopped in ${Math.round(tookMs)} ms`);
      assert.equal(p.frames.find((f) => f.tag === 'error')?.value, 'INTERRUPTED', JSON.stringify(p.frames));
      assert.ok(await exits(pid), `the stopped hook (pid ${pid}) still runs`);
      assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/old', 'nothing switched');
    });

    // The deploying side says a host's failed hook in a local deploy's words: it must know whether
    // the hook's time ran out, which its exit code alone does not say (GNU timeout's 124 is also a
    // code a command may exit with; BusyBox's timeout leaves 143, a TERM-ignoring hook 137).
    void test('a failed before-switch hook is reported with its exit code and whether its time ran out; one ignoring TERM is killed 3 s after its timeout', async (t) => {
      const { root, base, prepare } = armedFixture();
      const started: { end: (input?: string) => void }[] = [];
      t.after(() => {
        for (const p of started) p.end();
      });
      const cases = [
        { id: 'own124', hook: 'exit 124', frame: /^1 124$/, atLeastMs: 0, atMostMs: 3000 },
        { id: 'slow', hook: 'exec sleep 30', frame: /^1 (124|143) 1$/, atLeastMs: 800, atMostMs: 4000 },
        // The TERM at 1 s, the KILL 3 s later (as locally; it was 5 s on hosts).
        { id: 'deaf', hook: "trap '' TERM; sleep 30", frame: /^1 (137|143) 1$/, atLeastMs: 3800, atMostMs: 5600 },
      ];
      for (const c of cases) {
        lockAs(root, 't');
        // Timed from the hook's start (the program's own preparation before it varies with the load).
        const p = startProgram(shell, deployArmScript({ ...base, id: c.id, stage: prepare(c.id), beforeSwitch: [c.hook], tail: tail({ id: c.id, token: 't', backTo: 'old', hookTimeoutS: 1, commitRecords: [c.id] }) }), BASE, (f) => f.tag === 'hook');
        started.push(p);
        await p.reached;
        const began = performance.now();
        await p.closed;
        const tookMs = performance.now() - began;
        assert.match(p.frames.find((f) => f.tag === 'hook-failed')?.value ?? '', c.frame, `${c.id}: ${JSON.stringify(p.frames)}`);
        assert.equal(p.frames.find((f) => f.tag === 'error')?.value, 'HOOK_FAILED', c.id);
        assert.ok(tookMs >= c.atLeastMs && tookMs < c.atMostMs, `${c.id}: ended in ${Math.round(tookMs)} ms`);
      }
    });

    void test('a commit whose record cannot be written keeps the journal for the next command and says so', async () => {
      const root = freshRoot();
      makeRelease(root, 'old', 'old\n');
      fs.symlinkSync('releases/old', path.join(root, 'current'));
      fs.mkdirSync(path.join(root, '.tmp', 'stage.d', 'd'), { recursive: true });
      fs.writeFileSync(path.join(root, '.tmp', 'stage.d', 'd', 'index.html'), 'd\n');
      lockAs(root, 't');
      const base = { root, fsync: false, previous: 'old', shared: [], sharedCreate: false, beforeSwitch: [], journalCopying: '{}', journalReady: '{"phase":"ready"}', recordPending: '{"id":"d","status":"pending"}' };
      const p = startProgram(shell, deployArmScript({ ...base, id: 'd', stage: 'stage.d', tail: tail({ id: 'd', token: 't', backTo: 'old', journalSwitched: '{"phase":"switched"}', commitRecords: ['d'] }) }), BASE, (f) => f.tag === 'waiting');
      p.send('go\n');
      await p.reached;
      // The record's place taken by a directory: the write cannot land.
      const record = path.join(root, '.atomic-deploy', 'releases', 'd.json');
      fs.rmSync(record, { force: true });
      fs.mkdirSync(path.join(record, 'x'), { recursive: true });
      p.end('commit\n{"id":"d","status":"complete"}\n');
      await p.closed;
      assert.ok(tags(p.frames).includes('committed'), JSON.stringify(p.frames));
      assert.match(p.frames.filter((f) => f.tag === 'warning').map((f) => f.value).join('\n'), /cannot write the release log; the journal stays and the next command finishes the record/);
      assert.equal(fs.readFileSync(path.join(root, '.atomic-deploy', 'journal.json'), 'utf8').trim(), '{"phase":"switched"}');
      assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/d');
      assert.ok(!fs.existsSync(path.join(root, '.deploy.lock')), 'the lock was kept');
    });

    void test('an armed program whose lock was taken over meanwhile ignores go, back and commit: current stays as the new holder left it', async () => {
      const { root, base, prepare } = armedFixture();
      makeRelease(root, 'newer', 'newer\n');
      const takenOver = (): void => {
        // The next command's takeover: its lock in place, and it switched to its own release.
        fs.rmSync(path.join(root, '.deploy.lock'), { recursive: true, force: true });
        lockAs(root, 'other');
        fs.symlinkSync('releases/newer', path.join(root, 'current.x'));
        fs.renameSync(path.join(root, 'current.x'), path.join(root, 'current'));
      };
      // Taken over while armed: `go` switches nothing.
      lockAs(root, 't');
      const armed = startProgram(shell, deployArmScript({ ...base, id: 'a', stage: prepare('a'), tail: tail({ id: 'a', token: 't', backTo: 'old' }) }), BASE, (f) => f.tag === 'ready');
      await armed.reached;
      takenOver();
      armed.end('go\n');
      await armed.closed;
      assert.deepEqual(tags(armed.frames), ['placed', 'ready', 'switch-failed']);
      assert.match(armed.frames.at(-1)?.value ?? '', /^the lock on this host is another command's now \(taken over while this one was silent/);
      assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/newer');
      assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')).filter((n) => n.startsWith('current.')), [], 'the armed link is left behind');
      // Removed while armed (unlock --force), no lock in its place: `go` switches nothing, and says the lock was removed, not taken over.
      fs.rmSync(path.join(root, '.deploy.lock'), { recursive: true, force: true });
      lockAs(root, 't');
      const removed = startProgram(shell, deployArmScript({ ...base, id: 'r', stage: prepare('r'), tail: tail({ id: 'r', token: 't', backTo: 'old' }) }), BASE, (f) => f.tag === 'ready');
      await removed.reached;
      fs.rmSync(path.join(root, '.deploy.lock'), { recursive: true, force: true });
      removed.end('go\n');
      await removed.closed;
      assert.deepEqual(tags(removed.frames), ['placed', 'ready', 'switch-failed']);
      assert.equal(removed.frames.at(-1)?.value, 'the lock on this host is gone (another command took it over while this one was silent for longer than its 30 s lease, and released it since; or it was removed: atomic-deploy unlock --force, or by hand); nothing was switched here');
      assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/newer');
      // Taken over while waiting for the decision: neither `back` nor `commit` touches current, the journal or the lock.
      for (const word of ['back', 'commit']) {
        const id = word === 'back' ? 'b' : 'c';
        fs.rmSync(path.join(root, '.deploy.lock'), { recursive: true, force: true });
        fs.symlinkSync('releases/old', path.join(root, 'current.y'));
        fs.renameSync(path.join(root, 'current.y'), path.join(root, 'current'));
        lockAs(root, 't');
        const p = startProgram(shell, deployArmScript({ ...base, id, stage: prepare(id), tail: tail({ id, token: 't', backTo: 'old', journalSwitched: '{"phase":"switched"}', ...(word === 'back' ? { backRecords: [id] } : { commitRecords: [id] }) }) }), BASE, (f) => f.tag === 'ready');
        await p.reached;
        const waiting = p.next((f) => f.tag === 'waiting');
        p.send('go\n');
        await waiting;
        assert.equal(fs.readlinkSync(path.join(root, 'current')), `releases/${id}`, `${word}: go switched while the lock was its own`);
        takenOver();
        fs.writeFileSync(path.join(root, '.atomic-deploy', 'journal.json'), '{"theirs":true}');
        p.end(word === 'back' ? `back\n{"phase":"rolling-back"}\n{"id":"${id}","status":"rolled-back"}\n` : `commit\n{"id":"${id}","status":"complete"}\n`);
        await p.closed;
        assert.ok(!tags(p.frames).includes(word === 'back' ? 'switched-back' : 'committed'), `${word}: ${JSON.stringify(p.frames)}`);
        assert.match(p.frames.find((f) => f.tag === 'not-carried-out')?.value ?? '', new RegExp(`another command's now \\(taken over.*: its ${word} was not carried out$`));
        assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/newer', `${word} undid the newer command's switch`);
        assert.equal(fs.readFileSync(path.join(root, '.atomic-deploy', 'journal.json'), 'utf8'), '{"theirs":true}', `${word}: the new holder's journal was touched`);
        assert.match(fs.readFileSync(path.join(root, '.deploy.lock', 'owner.json'), 'utf8'), /other/, `${word}: the new holder's lock was touched`);
      }
    });

    void test('processes using a release are found through /proc (cwd, open files), others are not', async () => {
      // Printable ASCII only: the listing is `ls -l` text, so other roots report the check as unavailable.
      const root = path.join(BASE, `case-${++serial}`, "-a dir 'q' $(touch PWNED)");
      fs.mkdirSync(root, { recursive: true });
      const withNewline = freshRoot();
      makeRelease(withNewline, 'x', 'x');
      assert.equal(inUseOf(remoteStateOf(run(shell, stateScript({ root: withNewline, fsync: false })).frames, withNewline), [], false).inUseCheck, 'unavailable');
      makeRelease(root, 'used', 'u');
      makeRelease(root, 'open', 'o');
      makeRelease(root, 'idle', 'i');
      const cwdUser = spawn('sleep', ['30'], { cwd: path.join(root, 'releases', 'used') });
      const fdUser = spawn('sh', ['-c', 'exec 3<"$1"; exec sleep 30', 'sh', path.join(root, 'releases', 'open', 'index.html')]);
      try {
        await new Promise((resolve) => setTimeout(resolve, 200));
        const r = run(shell, stateScript({ root, fsync: false, uses: true }));
        const uses = processUsesOf(r.frames);
        assert.ok(uses, r.stderr);
        const { inUse, inUseCheck } = inUseOf(remoteStateOf(r.frames, root), uses, false);
        assert.equal(inUseCheck, 'proc');
        assert.deepEqual([...(inUse?.keys() ?? [])].sort(), ['open', 'used']);
        assert.match(inUse?.get('used') ?? '', new RegExp(`pid ${cwdUser.pid} \\(sleep: working directory\\)`));
        assert.match(inUse?.get('open') ?? '', /open file/);
      } finally {
        cwdUser.kill();
        fdUser.kill();
      }
    });

    void test('a process whose main thread has exited is found through a live thread: by prune\'s listing and by the stale scan', async (t) => {
      const root = path.join(BASE, `case-${++serial}`, "-a dir 'q' $(touch PWNED)");
      makeRelease(root, 'held', 'h');
      makeRelease(root, 'open', 'o');
      makeRelease(root, 'idle', 'i');
      const program = exitedLeaderProgram();
      const held = path.join(root, 'releases', 'held');
      const file = path.join(root, 'releases', 'open', 'index.html');
      const inCwd = await startExitedLeader(t, program, { cwd: held, holds: held });
      const withFile = await startExitedLeader(t, program, { cwd: BASE, file, holds: file });
      const r = run(shell, stateScript({ root, fsync: false, uses: true }));
      const uses = processUsesOf(r.frames);
      assert.ok(uses, r.stderr);
      const { inUse } = inUseOf(remoteStateOf(r.frames, root), uses, false);
      assert.deepEqual([...(inUse?.keys() ?? [])].sort(), ['held', 'open']);
      assert.equal(inUse?.get('held'), `pid ${inCwd} (${EXITED_LEADER_COMMAND}: working directory)`);
      assert.equal(inUse?.get('open'), `pid ${withFile} (${EXITED_LEADER_COMMAND}: open file)`);
      for (const [dir, pid, hold] of [[held, inCwd, { kind: 'cwd', path: held }], [path.dirname(file), withFile, { kind: 'fd', path: file }]] as const) {
        const scan = run(shell, staleScanScript(dir));
        const raw = rawStaleScan(scan.frames);
        assert.ok(raw, scan.stderr);
        assert.deepEqual(remoteStaleReport(raw, path.basename(dir)).processes, [{ pid, command: EXITED_LEADER_COMMAND, holds: [hold] }]);
      }
      assertNoInjection();
    });

    void test('a root inside another deploy root (a release, through current, its state) is refused before anything is made; a plain parent is fine', async () => {
      const outer = freshRoot();
      makeRelease(outer, 'a', 'a');
      fs.symlinkSync('releases/a', path.join(outer, 'current'));
      const before = treeSnapshot(outer, { times: true });
      for (const inner of [path.join(outer, 'current', 'public'), path.join(outer, 'releases', 'new'), path.join(outer, 'releases', 'a'), path.join(outer, '.atomic-deploy', 'x y')]) {
        const r = run(shell, lockScript({ root: inner, fsync: false, token: 'tok', command: 'deploy', create: true, leaseS: 2 }));
        assert.equal(r.frames.find((f) => f.tag === 'error')?.value, 'INVALID_ROOT', `${inner}: ${JSON.stringify(r.frames)}`);
        assert.equal(r.frames.find((f) => f.tag === 'message')?.value, `the deploy root ${inner} is inside the deploy root ${outer}`);
        assert.equal(r.frames.find((f) => f.tag === 'hint')?.value, `a deploy root's folders belong to its releases and state: give a folder outside ${outer}`);
        assert.deepEqual(treeSnapshot(outer, { times: true }), before, `${inner}: the outer root changed`);
      }
      assertNoInjection();
      // The control: the same check passes a root whose parents are plain folders.
      const plain = path.join(freshRoot(), 'site', 'www');
      const held = startHolder(shell, plain, 'tok');
      await held.ready;
      assert.ok(tags(held.frames).includes('locked'), JSON.stringify(held.frames));
      held.stop();
      await held.done;
    });

    void test('rollback arming refuses a release that does not exist; apply steps stop at the first failure', () => {
      const root = freshRoot();
      makeRelease(root, 'a', 'a');
      fs.symlinkSync('releases/a', path.join(root, 'current'));
      const r = run(shell, rollbackArmScript({ root, fsync: false, journalSwitching: '{}', tail: tail({ id: 'missing', token: 't', backTo: 'a' }) }), 'go\n');
      assert.equal(r.frames.find((f) => f.tag === 'error')?.value, 'UNKNOWN_RELEASE');
      const protect = run(shell, applyScript({ root, fsync: false, steps: [{ op: 'remove-release', id: 'a', trash: 'trash.1', protect: [] }, { op: 'note', text: 'not reached' }] }));
      assert.equal(protect.frames.find((f) => f.tag === 'error')?.value, 'INTERNAL', 'the live release is never removed');
      assert.ok(!tags(protect.frames).includes('note'));
      assert.ok(fs.existsSync(path.join(root, 'releases', 'a', 'index.html')));
      const records = run(shell, applyScript({ root, fsync: false, steps: [{ op: 'write-record', id: HOSTILE_ID, json: '{"a":"it\'s"}' }] }));
      assert.equal(records.code, 0, records.stderr);
      assert.equal(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', `${HOSTILE_ID}.json`), 'utf8'), '{"a":"it\'s"}\n');
      assertNoInjection();
    });
  });
}

void test('a host without sha256sum or shasum lists nothing after the before-switch hooks (`listed no`), takes `same` and arms with the manifest it was placed with', async () => {
  const bin = path.join(BASE, 'busybox-no-sum');
  fs.mkdirSync(bin);
  for (const applet of ['sh', ...SCRIPT_APPLETS.filter((a) => a !== 'sha256sum')]) fs.symlinkSync(TOOLS.busybox, path.join(bin, applet));
  const shell: Shell = { name: 'busybox sh without a SHA-256 command', file: path.join(bin, 'sh'), env: { PATH: bin } };
  const { root, holder } = await liveOnOld(shell);
  fs.mkdirSync(path.join(root, '.tmp', 'stage.0007', 'r4'), { recursive: true });
  fs.writeFileSync(path.join(root, '.tmp', 'stage.0007', 'manifest.json'), 'the build manifest\n');
  const r = await talkTo(shell, armOnOld(root, 'r4', 'stage.0007', { beforeSwitch: ['echo cached > cache.php'], remakeStage: 'stage.0008', manifest: true }), BASE, [['listed', 'same\n'], ['ready', 'abort\n']]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(tags(r.frames).filter((t) => ['hooked', 'listed', 'stat', 'ready', 'disarmed'].includes(t)), ['hooked', 'listed', 'ready', 'disarmed']);
  assert.equal(r.frames.find((f) => f.tag === 'listed')?.value, 'no');
  assert.equal(fs.readFileSync(path.join(root, '.atomic-deploy', 'manifests', 'r4.json'), 'utf8'), 'the build manifest\n');
  holder.stop();
  await holder.done;
});

// As a deploy user who is not root (nobody): the shells and the roots in a folder it can reach.
const USER_BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'remote-script-user-'));
fs.chmodSync(USER_BASE, 0o755);
after(() => fs.rmSync(USER_BASE, { recursive: true, force: true }));
const NOBODY = uidOf('nobody');

void describe('generated programs run by a user who is not root', () => {
  for (const shell of programShells(USER_BASE, TOOLS, SCRIPT_APPLETS)) {
    void test(`--shared-create where this user may not write, under ${shell.name}: the folder it would be made in (or the nearest one that exists), its owner and this user, as the local sharedCreateProblem asks; never for root, nor for a target that is there`, () => {
      const base = path.join(USER_BASE, `case-${++serial}`);
      fs.mkdirSync(base, { mode: 0o755 });
      const root = path.join(base, HOSTILE);
      const shared = path.join(root, 'shared');
      fs.mkdirSync(path.join(shared, 'storage'), { recursive: true });
      fs.mkdirSync(path.join(shared, 'open'));
      fs.mkdirSync(path.join(shared, 'nameless'));
      fs.chownSync(root, NOBODY.uid, NOBODY.gid);
      fs.chownSync(path.join(shared, 'open'), NOBODY.uid, NOBODY.gid);
      // A uid without a name in /etc/passwd: the host names it by its number.
      fs.chownSync(path.join(shared, 'nameless'), 4242, 4242);
      const before = treeSnapshot(base);
      const paths = ['.env', 'storage', 'open/x/y', 'cache/views', 'nameless/.env'];
      const byRoot = { dir: shared, owner: { uid: 0, name: 'root' }, user: 'nobody' };
      const expected = [{ kind: 'missing', denied: byRoot }, { kind: 'dir' }, { kind: 'missing' }, { kind: 'missing', denied: byRoot }, { kind: 'missing', denied: { dir: path.join(shared, 'nameless'), owner: { uid: 4242 }, user: 'nobody' } }];
      const kindsOnly = expected.map(({ kind }) => ({ kind }));
      const programs: [string, (create: boolean) => string][] = [
        ['the check under the lock', (create) => sharedKindsScript(root, paths, create)],
        ['the read before the locks', (create) => rootShapeScript({ root, fsync: false, shared: { paths, create } })],
      ];
      for (const [name, program] of programs) {
        const r = runProgram(shell, program(true), base, '', NOBODY);
        assert.equal(r.code, 0, `${name}: ${r.stderr}`);
        assert.deepEqual(hostSharedTargetsOf(r.frames), expected, name);
        assert.deepEqual(hostSharedTargetsOf(runProgram(shell, program(true), base).frames), kindsOnly, `${name}: root may make them`);
        assert.deepEqual(hostSharedTargetsOf(runProgram(shell, program(false), base, '', NOBODY).frames), kindsOnly, `${name}: without --shared-create nothing is asked`);
      }
      // A root not there yet: the nearest folder that exists on the way (base, root's).
      const later = runProgram(shell, rootShapeScript({ root: path.join(base, 'later', 'root'), fsync: false, shared: { paths: ['.env'], create: true } }), base, '', NOBODY);
      assert.deepEqual(hostSharedTargetsOf(later.frames), [{ kind: 'missing', denied: { dir: base, owner: { uid: 0, name: 'root' }, user: 'nobody' } }]);
      assert.deepEqual(treeSnapshot(base), before, 'a program changed something');
      assert.equal(fs.existsSync(path.join(base, 'PWNED')), false, 'a quoted value was executed');
    });
  }
});

void describe('the portable switch is one rename(2), never a move into current', () => {
  // GNU mv and BusyBox mv: each must rename .tmp/<name>/current onto <root>/current exactly once.
  for (const [name, mv] of [['GNU mv', '/usr/bin/mv'], ['BusyBox mv', null]] as const) {
    void test(`${name}`, () => {
      const root = freshRoot();
      makeRelease(root, 'a', 'a');
      makeRelease(root, 'b', 'b');
      fs.symlinkSync('releases/a', path.join(root, 'current'));
      fs.mkdirSync(path.join(root, '.tmp', 'current.x'), { recursive: true });
      fs.symlinkSync('releases/b', path.join(root, '.tmp', 'current.x', 'current'));
      const trace = path.join(BASE, `trace-${++serial}`);
      const argv = mv === null ? [TOOLS.busybox, 'mv'] : [mv];
      execFileSync(TOOLS.strace, ['-f', '-o', trace, '-e', 'trace=rename,renameat,renameat2,unlink,unlinkat,symlink,symlinkat', ...argv, '-f', '--', path.join(root, '.tmp', 'current.x', 'current'), root]);
      const calls = fs.readFileSync(trace, 'utf8').split('\n').filter((l) => /rename|unlink|symlink/.test(l) && !l.includes('resumed>'));
      const succeeded = calls.filter((l) => / = 0$/.test(l));
      assert.equal(succeeded.length, 1, calls.join('\n'));
      assert.match(succeeded[0] ?? '', /rename/);
      assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/b');
      assert.deepEqual(fs.readdirSync(path.join(root, 'releases', 'a')), ['index.html']);
    });
  }

  void test('control: the two-operand form moves the new link INTO the live release', () => {
    const root = freshRoot();
    makeRelease(root, 'a', 'a');
    makeRelease(root, 'b', 'b');
    fs.symlinkSync('releases/a', path.join(root, 'current'));
    fs.symlinkSync('releases/b', path.join(root, '.tmp-link'));
    execFileSync('mv', ['-f', '--', path.join(root, '.tmp-link'), path.join(root, 'current')]);
    assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/a', 'current did not change');
    assert.ok(fs.lstatSync(path.join(root, 'releases', 'a', '.tmp-link')).isSymbolicLink(), 'the link landed inside the live release');
  });
});

void describe('rsync arguments and output', () => {
  void test('the remote side makes and enters a hostile staging path through its own quoting', () => {
    const root = freshRoot();
    const args = rsyncArgs({ source: '/src/', root, stage: 'stage.1', id: HOSTILE_ID, filesFrom: '/tmp/list' }, 'ssh', 'host');
    const rsyncPath = args.find((a) => a.startsWith('--rsync-path='))?.slice('--rsync-path='.length) ?? '';
    // The remote shell runs "<rsync-path> --server ...": here, "<rsync-path> --version".
    const out = execFileSync('sh', ['-c', `${rsyncPath} --version`], { cwd: BASE, encoding: 'utf8' });
    assert.match(out, /rsync\s+version/);
    assert.ok(fs.statSync(path.join(root, '.tmp', 'stage.1', HOSTILE_ID)).isDirectory());
    // Content decides what is sent: never rsync's quick check, never a --link-dest it would judge by mtime.
    assert.ok(args.includes('--ignore-times') && args.includes('--files-from=/tmp/list') && args.includes('--from0') && args.includes('--no-implied-dirs'));
    assert.equal(args.some((a) => a.startsWith('--link-dest') || a === '--checksum'), false);
    assert.deepEqual(args.slice(-3), ['--', '/src/', 'host:.']);
    assertNoInjection();
  });

  void test('--stats counts parse (thousands separators too)', () => {
    assert.deepEqual(parseStats('Number of files: 10,101 (reg: 10,000, dir: 101)\nNumber of regular files transferred: 1,234\n'), { files: 10101, transferred: 1234 });
    assert.deepEqual(parseStats('Number of files transferred: 7\n'), { transferred: 7 });
  });
});

void describe('frames and clocks', () => {
  void test('frames survive any chunking', () => {
    const data = Buffer.from('a\0one\0tag two\0value\nwith newline\0end\0\0');
    for (let cut = 0; cut <= data.length; cut++) {
      const reader = new FrameReader();
      const frames = [...reader.push(data.subarray(0, cut)), ...reader.push(data.subarray(cut))];
      assert.deepEqual(frames, [
        { tag: 'a', value: 'one' },
        { tag: 'tag two', value: 'value\nwith newline' },
        { tag: 'end', value: '' },
      ]);
    }
  });

  void test('ctime from GNU, BusyBox and BSD stat', () => {
    const ns = 1795799447821289307n;
    assert.equal(parseCtimeNs('1795799447.821289307 2026-11-27 17:10:47.821289307 +0000'), ns);
    assert.equal(parseCtimeNs('1795799447 2026-11-27 17:10:47.821289307 +0000'), ns);
    assert.equal(parseCtimeNs('1795799447.821289307'), ns);
    assert.equal(parseCtimeNs('1795799447 2026-11-27 18:10:47.821289307 +0100'), ns);
    assert.equal(parseCtimeNs(''), undefined);
  });
});
