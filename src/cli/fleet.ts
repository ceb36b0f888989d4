/** The `--host` side of every command: flags, per-host tables, one JSON object, exit codes. */
import { compareReleaseIds } from '../plan/release-id.ts';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { DeployError, EXIT, exitCodeForSignal } from '../errors.ts';
import type { DeployOptions } from '../ops/deploy.ts';
import type { FleetDeployResult } from '../remote/deploy.ts';
import type { ServingOptions } from '../ops/serving.ts';
import type { FleetDeployOptions, FleetDeployPlan, FleetHostSpec, FleetOptions, FleetPruneHost, FleetReleasesResult, FleetWave } from '../remote/ops.ts';
import type * as RemoteOps from '../remote/ops.ts';

// Loaded when a command reaches hosts: reading a local root needs none of ssh, rsync or the sh programs.
const remote = (): Promise<typeof RemoteOps> => import('../remote/ops.ts');
import type { LoadedConfig } from './config.ts';
import type { Reporter } from './output.ts';
import { afterSwitchError, damagedRecordWarning, describeLockStatus, roleWords, withoutHost } from './render.ts';
import { afterSwitchPlanLines } from './render-lifecycle.ts';
import { formatBytes, oneLine } from './output.ts';
import { COUNTS } from '../plan/validate.ts';
import { countFlag, secondsFlag } from './number-flags.ts';
import { parseMaxFail, parseWaves, type Size } from '../plan/waves.ts';
import { namesWithVerb, plural } from '../plan/units.ts';
import { hintForAll, shellWord } from '../plan/paths.ts';

export interface FleetFlags {
  host?: string[];
  parallel?: number;
  sshConfig?: string;
  onFailure?: 'rollback' | 'keep';
  waves?: Size[];
  wavePause?: number;
  maxFail?: Size;
}

function parseWavesFlag(value: string): Size[] {
  const sizes = parseWaves(value);
  if (typeof sizes === 'string') throw new InvalidArgumentError(sizes.replace(/^invalid --waves /, ''));
  return sizes;
}

