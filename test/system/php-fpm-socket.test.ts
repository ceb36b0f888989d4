// --reload-php-fpm unix:<socket>: the master of a real php-fpm 8.2 pool is found from its
// listening socket (/proc/net/unix inode, then the holders' parent) and reloaded gracefully;
// a socket nobody listens on fails the reload like a missing pid file does.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, runCli, tempDir, writeTree } from '../harness/cli.ts';
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

  // Control: a socket path nobody listens on fails the reload (release stays live, exit 0 with a warning, as an after-switch hook).
  const v3 = writeTree(path.join(dir, 'v3'), { 'index.php': '<?php echo "v3";\n' });
  const missing = await runCli(['deploy', v3, root, '--no-fsync', '--json', '--reload-php-fpm', `unix:${path.join(dir, 'nobody.sock')}`]);
  const json = jsonOf<{ release?: string; warnings?: string[] }>(missing);
  assert.equal(currentId(root), json.release);
  assert.match(json.warnings?.[0] ?? '', /php-fpm reload \(unix:.*nobody\.sock\) failed: no process listens on /);
});
