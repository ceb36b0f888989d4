/** The config file's schema and its validation: plain data in, a typed config or one error line out. */
import path from 'node:path';
import { z } from 'zod';
import { DeployError } from '../errors.ts';
import { parseByteCount } from './archive.ts';
import { sharedPathProblem } from './paths.ts';
import { releaseIdProblem } from './release-id.ts';
import { parseHostSpec } from './config-basics.ts';
import { parseMaxFail, parseWaves } from './waves.ts';

export { CONFIG_NAMES, parseHostSpec, type HostSpec } from './config-basics.ts';

function httpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}

const text = (what: string) => z.string({ error: what }).min(1, { error: what });
const seconds = (what: string) => z.number({ error: what }).positive({ error: what }).finite({ error: what });
const commands = z.union([text('a command'), z.array(text('a command'), { error: 'a command or a list of commands' }).min(1, { error: 'a command or a list of commands' })], {
  error: 'a command or a list of commands',
});
const flag = z.boolean({ error: 'true or false' });
const count = (what: string, min: number) => z.number({ error: what }).int({ error: what }).min(min, { error: what });

export const configSchema = z.strictObject({
  root: text('a directory path').optional(),
  source: text('a directory path').optional(),
  keep: z.number({ error: 'an integer >= 0' }).int({ error: 'an integer >= 0' }).min(0, { error: 'an integer >= 0' }).optional(),
  releaseId: text('a release id').refine((id) => releaseIdProblem(id) === undefined, { error: 'a release id: letters, digits, dots, dashes, underscores, not starting with "." or "-"' }).optional(),
  fsync: flag.optional(),
  wait: z.number({ error: 'a number of seconds >= 0' }).min(0, { error: 'a number of seconds >= 0' }).finite({ error: 'a number of seconds >= 0' }).optional(),
  shared: z
    .array(text('a relative path inside the release').refine((p) => sharedPathProblem(p) === undefined, { error: 'a relative, normalised path without ".."' }), { error: 'a list of relative paths' })
    .optional(),
  sharedCreate: flag.optional(),
  sharedReplace: flag.optional(),
  strategy: z.enum(['copy', 'reflink', 'hardlink', 'auto'], { error: 'one of copy, reflink, hardlink, auto' }).optional(),
  checksum: flag.optional(),
  hooks: z
    .strictObject(
      {
        beforeSwitch: commands.optional(),
        afterSwitch: commands.optional(),
        timeout: seconds('a number of seconds > 0').optional(),
      },
      { error: 'a mapping with beforeSwitch, afterSwitch, timeout' },
    )
    .optional(),
  healthCheck: z
    .strictObject(
      {
        command: text('a command').optional(),
        url: text('an http:// or https:// URL').refine(httpUrl, { error: 'an http:// or https:// URL' }).optional(),
        timeout: seconds('a number of seconds > 0').optional(),
      },
      { error: 'a mapping with command, url, timeout' },
    )
    .refine((h) => h.command !== undefined || h.url !== undefined, { error: 'a command or a url (or both)' })
    .optional(),
  reload: z
    .strictObject(
      {
        units: z.array(text('a systemd unit name'), { error: 'a list of systemd unit names' }).min(1, { error: 'a list of systemd unit names' }).optional(),
        phpFpm: z.array(text('a php-fpm pid file path'), { error: 'a list of php-fpm pid file paths' }).min(1, { error: 'a list of php-fpm pid file paths' }).optional(),
        timeout: seconds('a number of seconds > 0').optional(),
      },
      { error: 'a mapping with units, phpFpm, timeout' },
    )
    .optional(),
  stale: z.enum(['warn', 'fail', 'off'], { error: 'one of warn, fail, off' }).optional(),
  staleWait: z.number({ error: 'a number of seconds >= 0' }).min(0, { error: 'a number of seconds >= 0' }).finite({ error: 'a number of seconds >= 0' }).optional(),
  waves: z
    .union([z.string(), z.number()], { error: 'wave sizes such as "1,10%,100%"' })
    .refine((w) => typeof parseWaves(String(w)) !== 'string', { error: 'wave sizes such as "1,10%,100%" (hosts >= 1 or percentages)' })
    .optional(),
  wavePause: z.number({ error: 'a number of seconds >= 0' }).min(0, { error: 'a number of seconds >= 0' }).finite({ error: 'a number of seconds >= 0' }).optional(),
  maxFail: z
    .union([z.string(), z.number()], { error: 'a number of hosts or a percentage such as 10%' })
    .refine((m) => typeof parseMaxFail(String(m)) !== 'string', { error: 'a number of hosts (>= 0) or a percentage such as 10%' })
    .optional(),
  onFailure: z.enum(['rollback', 'keep'], { error: 'rollback or keep' }).optional(),
  artifact: z
    .strictObject(
      {
        stripComponents: count('an integer >= 0', 0).optional(),
        maxFiles: count('an integer >= 1', 1).optional(),
        maxBytes: z
          .union([z.number(), z.string()], { error: 'a size such as 500000000, 512M or 4G' })
          .refine((v) => parseByteCount(v) !== undefined, { error: 'a size such as 500000000, 512M or 4G' })
          .optional(),
        allowedSigners: text('an OpenSSH allowed_signers file path').optional(),
        keepSetuid: flag.optional(),
        downloadTimeout: seconds('a number of seconds > 0').optional(),
        downloadRetries: count('an integer >= 0', 0).optional(),
      },
      { error: 'a mapping with stripComponents, maxFiles, maxBytes, allowedSigners, keepSetuid, downloadTimeout, downloadRetries' },
    )
    .optional(),
  hosts: z
    .array(
      z.strictObject(
        {
          host: text('[user@]host[:port]').refine((h) => parseHostSpec(h) !== undefined, { error: '[user@]host[:port]' }),
          root: text('an absolute path').refine((p) => path.posix.isAbsolute(p), { error: 'an absolute path' }).optional(),
        },
        { error: 'a mapping with host and root' },
      ),
      { error: 'a list of hosts' },
    )
    .min(1, { error: 'a non-empty list of hosts' })
    .optional(),
});

