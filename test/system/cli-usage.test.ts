// The CLI behaves like the tools users know: a typo gets "did you mean", never the implicit
// deploy; no arguments prints help; the top-level help has examples and the exit codes. Each
// mistake exits 2 and a byte-level snapshot shows nothing changed in the working folder.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, cliEnv, currentId, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';

async function workdir(t: { after(fn: () => void): void }): Promise<string> {
  const dir = tempDir(t);
  writeTree(path.join(dir, 'build'), { 'index.html': 'v1\n' });
  fs.writeFileSync(path.join(dir, 'notes.txt'), 'not an archive\n');
  const first = await runCli(['deploy', 'build', 'www', '--quiet'], { cwd: dir });
  assert.equal(first.code, 0, first.stderr);
  return dir;
}

const TYPOS: { args: string[]; error: string; hint: RegExp }[] = [
  { args: ['rollbak', 'www'], error: "error: unknown command 'rollbak'; did you mean 'rollback'?", hint: /^hint: see: atomic-deploy --help$/ },
  { args: ['deplyo', 'build', 'www'], error: "error: unknown command 'deplyo'; did you mean 'deploy'?", hint: /--help/ },
  { args: ['relases', 'www'], error: "error: unknown command 'relases'; did you mean 'releases'?", hint: /--help/ },
  { args: ['frobnicate', 'www'], error: "error: unknown command 'frobnicate'", hint: /--help/ },
  { args: ['verfy', 'www'], error: "error: unknown command 'verfy'; did you mean 'verify'?", hint: /--help/ },
  { args: ['completon', 'bash'], error: "error: unknown command 'completon'; did you mean 'completion'?", hint: /--help/ },
  { args: ['./bulid', 'www'], error: "error: unknown command './bulid'", hint: /\.\/bulid is neither a directory nor an archive; to deploy, give the build output directory or a \.tar, \.tar\.gz or \.zip/ },
  // `help <command>` names a command too: an unknown one is the same mistake, not a request for the general help.
  { args: ['help', 'bogus'], error: "error: unknown command 'bogus'", hint: /^hint: see: atomic-deploy --help$/ },
  { args: ['help', 'rollbak'], error: "error: unknown command 'rollbak'; did you mean 'rollback'?", hint: /^hint: see: atomic-deploy --help$/ },
  // A file that exists but is no archive is no source either: the bare form would have deployed it.
  { args: ['notes.txt', 'www'], error: "error: unknown command 'notes.txt'", hint: /notes\.txt is neither a directory nor an archive/ },
];

for (const typo of TYPOS) {
  void test(`typo: atomic-deploy ${typo.args.join(' ')} exits 2 with a suggestion and changes nothing`, async (t) => {
    const dir = await workdir(t);
    const before = treeSnapshot(dir, { times: true });
    const result = await runCli(typo.args, { cwd: dir });
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stdout, '');
    const [error, hint, ...rest] = result.stderr.trimEnd().split('\n');
    assert.equal(error, typo.error);
    assert.match(hint ?? '', typo.hint);
    assert.deepEqual(rest, []);
    assert.deepEqual(treeSnapshot(dir, { times: true }), before);
  });
}

void test('help <command> prints that command\'s help, as <command> --help does', async (t) => {
  const dir = await workdir(t);
  for (const name of ['rollback', 'deploy', 'prune']) {
    const result = await runCli(['help', name], { cwd: dir });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, new RegExp(`^Usage: atomic-deploy ${name} `));
  }
});

void test('a typo with --json prints one JSON error object', async (t) => {
  const dir = await workdir(t);
  const result = await runCli(['rollbak', 'www', '--json'], { cwd: dir });
  assert.equal(result.code, 2);
  assert.deepEqual(JSON.parse(result.stdout), { error: { code: 'USAGE', message: "unknown command 'rollbak'; did you mean 'rollback'?", hint: 'see: atomic-deploy --help' } });
});

