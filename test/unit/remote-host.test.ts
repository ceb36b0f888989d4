import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { RemoteRoot } from '../../src/remote/host.ts';
import type { Frame } from '../../src/remote/facts.ts';
import { diedBeforeRunning, lastLine, osReasonOf, remoteError, type ExecResult, type RootTransport, type RunningRemote } from '../../src/remote/ssh.ts';

const OK: ExecResult = { code: 0, signal: null, frames: [], stderr: '' };

/** A lock holder in memory: it reports the lock taken at once, and ends as soon as its stdin does. */
function holder(): RunningRemote {
  let exit = (): void => undefined;
  const done = new Promise<ExecResult>((resolve) => (exit = () => resolve(OK)));
  const frames: Frame[] = [];
  return {
    child: {} as ChildProcess,
    frames,
    waitFor: (tags) => Promise.resolve(tags.includes('locked') ? { tag: 'locked', value: '4242' } : { tag: 'end', value: '' }),
    send: () => true,
    end: () => exit(),
    done,
  };
}

/** A host that answers every program at once: no ssh, no process. */
const transport: RootTransport = {
  up: true,
  connect: () => Promise.resolve(holder()),
  start: () => holder(),
  exec: () => Promise.resolve(OK),
  disconnect: () => Promise.resolve(),
};

/** Timers that would keep the process alive (unref'd ones are not listed). */
const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

// A fleet command's promise settled, and a 2 s timer that raced the holder's exit kept the process alive after it.
void test('RemoteRoot.close() leaves no timer behind once the lock holder has ended', async () => {
  const before = timers();
  const remote = new RemoteRoot('web1', { host: 'web1' }, '/srv/app', {}, '/nonexistent/socket', false, transport);
  await remote.lock({ command: 'test', create: false });
  await remote.close();
  assert.equal(timers(), before);
});

void test('RemoteRoot.unlock() with afterHolder leaves no timer behind once the lock holder has ended', async () => {
  const before = timers();
  const remote = new RemoteRoot('web1', { host: 'web1' }, '/srv/app', {}, '/nonexistent/socket', false, transport);
  await remote.lock({ command: 'test', create: true });
  await remote.unlock([], [{ op: 'remove-made', dirs: ['/srv/app'] }], { afterHolder: true });
  assert.equal(timers(), before);
  await remote.close();
});

// A session forked as a Ctrl-C reaches our process group dies of it before ssh runs (the signal
// stays pending across the child's setsid): only such a death, with nothing heard, is run again.
void test('a session is run again only when a signal ended it before it said a word', () => {
  const result = (over: Partial<ExecResult>): ExecResult => ({ code: null, signal: 'SIGINT', frames: [], stderr: '', ...over });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) assert.equal(diedBeforeRunning(result({ signal })), true, signal);
  assert.equal(diedBeforeRunning(result({ signal: 'SIGKILL' })), false, 'SIGKILL is ours (a timeout), not a terminal');
  assert.equal(diedBeforeRunning(result({ frames: [{ tag: 'locked', value: 'x' }] })), false, 'it ran: a frame came');
  assert.equal(diedBeforeRunning(result({ stderr: 'ssh: connect to host …' })), false, 'ssh ran: it said something');
  assert.equal(diedBeforeRunning(result({ signal: null, code: 255 })), false, 'a lost connection is no signal');
});

// A host program's error carries the OS's reason its tools said on stderr (it was on the host's
// stderr line alone): the last line of the program's own, never a hook's, and not twice.
void test('remoteError: the OS reason of the program\'s last own stderr line ends the message, once; a hook\'s lines are not the program\'s', () => {
  const failed = (stderr: string, message = 'cannot write the journal'): string =>
    remoteError('web2', { code: 1, signal: null, frames: [{ tag: 'error', value: 'IO' }, { tag: 'message', value: message }], stderr }, 'deploying').message;
  assert.equal(failed("mkdir: cannot create directory '/srv/a/.atomic-deploy/.put.1': Read-only file system\n"), 'web2: cannot write the journal: Read-only file system');
  assert.equal(failed("sh: 1: cannot create /srv/a/x: Permission denied\n"), 'web2: cannot write the journal: Permission denied');
  assert.equal(failed("rm: can't remove '/srv/a/j': Operation not permitted\n"), 'web2: cannot write the journal: Operation not permitted');
  // Named already: not said twice.
  assert.equal(failed('printf: I/O error\n', 'cannot write the lock owner in /x: No space left on device'), 'web2: cannot write the lock owner in /x: No space left on device');
  // A hook's output, even last, is not the program's; an older line of the program's is not its reason either.
  assert.equal(failed("\u0001step before-switch\ncp: cannot stat 'x': Permission denied\n\u0001step -\n"), 'web2: cannot write the journal');
  assert.equal(failed("mv: cannot move 'a': Permission denied\nsomething else went wrong\n"), 'web2: cannot write the journal');
  assert.equal(osReasonOf(''), undefined);
  // A hook whose output ends without a newline leaves its last bytes on the mark's line: they are
  // still the hook's, and the mark still ends its section, so the program's own line after it counts.
  assert.equal(failed("\u0001step after-switch\ncp: cannot stat 'x': Permission denied\u0001step -\n"), 'web2: cannot write the journal');
  assert.equal(failed("\u0001step after-switch\nno newline\u0001step -\nmkdir: cannot create directory '/srv/a/.put.1': Read-only file system\n"), 'web2: cannot write the journal: Read-only file system');
  assert.equal(lastLine("mkdir: x: Read-only file system\n\u0001step after-switch\nthe hook's last words\u0001step -\n"), "the hook's last words");
});
