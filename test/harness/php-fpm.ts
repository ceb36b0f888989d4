// Starts Debian's php-fpm 8.2 with the OPcache and pool settings of docs/serving.md, everything it writes in a temp dir.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { docsConfig, substitute } from './docs-config.ts';
import { requireTool } from './swappers.ts';

export interface PhpFpm {
  socket: string;
  pidFile: string;
  errorLog: string;
  pid: number;
  stop(): Promise<void>;
}

export async function startPhpFpm(): Promise<PhpFpm> {
  const bin = requireTool('php-fpm8.2', 'php8.2-fpm');
  const dir = await mkdtemp(join(tmpdir(), 'atomic-deploy-php-'));
  const socket = join(dir, 'php-fpm.sock');
  const pidFile = join(dir, 'php-fpm.pid');
  const errorLog = join(dir, 'php-fpm.log');
  // Debian loads OPcache from conf.d, which -n skips: load it here, then the documented settings.
  await writeFile(join(dir, 'php.ini'), `zend_extension=opcache.so\n${docsConfig('php-opcache')}`);
  const fpm = substitute(docsConfig('php-fpm'), [
    ['listen = /run/php/php8.2-fpm.sock', `listen = ${socket}`],
    // The test's own files go into the [global] section the docs block opens.
    ['[global]\n', `[global]\npid = ${pidFile}\nerror_log = ${errorLog}\ndaemonize = no\n`],
  ]);
  await writeFile(join(dir, 'php-fpm.conf'), fpm);
  // -R: the tests run as root, and so do the workers.
  const child: ChildProcess = spawn(bin, ['-R', '-n', '-c', join(dir, 'php.ini'), '-y', join(dir, 'php-fpm.conf')], {
    env: { ...process.env, PHP_INI_SCAN_DIR: '' },
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  while (!(fs.existsSync(socket) && fs.existsSync(pidFile))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      const log = fs.existsSync(errorLog) ? fs.readFileSync(errorLog, 'utf8') : '';
      await rm(dir, { recursive: true, force: true });
      throw new Error(`php-fpm did not start: ${stderr}${log}`);
    }
    await sleep(25);
  }
  const pid = child.pid as number;
  return {
    socket,
    pidFile,
    errorLog,
    pid,
    stop: async () => {
      try {
        // SIGQUIT: graceful stop of the master and its workers (the group holds them all).
        process.kill(-pid, 'SIGQUIT');
      } catch {
        // gone
      }
      const timer = new AbortController();
      const quit = await Promise.race([exited.then(() => true), sleep(10_000, false, { signal: timer.signal }).catch(() => false)]);
      timer.abort();
      if (!quit) {
        try {
          process.kill(-pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
