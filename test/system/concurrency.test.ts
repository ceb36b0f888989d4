// Concurrency: many deploys on one root serialize through the lock; stale, foreign, bash-format
// and ownerless locks are judged right; two contenders for one stale lock cannot both win.
// test-runner: alone (deploys sleep inside the lock on purpose, and their order is timed)
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { compareReleaseIds } from '../../src/plan/release-id.ts';
import { before, makeLane, nextSource, recoverAndCheck } from '../harness/campaign.ts';
import { jsonOf, runCli, spawnCli, tempDir, type CliResult } from '../harness/cli.ts';
import { asUser, lockSnapshot, requireRoot, requireTools, runWrapped, startTicks, writeOwnerLock } from '../harness/faults.ts';
import { checkRoot, deadPid, lockExists } from '../harness/invariants.ts';

const N = 16;

interface Timed extends CliResult {
  pid: number;
  startedAt: number;
  endedAt: number;
}

interface DeployJson {
  release: string;
  previous: string | null;
  error?: { code: string };
}

async function timed(args: string[], failpoints?: string): Promise<Timed> {
  const startedAt = performance.now();
  const { child, done } = spawnCli(args, { failpoints, timeoutMs: 120_000 });
  const result = await done;
  return { ...result, pid: child.pid ?? 0, startedAt, endedAt: performance.now() };
}

/**
 * Watches `.tmp` while deploys run and records the most staging copies and temp links that
 * existed at once: two deploys inside the critical section would show two.
 */
function watchCriticalSection(root: string): { stop(): Promise<number> } {
  let most = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const names = await fs.promises.readdir(path.join(root, '.tmp')).catch(() => [] as string[]);
      most = Math.max(most, names.filter((n) => n.startsWith('stage.')).length, names.filter((n) => n.startsWith('current.')).length);
      await sleep(1);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return most;
    },
  };
}

/** The deploys' `previous` fields must chain into one line: each one saw the one before it live. */
function assertChain(start: string | null, results: readonly DeployJson[]): string[] {
  const byPrevious = new Map<string | null, DeployJson>();
  for (const r of results) {
    assert.ok(!byPrevious.has(r.previous), `two deploys both replaced ${r.previous}: they overlapped`);
    byPrevious.set(r.previous, r);
  }
  const order: string[] = [];
  for (let at = byPrevious.get(start); at; at = byPrevious.get(at.release)) order.push(at.release);
  assert.equal(order.length, results.length, `the previous links do not form one chain from ${start}: ${JSON.stringify(results)}`);
  for (let i = 1; i < order.length; i++) {
    assert.ok(compareReleaseIds(order[i - 1] as string, order[i] as string) < 0, `ids out of deploy order: ${order[i - 1]} then ${order[i]}`);
  }
  return order;
}

void test(`${N} deploys at once without --wait: each succeeds or exits 3 at once; the state is consistent`, async (t) => {
  const lane = await makeLane(tempDir(t), 'lane');
  const was = before(lane);
  const sources = Array.from({ length: N }, () => nextSource(lane));
  // The holder keeps the lock long enough that every contender finds it held.
  const results = await Promise.all(sources.map((s) => timed(['deploy', s, lane.root, '--json'], 'lock-taken=sleep:8000')));
  const ok = results.filter((r) => r.code === 0);
  const locked = results.filter((r) => r.code === 3);
  t.diagnostic(`${ok.length} succeeded, ${locked.length} exited 3`);
  assert.equal(ok.length + locked.length, N, results.map((r) => `${r.code}: ${r.stderr}`).join('\n'));
  assert.ok(ok.length >= 1);
  for (const r of locked) {
    assert.match(r.stderr, /^error: .* is locked by pid \d+/m);
    assert.match(r.stderr, /^hint: /m);
    const error = jsonOf<{ error?: { code: string; lock?: { pid: number } } }>(r).error;
    assert.equal(error?.code, 'LOCKED');
    // It failed while the holder it names still held the lock: it did not wait for it. (Under
    // heavy load a late starter may find the lock free and win a second round: also fine.)
    const holder = ok.find((w) => w.pid === error?.lock?.pid);
    assert.ok(holder, `exit 3 names pid ${error?.lock?.pid}, none of the deploys that succeeded`);
    assert.ok(r.endedAt < holder.endedAt, 'a deploy that exited 3 waited for the holder instead of failing at once');
  }
  const chain = assertChain(was.current, ok.map((r) => jsonOf<DeployJson>(r)));
  const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, keep: was.releases, clean: true });
  assert.deepEqual(problems, []);
  assert.equal(state.current, chain[chain.length - 1]);
});

