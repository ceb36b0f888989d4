// --reload-php-fpm unix:<socket>: the master of a real php-fpm 8.2 pool is found from its
// listening socket (/proc/net/unix inode, then the holders' parent) and reloaded gracefully;
// a socket nobody listens on is refused before the deploy, like a missing pid file; a pool that
// goes away after that check fails the reload after the switch (exit 7, the release stays live).
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { startPhpFpm } from '../harness/php-fpm.ts';

void test('--reload-php-fpm unix:<socket> finds the pool master from its socket and reloads it', async (t) => {
  const fpm = await startPhpFpm();
  t.after(() => fpm.stop());
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const v1 = writeTree(path.join(dir, 'v1'), { 'index.php': '<?php echo "v1";\n' });
  const v2 = writeTree(path.join(dir, 'v2'), { 'index.php': '<?php echo "v2";\n' });
  assert.equal((await runCli(['deploy', v1, root, '--no-fsync'])).code, 0);
  const deploy = await runCli(['deploy', v2, root, '--no-fsync', '--reload-php-fpm', `unix:${fpm.socket}`]);
  assert.equal(deploy.code, 0, deploy.stderr);
  assert.match(deploy.stdout, new RegExp(`reloading php-fpm gracefully \\(socket ${fpm.socket.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\)`));
  assert.match(deploy.stdout, new RegExp(`\\[reload-php-fpm\\] sent SIGUSR2 to php-fpm master ${fpm.pid};`));
  assert.match(deploy.stdout, new RegExp(`\\[reload-php-fpm\\] php-fpm master ${fpm.pid} reloaded`));

  // A socket path nobody listens on is refused before anything is written (exit 2), as a missing
  // pid file is: the switch would stand with no pool to reload.
  const v3 = writeTree(path.join(dir, 'v3'), { 'index.php': '<?php echo "v3";\n' });
  const live = currentId(root);
  const missing = await runCli(['deploy', v3, root, '--no-fsync', '--json', '--reload-php-fpm', `unix:${path.join(dir, 'nobody.sock')}`]);
  assert.equal(missing.code, 2, missing.stderr);
  assert.match(jsonOf<{ error?: { message?: string } }>(missing).error?.message ?? '', /^--reload-php-fpm unix:.*nobody\.sock: no process listens on .*nobody\.sock; nothing was changed$/);
  assert.equal(currentId(root), live);
  assert.equal(releaseIds(root).length, 2);
  for (const spec of [path.join(dir, 'nope.pid'), `unix:${path.join(dir, 'nobody.sock')}`]) {
    const r = await runCli(['rollback', root, '--reload-php-fpm', spec]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(currentId(root), live);
  }

  // A pool that goes away after that check (a before-switch hook stops it here; a crash in life)
  // fails the reload after the switch, which is handled as an after-switch hook's failure: the
  // release stays live, exit 7, the reason in the result.
  const v4 = writeTree(path.join(dir, 'v4'), { 'index.php': '<?php echo "v4";\n' });
  const stop = `kill -QUIT ${fpm.pid}; while kill -0 ${fpm.pid} 2>/dev/null; do sleep 0.05; done`;
  const gone = await runCli(['deploy', v4, root, '--no-fsync', '--json', '--reload-php-fpm', fpm.pidFile, '--before-switch', stop]);
  assert.equal(gone.code, 7, gone.stderr);
  const json = jsonOf<{ release?: string; error?: { message?: string } }>(gone);
  assert.notEqual(currentId(root), live);
  assert.match(json.error?.message ?? '', /php-fpm reload \(.*php-fpm\.pid\) failed: (cannot read the pid file: ENOENT|no process \d+ is running)/);
});
