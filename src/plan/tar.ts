/**
 * The tar format read incrementally: 512-byte headers (ustar, GNU long names, PAX records) and the
 * entries' data, from chunks the caller lends for the duration of one `push`. Pure: bytes in, calls
 * to the caller's handler out; nothing of a chunk is kept once `push` returns (a header split across
 * two chunks is copied), so the caller can read the next chunk into the same buffer. Hand-written
 * because tar-stream keeps views of its input chunks in its entry streams for as long as it likes,
 * which forces a fresh buffer per read, and reading and hashing into fresh memory costs more CPU
 * than into a reused buffer (the artifact benchmark measures both; docs/benchmarks.md).
 */
import { isUtf8 } from 'node:buffer';
import type { HeaderType } from './archive.ts';

const BLOCK = 512;
/** PAX and GNU long-name records larger than this are refused (tar-stream's limit too). */
export const MAX_LONG_HEADER = 4 * 1024 * 1024;
/**
 * The most that may follow the end-of-archive block: tar pads an archive to a whole record (10 KiB
 * by default; `-b 2048`, 1 MiB, is as large as blocking factors go in practice), so more is not
 * padding. Unbounded, a server that sends zeros after the archive and never ends (no
 * Content-Length) kept a deploy reading, its root locked, for ever: no read ever stalls, and
 * padding is no content for --max-bytes.
 */
export const MAX_TRAILING = 1024 * 1024;

/** The refusal once more than MAX_TRAILING bytes followed the end of the archive. */
export function trailingError(): TarFormatError {
  return new TarFormatError(`more than ${MAX_TRAILING} bytes (1 MiB) follow the end of the archive`, 'the archive is followed by data that is not tar padding: check what the server sends after it (a body with no end?), or rebuild the artifact');
}

export interface TarHeader {
  name: string;
  /** The name's bytes when they are not UTF-8 (`name` then holds U+FFFD), for messages to show. */
  rawName?: Buffer;
  type: HeaderType;
  linkname?: string;
  mode: number;
  size: number;
  uid: number;
  gid: number;
  mtimeMs: number;
}

/** A malformed archive (as opposed to a hostile entry, which the entry checker refuses). */
export class TarFormatError extends Error {
  /** What to do instead, when the archive is not corrupt but uses what is not supported. */
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.hint = hint;
  }
}

type Raw = { kind: 'zero' } | { kind: 'entry'; flag: string; header: TarHeader };

function cBytes(block: Uint8Array, start: number, length: number): Buffer {
  let end = start;
  while (end < start + length && block[end] !== 0) end++;
  return Buffer.from(block.buffer, block.byteOffset + start, end - start);
}

function cString(block: Uint8Array, start: number, length: number): string {
  return cBytes(block, start, length).toString('utf8');
}

/** A name's text, and a copy of its bytes when they are not UTF-8 (the text then holds U+FFFD). */
function nameOf(bytes: Buffer): { name: string; rawName?: Buffer } {
  return isUtf8(bytes) ? { name: bytes.toString('utf8') } : { name: bytes.toString('utf8'), rawName: Buffer.from(bytes) };
}

/** An octal field (NUL/space padded), or GNU base-256 when the top bit of its first byte is set. */
function number(block: Uint8Array, start: number, length: number, signed = false): number {
  const first = block[start] ?? 0;
  if (first & 0x80) {
    // Base-256, big-endian two's complement. Negative values are nonsense for every field read
    // here but a time (GNU tar writes a file dated before 1970 so).
    if (first & 0x40) {
      if (!signed) throw new TarFormatError('a numeric header field is negative');
      let inverted = 0;
      for (let i = start; i < start + length; i++) inverted = inverted * 256 + (~(block[i] ?? 0) & 0xff);
      if (!Number.isSafeInteger(inverted)) throw new TarFormatError('a numeric header field is too large');
      return -(inverted + 1);
    }
    let n = first & 0x3f;
    for (let i = start + 1; i < start + length; i++) n = n * 256 + (block[i] ?? 0);
    if (!Number.isSafeInteger(n)) throw new TarFormatError('a numeric header field is too large');
    return n;
  }
  let i = start;
  const end = start + length;
  while (i < end && block[i] === 0x20) i++;
  // GNU tar, BusyBox and Python end a field at its first NUL: digits after one would be read by no
  // other reader (a size read so would take other bytes as data than they do).
  if (block[i] === 0) {
    for (let j = i; j < end; j++) if (block[j] !== 0 && block[j] !== 0x20) throw new TarFormatError('a numeric header field has digits after a NUL', 'tar readers disagree on its value (GNU tar, BusyBox and Python read 0): rebuild the artifact with tar, bsdtar or Python\'s tarfile');
    return 0;
  }
  let n = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i] ?? 0;
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw new TarFormatError('a numeric header field is not octal');
    n = n * 8 + (c - 0x30);
    digits++;
  }
  return digits === 0 ? 0 : n;
}

