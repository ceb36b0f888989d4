import type { ReleasesResult } from '../ops/releases.ts';
import type { StatusResult } from '../ops/status.ts';
import { formatBytes, type Colors } from './output.ts';

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}

const HEADER = ['', 'RELEASE', 'STATUS', 'CREATED (UTC)', 'ACTIVATED (UTC)', 'BY', 'FILES', 'SIZE', 'TOOK', 'COMMIT', 'SOURCE'];

/**
 * Newest first, the same columns on a terminal and in a pipe (`| grep` keeps dates and commits);
 * the header only for a person at a terminal, so a pipe gets data lines alone.
 */
export function renderReleases(result: ReleasesResult, options: { header: boolean; colors?: Colors }): string {
  if (result.releases.length === 0) return 'no releases';
  const rows = options.header ? [HEADER] : [];
  const time = (iso: string | undefined): string => (iso ? iso.replace('T', ' ').slice(0, 19) : '');
  for (const r of result.releases) {
    const rec = r.record;
    rows.push([
      // Padded before colouring: the escape codes would throw the column widths off.
      r.current ? '*' : ' ',
      r.id,
      r.role,
      time(rec?.createdAt),
      time(rec?.activatedAt),
      rec?.user ? `${rec.user}@${rec.host}` : '',
      rec?.files ? String(rec.files) : '',
      rec?.bytes ? formatBytes(rec.bytes) : '',
      rec?.durationMs ? `${(rec.durationMs / 1000).toFixed(1)} s` : '',
      rec?.git ? `${rec.git.commit.slice(0, 10)}${rec.git.dirty ? '+dirty' : ''}` : '',
      rec?.source ?? '',
    ]);
  }
  // Every row is as wide as the header would make it, so a pipe's columns match the terminal's.
  const text = table([HEADER, ...rows.slice(options.header ? 1 : 0)]);
  const lines = options.header ? text : text.split('\n').slice(1).join('\n');
  const green = options.colors?.green ?? ((s: string) => s);
  return lines.replace(/^\*/gm, green('*'));
}

export function renderStatus(result: StatusResult): string {
  const lines: string[] = [];
  lines.push(`current: ${result.current ?? `(${result.currentState})`}`);
  if (result.lock) {
    const who = result.lock.pid === null ? 'unknown owner' : `pid ${result.lock.pid} of ${result.lock.user}@${result.lock.host}`;
    lines.push(`lock:    ${result.lock.state} by ${who} since ${result.lock.since} (${result.lock.reason})`);
  } else {
    lines.push('lock:    free');
  }
  if (result.running) lines.push(`running: ${result.running}`);
  if (result.recovered.length > 0) lines.push(...result.recovered.map((l) => `recovered: ${l}`));
  else if (result.leftovers.length > 0) lines.push(...result.leftovers.map((l) => `leftover: ${l}`));
  return lines.join('\n');
}
