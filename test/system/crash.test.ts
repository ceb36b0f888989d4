// Crash campaign: kill -9 at every failpoint of deploy and rollback and at random moments, then
// check that current still resolves to a complete release and that the next command recovers.
// RELIABILITY_TRIALS sets the number of random-moment kills (CI default below; the long run 1000).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { FAILPOINTS } from '../../src/act/failpoints.ts';
import {
  before,
  calibrate,
  checkAfterInterrupt,
  formatTally,
  interruptAtRandom,
  LANES,
  makeLane,
  mustSucceed,
  nextSource,
  phaseOnDisk,
  recoverAndCheck,
  runTrials,
  trialCount,
  type Lane,
} from '../harness/campaign.ts';
import { jsonOf, runCli, tempDir } from '../harness/cli.ts';
import { checkRoot, deadPid, leftovers, lockExists } from '../harness/invariants.ts';

const RANDOM_KILLS = trialCount(56);

/** How a failpoint is reached, and whether `current` has switched once it is. */
interface Scenario {
  args: (lane: Lane) => string[];
  /** Prepares the root (plants a stale lock, writes a config file) before the command. */
  setup?: (lane: Lane) => Promise<void> | void;
  /** The release current may point to after a crash there, besides the old one. */
  mayGoTo: 'new' | 'previous' | 'none';
  /** Past the rename of current: an error there leaves the new release live. */
  switched: boolean;
  /** A plain deploy or rollback: the I/O-error sweep covers these. */
  core?: boolean;
}

// --keep 0: a deploy prunes nothing unless the scenario is about pruning.
const deployArgs = (lane: Lane): string[] => ['deploy', nextSource(lane), lane.root, '--json', '--keep', '0'];
const deployAt = (switched: boolean): Scenario => ({ args: deployArgs, mayGoTo: 'new', switched, core: true });
const rollbackAt = (switched: boolean): Scenario => ({ args: (lane) => ['rollback', lane.root, '--json'], mayGoTo: 'previous', switched, core: true });

async function plantStaleLock(lane: Lane): Promise<void> {
  const lock = path.join(lane.root, '.deploy.lock');
  fs.mkdirSync(lock);
  fs.writeFileSync(path.join(lock, 'owner.json'), JSON.stringify({ pid: await deadPid(), host: os.hostname(), user: 'root', since: new Date().toISOString(), token: `crashtest-${Date.now()}` }));
}

/** A deploy with a config file (hooks, health check, shared paths): what the lifecycle points need. */
function withConfig(name: string, config: object, switched: boolean, shared?: string): Scenario {
  const file = (lane: Lane): string => path.join(path.dirname(lane.root), `${name}.json`);
  return {
    setup: (lane) => {
      // keep 0 unless the scenario sets one: only the prune scenarios prune.
      fs.writeFileSync(file(lane), JSON.stringify({ keep: 0, ...config }));
      if (shared && !lane.sharedLinks?.includes(shared)) lane.sharedLinks?.push(shared);
    },
    args: (lane) => ['deploy', nextSource(lane), lane.root, '--json', '--config', file(lane)],
    mayGoTo: 'new',
    switched,
  };
}

const pruneArgs = (lane: Lane): string[] => ['prune', lane.root, '--keep', '1', '--json'];

