/**
 * Archive sources: which format a byte prefix is, and whether each entry of a tar or zip may be
 * written into a staged release, and as what. Pure: headers in, decisions out; the extraction
 * (src/act/archive.ts) performs exactly what these decide and nothing else.
 */

import { escapedName } from './paths.ts';
import { isV7Header } from './tar.ts';

export type ArchiveFormat = 'tar' | 'tar.gz' | 'zip';

/** The format from the first bytes (at least 512 for tar), never from the name. */
export function sniffFormat(head: Uint8Array): ArchiveFormat | undefined {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
  // Local file header, or the end-of-central-directory record of an empty zip.
  if (head.length >= 4 && head[0] === 0x50 && head[1] === 0x4b && ((head[2] === 3 && head[3] === 4) || (head[2] === 5 && head[3] === 6))) return 'zip';
  // POSIX ustar and GNU tar both put "ustar" at offset 257.
  if (head.length >= 262 && String.fromCharCode(...head.subarray(257, 262)) === 'ustar') return 'tar';
  // A v7 tar has no magic: its first header's checksum tells it.
  if (isV7Header(head.subarray(0, 512))) return 'tar';
  // A tar of nothing is its end-of-archive zero blocks alone (tar -cf x.tar -T /dev/null): read as a
  // tar it says it holds no files; anything after a zero block is refused by the reader.
  if (head.length >= 512 && head.subarray(0, 512).every((b) => b === 0)) return 'tar';
  return undefined;
}

/** Formats this tool does not read, told by their magic bytes, so a refusal can name what it found. */
const OTHER_FORMATS: [string, number[]][] = [
  ['xz-compressed', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['zstd-compressed', [0x28, 0xb5, 0x2f, 0xfd]],
  ['bzip2-compressed', [0x42, 0x5a, 0x68]],
  ['a 7z archive', [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c]],
  ['a RAR archive', [0x52, 0x61, 0x72, 0x21, 0x1a, 0x07]],
];

/** What a prefix that is no format read here is, when its magic bytes say: `xz-compressed`, `a 7z archive`. */
export function otherFormat(head: Uint8Array): string | undefined {
  return OTHER_FORMATS.find(([, magic]) => head.length >= magic.length && magic.every((b, i) => head[i] === b))?.[0];
}

export type HeaderType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'character device' | 'block device' | 'FIFO' | 'socket' | 'unknown';

/** One entry as the archive describes it, format-neutral. */
export interface ArchiveHeader {
  name: string;
  /** The name's bytes when they are not UTF-8 (`name` then holds U+FFFD), for messages to show. */
  rawName?: Uint8Array;
  type: HeaderType;
  /** Symlink target, or the archive path a hard link names. */
  linkname?: string;
  mode: number;
  size: number;
  uid?: number;
  gid?: number;
  mtimeMs?: number;
}

export interface ExtractLimits {
  /**
   * Files, directories and links written, the parent directories an entry implies included: bombs
   * of empty files exhaust inodes too, and one entry `a/b/…/f` can imply two thousand directories.
   */
  maxFiles: number;
  /** Bytes of file content written. */
  maxBytes: number;
  stripComponents: number;
  /** Keep setuid/setgid bits: only when the deploy runs as root and asked for it. */
  keepSetid: boolean;
  /** Apply the archive's uid/gid: only when the deploy runs as root. */
  keepOwner: boolean;
}

export const DEFAULT_MAX_FILES = 1_000_000;
export const DEFAULT_MAX_BYTES = 16 * 1024 ** 3;

/** Linux NAME_MAX and PATH_MAX (bytes, PATH_MAX counting its NUL). */
const NAME_MAX = 255;
export const PATH_MAX = 4095;

export type EntryDecision =
  | { action: 'skip'; reason: string }
  /** The archive's root (`.` or `./`): the release directory itself, which takes its mode, owner and time. */
  | { action: 'root'; mode: number; owner?: { uid: number; gid: number }; mtimeMs?: number }
  | { action: 'refuse'; problem: string; hint?: string }
  | {
      action: 'write';
      /** Relative, `/`-separated, no `.`/`..`/empty components, after --strip-components. */
      path: string;
      kind: 'dir' | 'file' | 'symlink' | 'hardlink';
      mode: number;
      size: number;
      /** Parent directories no entry named before this one: made first, mode 755. */
      parents: string[];
      target?: string;
      /** For a hard link: the staged file (relative path) it shares. */
      linkTo?: string;
      owner?: { uid: number; gid: number };
      mtimeMs?: number;
    };

/** A path component that cannot be a file name here, or why. */
function componentProblem(part: string): string | undefined {
  if (part === '..') return 'has a ".." component';
  if (Buffer.byteLength(part) > NAME_MAX) return `has a component longer than ${NAME_MAX} bytes`;
  return undefined;
}

/** A name as messages show it: JSON-quoted, cut in the middle past 160 characters (a refused name may be 4 KiB). */
export function quote(name: string): string {
  return cut(JSON.stringify(name), Buffer.byteLength(name));
}

function cut(q: string, bytes: number): string {
  return q.length <= 160 ? q : `${q.slice(0, 100)}…(${bytes} bytes)…${q.slice(-40)}`;
}

/**
 * Bytes that are not all UTF-8 quoted as `quote` does, each invalid byte shown as `\xNN` (as for a
 * directory source's names), where a decoded name would show U+FFFD and hide which byte it was.
 * Split at backslashes first: a backslash of the name then reads `\\`, an invalid byte `\xNN`.
 */
export function quoteBytes(bytes: Uint8Array): string {
  const parts: string[] = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i++) {
    if (i < bytes.length && bytes[i] !== 0x5c) continue;
    // escapedName's only backslashes are its \xNN, which JSON would double: undone in this part alone.
    parts.push(JSON.stringify(escapedName(bytes.subarray(start, i))).slice(1, -1).replaceAll('\\\\x', '\\x'));
    start = i + 1;
  }
  return cut(`"${parts.join('\\\\')}"`, bytes.length);
}

