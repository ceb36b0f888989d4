/**
 * `verify --host`: a release as a host listed it (find, stat and sha256sum on the host, see
 * remote/verify-script.ts) turned back into manifest entries, and one verdict for the fleet.
 *
 * Pure: frames in, entries and exit codes out.
 */
import { isUtf8 } from 'node:buffer';
import { closeDirectories, comparePaths, type ManifestEntry, type ReleaseTree } from './manifest.ts';
import { escapedName } from './paths.ts';

/** One NUL-framed pair as the host printed it; `raw`, its bytes, when its text holds U+FFFD. */
export interface ListingFrame {
  tag: string;
  value: string;
  raw?: Uint8Array;
}

/**
 * A piece of what the host printed: its text, or, when its bytes are not UTF-8, those bytes
 * escaped (`\xNN`) and marked, since no manifest path or target can be such a name.
 */
interface Piece {
  text: string;
  misnamed: boolean;
}

const NEWLINE = 0x0a;

function pieceOf(bytes: Uint8Array): Piece {
  return isUtf8(bytes) ? { text: Buffer.from(bytes).toString('utf8'), misnamed: false } : { text: escapedName(bytes), misnamed: true };
}

/** A frame's lines as split('\n') gives them (an empty one after a final newline), each decoded on its own where the bytes were kept. */
function linesOf(f: ListingFrame): Piece[] {
  if (f.raw === undefined) return f.value.split('\n').map((text) => ({ text, misnamed: false }));
  const out: Piece[] = [];
  let start = 0;
  for (let i = f.raw.indexOf(NEWLINE); i !== -1; i = f.raw.indexOf(NEWLINE, start)) {
    out.push(pieceOf(f.raw.subarray(start, i)));
    start = i + 1;
  }
  out.push(pieceOf(f.raw.subarray(start)));
  return out;
}

/** A whole frame's value as one piece. */
const wholeOf = (f: ListingFrame): Piece => (f.raw === undefined ? { text: f.value, misnamed: false } : pieceOf(f.raw));

/** What a difference calls a thing found (local verify's words). */
function foundKind(mode: number): string {
  const kind = kindOf(mode);
  return kind === 'dir' ? 'directory' : kind;
}

const S_IFMT = 0o170000;

function kindOf(mode: number): 'dir' | 'file' | 'FIFO' | 'socket' | 'device' | 'special file' {
  switch (mode & S_IFMT) {
    case 0o040000:
      return 'dir';
    case 0o100000:
      return 'file';
    case 0o010000:
      return 'FIFO';
    case 0o140000:
      return 'socket';
    case 0o020000:
    case 0o060000:
      return 'device';
    default:
      return 'special file';
  }
}

/** `./a/b` (what find prints) as a manifest path; undefined for anything find would not print. */
function relOf(found: string): string | undefined {
  return found.startsWith('./') && found.length > 2 ? found.slice(2) : undefined;
}

/** `<hex mode> <size>`, stat -c '%f %s'. */
function statOf(text: string): { mode: number; size: number } | undefined {
  const m = /^([0-9a-f]{1,8}) (\d+)$/.exec(text);
  if (!m?.[1] || !m[2]) return undefined;
  return { mode: Number.parseInt(m[1], 16), size: Number(m[2]) };
}

/** The hash of a `sha256sum` line, whatever name follows it. */
const hashOf = (line: string): string | undefined => /^([0-9a-f]{64}) [ *]/.exec(line)?.[1];

