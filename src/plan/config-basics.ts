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
  '--verify': 'rollbackVerify',
  '--strip-components': 'artifact.stripComponents',
  '--max-files': 'artifact.maxFiles',
  '--max-bytes': 'artifact.maxBytes',
  '--allowed-signers': 'artifact.allowedSigners',
  '--keep-setuid': 'artifact.keepSetuid',
  '--download-timeout': 'artifact.downloadTimeout',
  '--download-retries': 'artifact.downloadRetries',
  '--download-max-time': 'artifact.downloadMaxTime',
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

/**
 * A config file's text: UTF-8, a byte order mark at its start read past (Notepad writes one; JSON
 * readers refuse it). Bytes that are no UTF-8 are a problem, never replaced: a root or a hook
 * decoded with U+FFFD in a Latin-1 byte's place names another folder or command than the file.
 */
export function configText(bytes: Uint8Array): { text: string } | { problem: string; line?: number; col?: number; byte?: number } {
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    return { problem: 'UTF-16 text (it starts with a UTF-16 byte order mark): a config file is read as UTF-8' };
  }
  const body = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? bytes.subarray(3) : bytes;
  try {
    return { text: new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(body) };
  } catch {
    // Where the first byte that is no UTF-8 stands: the lead byte of the first sequence that fails.
    const good = firstNonUtf8(body);
    const before = new TextDecoder('utf-8').decode(body.subarray(0, good));
    const lines = before.split('\n');
    return {
      problem: `not UTF-8 text (the byte 0x${(body[good] ?? 0).toString(16).padStart(2, '0')}): a config file is read as UTF-8, and this one was saved in another encoding (Latin-1?)`,
      line: lines.length,
      col: [...(lines[lines.length - 1] ?? '')].length + 1,
      byte: body[good],
    };
  }
}

/** The offset of the first byte in `bytes` that starts no valid UTF-8 sequence (its length if none does). */
function firstNonUtf8(bytes: Uint8Array): number {
  const strict = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let i = 0;
  while (i < bytes.length) {
    const lead = bytes[i] as number;
    const length = lead < 0x80 ? 1 : lead >= 0xc2 && lead <= 0xdf ? 2 : lead >= 0xe0 && lead <= 0xef ? 3 : lead >= 0xf0 && lead <= 0xf4 ? 4 : 0;
    if (length === 0 || i + length > bytes.length) return i;
    try {
      strict.decode(bytes.subarray(i, i + length));
    } catch {
      return i;
    }
    i += length;
  }
  return i;
}
