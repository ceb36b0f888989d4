// Starts Debian's nginx on 127.0.0.1 serving `root <docroot>;`, with every file it writes in a temp dir.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireTool } from './swappers.ts';

export interface NginxServer {
  port: number;
  url: string;
  errorLogPath: string;
  pid: number;
  stop(): Promise<void>;
}

export interface NginxOptions {
  docroot: string;
  /** A `server { }` block used as it is instead of the default one (given the port to listen on). */
  server?: (port: number) => string;
  /** Defaults to 1: the machines that run these tests have few cores and wrk needs them too. */
  workerProcesses?: number;
}

/** A port on 127.0.0.1 free a moment ago: whoever binds it next may lose it to another process, and should retry. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

function quoteNginx(value: string): string {
  // nginx strings are double-quoted with backslash escapes; reject what cannot be expressed safely.
  if (/[\0\n\r$]/.test(value)) throw new Error(`path not usable in an nginx config: ${JSON.stringify(value)}`);
  return `"${value.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

function renderConfig(prefix: string, docroot: string, port: number, workers: number, server?: (port: number) => string): string {
  const p = (name: string): string => quoteNginx(join(prefix, name));
  const asRoot = process.getuid?.() === 0;
  return [
    // Workers must be able to read docroots and temp dirs made by root under a 0700 mkdtemp dir.
    asRoot ? 'user root root;' : '',
    'daemon off;',
    'master_process on;',
    `worker_processes ${workers};`,
    `pid ${p('nginx.pid')};`,
    // crit: a race floods error.log with "No such file" lines at lower levels.
    `error_log ${p('error.log')} crit;`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    '  types { text/html html; text/plain txt; }',
    '  default_type application/octet-stream;',
    `  client_body_temp_path ${p('client_body')};`,
    `  proxy_temp_path ${p('proxy')};`,
    `  fastcgi_temp_path ${p('fastcgi')};`,
    `  uwsgi_temp_path ${p('uwsgi')};`,
    `  scgi_temp_path ${p('scgi')};`,
    // No open_file_cache: nginx must resolve `current` on every request or the race is hidden.
    '  sendfile on;',
    '  keepalive_requests 1000000;',
    ...(server
      ? [server(port)]
      : ['  server {', `    listen 127.0.0.1:${port};`, '    server_name localhost;', `    root ${quoteNginx(docroot)};`, '    location / { }', '  }']),
    '}',
    '',
  ].join('\n');
}

function probe(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', method: 'GET', agent: false, timeout: 1000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(true));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}

/** Resolves true if `p` settles within `ms`; the timer is cleared so it cannot hold the process open. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    // The group holds the master and its workers; killing only the master would orphan workers.
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

async function startOnce(nginxBin: string, opts: NginxOptions, port: number): Promise<NginxServer> {
  const prefix = await mkdtemp(join(tmpdir(), 'atomic-deploy-nginx-'));
  const conf = join(prefix, 'nginx.conf');
  const errorLogPath = join(prefix, 'error.log');
  await writeFile(conf, renderConfig(prefix, opts.docroot, port, opts.workerProcesses ?? 1, opts.server));
  // A verbatim server block may `include fastcgi_params`, relative to the config's directory.
  if (opts.server) await copyFile('/etc/nginx/fastcgi_params', join(prefix, 'fastcgi_params'));

  // -e: nginx 1.19.5+ otherwise opens the compiled-in /var/log/nginx/error.log before reading the config.
  const args = ['-e', errorLogPath, '-c', conf, '-p', prefix];
  const child = spawn(nginxBin, args, { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });

  const cleanupFailed = async (): Promise<void> => {
    killGroup(child, 'SIGKILL');
    await within(exited, 2000);
    await rm(prefix, { recursive: true, force: true });
  };

  const deadline = Date.now() + 10_000;
  for (;;) {
    if (spawnError !== undefined || child.exitCode !== null || child.signalCode !== null) {
      await within(exited, 200);
      await cleanupFailed();
      const why = spawnError?.message ?? `exit code ${String(child.exitCode)}`;
      throw new Error(`nginx failed to start (${why}): ${stderr.trim()}`);
    }
    if (await probe(port)) break;
    if (Date.now() > deadline) {
      await cleanupFailed();
      throw new Error(`nginx did not answer on 127.0.0.1:${port} within 10 s: ${stderr.trim()}`);
    }
    await sleep(25);
  }

  const pid = child.pid;
  if (pid === undefined) {
    await cleanupFailed();
    throw new Error('nginx started without a pid');
  }

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      // Graceful quit the documented way; the signal lands on the master we spawned.
      spawnSync(nginxBin, [...args, '-s', 'quit'], { stdio: 'ignore', timeout: 10_000 });
      const quit = await within(exited, 10_000);
      if (!quit) {
        killGroup(child, 'SIGKILL');
        await within(exited, 2000);
      }
      // Workers share the group; make sure none outlives the master.
      killGroup(child, 'SIGKILL');
      await rm(prefix, { recursive: true, force: true });
    })();
    return stopping;
  };

  return { port, url: `http://127.0.0.1:${port}`, errorLogPath, pid, stop };
}

/** Starts nginx; throws (never skips) if nginx is not installed. */
export async function startNginx(opts: NginxOptions): Promise<NginxServer> {
  const nginxBin = requireTool('nginx', 'nginx');
  let lastError: unknown;
  // The free port can be taken between probing and nginx binding it, so retry a few times.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await startOnce(nginxBin, opts, port);
    } catch (err) {
      lastError = err;
      if (!(err instanceof Error && /Address already in use/.test(err.message))) throw err;
    }
  }
  throw lastError instanceof Error ? lastError : new Error(String(lastError));
}
