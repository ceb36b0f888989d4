// The config file through the CLI: found in the working directory or named by --config, flags
// override it, and a bad one stops every command with exit 2 before anything is touched.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { TSC_BIN, currentId, jsonOf, releaseIds, runCli, snapshot, tempDir, writeTree } from '../harness/cli.ts';
import { asUser, requireRoot, runWrapped } from '../harness/faults.ts';

interface Json {
  release?: string;
  file?: string;
  prune?: { removed: { id: string }[] };
  error?: { code: string; message: string; file?: string; hint?: string };
}

function setup(t: { after(fn: () => void): void }): { dir: string; src: string; root: string } {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'hi\n' });
  return { dir, src, root: path.join(dir, 'root') };
}

void test('init writes a commented example, refuses to overwrite it, and --force does', async (t) => {
  const { dir } = setup(t);
  const file = path.join(dir, 'atomic-deploy.config.yaml');
  const first = await runCli(['init', '--json'], { cwd: dir });
  assert.equal(first.code, 0, first.stderr);
  assert.equal(jsonOf<Json>(first).file, file);
  const text = fs.readFileSync(file, 'utf8');
  for (const key of ['root:', 'source:', 'keep:', '#releaseId:', '#fsync:', '#wait:', '#sharedFiles:', '#sharedDirs:', '#shared:', '#sharedCreate:', '#sharedReplace:', '#strategy:', '#checksum:', '#hooks:', '#healthCheck:', '#hosts:']) {
    assert.ok(text.includes(`\n${key}`), `the example lacks ${key}`);
  }

  fs.writeFileSync(file, 'keep: 1\n');
  const again = await runCli(['init'], { cwd: dir });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists; nothing was written/);
  assert.equal(fs.readFileSync(file, 'utf8'), 'keep: 1\n');
  const forced = await runCli(['init', '--force'], { cwd: dir });
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(fs.readFileSync(file, 'utf8'), text);

  // The example itself is a valid config: its root and source are used.
  const dry = await runCli(['deploy', '--dry-run', '--json'], { cwd: dir });
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(jsonOf<{ root: string }>(dry).root, '/srv/www/app');
});

void test('deploy with no arguments takes root, source and keep from the config, relative to its file', async (t) => {
  const { dir, root } = setup(t);
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), 'root: ./root\nsource: build\nkeep: 1\nfsync: false\n');
  const elsewhere = path.join(dir, 'sub');
  fs.mkdirSync(elsewhere);
  for (const id of ['a', 'b', 'c']) {
    const r = await runCli(['deploy', '--release-id', id, '--json'], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal(currentId(root), 'c');
  assert.deepEqual(releaseIds(root), ['b', 'c'], 'keep: 1 from the config did not prune');

  // --config from another directory: paths stay relative to the file, not to the cwd.
  const r = await runCli(['--config', '../atomic-deploy.config.yaml', 'deploy', '--release-id', 'd', '--json'], { cwd: elsewhere });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(currentId(root), 'd');

  // Flags override the file: --keep 3 keeps more than keep: 1.
  const over = await runCli(['deploy', '--release-id', 'e', '--keep', '3', '--json'], { cwd: dir });
  assert.equal(over.code, 0, over.stderr);
  assert.deepEqual(releaseIds(root), ['c', 'd', 'e']);

  // Other commands take the root from the config too.
  const list = await runCli(['releases', '--json'], { cwd: dir });
  assert.equal(list.code, 0, list.stderr);
  assert.equal(jsonOf<{ current: string }>(list).current, 'e');
  const back = await runCli(['rollback', '--json'], { cwd: dir });
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), 'd');
  const prune = await runCli(['prune', '--json'], { cwd: dir });
  assert.equal(prune.code, 0, prune.stderr);
  assert.deepEqual(releaseIds(root), ['c', 'd'], 'prune keep: 1 keeps current (d) and its rollback target (c)');
});