void test(`${N} deploys at once with --wait 60 all succeed, one at a time, ids distinct and in deploy order`, async (t) => {
  const lane = await makeLane(tempDir(t), 'lane');
  const was = before(lane);
  const sources = Array.from({ length: N }, () => nextSource(lane));
  const watch = watchCriticalSection(lane.root);
  // Sleeps inside the critical section widen any overlap for the watcher to see.
  const results = await Promise.all(sources.map((s) => timed(['deploy', s, lane.root, '--json', '--wait', '60', '--keep', '0'], 'release-dir-made=sleep:40,temp-link-made=sleep:40')));
  const most = await watch.stop();
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  const json = results.map((r) => jsonOf<DeployJson>(r));
  assert.equal(new Set(json.map((j) => j.release)).size, N, 'two deploys got the same id');
  const chain = assertChain(was.current, json);
  assert.equal(most, 1, `${most} deploys were inside the critical section at once`);
  const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, keep: was.releases, clean: true });
  assert.deepEqual(problems, []);
  assert.equal(state.current, chain[chain.length - 1]);
  const seconds = new Set(chain.map((id) => id.slice(0, 14)));
  t.diagnostic(`${N} deploys over ${seconds.size} distinct seconds: ${chain.join(' ')}`);
});

void test('two deploys in the same second get distinct ids that sort in deploy order', async (t) => {
  const lane = await makeLane(tempDir(t), 'lane');
  for (let attempt = 0; attempt < 40; attempt++) {
    const a = jsonOf<DeployJson>(await runCli(['deploy', nextSource(lane), lane.root, '--json', '--no-fsync']));
    const b = jsonOf<DeployJson>(await runCli(['deploy', nextSource(lane), lane.root, '--json', '--no-fsync']));
    assert.notEqual(a.release, b.release);
    assert.equal(b.previous, a.release);
    assert.ok(compareReleaseIds(a.release, b.release) < 0, `${a.release} then ${b.release}`);
    assert.ok([a.release, b.release].sort().indexOf(a.release) === 0, 'plain sort disagrees with deploy order');
    if (a.release.slice(0, 14) === b.release.slice(0, 14)) {
      assert.match(b.release, /^\d{14}-\d{3}$/);
      t.diagnostic(`same second: ${a.release} then ${b.release}`);
      return;
    }
  }
  assert.fail('no two deploys landed in the same second in 40 attempts');
});

void test('deploys racing rollbacks (--wait): every command completes or refuses cleanly; the state is consistent', async (t) => {
  const lane = await makeLane(tempDir(t), 'lane');
  const was = before(lane);
  const commands = Array.from({ length: 12 }, (_, i) =>
    i % 2 === 0 ? ['deploy', nextSource(lane), lane.root, '--json', '--wait', '60', '--keep', '0'] : ['rollback', lane.root, '--json', '--wait', '60'],
  );
  const watch = watchCriticalSection(lane.root);
  const results = await Promise.all(commands.map((c) => timed(c, 'temp-link-made=sleep:30,rollback-temp-link-made=sleep:30')));
  const most = await watch.stop();
  results.forEach((r, i) => {
    if (commands[i]?.[0] === 'deploy') assert.equal(r.code, 0, r.stderr);
    // A rollback may find nothing older to go back to once others rolled back: a clean refusal.
    else assert.ok(r.code === 0 || (r.code === 2 && jsonOf<DeployJson>(r).error?.code === 'NO_PREVIOUS_RELEASE'), `rollback: ${r.code} ${r.stderr}`);
  });
  assert.equal(most, 1);
  const deployed = results.filter((r, i) => commands[i]?.[0] === 'deploy').map((r) => jsonOf<DeployJson>(r).release);
  const { problems } = checkRoot(lane.root, { sources: lane.manifests, keep: [...was.releases, ...deployed], clean: true });
  assert.deepEqual(problems, []);
  t.diagnostic(`rollbacks: ${results.filter((r, i) => commands[i]?.[0] === 'rollback').map((r) => r.code).join(' ')}`);
});