/**
 * The release as the host listed it: a `stat` frame (`<hex mode> <size> ./path` a line), a `sums`
 * frame (sha256sum lines) for the plain names, then for each symlink a `link` frame and its
 * `target` (readlink's output, one newline added), and for each name holding a newline, a carriage
 * return or a backslash (which sha256sum would escape) an `odd` frame with its `odd-stat` and `odd-sum`.
 * A `denied` frame names a file the host's user may not read, a `closed` one a directory it may
 * not list or search (`.`, the release): reported `unreadable` as local verify reports them, with
 * nothing under a closed directory. A file stat-ed but not hashed was removed between the two passes
 * (it is left out, so it shows as removed) unless a hash failed: then the host lists the files still
 * there (a `present` frame, or an `odd-sum` other than `gone`), and such a file the host could not
 * hash for another reason is listed with an empty hash, so it shows as modified. So does every file
 * of a listing cut short before its `sums` frame. A name
 * or link target that is not UTF-8 (a frame's kept bytes say so) goes where local verify puts it:
 * `misnamed` (nothing under such a directory) or `mistargeted`, escaped.
 */
export function treeFromListing(frames: readonly ListingFrame[]): ReleaseTree {
  const stats = new Map<string, { mode: number; size: number }>();
  const sums = new Map<string, string>();
  const links = new Map<string, string>();
  // Names (and link targets) that are not UTF-8, as local verify reports them: such a name is added, such a target retargeted.
  const misnamed = new Map<string, string>();
  const mistargeted = new Map<string, string>();
  // What the host's user may not read: files, and directories it may not list or search ('' is the release).
  const denied = new Set<string>();
  const closed: string[] = [];
  // Files still there after a hash failed (undefined: none failed); odd names, hashed one by one; whether the hash pass ended.
  let present: Set<string> | undefined;
  const oddNames = new Set<string>();
  let hashed = false;
  let root: { mode: number } | undefined;
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i] as ListingFrame;
    if (f.tag === 'root-stat') {
      const st = statOf(f.value.replace(/\n$/, ''));
      if (st && kindOf(st.mode) === 'dir') root = { mode: st.mode & 0o7777 };
    } else if (f.tag === 'closed' || f.tag === 'denied') {
      // A name that is not UTF-8 is reported as misnamed, and never walked into locally.
      const name = wholeOf(f);
      const rel = name.text === '.' ? '' : relOf(name.text);
      if (rel !== undefined && !name.misnamed) {
        if (f.tag === 'denied') denied.add(rel);
        else closed.push(rel);
      }
    } else if (f.tag === 'stat') {
      for (const line of linesOf(f)) {
        const m = /^([0-9a-f]{1,8} \d+) (.*)$/.exec(line.text);
        const st = m?.[1] ? statOf(m[1]) : undefined;
        const rel = m?.[2] === undefined ? undefined : relOf(m[2]);
        if (!st || rel === undefined) continue;
        if (line.misnamed) misnamed.set(rel, foundKind(st.mode));
        else stats.set(rel, st);
      }
    } else if (f.tag === 'present') {
      present ??= new Set();
      for (const line of linesOf(f)) {
        const rel = relOf(line.text);
        if (rel !== undefined && !line.misnamed) present.add(rel);
      }
    } else if (f.tag === 'sums') {
      hashed = true;
      for (const line of linesOf(f)) {
        const hash = hashOf(line.text);
        const rel = hash === undefined ? undefined : relOf(line.text.slice(66));
        if (hash !== undefined && rel !== undefined && !line.misnamed) sums.set(rel, hash);
      }
    } else if (f.tag === 'link' && frames[i + 1]?.tag === 'target') {
      const name = wholeOf(f);
      const rel = relOf(name.text);
      const t = frames[i + 1] as ListingFrame;
      // readlink's output, one newline added.
      const target = t.raw === undefined ? { text: t.value, misnamed: false } : pieceOf(t.raw.subarray(0, t.raw.at(-1) === NEWLINE ? -1 : undefined));
      const text = t.raw === undefined && target.text.endsWith('\n') ? target.text.slice(0, -1) : target.text;
      if (rel !== undefined) {
        if (name.misnamed) misnamed.set(rel, `symlink -> ${text}`);
        else if (target.misnamed) mistargeted.set(rel, text);
        else links.set(rel, text);
      }
      i += 1;
    } else if (f.tag === 'odd' && frames[i + 1]?.tag === 'odd-stat' && frames[i + 2]?.tag === 'odd-sum') {
      const name = wholeOf(f);
      const rel = relOf(name.text);
      const st = statOf((frames[i + 1] as ListingFrame).value.replace(/\n$/, ''));
      const sum = (frames[i + 2] as ListingFrame).value;
      const hash = hashOf(sum);
      if (rel !== undefined && st) {
        if (name.misnamed) {
          misnamed.set(rel, foundKind(st.mode));
        } else if (sum !== 'gone') {
          // `gone`: removed since its stat, so left out.
          oddNames.add(rel);
          stats.set(rel, st);
          if (hash !== undefined) sums.set(rel, hash);
        }
      }
      i += 2;
    }
  }
  const tree: ReleaseTree = root === undefined ? { entries: [], special: [] } : { entries: [], special: [], root };
  for (const [rel, st] of stats) {
    const kind = kindOf(st.mode);
    if (kind === 'dir') tree.entries.push({ path: rel, type: 'dir', mode: st.mode & 0o7777 });
    else if (kind === 'file' && denied.has(rel)) (tree.unreadable ??= []).push({ path: rel, type: 'file', mode: st.mode & 0o7777 });
    else if (kind === 'file') {
      const sha256 = sums.get(rel);
      // Not found by a hash pass that failed nowhere, or not among the files still there after one failed: removed since its stat.
      if (sha256 === undefined && hashed && !oddNames.has(rel) && !(present?.has(rel) ?? false)) continue;
      tree.entries.push({ path: rel, type: 'file', mode: st.mode & 0o7777, size: st.size, sha256: sha256 ?? '' });
    } else tree.special.push({ path: rel, kind });
  }
  for (const [rel, target] of links) tree.entries.push({ path: rel, type: 'symlink', target });
  tree.entries.sort((a: ManifestEntry, b: ManifestEntry) => comparePaths(a.path, b.path));
  tree.special.sort((a, b) => comparePaths(a.path, b.path));
  if (misnamed.size > 0) {
    // As local verify: a directory whose name is not UTF-8 is one difference, not one more for everything under it.
    const dirs = [...misnamed].filter(([, kind]) => kind === 'directory').map(([rel]) => `${rel}/`);
    const kept = [...misnamed].filter(([rel]) => !dirs.some((d) => rel.startsWith(d)));
    tree.misnamed = kept.map(([path, kind]) => ({ path, kind })).sort((a, b) => comparePaths(a.path, b.path));
    for (const rel of [...mistargeted.keys()]) if (dirs.some((d) => rel.startsWith(d))) mistargeted.delete(rel);
  }
  if (mistargeted.size > 0) tree.mistargeted = [...mistargeted].map(([path, target]) => ({ path, target })).sort((a, b) => comparePaths(a.path, b.path));
  closeDirectories(tree, closed.sort(comparePaths));
  return tree;
}

/** One host's outcome: checked (identical or not), or not checked with the exit code its error carries. */
export type HostVerifyOutcome = { checked: true; identical: boolean } | { checked: false; exitCode: number };

/**
 * The fleet's exit code. A host that differs wins (5): it is a finding, and a host that could
 * not be checked must not hide it. Then any failure that is not invalid input (an unreachable
 * host: 1), then invalid input (no manifest, an untrusted one, an unknown release: 2), else 0.
 */
export function fleetVerifyExit(hosts: readonly HostVerifyOutcome[]): number {
  if (hosts.some((h) => h.checked && !h.identical)) return 5;
  const failed = hosts.filter((h): h is { checked: false; exitCode: number } => !h.checked);
  const other = failed.find((h) => h.exitCode !== 2);
  if (other) return other.exitCode;
  return failed.length > 0 ? 2 : 0;
}
