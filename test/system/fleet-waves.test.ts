// Rolling waves over four namespace hosts: the first wave switches before the others (judged by
// the ctime the rename gave each host's link), a health check failing in a later wave switches
// every host back, --max-fail tolerates and names a failed host, and a host that dies between
// waves stops the rollout.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { rootNamer, type FleetHost, currentOf as current } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

interface HostJson {
  host: string;
  outcome?: string;
  current: string | null;
  health?: string;
  error?: { code: string; message: string };
}
interface WaveJson {
  wave: number;
  hosts: string[];
  result: string;
  startedAt?: string;
  durationMs?: number;
  failed?: string[];
}
interface DeployJson {
  release?: string;
  hosts: HostJson[];
  waves?: WaveJson[];
  tolerated?: string[];
  error?: { code: string; message: string; hint?: string };
}

const { fleet, env, hostArgs, cli } = fleetSuite(4, { timeoutMs: 180_000 });
/** A fresh remote root for each test, and where it lies on each host as this process sees it. */
const newRoot = rootNamer('w');

/** The link's ctime in ns: set by the rename that made it current. */
function linkCtimeNs(dir: string): bigint {
  return fs.lstatSync(path.join(dir, 'current'), { bigint: true }).ctimeNs;
}

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-waves-'), { 'index.html': `<h1>${version}</h1>\n`, 'app.js': 'run();\n' });
}

/** Fails on the host whose /srv holds a file named `sick`. */
const HEALTH = ['--health-check', 'test ! -e /srv/sick', '--health-timeout', '1'];