/** An entry's name as messages show it. */
export function shownName(header: Pick<ArchiveHeader, 'name' | 'rawName'>): string {
  return header.rawName !== undefined ? quoteBytes(header.rawName) : quote(header.name);
}

const ROOT_SKIP = 'is the archive root';

/**
 * Normalises an archive name to a release-relative path, or says why it is unsafe. Tar names
 * may start with `./` and directories end with `/`; `.` and empty components are dropped.
 */
export function archivePath(name: string, strip: number): { path: string } | { skip: string } | { problem: string } {
  if (name.includes('\0')) return { problem: 'contains a NUL byte' };
  // What a decoder makes of bytes that are not UTF-8: the name on disk would not be the archive's.
  if (name.includes('\uFFFD')) return { problem: 'is not valid UTF-8 (invalid bytes shown as \\xNN)' };
  if (name.startsWith('/')) return { problem: 'is an absolute path' };
  if (Buffer.byteLength(name) > PATH_MAX) return { problem: `is longer than ${PATH_MAX} bytes` };
  // Components as tar counts them for --strip-components: a run of slashes is one separator, and
  // `.` is a component (`tar -C dist -cf a.tar .` stores `./index.html`; strip 1 leaves `index.html`).
  const raw = name.split('/').filter((p) => p !== '');
  for (const part of raw) {
    if (part === '.') continue;
    const problem = componentProblem(part);
    if (problem) return { problem };
  }
  const kept = raw.slice(strip).filter((p) => p !== '.');
  if (kept.length === 0) return { skip: raw.every((p) => p === '.') && strip === 0 ? ROOT_SKIP : 'is removed by --strip-components' };
  return { path: kept.join('/') };
}

type Seen = 'dir' | 'file' | 'symlink';

