/**
 * One namespace fleet for a test file: made before its first test, destroyed after its last, with
 * what every fleet test needs beside it (the CLI's environment, the `--host` arguments, the CLI run
 * against the fleet). Call it at a file's top level: its hooks then run around every test of the
 * file, and the file's own hooks (a php-fpm pool per host) run inside them.
 */
import { after, before } from 'node:test';
import { runCli, type CliResult } from './cli.ts';
import { createFleet, type Fleet, type FleetOptions } from './fleet.ts';

export interface FleetSuite {
  /** The fleet, once `before` has made it: reading it earlier throws. */
  fleet: Fleet;
  /** The CLI's environment for it (its ssh config), filled in when the fleet is made. */
  env: NodeJS.ProcessEnv;
  /** `--host <alias>` for every host, filled in when the fleet is made. */
  hostArgs: string[];
  /** The CLI against the fleet: `timeoutMs` overrides the suite's, `failpoints` arms the tsc build's. */
  cli: (args: readonly string[], options?: { failpoints?: string; timeoutMs?: number }) => Promise<CliResult>;
}

export function fleetSuite(hosts: number, options: FleetOptions & { timeoutMs: number; requires?: () => void }): FleetSuite {
  const { timeoutMs, requires, ...fleetOptions } = options;
  let made: Fleet | undefined;
  const env: NodeJS.ProcessEnv = {};
  const hostArgs: string[] = [];
  // The tests read `fleet.hosts` as a plain value; the fleet exists only once `before` has run.
  const fleet = new Proxy({} as Fleet, {
    get(_target, key) {
      if (!made) throw new Error('fleetSuite: the fleet is made in before(); read it inside a test or a hook');
      const value: unknown = Reflect.get(made, key, made);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(made) : value;
    },
  });
  before(async () => {
    requires?.();
    made = await createFleet(hosts, fleetOptions);
    env.ATOMIC_DEPLOY_SSH_CONFIG = made.sshConfigPath;
    hostArgs.push(...made.hosts.flatMap((h) => ['--host', h.alias]));
  });
  after(async () => {
    await made?.destroy();
  });
  return {
    fleet,
    env,
    hostArgs,
    cli: (args, more = {}) => runCli(args, { env, timeoutMs: more.timeoutMs ?? timeoutMs, ...(more.failpoints ? { failpoints: more.failpoints } : {}) }),
  };
}
