/**
 * What a fleet deploy sends to a host and what it links there, decided by content: a file is
 * linked from the host's current release only when that release's trusted manifest says it holds
 * the same bytes (size and SHA-256) with the same mode; everything else is sent. The host then
 * re-hashes every linked file (see remote/content.ts), and any that differs is sent after all.
 */
import { unchangedFiles, type Manifest } from './manifest.ts';

export interface SendPlan {
  /** Regular files hardlinked from the previous release on the host, then checked there. */
  link: string[];
  /** Everything rsync transfers: every directory (the release's own `.` first), symlink, and file not linked. */
  send: string[];
}

/**
 * Paths a host-side hash listing cannot name unambiguously (`sha256sum` escapes a newline or
 * backslash in a name): such files are always sent, never linked.
 */
export function linkablePath(p: string): boolean {
  return !p.includes('\n') && !p.includes('\\') && !p.includes('\r');
}

/** `have` is the previous release's manifest, or null when it has none that can be trusted (then everything is sent). */
export function planSend(build: Manifest, have: Manifest | null): SendPlan {
  const same = have === null ? new Set<string>() : unchangedFiles(build, have);
  const modes = new Map<string, number>();
  if (have !== null) for (const e of have.entries) if (e.type === 'file') modes.set(e.path, e.mode);
  const link: string[] = [];
  const send: string[] = ['.'];
  for (const e of build.entries) {
    // A hardlink shares the inode's mode, so a file whose mode changed is sent, not linked.
    if (e.type === 'file' && same.has(e.path) && modes.get(e.path) === e.mode && linkablePath(e.path)) link.push(e.path);
    else send.push(e.path);
  }
  return { link, send };
}

/** Linked files whose bytes on the host (`sums`: path -> sha256 as the host computed it) are not the build's. */
export function failedLinks(build: Manifest, linked: readonly string[], sums: ReadonlyMap<string, string>): string[] {
  const want = new Map<string, string>();
  for (const e of build.entries) if (e.type === 'file') want.set(e.path, e.sha256);
  return linked.filter((p) => sums.get(p) === undefined || sums.get(p) !== want.get(p));
}

/** Reads `sha256sum` output (`<hex>  <path>`, or `<hex> *<path>` in binary mode); lines it cannot read are left out. */
export function parseSums(output: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of output.split('\n')) {
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (m?.[1] && m[2]) sums.set(m[2].startsWith('./') ? m[2].slice(2) : m[2], m[1]);
  }
  return sums;
}

/** The send list with the failed links added back, in manifest order (parents before children). */
export function withResent(plan: SendPlan, failed: readonly string[]): string[] {
  if (failed.length === 0) return plan.send;
  const extra = new Set(failed);
  return [...plan.send, ...plan.link.filter((p) => extra.has(p))];
}

