// Fleet deploys against real sshd hosts in network namespaces (test/harness/fleet.ts): one release
// to three hosts, all-or-nothing under a killed sshd, a failed switch, a lost link and a crash of
// the deploying process, each followed by the command that reconciles.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, releasedSnapshot, runCli, snapshot, spawnCli, tempDir, writeTree, type CliResult } from '../harness/cli.ts';
import { rootNamer, findTools, type FleetHost, currentOf as current } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';
import { holderGone, treeSnapshot, until } from '../harness/invariants.ts';

function isLink(p: string): boolean {
  try {
    return fs.lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

interface HostJson {
  host: string;
  root?: string;
  outcome?: string;
  current: string | null;
  previous?: string | null;
  leftovers?: boolean;
  transferred?: number;
  error?: { code: string; message: string };
}
interface FleetJson {
  release?: string;
  hosts: HostJson[];
  skewMs?: number;
  hostSkewMs?: number;
  consistent?: boolean;
  current?: string | null;
  error?: { code: string; message: string };
}

const { fleet, env, hostArgs, cli } = fleetSuite(3, { timeoutMs: 90_000, requires: () => findTools(['chattr']) });
/** A fresh remote root for each test, and where it lies on each host as this process sees it. */
const newRoot = rootNamer('t');

function releases(dir: string): string[] {
  try {
    return fs.readdirSync(path.join(dir, 'releases')).sort();
  } catch {
    return [];
  }
}

/** The release ids only: a lock holder's mount probe (`.stage.mount-probe.*`) sits in releases/ for an instant. */
function releaseIds(dir: string): string[] {
  return releases(dir).filter((name) => !name.startsWith('.'));
}

/** What a finished operation may leave in .tmp/: nothing of a deploy's own temporary state. */
function tmpLeftovers(dir: string): string[] {
  try {
    return fs.readdirSync(path.join(dir, '.tmp')).filter((n) => /^(current|stage|trash|link|lock)\./.test(n));
  } catch {
    return [];
  }
}

function locked(dir: string): boolean {
  return fs.existsSync(path.join(dir, '.deploy.lock'));
}

function assertClean(dir: string, label: string): void {
  assert.equal(locked(dir), false, `${label}: no lock left`);
  assert.deepEqual(tmpLeftovers(dir), [], `${label}: nothing left in .tmp/`);
  assert.equal(fs.existsSync(path.join(dir, '.atomic-deploy', 'journal.json')), false, `${label}: no journal left`);
}

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-src-'), {
    'index.html': `<h1>${version}</h1>\n`,
    'assets/app.js': 'console.log(1);\n',
    "assets/it's a $(file) ✓.txt": 'hostile name\n',
    'data/big.bin': 'x'.repeat(64 * 1024),
  });
}

