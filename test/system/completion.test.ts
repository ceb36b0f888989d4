// `atomic-deploy completion bash|zsh|fish`: each script is valid for its shell and completes
// commands, flags and directories; bash's is driven for real through its completion function.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, runCli, tempDir } from '../harness/cli.ts';

const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)}`;

function bashComplete(cwd: string, words: string[]): string[] {
  const script = `eval "$(${cli} completion bash)"; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _atomic_deploy; printf '%s\\n' "\${COMPREPLY[@]}"`;
  return execFileSync('bash', ['-c', script], { cwd, encoding: 'utf8' }).split('\n').filter(Boolean).sort();
}

void test('bash: commands and directories first, then the flags of the command (the bare form gets deploy flags)', (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'build'));
  fs.writeFileSync(path.join(dir, 'notes.txt'), '');
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'rollb']), ['rollback']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'b']), ['build']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--shared-']), ['--shared-create', '--shared-dir', '--shared-file', '--shared-replace']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'rollback', 'x', '--t']), ['--to']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'build', 'www', '--ado']), ['--adopt']);
  // Commands and flags added later are there too: the scripts come from the command definitions.
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'veri']), ['verify']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'verify', 'x', '--rel']), ['--release']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--stale']), ['--stale', '--stale-wait']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--sha2']), ['--sha256']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--max-f']), ['--max-fail', '--max-files']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'rollback', 'x', '--reload-']), ['--reload-php-fpm', '--reload-timeout', '--reload-unit']);
  // Directories only as arguments: a file is no source or root.
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '']), ['build']);
});

void test('zsh and fish: the scripts parse, and fish completes the commands', async (t) => {
  const dir = tempDir(t);
  for (const shell of ['zsh', 'fish'] as const) {
    const result = await runCli(['completion', shell]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /rollback/);
    const file = path.join(dir, `completion.${shell}`);
    fs.writeFileSync(file, result.stdout);
    execFileSync(shell, ['-n', file]);
  }
  const fishOut = execFileSync('fish', ['-c', `${cli} completion fish | source; complete -C 'atomic-deploy rollb'`], { encoding: 'utf8' });
  assert.match(fishOut, /^rollback/m);
  const zshOut = execFileSync('zsh', ['-c', `autoload -U compinit && compinit -u; source <(${cli} completion zsh); print -r -- \${+functions[_atomic_deploy]}`], { encoding: 'utf8' });
  assert.equal(zshOut.trim(), '1');
});

void test('an unknown shell is a usage error', async () => {
  const result = await runCli(['completion', 'tcsh']);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^error: no completion for shell "tcsh"\nhint: use one of: bash, zsh, fish\n$/);
});