void test('deploys racing prune (--wait): prune never takes current or its rollback target; every release left is complete', async (t) => {
  const lane = await makeLane(tempDir(t), 'lane');
  for (let i = 0; i < 4; i++) assert.equal((await runCli(['deploy', nextSource(lane), lane.root, '--quiet'])).code, 0);
  const commands = Array.from({ length: 10 }, (_, i) =>
    i % 2 === 0 ? ['deploy', nextSource(lane), lane.root, '--json', '--wait', '60'] : ['prune', lane.root, '--keep', '1', '--json', '--wait', '60'],
  );
  const watch = watchCriticalSection(lane.root);
  const results = await Promise.all(commands.map((c) => timed(c, 'temp-link-made=sleep:30')));
  assert.equal(await watch.stop(), 1);
  results.forEach((r, i) => assert.equal(r.code, 0, `${commands[i]?.[0]}: ${r.stderr}`));
  const deployed = results.filter((_, i) => commands[i]?.[0] === 'deploy').map((r) => jsonOf<DeployJson>(r));
  // Whichever order they ran in, the last deploy is live and the one it replaced is still there.
  const { problems, state } = checkRoot(lane.root, { sources: lane.manifests, clean: true });
  assert.deepEqual(problems, []);
  const live = deployed.find((d) => d.release === state.current);
  assert.ok(live, `current ${state.current} is none of the racing deploys`);
  if (live.previous) assert.ok(state.releases.includes(live.previous), `prune removed the rollback target ${live.previous}`);
  t.diagnostic(`${state.releases.length} releases left: ${state.releases.join(' ')}`);
});

void test('a stale lock found by several deploys at once: exactly one wins per round', async (t) => {
  const lane = await makeLane(tempDir(t), 'lane');
  for (let round = 0; round < 2; round++) {
    const was = before(lane);
    writeOwnerLock(lane.root, { pid: await deadPid() });
    const results = await Promise.all(
      Array.from({ length: 6 }, () => timed(['deploy', nextSource(lane), lane.root, '--json'], 'lock-taken=sleep:3000')),
    );
    const all = results.map((r) => `${r.code} ${r.stderr}`).join('\n');
    const winners = results.filter((r) => r.code === 0);
    // One of them moves the stale lock aside (the one that then gets the lock may be another:
    // the slot is free for whoever renames first); never two.
    const takeovers = results.filter((r) => /took over a stale lock/.test(r.stderr));
    assert.ok(takeovers.length <= 1, `round ${round}: two contenders took over one stale lock\n${all}`);
    assert.ok(winners.length >= 1, `round ${round}: nobody got the lock\n${all}`);
    // The rest found a live winner holding it. (Under heavy load a late starter may find the lock
    // free again after the winner and deploy normally: the chain shows they never overlapped.)
    for (const r of results.filter((x) => x.code !== 0)) {
      assert.equal(r.code, 3, `round ${round}: ${all}`);
      const holder = jsonOf<{ error?: { lock?: { pid: number } } }>(r).error?.lock?.pid;
      assert.ok(winners.some((w) => w.pid === holder), `round ${round}: exit 3 names pid ${holder}, not a winner\n${all}`);
    }
    assertChain(was.current, winners.map((r) => jsonOf<DeployJson>(r)));
    t.diagnostic(`round ${round}: ${winners.length} winner(s), ${takeovers.length} takeover message(s)`);
    const { problems } = checkRoot(lane.root, { sources: lane.manifests, clean: true });
    assert.deepEqual(problems, [], `round ${round}`);
  }
  // With --wait every contender gets its turn, one after another.
  const was = before(lane);
  writeOwnerLock(lane.root, { pid: await deadPid() });
  const watch = watchCriticalSection(lane.root);
  const results = await Promise.all(
    Array.from({ length: 6 }, () => timed(['deploy', nextSource(lane), lane.root, '--json', '--wait', '60'], 'release-dir-made=sleep:40,temp-link-made=sleep:40')),
  );
  assert.equal(await watch.stop(), 1);
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  assertChain(was.current, results.map((r) => jsonOf<DeployJson>(r)));
});

function startAs(user: string, command: string[]): ChildProcess {
  const child = spawn(asUser(user)[0] as string, [...asUser(user).slice(1), ...command], { stdio: 'ignore' });
  return child;
}

