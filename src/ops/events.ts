/** What an operation reports while it runs; the CLI turns these into step lines and a progress bar. */
export type OperationEvent =
  | { type: 'step'; message: string }
  | { type: 'warning'; message: string; hint?: string }
  | { type: 'progress'; phase: 'copy' | 'fsync' | 'prune'; done: number; total: number; bytes: number; totalBytes: number }
  /** An artifact read and extracted: `done` of `total` bytes of the artifact (total 0: unknown), `files` written. */
  | { type: 'progress'; phase: 'extract'; done: number; total: number; files: number }
  | { type: 'output'; source: string; stream: 'stdout' | 'stderr'; line: string };

export type EventSink = (event: OperationEvent) => void;

export const ignoreEvents: EventSink = () => undefined;
