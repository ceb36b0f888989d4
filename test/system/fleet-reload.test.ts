// Reload targets on fleet hosts, against real php-fpm 8.2 pools: each of two namespace hosts has
// its own pool behind the same pid file path (/srv/fpm/php-fpm.pid); `--reload-php-fpm` reloads
// each host's master gracefully (new workers, the master's pid kept). Before any host is locked,
// every host is asked about its reload targets as the local engine asks itself: a pid file that
// is missing on one host, or names a process that is not php-fpm, and a unit systemd does not
// know there, are refused with exit 2 naming that host, and no host changes (nothing switched,
// no lock left, no pool reloaded, the roots identical). The same for `rollback --host`.
// Control: the same deploy with every host's pool in place switches both hosts and reloads both.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, tempDir, writeTree } from '../harness/cli.ts';
import { currentOf, rootNamer, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';
import { treeSnapshot } from '../harness/invariants.ts';
import { startPhpFpm, workersOf, type PhpFpm } from '../harness/php-fpm.ts';

interface FleetJson {
  release?: string;
  hosts?: { host: string; current: string | null; outcome?: string }[];
  error?: { code: string; message: string; hint?: string };
}

const { fleet, hostArgs, cli } = fleetSuite(2, { timeoutMs: 180_000 });
const pools = new Map<FleetHost, PhpFpm>();
const newRoot = rootNamer('r');
/** Where each host finds its own pool's pid file (its /srv), and where this process sees it. */
const PID_FILE = '/srv/fpm/php-fpm.pid';
const pidFileOn = (h: FleetHost): string => path.join(h.srvDir, 'fpm', 'php-fpm.pid');

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-reload-'), { 'index.php': `<?php echo "${version}";\n` });
}

/** Every host's root, for "nothing changed": names, modes, contents, link targets, directory times. */
function roots(on: (h: FleetHost) => string): string[][] {
  return fleet.hosts.map((h) => (fs.existsSync(on(h)) ? treeSnapshot(on(h), { times: true }) : ['<none>']));
}

