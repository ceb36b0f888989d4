// The failure budget's edges over three namespace hosts: a budget as large as the fleet
// (`--max-fail 100%`) with every host failing, and a budget spent in the last wave by a host whose
// before-switch hook fails while another host of that wave is armed and never sent its switch.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, runCli, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { rootNamer, type FleetHost, currentOf as current } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

interface HostJson {
  host: string;
  outcome: string;
  current: string | null;
  leftovers: boolean;
  error?: { code: string; message: string };
}
interface DeployJson {
  release?: string;
  hosts: HostJson[];
  waves?: { wave: number; hosts: string[]; result: string; failed?: string[] }[];
  tolerated?: string[];
  error?: { code: string; message: string; hint?: string };
}

const { fleet, hostArgs, cli } = fleetSuite(3, { timeoutMs: 120_000 });
const newRoot = rootNamer('b');

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-budget-'), { 'index.html': `<h1>${version}</h1>\n` });
}

/** Fails on a host whose /srv holds a file named `sick`. */
const CHECK = 'test ! -e /srv/sick';
const HEALTH = ['--health-check', CHECK, '--health-timeout', '1'];

function sick(t: { after(fn: () => void): void }, h: FleetHost): void {
  fs.writeFileSync(path.join(h.srvDir, 'sick'), '');
  t.after(() => fs.rmSync(path.join(h.srvDir, 'sick'), { force: true }));
}

/** The deploying side's ssh master connections to `alias` (its ControlMaster client). */
function sshMasters(alias: string): number[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((p) => {
    try {
      const argv = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      // This fleet's own (its ssh config file, -F): other test files run fleets of their own with a
      // host2 too, and killing their masters failed their deploys (fleet-waves.test.ts, twice).
      return path.basename(argv[0] ?? '') === 'ssh' && argv.includes('ControlMaster=yes') && argv.includes(alias) && argv.includes(fleet.sshConfigPath) ? [Number(p)] : [];
    } catch {
      return [];
    }
  });
}

/** Every host on `release`, with no lock, journal or release of the failed deploy left. */
function assertOn(on: (h: FleetHost) => string, release: string, failed: string | undefined, keptFailed: boolean): void {
  for (const h of fleet.hosts) {
    const dir = on(h);
    assert.equal(current(dir), release, `${h.alias} is on the release it had`);
    assert.equal(fs.existsSync(path.join(dir, '.deploy.lock')), false, `${h.alias}: lock released`);
    assert.equal(fs.existsSync(path.join(dir, '.atomic-deploy', 'journal.json')), false, `${h.alias}: no journal`);
    if (failed !== undefined && !keptFailed) assert.equal(fs.existsSync(path.join(dir, 'releases', failed)), false, `${h.alias}: the release that never switched is removed`);
  }
}

