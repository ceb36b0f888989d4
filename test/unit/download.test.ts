// src/plan/download.ts: which answers a download retries, and how long it waits first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isTransientStatus, MAX_RETRY_AFTER_MS, retryAfterMs, retryDelayMs, retryWait } from '../../src/plan/download.ts';

test('5xx, 408 and 429 are "later"; any other 4xx is "never"', () => {
  for (const code of [408, 429, 500, 502, 503, 504, 599]) assert.equal(isTransientStatus(code), true, String(code));
  for (const code of [400, 401, 403, 404, 410, 416, 451]) assert.equal(isTransientStatus(code), false, String(code));
});

test('Retry-After is read as seconds or as an HTTP date; anything else is not read', () => {
  const now = Date.parse('Sun, 06 Nov 1994 08:49:37 GMT');
  assert.equal(retryAfterMs('1', now), 1000);
  assert.equal(retryAfterMs(' 120 ', now), 120_000);
  assert.equal(retryAfterMs('0', now), 0);
  assert.equal(retryAfterMs('Sun, 06 Nov 1994 08:49:40 GMT', now), 3000);
  // The two obsolete forms a recipient must also accept (RFC 9110, 5.6.7).
  assert.equal(retryAfterMs('Sunday, 06-Nov-94 08:49:47 GMT', now), 10_000);
  assert.equal(retryAfterMs('Sun Nov  6 08:49:57 1994', now), 20_000, 'asctime: GMT, whatever the local zone');
  assert.equal(retryAfterMs('Sun, 06 Nov 1994 08:00:00 GMT', now), 0, 'a date past: at once');
  for (const bad of [undefined, '', '-1', '1.5', 'soon', '1e3', '+5']) assert.equal(retryAfterMs(bad, now), undefined, String(bad));
});

test('the wait before a retry: Retry-After when there is one, at most 60 s; else the back-off', () => {
  assert.deepEqual(retryWait(1, undefined, 0), { ms: 500, said: '' });
  assert.deepEqual(retryWait(3, 'soon', 0), { ms: 2000, said: '' });
  assert.deepEqual(retryWait(1, '1', 0), { ms: 1000, said: ' in 1 s, as its Retry-After asks' });
  assert.deepEqual(retryWait(1, '3600', 0), { ms: 60_000, said: ' in 60 s, the longest waited (its Retry-After asks for 3600 s)' });
  fc.assert(fc.property(fc.nat(10), fc.option(fc.string()), fc.integer({ min: 0, max: 2 ** 40 }), (attempt, header, now) => {
    const { ms } = retryWait(attempt, header ?? undefined, now);
    assert.ok(ms >= 0 && ms <= Math.max(MAX_RETRY_AFTER_MS, retryDelayMs(attempt)));
  }));
});
