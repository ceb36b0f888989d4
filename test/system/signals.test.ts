// Signal campaign: SIGINT, SIGTERM and SIGHUP at random moments and at every `signal:` failpoint.
// Before the switch the deploy is undone; after it the switch stands (never delete the live
// release); either way the lock is released and the exit code names the signal.
// RELIABILITY_TRIALS sets the number of random-moment signals, spread over the three; every other
// one goes to the whole process group, as a terminal's Ctrl-C does.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FAILPOINTS } from '../../src/act/failpoints.ts';
import {
  before,
  calibrate,
  formatTally,
  interruptAtRandom,
  LANES,
  LOSSES,
  loseOutputAtRandom,
  makeLane,
  nextSource,
  recoverAndCheck,
  runTrials,
  trialCount,
  type Before,
  type Lane,
} from '../harness/campaign.ts';
import { jsonOf, runCli, spawnCli, tempDir, type CliResult } from '../harness/cli.ts';
import { checkRoot, leftovers, lockExists, manifestOf, sameManifest } from '../harness/invariants.ts';

const SIGNALS = [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
] as const;
const TRIALS = trialCount(48);

/** Failpoints of the core deploy past which the switch stands. */
const AFTER_SWITCH = new Set(['after-switch', 'log-written', 'journal-cleared']);
const CORE_DEPLOY = [
  'lock-taken',
  'journal-written',
  'release-dir-made',
  'copy-half',
  'copy-done',
  'before-fsync',
  'fsync-done',
  'release-ready',
  'temp-link-made',
  'after-switch',
  'log-written',
  'journal-cleared',
] as const;

interface DeployJson {
  release?: string;
  previous?: string | null;
  interruptedAfterSwitch?: boolean;
  error?: { code: string; message: string };
}

/**
 * Checks a deploy that received `signal`: exit code, what it printed, and the root right away
 * (a signal is handled, not a crash: nothing may be left for the next command to clean).
 */
function checkSignalled(lane: Lane, was: Before, result: CliResult, signal: string, code: number, label: string): string {
  if (result.signal === signal && result.stdout.trim() !== '') {
    // Delivered in the exit, after the work and its output: the handlers are removed by then, so
    // that a stalled exit stays killable (docs/reliability.md, failure 69). The deploy is whole.
    const json = jsonOf<DeployJson>(result);
    assert.equal(json.error, undefined, `${label}: killed by ${signal} after reporting ${result.stdout}`);
    const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, keep: [was.current, was.previous].filter((x): x is string => x !== null), clean: true, trashAllowed: true });
    assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
    assert.equal(state.current, json.release, `${label}: deploy reported ${json.release} live, current is ${state.current}`);
    return 'killed in the exit, after its output';
  }
  if (result.signal === signal) {
    // Delivered before Node installed the handlers: start-up only, nothing may have changed.
    const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, currentIn: was.current ? [was.current] : [], clean: true });
    assert.deepEqual(problems, [], `${label}, killed in start-up: ${problems.join('; ')}`);
    assert.deepEqual(state.releases, was.releases, `${label}: killed in start-up, yet releases changed`);
    return 'before the handlers (start-up)';
  }
  assert.ok(result.code === 0 || result.code === code, `${label}: exit ${result.code}, expected ${code} or 0\n${result.stderr}`);
  assert.doesNotMatch(result.stderr, /unexpected failure|\n\s+at /, `${label}: ${result.stderr}`);
  const json = jsonOf<DeployJson>(result);
  // The deploy's prune after the switch may have been stopped mid-delete: its trash is recovery's (docs/lifecycle.md).
  const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, keep: [was.current, was.previous].filter((x): x is string => x !== null), clean: true, trashAllowed: true });
  assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
  if (json.error) {
    assert.equal(result.code, code, `${label}: ${result.stderr}`);
    assert.equal(json.error.code, 'INTERRUPTED', `${label}: ${result.stderr}`);
    assert.equal(state.current, was.current, `${label}: interrupted before the switch, yet current moved`);
    assert.deepEqual(state.releases, was.releases, `${label}: interrupted before the switch, yet releases changed`);
    return 'undone before the switch';
  }
  assert.ok(json.release, `${label}: no release in ${result.stdout}`);
  assert.equal(state.current, json.release, `${label}: deploy reported ${json.release} live, current is ${state.current}`);
  if (result.code === 0) return 'completed before the signal';
  // A signal after the deploy returned (while the lock was released) gives the exit code without the flag.
  return json.interruptedAfterSwitch ? 'finished after the switch' : 'finished, signal at the very end';
}

