import picocolors from 'picocolors';
import type { OperationEvent } from '../ops/events.ts';

export interface Streams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
}

export interface OutputMode {
  json: boolean;
  quiet: boolean;
}

/** Colour only for a person at a terminal: never in pipes or CI logs that scripts read, never with NO_COLOR. */
export function colorEnabled(env: NodeJS.ProcessEnv = process.env, stream: { isTTY?: boolean } = process.stderr): boolean {
  if ('NO_COLOR' in env) return false;
  if ('FORCE_COLOR' in env) return env.FORCE_COLOR !== '0';
  return stream.isTTY === true && env.TERM !== 'dumb';
}

export const pc = picocolors.createColors(colorEnabled());

function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export { formatBytes };

/** Escapes control characters: a newline or an escape sequence in a path must not forge a line or drive the terminal. */
export function oneLine(text: string): string {
  let out = '';
  for (const c of text) {
    const code = c.charCodeAt(0);
    out += code < 0x20 || code === 0x7f ? JSON.stringify(c).slice(1, -1) : c;
  }
  return out;
}

/**
 * `oneLine` for each line of a multi-line text (tables): a name in it cannot add a line or move
 * the cursor. Colour sequences (SGR, `ESC [ n ; n m`) stay, since our tables colour their markers.
 */
/** Our own colour markers (SGR sequences), kept when a line is escaped. */
const COLOUR_MARKER = new RegExp(`(${String.fromCharCode(0x1b)}\\[[0-9;]*m)`);

export function escapeLines(text: string): string {
  return text
    .split('\n')
    .map((line) => line.split(COLOUR_MARKER).map((part, i) => (i % 2 === 1 ? part : oneLine(part))).join(''))
    .join('\n');
}

/** Human output: step lines, warnings, and a progress bar only on a terminal. */
export class Reporter {
  private barVisible = false;
  private lastDraw = 0;

  constructor(
    private readonly streams: Streams,
    private readonly mode: OutputMode,
  ) {}

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
    this.streams.stdout.write(`${pc.cyan('›')} ${oneLine(message)}\n`);
  }

  warn(message: string, hint?: string): void {
    this.clearBar();
    this.streams.stderr.write(`${pc.yellow('warning:')} ${oneLine(message)}\n`);
    if (hint) this.streams.stderr.write(`${pc.dim('hint:')} ${oneLine(hint)}\n`);
  }

  error(message: string, hint?: string): void {
    this.clearBar();
    this.streams.stderr.write(`${pc.red('error:')} ${oneLine(message)}\n`);
    if (hint) this.streams.stderr.write(`${pc.dim('hint:')} ${oneLine(hint)}\n`);
  }

  /** The result line a person reads; in JSON mode the object is the whole of stdout. */
  result(human: string | undefined, json: object): void {
    this.clearBar();
    if (this.mode.json) this.streams.stdout.write(JSON.stringify(json) + '\n');
    else if (human !== undefined && !this.mode.quiet) this.streams.stdout.write(escapeLines(human) + '\n');
  }

  /** Plain text that is the point of the command (a table), shown even with --quiet. */
  print(text: string): void {
    if (this.mode.json) return;
    this.clearBar();
    this.streams.stdout.write(escapeLines(text) + '\n');
  }

  event = (event: OperationEvent): void => {
    switch (event.type) {
      case 'step':
        this.step(event.message);
        break;
      case 'warning':
        this.warn(event.message, event.hint);
        break;
      case 'output':
        if (this.mode.json) this.streams.stderr.write(`[${event.source}] ${oneLine(event.line)}\n`);
        else if (!this.mode.quiet) (event.stream === 'stderr' ? this.streams.stderr : this.streams.stdout).write(`${pc.dim(`[${event.source}]`)} ${oneLine(event.line)}\n`);
        break;
      case 'progress':
        this.progress(event);
        break;
    }
  };

  private progress(event: Extract<OperationEvent, { type: 'progress' }>): void {
    if (!this.showProgress) return;
    const now = Date.now();
    // An artifact's bar is cleared by the next step line, not by reaching its total.
    if (now - this.lastDraw < 80 && (event.phase === 'extract' || event.done < event.total)) return;
    this.lastDraw = now;
    const width = 24;
    const fraction = event.total === 0 ? 1 : Math.min(1, event.done / event.total);
    const filled = Math.round(fraction * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    if (event.phase === 'extract') {
      // An artifact's progress is in its bytes; without a Content-Length there is no bar to fill.
      const of = event.total > 0 ? `${bar} ${formatBytes(event.done)}/${formatBytes(event.total)}` : formatBytes(event.done);
      this.streams.stdout.write(`\r\x1b[2Kextract ${of}  ${event.files} files`);
      this.barVisible = true;
      return;
    }
    const bytes = event.totalBytes > 0 ? `  ${formatBytes(event.bytes)}/${formatBytes(event.totalBytes)}` : '';
    this.streams.stdout.write(`\r\x1b[2K${event.phase} ${bar} ${event.done}/${event.total} files${bytes}`);
    this.barVisible = true;
    if (event.done >= event.total) this.clearBar();
  }
}
