// Crash campaign: kill -9 at every failpoint of deploy and rollback and at random moments, then
// check that current still resolves to a complete release and that the next command recovers.
// RELIABILITY_TRIALS sets the number of random-moment kills (CI default below; the long run 1000).
import assert from 'node:assert/strict';
import fs from 'node:fs';
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

const RANDOM_KILLS = trialCount(64);

/** How each failpoint is reached, and whether `current` has switched once it is. */
interface Scenario {
  args: (lane: Lane) => string[];
  /** Prepares the root (e.g. plants a stale lock) before the command. */
  setup?: (lane: Lane) => Promise<void>;
  /** The release current may point to after a crash there, besides the old one. */
  mayGoTo: 'new' | 'previous' | 'none';
  /** Past the rename of current: an error there leaves the new release live. */
  switched: boolean;
  /** Core points must be reached; the others belong to features that may not have landed yet. */
  core: boolean;
}

const deployArgs = (lane: Lane): string[] => ['deploy', nextSource(lane), lane.root, '--json'];
const deployAt = (switched: boolean, core = true): Scenario => ({ args: deployArgs, mayGoTo: 'new', switched, core });
const rollbackAt = (switched: boolean): Scenario => ({ args: (lane) => ['rollback', lane.root, '--json'], mayGoTo: 'previous', switched, core: true });

async function plantStaleLock(lane: Lane): Promise<void> {
  const lock = path.join(lane.root, '.deploy.lock');
  fs.mkdirSync(lock);
  fs.writeFileSync(path.join(lock, 'owner.json'), JSON.stringify({ pid: await deadPid(), host: (await import('node:os')).hostname(), user: 'root', since: new Date().toISOString(), token: 'crashtest' }));
}

// Lifecycle scenarios: update their arguments when the feature's CLI lands.
const SCENARIOS: Record<(typeof FAILPOINTS)[number], Scenario> = {
  'lock-taken': deployAt(false),
  'journal-written': deployAt(false),
  'release-dir-made': deployAt(false),
  'copy-half': deployAt(false),
  'copy-done': deployAt(false),
  'before-fsync': deployAt(false),
  'fsync-done': deployAt(false),
  'release-ready': deployAt(false),
  'shared-linked': { ...deployAt(false, false), args: (lane) => [...deployArgs(lane), '--shared', 'data', '--shared-create'] },
  'before-switch-hook': { ...deployAt(false, false), args: (lane) => [...deployArgs(lane), '--before-switch', 'true'] },
  'temp-link-made': deployAt(false),
  'after-switch': deployAt(true),
  'after-switch-hook': { ...deployAt(true, false), args: (lane) => [...deployArgs(lane), '--after-switch', 'true'] },
  'health-check': { ...deployAt(true, false), args: (lane) => [...deployArgs(lane), '--health-check', 'true'] },
  'log-written': deployAt(true),
  'journal-cleared': deployAt(true),
  'rollback-temp-link-made': rollbackAt(false),
  'rollback-after-switch': rollbackAt(true),
  'prune-rename': { args: (lane) => ['prune', lane.root, '--keep', '1', '--json'], mayGoTo: 'none', switched: false, core: false },
  'prune-delete': { args: (lane) => ['prune', lane.root, '--keep', '1', '--json'], mayGoTo: 'none', switched: false, core: false },
  'unlock-rename': { args: (lane) => ['unlock', lane.root, '--json'], setup: plantStaleLock, mayGoTo: 'none', switched: false, core: true },
};

function allowedTargets(scenario: Scenario, lane: Lane, was: ReturnType<typeof before>): string[] | undefined {
  if (scenario.mayGoTo === 'new') return undefined;
  if (scenario.mayGoTo === 'previous') return was.previous ? [was.previous] : [];
  void lane;
  return [];
}

async function lanes(base: string, n: number): Promise<Lane[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => makeLane(base, `lane${i}`)));
}

