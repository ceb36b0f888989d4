// The decisions after a switch: which processes count as still holding the release left, the
// stale wait, what a php-fpm reload's progress means, and the small parsers behind them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { ProcessUse } from '../../src/plan/in-use.ts';
import {
  describeStale,
  isOwnProcess,
  parsePidFile,
  parseProcStat,
  phpFpmMasterProblem,
  phpFpmReexec,
  phpFpmReloadState,
  phpFpmSignalProblem,
  phpFpmSuccessor,
  staleFails,
  staleHolders,
  staleStep,
  staleWaitMs,
  unitNameProblem,
  type StaleMode,
} from '../../src/plan/serving.ts';

const DIR = '/srv/app/releases/r1';
const kindArb = fc.constantFrom<ProcessUse['kind']>('cwd', 'root', 'fd', 'map');
const pathArb = fc.constantFrom(DIR, `${DIR}/index.php`, `${DIR}/lib/a.so`, `${DIR}/gone.txt (deleted)`, '/srv/app/releases/r10/x', '/srv/app/releases/r2', '/etc/hosts', 'socket:[123]', '/');
const useArb = fc.record({ pid: fc.integer({ min: 2, max: 40 }), command: fc.constantFrom('node', 'php-fpm8.2', 'sleep'), kind: kindArb, path: pathArb });
/** A process tree over pids 2..40: each pid's parent is a smaller pid (or 1). */
const parentsArb = fc.array(fc.nat(), { minLength: 41, maxLength: 41 }).map((picks) => new Map(picks.slice(2).map((p, i) => [i + 2, i + 2 === 2 ? 1 : (p % (i + 1)) + 1] as [number, number])));

const inside = (p: string): boolean => {
  const q = p.replace(/ \(deleted\)$/, '');
  return q === DIR || q.startsWith(`${DIR}/`);
};

void test('staleHolders names exactly the other processes that hold something under the release, once each', () => {
  fc.assert(
    fc.property(fc.array(useArb, { maxLength: 60 }), parentsArb, fc.integer({ min: 2, max: 40 }), (uses, parents, self) => {
      const found = staleHolders(uses, DIR, { self, parents });
      const expected = new Set(uses.filter((u) => inside(u.path) && !isOwnProcess(u.pid, self, parents)).map((u) => u.pid));
      assert.deepEqual(found.map((p) => p.pid), [...expected].sort((a, b) => a - b));
      for (const proc of found) {
        assert.ok(!isOwnProcess(proc.pid, self, parents));
        assert.ok(proc.holds.length > 0 && proc.holds.every((h) => inside(h.path)));
        assert.equal(new Set(proc.holds.map((h) => `${h.kind} ${h.path}`)).size, proc.holds.length, 'duplicate hold');
      }
    }),
  );
});

void test('our own process and its descendants are left out, a sibling or parent is not', () => {
  const parents = new Map([[10, 1], [20, 10], [30, 20], [31, 20], [40, 1], [50, 10]]);
  assert.equal(isOwnProcess(20, 20, parents), true);
  assert.equal(isOwnProcess(30, 20, parents), true);
  assert.equal(isOwnProcess(31, 20, parents), true);
  assert.equal(isOwnProcess(10, 20, parents), false, 'our parent (the shell that ran us) is not ours');
  assert.equal(isOwnProcess(50, 20, parents), false, 'a sibling is not ours');
  assert.equal(isOwnProcess(40, 20, parents), false);
  assert.equal(isOwnProcess(99, 20, parents), false, 'unknown parentage is not ours');
  // A cycle in stale facts must not hang the walk.
  assert.equal(isOwnProcess(7, 20, new Map([[7, 8], [8, 7]])), false);
});

void test('a prefix of the release name is not inside it (r1 vs r10), a deleted file still counts', () => {
  const uses: ProcessUse[] = [
    { pid: 5, command: 'a', kind: 'cwd', path: '/srv/app/releases/r10' },
    { pid: 6, command: 'b', kind: 'fd', path: `${DIR}/old.log (deleted)` },
    { pid: 7, command: 'c', kind: 'fd', path: 'pipe:[9]' },
  ];
  const found = staleHolders(uses, DIR, { self: 1000, parents: new Map() });
  assert.deepEqual(found, [{ pid: 6, command: 'b', holds: [{ kind: 'fd', path: `${DIR}/old.log (deleted)` }] }]);
});

