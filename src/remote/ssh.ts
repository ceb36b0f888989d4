/**
 * One OpenSSH connection per host, shared by every command of an operation. The system `ssh` is
 * called, so ~/.ssh/config, ssh-agent, known_hosts and ProxyJump work as they do for the user.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeScratchDir } from '../act/scratch.ts';
import { DeployError } from '../errors.ts';
import { FrameReader, type Frame } from './facts.ts';
import { remoteCommand } from './script.ts';
import { shQuote } from './shell.ts';

export interface SshOptions {
  /** An ssh_config file passed as `-F` (else ssh reads ~/.ssh/config); env ATOMIC_DEPLOY_SSH_CONFIG. */
  configFile?: string;
  /** Seconds to wait for a connection (default 10). */
  connectTimeoutS?: number;
}

/** `[user@]host[:port]` taken apart. */
export interface SshTarget {
  user?: string;
  host: string;
  port?: number;
}

/** Where the control sockets live: a private (0700) directory, removed at the end. */
export class ControlDir {
  private constructor(readonly dir: string) {}

  static create(): ControlDir {
    // Socket paths are limited to about 100 bytes and ssh appends a random suffix while binding.
    const base = /^[A-Za-z0-9._/-]{1,40}$/.test(os.tmpdir()) ? os.tmpdir() : '/tmp';
    return new ControlDir(makeScratchDir('ad', base));
  }

  socket(index: number): string {
    return path.join(this.dir, String(index));
  }