async function pidOf(child: ChildProcess): Promise<number> {
  assert.ok(child.pid);
  // setpriv execs the command: wait until the pid runs it, so its start time is the holder's.
  for (let i = 0; i < 200; i++) {
    if (fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').startsWith('sleep')) return child.pid;
    await sleep(10);
  }
  return child.pid;
}

void test('a lock held by a live process of another user (EPERM) is never taken over; unlock refuses without --force', async (t) => {
  requireRoot();
  requireTools('setpriv');
  const base = tempDir(t);
  fs.chmodSync(base, 0o755);
  const lane = await makeLane(base, 'lane');
  chownTree(path.dirname(lane.root), 'daemon');
  const holder = startAs('nobody', ['sleep', '120']);
  t.after(() => holder.kill('SIGKILL'));
  const pid = await pidOf(holder);
  writeOwnerLock(lane.root, { pid, user: 'nobody', startTime: startTicks(pid) });
  chownTree(path.join(lane.root, '.deploy.lock'), 'nobody');
  const lockBefore = lockSnapshot(lane.root);
  const rootBefore = checkRoot(lane.root, { sources: lane.manifests }).state;

  // As a third user, kill(pid, 0) fails with EPERM: alive, not ours.
  const asDaemon = await runWrapped(['deploy', nextSource(lane), lane.root, '--json'], { prefix: asUser('daemon') });
  assert.equal(asDaemon.code, 3, asDaemon.stderr);
  assert.match(asDaemon.stderr, /locked by pid \d+ of nobody@/);
  const unlockAsDaemon = await runWrapped(['unlock', lane.root], { prefix: asUser('daemon') });
  assert.equal(unlockAsDaemon.code, 3, unlockAsDaemon.stderr);
  assert.match(unlockAsDaemon.stderr, /^hint: .*unlock .* --force/m);
  // As root the process is simply alive.
  const asRoot = await runCli(['deploy', nextSource(lane), lane.root, '--json']);
  assert.equal(asRoot.code, 3, asRoot.stderr);
  const unlockAsRoot = await runCli(['unlock', lane.root]);
  assert.equal(unlockAsRoot.code, 3, unlockAsRoot.stderr);
  assert.equal(lockSnapshot(lane.root), lockBefore, 'the lock was touched');
  assert.deepEqual(checkRoot(lane.root, { sources: lane.manifests }).state, rootBefore);
});

function chownTree(dir: string, user: string): void {
  fs.chmodSync(dir, 0o755);
  execFileSync('chown', ['-R', `${user}:`, dir]);
}

void test('a bash-format lock (.deploy.lock/pid) is understood: a dead pid is taken over, a live one is held', async (t) => {
  const lane = await makeLane(tempDir(t), 'lane');
  const lock = path.join(lane.root, '.deploy.lock');
  fs.mkdirSync(lock);
  fs.writeFileSync(path.join(lock, 'pid'), `${await deadPid()}\n`);
  const taken = await runCli(['deploy', nextSource(lane), lane.root, '--json']);
  assert.equal(taken.code, 0, taken.stderr);
  assert.match(taken.stderr, /took over a stale lock/);
  assert.ok(!lockExists(lane.root));

  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => sleeper.kill('SIGKILL'));
  fs.mkdirSync(lock);
  fs.writeFileSync(path.join(lock, 'pid'), `${sleeper.pid}\n`);
  const held = await runCli(['deploy', nextSource(lane), lane.root, '--json']);
  assert.equal(held.code, 3, held.stderr);
  assert.equal(fs.readFileSync(path.join(lock, 'pid'), 'utf8'), `${sleeper.pid}\n`);
  fs.rmSync(lock, { recursive: true });
});

void test('an empty .deploy.lock/ is held for a grace period, then taken over', async (t) => {
  const lane = await makeLane(tempDir(t), 'lane');
  const lock = path.join(lane.root, '.deploy.lock');
  fs.mkdirSync(lock);
  const fresh = await runCli(['deploy', nextSource(lane), lane.root, '--json']);
  assert.equal(fresh.code, 3, `a lock made moments ago may still be filled in: ${fresh.stderr}`);
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(lock, old, old);
  const taken = await runCli(['deploy', nextSource(lane), lane.root, '--json']);
  assert.equal(taken.code, 0, taken.stderr);
  assert.ok(!lockExists(lane.root));
});

void test('garbage in owner.json is an ownerless lock: held while fresh, taken over when old', async (t) => {
  const lane = await makeLane(tempDir(t), 'lane');
  const lock = path.join(lane.root, '.deploy.lock');
  fs.mkdirSync(lock);
  fs.writeFileSync(path.join(lock, 'owner.json'), '{"pid": "not a number", garbage');
  assert.equal((await runCli(['deploy', nextSource(lane), lane.root])).code, 3);
  const old = new Date(Date.now() - 60_000);
  fs.utimesSync(lock, old, old);
  const taken = await runCli(['deploy', nextSource(lane), lane.root]);
  assert.equal(taken.code, 0, taken.stderr);
  assert.ok(!lockExists(lane.root));
});