void test('a JSON config named by --config works; arguments beat its root and source', async (t) => {
  const { dir, src, root } = setup(t);
  const other = path.join(dir, 'other-root');
  fs.writeFileSync(path.join(dir, 'deploy.json'), JSON.stringify({ root: 'other-root', source: 'build', sharedFiles: ['.env'], sharedCreate: true }));
  const r = await runCli(['deploy', src, root, '--config', 'deploy.json', '--no-fsync', '--json'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.ok(fs.existsSync(path.join(root, 'current/index.html')));
  assert.equal(fs.existsSync(other), false);
  // sharedFiles from the config file applied: an empty file made by sharedCreate.
  assert.equal(fs.readlinkSync(path.join(root, 'current/.env')), '../../shared/.env');
});

void test('an invalid config stops with exit 2, one line naming key, value and expectation, and nothing created', async (t) => {
  const { dir, root } = setup(t);
  const cases: [string, string, RegExp][] = [
    ['atomic-deploy.config.yaml', 'root: ./root\nsource: build\nkeep: -2\n', /atomic-deploy\.config\.yaml: keep: got -2, expected an integer >= 0/],
    ['atomic-deploy.config.yaml', 'root: ./root\nsource: build\nstrategy: rsync\n', /strategy: got "rsync", expected one of copy, reflink, hardlink, auto/],
    ['atomic-deploy.config.yaml', 'root: ./root\nsource: build\nhealthcheck:\n  url: http://x\n', /healthcheck: unknown key .*expected one of root, source, keep/],
    ['atomic-deploy.config.yaml', 'root: ./root\n  source: build\n', /atomic-deploy\.config\.yaml:\d+:\d+: not valid YAML/],
    ['atomic-deploy.config.json', '{"root": "./root", "hosts": [{"host": "a b"}]}', /hosts\[0\]\.host: got "a b", expected \[user@\]host\[:port\]/],
    // As the flags and the environment refuse them (README: numbers are written in decimal digits); YAML read them as 16, 1000, 7.
    ['atomic-deploy.config.yaml', 'root: ./root\nsource: build\nkeep: 0x10\n', /atomic-deploy\.config\.yaml: keep: got "0x10", expected a number in decimal digits/],
    ['atomic-deploy.config.yaml', 'root: ./root\nsource: build\nwait: 1e3\n', /wait: got "1e3", expected a number in decimal digits/],
    ['atomic-deploy.config.yaml', 'root: ./root\nsource: build\nreload:\n  timeout: 0o7\n', /reload\.timeout: got "0o7", expected a number in decimal digits/],
    // --keep 3.0 is refused; YAML and JSON read 3.0 as 3, which the schema took for a whole number.
    ['atomic-deploy.config.yaml', 'root: ./root\nsource: build\nkeep: 3.0\n', /atomic-deploy\.config\.yaml: keep: got "3\.0", expected a whole number in decimal digits \(write 3, not 3\.0\), as on the command line$/m],
    ['atomic-deploy.config.json', '{"root": "./root", "source": "build", "artifact": {"maxFiles": 100.0}}', /atomic-deploy\.config\.json: artifact\.maxFiles: got "100\.0", expected a whole number in decimal digits/],
    // YAML reads an unquoted 12345 as a number: the message says to quote it.
    ['atomic-deploy.config.yaml', 'root: ./root\nsource: build\nreleaseId: 12345\n', /releaseId: got 12345, expected a release id as a string \(the file holds a number here: quote it\)/],
    // ... and as the file spells it: `releaseId: 1.0` was "got 1", a value the file does not hold.
    ['atomic-deploy.config.yaml', 'root: ./root\nsource: build\nreleaseId: 1.0\n', /releaseId: got 1\.0 \(read as the number 1\), expected a release id as a string \(the file holds a number here: quote it\)/],
    ['atomic-deploy.config.json', '{"root": "./root", "source": "build", "releaseId": 2.50}', /releaseId: got 2\.50 \(read as the number 2\.5\), expected a release id as a string \(the file holds a number here: quote it\)/],
    ['atomic-deploy.config.yaml', 'root: 1e3\nsource: build\n', /root: got 1e3 \(read as the number 1000\), expected a directory path/],
    // JSON.parse keeps the last of a key given twice, silently; the YAML form refuses it, and so does JSON now.
    ['atomic-deploy.config.json', '{"root": "./root", "source": "build", "keep": 0, "keep": 2}', /atomic-deploy\.config\.json:1:\d+: a key is given twice in one object/],
    ['atomic-deploy.config.json', '{"root": "./root", "source": "build", "hooks": {"beforeSwitch": ["true"], "before\\u0053witch": ["false"]}}', /atomic-deploy\.config\.json:1:\d+: a key is given twice in one object/],
  ];
  for (const [name, text, pattern] of cases) {
    for (const n of ['atomic-deploy.config.yaml', 'atomic-deploy.config.json']) fs.rmSync(path.join(dir, n), { force: true });
    fs.writeFileSync(path.join(dir, name), text);
    const before = snapshot(dir);
    const r = await runCli(['deploy', '--json'], { cwd: dir });
    assert.equal(r.code, 2, `${text}: ${r.stdout}${r.stderr}`);
    const error = jsonOf<Json>(r).error;
    assert.equal(error?.code, 'INVALID_CONFIG');
    assert.match(error?.message ?? '', pattern);
    const human = await runCli(['deploy'], { cwd: dir });
    assert.equal(human.code, 2);
    assert.equal(human.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1);
    assert.match(human.stderr, pattern);
    assert.doesNotMatch(human.stderr, / {4}at /, 'a stack trace');
    assert.deepEqual(snapshot(dir), before);
    assert.equal(fs.existsSync(root), false);
  }
  // The hint quotes the value as the file spells it.
  for (const n of ['atomic-deploy.config.yaml', 'atomic-deploy.config.json']) fs.rmSync(path.join(dir, n), { force: true });
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), 'root: ./root\nsource: build\nreleaseId: 1.0\n');
  const quoted = await runCli(['deploy', '--json'], { cwd: dir });
  assert.equal(quoted.code, 2);
  assert.match(jsonOf<Json>(quoted).error?.hint ?? '', /^quote it: releaseId: "1\.0"; see docs\/lifecycle\.md/);
  const cli = await runCli(['deploy', 'build', 'root', '--keep', '3.0'], { cwd: dir });
  assert.equal(cli.code, 2, 'the command line refuses the same value');
  for (const n of ['atomic-deploy.config.yaml', 'atomic-deploy.config.json']) fs.rmSync(path.join(dir, n), { force: true });
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), 'root: ./root\nsource: build\nkeep: 3.0\n');
  const hinted = await runCli(['deploy'], { cwd: dir });
  assert.match(hinted.stderr, /^hint: write keep: 3$/m);
});

