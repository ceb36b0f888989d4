/** Release ids: UTC `YYYYMMDDHHMMSS`, with `-NNN` when one second holds several deploys. */

export const MAX_RELEASE_ID_BYTES = 128;
const TIMESTAMP_ID = /^(\d{14})(?:-(\d{3}))?$/;
const MAX_SUFFIX = 999;

export function timestampOf(date: Date): string {
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0');
  return (
    pad(date.getUTCFullYear(), 4) +
    pad(date.getUTCMonth() + 1) +
    pad(date.getUTCDate()) +
    pad(date.getUTCHours()) +
    pad(date.getUTCMinutes()) +
    pad(date.getUTCSeconds())
  );
}

interface ParsedId {
  stamp: string;
  suffix: number;
}

function parseTimestampId(id: string): ParsedId | undefined {
  const m = TIMESTAMP_ID.exec(id);
  if (!m?.[1]) return undefined;
  return { stamp: m[1], suffix: m[2] === undefined ? 0 : Number(m[2]) };
}

/** Whether `id` is a timestamp id (`YYYYMMDDHHMMSS[-NNN]`): ours by default, Capistrano's, the classic bash script's. */
export function isTimestampId(id: string): boolean {
  return parseTimestampId(id) !== undefined;
}

function formatId(stamp: string, suffix: number): string {
  return suffix === 0 ? stamp : `${stamp}-${String(suffix).padStart(3, '0')}`;
}

/** Any C0 control character or DEL: they break logs, terminals and shell-free but line-based tools. */
export function hasControlChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/**
 * The next default id: distinct from every existing one and sorting after every existing
 * timestamp id, even when the clock stepped back or several deploys share a second.
 */
export function nextReleaseId(existing: Iterable<string>, now: Date): string {
  const taken = new Set(existing);
  let stamp = timestampOf(now);
  let suffix = 0;
  for (const id of taken) {
    const parsed = parseTimestampId(id);
    if (!parsed) continue;
    if (parsed.stamp > stamp) {
      stamp = parsed.stamp;
      suffix = parsed.suffix + 1;
    } else if (parsed.stamp === stamp && parsed.suffix >= suffix) {
      suffix = parsed.suffix + 1;
    }
  }
  while (suffix > MAX_SUFFIX || taken.has(formatId(stamp, suffix))) {
    if (suffix > MAX_SUFFIX) {
      stamp = bumpSecond(stamp);
      suffix = 0;
    } else {
      suffix += 1;
    }
  }
  return formatId(stamp, suffix);
}

function bumpSecond(stamp: string): string {
  const y = Number(stamp.slice(0, 4));
  const mo = Number(stamp.slice(4, 6));
  const d = Number(stamp.slice(6, 8));
  const h = Number(stamp.slice(8, 10));
  const mi = Number(stamp.slice(10, 12));
  const s = Number(stamp.slice(12, 14));
  return timestampOf(new Date(Date.UTC(y, mo - 1, d, h, mi, s + 1)));
}

/** Why an id given by the user cannot name a release directory, or undefined if it can. */
export function releaseIdProblem(id: string): string | undefined {
  if (id.length === 0) return 'it is empty';
  if (id.includes('\0')) return 'it contains a NUL byte';
  if (hasControlChar(id)) return 'it contains a control character';
  if (id.includes('/')) return 'it contains a slash';
  if (id.includes('\\')) return 'it contains a backslash';
  if (id.includes('..')) return 'it contains ".."';
  if (id.startsWith('.')) return 'it starts with "."';
  if (id.startsWith('-')) return 'it starts with "-"';
  if (Buffer.byteLength(id, 'utf8') > MAX_RELEASE_ID_BYTES) {
    return `it is longer than ${MAX_RELEASE_ID_BYTES} bytes`;
  }
  return undefined;
}

/** What a deploy may name a new release: letters (any script), digits, dots, dashes and underscores. */
const NEW_ID = /^[\p{L}\p{N}._-]+$/u;

