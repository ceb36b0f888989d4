/** The flags for what happens after every switch: reloads, and what processes left on the old release mean. */
import { Option, type Command } from 'commander';
import { secondsFlag, secondsToMs } from './number-flags.ts';
import type { ServingOptions } from '../ops/serving.ts';
import type { Config } from '../plan/config.ts';
import type { StaleMode } from '../plan/serving.ts';

export interface ServingFlags {
  reloadUnit?: string[];
  reloadPhpFpm?: string[];
  reloadTimeout?: number;
  stale?: StaleMode;
  staleWait?: number;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

export function addServingFlags(cmd: Command): Command {
  return cmd
    .option('--reload-unit <unit>', 'after the switch (and after any rollback): systemctl reload-or-restart <unit> (repeatable)', collect)
    .option('--reload-php-fpm <pid-file>', 'after the switch (and after any rollback): graceful php-fpm reload of the master in <pid-file>, or of the pool listening on unix:<socket> (repeatable)', collect)
    .addOption(new Option('--reload-timeout <seconds>', 'fail a reload that takes longer (default 60)').argParser(secondsFlag('positive')))
    .addOption(new Option('--stale <mode>', 'processes still running from the release left: warn (default), fail (exit 6 if they stay), off (no check)').choices(['warn', 'fail', 'off']))
    .addOption(new Option('--stale-wait <seconds>', 'how long they get to go after the hooks and reloads (default: 10 with fail, 0 with warn)').argParser(secondsFlag()));
}

const ms = (s: number | undefined): number | undefined => (s === undefined ? undefined : secondsToMs(s));
/** A config value given as one item or a list; a flag's values are a list already. */
export const asList = (v: string | string[] | undefined): string[] | undefined => (typeof v === 'string' ? [v] : v);

/** The config file's reload and stale settings, each replaced by its flag when the flag was given. */
export function servingOptionsFrom(config: Config, flags: ServingFlags, given: (flag: keyof ServingFlags) => boolean): ServingOptions {
  const pick = <K extends keyof ServingFlags, T>(flag: K, fromConfig: T | undefined): ServingFlags[K] | T | undefined => (given(flag) ? flags[flag] : fromConfig);
  const units = asList(pick('reloadUnit', config.reload?.units));
  const phpFpm = asList(pick('reloadPhpFpm', config.reload?.phpFpm));
  const timeoutMs = ms(pick('reloadTimeout', config.reload?.timeout));
  const options: ServingOptions = {};
  if (units !== undefined || phpFpm !== undefined || timeoutMs !== undefined) {
    options.reload = { units: units ? [...units] : undefined, phpFpm: phpFpm ? [...phpFpm] : undefined, timeoutMs };
  }
  const stale = pick('stale', config.stale);
  if (stale !== undefined) options.stale = stale;
  const wait = ms(pick('staleWait', config.staleWait));
  if (wait !== undefined) options.staleWaitMs = wait;
  return options;
}