void describe('fleet deploys over ssh to three namespace hosts', () => {
  void test('one release id and identical content on every host; --link-dest redeploys send only what changed', async (t) => {
    // A root no shell could take unquoted: quote, $(), a leading dash, non-ASCII.
    const { root, on } = newRoot("-it's $(x) ✓");
    const src = site(t, 'v1');
    const first = await cli(['deploy', src, root, ...hostArgs, '--json']);
    assert.equal(first.code, 0, first.stderr);
    const j1 = jsonOf<FleetJson>(first);
    assert.ok(j1.release);
    assert.equal(j1.hosts.length, 3);
    for (const h of fleet.hosts) {
      const dir = on(h);
      assert.equal(current(dir), j1.release, `${h.alias} is on the release`);
      assert.deepEqual(releases(dir), [j1.release]);
      assert.deepEqual(snapshot(path.join(dir, 'releases', j1.release)), releasedSnapshot(src), `${h.alias}: the release is the source, byte for byte`);
      assertClean(dir, h.alias);
      assert.equal(fs.readlinkSync(path.join(dir, 'current')), `releases/${j1.release}`, 'a relative link, as the local engine makes');
    }
    assert.ok(j1.skewMs !== undefined && j1.skewMs >= 0);
    assert.ok(j1.hostSkewMs !== undefined, 'every host reported its own switch time');

    fs.writeFileSync(path.join(src, 'index.html'), '<h1>v2</h1>\n');
    const second = await cli(['deploy', src, root, ...hostArgs, '--json']);
    assert.equal(second.code, 0, second.stderr);
    const j2 = jsonOf<FleetJson>(second);
    for (const h of j2.hosts) {
      assert.equal(h.outcome, 'switched');
      assert.equal(h.previous, j1.release);
      assert.equal(h.transferred, 1, `${h.host}: only the changed file was sent`);
    }
    for (const h of fleet.hosts) {
      const dir = on(h);
      assert.equal(current(dir), j2.release);
      const a: fs.Stats = fs.statSync(path.join(dir, 'releases', String(j1.release), 'data', 'big.bin'));
      const b: fs.Stats = fs.statSync(path.join(dir, 'releases', String(j2.release), 'data', 'big.bin'));
      assert.equal(a.ino, b.ino, `${h.alias}: an unchanged file is a hardlink to the previous release`);
      assert.equal(fs.readFileSync(path.join(dir, 'current', 'index.html'), 'utf8'), '<h1>v2</h1>\n');
    }

    const listed = jsonOf<FleetJson & { hosts: (HostJson & { releases: { id: string; current: boolean; role: string }[] })[] }>(await cli(['releases', root, ...hostArgs, '--json']));
    assert.equal(listed.consistent, true);
    assert.equal(listed.current, j2.release);
    for (const h of listed.hosts) assert.deepEqual(h.releases.map((r) => [r.id, r.role]), [[j2.release, 'active'], [j1.release, 'previous']]);

    const back = await cli(['rollback', root, ...hostArgs, '--json']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(jsonOf<FleetJson>(back).release, j1.release);
    for (const h of fleet.hosts) assert.equal(current(on(h)), j1.release);

    const status = jsonOf<FleetJson>(await cli(['status', root, ...hostArgs, '--json']));
    assert.equal(status.consistent, true);
    assert.equal(status.current, j1.release);
    assert.deepEqual(status.hosts.map((h) => h.host), ['host1', 'host2', 'host3']);
  });

  void test('a refused rollback changes nothing on any host, not even times, nor does one --to the release every host is on; rolling forward keeps the release it leaves good', async (t) => {
    const { root, on } = newRoot('refused');
    const ids: string[] = [];
    for (const v of ['v1', 'v2']) {
      const r = await cli(['deploy', site(t, v), root, ...hostArgs, '--json']);
      assert.equal(r.code, 0, r.stderr);
      ids.push(String(jsonOf<FleetJson>(r).release));
    }
    const [first, second] = ids as [string, string];
    // A folder made by hand on one host, empty there and holding a page on the others.
    for (const [i, h] of fleet.hosts.entries()) {
      fs.mkdirSync(path.join(on(h), 'releases', 'backup'));
      if (i > 0) fs.writeFileSync(path.join(on(h), 'releases', 'backup', 'index.html'), 'backup\n');
    }
    const times = (): string[][] => fleet.hosts.map((h) => treeSnapshot(on(h), { times: true }));
    for (const [args, code, message] of [
      [['--to', 'no-such-release'], 2, /no-such-release/],
      [['--to', 'backup'], 2, /release backup is an empty directory on host1: switching to it would serve nothing/],
    ] as const) {
      const before = times();
      // A dry run is refused alike: the same exit code and words, before any lock.
      for (const dry of [[], ['--dry-run']]) {
        const r = await cli(['rollback', root, ...hostArgs, ...args, ...dry, '--json']);
        assert.equal(r.code, code, r.stderr);
        assert.match(jsonOf<FleetJson>(r).error?.message ?? '', message);
        assert.deepEqual(times(), before, `rollback ${[...args, ...dry].join(' ')} changed a host`);
      }
    }
    // --to the release every host is on (a retry): exit 0, every host unchanged, no lock taken, as locally.
    const unchangedBefore = times();
    for (const dry of [[], ['--dry-run']]) {
      const r = await cli(['rollback', root, ...hostArgs, '--to', second, ...dry, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const same = jsonOf<FleetJson & { unchanged?: boolean }>(r);
      assert.deepEqual([same.release, same.unchanged, same.error], [second, true, undefined]);
      assert.deepEqual(same.hosts.map((h) => [h.host, h.outcome, h.current, h.previous]), fleet.hosts.map((h) => [h.alias, 'unchanged', second, second]));
      assert.deepEqual(times(), unchangedBefore, `rollback --to ${second} ${dry.join(' ')} changed a host`);
    }
    const sameHuman = await cli(['rollback', root, ...hostArgs, '--to', second]);
    assert.equal(sameHuman.code, 0, sameHuman.stderr);
    assert.match(sameHuman.stdout, new RegExp(`^release ${second} is already current on every host; nothing was changed$`, 'm'));

    // A dry run says where each host would go, and changes nothing, not even a time; a stale lock
    // (the bash tool's, its process gone) on host2 is a note: the rollback would take it over.
    await (fleet.hosts[1] as FleetHost).exec(['sh', '-c', 'mkdir -p "$1/.deploy.lock" && echo 999999 > "$1/.deploy.lock/pid"', 'sh', root]);
    const before = times();
    const dry = await cli(['rollback', root, ...hostArgs, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const plan = jsonOf<FleetJson & { dryRun?: boolean; notes?: string[] }>(dry);
    assert.equal(plan.dryRun, true);
    assert.deepEqual(plan.notes?.map((n) => n.replace(/locked by .*\(stale/, 'locked by … (stale')), ['host2: the root is locked by … (stale: process 999999 is gone): the rollback would take it over']);
    assert.match(dry.stderr, /^warning: host2: the root is locked by /m);
    // status says the lock as the local status does: holder, since when, and why it is stale.
    const lockStatus = await cli(['status', root, ...hostArgs, '--read-only']);
    assert.equal(lockStatus.code, 0, lockStatus.stderr);
    assert.match(lockStatus.stdout, /^host2 +\S+ +stale by .* since \d{4}-\d\d-\d\dT\S+ \(process 999999 is gone\)/m);
    assert.equal(plan.release, first);
    assert.deepEqual(plan.hosts.map((h) => [h.host, h.outcome, h.current]), fleet.hosts.map((h) => [h.alias, 'would-switch', second]));
    const dryHuman = await cli(['rollback', root, ...hostArgs, '--dry-run']);
    assert.equal(dryHuman.code, 0, dryHuman.stderr);
    assert.match(dryHuman.stdout, new RegExp(`^HOST +CURRENT +WOULD GO TO\\n(host\\d +${second} +${first}\\n){3}`, 'm'));
    assert.match(dryHuman.stdout, new RegExp(`^dry run: would roll back to ${first} on 3 hosts; nothing was changed$`, 'm'));
    assert.deepEqual(times(), before, 'a dry run changed a host');

    const back = await cli(['rollback', root, ...hostArgs, '--json']);
    assert.equal(back.code, 0, back.stderr);
    // Forward again: the release left (first) was good, only the one rolled back from is not.
    const forward = await cli(['rollback', root, ...hostArgs, '--to', second, '--json']);
    assert.equal(forward.code, 0, forward.stderr);
    const listed = jsonOf<FleetJson & { hosts: (HostJson & { releases: { id: string; status?: string; role: string }[] })[] }>(await cli(['releases', root, ...hostArgs, '--json']));
    for (const h of listed.hosts) {
      const roles = new Map(h.releases.map((r) => [r.id, r]));
      assert.equal(roles.get(second)?.role, 'active', h.host);
      assert.equal(roles.get(first)?.role, 'previous', `${h.host}: the release rolled forward from is not the rollback target`);
      assert.notEqual(roles.get(first)?.status, 'rolled-back', h.host);
    }
  });

  void test('deploy --dry-run --host: each host\'s plan (root to make, previous, prune, shared targets to make, a lock to take over), the deploy\'s refusals, and nothing written on any host', async (t) => {
    const { root, on } = newRoot('dry-deploy');
    const srvTimes = (): string[][] => fleet.hosts.map((h) => treeSnapshot(h.srvDir, { times: true }));
    // A first deploy's plan: every root would be made, and none is.
    const before = srvTimes();
    const first = await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--dry-run', '--json']);
    assert.equal(first.code, 0, first.stderr);
    const plan = jsonOf<{ dryRun: boolean; release: string; files: number; hosts: { host: string; previous: string | null; createsRoot: boolean; path: string }[] }>(first);
    assert.equal(plan.dryRun, true);
    assert.equal(plan.files, 4);
    assert.deepEqual(plan.hosts.map((h) => [h.host, h.previous, h.createsRoot, h.path]), fleet.hosts.map((h) => [h.alias, null, true, `${root}/releases/${plan.release}`]));
    assert.deepEqual(srvTimes(), before, 'a dry run made or touched something on a host');
    for (const v of ['v1', 'v2']) assert.equal((await cli(['deploy', site(t, v), root, ...hostArgs])).code, 0);
    const [v1, v2] = releaseIds(on(fleet.hosts[0] as FleetHost)) as [string, string];
    await (fleet.hosts[1] as FleetHost).exec(['sh', '-c', 'mkdir -p "$1/.deploy.lock" && echo 999999 > "$1/.deploy.lock/pid"', 'sh', root]);
    const times = (): string[][] => fleet.hosts.map((h) => treeSnapshot(on(h), { times: true }));
    const held = times();
    // A shared target missing everywhere is refused as the deploy refuses it, exit 2, before any lock.
    const missing = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--shared-file', '.env', '--dry-run', '--json']);
    assert.equal(missing.code, 2, missing.stderr);
    assert.equal(jsonOf<FleetJson>(missing).error?.code, 'SHARED_MISSING');
    // A release id a host already holds: the deploy's words.
    const taken = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--release-id', v1, '--dry-run']);
    assert.equal(taken.code, 2, taken.stderr);
    assert.match(taken.stderr, new RegExp(`release ${v1} already exists in ${root}/releases`));
    // The plan: v1 pruned with --keep 1 (v2 is the rollback target), .env made, the stale lock noted.
    const third = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--keep', '1', '--shared-file', '.env', '--shared-create', '--dry-run', '--json']);
    assert.equal(third.code, 0, third.stderr);
    const p3 = jsonOf<{ hosts: { host: string; previous: string; createsRoot: boolean; shared: { path: string; create: boolean }[]; prune: { remove: { id: string }[] }; notes: string[] }[] }>(third);
    for (const h of p3.hosts) {
      assert.equal(h.previous, v2, h.host);
      assert.equal(h.createsRoot, false, h.host);
      assert.deepEqual(h.shared.map((l) => [l.path, l.create]), [['.env', true]], h.host);
      assert.deepEqual(h.prune.remove.map((r) => r.id), [v1], h.host);
      assert.deepEqual(h.notes.map((n) => n.replace(/locked by .*\(stale/, 'locked by … (stale')), h.host === 'host2' ? ['the root is locked by … (stale: process 999999 is gone): the deploy would take it over'] : [], h.host);
    }
    const human = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--keep', '1', '--shared-file', '.env', '--shared-create', '--dry-run']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^dry run: nothing was changed on any host$/m);
    assert.match(human.stdout, new RegExp(`^HOST +PREVIOUS +PRUNE \\(keep 1\\) +NOTE\\nhost1 +${v2} +would remove ${v1} +shared/\\.env would be made$`, 'm'));
    assert.match(human.stdout, /^host2 .*shared\/\.env would be made; the root is locked by .*: the deploy would take it over$/m);
    assert.match(human.stderr, /^warning: host2: the root is locked by /m);
    // prune --dry-run alike: the lock noted on host2, as locally.
    type PruneJson = { hosts: { host: string; removed: { id: string; files?: number; bytes?: number }[]; notes?: string[] }[] };
    const prune = await cli(['prune', root, ...hostArgs, '--keep', '1', '--dry-run', '--json']);
    assert.equal(prune.code, 0, prune.stderr);
    for (const h of jsonOf<PruneJson>(prune).hosts) assert.equal(h.notes?.length ?? 0, h.host === 'host2' ? 1 : 0, `${h.host}: ${JSON.stringify(h.notes)}`);
    assert.match(prune.stderr, /^warning: host2: the root is locked by .*: the prune would take it over$/m);
    assert.deepEqual(times(), held, 'a dry run changed a host');
    // Each release a prune would remove with the file count and size its record gives, as locally.
    assert.equal((await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--keep', '0'])).code, 0);
    const sized = await cli(['prune', root, ...hostArgs, '--keep', '1', '--dry-run', '--json']);
    for (const h of jsonOf<PruneJson>(sized).hosts) assert.deepEqual(h.removed.map((r) => [r.id, r.files, typeof r.bytes]), [[v1, 4, 'number']], h.host);
    // A root path a host cannot make (a file there, a dangling link): refused as the deploy refuses it, exit 2.
    const bad = newRoot('dry-file');
    fs.writeFileSync(bad.on(fleet.hosts[1] as FleetHost), 'a file\n');
    fs.symlinkSync('/nonexistent/target', bad.on(fleet.hosts[2] as FleetHost));
    for (const dryOrNot of [['--dry-run'], []]) {
      const r = await cli(['deploy', site(t, 'v1'), bad.root, ...hostArgs, ...dryOrNot, '--json']);
      assert.equal(r.code, 2, `${dryOrNot.join('')}: ${r.stderr}`);
      // In the local engine's words, the dry run's as the deploy's (until 2026-12-07: `cannot create <root>` alone).
      assert.match(jsonOf<FleetJson>(r).error?.message ?? '', new RegExp(`^nothing was switched: host2: ${bad.root} is not a directory; host3: the deploy root ${bad.root} is a symbolic link to /nonexistent/target, which does not exist$`), dryOrNot.join(''));
    }
    assert.equal(fs.readFileSync(bad.on(fleet.hosts[1] as FleetHost), 'utf8'), 'a file\n');
    assert.equal(fs.existsSync(bad.on(fleet.hosts[0] as FleetHost)), false, 'the dry run and the refused deploy made no root on host1');
  });

  void test('a lock held on one host stops a second deploy with exit 3 before anything changes', async (t) => {
    const { root, on } = newRoot('locked');
    const src = site(t, 'v1');
    assert.equal((await cli(['deploy', src, root, ...hostArgs])).code, 0);
    const before = fleet.hosts.map((h) => releases(on(h)));
    const slow = spawnCli(['deploy', src, root, '--host', 'host2', '--before-switch', 'sleep 3'], { env });
    await until('host2 locked', () => locked(on(fleet.hosts[1] as FleetHost)));
    const second = await cli(['deploy', src, root, ...hostArgs, '--json']);
    assert.equal(second.code, 3, second.stderr);
    const j = jsonOf<FleetJson>(second);
    assert.equal(j.error?.code, 'LOCKED');
    assert.match(second.stderr, /host2: .* is locked by pid \d+ of root@host2/);
    // Its row says who holds the lock, as a local LOCKED error's `lock` does.
    const lockOf = (j.hosts.find((h) => h.host === 'host2')?.error as { lock?: { pid: number; user: string; host: string; since: string } } | undefined)?.lock;
    assert.ok(lockOf && Number.isInteger(lockOf.pid) && lockOf.user === 'root' && lockOf.host === 'host2' && !Number.isNaN(Date.parse(lockOf.since)), JSON.stringify(j.hosts));
    assert.equal((await slow.done).code, 0);
    // host1 and host3 were never changed by the refused deploy.
    for (const [i, h] of [fleet.hosts[0], fleet.hosts[2]].entries()) {
      assert.deepEqual(releases(on(h as FleetHost)), before[i === 0 ? 0 : 2]);
      assertClean(on(h as FleetHost), (h as FleetHost).alias);
    }
  });

  void test('SIGINT while a fleet rollback waits for a host\'s lock: exit 130, said so, every host\'s release in the report, nothing changed', async (t) => {
    const { root, on } = newRoot('rollback-signal');
    const v1 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release;
    const v2 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--json'])).release;
    assert.ok(v1 !== undefined && v2 !== undefined);
    const slow = spawnCli(['deploy', site(t, 'v3'), root, '--host', 'host2', '--before-switch', 'sleep 30'], { env, timeoutMs: 90_000 });
    await until('host2 locked', () => locked(on(fleet.hosts[1] as FleetHost)));
    const rollback = spawnCli(['rollback', root, ...hostArgs, '--wait', '60', '--json'], { env, timeoutMs: 90_000 });
    let err = '';
    rollback.child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    // It has locked host1 and host3 and waits for host2's.
    await until('the rollback to hold host1 and host3', () => locked(on(fleet.hosts[0] as FleetHost)) && locked(on(fleet.hosts[2] as FleetHost)));
    rollback.child.kill('SIGINT');
    const r = await rollback.done;
    slow.child.kill('SIGINT');
    await slow.done;
    assert.equal(r.code, 130, r.stderr);
    const j = jsonOf<FleetJson>(r);
    assert.equal(j.error?.code, 'INTERRUPTED');
    assert.equal(j.error?.message, 'interrupted by SIGINT before the switch; no host switched and nothing was rolled back');
    assert.deepEqual(j.hosts.map((h) => h.current), [v2, v2, v2], 'each host\'s release as it was read');
    for (const h of fleet.hosts) {
      assert.equal(current(on(h)), v2, `${h.alias} did not move`);
      assertClean(on(h), h.alias);
    }
    assert.doesNotMatch(err, /nothing was rolled back: $/m);
  });

  void test('an empty .deploy.lock/ on one host (a lock being taken, or the bash tool\'s) stops a fleet deploy with exit 3', async (t) => {
    const { root, on } = newRoot('empty-lock');
    const src = site(t, 'v1');
    assert.equal((await cli(['deploy', src, root, ...hostArgs])).code, 0);
    const before = fleet.hosts.map((h) => releases(on(h)));
    const lock = path.join(on(fleet.hosts[1] as FleetHost), '.deploy.lock');
    fs.mkdirSync(lock);
    const ino = fs.statSync(lock).ino;
    // Kept fresh, as a lock being taken is: a slow start under load must not age it past the grace period.
    const fresh = setInterval(() => fs.utimesSync(lock, new Date(), new Date()), 1000);
    const second = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--json']).finally(() => clearInterval(fresh));
    assert.equal(second.code, 3, second.stderr);
    assert.equal(jsonOf<FleetJson>(second).error?.code, 'LOCKED');
    assert.equal(fs.statSync(lock).ino, ino, 'the empty lock directory was replaced');
    assert.deepEqual(fs.readdirSync(lock), []);
    assert.deepEqual(fleet.hosts.map((h) => releases(on(h))), before);
    fs.rmdirSync(lock);
  });

  void test("sshd killed on one host during phase 1: no host switches, the others are clean, status reconciles", async (t) => {
    const { root, on } = newRoot('kill-phase1');
    const src = site(t, 'v1');
    const first = jsonOf<FleetJson>(await cli(['deploy', src, root, ...hostArgs, '--json']));
    const old = first.release as string;
    const host2 = fleet.hosts[1] as FleetHost;
    // The before-switch hook runs in releases/<id>: once it exists on host2, phase 1 is midway.
    const run = spawnCli(['deploy', src, root, ...hostArgs, '--json', '--before-switch', 'sleep 3'], { env, timeoutMs: 90_000 });
    try {
      await until('host2 to be in its before-switch hook', () => releaseIds(on(host2)).length === 2);
      await host2.killSshd();
      const r = await run.done;
      assert.equal(r.code, 1, r.stderr);
      const j = jsonOf<FleetJson>(r);
      assert.match(j.error?.message ?? '', /nothing was switched/);
      for (const h of j.hosts) {
        assert.equal(h.outcome, 'unchanged', `${h.host} did not switch`);
        assert.equal(h.current, old, `the report says ${h.host} is on ${old}`);
      }
      assert.equal(j.hosts[1]?.leftovers, true, 'the report says what stays on host2');
      for (const h of [fleet.hosts[0], fleet.hosts[2]] as FleetHost[]) {
        assert.equal(current(on(h)), old);
        assert.deepEqual(releases(on(h)), [old], `${h.alias}: the prepared release was removed`);
        assertClean(on(h), h.alias);
      }
      assert.equal(current(on(host2)), old, 'host2 never switched');
      // releases of a host not reached: not known (null), never an empty list it does not hold.
      const listed = await cli(['releases', root, ...hostArgs, '--json']);
      assert.equal(listed.code, 1, listed.stderr);
      const lj = jsonOf<{ hosts: (HostJson & { releases: { id: string }[] | null })[] }>(listed);
      assert.deepEqual(lj.hosts.map((h) => [h.host, h.releases?.map((x) => x.id) ?? null, h.current, h.error !== undefined]), [['host1', [old], old, false], ['host2', null, null, true], ['host3', [old], old, false]]);
      assert.match(lj.hosts[1]?.error?.message ?? '', /host2/);
    } finally {
      await host2.startSshd();
    }
    // host2's lock holder died with its connection: status takes the lock over and cleans up.
    const s = await cli(['status', root, '--host', 'host2', '--json']);
    assert.equal(s.code, 0, s.stderr);
    const js = jsonOf<FleetJson & { hosts: { recovered: string[] }[] }>(s);
    assert.ok((js.hosts[0]?.recovered ?? []).some((l) => /removed release/.test(l)), s.stdout);
    assert.deepEqual(releases(on(host2)), [old]);
    assertClean(on(host2), 'host2');
  });

  void test('a switch refused on one host in phase 2 switches the others back (exit 4)', async (t) => {
    const { root, on } = newRoot('phase2-fail');
    const src = site(t, 'v1');
    const old = jsonOf<FleetJson>(await cli(['deploy', src, root, ...hostArgs, '--json'])).release as string;
    const host2 = fleet.hosts[1] as FleetHost;
    // Armed means the new link already stands inside its directory (the directory appears first).
    const armedDir = (h: FleetHost): string | undefined => fs.readdirSync(path.join(on(h), '.tmp')).find((n) => /^current\.[0-9a-f]+$/.test(n) && isLink(path.join(on(h), '.tmp', n, 'current')));
    const run = spawnCli(['deploy', src, root, ...hostArgs, '--json'], { env, failpoints: 'fleet-armed=sleep:3000', timeoutMs: 90_000 });
    let immutable: string | undefined;
    try {
      await until('every host armed', () => fleet.hosts.every((h) => armedDir(h) !== undefined));
      immutable = path.join(on(host2), '.tmp', armedDir(host2) as string);
      // The new link cannot leave an immutable directory: host2's rename fails with EPERM.
      execFileSync('chattr', ['+i', immutable]);
      const r = await run.done;
      assert.equal(r.code, 4, r.stderr);
      const j = jsonOf<FleetJson>(r);
      assert.equal(j.error?.code, 'ROLLED_BACK');
      assert.deepEqual(j.hosts.map((h) => h.outcome), ['switched-back', 'unchanged', 'switched-back']);
      assert.match(j.hosts[1]?.error?.message ?? '', /switch failed/);
      for (const h of fleet.hosts) {
        assert.equal(current(on(h)), old, `${h.alias} is back on ${old}`);
        assert.equal(locked(on(h)), false, `${h.alias}: lock released`);
      }
      // The switched-back release stays on host1 and host3, recorded as rolled back.
      const rec = JSON.parse(fs.readFileSync(path.join(on(fleet.hosts[0] as FleetHost), '.atomic-deploy', 'releases', `${j.release}.json`), 'utf8')) as { status: string };
      assert.equal(rec.status, 'rolled-back');
      assert.deepEqual(releases(on(host2)), [old], 'host2: its prepared release was removed');
    } finally {
      if (immutable) execFileSync('chattr', ['-i', immutable]);
    }
    const s = await cli(['status', root, ...hostArgs, '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(jsonOf<FleetJson>(s).current, old);
    for (const h of fleet.hosts) assertClean(on(h), h.alias);
  });

  /**
   * A deploy of a new release into `root` (holding one already) killed between the switch and the
   * decision, host2's switch refused (its armed link made immutable): host1 and host3 on the new
   * release, host2 still on the old one, each with its journal.
   */
  async function crashBetweenSwitchAndDecision(t: { after(fn: () => void): void }, root: string, on: (h: FleetHost) => string): Promise<{ old: string; fresh: string }> {
    const src = site(t, 'v1');
    const old = jsonOf<FleetJson>(await cli(['deploy', src, root, ...hostArgs, '--json'])).release as string;
    const host2 = fleet.hosts[1] as FleetHost;
    // Armed means the new link already stands inside its directory (the directory appears first).
    const armedDir = (h: FleetHost): string | undefined => fs.readdirSync(path.join(on(h), '.tmp')).find((n) => /^current\.[0-9a-f]+$/.test(n) && isLink(path.join(on(h), '.tmp', n, 'current')));
    const run = spawnCli(['deploy', src, root, ...hostArgs], { env, failpoints: 'fleet-armed=sleep:3000,fleet-switched=crash', timeoutMs: 90_000 });
    let immutable: string | undefined;
    try {
      await until('every host armed', () => fleet.hosts.every((h) => armedDir(h) !== undefined));
      immutable = path.join(on(host2), '.tmp', armedDir(host2) as string);
      execFileSync('chattr', ['+i', immutable]);
      const r = await run.done;
      assert.equal(r.signal, 'SIGKILL');
    } finally {
      if (immutable) execFileSync('chattr', ['-i', immutable]);
    }
    const fresh = releases(on(fleet.hosts[0] as FleetHost)).find((id) => id !== old) as string;
    assert.equal(current(on(fleet.hosts[0] as FleetHost)), fresh, 'host1 switched before the crash');
    assert.equal(current(on(host2)), old, 'host2 did not');
    return { old, fresh };
  }

  void test('the deploying process dies between switch and decision: status finishes the all-or-nothing', async (t) => {
    const { root, on } = newRoot('crash');
    const { old } = await crashBetweenSwitchAndDecision(t, root, on);
    // The lock holders end with the dead process's connections; status then reconciles everyone.
    await until('the lock holders to be gone', () => fleet.hosts.every((h) => holderGone(on(h))), 45_000);
    const s = await cli(['status', root, ...hostArgs, '--json']);
    assert.equal(s.code, 0, s.stderr);
    const j = jsonOf<FleetJson & { hosts: { host: string; recovered: string[] }[] }>(s);
    assert.equal(j.consistent, true, s.stdout);
    assert.equal(j.current, old, 'a fleet deploy that did not switch everywhere is switched back everywhere');
    assert.ok(j.hosts[0]?.recovered.some((l) => /switched back/.test(l)), s.stdout);
    for (const h of fleet.hosts) {
      assert.equal(current(on(h)), old);
      assertClean(on(h), h.alias);
    }
  });

  // The same crash, then a status (or a prune) while host2, which never switched, cannot be
  // reached: it finished the deploy on host1 and host3 from their evidence alone ("finished
  // recording deploy … (it had switched)"), and once host2 answered, its copy of the release was
  // removed as never switched: the fleet split for good, `status` exit 0 saying `mixed`.
  void test('the same crash, reconciled while a host that did not switch is unreachable: left unfinished until it answers, then switched back everywhere', async (t) => {
    const { root, on } = newRoot('crash-unreached');
    const { old, fresh } = await crashBetweenSwitchAndDecision(t, root, on);
    const [host1, host2, host3] = fleet.hosts as [FleetHost, FleetHost, FleetHost];
    assert.equal(current(on(host3)), fresh);
    await until('the lock holders to be gone', () => fleet.hosts.every((h) => holderGone(on(h))), 45_000);
    const journal = (h: FleetHost): boolean => fs.existsSync(path.join(on(h), '.atomic-deploy', 'journal.json'));
    await host2.linkDown();
    try {
      const s = await cli(['status', root, ...hostArgs, '--json']);
      assert.equal(s.code, 1, s.stderr);
      for (const h of [host1, host3]) {
        assert.match(s.stderr, new RegExp(`^warning: ${h.alias}: the fleet deploy of ${fresh} is left unfinished here: host2, one of its hosts, was not reached`, 'm'));
        assert.ok(journal(h), `${h.alias}: its journal was cleared`);
        assert.equal(current(on(h)), fresh);
      }
      assert.doesNotMatch(s.stdout + s.stderr, /finished recording deploy/);
      // Prune takes each host alone: it does not finish a fleet deploy there.
      const p = await cli(['prune', root, ...hostArgs, '--keep', '1']);
      assert.equal(p.code, 1, p.stderr);
      assert.match(p.stderr + p.stdout, new RegExp(`host1: a fleet deploy of ${fresh} to host1, host2, host3 was cut off here and is not finished; prune does not finish it on one host alone`));
      assert.ok(journal(host1) && journal(host3));
    } finally {
      await host2.linkUp();
    }
    await until('host2 lock holder to be gone', () => holderGone(on(host2)), 45_000);
    const s = await cli(['status', root, ...hostArgs, '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(jsonOf<FleetJson>(s).current, old, s.stdout);
    for (const h of fleet.hosts) {
      assert.equal(current(on(h)), old, h.alias);
      assertClean(on(h), h.alias);
    }
  });

  // Fleet status during a deploy called its journal "the journal of an interrupted deploy" on
  // every host; the local status says `running:` for a journal under a live lock.
  void test('status during a running deploy says running on each host, not interrupted, and recovers nothing', async (t) => {
    const { root, on } = newRoot('running');
    const src = site(t, 'v1');
    assert.equal((await cli(['deploy', src, root, ...hostArgs])).code, 0);
    const run = spawnCli(['deploy', src, root, ...hostArgs, '--before-switch', 'sleep 5'], { env, timeoutMs: 120_000 });
    try {
      await until('every host to be in its before-switch hook', () => fleet.hosts.every((h) => releaseIds(on(h)).length === 2));
      const s = await cli(['status', root, ...hostArgs, '--json']);
      assert.equal(s.code, 0, s.stderr);
      const hosts = jsonOf<{ hosts: { host: string; running?: string; leftovers: string[]; recovered: string[] }[] }>(s).hosts;
      for (const h of hosts) {
        assert.match(h.running ?? '', /^deploy of release \S+ \(phase ready\)$/, JSON.stringify(h));
        assert.deepEqual([h.leftovers, h.recovered], [[], []], h.host);
      }
      const human = await cli(['status', root, ...hostArgs, '--read-only']);
      assert.match(human.stdout, /running: deploy of release/);
      assert.doesNotMatch(human.stdout, /interrupted/);
    } finally {
      const r = await run.done;
      assert.equal(r.code, 0, r.stderr);
    }
  });

  void test('a host whose link goes down midway: a clear report, and status reconciles once it is back', async (t) => {
    const { root, on } = newRoot('link-down');
    const src = site(t, 'v1');
    const old = jsonOf<FleetJson>(await cli(['deploy', src, root, ...hostArgs, '--json'])).release as string;
    const host3 = fleet.hosts[2] as FleetHost;
    const run = spawnCli(['deploy', src, root, ...hostArgs, '--before-switch', 'sleep 4'], { env, timeoutMs: 120_000 });
    let r: CliResult;
    try {
      await until('host3 to be in its before-switch hook', () => releaseIds(on(host3)).length === 2);
      await host3.linkDown();
      r = await run.done;
    } finally {
      await host3.linkUp();
    }
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /nothing was switched/);
    assert.match(r.stdout, /host3 +unchanged +\S+ .*(connection lost|failed).*may remain/);
    for (const h of [fleet.hosts[0], fleet.hosts[1]] as FleetHost[]) {
      assert.deepEqual(releases(on(h)), [old]);
      assertClean(on(h), h.alias);
    }
    // Until host3's lock holder notices its connection is gone, status reports the lock as held.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ro = jsonOf<{ hosts: { lock: { state: string } | null }[] }>(await cli(['status', root, '--host', 'host3', '--json', '--read-only']));
      const lock = ro.hosts[0]?.lock;
      if (lock === null || lock?.state === 'stale') break;
      assert.ok(Date.now() < deadline, 'host3 lock holder did not go away');
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    const s = await cli(['status', root, ...hostArgs, '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(jsonOf<FleetJson>(s).current, old);
    assert.deepEqual(releases(on(host3)), [old]);
    assertClean(on(host3), 'host3');
  });

  void test("the config file's hosts: list, each with its own root or the common one", async (t) => {
    const a = newRoot('config-a');
    const b = newRoot('config-b');
    const dir = tempDir(t, 'fleet-config-');
    const src = site(t, 'v1');
    fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), `root: ${b.root}\nsource: ${src}\nhosts:\n  - host: host1\n    root: ${a.root}\n  - host: host2\n`);
    const r = await runCli(['deploy', '--json'], { env, cwd: dir, timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    const j = jsonOf<FleetJson>(r);
    assert.deepEqual(j.hosts.map((h) => [h.host, h.root]), [['host1', a.root], ['host2', b.root]]);
    assert.equal(current(a.on(fleet.hosts[0] as FleetHost)), j.release);
    assert.equal(current(b.on(fleet.hosts[1] as FleetHost)), j.release);
    // --host on the command line replaces the list.
    const s = await runCli(['status', '--host', 'host2', '--json'], { env, cwd: dir });
    assert.deepEqual(jsonOf<FleetJson>(s).hosts.map((h) => h.host), ['host2']);
  });

  void test('unlock --host removes a stale lock, refuses a live one without --force (exit 3)', async () => {
    const { root, on } = newRoot('unlock');
    const h1 = fleet.hosts[0] as FleetHost;
    // A lock in the classic bash format whose process is gone, and a live one held by a sleeping shell.
    await h1.exec(['sh', '-c', 'mkdir -p "$1/.deploy.lock" && echo 999999 > "$1/.deploy.lock/pid"', 'sh', root]);
    const r1 = await cli(['unlock', root, '--host', 'host1', '--json']);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal((jsonOf<{ hosts: { unlocked: boolean }[] }>(r1).hosts[0])?.unlocked, true);
    assert.equal(locked(on(h1)), false);
    const sleeper = h1.exec(['sh', '-c', 'mkdir -p "$1/.deploy.lock" && echo $$ > "$1/.deploy.lock/pid" && exec sleep 20', 'sh', root]);
    await until('live lock', () => fs.existsSync(path.join(on(h1), '.deploy.lock', 'pid')));
    const r2 = await cli(['unlock', root, '--host', 'host1']);
    assert.equal(r2.code, 3, r2.stderr);
    assert.match(r2.stderr, /--force/);
    const sleeperPid = Number(fs.readFileSync(path.join(on(h1), '.deploy.lock', 'pid'), 'utf8').trim());
    const r3 = await cli(['unlock', root, '--host', 'host1', '--force']);
    assert.equal(r3.code, 0, r3.stderr);
    assert.equal(locked(on(h1)), false);
    // The pid namespace is shared with the hosts: the sleeping holder is ours to end by its pid.
    process.kill(sleeperPid, 'SIGTERM');
    await sleeper;
  });
});