void test('pid reuse: a live pid with another start time does not hold the lock', async (t) => {
  const lane = await makeLane(tempDir(t), 'lane');
  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => sleeper.kill('SIGKILL'));
  assert.ok(sleeper.pid);
  const real = startTicks(sleeper.pid);
  writeOwnerLock(lane.root, { pid: sleeper.pid, startTime: String(Number(real) - 1000) });
  const taken = await runCli(['deploy', nextSource(lane), lane.root]);
  assert.equal(taken.code, 0, taken.stderr);
  assert.match(taken.stderr, /now belongs to another process/);
  // The same pid with its real start time holds the lock.
  writeOwnerLock(lane.root, { pid: sleeper.pid, startTime: real });
  assert.equal((await runCli(['deploy', nextSource(lane), lane.root])).code, 3);
  fs.rmSync(path.join(lane.root, '.deploy.lock'), { recursive: true });
  await recoverAndCheck(lane, [], 'after pid reuse');
});


/**
 * The takeover of a stale lock must not depend on timing. Contender B judges a lock stale, then
 * stalls (strace delays its renames of the lock) while A takes the lock over, deploys and
 * releases, and C takes the lock. When B wakes up it must not move C's lock aside: if it does,
 * the lock path stays empty until B puts it back, and D walks in while C holds the lock.
 */
void test('a contender that stalls after judging a lock stale never moves a newer lock aside', async (t) => {
  requireTools('strace');
  const lane = await makeLane(tempDir(t), 'lane');
  const lockDir = path.join(lane.root, '.deploy.lock');
  const tmp = path.join(lane.root, '.tmp');
  const token = 'stalled-takeover';
  writeOwnerLock(lane.root, { pid: await deadPid(), token });
  // Long enough for A to deploy and C to take the lock within it, even on a loaded machine.
  const stall = 6000;
  const draftsBefore = new Set(fs.readdirSync(tmp));
  // strace -P matches a rename by its first path: B's move of the lock aside and its move back.
  const b = runWrapped(['deploy', nextSource(lane), lane.root, '--json', '--wait', '60'], {
    prefix: ['strace', '-f', '-o', '/dev/null', '-P', lockDir, '-P', path.join(tmp, `stale-lock.${token}`), '-e', `inject=rename:delay_enter=${stall * 1000}`],
  });
  // B's lock draft appears just before it finds the lock, judges it stale and stalls moving it.
  while (!fs.readdirSync(tmp).some((n) => n.startsWith('lock.') && !draftsBefore.has(n))) await sleep(5);
  const t0 = performance.now();
  await sleep(200);
  const a = await runCli(['deploy', nextSource(lane), lane.root, '--json']);
  assert.equal(a.code, 0, `A: ${a.stderr}`);
  assert.match(a.stderr, /took over a stale lock/);
  const c = spawnCliTimed(['deploy', nextSource(lane), lane.root, '--json'], 'lock-taken=sleep:9000');
  const owner = path.join(lockDir, 'owner.json');
  while (!(fs.existsSync(owner) && fs.readFileSync(owner, 'utf8').includes(`"pid": ${c.pid},`))) await sleep(2);
  const cHeldAt = performance.now() - t0;
  // While C sleeps inside (9 s from cHeldAt), past B's wake-up, the lock path must never vanish.
  let vanished = false;
  const watchUntil = t0 + Math.min(stall + 2000, cHeldAt + 8000);
  while (c.running() && !vanished && performance.now() < watchUntil) {
    vanished = !fs.existsSync(lockDir);
    await sleep(1);
  }
  const d = vanished ? await runCli(['deploy', nextSource(lane), lane.root, '--json']) : undefined;
  const cResult = await c.done;
  t.diagnostic(`C held the lock ${Math.round(cHeldAt)} ms into B's ${stall} ms stall; the lock vanished under C: ${vanished}; D exited ${d?.code ?? '-'}`);
  assert.ok(cHeldAt < stall, 'the scenario did not line up (C took the lock after B woke up): the machine is too slow for this stall');
  assert.equal(cResult.code, 0, cResult.stderr);
  assert.ok(!vanished, `B moved C's live lock aside${d?.code === 0 ? ', and D deployed while C held the lock' : ''}`);
  assert.equal((await b).code, 0);
  const { problems } = checkRoot(lane.root, { sources: lane.manifests, clean: true });
  assert.deepEqual(problems, []);
});

function spawnCliTimed(args: string[], failpoints: string): { pid: number; done: Promise<CliResult>; running(): boolean } {
  const { child, done } = spawnCli(args, { failpoints });
  let finished = false;
  void done.then(() => (finished = true));
  assert.ok(child.pid);
  return { pid: child.pid, done, running: () => !finished };
}
