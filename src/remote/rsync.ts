/** Copying a release to a host with the system rsync, over the host's shared ssh connection. */
import { spawn } from 'node:child_process';
import { DeployError, hostNoSpaceHint, type ErrorCode } from '../errors.ts';
import { shQuote } from './shell.ts';
import { lastLine, type SshHost } from './ssh.ts';
import { stagedPath } from './staging.ts';

export interface RsyncPlan {
  /** Local source directory. */
  source: string;
  /** Absolute root on the host. */
  root: string;
  /** `<stage>/<id>` receives the copy (`.tmp/<stage>`, or inside releases/ for a hidden name). */
  stage: string;
  id: string;
  /** A local file listing, NUL-separated, every path to transfer (relative to the source, parents first). */
  filesFrom: string;
  /** A local file of NUL-separated rsync exclude rules (plan/fleet-send.ts topLevelExcludes), or none. */
  excludeFrom?: string;
}

/** `--rsync-path` text that makes and enters `dest` on the host, then runs rsync there (receiving into `.`). */
function rsyncPathInto(dest: string): string {
  return `mkdir -p -- ${shQuote(dest)} && cd -- ${shQuote(dest)} && exec rsync`;
}

/**
 * rsync's arguments. The destination is `.`: the remote side first makes and enters the staging
 * directory (`--rsync-path` is shell text we quote ourselves), so no path of ours passes through
 * rsync's own remote-argument handling, whatever the rsync version there.
 */
export function rsyncArgs(plan: RsyncPlan, rsh: string, host: string): string[] {
  const rsyncPath = rsyncPathInto(`${stagedPath(plan.root, plan.stage)}/${plan.id}`);
  return [
    '-a',
    '--stats',
    // What to send was decided by content (plan/fleet-send.ts); rsync's size+mtime quick check
    // must never skip a listed file, and files linked on the host are not listed at all.
    '--ignore-times',
    // The list names every directory, parents first: the parents rsync would otherwise send again
    // for each path (its implied directories) are already there. Without this, a 10,000-file list
    // cost rsync about twice the system time of a plain recursive copy.
    '--no-implied-dirs',
    '--from0',
    `--files-from=${plan.filesFrom}`,
    ...(plan.excludeFrom === undefined ? [] : [`--exclude-from=${plan.excludeFrom}`]),
    '-e',
    rsh,
    `--rsync-path=${rsyncPath}`,
    '--',
    `${plan.source.replace(/\/+$/, '')}/`,
    `${host}:.`,
  ];
}

export interface RsyncResult {
  /** Regular files sent whole or in part (the rest were linked or unchanged). */
  transferred?: number;
  files?: number;
  durationMs: number;
}

/** A count from rsync's --stats output (thousands separated by `,` or `.`), or undefined. */
function statNumber(output: string, re: RegExp): number | undefined {
  const m = re.exec(output);
  return m?.[1] ? Number(m[1].replace(/[,.]/g, '')) : undefined;
}

export function parseStats(output: string): Pick<RsyncResult, 'transferred' | 'files'> {
  const n = (re: RegExp): number | undefined => statNumber(output, re);
  const transferred = n(/Number of (?:regular )?files transferred: ([\d,.]+)/);
  const files = n(/Number of files: ([\d,.]+)/);
  return { ...(transferred === undefined ? {} : { transferred }), ...(files === undefined ? {} : { files }) };
}

/**
 * Why rsync failed, from its stderr: rsync ends every failure with a summary (`rsync error: error
 * in file IO (code 11) at receiver.c(657)`) that names no cause, so the line that does is taken
 * first: a full disk or quota (NO_SPACE, as locally), rsync's own `rsync: ...` error line, or the
 * host's shell not finding rsync. `signal`: rsync was ended by one from outside (a terminal's Ctrl-C does not reach it: its own process group).
 */