function checksumOk(block: Uint8Array): boolean {
  let sum = 8 * 0x20;
  for (let i = 0; i < BLOCK; i++) if (i < 148 || i >= 156) sum += block[i] ?? 0;
  return sum === number(block, 148, 8);
}

/**
 * A pre-POSIX (v7) tar header: no magic (zeros where ustar has it), a name, and a checksum that
 * holds. Its fields are ustar's first ones, so it decodes as ustar without the prefix.
 */
export function isV7Header(block: Uint8Array): boolean {
  if (block.length < BLOCK || block[0] === 0) return false;
  for (let i = 257; i < 265; i++) if (block[i] !== 0) return false;
  return checksumOk(block);
}

// 'D': GNU's dumpdir (tar -g, incremental): a directory whose data lists its contents at the time.
const TYPES: Record<string, HeaderType> = { '0': 'file', '\0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'character device', '4': 'block device', '5': 'dir', '6': 'FIFO', D: 'dir' };

/** One 512-byte header block: the end-of-archive zero block, or an entry (PAX/GNU records not yet applied). */
export function decodeHeader(block: Uint8Array): Raw {
  if (block.every((b) => b === 0)) return { kind: 'zero' };
  const magic = cString(block, 257, 6);
  const posix = magic === 'ustar';
  const gnu = block[257] === 0x75 && cString(block, 257, 8) === 'ustar  ';
  if (!posix && !gnu && !isV7Header(block)) throw new TarFormatError('a header is not ustar, GNU or v7 tar (unknown format)');
  if (!checksumOk(block)) throw new TarFormatError('a header checksum does not match');
  const flag = String.fromCharCode(block[156] ?? 0);
  let nameBytes = cBytes(block, 0, 100);
  // POSIX ustar splits long names into prefix and name; GNU keeps times where the prefix would be.
  if (posix) {
    const prefix = cBytes(block, 345, 155);
    if (prefix.length > 0) nameBytes = Buffer.concat([prefix, Buffer.from('/'), nameBytes]);
  }
  const { name, rawName } = nameOf(nameBytes);
  let type: HeaderType = TYPES[flag] ?? 'unknown';
  // Pre-POSIX tars mark a directory by the trailing slash of a regular entry.
  if (type === 'file' && flag !== '7' && name.endsWith('/')) type = 'dir';
  const linkname = cString(block, 157, 100);
  return {
    kind: 'entry',
    flag,
    header: {
      name,
      ...(rawName !== undefined ? { rawName } : {}),
      type,
      ...(linkname !== '' ? { linkname } : {}),
      mode: number(block, 100, 8) & 0o7777,
      uid: number(block, 108, 8),
      gid: number(block, 116, 8),
      size: number(block, 124, 12),
      mtimeMs: number(block, 136, 12, true) * 1000,
    },
  };
}

/**
 * PAX extended header records: `<length> <key>=<value>\n`, lengths in bytes. A value whose bytes
 * are not UTF-8 is decoded with U+FFFD; `raw`, if given, receives a copy of its bytes.
 */
export function decodePax(bytes: Uint8Array, raw?: Map<string, Buffer>): Map<string, string> {
  const out = new Map<string, string>();
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (at < buf.length && buf[at] !== 0) {
    const space = buf.indexOf(0x20, at);
    const length = Number(buf.toString('latin1', at, space));
    if (space < 0 || !Number.isSafeInteger(length) || length <= space - at || at + length > buf.length) throw new TarFormatError('a PAX header record is malformed');
    const record = buf.toString('utf8', space + 1, at + length - 1);
    const eq = record.indexOf('=');
    if (eq < 0) throw new TarFormatError('a PAX header record has no "="');
    out.set(record.slice(0, eq), record.slice(eq + 1));
    if (raw) {
      const bytesOf = buf.subarray(space + 1, at + length - 1);
      const value = bytesOf.subarray(bytesOf.indexOf(0x3d) + 1);
      if (!isUtf8(value)) raw.set(record.slice(0, eq), Buffer.from(value));
    }
    at += length;
  }
  return out;
}

function applyPax(header: TarHeader, pax: Map<string, string>, raw: Map<string, Buffer> | undefined): void {
  const path = pax.get('path');
  if (path !== undefined) {
    header.name = path;
    const bytes = raw?.get('path');
    if (bytes !== undefined) header.rawName = bytes;
    else delete header.rawName;
  }
  const link = pax.get('linkpath');
  if (link !== undefined) header.linkname = link;
  const whole = (key: string): number | undefined => {
    const v = pax.get(key);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new TarFormatError(`the PAX ${key} is not a whole number`);
    return Number(v);
  };
  header.size = whole('size') ?? header.size;
  header.uid = whole('uid') ?? header.uid;
  header.gid = whole('gid') ?? header.gid;
  const mtime = pax.get('mtime');
  if (mtime !== undefined && /^-?\d+(\.\d+)?$/.test(mtime)) header.mtimeMs = Math.round(Number(mtime) * 1000);
}

/**
 * An entry named (or linked) twice over, the two names differing: readers resolve it differently
 * (GNU tar takes a PAX path over a GNU long name, BusyBox the later one, Python the first PAX
 * header of two), so another tool would list it under another name than the one deployed.
 */
function namedTwice(what: string): TarFormatError {
  return new TarFormatError(what, 'tar readers disagree on which one counts, so another tool would list the entry otherwise than it is deployed: rebuild the artifact with one tar (GNU tar, bsdtar or Python\'s tarfile each write one)');
}

/** Whether two optional byte strings are the same (both absent included). */
function sameBytes(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

const ZEROS = Buffer.alloc(64 * 1024);

function isZero(bytes: Buffer): boolean {
  for (let at = 0; at < bytes.length; at += ZEROS.length) {
    const part = bytes.subarray(at, at + ZEROS.length);
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
}

/** What receives a regular file's bytes; the bytes are lent for the call only. */
export interface TarDataSink {
  data(bytes: Buffer): void;
  end(): void;
}

export interface TarHandler {
  /** An entry's header; a file's data goes to the returned sink, or is skipped without one. */
  entry(header: TarHeader): TarDataSink | undefined;
}

type State = { at: 'header' } | { at: 'long'; flag: string; need: number; parts: Buffer[]; have: number } | { at: 'data'; left: number; size: number; sink: TarDataSink | undefined } | { at: 'pad'; left: number } | { at: 'end'; after: number };

/** Frames a tar stream pushed chunk by chunk; `finish` checks that it ended between entries. */
export class TarParser {
  private state: State = { at: 'header' };
  private readonly partial = Buffer.alloc(BLOCK);
  private partialLength = 0;
  private pax: Map<string, string> | undefined;
  private globalPax: Map<string, string> | undefined;
  /** The bytes of the PAX values above that are not UTF-8, for messages. */
  private paxRaw: Map<string, Buffer> | undefined;
  private globalPaxRaw: Map<string, Buffer> | undefined;
  private longName: { name: string; rawName?: Buffer } | undefined;
  private longLink: string | undefined;
  private readonly handler: TarHandler;

  constructor(handler: TarHandler) {
    this.handler = handler;
  }

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      const s = this.state;
      switch (s.at) {
        case 'end': {
          // Only the zero padding may follow: a second archive appended would otherwise be dropped unseen.
          const rest = chunk.subarray(off);
          if (!isZero(rest)) throw new TarFormatError('data follows the end of the archive (archives joined end to end?)');
          s.after += rest.length;
          if (s.after > MAX_TRAILING) throw trailingError();
          return;
        }
        case 'header': {
          let block: Buffer;
          if (this.partialLength === 0 && chunk.length - off >= BLOCK) {
            block = chunk.subarray(off, off + BLOCK);
            off += BLOCK;
          } else {
            const take = Math.min(BLOCK - this.partialLength, chunk.length - off);
            chunk.copy(this.partial, this.partialLength, off, off + take);
            this.partialLength += take;
            off += take;
            if (this.partialLength < BLOCK) return;
            this.partialLength = 0;
            block = this.partial;
          }
          this.header(block);
          break;
        }
        case 'long': {
          const take = Math.min(s.need - s.have, chunk.length - off);
          // Copied: the chunk is only lent.
          s.parts.push(Buffer.from(chunk.subarray(off, off + take)));
          s.have += take;
          off += take;
          if (s.have === s.need) this.long(s.flag, Buffer.concat(s.parts), s.need);
          break;
        }
        case 'data': {
          const take = Math.min(s.left, chunk.length - off);
          s.sink?.data(chunk.subarray(off, off + take));
          s.left -= take;
          off += take;
          if (s.left === 0) {
            s.sink?.end();
            this.pad(s.size);
          }
          break;
        }
        case 'pad': {
          const take = Math.min(s.left, chunk.length - off);
          s.left -= take;
          off += take;
          if (s.left === 0) this.state = { at: 'header' };
          break;
        }
      }
    }
  }

  /**
   * At the end of the input: refuses an archive cut inside a header or an entry's data, and one
   * cut between entries: without its end-of-archive block nothing tells it from an archive whose
   * later entries are missing (GNU tar accepts it silently).
   */
  finish(): void {
    const s = this.state;
    if (s.at === 'end') return;
    if (s.at === 'header' && this.partialLength === 0) throw new TarFormatError('it ends with no end-of-archive block (truncated between two entries, or its writer did not finish it)');
    throw new TarFormatError('unexpected end of data (the archive is truncated)');
  }

  /** Whether a whole header block was read and decoded (an end-of-archive block counts). */
  sawHeader = false;

  private header(block: Buffer): void {
    const raw = decodeHeader(block);
    this.sawHeader = true;
    if (raw.kind === 'zero') {
      this.state = { at: 'end', after: 0 };
      return;
    }
    const { flag, header } = raw;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (header.size > MAX_LONG_HEADER) throw new TarFormatError(`a long-name or PAX header is larger than ${MAX_LONG_HEADER} bytes`);
      if (header.size === 0) this.long(flag, Buffer.alloc(0), 0);
      else this.state = { at: 'long', flag, need: header.size, parts: [], have: 0 };
      return;
    }
    // Sparse files (tar -S): GNU's type S, or PAX GNU.sparse.* records, under which the entry's
    // name and data are an encoding (GNUSparseFile.<pid>/..., a map, then the data without holes).
    // A reader that ignores them publishes other names and other bytes: refused.
    if (flag === 'S' || [this.pax, this.globalPax].some((pax) => pax !== undefined && [...pax.keys()].some((k) => k.startsWith('GNU.sparse.')))) {
      const name = this.pax?.get('GNU.sparse.name') ?? this.pax?.get('path') ?? this.longName?.name ?? header.name;
      throw new TarFormatError(`entry ${JSON.stringify(name)} is a sparse file (tar -S), which is not supported`, 'create the archive without -S/--sparse');
    }
    const paxPath = this.pax?.get('path');
    if (paxPath !== undefined && this.longName !== undefined && paxPath !== this.longName.name) {
      throw namedTwice(`an entry is named ${JSON.stringify(paxPath)} by a PAX record and ${JSON.stringify(this.longName.name)} by a GNU long name`);
    }
    const paxLink = this.pax?.get('linkpath');
    if (paxLink !== undefined && this.longLink !== undefined && paxLink !== this.longLink) {
      throw namedTwice(`an entry links to ${JSON.stringify(paxLink)} by a PAX record and ${JSON.stringify(this.longLink)} by a GNU long link`);
    }
    if (this.globalPax) applyPax(header, this.globalPax, this.globalPaxRaw);
    if (this.pax) applyPax(header, this.pax, this.paxRaw);
    if (this.longName !== undefined) {
      header.name = this.longName.name;
      if (this.longName.rawName !== undefined) header.rawName = this.longName.rawName;
      else delete header.rawName;
    }
    if (this.longLink !== undefined) header.linkname = this.longLink;
    this.pax = undefined;
    this.paxRaw = undefined;
    this.longName = undefined;
    this.longLink = undefined;
    // A file whose name (from a PAX path or long name) ends with a slash: GNU tar makes a directory
    // of it and skips its data, Python's tarfile a file of that data.
    if (header.type === 'file' && header.name.endsWith('/')) {
      throw new TarFormatError(`entry ${JSON.stringify(header.name)} is a file whose name ends with a slash`, 'tar readers disagree on whether it is a directory or a file: rebuild the artifact with tar, bsdtar or Python\'s tarfile');
    }
    // Data readers disagree on: GNU tar reads it after a file header named `x/` (a directory here, as
    // in pre-POSIX tars) and after a symlink, BusyBox and Python read the same bytes as further
    // entries, and so does GNU tar after a hard link. Whichever way it is read, some tool lists other
    // entries than those deployed (a file hidden from `tar -t` would go live): refused.
    const dataOfNoFile = header.type === 'symlink' || header.type === 'hardlink' || (header.type === 'dir' && flag !== '5' && flag !== 'D');
    if (dataOfNoFile && header.size > 0) {
      throw new TarFormatError(
        `entry ${JSON.stringify(header.name)} is a ${header.type === 'dir' ? 'directory' : header.type === 'hardlink' ? 'hard link' : 'symlink'} whose header gives it ${header.size} bytes of data`,
        'tar readers disagree on whether such bytes are its data or further entries, so another tool would list other files than those deployed: rebuild the artifact with tar, bsdtar or Python\'s tarfile (links and directories carry no data)',
      );
    }
    // Only regular files carry data here; a directory's size field is not data (as with tar-stream),
    // except a dumpdir's, whose listing follows it and is skipped.
    const size = header.type === 'dir' && flag !== 'D' ? 0 : header.size;
    // GNU's volume label (tar -V) names the archive, not an entry: nothing is written for it.
    const sink = flag === 'V' ? undefined : this.handler.entry(header);
    if (size === 0) {
      sink?.end();
      this.state = { at: 'header' };
      return;
    }
    this.state = { at: 'data', left: size, size, sink };
  }

  private pad(size: number): void {
    const left = (BLOCK - (size % BLOCK)) % BLOCK;
    this.state = left === 0 ? { at: 'header' } : { at: 'pad', left };
  }

  private long(flag: string, bytes: Buffer, size: number): void {
    if (flag === 'x') {
      const raw = new Map<string, Buffer>();
      const records = decodePax(bytes, raw);
      // Two PAX headers before one entry: GNU tar and BusyBox take the second's records, Python the first's.
      for (const [key, value] of records) {
        const earlier = this.pax?.get(key);
        if (earlier !== undefined && (earlier !== value || !sameBytes(this.paxRaw?.get(key), raw.get(key)))) {
          throw namedTwice(`two PAX headers give it ${key} ${JSON.stringify(earlier)} and ${JSON.stringify(value)}`);
        }
      }
      this.pax = new Map([...(this.pax ?? []), ...records]);
      this.paxRaw = new Map([...(this.paxRaw ?? []), ...raw]);
    } else if (flag === 'g') {
      const raw = new Map<string, Buffer>();
      const records = decodePax(bytes, raw);
      // GNU tar and Python give every later entry this name or link target, BusyBox none.
      for (const key of ['path', 'linkpath']) {
        const value = records.get(key);
        if (value !== undefined) throw namedTwice(`a global PAX header gives every entry after it the ${key} ${JSON.stringify(value)}`);
      }
      // GNU tar and Python's tarfile give every later entry this size too (GNU tar reads that much
      // data after each header), BusyBox steps by each header's own: the bytes after a header are
      // data for one reader and further entries for another.
      const size = records.get('size');
      if (size !== undefined) {
        throw new TarFormatError(
          `a global PAX header gives every entry after it the size ${JSON.stringify(size)}`,
          'tar readers disagree on whether it replaces each header\'s own size, so another tool would list other files than those deployed: rebuild the artifact with GNU tar, bsdtar or Python\'s tarfile (none writes a global size)',
        );
      }
      this.globalPax = new Map([...(this.globalPax ?? []), ...records]);
      // A later global record replaces an earlier one's value, and with it that value's bytes.
      this.globalPaxRaw = new Map([...[...(this.globalPaxRaw ?? [])].filter(([k]) => !records.has(k)), ...raw]);
    } else {
      const end = bytes.indexOf(0);
      const raw = bytes.subarray(0, end < 0 ? bytes.length : end);
      // Two long names before one entry: GNU tar and BusyBox take the second, Python the first.
      if (flag === 'L') {
        const name = nameOf(raw);
        if (this.longName !== undefined && !sameBytes(this.longName.rawName ?? Buffer.from(this.longName.name), name.rawName ?? Buffer.from(name.name))) {
          throw namedTwice(`two GNU long names give it ${JSON.stringify(this.longName.name)} and ${JSON.stringify(name.name)}`);
        }
        this.longName = name;
      } else {
        const link = raw.toString('utf8');
        if (this.longLink !== undefined && this.longLink !== link) throw namedTwice(`two GNU long links give it ${JSON.stringify(this.longLink)} and ${JSON.stringify(link)}`);
        this.longLink = link;
      }
    }
    this.pad(size);
  }
}
