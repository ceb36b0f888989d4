// How a hook's end is worded: sh's own codes for a command it could not find (127) or run (126)
// say what to do, since hooks run in the release directory (`./hook.sh` from the working
// directory of the deploy is not there).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeOutcome } from '../../src/act/hooks.ts';

const ended = (code: number) => ({ ok: code === 0, code, signal: null, timedOut: false, aborted: false }) as unknown as Parameters<typeof describeOutcome>[0];

void test('127 and 126 say why; other codes stay plain', () => {
  assert.match(describeOutcome(ended(127), 1000), /^exited with code 127 \(command not found: hooks run in the release directory with sh -c, so a script outside the release needs its absolute path\)$/);
  assert.match(describeOutcome(ended(126), 1000), /^exited with code 126 \(found but not executable: chmod \+x it/);
  assert.equal(describeOutcome(ended(3), 1000), 'exited with code 3');
});
