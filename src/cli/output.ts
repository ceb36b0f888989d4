import picocolors from 'picocolors';
import type { OperationEvent } from '../ops/events.ts';
import { formatBytes, plural } from '../plan/units.ts';
import { hintReplacer } from './hint-flags.ts';

/** `held`: a promise while the stream's reader is behind (cli/streams.ts), which holds a hook's output until it settles. */
export interface Streams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number; held?: () => Promise<void> | undefined };
  stderr: NodeJS.WritableStream & { isTTY?: boolean; held?: () => Promise<void> | undefined };
}

export interface OutputMode {
  json: boolean;
  quiet: boolean;
  /** false: never colour (`--no-color`); otherwise each stream decides for itself. */
  color?: boolean;
  /** A word to put before an error's hint (where the config file set a flag the message names). */
  noteFor?: (message: string) => string | undefined;
  /** Every warning said on stderr, kept for the JSON result (shared by the reporters of one command). */
  warned?: string[];
  /** A hint as it is shown: the commands in it with the flags this run was given (hint-flags.ts). */
  hintCommands?: (hint: string) => string;
}

export type Colors = ReturnType<typeof picocolors.createColors>;

/** Colour only for a person at a terminal: never in pipes or CI logs that scripts read, never with NO_COLOR. */
export function colorEnabled(env: NodeJS.ProcessEnv = process.env, stream: { isTTY?: boolean } = process.stderr): boolean {
  // no-color.org: present and not empty.
  if ((env.NO_COLOR ?? '') !== '') return false;
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
    if (code < 0x20) out += JSON.stringify(c).slice(1, -1);
    // DEL, the C1 controls (0x9b is a CSI on some terminals) and the bidi embeddings, overrides
    // and isolates (which reorder what follows them on the line): shown by their code.
    else if ((code >= 0x7f && code <= 0x9f) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069)) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += c;
  }
  return out;
}

type ProgressEvent = Extract<OperationEvent, { type: 'progress' }>;

function progressCounts(event: ProgressEvent): { counts: string; fraction: number | undefined } {
  if (event.phase === 'extract') {
    // An artifact's progress is in its bytes; without a Content-Length there is no bar to fill.
    const bytes = event.total > 0 ? `${formatBytes(event.done)}/${formatBytes(event.total)}` : formatBytes(event.done);
    return { counts: `${bytes}  ${plural(event.files, 'file')}`, fraction: event.total > 0 ? Math.min(1, event.done / event.total) : undefined };
  }
  if (event.phase === 'fsync') {
    return { counts: `${plural(event.total, 'file')}${event.totalBytes > 0 ? `, ${formatBytes(event.totalBytes)}` : ''}: making them durable`, fraction: event.total === 0 ? 1 : Math.min(1, event.done / event.total) };
  }
  const counts = `${event.done}/${plural(event.total, 'file')}${event.totalBytes > 0 ? `  ${formatBytes(event.bytes)}/${formatBytes(event.totalBytes)}` : ''}`;
  return { counts, fraction: event.total === 0 ? 1 : Math.min(1, event.done / event.total) };
}

/** One progress line that fits `columns` (a wrapped line would not be erased by \\r): the bar shrinks first, then the text is cut. */
export function progressLine(event: ProgressEvent, columns: number | undefined): string {
  const width = Math.max(20, columns ?? 80) - 1;
  const { counts, fraction } = progressCounts(event);
  const barWidth = Math.min(24, width - event.phase.length - counts.length - 2);
  if (fraction === undefined || barWidth < 5) return `${event.phase} ${counts}`.slice(0, width);
  const filled = Math.round(fraction * barWidth);
  return `${event.phase} ${'█'.repeat(filled)}${'░'.repeat(barWidth - filled)} ${counts}`;
}

/** Our own colour markers (SGR sequences), kept when a line is escaped. */
const COLOUR_MARKER = new RegExp(`(${String.fromCharCode(0x1b)}\\[[0-9;]*m)`);

/** `oneLine` for each line of a multi-line text (tables): a name in it cannot add a line or move the cursor; our colour markers stay. */
export function escapeLines(text: string): string {
  return text
    .split('\n')
    .map((line) => line.split(COLOUR_MARKER).map((part, i) => (i % 2 === 1 ? part : oneLine(part))).join(''))
    .join('\n');
}

/**
 * The JSON result with every warning said on stderr in its `warnings` (after those the result has
 * already, each once): a script that keeps only stdout must not lose what stderr warned of.
 */