void test('without a config, a missing root or source is a usage error', async (t) => {
  const { dir } = setup(t);
  const r = await runCli(['deploy', 'build', '--json'], { cwd: dir });
  assert.equal(r.code, 2);
  assert.match(jsonOf<Json>(r).error?.message ?? '', /missing required argument 'root' \(and no atomic-deploy\.config\.yaml here to take it from\)/);
  const p = await runCli(['prune', '--keep', '1', '--json'], { cwd: dir });
  assert.equal(p.code, 2);
  const two = await runCli(['releases'], { cwd: dir });
  assert.equal(two.code, 2);
});

// A resolve hook (Node's module.register) that writes every module URL the CLI loads to a file.
const RECORD_MODULES = `data:text/javascript,${encodeURIComponent(`
import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
import fs from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  fs.appendFileSync(process.env.MODULE_LOG, resolved.url + '\\\\n');
  return resolved;
}\`));
`)}`;

void test('zod and yaml are loaded only when there is a config file to read', async (t) => {
  const { dir, src, root } = setup(t);
  const log = path.join(dir, 'modules.log');
  const loaded = async (args: string[]): Promise<string[]> => {
    fs.rmSync(log, { force: true });
    // The tsc output, where zod and yaml load from node_modules under their own names (the bundle's chunks are named by hash).
    const result = await runCli(args, { cwd: dir, bin: TSC_BIN, env: { NODE_OPTIONS: `--import ${RECORD_MODULES}`, MODULE_LOG: log } });
    assert.equal(result.code, 0, result.stderr);
    const urls = fs.readFileSync(log, 'utf8').split('\n');
    assert.ok(urls.some((u) => u.endsWith('/dist/cli/main.js')), 'the hook saw the CLI load');
    return urls.filter((u) => /\/node_modules\/(zod|yaml)\//.test(u));
  };
  assert.deepEqual(await loaded(['deploy', src, root, '--quiet']), [], 'no config file: neither is loaded');
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), 'keep: 2\n');
  const withFile = await loaded(['deploy', src, root, '--quiet']);
  assert.ok(withFile.some((u) => u.includes('/node_modules/zod/')) && withFile.some((u) => u.includes('/node_modules/yaml/')), `both loaded with a config file: ${withFile.join(', ')}`);
  assert.equal(releaseIds(root).length, 2);
});

void test('a ~ in the config is the home directory; one the shell left quoted on the command line is refused, never a directory named ~', async (t) => {
  const { dir, src } = setup(t);
  const home = path.join(dir, 'home');
  fs.mkdirSync(home);
  const work = path.join(dir, 'work');
  fs.mkdirSync(work);
  fs.writeFileSync(path.join(work, 'atomic-deploy.config.yaml'), `root: ~/www/app\nsource: ${src}\n`);
  const deployed = await runCli(['deploy', '--json'], { cwd: work, env: { HOME: home } });
  assert.equal(deployed.code, 0, deployed.stderr);
  assert.equal(currentId(path.join(home, 'www', 'app')), jsonOf<Json>(deployed).release);
  const listed = await runCli(['releases', '--json'], { cwd: work, env: { HOME: home } });
  assert.equal(listed.code, 0, listed.stderr);
  assert.deepEqual(fs.readdirSync(work), ['atomic-deploy.config.yaml'], 'nothing named ~ was made');
  // Another user's home is the shell's lookup: refused, not guessed.
  fs.writeFileSync(path.join(work, 'atomic-deploy.config.yaml'), `root: ~www-data/app\nsource: ${src}\n`);
  const other = await runCli(['deploy'], { cwd: work, env: { HOME: home } });
  assert.equal(other.code, 2, other.stderr);
  assert.match(other.stderr, /^error: root: "~www-data\/app" in .*atomic-deploy\.config\.yaml: only ~ and ~\/ \(this user's home\) are expanded$/m);
  // HOME set but empty: `~/www/app` went to `www/app` under the working directory, exit 0.
  fs.writeFileSync(path.join(work, 'atomic-deploy.config.yaml'), `root: ~/www/app\nsource: ${src}\n`);
  const empty = await runCli(['deploy'], { cwd: work, env: { HOME: '' } });
  assert.equal(empty.code, 2, empty.stderr);
  assert.match(empty.stderr, /^error: root: "~\/www\/app" in .*: ~ cannot be expanded, HOME is empty$/m);
  // A bare ~ is YAML's null: said so, with the quoted form.
  fs.writeFileSync(path.join(work, 'atomic-deploy.config.yaml'), `root: ~\nsource: ${src}\n`);
  const bare = await runCli(['deploy'], { cwd: work, env: { HOME: home } });
  assert.equal(bare.code, 2, bare.stderr);
  assert.match(bare.stderr, /^error: .*root: got null, expected a directory path$/m);
  assert.match(bare.stderr, /^hint: in YAML a bare ~ or an empty value is null: quote it/m);
  assert.deepEqual(fs.readdirSync(work), ['atomic-deploy.config.yaml'], 'a root was made under the working directory');
  fs.writeFileSync(path.join(work, 'atomic-deploy.config.yaml'), `root: ~/www/app\nsource: ${src}\n`);
  // Quoted on the command line: refused, for the root and for the source, by every command.
  for (const args of [['deploy', src, '~/www/app'], ['deploy', '~/build', path.join(dir, 'root')], ['status', '~'], ['rollback', '~/www/app'], ['verify', '~/www/app']]) {
    const r = await runCli(args, { cwd: work, env: { HOME: home } });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^error: the (root|source) "~[^"]*" starts with ~, which the shell did not expand \(quoted\?\)$/m, args.join(' '));
    assert.match(r.stderr, /^hint: write it unquoted or as an absolute path \(\$HOME\/\.\.\.\); for a directory whose name starts with ~, write \.\/~/m);
  }
  assert.deepEqual(fs.readdirSync(work), ['atomic-deploy.config.yaml'], 'nothing named ~ was made');
  assert.ok(!fs.existsSync(path.join(dir, 'root')));
  // A directory whose name starts with ~, written as the hint says, is a path like any other.
  const deployedDot = await runCli(['deploy', src, './~odd', '--quiet'], { cwd: work });
  assert.equal(deployedDot.code, 0, deployedDot.stderr);
  assert.ok(fs.lstatSync(path.join(work, '~odd', 'current')).isSymbolicLink());
});

void test('a root on the command line beside config hosts with roots of their own is refused (exit 2) before any host is reached; without it each host uses its own', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  // Hosts nobody can reach: a refusal must come before any connection (a connection would fail with exit 1).
  const config = path.join(dir, 'atomic-deploy.config.yaml');
  fs.writeFileSync(config, ['root: /srv/cfg', 'hosts:', '  - host: web1.invalid', '    root: /srv/cfg-one', '  - host: web2.invalid', ''].join('\n'));
  for (const args of [['deploy', src, '/srv/other'], ['status', '/srv/other'], ['rollback', '/srv/other'], ['prune', '/srv/other', '--keep', '2'], ['releases', '/srv/other'], ['verify', '/srv/other'], ['unlock', '/srv/other']]) {
    const r = await runCli([...args, '--config', config], { timeoutMs: 30_000 });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^error: web1\.invalid has its own root in the config file \(\/srv\/cfg-one\), which the root given on the command line \(\/srv\/other\) would not replace$/m, args.join(' '));
    assert.match(r.stderr, /^hint: leave out <root> to deploy each host to its own root, or remove root: from that host's entry in .*atomic-deploy\.config\.yaml$/m);
  }
  // The same root as the host's own, or no root: on to the hosts (which cannot be reached here: exit 1, not 2).
  for (const args of [['status', '/srv/cfg-one'], ['status']]) {
    const r = await runCli([...args, '--config', config], { timeoutMs: 60_000 });
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /has its own root/);
  }
});

// A first-days sweep of init and the config file: each case did what nobody asked, without a word.
void test('init refuses a release (reached through current too) and a second config file by --config; in the root itself it writes, and the root still takes a deploy', async (t) => {
  const { dir, src, root } = setup(t);
  const first = await runCli(['deploy', src, root, '--no-fsync', '--quiet'], { cwd: dir });
  assert.equal(first.code, 0, first.stderr);
  const live = currentId(root) as string;
  const before = snapshot(root);
  // In current/: the file went into the live release, served, and verify then exited 5.
  const inRelease = await runCli(['init'], { cwd: path.join(root, 'current') });
  assert.equal(inRelease.code, 2, inRelease.stderr);
  assert.match(inRelease.stderr, new RegExp(`^error: \\S+ would be inside the deploy root ${root} \\(in release ${live}, the live one\\); nothing was written$`, 'm'));
  assert.match(inRelease.stderr, /^hint: a file there is served with the release and reported by verify/m);
  assert.deepEqual(snapshot(root), before);
  assert.equal((await runCli(['verify', root])).code, 0);
  // In the root itself: written, and a deploy into that root (with root: .) is not refused for it.
  const inRoot = await runCli(['init'], { cwd: root });
  assert.equal(inRoot.code, 0, inRoot.stderr);
  fs.writeFileSync(path.join(root, 'atomic-deploy.config.yaml'), `root: .\nsource: ${src}\n`);
  const fresh = path.join(dir, 'fresh');
  fs.mkdirSync(fresh);
  fs.writeFileSync(path.join(fresh, 'atomic-deploy.config.yaml'), `root: .\nsource: ${src}\n`);
  for (const at of [root, fresh]) {
    const r = await runCli(['deploy', '--no-fsync', '--quiet'], { cwd: at });
    assert.equal(r.code, 0, `${at}: ${r.stderr}`);
    assert.ok(fs.existsSync(path.join(at, 'current/index.html')));
  }
  // --config naming the other searched name beside an existing one: every command then refused with "keep one".
  const project = path.join(dir, 'project');
  fs.mkdirSync(project);
  assert.equal((await runCli(['init'], { cwd: project })).code, 0);
  const second = await runCli(['init', '--config', 'atomic-deploy.config.json'], { cwd: project });
  assert.equal(second.code, 2, second.stderr);
  assert.match(second.stderr, /atomic-deploy\.config\.yaml already exists; nothing was written$/m);
  assert.deepEqual(fs.readdirSync(project), ['atomic-deploy.config.yaml']);
});

void test('a dangling config link is an error naming its target, not "no config"; --no-config reads no file; an empty --config is refused', async (t) => {
  const { dir, src, root } = setup(t);
  fs.symlinkSync('missing.yaml', path.join(dir, 'atomic-deploy.config.yaml'));
  const dangling = await runCli(['deploy', src, root, '--dry-run'], { cwd: dir });
  assert.equal(dangling.code, 2, dangling.stderr);
  assert.match(dangling.stderr, /^error: config file \S+atomic-deploy\.config\.yaml is a symbolic link to missing\.yaml, which does not exist$/m);
  assert.match(dangling.stderr, /^hint: create \(or mount\) what it points to, or remove the link$/m);
  fs.unlinkSync(path.join(dir, 'atomic-deploy.config.yaml'));
  // A key rollback never reads, mistyped, stopped the rollback; --no-config (or ATOMIC_DEPLOY_NO_CONFIG=1) reads no file.
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), 'healtCheck: {url: "http://127.0.0.1:1/"}\nkeep: 1\n');
  const bad = await runCli(['deploy', src, root, '--no-fsync'], { cwd: dir });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--no-config runs without the file/);
  for (const [args, env] of [[['--no-config', 'deploy', src, root, '--no-fsync', '--quiet'], {}], [['deploy', src, root, '--no-fsync', '--quiet', '--no-config'], {}], [['deploy', src, root, '--no-fsync', '--quiet'], { ATOMIC_DEPLOY_NO_CONFIG: '1' }]] as const) {
    const r = await runCli([...args], { cwd: dir, env });
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /settings from/);
  }
  // keep: 1 was not read: three releases stand.
  assert.equal(releaseIds(root).length, 3);
  const before = snapshot(dir);
  for (const [args, env] of [[['--config', '', 'status', root], {}], [['status', root], { ATOMIC_DEPLOY_CONFIG: '' }], [['init', '--config', ''], {}]] as const) {
    const r = await runCli([...args], { cwd: dir, env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^error: the config file is an empty string$/m);
  }
  assert.deepEqual(snapshot(dir), before);
});

void test('a config found above the working directory is named; one for another root warns; =0 in the environment overrides the file; a config at the build top is warned', async (t) => {
  const { dir, src, root } = setup(t);
  const elsewhere = path.join(dir, 'app-a');
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), `root: ${elsewhere}\nfsync: false\nsharedCreate: true\nsharedFiles: [.env]\n`);
  const cwd = path.join(dir, 'projects', 'b');
  fs.mkdirSync(cwd, { recursive: true });
  const r = await runCli(['deploy', src, root, '--dry-run', '--json'], { cwd });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`^warning: ${dir}/atomic-deploy\\.config\\.yaml is for the root ${elsewhere}, but this command's root is ${root}: `, 'm'));
  assert.match(r.stderr, /^hint: if the file is not meant for this root, add --no-config/m);
  const plan = jsonOf<{ fsync: boolean; shared: { create: boolean }[] }>(r);
  assert.equal(plan.fsync, false);
  assert.equal(plan.shared[0]?.create, true);
  const human = await runCli(['deploy', src, elsewhere, '--dry-run'], { cwd });
  assert.match(human.stdout + human.stderr, new RegExp(`settings from ${dir}/atomic-deploy\\.config\\.yaml`));
  assert.doesNotMatch(human.stderr, /is for the root/);
  // An off word is a value: it overrides the file, as the flag would (it was ignored).
  const off = await runCli(['deploy', src, root, '--dry-run', '--json'], { cwd, env: { ATOMIC_DEPLOY_NO_FSYNC: '0' } });
  assert.equal(jsonOf<{ fsync: boolean }>(off).fsync, true);
  const noCreate = await runCli(['deploy', src, root, '--dry-run'], { cwd, env: { ATOMIC_DEPLOY_SHARED_CREATE: '0' } });
  assert.equal(noCreate.code, 2, noCreate.stderr);
  assert.match(noCreate.stderr, /^error: shared target missing: /m);
  // The config inside the build: it would go live with the release.
  fs.writeFileSync(path.join(src, 'atomic-deploy.config.yaml'), 'keep: 2\n');
  const inBuild = await runCli(['deploy', src, root, '--no-fsync', '--no-config'], { cwd });
  assert.equal(inBuild.code, 0, inBuild.stderr);
  assert.match(inBuild.stderr, /^warning: the build holds atomic-deploy\.config\.yaml at its top: it goes live with the release/m);
});