void describe('reload targets on two namespace hosts, each with its own php-fpm pool', () => {
  before(async () => {
    for (const h of fleet.hosts) {
      const fpm = await startPhpFpm();
      pools.set(h, fpm);
      fs.mkdirSync(path.dirname(pidFileOn(h)), { recursive: true });
      fs.writeFileSync(pidFileOn(h), `${fpm.pid}\n`);
    }
  });

  after(async () => {
    for (const fpm of pools.values()) await fpm.stop();
  });

  void test('--reload-php-fpm <pid file> reloads each host its own pool, gracefully', async (t) => {
    const { root, on } = newRoot('reload');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const before = new Map(fleet.hosts.map((h) => [h, workersOf((pools.get(h) as PhpFpm).pid)]));
    for (const [h, workers] of before) assert.ok(workers.length > 0, `${h.alias}: its pool has workers`);

    const r = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--reload-php-fpm', PID_FILE, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const release = jsonOf<FleetJson>(r).release as string;
    for (const h of fleet.hosts) {
      const master = (pools.get(h) as PhpFpm).pid;
      assert.equal(currentOf(on(h)), release, h.alias);
      assert.match(r.stderr, new RegExp(`^\\[${h.alias} reload\\] php-fpm master ${master} reloaded$`, 'm'), `${h.alias}: its own master is reloaded`);
      assert.ok(fs.existsSync(`/proc/${master}`), `${h.alias}: the master keeps running`);
      const now = workersOf(master);
      assert.ok(now.length > 0, `${h.alias}: new workers are up`);
      for (const w of before.get(h) ?? []) assert.ok(!now.includes(w), `${h.alias}: old worker ${w} has gone`);
    }
  });

  void test('a pid file missing on one host, or naming another process: exit 2 before any lock, no host changed or reloaded', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('refused');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    assert.equal((await cli(['deploy', site(t, 'v2'), root, ...hostArgs])).code, 0);
    const live = currentOf(on(h1));
    const h1Workers = workersOf((pools.get(h1) as PhpFpm).pid);
    const saved = fs.readFileSync(pidFileOn(h2), 'utf8');
    // rm first: writing to a FIFO left by a case would wait for a reader.
    const restore = (): void => {
      fs.rmSync(pidFileOn(h2), { force: true });
      fs.writeFileSync(pidFileOn(h2), saved);
    };
    t.after(restore);
    // A program whose name only starts with php-fpm (a metrics exporter): its comm is php-fpm_exporte.
    const exporterBin = path.join(tempDir(t), 'php-fpm_exporter');
    fs.copyFileSync('/bin/sleep', exporterBin);
    fs.chmodSync(exporterBin, 0o755);
    const exporter = spawn(exporterBin, ['300'], { stdio: 'ignore' });
    t.after(() => exporter.kill('SIGKILL'));

    const cases: [string, () => void, RegExp][] = [
      ['missing', () => fs.rmSync(pidFileOn(h2)), /cannot read the pid file/],
      ['another process', () => fs.writeFileSync(pidFileOn(h2), `${process.pid}\n`), new RegExp(`process ${process.pid} is node, not php-fpm \\(stale pid file\\?\\)`)],
      // Its name starts with php-fpm: `case php-fpm*` took it for a master, and SIGUSR2 would end it.
      ['a php-fpm_exporter', () => fs.writeFileSync(pidFileOn(h2), `${exporter.pid ?? 0}\n`), new RegExp(`process ${exporter.pid ?? 0} is php-fpm_exporte, not php-fpm \\(stale pid file\\?\\)`)],
      // A FIFO named as the pid file: `read < fifo` blocked the host's shell, and the command, for ever.
      [
        'a FIFO',
        () => {
          fs.rmSync(pidFileOn(h2));
          execFileSync('mkfifo', [pidFileOn(h2)]);
        },
        /cannot read the pid file: it is a FIFO \(named pipe\), not a file php-fpm wrote/,
      ],
    ];
    for (const [what, arrange, why] of cases) {
      arrange();
      const snap = roots(on);
      for (const args of [['deploy', site(t, 'v3'), root], ['rollback', root]]) {
        const r = await cli([...args, ...hostArgs, '--reload-php-fpm', PID_FILE, '--json']);
        const label = `${args[0] ?? ''} with the pid file ${what} on ${h2.alias}`;
        assert.equal(r.code, 2, `${label}\n${r.stderr}`);
        const error = jsonOf<FleetJson>(r).error;
        assert.equal(error?.code, 'USAGE', label);
        assert.match(error?.message ?? '', new RegExp(`^nothing was (changed|rolled back): ${h2.alias}: --reload-php-fpm ${PID_FILE}: `), label);
        assert.match(error?.message ?? '', why, label);
        assert.doesNotMatch(error?.message ?? '', new RegExp(`${h1.alias}:`), `${label}: the host whose pool is there is not named`);
        assert.match(error?.hint ?? '', /pid file on that host/, label);
        assert.deepEqual(roots(on), snap, `${label}: no host's root changed (no lock, no release, no record)`);
        assert.equal(currentOf(on(h1)), live, label);
        assert.deepEqual(workersOf((pools.get(h1) as PhpFpm).pid), h1Workers, `${label}: ${h1.alias}'s pool was not reloaded`);
      }
    }

    // Control: with the pool's pid file back, the same deploy and rollback switch both hosts.
    restore();
    const deployed = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--reload-php-fpm', PID_FILE, '--json']);
    assert.equal(deployed.code, 0, deployed.stderr);
    const back = await cli(['rollback', root, ...hostArgs, '--reload-php-fpm', PID_FILE]);
    assert.equal(back.code, 0, back.stderr);
    for (const h of fleet.hosts) assert.equal(currentOf(on(h)), live, `${h.alias}: rolled back`);
  });

  void test('a unit systemd does not know on a host: exit 2 naming that host, nothing changed', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('unit');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    assert.equal((await cli(['deploy', site(t, 'v2'), root, ...hostArgs])).code, 0);

    // No running systemd on the hosts (as in any container): every host is named.
    let snap = roots(on);
    const bare = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--reload-unit', 'app.service', '--json']);
    assert.equal(bare.code, 2, bare.stderr);
    const bareMessage = jsonOf<FleetJson>(bare).error?.message ?? '';
    for (const h of fleet.hosts) assert.match(bareMessage, new RegExp(`${h.alias}: --reload-unit app\\.service: (systemctl is not installed|System has not been booted|Failed to connect to bus)`), h.alias);
    assert.deepEqual(roots(on), snap);

    // A stand-in systemctl first on each host's PATH that knows app.service on the second host only.
    for (const h of fleet.hosts) {
      const bin = path.join(h.srvDir, 'unit-stand-in', 'bin');
      fs.mkdirSync(bin, { recursive: true });
      fs.writeFileSync(
        path.join(bin, 'systemctl'),
        `#!/bin/sh\necho "$*" >> /srv/unit-stand-in/calls\nif [ "$1" = show ]; then [ "$(hostname)" = ${h2.hostname} ] && echo loaded || echo not-found; fi\n`,
        { mode: 0o755 },
      );
      const home = path.join(path.dirname(h.srvDir), 'root');
      fs.mkdirSync(home, { recursive: true });
      fs.writeFileSync(path.join(home, '.bashrc'), 'PATH=/srv/unit-stand-in/bin:$PATH\n');
    }
    t.after(() => {
      for (const h of fleet.hosts) fs.rmSync(path.join(path.dirname(h.srvDir), 'root', '.bashrc'), { force: true });
    });
    const calls = (h: FleetHost): string[] => fs.readFileSync(path.join(h.srvDir, 'unit-stand-in', 'calls'), 'utf8').trim().split('\n');
    snap = roots(on);
    for (const args of [['deploy', site(t, 'v3'), root], ['rollback', root]]) {
      const r = await cli([...args, ...hostArgs, '--reload-unit', 'app.service', '--json']);
      assert.equal(r.code, 2, r.stderr);
      const error = jsonOf<FleetJson>(r).error;
      assert.match(error?.message ?? '', new RegExp(`^nothing was (changed|rolled back): ${h1.alias}: --reload-unit app\\.service: systemd says not-found$`), args[0]);
      assert.match(error?.hint ?? '', /name a unit systemctl knows on that host/);
      assert.deepEqual(roots(on), snap, `${args[0] ?? ''}: no host's root changed`);
    }
    for (const h of fleet.hosts) assert.deepEqual(calls(h), ['show --property=LoadState --value -- app.service', 'show --property=LoadState --value -- app.service'], `${h.alias}: asked, never reloaded`);
  });
});
