// Deterministic test data: the same seed gives the same names and bytes, so runs on different
// days and machines copy the same thing.
import { createWriteStream } from 'node:fs';
import { mkdir, readdir, readFile, stat, utimes, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { once } from 'node:events';

export interface TreeOptions {
  dirs: number;
  filesPerDir: number;
  /** Smallest file size in bytes (inclusive). */
  minSize: number;
  /** Largest file size in bytes (inclusive). */
  maxSize: number;
  seed: number;
}

export interface TreeStats {
  files: number;
  bytes: number;
}

/** The small-file trees the benchmarks use: 256 B–4 KiB files, 100 per directory. */
export const TREE_PRESETS = {
  '1k': { dirs: 10, filesPerDir: 100, minSize: 256, maxSize: 4096, seed: 1 },
  '10k': { dirs: 100, filesPerDir: 100, minSize: 256, maxSize: 4096, seed: 1 },
  '100k': { dirs: 1000, filesPerDir: 100, minSize: 256, maxSize: 4096, seed: 1 },
} as const satisfies Record<string, TreeOptions>;

/** mulberry32: tiny, fast, good enough to make varied bytes and choices; not for cryptography. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** Fills a buffer with pseudo-random bytes from `next`, four bytes per call. */
function fillRandom(buf: Buffer, next: () => number): void {
  const words = Math.floor(buf.length / 4);
  for (let i = 0; i < words; i++) buf.writeUInt32LE(next(), i * 4);
  for (let i = words * 4; i < buf.length; i++) buf[i] = next() & 0xff;
}

/** Mixes the tree seed with a file index so every file has its own independent stream. */
function fileSeed(seed: number, index: number): number {
  return (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) + Math.imul(index + 1, 0xc2b2ae35)) >>> 0;
}

/** Runs `fn` over `items` with at most `limit` in flight (file creation is I/O bound). */
async function forEachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++]!;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Creates `dirs` directories `d0000…` under `dir`, each with `filesPerDir` files `f0000.bin…`
 * of sizes in [minSize, maxSize]. `dir` may exist but should be empty.
 */
export async function makeTree(dir: string, options: TreeOptions): Promise<TreeStats> {
  const { dirs, filesPerDir, minSize, maxSize, seed } = options;
  if (minSize < 0 || maxSize < minSize) throw new Error(`bad size range ${minSize}..${maxSize}`);
  const span = maxSize - minSize + 1;
  const jobs: { path: string; index: number }[] = [];
  for (let d = 0; d < dirs; d++) {
    const sub = join(dir, `d${String(d).padStart(4, '0')}`);
    await mkdir(sub, { recursive: true });
    for (let f = 0; f < filesPerDir; f++) {
      jobs.push({ path: join(sub, `f${String(f).padStart(4, '0')}.bin`), index: d * filesPerDir + f });
    }
  }
  let bytes = 0;
  await forEachLimited(jobs, 32, async ({ path, index }) => {
    const next = prng(fileSeed(seed, index));
    const size = minSize + (next() % span);
    const buf = Buffer.allocUnsafe(size);
    fillRandom(buf, next);
    bytes += size;
    await writeFile(path, buf);
  });
  return { files: jobs.length, bytes };
}

export interface LargeFileOptions {
  count: number;
  sizeMB: number;
  seed?: number;
}

/** Writes `count` files `large-0.bin…` of `sizeMB` MiB each, streamed in 1 MiB chunks. */
export async function makeLargeFiles(dir: string, options: LargeFileOptions): Promise<TreeStats> {
  const { count, sizeMB, seed = 1 } = options;
  await mkdir(dir, { recursive: true });
  const chunk = Buffer.allocUnsafe(1024 * 1024);
  // One random block, re-stamped per chunk: unique content without generating a gigabyte of noise.
  fillRandom(chunk, prng(seed));
  for (let i = 0; i < count; i++) {
    const out = createWriteStream(join(dir, `large-${i}.bin`));
    for (let c = 0; c < sizeMB; c++) {
      chunk.writeUInt32LE(i, 0);
      chunk.writeUInt32LE(c, 4);
      // Copy, because a stream may still hold the previous buffer when we re-stamp it.
      if (!out.write(Buffer.from(chunk))) await once(out, 'drain');
    }
    out.end();
    await once(out, 'close');
  }
  return { files: count, bytes: count * sizeMB * 1024 * 1024 };
}

/** Every regular file under `dir`, as sorted absolute paths (sorted so choices are repeatable). */
export async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/**
 * Changes the content (not the size) of exactly round(fraction × file count) files, chosen by
 * `seed`, and returns their paths relative to `dir`, sorted.
 */
export async function mutateFraction(dir: string, fraction: number, seed: number): Promise<string[]> {
  if (!(fraction >= 0 && fraction <= 1)) throw new Error(`fraction must be in [0, 1], got ${fraction}`);
  const files = await listFiles(dir);
  const count = Math.round(fraction * files.length);
  const next = prng(seed);
  // Partial Fisher–Yates: the first `count` slots become a uniform sample without repeats.
  for (let i = 0; i < count; i++) {
    const j = i + (next() % (files.length - i));
    [files[i], files[j]] = [files[j]!, files[i]!];
  }
  const chosen = files.slice(0, count).map((path, i) => ({ path, noise: prng(fileSeed(seed, i)) }));
  await forEachLimited(chosen, 32, async ({ path, noise }) => {
    const buf = await readFile(path);
    // XOR with a non-zero byte changes every byte, so the file always differs; a stream per file
    // keeps the new bytes independent of the order the writes finish in.
    for (let k = 0; k < buf.length; k++) buf[k] = buf[k]! ^ ((noise() % 255) + 1);
    const before = await stat(path);
    await writeFile(path, buf);
    // rsync's quick check compares size and mtime: move mtime clearly forward so it sees the change.
    const mtime = new Date(Math.max(Date.now(), before.mtimeMs + 2000));
    await utimes(path, mtime, mtime);
  });
  return chosen.map((c) => relative(dir, c.path)).sort();
}

/** One tree a copy benchmark measures. */
export interface DataSet {
  id: string;
  label: string;
  /** File count, the x axis of the time chart; null for the large-file set. */
  files: number | null;
  make(dir: string): Promise<TreeStats>;
}

/**
 * The copy benchmarks' trees: 1k, 10k and 100k small files and a few large files (4 × 256 MiB;
 * 2 × 8 MiB quick). `quickSmall` names the small trees a quick run keeps.
 */
export function copyDataSets(quick: boolean, quickSmall: ReadonlyArray<'1k' | '10k'>): DataSet[] {
  const tree = (id: keyof typeof TREE_PRESETS): DataSet => {
    const files = TREE_PRESETS[id].dirs * TREE_PRESETS[id].filesPerDir;
    return { id, label: `${files.toLocaleString('en-US')} files`, files, make: (dir) => makeTree(dir, TREE_PRESETS[id]) };
  };
  const large = quick ? { count: 2, sizeMB: 8 } : { count: 4, sizeMB: 256 };
  const sets = (quick ? quickSmall : (['1k', '10k', '100k'] as const)).map(tree);
  sets.push({ id: 'large', label: `${large.count} × ${large.sizeMB} MiB`, files: null, make: (dir) => makeLargeFiles(dir, { ...large, seed: 1 }) });
  return sets;
}
