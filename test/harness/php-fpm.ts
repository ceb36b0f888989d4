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
  dir: string;
  socket: string;
  pidFile: string;
  errorLog: string;
  /** The master's pid when the pool started. */
  pid: number;
  /** The master's pid now, from its pid file: a daemonizing pool gets a new one at every reload. */
  master(): number;
  stop(): Promise<void>;
}

export interface PhpFpmOptions {
  /** daemonize = yes (php-fpm's default, Debian's init script): every reload forks a new master. */
  daemonize?: boolean;
  /** pm = ondemand: no worker until a request comes, none again after a reload. */
  pm?: 'static' | 'ondemand';
}

/** Whether `pid` is gone: no /proc entry, or a zombie nobody reaped yet. */
function exited(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

export async function startPhpFpm(options: PhpFpmOptions = {}): Promise<PhpFpm> {
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
    ['[global]\n', `[global]\npid = ${pidFile}\nerror_log = ${errorLog}\ndaemonize = ${options.daemonize === true ? 'yes' : 'no'}\n`],
    ...(options.pm === 'ondemand' ? [['pm = static', 'pm = ondemand'] as [string, string]] : []),
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
  const childExit = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + 10_000;
  // A daemonizing php-fpm exits once its forked master is ready; that exit is no failure.
  while (!(fs.existsSync(socket) && fs.existsSync(pidFile))) {
    if ((child.exitCode !== null && options.daemonize !== true) || Date.now() > deadline) {
      child.kill('SIGKILL');
      const log = fs.existsSync(errorLog) ? fs.readFileSync(errorLog, 'utf8') : '';
      await rm(dir, { recursive: true, force: true });
      throw new Error(`php-fpm did not start: ${stderr}${log}`);
    }
    await sleep(25);
  }
  const readPid = (): number | undefined => {
    const n = Number(fs.readFileSync(pidFile, 'utf8').trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  };
  let pid = options.daemonize === true ? readPid() : child.pid;
  // The daemon writes its pid file when it is ready; until then it may be empty.
  while (pid === undefined && Date.now() < deadline) {
    await sleep(25);
    pid = readPid();
  }
  if (pid === undefined) throw new Error('php-fpm wrote no pid');
  let last = pid;
  const master = (): number => {
    last = readPid() ?? last;
    return last;
  };
  return {
    dir,
    socket,
    pidFile,
    errorLog,
    pid,
    master,
    stop: async () => {
      // The master of now (a daemonizing pool's changes at each reload) leads its own process group,
      // which holds its workers: SIGQUIT stops them all gracefully.
      const leader = fs.existsSync(pidFile) ? master() : last;
      try {
        process.kill(-leader, 'SIGQUIT');
      } catch {
        // gone
      }
      const until = Date.now() + 10_000;
      while (!exited(leader) && Date.now() < until) await sleep(25);
      if (!exited(leader)) {
        try {
          process.kill(-leader, 'SIGKILL');
        } catch {
          // gone
        }
      }
      if (options.daemonize !== true) await childExit;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The pids of a php-fpm master's live workers (its children that are not zombies; fleet hosts share this pid namespace). */
export function workersOf(master: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === master && state !== 'Z') out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out.sort((a, b) => a - b);
}
