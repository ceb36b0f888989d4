import { secondsProblem } from '../plan/validate.ts';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DeployError, EXIT, exitCodeForSignal } from '../errors.ts';
import { deploy } from '../ops/deploy.ts';
import { isArtifactSource, stageArtifactLocally } from '../ops/artifact.ts';
import { redactUrl } from '../plan/archive.ts';
import { listReleases } from '../ops/releases.ts';
import { rollback } from '../ops/rollback.ts';
import { status } from '../ops/status.ts';
import { unlock } from '../ops/unlock.ts';
import { verify } from '../ops/verify-release.ts';
import { addArtifactFlags, addReleaseFlags, artifactOptionsFrom, type ArtifactFlags, type ReleaseFlags } from './deploy-flags.ts';
import { addServingFlags, hasServingOptions, servingOptionsFrom, type ServingFlags } from './serving-flags.ts';
import { Reporter, type Streams } from './output.ts';
import { renderReleases, renderStatus, renderVerify } from './render.ts';
import { VERSION } from './version.ts';
import { configFileMayExist, deployOptionsFrom, loadConfig, loadConfigParsers, pathFrom, type DeployFlags, type LoadedConfig } from './config.ts';
import { addLifecycleCommands, addLifecycleFlags } from './lifecycle-commands.ts';
import { addFleetFlags, rolloutFrom, fleetDeployCli, fleetHostsFrom, fleetReleasesCli, fleetRollbackCli, fleetRootFrom, fleetStatusCli, fleetUnlockCli, type FleetFlags } from './fleet.ts';
import { deploySummary, renderPlan } from './render-lifecycle.ts';

export interface RunOptions extends Streams {
  /** Aborted (with the signal's name as reason) when the process receives SIGINT/SIGTERM/SIGHUP. */
  signal?: AbortSignal;
}

interface CommonFlags {
  json?: boolean;
  quiet?: boolean;
}

/** Reloads and the stale check are local for now: refused with --host rather than silently skipped. */
function refuseServingOnFleet(options: Parameters<typeof hasServingOptions>[0]): void {
  if (!hasServingOptions(options)) return;
  throw new DeployError('USAGE', 'reloads and the stale-process check (--reload-*, --stale*) do not work with --host yet', {
    hint: 'use an after-switch hook on the hosts, or deploy to each host with its own command',
  });
}

function parseSeconds(value: string): number {
  const problem = secondsProblem(value);
  if (problem) throw new InvalidArgumentError(problem);
  return Number(value);
}

const EXAMPLES = {
  deploy: `
Examples:
  $ atomic-deploy deploy ./build /srv/www/app
  $ atomic-deploy ./build /srv/www/app                 same, the short form
  $ atomic-deploy deploy ./build /srv/www/app --release-id v1.4.2 --json
  $ atomic-deploy deploy ./build /srv/www/app --wait 60   wait for another deploy's lock
  $ atomic-deploy deploy ./build /srv/www/app --keep 5    prune to 5 good releases after the switch
  $ atomic-deploy deploy ./build /srv/www/app --dry-run   the plan; nothing is changed
  $ atomic-deploy deploy dist.tar.gz /srv/www/app --sha256 "$(cut -d' ' -f1 dist.tar.gz.sha256)"
  $ atomic-deploy deploy https://ci.example.com/dist.zip /srv/www/app --strip-components 1 \
      --signature dist.zip.sig --allowed-signers deploy/allowed_signers
  $ atomic-deploy deploy                                  source and root from atomic-deploy.config.yaml
  $ atomic-deploy deploy ./build /srv/www/app --reload-unit app.service --stale fail

Exit codes: 0 ok, 1 failure, 2 invalid input, 3 locked, 4 rolled back by the health check,
  6 --stale fail: processes still run from the release left (the switch stands), 128+n signal n.`,
  rollback: `
Examples:
  $ atomic-deploy rollback /srv/www/app                 back to the previous good release
  $ atomic-deploy rollback /srv/www/app --to 20261127101500
  $ atomic-deploy rollback /srv/www/app --reload-php-fpm /run/php/php8.2-fpm.pid

Exit codes: 0 ok, 1 failure, 2 invalid input, 3 locked,
  6 --stale fail: processes still run from the release left (the rollback stands), 128+n signal n.`,
  releases: `
Examples:
  $ atomic-deploy releases /srv/www/app
  $ atomic-deploy releases /srv/www/app --json | jq -r '.releases[].id'`,
  status: `
Examples:
  $ atomic-deploy status /srv/www/app
  $ atomic-deploy status /srv/www/app --json`,
  verify: `
Exit codes: 0 the release is identical to its manifest, 5 it differs (every difference is listed),
2 it has no manifest or its manifest cannot be trusted (nothing was checked).

Examples:
  $ atomic-deploy verify /srv/www/app                   the live release
  $ atomic-deploy verify /srv/www/app --release 20261127101500 --json`,
  unlock: `
Examples:
  $ atomic-deploy unlock /srv/www/app           only if the holder is provably gone
  $ atomic-deploy unlock /srv/www/app --force   even if it may be alive (prints who held it)`,
};

