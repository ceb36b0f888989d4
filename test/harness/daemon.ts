// A test daemon on a free loopback port (tinyproxy, stunnel): written a config for the port, run in
// the foreground (the process spawned is the daemon, stopped by its pid), waited for until it
// accepts connections, and tried again on another port when the one probed was taken meanwhile.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './nginx.ts';

/** Whether something accepts connections on 127.0.0.1:port. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

export interface DaemonSpec {
  /** Its name in errors. */
  name: string;
  bin: string;
  /** The file its log goes to, read into the error when it does not start. */
  logFile: string;
  /** Writes its config for `port`; gives its arguments. */
  configure: (port: number) => string[];
}

/** Starts the daemon, stopped after the test: its port and its stop. */
export async function startOnFreePort(t: { after(fn: () => Promise<void> | void): void }, spec: DaemonSpec): Promise<{ port: number; stop: () => Promise<void> }> {
  const log = (): string => (fs.existsSync(spec.logFile) ? fs.readFileSync(spec.logFile, 'utf8') : '');
  let lastError: Error | undefined;
  // The free port can be taken between probing and the daemon binding it: another try with another port.
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const child = spawn(spec.bin, spec.configure(port), { stdio: ['ignore', 'ignore', 'pipe'] });
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
      return { port, stop };
    }
    await stop();
    lastError = new Error(`${spec.name} did not listen on 127.0.0.1:${port}: ${stderr.trim()} ${log().trim()}`);
    if (!/Address already in use/i.test(`${stderr}${log()}`)) throw lastError;
  }
  throw lastError ?? new Error(`${spec.name} did not start`);
}
