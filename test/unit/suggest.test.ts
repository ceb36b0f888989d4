// "Did you mean": typos of one edit (a swap of neighbours included) find the word; unrelated words find nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { closest, editDistance } from '../../src/plan/suggest.ts';

const COMMANDS = ['deploy', 'rollback', 'releases', 'status', 'unlock', 'prune', 'init', 'completion', 'help'];

void test('the typos new users make find the command they meant', () => {
  assert.equal(closest('rollbak', COMMANDS), 'rollback');
  assert.equal(closest('deplyo', COMMANDS), 'deploy');
  assert.equal(closest('statsu', COMMANDS), 'status');
  assert.equal(closest('relases', COMMANDS), 'releases');
  assert.equal(closest('Prune', COMMANDS), 'prune');
  assert.equal(closest('www', COMMANDS), undefined);
  assert.equal(closest('build', COMMANDS), undefined);
});

void test('editDistance: a metric on the cases that matter, a neighbour swap costs one', () => {
  const word = fc.stringMatching(/^[a-z]{0,8}$/);
  fc.assert(
    fc.property(word, word, word, (a, b, c) => {
      assert.equal(editDistance(a, a), 0);
      assert.equal(editDistance(a, b), editDistance(b, a));
      assert.ok(editDistance(a, b) <= Math.max(a.length, b.length));
      assert.ok(editDistance(a, c) <= editDistance(a, b) + editDistance(b, c) + 1);
    }),
  );
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z]{2,10}$/), fc.nat(), (w, at) => {
      const i = at % (w.length - 1);
      const swapped = w.slice(0, i) + (w[i + 1] ?? '') + (w[i] ?? '') + w.slice(i + 2);
      assert.ok(editDistance(w, swapped) <= 1);
    }),
  );
});

void test('closest never suggests a word further away than a third of the typo', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[a-z]{1,10}$/), fc.array(fc.stringMatching(/^[a-z]{1,10}$/), { maxLength: 8 }), (w, words) => {
      const guess = closest(w, words);
      if (guess !== undefined) assert.ok(editDistance(w, guess) <= Math.max(1, Math.floor(w.length / 3)));
    }),
  );
});