  remove(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  frames: Frame[];
  stderr: string;
}

/**
 * The mark a host program writes on stderr when what prints there changes (`step_out` in
 * remote/script.ts), at the end of a line. It has a line of its own, unless the hook before it
 * ended its output without a newline: then its last bytes come first, on the mark's line.
 */
// eslint-disable-next-line no-control-regex -- the mark starts with SOH on purpose: no hook's output line does
const STEP_MARK = /^([\s\S]*?)\x01step ([a-z-]+)$/;

/** A stderr line ending with a step mark: what came before it on the line, and the step it names. */
export function stepMarkOf(line: string): { before: string; step: string } | undefined {
  const m = STEP_MARK.exec(line);
  return m === null ? undefined : { before: m[1] ?? '', step: m[2] ?? '' };
}

/** The last line ssh or the remote side wrote to stderr: what a person needs to see. */
export function lastLine(text: string): string {
  const lines = text
    .split(/\r?\n/)
    .map((l) => (stepMarkOf(l)?.before ?? l).trim())
    .filter((l) => l !== '' && !l.startsWith('Warning: Permanently added'));
  return lines.at(-1) ?? '';
}

/** Quotes one word for rsync's `-e` parser, which knows single and double quotes but no backslash. */
export function rshQuote(word: string): string {
  return `'${word.replaceAll("'", `'"'"'`)}'`;
}

/**
 * Where a running program's output goes as it comes: its stderr line by line, each frame as it is
 * read. A line sink that returns a promise (the output is held: ops/events.ts outputHold) stops the
 * reading of the program's stderr until it settles, so that ssh's flow control makes the host's
 * program wait, as a local hook waits on its pipe, instead of this process keeping what it prints.
 */
export interface ProgramOutput {
  onStderrLine?: (line: string) => void | Promise<void>;
  onFrame?: (frame: Frame) => void;
}

/** What runs the programs on a root: ssh to a host, or a local shell (the conformance suite). */
export interface RootTransport {
  readonly up: boolean;
  connect(script?: string, options?: ProgramOutput): Promise<RunningRemote>;
  start(script: string, options?: ProgramOutput): RunningRemote;
  exec(script: string, options?: ProgramOutput): Promise<ExecResult>;
  disconnect(): Promise<void>;
}

export interface RunningRemote {
  child: ChildProcess;
  frames: Frame[];
  /** Resolves with the first frame (from now or earlier) whose tag is listed; rejects if the program ends first. */
  waitFor(tags: readonly string[]): Promise<Frame>;
  /** Sends a line on the program's stdin; false when the program is gone. */
  send(line: string): boolean;
  end(): void;
  done: Promise<ExecResult>;
}

/** Runs a program whose stdout speaks the frame protocol; frames arrive as it prints them. */
export function launchFramed(command: string, args: readonly string[], options: ProgramOutput & { env?: NodeJS.ProcessEnv } = {}): RunningRemote {
  // Its own process group (setsid): a terminal's Ctrl-C reaches the whole foreground job, and would
  // end every ssh session (the lock holders, an armed switch, the way back) before this process
  // could decide anything. The command alone answers signals, and ends these programs itself.
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true, ...(options.env ? { env: options.env } : {}) });
  const reader = new FrameReader();
  const frames: Frame[] = [];
  const waiters: { tags: readonly string[]; resolve: (f: Frame) => void; reject: (e: Error) => void }[] = [];
  let stderr = '';
  let partial = '';
  let ended = false;
  child.stdout?.on('data', (chunk: Buffer) => {
    const at = performance.now();
    for (const frame of reader.push(chunk)) {
      frame.at = at;
      if (frame.tag === 'beat') continue;
      frames.push(frame);
      options.onFrame?.(frame);
      for (const w of [...waiters]) {
        if (w.tags.includes(frame.tag)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(frame);
        }
      }
    }
  });
  let holding = false;
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    stderr += text;
    if (stderr.length > 256 * 1024) stderr = stderr.slice(-128 * 1024);
    partial += text;
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    let hold: Promise<void> | void = undefined;
    for (const line of lines) hold = options.onStderrLine?.(line.replace(/\r$/, '')) ?? hold;
    if (hold instanceof Promise && !holding) {
      holding = true;
      child.stderr?.pause();
      void hold.finally(() => {
        holding = false;
        child.stderr?.resume();
      });
    }
  });
  child.stdin?.on('error', () => undefined);
  const done = new Promise<ExecResult>((resolve) => {
    child.once('error', (error) => {
      stderr += `\n${error.message}`;
    });
    child.once('close', (code, signal) => {
      ended = true;
      if (partial !== '') void options.onStderrLine?.(partial);
      for (const w of waiters.splice(0)) w.reject(new Error('ended'));
      resolve({ code, signal, frames, stderr });
    });
  });
  return {
    child,
    frames,
    waitFor: (tags) => {
      const seen = frames.find((f) => tags.includes(f.tag));
      if (seen) return Promise.resolve(seen);
      if (ended) return Promise.reject(new Error('ended'));
      return new Promise<Frame>((resolve, reject) => waiters.push({ tags, resolve, reject }));
    },
    send: (line) => {
      if (ended || !child.stdin || child.stdin.destroyed || child.stdin.writableEnded) return false;
      child.stdin.write(`${line}\n`);
      return true;
    },
    end: () => {
      child.stdin?.end();
    },
    done,
  };
}

const timeoutCache = new Map<string, Promise<string[]>>();

/**
 * Why the ssh config file (`--ssh-config`, else ATOMIC_DEPLOY_SSH_CONFIG) cannot be used, before
 * any connection: ssh would fail on every host with its own words ("Can't open user config file").
 * /dev/null, the usual way to ignore every config, is a file ssh can read.
 */
export function sshConfigProblem(options: SshOptions): { problem: string; hint: string } | undefined {
  const given = options.configFile;
  const file = given ?? process.env.ATOMIC_DEPLOY_SSH_CONFIG;
  if (file === undefined || file === '') return undefined;
  const what = given !== undefined ? `--ssh-config ${file}` : `ATOMIC_DEPLOY_SSH_CONFIG=${file}`;
  const hint = 'give an ssh config file (what ssh -F reads), or /dev/null to read none';
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (st === undefined) return { problem: `${what}: no such file`, hint };
  if (st.isDirectory()) return { problem: `${what}: is a directory, not an ssh config file`, hint };
  try {
    fs.accessSync(file, fs.constants.R_OK);
  } catch {
    return { problem: `${what}: cannot be read by this user`, hint };
  }
  return undefined;
}

