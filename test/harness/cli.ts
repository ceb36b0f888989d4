import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The command as package.json's `bin` installs it (`npm test` builds it first): the esbuild bundle users run. */
export const BIN = fileURLToPath(new URL('../../dist/bin/atomic-deploy.cjs', import.meta.url));
/** The tsc output, which alone has the failpoints compiled in (the bundle leaves them out): for runs that arm them. */
export const TSC_BIN = fileURLToPath(new URL('../../dist/cli/bin.js', import.meta.url));

/** The variables that send a download through a proxy: a machine's own would send the tests' loopback servers' traffic to it. */
export const PROXY_VARIABLES = ['http_proxy', 'HTTP_PROXY', 'https_proxy', 'HTTPS_PROXY', 'all_proxy', 'ALL_PROXY', 'no_proxy', 'NO_PROXY'];

/**
 * The environment of a CLI run: ours without proxy variables, no colour, `extra` (which may set
 * them), and ATOMIC_DEPLOY_FAILPOINTS set to `failpoints` or removed.
 */
export function cliEnv(failpoints?: string, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of PROXY_VARIABLES) delete env[name];
  Object.assign(env, { NO_COLOR: '1' }, extra);
  if (failpoints) env.ATOMIC_DEPLOY_FAILPOINTS = failpoints;
  else delete env.ATOMIC_DEPLOY_FAILPOINTS;
  return env;
}

/** The CLI to run with `env`: the tsc output where failpoints are armed, else the installed bundle. */
export function binFor(env: NodeJS.ProcessEnv): string {
  return env.ATOMIC_DEPLOY_FAILPOINTS ? TSC_BIN : BIN;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Failpoints to arm, e.g. `after-switch=crash`. */
  failpoints?: string;
  timeoutMs?: number;
  /** Another copy of the CLI to run instead of dist/'s (benchmarks pin one for a whole run). */
  bin?: string;
  /** Its own process group, as a shell runs a job: `process.kill(-child.pid, ...)` then signals it as a terminal's Ctrl-C would. */
  group?: boolean;
}

/** Starts the CLI; the caller may signal or kill it. */
export function spawnCli(args: readonly string[], options: CliOptions = {}): { child: ChildProcess; done: Promise<CliResult> } {
  const env = cliEnv(options.failpoints, options.env);
  const child = spawn(process.execPath, [options.bin ?? binFor(env), ...args], { cwd: options.cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: options.group === true });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

export function runCli(args: readonly string[], options: CliOptions = {}): Promise<CliResult> {
  return spawnCli(args, options).done;
}

/** Parses the one JSON object `--json` prints; fails loudly if stdout holds anything else. */
export function jsonOf<T = Record<string, unknown>>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`stdout is not one JSON object:\n${result.stdout}\nstderr:\n${result.stderr}`);
  }
}

/** A temp dir removed after the test. */
export function tempDir(t: { after(fn: () => void): void }, prefix = 'atomic-deploy-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes a source tree from a map of relative path → content. */
export function writeTree(dir: string, files: Record<string, string>): string {
  for (const [rel, content] of Object.entries(files)) {
    const file = path.join(dir, rel);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, content);
  }
  return dir;
}

/** What `<root>/current` points to, as a release id, or null. */
export function currentId(root: string): string | null {
  try {
    const target = fs.readlinkSync(path.join(root, 'current'));
    return path.basename(target);
  } catch {
    return null;
  }
}

export function releaseIds(root: string): string[] {
  try {
    return fs.readdirSync(path.join(root, 'releases')).sort();
  } catch {
    return [];
  }
}

/**
 * A build's snapshot as a release of it holds it: the release directory gets read and search for
 * everyone, its other bits kept (src/plan/manifest.ts releaseDirMode); a temp build is 0700.
 */
export function releasedSnapshot(build: string): string[] {
  return snapshot(build).map((line) => (/^\/ [0-7]+$/.test(line) ? `/ ${(parseInt(line.slice(2), 8) | 0o555).toString(8)}` : line));
}

/** A snapshot of everything under a directory (names, types, sizes, link targets, modes) for "nothing changed" checks. */
export function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const full = path.join(dir, rel);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(full);
    } catch {
      out.push(`${rel} <missing>`);
      return;
    }
    if (st.isSymbolicLink()) out.push(`${rel} -> ${fs.readlinkSync(full)}`);
    else if (st.isDirectory()) {
      out.push(`${rel}/ ${(st.mode & 0o7777).toString(8)}`);
      for (const name of fs.readdirSync(full).sort()) walk(rel === '' ? name : path.join(rel, name));
    } else if (st.isFile()) out.push(`${rel} ${st.size} ${(st.mode & 0o7777).toString(8)} ${fs.readFileSync(full).toString('base64').slice(0, 64)}`);
    // Never open a FIFO or device: reading it would block or change it.
    else out.push(`${rel} special ${(st.mode & 0o170000).toString(8)}`);
  };
  walk('');
  return out;
}
