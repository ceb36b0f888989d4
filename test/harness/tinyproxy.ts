// A real HTTP proxy for the download tests: Debian's tinyproxy on 127.0.0.1, its config, log and
// pid file in a temp dir. Its connections to servers leave from `bind` (127.0.0.2 by default), so a
// server that answers that address alone (serve's `onlyFrom`) is reached through the proxy or not
// at all, as on a machine whose only way out is a proxy.
import fs from 'node:fs';
import path from 'node:path';
import { tempDir } from './cli.ts';
import { startOnFreePort } from './daemon.ts';
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

/** Starts tinyproxy, stopped after the test; throws (never skips) when it is not installed. */
export async function startTinyproxy(t: { after(fn: () => Promise<void> | void): void }, options: TinyproxyOptions = {}): Promise<Tinyproxy> {
  const bin = requireTool('tinyproxy', 'tinyproxy');
  const dir = tempDir(t, 'atomic-deploy-tinyproxy-');
  const logFile = path.join(dir, 'tinyproxy.log');
  const { port, stop } = await startOnFreePort(t, {
    name: 'tinyproxy',
    bin,
    logFile,
    configure: (port) => {
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
      return ['-d', '-c', conf];
    },
  });
  return { port, url: `http://127.0.0.1:${port}`, log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''), stop };
}
