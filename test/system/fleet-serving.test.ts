// After the switch on every fleet host: processes still running from the release each host left
// are named with their host (human output and JSON) and counted in its release record; --stale
// fail waits, then exits 6 with the switch standing, or succeeds when they go in time; a process
// that has exited is not named. Reloads run on every host after the switch, after a fleet
// rollback and after an automatic rollback, through a stand-in `systemctl` on each host's PATH
// that records its arguments (CI has no running systemd).
// test-runner: alone (lock holders' leases and --stale-wait are timed)
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { jsonOf, spawnCli, tempDir, writeTree, type CliResult } from '../harness/cli.ts';
import { findTools, rootNamer, startHolder, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

interface StaleJson {
  processes: { host: string; pid: number; command: string; holds: { kind: string; path: string }[] }[];
  hosts: { host: string; check: string; release: string; count: number }[];
}
interface FleetJson {
  release?: string;
  hosts: { host: string; current: string | null; outcome?: string; leftovers?: boolean }[];
  stale?: StaleJson;
  error?: { code: string; message: string };
}

const { fleet, env, hostArgs, cli } = fleetSuite(2, { timeoutMs: 180_000 });
/** A fresh remote root for each test, and where it lies on each host as this process sees it. */
const newRoot = rootNamer('s');

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-serving-'), { 'index.html': `<h1>${version}</h1>\n`, 'app.js': 'run();\n' });
}

function currentOf(dir: string): string {
  return path.basename(fs.readlinkSync(path.join(dir, 'current')));
}