void test('a mistyped flag gets a suggestion too', async (t) => {
  const dir = await workdir(t);
  const result = await runCli(['deploy', 'build', 'www', '--kep', '3'], { cwd: dir });
  assert.equal(result.code, 2);
  // On the error's own line, as a mistyped command's suggestion is.
  assert.match(result.stderr, /^error: unknown option '--kep'; did you mean --keep\?$/m);
  const json = await runCli(['deploy', 'build', 'www', '--kep', '3', '--json'], { cwd: dir });
  assert.deepEqual(JSON.parse(json.stdout), { error: { code: 'USAGE', message: "unknown option '--kep'; did you mean --keep?", hint: 'see --help for usage' } });
  // A flag of other commands: named as theirs, where "did you mean --help?" pointed away from the mistake.
  const other = await runCli(['releases', 'www', '--keep', '3'], { cwd: dir });
  assert.equal(other.code, 2);
  assert.match(other.stderr, /^error: unknown option '--keep' for this command; it is an option of deploy, prune$/m);
  assert.doesNotMatch(other.stderr, /did you mean/);
  const otherJson = await runCli(['status', 'www', '--strategy=copy', '--json'], { cwd: dir });
  assert.equal((JSON.parse(otherJson.stdout) as { error: { message: string } }).error.message, "unknown option '--strategy' for this command; it is an option of deploy");
});

// A path that starts with a dash was an unknown option with no way on: `--` ends the options.
void test('a word with one dash and several letters (a path?) is an unknown option with a hint to end the options with --', async (t) => {
  const dir = await workdir(t);
  for (const [args, example] of [
    [['deploy', 'build', '-dash'], 'atomic-deploy deploy build -- -dash'],
    [['deploy', '-dash', 'www', '--quiet'], 'atomic-deploy deploy --quiet -- -dash www'],
  ] as const) {
    const result = await runCli([...args], { cwd: dir });
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stderr, `error: unknown option '-dash'\nhint: if -dash is a path, end the options before it with --: ${example}\n`);
    const json = await runCli([...args, '--json'], { cwd: dir });
    assert.equal((JSON.parse(json.stdout) as { error: { hint: string } }).error.hint, `if -dash is a path, end the options before it with --: ${example.replace(' -- ', ' --json -- ')}`);
  }
  assert.equal(fs.existsSync(path.join(dir, '-dash')), false);
});

