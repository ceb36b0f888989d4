import picocolors from 'picocolors';
import type { OperationEvent } from '../ops/events.ts';
import { formatBytes, plural } from '../plan/units.ts';

export interface Streams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

export interface OutputMode {
  json: boolean;
  quiet: boolean;
  /** false: never colour (`--no-color`); otherwise each stream decides for itself. */
  color?: boolean;
}

export type Colors = ReturnType<typeof picocolors.createColors>;

/** Colour only for a person at a terminal: never in pipes or CI logs that scripts read, never with NO_COLOR. */
export function colorEnabled(env: NodeJS.ProcessEnv = process.env, stream: { isTTY?: boolean } = process.stderr): boolean {
  if ('NO_COLOR' in env) return false;
  if ('FORCE_COLOR' in env) return env.FORCE_COLOR !== '0';
  return stream.isTTY === true && env.TERM !== 'dumb';
}

/** Colours for one stream: `deploy | tee log` must get no escapes in the log while stderr stays a terminal. */
export function colorsFor(stream: { isTTY?: boolean }, allowed = true, env: NodeJS.ProcessEnv = process.env): Colors {
  return picocolors.createColors(allowed && colorEnabled(env, stream));
}

export { formatBytes, plural };

/** Escapes control characters: a newline or an escape sequence in a path must not forge a line or drive the terminal. */
export function oneLine(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    out += code < 0x20 || code === 0x7f ? JSON.stringify(c).slice(1, -1) : c;
  }
  return out;
}

type ProgressEvent = Extract<OperationEvent, { type: 'progress' }>;

/** One progress line that fits `columns` (a wrapped line would not be erased by \\r): the bar shrinks first, then the text is cut. */
export function progressLine(event: ProgressEvent, columns: number | undefined): string {
  const width = Math.max(20, columns ?? 80) - 1;
  const counts = event.phase === 'fsync' ? `${plural(event.total, 'file')}${event.totalBytes > 0 ? `, ${formatBytes(event.totalBytes)}` : ''}: making them durable` : `${event.done}/${plural(event.total, 'file')}${event.totalBytes > 0 ? `  ${formatBytes(event.bytes)}/${formatBytes(event.totalBytes)}` : ''}`;
  const fraction = event.total === 0 ? 1 : Math.min(1, event.done / event.total);
  const barWidth = Math.min(24, width - event.phase.length - counts.length - 2);
  if (barWidth < 5) return `${event.phase} ${counts}`.slice(0, width);
  const filled = Math.round(fraction * barWidth);
  return `${event.phase} ${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)} ${counts}`;
}

/** Human output: step lines, warnings, and a progress bar only on a terminal. */
export class Reporter {
  private barVisible = false;
  private lastDraw = 0;
  private readonly out: Colors;
  private readonly err: Colors;

  constructor(
    private readonly streams: Streams,
    private readonly mode: OutputMode,
  ) {
    this.out = colorsFor(streams.stdout, mode.color !== false);
    this.err = colorsFor(streams.stderr, mode.color !== false);
  }

  /** Colours for what goes to stdout (tables). */
  get stdoutColors(): Colors {
    return this.out;
  }

  private get showProgress(): boolean {
    return !this.mode.json && !this.mode.quiet && this.streams.stdout.isTTY === true;
  }

  private clearBar(): void {
    if (this.barVisible) {
      this.streams.stdout.write('\r\x1b[2K');
      this.barVisible = false;
    }
  }

  step(message: string): void {
    if (this.mode.json || this.mode.quiet) return;
    this.clearBar();
    this.streams.stdout.write(`${this.out.cyan('›')} ${message}\n`);
  }

  warn(message: string): void {
    this.clearBar();
    this.streams.stderr.write(`${this.err.yellow('warning:')} ${oneLine(message)}\n`);
  }

  error(message: string, hint?: string): void {
    this.clearBar();
    this.streams.stderr.write(`${this.err.red('error:')} ${oneLine(message)}\n`);
    if (hint) this.streams.stderr.write(`${this.err.dim('hint:')} ${oneLine(hint)}\n`);
  }

  /** The result line a person reads; in JSON mode the object is the whole of stdout. */
  result(human: string | undefined, json: object): void {
    this.clearBar();
    if (this.mode.json) this.streams.stdout.write(JSON.stringify(json) + '\n');
    else if (human !== undefined && !this.mode.quiet) this.streams.stdout.write(human + '\n');
  }

  /** Plain text that is the point of the command (a table); --quiet hides it like everything but errors. */
  print(text: string): void {
    if (this.mode.json || this.mode.quiet) return;
    this.clearBar();
    this.streams.stdout.write(text + '\n');
  }

  event = (event: OperationEvent): void => {
    switch (event.type) {
      case 'step':
        this.step(event.message);
        break;
      case 'warning':
        this.warn(event.message);
        break;
      case 'output':
        if (this.mode.json) this.streams.stderr.write(`[${event.source}] ${event.line}\n`);
        else if (!this.mode.quiet) {
          const [stream, colors] = event.stream === 'stderr' ? [this.streams.stderr, this.err] : [this.streams.stdout, this.out];
          stream.write(`${colors.dim(`[${event.source}]`)} ${event.line}\n`);
        }
        break;
      case 'progress':
        this.progress(event);
        break;
    }
  };

  private progress(event: ProgressEvent): void {
    if (!this.showProgress) return;
    const now = Date.now();
    if (now - this.lastDraw < 80 && event.done < event.total) return;
    this.lastDraw = now;
    this.streams.stdout.write(`\r\x1b[2K${progressLine(event, this.streams.stdout.columns)}`);
    this.barVisible = true;
    // The fsync phase has no steps to count: its line stays until the next output replaces it.
    if (event.done >= event.total && event.phase !== 'fsync') this.clearBar();
  }
}