function parseMaxFailFlag(value: string): Size {
  const size = parseMaxFail(value);
  if (typeof size === 'string') throw new InvalidArgumentError(size.replace(/^invalid --max-fail /, ''));
  return size;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `--host`, `--parallel`, `--ssh-config`; deploy also gets `--on-failure`. */
export function addFleetFlags(cmd: Command, options: { deploy?: boolean } = {}): Command {
  cmd
    .option('--host <[user@]host[:port]>', 'run on this host over ssh, <root> being the deploy root there (repeatable; default: hosts: in the config)', collect)
    .addOption(new Option('--parallel <n>', 'with --host: hosts worked on at once (default 10)').argParser(countFlag(COUNTS.parallel)))
    .option('--ssh-config <file>', 'with --host: ssh_config file for ssh -F (default: ~/.ssh/config)');
  if (options.deploy) {
    cmd.addOption(new Option('--on-failure <policy>', 'with --host: beyond the failure budget, switch every switched host in every wave back (rollback, the default) or keep them').choices(['rollback', 'keep']));
    cmd.addOption(new Option('--waves <sizes>', 'with --host: roll out in waves, e.g. 1,10%,100% (first host alone, then 10% of the hosts, then the rest); each wave is switched and health-checked before the next').argParser(parseWavesFlag));
    cmd.addOption(new Option('--wave-pause <seconds>', 'with --waves: pause between waves').argParser(secondsFlag()));
    cmd.addOption(new Option('--max-fail <n|p%>', 'with --host: failed hosts tolerated across the whole rollout (default 0: all-or-nothing); the rest commit, the failed ones go back').argParser(parseMaxFailFlag));
  }
  return cmd;
}

/**
 * The flags that mean something only on hosts, in the order --help lists them. Not --ssh-config:
 * like ssh's own settings it may be set for a whole environment (ATOMIC_DEPLOY_SSH_CONFIG) in
 * which local commands run too.
 */
const FLEET_ONLY: readonly (readonly [keyof FleetFlags, string])[] = [
  ['parallel', '--parallel'],
  ['onFailure', '--on-failure'],
  ['waves', '--waves'],
  ['wavePause', '--wave-pause'],
  ['maxFail', '--max-fail'],
];

/** A command run on the local root refuses the fleet's flags (given or from ATOMIC_DEPLOY_*) rather than ignore them. */
export function refuseFleetFlags(flags: FleetFlags): void {
  const given = FLEET_ONLY.filter(([key]) => flags[key] !== undefined).map(([, flag]) => flag);
  if (given.length === 0) return;
  throw new DeployError('USAGE', `${namesWithVerb(given, 'applies', 'apply')} only with --host`, { hint: 'add --host [user@]host[:port] (repeatable), or hosts: in the config' });
}

/**
 * The rollout keys: flags, else the config's `waves`, `wavePause`, `maxFail`, `onFailure`. A
 * `--wave-pause` on the command line (`onCommandLine`) with no waves, from a flag or the config,
 * is refused (exit 2) as the other tuning flags are (idle-flags.ts): one wave has no pause.
 */
export function rolloutFrom(flags: FleetFlags, loaded: LoadedConfig, onCommandLine: (flag: 'wavePause') => boolean = () => false): Pick<FleetDeployOptions, 'waves' | 'wavePauseMs' | 'maxFail' | 'onFailure'> {
  const c = loaded.config;
  const waves = flags.waves ?? (c.waves === undefined ? undefined : parseWaves(String(c.waves)));
  if (waves === undefined && flags.wavePause !== undefined && onCommandLine('wavePause')) {
    throw new DeployError('USAGE', '--wave-pause applies only with --waves; without them it would change nothing', { hint: 'add --waves <sizes> (for example 1,10%,100%; or waves: in the config), or leave out --wave-pause' });
  }
  const maxFail = flags.maxFail ?? (c.maxFail === undefined ? undefined : parseMaxFail(String(c.maxFail)));
  const pause = flags.wavePause ?? c.wavePause;
  const onFailure = flags.onFailure ?? c.onFailure;
  return {
    ...(waves !== undefined && typeof waves !== 'string' ? { waves } : {}),
    ...(maxFail !== undefined && typeof maxFail !== 'string' ? { maxFail } : {}),
    ...(pause !== undefined ? { wavePauseMs: pause * 1000 } : {}),
    ...(onFailure !== undefined ? { onFailure } : {}),
  };
}

/**
 * The hosts a command runs on: `--host` flags, else the config's `hosts:`; undefined runs locally,
 * and then a fleet-only flag is refused (exit 2) before anything is read or written.
 */
export function fleetHostsFrom(flags: FleetFlags, loaded: LoadedConfig): FleetHostSpec[] | undefined {
  if (flags.host && flags.host.length > 0) return flags.host.map((host) => ({ host }));
  const hosts = loaded.config.hosts;
  if (!hosts || hosts.length === 0) {
    refuseFleetFlags(flags);
    return undefined;
  }
  return hosts.map((h) => ({ host: h.host, ...(h.root ? { root: h.root } : {}) }));
}

/**
 * The common remote root: the argument, else the config's root (remote roots are absolute, so not
 * resolved here). A root on the command line beside hosts whose config entries name roots of their
 * own is refused: it would apply to the other hosts only, and those hosts would go on in their own
 * root unseen, the opposite of what the argument says.
 */
export function fleetRootFrom(arg: string | undefined, loaded: LoadedConfig, hosts: readonly FleetHostSpec[]): string | undefined {
  const own = arg === undefined ? [] : hosts.filter((h) => h.root !== undefined && h.root !== arg);
  const first = own[0];
  if (first !== undefined) {
    throw new DeployError('USAGE', `${own.map((h) => h.host).join(', ')} ${own.length === 1 ? 'has its own root' : 'have their own roots'} in the config file (${first.root ?? ''}${own.length > 1 ? ', ...' : ''}), which the root given on the command line (${arg ?? ''}) would not replace`, {
      hint: `leave out <root> to deploy each host to its own root, or remove root: from ${own.length === 1 ? 'that host\'s entry' : 'those hosts\' entries'} in ${loaded.file ?? 'the config file'}`,
    });
  }
  return arg ?? loaded.config.root;
}

export interface FleetCli {
  out: Reporter;
  hosts: FleetHostSpec[];
  flags: FleetFlags;
  signal?: AbortSignal;
}

function base(cli: FleetCli): FleetOptions {
  return {
    hosts: cli.hosts,
    ...(cli.flags.parallel ? { parallel: cli.flags.parallel } : {}),
    ...(cli.flags.sshConfig ? { ssh: { configFile: cli.flags.sshConfig } } : {}),
    ...(cli.signal ? { signal: cli.signal } : {}),
    onEvent: cli.out.event,
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  ').trimEnd()).join('\n');
}

interface HostRow {
  host: string;
  current?: string | null;
  outcome?: string;
  previous?: string | null;
  reached?: boolean;
  leftovers?: boolean;
  error?: { message: string };
}

function hostTable(hosts: readonly HostRow[], extra?: (h: HostRow) => string): string {
  const rows = [['HOST', 'STATE', 'CURRENT', 'PREVIOUS', 'NOTE']];
  for (const h of hosts) {
    const unknown = h.outcome === 'unknown' || h.reached === false;
    const notes = [h.error ? withoutHost(h.error.message, h.host) : (extra?.(h) ?? '')];
    if (h.leftovers) notes.push('its lock or prepared release may remain: the next command there recovers them');
    rows.push([h.host, h.outcome ?? '', unknown ? '?' : (h.current ?? '-'), unknown && h.reached === false ? '?' : (h.previous ?? '-'), notes.filter(Boolean).join('; ')]);
  }
  return table(rows);
}

/** Runs a fleet command: prints its table and its one JSON object, and says which exit code it earned. */
async function run<T extends object>(
  cli: FleetCli,
  op: () => Promise<T>,
  render: (result: T) => { table?: string; line?: string; code?: number; error?: DeployError },
  /** The table of a failed run from the hosts its error carries, when the command's own columns say more than the generic ones. */
  failedTable?: (hosts: readonly HostRow[], details: Record<string, unknown>) => string,
): Promise<number> {
  try {
    const result = await op();
    const shown = render(result);
    if (shown.table !== undefined) cli.out.print(shown.table);
    // An outcome that is an error although the command finished (exit 7): the result line, then the error, as locally.
    const failed = shown.error;
    cli.out.result(shown.line, failed ? { ...result, error: { code: failed.code, message: failed.message, ...(failed.hint ? { hint: failed.hint } : {}), ...failed.details } } : result);
    if (failed) cli.out.error(failed.message, failed.hint);
    if (cli.signal?.aborted) return exitCodeForSignal(cli.signal.reason as NodeJS.Signals);
    return failed?.exitCode ?? shown.code ?? EXIT.ok;
  } catch (error) {
    if (!(error instanceof DeployError)) throw error;
    const details = error.details ?? {};
    if (error.code === 'STALE_PROCESSES' && typeof details.release === 'string') {
      // `--stale fail` (exit 6): the command finished and its switch stands; said as its success is,
      // then the error, which names the release, that it is live, and what still runs (as locally).
      const shown = render(details as T);
      if (shown.table !== undefined) cli.out.print(shown.table);
      cli.out.result(shown.line, { ...details, error: { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}), release: details.release, live: true, stale: details.stale } });
      cli.out.error(error.message, error.hint);
      return error.exitCode;
    }
    const hosts = details.hosts as HostRow[] | undefined;
    if (hosts && hosts.length > 0) cli.out.print(failedTable ? failedTable(hosts, details) : hostTable(hosts));
    cli.out.error(error.message, error.hint);
    // Even an error before any host was reached names the hosts, so the object always has `hosts`.
    const hint = cli.out.hintFor(error.message, error.hint);
    // A switch that stands although the command failed (its bookkeeping on a host, a failed check with nothing to go back to): said in fields too, as locally.
    const live = details.live === true && typeof details.release === 'string' ? { release: details.release, live: true } : {};
    cli.out.result(undefined, { hosts: cli.hosts.map((h) => ({ host: h.host })), ...details, error: { code: error.code, message: error.message, ...(hint ? { hint } : {}), ...live } });
    return error.exitCode;
  }
}

