import assert from 'node:assert/strict';
import { stripVTControlCharacters } from 'node:util';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import fc from 'fast-check';
import { colorsFor, progressLine, Reporter, withWarnings } from '../../src/cli/output.ts';
import { DeployError } from '../../src/errors.ts';
import { assertSupportedPlatform } from '../../src/ops/root.ts';

function sink(isTTY: boolean): Writable & { text: string; isTTY: boolean } {
  const w = new Writable({
    write(chunk: Buffer, _enc, cb) {
      w.text += chunk.toString();
      cb();
    },
  }) as Writable & { text: string; isTTY: boolean };
  w.text = '';
  w.isTTY = isTTY;
  return w;
}

const progress = { type: 'progress', phase: 'copy', done: 10, total: 10, bytes: 2048, totalBytes: 2048 } as const;

test('progress bar only on a terminal, never with --json or --quiet', () => {
  for (const [tty, json, quiet, expectBar] of [
    [true, false, false, true],
    [false, false, false, false],
    [true, true, false, false],
    [true, false, true, false],
  ] as const) {
    const stdout = sink(tty);
    const stderr = sink(false);
    new Reporter({ stdout, stderr }, { json, quiet }).event(progress);
    assert.equal(stdout.text.includes('10/10 files'), expectBar, `tty=${tty} json=${json} quiet=${quiet}`);
  }
  const term = process.env.TERM;
  process.env.TERM = 'dumb';
  try {
    const stdout = sink(true);
    new Reporter({ stdout, stderr: sink(false) }, { json: false, quiet: false }).event(progress);
    assert.equal(stdout.text, '', 'no bar on a dumb terminal');
  } finally {
    if (term === undefined) delete process.env.TERM;
    else process.env.TERM = term;
  }
});

test('errors are one line plus an optional hint, on stderr', () => {
  const stdout = sink(false);
  const stderr = sink(false);
  new Reporter({ stdout, stderr }, { json: false, quiet: true }).error('it broke', 'do this');
  assert.equal(stdout.text, '');
  assert.match(stderr.text, /^error: it broke\nhint: do this\n$/);
});

test('Windows is refused with a clear message', () => {
  const original = Object.getOwnPropertyDescriptor(process, 'platform');
  Object.defineProperty(process, 'platform', { value: 'win32' });
  try {
    assert.throws(assertSupportedPlatform, (e: unknown) => e instanceof DeployError && e.code === 'UNSUPPORTED_PLATFORM' && /not atomic/.test(e.message));
  } finally {
    if (original) Object.defineProperty(process, 'platform', original);
  }
});

test('exit codes by error code', () => {
  assert.equal(new DeployError('LOCKED', 'x').exitCode, 3);
  assert.equal(new DeployError('INVALID_SOURCE', 'x').exitCode, 2);
  assert.equal(new DeployError('IO', 'x').exitCode, 1);
  assert.equal(new DeployError('ROLLED_BACK', 'x').exitCode, 4);
  assert.equal(new DeployError('INTERRUPTED', 'x', { signal: 'SIGINT' }).exitCode, 130);
  assert.equal(new DeployError('INTERRUPTED', 'x', { signal: 'SIGTERM' }).exitCode, 143);
});

test('colour is decided per stream: a piped stdout gets none while a terminal stderr does', () => {
  const env = { TERM: 'xterm' };
  assert.equal(colorsFor({ isTTY: false }, true, env).green('x'), 'x');
  assert.notEqual(colorsFor({ isTTY: true }, true, env).green('x'), 'x');
  // --no-color wins over a terminal, and NO_COLOR over both.
  assert.equal(colorsFor({ isTTY: true }, false, env).green('x'), 'x');
  assert.equal(colorsFor({ isTTY: true }, true, { ...env, NO_COLOR: '1' }).green('x'), 'x');
  // no-color.org: NO_COLOR counts when present and not empty; `NO_COLOR=` (empty) is as if unset.
  assert.notEqual(colorsFor({ isTTY: true }, true, { ...env, NO_COLOR: '' }).green('x'), 'x');
});

test('the progress line fits the terminal at any width, and the fsync phase has its own line', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 400 }), fc.nat({ max: 10 ** 6 }), fc.nat({ max: 10 ** 6 }), fc.nat({ max: 2 ** 40 }), fc.constantFrom('copy', 'fsync', 'prune' as const), (columns, a, b, bytes, phase) => {
      const [done, total] = a <= b ? [a, b] : [b, a];
      const line = progressLine({ type: 'progress', phase, done, total, bytes: Math.min(bytes, 2 ** 39), totalBytes: bytes }, columns);
      assert.ok([...line].length <= Math.max(20, columns) - 1, `${JSON.stringify(line)} wider than ${columns}`);
      assert.ok(line.startsWith(phase));
    }),
  );
  assert.equal(progressLine({ type: 'progress', phase: 'fsync', done: 0, total: 1, bytes: 0, totalBytes: 3 * 1024 * 1024 }, 80), 'fsync ░░░░░░░░░░░░░░░░░░░░░░░░ 1 file, 3.0 MiB: making them durable');
  assert.equal(progressLine({ type: 'progress', phase: 'copy', done: 1, total: 2, bytes: 1024, totalBytes: 2048 }, 80), 'copy ████████████░░░░░░░░░░░░ 1/2 files  1.0 KiB/2.0 KiB');
});

test('--quiet hides tables too; only warnings and errors are left', () => {
  const stdout = sink(true);
  const stderr = sink(true);
  const reporter = new Reporter({ stdout, stderr }, { json: false, quiet: true });
  reporter.print('a table');
  reporter.result('a result', {});
  reporter.step('a step');
  assert.equal(stdout.text, '');
  // A warning is something the user must know (a release that could not be pruned stays): kept.
  reporter.warn('a warning');
  reporter.error('an error');
  assert.equal(stripVTControlCharacters(stderr.text), 'warning: a warning\nerror: an error\n');
});

void test('a JSON result carries every warning said on stderr, each once, after those it had', () => {
  assert.deepEqual(withWarnings({ release: 'r1' }, []), { release: 'r1' });
  assert.deepEqual(withWarnings({ release: 'r1' }, ['a', 'b', 'a']), { release: 'r1', warnings: ['a', 'b'] });
  assert.deepEqual(withWarnings({ warnings: ['hook failed'] }, ['hook failed', 'x']), { warnings: ['hook failed', 'x'] });
  const out = sink(false);
  const err = sink(false);
  const warned: string[] = [];
  const r = new Reporter({ stdout: out, stderr: err }, { json: true, quiet: false, warned });
  r.warn('the build holds .git at its top', 'a hint stays on stderr');
  r.result(undefined, { release: 'r1' });
  assert.deepEqual(JSON.parse(out.text), { release: 'r1', warnings: ['the build holds .git at its top'] });
  assert.match(err.text, /^warning: the build holds \.git at its top$/m);
});
