/**
 * A release's content manifest: every path it holds with its type, mode, size, SHA-256 of its
 * content and symlink target. Kept in `<root>/.atomic-deploy/manifests/<id>.json`, never in the
 * served tree. Its digest (SHA-256 of the file's exact bytes) goes in the release's record, so a
 * manifest that was truncated, edited or swapped is never trusted.
 *
 * Pure: serialisation, parsing (untrusted input), and comparison. Hashing files is the caller's.
 */
import { createHash } from 'node:crypto';

export const MANIFEST_FORMAT = 'atomic-deploy/manifest@1';

export type ManifestEntry =
  | { path: string; type: 'dir'; mode: number }
  | { path: string; type: 'file'; mode: number; size: number; sha256: string }
  | { path: string; type: 'symlink'; target: string };

export interface Manifest {
  /** Sorted by path (see comparePaths), unique, every parent directory listed before its children. */
  entries: ManifestEntry[];
  /**
   * The release directory itself (`releases/<id>`): its mode, which no entry can hold (paths have
   * no `.` component). Absent in manifests written before 2026-12-04: then it is not checked.
   */
  root?: ReleaseRoot;
}

export interface ReleaseRoot {
  mode: number;
}

/**
 * The release directory's mode from the build's top directory (or the archive's `./`): its bits,
 * with read and search added for everyone. It is on the way to every file the site serves, like
 * `releases/`: a build packed from `mktemp -d` (0700) went live 0700 and a web server running as
 * another user answered 403 for the whole site. Write bits are not added (a 0555 build stays 0555).
 */
export function releaseDirMode(buildMode: number): number {
  return (buildMode & 0o7777) | 0o555;
}

// One regular-expression pass clears a safe path; only a path it flags is split to say what is wrong.
const UNSAFE_PATH = /(?:^|\/)\.{0,2}(?:\/|$)|\0/;

/** Paths are relative, `/`-separated, with no empty, `.` or `..` component: safe to join under a release. */
export function manifestPathProblem(p: string): string | undefined {
  if (!UNSAFE_PATH.test(p)) return undefined;
  if (p === '') return 'is empty';
  if (p.includes('\0')) return 'contains a NUL byte';
  if (p.startsWith('/')) return 'is absolute';
  for (const part of p.split('/')) {
    if (part === '') return 'has an empty component';
    if (part === '.' || part === '..') return `has a "${part}" component`;
  }
  return undefined;
}

