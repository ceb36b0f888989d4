import type { ReleasesResult } from '../ops/releases.ts';
import type { StatusResult } from '../ops/status.ts';
import type { VerifyResult } from '../ops/verify-release.ts';
import { DeployError } from '../errors.ts';
import { shellWord } from '../plan/paths.ts';
import { formatBytes, oneLine, plural, type Colors } from './output.ts';

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}

/**
 * The deploy stands but an after-switch hook or reload failed: CI must notice, so it is an error
 * with its own exit code (7), locally and on a fleet. `rollback`: the command that goes back.
 */
export function afterSwitchError(release: string, message: string, rollback: string): DeployError {
  return new DeployError('AFTER_SWITCH_FAILED', message, {
    hint: `the switch stands; fix what the hook or reload does and run it by hand, or roll back: ${rollback}`,
    details: { release, live: true },
  });
}

/** The warning (message, hint) for a release whose log record is damaged: on a local root, or with `host` on a fleet host. */
export function damagedRecordWarning(id: string, why: string, host?: string): [string, string] {
  const on = host === undefined ? '' : `${host}: `;
  const where = host === undefined ? '' : ` on ${host}`;
  return [`${on}the release log record of ${oneLine(id)} is damaged (${why}): it is listed, ordered and rolled back to as a release without one`, `its record is .atomic-deploy/releases/${oneLine(id)}.json${where}; verify cannot check the release without it`];
}

/**
 * A release's role as the tables say it: the role, then what its record adds that the role hides.
 * The live release marked failed (a first deploy whose health check failed stays live: nothing to
 * go back to) says `failed`, from the record's `status`; one live unverified says `unverified`
 * (an after-switch hook or reload failed and no health check decided, exit 7: `afterSwitchFailure`).
 * `--json` has both record fields as they are, beside `role`.
 */
export function roleWords(role: string, record: { status?: string; afterSwitchFailure?: string } | undefined): string {
  const failed = role === 'active' && (record?.status === 'failed' || record?.status === 'rolled-back') ? `, ${record.status}` : '';
  return `${role}${failed}${record?.afterSwitchFailure === undefined ? '' : ', unverified'}`;
}

const HEADER = ['', 'RELEASE', 'STATUS', 'CREATED (UTC)', 'ACTIVATED (UTC)', 'BY', 'FILES', 'SIZE', 'TOOK', 'COMMIT', 'DIGEST', 'SOURCE'];

/**
 * Newest first, the same columns on a terminal and in a pipe (`| grep` keeps dates and commits);
 * the header only for a person at a terminal, so a pipe gets data lines alone.
 */
export function renderReleases(result: ReleasesResult, options: { header: boolean; colors?: Colors }): string {
  if (result.releases.length === 0) return 'no releases';
  const rows = options.header ? [HEADER] : [];
  // The digest, shortened like a git commit: enough to tell releases apart at a glance.
  const digest = (d: string | undefined): string => (d ? d.slice(0, 'sha256:'.length + 12) : '');
  const time = (iso: string | undefined): string => (iso ? iso.replace('T', ' ').slice(0, 19) : '');
  for (const r of result.releases) {
    const rec = r.record;
    rows.push([
      // Padded before colouring: the escape codes would throw the column widths off.
      r.current ? '*' : ' ',
      oneLine(r.id),
      roleWords(r.role, rec),
      time(rec?.createdAt),
      time(rec?.activatedAt),
      rec?.user ? `${rec.user}@${rec.host}` : '',
      rec?.files ? String(rec.files) : '',
      rec?.bytes ? formatBytes(rec.bytes) : '',
      rec?.durationMs ? `${(rec.durationMs / 1000).toFixed(1)} s` : '',
      rec?.git ? `${rec.git.commit.slice(0, 10)}${rec.git.dirty ? '+dirty' : ''}` : '',
      digest(rec?.digest),
      rec?.source ?? '',
    ]);
  }
  // Every row is as wide as the header would make it, so a pipe's columns match the terminal's.
  const text = table([HEADER, ...rows.slice(options.header ? 1 : 0)]);
  const lines = options.header ? text : text.split('\n').slice(1).join('\n');
  const green = options.colors?.green ?? ((s: string) => s);
  return lines.replace(/^\*/gm, green('*'));
}

/** A lock as `status` says it, locally and in a fleet's LOCK column: who holds it, since when, and the verdict's reason. */
export function describeLockStatus(lock: NonNullable<StatusResult['lock']>): string {
  const who = lock.pid === null ? 'unknown owner' : `pid ${lock.pid} of ${lock.user}@${lock.host}`;
  return `${lock.state} by ${who} since ${lock.since} (${lock.reason})`;
}

/** `root` as the user named it: the hint's command runs from where they are. */
export function renderStatus(result: StatusResult, root: string): string {
  const lines: string[] = [];
  // An id is escaped before the lines are joined: another tool's release may hold a newline in its name.
  lines.push(`current: ${result.current === null ? `(${result.currentState})` : oneLine(result.current)}`);
  if (result.lastLive !== undefined && result.currentState === 'missing') lines.push(`note:    current is missing; the release log says ${oneLine(result.lastLive)} is the last good release that was live: restore it with atomic-deploy rollback ${oneLine(shellWord(root))} --to ${oneLine(shellWord(result.lastLive))}`);
  if (result.lock) {
    lines.push(`lock:    ${describeLockStatus(result.lock)}`);
  } else {
    lines.push('lock:    free');
  }
  if (result.running) lines.push(`running: ${result.running}`);
  if (result.recovered.length > 0) lines.push(...result.recovered.map((l) => `recovered: ${l}`));
  else if (result.leftovers.length > 0) lines.push(...result.leftovers.map((l) => `leftover: ${l}`));
  return lines.join('\n');
}

/** A path as it can be printed on one line: quoted and escaped when it holds control characters. */
export function printable(p: string): string {
  for (let i = 0; i < p.length; i++) {
    const c = p.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return JSON.stringify(p);
  }
  return p;
}

/** One line per difference (kind, path, what the manifest says → what is there), then the verdict. */
export function renderVerify(result: VerifyResult): string {
  const what = `${plural(result.files, 'file')}, ${plural(result.dirs, 'directory', 'directories')}, ${plural(result.symlinks, 'symlink')}`;
  if (result.identical) return `release ${result.release} matches its manifest (${what}; ${result.digest.slice(0, 'sha256:'.length + 12)})`;
  const width = Math.max(...result.differences.map((d) => d.kind.length));
  const lines = result.differences.map((d) => {
    const change = d.expected !== undefined && d.actual !== undefined ? `  (${d.expected} -> ${d.actual})` : d.actual !== undefined ? `  (${d.actual})` : d.expected !== undefined ? `  (was ${d.expected})` : '';
    return `${d.kind.padEnd(width)}  ${printable(d.path)}${change}`;
  });
  const n = result.differences.length;
  lines.push(`release ${result.release} differs from its manifest: ${plural(n, 'difference')}`);
  return lines.join('\n');
}

export { withoutHost } from '../plan/fleet.ts';