const skew = (r: { skewMs: number; hostSkewMs?: number }): string => `${r.skewMs} ms${r.hostSkewMs === undefined ? '' : `, ${r.hostSkewMs} ms by the hosts' clocks`}`;

/** `; pruned …` as a local deploy's line ends with --keep: the releases pruned on any host (which where, in the table). */
function prunedPart(hosts: readonly { pruned?: string[] }[]): string {
  if (!hosts.some((h) => h.pruned !== undefined)) return '';
  const ids = [...new Set(hosts.flatMap((h) => h.pruned ?? []))];
  return ids.length === 0 ? '; pruned nothing' : `; pruned ${plural(ids.length, 'release')} (${ids.join(', ')})`;
}

/** One line per wave, before the host table. */
function waveLines(waves: readonly FleetWave[]): string {
  if (waves.length < 2) return '';
  return `${waves
    .map((w) => `wave ${w.wave}/${waves.length}  ${w.result.padEnd(7)}  ${plural(w.hosts.length, 'host')}${w.durationMs !== undefined ? `  ${w.durationMs} ms` : ''}${w.failed && w.failed.length > 0 ? `  failed: ${w.failed.join(', ')}` : ''}  (${w.hosts.join(', ')})`)
    .join('\n')}\n`;
}

/** The plan `deploy --dry-run --host` prints: the local plan's lines, then a row per host. */
export function renderFleetPlan(p: FleetDeployPlan): string {
  const lines = [
    'dry run: nothing was changed on any host',
    `release:  ${p.release} on ${plural(p.hosts.length, 'host')}`,
    `source:   ${p.source}`,
    `contents: ${plural(p.files, 'file')}, ${plural(p.dirs, 'directory', 'directories')}, ${plural(p.symlinks, 'symlink')}, ${formatBytes(p.bytes)}; strategy ${p.strategy}${p.fsync ? '' : ', no fsync'}; what each host is sent is decided under its lock, by manifest against its current release`,
  ];
  const links = p.hosts[0]?.shared ?? [];
  if (links.length === 0) lines.push('shared:   none');
  for (const l of links) lines.push(`shared:   releases/${p.release}/${l.path} -> ${l.target}`);
  // The release left: named when every host is on the same one.
  const previous = new Set(p.hosts.map((h) => h.previous));
  lines.push(...afterSwitchPlanLines({ ...p, previous: previous.size === 1 ? (p.hosts[0]?.previous ?? null) : null }));
  if (p.waves.length > 1) lines.push(`waves:    ${p.waves.map((w, i) => `${i + 1}: ${w.join(', ')}`).join('; ')}`);
  const rows = [['HOST', 'PREVIOUS', ...(p.keep === null ? [] : [`PRUNE (keep ${p.keep})`]), 'NOTE']];
  for (const h of p.hosts) {
    const notes = [
      ...(h.createsRoot ? [`the root ${h.root} would be made`] : []),
      ...h.shared.filter((l) => l.create).map((l) => `shared/${l.path} would be made`),
      ...(h.prune?.inUseCheck === 'unavailable' ? ['no /proc: releases in use not looked for'] : []),
      ...h.notes,
    ];
    const prune = h.prune === null ? [] : [h.prune.remove.length === 0 ? 'nothing' : `would remove ${h.prune.remove.map((r) => r.id).join(' ')}`];
    rows.push([h.host, h.previous ?? '(none: first deploy)', ...prune, notes.join('; ')]);
  }
  // A path or command holding a newline or an escape cannot add a line or move the cursor.
  return `${lines.map(oneLine).join('\n')}\n${table(rows)}`;
}

