/**
 * SHA-256 of many files on several cores: a small pool of worker threads, each reading files
 * whole into a 1 MiB buffer (one read(2) for most files) and hashing them. Files go in batches,
 * so a message costs little next to the files it carries. Generic: any tree walk can feed it.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';

export interface FileHash {
  sha256: string;
  size: number;
}

/** A file hashed with its mode, from an fstat of the descriptor that was read. */
export interface StatHash extends FileHash {
  mode: number;
}

/** A file that could not be hashed: its errno code (EFTYPE when it is not a regular file). */
export interface HashFailure {
  code: string;
  message: string;
}

type Outcome = FileHash | HashFailure;

// Evaluated, not loaded from a file: the same source works from dist/ and from src/ under tsx.
// The open flags and the end-of-file rule are hashFileSync's: a FIFO swapped in never blocks, a symlink is refused.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const { createHash } = require('node:crypto');
const CHUNK = 1024 * 1024;
const buf = Buffer.allocUnsafe(CHUNK);
const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW;
parentPort.on('message', ({ id, files, sizes, stat }) => {
  const out = [];
  for (const [k, file] of files.entries()) {
    let fd;
    try {
      fd = fs.openSync(file, FLAGS);
      let known = sizes === undefined ? undefined : sizes[k];
      let mode;
      if (stat) {
        const st = fs.fstatSync(fd);
        if (!st.isFile()) throw Object.assign(new Error(file + ' is not a regular file'), { code: 'EFTYPE' });
        known = st.size;
        mode = st.mode & 0o7777;
      }
      const hash = createHash('sha256');
      let size = 0;
      for (;;) {
        const n = fs.readSync(fd, buf, 0, CHUNK, null);
        if (n === 0) break;
        hash.update(buf.subarray(0, n));
        size += n;
        if (n < CHUNK && size === known) break;
      }
      out.push(stat ? { sha256: hash.digest('hex'), size, mode } : { sha256: hash.digest('hex'), size });
    } catch (error) {
      out.push({ code: String(error && error.code || 'EIO'), message: String(error && error.message || error) });
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
    }
  }
  parentPort.postMessage({ id, out });
});
`;

interface Pending {
  files: readonly string[];
  /** Per-file failures are answers (hashStat), not a rejection of the batch (hash). */
  perFile: boolean;
  resolve: (outcomes: Outcome[]) => void;
  reject: (error: Error) => void;
}

/** Threads for work that has this thread free meanwhile: one per core, at most `max`. */
export function hashThreads(max = 4): number {
  return Math.max(1, Math.min(max, os.availableParallelism()));
}


export class HashPool {
  readonly #workers: Worker[] = [];
  readonly #load: number[] = [];
  readonly #pending = new Map<number, Pending & { worker: number }>();
  #nextId = 0;
  #failure: Error | undefined;

  constructor(size: number) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      worker.on('message', (msg: { id: number; out: Outcome[] }) => this.#settle(msg.id, msg.out));
      worker.on('error', (error) => this.#fail(error));
      // A worker that ends with work outstanding (killed, out of memory) fails that work.
      worker.on('exit', (code) => {
        if ([...this.#pending.values()].some((p) => p.worker === i)) this.#fail(new Error(`a hashing thread exited (code ${code})`));
      });
      this.#workers.push(worker);
      this.#load.push(0);
    }
  }

  get size(): number {
    return this.#workers.length;
  }

  /** Files sent and not yet answered, across all threads. */
  queued(): number {
    return this.#load.reduce((a, b) => a + b, 0);
  }

  /**
   * The hashes of `files`, in order; rejects with the first file's error (code and path kept).
   * `sizes` (from the walk's lstat) lets a short read that reaches the size end a file without a
   * read(2) for the 0; without them every file is read to its 0.
   */
  hash(files: readonly string[], sizes?: readonly number[]): Promise<FileHash[]> {
    return this.#send(files, { sizes }, false) as Promise<FileHash[]>;
  }

  /**
   * The hash, size and mode of each of `files`, in order, each from one open descriptor (no
   * lstat beforehand: the fstat of what was opened is the type check). A file that is gone or
   * not a regular file any more is a failure in its place, so the caller can look again.
   */
  hashStat(files: readonly string[]): Promise<(StatHash | HashFailure)[]> {
    return this.#send(files, { stat: true }, true) as Promise<(StatHash | HashFailure)[]>;
  }

  #send(files: readonly string[], extra: { sizes?: readonly number[]; stat?: true }, perFile: boolean): Promise<Outcome[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    // The least-loaded worker: batches vary in bytes, so strict turns would leave one idle.
    let w = 0;
    for (let i = 1; i < this.#load.length; i++) if ((this.#load[i] ?? 0) < (this.#load[w] ?? 0)) w = i;
    const id = this.#nextId++;
    this.#load[w] = (this.#load[w] ?? 0) + files.length;
    return new Promise<Outcome[]>((resolve, reject) => {
      this.#pending.set(id, { files, perFile, resolve, reject, worker: w });
      this.#workers[w]?.postMessage({ id, files, ...extra });
    });
  }

  #settle(id: number, out: Outcome[]): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    this.#load[p.worker] = (this.#load[p.worker] ?? 0) - p.files.length;
    if (p.perFile) {
      p.resolve(out);
      return;
    }
    for (const [i, o] of out.entries()) {
      if ('code' in o) {
        const file = p.files[i] ?? '';
        p.reject(Object.assign(new Error(`${file}: ${o.message}`), { code: o.code, path: file }));
        return;
      }
    }
    p.resolve(out);
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }

  /** Stops the threads; work still outstanding is rejected. */
  async close(): Promise<void> {
    this.#fail(new Error('the hashing pool was closed'));
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
