/** `verify --host`: one row per host, every difference prefixed by its host, the fleet's exit code. */
import { exitCodeForSignal } from '../errors.ts';
import { fleetVerify, type FleetVerifyHost, type FleetVerifyResult } from '../remote/verify.ts';
import type { FleetCli } from './fleet.ts';
import { printable, withoutHost } from './render.ts';
import { plural } from '../plan/units.ts';

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}


function note(h: FleetVerifyHost): string {
  if (h.error) return withoutHost(h.error.message, h.host);
  if (h.identical) return `${plural(h.files ?? 0, 'file')}, ${plural(h.dirs ?? 0, 'directory').replace(/ys$/, 'ies')}, ${plural(h.symlinks ?? 0, 'symlink')}; ${(h.digest ?? '').slice(0, 'sha256:'.length + 12)}`;
  return plural(h.differences.length, 'difference');
}

/** The host table, then one line per difference naming its host. */
export function renderFleetVerify(r: FleetVerifyResult): string {
  const rows = [['HOST', 'RELEASE', 'RESULT', 'NOTE']];
  for (const h of r.hosts) rows.push([h.host, h.release ?? '?', h.error ? 'not checked' : h.identical ? 'identical' : 'differs', note(h)]);
  const diffs: string[][] = [];
  for (const h of r.hosts) {
    for (const d of h.differences) {
      const change = d.expected !== undefined && d.actual !== undefined ? `(${d.expected} -> ${d.actual})` : d.actual !== undefined ? `(${d.actual})` : d.expected !== undefined ? `(was ${d.expected})` : '';
      diffs.push([h.host, d.kind, printable(d.path), change]);
    }
  }
  return diffs.length === 0 ? table(rows) : `${table(rows)}\n\n${table(diffs)}`;
}

function summary(r: FleetVerifyResult): string {
  const n = r.hosts.length;
  if (r.identical) return `all ${plural(n, 'host')} match their manifests`;
  const parts = [`${n - r.differing.length - r.unchecked.length} of ${plural(n, 'host')} match their manifests`];
  if (r.differing.length > 0) parts.push(`differs on ${r.differing.join(', ')}`);
  if (r.unchecked.length > 0) parts.push(`not checked on ${r.unchecked.join(', ')}`);
  return parts.join('; ');
}

export async function fleetVerifyCli(cli: FleetCli, root: string | undefined, options: { release?: string }): Promise<number> {
  const result = await fleetVerify(root, {
    hosts: cli.hosts,
    ...(cli.flags.parallel ? { parallel: cli.flags.parallel } : {}),
    ...(cli.flags.sshConfig ? { ssh: { configFile: cli.flags.sshConfig } } : {}),
    ...(cli.signal ? { signal: cli.signal } : {}),
    ...(options.release !== undefined ? { release: options.release } : {}),
    onEvent: cli.out.event,
  });
  cli.out.print(renderFleetVerify(result));
  for (const h of result.hosts) if (h.error) cli.out.error(h.error.message, h.error.hint);
  cli.out.result(summary(result), result);
  if (cli.signal?.aborted) return exitCodeForSignal(cli.signal.reason as NodeJS.Signals);
  return result.exitCode;
}
