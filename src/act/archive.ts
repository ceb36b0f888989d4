/**
 * Archive sources: opening a tar, tar.gz or zip (a local file or a URL), and extracting it
 * straight into a staged release as it streams in, hashing each file into the release manifest
 * and the whole artifact for --sha256 on the way. Every entry is first decided by
 * plan/archive.ts's EntryChecker; this file writes only what it allowed.
 */
import { isUtf8 } from 'node:buffer';
import crypto, { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import type * as yauzl from 'yauzl';
import { DeployError, errnoOf } from '../errors.ts';
import { EntryChecker, isUrlSource, otherFormat, quote, redactUrl, shownName, sniffFormat, zipCentralRecord, zipDescriptorLength, zipEntryLeastEnd, zipLayout, type ArchiveFormat, type ArchiveHeader, type EntryDecision, type ExtractLimits, type HeaderType, type ZipCentralRecord } from '../plan/archive.ts';
import type { ManifestEntry } from '../plan/manifest.ts';
import { MAX_TRAILING, TarFormatError, TarParser, trailingError, type TarDataSink } from '../plan/tar.ts';
import { stampOf, type FileStamp } from '../plan/stat-cache.ts';
import { watchedTopOf } from '../plan/validate.ts';
import { secs } from './copy.ts';
import { openDownload, type DownloadOptions } from './download.ts';

export interface Artifact {
  /** As the user gave it (a path or a URL). */
  source: string;
  format: ArchiveFormat;
  /** Bytes of the artifact, when known in advance. */
  totalBytes: number | undefined;
  /** A local file (for zip, which is read from its end). */
  file?: string;
  /** The local file as it was opened: every later open of `file` must find this inode, unchanged. */
  identity?: FileIdentity;
  /** The raw bytes, once, first to last; each chunk may be overwritten once the next is asked for. */
  chunks: AsyncGenerator<Buffer>;
  /**
   * Closes the descriptor a local artifact is held open by until the deploy ends: while it is
   * open, its inode number cannot be given to a file that replaces it by rename, which the
   * identity check would then take for the same file written to.
   */
  release?: () => void;
}

const HEAD = 512;

async function* prepend(head: Buffer, rest: AsyncIterator<Buffer>): AsyncGenerator<Buffer> {
  if (head.length > 0) yield head;
  for (;;) {
    const next = await rest.next();
    if (next.done) return;
    yield next.value;
  }
}

function notAnArchive(source: string, headBytes: number, head?: Uint8Array): DeployError {
  if (headBytes === 0) {
    return new DeployError('INVALID_ARCHIVE', `${redactUrl(source)} ${isUrlSource(source) ? 'serves' : 'is'} an empty file (0 bytes), not an archive`, { hint: 'the build or its upload may have failed: build the artifact again' });
  }
  const other = head === undefined ? undefined : otherFormat(head);
  if (other !== undefined) {
    return new DeployError('INVALID_ARCHIVE', `${redactUrl(source)} ${isUrlSource(source) ? 'serves a file that is' : 'is'} ${other} (by its first bytes); only tar, tar.gz and zip are read`, {
      hint: 'pack the build as .tar.gz, .tar or .zip (tar -czf dist.tar.gz -C dist .), or extract it and deploy the directory',
    });
  }
  const what = isUrlSource(source) ? 'does not serve' : 'is not a directory, nor';
  return new DeployError('INVALID_ARCHIVE', `${redactUrl(source)} ${what} a tar, tar.gz or zip archive (by its first bytes)`, { hint: 'deploy a directory, a .tar, .tar.gz/.tgz or .zip, or a URL to one' });
}

const READ_SIZE = 1024 * 1024;

/** What a local artifact must still be whenever it is read: the same inode, not written since. */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

function identityOf(fd: number): FileIdentity {
  const st = fs.fstatSync(fd, { bigint: true });
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
}

/**
 * Checks that `fd` is the artifact first opened and that nothing wrote to it since. A local zip
 * is read twice (hashed in order, extracted from its end) and a tar once after the open that
 * told its format: a file replaced by rename in between (CI publishing `dist.zip` with mv, a
 * `latest` link moved) would have one file's bytes checked against --sha256 and the signature
 * and the other's put live, and an in-place write would do the same within one file.
 */
function assertSameArtifact(fd: number, expected: FileIdentity | undefined, source: string): void {
  if (expected === undefined) return;
  const now = identityOf(fd);
  const replaced = now.dev !== expected.dev || now.ino !== expected.ino;
  const how = replaced ? 'it was replaced by another file' : now.size !== expected.size ? 'its size changed' : now.mtimeNs !== expected.mtimeNs || now.ctimeNs !== expected.ctimeNs ? 'it was written to' : undefined;
  if (how === undefined) return;
  throw new DeployError('IO', `${redactUrl(source)} changed while it was read (${how}); nothing was deployed`, {
    hint: replaced
      ? 'publish each build under its own name, or deploy once the rename is done'
      : 'deploy again once the artifact is final: write it under a temporary name and rename it into place, or give each build its own name',
  });
}

function readAt(fd: number, buf: Buffer, position: number): Promise<number> {
  return new Promise((resolve, reject) => fs.read(fd, buf, 0, buf.length, position, (error, n) => (error ? reject(error) : resolve(n))));
}

/**
 * A local file in 1 MiB chunks read into two buffers in turn: the next read runs on the thread
 * pool while the caller works on the current chunk. Reused, not fresh, buffers: reading and
 * hashing into fresh memory costs more CPU (the artifact benchmark measures both).
 */
async function* fileChunks(file: string, identity: FileIdentity | undefined): AsyncGenerator<Buffer> {
  const fd = await new Promise<number>((resolve, reject) => fs.open(file, 'r', (error, n) => (error ? reject(error) : resolve(n))));
  try {
    assertSameArtifact(fd, identity, file);
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
  const bufs = [Buffer.allocUnsafeSlow(READ_SIZE), Buffer.allocUnsafeSlow(READ_SIZE)];
  let turn = 0;
  let position = 0;
  let next: Promise<number> | undefined = readAt(fd, bufs[0] as Buffer, 0);
  try {
    for (;;) {
      const n = await next;
      next = undefined;
      if (n === 0) {
        // Every byte handed out was the artifact's as opened, unchanged until its end.
        assertSameArtifact(fd, identity, file);
        return;
      }
      const current = (bufs[turn] as Buffer).subarray(0, n);
      position += n;
      turn ^= 1;
      // Into the other buffer: the one just filled is the caller's until it asks for more.
      next = readAt(fd, bufs[turn] as Buffer, position);
      yield current;
    }
  } finally {
    // No close while a read is on the thread pool: the fd number could be reused under it.
    await next?.catch(() => undefined);
    fs.closeSync(fd);
  }
}

/** Whether `source` is an artifact rather than a directory: a URL, or an existing non-directory. */
export function isArtifactSource(source: string): boolean {
  if (isUrlSource(source)) return true;
  try {
    return !fs.statSync(source).isDirectory();
  } catch {
    return false;
  }
}

/** Opens an artifact and tells its format from its first bytes; nothing is written anywhere. */
export async function openArtifact(source: string, download: DownloadOptions): Promise<Artifact> {
  if (!isUrlSource(source)) {
    const head = Buffer.alloc(HEAD);
    let size: number;
    let read: number;
    let identity: FileIdentity;
    let held: number;
    try {
      const fd = fs.openSync(source, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      try {
        const st = fs.fstatSync(fd);
        if (!st.isFile()) {
          // `<(curl …)` and /dev/stdin are pipes: an archive is read from a file (its size, a second read for the checks).
          const piped = st.isFIFO() || /^\/(dev\/(stdin|fd\/\d+)|proc\/self\/fd\/\d+)$/.test(source);
          throw new DeployError('INVALID_SOURCE', `${source} is neither a directory nor a regular file${piped ? ' (a pipe: an archive on standard input is not read)' : ''}`, {
            hint: piped ? 'save it to a file and deploy that file (atomic-deploy deploy app.tgz <root>)' : 'give the build output directory or an archive',
          });
        }
        size = st.size;
        identity = identityOf(fd);
        read = fs.readSync(fd, head, 0, HEAD, 0);
      } catch (error) {
        fs.closeSync(fd);
        throw error;
      }
      held = fd;
    } catch (error) {
      if (error instanceof DeployError) throw error;
      throw new DeployError('INVALID_SOURCE', `cannot read ${source}: ${errnoOf(error) ?? String(error)}`, { cause: error });
    }
    const format = sniffFormat(head.subarray(0, read));
    if (!format) {
      fs.closeSync(held);
      throw notAnArchive(source, read, head.subarray(0, read));
    }
    let open = true;
    const release = (): void => {
      if (open) fs.closeSync(held);
      open = false;
    };
    return { source, format, totalBytes: size, file: source, identity, chunks: fileChunks(source, identity), release };
  }
  const dl = await openDownload(source, download);
  // Read just enough to see the format; those bytes go first into the stream.
  const parts: Buffer[] = [];
  let have = 0;
  const it = dl.chunks[Symbol.asyncIterator]();
  while (have < HEAD) {
    const next = await it.next();
    if (next.done) break;
    parts.push(next.value);
    have += next.value.length;
  }
  const head = Buffer.concat(parts);
  const format = sniffFormat(head);
  if (!format) {
    await it.return(undefined);
    throw notAnArchive(source, head.length, head);
  }
  return { source, format, totalBytes: dl.totalBytes, chunks: prepend(head, it) };
}

export interface ExtractOptions {
  limits: ExtractLimits;
  /** Where a zip from a URL is spooled (it is read from its end); removed before returning. */
  spool: string;
  signal?: AbortSignal;
  /** Every raw byte of the artifact, in order (a signature check reads them here). */
  onRaw?: (chunk: Buffer) => Promise<void> | void;
  onProgress?: (p: { files: number; bytes: number; rawBytes: number }) => void;
}

export interface ExtractResult {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  /** SHA-256 (hex) of the artifact's bytes as received. */
  sha256: string;
  rawBytes: number;
  /** What the release holds, for the release manifest (unsorted). */
  manifest: ManifestEntry[];
  /** Inode, size and ctime of every file once it was final: the stat cache. */
  stamps: Map<string, FileStamp>;
  /** The names at the release's top a build is warned about (plan/validate.ts buildTopWarnings), seen as entries went in. */
  watchedTopNames: string[];
  /** The one directory every entry sits under, if there is one (plan/archive.ts singleTopDir). */
  singleTopDir?: string;
  /** Files and links --strip-components removed whole, if any. */
  strippedAway?: { count: number; deepest: { name: string; components: number } };
}

/** SHA-256 of one buffer in one call (Node >= 20.12): a fifth of the cost of a Hash object for a small file. */
const hashOnce: ((bytes: Buffer) => string) | undefined = typeof crypto.hash === 'function' ? (bytes) => crypto.hash('sha256', bytes, 'hex') : undefined;
const EMPTY_SHA256 = createHash('sha256').digest('hex');

const hostile = (problem: string, source: string, hint = 'rebuild the artifact with plain relative paths, files, directories and links'): DeployError =>
  new DeployError('HOSTILE_ARCHIVE', `refused ${redactUrl(source)}: ${problem}`, { hint: `nothing was deployed; ${hint}` });

/**
 * One regular file being written: each chunk is hashed and written synchronously, so the caller's
 * buffer is free again when `data` returns (the page cache takes a write at once).
 */
class FileSink implements TarDataSink {
  private hash: Hash | undefined;
  private sha256: string | undefined;
  private size = 0;
  private fd: number | undefined;
  private readonly stage: Stage;
  private readonly d: Extract<EntryDecision, { action: 'write' }>;

  constructor(stage: Stage, d: Extract<EntryDecision, { action: 'write' }>, fd: number) {
    this.stage = stage;
    this.d = d;
    this.fd = fd;
    this.sha256 = d.size === 0 ? EMPTY_SHA256 : undefined;
  }

  data(chunk: Buffer): void {
    const fd = this.fd;
    if (fd === undefined) throw new DeployError('INTERNAL', `data for ${this.d.path} after its end`);
    if (this.size + chunk.length > this.d.size) throw new DeployError('INVALID_ARCHIVE', `entry ${JSON.stringify(this.d.path)} holds more bytes than its header says`);
    // A file that arrives whole in one chunk (most small files) is hashed in one call.
    if (this.size === 0 && chunk.length === this.d.size && hashOnce) this.sha256 = hashOnce(chunk);
    else (this.hash ??= createHash('sha256')).update(chunk);
    let off = 0;
    while (off < chunk.length) off += fs.writeSync(fd, chunk, off);
    this.size += chunk.length;
  }

  end(): void {
    const fd = this.fd;
    if (fd === undefined) return;
    const d = this.d;
    let st: fs.Stats;
    try {
      const owner = this.stage.chownTo(d.owner);
      if (owner) fs.fchownSync(fd, owner.uid, owner.gid);
      // After a chown, which clears setuid/setgid.
      fs.fchmodSync(fd, d.mode);
      if (d.mtimeMs !== undefined) fs.futimesSync(fd, secs(d.mtimeMs), secs(d.mtimeMs));
      st = fs.fstatSync(fd);
    } finally {
      this.close();
    }
    this.stage.added(d, { path: d.path, type: 'file', mode: d.mode, size: this.size, sha256: this.hash ? this.hash.digest('hex') : (this.sha256 ?? EMPTY_SHA256) }, st);
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }
}

/** The staged release under construction: writes what the checker allowed, nothing else. */
class Stage {
  readonly manifest: ManifestEntry[] = [];
  readonly stamps = new Map<string, FileStamp>();
  /**
   * Names that share one inode by hard links, by each of them. link(2) changes the ctime of the
   * inode, so every name gets the stamp taken after the last link: kept once per group and copied
   * to its names in `finish`, not written to every earlier name at each new link (quadratic).
   */
  private readonly linkGroups = new Map<string, { paths: string[]; stamp: FileStamp }>();
  private readonly fileIndex = new Map<string, number>();
  private readonly dirs: { path: string; mode: number; owner?: { uid: number; gid: number }; mtimeMs?: number }[] = [];
  private readonly dirIndex = new Map<string, number>();
  /** The archive's own root entry, if it has one: the release directory's mode, owner and time. */
  private root: Extract<EntryDecision, { action: 'root' }> | undefined;
  files = 0;
  symlinks = 0;
  bytes = 0;
  readonly dir: string;
  /** The artifact, for messages. */
  private readonly source: string;
  /** Who owns what this process creates in the stage: a chown to the same owner is a wasted inode write. */
  private readonly created: { uid: number; gid: number } | undefined;

  constructor(dir: string, source: string) {
    this.dir = dir;
    this.source = source;
    const st = fs.statSync(dir);
    // New entries take the group of a setgid directory (inherited by its subdirectories), else ours.
    const gid = st.mode & 0o2000 ? st.gid : process.getegid?.();
    const uid = process.geteuid?.();
    this.created = uid !== undefined && gid !== undefined ? { uid, gid } : undefined;
  }

  /** The archive's owner, unless it is already the owner of what this process creates. */
  chownTo(owner: { uid: number; gid: number } | undefined): { uid: number; gid: number } | undefined {
    return owner && (owner.uid !== this.created?.uid || owner.gid !== this.created.gid) ? owner : undefined;
  }

  private at(rel: string): string {
    return `${this.dir}${path.sep}${rel}`;
  }

  private mkdir(rel: string, mode: number, decision?: Extract<EntryDecision, { action: 'write' }>): void {
    const known = this.dirIndex.get(rel);
    if (known !== undefined) {
      // A directory listed again (or after its contents): its last header wins, as with tar.
      const d = this.dirs[known];
      if (d && decision) Object.assign(d, { mode, owner: decision.owner, mtimeMs: decision.mtimeMs });
      return;
    }
    // Owner-only while entries go in; the archive's mode is applied last, deepest first.
    fs.mkdirSync(this.at(rel), { mode: 0o700 });
    this.dirIndex.set(rel, this.dirs.length);
    this.dirs.push({ path: rel, mode, owner: decision?.owner, mtimeMs: decision?.mtimeMs });
  }

  /**
   * Writes one allowed entry; a file's content goes to the sink returned, which `end` completes.
   * What the checker cannot know, the filesystem answers: a path too long once under the staging
   * directory, one link too many to a file. Both are the archive's doing, refused as such.
   */
  write(d: Extract<EntryDecision, { action: 'write' }>): FileSink | undefined {
    try {
      return this.place(d);
    } catch (error) {
      const code = errnoOf(error);
      if (code === 'ENAMETOOLONG') {
        throw hostile(`entry ${quote(d.path)} is a path too long for the filesystem under the release's staging directory (PATH_MAX, 4096 bytes)`, this.source, 'rebuild the artifact with shorter paths (less nesting)');
      }
      if (code === 'EMLINK' && d.kind === 'hardlink') {
        throw hostile(`entry ${quote(d.path)} is a hard link to ${quote(d.linkTo ?? '')}, which has as many links as the filesystem allows`, this.source, 'rebuild the artifact with fewer hard links to one file (ext4 allows 65,000)');
      }
      throw error;
    }
  }

  private place(d: Extract<EntryDecision, { action: 'write' }>): FileSink | undefined {
    for (const p of d.parents) this.mkdir(p, 0o755);
    const to = this.at(d.path);
    if (d.kind === 'dir') {
      this.mkdir(d.path, d.mode, d);
      return undefined;
    }
    if (d.kind === 'symlink') {
      fs.symlinkSync(d.target ?? '', to);
      const owner = this.chownTo(d.owner);
      if (owner) fs.lchownSync(to, owner.uid, owner.gid);
      if (d.mtimeMs !== undefined) fs.lutimesSync(to, secs(d.mtimeMs), secs(d.mtimeMs));
      this.manifest.push({ path: d.path, type: 'symlink', target: d.target ?? '' });
      this.symlinks += 1;
      return undefined;
    }
    if (d.kind === 'hardlink') {
      const target = this.manifest[this.fileIndex.get(d.linkTo ?? '') ?? -1];
      if (!target || target.type !== 'file') throw new DeployError('INTERNAL', `hard link ${d.path} to a file not staged`);
      fs.linkSync(this.at(d.linkTo ?? ''), to);
      const first = d.linkTo ?? '';
      const st = fs.statSync(to);
      let group = this.linkGroups.get(first);
      if (!group) {
        group = { paths: [first], stamp: stampOf(st) };
        this.linkGroups.set(first, group);
      }
      group.paths.push(d.path);
      group.stamp = stampOf(st);
      this.linkGroups.set(d.path, group);
      this.fileIndex.set(d.path, this.manifest.length);
      this.manifest.push({ ...target, path: d.path });
      this.files += 1;
      return undefined;
    }
    // O_EXCL and O_NOFOLLOW: even a checker bug could not make this write through a link or over a file.
    const fd = fs.openSync(to, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    this.open = new FileSink(this, d, fd);
    return this.open;
  }

  /** The archive's root entry (`.`, `./`); listed again, its last header wins, as a directory's does. */
  setRoot(d: Extract<EntryDecision, { action: 'root' }>): void {
    this.root = d;
  }

  /** The file being written, if any: closed by `abort` when extraction fails halfway. */
  open: FileSink | undefined;

  /** Records a file `sink` completed. */
  added(d: Extract<EntryDecision, { action: 'write' }>, entry: ManifestEntry & { type: 'file' }, st: fs.Stats): void {
    this.open = undefined;
    this.stamps.set(d.path, stampOf(st));
    this.fileIndex.set(d.path, this.manifest.length);
    this.manifest.push(entry);
    this.files += 1;
    this.bytes += entry.size;
  }

  /** Closes a file left open by a failure (the caller removes the stage). */
  abort(): void {
    this.open?.close();
    this.open = undefined;
  }

  /**
   * The stamps of hard-linked names, then directory modes, owners and times, last and deepest
   * first, so writing inside cannot change them again.
   */
  finish(): void {
    // Each group once (it is listed under each of its names), from its first name.
    for (const [rel, group] of this.linkGroups) {
      if (group.paths[0] !== rel) continue;
      for (const p of group.paths) this.stamps.set(p, group.stamp);
    }
    const order = [...this.dirs].sort((a, b) => b.path.split('/').length - a.path.split('/').length);
    for (const d of order) {
      const to = this.at(d.path);
      const owner = this.chownTo(d.owner);
      if (owner) fs.lchownSync(to, owner.uid, owner.gid);
      fs.chmodSync(to, d.mode);
      if (d.mtimeMs !== undefined) fs.utimesSync(to, secs(d.mtimeMs), secs(d.mtimeMs));
      this.manifest.push({ path: d.path, type: 'dir', mode: d.mode });
    }
    // The release directory last, with the archive's root mode (a zip has no root entry: 755): the
    // manifest's root mode is read from the directory afterwards, so it records this one.
    const root = this.root;
    const owner = this.chownTo(root?.owner);
    if (owner) fs.lchownSync(this.dir, owner.uid, owner.gid);
    fs.chmodSync(this.dir, root?.mode ?? 0o755);
    if (root?.mtimeMs !== undefined) fs.utimesSync(this.dir, secs(root.mtimeMs), secs(root.mtimeMs));
  }
}

async function* empty(): AsyncGenerator<Buffer> {}

/** Counts, hashes and hands on the artifact's raw bytes. */
async function* tap(chunks: AsyncIterable<Buffer>, hash: Hash, counter: { raw: number }, onRaw?: (chunk: Buffer) => Promise<void> | void): AsyncGenerator<Buffer> {
  for await (const chunk of chunks) {
    hash.update(chunk);
    counter.raw += chunk.length;
    if (onRaw) await onRaw(chunk);
    yield chunk;
  }
}

/** Decompressed chunks waiting for the main thread, at most, before zlib is paused (1 MiB). */
const GUNZIP_QUEUE = 4;

/**
 * Pushes the decompressed bytes to `push`; each compressed chunk is released once zlib has consumed
 * it. The bytes are handed on in the turn after zlib delivers them, not in its callback: zlib then
 * inflates the next chunk on the thread pool while this thread writes the files of the last one
 * (in the callback it would wait for `push` to return first), as tar and gzip overlap as two
 * processes. At most GUNZIP_QUEUE chunks wait; then zlib pauses until they are written.
 */
async function gunzipInto(raw: AsyncIterable<Buffer>, push: (chunk: Buffer) => void, stop: () => boolean): Promise<void> {
  // Each 256 KiB output chunk is one thread-pool job; 16 KiB ones cost a main-thread turn each.
  const gunzip = zlib.createGunzip({ chunkSize: 256 * 1024 });
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown): void => {
    failure ??= { error };
    gunzip.destroy();
  };
  const queue: Buffer[] = [];
  let scheduled = false;
  const drain = (): void => {
    scheduled = false;
    while (queue.length > 0 && !failure) {
      try {
        push(queue.shift() as Buffer);
      } catch (error) {
        fail(error);
      }
    }
    if (!failure && gunzip.isPaused()) gunzip.resume();
  };
  // zlib's output buffers are its own to give away: a chunk it delivered is never written into again.
  gunzip.on('data', (out: Buffer) => {
    if (failure) return;
    queue.push(out);
    if (queue.length >= GUNZIP_QUEUE) gunzip.pause();
    if (!scheduled) {
      scheduled = true;
      setImmediate(drain);
    }
  });
  const closed = new Promise<void>((resolve) => gunzip.once('close', resolve));
  gunzip.on('error', fail);
  let written = 0;
  try {
    for await (const chunk of raw) {
      if (failure || stop()) break;
      written += chunk.length;
      // The callback comes once zlib has consumed the chunk, whose buffer may then be read into again.
      await Promise.race([new Promise<void>((resolve) => gunzip.write(chunk, () => resolve())), closed]);
      // What zlib did not take follows the gzip member, and zlib skips it without a word when it is
      // zeros: bounded as the tar's own padding is (which the parser counts), or an endless answer is read for ever.
      if (written - gunzip.bytesWritten > MAX_TRAILING) {
        fail(trailingError());
        break;
      }
    }
    if (!failure && !stop()) {
      gunzip.end();
      await closed;
      // What zlib delivered last, still waiting for its turn.
      drain();
    }
  } finally {
    gunzip.destroy();
  }
  if (failure) throw failure.error;
}

/**
 * The most a zip may weigh for contents of `maxBytes`: its entries, compressed (deflate adds at
 * most a few bytes per 16 KiB), and their headers (a local and a central one per entry, about 100
 * bytes and twice its name), for which 64 MiB leaves room for hundreds of thousands of entries.
 */
export function zipSpoolLimit(maxBytes: number): number {
  return maxBytes + Math.ceil(maxBytes / 1024) + 64 * 1024 * 1024;
}

export function zipTooLarge(source: string, maxBytes: number): DeployError {
  return hostile(`the zip is larger than --max-bytes (${maxBytes} bytes of contents) allows: more than ${zipSpoolLimit(maxBytes)} bytes`, source, 'give a larger --max-bytes if the build is this large');
}

/**
 * Extracts `artifact` into `dest` (an empty directory the caller made and removes on failure).
 * Throws HOSTILE_ARCHIVE at the first entry the checker refuses; returns early on abort.
 */
export async function extractArtifact(artifact: Artifact, dest: string, options: ExtractOptions): Promise<ExtractResult> {
  const checker = new EntryChecker(options.limits);
  const stage = new Stage(dest, artifact.source);
  const hash = createHash('sha256');
  const counter = { raw: 0 };
  const onRaw = options.onRaw;
  const raw = tap(artifact.chunks, hash, counter, async (chunk) => {
    // A copy: the chunk's buffer is read into again while the signature check may still hold it.
    if (onRaw) await onRaw(Buffer.from(chunk));
    options.onProgress?.({ files: stage.files, bytes: stage.bytes, rawBytes: counter.raw });
  });
  const aborted = (): boolean => options.signal?.aborted === true;
  // Only the names a warning is about (`.git`, our config file): a million top-level files need no set.
  const watched = new Set<string>();
  /** Decides one entry and writes it; a file's content then goes to the sink returned. */
  const apply = (header: ArchiveHeader): FileSink | undefined => {
    if (aborted()) return undefined;
    const decision = checker.decide(header);
    if (decision.action === 'refuse') throw hostile(decision.problem, artifact.source, decision.hint);
    if (decision.action === 'skip') return undefined;
    if (decision.action === 'write') {
      const top = watchedTopOf(decision.path);
      if (top !== undefined) watched.add(top);
    }
    if (decision.action === 'root') {
      stage.setRoot(decision);
      return undefined;
    }
    return stage.write(decision);
  };

  try {
    if (artifact.format === 'zip') {
      let file = artifact.file;
      let spooled = false;
      try {
        if (file === undefined) {
          // A zip's directory is at its end: a URL is spooled to one file (not extracted) first,
          // on the root's filesystem: bounded by --max-bytes, or an endless answer fills the disk the live site uses.
          file = options.spool;
          spooled = true;
          // (A Content-Length beyond the limit was refused before the lock: ops/artifact.ts.)
          const limit = zipSpoolLimit(options.limits.maxBytes);
          // Opened before the pipeline, not by the stream: a download failing at once (a server
          // sending more than its Content-Length) rejected the pipeline while the stream's own open
          // was still on the thread pool, and that open made the file after the removal below had
          // run, an empty spool left in .tmp/ by a failed deploy.
          const fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
          await pipeline(
            Readable.from(raw),
            async function* (chunks: AsyncIterable<Buffer>) {
              for await (const chunk of chunks) {
                if (counter.raw > limit) throw zipTooLarge(artifact.source, options.limits.maxBytes);
                yield chunk;
              }
            },
            fs.createWriteStream(file, { fd }),
          );
          await extractZip(file, artifact.source, apply, aborted, undefined);
        } else {
          // Hash (and signature) read the file once in order while the zip is read from its end.
          await Promise.all([(async () => {
            for await (const _ of raw) void _;
          })(), extractZip(file, artifact.source, apply, aborted, artifact.identity)]);
        }
      } finally {
        if (spooled && file) fs.rmSync(file, { force: true });
      }
    } else {
      // Every chunk is parsed, hashed and written before the next is read into its buffer.
      const parser = new TarParser({ entry: apply });
      try {
        if (artifact.format === 'tar.gz') {
          await gunzipInto(raw, (chunk) => parser.push(chunk), aborted);
        } else {
          for await (const chunk of raw) {
            if (aborted()) break;
            parser.push(chunk);
          }
        }
        if (!aborted()) parser.finish();
      } catch (error) {
        // A gzip whose content is no tar fails on its first header, or ends before one is whole.
        if (artifact.format === 'tar.gz' && error instanceof TarFormatError && !parser.sawHeader) {
          throw new DeployError('INVALID_ARCHIVE', `${redactUrl(artifact.source)} is gzip-compressed, but what it holds is not a tar archive; nothing was deployed`, {
            cause: error,
            hint: 'pack the build with tar -czf dist.tar.gz -C dist . (a gzip of one file, or of a zip, cannot be deployed)',
          });
        }
        throw archiveError(error, artifact.source);
      }
    }
  } catch (error) {
    stage.abort();
    throw error;
  }
  stage.abort();
  if (aborted()) return result();
  stage.finish();
  options.onProgress?.({ files: stage.files, bytes: stage.bytes, rawBytes: counter.raw });
  return result();

  function result(): ExtractResult {
    return { files: stage.files, dirs: stage.manifest.filter((e) => e.type === 'dir').length, symlinks: stage.symlinks, bytes: stage.bytes, sha256: hash.digest('hex'), rawBytes: counter.raw, manifest: stage.manifest, stamps: stage.stamps, watchedTopNames: [...watched], singleTopDir: checker.singleTopDir(), strippedAway: checker.strippedAway() };
  }
}

/** A corrupt or truncated archive is invalid input; our own errors and I/O errors pass through. */
function archiveError(error: unknown, source: string): Error {
  const code = errnoOf(error);
  const corrupt = error instanceof TarFormatError || (code !== undefined && code.startsWith('Z_')) || code === 'ERR_STREAM_PREMATURE_CLOSE';
  if (!corrupt && (error instanceof DeployError || (error instanceof Error && code !== undefined))) return error;
  const reason = error instanceof Error ? error.message : String(error);
  const hint = (error instanceof TarFormatError ? error.hint : undefined) ?? 'the artifact may be truncated or corrupt: build or download it again';
  return new DeployError('INVALID_ARCHIVE', `${redactUrl(source)} is not a readable archive: ${reason}`, { cause: error, hint });
}

const S_IFMT = 0o170000;
/** The longest symlink target a release may hold (Linux PATH_MAX without its NUL); a longer one is never read. */
const SYMLINK_MAX = 4095;
const ZIP_TYPES: Record<number, HeaderType> = { 0o040000: 'dir', 0o100000: 'file', 0o120000: 'symlink', 0o020000: 'character device', 0o060000: 'block device', 0o010000: 'FIFO', 0o140000: 'socket' };

/**
 * An entry's name, decoded by us (yauzl runs with decodeStrings off, so it hands us the bytes).
 * The spec says CP437 unless the UTF-8 flag is set or an Info-ZIP Unicode path field matches, but
 * Info-ZIP on Linux and macOS store the name's own bytes, UTF-8 there, with neither: decoded as
 * CP437, `ünï/é.txt` went live as `├╝n├»/├⌐.txt` (and a link to `é.txt` pointed at nothing). So a
 * name that is valid UTF-8 is read as UTF-8; CP437 is left for names that are not (old DOS and
 * Windows tools). With the flag set, bytes that are not UTF-8 become U+FFFD and are refused.
 */
function zipName(entry: yauzl.Entry): string {
  const raw = entry.fileName as unknown as Buffer;
  const flags = entry.generalPurposeBitFlag | (isUtf8(raw) ? 0x800 : 0);
  // strictFileNames: a backslash stays one, and is refused below, never turned into a separator.
  return (zipLibrary as unknown as YauzlNames).getFileNameLowLevel(flags, raw, entry.extraFields, true);
}

/** yauzl 3 exports its name decoder (CP437 or UTF-8, and the Unicode path field); @types/yauzl does not list it. */
interface YauzlNames {
  getFileNameLowLevel(generalPurposeBitFlag: number, fileNameBuffer: Buffer, extraFields: { id: number; data: Buffer }[], strictFileNames: boolean): string;
}

function zipHeader(entry: yauzl.Entry, name: string, source: string): ArchiveHeader {
  const raw = entry.fileName as unknown as Buffer;
  // Bytes that are not UTF-8 under the UTF-8 flag: decoded to U+FFFD (and refused), shown as \xNN.
  const shown = name.includes('\uFFFD') && !isUtf8(raw) ? { rawName: raw } : {};
  // The checks yauzl makes only on names it decodes: a backslash is a Windows separator (or a .NET
  // bug's); `..` and absolute paths are the checker's. A colon is an ordinary character here.
  if (name.includes('\\')) throw hostile(`entry ${shownName({ name, ...shown })} holds a backslash (a Windows path separator)`, source);
  // Unix mode in the high half of the external attributes when the zip was made on Unix (3).
  const unix = entry.versionMadeBy >> 8 === 3 ? entry.externalFileAttributes >>> 16 : 0;
  const kind = zipKind(name, unix);
  if ('problem' in kind) throw hostile(`entry ${shownName({ name, ...shown })} ${kind.problem}`, source, 'rebuild the zip with a standard tool (zip, Python\'s zipfile, 7-Zip): a directory\'s name ends in "/", no other does');
  // Permission bits count when the entry has Unix attributes, type bits or not (Python's
  // `external_attr = 0o755 << 16`, and writestr's 0o600, carry none): as unzip applies them, and
  // 0000 with a type included, as a tar's. All zero is a writer that filled in nothing: the defaults.
  const mode = unix !== 0 ? unix & 0o7777 : kind.type === 'dir' ? 0o755 : 0o644;
  return { name, ...shown, type: kind.type, mode, size: entry.uncompressedSize, mtimeMs: entry.getLastModDate().getTime() };
}

/**
 * An entry's kind: a name ending in `/` is a directory, as every zip reader agrees, whatever its
 * type bits say (but symlink or special-file bits there contradict the name: refused). Other
 * names take their type bits, none being a file; a directory's bits on a name without the slash
 * are refused: unzip and Python's zipfile make a file of it, libarchive (bsdtar) a directory, so
 * what goes live would depend on the tool that reads the zip.
 */
function zipKind(name: string, unix: number): { type: HeaderType } | { problem: string } {
  const typed = unix & S_IFMT ? (ZIP_TYPES[unix & S_IFMT] ?? 'unknown') : undefined;
  if (name.endsWith('/')) {
    if (typed === undefined || typed === 'dir' || typed === 'file') return { type: 'dir' };
    return { problem: `is named as a directory (a trailing "/") but its mode says ${typed === 'unknown' ? 'a file of an unknown type' : typed}` };
  }
  if (typed === 'dir') return { problem: 'has a directory\'s mode but a name without the trailing "/" (zip readers disagree on what it is)' };
  return { type: typed ?? 'file' };
}

/**
 * yauzl, loaded when a zip is opened: it loads zlib and a few modules of its own at start-up,
 * milliseconds that a deploy of a directory or a tar would pay for nothing.
 */
let zipLibrary: (typeof yauzl)['default'] | undefined;

/**
 * Opens the zip on a descriptor of ours (yauzl's own open would hide it), checked to be the
 * artifact as first opened; `zip.close()` closes it. Not closed on 'end' (no autoClose): the
 * caller checks it once more after the last entry.
 */
async function openZip(file: string, identity: FileIdentity | undefined, source: string): Promise<{ zip: yauzl.ZipFile; fd: number }> {
  const lib = (zipLibrary ??= (await import('yauzl')).default);
  const fd = await new Promise<number>((resolve, reject) => fs.open(file, 'r', (error, n) => (error ? reject(error) : resolve(n))));
  try {
    assertSameArtifact(fd, identity, source);
    const zip = await new Promise<yauzl.ZipFile>((resolve, reject) => {
      lib.fromFd(fd, { lazyEntries: true, autoClose: false, decodeStrings: false, validateEntrySizes: true }, (error, z) => (error ? reject(error) : resolve(z)));
    });
    return { zip, fd };
  } catch (error) {
    fs.closeSync(fd);
    throw error;
  }
}

/** yauzl 3's local file header reader and low-level stream, which @types/yauzl does not list. */
interface LocalFileHeader {
  fileDataStart: number;
  generalPurposeBitFlag: number;
  compressionMethod: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  fileName: Buffer;
  extraField: Buffer;
}
interface YauzlLowLevel {
  readLocalFileHeader(entry: yauzl.Entry, options: { minimal: false }, callback: (error: Error | null, header: LocalFileHeader) => void): void;
  openReadStreamLowLevel(fileDataStart: number, compressedSize: number, relativeStart: number, relativeEnd: number, decompress: boolean, uncompressedSize: number, callback: (error: Error | null, stream: Readable) => void): void;
}

function localHeader(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<LocalFileHeader> {
  return new Promise((resolve, reject) => (zip as unknown as YauzlLowLevel).readLocalFileHeader(entry, { minimal: false }, (error, header) => (error ? reject(error) : resolve(header))));
}

/**
 * An entry's data. Stored or deflated and not encrypted (nearly every zip): read from where the
 * local header already read says it starts. Anything else goes through openReadStream, which
 * refuses encryption and other methods in yauzl's words.
 */
function entryStream(zip: yauzl.ZipFile, entry: yauzl.Entry, local: LocalFileHeader): Promise<Readable> {
  return new Promise((resolve, reject) => {
    const done = (error: Error | null, stream: Readable): void => (error ? reject(error) : resolve(stream));
    const plain = (entry.compressionMethod === 0 || entry.compressionMethod === 8) && !entry.isEncrypted();
    if (plain) (zip as unknown as YauzlLowLevel).openReadStreamLowLevel(local.fileDataStart, entry.compressedSize, 0, entry.compressedSize, entry.compressionMethod === 8, entry.uncompressedSize, done);
    else zip.openReadStream(entry, done);
  });
}

const ZIP_METHODS: Record<number, string> = { 0: 'stored', 8: 'deflate', 9: 'deflate64', 12: 'bzip2', 14: 'LZMA', 93: 'Zstandard', 95: 'XZ', 99: 'AES' };
const method = (m: number): string => `${m} (${ZIP_METHODS[m] ?? 'unknown'})`;
/** A size or CRC field whose value is in the ZIP64 extra field instead. */
const ZIP64_MARK = 0xffffffff;

/**
 * How an entry's local header contradicts its central directory record, if it does. yauzl reads
 * the central directory only, but a streaming extractor or a scanner reads local headers: were
 * they to differ, such a tool would see another archive than the one that goes live. As Python's
 * zipfile refuses a name that differs, and unzip -t reports it: name, method and encryption, and
 * the CRC-32 and sizes unless the local header defers them to a data descriptor (flag bit 3) or
 * to its ZIP64 extra field.
 */
function localMismatch(entry: yauzl.Entry, name: string, local: LocalFileHeader): string | undefined {
  const central = entry.fileName as unknown as Buffer;
  // The name each header gives, its own Info-ZIP Unicode Path field (0x7075) included: one only in
  // the central directory renamed the entry to a name no local header shows (plain.txt going live
  // as renamed.html), while one in both, matching, is how Info-ZIP stores a non-ASCII name.
  const flags = local.generalPurposeBitFlag | (isUtf8(local.fileName) ? 0x800 : 0);
  const localName = (zipLibrary as unknown as YauzlNames).getFileNameLowLevel(flags, local.fileName, extraFieldsOf(local.extraField), true);
  if (!local.fileName.equals(central) || localName !== name) {
    const shown = shownName({ name: localName, ...(isUtf8(local.fileName) ? {} : { rawName: local.fileName }) });
    return local.fileName.equals(central) ? `names ${shown} (an Info-ZIP Unicode Path field in one header alone renames it)` : `names ${shown}`;
  }
  if (local.compressionMethod !== entry.compressionMethod) return `says compression method ${method(local.compressionMethod)}, the central directory ${method(entry.compressionMethod)}`;
  const encrypted = (local.generalPurposeBitFlag & 1) !== 0;
  if (encrypted !== entry.isEncrypted()) return encrypted ? 'says the entry is encrypted, the central directory that it is not' : 'says the entry is not encrypted, the central directory that it is';
  if (local.generalPurposeBitFlag & 0x8) return undefined;
  if (local.crc32 !== entry.crc32) return `says CRC-32 ${local.crc32.toString(16).padStart(8, '0')}, the central directory ${entry.crc32.toString(16).padStart(8, '0')}`;
  if (local.uncompressedSize !== ZIP64_MARK && local.uncompressedSize !== entry.uncompressedSize) return `says ${local.uncompressedSize} bytes uncompressed, the central directory ${entry.uncompressedSize}`;
  if (local.compressedSize !== ZIP64_MARK && local.compressedSize !== entry.compressedSize) return `says ${local.compressedSize} bytes compressed, the central directory ${entry.compressedSize}`;
  return undefined;
}

/** A header's extra fields (id, data); a field that overruns the rest is left out, as yauzl leaves out a short one. */
function extraFieldsOf(bytes: Buffer): { id: number; data: Buffer }[] {
  const fields: { id: number; data: Buffer }[] = [];
  for (let at = 0; at + 4 <= bytes.length; ) {
    const end = at + 4 + bytes.readUInt16LE(at + 2);
    if (end > bytes.length) break;
    fields.push({ id: bytes.readUInt16LE(at), data: bytes.subarray(at + 4, end) });
    at = end;
  }
  return fields;
}

let crc32Impl: ((data: Buffer, value?: number) => number) | undefined;
/**
 * CRC-32 (zip's), continued from `value`: node:zlib's where Node has it (20.15 and later; absent
 * before), else by table. Chosen on first use, not at load: looking at zlib loads it, which a
 * directory deploy never needs.
 */
const crc32 = (data: Buffer, value?: number): number => (crc32Impl ??= typeof zlib.crc32 === 'function' ? zlib.crc32 : crc32Table)(data, value);

let CRC_TABLE: Uint32Array | undefined;
/** Hand-written only for Node 20 releases before 20.15, which have no zlib.crc32. */
export function crc32Table(data: Buffer, value = 0): number {
  CRC_TABLE ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = ~value >>> 0;
  for (const byte of data) c = (CRC_TABLE[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
  return ~c >>> 0;
}

/** Reads a symlink's target (the entry's content), refusing an oversized one before reading it. */
async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(chunk);
  return Buffer.concat(parts);
}

/** yauzl 3's ZipFile fields that @types/yauzl does not list: where the central directory starts (until the first entry is read: the cursor then moves on), and the file's size. */
interface YauzlCursor {
  readEntryCursor: number;
  fileSize: number;
}

/** The central directory's records, read in 1 MiB chunks (yauzl reads each with two reads of its own, 100 µs an entry here). */
async function walkCentral(fd: number, zip: yauzl.ZipFile, centralStart: number, source: string, visit: (record: ZipCentralRecord, index: number) => boolean | void): Promise<void> {
  const { fileSize } = zip as unknown as YauzlCursor;
  const chunk = Buffer.alloc(1024 * 1024);
  let held = 0;
  let position = centralStart;
  let at = 0;
  for (let index = 0; index < zip.entryCount; ) {
    const record = zipCentralRecord(chunk.subarray(0, held), at);
    if (record === undefined) {
      // Keep the part record, read on after it.
      chunk.copy(chunk, 0, at, held);
      held -= at;
      at = 0;
      const want = Math.min(chunk.length - held, fileSize - position);
      const got = want > 0 ? await new Promise<number>((resolve, reject) => fs.read(fd, chunk, held, want, position, (error, n) => (error ? reject(error) : resolve(n)))) : 0;
      if (got === 0) throw zipError(new Error(`the central directory ends after ${index} of its ${zip.entryCount} entries`), source);
      held += got;
      position += got;
      continue;
    }
    if ('problem' in record) throw zipError(new Error(record.problem), source);
    // The record's name and extra field are views of the chunk, read into again: used during the visit only.
    if (visit(record, index) === true) return;
    at += record.length;
    index += 1;
  }
}

/** Where each entry's bytes lie, every two checked apart, and apart from the central directory; or the refusal naming them. */
interface ZipSpans {
  starts: Float64Array;
  ends: Float64Array;
  next: Int32Array;
  centralStart: number;
}

async function zipSpans(fd: number, zip: yauzl.ZipFile, source: string): Promise<ZipSpans> {
  const { readEntryCursor: centralStart, fileSize } = zip as unknown as YauzlCursor;
  // yauzl's own fields: a version without them must fail here, not check nothing.
  if (!Number.isSafeInteger(centralStart) || !Number.isSafeInteger(fileSize)) throw new Error('yauzl no longer says where the central directory starts (readEntryCursor)');
  // Info-ZIP's zip 3.0 writing ZIP64 to a pipe (zip -fz - .) leaves the 32-bit offset 0xFFFFFFFF with no ZIP64 end record: every reader fails on it.
  if (centralStart >= fileSize && zip.entryCount > 0) {
    throw new DeployError('INVALID_ARCHIVE', `${redactUrl(source)} is not a readable zip: its end record puts the central directory at byte ${centralStart}, past the end of the file (${fileSize} bytes)`, {
      hint: 'the artifact may be truncated or corrupt; zip -fz writing to a pipe (zip -fz - …) makes such a zip: write the zip to a file (zip -r dist.zip .)',
    });
  }
  // A record takes 46 bytes at least: an entry count the file cannot hold is refused, not allocated.
  if (zip.entryCount > (fileSize - centralStart) / 46) throw zipError(new Error(`the zip says it has ${zip.entryCount} entries, more than its central directory can hold`), source);
  const starts = new Float64Array(zip.entryCount);
  const ends = new Float64Array(zip.entryCount);
  await walkCentral(fd, zip, centralStart, source, (record, i) => {
    starts[i] = record.localOffset;
    ends[i] = zipEntryLeastEnd(record);
  });
  const layout = zipLayout(starts, ends, centralStart);
  if ('next' in layout) return { starts, ends, next: layout.next, centralStart };
  throw await overlapError(fd, zip, source, 'overlap' in layout ? layout.overlap : [layout.central, -1], { starts, ends, centralStart });
}

/** The refusal of entries `a` and `b` that share bytes (`b` -1: `a` runs into the central directory), named as the extraction would name them. */
async function overlapError(fd: number, zip: yauzl.ZipFile, source: string, [a, b]: [number, number], spans: { starts: Float64Array; ends: Float64Array; centralStart: number }, end?: number): Promise<DeployError> {
  const names = new Map<number, string>();
  await walkCentral(fd, zip, spans.centralStart, source, (record, i) => {
    if (i === a || i === b) names.set(i, shownName({ name: (zipLibrary as unknown as YauzlNames).getFileNameLowLevel(record.flags, record.name, extraFieldsOf(record.extra), true), ...(isUtf8(record.name) ? {} : { rawName: record.name }) }));
    return names.size === (b < 0 ? 1 : 2);
  });
  const hint = "rebuild the zip with a standard tool (zip, Python's zipfile, 7-Zip): each entry's bytes (its local header, data and data descriptor) are its own: entries that share bytes are how a zip bomb expands one kernel many times";
  const [nameA, nameB] = [names.get(a) ?? `#${a + 1}`, names.get(b) ?? `#${b + 1}`];
  const ends = end ?? spans.ends[a];
  if (b < 0) {
    const where = (spans.starts[a] as number) >= spans.centralStart ? 'lies in' : 'runs into';
    return hostile(`entry ${nameA} ${where} the zip's central directory (its bytes end at byte ${ends}, the directory starts at byte ${spans.centralStart}), as in a zip bomb`, source, hint);
  }
  return hostile(`entries ${nameA} and ${nameB} overlap in the zip (the first's bytes run to byte ${ends}, the second's start at byte ${spans.starts[b]}), as in a zip bomb`, source, hint);
}

const DESCRIPTOR_SIGNATURE = 0x08074b50;

/**
 * Where entry `index`'s bytes end, now that its local header is read (its extra field's length)
 * and its data descriptor looked at: refused if past where the next entry starts.
 */
async function checkEntryEnd(fd: number, zip: yauzl.ZipFile, source: string, spans: ZipSpans, index: number, entry: yauzl.Entry, local: LocalFileHeader): Promise<void> {
  // The central directory as we walked it is the one yauzl reads: one reading of it for both checks.
  if (spans.starts[index] !== entry.relativeOffsetOfLocalHeader || spans.ends[index] !== zipEntryLeastEnd({ localOffset: entry.relativeOffsetOfLocalHeader, compressedSize: entry.compressedSize, name: entry.fileName as unknown as Buffer })) {
    throw zipError(new Error(`entry ${index + 1} of the central directory reads differently twice`), source);
  }
  const dataEnd = local.fileDataStart + entry.compressedSize;
  let end = dataEnd;
  if (local.generalPurposeBitFlag & 0x8) {
    const head = Buffer.alloc(4);
    const got = fs.readSync(fd, head, 0, 4, dataEnd);
    const zip64 = extraFieldsOf(local.extraField).some((f) => f.id === 0x0001);
    end += zipDescriptorLength(local.generalPurposeBitFlag, zip64, got === 4 && head.readUInt32LE(0) === DESCRIPTOR_SIGNATURE);
  }
  const next = spans.next[index] as number;
  if (end > (next < 0 ? spans.centralStart : (spans.starts[next] as number))) throw await overlapError(fd, zip, source, [index, next], spans, end);
}

async function extractZip(file: string, source: string, apply: (header: ArchiveHeader) => FileSink | undefined, aborted: () => boolean, identity: FileIdentity | undefined): Promise<void> {
  let zip: yauzl.ZipFile;
  let fd: number;
  try {
    ({ zip, fd } = await openZip(file, identity, source));
  } catch (error) {
    throw zipError(error, source);
  }
  try {
    // Before any entry is written: entries that share bytes are refused whole.
    const spans = await zipSpans(fd, zip, source);
    let index = 0;
    await new Promise<void>((resolve, reject) => {
      zip.on('error', (error: unknown) => reject(zipError(error, source)));
      zip.on('end', () => resolve());
      zip.on('entry', (entry: yauzl.Entry) => {
        const at = index++;
        void (async () => {
          const header = zipHeader(entry, zipName(entry), source);
          const local = await localHeader(zip, entry);
          const mismatch = localMismatch(entry, header.name, local);
          if (mismatch !== undefined) {
            throw hostile(`the zip's local header for ${shownName(header)} ${mismatch}`, source, "rebuild the zip with a standard tool (zip, Python's zipfile, 7-Zip): its local headers must agree with its central directory");
          }
          await checkEntryEnd(fd, zip, source, spans, at, entry, local);
          if (header.type === 'symlink' && entry.uncompressedSize > SYMLINK_MAX) {
            throw hostile(`entry ${shownName(header)} is a symlink with a target longer than ${SYMLINK_MAX} bytes`, source);
          }
          const needsData = header.type === 'file' || header.type === 'symlink';
          const stream = needsData ? await entryStream(zip, entry, local) : undefined;
          const target = header.type === 'symlink' && stream ? await collect(stream) : undefined;
          if (header.type === 'symlink') header.linkname = target?.toString('utf8') ?? '';
          if (aborted()) {
            stream?.destroy();
            resolve();
            return;
          }
          const sink = apply(header);
          // yauzl checks sizes, not the CRC-32: a corrupt entry would go live, hashed as it is into the manifest.
          let crc = 0;
          try {
            for await (const chunk of header.type === 'file' && stream ? (stream as AsyncIterable<Buffer>) : empty()) {
              crc = crc32(chunk, crc);
              sink?.data(chunk);
            }
          } catch (error) {
            // zlib's inflate errors (Z_DATA_ERROR and the like): the entry's data is corrupt.
            if (!errnoOf(error)?.startsWith('Z_')) throw error;
            throw new DeployError('INVALID_ARCHIVE', `${redactUrl(source)} is not a readable zip: entry ${shownName(header)} holds corrupt compressed data (${(error as Error).message})`, { cause: error, hint: 'the artifact may be truncated or corrupt: build or download it again' });
          }
          if (target) crc = crc32(target);
          if ((header.type === 'file' || target) && crc !== entry.crc32) {
            throw new DeployError('INVALID_ARCHIVE', `${redactUrl(source)} is not a readable zip: entry ${shownName(header)} fails its CRC-32 check (the data is corrupt)`, { hint: 'the artifact may be truncated or corrupt: build or download it again' });
          }
          sink?.end();
          zip.readEntry();
        })().catch((error: unknown) => reject(zipError(error, source)));
      });
      zip.readEntry();
    });
    // The last entry was read from the artifact as first opened, unchanged until now.
    if (!aborted()) assertSameArtifact(fd, identity, source);
  } finally {
    if (zip.isOpen) zip.close();
  }
}

/** As archiveError: a corrupt zip (yauzl's errors, zlib's Z_* codes) is invalid input; our own errors and I/O errors pass through. */
function zipError(error: unknown, source: string): Error {
  const code = errnoOf(error);
  if (error instanceof DeployError || (error instanceof Error && code !== undefined && !code.startsWith('Z_'))) return error;
  // yauzl's texts can quote raw bytes (a signature, a name): control characters shown as \uXXXX.
  // eslint-disable-next-line no-control-regex
  const reason = (error instanceof Error ? error.message : String(error)).replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (/encrypted/i.test(reason)) return new DeployError('INVALID_ARCHIVE', `${redactUrl(source)} holds an encrypted entry, which cannot be deployed`, { cause: error, hint: 'archive the build without a password' });
  return new DeployError('INVALID_ARCHIVE', `${redactUrl(source)} is not a readable zip: ${reason}`, { cause: error, hint: 'the artifact may be truncated or corrupt: build or download it again' });
}