export function rsyncFailure(stderr: string, code: number | null, signal: NodeJS.Signals | null, label: string, root: string): { code: ErrorCode; why: string; hint?: string } {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('Warning: Permanently added'));
  const full = lines.find((l) => /No space left on device|Disk quota exceeded/i.test(l));
  if (full !== undefined) return { code: 'NO_SPACE', why: full, hint: hostNoSpaceHint(label, root) };
  const missing = lines.find((l) => /\brsync: (?:command )?not found\b/.test(l));
  if (missing !== undefined) return { code: 'REMOTE', why: missing, hint: `install rsync on ${label}` };
  const sshLine = lines.find((l) => /^ssh: /.test(l));
  if (sshLine !== undefined) return { code: 'REMOTE', why: sshLine };
  const own = lines.find((l) => /^rsync: /.test(l) && !/connection unexpectedly closed/.test(l));
  const last = lastLine(stderr);
  const why = own ?? (last || (signal !== null ? `rsync was ended by ${signal}` : `rsync exited with code ${String(code)}`));
  return { code: code === 255 || /connection|ssh/i.test(why) ? 'REMOTE' : 'IO', why };
}

/** Runs rsync with `args`; aborting kills it. Returns what it printed on stdout. */
async function spawnRsync(ssh: SshHost, args: readonly string[], what: string, root: string, signal?: AbortSignal): Promise<string> {
  // Out of the terminal's process group, as every ssh (src/remote/ssh.ts launchFramed): a Ctrl-C is this process's to answer (it kills rsync on abort).
  const child = spawn('rsync', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const kill = (): void => {
    child.kill('SIGTERM');
  };
  signal?.addEventListener('abort', kill, { once: true });
  const result = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, sig) => resolve({ code, signal: sig }));
  });
  signal?.removeEventListener('abort', kill);
  if (result.error) {
    throw new DeployError('IO', `${ssh.label}: ${what} failed: rsync could not be started: ${result.error.message}`, { hint: 'install rsync on this machine', details: { host: ssh.label } });
  }
  // Ended by this command on its way out (a signal): rsync's own complaint about it would read as a failure of the host.
  if (result.code !== 0 && signal?.aborted === true) throw new DeployError('INTERRUPTED', `${ssh.label}: ${what} was stopped: interrupted`, { details: { host: ssh.label } });
  if (result.code !== 0) {
    const failure = rsyncFailure(err, result.code, result.signal, ssh.label, root);
    throw new DeployError(failure.code, `${ssh.label}: ${what} failed: ${failure.why}`, { ...(failure.hint ? { hint: failure.hint } : {}), details: { host: ssh.label } });
  }
  return out;
}

/** Runs rsync; aborting kills it. */
export async function runRsync(ssh: SshHost, plan: RsyncPlan, signal?: AbortSignal): Promise<RsyncResult> {
  const started = performance.now();
  const out = await spawnRsync(ssh, rsyncArgs(plan, ssh.rsh(), ssh.rsyncHost()), 'copying the release', plan.root, signal);
  return { ...parseStats(out), durationMs: Math.round(performance.now() - started) };
}

/**
 * rsync's arguments to store `local` as `<stage>/manifest.json` on the host by rsync's delta
 * transfer against the file already there (the previous release's manifest, copied into the stage
 * by remote/content-script.ts readManifestScript): a redeploy's manifest differs from the last one
 * in a few lines, so a few blocks cross the network instead of the whole file. --ignore-times: the
 * basis has the same size often enough, and its mtime is no proof of anything.
 */
export function manifestRsyncArgs(local: string, root: string, stage: string, rsh: string, host: string): string[] {
  const rsyncPath = rsyncPathInto(stagedPath(root, stage));
  return ['--ignore-times', '--no-whole-file', '--stats', '-e', rsh, `--rsync-path=${rsyncPath}`, '--', local, `${host}:manifest.json`];
}

/** Stores the manifest on the host by delta (manifestRsyncArgs); returns the bytes this side sent, when rsync says. */
export async function sendManifestDelta(ssh: SshHost, local: string, root: string, stage: string, signal?: AbortSignal): Promise<number | undefined> {
  const out = await spawnRsync(ssh, manifestRsyncArgs(local, root, stage, ssh.rsh(), ssh.rsyncHost()), 'storing the release manifest', root, signal);
  return statNumber(out, /Total bytes sent: ([\d,.]+)/);
}