/** Runs the CLI and returns its exit code; it never exits the process itself. */
export async function runCli(argv: readonly string[], options: RunOptions): Promise<number> {
  let reporter = new Reporter(options, { json: argv.includes('--json'), quiet: argv.includes('--quiet') });
  const use = (flags: CommonFlags): Reporter => {
    reporter = new Reporter(options, { json: flags.json === true, quiet: flags.quiet === true });
    return reporter;
  };
  const signal = options.signal;
  let exitCode: number = EXIT.ok;
  const afterSignal = (): void => {
    // The operation finished (the switch stood), but a signal asked us to stop: say so by exit code.
    if (signal?.aborted) exitCode = exitCodeForSignal(signal.reason as NodeJS.Signals);
  };

  const program = new Command('atomic-deploy')
    .description('Zero-downtime release deploys by atomic symlink switch.')
    .version(VERSION, '-V, --version')
    .option('--config <file>', 'settings file (default: ./atomic-deploy.config.yaml, .yml or .json if present)')
    .showHelpAfterError('hint: see --help for usage')
    .addHelpText('after', `
Exit codes: 0 ok, 1 failure, 2 usage or invalid input (nothing changed), 3 locked, 4 rolled back by
the health check, 5 verify found differences, 128+n interrupted by signal n.`)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => options.stdout.write(s),
      writeErr: (s) => options.stderr.write(s),
    });
  const common = (cmd: Command): Command =>
    cmd.option('--json', 'print one JSON object on stdout and nothing else there').option('--quiet', 'print only errors');
  let loaded: LoadedConfig | undefined;
  const configPath = (): string | undefined => program.opts<{ config?: string }>().config;
  const config = (): LoadedConfig => (loaded ??= loadConfig(configPath(), process.cwd()));
  program.hook('preAction', async () => {
    if (configFileMayExist(configPath(), process.cwd())) await loadConfigParsers();
  });
  const given = (cmd: Command, flag: string): boolean => cmd.getOptionValueSource(flag) === 'cli';
  const rootOf = (arg: string | undefined): string => pathFrom(arg, config().config.root, config(), 'root');

  common(addFleetFlags(addServingFlags(addLifecycleFlags(addArtifactFlags(addReleaseFlags(
    program
      .command('deploy', { isDefault: true })
      .description('copy <source> into a new release of <root> and switch current to it atomically')
      .argument('[source]', 'build directory to publish (default: source from the config file)')
      .argument('[root]', 'deploy root, holds current, releases/, shared/ (default: root from the config file)')
      .option('--release-id <id>', 'release id instead of the UTC timestamp')
      .addOption(new Option('--wait <seconds>', 'wait for a held lock instead of failing').argParser(parseSeconds))
      .option('--no-fsync', 'skip making the release and the switch durable (faster, not power-cut safe)')
      .addHelpText('after', EXAMPLES.deploy),
  )))), { deploy: true })).action(async (sourceArg: string | undefined, rootArg: string | undefined, flags: CommonFlags & ReleaseFlags & DeployFlags & FleetFlags & ArtifactFlags & ServingFlags & { fsync: boolean }, cmd: Command) => {
    const out = use(flags);
    const source = pathFrom(sourceArg, config().config.source, config(), 'source');
    const hosts = fleetHostsFrom(flags, config());
    if (hosts) {
      refuseServingOnFleet(servingOptionsFrom(config().config, flags, (flag) => given(cmd, flag)));
      // An artifact is read and checked once, here; the hosts get the extracted tree by rsync.
      const stage = isArtifactSource(source) ? await stageArtifactLocally(source, artifactOptionsFrom(flags, config()), { signal, emit: out.event }) : undefined;
      try {
        exitCode = await fleetDeployCli({ out, hosts, flags, signal }, stage?.dir ?? source, fleetRootFrom(rootArg, config()), { ...deployOptionsFrom(config(), flags, (flag) => given(cmd, flag)), ...rolloutFrom(flags, config()), command: `fleet deploy ${redactUrl(source)}` });
      } finally {
        stage?.remove();
      }
      return;
    }
    if (flags.waves || flags.maxFail !== undefined || flags.wavePause !== undefined) {
      throw new DeployError('USAGE', '--waves, --wave-pause and --max-fail apply to fleet deploys only', { hint: 'add --host [user@]host[:port] (repeatable), or hosts: in the config' });
    }
    const root = rootOf(rootArg);
    // Each flag given on the command line overrides the config file's value.
    const result = await deploy(source, root, {
      ...deployOptionsFrom(config(), flags, (flag) => given(cmd, flag)),
      artifact: artifactOptionsFrom(flags, config()),
      signal,
      onEvent: out.event,
      command: `deploy ${source}`,
    });
    afterSignal();
    if (result.plan) {
      out.print(renderPlan(result.plan));
      out.result(undefined, result.plan);
      return;
    }
    out.result(deploySummary(result), result);
  });

  common(addFleetFlags(addServingFlags(
    program
      .command('rollback')
      .description('switch current back to the previous good release, or to --to <id>')
      .argument('[root]', 'deploy root (default: root from the config file)')
      .option('--to <id>', 'release to switch to')
      .addOption(new Option('--wait <seconds>', 'wait for a held lock instead of failing').argParser(parseSeconds))
      .option('--no-fsync', 'skip the fsync of the root after the switch')
      .addHelpText('after', EXAMPLES.rollback),
  ))).action(async (rootArg: string | undefined, flags: CommonFlags & FleetFlags & ServingFlags & { to?: string; wait?: number; fsync: boolean }, cmd: Command) => {
    const out = use(flags);
    const hosts = fleetHostsFrom(flags, config());
    const serving = servingOptionsFrom(config().config, flags, (flag) => given(cmd, flag));
    if (hosts) {
      refuseServingOnFleet(serving);
      const wait = given(cmd, 'wait') ? flags.wait : config().config.wait;
      exitCode = await fleetRollbackCli({ out, hosts, flags, signal }, fleetRootFrom(rootArg, config()), { to: flags.to, fsync: given(cmd, 'fsync') ? flags.fsync : config().config.fsync, waitMs: (wait ?? 0) * 1000 });
      return;
    }
    const root = rootOf(rootArg);
    const fsync = given(cmd, 'fsync') ? flags.fsync : config().config.fsync;
    const wait = given(cmd, 'wait') ? flags.wait : config().config.wait;
    const result = await rollback(root, { to: flags.to, fsync, waitMs: (wait ?? 0) * 1000, signal, onEvent: out.event, ...serving });
    afterSignal();
    out.result(`rolled back to ${result.release} (from ${result.previous || 'nothing'})`, result);
  });

  common(addFleetFlags(
    program
      .command('releases')
      .description('list releases, newest first, current marked')
      .argument('[root]', 'deploy root (default: root from the config file)')
      .addHelpText('after', EXAMPLES.releases),
  )).action(async (rootArg: string | undefined, flags: CommonFlags & FleetFlags) => {
    const out = use(flags);
    const hosts = fleetHostsFrom(flags, config());
    if (hosts) {
      exitCode = await fleetReleasesCli({ out, hosts, flags, signal }, fleetRootFrom(rootArg, config()));
      return;
    }
    const result = await listReleases(rootOf(rootArg));
    out.print(renderReleases(result, options.stdout.isTTY === true));
    out.result(undefined, {
      current: result.current,
      releases: result.releases.map((r) => ({ ...r.record, id: r.id, current: r.current, role: r.role })),
    });
  });

  common(addFleetFlags(
    program
      .command('status')
      .description('current release, lock holder, leftovers of an interrupted deploy (recovered when safe)')
      .argument('[root]', 'deploy root (default: root from the config file)')
      .option('--read-only', 'report only; do not clean up leftovers')
      .addHelpText('after', EXAMPLES.status),
  )).action(async (rootArg: string | undefined, flags: CommonFlags & FleetFlags & { readOnly?: boolean }) => {
    const out = use(flags);
    const hosts = fleetHostsFrom(flags, config());
    if (hosts) {
      exitCode = await fleetStatusCli({ out, hosts, flags, signal }, fleetRootFrom(rootArg, config()), { readOnly: flags.readOnly });
      return;
    }
    const result = await status(rootOf(rootArg), { readOnly: flags.readOnly });
    out.print(renderStatus(result));
    out.result(undefined, result);
  });

  common(addFleetFlags(
    program
      .command('unlock')
      .description("remove a deploy lock whose owner is provably gone (--force: any lock)")
      .argument('[root]', 'deploy root (default: root from the config file)')
      .option('--force', 'remove the lock even if its holder may be alive or on another host')
      .addHelpText('after', EXAMPLES.unlock),
  )).action(async (rootArg: string | undefined, flags: CommonFlags & FleetFlags & { force?: boolean }) => {
    const out = use(flags);
    const hosts = fleetHostsFrom(flags, config());
    if (hosts) {
      exitCode = await fleetUnlockCli({ out, hosts, flags, signal }, fleetRootFrom(rootArg, config()), { force: flags.force });
      return;
    }
    const result = await unlock(rootOf(rootArg), { force: flags.force, onEvent: out.event });
    out.result(result.unlocked ? `unlocked (${result.reason})` : `nothing to unlock: ${result.reason}`, result);
  });

  common(
    program
      .command('verify')
      .description('re-hash a release (default: the live one) and list every path that differs from its manifest')
      .argument('[root]', 'deploy root (default: root from the config file)')
      .option('--release <id>', 'release to check instead of the live one')
      .addHelpText('after', EXAMPLES.verify),
  ).action(async (rootArg: string | undefined, flags: CommonFlags & { release?: string }) => {
    const out = use(flags);
    const result = await verify(rootOf(rootArg), { release: flags.release, signal });
    afterSignal();
    if (!result.identical && exitCode === EXIT.ok) exitCode = EXIT.differences;
    out.result(renderVerify(result), result);
  });

  addLifecycleCommands(program, { common, use, config, configPath, signal, afterSignal, given, setExitCode: (code) => (exitCode = code) });

  try {
    await program.parseAsync([...argv], { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version' || error.code === 'commander.help') return EXIT.ok;
      if (reporter && argv.includes('--json')) options.stdout.write(JSON.stringify({ error: { code: 'USAGE', message: error.message.replace(/^error: /, '') } }) + '\n');
      return EXIT.invalid;
    }
    if (error instanceof DeployError) {
      reporter.error(error.message, error.hint);
      reporter.result(undefined, { error: { code: error.code, message: error.message, hint: error.hint, ...error.details } });
      return error.exitCode;
    }
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    reporter.error(`unexpected failure: ${message}`, 'this is a bug in atomic-deploy; please report it with the output above');
    reporter.result(undefined, { error: { code: 'INTERNAL', message: String(error) } });
    return EXIT.failure;
  }
}
