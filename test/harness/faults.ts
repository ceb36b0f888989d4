// Fault injection for the system tests: the CLI under strace or another user, small tmpfs
// mounts, read-only bind mounts. A missing tool fails the test: CI installs them (.ci/install-deps).
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { binFor, cliEnv, type CliResult } from './cli.ts';
import { requireTool } from './swappers.ts';

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
  const env = cliEnv(options.failpoints, options.env);
  const argv = [...(options.prefix ?? []), process.execPath, binFor(env), ...args];
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

/** Writes `dir/name` until the filesystem refuses another byte; returns the filler's size. */
export function fillToTheLastByte(dir: string, name = 'filler'): number {
  const fd = fs.openSync(path.join(dir, name), 'w');
  const chunk = Buffer.alloc(64 << 10, 1);
  let size = 0;
  try {
    for (let n = chunk.length; n >= 1; ) {
      try {
        size += fs.writeSync(fd, chunk, 0, n);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
        n = Math.floor(n / 2);
      }
    }
  } finally {
    fs.closeSync(fd);
  }
  return size;
}

/** Mounts a tmpfs with size and inode limits on a new directory; unmounted and removed after the test. */
export function mountTmpfs(t: { after(fn: () => void): void }, options: { size: string; inodes?: number }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-deploy-tmpfs-'));
  const opts = [`size=${options.size}`, ...(options.inodes ? [`nr_inodes=${options.inodes}`] : []), 'mode=0755'].join(',');
  execFileSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir]);
  t.after(() => {
    execFileSync('umount', ['-l', dir]);
    fs.rmdirSync(dir);
  });
  return dir;
}

/** The kernel's start time of a process (field 22 of /proc/<pid>/stat), as the lock records it. */
export function startTicks(pid: number): string {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19] as string;
}

/** Writes a lock in our format for `pid`, as if that process had taken it. */
export function writeOwnerLock(root: string, owner: { pid: number; user?: string; startTime?: string; host?: string; token?: string; command?: string }): string {
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
      ...(owner.command ? { command: owner.command } : {}),
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

/** One syscall as `strace -f -y` printed it: the thread, the name, the arguments (fds with their paths). */
export interface TracedCall {
  tid: number;
  syscall: string;
  text: string;
}

/**
 * Runs the CLI under `strace -f -y` with one libuv thread, so that all of Node's asynchronous
 * file I/O happens on one thread in a fixed order, and returns the calls of `syscalls`.
 */
export async function traceCalls(args: readonly string[], syscalls: readonly string[], out: string): Promise<{ result: CliResult; calls: TracedCall[] }> {
  const result = await runWrapped(args, {
    prefix: ['strace', '-f', '-y', '-s', '256', '-o', out, '-e', `trace=${syscalls.join(',')}`],
    env: { UV_THREADPOOL_SIZE: '1' },
  });
  const calls: TracedCall[] = [];
  for (const line of fs.readFileSync(out, 'utf8').split('\n')) {
    const m = /^(\d+)\s+(?:\d\d:\d\d:\d\d\.\d+\s+)?([a-z0-9_]+)\((.*)$/.exec(line);
    if (m) calls.push({ tid: Number(m[1]), syscall: m[2] as string, text: m[3] as string });
  }
  return { result, calls };
}

/**
 * The `when=` number that makes strace inject into the call `pick` selects: strace counts the
 * invocations of each syscall per thread, so this is its rank among its thread's calls.
 */
export function invocationOf(
  calls: readonly TracedCall[],
  syscall: string,
  pick: (call: TracedCall, index: number, calls: readonly TracedCall[]) => boolean,
): number {
  const target = calls.find((c, i) => c.syscall === syscall && pick(c, i, calls));
  assert.ok(target, `no ${syscall} call matched in the trace`);
  return calls.filter((c) => c.tid === target.tid && c.syscall === syscall).indexOf(target) + 1;
}

/**
 * Mounts a fresh filesystem: a loop image for btrfs/xfs, ext4 with 128-byte inodes (`ext4-seconds`:
 * whole-second timestamps, so two writes in one second share a ctime), a 16 MiB ext4 with no blocks
 * reserved for root (`ext4-small`: root sees it full when a deploy user would), or a small tmpfs.
 * Unmounted after the test.
 */
export function mountFs(t: { after(fn: () => void): void }, type: 'btrfs' | 'xfs' | 'ext4-seconds' | 'ext4-small' | 'tmpfs'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `atomic-deploy-${type}-`));
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  const mount = requireTool('mount', 'mount');
  const umount = requireTool('umount', 'mount');
  // One clean-up, unmount first: a recursive delete must never walk into a mounted filesystem.
  t.after(() => {
    try {
      execFileSync(umount, [mnt], { stdio: 'pipe' });
    } catch {
      // Not mounted (mkfs failed), or busy: then detach it lazily.
      try {
        execFileSync(umount, ['-l', mnt], { stdio: 'pipe' });
      } catch {
        // was never mounted
      }
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  if (type === 'tmpfs') {
    execFileSync(mount, ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', mnt]);
  } else if (type === 'ext4-seconds' || type === 'ext4-small') {
    const small = type === 'ext4-small';
    const image = path.join(dir, 'ext4.img');
    fs.writeFileSync(image, '');
    fs.truncateSync(image, (small ? 16 : 64) * 1024 * 1024);
    execFileSync(requireTool('mkfs.ext4', 'e2fsprogs'), ['-q', ...(small ? ['-m', '0'] : ['-I', '128']), image], { stdio: 'pipe' });
    execFileSync(mount, ['-o', 'loop', image, mnt]);
  } else {
    const mkfs = type === 'btrfs' ? requireTool('mkfs.btrfs', 'btrfs-progs') : requireTool('mkfs.xfs', 'xfsprogs');
    const image = path.join(dir, `${type}.img`);
    // xfs refuses filesystems under 300 MB; the image is sparse, so this costs little.
    fs.writeFileSync(image, '');
    fs.truncateSync(image, 320 * 1024 * 1024);
    execFileSync(mkfs, type === 'btrfs' ? ['-q', image] : ['-q', '-m', 'reflink=1', image], { stdio: 'pipe' });
    execFileSync(mount, ['-o', 'loop', image, mnt]);
  }
  return mnt;
}