// "--health-url is not available for fleet deploys" for a user who never typed --health-url: the
// hint names the key and the file that set it (and not when the flag was typed).
void test('an error that names a flag the config file set says which key in which file set it', async (t) => {
  const { dir, src, root } = setup(t);
  const config = path.join(dir, 'atomic-deploy.config.yaml');
  fs.writeFileSync(config, 'hosts: [{host: web1}]\nhealthCheck: {url: "http://127.0.0.1:1/"}\n');
  const fleet = await runCli(['deploy', src, '/srv/app', '--json'], { cwd: dir });
  assert.equal(fleet.code, 2, fleet.stderr);
  const error = jsonOf<{ error: { message: string; hint: string } }>(fleet).error;
  assert.match(error.message, /^--health-url is not available for fleet deploys/);
  assert.equal(error.hint.split('; ')[0], `--health-url here is healthCheck.url in ${config}`);
  assert.match(fleet.stderr, new RegExp(`^hint: --health-url here is healthCheck\\.url in ${config}; `, 'm'));
  const typed = await runCli(['deploy', src, '/srv/app', '--health-url', 'http://127.0.0.1:1/'], { cwd: dir });
  assert.equal(typed.code, 2);
  assert.doesNotMatch(typed.stderr, /here is healthCheck\.url/);
  fs.writeFileSync(config, `reload: {phpFpm: [${path.join(dir, 'nope.pid')}]}\n`);
  const local = await runCli(['deploy', src, root], { cwd: dir });
  assert.equal(local.code, 2, local.stderr);
  assert.match(local.stderr, new RegExp(`^hint: --reload-php-fpm here is reload\\.phpFpm in ${config}; `, 'm'));
  assert.equal(fs.existsSync(root), false);
  // An id the file fixes: the second deploy finds it taken, an error naming no flag.
  fs.writeFileSync(config, 'releaseId: r1\n');
  assert.equal((await runCli(['deploy', src, root, '-q'], { cwd: dir })).code, 0);
  const again = await runCli(['deploy', src, root, '--json'], { cwd: dir });
  assert.equal(again.code, 2, again.stderr);
  const taken = jsonOf<{ error: { message: string; hint: string } }>(again).error;
  assert.match(taken.message, /^release r1 already exists in /);
  assert.equal(taken.hint.split('; ')[0], `the release id is releaseId in ${config}, which every deploy with this file takes: give --release-id <new id> or remove the key`);
  const named = await runCli(['deploy', src, root, '--release-id', 'r1'], { cwd: dir });
  assert.equal(named.code, 2);
  assert.doesNotMatch(named.stderr, /is releaseId in/, 'not when the flag was typed');
  assert.deepEqual(releaseIds(root), ['r1']);
});

