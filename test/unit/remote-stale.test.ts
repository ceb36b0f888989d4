// A fleet host's stale-process scan as its sh printed it (GNU and BusyBox `ls -l` lines): which
// processes are named, what they hold, and the fleet-wide report and verdict.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fleetStaleFails, fleetStaleReport, fleetStaleUnknown, remoteStaleReport, type RawStaleScan } from '../../src/plan/remote-stale.ts';

const DIR = '/srv/app/releases/r1';

function scan(parts: Partial<RawStaleScan>): RawStaleScan {
  return { check: 'proc', self: 900, dir: DIR, links: '', maps: '', procs: '', ...parts };
}

const PROCS = ['1 0 init', '40 1 node', '41 1 php-fpm: pool www', '42 1 sleep', '43 1 worker (x) y', '900 800 sh', '901 900 ls', '950 1 cron'].join('\n');

test('names cwd, root, open-file and mapped-file holders with their commands, one entry per pid, sorted', () => {
  const links = [
    `lrwxrwxrwx 1 root root 0 Dec  1 19:00 /proc/42/cwd -> ${DIR}`,
    // BusyBox spacing, and a root inside the release.
    `lrwxrwxrwx    1 root     root             0 Dec  1 19:00 /proc/43/root -> ${DIR}`,
    '/proc/40/fd:',
    `lrwx------ 1 root root 64 Dec  1 19:00 7 -> ${DIR}/app.js`,
    `lr-x------ 1 root root 64 Dec  1 19:00 9 -> ${DIR}/old.log (deleted)`,
    '',
    '/proc/41/fd:',
  ].join('\n');
  const maps = `/proc/41/maps:7f0000000000-7f0000001000 r--p 00000000 08:01 1234                       ${DIR}/vendor/lib.so`;
  const report = remoteStaleReport(scan({ links, maps, procs: PROCS }), 'r1');
  assert.equal(report.check, 'proc');
  assert.deepEqual(report.processes, [
    { pid: 40, command: 'node', holds: [{ kind: 'fd', path: `${DIR}/app.js` }, { kind: 'fd', path: `${DIR}/old.log (deleted)` }] },
    { pid: 41, command: 'php-fpm: pool www', holds: [{ kind: 'map', path: `${DIR}/vendor/lib.so` }] },
    { pid: 42, command: 'sleep', holds: [{ kind: 'cwd', path: DIR }] },
    { pid: 43, command: 'worker (x) y', holds: [{ kind: 'root', path: DIR }] },
  ]);
});

test('a sibling release with a longer name, and paths outside, are not holds', () => {
  const links = [`l 1 r r 0 D 1 1 /proc/42/cwd -> ${DIR}0`, '/proc/40/fd:', 'l 1 r r 64 D 1 1 3 -> /srv/app/releases/r2/x', 'l 1 r r 64 D 1 1 4 -> socket:[123]'].join('\n');
  assert.deepEqual(remoteStaleReport(scan({ links, procs: PROCS }), 'r1').processes, []);
});

test('our own scanning shell and its children, and processes of another mount namespace, are left out', () => {
  const links = [
    `l 1 r r 0 D 1 1 /proc/901/cwd -> ${DIR}`,
    `l 1 r r 0 D 1 1 /proc/950/cwd -> ${DIR}`,
    'l 1 r r 0 D 1 1 /proc/950/ns/mnt -> mnt:[4026532999]',
    `l 1 r r 0 D 1 1 /proc/42/cwd -> ${DIR}`,
  ].join('\n');
  assert.deepEqual(remoteStaleReport(scan({ links, procs: PROCS }), 'r1').processes.map((p) => p.pid), [42]);
});

