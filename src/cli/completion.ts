/** `atomic-deploy completion bash|zsh|fish`: completion scripts generated from the commands' own flags, so they never drift. */
import type { Command, Option } from 'commander';
import { DeployError } from '../errors.ts';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];

export interface CompletionSpec {
  /** Each command with its long flags; `deploy` also stands for the bare form. */
  commands: { name: string; flags: string[] }[];
}

export function completionSpec(program: Command): CompletionSpec {
  const global = (program.options as Option[]).map((o) => o.long).filter((f): f is string => f !== undefined);
  return {
    commands: program.commands.map((c) => ({
      name: c.name(),
      flags: [...global, ...(c.options as Option[]).map((o) => o.long).filter((f): f is string => f !== undefined), '--help'],
    })),
  };
}

function bash(spec: CompletionSpec): string {
  const names = spec.commands.map((c) => c.name).join(' ');
  const deploy = spec.commands.find((c) => c.name === 'deploy')?.flags.join(' ') ?? '';
  const cases = spec.commands.map((c) => `    ${c.name}) opts='${c.flags.join(' ')}' ;;`).join('\n');
  return `# atomic-deploy completion for bash. Load with: eval "$(atomic-deploy completion bash)"
_atomic_deploy() {
  local cur=\${COMP_WORDS[COMP_CWORD]} opts
  if [ "$COMP_CWORD" -eq 1 ] && [[ $cur != -* ]]; then
    COMPREPLY=($(compgen -W '${names}' -- "$cur") $(compgen -d -- "$cur"))
    return
  fi
  case \${COMP_WORDS[1]} in
${cases}
    *) opts='${deploy}' ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -d -- "$cur"))
  fi
}
complete -o filenames -F _atomic_deploy atomic-deploy
`;
}

function zsh(spec: CompletionSpec): string {
  const names = spec.commands.map((c) => c.name).join(' ');
  const deploy = spec.commands.find((c) => c.name === 'deploy')?.flags.join(' ') ?? '';
  const cases = spec.commands.map((c) => `      ${c.name}) compadd -- ${c.flags.join(' ')} ;;`).join('\n');
  return `#compdef atomic-deploy
# atomic-deploy completion for zsh. Load with: source <(atomic-deploy completion zsh)
_atomic_deploy() {
  if (( CURRENT == 2 )) && [[ $PREFIX != -* ]]; then
    compadd -- ${names}
    _directories
    return
  fi
  if [[ $PREFIX == -* ]]; then
    case $words[2] in
${cases}
      *) compadd -- ${deploy} ;;
    esac
  else
    _directories
  fi
}
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
  ];
  for (const c of spec.commands) {
    for (const flag of c.flags) lines.push(`complete -c atomic-deploy -n '__fish_seen_subcommand_from ${c.name}' -l ${flag.slice(2)}`);
  }
  return `${lines.join('\n')}\n`;
}

export function completionScript(shell: string, spec: CompletionSpec): string {
  if (shell === 'bash') return bash(spec);
  if (shell === 'zsh') return zsh(spec);
  if (shell === 'fish') return fish(spec);
  throw new DeployError('USAGE', `no completion for shell ${JSON.stringify(shell)}`, { hint: `use one of: ${SHELLS.join(', ')}` });
}
