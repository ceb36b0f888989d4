// judgeLock: a lock is stale only when its holder is provably gone; a live holder, a holder on
// another host, or a lock being filled in right now is never taken over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bashLockPid, judgeLock, OWNERLESS_GRACE_MS, type LockFacts, type LockOwner } from '../../src/plan/lock.ts';

const HOST = 'web1';
const owner = fc.record({
  pid: fc.integer({ min: 1, max: 4_194_304 }),
  host: fc.constantFrom(HOST, 'web2', 'build.example'),
  user: fc.constantFrom('deploy', 'root', 'nobody'),
  since: fc.constant('2026-11-27T10:00:00.000Z'),
  token: fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 8, maxLength: 24 }),
  startTime: fc.option(fc.integer({ min: 1, max: 1e9 }).map(String), { nil: undefined }),
  bootId: fc.option(fc.constantFrom('boot-a', 'boot-b'), { nil: undefined }),
  format: fc.constantFrom('atomic-deploy' as const, 'bash' as const),
});
const facts = fc.record({
  thisHost: fc.constant(HOST),
  thisBootId: fc.option(fc.constantFrom('boot-a', 'boot-b'), { nil: undefined }),
  process: fc.constantFrom('alive' as const, 'dead' as const, 'exited' as const),
  processStartTime: fc.option(fc.integer({ min: 1, max: 1e9 }).map(String), { nil: undefined }),
  processStartedAtMs: fc.option(fc.integer({ min: 0, max: 2e12 }), { nil: undefined }),
  lockCreatedAtMs: fc.integer({ min: 0, max: 2e12 }),
  nowMs: fc.integer({ min: 0, max: 2e12 }),
});

void test('a lock from another host is never stale: only unlock --force removes it', () => {
  fc.assert(
    fc.property(owner, facts, (o, f) => {
      fc.pre(o.host !== f.thisHost);
      assert.equal(judgeLock(o as LockOwner, f as LockFacts).state, 'foreign');
    }),
    { numRuns: 2000 },
  );
});

void test('a live holder with its own start time is always held (EPERM from kill counts as alive)', () => {
  fc.assert(
    fc.property(owner, facts, (o, f) => {
      const live: LockFacts = { ...f, process: 'alive', processStartTime: o.startTime ?? f.processStartTime, thisBootId: o.bootId ?? f.thisBootId };
      const same: LockOwner = { ...o, host: HOST };
      fc.pre(same.startTime !== undefined || live.processStartedAtMs === undefined || live.processStartedAtMs <= live.lockCreatedAtMs);
      assert.equal(judgeLock(same, live).state, 'held');
    }),
    { numRuns: 2000 },
  );
});

void test('on this host a dead holder, an exited one not yet reaped, a reused pid or a reboot make the lock stale', () => {
  fc.assert(
    fc.property(owner, facts, (o, f) => {
      const here: LockOwner = { ...o, host: HOST };
      const verdict = judgeLock(here, f);
      const rebooted = here.bootId !== undefined && f.thisBootId !== undefined && here.bootId !== f.thisBootId;
      const reused = f.process === 'alive' && here.startTime !== undefined && f.processStartTime !== undefined && here.startTime !== f.processStartTime;
      const startedLater = f.process === 'alive' && here.startTime === undefined && f.processStartedAtMs !== undefined && f.processStartedAtMs > f.lockCreatedAtMs + 2000;
      const expectStale = rebooted || f.process === 'dead' || f.process === 'exited' || reused || startedLater;
      assert.equal(verdict.state, expectStale ? 'stale' : 'held', JSON.stringify({ here, f, verdict }));
    }),
    { numRuns: 3000 },
  );
});

void test('a zombie holder is named as one', () => {
  const verdict = judgeLock(
    { pid: 4242, host: HOST, user: 'deploy', since: '2026-11-27T10:00:00.000Z', token: 'abc', startTime: '77', format: 'atomic-deploy' },
    { thisHost: HOST, process: 'exited', processStartTime: '77', lockCreatedAtMs: 0, nowMs: 1 },
  );
  assert.deepEqual(verdict, { state: 'stale', reason: 'process 4242 has exited (a zombie its parent has not reaped)' });
});

void test('a lock with no owner is held while it may still be filled in, stale after the grace period', () => {
  fc.assert(
    fc.property(facts, fc.integer({ min: 0, max: 10 * OWNERLESS_GRACE_MS }), (f, age) => {
      const verdict = judgeLock(null, { ...f, lockCreatedAtMs: 1e12, nowMs: 1e12 + age });
      assert.equal(verdict.state, age < OWNERLESS_GRACE_MS ? 'held' : 'stale');
    }),
  );
});

void test('a .deploy.lock that is no directory and names no process (another tool\'s) is held at any age: nothing can judge it', () => {
  fc.assert(
    fc.property(facts, fc.integer({ min: 0, max: 1e9 }), (f, age) => {
      const verdict = judgeLock(null, { ...f, lockCreatedAtMs: 1e12, nowMs: 1e12 + age, notADirectory: true });
      assert.equal(verdict.state, 'held');
      assert.match(verdict.reason, /cannot be judged/);
    }),
  );
});

void test('a bash tool\'s pid (.deploy.lock/pid, or a .deploy.lock file) is a positive number and nothing else', () => {
  assert.equal(bashLockPid('4242\n'), 4242);
  assert.equal(bashLockPid(' 17 '), 17);
  for (const text of [undefined, '', '0', '-3', '12 34', 'garbage', '4242\nmore', '1e3']) assert.equal(bashLockPid(text), undefined, String(text));
});
