/** The `prune` and `init` commands, and the flags deploy takes for the release lifecycle. */
import { COUNTS } from '../plan/validate.ts';
import { countFlag, secondsFlag, secondsToMs } from './number-flags.ts';
import path from 'node:path';
import { Option, type Command } from 'commander';
import { DeployError } from '../errors.ts';
import { nameExists } from '../act/read.ts';
import { kernelPath } from '../act/layout.ts';
import { CONFIG_NAMES } from '../plan/config-basics.ts';
import { DEFAULT_KEEP } from '../plan/releases.ts';
import { shellWord } from '../plan/paths.ts';
import { pathFrom, writeExampleConfig, type LoadedConfig } from './config.ts';
import type { Reporter } from './output.ts';
import { addFleetFlags, fleetHostsFrom, fleetPruneCli, fleetRootFrom, type FleetFlags } from './fleet.ts';

export interface CommandContext {
  /** Adds --json, -q/--quiet and --no-color. */
  common: (cmd: Command) => Command;
  /** Makes the reporter for a command's flags. */
  use: (flags: { json?: boolean; quiet?: boolean; color?: boolean }) => Reporter;
  /** The config file (`--config`, or the one in the working directory), read on first use. */
  config: () => LoadedConfig;
  /** The path `--config` names, if given. */
  configPath: () => string | undefined;
  /** Says which config file a command that changes a root read (a step line), and warns when it is for another root. */
  sayConfig: (out: Reporter, rootArg: string | undefined, fleet: boolean) => void;
  signal?: AbortSignal;
  afterSignal: () => void;
  /** Whether a flag was given on the command line (not a default). */
  given: (cmd: Command, flag: string) => boolean;
  /** Sets the exit code (the fleet commands report their own errors). */
  setExitCode: (code: number) => void;
}

/** `--keep` and `--dry-run` for deploy. */
export function addLifecycleFlags(cmd: Command): Command {
  return cmd
    .addOption(new Option('--keep <n>', 'after a successful switch, prune to the newest <n> good releases (default 5; 0 keeps all)').argParser(countFlag(COUNTS.keep)))
    .option('-n, --dry-run', 'print the plan (release id, contents, shared links, hooks, prune) and change nothing');
}

const EXAMPLES = {
  prune: `
Examples:
  $ atomic-deploy prune /srv/www/app --keep 5 --dry-run   what would go, and why the rest stays
  $ atomic-deploy prune /srv/www/app --keep 5
  $ atomic-deploy prune --keep 3                          root from atomic-deploy.config.yaml

Exit codes: 0 ok, 1 failure, 2 invalid input, 3 locked, 128+n signal n.`,
  init: `
Examples:
  $ atomic-deploy init                 write ./atomic-deploy.config.yaml
  $ atomic-deploy init --config staging.yaml     then: atomic-deploy deploy --config staging.yaml

Exit codes: 0 written, 1 failure, 2 invalid input, or the file exists and no --force (nothing was written).`,
};