void test(`${TRIALS} signals at random moments of a deploy: undone or finished, lock released, exit 130/143/129`, async (t) => {
  const base = tempDir(t);
  const pool = await Promise.all(Array.from({ length: LANES }, (_, i) => makeLane(base, `lane${i}`)));
  const window = await calibrate(pool[0] as Lane);
  t.diagnostic(`a deploy works ~${Math.round(window)} ms after it first touches .tmp; signals land uniformly in [0, 1.1] of that`);
  const tally = await runTrials(pool, TRIALS, async (lane, index) => {
    const [signal, code] = SIGNALS[index % SIGNALS.length] as (typeof SIGNALS)[number];
    const was = before(lane);
    const args = ['deploy', nextSource(lane), lane.root, '--json'];
    if (index % 4 === 3) args.push('--no-fsync');
    // Every other trial signals the whole process group, as a terminal's Ctrl-C (and a job runner's group kill) does.
    const group = index % 2 === 1;
    const interrupt = (child: ChildProcess): void => {
      if (!group) child.kill(signal);
      else {
        try {
          process.kill(-(child.pid as number), signal);
        } catch {
          // The job had already ended: nothing left to signal.
        }
      }
    };
    const { result } = await interruptAtRandom(args, lane.root, 1.1 * window, interrupt, index, { group });
    const label = `${signal} trial ${index}`;
    const outcome = checkSignalled(lane, was, result, signal, code, label);
    // A handled signal leaves nothing to recover but the trash of a prune it stopped (checked
    // above); the next command sweeps that, checked every fourth trial and whenever trash was left.
    if (index % 4 === 0 || leftovers(lane.root).length > 0) await recoverAndCheck(lane, [was.current, was.previous], label);
    return `${signal} ${outcome}`;
  });
  t.diagnostic(`${TRIALS} signals: ${formatTally(tally)}`);
  for (const [signal] of SIGNALS) {
    const undone = tally.get(`${signal} undone before the switch`) ?? 0;
    assert.ok(undone > 0 || TRIALS < 12, `no ${signal} trial landed before the switch: the window is off (${formatTally(tally)})`);
  }
});

void test('each signal at every deploy failpoint: undone before the switch, the switch stands after it', async (t) => {
  const base = tempDir(t);
  const pool = await Promise.all(Array.from({ length: LANES }, (_, i) => makeLane(base, `lane${i}`)));
  for (const name of CORE_DEPLOY) assert.ok((FAILPOINTS as readonly string[]).includes(name), `failpoint ${name} is gone`);
  const cases = SIGNALS.flatMap(([signal, code]) => CORE_DEPLOY.map((name) => ({ signal, code, name })));
  await runTrials(pool, cases.length, async (lane, index) => {
    const { signal, code, name } = cases[index] as (typeof cases)[number];
    const was = before(lane);
    const result = await runCli(['deploy', nextSource(lane), lane.root, '--json'], { failpoints: `${name}=signal:${signal}` });
    const label = `${signal} at ${name}`;
    assert.equal(result.code, code, `${label}: exit ${result.code}\n${result.stderr}`);
    const outcome = checkSignalled(lane, was, result, signal, code, label);
    assert.equal(outcome, AFTER_SWITCH.has(name) ? 'finished after the switch' : 'undone before the switch', label);
    assert.ok(!lockExists(lane.root), `${label}: the lock was not released`);
    return outcome;
  });
});

void test('each signal at the rollback failpoints: nothing changed before the switch, the rollback stands after it', async (t) => {
  const base = tempDir(t);
  const lane = await makeLane(base, 'lane');
  for (const [signal, code] of SIGNALS) {
    for (const name of ['rollback-temp-link-made', 'rollback-after-switch']) {
      const was = before(lane);
      const result = await runCli(['rollback', lane.root, '--json'], { failpoints: `${name}=signal:${signal}` });
      const label = `${signal} at ${name}`;
      assert.equal(result.code, code, `${label}: exit ${result.code}\n${result.stderr}`);
      const expected = name === 'rollback-after-switch' ? was.previous : was.current;
      const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, keep: was.releases, currentIn: expected ? [expected] : [], clean: true });
      assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
      assert.deepEqual(state.releases, was.releases, label);
      await recoverAndCheck(lane, [], label);
    }
  }
});