export type Config = z.infer<typeof configSchema>;

const KNOWN_KEYS: Record<string, readonly string[]> = {
  '': Object.keys(configSchema.shape),
  hooks: ['beforeSwitch', 'afterSwitch', 'timeout'],
  healthCheck: ['command', 'url', 'timeout'],
  reload: ['units', 'phpFpm', 'timeout'],
  hosts: ['host', 'root'],
  artifact: ['stripComponents', 'maxFiles', 'maxBytes', 'allowedSigners', 'keepSetuid', 'downloadTimeout', 'downloadRetries'],
};

/** `hooks.beforeSwitch`, `hosts[1].host`. */
export function formatKeyPath(keys: readonly PropertyKey[]): string {
  let out = '';
  for (const key of keys) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(top level)' : out;
}

/** A value as it appears in the error line: JSON, cut short. */
export function formatValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  let s: string;
  try {
    s = JSON.stringify(value) ?? typeof value;
  } catch {
    s = typeof value;
  }
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Validates parsed config data; the error names the key path, the value and what was expected, on one line. */
export function parseConfig(data: unknown, file: string): Config {
  // An empty YAML file parses to null: no settings.
  const input = data ?? {};
  const result = configSchema.safeParse(input, { reportInput: true });
  if (result.success) return result.data;
  const issues = result.error.issues;
  const first = issues[0];
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more problem${issues.length > 2 ? 's' : ''})` : '';
  let line: string;
  if (first === undefined) {
    line = 'invalid config';
  } else if (first.code === 'unrecognized_keys') {
    const key = first.keys[0] ?? '';
    const keyPath = formatKeyPath([...first.path, key]);
    const parent = first.path.filter((k) => typeof k === 'string').join('.');
    const known = KNOWN_KEYS[parent] ?? [];
    const input: unknown = first.input;
    const value = typeof input === 'object' && input !== null ? (input as Record<string, unknown>)[key] : undefined;
    line = `${keyPath}: unknown key (value ${formatValue(value)}); expected one of ${known.join(', ')}`;
  } else if (first.path.length === 0) {
    line = `got ${formatValue(first.input)}, expected a mapping of settings`;
  } else {
    line = `${formatKeyPath(first.path)}: got ${formatValue(first.input)}, expected ${first.message}`;
  }
  throw new DeployError('INVALID_CONFIG', `${file}: ${line}${more}`, {
    hint: 'see docs/lifecycle.md for every key, or write an example with: atomic-deploy init',
    details: { file },
  });
}