/**
 * The layout's own names: a release called `current` would list as "current  current" and read
 * as the link in every message ("rollback to current"); `shared` and `releases` likewise.
 */
const RESERVED_IDS: ReadonlySet<string> = new Set(['current', 'shared', 'releases']);

/**
 * Why `id` may not name a new release (`--release-id`), or undefined. Stricter than
 * `releaseIdProblem`, which also takes the names other tools gave releases already on disk: a
 * space, `*`, `$(...)` or an invisible bidi mark make ids that columns, shells and eyes misread.
 */
export function newReleaseIdProblem(id: string): string | undefined {
  const problem = releaseIdProblem(id);
  if (problem !== undefined) return problem;
  if (RESERVED_IDS.has(id.toLowerCase())) return `"${id}" names a part of the deploy root's layout, which a release id would be mistaken for`;
  // Release x's stat cache is manifests/x.stat.json, which is where release x.stat's manifest would go.
  // In any case: on a case-insensitive filesystem (macOS, a CIFS share) x.STAT.json is x.stat.json.
  if (id.toLowerCase().endsWith('.stat')) {
    const base = id.slice(0, -'.stat'.length);
    const exact = id.endsWith('.stat');
    return `it ends in "${id.slice(-'.stat'.length)}": the manifest of release ${id} would be the stat cache file of release ${base}${exact ? '' : ' on a filesystem that ignores case'}`;
  }
  const bad = [...id].find((ch) => !NEW_ID.test(ch));
  if (bad === undefined) return undefined;
  // `café` typed decomposed (e + U+0301, as macOS may hand it over) looks like the composed one
  // but is other bytes: a later `--to café` typed composed would not find it. Said, with the form to write.
  const composed = id.normalize('NFC');
  if (composed !== id && [...composed].every((ch) => NEW_ID.test(ch))) return `it is written in decomposed Unicode (a letter and a combining mark apart): write it composed, ${JSON.stringify(composed)}`;
  // A character that shows as nothing or as a space (U+200B pasted with a tag, U+00A0) is named by its code point too.
  const unseen = bad !== ' ' && /^[\p{Z}\p{Cf}\p{Cc}\p{M}]$/u.test(bad) ? ` (U+${(bad.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}, which shows as nothing or as a space)` : '';
  return `it contains ${JSON.stringify(bad)}${unseen}; a new release id holds only letters, digits, dots, dashes and underscores`;
}

/**
 * Numeric-aware name order for ids made by other tools: runs of digits compare by value
 * (`9` < `10`, `v1.9` < `v1.10`), digits before other characters, the rest by code point; ties
 * (`01` and `1`) by code point, so the order is total.
 */
export function compareNames(a: string, b: string): number {
  const ca = a.match(/\d+|\D+/g) ?? [];
  const cb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const x = ca[i] as string;
    const y = cb[i] as string;
    const xd = x.charCodeAt(0) >= 0x30 && x.charCodeAt(0) <= 0x39;
    const yd = y.charCodeAt(0) >= 0x30 && y.charCodeAt(0) <= 0x39;
    if (xd && yd) {
      // Compared as text without leading zeros: no precision limit, whatever the length.
      const xs = x.replace(/^0+/, '');
      const ys = y.replace(/^0+/, '');
      if (xs.length !== ys.length) return xs.length - ys.length;
      if (xs !== ys) return xs < ys ? -1 : 1;
    } else if (xd !== yd) {
      return xd ? -1 : 1;
    } else if (x !== y) {
      return x < y ? -1 : 1;
    }
  }
  if (ca.length !== cb.length) return ca.length - cb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Natural order of ids: timestamp ids by time and suffix, then any others by `compareNames`. */
export function compareReleaseIds(a: string, b: string): number {
  const pa = parseTimestampId(a);
  const pb = parseTimestampId(b);
  if (pa && pb) {
    if (pa.stamp !== pb.stamp) return pa.stamp < pb.stamp ? -1 : 1;
    return pa.suffix - pb.suffix;
  }
  if (pa) return -1;
  if (pb) return 1;
  return compareNames(a, b);
}