export class SshHost implements RootTransport {
  /** The master connection: an ssh process of ours whose own session is `primary`. */
  private master: ChildProcess | undefined;
  private primary: RunningRemote | undefined;
  private readonly log: string;

  constructor(
    readonly label: string,
    readonly target: SshTarget,
    private readonly options: SshOptions,
    private readonly socket: string,
  ) {
    this.log = `${socket}.log`;
  }

  private configArgs(): string[] {
    const file = this.options.configFile ?? process.env.ATOMIC_DEPLOY_SSH_CONFIG;
    return file ? ['-F', file] : [];
  }

  /** Options every ssh invocation shares; ControlPath tokens start with %, so % is doubled. */
  private commonArgs(): string[] {
    return [...this.configArgs(), '-o', 'BatchMode=yes', '-o', `ControlPath=${this.socket.replaceAll('%', '%%')}`];
  }

  private targetArgs(): string[] {
    return [...(this.target.port ? ['-p', String(this.target.port)] : []), ...(this.target.user ? ['-l', this.target.user] : []), '--', this.target.host.replace(/^\[(.*)\]$/, '$1')];
  }

  /** Client arguments: through the master only; ProxyCommand=false makes a dead master fail instead of reconnecting. */
  clientArgs(): string[] {
    return [...this.commonArgs(), '-o', 'ControlMaster=no', '-o', 'ProxyCommand=false', '-T'];
  }

  /** The `-e` command rsync uses to reach this host through the master. */
  rsh(): string {
    return ['ssh', ...this.clientArgs()].map(rshQuote).join(' ');
  }

  /** Host as rsync's `host:path` wants it (user and port travel in the -e command and -l). */
  rsyncHost(): string {
    const h = this.target.host;
    return `${this.target.user ? `${this.target.user}@` : ''}${h}`;
  }

  /** Whether the master connection is up for clients. */
  get up(): boolean {
    return this.master !== undefined && this.master.exitCode === null && this.master.signalCode === null && fs.existsSync(this.socket);
  }

  /**
   * Timeouts the user's ssh config leaves unset get ours, so that a dead host fails instead of
   * hanging. Asked of `ssh -G` once per config file and operation (every process costs the
   * deploying machine milliseconds per host); per-host blocks rarely differ in these two keys.
   */
  private timeoutArgs(): Promise<string[]> {
    const key = this.configArgs().join('\0');
    let cached = timeoutCache.get(key);
    if (!cached) {
      cached = this.askTimeouts();
      timeoutCache.set(key, cached);
      // Fresh for the next operation: the config may change between commands of a long-lived process.
      setTimeout(() => timeoutCache.delete(key), 60_000).unref();
    }
    return cached;
  }

  private askTimeouts(): Promise<string[]> {
    return sshTimeoutArgs([...this.configArgs(), ...this.targetArgs()], this.options.connectTimeoutS ?? 10);
  }

