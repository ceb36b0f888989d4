// The config file's serving keys (stale, staleWait, reload: units, phpFpm, timeout): what the
// schema accepts, what it refuses in one line, and how each flag given replaces its key.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeployError } from '../../src/errors.ts';
import { parseConfig } from '../../src/plan/config.ts';
import { loadConfigParsers } from '../../src/cli/config.ts';
import { servingOptionsFrom, type ServingFlags } from '../../src/cli/serving-flags.ts';

before(loadConfigParsers);

function refused(data: unknown): string {
  try {
    parseConfig(data, 'c.yaml');
  } catch (error) {
    assert.ok(error instanceof DeployError);
    assert.equal(error.code, 'INVALID_CONFIG');
    assert.ok(!error.message.includes('\n'), 'one line');
    return error.message;
  }
  assert.fail(`expected ${JSON.stringify(data)} to be refused`);
}

test('every serving key is accepted with a valid value and kept as given', () => {
  const config = parseConfig({ stale: 'fail', staleWait: 2.5, reload: { units: ['app.service', 'worker@1.service'], phpFpm: ['/run/php/php8.2-fpm.pid'], timeout: 30 } }, 'c.yaml');
  assert.equal(config.stale, 'fail');
  assert.equal(config.staleWait, 2.5);
  assert.deepEqual(config.reload, { units: ['app.service', 'worker@1.service'], phpFpm: ['/run/php/php8.2-fpm.pid'], timeout: 30 });
  for (const mode of ['warn', 'fail', 'off'] as const) assert.equal(parseConfig({ stale: mode }, 'c.yaml').stale, mode);
  // One unit, or one pid file, needs no list; the options hold a list either way.
  const one = parseConfig({ reload: { units: 'app.service', phpFpm: '/run/php/php8.2-fpm.pid' } }, 'c.yaml');
  assert.deepEqual(servingOptionsFrom(one, {}, () => false).reload?.units, ['app.service']);
  assert.deepEqual(servingOptionsFrom(one, {}, () => false).reload?.phpFpm, ['/run/php/php8.2-fpm.pid']);
  assert.equal(parseConfig({ staleWait: 0 }, 'c.yaml').staleWait, 0);
});

test('bad serving values are refused in one line naming the key, the value and what was expected', () => {
  const cases: [unknown, RegExp][] = [
    [{ stale: 'maybe' }, /stale: .*"maybe".*one of warn, fail, off/],
    [{ stale: true }, /stale: .*one of warn, fail, off/],
    [{ staleWait: -1 }, /staleWait: .*-1.*a number of seconds >= 0/],
    [{ staleWait: '10' }, /staleWait: .*a number of seconds >= 0/],
    [{ reload: { units: [] } }, /reload\.units: .*a systemd unit name or a list of them/],
    [{ reload: { units: 3 } }, /reload\.units: got 3, expected a systemd unit name or a list of them/],
    [{ reload: { phpFpm: [] } }, /reload\.phpFpm: .*a php-fpm pid file path or a list of them/],
    [{ reload: { timeout: 0 } }, /reload\.timeout: .*a number of seconds > 0/],
    [{ reload: { unit: ['x'] } }, /reload\.unit: unknown key .*expected one of units, phpFpm, timeout/],
    [{ reload: 'app.service' }, /reload: .*a mapping with units, phpFpm, timeout/],
  ];
  for (const [data, pattern] of cases) assert.match(refused(data), pattern, JSON.stringify(data));
});

test('property: staleWait is accepted exactly when it is a number from 0 to 2147483 (the longest timer Node keeps)', () => {
  fc.assert(
    fc.property(fc.oneof(fc.double(), fc.integer({ min: -5, max: 1000 }), fc.integer({ min: 2147480, max: 2147490 })), (n) => {
      const ok = Number.isFinite(n) && n >= 0 && n <= 2147483;
      let accepted = true;
      try {
        parseConfig({ staleWait: n }, 'c.yaml');
      } catch {
        accepted = false;
      }
      assert.equal(accepted, ok, String(n));
    }),
  );
});

test('each serving flag given replaces its config key; keys without a flag stay; seconds become ms', () => {
  const config = parseConfig({ stale: 'fail', staleWait: 3, reload: { units: ['a.service'], phpFpm: ['/run/fpm.pid'], timeout: 5 } }, 'c.yaml');
  const none = servingOptionsFrom(config, {}, () => false);
  assert.deepEqual(none, { reload: { units: ['a.service'], phpFpm: ['/run/fpm.pid'], timeoutMs: 5000 }, stale: 'fail', staleWaitMs: 3000 });
  const flags: ServingFlags = { reloadUnit: ['b.service'], stale: 'warn', staleWait: 0.5 };
  const given = new Set<keyof ServingFlags>(['reloadUnit', 'stale', 'staleWait']);
  assert.deepEqual(servingOptionsFrom(config, flags, (f) => given.has(f)), { reload: { units: ['b.service'], phpFpm: ['/run/fpm.pid'], timeoutMs: 5000 }, stale: 'warn', staleWaitMs: 500 });
  assert.deepEqual(servingOptionsFrom(parseConfig({}, 'c.yaml'), {}, () => false), {});
});