void test('describeStale names pid, command and the first hold relative to the root, and counts the rest', () => {
  const line = describeStale(
    [
      { pid: 4242, command: 'sleep', holds: [{ kind: 'cwd', path: DIR }] },
      { pid: 17, command: 'node', holds: [{ kind: 'fd', path: `${DIR}/app.js` }, { kind: 'map', path: `${DIR}/a.so` }] },
    ],
    DIR,
  );
  assert.equal(line, 'pid 4242 sleep (working directory releases/r1), pid 17 node (open file releases/r1/app.js, +1 more)');
  const many = Array.from({ length: 12 }, (_, i) => ({ pid: i + 2, command: 'w', holds: [{ kind: 'cwd' as const, path: DIR }] }));
  assert.match(describeStale(many, DIR), / and 2 more processes$/);
});

const modeArb = fc.constantFrom<StaleMode>('off', 'warn', 'fail');

void test('staleStep: fresh when nothing remains or off, another scan only inside the wait, stale after it', () => {
  fc.assert(
    fc.property(modeArb, fc.nat(5), fc.nat(30_000), fc.nat(30_000), fc.integer({ min: 1, max: 1000 }), (mode, remaining, elapsedMs, waitMs, pollMs) => {
      const step = staleStep({ mode, remaining, elapsedMs, waitMs, pollMs });
      if (mode === 'off' || remaining === 0) assert.equal(step, 'fresh');
      else if (elapsedMs + pollMs <= waitMs) assert.equal(step, 'again');
      else assert.equal(step, 'stale');
    }),
  );
  // warn without a wait scans once; fail waits 10 s by default; a given wait wins.
  assert.equal(staleWaitMs('warn', undefined), 0);
  assert.equal(staleWaitMs('fail', undefined), 10_000);
  assert.equal(staleWaitMs('warn', 3000), 3000);
  assert.equal(staleStep({ mode: 'warn', remaining: 2, elapsedMs: 0, waitMs: staleWaitMs('warn', undefined), pollMs: 200 }), 'stale');
});

void test('only fail with processes found by a real check fails the command', () => {
  const procs = [{ pid: 3, command: 'x', holds: [{ kind: 'cwd' as const, path: DIR }] }];
  assert.equal(staleFails('fail', { check: 'proc', release: 'r1', processes: procs }), true);
  assert.equal(staleFails('warn', { check: 'proc', release: 'r1', processes: procs }), false);
  assert.equal(staleFails('fail', { check: 'proc', release: 'r1', processes: [] }), false);
  assert.equal(staleFails('fail', { check: 'unavailable', release: 'r1', processes: [] }), false);
  assert.equal(staleFails('fail', undefined), false);
});

void test('php-fpm reload: done once every old worker is gone and the master has re-exec\'d (or where that cannot be seen), new workers or not', () => {
  const workerArb = fc.constantFrom('10:1', '11:1', '12:1', '10:2', '13:5');
  const reexecArb = fc.constantFrom('seen' as const, 'not-yet' as const, 'unobservable' as const);
  fc.assert(
    fc.property(fc.uniqueArray(workerArb), fc.uniqueArray(workerArb), fc.boolean(), reexecArb, (before, now, alive, reexec) => {
      const state = phpFpmReloadState(before, { masterAlive: alive, workers: now, reexec });
      if (!alive) return assert.equal(state, 'master-gone');
      if (now.some((w) => before.includes(w))) return assert.equal(state, 'old-workers');
      return assert.equal(state, reexec === 'not-yet' ? 'not-reexeced' : 'done');
    }),
  );
  // An ondemand pool: its one worker gone, none new, the master re-exec'd.
  assert.equal(phpFpmReloadState(['10:1'], { masterAlive: true, workers: [], reexec: 'seen' }), 'done');
  // No worker before: done only once the master shows it took the signal.
  assert.equal(phpFpmReloadState([], { masterAlive: true, workers: [], reexec: 'not-yet' }), 'not-reexeced');
  // A recycled pid with a new start time is a new worker.
  assert.equal(phpFpmReloadState(['10:1'], { masterAlive: true, workers: ['10:2'], reexec: 'seen' }), 'done');
});

