/**
 * The parts of the config that need no schema library: the file names and host specs. Kept
 * apart from config.ts so that a command run without a config file never loads zod or yaml
 * (about 130 ms of start-up, more than the rest of the CLI).
 */

/** Config file names looked for in the working directory, in this order. */
export const CONFIG_NAMES = ['atomic-deploy.config.yaml', 'atomic-deploy.config.yml', 'atomic-deploy.config.json'] as const;

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
