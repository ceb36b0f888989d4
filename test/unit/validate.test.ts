import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeployError } from '../../src/errors.ts';
import { checkHookAndHealth, closedBuildWarning, checkKeep, looksLikeUrl, repositoryWarning, checkReleaseId, COUNTS, countProblem, MAX_TIMEOUT_MS, secondsProblem, signalOf, timeoutProblem } from '../../src/plan/validate.ts';
import { secondsToMs } from '../../src/cli/number-flags.ts';

function refused(fn: () => void, code: string): DeployError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DeployError);
    assert.equal(error.code, code);
    assert.equal(error.exitCode, 2, 'bad input exits 2');
    return error;
  }
  assert.fail('accepted');
}

void test('a hook or health timeout is a limit only when positive and finite: 0 would be `timeout 0`, no limit at all', () => {
  for (const ms of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 31]) {
    assert.ok(timeoutProblem(ms), String(ms));
    assert.match(refused(() => checkHookAndHealth({ hooks: { timeoutMs: ms } }), 'USAGE').message, /hook timeout/);
    assert.match(refused(() => checkHookAndHealth({ healthCheck: { command: 'true', timeoutMs: ms } }), 'USAGE').message, /health timeout/);
  }
  fc.assert(fc.property(fc.integer({ min: 1, max: MAX_TIMEOUT_MS }), (ms) => timeoutProblem(ms) === undefined));
  fc.assert(fc.property(fc.integer({ min: MAX_TIMEOUT_MS + 1, max: 2 ** 53 }), (ms) => timeoutProblem(ms) !== undefined));
  checkHookAndHealth({ hooks: { beforeSwitch: ['true'], timeoutMs: 1000 }, healthCheck: { url: 'http://127.0.0.1/', timeoutMs: 5 } });
});

void test('hooks and health checks: empty commands, NUL bytes, non-http URLs and a timeout without a check are refused', () => {
  refused(() => checkHookAndHealth({ hooks: { beforeSwitch: [' '] } }), 'USAGE');
  refused(() => checkHookAndHealth({ hooks: { afterSwitch: ['a\0b'] } }), 'USAGE');
  refused(() => checkHookAndHealth({ healthCheck: { url: 'ftp://x/' } }), 'USAGE');
  refused(() => checkHookAndHealth({ healthCheck: { timeoutMs: 1000 } }), 'USAGE');
  // A URL where a command belongs; a command that merely holds one is a command.
  for (const url of ['http://127.0.0.1/health', ' https://x/ ', 'htp://localhost:8080/']) refused(() => checkHookAndHealth({ healthCheck: { command: url } }), 'USAGE');
  for (const command of ['curl -fsS http://127.0.0.1/health', 'test -f /tmp/ok', 'http_check', 'wget -q -O- https://x/']) {
    checkHookAndHealth({ healthCheck: { command } });
    assert.equal(looksLikeUrl(command), false, command);
  }
});

void test('release ids and --keep', () => {
  for (const id of ['..', '-x', 'a/b', '', '.hidden']) refused(() => checkReleaseId(id), 'INVALID_RELEASE_ID');
  checkReleaseId('v1.4.2');
  for (const keep of [-1, 1.5, Number.NaN, '3']) refused(() => checkKeep(keep), 'USAGE');
  checkKeep(0);
});

void test('seconds from the command line and signal names from an abort reason', () => {
  for (const v of ['', ' ', '-1', 'abc', 'Infinity']) assert.ok(secondsProblem(v), JSON.stringify(v));
  for (const v of ['0', '1.5', '300']) assert.equal(secondsProblem(v), undefined);
  // Decimal digits only (Number() would read these), and no timer longer than Node keeps.
  for (const v of ['0x10', '1e3', ' 3', '3 ', '+3', '.5', '5.', 'NaN']) assert.match(secondsProblem(v) ?? '', /^expected a number of seconds \(>= 0\) in decimal digits/, JSON.stringify(v));
  assert.equal(secondsProblem('2147483'), undefined);
  for (const v of ['2147483.5', '2147484', '99999999999999999999']) assert.match(secondsProblem(v) ?? '', /^at most 2147483 seconds/, v);
  assert.match(secondsProblem('0', 'positive') ?? '', /greater than 0/);
  assert.equal(secondsProblem('0.5', 'positive'), undefined);
  assert.equal(signalOf('SIGINT'), 'SIGINT');
  assert.equal(signalOf('SIGHUP'), 'SIGHUP');
  for (const r of [undefined, new Error('x'), 'SIG', 'sigint', 'SIGINT; rm']) assert.equal(signalOf(r), 'SIGTERM');
});

