// A failed after-switch hook or reload on a fleet host, with no health check: exit 7 as locally,
// every host stays on the new release, and the output (human and JSON) names the host and the
// hook; with a health check the same failure switches every host back (exit 4); 7 wins over 6.
// Controls: the same deploys with the hook succeeding exit 0.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { findTools, rootNamer, startHolder, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

interface FleetJson {
  release?: string;
  hosts: { host: string; current: string | null; outcome?: string; afterSwitchFailure?: string }[];
  afterSwitchFailure?: string;
  error?: { code: string; message: string; hint?: string; live?: boolean; release?: string };
}

const { fleet, hostArgs, cli, env } = fleetSuite(2, { prefix: 'aas', timeoutMs: 180_000, requires: () => findTools(['chattr']) });
const newRoot = rootNamer('a');

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-after-switch-'), { 'index.html': `<h1>${version}</h1>\n` });
}

/** The state letter of a process (R, S, T, ...), or null once it is gone. */
function stateOf(pid: number): string | null {
  try {
    return /\) (\S)/.exec(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

function currentOf(dir: string): string {
  return path.basename(fs.readlinkSync(path.join(dir, 'current')));
}

/** Waits until a deploy's progress says every host's switch was heard (`N of N switched (skew …)`). */
async function heardSwitched(run: ReturnType<typeof spawnCli>): Promise<void> {
  let said = '';
  run.child.stdout?.on('data', (d: Buffer | string) => (said += String(d)));
  const deadline = Date.now() + 60_000;
  while (!/switched \(skew/.test(said)) {
    assert.ok(Date.now() < deadline && run.child.exitCode === null, `the deploy never said its hosts switched:\n${said}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A hook that fails on the first host only. */
function failsOnFirst(): string {
  return `test "$(hostname)" != ${fleet.hosts[0]?.hostname ?? 'host1'}`;
}

void describe('after-switch failures on two namespace hosts', () => {
  void test('a failing after-switch hook exits 7 with the switch standing on every host; a succeeding one exits 0', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('hook');
    const control = await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--after-switch', 'true', '--json']);
    assert.equal(control.code, 0, control.stderr);
    assert.equal(jsonOf<FleetJson>(control).error, undefined);

    const failed = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--after-switch', failsOnFirst(), '--after-switch', 'touch /srv/second-ran', '--json']);
    assert.equal(failed.code, 7, failed.stderr);
    const j = jsonOf<FleetJson>(failed);
    const live = j.release as string;
    assert.equal(currentOf(on(h1)), live, 'the switch stands on the failing host');
    assert.equal(currentOf(on(h2)), live, 'and on the other');
    assert.equal(j.error?.code, 'AFTER_SWITCH_FAILED');
    assert.equal(j.error?.live, true);
    assert.equal(j.error?.release, live);
    assert.match(j.error?.message ?? '', new RegExp(`^${h1.alias}: after-switch hook "test .*" exited with code 1; release ${live} stays live`));
    assert.doesNotMatch(j.error?.message ?? '', new RegExp(`${h2.alias}:`), 'the host whose hooks passed is not named');
    assert.match(j.hosts.find((h) => h.host === h1.alias)?.afterSwitchFailure ?? '', /after-switch hook "test .*" exited with code 1/);
    assert.equal(j.hosts.find((h) => h.host === h2.alias)?.afterSwitchFailure, undefined);
    // The release log of the failing host keeps it apart from a verified release, as locally; the other host's does not.
    const record = (h: FleetHost): { status: string; afterSwitchFailure?: string } => JSON.parse(fs.readFileSync(path.join(on(h), '.atomic-deploy', 'releases', `${live}.json`), 'utf8')) as { status: string; afterSwitchFailure?: string };
    assert.equal(record(h1).status, 'complete');
    assert.match(record(h1).afterSwitchFailure ?? '', /^after-switch hook "test .*" exited with code 1/);
    assert.equal(record(h2).afterSwitchFailure, undefined);
    // Hooks after the failing one do not run on that host, as locally; they do on the other.
    assert.ok(!fs.existsSync(path.join(h1.srvDir, 'second-ran')));
    assert.ok(fs.existsSync(path.join(h2.srvDir, 'second-ran')));

    const human = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--after-switch', failsOnFirst()]);
    assert.equal(human.code, 7, human.stderr);
    // One file, in the singular (it read "1 files" once).
    assert.match(human.stdout, /^deployed \S+ to 2 hosts \(1 file, /m);
    assert.match(human.stdout, /^› release \S+: copying 1 file to 2 hosts$/m);
    assert.match(human.stderr, new RegExp(`^error: ${h1.alias}: after-switch hook .* stays live`, 'm'));
    assert.match(human.stderr, /^hint: the switch stands/m);
  });

  void test('a host whose after-switch hook failed (exit 7) prunes nothing; a host whose hooks passed prunes to --keep', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('keep');
    for (const v of ['v1', 'v2', 'v3']) assert.equal((await cli(['deploy', site(t, v), root, ...hostArgs, '--keep', '0'])).code, 0);
    const failed = await cli(['deploy', site(t, 'v4'), root, ...hostArgs, '--keep', '1', '--after-switch', failsOnFirst()]);
    assert.equal(failed.code, 7, failed.stderr);
    const on1 = fs.readdirSync(path.join(on(h1), 'releases'));
    const on2 = fs.readdirSync(path.join(on(h2), 'releases'));
    assert.equal(on1.length, 4, `the unverified host pruned: ${on1.join(' ')}`);
    // The verified one keeps the new release and its rollback target, as a local --keep 1 does.
    assert.equal(on2.length, 2, `the verified host did not prune: ${on2.join(' ')}`);
  });

  // A deploying process silent after its switch for longer than the hosts' 30 s lease (SIGSTOP, a
  // suspended laptop): a newer deploy takes the hosts over meanwhile. Resumed, its commit is not
  // carried out there (the host programs check the lock is still theirs), and it must not exit 0
  // saying its release is live: it exits 1 and names the hosts and why.
  void test('a deploy stopped after its switch past the lease, its hosts taken over meanwhile, exits 1 naming them', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('lease');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const stopped = spawnCli(['deploy', site(t, 'v2'), root, ...hostArgs, '--json'], { env, failpoints: 'fleet-switched=signal:SIGSTOP', timeoutMs: 170_000 });
    const pid = stopped.child.pid ?? 0;
    t.after(() => {
      if (stateOf(pid) !== null) process.kill(pid, 'SIGKILL');
    });
    const deadline = Date.now() + 60_000;
    while (stateOf(pid) !== 'T') {
      assert.ok(Date.now() < deadline && stateOf(pid) !== null, `the deploy never stopped after its switch:\n${(await Promise.race([stopped.done, Promise.resolve(undefined)]))?.stderr ?? ''}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const v2 = currentOf(on(h1));
    assert.equal(currentOf(on(h2)), v2);
    // The newer deploy waits for the silent one's lease to end, then takes both hosts over.
    const newer = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--wait', '90', '--json'], { timeoutMs: 150_000 });
    assert.equal(newer.code, 0, newer.stderr);
    const v3 = jsonOf<FleetJson>(newer).release ?? '';
    assert.equal(currentOf(on(h1)), v3);
    process.kill(pid, 'SIGCONT');
    const late = await stopped.done;
    assert.equal(late.code, 1, `${late.stderr}\n${late.stdout}`);
    const j = jsonOf<FleetJson>(late);
    for (const h of [h1, h2]) {
      // The newer deploy has finished and released its lock: the lock is gone, not another's.
      assert.match(j.error?.message ?? '', new RegExp(`${h.alias}: the lock on this host is gone \\(another command took it over while this one was silent .*\\): its commit was not carried out`));
      const row = j.hosts.find((r) => r.host === h.alias);
      assert.equal(row?.outcome, 'unknown', JSON.stringify(row));
      assert.equal(row?.current, null, JSON.stringify(row));
      // The newer deploy's switch stands.
      assert.equal(currentOf(on(h)), v3, `${h.alias}: the late commit undid the newer switch`);
    }
    assert.notEqual(j.release, v3);
  });

  // A host whose commit failed over a connection that held (neither lost nor taken over): the
  // deploy exited 0 without a word, the host's row alone holding the error, its lock left. The
  // commit program stops at a journal it cannot remove (immutable, as a permission refused or a
  // read-only remount would); a record it cannot write is a warning from the host, and the deploy
  // exited 0 where a local deploy exits 1. Now both are the local engine's bookkeeping failure:
  // the switch stands, a warning names the host and why, exit 1 with the release live in the error,
  // the journal left for the next command, which finishes the record once the cause is gone.
  void test('a commit whose bookkeeping fails on a host with its connection up: a warning naming it, exit 1, the switch standing; status finishes it', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const cases = [
      // The host's reason, said on its stderr alone before, ends the message.
      { label: 'journal', target: (dir: string) => path.join(dir, '.atomic-deploy', 'journal.json'), why: 'clear_journal: cannot remove \\.atomic-deploy/journal\\.json: Operation not permitted', then: 'release <id> stays live there, and the next command there finishes its record' },
      { label: 'release log', target: (dir: string) => path.join(dir, '.atomic-deploy', 'releases'), why: 'cannot write the release log', then: 'the journal stays and the next command finishes the record' },
    ];
    for (const c of cases) {
      const { root, on } = newRoot(`commit-${c.label.replace(' ', '-')}`);
      assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
      const journal = (h: FleetHost): string => {
        try {
          return fs.readFileSync(path.join(on(h), '.atomic-deploy', 'journal.json'), 'utf8');
        } catch {
          return '';
        }
      };
      // The deploy waits once every host's verdict is in; host1's journal is by then past its check.
      const run = spawnCli(['deploy', site(t, 'v2'), root, ...hostArgs, '--health-check', 'true', '--json'], { env, failpoints: 'fleet-verdicts=sleep:4000', timeoutMs: 120_000 });
      const target = c.target(on(h1));
      let r: Awaited<typeof run.done>;
      try {
        const deadline = Date.now() + 60_000;
        while (!(/"phase":"switched"/.test(journal(h1)) && !journal(h1).includes('verifying'))) {
          assert.ok(Date.now() < deadline && run.child.exitCode === null, `${c.label}: host1 never got past its check`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        execFileSync('chattr', ['+i', target]);
        r = await run.done;
      } finally {
        execFileSync('chattr', ['-i', target]);
      }
      const j = jsonOf<FleetJson>(r);
      const live = j.release ?? '';
      assert.equal(r.code, 1, `${c.label}: ${r.stderr}\n${r.stdout}`);
      assert.match(r.stderr, new RegExp(`^warning: ${h1.alias}: ${c.why}; ${c.then.replace('<id>', live)}$`, 'm'), c.label);
      assert.equal(j.error?.code, 'IO', c.label);
      assert.equal(j.error?.live, true, c.label);
      assert.equal(j.error?.release, live, c.label);
      assert.match(j.error?.message ?? '', new RegExp(`^release ${live} is live on 2 hosts, but recording the deploy failed: ${h1.alias}: ${c.why}$`), c.label);
      assert.match(j.error?.hint ?? '', new RegExp(`the next atomic-deploy command with this deploy's hosts finishes it by itself \\(atomic-deploy status ${root} --host ${h1.alias} --host ${h2.alias}\\)`), c.label);
      for (const h of [h1, h2]) assert.equal(currentOf(on(h)), live, `${c.label}: ${h.alias}: the switch stands`);
      assert.equal(j.hosts.find((h) => h.host === h1.alias)?.outcome, 'switched', c.label);
      // Released as a local deploy's lock is; the journal stays for the next command, which finishes the record.
      assert.equal(fs.existsSync(path.join(on(h1), '.deploy.lock')), false, `${c.label}: host1's lock was left`);
      assert.notEqual(journal(h1), '', `${c.label}: host1's journal is gone`);
      const s = await cli(['status', root, ...hostArgs, '--json']);
      assert.equal(s.code, 0, `${c.label}: ${s.stderr}`);
      assert.match(s.stdout, new RegExp(`finished recording deploy of ${live} \\(it had switched\\)`), c.label);
      assert.doesNotMatch(s.stderr, /took over a stale lock/, c.label);
      assert.equal(journal(h1), '', `${c.label}: host1's journal stayed`);
      const record = JSON.parse(fs.readFileSync(path.join(on(h1), '.atomic-deploy', 'releases', `${live}.json`), 'utf8')) as { status: string; afterSwitchFailure?: string };
      assert.deepEqual([record.status, record.afterSwitchFailure], ['complete', undefined], c.label);
    }
  });

  // The same for a fleet rollback: a host whose commit failed with its connection up (a journal it
  // could not remove) made the rollback fail with "host1: switched, but recording it failed; the
  // next command finishes it", without the host's reason, and the clean-up then tried to clear the
  // journal there (refused again): the lock stayed, for the next command to take over as stale.
  // Now it is the fleet deploy's bookkeeping failure: a warning with the host's reason, exit 1 with
  // the release live in the error, the journal kept and the lock released; status finishes it.
  void test('a rollback whose commit fails on a host with its connection up: the reason said, exit 1, the journal left, the lock released; status finishes it', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('rollback-commit');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--release-id', 'r1'])).code, 0);
    assert.equal((await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--release-id', 'r2'])).code, 0);
    // A process on r2 keeps host1's rollback in its stale-process wait, after its switch and before its commit.
    const holder = await startHolder(t, h1, root);
    const journalPath = path.join(on(h1), '.atomic-deploy', 'journal.json');
    const run = spawnCli(['rollback', root, ...hostArgs, '--stale', 'warn', '--stale-wait', '60', '--json'], { env, timeoutMs: 120_000 });
    let r: Awaited<typeof run.done>;
    try {
      const deadline = Date.now() + 60_000;
      while (!(currentOf(on(h1)) === 'r1' && currentOf(on(h2)) === 'r1' && fs.existsSync(journalPath))) {
        assert.ok(Date.now() < deadline && run.child.exitCode === null, 'the rollback never switched');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      execFileSync('chattr', ['+i', journalPath]);
      process.kill(holder, 'SIGKILL');
      r = await run.done;
    } finally {
      execFileSync('chattr', ['-i', journalPath]);
    }
    const j = jsonOf<FleetJson>(r);
    const why = `${h1.alias}: clear_journal: cannot remove \\.atomic-deploy/journal\\.json: Operation not permitted`;
    assert.equal(r.code, 1, `${r.stderr}\n${r.stdout}`);
    assert.match(r.stderr, new RegExp(`^warning: ${why}; release r1 stays live there, and the next command there finishes its record$`, 'm'));
    assert.equal(j.error?.code, 'IO');
    assert.equal(j.error?.live, true);
    assert.equal(j.error?.release, 'r1');
    assert.match(j.error?.message ?? '', new RegExp(`^release r1 is live on 2 hosts, but recording the rollback failed: ${why}$`));
    assert.match(j.error?.hint ?? '', new RegExp(`the next atomic-deploy command with this rollback's hosts finishes it by itself \\(atomic-deploy status ${root} --host ${h1.alias} --host ${h2.alias}\\)`));
    for (const h of [h1, h2]) assert.equal(currentOf(on(h)), 'r1', `${h.alias}: the rollback stands`);
    assert.equal(j.hosts.find((h) => h.host === h1.alias)?.outcome, 'switched');
    // The lock released, the journal left: the next command finishes the record, taking over nothing.
    assert.equal(fs.existsSync(path.join(on(h1), '.deploy.lock')), false, "host1's lock was left");
    assert.match(fs.readFileSync(journalPath, 'utf8'), /"op":"rollback"/);
    const s = await cli(['status', root, ...hostArgs]);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /finished recording rollback from r2 to r1/);
    assert.doesNotMatch(s.stdout + s.stderr, /took over a stale lock/);
    assert.equal(fs.existsSync(journalPath), false, "host1's journal stayed");
    const record = (id: string): { status: string } => JSON.parse(fs.readFileSync(path.join(on(h1), '.atomic-deploy', 'releases', `${id}.json`), 'utf8')) as { status: string };
    assert.deepEqual([record('r1').status, record('r2').status], ['complete', 'rolled-back']);
  });

  // Within the failure budget, a host whose connection went after its switch (its health check
  // unheard) was said to be "not on" the release, in the warning and the summary line, while it
  // served it (its own row said switched).
  void test('--max-fail: a host lost after its switch is said to be on the release, unverified, not "not on" it', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('budget');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const run = spawnCli(['deploy', site(t, 'v2'), root, ...hostArgs, '--max-fail', '1', '--health-check', 'sleep 4'], { env, timeoutMs: 120_000 });
    let r: Awaited<typeof run.done>;
    try {
      // Once the deploying side has heard every host switch (a host's link cut before its answer came is another case: switch lost).
      await heardSwitched(run);
      await h2.linkDown();
      r = await run.done;
    } finally {
      await h2.linkUp();
    }
    assert.equal(r.code, 0, r.stderr);
    const v2 = currentOf(on(h1));
    assert.equal(currentOf(on(h2)), v2, 'host2 serves the new release');
    assert.match(r.stderr, new RegExp(`^warning: within the failure budget \\(--max-fail 1\\): ${h2.alias} failed \\(the connection to ${h2.alias} was lost after its switch \\(it stays on the release, unverified, until a command reaches it\\)\\); ${h2.alias} is on ${v2}, unverified$`, 'm'));
    assert.doesNotMatch(r.stderr, /not on/);
    assert.match(r.stdout, new RegExp(`deployed ${v2} to 2 of 2 hosts \\(unverified: ${h2.alias}\\)`));
  });

  // Ctrl-C after the switch while a host's connection had just gone: the deploy said "the switch
  // stands", then switched the other host back and exited 1 ("did not switch everywhere"). As
  // locally, a signal after the switch lets it stand: exit 130, the lost host named, on it.
  void test('a signal after the switch stands with a host lost after its switch: exit 130, nobody switched back', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('stands');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const v1 = currentOf(on(h2));
    const run = spawnCli(['deploy', site(t, 'v2'), root, ...hostArgs, '--health-check', 'sleep 8'], { env, timeoutMs: 120_000 });
    let r: Awaited<typeof run.done>;
    try {
      await heardSwitched(run);
      await h2.linkDown();
      await new Promise((resolve) => setTimeout(resolve, 300));
      run.child.kill('SIGINT');
      r = await run.done;
    } finally {
      await h2.linkUp();
    }
    const v2 = currentOf(on(h1));
    assert.notEqual(v2, v1);
    assert.equal(r.code, 130, `${r.stderr}\n${r.stdout}`);
    assert.match(r.stderr, /^warning: interrupted by SIGINT after the switch: .*the switch stands$/m);
    assert.match(r.stderr, new RegExp(`^warning: ${h2.alias}: connection lost after it switched to ${v2}: it stays on ${v2}, unverified, and the next command there finishes its record$`, 'm'));
    assert.doesNotMatch(r.stderr + r.stdout, /switched back/);
    assert.equal(currentOf(on(h1)), v2, 'host1 was switched back');
    assert.equal(currentOf(on(h2)), v2);
  });

  void test('with a health check, a failing after-switch hook switches every host back (exit 4)', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('health');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const good = currentOf(on(h1));
    const control = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--after-switch', 'true', '--health-check', 'true', '--json']);
    assert.equal(control.code, 0, control.stderr);
    const v2 = currentOf(on(h1));
    assert.notEqual(v2, good);
    const back = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--after-switch', failsOnFirst(), '--health-check', 'true', '--json']);
    assert.equal(back.code, 4, back.stderr);
    assert.equal(jsonOf<FleetJson>(back).error?.code, 'ROLLED_BACK');
    assert.match(back.stderr + back.stdout, new RegExp(`${h1.alias}: after-switch hook "test .*" exited with code 1`));
    assert.equal(currentOf(on(h1)), v2);
    assert.equal(currentOf(on(h2)), v2);
    // Recorded as a local automatic rollback records it: live from its switch, the deploy's duration, and why.
    const v3 = jsonOf<FleetJson>(back).release ?? '';
    const recordOn = (h: FleetHost): { status: string; activatedAt?: string; durationMs?: number; reason?: string } => JSON.parse(fs.readFileSync(path.join(on(h), '.atomic-deploy', 'releases', `${v3}.json`), 'utf8')) as never;
    const failed = recordOn(h1);
    assert.equal(failed.status, 'failed');
    assert.match(failed.reason ?? '', /^after-switch hook "test .*" exited with code 1$/);
    assert.ok(failed.activatedAt !== undefined && (failed.durationMs ?? 0) > 0, JSON.stringify(failed));
    const sentBack = recordOn(h2);
    assert.equal(sentBack.status, 'rolled-back');
    assert.match(sentBack.reason ?? '', new RegExp(`the health check failed on ${h1.alias}`));
    assert.ok(sentBack.activatedAt !== undefined && (sentBack.durationMs ?? 0) > 0, JSON.stringify(sentBack));
  });

  /**
   * A stand-in systemctl first on each host's PATH: it knows the unit everywhere (the check before
   * the lock); its reload notes the release it reloaded into (/srv/stand-in/reloaded) and fails on the first host only.
   */
  function standInSystemctl(t: { after(fn: () => void): void }): void {
    const [h1] = fleet.hosts as [FleetHost, FleetHost];
    for (const h of fleet.hosts) {
      const bin = path.join(h.srvDir, 'stand-in', 'bin');
      fs.mkdirSync(bin, { recursive: true });
      fs.writeFileSync(path.join(bin, 'systemctl'), `#!/bin/sh\nif [ "$1" = show ]; then echo loaded; exit 0; fi\necho "stand-in systemctl $*"\necho "$ATOMIC_DEPLOY_RELEASE_ID" > /srv/stand-in/reloaded\ntest "$(hostname)" != ${h1.hostname}\n`, { mode: 0o755 });
      const home = path.join(path.dirname(h.srvDir), 'root');
      fs.mkdirSync(home, { recursive: true });
      fs.writeFileSync(path.join(home, '.bashrc'), 'PATH=/srv/stand-in/bin:$PATH\n');
    }
    t.after(() => {
      for (const h of fleet.hosts) fs.rmSync(path.join(path.dirname(h.srvDir), 'root', '.bashrc'), { force: true });
    });
  }

  void test('a failing reload exits 7 and wins over --stale fail (6); a succeeding one exits 0', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('reload');
    standInSystemctl(t);
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const v1 = currentOf(on(h1));
    // Control: the second host's reload succeeds.
    const control = await cli(['deploy', site(t, 'v2'), root, '--host', h2.alias, '--reload-unit', 'app.service']);
    assert.equal(control.code, 0, control.stderr);

    // A process still on the release the switch leaves, on the second host: --stale fail alone exits 6.
    await startHolder(t, h2, root);
    const stale = await cli(['deploy', site(t, 'v3'), root, '--host', h2.alias, '--stale', 'fail', '--stale-wait', '1', '--reload-unit', 'app.service']);
    assert.equal(stale.code, 6, `control: the stale holder alone exits 6\n${stale.stderr}`);
    await startHolder(t, h2, root);

    const failed = await cli(['deploy', site(t, 'v4'), root, ...hostArgs, '--reload-unit', 'app.service', '--stale', 'fail', '--stale-wait', '1', '--json']);
    assert.equal(failed.code, 7, failed.stderr);
    const j = jsonOf<FleetJson>(failed);
    assert.equal(j.error?.code, 'AFTER_SWITCH_FAILED');
    assert.match(j.error?.message ?? '', new RegExp(`^${h1.alias}: reload of unit app\\.service failed; release ${j.release ?? ''} stays live`));
    assert.equal(currentOf(on(h1)), j.release);
    assert.equal(currentOf(on(h2)), j.release);
    // A rollback whose reload fails on a host stands, as a local one does; that host's row keeps
    // the warning in --json (as a local rollback's `warnings`: it used to be said on stderr alone).
    const back = await cli(['rollback', root, ...hostArgs, '--to', v1, '--reload-unit', 'app.service', '--json']);
    assert.equal(back.code, 0, back.stderr);
    const rows = jsonOf<{ hosts: { host: string; warnings?: string[] }[] }>(back).hosts;
    assert.match((rows.find((h) => h.host === h1.alias)?.warnings ?? []).join('\n'), new RegExp(`^${h1.alias}: reload of unit app\\.service failed`));
    assert.equal(rows.find((h) => h.host === h2.alias)?.warnings, undefined);
  });

  // As locally: the reloads run after the after-switch hooks and before the health check, which
  // must see the reloaded service; a failed reload with a health check switches every host back.
  // (The fleet used to reload after the check and its decision: the check saw the old service,
  // and a failed reload was exit 7 with every host on the new release.)
  void test('the health check runs after the reloads; with one, a failing reload switches every host back (exit 4)', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('reload-health');
    standInSystemctl(t);
    assert.equal((await cli(['deploy', site(t, 'v1'), root, '--host', h2.alias])).code, 0);
    // The second host's reload succeeds: its check passes only if it sees the reload of this release.
    const sees = 'test "$(cat /srv/stand-in/reloaded)" = "$ATOMIC_DEPLOY_RELEASE_ID"';
    const ok = await cli(['deploy', site(t, 'v2'), root, '--host', h2.alias, '--reload-unit', 'app.service', '--health-check', sees, '--health-timeout', '2']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(currentOf(on(h2)), /^deployed (\S+) to 1 host/m.exec(ok.stdout)?.[1]);
    // Said when the host begins them, between its hooks and its check.
    assert.match(ok.stdout, new RegExp(`${h2.alias}: reloading unit app\\.service[^]*switched and healthy`));

    assert.equal((await cli(['deploy', site(t, 'v2'), root, '--host', h1.alias])).code, 0);
    const before = [currentOf(on(h1)), currentOf(on(h2))];
    const back = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--reload-unit', 'app.service', '--health-check', 'true', '--json']);
    assert.equal(back.code, 4, back.stderr);
    const j = jsonOf<FleetJson>(back);
    assert.equal(j.error?.code, 'ROLLED_BACK');
    assert.match(back.stderr + back.stdout, new RegExp(`${h1.alias}: reload of unit app\\.service failed`));
    assert.deepEqual([currentOf(on(h1)), currentOf(on(h2))], before, 'every host went back');
  });

  // As locally: a check that fails with no release to go back to leaves the new one live, recorded
  // failed, exit 1. (A fleet host used to remove current: nothing served, exit 4 "switched back".)
  void test('a failed health check where there is nothing to go back to: the release stays live there, failed (exit 1)', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const first = newRoot('first-health');
    const r = await cli(['deploy', site(t, 'v1'), first.root, ...hostArgs, '--health-check', 'false', '--health-timeout', '1', '--json']);
    assert.equal(r.code, 1, r.stderr);
    const j = jsonOf<FleetJson>(r);
    assert.equal(j.error?.code, 'HEALTH_CHECK_FAILED');
    assert.match(j.error?.message ?? '', new RegExp(`there is no previous release to roll back to on ${h1.alias}, ${h2.alias}, so release ${j.release ?? ''} stays live there$`));
    for (const h of fleet.hosts) {
      assert.equal(currentOf(first.on(h)), j.release, `${h.alias}: still served`);
      const record = JSON.parse(fs.readFileSync(path.join(first.on(h), '.atomic-deploy', 'releases', `${j.release ?? ''}.json`), 'utf8')) as { status: string; activatedAt?: string; reason?: string };
      assert.equal(record.status, 'failed', h.alias);
      assert.ok(record.activatedAt, `${h.alias}: recorded as activated`);
      assert.equal(record.reason, 'health check failed: command "false" exited with code 1', `${h.alias}: why, in a local deploy's words`);
      assert.equal(fs.existsSync(path.join(first.on(h), '.deploy.lock')), false, `${h.alias}: lock released`);
    }
    // One host with a release to go back to, one without: the first goes back, the second keeps it.
    const mixed = newRoot('mixed-health');
    assert.equal((await cli(['deploy', site(t, 'v1'), mixed.root, '--host', h1.alias])).code, 0);
    const good = currentOf(mixed.on(h1));
    const m = await cli(['deploy', site(t, 'v2'), mixed.root, ...hostArgs, '--health-check', 'false', '--health-timeout', '1', '--json']);
    assert.equal(m.code, 1, m.stderr);
    const mj = jsonOf<FleetJson>(m);
    assert.match(mj.error?.message ?? '', new RegExp(`on ${h2.alias}, so release ${mj.release ?? ''} stays live there; ${h1.alias} switched back$`));
    assert.equal(currentOf(mixed.on(h1)), good);
    assert.equal(currentOf(mixed.on(h2)), mj.release);
  });
});