void describe('rolling waves over four namespace hosts', () => {
  void test('--waves 1,100%: the first host switches, is health-checked, and only then do the others switch', async (t) => {
    const { root, on } = newRoot('order');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const result = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--waves', '1,100%', '--wave-pause', '1', ...HEALTH, '--json']);
    // The JSON too: its host rows name the error of a host whose switch did not complete (once, in a full run).
    assert.equal(result.code, 0, `${result.stderr}\n${result.stdout}`);
    const j = jsonOf<DeployJson>(result);
    assert.deepEqual(j.waves?.map((w) => [w.hosts, w.result]), [
      [['host1'], 'ok'],
      [['host2', 'host3', 'host4'], 'ok'],
    ]);
    for (const h of fleet.hosts) assert.equal(current(on(h)), j.release);
    const [first, ...rest] = fleet.hosts.map((h) => linkCtimeNs(on(h)));
    // The pause alone puts a second between the waves; a single wave would switch all within ms.
    for (const later of rest) assert.ok((first as bigint) + 1_000_000_000n <= later, `host1 switched at ${first}, a later host at ${later}`);
    // Control: one wave (the default) switches every host within the same second, so the check above can fail.
    assert.equal((await cli(['deploy', site(t, 'v2b'), root, ...hostArgs, ...HEALTH])).code, 0);
    const once = fleet.hosts.map((h) => linkCtimeNs(on(h)));
    const spread = once.reduce((a, b) => (a > b ? a : b)) - once.reduce((a, b) => (a < b ? a : b));
    assert.ok(spread < 1_000_000_000n, `one wave switched within ${spread} ns`);
    const human = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--waves', '1,10%,100%']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^wave 1\/3 +ok +1 host .*\(host1\)$/m);
    assert.match(human.stdout, /^wave 3\/3 +ok +2 hosts .*\(host3, host4\)$/m);
    assert.ok(human.stdout.indexOf('wave 3/3') < human.stdout.indexOf('HOST'), 'wave lines come before the host table');
  });

  void test('a health check failing on a host in a later wave switches every host back, the first wave too (exit 4)', async (t) => {
    const { root, on } = newRoot('sick');
    const v1 = jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json']));
    const host3 = fleet.hosts[2] as FleetHost;
    fs.writeFileSync(path.join(host3.srvDir, 'sick'), '');
    t.after(() => fs.rmSync(path.join(host3.srvDir, 'sick'), { force: true }));
    const result = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--waves', '1,100%', ...HEALTH, '--json']);
    assert.equal(result.code, 4, result.stderr);
    const j = jsonOf<DeployJson>(result);
    assert.equal(j.error?.code, 'ROLLED_BACK');
    assert.deepEqual(j.waves?.map((w) => w.result), ['ok', 'failed']);
    assert.deepEqual(j.waves?.[1]?.failed, ['host3']);
    for (const h of fleet.hosts) assert.equal(current(on(h)), v1.release, `${h.alias} is back on the release it had`);
    assert.equal(j.hosts.find((h) => h.host === 'host1')?.outcome, 'switched-back');
  });

  void test('--max-fail 1 tolerates one failing host, names it, and commits the rest (exit 0)', async (t) => {
    const { root, on } = newRoot('budget');
    const v1 = jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json']));
    const host3 = fleet.hosts[2] as FleetHost;
    fs.writeFileSync(path.join(host3.srvDir, 'sick'), '');
    t.after(() => fs.rmSync(path.join(host3.srvDir, 'sick'), { force: true }));
    const result = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--waves', '2,100%', '--max-fail', '1', ...HEALTH]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, /failure budget .*host3 failed/);
    // The result line counts the hosts the release is live on (it said "to 4 hosts").
    assert.match(result.stdout + result.stderr, /deployed \S+ to 3 of 4 hosts \(not on: host3\)/);
    const v2 = current(on(fleet.hosts[0] as FleetHost));
    assert.notEqual(v2, v1.release);
    for (const h of fleet.hosts) assert.equal(current(on(h)), h === host3 ? v1.release : v2, h.alias);
    // A second failure is beyond the same budget: everything goes back.
    fs.writeFileSync(path.join((fleet.hosts[0] as FleetHost).srvDir, 'sick'), '');
    t.after(() => fs.rmSync(path.join((fleet.hosts[0] as FleetHost).srvDir, 'sick'), { force: true }));
    const over = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--waves', '1,100%', '--max-fail', '1', ...HEALTH]);
    assert.equal(over.code, 4, over.stderr);
    for (const h of fleet.hosts) assert.equal(current(on(h)), h === host3 ? v1.release : v2, `${h.alias} is where it was`);
  });

  void test('--on-failure keep: a host whose health check failed stays on the release with the others, and the error says it is live everywhere', async (t) => {
    const { root, on } = newRoot('keep');
    await cli(['deploy', site(t, 'v1'), root, ...hostArgs]);
    const host3 = fleet.hosts[2] as FleetHost;
    fs.writeFileSync(path.join(host3.srvDir, 'sick'), '');
    t.after(() => fs.rmSync(path.join(host3.srvDir, 'sick'), { force: true }));
    const result = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--on-failure', 'keep', ...HEALTH, '--json']);
    assert.equal(result.code, 1, result.stderr);
    const j = jsonOf<DeployJson>(result);
    for (const h of fleet.hosts) assert.equal(current(on(h)), j.release, `${h.alias} is on the new release`);
    assert.equal(j.error?.message, `release ${j.release ?? ''} is live on every host, the failed ones included (--on-failure keep): host3: health check failed: command "test ! -e /srv/sick" exited with code 1`);
    // The hint names the way back, and it works as pasted (old code: no hint at all).
    const wayBack = /^to take the hosts back to the release they had: atomic-deploy (rollback .*)$/.exec(j.error?.hint ?? '');
    assert.ok(wayBack?.[1], `the hint names the rollback: ${String(j.error?.hint)}`);
    const back = await cli((wayBack[1] ?? '').split(' '));
    assert.equal(back.code, 0, back.stdout + back.stderr);
    for (const h of fleet.hosts) assert.notEqual(current(on(h)), j.release, `${h.alias} went back`);
  });

  void test('a host that dies between waves stops the rollout and the first wave switches back', async (t) => {
    const { root, on } = newRoot('dies');
    const v1 = jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json']));
    const host1 = fleet.hosts[0] as FleetHost;
    const host4 = fleet.hosts[3] as FleetHost;
    const run = spawnCli(['deploy', site(t, 'v2'), root, ...hostArgs, '--waves', '1,100%', '--wave-pause', '4', '--json'], { env, timeoutMs: 180_000 });
    const deadline = Date.now() + 60_000;
    while (current(on(host1)) === v1.release) {
      if (Date.now() > deadline) throw new Error('wave 1 never switched');
      await new Promise((r) => setTimeout(r, 50));
    }
    await host4.killSshd();
    t.after(() => host4.startSshd());
    const result = await run.done;
    assert.notEqual(result.code, 0, result.stderr);
    const j = jsonOf<DeployJson>(result);
    // Only the host that failed: the others of its wave were prepared, then not switched (the budget was spent).
    assert.deepEqual(j.waves?.[1]?.failed, ['host4'], JSON.stringify(j.waves));
    assert.match(j.error?.message ?? '', /host4/);
    for (const h of fleet.hosts.slice(0, 3)) assert.equal(current(on(h)), v1.release, `${h.alias} is on the release it had`);
  });

  /**
   * A rollout (`deploy <args> --waves 1,100% --wave-pause 60`) killed with SIGKILL in its pause after
   * wave 1; returns what `seen` reads once it paused (before the kill).
   */
  async function killInPause<T>(args: string[], seen: () => T): Promise<T> {
    const run = spawnCli(['deploy', ...args, ...hostArgs, '--waves', '1,100%', '--wave-pause', '60'], { env, timeoutMs: 180_000 });
    let out = '';
    run.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 60_000;
    while (!/pausing/.test(out)) {
      if (Date.now() > deadline) throw new Error(`the rollout never paused after wave 1:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const value = seen();
    run.child.kill('SIGKILL');
    await run.done;
    return value;
  }

  void test('the deploying process killed (-9) in the pause after wave 1: status with the same hosts switches wave 1 back, and the fleet is one release again', async (t) => {
    const { root, on } = newRoot('killed');
    const v1 = jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json']));
    const host1 = fleet.hosts[0] as FleetHost;
    const v2 = await killInPause([site(t, 'v2'), root], () => current(on(host1)));
    assert.notEqual(v2, v1.release, 'wave 1 switched');
    for (const h of fleet.hosts.slice(1)) assert.equal(current(on(h)), v1.release, `${h.alias} was in a later wave`);

    const status = await cli(['status', root, ...hostArgs]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`host1: recovered: switched back to ${v1.release ?? ''} from ${v2 ?? ''} \\(the fleet deploy did not switch on every host\\)`));
    for (const h of fleet.hosts) assert.equal(current(on(h)), v1.release, `${h.alias} is on the release the fleet had`);
    const record = JSON.parse(fs.readFileSync(path.join(on(host1), '.atomic-deploy', 'releases', `${v2 ?? ''}.json`), 'utf8')) as { status: string };
    assert.equal(record.status, 'rolled-back');
    // The next deploy goes ahead on every host: the killed deploy's locks were stale.
    const next = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--json']);
    assert.equal(next.code, 0, next.stderr);
    for (const h of fleet.hosts) assert.equal(current(on(h)), jsonOf<DeployJson>(next).release);
  });

  // The dry runs planned from the hosts as they stood, not as their commands find them once they
  // recovered: after a rollout killed in its pause, rollback --dry-run named the release before the
  // killed one, and the rollback (which first switches wave 1 back) went one further.
  void test('killed in the pause after wave 1: rollback --dry-run and deploy --dry-run plan from the fleet as their commands recover it, and the commands do what they said', async (t) => {
    const killedRollout = async (name: string): Promise<{ root: string; on: (h: FleetHost) => string; v0: string; v1: string; v2: string }> => {
      const { root, on } = newRoot(name);
      const v0 = String(jsonOf<DeployJson>(await cli(['deploy', site(t, 'v0'), root, ...hostArgs, '--json', '--keep', '0'])).release);
      const v1 = String(jsonOf<DeployJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json', '--keep', '0'])).release);
      const v2 = String(await killInPause([site(t, 'v2'), root, '--keep', '0'], () => current(on(fleet.hosts[0] as FleetHost))));
      assert.notEqual(v2, v1, 'wave 1 switched');
      return { root, on, v0, v1, v2 };
    };
    const snap = (on: (h: FleetHost) => string): string[] => fleet.hosts.map((h) => JSON.stringify(fs.readdirSync(on(h), { recursive: true }).sort()) + String(current(on(h))));

    // The killed deploy's programs on the hosts end on their own once its connections are gone (a
    // heartbeat file, a half-written record removed): the hosts are left to settle before the
    // snapshot, or their own clean-up would be taken for the dry run's doing.
    const settled = async (on: (h: FleetHost) => string): Promise<string[]> => {
      let last = snap(on);
      for (let i = 0; i < 60; i++) {
        await new Promise((r) => setTimeout(r, 500));
        const now = snap(on);
        if (JSON.stringify(now) === JSON.stringify(last) && !now.some((x) => /\.put\.|\/beat\./.test(x))) return now;
        last = now;
      }
      throw new Error(`the hosts never settled after the kill:\n${last.join('\n')}`);
    };
    const a = await killedRollout('dry-killed-a');
    const before = await settled(a.on);
    const dry = await cli(['rollback', a.root, ...hostArgs, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const plan = jsonOf<{ release: string; notes: string[]; hosts: { host: string; current: string }[] }>(dry);
    assert.equal(plan.release, a.v0, 'once wave 1 is switched back, every host is on v1: the rollback goes to v0');
    assert.ok(plan.notes.some((n) => n === `host1: the rollback would recover first: switch back to ${a.v1} from ${a.v2} (the fleet deploy did not switch on every host)`), plan.notes.join('\n'));
    assert.equal(plan.hosts[0]?.current, a.v2, 'the table shows host1 as it is now');
    assert.deepEqual(snap(a.on), before, 'the dry run changed a host');
    const real = await cli(['rollback', a.root, ...hostArgs, '--json']);
    assert.equal(real.code, 0, real.stderr);
    assert.equal(jsonOf<{ release: string }>(real).release, plan.release);

    const b = await killedRollout('dry-killed-b');
    const deployDry = await cli(['deploy', site(t, 'v3'), b.root, ...hostArgs, '--keep', '1', '--release-id', 'n3', '--dry-run', '--json']);
    assert.equal(deployDry.code, 0, deployDry.stderr);
    const dp = jsonOf<{ hosts: { host: string; previous: string; prune: { remove: { id: string }[] } }[] }>(deployDry);
    for (const h of dp.hosts) assert.equal(h.previous, b.v1, `${h.host}: the deploy replaces v1 once wave 1 went back`);
    const listing = (h: FleetHost): string[] => fs.readdirSync(path.join(b.on(h), 'releases')).filter((n) => !n.startsWith('.'));
    const had = fleet.hosts.map(listing);
    const deployed = await cli(['deploy', site(t, 'v3'), b.root, ...hostArgs, '--keep', '1', '--release-id', 'n3', '--json']);
    assert.equal(deployed.code, 0, deployed.stderr);
    for (const [i, h] of fleet.hosts.entries()) {
      const gone = (had[i] ?? []).filter((id) => !listing(h).includes(id));
      assert.deepEqual(gone.sort(), (dp.hosts[i]?.prune.remove ?? []).map((r) => r.id).sort(), `${h.alias}: the deploy pruned other releases than its plan`);
    }
  });
});