test('a process whose main thread has exited: what a live thread holds (task entries) is the process\'s, named by its pid; zombies\' stat lines name nobody', () => {
  const links = [
    // The leader's own links cannot be read: ls prints them without a target, and the grep drops them.
    `lrwxrwxrwx 1 root root 0 Dec  1 19:00 /proc/42/task/47/cwd -> ${DIR}`,
    '/proc/40/fd:',
    '/proc/40/task/44/fd:',
    `lr-x------ 1 root root 64 Dec  1 19:00 3 -> ${DIR}/app.js`,
    // A live thread in another mount namespace: its process is left out.
    `l 1 r r 0 D 1 1 /proc/950/task/951/cwd -> ${DIR}`,
    'l 1 r r 0 D 1 1 /proc/950/task/951/ns/mnt -> mnt:[4026532999]',
  ].join('\n');
  const maps = `/proc/41/task/45/maps:7f0000000000-7f0000001000 r--p 00000000 08:01 1234                       ${DIR}/vendor/lib.so`;
  const procs = `${PROCS}\n/proc/42/stat:42 (sleep) Z 1 42 42 0 -1 4227084 128 0 0 0 0 0 0 0 20 0 2 0 6018878 0`;
  assert.deepEqual(remoteStaleReport(scan({ links, maps, procs }), 'r1').processes, [
    { pid: 40, command: 'node', holds: [{ kind: 'fd', path: `${DIR}/app.js` }] },
    { pid: 41, command: 'php-fpm: pool www', holds: [{ kind: 'map', path: `${DIR}/vendor/lib.so` }] },
    { pid: 42, command: 'sleep', holds: [{ kind: 'cwd', path: DIR }] },
  ]);
});

test('a host without /proc: the check was not made, nobody is named', () => {
  assert.deepEqual(remoteStaleReport({ check: 'unavailable', self: 0, dir: '', links: '', maps: '', procs: '' }, 'r1'), { check: 'unavailable', release: 'r1', processes: [] });
});

test('property: every named process holds only paths under the release, and garbage lines name nobody', () => {
  fc.assert(
    fc.property(fc.array(fc.string(), { maxLength: 30 }), fc.array(fc.string(), { maxLength: 30 }), (links, maps) => {
      const report = remoteStaleReport(scan({ links: links.join('\n'), maps: maps.join('\n'), procs: PROCS }), 'r1');
      for (const p of report.processes) {
        for (const h of p.holds) {
          const q = h.path.replace(/ \(deleted\)$/, '');
          assert.ok(q === DIR || q.startsWith(`${DIR}/`), h.path);
        }
      }
    }),
  );
});

test('the fleet report names each process with its host, keeps every host\'s check, and fails only with fail and a process left', () => {
  const held = { check: 'proc' as const, release: 'r1', processes: [{ pid: 42, command: 'sleep', holds: [{ kind: 'cwd' as const, path: DIR }] }] };
  const report = fleetStaleReport([
    { host: 'web1', report: held },
    { host: 'web2', report: { check: 'proc', release: 'r1', processes: [] } },
    { host: 'bsd1', report: { check: 'unavailable', release: 'r1', processes: [] } },
  ]);
  assert.deepEqual(report.processes, [{ host: 'web1', pid: 42, command: 'sleep', holds: [{ kind: 'cwd', path: DIR }] }]);
  assert.deepEqual(report.hosts, [
    { host: 'web1', check: 'proc', release: 'r1', count: 1 },
    { host: 'web2', check: 'proc', release: 'r1', count: 0 },
    { host: 'bsd1', check: 'unavailable', release: 'r1', count: 0 },
  ]);
  assert.equal(fleetStaleFails('fail', report), true);
  assert.equal(fleetStaleFails('warn', report), false);
  assert.equal(fleetStaleFails('fail', fleetStaleReport([{ host: 'web2', report: { check: 'proc', release: 'r1', processes: [] } }])), false);
  assert.equal(fleetStaleFails('fail', undefined), false);
});

void test('--stale fail cannot vouch for a fleet with a host whose scan got no answer; warn and off never fail for it', () => {
  assert.equal(fleetStaleUnknown('fail', ['web2']), true);
  assert.equal(fleetStaleUnknown('fail', []), false);
  assert.equal(fleetStaleUnknown('warn', ['web2']), false);
  assert.equal(fleetStaleUnknown('off', ['web2']), false);
});