/**
 * The file times an entry may carry, in ms from 1970: within 100,000,000 days of it either way
 * (years -271821 to 275760), the range of a JavaScript Date. Node hands a time before 1970 to
 * utimes as a Date (secs() in src/act/copy.ts), and an earlier one is no Date: EINVAL. Later
 * ones go as seconds, which utimensat(2) on Linux takes up to 2^63 (a 64-bit time_t; past it,
 * EINVAL), the filesystem clamping them to what it stores (ext4: 1901 to 2446). The same bound
 * both ways, far beyond any real file's time: a PAX record or a base-256 field spells more.
 */
const MAX_TIME_MS = 8.64e15;

/** The largest uid or gid chown(2) takes: uid_t is 32 bits and (uid_t)-1 leaves the owner unchanged. */
const MAX_OWNER_ID = 0xfffffffe;

/**
 * Decides entry after entry, remembering what the archive made so far: a symlink must never be
 * walked through, a directory never replaced, a hard link only to a file this archive wrote.
 */
export class EntryChecker {
  private readonly seen = new Map<string, Seen>();
  private readonly limits: ExtractLimits;
  files = 0;
  bytes = 0;
  /** The first component of every path written, while there is only one (a second ends the count). */
  private tops: string[] = [];
  /** Files and links --strip-components removed whole, and the one with the most components. */
  private stripped = { count: 0, deepest: undefined as { name: string; components: number } | undefined };

  constructor(limits: ExtractLimits) {
    this.limits = limits;
  }