function readlinkOr(p: string): string | undefined {
  try {
    return fs.readlinkSync(p);
  } catch {
    return undefined;
  }
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function gone(pid: number): Promise<void> {
  kill(pid);
  while (fs.existsSync(`/proc/${pid}`)) await sleep(10);
}

/** The holder's open files, and every process that shares one of its pipes or sockets (command line, parent). */
function describeHolder(pid: number): string {
  const fdsOf = (p: string): string[] => {
    try {
      return fs.readdirSync(`/proc/${p}/fd`).map((f) => readlinkOr(`/proc/${p}/fd/${f}`) ?? '?');
    } catch {
      return [];
    }
  };
  const mine = new Set(fdsOf(String(pid)).filter((f) => /^(pipe|socket):/.test(f)));
  const sharing: string[] = [];
  for (const p of fs.readdirSync('/proc').filter((x) => /^\d+$/.test(x) && x !== String(pid))) {
    const shared = fdsOf(p).filter((f) => mine.has(f));
    if (shared.length === 0) continue;
    const stat = readOr(`/proc/${p}/stat`);
    sharing.push(`pid ${p} (parent ${stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] ?? '?'}) ${readOr(`/proc/${p}/cmdline`).replaceAll('\0', ' ').slice(0, 160)}: ${shared.join(' ')}`);
  }
  return `holder ${pid} ${readOr(`/proc/${pid}/cmdline`).replaceAll('\0', ' ').slice(0, 80)}; fds ${fdsOf(String(pid)).join(' ')}; sharing: ${sharing.join('; ') || 'none'}`;
}

function readOr(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Waits until the lock holder of the command just cut off on this host has gone: with its
 * connection, or once no heartbeat has come for the lease (30 s; docs/fleet.md), the next
 * command finding the lock held until then. One that outlives its killed sshd by 2 s is described.
 */
async function holderGone(t: { diagnostic(message: string): void }, dir: string): Promise<void> {
  const pid = Number(readOr(path.join(dir, '.deploy.lock', 'pid')).trim());
  if (!(pid > 1)) return;
  const started = Date.now();
  let described = false;
  while (fs.existsSync(`/proc/${pid}`)) {
    if (!described && Date.now() - started > 2000) {
      described = true;
      t.diagnostic(`the lock holder outlived its connection by 2 s: ${describeHolder(pid)}`);
    }
    assert.ok(Date.now() - started < 40_000, `lock holder ${pid} still runs 40 s after its connection was cut (its lease is 30 s)`);
    await sleep(50);
  }
  if (described) t.diagnostic(`the lock holder went ${Date.now() - started} ms after the command ended`);
}

/** Programs (sh scripts) first on each host's PATH: <srv>/<name>/bin, named by the host's own /root/.bashrc. */
function firstOnPath(name: string, programs: Record<string, string>): void {
  for (const h of fleet.hosts) {
    const bin = path.join(h.srvDir, name, 'bin');
    fs.mkdirSync(bin, { recursive: true });
    for (const [file, body] of Object.entries(programs)) fs.writeFileSync(path.join(bin, file), `#!/bin/sh\n${body}`, { mode: 0o755 });
    const home = path.join(path.dirname(h.srvDir), 'root');
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(path.join(home, '.bashrc'), `PATH=/srv/${name}/bin:$PATH\n`);
  }
}

/** A stand-in `systemctl` first on each host's PATH: it knows every unit and appends the arguments of every other call to <srv>/<name>/calls. */
function standInSystemctl(name: string): (h: FleetHost) => string[] {
  // `show` is the check made before the lock (the unit is loaded); only the reloads are recorded.
  firstOnPath(name, { systemctl: `if [ "$1" = show ]; then echo loaded; exit 0; fi\necho "$*" >> /srv/${name}/calls\necho "stand-in systemctl $*"\n` });
  return (h) => {
    const file = path.join(h.srvDir, name, 'calls');
    return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n') : [];
  };
}

/** What the lost-host test sees and slows on a host, by stand-ins first on its PATH that then run the real program. */
interface ScanProbes {
  /** How many stale-process scans the host has begun (their `ls` of every process's cwd and mount namespace). */
  scans(h: FleetHost): number;
  /** The host's first sync after its `current` leaves `dir`'s release of now takes 2 s more, as a syncfs can behind heavy writeback. */
  slowAfterSwitch(h: FleetHost, dir: string): void;
}

function scanProbes(name: string): ScanProbes {
  const real = findTools(['ls', 'sync']);
  const marker = `/srv/${name}/slow`;
  firstOnPath(name, {
    ls: `case "$*" in *"/cwd "*"/ns/mnt"*) echo scan >> /srv/${name}/scans ;; esac\nexec '${real.ls}' "$@"\n`,
    // `sync -f ROOT`: once current no longer names the release the marker holds, the switch has happened.
    sync: `if [ -n "$2" ] && [ -e ${marker} ] && [ "$(readlink "$2/current")" != "$(cat ${marker})" ]; then rm -f ${marker}; sleep 2; fi\nexec '${real.sync}' "$@"\n`,
  });
  return {
    scans: (h) => {
      const file = path.join(h.srvDir, name, 'scans');
      return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
    },
    slowAfterSwitch: (h, dir) => fs.writeFileSync(path.join(h.srvDir, name, 'slow'), fs.readlinkSync(path.join(dir, 'current'))),
  };
}

/**
 * Runs the command and cuts `h` off (every sshd of it killed) once its stale-process scan is
 * waiting for a holder of the release left (`--stale-wait 30`): the check there cannot be made,
 * nor the commit heard. Returns once the host's lock holder has gone; sshd is started again
 * before returning.
 */
async function loseDuringStaleWait(t: { diagnostic(message: string): void }, args: string[], h: FleetHost, dir: string, probes: ScanProbes): Promise<CliResult> {
  const before = currentOf(dir);
  const scanned = probes.scans(h);
  const run = spawnCli(args, { env, timeoutMs: 180_000 });
  let ended: CliResult | undefined;
  void run.done.then((r) => (ended = r));
  const deadline = Date.now() + 60_000;
  // Until `ready`: a command that ends first, or 60 s, fails the test with what the command said.
  const awaitState = async (ready: () => boolean, what: string): Promise<void> => {
    while (!ready()) {
      if (ended || Date.now() > deadline) {
        run.child.kill('SIGKILL');
        const r = await run.done;
        throw new Error(`${h.alias} ${what} (${ended ? 'the command ended' : 'in 60 s'}): exit ${String(r.code ?? r.signal)}\n${r.stderr}`);
      }
      await sleep(20);
    }
  };
  try {
    await awaitState(() => currentOf(dir) !== before, 'never switched');
    // Waiting once a second scan has begun (the first found the holder). No time after the switch
    // stands for that: the host's journal, its syncfs and its verdict come between, then the decision.
    await awaitState(() => probes.scans(h) >= scanned + 2, 'never waited for the holder');
    await h.killSshd();
    const result = await run.done;
    await holderGone(t, dir);
    return result;
  } finally {
    await h.startSshd();
  }
}

void describe('serving after the switch on two namespace hosts', () => {
  void test('a process on the release left is named with its host in JSON and counted in the record; one that exited is not', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('named');
    const first = await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json']);
    assert.equal(first.code, 0, first.stderr);
    const r1 = jsonOf<FleetJson>(first).release as string;
    const holder = await startHolder(t, h1, root);
    const exitedHolder = await startHolder(t, h1, root);
    await gone(exitedHolder);

    const second = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--json']);
    assert.equal(second.code, 0, second.stderr);
    const j = jsonOf<FleetJson>(second);
    const r2 = j.release as string;
    assert.equal(currentOf(on(h1)), r2);
    assert.deepEqual(j.stale?.processes, [{ host: h1.alias, pid: holder, command: 'sleep', holds: [{ kind: 'cwd', path: `${root}/releases/${r1}` }] }]);
    assert.deepEqual(j.stale?.hosts, [
      { host: h1.alias, check: 'proc', release: r1, count: 1 },
      { host: h2.alias, check: 'proc', release: r1, count: 0 },
    ]);
    const record = (h: FleetHost): { staleProcesses?: number } => JSON.parse(fs.readFileSync(path.join(on(h), '.atomic-deploy', 'releases', `${r2}.json`), 'utf8')) as { staleProcesses?: number };
    assert.equal(record(h1).staleProcesses, 1);
    assert.equal(record(h2).staleProcesses, 0);
  });

  void test('--stale fail: exit 6 while the process stays, with the switch standing and the host named; success when it goes in time', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('fail');
    const first = await cli(['deploy', site(t, 'v1'), root, ...hostArgs]);
    assert.equal(first.code, 0, first.stderr);
    const holder = await startHolder(t, h2, root);

    const started = Date.now();
    const failed = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--stale', 'fail', '--stale-wait', '1']);
    assert.equal(failed.code, 6, failed.stderr);
    assert.ok(Date.now() - started >= 1000, 'it waited --stale-wait before failing');
    const out = failed.stdout + failed.stderr;
    assert.match(out, new RegExp(`${h2.alias}: 1 process still runs from release \\S+, not the live \\S+: pid ${holder} sleep \\(working directory releases/`));
    assert.doesNotMatch(out, new RegExp(`${h1.alias}: \\d+ process`), 'the clean host is not named');
    const live = currentOf(on(h1));
    assert.equal(currentOf(on(h2)), live, 'the switch stands on every host');
    assert.notEqual(fs.readlinkSync(`/proc/${holder}/cwd`), `${root}/releases/${live}`);

    // A holder of the release now live leaves once the next deploy says it waits for it: that deploy succeeds.
    await gone(holder);
    const leaver = await startHolder(t, h2, root);
    const third = spawnCli(['deploy', site(t, 'v3'), root, ...hostArgs, '--stale', 'fail', '--stale-wait', '60'], { env, timeoutMs: 180_000 });
    let seen = '';
    const watch = (d: Buffer | string): void => {
      seen += String(d);
      if (seen.includes(`${h2.alias}: waiting up to 60 s for 1 process`)) kill(leaver);
    };
    third.child.stdout?.on('data', watch);
    third.child.stderr?.on('data', watch);
    const done = await third.done;
    assert.equal(done.code, 0, done.stderr);
    assert.match(done.stderr + done.stdout, new RegExp(`${h2.alias}: waiting up to 60 s for 1 process`), 'it did wait for the holder');
    assert.doesNotMatch(done.stderr + done.stdout, /still runs from release/);
  });

  void test('--reload-unit runs on every host after the deploy, after a fleet rollback and after an automatic rollback', async (t) => {
    const calls = standInSystemctl('reload-stand-in');
    const { root } = newRoot('reload');
    const deployed = await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--reload-unit', 'app.service', '--reload-unit', 'worker@1.service']);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.match(deployed.stderr + deployed.stdout, /stand-in systemctl reload-or-restart -- app\.service/, 'its output is shown');
    for (const h of fleet.hosts) assert.deepEqual(calls(h), ['reload-or-restart -- app.service', 'reload-or-restart -- worker@1.service'], h.alias);

    const second = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--reload-unit', 'app.service']);
    assert.equal(second.code, 0, second.stderr);
    const back = await cli(['rollback', root, ...hostArgs, '--reload-unit', 'app.service']);
    assert.equal(back.code, 0, back.stderr);
    for (const h of fleet.hosts) assert.equal(calls(h).length, 4, `${h.alias}: deploy, deploy, rollback`);

    // The health check fails on the first host only: every host goes back, and every host reloads
    // again (as locally, each reloaded once before its check, which must see the reloaded service).
    const health = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--reload-unit', 'app.service', '--health-check', `test "$(hostname)" != ${fleet.hosts[0]?.hostname ?? 'host1'}`, '--health-timeout', '1']);
    assert.equal(health.code, 4, health.stderr);
    for (const h of fleet.hosts) assert.equal(calls(h).length, 6, `${h.alias}: reloaded before the check and after the automatic rollback`);
  });

  void test('a host lost during its stale-process wait: rollback and deploy stand (exit 0) and name it; --stale fail cannot vouch for it (exit 1)', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const probes = scanProbes('scan-probes');
    for (const mode of ['warn', 'fail'] as const) {
      const { root, on } = newRoot(`lost-${mode}`);
      const r1 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release as string;
      const r2 = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--json'])).release as string;
      await startHolder(t, h2, root);
      // The second round with host2 slow after each switch: its verdict comes seconds after the switch.
      if (mode === 'fail') probes.slowAfterSwitch(h2, on(h2));
      const back = await loseDuringStaleWait(t, ['rollback', root, ...hostArgs, '--stale', mode, '--stale-wait', '30', '--json'], h2, on(h2), probes);
      const jb = jsonOf<FleetJson>(back);
      assert.deepEqual(jb.hosts.map((h) => [h.host, h.outcome, h.current]), [[h1.alias, 'switched', r1], [h2.alias, 'switched', r1]], back.stderr);
      assert.deepEqual(jb.stale?.hosts.map((h) => h.host), [h1.alias], 'host2 was not checked');
      assert.match(back.stderr, new RegExp(`^warning: ${h2.alias}: stale-process check not made: `, 'm'));
      if (mode === 'warn') {
        assert.equal(back.code, 0, back.stderr);
        assert.equal(jb.error, undefined);
      } else {
        assert.equal(back.code, 1, back.stderr);
        assert.match(jb.error?.message ?? '', new RegExp(`--stale fail: the stale-process check could not be made on ${h2.alias}; .*the rollback to ${r1} stands`));
        assert.deepEqual((jb as { staleUnchecked?: string[] }).staleUnchecked, [h2.alias]);
      }
      assert.equal(currentOf(on(h1)), r1);
      assert.equal(currentOf(on(h2)), r1);
      // Its record is finished by the next command there.
      const status = await cli(['status', root, ...hostArgs, '--json']);
      assert.equal(status.code, 0, status.stderr);
      assert.equal(jsonOf<{ current: string }>(status).current, r1);

      // The same for a deploy, which leaves r1: a holder of r1 keeps host2's scan waiting.
      await startHolder(t, h2, root);
      if (mode === 'fail') probes.slowAfterSwitch(h2, on(h2));
      const deployed = await loseDuringStaleWait(t, ['deploy', site(t, 'v3'), root, ...hostArgs, '--stale', mode, '--stale-wait', '30', '--json'], h2, on(h2), probes);
      const jd = jsonOf<FleetJson>(deployed);
      assert.deepEqual(jd.hosts.map((h) => h.current), [jd.release, jd.release], deployed.stderr);
      // host2's commit went with its connection: its lock and journal stay for the next command.
      assert.deepEqual(jd.hosts.map((h) => h.leftovers), [false, true], deployed.stderr);
      assert.match(deployed.stderr, new RegExp(`^warning: ${h2.alias}: stale-process check not made: `, 'm'));
      assert.equal(deployed.code, mode === 'warn' ? 0 : 1, deployed.stderr);
      if (mode === 'fail') assert.match(jd.error?.message ?? '', new RegExp(`--stale fail: the stale-process check could not be made on ${h2.alias}; .*the switch to ${String(jd.release)} stands`));
      assert.notEqual(jd.release, r2);
    }
  });
});
