// Why rsync failed, from what it printed: its closing summary names no cause, so the line that
// does wins (src/remote/rsync.ts rsyncFailure). The stderr texts are rsync 3.2's and dash's own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rsyncFailure } from '../../src/remote/rsync.ts';

void test('a full disk or quota is NO_SPACE, with the line that says so and a prune hint for that host', () => {
  const stderr = [
    'rsync: [receiver] write failed on "/srv/app/.tmp/stage.x/r2/data.bin": No space left on device (28)',
    'rsync error: error in file IO (code 11) at receiver.c(380) [receiver=3.2.7]',
    'rsync: [sender] write error: Broken pipe (32)',
  ].join('\n');
  assert.deepEqual(rsyncFailure(stderr, 11, null, 'web2', '/srv/app'), {
    code: 'NO_SPACE',
    why: 'rsync: [receiver] write failed on "/srv/app/.tmp/stage.x/r2/data.bin": No space left on device (28)',
    hint: 'free space on web2 (for example: atomic-deploy prune /srv/app --host web2 --keep 2) and deploy again',
  });
  assert.equal(rsyncFailure('rsync: [receiver] mkstemp "/srv/a/.x.abc" failed: Disk quota exceeded (122)\nrsync error: some files/attrs were not transferred (see previous errors) (code 23)', 23, null, 'h', '/srv/app').code, 'NO_SPACE');
});

void test('rsync missing on the host is named, with a hint to install it; rsync\'s own error line beats its summary', () => {
  const missing = rsyncFailure('sh: 1: rsync: not found\nrsync: connection unexpectedly closed (0 bytes received so far) [sender]\nrsync error: remote command not found (code 127) at io.c(258) [sender=3.2.7]', 127, null, 'web3', '/srv/app');
  assert.deepEqual(missing, { code: 'REMOTE', why: 'sh: 1: rsync: not found', hint: 'install rsync on web3' });
  assert.equal(rsyncFailure('bash: line 1: rsync: command not found\n', 127, null, 'h', '/srv/app').why, 'bash: line 1: rsync: command not found');
  const denied = rsyncFailure('rsync: [receiver] mkdir "/srv/app/.tmp/stage.x/r2" failed: Permission denied (13)\nrsync error: error in file IO (code 11) at main.c(784) [Receiver=3.2.7]', 11, null, 'h', '/srv/app');
  assert.deepEqual(denied, { code: 'IO', why: 'rsync: [receiver] mkdir "/srv/app/.tmp/stage.x/r2" failed: Permission denied (13)' });
});

void test('ssh\'s own line names a connection failure (REMOTE); without a cause line: the last line, a signal by name, or the exit code', () => {
  assert.deepEqual(rsyncFailure('ssh: connect to host web1 port 22: Connection refused\nrsync error: unexplained error (code 255) at io.c(232) [sender=3.2.7]\n', 255, null, 'web1', '/srv/app'), {
    code: 'REMOTE',
    why: 'ssh: connect to host web1 port 22: Connection refused',
  });
  assert.deepEqual(rsyncFailure('rsync: connection unexpectedly closed (0 bytes received so far) [sender]\nrsync error: unexplained error (code 255) at io.c(232) [sender=3.2.7]\n', 255, null, 'web1', '/srv/app'), {
    code: 'REMOTE',
    why: 'rsync error: unexplained error (code 255) at io.c(232) [sender=3.2.7]',
  });
  assert.deepEqual(rsyncFailure('', null, 'SIGTERM', 'h', '/srv/app'), { code: 'IO', why: 'rsync was ended by SIGTERM' });
  assert.deepEqual(rsyncFailure('', 23, null, 'h', '/srv/app'), { code: 'IO', why: 'rsync exited with code 23' });
});