  decide(header: ArchiveHeader): EntryDecision {
    const at = archivePath(header.name, this.limits.stripComponents);
    const quoted = shownName(header);
    if ('problem' in at) return { action: 'refuse', problem: `entry ${quoted} ${at.problem}` };
    if ('skip' in at) {
      if (at.skip !== ROOT_SKIP) {
        if (header.type !== 'dir') this.strippedWhole(header.name);
        return { action: 'skip', reason: at.skip };
      }
      // The archive's root is the release directory: a `.` that is a file or a link (`. -> /etc`)
      // would replace it, and skipping it quietly would deploy something other than the archive.
      if (header.type !== 'dir') {
        return { action: 'refuse', problem: `entry ${quoted} is the archive's root, but a ${header.type === 'hardlink' ? 'hard link' : header.type}, not a directory` };
      }
    }
    const kind = header.type;
    if (kind !== 'file' && kind !== 'dir' && kind !== 'symlink' && kind !== 'hardlink') {
      return { action: 'refuse', problem: `entry ${quoted} is a ${kind === 'unknown' ? 'special file of an unknown type' : kind}; a release can hold only files, directories and links` };
    }
    const mtime = header.mtimeMs;
    if (mtime !== undefined && !(Number.isFinite(mtime) && Math.abs(mtime) <= MAX_TIME_MS)) {
      return { action: 'refuse', problem: `entry ${quoted} has a modification time out of range (more than 100,000,000 days from 1970)`, hint: 'rebuild the artifact with real file times (tar --mtime sets one for every entry)' };
    }
    // Owners are applied only as root (keepOwner): one chown(2) cannot take (uid_t is 32 bits, and -1 means "unchanged").
    if (this.limits.keepOwner) {
      for (const [what, id] of [['uid', header.uid], ['gid', header.gid]] as const) {
        if (id !== undefined && !(Number.isSafeInteger(id) && id >= 0 && id <= MAX_OWNER_ID)) {
          return { action: 'refuse', problem: `entry ${quoted} has ${what} ${id}, more than any system's largest (${MAX_OWNER_ID})` };
        }
      }
    }
    // Not root, the release's files are the deploying user's, modes and all: a file it may not read,
    // or a directory it may not list, could not be read back by verify or the next deploy (a
    // directory build holding one is refused as unreadable the same way).
    if (!this.limits.keepOwner && (kind === 'file' || kind === 'dir')) {
      const need = kind === 'file' ? 0o400 : 0o500;
      if ((header.mode & need) !== need) {
        return {
          action: 'refuse',
          problem: `entry ${quoted} is a ${kind === 'file' ? 'file' : 'directory'} of mode ${(header.mode & 0o7777).toString(8).padStart(4, '0')}, which the user that deploys could not ${kind === 'file' ? 'read' : 'list'} back once it is theirs`,
          hint: `rebuild the artifact with owner ${kind === 'file' ? 'read (chmod u+r)' : 'read and search (chmod u+rx)'}, or deploy as root, which keeps the archive's owners`,
        };
      }
    }
    // Its mode, owner and time go to the release directory, as `tar -xp` gives them to the directory
    // it extracts into and a directory deploy copies its source directory's: not 755 whatever it says.
    if ('skip' in at) return { action: 'root', ...this.attributes(header) };
    const rel = at.path;
    // Walk the parents: through a symlink is the classic escape, through a file is a conflict.
    const parents: string[] = [];
    const parts = rel.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const was = this.seen.get(parent);
      if (was === 'symlink') return { action: 'refuse', problem: `entry ${quoted} goes through the symlink ${quote(parent)} (an archive may not write through its own links)` };
      if (was === 'file') return { action: 'refuse', problem: `entry ${quoted} needs ${quote(parent)} to be a directory, but the archive made it a file` };
      if (was === undefined) parents.push(parent);
    }
    const before = this.seen.get(rel);
    if (before !== undefined) {
      if (before === 'dir' && kind === 'dir') return this.accept(rel, 'dir', header, parents);
      const what = before === 'dir' ? 'directory' : before;
      return { action: 'refuse', problem: `entry ${quoted} appears twice (a ${kind} would replace a ${what})` };
    }
    let linkTo: string | undefined;
    if (kind === 'hardlink') {
      const target = archivePath(header.linkname ?? '', this.limits.stripComponents);
      // Its target's name is stripped as its own is (as tar does): a target stripped away is not missing from the archive.
      if ('skip' in target && this.limits.stripComponents > 0 && 'path' in archivePath(header.linkname ?? '', 0)) {
        return {
          action: 'refuse',
          problem: `entry ${quoted} is a hard link to ${quote(header.linkname ?? '')}, which --strip-components ${this.limits.stripComponents} removes`,
          hint: 'give a smaller --strip-components, or rebuild the artifact without that link',
        };
      }
      if (!('path' in target) || this.seen.get(target.path) !== 'file') {
        return { action: 'refuse', problem: `entry ${quoted} is a hard link to ${quote(header.linkname ?? '')}, which is not a file earlier in the archive` };
      }
      linkTo = target.path;
    }
    if (kind === 'symlink') {
      const target = header.linkname ?? '';
      if (target === '' || target.includes('\0')) return { action: 'refuse', problem: `entry ${quoted} is a symlink with an empty or invalid target` };
      if (Buffer.byteLength(target) > PATH_MAX) return { action: 'refuse', problem: `entry ${quoted} is a symlink with a target longer than ${PATH_MAX} bytes` };
      // What a decoder makes of bytes that are not UTF-8: the link made would not be the archive's.
      if (target.includes('\uFFFD')) return { action: 'refuse', problem: `entry ${quoted} is a symlink whose target is not valid UTF-8` };
    }
    // The parents an entry implies count: each is an inode, and one entry can imply thousands.
    this.files += 1 + parents.length;
    if (this.files > this.limits.maxFiles) {
      return { action: 'refuse', problem: `the archive makes more than ${this.limits.maxFiles} files, directories and links, the parent directories its entries imply included (--max-files)`, hint: 'give a larger --max-files (or artifact.maxFiles) if the build is this large' };
    }
    if (kind === 'file') {
      this.bytes += header.size;
      if (this.bytes > this.limits.maxBytes) return { action: 'refuse', problem: `the archive expands to more than ${this.limits.maxBytes} bytes (--max-bytes)`, hint: 'give a larger --max-bytes (or artifact.maxBytes) if the build is this large' };
    }
    for (const p of parents) this.seen.set(p, 'dir');
    const decision = this.accept(rel, kind, header, parents);
    if (decision.action === 'write' && linkTo !== undefined) decision.linkTo = linkTo;
    return decision;
  }

  /**
   * The one directory every entry written sits under, when there is one and it holds a file or a
   * link: `tar -czf app.tgz dist` and GitHub's tarballs (`repo-abc123/...`) put the build one
   * level down, where `--strip-components 1` takes it out.
   */
  singleTopDir(): string | undefined {
    const [top, ...more] = this.tops;
    return top !== undefined && more.length === 0 && this.seen.get(top) === 'dir' && this.files > 1 ? top : undefined;
  }

  /** What --strip-components removed whole, when it removed files or links: how many, and the deepest. */
  strippedAway(): { count: number; deepest: { name: string; components: number } } | undefined {
    const { count, deepest } = this.stripped;
    return deepest === undefined ? undefined : { count, deepest };
  }

  private strippedWhole(name: string): void {
    // Components as --strip-components counts them: `.` is one, a run of slashes one separator.
    const components = name.split('/').filter((p) => p !== '').length;
    this.stripped.count += 1;
    if (this.stripped.deepest === undefined || components > this.stripped.deepest.components) this.stripped.deepest = { name, components };
  }

  private accept(rel: string, kind: 'dir' | 'file' | 'symlink' | 'hardlink', header: ArchiveHeader, parents: string[]): EntryDecision {
    const top = rel.split('/', 1)[0] as string;
    if (this.tops.length < 2 && !this.tops.includes(top)) this.tops.push(top);
    this.seen.set(rel, kind === 'hardlink' ? 'file' : kind);
    return {
      action: 'write',
      path: rel,
      kind,
      size: kind === 'file' ? header.size : 0,
      parents,
      ...(kind === 'symlink' ? { target: header.linkname } : {}),
      ...this.attributes(header),
    };
  }

  /** The mode (setuid/setgid only with keepSetid), owner (only with keepOwner) and time an entry gets. */
  private attributes(header: ArchiveHeader): { mode: number; owner?: { uid: number; gid: number }; mtimeMs?: number } {
    const setid = this.limits.keepSetid ? 0o7777 : 0o1777;
    const owner = this.limits.keepOwner && header.uid !== undefined && header.gid !== undefined ? { uid: header.uid, gid: header.gid } : undefined;
    return { mode: header.mode & setid, ...(owner ? { owner } : {}), ...(header.mtimeMs !== undefined ? { mtimeMs: header.mtimeMs } : {}) };
  }
}