export function fleetDeployCli(cli: FleetCli, source: string, root: string | undefined, options: DeployOptions & Pick<FleetDeployOptions, 'waves' | 'wavePauseMs' | 'maxFail' | 'onFailure'>): Promise<number> {
  if (options.dryRun) return run(cli, async () => (await remote()).fleetDeployPlan(source, root, { ...base(cli), ...options }), (p) => ({ table: renderFleetPlan(p) }));
  return run(
    cli,
    async () => (await remote()).fleetDeploy(source, root, { ...base(cli), ...options, ...(options.waitMs !== undefined ? { waitMs: options.waitMs } : {}) }),
    (r) => ({
      table: waveLines(r.waves) + hostTable(r.hosts, (h) => {
        const d = r.hosts.find((x) => x.host === h.host);
        return d ? `${d.transferred ?? '?'} of ${r.files} files sent${d.copiedOnHost ? `, ${d.copiedOnHost} copied on the host` : d.linked !== undefined ? `, ${d.linked} linked` : ''}${d.switchedAfterMs !== undefined ? `, switched at +${d.switchedAfterMs} ms` : ''}${d.health === 'failed' ? ', health check failed' : ''}${d.afterSwitchFailure !== undefined ? `, ${d.afterSwitchFailure}` : ''}${d.pruned && d.pruned.length > 0 ? `, pruned ${d.pruned.join(' ')}` : ''}` : '';
      }),
      // Within a failure budget some hosts are not on it: the line counts the hosts it is live on
      // (a failed host that switched before it went silent is on it, unverified).
      line: `deployed ${r.release} to ${fleetReach(r)} (${plural(r.files, 'file')}, ${r.durationMs} ms; switch skew ${skew(r)})${prunedPart(r.hosts)}`,
      // The deploy stands on every host but an after-switch hook or reload failed on some: exit 7, as locally.
      ...(r.afterSwitchFailure === undefined ? {} : { error: afterSwitchError(r.release, r.afterSwitchFailure, root === undefined ? 'atomic-deploy rollback with the same hosts and config as this deploy' : `atomic-deploy rollback ${shellWord(root)} ${cli.hosts.map((h) => `--host ${shellWord(h.host)}`).join(' ')}`) }),
    }),
    // A rollout that failed or was stopped shows its waves too: which went, which were skipped.
    (hosts, details) => waveLines(Array.isArray(details.waves) ? (details.waves as FleetWave[]) : []) + hostTable(hosts),
  );
}