void test('init: a file as an argument, a ~ no shell expanded, a folder this user cannot write, and a .JSON name each get the word that helps', async (t) => {
  requireRoot();
  const { dir } = setup(t);
  const before = snapshot(dir);
  const positional = await runCli(['init', 'deploy/prod.yaml'], { cwd: dir });
  assert.equal(positional.code, 2);
  assert.match(positional.stderr, /^error: init takes no arguments: name the file to write with --config \(atomic-deploy init --config <file>\)$/m);
  for (const [args, env] of [[['init', '--config', '~/deploy.yaml'], {}], [['status', dir], { ATOMIC_DEPLOY_CONFIG: '~/deploy.yaml' }]] as const) {
    const r = await runCli([...args], { cwd: dir, env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^error: the config file "~\/deploy\.yaml" starts with ~, which no shell expanded/m);
  }
  assert.deepEqual(snapshot(dir), before);
  // Not this user's folder: "EACCES" alone, and no hint.
  const closed = path.join(dir, 'closed');
  fs.chmodSync(dir, 0o755);
  fs.mkdirSync(closed, { mode: 0o555 });
  const denied = await runWrapped(['init', '--config', path.join(closed, 'atomic-deploy.config.yaml')], { prefix: asUser('nobody') });
  assert.equal(denied.code, 1, denied.stderr);
  assert.match(denied.stderr, /: permission denied \(\S+closed is not writable by this user\); nothing was written$/m);
  assert.match(denied.stderr, /^hint: run init in a folder you can write to/m);
  assert.deepEqual(fs.readdirSync(closed), []);
  // A .toml name would hold YAML.
  const toml = await runCli(['init', '--config', 'deploy.toml'], { cwd: dir });
  assert.equal(toml.code, 2, toml.stderr);
  assert.match(toml.stderr, /^error: init writes YAML or JSON, and deploy\.toml is named as toml; nothing was written$/m);
  assert.match(toml.stderr, /^hint: name it deploy\.yaml \(or \.json\)$/m);
  assert.equal(fs.existsSync(path.join(dir, 'deploy.toml')), false);
  // init writes JSON for a .JSON name; the loader read that file as YAML.
  const upper = path.join(dir, 'deploy.JSON');
  assert.equal((await runCli(['init', '--config', upper], { cwd: dir })).code, 0);
  const read = await runCli(['deploy', '--config', upper, '--dry-run', '--json'], { cwd: dir });
  assert.equal(read.code, 0, read.stderr);
  assert.equal(jsonOf<{ root: string }>(read).root, '/srv/www/app');
});

// A config file is found by searching up from the working directory, so one in a folder others
// can write (/tmp, /var/tmp) was any local user's to plant: its hooks ran as whoever deployed
// there (root included), with `-q` not a word said. A file found that way is read only when it
// belongs to this user or root and no other user may write it; named by --config, it is the user's choice.
void test('a config file found by the search is refused when another user owns it or every user may write it; --config reads it', async (t) => {
  requireRoot();
  const { dir, src, root } = setup(t);
  const shared = path.join(dir, 'world');
  fs.mkdirSync(path.join(shared, 'work'), { recursive: true });
  fs.chmodSync(shared, 0o1777);
  const file = path.join(shared, 'atomic-deploy.config.yaml');
  const ran = path.join(dir, 'hook-ran');
  fs.writeFileSync(file, `hooks:\n  beforeSwitch:\n    - id -u > ${ran}\n`);
  fs.chownSync(file, 65534, 65534);
  const cwd = path.join(shared, 'work');
  const planted = await runCli(['deploy', src, root, '-q'], { cwd });
  assert.equal(planted.code, 2, planted.stderr);
  assert.match(planted.stderr, new RegExp(`^error: config file ${file} belongs to another user \\(uid 65534\\), not to you or root: it was not read$`, 'm'));
  assert.match(planted.stderr, /^hint: a config file found above the working directory runs its hooks as you: give it with --config if you trust it, or run with --no-config$/m);
  assert.ok(!fs.existsSync(ran), 'the planted hook ran');
  assert.ok(!fs.existsSync(root), 'the root was made');
  // Named on the command line, the same file is read.
  const named = await runCli(['deploy', src, root, '-q', '--no-fsync', '--config', file], { cwd });
  assert.equal(named.code, 0, named.stderr);
  assert.equal(fs.readFileSync(ran, 'utf8').trim(), '0');
  fs.rmSync(ran);
  // This user's own file, but writable by every user: the same refusal, with its own reason.
  fs.chownSync(file, 0, 0);
  fs.chmodSync(file, 0o666);
  const writable = await runCli(['deploy', src, root, '-q', '--no-fsync'], { cwd });
  assert.equal(writable.code, 2, writable.stderr);
  assert.match(writable.stderr, new RegExp(`^error: config file ${file} may be written by every user \\(mode 0666\\): it was not read$`, 'm'));
  assert.ok(!fs.existsSync(ran), 'the hook of a world-writable file ran');
  // Control: root's file, not writable by others, is read.
  fs.chmodSync(file, 0o644);
  const own = await runCli(['deploy', src, root, '-q', '--no-fsync'], { cwd });
  assert.equal(own.code, 0, own.stderr);
  assert.equal(fs.readFileSync(ran, 'utf8').trim(), '0');
});

// A config file is UTF-8 text. One saved in Latin-1 (`root: /srv/www/café`, 0xE9) was decoded with
// U+FFFD in place of the byte: the deploy made a new root named `caf\uFFFD` and went live there,
// exit 0, while the site's root stayed as it was. One saved as UTF-16 (PowerShell's `>`) said
// `got "��k\u0000e\u0000…", expected a mapping`; a JSON one saved with a BOM (Notepad) said
// `Unexpected token '\uFEFF'`, a character nobody sees, where YAML reads past the BOM.
void test('a config file that is not UTF-8 is refused naming the byte and its line, exit 2, nothing made; a UTF-8 BOM is read past, in JSON too', async (t) => {
  const { dir } = setup(t);
  const latin1 = Buffer.concat([Buffer.from('source: build\nroot: ./caf'), Buffer.from([0xe9]), Buffer.from('\n')]);
  const file = path.join(dir, 'atomic-deploy.config.yaml');
  fs.writeFileSync(file, latin1);
  const before = snapshot(dir);
  const bad = await runCli(['deploy', '--json'], { cwd: dir });
  assert.equal(bad.code, 2, bad.stderr);
  const error = jsonOf<Json>(bad).error;
  assert.equal(error?.code, 'INVALID_CONFIG');
  assert.equal(error?.message, `${file}:2:12: not UTF-8 text (the byte 0xe9): a config file is read as UTF-8, and this one was saved in another encoding (Latin-1?)`);
  assert.match(bad.stderr, /hint: save it as UTF-8: iconv -f latin1 -t utf-8 /);
  assert.deepEqual(snapshot(dir), before);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['atomic-deploy.config.yaml', 'build']);
  // UTF-16, with its byte order mark, as Windows PowerShell writes a file.
  fs.writeFileSync(file, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('keep: 3\n', 'utf16le')]));
  const wide = await runCli(['deploy', 'build', 'root', '--json'], { cwd: dir });
  assert.equal(wide.code, 2, wide.stderr);
  assert.equal(jsonOf<Json>(wide).error?.message, `${file}: UTF-16 text (it starts with a UTF-16 byte order mark): a config file is read as UTF-8`);
  assert.deepEqual(fs.readdirSync(dir).sort(), ['atomic-deploy.config.yaml', 'build']);
  // A UTF-8 byte order mark is no content: YAML and JSON files are read past it.
  fs.rmSync(file);
  const json = path.join(dir, 'atomic-deploy.config.json');
  fs.writeFileSync(json, '\uFEFF{"keep": 1, "releaseId": "café"}\n');
  const ok = await runCli(['deploy', 'build', 'root', '--json'], { cwd: dir });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(jsonOf<Json>(ok).release, 'café');
  assert.equal(currentId(path.join(dir, 'root')), 'café');
});

