// stopsCleanup (src/plan/signals.ts): which signal after the first stops an undo's deletes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { REPEAT_WINDOW_MS, stopsCleanup } from '../../src/plan/signals.ts';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

test('a second Ctrl-C or SIGTERM stops the clean-up; a hangup or the same signal delivered twice does not', () => {
  assert.equal(stopsCleanup({ signal: 'SIGINT', atMs: 0 }, { signal: 'SIGINT', atMs: 900 }), true);
  assert.equal(stopsCleanup({ signal: 'SIGTERM', atMs: 0 }, { signal: 'SIGINT', atMs: 1 }), true);
  assert.equal(stopsCleanup({ signal: 'SIGHUP', atMs: 0 }, { signal: 'SIGTERM', atMs: 1 }), true);
  // npm forwards the terminal's SIGINT to a child that already got it.
  assert.equal(stopsCleanup({ signal: 'SIGINT', atMs: 0 }, { signal: 'SIGINT', atMs: 3 }), false);
  // A hangup: the kernel's SIGHUP, then the shell's; or the terminal closed after a Ctrl-C.
  assert.equal(stopsCleanup({ signal: 'SIGHUP', atMs: 0 }, { signal: 'SIGHUP', atMs: 2 }), false);
  assert.equal(stopsCleanup({ signal: 'SIGINT', atMs: 0 }, { signal: 'SIGHUP', atMs: 5_000 }), false);
  assert.equal(stopsCleanup({ signal: 'SIGINT', atMs: 0 }, { signal: 'SIGINT', atMs: REPEAT_WINDOW_MS }), true);
  assert.equal(stopsCleanup({ signal: 'SIGINT', atMs: 0 }, { signal: 'SIGINT', atMs: REPEAT_WINDOW_MS - 1 }), false);
});

test('property: a hangup never stops it; any other signal does once the window is past, or at once when it differs from the first', () => {
  fc.assert(
    fc.property(fc.constantFrom(...SIGNALS), fc.constantFrom(...SIGNALS), fc.nat(10_000), fc.nat(10_000), (a, b, at, gap) => {
      const stops = stopsCleanup({ signal: a, atMs: at }, { signal: b, atMs: at + gap });
      if (b === 'SIGHUP') assert.equal(stops, false);
      else if (a !== b || gap >= REPEAT_WINDOW_MS) assert.equal(stops, true);
      else assert.equal(stops, false);
    }),
  );
});