export function fleetRollbackCli(cli: FleetCli, root: string | undefined, options: { to?: string; fsync?: boolean; waitMs?: number; dryRun?: boolean } & ServingOptions): Promise<number> {
  return run(
    cli,
    async () => (await remote()).fleetRollback(root, { ...base(cli), ...options }),
    (r) =>
      r.unchanged
        ? {
            table: hostTable(r.hosts),
            line: `${r.dryRun ? 'dry run: ' : ''}release ${r.release} is already current on every host; nothing ${r.dryRun ? 'would change' : 'was changed'}`,
          }
        : r.dryRun
        ? {
            table: table([['HOST', 'CURRENT', 'WOULD GO TO'], ...r.hosts.map((h) => [h.host, h.current ?? '-', h.outcome === 'would-switch' ? r.release : h.current === r.release ? `${r.release} already` : `${r.release} (by its recovery)`])]),
            line: `dry run: would roll back to ${r.release} on ${plural(r.hosts.filter((h) => h.outcome === 'would-switch').length, 'host')}; nothing was changed`,
          }
        : { table: hostTable(r.hosts), line: `rolled back to ${r.release} on ${plural(r.hosts.length, 'host')} (switch skew ${skew(r)})` },
  );
}

export function fleetReleasesCli(cli: FleetCli, root: string | undefined): Promise<number> {
  return run(
    cli,
    async () => (await remote()).fleetReleases(root, base(cli)),
    (r) => {
      // As the local `releases` warns (cli/main.ts), each with its host.
      for (const h of r.hosts) {
        for (const i of h.ignored ?? []) cli.out.warn(`${h.host}: releases/${oneLine(i.id)} is ignored, it is no release: ${i.reason}`);
        for (const v of h.releases ?? []) {
          if (v.recordDamaged !== undefined) cli.out.warn(...damagedRecordWarning(v.id, v.recordDamaged, h.host));
        }
      }
      // The hosts that could not be read are said as errors, with their hints, as the other commands say theirs.
      return { table: fleetReleasesTable(r), code: hostErrorsCode(r.hosts), error: readFailure(r.hosts) };
    },
  );
}

/** What a host on no release has as `current`, for the status summary. */
const NO_RELEASE: Partial<Record<string, string>> = {
  missing: 'no release',
  dangling: 'no live release (current dangling)',
  outside: 'no live release (current outside releases/)',
  directory: 'no live release (current a real directory)',
  file: 'no live release (current a file)',
};