// No shell reads the config file: `root: $HOME/app` or `root: ${DEPLOY_ROOT}` was a folder named so
// under the file's directory, and a deploy made it and went live there, exit 0. On the command
// line a variable no shell expanded (single quotes, a CI's literal text) did the same.
void test('a root or source holding a $VARIABLE no shell expanded is refused (exit 2), nothing made; a folder of that name that exists is taken', async (t) => {
  const { dir } = setup(t);
  const file = path.join(dir, 'atomic-deploy.config.yaml');
  for (const [text, args, said] of [
    ['root: $HOME/app\nsource: build\n', ['deploy'], `root "$HOME/app" in ${file}`],
    ['root: ${DEPLOY_ROOT}\nsource: build\n', ['deploy', '--dry-run'], `root "\${DEPLOY_ROOT}" in ${file}`],
    ['root: r\nsource: $CI_PROJECT_DIR/build\n', ['deploy'], `source "$CI_PROJECT_DIR/build" in ${file}`],
    ['keep: 2\n', ['deploy', 'build', '$DEPLOY_ROOT'], 'root "$DEPLOY_ROOT"'],
    ['keep: 2\n', ['status', '${APP}/www'], 'root "${APP}/www"'],
  ] as const) {
    fs.writeFileSync(file, text);
    const before = snapshot(dir);
    const r = await runCli([...args], { cwd: dir });
    assert.equal(r.code, 2, `${text}: ${r.stderr}`);
    assert.ok(r.stderr.startsWith(`error: the ${said} holds ${said.includes('{') ? '${' : '$'}`), r.stderr);
    assert.match(r.stderr, /no shell expanded/);
    assert.deepEqual(snapshot(dir), before);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['atomic-deploy.config.yaml', 'build']);
  }
  // A folder that is named so, and exists, is that folder.
  fs.writeFileSync(file, 'keep: 2\n');
  fs.mkdirSync(path.join(dir, '$odd'));
  const odd = await runCli(['deploy', 'build', '$odd', '--quiet'], { cwd: dir });
  assert.equal(odd.code, 0, odd.stderr);
  assert.equal(currentId(path.join(dir, '$odd')) !== null, true);
});