void test('kill -9 at every failpoint: current stays complete, status and the next deploy recover', async (t) => {
  const base = tempDir(t);
  const pool = await lanes(base, LANES);
  const names = [...FAILPOINTS];
  const notReached: string[] = [];
  let next = 0;
  await Promise.all(
    pool.map(async (lane) => {
      while (next < names.length) {
        const name = names[next++] as (typeof FAILPOINTS)[number];
        const scenario = SCENARIOS[name];
        const was = before(lane);
        await scenario.setup?.(lane);
        const result = await runCli(scenario.args(lane), { failpoints: `${name}=crash` });
        if (result.signal !== 'SIGKILL') {
          assert.ok(!scenario.core, `failpoint ${name} was not reached (exit ${result.code}):\n${result.stderr}`);
          notReached.push(`${name} (exit ${result.code})`);
          // Whatever the command did instead, the root must be usable.
          if (lockExists(lane.root)) fs.rmSync(path.join(lane.root, '.deploy.lock'), { recursive: true });
          await recoverAndCheck(lane, [was.current, was.previous], name);
          continue;
        }
        const after = checkAfterInterrupt(lane, was, `crash at ${name}`, allowedTargets(scenario, lane, was));
        if (scenario.switched) assert.notEqual(after, was.current, `crash at ${name}: the switch did not stand`);

        // status recovers what the crash left (it takes over the dead holder's lock to do so).
        const st = await runCli(['status', lane.root, '--json']);
        assert.equal(st.code, 0, st.stderr);
        const report = jsonOf<{ current: string; lock: { state: string } | null }>(st);
        assert.equal(report.current, after, `status after a crash at ${name}`);
        assert.ok(report.lock === null || report.lock.state === 'stale', `status reports a live lock after a crash at ${name}`);
        assert.deepEqual(leftovers(lane.root), [], `status left leftovers after a crash at ${name}`);
        const { problems } = checkRoot(lane.root, { sources: lane.manifests, keep: [was.current, was.previous].filter((x): x is string => x !== null) });
        assert.deepEqual(problems, [], `after status (crash at ${name}): ${problems.join('; ')}`);

        await recoverAndCheck(lane, [was.current, was.previous, after], `crash at ${name}`);
      }
    }),
  );
  for (const name of notReached) await t.test(`failpoint ${name}`, { todo: 'not reached yet: its feature has not landed' }, () => undefined);
});

void test('an I/O error at every failpoint: exit 1, a one-line error, the state as before (or the switch stands)', async (t) => {
  const base = tempDir(t);
  const pool = await lanes(base, LANES);
  const names = FAILPOINTS.filter((n) => SCENARIOS[n].core && n !== 'unlock-rename');
  let next = 0;
  await Promise.all(
    pool.map(async (lane) => {
      while (next < names.length) {
        const name = names[next++] as (typeof FAILPOINTS)[number];
        const scenario = SCENARIOS[name];
        const was = before(lane);
        const result = await runCli(scenario.args(lane), { failpoints: `${name}=error:EIO` });
        const label = `EIO at ${name}`;
        assert.equal(result.code, 1, `${label}: exit ${result.code}\n${result.stderr}`);
        assert.match(result.stderr, /^error: .+/m, label);
        assert.doesNotMatch(result.stderr, /unexpected failure|\n\s+at /, `${label}: stack trace or bug report\n${result.stderr}`);
        const json = jsonOf<{ error?: { code: string } }>(result);
        assert.ok(json.error, `${label}: --json printed no error object`);
        if (!scenario.switched) {
          // Undone on the spot: nothing to recover later.
          const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, keep: was.releases, currentIn: was.current ? [was.current] : [], clean: true });
          assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
          assert.deepEqual(state.releases, was.releases, `${label}: releases changed`);
        } else {
          const after = checkAfterInterrupt(lane, was, label, allowedTargets(scenario, lane, was));
          assert.notEqual(after, was.current, `${label}: the switch did not stand`);
          assert.ok(!lockExists(lane.root), `${label}: the lock was not released`);
          if (scenario.mayGoTo === 'new') assert.match(result.stderr, /is live/, `${label}: the error does not say the release is live`);
        }
        await recoverAndCheck(lane, [was.current, was.previous], label);
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
    const args = ['deploy', nextSource(lane), lane.root, '--json'];
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
  await mustSucceed(['deploy', nextSource(lane), lane.root, '--quiet']);
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