export function withWarnings(json: object, warned: readonly string[]): object {
  if (warned.length === 0) return json;
  const had: unknown = (json as { warnings?: unknown }).warnings;
  const before = Array.isArray(had) ? (had as unknown[]) : [];
  const more = warned.filter((w, i) => !before.includes(w) && warned.indexOf(w) === i);
  return more.length === 0 ? json : { ...json, warnings: [...before, ...more] };
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
    // A dumb terminal (TERM=dumb: Emacs shells, some CI consoles) draws the escape that erases the bar as text.
    return !this.mode.json && !this.mode.quiet && this.streams.stdout.isTTY === true && process.env.TERM !== 'dumb';
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
    this.streams.stdout.write(`${this.out.cyan('›')} ${oneLine(message)}\n`);
  }

  warn(message: string, hint?: string): void {
    this.clearBar();
    this.mode.warned?.push(message);
    this.streams.stderr.write(`${this.err.yellow('warning:')} ${oneLine(message)}\n`);
    if (hint) this.streams.stderr.write(`${this.err.dim('hint:')} ${oneLine(this.mode.hintCommands?.(hint) ?? hint)}\n`);
  }

  error(message: string, hint?: string): void {
    this.clearBar();
    this.streams.stderr.write(`${this.err.red('error:')} ${oneLine(message)}\n`);
    const said = this.hintFor(message, hint);
    if (said) this.streams.stderr.write(`${this.err.dim('hint:')} ${oneLine(said)}\n`);
  }

  /** An error's hint as it is shown (on stderr and in JSON): with the mode's note first, if any. */
  hintFor(message: string, hint: string | undefined): string | undefined {
    const note = this.mode.noteFor?.(message);
    const said = hint === undefined ? undefined : (this.mode.hintCommands?.(hint) ?? hint);
    return note === undefined ? said : said ? `${note}; ${said}` : note;
  }

  /** The result line a person reads; in JSON mode the object is the whole of stdout. */
  result(human: string | undefined, json: object): void {
    this.clearBar();
    const rewrite = this.mode.hintCommands;
    if (this.mode.json) this.streams.stdout.write(JSON.stringify(withWarnings(json, this.mode.warned ?? []), rewrite === undefined ? undefined : hintReplacer(rewrite)) + '\n');
    else if (human !== undefined && !this.mode.quiet) this.streams.stdout.write(escapeLines(human) + '\n');
  }

  /** Plain text that is the point of the command (a table); --quiet hides it like everything but errors. */
  print(text: string): void {
    if (this.mode.json || this.mode.quiet) return;
    this.clearBar();
    this.streams.stdout.write(escapeLines(text) + '\n');
  }

  /**
   * Told every event. For a hook's output line it returns a promise while the stream the line went
   * to is behind (its reader slower than the hook), which holds the hook's output (ops/events.ts
   * outputHold); typed `unknown`, as a sink's answer is: callers that only tell may ignore it.
   */
  event = (event: OperationEvent): unknown => {
    switch (event.type) {
      case 'step':
        this.step(event.message);
        break;
      case 'warning':
        this.warn(event.message, event.hint);
        break;
      case 'output': {
        if (this.mode.json) {
          this.streams.stderr.write(`[${event.source}] ${oneLine(event.line)}\n`);
          return this.streams.stderr.held?.();
        }
        if (this.mode.quiet) break;
        const [stream, colors] = event.stream === 'stderr' ? [this.streams.stderr, this.err] : [this.streams.stdout, this.out];
        stream.write(`${colors.dim(`[${event.source}]`)} ${oneLine(event.line)}\n`);
        return stream.held?.();
      }
      case 'progress':
        this.progress(event);
        break;
    }
    return undefined;
  };

  private progress(event: ProgressEvent): void {
    if (!this.showProgress) return;
    const now = Date.now();
    // An artifact's bar is cleared by the next step line, not by reaching its total.
    if (now - this.lastDraw < 80 && (event.phase === 'extract' || event.done < event.total)) return;
    this.lastDraw = now;
    this.streams.stdout.write(`\r\x1b[2K${progressLine(event, this.streams.stdout.columns)}`);
    this.barVisible = true;
    // The fsync and extract lines stay until the next output replaces them: neither has a last step to end on.
    if (event.done >= event.total && event.phase !== 'fsync' && event.phase !== 'extract') this.clearBar();
  }
}
