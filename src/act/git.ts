/**
 * The commit and dirty flag of the git work tree that holds a directory source, for the release
 * log. Git is optional and the repository is only read: whatever it holds (a `.git` file pointing
 * elsewhere, a config naming a core.fsmonitor program, filter drivers or hooks, a FIFO, a size
 * that makes `git status` slow), the deploy goes on, and nothing the repository names is run.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The git commands together are given up after this long (a process group killed), and the info left out. */
export const GIT_TIMEOUT_MS = 10_000;

/**
 * Config that would make a read run a program the repository names: core.fsmonitor (run by
 * `git status`), hooks. Filter drivers (run by `git status` to hash a file whose stat changed)
 * are emptied one by one, by name, below.
 */
const NEUTRAL = ['-c', 'core.fsmonitor=false', '-c', 'core.hooksPath=/dev/null', '-c', 'core.untrackedCache=false'];

/** How long git's output may still come after git exited (a child it left may hold the pipe). */
const PIPE_GRACE_MS = 200;

interface GitRun {
  stdout: string;
  ok: boolean;
}

/**
 * Runs git in `cwd`, in its own process group: on the timeout, or once `enough` says the output so
 * far answers the question, the group is killed (a program git started cannot hold the pipe open
 * and the deploy with it). With --no-optional-locks, a git killed midway leaves no index.lock, and
 * `git status` does not rewrite the index of the source's repository.
 */
function git(cwd: string, args: string[], deadline: number, enough?: (stdout: string) => boolean): Promise<GitRun> {
  return new Promise((resolve) => {
    const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_OPTIONAL_LOCKS: '0', LC_ALL: 'C' };
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn('git', ['--no-optional-locks', ...NEUTRAL, ...args], { cwd, env, stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    } catch {
      return resolve({ stdout: '', ok: false });
    }
    let stdout = '';
    let settled = false;
    let grace: NodeJS.Timeout | undefined;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(grace);
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // Gone already.
        }
      }
      child.stdout?.destroy();
      resolve({ stdout, ok });
    };
    const timer = setTimeout(() => finish(false), Math.max(0, deadline - Date.now()));
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < 1 << 20) stdout += d;
      if (enough?.(stdout)) finish(true);
    });
    child.on('error', () => finish(false));
    // git's exit can come before the last of its output is read: the pipe's end is waited for, but
    // only briefly, since a program git left running may keep the pipe open (not 'close' alone).
    let ended = false;
    let exitCode: number | null | undefined;
    child.stdout?.on('end', () => {
      ended = true;
      if (exitCode !== undefined) finish(exitCode === 0);
    });
    child.on('exit', (code) => {
      exitCode = code;
      if (ended) finish(code === 0);
      else grace = setTimeout(() => finish(code === 0), PIPE_GRACE_MS);
    });
  });
}

function insideWorkTree(dir: string): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      if (fs.lstatSync(path.join(d, '.git'), { throwIfNoEntry: false }) !== undefined) return true;
    } catch {
      // A folder this user cannot search: go on up, as git does.
    }
    if (path.dirname(d) === d) return false;
  }
}

/** The filter drivers the repository's config defines (`filter.<name>.clean` and the like); reading config runs nothing. */
async function filterDrivers(dir: string, deadline: number): Promise<string[]> {
  const listed = await git(dir, ['config', '--null', '--name-only', '--get-regexp', '^filter\\..*\\.(clean|smudge|process)$'], deadline);
  const names = new Set<string>();
  for (const key of listed.stdout.split('\0')) {
    const m = /^filter\.(.+)\.(clean|smudge|process)$/s.exec(key);
    if (m?.[1] !== undefined) names.add(m[1]);
  }
  return [...names];
}

/** The commit and dirty flag of the git work tree holding `dir`, if any (git is optional). */
export async function gitInfo(dir: string): Promise<{ commit: string; dirty: boolean } | undefined> {
  if (!insideWorkTree(dir)) return undefined;
  const deadline = Date.now() + GIT_TIMEOUT_MS;
  const [head, drivers] = await Promise.all([git(dir, ['rev-parse', '--verify', '-q', 'HEAD'], deadline), filterDrivers(dir, deadline)]);
  const commit = head.stdout.trim();
  if (!head.ok || !/^[0-9a-f]{40,64}$/.test(commit)) return undefined;
  // A file whose stat changed is hashed as it is, not through the repository's filter: with a
  // clean filter (Git LFS, say) such a file counts as a change.
  // A name with "=" cannot be given to -c: its driver could not be kept from running, so the tree is not read.
  if (drivers.some((name) => name.includes('='))) return { commit, dirty: true };
  const filters = drivers.flatMap((name) => ['-c', `filter.${name}.clean=`, '-c', `filter.${name}.smudge=`, '-c', `filter.${name}.process=`, '-c', `filter.${name}.required=false`]);
  // Submodules: their commits count, their own work trees are not entered (each would be another git with its own config).
  const status = await git(dir, [...filters, 'status', '--porcelain', '--ignore-submodules=dirty', '--', '.'], deadline, (out) => out.trim().length > 0);
  // A status that did not finish (the timeout, a failure) cannot say the tree is clean: recorded as dirty.
  return { commit, dirty: !status.ok || status.stdout.trim().length > 0 };
}