void test('php-fpm re-exec: new code and stack addresses and the master title back; unobservable without randomization or with hidden addresses', () => {
  const before = '94897849110528 94897852345949 140720314971600';
  const after = '94013616242688 94013619478109 140730996336192';
  const master = 'php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)';
  assert.equal(phpFpmReexec(before, { image: before, title: master }, true), 'not-yet', 'not signalled yet');
  assert.equal(phpFpmReexec(before, { image: after, title: 'php-fpm8.2' }, true), 'not-yet', 'exec\'d, not started (or about to daemonize)');
  assert.equal(phpFpmReexec(before, { image: after, title: master }, true), 'seen');
  assert.equal(phpFpmReexec(before, { image: after, title: master }, false), 'unobservable');
  assert.equal(phpFpmReexec('0 0 0', { image: '0 0 0', title: master }, true), 'unobservable');
  assert.equal(phpFpmReexec('', { image: '', title: '' }, true), 'unobservable');
});

void test('php-fpm daemonized successor: a running master other than the old one, with no old worker left', () => {
  const old = { master: 100, startTime: '500' };
  assert.equal(phpFpmSuccessor(old, { master: 200, startTime: '900' }, 0), true);
  assert.equal(phpFpmSuccessor(old, { master: 100, startTime: '900' }, 0), true, 'the same pid, started anew');
  assert.equal(phpFpmSuccessor(old, { master: 100, startTime: '500' }, 0), false, 'the old master itself');
  assert.equal(phpFpmSuccessor(old, undefined, 0), false, 'none yet');
  assert.equal(phpFpmSuccessor(old, { master: 200, startTime: '900' }, 1), false, 'an old worker still runs');
});

void test('php-fpm master check: not php-fpm, or a worker (its parent is php-fpm), is named; EPERM says who may signal', () => {
  assert.equal(phpFpmMasterProblem({ pid: 7, comm: 'php-fpm8.2', ppid: 1, parentComm: 'init' }), undefined);
  assert.equal(phpFpmMasterProblem({ pid: 7, comm: 'php-fpm8.2', ppid: 3, parentComm: undefined }), undefined);
  assert.equal(phpFpmMasterProblem({ pid: 7, comm: 'sleep', ppid: 1, parentComm: 'init' }), 'process 7 is sleep, not php-fpm (stale pid file?)');
  // Distributions name the binary with its version; a name that only starts so is another program.
  for (const comm of ['php-fpm', 'php-fpm83', 'php-fpm7.4']) assert.equal(phpFpmMasterProblem({ pid: 7, comm, ppid: 1, parentComm: 'systemd' }), undefined, comm);
  assert.equal(phpFpmMasterProblem({ pid: 7, comm: 'php-fpm_exporte', ppid: 1, parentComm: 'systemd' }), 'process 7 is php-fpm_exporte, not php-fpm (stale pid file?)');
  assert.equal(phpFpmMasterProblem({ pid: 7, comm: 'php-fpm8.2', ppid: 3, parentComm: 'php-fpm_exporte' }), undefined);
  assert.equal(phpFpmMasterProblem({ pid: 8, comm: 'php-fpm8.2', ppid: 7, parentComm: 'php-fpm8.2' }), 'process 8 is a php-fpm worker of master 7, not a master (stale pid file?)');
  assert.equal(phpFpmSignalProblem(7, 'EPERM'), "cannot signal php-fpm master 7 (EPERM): run the deploy as the pool's user or root");
  assert.equal(phpFpmSignalProblem(7, 'ESRCH'), 'cannot signal php-fpm master 7 (ESRCH)');
});

