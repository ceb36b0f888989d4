/** The deploy flags for release contents and verification: shared paths, strategy, hooks, health check. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { DeployOptions } from '../ops/deploy.ts';

export interface ReleaseFlags {
  shared?: string[];
  sharedFile?: string[];
  sharedDir?: string[];
  sharedCreate?: boolean;
  sharedReplace?: boolean;
  strategy?: NonNullable<DeployOptions['strategy']>;
  checksum?: boolean;
  beforeSwitch?: string[];
  afterSwitch?: string[];
  hookTimeout?: number;
  healthCheck?: string;
  healthUrl?: string;
  healthTimeout?: number;
}

/** Repeatable flags collect into a list; absent ones stay undefined so a config file can fill them. */
function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function positiveSeconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || value.trim() === '') throw new InvalidArgumentError('expected a number of seconds (> 0)');
  return n;
}

function nonEmpty(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('expected a non-empty value');
  return value;
}

export function addReleaseFlags(cmd: Command): Command {
  return cmd
    .option('--shared-file <path>', 'link the file releases/<id>/<path> to shared/<path>, e.g. .env (repeatable)', collect)
    .option('--shared-dir <path>', 'link the directory releases/<id>/<path> to shared/<path>, e.g. storage (repeatable)', collect)
    .option('--shared <path>', 'the same, file or directory taken from what exists (repeatable)', collect)
    .option('--shared-create', 'make missing shared targets empty (a file or a directory) instead of failing')
    .option('--shared-replace', 'link a shared path even if the source holds it (the source copy is left out)')
    .addOption(new Option('--strategy <name>', 'how files are made: auto (clone where possible, else copy), copy, reflink, hardlink').choices(['auto', 'copy', 'reflink', 'hardlink']))
    .option('--checksum', 'with --strategy hardlink: link files with the same content, not the same size and mtime')
    .option('--before-switch <command>', 'shell command run in the new release before the switch; failure aborts (repeatable)', collect)
    .option('--after-switch <command>', 'shell command run in the new release after the switch (repeatable)', collect)
    .addOption(new Option('--hook-timeout <seconds>', 'kill a hook and its children after this long (default 300)').argParser(positiveSeconds))
    .addOption(new Option('--health-check <command>', 'shell command that must exit 0 after the switch, or the deploy rolls back').argParser(nonEmpty))
    .addOption(new Option('--health-url <url>', 'URL that must answer 2xx after the switch, or the deploy rolls back').argParser(nonEmpty))
    .addOption(new Option('--health-timeout <seconds>', 'keep retrying the health check this long (default 30)').argParser(positiveSeconds));
}