export function addLifecycleCommands(program: Command, ctx: CommandContext): void {
  ctx
    .common(addFleetFlags(
      program
        .command('prune')
        .description('remove old releases: keeps the newest <n> good ones, current, the rollback target and releases in use')
        .argument('[root]', 'deploy root (default: root from the config file)')
        .addOption(new Option('--keep <n>', 'good releases to keep (default 5; 0 keeps all); failed and rolled-back ones never count').argParser(countFlag(COUNTS.keep)))
        .option('-n, --dry-run', 'list what would go and why each kept release stays; change nothing')
        .option('--force', 'also remove releases that running processes still use')
        .addOption(new Option('--wait <seconds>', 'wait for a held lock instead of failing').argParser(secondsFlag()))
        .option('--no-fsync', 'skip the fsync after each release leaves releases/')
        .addHelpText('after', EXAMPLES.prune),
    ))
    .action(async (rootArg: string | undefined, flags: FleetFlags & { json?: boolean; quiet?: boolean; keep?: number; dryRun?: boolean; force?: boolean; wait?: number; fsync: boolean }, cmd: Command) => {
      const out = ctx.use(flags);
      const loaded = ctx.config();
      const keep = flags.keep ?? loaded.config.keep ?? DEFAULT_KEEP;
      const wait = ctx.given(cmd, 'wait') ? flags.wait : loaded.config.wait;
      const hosts = fleetHostsFrom(flags, loaded);
      ctx.sayConfig(out, rootArg, hosts !== undefined);
      if (hosts) {
        const fsync = ctx.given(cmd, 'fsync') ? flags.fsync : loaded.config.fsync;
        ctx.setExitCode(await fleetPruneCli({ out, hosts, flags, signal: ctx.signal }, fleetRootFrom(rootArg, loaded, hosts), { keep, dryRun: flags.dryRun === true, force: flags.force === true, ...(fsync === undefined ? {} : { fsync }), waitMs: secondsToMs(wait ?? 0) }));
        return;
      }
      const root = pathFrom(rootArg, loaded.config.root, loaded, 'root');
      const { prune } = await import('../ops/prune.ts');
      const result = await prune(root, {
        keep,
        dryRun: flags.dryRun === true,
        force: flags.force === true,
        fsync: ctx.given(cmd, 'fsync') ? flags.fsync : loaded.config.fsync,
        waitMs: secondsToMs(wait ?? 0),
        signal: ctx.signal,
        onEvent: out.event,
      });
      ctx.afterSignal();
      const { renderPrune } = await import('./render-lifecycle.ts');
      out.result(renderPrune(result), result);
    });

  ctx
    .common(
      program
        .command('init')
        .description('write a commented example atomic-deploy.config.yaml (or the --config file)')
        .option('--force', 'overwrite an existing config file')
        .addHelpText('after', EXAMPLES.init),
    )
    .action(async (flags: { json?: boolean; quiet?: boolean; force?: boolean }) => {
      const out = ctx.use(flags);
      const explicit = ctx.configPath();
      const file = kernelPath(explicit ?? CONFIG_NAMES[0]);
      // The example is YAML (JSON for a .json name): a .toml or .ini name would hold another format than it says.
      const ext = path.extname(file).toLowerCase();
      if (ext !== '' && !['.yaml', '.yml', '.json'].includes(ext)) {
        throw new DeployError('USAGE', `init writes YAML or JSON, and ${path.basename(file)} is named as ${ext.slice(1)}; nothing was written`, {
          hint: `name it ${path.basename(file, path.extname(file))}.yaml (or .json)`,
        });
      }
      // A second config file next to an existing one would make every command refuse to start:
      // by its searched name, given with --config or not (a link, even a dangling one, counts).
      if ((CONFIG_NAMES as readonly string[]).includes(path.basename(file))) {
        // A folder this user cannot search hides nothing: the write below is refused there, in words.
        const other = CONFIG_NAMES.map((name) => path.join(path.dirname(file), name)).find((f) => f !== file && nameExists(f));
        if (other) throw new DeployError('USAGE', `${other} already exists; nothing was written`, { hint: 'edit that file, or remove it and run init again' });
      }
      // In a release (through current too) the file would be served and verify would report it.
      const { inReleaseOrState } = await import('../ops/root.ts');
      const inside = inReleaseOrState(file);
      if (inside) {
        throw new DeployError('USAGE', `${file} would be inside the deploy root ${inside.root} (${inside.place}); nothing was written`, {
          hint: `a file there is served with the release and reported by verify: run init in the project's folder or in ${shellWord(inside.root)} itself, or name a file outside with --config`,
        });
      }
      writeExampleConfig(file, flags.force === true);
      // A file under another name than the one searched for is read only when named again.
      out.result(`wrote ${file}: set root and source, then run: atomic-deploy deploy${explicit ? ` --config ${shellWord(explicit)}` : ''}`, { file });
    });
}
