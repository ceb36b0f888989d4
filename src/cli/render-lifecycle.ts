import type { DeployResult } from '../ops/deploy.ts';
import type { DeployPlan } from '../ops/plan-deploy.ts';
import type { PruneResult } from '../ops/prune.ts';
import { formatBytes, oneLine, plural } from './output.ts';

function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
}

/** The one line that ends a deploy: what went live, how big, linked vs copied, how long, what prune removed. */
export function deploySummary(result: DeployResult & { linked?: number; copied?: number }): string {
  const made = result.linked !== undefined && result.copied !== undefined ? ` (${result.linked} linked, ${result.copied} copied)` : '';
  let line = `deployed ${result.release}: ${plural(result.files, 'file')}${made}, ${formatBytes(result.bytes)} in ${formatMs(result.durationMs)}`;
  if (result.previous) line += `; previous: ${oneLine(result.previous)}`;
  if (result.prune) line += `; ${pruneSummary(result.prune)}`;
  return line;
}

function pruneSummary(result: PruneResult): string {
  const n = result.removed.length;
  if (n === 0) return 'pruned nothing';
  const verb = result.dryRun ? 'would prune' : 'pruned';
  return `${verb} ${plural(n, 'release')} (${result.removed.map((r) => oneLine(r.id)).join(', ')})`;
}

function keptLines(kept: PruneResult['kept']): string[] {
  return kept.map((k) => `  keep    ${oneLine(k.id)}  ${k.reason}`);
}

function removedLines(removed: PruneResult['removed'], dryRun: boolean): string[] {
  return removed.map((r) => {
    const size = r.files !== undefined ? ` (${plural(r.files, 'file')}, ${formatBytes(r.bytes ?? 0)})` : '';
    return `  ${dryRun ? 'remove' : 'removed'} ${oneLine(r.id)}  ${r.reason}${size}`;
  });
}

/** What `prune` did, or with --dry-run would do, and why each kept release stays. */
export function renderPrune(result: PruneResult): string {
  const lines: string[] = [];
  lines.push(...removedLines(result.removed, result.dryRun), ...keptLines(result.kept));
  if (result.inUseCheck === 'unavailable') lines.push('  note: no /proc here, so releases in use by running processes could not be detected');
  const head = result.dryRun
    ? `dry run: would remove ${plural(result.removed.length, 'release')}, keep ${result.kept.length}`
    : `removed ${plural(result.removed.length, 'release')}, kept ${result.kept.length}${result.removed.length > 0 ? ` (renames ${formatMs(result.renameMs)}, delete ${formatMs(result.deleteMs)})` : ''}`;
  return [head, ...lines].join('\n');
}

/**
 * The hooks, health check, reloads and stale-process policy of a deploy plan, a line each, as the
 * local and the fleet dry runs print them (`previous`: the release left, where one is known).
 */
export function afterSwitchPlanLines(plan: Pick<DeployPlan, 'hooks' | 'healthCheck' | 'reload' | 'stale'> & { previous: string | null }): string[] {
  const lines: string[] = [];
  const hookLine = (when: string, cmds: string[]): void => {
    for (const cmd of cmds) lines.push(`hook:     ${when}: ${cmd}`);
  };
  hookLine('before switch', plan.hooks.beforeSwitch);
  hookLine('after switch', plan.hooks.afterSwitch);
  if (plan.hooks.beforeSwitch.length + plan.hooks.afterSwitch.length === 0) lines.push('hooks:    none');
  if (plan.healthCheck) {
    const parts = [plan.healthCheck.url ? `GET ${plan.healthCheck.url}` : '', plan.healthCheck.command ? `run ${plan.healthCheck.command}` : ''].filter(Boolean);
    lines.push(`health:   ${parts.join(' and ')}${plan.healthCheck.timeoutMs !== undefined ? ` within ${formatMs(plan.healthCheck.timeoutMs)}` : ''}`);
  }
  if (plan.reload) {
    const what = [...plan.reload.units.map((u) => `unit ${u}`), ...plan.reload.phpFpm.map((f) => `php-fpm (${f})`)];
    lines.push(`reload:   ${what.join(', ')}, each within ${plan.reload.timeoutMs / 1000} s`);
  }
  const left = plan.previous ?? 'the release left';
  const staleLine = {
    off: 'off: no check for processes still on the release left',
    warn: `warn: processes still on ${left} after the switch are named${plan.stale.waitMs > 0 ? `, after waiting up to ${plan.stale.waitMs / 1000} s for them to go` : ''}`,
    fail: `fail: processes still on ${left} after ${plan.stale.waitMs / 1000} s fail the deploy (exit 6; the switch stands)`,
  }[plan.stale.mode];
  if (plan.previous !== null || plan.stale.mode !== 'warn') lines.push(`stale:    ${staleLine}`);
  return lines;
}

/** The plan `deploy --dry-run` prints; a note already said as a warning (`said`) is not said again. */
export function renderPlan(plan: DeployPlan, said: readonly string[] = []): string {
  const lines: string[] = [];
  lines.push(`dry run: nothing was changed`);
  lines.push(`release:  ${plan.release} (${plan.path})`);
  lines.push(`source:   ${plan.source}`);
  lines.push(`contents: ${plural(plan.files, 'file')}, ${plural(plan.dirs, 'directory', 'directories')}, ${plural(plan.symlinks, 'symlink')}, ${formatBytes(plan.bytes)}; strategy ${plan.strategy}${plan.fsync ? '' : ', no fsync'}`);
  lines.push(`previous: ${plan.previous ?? '(none: first deploy)'}`);
  if (plan.shared.length === 0) lines.push('shared:   none');
  for (const s of plan.shared) {
    const how = [s.create ? `missing: would be made an empty ${s.type === 'file' ? 'file' : 'directory'}` : '', s.replaces ? 'would replace the source copy' : ''].filter(Boolean).join(', ');
    lines.push(`shared:   ${s.link} -> ${s.target}${how ? ` (${how})` : ''}`);
  }
  lines.push(...afterSwitchPlanLines(plan));
  if (plan.prune) {
    lines.push(`prune:    keep ${plan.prune.keep}: would remove ${plan.prune.remove.length === 0 ? 'nothing' : plural(plan.prune.remove.length, 'release')}`);
    lines.push(...removedLines(plan.prune.remove, true).map((l) => `  ${l}`), ...keptLines(plan.prune.kept).map((l) => `  ${l}`));
  }
  for (const note of plan.notes.filter((n) => !said.includes(n))) lines.push(`note:     ${note}`);
  // A path or command holding a newline or an escape cannot add a line or move the cursor.
  return lines.map(oneLine).join('\n');
}