export function fleetStatusCli(cli: FleetCli, root: string | undefined, options: { readOnly?: boolean }): Promise<number> {
  return run(
    cli,
    async () => (await remote()).fleetStatus(root, { ...base(cli), ...options }),
    (r) => {
      const rows = [['HOST', 'CURRENT', 'LOCK', 'NOTE']];
      for (const h of r.hosts) {
        const lock = h.lock ? describeLockStatus(h.lock) : 'free';
        const note = h.error ? withoutHost(h.error.message, h.host) : [...(h.lastLive !== undefined ? [`current is missing; the release log says ${h.lastLive} is the last good release that was live (rollback --to ${h.lastLive} restores it)`] : []), ...(h.running ? [`running: ${h.running}`] : []), ...h.recovered.map((l) => `recovered: ${l}`), ...(h.recovered.length === 0 ? h.leftovers.map((l) => `leftover: ${l}`) : [])].join('; ');
        rows.push([h.host, h.error ? '?' : (h.current ?? `(${h.currentState})`), h.error ? '?' : lock, note]);
      }
      // The hosts on no release, by what their `current` is: a dangling link is no release, but not a root yet to deploy to.
      const known = r.hosts.filter((h) => !h.error);
      const byState = new Map<string, string[]>();
      for (const h of known) {
        const key = h.current ?? (NO_RELEASE[h.currentState] ?? 'no release');
        byState.set(key, [...(byState.get(key) ?? []), h.host]);
      }
      const groups = [...byState].sort((a, b) => b[1].length - a[1].length);
      const unknown = r.hosts.filter((h) => h.error).map((h) => h.host);
      const summary =
        groups.length === 0
          ? `not known on any host${unknown.length > 0 ? ' (see the errors)' : ''}`
          : groups.length === 1 && unknown.length === 0
            ? `all ${plural(r.hosts.length, 'host')} on ${groups[0]?.[0] ?? ''}`
            : `${groups.length > 1 ? 'mixed: ' : ''}${[...groups.map(([what, hosts]) => `${what} on ${hosts.join(', ')}`), ...(unknown.length > 0 ? [`unknown on ${unknown.join(', ')}`] : [])].join('; ')}`;
      return { table: `${table(rows)}\n${summary}`, code: hostErrorsCode(r.hosts), error: readFailure(r.hosts) };
    },
  );
}

export function fleetPruneCli(cli: FleetCli, root: string | undefined, options: { keep: number; dryRun?: boolean; force?: boolean; fsync?: boolean; waitMs?: number }): Promise<number> {
  return run(
    cli,
    async () => (await remote()).fleetPrune(root, { ...base(cli), ...options }),
    (r) => {
      const blind = r.hosts.filter((h) => h.inUseCheck === 'unavailable' && h.sameAs === undefined).map((h) => h.host);
      return { table: pruneTable(r.dryRun, r.hosts) + (blind.length > 0 ? `\nno /proc on ${blind.join(', ')}: releases still in use there were not looked for` : '') };
    },
    // A prune that failed on one host still removed releases on others: its columns stay, with a note per failed host.
    (hosts) => pruneTable(false, hosts as unknown as readonly FleetPruneHost[]),
  );
}

export function fleetUnlockCli(cli: FleetCli, root: string | undefined, options: { force?: boolean }): Promise<number> {
  return run(
    cli,
    async () => (await remote()).fleetUnlock(root, { ...base(cli), ...options }),
    (r) => {
      return { table: unlockTable(r.hosts) };
    },
    // A host that refused keeps unlock's own columns, its reason the error.
    (hosts) => unlockTable(hosts as unknown as readonly FleetUnlockRow[]),
  );
}

/** `releases --host`: one row per release, newest first, one column per host (the hosts that did not answer are readFailure's). */
export function fleetReleasesTable(r: Pick<FleetReleasesResult, 'hosts'>): string {
  // One row per release, one column per host: * current, + present, - absent, ? not known (the host did not answer).
  const ids = [...new Set(r.hosts.flatMap((h) => (h.releases ?? []).map((x) => x.id)))];
  // Newest first whatever order the hosts are listed in: by the highest sequence number any
  // host's log gives a release (hosts that missed a deploy number later ones lower), else by id.
  const seq = new Map<string, number>();
  for (const h of r.hosts) for (const x of h.releases ?? []) if (x.seq !== undefined) seq.set(x.id, Math.max(seq.get(x.id) ?? 0, x.seq));
  ids.sort((a, b) => {
    const sa = seq.get(a);
    const sb = seq.get(b);
    return sa !== undefined && sb !== undefined && sa !== sb ? sb - sa : compareReleaseIds(b, a);
  });
  const rows = [['RELEASE', ...r.hosts.map((h) => h.host)]];
  for (const id of ids) {
    rows.push([id, ...r.hosts.map((h) => {
      const x = h.releases?.find((y) => y.id === id);
      // Failed or unverified on that host, as the local table says it (roleWords).
      return x ? `${x.current ? '*' : '+'} ${roleWords(x.role, x)}` : h.error ? '?' : '-';
    })]);
  }
  // "no releases" only when every host was read: one that was not may hold any.
  const unread = r.hosts.filter((h) => h.error).map((h) => h.host);
  if (ids.length > 0) return table(rows);
  return unread.length > 0 ? `releases unknown on ${unread.join(', ')}${unread.length < r.hosts.length ? '; none on the others' : ''}` : 'no releases';
}