void test('whole numbers from the command line: decimal digits only, each flag within its range', () => {
  for (const [name, range] of Object.entries(COUNTS)) {
    assert.equal(countProblem(String(range.min), range), undefined, name);
    assert.equal(countProblem(String(range.max), range), undefined, name);
    for (const v of [String(range.max + 1), '99999999999999999999', '0x10', '1e3', '1.0', ' 3', '-1', '']) {
      assert.equal(countProblem(v, range), `expected a whole number from ${range.min} to ${range.max} in decimal digits`, `${name} ${JSON.stringify(v)}`);
    }
  }
  assert.ok(countProblem('0', COUNTS.parallel), '--parallel 0');
});

void test('a build holding repository metadata at its top is warned about, by name; anything else is not', () => {
  assert.match(repositoryWarning(['index.html', '.git']) ?? '', /^the build holds \.git at its top: /);
  assert.match(repositoryWarning(['.svn', 'a', '.hg']) ?? '', /^the build holds \.hg and \.svn at its top: /);
  for (const names of [[], ['index.html', '.github', '.gitignore', 'git', '.gitkeep'], ['.GIT2']]) assert.equal(repositoryWarning(names), undefined, names.join(','));
});

void test('seconds to milliseconds: a positive time is never 0 ms (timeouts refuse 0), whole and fractional seconds round to the nearest ms', () => {
  assert.equal(secondsToMs(0.0004), 1);
  assert.equal(secondsToMs(0.0005), 1);
  assert.equal(secondsToMs(0.3), 300);
  assert.equal(secondsToMs(2.5), 2500);
  assert.equal(secondsToMs(0), 0);
  fc.assert(fc.property(fc.double({ min: 1e-9, max: 2147483, noNaN: true }), (s) => secondsToMs(s) >= 1 && Math.abs(secondsToMs(s) - s * 1000) <= 1));
});

void test('closedBuildWarning: said only when no file is readable by group or others, naming the first path and its mode', () => {
  assert.equal(closedBuildWarning([], 'fix'), undefined);
  assert.equal(closedBuildWarning([{ path: 'a', mode: 0o100600 }, { path: 'b', mode: 0o100640 }], 'fix'), undefined);
  assert.equal(closedBuildWarning([{ path: 'a', mode: 0o100600 }, { path: 'b', mode: 0o100604 }], 'fix'), undefined);
  assert.equal(closedBuildWarning([{ path: 'z', mode: 0o100600 }, { path: 'b/c', mode: 0o100700 }], 'fix.'), 'no file of the build is readable by its group or other users (all 2, b/c 0700 among them: made under umask 077?): a web server running as another user answers 403 for each; fix.');
  assert.equal(closedBuildWarning([{ path: 'index.html', mode: 0o100400 }], 'fix'), 'no file of the build is readable by its group or other users (its one file, index.html, is 0400: made under umask 077?): a web server running as another user answers 403 for each; fix');
  // Whatever the order and mix, one readable file silences it.
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 0o7777 }), { minLength: 1, maxLength: 20 }), (modes) => {
      const files = modes.map((mode, i) => ({ path: `f${i}`, mode }));
      const said = closedBuildWarning(files, 'fix') !== undefined;
      assert.equal(said, modes.every((m) => (m & 0o044) === 0));
    }),
  );
});