void describe('the failure budget at its edges', () => {
  // Old code: exit 0, `tolerated` naming every host, and "deployed <id> to 0 of 3 hosts".
  void test('--max-fail 100% and every host fails its health check: not a success (exit 4, every host back)', async (t) => {
    const { root, on } = newRoot('all-sick');
    const v1 = String(jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release);
    for (const h of fleet.hosts) sick(t, h);
    // One wave: a wave of its own that fails as a whole stops a rollout before its last wave (below).
    const r = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--max-fail', '100%', ...HEALTH, '--json']);
    assert.equal(r.code, 4, r.stdout + r.stderr);
    const j = jsonOf<DeployJson>(r);
    assert.equal(j.error?.code, 'ROLLED_BACK');
    assert.match(j.error?.message ?? '', /no host passed, which no failure budget tolerates/);
    assert.deepEqual(j.tolerated, []);
    assert.deepEqual(j.hosts.map((h) => [h.host, h.outcome, h.current]), fleet.hosts.map((h) => [h.alias, 'switched-back', v1]));
    assertOn(on, v1, undefined, true);
    const human = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--max-fail', '100%', ...HEALTH]);
    assert.equal(human.code, 4, human.stdout + human.stderr);
    assert.doesNotMatch(human.stdout + human.stderr, /deployed \S+ to 0 of 3 hosts|within the failure budget/);
    assertOn(on, v1, undefined, true);
  });

  void test('--max-fail 100% and every host fails its before-switch hook: nothing was switched (exit 1), not a deploy to none', async (t) => {
    const { root, on } = newRoot('all-hook');
    const v1 = String(jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release);
    for (const h of fleet.hosts) sick(t, h);
    const r = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--max-fail', '3', '--before-switch', CHECK, '--json']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const j = jsonOf<DeployJson>(r);
    assert.equal(j.error?.code, 'HOOK_FAILED');
    assert.match(j.error?.message ?? '', /^nothing was switched: host\d: before-switch hook/);
    assert.deepEqual(j.hosts.map((h) => [h.host, h.outcome, h.current, h.error?.code]), fleet.hosts.map((h) => [h.alias, 'unchanged', v1, 'HOOK_FAILED']));
    assertOn(on, v1, j.release, false);
  });

  // Old code: `--wave-pause 30` without --waves deployed in one wave, exit 0, with no word that
  // there was no pause; `--max-fail 10%` of 3 hosts was all-or-nothing without a word.
  void test('--wave-pause without --waves is refused (exit 2, no host touched); a --max-fail percentage that rounds to 0 hosts is said', async (t) => {
    const { root, on } = newRoot('idle');
    const r = await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--wave-pause', '30']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /^error: --wave-pause applies only with --waves; without them it would change nothing$/m);
    assert.match(r.stderr, /^hint: add --waves <sizes> \(for example 1,10%,100%; or waves: in the config\), or leave out --wave-pause$/m);
    for (const h of fleet.hosts) assert.equal(fs.existsSync(on(h)), false, `${h.alias}: nothing made`);
    const dry = await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--max-fail', '10%', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /warning: --max-fail 10% of 3 hosts rounds down to 0: the first failed host stops the rollout/);
    const counted = await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--max-fail', '34%', '--dry-run']);
    assert.equal(counted.code, 0, counted.stderr);
    assert.doesNotMatch(counted.stderr, /rounds down/, '34% of 3 is one host');
  });

  // Old code: `the switch did not complete on host2, host3` (host2 was prepared and never sent its
  // switch), and the wave's line said `1 of 2 hosts switched and healthy`.
  void test('the budget spent in the last wave by a before-switch hook: only that host is named failed, the first wave goes back, status finds one release and no leftovers', async (t) => {
    const { root, on } = newRoot('last');
    const v1 = String(jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release);
    sick(t, fleet.hosts[2] as FleetHost);
    const args = ['deploy', site(t, 'v2'), root, ...hostArgs, '--waves', '1,100%', '--before-switch', CHECK];
    const r = await cli([...args, '--json']);
    assert.equal(r.code, 4, r.stdout + r.stderr);
    const j = jsonOf<DeployJson>(r);
    assert.equal(j.error?.code, 'ROLLED_BACK');
    assert.equal(j.error?.message, `release ${String(j.release)} was switched back on every host: the switch did not complete on host3`);
    assert.deepEqual(j.waves?.map((w) => [w.result, w.failed]), [['ok', []], ['failed', ['host3']]]);
    assert.deepEqual(j.hosts.map((h) => [h.host, h.outcome, h.current, h.leftovers]), [['host1', 'switched-back', v1, false], ['host2', 'unchanged', v1, false], ['host3', 'unchanged', v1, false]]);
    assert.equal(j.hosts[2]?.error?.code, 'HOOK_FAILED');
    assertOn(on, v1, undefined, true);
    const human = await cli(args);
    assert.equal(human.code, 4, human.stdout + human.stderr);
    assert.match(human.stdout, /wave 2 of 2: 0 of 2 hosts switched and healthy, failed: host3, not switched: host2 /);
    const status = await cli(['status', root, ...hostArgs]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^all 3 hosts on ${v1}$`, 'm'));
    assert.doesNotMatch(status.stdout, /recovered|leftover/);
  });

  // Old code: with --parallel 1 the wave stopped at host2's failure and host3, never started, was
  // listed failed too (`failed: host2, host3`, `the switch did not complete on host2, host3`).
  void test('--parallel 1: a host of the last wave never started once the budget was spent is not named failed', async (t) => {
    const { root, on } = newRoot('serial');
    const v1 = String(jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release);
    sick(t, fleet.hosts[1] as FleetHost);
    const r = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--waves', '1,100%', '--parallel', '1', '--before-switch', CHECK, '--json']);
    assert.equal(r.code, 4, r.stdout + r.stderr);
    const j = jsonOf<DeployJson>(r);
    assert.deepEqual(j.waves?.map((w) => [w.result, w.failed]), [['ok', []], ['failed', ['host2']]]);
    assert.equal(j.error?.message, `release ${String(j.release)} was switched back on every host: the switch did not complete on host2`);
    assert.deepEqual(j.hosts.map((h) => [h.host, h.outcome, h.current, h.leftovers, h.error?.code]), [['host1', 'switched-back', v1, false, undefined], ['host2', 'unchanged', v1, false, 'HOOK_FAILED'], ['host3', 'unchanged', v1, false, undefined]]);
    assertOn(on, v1, undefined, true);
  });

  // Old code: `interrupted by SIGINT during the rollout; every switched host was switched back from
  // <id>`, while host2, whose connection was lost after its switch (within the budget), got no word
  // and stayed on <id>.
  void test('a signal in the pause after a wave whose host was lost after its switch: the error says that host is still on the release, and status brings it back', async (t) => {
    const { root, on } = newRoot('lost-pause');
    const v1 = String(jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release);
    const host2 = fleet.hosts[1] as FleetHost;
    // The ssh config (where the host aliases live) on the command line, not in the environment: the hint's command must carry it.
    const run = spawnCli(['deploy', site(t, 'v2'), root, ...hostArgs, '--ssh-config', fleet.sshConfigPath, '--waves', '2,100%', '--max-fail', '1', '--health-check', 'sleep 3', '--wave-pause', '60'], { timeoutMs: 120_000 });
    let said = '';
    run.child.stdout?.on('data', (d: Buffer) => (said += d.toString()));
    const until = async (what: string, done: () => boolean): Promise<void> => {
      const deadline = Date.now() + 60_000;
      while (!done()) {
        if (Date.now() > deadline || run.child.exitCode !== null) throw new Error(`never ${what}:\n${said}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await until('switched host2', () => current(on(host2)) !== v1);
    // Its master connection (the deploying side's ssh client for host2) dies during its health check.
    const masters = sshMasters('host2');
    assert.ok(masters.length > 0, 'no ssh master to host2 of this fleet was found');
    for (const pid of masters) process.kill(pid, 'SIGKILL');
    await until('paused', () => /pausing 60 s before wave 2/.test(said));
    run.child.kill('SIGINT');
    const r = await run.done;
    assert.equal(r.code, 130, r.stdout + r.stderr);
    const v2 = current(on(host2));
    assert.notEqual(v2, v1, 'host2 got no word: it is still on the new release');
    assert.match(r.stderr, new RegExp(`^error: interrupted by SIGINT during the rollout; every other switched host was switched back from ${String(v2)}; host2 is still on ${String(v2)} \\(the connection was lost after the switch\\)$`, 'm'));
    const hint = /^hint: find out and reconcile on every host of this deploy \(recovery needs all of them\): (atomic-deploy status .*)$/m.exec(r.stderr);
    assert.ok(hint?.[1], r.stderr);
    assert.equal(current(on(fleet.hosts[0] as FleetHost)), v1);
    // The hint's command, as pasted into a shell that has no ATOMIC_DEPLOY_SSH_CONFIG (old code left
    // out the --ssh-config the deploy was given: "ssh: Could not resolve hostname host1").
    assert.match(hint[1] ?? '', new RegExp(`^atomic-deploy status --ssh-config ${fleet.sshConfigPath} ${root} --host host1 --host host2 --host host3$`));
    const words = (hint[1] ?? '').split(' ').slice(1);
    const status = await runCli(words, { timeoutMs: 120_000 });
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.match(status.stdout, new RegExp(`^all 3 hosts on ${v1}$`, 'm'));
  });

  // Old code: the canary failed its check, the budget had room, and the release went on to every
  // other host (exit 0, `deployed <id> to 2 of 3 hosts (not on: host1)`).
  void test('every host of a wave that is not the last fails (a canary) within the budget: the rollout stops there and goes back (exit 4)', async (t) => {
    const { root, on } = newRoot('canary');
    const v1 = String(jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release);
    sick(t, fleet.hosts[0] as FleetHost);
    const r = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--waves', '1,100%', '--max-fail', '1', ...HEALTH, '--json']);
    assert.equal(r.code, 4, r.stdout + r.stderr);
    const j = jsonOf<DeployJson>(r);
    assert.deepEqual(j.waves?.map((w) => w.result), ['failed', 'skipped']);
    assert.equal(j.error?.message, `release ${String(j.release)} was switched back on every host: the health check failed on host1; every host of wave 1 failed, which stops the rollout whatever the failure budget`);
    assert.deepEqual(j.hosts.map((h) => [h.host, h.outcome, h.current]), [['host1', 'switched-back', v1], ['host2', 'unchanged', v1], ['host3', 'unchanged', v1]]);
    assertOn(on, v1, undefined, true);
    for (const h of fleet.hosts.slice(1)) assert.deepEqual(fs.readdirSync(path.join(on(h), 'releases')), [v1], `${h.alias}: its wave never ran`);
    // Control: the same budget with the sick host in the last wave tolerates it, and the rest commit.
    fs.rmSync(path.join((fleet.hosts[0] as FleetHost).srvDir, 'sick'));
    sick(t, fleet.hosts[2] as FleetHost);
    const ok = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--waves', '1,100%', '--max-fail', '1', ...HEALTH, '--json']);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.deepEqual(jsonOf<DeployJson>(ok).tolerated, ['host3']);
  });

  // Old code: the object had no `waves` and the table no wave lines (docs: a rollout that fails or
  // is stopped shows its waves too).
  void test('the first wave fails with no budget: nothing was switched (exit 1), and --json and the table still show the waves', async (t) => {
    const { root, on } = newRoot('first');
    const v1 = String(jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release);
    sick(t, fleet.hosts[0] as FleetHost);
    const args = ['deploy', site(t, 'v2'), root, ...hostArgs, '--waves', '1,100%', '--before-switch', CHECK];
    const r = await cli([...args, '--json']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const j = jsonOf<DeployJson>(r);
    assert.match(j.error?.message ?? '', /^nothing was switched: host1: before-switch hook/);
    assert.deepEqual(j.waves?.map((w) => [w.wave, w.hosts, w.result, w.failed]), [[1, ['host1'], 'failed', ['host1']], [2, ['host2', 'host3'], 'skipped', undefined]]);
    assertOn(on, v1, j.release, false);
    const human = await cli(args);
    assert.equal(human.code, 1, human.stdout + human.stderr);
    assert.match(human.stdout, /^wave 1\/2 +failed +1 host .*failed: host1 +\(host1\)$/m);
    assert.match(human.stdout, /^wave 2\/2 +skipped +2 hosts +\(host2, host3\)$/m);
  });
});
