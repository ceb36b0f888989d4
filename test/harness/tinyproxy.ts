// A real HTTP proxy for the download tests: Debian's tinyproxy on 127.0.0.1, its config, log and
// pid file in a temp dir. Its connections to servers leave from `bind` (127.0.0.2 by default), so a
// server that answers that address alone (serve's `onlyFrom`) is reached through the proxy or not
// at all, as on a machine whose only way out is a proxy.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from './cli.ts';
import { freePort } from './nginx.ts';
import { requireTool } from './swappers.ts';

export interface Tinyproxy {
  port: number;
  /** `http://127.0.0.1:<port>`, without a login. */
  url: string;
  /** The proxy's log so far: a `Request` line for every request it took (`GET http://…`, `CONNECT host:port`). */
  log: () => string;
  stop: () => Promise<void>;
}

export interface TinyproxyOptions {
  /** Asked of every client (BasicAuth): without it, or with another, the proxy answers 407. */
  login?: { user: string; password: string };
  /** The only ports CONNECT may reach (ConnectPort): a CONNECT to another is answered 403. Default: any. */
  connectPorts?: number[];
  /** The address its connections to servers leave from. */
  bind?: string;
}

/** Whether something accepts connections on 127.0.0.1:port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Starts tinyproxy, stopped after the test; throws (never skips) when it is not installed. */
export async function startTinyproxy(t: { after(fn: () => Promise<void> | void): void }, options: TinyproxyOptions = {}): Promise<Tinyproxy> {
  const bin = requireTool('tinyproxy', 'tinyproxy');
  const dir = tempDir(t, 'atomic-deploy-tinyproxy-');
  const logFile = path.join(dir, 'tinyproxy.log');
  let lastError: Error | undefined;
  // The free port can be taken between probing and tinyproxy binding it: another try with another port.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const conf = path.join(dir, `tinyproxy-${port}.conf`);
    const lines = [
      'Listen 127.0.0.1',
      `Port ${port}`,
      `Bind ${options.bind ?? '127.0.0.2'}`,
      'Timeout 30',
      'MaxClients 20',
      `LogFile "${logFile}"`,
      'LogLevel Connect',
      `PidFile "${path.join(dir, 'tinyproxy.pid')}"`,
      'Allow 127.0.0.1',
      ...(options.login ? [`BasicAuth ${options.login.user} ${options.login.password}`] : []),
      ...(options.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
    ];
    fs.writeFileSync(conf, `${lines.join('\n')}\n`);
    // -d: in the foreground, so that the process spawned is the proxy, stopped by its pid.
    const child = spawn(bin, ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    };
    const deadline = Date.now() + 10_000;
    let up = false;
    while (!up && child.exitCode === null && Date.now() < deadline) {
      up = await accepts(port);
      if (!up) await sleep(25);
    }
    if (up) {
      t.after(stop);
      return { port, url: `http://127.0.0.1:${port}`, log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''), stop };
    }
    await stop();
    const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '';
    lastError = new Error(`tinyproxy did not listen on 127.0.0.1:${port}: ${stderr.trim()} ${log.trim()}`);
    if (!/Address already in use/i.test(`${stderr}${log}`)) throw lastError;
  }
  throw lastError ?? new Error('tinyproxy did not start');
}