void test('SIGTERM right after the rename leaves the NEW release live and intact (the bash tool deleted it)', async (t) => {
  const base = tempDir(t);
  const lane = await makeLane(base, 'lane');
  const was = before(lane);
  const source = nextSource(lane);
  const result = await runCli(['deploy', source, lane.root, '--json'], { failpoints: 'after-switch=signal:SIGTERM' });
  assert.equal(result.code, 143, result.stderr);
  const json = jsonOf<DeployJson>(result);
  assert.ok(json.release && json.release !== was.current);
  const live = path.join(lane.root, 'current');
  assert.equal(fs.readlinkSync(live), `releases/${json.release}`);
  assert.ok(sameManifest(manifestOf(live + '/'), manifestOf(source)), 'the live release is not the whole new source');
  assert.ok(fs.existsSync(path.join(lane.root, 'releases', was.current ?? '')), 'the previous release was removed');
  assert.ok(!lockExists(lane.root), 'the lock was not released');
  const list = jsonOf<{ current: string; releases: { id: string; status?: string }[] }>(await runCli(['releases', lane.root, '--json']));
  assert.equal(list.current, json.release);
  assert.equal(list.releases.find((r) => r.id === json.release)?.status, 'complete', 'the release log does not record the deploy as complete');
});

void test('a signal while waiting for the lock exits with that signal\'s code and leaves the holder\'s lock alone', async (t) => {
  const base = tempDir(t);
  const lane = await makeLane(base, 'lane');
  // One holder, one waiter per signal, all waiting at once: each is signalled only once its lock
  // draft shows it is past start-up and at the lock, however slowly the machine starts them.
  const holder = spawnCli(['deploy', nextSource(lane), lane.root, '--quiet'], { failpoints: 'lock-taken=sleep:8000' });
  const ownerFile = path.join(lane.root, '.deploy.lock', 'owner.json');
  while (!fs.existsSync(ownerFile)) await sleep(20);
  const owner = fs.readFileSync(ownerFile, 'utf8');
  const tmp = path.join(lane.root, '.tmp');
  const drafts = (): string[] => fs.readdirSync(tmp).filter((n) => n.startsWith('lock.'));
  const waiters = SIGNALS.map(([signal, code]) => ({ signal, code, ...spawnCli(['deploy', nextSource(lane), lane.root, '--json', '--wait', '60']) }));
  while (drafts().length < waiters.length) {
    assert.ok(fs.existsSync(ownerFile), `the holder let go before every waiter reached the lock (${drafts().length} of ${waiters.length}): the holder's sleep is too short for this machine`);
    await sleep(20);
  }
  // Past the draft, into the wait loop (a signal before the loop is seen by its first check anyway).
  await sleep(200);
  for (const w of waiters) w.child.kill(w.signal);
  for (const w of waiters) {
    const result = await w.done;
    assert.equal(result.code, w.code, `${w.signal} while waiting: exit ${result.code} ${result.signal ?? ''}\n${result.stderr}`);
    assert.equal(jsonOf<DeployJson>(result).error?.code, 'INTERRUPTED');
  }
  assert.equal(fs.readFileSync(ownerFile, 'utf8'), owner, 'a waiter touched the holder\'s lock');
  assert.deepEqual(drafts(), [], 'a waiter left its lock draft behind');
  assert.equal((await holder.done).code, 0);
  assert.ok(!lockExists(lane.root));
});

/** Waits until `signal` is no longer pending for `pid` (/proc's ShdPnd): one of its threads has taken it. */
async function handedOver(pid: number, signal: NodeJS.Signals): Promise<void> {
  const bit = 1n << BigInt(os.constants.signals[signal] - 1);
  for (let i = 0; i < 200; i++) {
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const pending = /^ShdPnd:\s+([0-9a-f]+)$/m.exec(status)?.[1];
    if (pending === undefined || (BigInt(`0x${pending}`) & bit) === 0n) return;
    await sleep(5);
  }
}

