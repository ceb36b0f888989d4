/**
 * What a fleet deploy sends to a host and what it links there, decided by content: a file is
 * linked from the host's current release only when that release's trusted manifest says it holds
 * the same bytes (size and SHA-256) with the same mode, and that mode lets it be shared (the local
 * engine's guard, plan/strategy.ts linkGuard: no group or world write bit, no setuid or setgid);
 * everything else is sent. The host makes the same list from the same two manifests, links it,
 * and checks every linked file's bytes and mode against the build's manifest (see
 * remote/content-script.ts); any that differs is sent after all.
 */
import { createHash } from 'node:crypto';
import { unchangedFiles, type Manifest } from './manifest.ts';
import { linkGuard } from './strategy.ts';

export interface SendPlan {
  /** Regular files hardlinked from the previous release on the host, then checked there. */
  link: string[];
  /** Everything rsync transfers: every directory (the release's own `.` first), symlink, and file not linked. */
  send: string[];
}

/**
 * Paths the host can name exactly when it decides what to link (remote/content-script.ts
 * linkListScript): those that JSON writes with no escape (no quote, backslash or control
 * character), so that the text between the quotes of a manifest line is the path itself, and
 * `sha256sum` needs no escape for them either. Any other file is always sent, never linked.
 */
export function linkablePath(p: string): boolean {
  return !JSON.stringify(p).includes('\\');
}

/** `have` is the previous release's manifest, or null when it has none that can be trusted (then everything is sent). */
export function planSend(build: Manifest, have: Manifest | null): SendPlan {
  const same = have === null ? new Set<string>() : unchangedFiles(build, have);
  const modes = new Map<string, number>();
  if (have !== null) for (const e of have.entries) if (e.type === 'file') modes.set(e.path, e.mode);
  const link: string[] = [];
  const send: string[] = ['.'];
  for (const e of build.entries) {
    // A hardlink shares the inode's mode, so a file whose mode changed is sent, not linked; one
    // that another user may write in place, or a setuid or setgid file, keeps an inode of its own.
    if (e.type === 'file' && same.has(e.path) && modes.get(e.path) === e.mode && linkGuard(e.mode) === undefined && linkablePath(e.path)) link.push(e.path);
    else send.push(e.path);
  }
  return { link, send };
}

/**
 * The SHA-256 (hex) of the linked paths, one a line, in plan order: what the host's own list of the
 * files to link (derived from the two manifests it holds) must hash to before its check is read.
 */
export function linkListDigest(linked: readonly string[]): string {
  const hash = createHash('sha256');
  for (const p of linked) hash.update(`${p}\n`);
  return hash.digest('hex');
}

const FAILED = ': FAILED';
const UNREADABLE = ': FAILED open or read';

/**
 * The linked files the host's check found different or missing, from what `<sum> -c` printed
 * besides its `: OK` lines (`failed`) and how many `: OK` lines it printed (`ok`). GNU prints
 * `<path>: FAILED` or `<path>: FAILED open or read`, BusyBox and shasum the same; only the last
 * suffix is taken off, so a name that itself ends in `: FAILED` still reads right. Undefined when
 * the output proves less than that every linked file was checked: a line of another form, a path
 * that was not linked, or counts that do not add up. The caller then sends every linked file.
 */
export function failedChecks(failed: string, ok: number, linked: readonly string[]): string[] | undefined {
  const lines = failed.split('\n').filter((l) => l !== '');
  if (!Number.isSafeInteger(ok) || ok < 0 || ok + lines.length !== linked.length) return undefined;
  if (lines.length === 0) return [];
  const listed = new Set(linked);
  const out = new Set<string>();
  for (const line of lines) {
    const p = line.endsWith(UNREADABLE) ? line.slice(0, -UNREADABLE.length) : line.endsWith(FAILED) ? line.slice(0, -FAILED.length) : undefined;
    if (p === undefined || !listed.has(p) || out.has(p)) return undefined;
    out.add(p);
  }
  return linked.filter((p) => out.has(p));
}

/**
 * rsync's exclude rules (for `--exclude-from` with `--from0`) that keep it off the given names at
 * the top of the release: the files linked there, and the paths the host links to `shared/`. The
 * send list names the release's own directory as `.` (for its mode and times), and rsync reads a
 * listed `.` as its contents one level deep (as `rsync -d src/ dst/` does): without these rules
 * every file at the top of the release was sent again, over its link, on every redeploy. Deeper
 * files are safe: a listed directory is sent without its contents. One anchored rule per name
 * (`/name`); rsync reads a backslash as an escape only in a pattern that holds a wildcard
 * character, so such a name has its wildcards and backslashes escaped and any other is literal.
 */
export function topLevelExcludes(names: Iterable<string>): string[] {
  const out: string[] = [];
  for (const p of names) {
    if (p.includes('/') || p === '' || p === '.') continue;
    out.push(`/${/[*?[]/.test(p) ? p.replace(/[*?[\\]/g, (c) => `\\${c}`) : p}`);
  }
  return out;
}

/** The top-level names rsync must leave alone (topLevelExcludes): the linked files that passed the host's check, and the paths left out of the send. */
export function untouchedNames(plan: SendPlan, failed: readonly string[], exclude: readonly string[]): string[] {
  const resent = new Set(failed);
  return [...plan.link.filter((p) => !resent.has(p)), ...exclude];
}

/** The send list with the failed links added back, in manifest order (parents before children). */
export function withResent(plan: SendPlan, failed: readonly string[]): string[] {
  if (failed.length === 0) return plan.send;
  const extra = new Set(failed);
  return [...plan.send, ...plan.link.filter((p) => extra.has(p))];
}