/** A `--sha256` value: 64 hex digits, any case, optionally `sha256:`-prefixed. */
/** A byte count: a whole number, or one with a K, M, G or T suffix (powers of 1024); undefined when not one. */
export function parseByteCount(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const m = /^\s*(\d+)\s*([KMGT])?i?B?\s*$/i.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] ?? ' ').toUpperCase());
  return Number.isSafeInteger(n) ? n : undefined;
}

export function parseSha256(value: string): string | undefined {
  const hex = value.trim().replace(/^sha256:/i, '').toLowerCase();
  return /^[0-9a-f]{64}$/.test(hex) ? hex : undefined;
}

/** Whether a deploy source names an artifact to download rather than a local path. */
export function isUrlSource(source: string): boolean {
  return /^https?:\/\//i.test(source);
}

/** A URL for messages and the release log: no credentials, no query (signed URLs carry tokens there); paths pass unchanged. */
export function redactUrl(source: string): string {
  if (!isUrlSource(source)) return source;
  try {
    const u = new URL(source);
    u.username = '';
    u.password = '';
    u.search = '';
    u.hash = '';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

const URL_SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
const ARCHIVE_NAME = /\.(tar|tgz|tar\.gz|zip)$/i;

/** A URL that does not parse, for a message: whatever could be credentials (up to an `@`) and the query cut out. */
function redactUnparsed(source: string): string {
  const scheme = URL_SCHEME.exec(source)?.[0] ?? '';
  const rest = source.slice(scheme.length).replace(/[?#].*$/s, '');
  return scheme + rest.slice(rest.lastIndexOf('@') + 1);
}

/** A source named as an artifact is: a URL of any scheme, or a file name ending as an archive's. */
export function namedLikeArtifact(source: string): { url: boolean; file: boolean } {
  return { url: URL_SCHEME.test(source), file: ARCHIVE_NAME.test(source) };
}

/**
 * What to say of a source that does not exist, by its name: a URL of a scheme not fetched
 * (`ftp://`, `s3://`), `-` for standard input, an artifact a failed step did not leave; else the
 * build directory's words.
 */
export function missingSourceWords(source: string): { message: string; hint: string } {
  const scheme = URL_SCHEME.exec(source)?.[1];
  if (scheme !== undefined) {
    return { message: `${redactUnparsed(source)}: ${scheme}:// URLs are not fetched, only http:// and https:// ones`, hint: 'download it first and deploy the file, or give an https URL to it (a presigned one for a private bucket)' };
  }
  if (source === '-') return { message: 'the source "-": an archive on standard input is not read', hint: 'save it to a file and deploy that file (atomic-deploy deploy app.tgz <root>)' };
  if (ARCHIVE_NAME.test(source)) return { message: `${source} does not exist`, hint: 'check the path; an artifact a failed download or build step did not leave is not there to deploy' };
  return { message: `${source} does not exist`, hint: 'build first, then deploy the build output directory' };
}

/**
 * Why a URL source cannot be requested at all, or undefined if it parses. The URL parser says only
 * "Invalid URL": the usual causes are named here, and the URL shown as `redactUrl` would, were it
 * parsable. Not a download failure: nothing is retried, nothing was written.
 */
export function urlProblem(source: string): { shown: string; problem: string } | undefined {
  // The parser reads `http:///dist.tgz` (an empty host variable) as the host `dist.tgz`.
  if (/^https?:\/\/\//i.test(source)) return { shown: redactUnparsed(source), problem: 'it names no host (three slashes after the scheme)' };
  try {
    new URL(source);
    return undefined;
  } catch {
    // Named below.
  }
  const shown = redactUnparsed(source);
  // The authority ends at the first `/`, `?` or `#`, as the parser reads it; a user or password ends at the last `@`.
  const authority = /^[^/?#]*/.exec(source.replace(/^https?:\/\//i, ''))?.[0] ?? '';
  const host = authority.slice(authority.lastIndexOf('@') + 1);
  if (host === '') return { shown, problem: 'it names no host' };
  let port: string | undefined;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close < 0) return { shown, problem: 'its IPv6 address has no closing "]"' };
    const after = host.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) return { shown, problem: 'characters follow its IPv6 address\'s "]"' };
    port = after === '' ? undefined : after.slice(1);
  } else if (host.includes(':')) {
    port = host.slice(host.lastIndexOf(':') + 1);
  }
  if (port !== undefined && !/^\d*$/.test(port)) return { shown, problem: 'its port is not a number' };
  if (port !== undefined && Number(port) > 65535) return { shown, problem: `its port ${port} is out of range (0 to 65535)` };
  return { shown, problem: 'its host is not a valid host name or address' };
}

/** Where a zip's central directory record puts its entry, read as yauzl reads it. */
export interface ZipCentralRecord {
  /** The bytes the record takes in the central directory. */
  length: number;
  localOffset: number;
  compressedSize: number;
  flags: number;
  name: Buffer;
  extra: Buffer;
}

/** A local file header's fixed part; the name and the extra field follow it. */
export const ZIP_LOCAL_HEADER = 30;
const U32_MARK = 0xffffffff;

/**
 * The central directory record at `at` in `bytes`, or undefined when it does not fit in what
 * `bytes` holds from there. Its size and offset are yauzl's: a 32-bit field of 0xFFFFFFFF read
 * from the first ZIP64 extended information field (0x0001), in the order the spec gives them.
 */
export function zipCentralRecord(bytes: Buffer, at: number): ZipCentralRecord | undefined | { problem: string } {
  if (at + 46 > bytes.length) return undefined;
  if (bytes.readUInt32LE(at) !== 0x02014b50) return { problem: `invalid central directory file header signature: 0x${bytes.readUInt32LE(at).toString(16)}` };
  const nameLength = bytes.readUInt16LE(at + 28);
  const extraLength = bytes.readUInt16LE(at + 30);
  const length = 46 + nameLength + extraLength + bytes.readUInt16LE(at + 32);
  if (at + length > bytes.length) return undefined;
  const name = bytes.subarray(at + 46, at + 46 + nameLength);
  const extra = bytes.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength);
  const sizes = { uncompressed: bytes.readUInt32LE(at + 24), compressed: bytes.readUInt32LE(at + 20), offset: bytes.readUInt32LE(at + 42) };
  for (let i = 0; i < extra.length - 3; ) {
    const end = i + 4 + extra.readUInt16LE(i + 2);
    if (end > extra.length) return { problem: 'extra field length exceeds extra field buffer size' };
    if (extra.readUInt16LE(i) === 0x0001) {
      let j = i + 4;
      for (const key of ['uncompressed', 'compressed', 'offset'] as const) {
        if (sizes[key] !== U32_MARK) continue;
        if (j + 8 > end) return { problem: `zip64 extended information extra field does not include ${key === 'offset' ? 'relative header offset' : `${key} size`}` };
        sizes[key] = extra.readUInt32LE(j + 4) * 0x100000000 + extra.readUInt32LE(j);
        j += 8;
      }
      break;
    }
    i = end;
  }
  return { length, localOffset: sizes.offset, compressedSize: sizes.compressed, flags: bytes.readUInt16LE(at + 8), name, extra };
}

/** Where a zip entry's bytes end at the least: its local header (as long as the name the central record gives) and its data. */
export function zipEntryLeastEnd(record: Pick<ZipCentralRecord, 'localOffset' | 'compressedSize' | 'name'>): number {
  return record.localOffset + ZIP_LOCAL_HEADER + record.name.length + record.compressedSize;
}

/** The length of a data descriptor after an entry's data: none without flag bit 3; 8-byte sizes when its local header has a ZIP64 field. */
export function zipDescriptorLength(localFlags: number, zip64: boolean, signed: boolean): number {
  if ((localFlags & 0x8) === 0) return 0;
  return (signed ? 4 : 0) + 4 + (zip64 ? 16 : 8);
}

export type ZipLayout = { next: Int32Array } | { overlap: [number, number] } | { central: number };

/**
 * Whether a zip's entries share bytes: entry i spans [starts[i], ends[i]) (from its local header
 * to the least end of its data), and no two spans may overlap, nor any reach `centralStart`, where
 * the central directory and the end records take the rest of the file. Entries that share data
 * are how a zip bomb without recursion expands one deflate kernel once per entry (Fifield 2019;
 * UnZip 6.0's fix for CVE-2019-13232 refuses them too). The answer names the first two entries
 * found overlapping (the one starting first first), or one reaching the central directory; else,
 * for each entry, the entry that starts next in the file (-1: the central directory), which bounds
 * where its local extra field and its data descriptor may end once they are read.
 */
export function zipLayout(starts: Float64Array, ends: Float64Array, centralStart: number): ZipLayout {
  const count = starts.length;
  const order = new Uint32Array(count);
  let sorted = true;
  for (let i = 0; i < count; i++) {
    order[i] = i;
    if (i > 0 && (starts[i] as number) < (starts[i - 1] as number)) sorted = false;
  }
  // Zip writers put the central records in the order of the entries: sorted already, as a rule.
  if (!sorted) order.sort((a, b) => (starts[a] as number) - (starts[b] as number) || a - b);
  const next = new Int32Array(count);
  for (let r = 0; r < count; r++) {
    const i = order[r] as number;
    const j = r + 1 < count ? (order[r + 1] as number) : -1;
    if ((ends[i] as number) > (j < 0 ? centralStart : (starts[j] as number))) return j < 0 ? { central: i } : { overlap: [i, j] };
    next[i] = j;
  }
  return { next };
}
