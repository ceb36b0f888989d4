// Fault injection for the system tests: the CLI under strace or another user, small tmpfs
// mounts, read-only bind mounts. A missing tool fails the test: CI installs them (.ci/install-deps).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, type CliResult } from './cli.ts';

/** Fails (never skips) when a tool the fault tests drive is not installed. */
export function requireTools(...tools: string[]): void {
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'pipe' });
    } catch {
      assert.fail(`${tool} is not installed: the fault tests need it (Debian: see .ci/install-deps)`);
    }
  }
}

export function requireRoot(): void {
  assert.equal(process.getuid?.(), 0, 'the fault tests mount filesystems and switch users: run them as root');
}

export interface WrappedOptions {
  /** Runs before the CLI's node: e.g. ['strace', ...] or ['setpriv', ...]. */
  prefix?: readonly string[];
  env?: NodeJS.ProcessEnv;
  failpoints?: string;
  timeoutMs?: number;
}

/** Runs the CLI behind a wrapper command (strace, setpriv), as the harness's runCli does otherwise. */
export function runWrapped(args: readonly string[], options: WrappedOptions = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', ...options.env };
  if (options.failpoints) env.ATOMIC_DEPLOY_FAILPOINTS = options.failpoints;
  else delete env.ATOMIC_DEPLOY_FAILPOINTS;
  const argv = [...(options.prefix ?? []), process.execPath, BIN, ...args];
  const child = spawn(argv[0] as string, argv.slice(1), { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/**
 * `strace -f` injecting `errno` into `syscalls` (Node does its I/O on libuv threads, hence -f).
 * `paths` limits the injection to syscalls touching those paths (strace -P).
 */
export function straceInject(syscalls: string, errno: string, paths: readonly string[] = []): string[] {
  return ['strace', '-f', '-o', '/dev/null', ...paths.flatMap((p) => ['-P', p]), '-e', `inject=${syscalls}:error=${errno}`];
}

/** Another user, as setpriv runs it: the uid, gid and no supplementary groups. */
export function asUser(user: string): string[] {
  const { uid, gid } = uidOf(user);
  return ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups'];
}

export function uidOf(user: string): { uid: number; gid: number } {
  const out = execFileSync('id', ['-u', user], { encoding: 'utf8' }).trim();
  const gid = execFileSync('id', ['-g', user], { encoding: 'utf8' }).trim();
  return { uid: Number(out), gid: Number(gid) };
}

/** Mounts a tmpfs with size and inode limits at `dir`; unmounted after the test. */
export function mountTmpfs(t: { after(fn: () => void): void }, dir: string, options: { size: string; inodes?: number }): void {
  fs.mkdirSync(dir, { recursive: true });
  const opts = [`size=${options.size}`, ...(options.inodes ? [`nr_inodes=${options.inodes}`] : []), 'mode=0755'].join(',');
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
  t.after(() => execFileSync('umount', ['-l', dir]));
}

/** Makes `dir` read-only in place (a bind mount of itself, remounted ro); undone after the test. */
export function readOnlyBind(t: { after(fn: () => void): void }, dir: string): void {
  execFileSync('mount', ['--bind', dir, dir]);
  execFileSync('mount', ['-o', 'remount,bind,ro', dir]);
  t.after(() => execFileSync('umount', ['-l', dir]));
}

/** The kernel's start time of a process (field 22 of /proc/<pid>/stat), as the lock records it. */
export function startTicks(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] as string;
}

/** Writes a lock in our format for `pid`, as if that process had taken it. */
export function writeOwnerLock(root: string, owner: { pid: number; user?: string; startTime?: string; host?: string; token?: string }): string {
  const lock = path.join(root, '.deploy.lock');
  fs.mkdirSync(lock, { recursive: true });
  fs.writeFileSync(
    path.join(lock, 'owner.json'),
    JSON.stringify({
      pid: owner.pid,
      host: owner.host ?? os.hostname(),
      user: owner.user ?? 'root',
      since: new Date().toISOString(),
      token: owner.token ?? `test-${owner.pid}-${Math.random().toString(36).slice(2)}`,
      ...(owner.startTime ? { startTime: owner.startTime } : {}),
    }),
  );
  return lock;
}

/** The whole of a lock directory, to prove nobody touched it. */
export function lockSnapshot(root: string): string {
  const lock = path.join(root, '.deploy.lock');
  const st = fs.lstatSync(lock);
  const files = fs.readdirSync(lock).sort().map((n) => `${n}=${fs.readFileSync(path.join(lock, n), 'utf8')}`);
  return `${st.ino} ${st.mtimeMs} ${files.join('|')}`;
}
