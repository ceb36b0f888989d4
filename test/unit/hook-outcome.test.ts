// How a hook's end is worded: sh's own codes for a command it could not find (127) or run (126)
// say what to do, since hooks run in the release directory (`./hook.sh` from the working
// directory of the deploy is not there).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeOutcome, scriptOf } from '../../src/act/hooks.ts';

const ended = (code: number) => ({ ok: code === 0, code, signal: null, timedOut: false, aborted: false }) as unknown as Parameters<typeof describeOutcome>[0];

void test('127 and 126 say why; other codes stay plain', () => {
  assert.match(describeOutcome(ended(127), 1000), /^exited with code 127 \(command not found: hooks run in the release directory with sh -c, so a script outside the release needs its absolute path\)$/);
  // The script's mode unknown (a fleet host's hook): both ways; known, the one that fits.
  assert.equal(describeOutcome(ended(126), 1000), 'exited with code 126 (found but could not be run: chmod +x it; if it is executable, its filesystem may be mounted noexec: run it with sh <script>)');
  assert.equal(describeOutcome({ ...ended(126), script: { name: './h.sh', executable: false } }, 1000), 'exited with code 126 (./h.sh is not executable: chmod +x it, or run it with sh ./h.sh)');
  assert.equal(describeOutcome({ ...ended(126), script: { name: './h.sh', executable: true } }, 1000), 'exited with code 126 (./h.sh is executable, but could not be run: its filesystem may be mounted noexec; run it with sh ./h.sh)');
  assert.equal(describeOutcome(ended(3), 1000), 'exited with code 3');
});

void test('the script a hook command starts with: a first word with a slash and no shell syntax', () => {
  assert.equal(scriptOf('./hook.sh'), './hook.sh');
  assert.equal(scriptOf('  bin/migrate --up'), 'bin/migrate');
  assert.equal(scriptOf('/opt/x/run.sh;echo'), undefined);
  assert.equal(scriptOf('make deploy'), undefined);
  assert.equal(scriptOf('"$X"/hook.sh'), undefined);
});