  /**
   * Opens the master connection with `script` as its own first session: one process and one
   * handshake do both. The master is our child and lives as long as that session (and then as
   * long as any session through it), so a deploy that dies leaves no connection behind. Without
   * a script the first session just waits for its stdin to end.
   */
  async connect(script?: string, options: ProgramOutput = {}): Promise<RunningRemote> {
    if (this.master && this.master.exitCode === null && this.master.signalCode === null) {
      if (fs.existsSync(this.socket)) throw new DeployError('INTERNAL', `${this.label}: already connected`);
      // A master on its way out, its control socket already gone (the link dropped and ssh noticed):
      // waited for, then replaced, so that the caller hears how the new connection went.
      await this.disconnect();
    }
    fs.rmSync(this.socket, { force: true });
    const args = [...this.commonArgs(), '-o', 'ControlMaster=yes', '-o', 'ControlPersist=no', ...(await this.timeoutArgs()), '-E', this.log, '-T', ...this.targetArgs()];
    const run = this.launch(args, script ?? 'read _ || :', options);
    this.master = run.child;
    this.primary = run;
    // Ready once the control socket exists; a failed connection ends the process first.
    for (;;) {
      if (fs.existsSync(this.socket)) return run;
      if (run.child.exitCode !== null || run.child.signalCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const result = await run.done;
    const why = lastLine(fs.readFileSync(this.log, { encoding: 'utf8', flag: 'a+' })) || lastLine(result.stderr) || `ssh exited with code ${String(result.code)}`;
    this.master = undefined;
    this.primary = undefined;
    const config = this.configArgs()[1];
    throw new DeployError('REMOTE', `cannot connect to ${this.label}: ${why}`, {
      // In ssh's own words: `ssh host:2222` is no ssh command line (the port is -p).
      hint: `check that \`ssh ${config === undefined ? '' : `-F ${shQuote(config)} `}${this.target.port ? `-p ${this.target.port} ` : ''}${this.target.user ? `${this.target.user}@` : ''}${this.target.host.replace(/^\[(.*)\]$/, '$1')} true\` works without a password prompt (BatchMode)`,
      details: { host: this.label },
    });
  }

  private launch(args: readonly string[], script: string, options: ProgramOutput): RunningRemote {
    return launchFramed('ssh', [...args, remoteCommand(script)], options);
  }

  /** Starts a program on the host through the master; frames arrive as it prints them. */
  start(script: string, options: ProgramOutput = {}): RunningRemote {
    return this.launch([...this.clientArgs(), ...this.targetArgs()], script, options);
  }

  /** Runs a program to its end. */
  async exec(script: string, options: ProgramOutput = {}): Promise<ExecResult> {
    const once = (): Promise<ExecResult> => {
      const run = this.start(script, options);
      run.end();
      return run.done;
    };
    const result = await once();
    // Died of a signal before it said a word: a session forked just as a terminal's Ctrl-C reached
    // this process's group gets it too (libuv's child is in our group, signals blocked, until its
    // setsid; the signal then stays pending across it and kills the child before ssh runs). The
    // program never ran on the host: it runs once more (the clean-up after a first Ctrl-C, which
    // a second one would otherwise leave undone on that host).
    return diedBeforeRunning(result) ? once() : result;
  }

  /** Closes the connection: the first session's stdin ends, and the master goes once every session has. */
  async disconnect(): Promise<void> {
    const master = this.master;
    this.master = undefined;
    this.primary?.end();
    this.primary = undefined;
    if (!master || master.exitCode !== null || master.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => master.once('exit', () => resolve()));
    const timer = setTimeout(() => master.kill('SIGTERM'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * The timeout options to add to ssh for `args` (config file and target): ours where the user's
 * config leaves a key unset, read from `ssh -G`. Asked with BatchMode off: Debian's OpenSSH
 * reports ServerAliveInterval 300 for any BatchMode config that sets none (and our connections
 * are BatchMode), which read as the user's choice left a dead host hanging a deploy 15 minutes.
 */
export async function sshTimeoutArgs(args: readonly string[], connectTimeoutS: number): Promise<string[]> {
  const child = spawn('ssh', ['-o', 'BatchMode=no', '-G', ...args], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  await new Promise<void>((resolve) => {
    child.once('error', () => resolve());
    child.once('close', () => resolve());
  });
  const value = (key: string): string | undefined => new RegExp(`^${key} (.*)$`, 'm').exec(out)?.[1]?.trim();
  const timeouts: string[] = [];
  const connect = value('connecttimeout');
  if (connect === undefined || connect === 'none' || connect === '0') timeouts.push('-o', `ConnectTimeout=${connectTimeoutS}`);
  if (value('serveraliveinterval') === undefined || value('serveraliveinterval') === '0') timeouts.push('-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=3');
  return timeouts;
}

/** Turns a failed remote program into an error that names the host and says what happened. */
/** The program ended without its word because ssh lost the connection (exit 255, no error frame): it may still be where it was. */
/** A session ended by SIGINT, SIGTERM or SIGHUP with nothing heard from it (no frame, no stderr): it never ran. */
export function diedBeforeRunning(result: ExecResult): boolean {
  return (result.signal === 'SIGINT' || result.signal === 'SIGTERM' || result.signal === 'SIGHUP') && result.frames.length === 0 && result.stderr === '';
}

export function connectionLost(result: ExecResult): boolean {
  return result.code === 255 && !result.frames.some((f) => f.tag === 'error');
}

/**
 * The reasons a host's tools end their message with (`rm: cannot remove 'x': Operation not
 * permitted`, as GNU, BusyBox and dash say them): strerror's words for what refuses a write.
 */
const OS_REASONS = [
  'Permission denied',
  'Operation not permitted',
  'No space left on device',
  'Read-only file system',
  'Disk quota exceeded',
  'Input/output error',
  'I/O error',
  'Too many links',
  'No such file or directory',
  'Not a directory',
  'Is a directory',
  'Directory not empty',
  'File exists',
  'File name too long',
  'Structure needs cleaning',
  'Stale file handle',
  'Too many open files',
  'Text file busy',
] as const;

/**
 * The OS's reason a host program's last line of its own on stderr gave (hooks', reloads' and
 * health checks' lines are theirs, not the program's): `Operation not permitted` for
 * `mkdir: cannot create directory '…/.put.1': Operation not permitted`. Undefined when its last
 * line names none: an older line may be about something the program got past.
 */
export function osReasonOf(stderr: string): string | undefined {
  let own: string | undefined;
  let section = '-';
  for (const raw of stderr.split(/\r?\n/)) {
    const mark = stepMarkOf(raw.trim());
    // What comes before a mark on its line is the last of the section the mark ends.
    const line = (mark?.before ?? raw).trim();
    if (section === '-' && line !== '' && !line.startsWith('Warning: Permanently added')) own = line;
    if (mark) section = mark.step;
  }
  return own === undefined ? undefined : OS_REASONS.find((r) => own.endsWith(`: ${r}`) || own === r);
}

/** `message`, ending with the OS's reason the program's stderr gave when it does not name one already. */
export function withOsReason(message: string, stderr: string): string {
  const reason = osReasonOf(stderr);
  const lower = message.toLowerCase();
  if (reason === undefined || OS_REASONS.some((r) => lower.includes(r.toLowerCase()))) return message;
  return `${message}: ${reason}`;
}

export function remoteError(label: string, result: ExecResult, what: string): DeployError {
  const err = result.frames.find((f) => f.tag === 'error');
  if (err) {
    // The program's words, and the OS's reason its tools gave on stderr (said there alone before).
    const message = withOsReason(result.frames.find((f) => f.tag === 'message')?.value ?? what, result.stderr);
    const code = err.value as DeployError['code'];
    const hint = result.frames.find((f) => f.tag === 'hint')?.value;
    return new DeployError(code, `${label}: ${message}`, { ...(hint ? { hint } : {}), details: { host: label } });
  }
  const line = lastLine(result.stderr);
  if (result.code === 255) {
    return new DeployError('REMOTE', `${label}: connection lost while ${what}${line ? ` (${line})` : ''}`, { details: { host: label } });
  }
  return new DeployError('REMOTE', `${label}: ${what} failed${result.code !== null ? ` (exit ${result.code})` : result.signal ? ` (${result.signal})` : ''}${line ? `: ${line}` : ''}`, {
    details: { host: label },
  });
}