/** Code-unit order of whole paths: the same on every host, whatever its locale. */
export function comparePaths(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Entries per chunk of the serialised text: big enough to amortise a write, small enough to stay young garbage. */
const CHUNK_ENTRIES = 2048;

/**
 * The manifest file's bytes in pieces, in order: a 100k-entry manifest is written and hashed
 * without ever being one 13 MB string (and an array of 100k lines) on the heap.
 */
/** A manifest's regular files, path and mode (plan/validate.ts closedBuildWarning). */
export function* manifestFiles(entries: readonly ManifestEntry[]): Generator<{ path: string; mode: number }> {
  for (const e of entries) if (e.type === 'file') yield e;
}

export function* manifestChunks(entries: readonly ManifestEntry[], root?: ReleaseRoot): Generator<string> {
  const sorted = [...entries].sort((a, b) => comparePaths(a.path, b.path));
  // The root on the first line, before `entries`: a reader of the entries alone (the hosts' awk link list) never meets it.
  let chunk = `{"format":${JSON.stringify(MANIFEST_FORMAT)},${root === undefined ? '' : `"root":{"mode":${root.mode}},`}"entries":[\n`;
  for (let i = 0; i < sorted.length; i++) {
    chunk += `${i === 0 ? '' : ',\n'}${JSON.stringify(canonicalEntry(sorted[i] as ManifestEntry))}`;
    if (i % CHUNK_ENTRIES === CHUNK_ENTRIES - 1) {
      yield chunk;
      chunk = '';
    }
  }
  yield `${chunk}\n]}\n`;
}

/** The manifest file's bytes: one entry a line, so a diff of two manifests reads like a file list. */
export function serializeManifest(entries: readonly ManifestEntry[], root?: ReleaseRoot): string {
  return [...manifestChunks(entries, root)].join('');
}

/** Fixed key order, so the same tree always gives the same bytes and the same digest. */
function canonicalEntry(e: ManifestEntry): ManifestEntry {
  if (e.type === 'dir') return { path: e.path, type: 'dir', mode: e.mode };
  if (e.type === 'symlink') return { path: e.path, type: 'symlink', target: e.target };
  return { path: e.path, type: 'file', mode: e.mode, size: e.size, sha256: e.sha256 };
}

/** `sha256:<hex>` of the manifest file's exact bytes: what the release log record keeps. */
export function manifestDigest(bytes: string | Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export type ManifestRead = { ok: true; manifest: Manifest } | { ok: false; problem: string };

const HEX64 = /^[0-9a-f]{64}$/;

// Hand-checked rather than with a schema library: this runs on every deploy and verify, the shape
// is small and fixed, and the checks that matter (path safety, order, parents) are not schema rules.
/**
 * Parses a manifest file's text or bytes (bytes: the digest is of them as they are, with no
 * decoding and encoding again); anything but a well-formed manifest is a problem, never a partial result.
 */
export function parseManifest(content: string | Buffer, expectedDigest?: string): ManifestRead {
  if (expectedDigest !== undefined && manifestDigest(content) !== expectedDigest) {
    return { ok: false, problem: 'its digest does not match the release record' };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(typeof content === 'string' ? content : content.toString('utf8'));
  } catch {
    return { ok: false, problem: 'it is not valid JSON (truncated?)' };
  }
  if (!isObject(raw) || raw.format !== MANIFEST_FORMAT || !Array.isArray(raw.entries)) {
    return { ok: false, problem: `it is not an ${MANIFEST_FORMAT} manifest` };
  }
  let root: ReleaseRoot | undefined;
  if (raw.root !== undefined) {
    if (!isObject(raw.root) || !isMode(raw.root.mode)) return { ok: false, problem: 'its release directory entry (root) has an invalid mode' };
    root = { mode: raw.root.mode };
  }
  const items = raw.entries as unknown[];
  const entries: ManifestEntry[] = [];
  const dirs = new Set<string>();
  let last: string | undefined;
  for (let i = 0; i < items.length; i++) {
    const entry = entryOf(items[i]);
    if (typeof entry === 'string') return { ok: false, problem: `entry ${i + 1} ${entry}` };
    const pathProblem = manifestPathProblem(entry.path);
    if (pathProblem) return { ok: false, problem: `entry ${i + 1}: path ${JSON.stringify(entry.path)} ${pathProblem}` };
    if (last !== undefined && comparePaths(last, entry.path) >= 0) {
      return { ok: false, problem: `entry ${i + 1}: ${JSON.stringify(entry.path)} is out of order or repeated` };
    }
    const slash = entry.path.lastIndexOf('/');
    if (slash > 0 && !dirs.has(entry.path.slice(0, slash))) {
      return { ok: false, problem: `entry ${i + 1}: the parent directory of ${JSON.stringify(entry.path)} is not listed` };
    }
    if (entry.type === 'dir') dirs.add(entry.path);
    last = entry.path;
    entries.push(entry);
  }
  return { ok: true, manifest: root === undefined ? { entries } : { entries, root } };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const isMode = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 0o7777;

function entryOf(item: unknown): ManifestEntry | string {
  if (!isObject(item) || typeof item.path !== 'string') return 'has no path';
  const p = item.path;
  if (item.type === 'dir') return isMode(item.mode) ? { path: p, type: 'dir', mode: item.mode } : 'has an invalid mode';
  if (item.type === 'symlink') {
    return typeof item.target === 'string' && item.target !== '' && !item.target.includes('\0')
      ? { path: p, type: 'symlink', target: item.target }
      : 'has an invalid symlink target';
  }
  if (item.type === 'file') {
    if (!isMode(item.mode)) return 'has an invalid mode';
    if (!Number.isSafeInteger(item.size) || (item.size as number) < 0) return 'has an invalid size';
    if (typeof item.sha256 !== 'string' || !HEX64.test(item.sha256)) return 'has an invalid sha256';
    return { path: p, type: 'file', mode: item.mode, size: item.size as number, sha256: item.sha256 };
  }
  return 'has an unknown type';
}

export type DifferenceKind = 'modified' | 'added' | 'removed' | 'mode' | 'retargeted' | 'type' | 'unreadable';

export interface Difference {
  path: string;
  kind: DifferenceKind;
  /** What the manifest says, and what was found, in words (`644`, `-> ../a`, `file`). */
  expected?: string;
  actual?: string;
}

const octal = (mode: number): string => mode.toString(8).padStart(3, '0');

function describe(e: ManifestEntry): string {
  if (e.type === 'symlink') return `symlink -> ${e.target}`;
  if (e.type === 'dir') return 'directory';
  return 'file';
}

/** Kinds are lowercase ASCII words: byte order, without the ICU collator localeCompare would load. */
const byKind = (a: { kind: string }, b: { kind: string }): number => (a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0);

/**
 * Every way `actual` (a release as found now) differs from `expected` (its manifest), sorted by
 * path. A path whose type changed is one `type` difference; a file can be both `modified` and `mode`.
 */
export function diffManifests(expected: Manifest, actual: Manifest): Difference[] {
  // Filled in a loop, not from mapped pairs: 10k entries would be 10k short-lived arrays.
  const found = new Map<string, ManifestEntry>();
  for (const e of actual.entries) found.set(e.path, e);
  const out: Difference[] = [];
  // The release directory's own mode, where the manifest holds it (`.`: no entry's path can be that).
  if (expected.root !== undefined && actual.root !== undefined && expected.root.mode !== actual.root.mode) {
    out.push({ path: '.', kind: 'mode', expected: octal(expected.root.mode), actual: octal(actual.root.mode) });
  }
  for (const want of expected.entries) {
    const got = found.get(want.path);
    found.delete(want.path);
    if (got === undefined) {
      out.push({ path: want.path, kind: 'removed', expected: describe(want) });
      continue;
    }
    if (got.type !== want.type) {
      out.push({ path: want.path, kind: 'type', expected: describe(want), actual: describe(got) });
      continue;
    }
    if (want.type === 'symlink' && got.type === 'symlink') {
      if (want.target !== got.target) out.push({ path: want.path, kind: 'retargeted', expected: want.target, actual: got.target });
      continue;
    }
    if (want.type === 'file' && got.type === 'file' && (want.sha256 !== got.sha256 || want.size !== got.size)) {
      out.push({ path: want.path, kind: 'modified', expected: `${want.size} bytes sha256:${want.sha256.slice(0, 12)}`, actual: `${got.size} bytes sha256:${got.sha256.slice(0, 12)}` });
    }
    if (want.type !== 'symlink' && got.type !== 'symlink' && want.mode !== got.mode) {
      out.push({ path: want.path, kind: 'mode', expected: octal(want.mode), actual: octal(got.mode) });
    }
  }
  for (const got of found.values()) out.push({ path: got.path, kind: 'added', actual: describe(got) });
  return out.sort((a, b) => comparePaths(a.path, b.path) || byKind(a, b));
}

/** A release as found on disk: manifest entries, plus what no entry can describe (FIFOs, sockets, devices). */
export interface ReleaseTree {
  entries: ManifestEntry[];
  /** The release directory's own mode, where it was read. */
  root?: ReleaseRoot;
  special: { path: string; kind: string }[];
  /**
   * Names that are not valid UTF-8, each invalid byte as `\xNN`, and what they are: never a
   * manifest's path (deploys refuse such names), so always `added`, never compared with a listed path.
   */
  misnamed?: { path: string; kind: string }[];
  /**
   * Symlinks whose text is not valid UTF-8, escaped like names: never a manifest's target (deploys
   * refuse them), so a listed one is `retargeted`, another `added`.
   */
  mistargeted?: { path: string; target: string }[];
  /**
   * What permissions kept the walk from reading: a file (its mode, by lstat; no entry) or a
   * directory (its entry is there; nothing under it is, `''` for the release itself).
   */
  unreadable?: ({ path: string; type: 'file'; mode: number } | { path: string; type: 'dir' })[];
}

/**
 * Marks directories a walk could not list or search (`''`, the release itself): only a closed
 * directory's own entry (its mode) stands for what it holds, so what was found under it before it
 * closed is dropped, and each becomes an `unreadable` directory. Local and host verify alike.
 */
export function closeDirectories(tree: ReleaseTree, closed: readonly string[]): void {
  if (closed.length === 0) return;
  const inside = (p: string): boolean => closed.some((d) => d === '' || p.startsWith(`${d}/`));
  tree.entries = tree.entries.filter((e) => !inside(e.path));
  tree.special = tree.special.filter((e) => !inside(e.path));
  if (tree.misnamed) tree.misnamed = tree.misnamed.filter((e) => !inside(e.path));
  if (tree.mistargeted) tree.mistargeted = tree.mistargeted.filter((e) => !inside(e.path));
  if (tree.unreadable) tree.unreadable = tree.unreadable.filter((e) => !inside(e.path));
  for (const d of closed) (tree.unreadable ??= []).push({ path: d, type: 'dir' });
}

/** The entries and root mode of a tree found on disk, as a manifest to compare with. */
export function treeManifest(tree: ReleaseTree): Manifest {
  return tree.root === undefined ? { entries: tree.entries } : { entries: tree.entries, root: tree.root };
}

/**
 * Every difference between a release as found (`tree`) and its manifest, sorted by path. A FIFO,
 * socket or device has no manifest entry: it replaced what was listed (one `type` difference, what
 * was listed against what is there), or was added. A name that is not UTF-8 was added. What could
 * not be read is `unreadable` (after its `mode`): a file's content, or every listed path under a
 * directory, was not checked, and none of it is called `removed`.
 */
export function diffRelease(expected: Manifest, tree: ReleaseTree): Difference[] {
  const misnamed = tree.misnamed ?? [];
  const unreadable = tree.unreadable ?? [];
  const mistargeted = tree.mistargeted ?? [];
  if (tree.special.length === 0 && misnamed.length === 0 && unreadable.length === 0 && mistargeted.length === 0) return diffManifests(expected, treeManifest(tree));
  const listed = new Map<string, ManifestEntry>();
  for (const e of expected.entries) listed.set(e.path, e);
  // Listed paths this function answers for itself, kept from diffManifests.
  const aside = new Set<string>();
  const found: Difference[] = [];
  for (const s of tree.special) {
    const want = listed.get(s.path);
    if (want === undefined) {
      found.push({ path: s.path, kind: 'added', actual: s.kind });
    } else {
      aside.add(s.path);
      found.push({ path: s.path, kind: 'type', expected: describe(want), actual: s.kind });
    }
  }
  for (const m of misnamed) found.push({ path: m.path, kind: 'added', actual: m.kind });
  for (const m of mistargeted) {
    const want = listed.get(m.path);
    const actual = `${m.target} (not valid UTF-8)`;
    if (want === undefined) {
      found.push({ path: m.path, kind: 'added', actual: `symlink -> ${actual}` });
      continue;
    }
    aside.add(m.path);
    if (want.type === 'symlink') found.push({ path: m.path, kind: 'retargeted', expected: want.target, actual });
    else found.push({ path: m.path, kind: 'type', expected: describe(want), actual: `symlink -> ${actual}` });
  }
  const closed: string[] = [];
  for (const u of unreadable) {
    if (u.type === 'dir') {
      closed.push(u.path);
      continue;
    }
    const want = listed.get(u.path);
    if (want === undefined) {
      found.push({ path: u.path, kind: 'added', actual: 'file' });
      continue;
    }
    aside.add(u.path);
    if (want.type !== 'file') {
      found.push({ path: u.path, kind: 'type', expected: describe(want), actual: 'file' });
      continue;
    }
    if (want.mode !== u.mode) found.push({ path: u.path, kind: 'mode', expected: octal(want.mode), actual: octal(u.mode) });
    found.push({ path: u.path, kind: 'unreadable', actual: 'permission denied: its content was not checked' });
  }
  const unchecked = new Map<string, number>(closed.map((d) => [d, 0]));
  const under = (p: string): string | undefined => closed.find((d) => d === '' || p.startsWith(`${d}/`));
  const rest = expected.entries.filter((e) => {
    if (aside.has(e.path)) return false;
    const d = under(e.path);
    if (d === undefined) return true;
    unchecked.set(d, (unchecked.get(d) ?? 0) + 1);
    return false;
  });
  for (const [d, n] of unchecked) {
    const what = n === 1 ? '1 listed entry under it was' : `${n} listed entries under it were`;
    found.push({ path: d === '' ? '.' : d, kind: 'unreadable', actual: `permission denied: ${what} not checked` });
  }
  const differences = diffManifests({ entries: rest, ...(expected.root === undefined ? {} : { root: expected.root }) }, treeManifest(tree));
  differences.push(...found);
  return differences.sort((a, b) => comparePaths(a.path, b.path) || byKind(a, b));
}

/**
 * Files of `build` whose bytes a release described by `have` already holds at the same path
 * (same size and SHA-256): the only files an incremental release may take from there instead of
 * copying or sending. Mode is compared by the caller's strategy (a hardlink shares it, rsync sets it).
 */
export function unchangedFiles(build: Manifest, have: Manifest): Set<string> {
  const before = new Map<string, ManifestEntry>();
  for (const e of have.entries) if (e.type === 'file') before.set(e.path, e);
  const same = new Set<string>();
  for (const e of build.entries) {
    if (e.type !== 'file') continue;
    const b = before.get(e.path);
    if (b !== undefined && b.type === 'file' && b.size === e.size && b.sha256 === e.sha256) same.add(e.path);
  }
  return same;
}

/**
 * A record as both engines read it. Fleet hosts wrote the manifest's digest as `manifest` until
 * 2026-12-04 (the local engine always wrote `digest`): such a record is read with that value as
 * its `digest`, so either engine verifies and links from a release the other made.
 */
export function withDigest<R extends { digest?: string }>(record: R): R {
  const legacy = (record as { manifest?: unknown }).manifest;
  return record.digest === undefined && typeof legacy === 'string' ? { ...record, digest: legacy } : record;
}
