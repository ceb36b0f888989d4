/**
 * Flags that only tune something else (a timeout, a wait, how shared paths are placed), given on
 * the command line for a command that will not do that thing: refused rather than ignored, as the
 * fleet's flags are without --host. A tuning flag silently ignored looks like a guard that is
 * not there (`--health-timeout 5` with no health check deploys with no check at all). Only the
 * command line is held to this: an ATOMIC_DEPLOY_* variable is often set for every step of a CI
 * job, and a config file may set a timeout ahead of the hooks it will have.
 */
import { DeployError } from '../errors.ts';

export interface TunedOptions {
  hooks?: { beforeSwitch?: readonly string[] | string; afterSwitch?: readonly string[] | string };
  healthCheck?: unknown;
  reload?: { units?: readonly string[]; phpFpm?: readonly string[] };
  stale?: 'warn' | 'fail' | 'off';
  shared?: readonly string[];
  sharedFiles?: readonly string[];
  sharedDirs?: readonly string[];
}

export type TuningFlag = 'hookTimeout' | 'healthTimeout' | 'reloadTimeout' | 'staleWait' | 'sharedCreate' | 'sharedReplace';

const some = (v: readonly string[] | string | undefined): boolean => (typeof v === 'string' ? v !== '' : v !== undefined && v.length > 0);

/** Each tuning flag, what it needs, and how to give that. */
const NEEDS: readonly { flag: TuningFlag; name: string; has(o: TunedOptions): boolean; needs: string; hint: string }[] = [
  { flag: 'hookTimeout', name: '--hook-timeout', has: (o) => some(o.hooks?.beforeSwitch) || some(o.hooks?.afterSwitch), needs: 'a hook', hint: '--before-switch <cmd> or --after-switch <cmd> (or hooks: in the config)' },
  { flag: 'healthTimeout', name: '--health-timeout', has: (o) => o.healthCheck !== undefined, needs: 'a health check', hint: '--health-url <url> or --health-check <cmd> (or healthCheck: in the config)' },
  { flag: 'reloadTimeout', name: '--reload-timeout', has: (o) => some(o.reload?.units) || some(o.reload?.phpFpm), needs: 'a reload', hint: '--reload-unit <unit> or --reload-php-fpm <pid file> (or reload: in the config)' },
  { flag: 'staleWait', name: '--stale-wait', has: (o) => o.stale !== 'off', needs: 'the stale-process check, which --stale off turns off', hint: '--stale warn or --stale fail' },
  { flag: 'sharedCreate', name: '--shared-create', has: (o) => some(o.shared) || some(o.sharedFiles) || some(o.sharedDirs), needs: 'a shared path', hint: '--shared-file <path> or --shared-dir <path> (or sharedFiles:/sharedDirs: in the config)' },
  { flag: 'sharedReplace', name: '--shared-replace', has: (o) => some(o.shared) || some(o.sharedFiles) || some(o.sharedDirs), needs: 'a shared path', hint: '--shared-file <path> or --shared-dir <path> (or sharedFiles:/sharedDirs: in the config)' },
];

/** Throws a usage error (exit 2) for the first tuning flag given on the command line whose subject the options lack. */
export function refuseIdleFlags(options: TunedOptions, onCommandLine: (flag: TuningFlag) => boolean): void {
  for (const n of NEEDS) {
    if (!onCommandLine(n.flag) || n.has(options)) continue;
    throw new DeployError('USAGE', `${n.name} applies only with ${n.needs}; without one it would change nothing`, { hint: `add ${n.hint}, or leave out ${n.name}` });
  }
}
