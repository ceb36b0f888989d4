/**
 * The parts of the config that need no schema library: the file names and host specs. Kept
 * apart from config.ts so that a command run without a config file never loads zod or yaml
 * (about 130 ms of start-up, more than the rest of the CLI).
 */

/** Config file names looked for in the working directory, in this order. */
export const CONFIG_NAMES = ['atomic-deploy.config.yaml', 'atomic-deploy.config.yml', 'atomic-deploy.config.json'] as const;

/** The config key each flag stands for (the flag column of docs/lifecycle.md's table of keys). */
export const CONFIG_KEY_OF_FLAG: Readonly<Record<string, string>> = {
  '--keep': 'keep',
  '--release-id': 'releaseId',
  '--wait': 'wait',
  '--shared': 'shared',
  '--shared-file': 'sharedFiles',
  '--shared-dir': 'sharedDirs',
  '--shared-create': 'sharedCreate',
  '--shared-replace': 'sharedReplace',
  '--strategy': 'strategy',
  '--before-switch': 'hooks.beforeSwitch',
  '--after-switch': 'hooks.afterSwitch',
  '--hook-timeout': 'hooks.timeout',
  '--health-check': 'healthCheck.command',
  '--health-url': 'healthCheck.url',
  '--health-timeout': 'healthCheck.timeout',
  '--reload-unit': 'reload.units',
  '--reload-php-fpm': 'reload.phpFpm',
  '--reload-timeout': 'reload.timeout',
  '--stale': 'stale',
  '--stale-wait': 'staleWait',
  '--strip-components': 'artifact.stripComponents',
  '--max-files': 'artifact.maxFiles',
  '--max-bytes': 'artifact.maxBytes',
  '--allowed-signers': 'artifact.allowedSigners',
  '--keep-setuid': 'artifact.keepSetuid',
  '--download-timeout': 'artifact.downloadTimeout',
  '--download-retries': 'artifact.downloadRetries',
  '--host': 'hosts',
  '--waves': 'waves',
  '--wave-pause': 'wavePause',
  '--max-fail': 'maxFail',
  '--on-failure': 'onFailure',
};

export interface HostSpec {
  user?: string;
  host: string;
  port?: number;
}

// A leading "-" would let a host name pass as an ssh option.
const HOST_SPEC = /^(?:([A-Za-z0-9_][A-Za-z0-9._-]*)@)?([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::(\d{1,5}))?$/;

/** Parses `[user@]host[:port]`; undefined when it is not one. */
export function parseHostSpec(spec: string): HostSpec | undefined {
  const m = HOST_SPEC.exec(spec);
  if (!m?.[2]) return undefined;
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65535)) return undefined;
  return { ...(m[1] ? { user: m[1] } : {}), host: m[2], ...(port ? { port } : {}) };
}
