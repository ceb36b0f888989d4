// The commands a hint tells the user to run are built where the error is known, from the root and
// the hosts; what the run was given on its command line to reach them (--ssh-config: the host
// aliases may exist only in that file) or to read its settings (--config, --no-config) is known
// here only. A `status … --host web1` hint without the --ssh-config the deploy ran with could not
// resolve web1, in the moment a lost host needs it most.
import { shellWord } from '../plan/paths.ts';

export interface RunFlags {
  /** For every command in a hint: --config <file> or --no-config, as the run was given them. */
  all: readonly (readonly string[])[];
  /** For a command on hosts (it has --host): --ssh-config <file>. */
  hosts: readonly (readonly string[])[];
}

/** What the run gave on its command line that a command it suggests needs too. */
export function runFlags(given: { config?: string | false; sshConfig?: string }): RunFlags {
  const all = given.config === false ? [['--no-config']] : given.config === undefined ? [] : [['--config', given.config]];
  return { all, hosts: given.sshConfig === undefined ? [] : [['--ssh-config', given.sshConfig]] };
}

/**
 * `text` with the run's flags put after the subcommand of every `atomic-deploy <subcommand>` in it
 * (a flag the command has already is not added twice). A command reaches to the next `;`, `)` or
 * command; `subcommands` are the program's, so `.atomic-deploy/` and prose ("atomic-deploy status with
 * the same hosts") stay as they are.
 */
export function withRunFlags(text: string, flags: RunFlags, subcommands: readonly string[]): string {
  if (flags.all.length === 0 && flags.hosts.length === 0) return text;
  const command = new RegExp(`(^|[\\s(:])atomic-deploy (${subcommands.map((s) => s.replace(/[^a-z-]/g, '')).join('|')})(?=\\s|$|[;),])`, 'g');
  let out = '';
  let from = 0;
  for (const m of text.matchAll(command)) {
    const at = (m.index ?? 0) + (m[1] ?? '').length + 'atomic-deploy '.length + (m[2] ?? '').length;
    const rest = text.slice(at);
    const end = /;|\)|\batomic-deploy /.exec(rest);
    const words = rest.slice(0, end?.index ?? rest.length);
    // "run atomic-deploy status with the same hosts and config as this deploy" names no words to add to.
    if (/^ with\b/.test(words)) continue;
    const has = (flag: string): boolean => new RegExp(`(^|\\s)${flag}(\\s|=|$)`).test(words);
    const add = [...flags.all, ...(/(^|\s)--host(\s|=)/.test(words) ? flags.hosts : [])].filter(([flag]) => flag !== undefined && !has(flag) && !(flag === '--config' && has('--no-config')));
    out += text.slice(from, at) + add.map((f) => ` ${f.map((w, i) => (i === 0 ? w : shellWord(w))).join(' ')}`).join('');
    from = at;
  }
  return out + text.slice(from);
}

/** A JSON.stringify replacer: every `hint` string of a result (the top error's, each host row's) rewritten. */
export function hintReplacer(rewrite: (hint: string) => string): (key: string, value: unknown) => unknown {
  return (key, value) => (key === 'hint' && typeof value === 'string' ? rewrite(value) : value);
}