/** Every failpoint with the command that reaches it; some points are reached by more than one path. */
const SCENARIOS: { point: (typeof FAILPOINTS)[number]; via?: string; scenario: Scenario }[] = [
  { point: 'lock-taken', scenario: deployAt(false) },
  { point: 'journal-written', scenario: deployAt(false) },
  { point: 'release-dir-made', scenario: deployAt(false) },
  { point: 'copy-half', scenario: deployAt(false) },
  { point: 'copy-done', scenario: deployAt(false) },
  { point: 'before-fsync', scenario: deployAt(false) },
  { point: 'fsync-done', scenario: deployAt(false) },
  { point: 'manifest-written', scenario: deployAt(false) },
  { point: 'release-ready', scenario: deployAt(false) },
  { point: 'shared-linked', scenario: withConfig('shared', { sharedDirs: ['data'], sharedCreate: true }, false, 'data') },
  { point: 'before-switch-hook', scenario: withConfig('before-hook', { hooks: { beforeSwitch: 'true' } }, false) },
  { point: 'temp-link-made', scenario: deployAt(false) },
  { point: 'after-switch', scenario: deployAt(true) },
  { point: 'after-switch-hook', scenario: withConfig('after-hook', { hooks: { afterSwitch: 'true' } }, true) },
  { point: 'health-check', scenario: withConfig('health', { healthCheck: { command: 'true' } }, true) },
  { point: 'log-written', scenario: deployAt(true) },
  { point: 'journal-cleared', scenario: deployAt(true) },
  { point: 'rollback-temp-link-made', scenario: rollbackAt(false) },
  { point: 'rollback-after-switch', scenario: rollbackAt(true) },
  // The automatic rollback after a failed health check goes through the same two points.
  { point: 'rollback-temp-link-made', via: 'a failed health check', scenario: withConfig('health-fails', { healthCheck: { command: 'false' } }, true) },
  { point: 'rollback-after-switch', via: 'a failed health check', scenario: withConfig('health-fails', { healthCheck: { command: 'false' } }, true) },
  { point: 'prune-rename', scenario: { args: pruneArgs, mayGoTo: 'none', switched: false } },
  { point: 'prune-delete', scenario: { args: pruneArgs, mayGoTo: 'none', switched: false } },
  { point: 'prune-rename', via: 'deploy --keep', scenario: { args: (lane) => [...deployArgs(lane), '--keep', '1'], mayGoTo: 'new', switched: true } },
  { point: 'unlock-rename', scenario: { args: (lane) => ['unlock', lane.root, '--json'], setup: plantStaleLock, mayGoTo: 'none', switched: false } },
];

function allowedTargets(scenario: Scenario, was: ReturnType<typeof before>): string[] | undefined {
  if (scenario.mayGoTo === 'new') return undefined;
  if (scenario.mayGoTo === 'previous') return was.previous ? [was.previous] : [];
  return [];
}

async function lanes(base: string, n: number): Promise<Lane[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => makeLane(base, `lane${i}`)));
}

void test('kill -9 at every failpoint: current stays complete, status and the next deploy recover', async (t) => {
  for (const name of FAILPOINTS) assert.ok(SCENARIOS.some((s) => s.point === name), `failpoint ${name} has no crash scenario: add one`);
  const base = tempDir(t);
  const pool = await lanes(base, LANES);
  let next = 0;
  await Promise.all(
    pool.map(async (lane) => {
      while (next < SCENARIOS.length) {
        const { point, via, scenario } = SCENARIOS[next++] as (typeof SCENARIOS)[number];
        const label = `crash at ${point}${via ? ` (via ${via})` : ''}`;
        const was = before(lane);
        await scenario.setup?.(lane);
        const result = await runCli(scenario.args(lane), { failpoints: `${point}=crash` });
        assert.equal(result.signal, 'SIGKILL', `${label}: the failpoint was not reached (exit ${result.code}):\n${result.stderr}`);
        const after = checkAfterInterrupt(lane, was, label, allowedTargets(scenario, was));
        if (scenario.switched && scenario.mayGoTo !== 'new') assert.notEqual(after, was.current, `${label}: the switch did not stand`);

        // status recovers what the crash left (it takes over the dead holder's lock to do so).
        const st = await runCli(['status', lane.root, '--json']);
        assert.equal(st.code, 0, st.stderr);
        const report = jsonOf<{ current: string; lock: { state: string } | null }>(st);
        assert.equal(report.current, after, `status after a ${label}`);
        assert.ok(report.lock === null || report.lock.state === 'stale', `status reports a live lock after a ${label}`);
        assert.deepEqual(leftovers(lane.root), [], `status left leftovers after a ${label}`);
        const keep = [was.current, was.previous].filter((x): x is string => x !== null);
        const { problems } = checkRoot(lane.root, { sources: lane.manifests, sharedLinks: lane.sharedLinks, keep, recovered: true });
        assert.deepEqual(problems, [], `after status (${label}): ${problems.join('; ')}`);

        await recoverAndCheck(lane, [was.current, was.previous, after], label);
      }
    }),
  );
});

