/**
 * The remote programs run on this machine by a named POSIX shell, with no ssh in between: how
 * the conformance suite holds them to the local engine under dash and BusyBox sh.
 */
import { launchFramed, type ExecResult, type ProgramOutput, type RootTransport, type RunningRemote } from './ssh.ts';

export interface LocalShellOptions {
  /** The shell and its leading arguments, e.g. `['dash']` or `['busybox', 'sh']`. */
  shell: readonly string[];
  /** PATH for the programs (a directory of BusyBox applets gives them BusyBox's userland). */
  path?: string;
}

export class LocalShell implements RootTransport {
  constructor(private readonly options: LocalShellOptions) {}

  // No connection to open or lose: a program starts whenever asked.
  get up(): boolean {
    return true;
  }

  connect(script?: string, options: ProgramOutput = {}): Promise<RunningRemote> {
    return Promise.resolve(this.start(script ?? ':', options));
  }

  start(script: string, options: ProgramOutput = {}): RunningRemote {
    const [command, ...args] = this.options.shell;
    if (command === undefined) throw new TypeError('LocalShell: no shell given');
    const env = this.options.path === undefined ? undefined : { ...process.env, PATH: this.options.path };
    return launchFramed(command, [...args, '-c', script], { ...options, ...(env ? { env } : {}) });
  }

  exec(script: string, options: ProgramOutput = {}): Promise<ExecResult> {
    const run = this.start(script, options);
    run.end();
    return run.done;
  }

  disconnect(): Promise<void> {
    return Promise.resolve();
  }
}
