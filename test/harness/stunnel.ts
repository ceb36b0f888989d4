// TLS in front of a plain service for the download tests: Debian's stunnel4 on 127.0.0.1, taking
// TLS with the certificate it is given and forwarding the plain bytes to `connectPort` (tinyproxy,
// to make an https:// proxy). Its config, log and pid file live in a temp dir.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from './cli.ts';
import { startOnFreePort } from './daemon.ts';
import { requireTool } from './swappers.ts';

export interface Stunnel {
  port: number;
  /** `https://127.0.0.1:<port>`. */
  url: string;
  /** How many TLS clients it has accepted so far (a connection opened, whatever became of its handshake). */
  accepted: () => number;
  log: () => string;
}

/** Starts stunnel in front of 127.0.0.1:connectPort, stopped after the test; throws (never skips) when it is not installed. */
export async function startStunnel(t: { after(fn: () => Promise<void> | void): void }, options: { connectPort: number; certFile: string; keyFile: string }): Promise<Stunnel> {
  const bin = requireTool('stunnel4', 'stunnel4');
  const dir = tempDir(t, 'atomic-deploy-stunnel-');
  const logFile = path.join(dir, 'stunnel.log');
  const log = (): string => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  const { port } = await startOnFreePort(t, {
    name: 'stunnel',
    bin,
    logFile,
    configure: (port) => {
      const conf = path.join(dir, `stunnel-${port}.conf`);
      const lines = [
        // In the foreground, so that the process spawned is stunnel itself, stopped by its pid.
        'foreground = yes',
        `pid = ${path.join(dir, 'stunnel.pid')}`,
        `output = ${logFile}`,
        'debug = notice',
        '[proxy]',
        `accept = 127.0.0.1:${port}`,
        `connect = 127.0.0.1:${options.connectPort}`,
        `cert = ${options.certFile}`,
        `key = ${options.keyFile}`,
      ];
      fs.writeFileSync(conf, `${lines.join('\n')}\n`);
      return [conf];
    },
  });
  // The probe that saw it listen was a connection too: count from here.
  await sleep(50);
  const probes = (log().match(/accepted connection from/g) ?? []).length;
  return { port, url: `https://127.0.0.1:${port}`, accepted: () => (log().match(/accepted connection from/g) ?? []).length - probes, log };
}