void test('an I/O error at every failpoint: exit 1, a one-line error, the state as before (or the switch stands)', async (t) => {
  const base = tempDir(t);
  const pool = await lanes(base, LANES);
  const cases = SCENARIOS.filter((c) => c.scenario.core);
  let next = 0;
  await Promise.all(
    pool.map(async (lane) => {
      while (next < cases.length) {
        const { point: name, scenario } = cases[next++] as (typeof cases)[number];
        const was = before(lane);
        const result = await runCli(scenario.args(lane), { failpoints: `${name}=error:EIO` });
        const label = `EIO at ${name}`;
        assert.equal(result.code, 1, `${label}: exit ${result.code}\n${result.stderr}`);
        assert.match(result.stderr, /^error: .+/m, label);
        assert.doesNotMatch(result.stderr, /unexpected failure|\n\s+at /, `${label}: stack trace or bug report\n${result.stderr}`);
        const json = jsonOf<{ error?: { code: string; release?: string; live?: boolean } }>(result);
        assert.ok(json.error, `${label}: --json printed no error object`);
        // A script tells "live anyway" from "nothing changed" by fields, not by the message (the code is IO for both).
        assert.equal(json.error.live, scenario.switched ? true : undefined, `${label}: error.live`);
        if (!scenario.switched) {
          // Undone on the spot: nothing to recover later.
          const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, keep: was.releases, currentIn: was.current ? [was.current] : [], clean: true });
          assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
          assert.deepEqual(state.releases, was.releases, `${label}: releases changed`);
        } else {
          const after = checkAfterInterrupt(lane, was, label, allowedTargets(scenario, was));
          assert.notEqual(after, was.current, `${label}: the switch did not stand`);
          assert.equal(json.error.release, after, `${label}: error.release is not the live release`);
          assert.ok(!lockExists(lane.root), `${label}: the lock was not released`);
          if (scenario.mayGoTo === 'new') assert.match(result.stderr, /is live/, `${label}: the error does not say the release is live`);
          // Only a switched command leaves bookkeeping for the next one; the others were checked clean.
          await recoverAndCheck(lane, [was.current, was.previous], label);
        }
      }
    }),
  );
});

void test(`kill -9 at ${RANDOM_KILLS} random moments of a deploy: current always complete, the next deploy recovers`, async (t) => {
  const base = tempDir(t);
  const pool = await lanes(base, LANES);
  const window = await calibrate(pool[0] as Lane);
  t.diagnostic(`a deploy works ~${Math.round(window)} ms after it first touches .tmp; kills land uniformly in [0, 1.1] of that`);
  const tally = await runTrials(pool, RANDOM_KILLS, async (lane, index) => {
    const was = before(lane);
    const args = ['deploy', nextSource(lane), lane.root, '--json', '--keep', '0'];
    // A quarter without fsync: the switch then follows the copy more closely.
    if (index % 4 === 3) args.push('--no-fsync');
    const { result } = await interruptAtRandom(args, lane.root, 1.1 * window, (child) => child.kill('SIGKILL'), index);
    const label = `trial ${index}`;
    let outcome: string;
    if (result.code === 0) outcome = 'completed before the kill';
    else {
      assert.equal(result.signal, 'SIGKILL', `${label}: exit ${result.code}\n${result.stderr}`);
      outcome = `killed (${phaseOnDisk(lane.root)})`;
    }
    const after = checkAfterInterrupt(lane, was, `${label}, ${outcome}`);
    await recoverAndCheck(lane, [was.current, was.previous, after], `${label}, ${outcome}`);
    return outcome;
  });
  t.diagnostic(`${RANDOM_KILLS} kills: ${formatTally(tally)}`);
  const killed = [...tally.entries()].filter(([k]) => k.startsWith('killed')).reduce((n, [, v]) => n + v, 0);
  assert.ok(killed >= RANDOM_KILLS / 2, `only ${killed} of ${RANDOM_KILLS} deploys were killed mid-way: the window is off`);
});

