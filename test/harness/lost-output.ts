// Readers that go away: a pipe closed by its reader, a terminal that hangs up (an SSH session
// dropping). Used by the lost-output tests and the signal campaign.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { binFor, cliEnv, type CliResult } from './cli.ts';

export interface LoseWhen {
  /** Lose the reader once this text has been printed (on the stream being watched)... */
  printed?: RegExp;
  /** ...or after this many milliseconds. */
  afterMs?: number;
}

/**
 * Runs the CLI with both streams piped and closes the read end of `lose` (stdout or stderr)
 * when `when` is met; the other stream is collected. The CLI's later writes there get EPIPE.
 */
export async function runClosingPipe(args: readonly string[], lose: 'stdout' | 'stderr', when: LoseWhen, options: { failpoints?: string; timeoutMs?: number } = {}): Promise<CliResult & { closed: boolean }> {
  const env = cliEnv(options.failpoints);
  const child = spawn(process.execPath, [binFor(env), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const kept = lose === 'stdout' ? child.stderr : child.stdout;
  const watched = lose === 'stdout' ? child.stdout : child.stderr;
  let keptText = '';
  let seen = '';
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    // Closes our end of the pipe: the kernel then fails the CLI's writes with EPIPE.
    watched.destroy();
  };
  kept.setEncoding('utf8').on('data', (d: string) => (keptText += d));
  watched.setEncoding('utf8').on('data', (d: string) => {
    seen += d;
    if (when.printed?.test(seen)) close();
  });
  if (when.printed === undefined && when.afterMs === undefined) close();
  const timer = when.afterMs === undefined ? undefined : setTimeout(close, when.afterMs);
  const killer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (c, s) => resolve({ code: c, signal: s }));
  });
  clearTimeout(timer);
  clearTimeout(killer);
  return { code, signal, closed, stdout: lose === 'stdout' ? seen : keptText, stderr: lose === 'stderr' ? seen : keptText };
}

/**
 * Runs the CLI on a pseudo-terminal made by script(1) and hangs the terminal up when `when` is
 * met by closing the master (SIGKILL to script). The session's shell forwards the SIGHUP to
 * the CLI the way an interactive shell does for its jobs when sshd closes the terminal.
 * Returns the CLI's exit code (128 + n when a signal killed it) and what the terminal showed.
 */
export async function runHangingUp(dir: string, args: readonly string[], when: LoseWhen, options: { failpoints?: string; timeoutMs?: number } = {}): Promise<{ code: number; screen: string; hungUp: boolean }> {
  const rcFile = path.join(dir, `rc.${process.hrtime.bigint()}`);
  const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
  const session = path.join(dir, `session.${process.hrtime.bigint()}.sh`);
  const env = cliEnv(options.failpoints, { SHELL: '/bin/sh' });
  fs.writeFileSync(
    session,
    [
      `${[process.execPath, binFor(env), ...args].map(q).join(' ')} &`,
      'pid=$!',
      "trap 'kill -HUP $pid' HUP",
      // wait returns early when the trap runs; wait again until the CLI is really gone.
      'while :; do wait $pid; rc=$?; kill -0 $pid 2>/dev/null || break; done',
      `echo $rc > ${q(rcFile)}`,
    ].join('\n') + '\n',
  );
  const script = spawn('script', ['-qfc', `sh ${q(session)}`, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  const failed = new Promise<never>((_, reject) => script.on('error', (e) => reject(new Error(`script(1) could not start (bsdutils): ${e.message}`))));
  failed.catch(() => undefined);
  let screen = '';
  let hungUp = false;
  const hangUp = (): void => {
    if (hungUp) return;
    hungUp = true;
    // The master side closes with script: the kernel hangs up the terminal.
    script.kill('SIGKILL');
  };
  script.stdout.setEncoding('utf8').on('data', (d: string) => {
    screen += d;
    if (when.printed?.test(screen)) hangUp();
  });
  const timer = when.afterMs === undefined ? undefined : setTimeout(hangUp, when.afterMs);
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  for (;;) {
    await Promise.race([sleep(50), failed]);
    if (fs.existsSync(rcFile)) {
      const text = fs.readFileSync(rcFile, 'utf8').trim();
      if (text !== '') {
        clearTimeout(timer);
        hangUp();
        return { code: Number(text), screen, hungUp };
      }
    }
    if (Date.now() > deadline) {
      clearTimeout(timer);
      hangUp();
      throw new Error(`the CLI under script(1) did not finish in time; screen:\n${screen}`);
    }
  }
}
