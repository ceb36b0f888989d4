import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { hashThreads, runnableThreads } from '../../src/plan/hash-threads.ts';

const cores = fc.integer({ min: 1, max: 256 });
const load = fc.double({ min: 0, max: 512, noNaN: true });

void test('never more threads than cores beyond our own, nor than the cap; never fewer than none', () => {
  fc.assert(
    fc.property(cores, load, fc.integer({ min: 0, max: 16 }), (c, l, max) => {
      const n = hashThreads(c, l, max);
      assert.ok(Number.isInteger(n) && n >= 0 && n <= Math.min(max, c - 1), `${n} for ${c} cores, load ${l}, max ${max}`);
    }),
  );
});

void test('more load never gives more threads', () => {
  fc.assert(
    fc.property(cores, load, load, (c, a, b) => {
      const [lo, hi] = a <= b ? [a, b] : [b, a];
      assert.ok(hashThreads(c, hi) <= hashThreads(c, lo));
    }),
  );
});

void test('an idle machine gets every core it has (up to the cap), a machine whose cores are all busy gets none', () => {
  fc.assert(
    fc.property(cores, fc.double({ min: 0, max: 0.49, noNaN: true }), (c, l) => {
      assert.equal(hashThreads(c, l), Math.min(3, c - 1));
      assert.equal(hashThreads(c, c - 0.49 + l), 0);
    }),
  );
  // The 2-core cases: a quiet machine (this process the only runnable one) gets a thread, a loaded one none.
  assert.equal(hashThreads(2, 1.0), 1);
  assert.equal(hashThreads(2, 1.6), 0);
  assert.equal(hashThreads(2, 5), 0);
  assert.equal(hashThreads(2, Number.NaN), 0);
});

void test("the runnable threads now are /proc/loadavg's fourth field; anything else is unknown", () => {
  assert.equal(runnableThreads('1.72 2.76 5.62 1/345 12345\n'), 1);
  assert.equal(runnableThreads('0.00 0.01 0.05 12/1024 99\n'), 12);
  for (const text of ['', '1.72 2.76 5.62', '1.72 2.76 5.62 x/345 1', '1.72 2.76 5.62 0/345 1', '1.72 2.76 5.62 3 1', 'garbage']) {
    assert.equal(runnableThreads(text), undefined, JSON.stringify(text));
  }
  // An idle machine right after a build: the average says busy, the instant says only us.
  assert.equal(hashThreads(2, runnableThreads('1.72 2.76 5.62 1/345 12345') ?? 1.72), 1);
  assert.equal(hashThreads(2, 1.72), 0);
});