void test('a second signal during the clean-up stops only its deletes; a hangup, or one signal delivered twice, does not', async (t) => {
  const base = tempDir(t);
  const lane = await makeLane(base, 'lane', { files: 600, dirs: 20 });
  // The exit code is always the first signal's. SIGINT twice within a few ms is one Ctrl-C
  // delivered twice (npm forwards it), SIGHUP twice one hangup (the shell forwards it).
  const cases = [
    ['SIGINT', 'SIGTERM', 130, true],
    ['SIGTERM', 'SIGINT', 143, true],
    ['SIGHUP', 'SIGTERM', 129, true],
    ['SIGINT', 'SIGINT', 130, false],
    ['SIGHUP', 'SIGHUP', 129, false],
  ] as const;
  for (const [first, second, code, stops] of cases) {
    const label = `${first} then ${second}`;
    const was = before(lane);
    const { child, done } = spawnCli(['deploy', nextSource(lane), lane.root, '--json'], { failpoints: 'copy-half=sleep:300' });
    const half = path.join(lane.root, '.atomic-deploy', 'journal.json');
    while (!fs.existsSync(half)) await sleep(5);
    await sleep(150);
    child.kill(first);
    // Two different signals sent 5 ms apart to a process a busy machine has not run meanwhile are
    // taken by two of its threads (the kernel gives the second to a thread without one pending), and
    // the two handlers race to libuv's signal pipe: the process may see them in either order. The
    // second is sent once a thread has taken the first, and its handler has had time to write it.
    // (The same signal twice is left to arrive together: that is one Ctrl-C delivered twice.)
    if (first !== second) await handedOver(child.pid as number, first);
    await sleep(first === second ? 5 : 50);
    child.kill(second);
    const result = await done;
    assert.equal(result.code, code, `${label}: exit ${result.code} ${result.signal ?? ''}\n${result.stderr}`);
    // Whatever stopped, nothing is under a release's name but the releases that were there, and the lock is gone.
    const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, currentIn: was.current ? [was.current] : [], clean: !stops, recovered: true });
    assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
    assert.deepEqual(state.releases, was.releases);
    assert.ok(!lockExists(lane.root), `${label}: the lock was left`);
    if (!stops) continue;
    // The undo stopped deleting (at once, if the second signal came before it began): only
    // staging copies and trash may be left, named in the error, and the next command removes them.
    const left = leftovers(lane.root);
    t.diagnostic(`${label}: left ${left.join(', ') || 'nothing'}`);
    assert.ok(left.every((name) => /^(\.tmp\/(stage|trash)|releases\/\.(stage|trash))\./.test(name)), `${label}: left ${left.join(', ')}`);
    const message = jsonOf<DeployJson>(result).error?.message ?? '';
    if (left.length > 0) assert.ok(left.some((name) => message.includes(`a second signal (${second}) stopped the undo while removing ${name}`)), `${label}: ${message}`);
    const next = await runCli(['status', lane.root]);
    assert.equal(next.code, 0, next.stderr);
    const after = checkRoot(lane.root, { sources: lane.manifests, currentIn: was.current ? [was.current] : [], clean: true, recovered: true });
    assert.deepEqual(after.problems, [], `${label}, after status: ${after.problems.join('; ')}`);
  }
});

void test('random closes of stdout or stderr and terminal hangups during deploys, rollbacks and prunes: a close changes nothing, a hangup is a SIGHUP', async (t) => {
  const base = tempDir(t);
  const lane = await makeLane(base, 'lost');
  const ops = ['deploy', 'rollback', 'prune'] as const;
  const trials = trialCount(12);
  const tally = new Map<string, number>();
  for (let i = 0; i < trials; i++) {
    const op = ops[i % ops.length] as (typeof ops)[number];
    const loss = LOSSES[Math.floor(i / ops.length) % LOSSES.length] as (typeof LOSSES)[number];
    const was = before(lane);
    const args = op === 'deploy' ? ['deploy', nextSource(lane), lane.root, '--after-switch', 'echo hook-out; echo hook-err >&2'] : op === 'rollback' ? ['rollback', lane.root] : ['prune', lane.root, '--keep', '3'];
    const r = await loseOutputAtRandom(base, args, loss, 1500);
    const label = `${loss} during ${op} (trial ${i})`;
    // A lost reader is no reason to fail: only a hangup (SIGHUP, 129) may end a command early.
    const allowed = loss === 'hangup' ? [0, 129] : [0];
    assert.ok(r.code !== null && allowed.includes(r.code), `${label}: exit ${String(r.code)}\n${r.output}`);
    assert.doesNotMatch(r.output, /unexpected failure|EPIPE|\n\s+at /, label);
    const keep = [was.current, was.previous].filter((x): x is string => x !== null);
    // A hangup may stop a prune's delete: the trash is left to recovery (docs/lifecycle.md), which recoverAndCheck runs.
    const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, keep, clean: true, trashAllowed: r.code === 129 });
    assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
    if (op === 'rollback' && r.code === 0) assert.equal(state.current, was.previous, `${label}: the rollback did not finish`);
    if (op === 'deploy' && r.code === 0) assert.notEqual(state.current, was.current, `${label}: the deploy did not finish`);
    const key = `${loss} ${op}: exit ${String(r.code)}${r.lost ? '' : ' (finished first)'}`;
    tally.set(key, (tally.get(key) ?? 0) + 1);
    await recoverAndCheck(lane, keep, label);
  }
  t.diagnostic(formatTally(tally));
});
