/** What an operation reports while it runs; the CLI turns these into step lines and a progress bar. */
export type OperationEvent =
  | { type: 'step'; message: string }
  | { type: 'warning'; message: string }
  | { type: 'progress'; phase: 'copy' | 'fsync' | 'prune'; done: number; total: number; bytes: number; totalBytes: number }
  | { type: 'output'; source: string; stream: 'stdout' | 'stderr'; line: string };

export type EventSink = (event: OperationEvent) => void;

export const ignoreEvents: EventSink = () => undefined;
