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

/** A folder with a build directory, archives of each kind, and files that are none. */
function withArchives(t: { after(fn: () => void): void }): string {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'build'));
  for (const f of ['site.tar.gz', 'site.tgz', 'a.zip', 'b.tar', 'notes.txt', 'tar', 'site.tar.gz.sig']) fs.writeFileSync(path.join(dir, f), '');
  return dir;
}

void test('bash: archives are offered as the deploy source (bare form too), never as the root or to other commands', (t) => {
  const dir = withArchives(t);
  const sources = ['a.zip', 'b.tar', 'build', 'site.tar.gz', 'site.tgz'];
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '']), sources);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', 'site.t']), ['site.tar.gz', 'site.tgz']);
  // A flag's value is not the source; a flag without one leaves the source to come.
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--release-id', 'r1', '']), sources);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--adopt', '']), sources);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', 'site.tgz', '']), ['build']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--release-id', 'r1', 'site.tgz', '']), ['build']);
  // The bare form: commands, directories and archives first; then the root, a directory.
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 's']), ['site.tar.gz', 'site.tgz', 'status']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'site.tgz', '']), ['build']);
  for (const command of ['rollback', 'releases', 'status', 'prune', 'unlock', 'verify']) assert.deepEqual(bashComplete(dir, ['atomic-deploy', command, '']), ['build'], command);
});

void test('zsh: the deploy source completes archives as well as directories; the root and other commands only directories', (t) => {
  const dir = withArchives(t);
  // compsys's own functions stand in as recorders: what the script asks of them is what it completes.
  const run = (words: string[]): string =>
    execFileSync('zsh', ['-c', `source <(${cli} completion zsh) 2>/dev/null; _directories() { print -r -- dirs; }; _files() { print -r -- files "$@"; }; compadd() { print -r -- words; }; words=(${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length}; PREFIX=${JSON.stringify(words.at(-1) ?? '')}; _atomic_deploy`], { cwd: dir, encoding: 'utf8' }).trim();
  const archives = "files -g *.(tar|tar.gz|tgz|zip)";
  assert.equal(run(['atomic-deploy', 'deploy', '']), `dirs\n${archives}`);
  assert.equal(run(['atomic-deploy', 'deploy', '--release-id', 'r1', '']), `dirs\n${archives}`);
  assert.equal(run(['atomic-deploy', 'deploy', 'site.tgz', '']), 'dirs');
  assert.equal(run(['atomic-deploy', '']), `words\ndirs\n${archives}`);
  assert.equal(run(['atomic-deploy', 'site.tgz', '']), 'dirs');
  assert.equal(run(['atomic-deploy', 'rollback', '']), 'dirs');
  // The glob the script hands to _files matches exactly the archives.
  const matched = execFileSync('zsh', ['-c', "print -rl -- *.(tar|tar.gz|tgz|zip)(N)"], { cwd: dir, encoding: 'utf8' }).split('\n').filter(Boolean).sort();
  assert.deepEqual(matched, ['a.zip', 'b.tar', 'site.tar.gz', 'site.tgz']);
});

void test('fish: archives as the deploy source only', (t) => {
  const dir = withArchives(t);
  const complete = (line: string): string[] =>
    execFileSync('fish', ['-c', `${cli} completion fish | source; complete -C '${line}'`], { cwd: dir, encoding: 'utf8' }).split('\n').map((l) => l.split('\t')[0] ?? '').filter(Boolean).sort();
  assert.deepEqual(complete('atomic-deploy deploy '), ['a.zip', 'b.tar', 'build/', 'site.tar.gz', 'site.tgz']);
  assert.deepEqual(complete('atomic-deploy deploy --release-id r1 site.'), ['site.tar.gz', 'site.tgz']);
  assert.deepEqual(complete('atomic-deploy deploy site.tgz '), ['build/']);
  assert.deepEqual(complete('atomic-deploy rollback '), ['build/']);
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

// `--strategy <TAB>` offered directories and `--config <TAB>` only directories: a flag's value
// completes with its choices or with files, in each shell.
void test('a flag value completes with its choices, or with files for a file flag, in bash, zsh and fish', (t) => {
  const dir = withArchives(t);
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), '');
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--strategy', '']), ['auto', 'copy', 'hardlink', 'reflink']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--strategy', 'h']), ['hardlink']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'rollback', 'x', '--stale', '']), ['fail', 'off', 'warn']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--config', 'atomic']), ['atomic-deploy.config.yaml']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', '--config', 'atomic']), ['atomic-deploy.config.yaml']);
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', 'site.tgz', 'www', '--signature', 'site.tar.gz.']), ['site.tar.gz.sig']);
  // After the value, arguments again: the source (a directory or an archive).
  assert.deepEqual(bashComplete(dir, ['atomic-deploy', 'deploy', '--strategy', 'copy', 'b']), ['b.tar', 'build']);
  const zsh = (words: string[]): string =>
    execFileSync('zsh', ['-c', `source <(${cli} completion zsh) 2>/dev/null; _directories() { print -r -- dirs; }; _files() { print -r -- files "$@"; }; compadd() { print -r -- words "$@"; }; words=(${words.map((w) => `'${w}'`).join(' ')}); CURRENT=${words.length}; PREFIX=${JSON.stringify(words.at(-1) ?? '')}; _atomic_deploy`], { cwd: dir, encoding: 'utf8' }).trim();
  assert.equal(zsh(['atomic-deploy', 'deploy', '--strategy', '']), 'words -- auto copy reflink hardlink');
  assert.equal(zsh(['atomic-deploy', 'deploy', '--config', '']), 'files');
  const fish = (line: string): string[] =>
    execFileSync('fish', ['-c', `${cli} completion fish | source; complete -C '${line}'`], { cwd: dir, encoding: 'utf8' }).split('\n').map((l) => l.split('\t')[0] ?? '').filter(Boolean).sort();
  assert.deepEqual(fish('atomic-deploy deploy --strategy '), ['auto', 'copy', 'hardlink', 'reflink']);
  assert.ok(fish('atomic-deploy deploy --config atomic').includes('atomic-deploy.config.yaml'));
});