void test('the bare form deploys when its first argument is a directory', async (t) => {
  const dir = await workdir(t);
  const before = currentId(path.join(dir, 'www'));
  const result = await runCli(['build', 'www', '--quiet'], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  assert.notEqual(currentId(path.join(dir, 'www')), before);
});

void test('the bare form deploys an archive (told by its bytes, whatever its name) the same way', async (t) => {
  const dir = await workdir(t);
  const before = currentId(path.join(dir, 'www'));
  // No archive extension: the first bytes decide, as they do for the deploy itself.
  execFileSync('tar', ['-czf', path.join(dir, 'site-build'), '-C', path.join(dir, 'build'), '.']);
  const result = await runCli(['site-build', 'www', '--json'], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  const after = currentId(path.join(dir, 'www'));
  assert.notEqual(after, before);
  assert.equal(fs.readFileSync(path.join(dir, 'www/current/index.html'), 'utf8'), 'v1\n');
});

void test('no arguments prints the help, with examples and the exit codes; --help the same', async (t) => {
  const dir = tempDir(t);
  const bare = await runCli([], { cwd: dir });
  assert.equal(bare.code, 0, bare.stderr);
  assert.equal(bare.stderr, '');
  const help = await runCli(['--help'], { cwd: dir });
  assert.equal(help.stdout, bare.stdout);
  for (const line of [/^Usage: atomic-deploy /m, /^Examples:$/m, /^ {2}\$ atomic-deploy deploy \.\/build \/srv\/www\/app /m, /^Exit codes:$/m, /^ {2}2 +usage error/m, /^ {2}4 +the health check failed/m, /^ {2}5 +verify found differences/m, /^ {2}6 +--stale fail/m, /^ {2}7 +deploy: an after-switch hook or reload failed/m]) {
    assert.match(bare.stdout, line);
  }
  // Exit 7 is deploy's: a rollback's failed reload is a warning (exit 0), and its --help says so with what else exits 0.
  assert.match(bare.stdout, /^ +live, unverified \(a rollback's failed reload is a warning, exit 0\)$/m);
  assert.match(bare.stdout, /^ +error says a release is live \(the switch stood, its record did not; --json:\n +error\.release, error\.live\)/m);
  const rollbackHelp = await runCli(['rollback', '--help'], { cwd: dir });
  assert.match(rollbackHelp.stdout, /^Exit codes: 0 ok \(also --to the release already current: nothing is changed; a failed reload\n +warns, the rollback stands\)/m);
  assert.deepEqual(fs.readdirSync(dir), [], 'help created something');
});


// With root and source in the config, `atomic-deploy --json` (or -q, or --config <file>, looking
// at the config) deployed, exit 0: options alone went to the default command.
void test('options alone, without a command word or a source, run nothing (exit 2), even with root and source in the config', async (t) => {
  const dir = await workdir(t);
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), 'root: www\nsource: build\n');
  fs.writeFileSync(path.join(dir, 'prod.yaml'), 'root: www\nsource: build\n');
  const before = treeSnapshot(dir, { times: true });
  for (const args of [['--json'], ['-q'], ['--no-color'], ['--config', 'prod.yaml'], ['--keep', '3'], ['--quiet', '--']]) {
    const r = await runCli(args, { cwd: dir });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^error: no command given: options alone run nothing$/m);
    assert.match(r.stderr, /^hint: to deploy, name the command: atomic-deploy deploy /m);
    if (args[0] === '--json') assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'USAGE');
  }
  assert.deepEqual(treeSnapshot(dir, { times: true }), before, 'options alone changed the folder');
  // Help and the version still answer with options beside them, and the command word deploys.
  assert.equal((await runCli(['--config', 'prod.yaml', '--help'], { cwd: dir })).code, 0);
  assert.equal((await runCli(['-q', '--version'], { cwd: dir })).code, 0);
  const live = currentId(path.join(dir, 'www'));
  const deployed = await runCli(['--quiet', 'deploy'], { cwd: dir });
  assert.equal(deployed.code, 0, deployed.stderr);
  assert.notEqual(currentId(path.join(dir, 'www')), live);
});
// Every command's help lists its exit codes, and every example in it is a command of that
// command: its flags are flags the help lists, and a line ending in `\` goes on, indented, on the next (in a template literal a
// backslash at the end of a line vanishes, leaving the rest of the command as a description).
void test('every --help lists exit codes, and its examples use only the flags that command has, continued lines staying one command', async () => {
  const commands = ['deploy', 'rollback', 'releases', 'status', 'unlock', 'verify', 'prune', 'init', 'completion'];
  // The program's own options (--config) go with every command.
  const top = await runCli(['--help']);
  const flagsOf = (text: string): string[] => [...text.matchAll(/^ {2}(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1] as string);
  const global = flagsOf(top.stdout);
  assert.ok(global.includes('--config'), top.stdout);
  let checked = 0;
  for (const command of commands) {
    const help = await runCli([command, '--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Exit codes: 0 /m, `${command} --help lists no exit codes`);
    const flags = new Set(flagsOf(help.stdout));
    for (const flag of ['--help', ...global]) flags.add(flag);
    const lines = help.stdout.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i] as string;
      if (!line.startsWith('  $ atomic-deploy ')) continue;
      let example = line.slice(4);
      while (example.endsWith(' \\')) {
        const next = lines[++i] ?? '';
        assert.match(next, /^ {4,}\S/, `the line after a trailing \\ in ${command} --help is not a continuation: ${JSON.stringify(next)}`);
        example = `${example.slice(0, -2)} ${next.trim()}`;
      }
      // A description follows a run of at least two spaces; it is prose, never a flag.
      const [cmd = '', description = ''] = example.split(/ {2,}/, 2);
      assert.doesNotMatch(description, /^-/, `${command} --help: an example's description starts with a flag: ${JSON.stringify(example)}`);
      for (const flag of cmd.match(/(?<=\s)--[a-z0-9-]+/g) ?? []) assert.ok(flags.has(flag), `${command} --help: example uses ${flag}, which ${command} has not: ${JSON.stringify(example)}`);
      checked += 1;
    }
  }
  assert.ok(checked >= 15, `only ${checked} examples found`);
});

// `atomic-deploy --quiet releases www` is how many tools are used (options first): the command word
// was taken for the bare deploy's source, and with a folder of that name where the command ran
// (a shell inside another root, whose `releases/` is there) that folder went live in www, exit 0.
void test('options before the command go with that command; its name is never a deploy source', async (t) => {
  const dir = await workdir(t);
  // The trap: folders named like commands where the command runs.
  for (const name of ['releases', 'status', 'prune']) writeTree(path.join(dir, name), { 'index.html': `${name}\n` });
  const live = currentId(path.join(dir, 'www'));
  const www = path.join(dir, 'www');
  const listed = await runCli(['--json', 'releases', 'www'], { cwd: dir });
  assert.equal(listed.code, 0, listed.stderr);
  assert.equal((JSON.parse(listed.stdout) as { releases: { id: string }[] }).releases[0]?.id, live);
  const quiet = await runCli(['-q', 'status', 'www'], { cwd: dir });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stdout, '');
  // An option's value is no command: --keep 1 prune (1 is --keep's), --config with its file stays in front.
  fs.writeFileSync(path.join(dir, 'c.yaml'), 'keep: 9\n');
  const pruned = await runCli(['--config', 'c.yaml', '--keep', '1', '--json', 'prune', 'www', '--dry-run'], { cwd: dir });
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.equal((JSON.parse(pruned.stdout) as { keep: number }).keep, 1);
  assert.equal(currentId(www), live, 'a command word before which options came was deployed');
  assert.equal(fs.readdirSync(path.join(www, 'releases')).length, 1);
  // The bare deploy with options first still deploys a folder that is no command.
  const bare = await runCli(['--quiet', 'build', 'www'], { cwd: dir });
  assert.equal(bare.code, 0, bare.stderr);
  assert.notEqual(currentId(www), live);
});

