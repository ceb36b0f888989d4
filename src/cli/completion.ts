/** `atomic-deploy completion bash|zsh|fish`: completion scripts generated from the commands' own flags, so they never drift. */
import type { Command, Option } from 'commander';
import { DeployError } from '../errors.ts';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

export interface CompletionSpec {
  /** Each command with its long flags; `deploy` also stands for the bare form. */
  commands: { name: string; flags: string[] }[];
  /** Flags of `deploy` whose value is the next word: skipped when counting its arguments. */
  deployValueFlags: string[];
  /** Flags (any command's) whose value is one of a few words: completed with them. */
  choices: { flag: string; words: string[] }[];
  /** Flags whose value is a file (`<file>`, `<pid-file>`, `<file|url>`): completed with files. */
  fileFlags: string[];
}

/** What a deploy source may be besides a directory (plan/archive.ts reads the format from the bytes). */
export const ARCHIVE_SUFFIXES = ['tar', 'tar.gz', 'tgz', 'zip'] as const;

const longs = (options: readonly Option[]): string[] => options.map((o) => o.long).filter((f): f is string => f !== undefined);

export function completionSpec(program: Command): CompletionSpec {
  const global = program.options as Option[];
  const deploy = program.commands.find((c) => c.name() === 'deploy');
  return {
    commands: program.commands.map((c) => ({
      name: c.name(),
      flags: [...longs(global), ...longs(c.options as Option[]), '--help'],
    })),
    deployValueFlags: longs([...global, ...((deploy?.options ?? []) as Option[])].filter((o) => o.required || o.optional)),
    ...valueCompletions([...global, ...program.commands.flatMap((c) => c.options as Option[])]),
  };
}

/** What completes the value of each flag that takes one: its choices, or files; once per flag. */
function valueCompletions(options: readonly Option[]): Pick<CompletionSpec, 'choices' | 'fileFlags'> {
  const choices = new Map<string, string[]>();
  const files = new Set<string>();
  for (const o of options) {
    if (o.long === undefined) continue;
    if (o.argChoices !== undefined) choices.set(o.long, o.argChoices);
    else if (/<[^>]*file[^>]*>/.test(o.flags)) files.add(o.long);
  }
  return { choices: [...choices].map(([flag, words]) => ({ flag, words })), fileFlags: [...files] };
}

/** Shell `case` arms (bash and zsh share the syntax) completing the word after a flag that takes a value. */
function valueArms(spec: CompletionSpec, words: (list: string[]) => string, files: string): string {
  const arms = spec.choices.map((c) => `    ${c.flag}) ${words(c.words)}; return ;;`);
  if (spec.fileFlags.length > 0) arms.push(`    ${spec.fileFlags.join('|')}) ${files}; return ;;`);
  return arms.join('\n');
}

/** A shell `case` pattern of the value flags (`--a|--b`); a flag that never occurs when there are none. */
function valuePattern(spec: CompletionSpec): string {
  return spec.deployValueFlags.length > 0 ? spec.deployValueFlags.join('|') : '--no-value-flags';
}

function bash(spec: CompletionSpec): string {
  const names = spec.commands.map((c) => c.name).join(' ');
  const deploy = spec.commands.find((c) => c.name === 'deploy')?.flags.join(' ') ?? '';
  const cases = spec.commands.map((c) => `    ${c.name}) opts='${c.flags.join(' ')}' ;;`).join('\n');
  const archives = ARCHIVE_SUFFIXES.map((x) => `$(compgen -f -X '!*.${x}' -- "$cur")`).join(' ');
  return `# atomic-deploy completion for bash. Load with: eval "$(atomic-deploy completion bash)"
_atomic_deploy() {
  local cur=\${COMP_WORDS[COMP_CWORD]} opts
  if [ "$COMP_CWORD" -eq 1 ] && [[ $cur != -* ]]; then
    COMPREPLY=($(compgen -W '${names}' -- "$cur") $(compgen -d -- "$cur") ${archives})
    return
  fi
  case \${COMP_WORDS[1]} in
${cases}
    *) opts='${deploy}' ;;
  esac
  case \${COMP_WORDS[COMP_CWORD-1]} in
${valueArms(spec, (w) => `COMPREPLY=($(compgen -W '${w.join(' ')}' -- "$cur"))`, 'COMPREPLY=($(compgen -f -- "$cur"))')}
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  elif _atomic_deploy_at_source; then
    COMPREPLY=($(compgen -d -- "$cur") ${archives})
  else
    COMPREPLY=($(compgen -d -- "$cur"))
  fi
}
# True at deploy's first argument (bare form too): the source, which may be an archive.
_atomic_deploy_at_source() {
  local i=1 n=0 skip=
  case \${COMP_WORDS[1]} in
    deploy) i=2 ;;
    ${spec.commands.map((c) => c.name).filter((n) => n !== 'deploy').join('|') || 'no-such-command'}) return 1 ;;
  esac
  for ((; i < COMP_CWORD; i++)); do
    if [ -n "$skip" ]; then skip=; continue; fi
    case \${COMP_WORDS[i]} in
      ${valuePattern(spec)}) skip=1 ;;
      -*) ;;
      *) n=$((n + 1)) ;;
    esac
  done
  [ "$n" -eq 0 ]
}
complete -o filenames -F _atomic_deploy atomic-deploy
`;
}

