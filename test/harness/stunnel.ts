// TLS in front of a plain service for the download tests: Debian's stunnel4 on 127.0.0.1, taking
// TLS with the certificate it is given and forwarding the plain bytes to `connectPort` (tinyproxy,
// to make an https:// proxy). Its config, log and pid file live in a temp dir.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { tempDir } from './cli.ts';
import { freePort } from './nginx.ts';
import { requireTool } from './swappers.ts';

export interface Stunnel {
  port: number;
  /** `https://127.0.0.1:<port>`. */
  url: string;
  /** How many TLS clients it has accepted so far (a connection opened, whatever became of its handshake). */
  accepted: () => number;
  log: () => string;
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

/** Starts stunnel in front of 127.0.0.1:connectPort, stopped after the test; throws (never skips) when it is not installed. */
export async function startStunnel(t: { after(fn: () => Promise<void> | void): void }, options: { connectPort: number; certFile: string; keyFile: string }): Promise<Stunnel> {
  const bin = requireTool('stunnel4', 'stunnel4');
  const dir = tempDir(t, 'atomic-deploy-stunnel-');
  const logFile = path.join(dir, 'stunnel.log');
  const log = (): string => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  let lastError: Error | undefined;
  // The free port can be taken between probing and stunnel binding it: another try with another port.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
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
    const child = spawn(bin, [conf], { stdio: ['ignore', 'ignore', 'pipe'] });
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
      // The probe above was a connection too: count from here.
      await sleep(50);
      const probes = (log().match(/accepted connection from/g) ?? []).length;
      return { port, url: `https://127.0.0.1:${port}`, accepted: () => (log().match(/accepted connection from/g) ?? []).length - probes, log };
    }
    await stop();
    lastError = new Error(`stunnel did not listen on 127.0.0.1:${port}: ${stderr.trim()} ${log().trim()}`);
    if (!/Address already in use/i.test(`${stderr}${log()}`)) throw lastError;
  }
  throw lastError ?? new Error('stunnel did not start');
}
