/**
 * SHA-256 of many files on several cores: a small pool of worker threads, each reading files
 * whole into a 1 MiB buffer (one read(2) for most files) and hashing them. Files go in batches,
 * so a message costs little next to the files it carries. Generic: any tree walk can feed it.
 */
import fs from 'node:fs';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { hashThreads, runnableThreads } from '../plan/hash-threads.ts';

export interface FileHash {
  sha256: string;
  size: number;
}

/** A file the walk saw as regular, as found when opened: its hash, size and mode, or `other` if something else is there now. */
export type WalkedFile = (FileHash & { mode: number }) | { other: true };

type Outcome = WalkedFile | { code: string; message: string };

// Evaluated, not loaded from a file: the same source works from dist/ and from src/ under tsx.
// The open flags, the type check on the descriptor and the end-of-file rule are hashWalkedFileSync's
// (act/manifest.ts): a FIFO swapped in never blocks, a symlink or anything but a regular file is `other`.
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const { createHash } = crypto;
const oneShot = typeof crypto.hash === 'function' ? crypto.hash : undefined;
const CHUNK = 1024 * 1024;
const buf = Buffer.allocUnsafe(CHUNK);
const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW;
function one(file) {
  let fd;
  try {
    fd = fs.openSync(file, FLAGS);
  } catch (error) {
    // A symlink now, a file it may not open, or one gone: the walk looks again by lstat (and reports or refuses it).
    if (error && (error.code === 'ELOOP' || error.code === 'EACCES' || error.code === 'EPERM' || error.code === 'ENOENT' || error.code === 'ENOTDIR')) return { other: true };
    throw error;
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile()) return { other: true };
    const mode = st.mode & 0o7777;
    let n = fs.readSync(fd, buf, 0, CHUNK, null);
    if (oneShot !== undefined && n < CHUNK && n === st.size) return { sha256: oneShot('sha256', buf.subarray(0, n), 'hex'), size: n, mode };
    const hash = createHash('sha256');
    let size = 0;
    while (n > 0) {
      hash.update(buf.subarray(0, n));
      size += n;
      if (n < CHUNK && size === st.size) break;
      n = fs.readSync(fd, buf, 0, CHUNK, null);
    }
    return { sha256: hash.digest('hex'), size, mode };
  } finally {
    fs.closeSync(fd);
  }
}
parentPort.on('message', ({ id, files }) => {
  const out = [];
  for (const file of files) {
    try {
      out.push(one(file));
    } catch (error) {
      out.push({ code: String(error && error.code || 'EIO'), message: String(error && error.message || error) });
    }
  }
  parentPort.postMessage({ id, out });
});
`;

interface Pending {
  files: readonly string[];
  resolve: (hashes: WalkedFile[]) => void;
  reject: (error: Error) => void;
}

/** Threads to add on this machine now: one per idle core beyond the caller's own, at most `max` (plan/hash-threads.ts). */
export function extraHashThreads(max = 3): number {
  let now: number | undefined;
  try {
    now = runnableThreads(fs.readFileSync('/proc/loadavg', 'latin1'));
  } catch {
    // No /proc (macOS, BSD): the load average is what there is.
  }
  return hashThreads(os.availableParallelism(), now ?? os.loadavg()[0] ?? Number.NaN, max);
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
   * Each file's hash, size and mode (from fstat on the open descriptor), in order, or `other` for
   * a path that holds no regular file now; rejects with the first file's error (code and path kept).
   */
  hash(files: readonly string[]): Promise<WalkedFile[]> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    // The least-loaded worker: batches vary in bytes, so strict turns would leave one idle.
    let w = 0;
    for (let i = 1; i < this.#load.length; i++) if ((this.#load[i] ?? 0) < (this.#load[w] ?? 0)) w = i;
    const id = this.#nextId++;
    this.#load[w] = (this.#load[w] ?? 0) + files.length;
    return new Promise<WalkedFile[]>((resolve, reject) => {
      this.#pending.set(id, { files, resolve, reject, worker: w });
      this.#workers[w]?.postMessage({ id, files });
    });
  }

  #settle(id: number, out: Outcome[]): void {
    const p = this.#pending.get(id);
    if (p === undefined) return;
    this.#pending.delete(id);
    this.#load[p.worker] = (this.#load[p.worker] ?? 0) - p.files.length;
    const hashes: WalkedFile[] = [];
    for (const [i, o] of out.entries()) {
      if ('code' in o) {
        const file = p.files[i] ?? '';
        p.reject(Object.assign(new Error(`${file}: ${o.message}`), { code: o.code, path: file }));
        return;
      }
      hashes.push(o);
    }
    p.resolve(hashes);
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