function zsh(spec: CompletionSpec): string {
  const names = spec.commands.map((c) => c.name).join(' ');
  const deploy = spec.commands.find((c) => c.name === 'deploy')?.flags.join(' ') ?? '';
  const cases = spec.commands.map((c) => `      ${c.name}) compadd -- ${c.flags.join(' ')} ;;`).join('\n');
  const archives = `_files -g '*.(${ARCHIVE_SUFFIXES.join('|')})'`;
  return `#compdef atomic-deploy
# atomic-deploy completion for zsh. Load with: source <(atomic-deploy completion zsh)
_atomic_deploy() {
  if (( CURRENT == 2 )) && [[ $PREFIX != -* ]]; then
    compadd -- ${names}
    _directories
    ${archives}
    return
  fi
  case $words[CURRENT-1] in
${valueArms(spec, (w) => `compadd -- ${w.join(' ')}`, '_files')}
  esac
  if [[ $PREFIX == -* ]]; then
    case $words[2] in
${cases}
      *) compadd -- ${deploy} ;;
    esac
  elif _atomic_deploy_at_source; then
    _directories
    ${archives}
  else
    _directories
  fi
}
# True at deploy's first argument (bare form too): the source, which may be an archive.
_atomic_deploy_at_source() {
  local i=2 n=0 skip=
  case $words[2] in
    deploy) i=3 ;;
    ${spec.commands.map((c) => c.name).filter((n) => n !== 'deploy').join('|') || 'no-such-command'}) return 1 ;;
  esac
  for (( ; i < CURRENT; i++ )); do
    if [[ -n $skip ]]; then skip=; continue; fi
    case $words[i] in
      ${valuePattern(spec)}) skip=1 ;;
      -*) ;;
      *) n=$((n + 1)) ;;
    esac
  done
  (( n == 0 ))
}
# Sourced before compinit (or without it) compdef does not exist yet: load the completion system.
(( $+functions[compdef] )) || { autoload -Uz compinit && compinit; }
compdef _atomic_deploy atomic-deploy
`;
}

function fish(spec: CompletionSpec): string {
  const names = spec.commands.map((c) => c.name).join(' ');
  const lines = [
    '# atomic-deploy completion for fish. Load with: atomic-deploy completion fish | source',
    'complete -c atomic-deploy -f',
    `complete -c atomic-deploy -n __fish_use_subcommand -a '${names}'`,
    "complete -c atomic-deploy -a '(__fish_complete_directories)'",
    // Deploy's first argument (bare form too) may be an archive: the source.
    'function __atomic_deploy_at_source',
    '  set -l words (commandline -opc)',
    '  set -l n 0',
    '  set -l skip 0',
    '  set -e words[1]',
    `  if contains -- "$words[1]" ${spec.commands.map((c) => c.name).filter((n) => n !== 'deploy').join(' ')}`,
    '    return 1',
    '  end',
    '  test "$words[1]" = deploy; and set -e words[1]',
    '  for w in $words',
    '    if test $skip = 1',
    '      set skip 0',
    `    else if contains -- $w ${spec.deployValueFlags.join(' ')}`,
    '      set skip 1',
    "    else if not string match -q -- '-*' $w",
    '      set n (math $n + 1)',
    '    end',
    '  end',
    '  test $n = 0',
    'end',
    'function __atomic_deploy_archives',
    '  set -l cur (commandline -ct)',
    '  for f in $cur*',
    `    test -f $f; and string match -q -r -- '\\.(${ARCHIVE_SUFFIXES.map((x) => x.replace('.', '\\.')).join('|')})$' $f; and echo $f`,
    '  end',
    'end',
    "complete -c atomic-deploy -n __atomic_deploy_at_source -a '(__atomic_deploy_archives)'",
  ];
  const values = new Map<string, string>([...spec.choices.map((c): [string, string] => [c.flag, ` -x -a '${c.words.join(' ')}'`]), ...spec.fileFlags.map((f): [string, string] => [f, ' -r -F'])]);
  for (const c of spec.commands) {
    for (const flag of c.flags) lines.push(`complete -c atomic-deploy -n '__fish_seen_subcommand_from ${c.name}' -l ${flag.slice(2)}${values.get(flag) ?? ''}`);
  }
  return `${lines.join('\n')}\n`;
}

export function completionScript(shell: string, spec: CompletionSpec): string {
  if (shell === 'bash') return bash(spec);
  if (shell === 'zsh') return zsh(spec);
  if (shell === 'fish') return fish(spec);
  throw new DeployError('USAGE', `no completion for shell ${JSON.stringify(shell)}`, { hint: `use one of: ${SHELLS.join(', ')}` });
}
