// A terminal's Ctrl-C goes to the whole foreground process group: the CLI and every ssh and rsync
// it started. The fleet engine must still be the one that decides what happens (undo before the
// switch, switch back after it), over connections the signal did not cut: run here as a shell runs
// a job (its own process group), signalled as the terminal signals it (kill -INT -<pgid>).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { rootNamer, startHolder, currentOf as current } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

interface FleetJson {
  release?: string;
}

const { fleet, env, hostArgs, cli } = fleetSuite(3, { timeoutMs: 120_000 });
const newRoot = rootNamer('ts');

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-ctrl-c-'), { 'index.html': `<h1>${version}</h1>\n`, 'app.js': `run("${version}");\n` });
}

function leftovers(dir: string): string[] {
  const tmp = path.join(dir, '.tmp');
  const left = fs.existsSync(tmp) ? fs.readdirSync(tmp).filter((n) => /^(current|stage|trash|link|lock)\./.test(n)) : [];
  if (fs.existsSync(path.join(dir, '.deploy.lock'))) left.push('.deploy.lock');
  if (fs.existsSync(path.join(dir, '.atomic-deploy', 'journal.json'))) left.push('.atomic-deploy/journal.json');
  return left;
}

/** Starts a fleet command in its own process group; once its progress lines (stdout) show `ready` (or `ready()` holds), signals the whole group. `tookMs`: from the signal to its end. */
async function ctrlCWhen(args: string[], ready: RegExp | (() => boolean), failpoints?: string, again?: RegExp): Promise<{ code: number | null; stdout: string; stderr: string; said: string; tookMs: number; againWhileRunning?: boolean }> {
  const run = spawnCli(args, { env, group: true, timeoutMs: 120_000, ...(failpoints ? { failpoints } : {}) });
  let said = '';
  run.child.stdout?.on('data', (d: Buffer) => (said += d.toString()));
  const deadline = Date.now() + 60_000;
  const reached = (): boolean => (typeof ready === 'function' ? ready() : ready.test(said));
  while (!reached()) {
    if (run.child.exitCode !== null || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(reached(), `the command reached the point to interrupt: ${said}`);
  // As the terminal does: one SIGINT to every process of the foreground job.
  process.kill(-(run.child.pid as number), 'SIGINT');
  const sent = performance.now();
  // A second Ctrl-C (the impatient user) once the progress lines say `again`: while the first one's undo runs.
  let againWhileRunning: boolean | undefined;
  if (again !== undefined) {
    while (!again.test(said) && run.child.exitCode === null && run.child.signalCode === null) await new Promise((r) => setTimeout(r, 5));
    againWhileRunning = run.child.exitCode === null && run.child.signalCode === null;
    if (againWhileRunning) process.kill(-(run.child.pid as number), 'SIGINT');
  }
  const r = await run.done;
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, said, tookMs: performance.now() - sent, ...(again === undefined ? {} : { againWhileRunning }) };
}

/** Interrupted before the switch: said so, and every host as it was (on `v1` alone, no lock, journal or leftover). */
function assertUndone(r: { stdout: string; stderr: string }, on: (h: (typeof fleet.hosts)[number]) => string, v1: string): void {
  assert.match(r.stderr, /error: interrupted by SIGINT before the switch; no host switched and the deploy was undone/);
  for (const h of fleet.hosts) {
    assert.equal(current(on(h)), v1, `${h.alias} did not move`);
    assert.deepEqual(leftovers(on(h)), [], `${h.alias}: the undo ran there under its lock and released it\n${r.stderr}\n${r.stdout}`);
    assert.deepEqual(
      fs.readdirSync(path.join(on(h), 'releases')).filter((n) => !n.startsWith('.')),
      [v1],
      `${h.alias}: only the release it had`,
    );
  }
  assert.doesNotMatch(r.stdout + r.stderr, /connection lost|may remain|could not clean up|rsync error/);
}

void describe("a terminal's Ctrl-C (SIGINT to the whole process group) during a fleet deploy", () => {
  void test('in a wave pause: the first wave is switched back, every lock released, exit 130, and the message is true', async (t) => {
    const { root, on } = newRoot('wave');
    const v1 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release;
    assert.ok(v1 !== undefined);
    // Human output: its progress lines say when the pause has begun (--json prints none).
    const r = await ctrlCWhen(['deploy', site(t, 'v2'), root, ...hostArgs, '--waves', '1,100%', '--wave-pause', '60'], /pausing 60 s before wave 2/);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /error: interrupted by SIGINT during the rollout; every switched host was switched back/);
    for (const h of fleet.hosts) {
      assert.equal(current(on(h)), v1, `${h.alias} is on the release it had`);
      assert.deepEqual(leftovers(on(h)), [], `${h.alias}: no lock, journal or temporary state left`);
    }
    assert.doesNotMatch(r.stdout + r.stderr, /connection lost|may remain|could not clean up|unknown/);
    // The table is what the hosts hold: the first wave went back, the others never moved.
    assert.match(r.stdout, new RegExp(`^host1 +switched-back +${v1} `, 'm'));
    // The waves of a stopped rollout are shown too, as a finished one's are.
    assert.match(r.stdout, /^wave 1\/2 +ok +1 host .*\(host1\)$/m);
    assert.match(r.stdout, /^wave 2\/2 +skipped +2 hosts +\(host2, host3\)$/m);
    for (const alias of ['host2', 'host3']) assert.match(r.stdout, new RegExp(`^${alias} +unchanged +${v1} `, 'm'));
  });

  void test('while the hosts hold their prepared release (before the switch): the deploy is undone on every host, exit 130', async (t) => {
    const { root, on } = newRoot('prepared');
    const v1 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release;
    assert.ok(v1 !== undefined);
    // Each host stops 5 s after its copy (its ssh sessions, lock holder and connection all open).
    const r = await ctrlCWhen(['deploy', site(t, 'v2'), root, ...hostArgs], /host\d: copied/, 'fleet-copied=sleep:5000');
    assert.equal(r.code, 130, r.stderr);
    assertUndone(r, on, v1);
  });

  // docs/fleet.md: a second signal while the hosts are undone changes nothing (stopping the way back
  // halfway would leave hosts behind); the first signal's undo finishes on every host.
  void test('a second Ctrl-C while the deploy is undone on the hosts: the undo still finishes everywhere, exit 130', async (t) => {
    const { root, on } = newRoot('twice');
    const v1 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release;
    assert.ok(v1 !== undefined);
    // 3,000 more files: each host's undo has a release to delete, which keeps it running for the second signal.
    const v2 = site(t, 'v2');
    for (let i = 0; i < 30; i++) writeTree(path.join(v2, `d${i}`), Object.fromEntries(Array.from({ length: 100 }, (_, j) => [`f${j}.txt`, `${i} ${j}\n`])));
    const r = await ctrlCWhen(['deploy', v2, root, ...hostArgs], /host\d: copied/, 'fleet-copied=sleep:5000', /cleaning up/);
    assert.equal(r.againWhileRunning, true, 'the second signal came while the command still ran');
    assert.equal(r.code, 130, r.stderr);
    assertUndone(r, on, v1);
  });

  // As a signal does locally: the before-switch hook is ended at once on every host, and the deploy
  // is undone. (The hosts' hooks used to run to their end, here 87 s, a second signal changing nothing.)
  void test("during the hosts' before-switch hooks: every hook is ended, the deploy undone on every host, exit 130", async (t) => {
    const { root, on } = newRoot('before');
    const v1 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release;
    assert.ok(v1 !== undefined);
    // Each host's hook writes its pid where the release is made: found by its release directory.
    const pids = (): number[] =>
      fleet.hosts.flatMap((h) => {
        const rel = path.join(on(h), 'releases');
        return fs.readdirSync(rel).flatMap((n) => {
          const f = path.join(rel, n, 'hook.pid');
          return fs.existsSync(f) && fs.readFileSync(f, 'utf8').endsWith('\n') ? [Number(fs.readFileSync(f, 'utf8'))] : [];
        });
      });
    // Read while the releases stand (the undo removes them).
    let hooks: number[] = [];
    const r = await ctrlCWhen(['deploy', site(t, 'v2'), root, ...hostArgs, '--before-switch', 'echo $$ > hook.pid; exec sleep 87', '--hook-timeout', '100'], () => (hooks = pids()).length === 3);
    assert.equal(hooks.length, 3, 'a hook ran on every host');
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.tookMs < 30_000, `ended ${Math.round(r.tookMs)} ms after the signal`);
    assertUndone(r, on, v1);
    for (const pid of hooks) assert.throws(() => process.kill(pid, 0), /ESRCH/, `the hook (pid ${pid}) was ended`);
  });

  void test('a rollback waiting for a host\'s lock: nothing rolled back, every lock it took released, exit 130', async (t) => {
    const { root, on } = newRoot('rollback');
    const v1 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release;
    const v2 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--json'])).release;
    assert.ok(v1 !== undefined && v2 !== undefined);
    // host2's lock is held by a deploy whose before-switch hook sleeps.
    const slow = spawnCli(['deploy', site(t, 'v3'), root, '--host', 'host2', '--before-switch', 'sleep 30'], { env, timeoutMs: 90_000 });
    const [h1, h2, h3] = fleet.hosts;
    assert.ok(h1 && h2 && h3);
    const locked = (h: typeof h1): boolean => fs.existsSync(path.join(on(h), '.deploy.lock'));
    for (let i = 0; i < 1500 && !locked(h2); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(locked(h2), 'host2 locked by the slow deploy');
    // The rollback has locked host1 and host3 and waits for host2's lock.
    const r = await ctrlCWhen(['rollback', root, ...hostArgs, '--wait', '60'], () => locked(h1) && locked(h3));
    slow.child.kill('SIGINT');
    await slow.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /error: interrupted by SIGINT before the switch; no host switched and nothing was rolled back/);
    for (const h of fleet.hosts) {
      assert.equal(current(on(h)), v2, `${h.alias} did not move`);
      assert.deepEqual(leftovers(on(h)), [], `${h.alias}: nothing left`);
    }
  });

  // A prune that Ctrl-C reached while it waited for one host's lock exited 1, `prune failed on
  // some hosts: host2: interrupted while waiting for the lock`, as if a host had failed, and said
  // nothing of what it had pruned on the others. As locally: exit 130, what each host pruned, and
  // the host it left as it was, its lock untouched and nothing of this prune left there.
  void test("a prune waiting for a host's lock: exit 130 naming what was pruned where; that host keeps everything", async (t) => {
    const { root, on } = newRoot('prune');
    for (const id of ['p1', 'p2', 'p3']) assert.equal((await cli(['deploy', site(t, id), root, ...hostArgs, '--release-id', id])).code, 0);
    const slow = spawnCli(['deploy', site(t, 'p4'), root, '--host', 'host2', '--release-id', 'p4', '--before-switch', 'sleep 30'], { env, timeoutMs: 90_000 });
    const [h1, h2, h3] = fleet.hosts;
    assert.ok(h1 && h2 && h3);
    const locked = (h: typeof h1): boolean => fs.existsSync(path.join(on(h), '.deploy.lock'));
    const releases = (h: typeof h1): string[] => fs.readdirSync(path.join(on(h), 'releases')).filter((n) => !n.startsWith('.')).sort();
    for (let i = 0; i < 1500 && !locked(h2); i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(locked(h2), 'host2 locked by the slow deploy');
    const before2 = releases(h2);
    // host1 and host3 pruned (their own lock released), host2's awaited.
    const r = await ctrlCWhen(['prune', root, ...hostArgs, '--keep', '1', '--wait', '60'], () => [h1, h3].every((h) => !locked(h) && !releases(h).includes('p1')));
    slow.child.kill('SIGINT');
    await slow.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, new RegExp(`^error: interrupted by SIGINT: pruned p1 on ${h1.alias}; p1 on ${h3.alias}; nothing on ${h2.alias}$`, 'm'));
    for (const h of [h1, h3]) assert.deepEqual(releases(h), ['p2', 'p3'], h.alias);
    assert.deepEqual(releases(h2).filter((n) => n !== 'p4'), before2.filter((n) => n !== 'p4'), 'host2 keeps every release');
    for (const h of fleet.hosts) assert.deepEqual(leftovers(on(h)), [], `${h.alias}: nothing left`);
  });

  // As a signal does locally: what runs after the switch is ended on every host, the switch stands
  // and the release is recorded unverified. (The hosts' checks used to run to their end, here 87 s.)
  void test('during the health check after the switch: every host stops its check, the switch stands unverified, exit 130', async (t) => {
    const { root, on } = newRoot('health');
    const v1 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release;
    assert.ok(v1 !== undefined);
    const pids = (): number[] => fleet.hosts.flatMap((h) => (fs.existsSync(path.join(on(h), 'check.pid')) ? [Number(fs.readFileSync(path.join(on(h), 'check.pid'), 'utf8'))] : []));
    const r = await ctrlCWhen(['deploy', site(t, 'v2'), root, ...hostArgs, '--health-check', 'echo $$ > "$ATOMIC_DEPLOY_ROOT/check.pid"; exec sleep 87', '--health-timeout', '100'], () => pids().filter((p) => p > 1).length === 3);
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.tookMs < 30_000, `ended ${Math.round(r.tookMs)} ms after the signal`);
    assert.match(r.stderr, /warning: interrupted by SIGINT after the switch: stopping the hosts' after-switch hooks, reloads and health checks; the switch stands/);
    const v2 = /^deployed (\S+) to 3 hosts/m.exec(r.stdout)?.[1];
    assert.ok(v2 !== undefined && v2 !== v1, r.stdout);
    // As locally: a warning and the signal's exit code, no error line (nothing failed).
    assert.match(r.stderr, new RegExp(`warning: interrupted by SIGINT: the health check did not finish on host1, host2, host3; release ${v2} stays live unverified there`));
    assert.doesNotMatch(r.stderr, /^error:/m);
    assert.match(r.stdout, /^host1 .*interrupted by SIGINT: the health check did not finish/m);
    for (const h of fleet.hosts) {
      assert.equal(current(on(h)), v2, `${h.alias}: the switch stands`);
      assert.deepEqual(leftovers(on(h)), [], `${h.alias}: nothing left`);
      const record = JSON.parse(fs.readFileSync(path.join(on(h), '.atomic-deploy', 'releases', `${v2}.json`), 'utf8')) as { status: string; afterSwitchFailure?: string };
      assert.equal(record.status, 'complete', h.alias);
      assert.match(record.afterSwitchFailure ?? '', /^interrupted by SIGINT: the health check did not finish/, `${h.alias}: recorded unverified`);
    }
    for (const pid of pids()) assert.throws(() => process.kill(pid, 0), /ESRCH/, `the check (pid ${pid}) was ended`);
    assert.doesNotMatch(r.stdout + r.stderr, /connection lost|may remain|could not clean up|did not switch/);
  });

  void test("during a first wave's after-switch hook: it is stopped, that wave switched back, later waves never start, exit 130", async (t) => {
    const { root, on } = newRoot('hook');
    const v1 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release;
    assert.ok(v1 !== undefined);
    const [h1] = fleet.hosts;
    assert.ok(h1);
    const pidFile = path.join(on(h1), 'hook.pid');
    const r = await ctrlCWhen(['deploy', site(t, 'v2'), root, ...hostArgs, '--waves', '1,100%', '--after-switch', 'echo $$ > "$ATOMIC_DEPLOY_ROOT/hook.pid"; exec sleep 87', '--hook-timeout', '100'], () => fs.existsSync(pidFile) && fs.readFileSync(pidFile, 'utf8').endsWith('\n'));
    assert.equal(r.code, 130, r.stderr);
    assert.ok(r.tookMs < 30_000, `ended ${Math.round(r.tookMs)} ms after the signal`);
    assert.match(r.stderr, /error: interrupted by SIGINT during the rollout; every switched host was switched back/);
    for (const h of fleet.hosts) {
      assert.equal(current(on(h)), v1, `${h.alias} is on the release it had`);
      assert.deepEqual(leftovers(on(h)), [], `${h.alias}: nothing left`);
    }
    assert.throws(() => process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 0), /ESRCH/, 'the hook was ended');
    assert.match(r.stdout, /^wave 2\/2 +skipped /m);
  });

  // As locally: a signal after the switch skips the prune. (The hosts used to prune to --keep.)
  void test('during the --stale fail wait: the switch stands and no host prunes, exit 130', async (t) => {
    const { root, on } = newRoot('stale');
    for (const v of ['v1', 'v2', 'v3']) assert.equal((await cli(['deploy', site(t, v), root, ...hostArgs])).code, 0);
    const [h1] = fleet.hosts;
    assert.ok(h1);
    // A process on the live release of host1, which the next switch leaves.
    await startHolder(t, h1, root);
    const r = await ctrlCWhen(['deploy', site(t, 'v4'), root, ...hostArgs, '--stale', 'fail', '--stale-wait', '60', '--keep', '1'], /waiting up to 60 s for 1 process/);
    assert.equal(r.code, 130, r.stderr);
    // Said for the hosts that skipped it (every host, or those named).
    assert.match(r.stderr, /warning: interrupted by SIGINT: no release was pruned( on [^(]*host1[^(]*)? \(the next deploy or prune does it\)/);
    // host1 was waiting when the signal came; the others, with nothing to wait for, may have committed (and pruned) before it.
    assert.equal(fs.readdirSync(path.join(on(h1), 'releases')).filter((n) => !n.startsWith('.')).length, 4, 'host1: nothing pruned');
  });

  // As a local rollback says it: the rollback stands, and --json has interruptedAfterSwitch.
  void test('a rollback during its --stale fail wait: the rollback stands, exit 130, and --json says interruptedAfterSwitch', async (t) => {
    const { root, on } = newRoot('rb-stale');
    const v1 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release;
    assert.equal((await cli(['deploy', site(t, 'v2'), root, ...hostArgs])).code, 0);
    const [h1] = fleet.hosts;
    assert.ok(h1 && v1 !== undefined);
    // A process on host1's live release, which the rollback leaves: host1 waits for it, its lock held.
    await startHolder(t, h1, root);
    const r = await ctrlCWhen(['rollback', root, ...hostArgs, '--stale', 'fail', '--stale-wait', '60', '--json'], () => fleet.hosts.every((h) => current(on(h)) === v1) && fs.existsSync(path.join(on(h1), '.deploy.lock')));
    assert.equal(r.code, 130, r.stderr);
    const j = JSON.parse(r.stdout) as { release?: string; interruptedAfterSwitch?: boolean; error?: unknown };
    assert.equal(j.release, v1);
    assert.equal(j.interruptedAfterSwitch, true, r.stdout);
    assert.equal(j.error, undefined, 'nothing failed');
    for (const h of fleet.hosts) {
      assert.equal(current(on(h)), v1, `${h.alias}: the rollback stands`);
      assert.deepEqual(leftovers(on(h)), [], `${h.alias}: nothing left`);
    }
  });
});
