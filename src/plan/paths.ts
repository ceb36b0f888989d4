import path from 'node:path';
import { hasControlChar } from './release-id.ts';

/** The first `$NAME` or `${NAME}` in a path, as a shell would have expanded it; undefined when there is none. */
export function unexpandedVariable(p: string): string | undefined {
  return /\$(?:\{[A-Za-z_][A-Za-z0-9_]*\}|[A-Za-z_][A-Za-z0-9_]*)/.exec(p)?.[0];
}

/** True when `inner` is `outer` or lies below it (both absolute, resolved). */
export function isWithin(inner: string, outer: string): boolean {
  const rel = path.relative(outer, inner);
  // Only a whole `..` segment leaves `outer`: a directory named `..build` lies inside it.
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** Why a source cannot be deployed into a root, given both real paths; undefined if it can. */
export function sourceRootProblem(sourceReal: string, rootReal: string): string | undefined {
  if (sourceReal === rootReal) return 'the source is the deploy root';
  if (isWithin(sourceReal, rootReal)) return 'the source is inside the deploy root';
  if (isWithin(rootReal, sourceReal)) return 'the deploy root is inside the source';
  return undefined;
}

/** Why a shared path is unacceptable, or undefined: relative, normalised, no `..`. */
export function sharedPathProblem(p: string): string | undefined {
  if (p.length === 0) return 'it is empty';
  if (hasControlChar(p)) return 'it contains a control character';
  if (path.isAbsolute(p) || p.startsWith('/')) return 'it is absolute';
  const parts = p.split('/');
  if (parts.includes('..')) return 'it contains ".."';
  if (parts.some((part) => part === '' || part === '.')) return 'it is not normalised (empty or "." segment)';
  return undefined;
}

/**
 * Reads a `current` link target as a release id: `releases/<id>` relative to the root, or an
 * absolute `<root>/releases/<id>` (Capistrano writes those). undefined if it points elsewhere, or
 * goes there by way of a `..`.
 */
export function releaseIdFromLink(target: string, rootReal: string, rootGiven: string): string | undefined {
  // The kernel follows a `..` physically: `releases/p2/../p1` reaches p1 only while p2 exists.
  if (target.split(path.sep).includes('..')) return undefined;
  const candidates = path.isAbsolute(target)
    ? [path.relative(rootReal, target), path.relative(rootGiven, target)]
    : [path.normalize(target)];
  for (const rel of candidates) {
    const parts = rel.split(path.sep).filter((p) => p !== '');
    if (parts.length === 2 && parts[0] === 'releases' && parts[1] !== '..' && parts[1] !== '.') return parts[1];
  }
  return undefined;
}

/**
 * A path or word as a hint's command shows it, so that a user can paste the command into a POSIX
 * shell: as it is when no character of it is special to the shell, else single-quoted (inside
 * single quotes only `'` is special: close, an escaped quote, reopen).
 */
export function shellWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** A name's bytes as UTF-8 text where they are valid, each byte that is not as `\xNN` (for messages and differences). */
export function escapedName(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i] as number;
    const n = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    const seq = n === 0 ? undefined : bytes.subarray(i, i + n);
    // One character only if it encodes back to the same bytes: overlong forms, surrogates and cut sequences do not.
    const text = seq !== undefined && seq.length === n ? Buffer.from(seq).toString('utf8') : undefined;
    if (text !== undefined && Buffer.from(text).equals(seq as Uint8Array)) {
      out += text;
      i += n;
    } else {
      out += `\\x${lead.toString(16).padStart(2, '0')}`;
      i += 1;
    }
  }
  return out;
}

/**
 * A path that starts with `~`, read the way a shell would: `home` for `~` and `~/…`; undefined for
 * `~user/…` (whose home only the shell's lookup knows) and for any path not starting with `~`.
 */
export function tildePath(p: string, home: string): { tilde: false } | { tilde: true; expanded?: string } {
  if (!p.startsWith('~')) return { tilde: false };
  if (p === '~') return { tilde: true, expanded: home };
  if (p.startsWith('~/')) return { tilde: true, expanded: path.join(home, p.slice(2)) };
  return { tilde: true };
}

/**
 * The first failed host's hint, naming every host that failed alike: a command in it for
 * `--host web1` (unlock, say) is given for each host whose hint is the same but for its own
 * `--host`, so that a fleet locked everywhere is not told to unlock its first host alone.
 */
export function hintForAll(hosts: readonly { label: string; error?: { code: string; hint?: string } | undefined }[], first: { code: string; hint?: string }): string | undefined {
  if (first.hint === undefined) return undefined;
  const own = (h: { label: string }): string => `--host ${shellWord(h.label)}`;
  const owner = hosts.find((h) => h.error === first);
  if (owner === undefined || !first.hint.includes(own(owner))) return first.hint;
  const shape = first.hint.replace(own(owner), '\0');
  const alike = hosts.filter((h) => h.error?.code === first.code && h.error.hint?.replace(own(h), '\0') === shape);
  return alike.length < 2 ? first.hint : first.hint.replace(own(owner), alike.map(own).join(' '));
}