void test('kill -9 at random moments of a rollback: current is the old or the previous release, never gone', async (t) => {
  const base = tempDir(t);
  const [lane] = await lanes(base, 1);
  assert.ok(lane);
  const trials = Math.max(8, Math.round(RANDOM_KILLS / 8));
  const window = await calibrate(lane, 1, (l) => ['rollback', l.root, '--quiet']);
  await mustSucceed(['deploy', nextSource(lane), lane.root, '--quiet', '--keep', '0']);
  const tally = await runTrials([lane], trials, async (l, index) => {
    const was = before(l);
    const { result } = await interruptAtRandom(['rollback', l.root, '--json'], l.root, 1.1 * window, (child) => child.kill('SIGKILL'), index);
    const outcome = result.code === 0 ? 'completed' : `killed (${phaseOnDisk(l.root)})`;
    if (result.code !== 0) assert.equal(result.signal, 'SIGKILL', `rollback trial ${index}: exit ${result.code}\n${result.stderr}`);
    checkAfterInterrupt(l, was, `rollback trial ${index}`, was.previous ? [was.previous] : []);
    await recoverAndCheck(l, [was.current, was.previous], `rollback trial ${index}`);
    return outcome;
  });
  t.diagnostic(`${trials} rollback kills: ${formatTally(tally)}`);
});

// A deploy killed while its health check or after-switch hooks ran had switched, so recovery
// finished it: recorded complete and verified, and a later rollback could land on it, while a
// signal at the same moment records it live but unverified (exit 130). Recovery now knows from
// the journal that something was still to run after the switch, and records it as a signal does.
void test('kill -9 during the health check or the after-switch hooks: recovery records the release live but unverified, never verified', async (t) => {
  const base = tempDir(t);
  const lane = await makeLane(base, 'lane');
  const config = (name: string, body: object): string => {
    const file = path.join(base, `${name}.json`);
    fs.writeFileSync(file, JSON.stringify({ keep: 0, ...body }));
    return file;
  };
  const cases: { label: string; config: string; failpoint: string; unverified?: RegExp }[] = [
    { label: 'health check', config: config('health', { healthCheck: { command: 'true' } }), failpoint: 'health-check', unverified: /its process ended before its health check finished/ },
    { label: 'after-switch hooks', config: config('hooks', { hooks: { afterSwitch: 'true' }, healthCheck: { command: 'true' } }), failpoint: 'after-switch-hook', unverified: /its process ended before its after-switch hooks and health check finished/ },
    // Controls: nothing to verify after the switch, or verified before the kill.
    { label: 'no check', config: config('plain', {}), failpoint: 'after-switch' },
    { label: 'a passed health check', config: config('health', { healthCheck: { command: 'true' } }), failpoint: 'log-written' },
  ];
  for (const c of cases) {
    const killed = await runCli(['deploy', nextSource(lane), lane.root, '--json', '--config', c.config], { failpoints: `${c.failpoint}=crash` });
    assert.equal(killed.signal, 'SIGKILL', `${c.label}: ${killed.stderr}`);
    const live = fs.readlinkSync(path.join(lane.root, 'current')).split('/').pop() as string;
    const st = await runCli(['status', lane.root]);
    assert.equal(st.code, 0, st.stderr);
    const record = JSON.parse(fs.readFileSync(path.join(lane.root, '.atomic-deploy', 'releases', `${live}.json`), 'utf8')) as { status: string; afterSwitchFailure?: string };
    assert.equal(record.status, 'complete', c.label);
    if (c.unverified) {
      assert.match(st.stdout, new RegExp(`recovered: finished recording deploy of ${live} \\(it had switched; its process ended before .* finished: live, unverified\\)`), c.label);
      assert.match(record.afterSwitchFailure ?? '', c.unverified, c.label);
      const rel = await runCli(['releases', lane.root]);
      assert.match(rel.stdout, new RegExp(`${live}.*active, unverified`), c.label);
    } else {
      assert.equal(record.afterSwitchFailure, undefined, `${c.label}: ${record.afterSwitchFailure}`);
    }
  }
  // A journal of an older version (no word of what was still to run) is read as before: recorded complete.
  const ids = fs.readdirSync(path.join(lane.root, 'releases')).sort();
  const live = fs.readlinkSync(path.join(lane.root, 'current')).split('/').pop() as string;
  fs.writeFileSync(path.join(lane.root, '.atomic-deploy', 'journal.json'), JSON.stringify({ v: 1, op: 'deploy', token: 't', pid: await deadPid(), startedAt: new Date().toISOString(), release: live, previous: ids.find((i) => i !== live) ?? null, phase: 'switched' }));
  const st = await runCli(['status', lane.root]);
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, new RegExp(`recovered: finished recording deploy of ${live} \\(it had switched\\)`));
});
