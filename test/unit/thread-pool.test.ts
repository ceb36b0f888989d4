// keepThreadPoolAwake: one timer per process, whichever bundled copy of the module starts it (the
// installed command starts it in its CommonJS launcher and again in bin.ts).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { mock, test } from 'node:test';
import { keepThreadPoolAwake } from '../../src/act/thread-pool.ts';

void test('a second call while a timer runs starts none; after the owner stops it, a call starts one again', (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] });
  const stat = mock.method(fs, 'stat', (_path: string, callback: () => void) => callback());
  t.after(() => stat.mock.restore());
  const polls = (): number => stat.mock.calls.filter((c) => c.arguments[0] === '/').length;

  const stopFirst = keepThreadPoolAwake(100);
  t.mock.timers.tick(300);
  assert.equal(polls(), 3);
  // A second copy of the module (another bundle) shares the mark through globalThis.
  const stopSecond = keepThreadPoolAwake(100);
  t.mock.timers.tick(300);
  assert.equal(polls(), 6, 'two timers would have posted 9');
  stopSecond();
  t.mock.timers.tick(200);
  assert.equal(polls(), 8, "the second caller's stop must leave the owner's timer running");
  stopFirst();
  t.mock.timers.tick(300);
  assert.equal(polls(), 8);
  const stopThird = keepThreadPoolAwake(100);
  t.mock.timers.tick(100);
  assert.equal(polls(), 9);
  stopThird();
});