void test('pid files, /proc stat lines and unit names are read strictly', () => {
  assert.equal(parsePidFile('1234\n'), 1234);
  assert.equal(parsePidFile('  77 '), 77);
  for (const bad of ['', '0', '1', '-5', '12abc', '1 2', '99999999999', 'nan']) assert.equal(parsePidFile(bad), undefined, bad);
  const stat = '4242 (php-fpm: pool (www)) S 4200 4242 4242 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 0 0';
  assert.deepEqual(parseProcStat(stat), { ppid: 4200, state: 'S', threads: 1, startTime: '98765', image: '' });
  const full = '11897 (php-fpm8.2) S 1 11897 11897 0 -1 4194304 1192 0 14 0 3 0 0 0 20 0 1 0 4793596 61501440 3855 18446744073709551615 94897849110528 94897852345949 140720314971600 0 0';
  assert.equal(parseProcStat(full)?.image, '94897849110528 94897852345949 140720314971600');
  assert.equal(parseProcStat('garbage'), undefined);
  assert.equal(unitNameProblem('php8.2-fpm.service'), undefined);
  assert.equal(unitNameProblem('app@1.service'), undefined);
  for (const bad of ['', ' ', '--now', 'a b', 'a/b', 'x\ny']) assert.ok(unitNameProblem(bad), bad);
});

test('php-fpm by socket: the listening inode of that path from /proc/net/unix, and the master among its holders', async () => {
  const { listeningSocketInodes, socketMaster } = await import('../../src/plan/serving.ts');
  const table = [
    'Num       RefCount Protocol Flags    Type St Inode Path',
    '0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/php/php8.2-fpm.sock',
    // A connected (not listening) socket on the same path, and another listener.
    '0000000000000001: 00000003 00000000 00000000 0001 03 4243 /run/php/php8.2-fpm.sock',
    '0000000000000002: 00000002 00000000 00010000 0001 01 4244 /run/php/other.sock',
    '0000000000000003: 00000002 00000000 00010000 0001 01 4245 /tmp/with space.sock',
    '0000000000000004: 00000003 00000000 00000000 0001 03 4246',
  ].join('\n');
  assert.deepEqual(listeningSocketInodes(table, '/run/php/php8.2-fpm.sock'), ['4242']);
  assert.deepEqual(listeningSocketInodes(table, '/tmp/with space.sock'), ['4245']);
  assert.deepEqual(listeningSocketInodes(table, '/run/php/none.sock'), []);
  // By real path: a symlink to the socket (Debian's /run/php/php-fpm.sock), or a path spelled otherwise.
  const real: Record<string, string> = { '/run/php/php-fpm.sock': '/run/php/php8.2-fpm.sock', '/run//php/php8.2-fpm.sock': '/run/php/php8.2-fpm.sock', '/run/php/php8.2-fpm.sock': '/run/php/php8.2-fpm.sock' };
  const resolve = (p: string): string | undefined => real[p];
  assert.deepEqual(listeningSocketInodes(table, '/run/php/php-fpm.sock', resolve), ['4242']);
  assert.deepEqual(listeningSocketInodes(table, '/run//php/php8.2-fpm.sock', resolve), ['4242']);
  assert.deepEqual(listeningSocketInodes(table, '/run/php/php-fpm.sock'), [], 'without resolving, the bound path only');
  assert.equal(socketMaster([{ pid: 10, ppid: 1 }, { pid: 11, ppid: 10 }, { pid: 12, ppid: 10 }]), 10);
  assert.equal(socketMaster([]), undefined);
  assert.equal(socketMaster([{ pid: 10, ppid: 1 }, { pid: 20, ppid: 1 }]), undefined, 'two pools on one path: ambiguous');
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 1000 }), fc.array(fc.integer({ min: 1001, max: 2000 }), { maxLength: 8 }), (master, workers) => {
      const holders = [{ pid: master, ppid: 1 }, ...[...new Set(workers)].map((pid) => ({ pid, ppid: master }))];
      assert.equal(socketMaster(holders), master);
      assert.equal(socketMaster([...holders].reverse()), master, 'in any order');
    }),
  );
});
