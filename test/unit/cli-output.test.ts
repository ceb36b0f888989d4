import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { Reporter } from '../../src/cli/output.ts';
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
