import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { DeployError, EXIT, exitCodeForSignal } from '../errors.ts';
import { deploy } from '../ops/deploy.ts';
import { listReleases } from '../ops/releases.ts';
import { rollback } from '../ops/rollback.ts';
import { status } from '../ops/status.ts';
import { unlock } from '../ops/unlock.ts';
import { formatBytes, Reporter, type Streams } from './output.ts';
import { renderReleases, renderStatus } from './render.ts';
import { VERSION } from './version.ts';

export interface RunOptions extends Streams {
  /** Aborted (with the signal's name as reason) when the process receives SIGINT/SIGTERM/SIGHUP. */
  signal?: AbortSignal;
}

interface CommonFlags {
  json?: boolean;
  quiet?: boolean;
}

function parseSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || value.trim() === '') throw new InvalidArgumentError('expected a number of seconds (>= 0)');
  return n;
}

const EXAMPLES = {
  deploy: `
Examples:
  $ atomic-deploy deploy ./build /srv/www/app
  $ atomic-deploy ./build /srv/www/app                 same, the short form
  $ atomic-deploy deploy ./build /srv/www/app --release-id v1.4.2 --json
  $ atomic-deploy deploy ./build /srv/www/app --wait 60   wait for another deploy's lock`,
  rollback: `
Examples:
  $ atomic-deploy rollback /srv/www/app                 back to the previous good release
  $ atomic-deploy rollback /srv/www/app --to 20261127101500`,
  releases: `
Examples:
  $ atomic-deploy releases /srv/www/app
  $ atomic-deploy releases /srv/www/app --json | jq -r '.releases[].id'`,
  status: `
Examples:
  $ atomic-deploy status /srv/www/app
  $ atomic-deploy status /srv/www/app --json`,
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
    .showHelpAfterError('hint: see --help for usage')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => options.stdout.write(s),
      writeErr: (s) => options.stderr.write(s),
    });
  const common = (cmd: Command): Command =>
    cmd.option('--json', 'print one JSON object on stdout and nothing else there').option('--quiet', 'print only errors');

  common(
    program
      .command('deploy', { isDefault: true })
      .description('copy <source> into a new release of <root> and switch current to it atomically')
      .argument('<source>', 'build directory to publish')
      .argument('<root>', 'deploy root (holds current, releases/, shared/)')
      .option('--release-id <id>', 'release id instead of the UTC timestamp')
      .addOption(new Option('--wait <seconds>', 'wait for a held lock instead of failing').argParser(parseSeconds))
      .option('--no-fsync', 'skip making the release and the switch durable (faster, not power-cut safe)')
      .addHelpText('after', EXAMPLES.deploy),
  ).action(async (source: string, root: string, flags: CommonFlags & { releaseId?: string; wait?: number; fsync: boolean }) => {
    const out = use(flags);
    const result = await deploy(source, root, {
      releaseId: flags.releaseId,
      fsync: flags.fsync,
      waitMs: (flags.wait ?? 0) * 1000,
      signal,
      onEvent: out.event,
      command: `deploy ${source}`,
    });
    afterSignal();
    out.result(
      `deployed ${result.release} (${result.files} files, ${formatBytes(result.bytes)}, ${result.durationMs} ms)${result.previous ? `; previous: ${result.previous}` : ''}`,
      result,
    );
  });

  common(
    program
      .command('rollback')
      .description('switch current back to the previous good release, or to --to <id>')
      .argument('<root>', 'deploy root')
      .option('--to <id>', 'release to switch to')
      .addOption(new Option('--wait <seconds>', 'wait for a held lock instead of failing').argParser(parseSeconds))
      .option('--no-fsync', 'skip the fsync of the root after the switch')
      .addHelpText('after', EXAMPLES.rollback),
  ).action(async (root: string, flags: CommonFlags & { to?: string; wait?: number; fsync: boolean }) => {
    const out = use(flags);
    const result = await rollback(root, { to: flags.to, fsync: flags.fsync, waitMs: (flags.wait ?? 0) * 1000, signal, onEvent: out.event });
    afterSignal();
    out.result(`rolled back to ${result.release} (from ${result.previous || 'nothing'})`, result);
  });

  common(
    program
      .command('releases')
      .description('list releases, newest first, current marked')
      .argument('<root>', 'deploy root')
      .addHelpText('after', EXAMPLES.releases),
  ).action(async (root: string, flags: CommonFlags) => {
    const out = use(flags);
    const result = await listReleases(root);
    out.print(renderReleases(result, options.stdout.isTTY === true));
    out.result(undefined, {
      current: result.current,
      releases: result.releases.map((r) => ({ ...r.record, id: r.id, current: r.current, role: r.role })),
    });
  });

  common(
    program
      .command('status')
      .description('current release, lock holder, leftovers of an interrupted deploy (recovered when safe)')
      .argument('<root>', 'deploy root')
      .option('--read-only', 'report only; do not clean up leftovers')
      .addHelpText('after', EXAMPLES.status),
  ).action(async (root: string, flags: CommonFlags & { readOnly?: boolean }) => {
    const out = use(flags);
    const result = await status(root, { readOnly: flags.readOnly });
    out.print(renderStatus(result));
    out.result(undefined, result);
  });

  common(
    program
      .command('unlock')
      .description("remove a deploy lock whose owner is provably gone (--force: any lock)")
      .argument('<root>', 'deploy root')
      .option('--force', 'remove the lock even if its holder may be alive or on another host')
      .addHelpText('after', EXAMPLES.unlock),
  ).action(async (root: string, flags: CommonFlags & { force?: boolean }) => {
    const out = use(flags);
    const result = await unlock(root, { force: flags.force, onEvent: out.event });
    out.result(result.unlocked ? `unlocked (${result.reason})` : `nothing to unlock: ${result.reason}`, result);
  });

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