/**
 * A read command's hosts that could not be read, as one error (its message names each host, the
 * first one's hint goes with it): printed after the table and in the JSON as `error`, as every
 * other command's failure is. INVALID_ROOT (exit 2) when each is a root that is not there.
 */
export function readFailure(hosts: readonly { host: string; error?: { code: string; message: string; hint?: string } }[]): DeployError | undefined {
  const errors = hosts.flatMap((h) => (h.error ? [h.error] : []));
  const first = errors[0];
  if (first === undefined) return undefined;
  const invalid = errors.every((e) => e.code === 'INVALID_ROOT');
  const message = errors.length === 1 ? first.message : `${errors.length} hosts could not be read: ${errors.map((e) => e.message).join('; ')}`;
  const hint = hintForAll(hosts.map((h) => ({ label: h.host, error: h.error })), first);
  return new DeployError(invalid ? 'INVALID_ROOT' : 'REMOTE', message, hint ? { hint } : {});
}

/**
 * A read command's exit code across hosts: 0 when every host answered; 2 when each one that did
 * not is a root that is not there (invalid input, as locally, where a root that does not exist or
 * is a file exits 2); 1 when any host was not reached or failed otherwise.
 */
export function hostErrorsCode(hosts: readonly { error?: { code: string } }[]): number {
  const errors = hosts.flatMap((h) => (h.error ? [h.error] : []));
  if (errors.length === 0) return EXIT.ok;
  return errors.every((e) => e.code === 'INVALID_ROOT') ? EXIT.invalid : EXIT.failure;
}

interface FleetUnlockRow {
  host: string;
  unlocked?: boolean;
  reason?: string;
  error?: { message: string };
}

/** Unlock's table: whether each host's lock went, and why (or why not). */
function unlockTable(hosts: readonly FleetUnlockRow[]): string {
  const rows = [['HOST', 'UNLOCKED', 'REASON']];
  for (const h of hosts) rows.push([h.host, h.unlocked === true ? 'yes' : 'no', h.error ? withoutHost(h.error.message, h.host) : (h.reason ?? '')]);
  return table(rows);
}

/** Prune's table: what each host removed (or would), what it kept and why, and why a host failed. */
function pruneTable(dryRun: boolean, hosts: readonly FleetPruneHost[]): string {
  const failed = hosts.some((h) => h.error !== undefined || (h.failed?.length ?? 0) > 0 || h.sameAs !== undefined);
  const rows = [['HOST', dryRun ? 'WOULD REMOVE' : 'REMOVED', 'KEPT', ...(failed ? ['NOTE'] : [])]];
  for (const h of hosts) {
    const note = h.error ? withoutHost(h.error.message, h.host) : h.sameAs !== undefined ? `the same root as ${h.sameAs}: pruned there` : (h.failed ?? []).map((f) => `could not prune ${f.id}`).join('; ');
    rows.push([h.host, (h.removed ?? []).map((x) => x.id).join(' ') || '-', (h.kept ?? []).map((x) => `${x.id} (${x.reason})`).join(', ') || '-', ...(failed ? [note] : [])]);
  }
  return table(rows);
}

/** `3 hosts`, or within a failure budget `2 of 3 hosts (not on: web2)`, with the failed hosts on it said unverified. */
function fleetReach(r: Pick<FleetDeployResult, 'hosts' | 'tolerated' | 'release'>): string {
  if (r.tolerated.length === 0) return plural(r.hosts.length, 'host');
  const failed = r.hosts.filter((h) => r.tolerated.includes(h.host));
  const notOn = failed.filter((h) => h.outcome !== 'switched' && h.outcome !== 'unknown').map((h) => h.host);
  const unknown = failed.filter((h) => h.outcome === 'unknown').map((h) => h.host);
  const unverified = failed.filter((h) => h.outcome === 'switched').map((h) => h.host);
  const parts = [notOn.length > 0 ? `not on: ${notOn.join(', ')}` : '', unverified.length > 0 ? `unverified: ${unverified.join(', ')}` : '', unknown.length > 0 ? `not known: ${unknown.join(', ')}` : ''].filter(Boolean);
  return `${r.hosts.length - notOn.length - unknown.length} of ${r.hosts.length} hosts (${parts.join('; ')})`;
}
