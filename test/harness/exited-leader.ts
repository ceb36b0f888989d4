// Processes whose main thread has exited while another thread runs on (harness/exited-leader.c):
// built with gcc (a missing gcc fails the test), started here or on a fleet host, and waited for
// until /proc shows the leader exited and the live thread holding what it was given.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { requireTool } from './swappers.ts';

const SOURCE = new URL('./exited-leader.c', import.meta.url);

/** The kernel's name for it (/proc/<pid>/comm): what the scans report as its command. */
export const EXITED_LEADER_COMMAND = 'exited-leader';

/** Compiles the program into `dir`; returns its path. */
export function buildExitedLeader(dir: string): string {
  const gcc = requireTool('gcc', 'gcc');
  const out = path.join(dir, EXITED_LEADER_COMMAND);
  execFileSync(gcc, ['-O2', '-o', out, new URL(SOURCE).pathname, '-lpthread'], { stdio: 'pipe' });
  return out;
}

function readlinkOr(p: string): string | undefined {
  try {
    return fs.readlinkSync(p);
  } catch {
    return undefined;
  }
}

/** What /proc shows of the process: its leader's state, and every link (cwd, fds) of its other threads. */
function threadView(pid: number): { state: string | undefined; links: string[] } {
  let state: string | undefined;
  const links: string[] = [];
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
      if (tid === String(pid)) continue;
      const cwd = readlinkOr(`/proc/${pid}/task/${tid}/cwd`);
      if (cwd !== undefined) links.push(cwd);
      for (const fd of fs.readdirSync(`/proc/${pid}/task/${tid}/fd`)) links.push(readlinkOr(`/proc/${pid}/task/${tid}/fd/${fd}`) ?? '');
    }
  } catch {
    // gone, or not yet there
  }
  return { state, links };
}

/**
 * Waits until process `pid` shows what a scan must find: its leader exited (state Z, its own
 * cwd unreadable) and another thread with a working directory or an open file ending in `holds`
 * (the whole path here; its end for a process in a fleet host's mount namespace).
 */
export async function settledExitedLeader(pid: number, holds: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const view = threadView(pid);
    if (view.state === 'Z' && readlinkOr(`/proc/${pid}/cwd`) === undefined && view.links.some((l) => l.endsWith(holds))) return;
    if (Date.now() > deadline) throw new Error(`pid ${pid} never showed an exited leader and a thread holding ${holds}: ${JSON.stringify(view)}`);
    await sleep(10);
  }
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

/**
 * Starts the program here, working in `cwd` and holding `file` open, and waits until it has
 * settled (`holds`: the path a scan must find). Killed after the test.
 */
export async function startExitedLeader(
  t: { after(fn: () => Promise<void> | void): void },
  program: string,
  opts: { cwd: string; file?: string; holds: string },
): Promise<number> {
  const child = spawn(program, [opts.cwd, ...(opts.file === undefined ? [] : [opts.file])], { cwd: '/', stdio: 'ignore' });
  t.after(async () => {
    child.kill('SIGKILL');
    await exited(child);
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  const pid = child.pid as number;
  await settledExitedLeader(pid, opts.holds);
  return pid;
}