// A shell left in a folder that was removed since (a release prune took): every command died with
// "unexpected failure: ENOENT … uv_cwd" and "this is a bug", exit 1; then every command was exit 2,
// even with absolute paths, and an operator in a pruned release could not roll back.
void test('a working directory that no longer exists: absolute paths carry on without it; a relative path, the config search for a missing root, or init is a usage error', async (t) => {
  const dir = await workdir(t);
  const www = path.join(dir, 'www');
  const config = path.join(dir, 'c.yaml');
  fs.writeFileSync(config, 'keep: 9\n');
  /** Runs the CLI from a folder the shell entered and removed. */
  const fromGone = (args: string[]): SpawnSyncReturns<string> => {
    const gone = path.join(dir, 'gone');
    fs.mkdirSync(gone);
    return spawnSync('sh', ['-c', 'cd "$1" && rmdir "$1" && shift && exec "$@"', 'sh', gone, process.execPath, BIN, ...args], { encoding: 'utf8', env: cliEnv() });
  };
  const before = treeSnapshot(www, { times: true });
  const refused: [string[], RegExp][] = [
    [['status', 'www'], /www is a relative path/],
    [['deploy', 'build', www, '--dry-run'], /build is a relative path/],
    [['releases', '--json'], /the config file is searched for from there, and no root was given/],
    [['--config', 'c.yaml', 'status', www], /the config file c\.yaml is a relative path/],
    [['init'], /init writes its file there \(or name it with --config <absolute path>\)/],
  ];
  for (const [args, need] of refused) {
    const result = fromGone(args);
    const label = args.join(' ');
    assert.equal(result.status, 2, `${label}: ${result.stderr}`);
    assert.match(result.stderr, new RegExp(`^error: the working directory no longer exists \\(it was removed or moved after the shell entered it\\), and ${need.source}$`, 'm'), label);
    assert.match(result.stderr, /^hint: give absolute paths, or cd to a directory that exists \(cd ~\) and run the command again$/m, label);
    assert.doesNotMatch(result.stderr, /bug|at process/, label);
    if (args.includes('--json')) assert.equal((JSON.parse(result.stdout) as { error: { code: string } }).error.code, 'USAGE', label);
  }
  assert.deepEqual(treeSnapshot(www, { times: true }), before);
  // Every path absolute: the command runs, the config search skipped without a word.
  for (const args of [['status', www], ['status', www, '--no-config'], ['releases', www, '--json'], ['--config', config, 'status', www], ['deploy', path.join(dir, 'build'), www, '--dry-run'], ['deploy', path.join(dir, 'build'), www, '--quiet'], ['rollback', www, '--quiet']]) {
    const result = fromGone(args);
    assert.equal(result.status, 0, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(result.stderr, '', args.join(' '));
  }
  assert.equal(fs.readdirSync(path.join(www, 'releases')).length, 2);
});

// `--health-timeout 5` with no health check deployed with no check at all, exit 0: a guard that
// looked set and was not there. Each tuning flag given without its subject is refused, as the
// fleet's flags are without --host; the same flag beside its subject (or from the config) is taken.
const IDLE: { args: string[]; error: RegExp; hint: RegExp }[] = [
  { args: ['deploy', 'build', 'www', '--health-timeout', '5'], error: /^error: --health-timeout applies only with a health check/m, hint: /^hint: add --health-url <url> or --health-check <cmd>/m },
  { args: ['deploy', 'build', 'www', '--hook-timeout', '5'], error: /^error: --hook-timeout applies only with a hook/m, hint: /--before-switch <cmd>/ },
  { args: ['deploy', 'build', 'www', '--reload-timeout', '5'], error: /^error: --reload-timeout applies only with a reload/m, hint: /--reload-unit <unit>/ },
  { args: ['deploy', 'build', 'www', '--stale', 'off', '--stale-wait', '5'], error: /^error: --stale-wait applies only with the stale-process check/m, hint: /--stale warn/ },
  { args: ['deploy', 'build', 'www', '--shared-create'], error: /^error: --shared-create applies only with a shared path/m, hint: /--shared-file <path>/ },
  { args: ['deploy', 'build', 'www', '--shared-replace'], error: /^error: --shared-replace applies only with a shared path/m, hint: /--shared-dir <path>/ },
  { args: ['rollback', 'www', '--reload-timeout', '5'], error: /^error: --reload-timeout applies only with a reload/m, hint: /--reload-php-fpm/ },
];

void test('a tuning flag without what it tunes is refused (exit 2), and nothing changes', async (t) => {
  const dir = await workdir(t);
  // A second release, so that the rollback case has somewhere to go.
  assert.equal((await runCli(['deploy', 'build', 'www', '--quiet'], { cwd: dir })).code, 0);
  const before = treeSnapshot(dir, { times: true });
  for (const idle of IDLE) {
    for (const json of [false, true]) {
      const result = await runCli(json ? [...idle.args, '--json'] : idle.args, { cwd: dir });
      assert.equal(result.code, 2, `${idle.args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, idle.error);
      assert.match(result.stderr, idle.hint);
      if (json) assert.equal((JSON.parse(result.stdout) as { error: { code: string } }).error.code, 'USAGE');
    }
  }
  assert.deepEqual(treeSnapshot(dir, { times: true }), before);
  // With its subject, from a flag or from the config file, the same flag is taken.
  fs.writeFileSync(path.join(dir, 'c.yaml'), 'healthCheck:\n  command: "true"\nsharedFiles: [".env"]\n');
  fs.mkdirSync(path.join(dir, 'www/shared'), { recursive: true });
  const taken = await runCli(['deploy', 'build', 'www', '--config', 'c.yaml', '--health-timeout', '5', '--shared-create', '--hook-timeout', '5', '--after-switch', 'true', '--quiet'], { cwd: dir });
  assert.equal(taken.code, 0, taken.stderr);
  assert.ok(fs.existsSync(path.join(dir, 'www/shared/.env')));
  // From the environment (a CI job sets it for every step) it is not held to this.
  const env = await runCli(['deploy', 'build', 'www', '--quiet'], { cwd: dir, env: { ATOMIC_DEPLOY_HOOK_TIMEOUT: '5' } });
  assert.equal(env.code, 0, env.stderr);
});

// Messages that advised what does not work (a first-day mistakes campaign): each says what is
// wrong and what does work.
void test('empty-string paths, a dangling current for verify, init --config and a timed-out --wait each get the hint that works', async (t) => {
  const dir = await workdir(t);
  const www = path.join(dir, 'www');
  // An unset variable in `atomic-deploy deploy "$BUILD" www` read as "the source directory is empty".
  const noSource = await runCli(['deploy', '', 'www'], { cwd: dir });
  assert.equal(noSource.code, 2);
  assert.match(noSource.stderr, /^error: the source is an empty string$/m);
  assert.match(noSource.stderr, /^hint: .*unset shell variable/m);
  const noRoot = await runCli(['status', ''], { cwd: dir });
  assert.equal(noRoot.code, 2);
  assert.match(noRoot.stderr, /^error: the deploy root is an empty string$/m);
  // `--config deploy-prod.yaml` must be named again: the next command does not search for it.
  const init = await runCli(['init', '--config', 'deploy-prod.yaml'], { cwd: dir });
  assert.equal(init.code, 0, init.stderr);
  assert.match(init.stdout, /then run: atomic-deploy deploy --config deploy-prod\.yaml$/m);
  // verify with current dangling: "or deploy first" was advice the deploy refuses.
  const live = currentId(www) as string;
  fs.renameSync(path.join(www, 'releases', live), path.join(dir, 'moved'));
  const verify = await runCli(['verify', 'www'], { cwd: dir });
  assert.equal(verify.code, 2, verify.stderr);
  assert.match(verify.stderr, /no live release to verify \(current points at releases\/\S+, which is gone\)$/m);
  assert.match(verify.stderr, /^hint: .*atomic-deploy rollback \S*www --to <id>$/m);
  assert.doesNotMatch(verify.stderr, /deploy first/);
  fs.renameSync(path.join(dir, 'moved'), path.join(www, 'releases', live));
  // A root with no release at all: "name one with --release <id>" named nothing there is.
  fs.mkdirSync(path.join(dir, 'fresh', 'releases'), { recursive: true });
  const fresh = await runCli(['verify', 'fresh'], { cwd: dir });
  assert.equal(fresh.code, 2, fresh.stderr);
  assert.match(fresh.stderr, /^error: \S*fresh has no release to verify yet$/m);
  assert.match(fresh.stderr, /^hint: deploy first: atomic-deploy deploy <source> \S*fresh$/m);
  assert.doesNotMatch(fresh.stderr, /--release/);
  // A lock still held after --wait: "wait for it with --wait" was what had just been done.
  fs.mkdirSync(path.join(www, '.deploy.lock'));
  fs.writeFileSync(path.join(www, '.deploy.lock', 'owner.json'), JSON.stringify({ pid: process.pid, host: os.hostname(), user: 'root', since: new Date().toISOString(), token: 'x', format: 'atomic-deploy' }));
  const waited = await runCli(['rollback', 'www', '--wait', '0.5'], { cwd: dir });
  assert.equal(waited.code, 3, waited.stderr);
  assert.match(waited.stderr, /^hint: it was still held after the 0\.5 s --wait; wait longer/m);
  fs.rmSync(path.join(www, '.deploy.lock'), { recursive: true });
});

// A switch given a value (`--dry-run=false`, `-n=1`) was "unknown option '--dry-run' for this
// command; it is an option of deploy, rollback, prune" (deploy's own flag), and `-n=1` got a hint
// whose command held `-- -=1 deploy build www`, a word the user never typed.
const SWITCH_VALUES: { args: string[]; error: string }[] = [
  { args: ['deploy', 'build', 'www', '--dry-run=false'], error: "error: option '--dry-run' takes no value (given as --dry-run=false): give --dry-run alone to turn it on, or leave it out" },
  { args: ['deploy', 'build', 'www', '--no-fsync=true'], error: "error: option '--no-fsync' takes no value (given as --no-fsync=true): give --no-fsync alone to turn it on, or leave it out" },
  { args: ['status', 'www', '--read-only=1'], error: "error: option '--read-only' takes no value (given as --read-only=1): give --read-only alone to turn it on, or leave it out" },
  { args: ['prune', 'www', '--force=yes'], error: "error: option '--force' takes no value (given as --force=yes): give --force alone to turn it on, or leave it out" },
  { args: ['deploy', 'build', 'www', '-n=1'], error: "error: option '-n' takes no value (given as -n=1): give -n alone to turn it on, or leave it out" },
];

for (const mistake of SWITCH_VALUES) {
  void test(`a switch given a value: atomic-deploy ${mistake.args.join(' ')} says it takes none, exit 2, nothing changed`, async (t) => {
    const dir = await workdir(t);
    const before = treeSnapshot(dir, { times: true });
    const result = await runCli(mistake.args, { cwd: dir });
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stdout, '');
    assert.equal(result.stderr, `${mistake.error}\nhint: see --help for usage\n`);
    const json = await runCli([...mistake.args, '--json'], { cwd: dir });
    assert.equal(json.code, 2, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), { error: { code: 'USAGE', message: mistake.error.replace(/^error: /, ''), hint: 'see --help for usage' } });
    assert.deepEqual(treeSnapshot(dir, { times: true }), before);
  });
}

// A value flag given twice kept the last value without a word: `--keep 10 … --keep 1` (options
// assembled by a script) pruned to one release; `--release-id a --release-id b` deployed b. The
// last is still taken (a wrapper's "$@" after its defaults overrides them), and a warning says so.
void test('a value flag given twice: the last is taken, and a warning names both', async (t) => {
  const dir = await workdir(t);
  for (let i = 0; i < 3; i++) {
    const more = await runCli(['deploy', 'build', 'www', '--quiet'], { cwd: dir });
    assert.equal(more.code, 0, more.stderr);
  }
  const d = await runCli(['deploy', 'build', 'www', '--keep', '10', '--release-id', 'a', '--keep', '2', '--release-id=b'], { cwd: dir });
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stderr, /^warning: --keep is given twice, as "10" and then as "2": the last, "2", is taken$/m);
  assert.match(d.stderr, /^warning: --release-id is given twice, as "a" and then as "b": the last, "b", is taken$/m);
  assert.equal(currentId(path.join(dir, 'www')), 'b');
  // --keep 2 was taken: the live release and one before it stay.
  assert.equal(fs.readdirSync(path.join(dir, 'www', 'releases')).length, 2);
  const r = await runCli(['rollback', 'www', '--to', 'x', '--to', 'b', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((JSON.parse(r.stdout) as { warnings: string[] }).warnings.filter((w) => w.startsWith('--to')), ['--to is given twice, as "x" and then as "b": the last, "b", is taken']);
});

void test('the same value twice is one value, and a repeatable flag still collects', async (t) => {
  const dir = await workdir(t);
  const same = await runCli(['deploy', 'build', 'www', '--keep', '2', '--keep=2', '--release-id', 'r2', '--json'], { cwd: dir });
  assert.equal(same.code, 0, same.stderr);
  assert.equal(currentId(path.join(dir, 'www')), 'r2');
  const hooks = await runCli(['deploy', 'build', 'www', '--dry-run', '--json', '--before-switch', 'true', '--before-switch', 'true'], { cwd: dir });
  assert.equal(hooks.code, 0, hooks.stderr);
  assert.deepEqual((JSON.parse(hooks.stdout) as { hooks: { beforeSwitch: unknown[] } }).hooks.beforeSwitch.length, 2);
});

// After `--` every word is an argument: `deploy -- ./-odd www --dry-run` was "too many
// arguments … got 3" with no word of why.
void test('an option after -- is an argument: the hint puts it before --', async (t) => {
  const dir = await workdir(t);
  writeTree(path.join(dir, '-odd'), { 'index.html': 'odd\n' });
  const before = treeSnapshot(dir, { times: true });
  const result = await runCli(['deploy', '--', './-odd', 'www', '--dry-run'], { cwd: dir });
  assert.equal(result.code, 2, result.stderr);
  assert.equal(result.stderr, "error: too many arguments for 'deploy'. Expected 2 arguments but got 3; not taken: --dry-run\nhint: after --, every word is an argument, --dry-run too: give the options before --: atomic-deploy deploy --dry-run -- ./-odd www\n");
  assert.deepEqual(treeSnapshot(dir, { times: true }), before);
  const fixed = await runCli(['deploy', '--dry-run', '--', './-odd', 'www'], { cwd: dir });
  assert.equal(fixed.code, 0, fixed.stderr);
});

// "too many arguments … got 3" left the user to find the word; `-qn2` (switches run together
// with a number) read as -q -n and then the argument -2, with no word of how.
void test('too many arguments names the words not taken; switches run together with a number say how they were read', async (t) => {
  const dir = await workdir(t);
  const before = treeSnapshot(dir, { times: true });
  const extra = await runCli(['deploy', 'build', 'www', 'extra words'], { cwd: dir });
  assert.equal(extra.code, 2, extra.stderr);
  assert.equal(extra.stderr, "error: too many arguments for 'deploy'. Expected 2 arguments but got 3; not taken: 'extra words'\nhint: see --help for usage\n");
  const bundled = await runCli(['deploy', 'build', 'www', '-qn2'], { cwd: dir });
  assert.equal(bundled.code, 2, bundled.stderr);
  assert.equal(bundled.stderr, "error: too many arguments for 'deploy'. Expected 2 arguments but got 3; not taken: -2\nhint: -qn2 is read as -q -n and then the argument -2: these switches take no value; give each option on its own (see --help)\n");
  const json = await runCli(['deploy', 'build', 'www', '-n3', '--json'], { cwd: dir });
  assert.equal(json.code, 2, json.stderr);
  assert.deepEqual(JSON.parse(json.stdout), { error: { code: 'USAGE', message: "too many arguments for 'deploy'. Expected 2 arguments but got 3; not taken: -3", hint: '-n3 is read as -n and then the argument -3: this switch takes no value; give each option on its own (see --help)' } });
  assert.deepEqual(treeSnapshot(dir, { times: true }), before);
});

// Node decodes the command line as UTF-8, a byte that is none becoming U+FFFD: a root named in
// Latin-1 (`caf\xe9`, typed in a non-UTF-8 locale or by a script) reached the deploy as `caf\uFFFD`,
// which made a new root of that name and went live there, exit 0, while the folder named was
// never touched; a build named so "did not exist".
void test('a root or source argument holding bytes that are not UTF-8 is refused (exit 2), nothing made; one that names an existing folder as decoded still works', async (t) => {
  const dir = await workdir(t);
  fs.cpSync(path.join(dir, 'build'), path.join(dir, 'b\uFFFDx'), { recursive: true });
  const before = treeSnapshot(dir, { times: true });
  const run = (words: string): SpawnSyncReturns<string> =>
    spawnSync('bash', ['-c', `exec "$0" "$1" ${words}`, process.execPath, BIN], { cwd: dir, env: cliEnv(), encoding: 'utf8' });
  for (const [words, what] of [
    [`deploy build "$(printf 'caf\\351')"`, 'root'],
    [`deploy "$(printf 'b\\351')" www`, 'source'],
    [`status "$(printf 'caf\\351')"`, 'root'],
  ] as const) {
    const result = run(words);
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, new RegExp(`^error: the ${what} "[^"]*\uFFFD" holds bytes that are not UTF-8 \\(shown as \uFFFD\\), which reach this program replaced: it would name another folder than the one typed\nhint: `), words);
  }
  assert.deepEqual(treeSnapshot(dir, { times: true }), before);
  // A name that holds U+FFFD itself (as UTF-8) is what it says: it exists, and it deploys.
  const real = await runCli(['deploy', 'b\uFFFDx', 'www', '--quiet'], { cwd: dir });
  assert.equal(real.code, 0, real.stderr);
});
