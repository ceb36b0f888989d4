// Shared paths through the CLI: relative links made before the switch, missing targets refused
// with the root untouched, sources that already hold a shared path refused unless replaced.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, snapshot, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';
import { asUser, requireRoot, runWrapped } from '../harness/faults.ts';

interface Json {
  release?: string;
  shared?: string[];
  error?: { code: string; message: string; hint?: string };
}

/** What a deploy leaves in .tmp/ when interrupted: staging copies, trash, temp links (lock bookkeeping aside). */
function releaseLeftovers(root: string): string[] {
  return fs.readdirSync(path.join(root, '.tmp')).filter((n) => /^(stage|trash|current|link)\./.test(n));
}

function setup(t: { after(fn: () => void): void }): { dir: string; src: string; root: string } {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n', 'app/config.php': '<?php\n' });
  return { dir, src, root: path.join(dir, 'root') };
}

void test('shared files and nested dirs are relative links that resolve into shared/', async (t) => {
  const { src, root } = setup(t);
  writeTree(path.join(root, 'shared'), { '.env': 'SECRET=1\n', 'storage/uploads/keep.txt': 'kept\n' });
  const args = ['deploy', src, root, '--shared', '.env', '--shared', 'storage/uploads', '--shared-dir', 'app/cache', '--shared-create', '--json'];
  const first = await runCli(args);
  assert.equal(first.code, 0, first.stderr);
  const id = jsonOf<Json>(first).release as string;
  assert.deepEqual(jsonOf<Json>(first).shared, ['.env', 'storage/uploads', 'app/cache']);
  const rel = path.join(root, 'releases', id);
  assert.equal(fs.readlinkSync(path.join(rel, '.env')), '../../shared/.env');
  assert.equal(fs.readlinkSync(path.join(rel, 'storage/uploads')), '../../../shared/storage/uploads');
  assert.equal(fs.readlinkSync(path.join(rel, 'app/cache')), '../../../shared/app/cache');
  // The source lacked storage/: it is made as a real directory in the release, not a link.
  assert.ok(fs.lstatSync(path.join(rel, 'storage')).isDirectory());
  // --shared-create made the missing --shared-dir as an empty directory.
  assert.deepEqual(fs.readdirSync(path.join(root, 'shared/app/cache')), []);
  assert.equal(fs.readFileSync(path.join(root, 'current/.env'), 'utf8'), 'SECRET=1\n');
  assert.equal(fs.readFileSync(path.join(root, 'current/storage/uploads/keep.txt'), 'utf8'), 'kept\n');

  // What the app writes through current lands in shared/ and outlives the release.
  fs.writeFileSync(path.join(root, 'current/storage/uploads/new.jpg'), 'jpeg');
  fs.writeFileSync(path.join(src, 'index.html'), 'v2\n');
  const second = await runCli(args);
  assert.equal(second.code, 0, second.stderr);
  assert.notEqual(currentId(root), id);
  assert.equal(fs.readFileSync(path.join(root, 'current/index.html'), 'utf8'), 'v2\n');
  assert.equal(fs.readFileSync(path.join(root, 'current/storage/uploads/new.jpg'), 'utf8'), 'jpeg');
});

void test('a missing shared target fails with exit 2 before anything is written', async (t) => {
  const { src, root } = setup(t);
  const first = await runCli(['deploy', src, root, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const before = snapshot(root);
  const result = await runCli(['deploy', src, root, '--shared', '.env', '--json']);
  assert.equal(result.code, 2, result.stderr);
  const error = jsonOf<Json>(result).error;
  assert.equal(error?.code, 'SHARED_MISSING');
  assert.match(error?.message ?? '', /shared\/\.env/);
  assert.match(error?.hint ?? '', /--shared-create/);
  assert.deepEqual(snapshot(root), before);

  // A root that does not exist yet is not created either.
  const fresh = path.join(path.dirname(root), 'fresh');
  const none = await runCli(['deploy', src, fresh, '--shared', 'storage']);
  assert.equal(none.code, 2, none.stderr);
  assert.ok(!fs.existsSync(fresh));
});

void test('a target that vanishes while the release is copied fails before the switch and leaves nothing', async (t) => {
  const { src, root } = setup(t);
  writeTree(path.join(root, 'shared'), { '.env': 'x\n' });
  const first = await runCli(['deploy', src, root, '--shared', '.env', '--json']);
  assert.equal(first.code, 0, first.stderr);
  const live = currentId(root);
  // The lock-taken failpoint gives time to remove the target after the early check passed.
  const run = spawnCli(['deploy', src, root, '--shared', '.env', '--json'], { failpoints: 'lock-taken=sleep:1500' });
  await new Promise((r) => setTimeout(r, 700));
  fs.rmSync(path.join(root, 'shared/.env'));
  const result = await run.done;
  assert.equal(result.code, 2, result.stderr);
  assert.equal(jsonOf<Json>(result).error?.code, 'SHARED_MISSING');
  assert.equal(currentId(root), live);
  assert.deepEqual(releaseIds(root), [live]);
  assert.deepEqual(releaseLeftovers(root), []);
});

void test('a source that holds a shared path is refused unless --shared-replace', async (t) => {
  const { dir, src, root } = setup(t);
  writeTree(src, { '.env': 'FROM_BUILD=1\n', 'storage/logs/old.log': 'old\n' });
  writeTree(path.join(root, 'shared'), { '.env': 'FROM_SHARED=1\n', 'storage/logs/.keep': '' });
  const refused = await runCli(['deploy', src, root, '--shared', '.env', '--shared', 'storage/logs', '--json']);
  assert.equal(refused.code, 2, refused.stderr);
  const error = jsonOf<Json>(refused).error;
  assert.equal(error?.code, 'INVALID_SHARED_PATH');
  assert.match(error?.message ?? '', /already holds "\.env"/);
  assert.match(error?.hint ?? '', /--shared-replace/);
  assert.deepEqual(releaseIds(root), []);
  assert.ok(!fs.existsSync(path.join(root, 'current')));

  const replaced = await runCli(['deploy', src, root, '--shared', '.env', '--shared', 'storage/logs', '--shared-replace', '--json']);
  assert.equal(replaced.code, 0, replaced.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current/.env'), 'utf8'), 'FROM_SHARED=1\n');
  assert.ok(fs.lstatSync(path.join(root, 'current/storage/logs')).isSymbolicLink());
  assert.ok(!fs.existsSync(path.join(root, 'current/storage/logs/old.log')));
  // The source is read, never changed.
  assert.equal(fs.readFileSync(path.join(src, '.env'), 'utf8'), 'FROM_BUILD=1\n');
  assert.ok(fs.existsSync(path.join(dir, 'src/storage/logs/old.log')));
});

void test('invalid shared paths are refused with exit 2', async (t) => {
  const { src, root } = setup(t);
  fs.mkdirSync(path.join(root, 'shared'), { recursive: true });
  fs.symlinkSync('/tmp', path.join(src, 'vendor'));
  for (const p of ['../etc', '/etc', 'a/../b', 'a//b', './a', 'vendor/x', 'index.html/x']) {
    const result = await runCli(['deploy', src, root, '--shared', p, '--json']);
    assert.equal(result.code, 2, `${p}: ${result.stderr}`);
    const error = jsonOf<Json & { error?: { hint?: string } }>(result).error;
    assert.equal(error?.code, 'INVALID_SHARED_PATH', p);
    // A path under a link or a file of the build is a well-formed path: the hint says what is in the way.
    if (p === 'vendor/x' || p === 'index.html/x') assert.match(error?.hint ?? '', /under real directories of the build/, p);
    else assert.match(error?.hint ?? '', /relative to the release, without "\.\."/, p);
  }
  const overlap = await runCli(['deploy', src, root, '--shared', 'data', '--shared', 'data/x', '--shared-create', '--json']);
  assert.equal(overlap.code, 2);
  assert.match(jsonOf<Json>(overlap).error?.message ?? '', /overlap/);
  assert.match(jsonOf<Json & { error?: { hint?: string } }>(overlap).error?.hint ?? '', /^give each shared path once, and none inside another/);
  // A trailing slash, the common slip: the hint gives the path as it should be written, flag kept.
  for (const [flag, hint] of [
    ['--shared', /^hint: write it without the trailing slash: --shared storage \(--shared-dir storage says it is a directory\)$/m],
    ['--shared-dir', /^hint: write it without the trailing slash: --shared-dir storage$/m],
  ] as const) {
    const slash = await runCli(['deploy', src, root, flag, 'storage/']);
    assert.equal(slash.code, 2, slash.stderr);
    assert.match(slash.stderr, /^error: shared path "storage\/": it is not normalised/m);
    assert.match(slash.stderr, hint);
  }
  assert.deepEqual(fs.readdirSync(root), ['shared']);
});

void test('a crash right after the links are made leaves no release behind', async (t) => {
  const { src, root } = setup(t);
  writeTree(path.join(root, 'shared'), { '.env': 'x\n' });
  const first = await runCli(['deploy', src, root, '--json']);
  const live = jsonOf<Json>(first).release as string;
  const crashed = await runCli(['deploy', src, root, '--shared', '.env'], { failpoints: 'shared-linked=crash' });
  assert.equal(crashed.signal, 'SIGKILL');
  const status = await runCli(['status', root, '--json']);
  assert.equal(status.code, 0, status.stderr);
  assert.equal(currentId(root), live);
  assert.deepEqual(releaseIds(root), [live]);
  assert.deepEqual(releaseLeftovers(root), []);
  assert.equal(fs.readFileSync(path.join(root, 'shared/.env'), 'utf8'), 'x\n');
});

void test('--shared .env --shared-create with nothing to tell file from directory refuses to guess: exit 2, nothing written', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root, '--quiet'])).code, 0);
  const before = treeSnapshot(dir, { times: true });
  const result = await runCli(['deploy', src, root, '--shared', '.env', '--shared-create']);
  assert.equal(result.code, 2, result.stderr);
  const [error, hint, ...rest] = result.stderr.trimEnd().split('\n');
  assert.equal(error, 'error: cannot tell whether shared path ".env" is a file or a directory: nothing is at shared/.env and the build does not hold it');
  assert.match(hint ?? '', /^hint: say which it is: --shared-file <path> \(e\.g\. \.env\) or --shared-dir <path>/);
  assert.deepEqual(rest, []);
  assert.deepEqual(treeSnapshot(dir, { times: true }), before);
});

void test('a shared target reached through a symlink to nothing, or through a file, is refused with exit 2 (dry run too), --shared-create or not; nothing is made anywhere', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root, '--quiet'])).code, 0);
  const elsewhere = path.join(dir, 'elsewhere');
  fs.mkdirSync(elsewhere);
  fs.mkdirSync(path.join(root, 'shared'));
  // A secret not written yet, a volume not mounted, a directory of links whose target is gone, a file where a directory belongs.
  fs.symlinkSync(path.join(elsewhere, '.env'), path.join(root, 'shared/.env'));
  fs.symlinkSync(path.join(dir, 'not-mounted/storage'), path.join(root, 'shared/storage'));
  fs.symlinkSync(path.join(dir, 'gone'), path.join(root, 'shared/conf'));
  fs.writeFileSync(path.join(root, 'shared/cache'), 'a file\n');
  const before = treeSnapshot(dir, { times: true });
  const cases: [string[], RegExp][] = [
    [['--shared-file', '.env'], /^error: shared\/\.env leads through a symlink to a path that does not exist$/],
    [['--shared-dir', 'storage'], /^error: shared\/storage leads through a symlink to a path that does not exist$/],
    [['--shared', 'storage'], /^error: shared\/storage leads through a symlink to a path that does not exist$/],
    [['--shared-file', 'conf/app.env'], /^error: shared\/conf\/app\.env leads through a symlink to a path that does not exist$/],
    [['--shared-dir', 'cache/views'], /^error: shared\/cache\/views cannot exist: shared\/ or a part of the path under it is not a directory$/],
  ];
  for (const [flags, message] of cases) {
    for (const extra of [['--shared-create'], ['--shared-create', '--dry-run'], []]) {
      const r = await runCli(['deploy', src, root, ...flags, ...extra]);
      const label = [...flags, ...extra].join(' ');
      assert.equal(r.code, 2, `${label}: ${r.stderr}`);
      const [error, hint, ...rest] = r.stderr.trimEnd().split('\n');
      assert.match(error ?? '', message, label);
      assert.match(hint ?? '', /^hint: (make what the link points to|move that file aside)/, label);
      assert.deepEqual(rest, [], label);
    }
  }
  assert.deepEqual(treeSnapshot(dir, { times: true }), before);
  assert.deepEqual(fs.readdirSync(elsewhere), [], 'a file was made through the link');
});

void test('shared/ itself a file, or a symlink to nothing: exit 2 with the same lines (dry run too), no stack trace, nothing made', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root, '--quiet'])).code, 0);
  const cases: [string, () => void, RegExp][] = [
    ['a file', () => fs.writeFileSync(path.join(root, 'shared'), 'not a directory\n'), /^error: shared\/(storage|\.env) cannot exist: shared\/ or a part of the path under it is not a directory$/],
    ['a dangling link', () => fs.symlinkSync(path.join(dir, 'not-mounted'), path.join(root, 'shared')), /^error: shared\/(storage|\.env) leads through a symlink to a path that does not exist$/],
  ];
  for (const [what, make, message] of cases) {
    fs.rmSync(path.join(root, 'shared'), { force: true, recursive: true });
    make();
    const before = treeSnapshot(dir, { times: true });
    for (const flags of [['--shared-dir', 'storage'], ['--shared', 'storage'], ['--shared-file', '.env']]) {
      for (const extra of [['--shared-create'], ['--shared-create', '--dry-run'], []]) {
        const r = await runCli(['deploy', src, root, ...flags, ...extra]);
        const label = `${what}: ${[...flags, ...extra].join(' ')}`;
        assert.equal(r.code, 2, `${label}: ${r.stderr}`);
        const [error, hint, ...rest] = r.stderr.trimEnd().split('\n');
        assert.match(error ?? '', message, label);
        assert.match(hint ?? '', /^hint: (make what the link points to|move that file aside)/, label);
        assert.deepEqual(rest, [], label);
      }
    }
    assert.deepEqual(treeSnapshot(dir, { times: true }), before, what);
  }
});

void test('--shared-file makes an empty file (owner-only), --shared-dir an empty directory; --shared infers from what exists', async (t) => {
  const { src, root } = setup(t);
  const made = await runCli(['deploy', src, root, '--shared-file', '.env', '--shared-dir', 'storage', '--shared-create', '--json']);
  assert.equal(made.code, 0, made.stderr);
  const env = fs.statSync(path.join(root, 'shared/.env'));
  assert.ok(env.isFile());
  assert.equal(env.size, 0);
  assert.equal(env.mode & 0o777, 0o600);
  assert.ok(fs.statSync(path.join(root, 'shared/storage')).isDirectory());
  assert.match(made.stdout, /^\{/);
  fs.writeFileSync(path.join(root, 'shared/.env'), 'A=1\n');
  // Existing targets tell their type: --shared needs no more than that, and --shared-create changes nothing.
  const inferred = await runCli(['deploy', src, root, '--shared', '.env', '--shared', 'storage', '--shared-create', '--quiet']);
  assert.equal(inferred.code, 0, inferred.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current/.env'), 'utf8'), 'A=1\n');
  // A declared type that contradicts what exists is refused.
  const before = snapshot(root);
  const wrong = await runCli(['deploy', src, root, '--shared-file', 'storage', '--json']);
  assert.equal(wrong.code, 2, wrong.stderr);
  assert.equal(jsonOf<Json>(wrong).error?.message, 'shared/storage is a directory, but it is declared a file');
  // The hint names the other flag (the one not given) and the way to start over.
  assert.match(wrong.stderr, /^hint: to link the directory that is there, declare it with --shared-dir storage \(sharedDirs: in the config file\); to start a file, move shared\/storage aside/m);
  // A type taken from the build (--shared with --shared-replace) is not called declared.
  fs.mkdirSync(path.join(src, 'cache'));
  fs.writeFileSync(path.join(root, 'shared/cache'), 'x\n');
  const fromBuild = await runCli(['deploy', src, root, '--shared', 'cache', '--shared-replace']);
  assert.equal(fromBuild.code, 2, fromBuild.stderr);
  assert.match(fromBuild.stderr, /^error: shared\/cache is a file, but the build holds "cache" as a directory$/m);
  assert.match(fromBuild.stderr, /^hint: make them agree: change the build, or move shared\/cache aside .* --shared-create to start a directory$/m);
  fs.rmSync(path.join(src, 'cache'), { recursive: true });
  fs.rmSync(path.join(root, 'shared/cache'));
  assert.deepEqual(snapshot(root), before);
});

void test('sharedFiles and sharedDirs in the config file mean the same as the flags', async (t) => {
  const { dir, src, root } = setup(t);
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), `root: ${JSON.stringify(root)}\nsource: ${JSON.stringify(src)}\nsharedFiles: [.env]\nsharedDirs: [storage/logs]\nsharedCreate: true\n`);
  const result = await runCli(['deploy', '--json'], { cwd: dir });
  assert.equal(result.code, 0, result.stderr);
  assert.deepEqual(jsonOf<Json>(result).shared, ['.env', 'storage/logs']);
  assert.ok(fs.statSync(path.join(root, 'shared/.env')).isFile());
  assert.ok(fs.statSync(path.join(root, 'shared/storage/logs')).isDirectory());
});

// A deploy user who may not write in shared/ (made by the web server's user, www-data here)
// asked for --shared-create: the release was copied under the lock first, then the create failed
// (exit 1) with the hint to run as www-data or `chown -R` the root, which takes shared/storage
// from the application. Refused before anything is written (exit 2), the hint to make it as its owner.
void test('--shared-create where this user may not write in shared/: exit 2 before the lock, nothing written, the way to make it as its owner', async (t) => {
  requireRoot();
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  fs.chmodSync(src, 0o755);
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  fs.chownSync(root, 65534, 65534);
  const asNobody = (args: string[]): Promise<import('../harness/cli.ts').CliResult> => runWrapped(args, { prefix: asUser('nobody') });
  assert.equal((await asNobody(['deploy', src, root, '--no-fsync', '-q'])).code, 0);
  fs.mkdirSync(path.join(root, 'shared', 'storage'), { recursive: true });
  const before = treeSnapshot(root);
  const r = await asNobody(['deploy', src, root, '--no-fsync', '--shared-file', '.env', '--shared-create', '--shared-dir', 'storage']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^error: cannot create shared/\\.env: ${root}/shared is root's, and this user \\(nobody\\) may not write in it$`, 'm'));
  assert.match(r.stderr, new RegExp(`^hint: make it as root \\(sudo -u root touch ${root}/shared/\\.env\\), then deploy again without --shared-create for it$`, 'm'));
  assert.doesNotMatch(r.stdout, /copying/);
  assert.deepEqual(treeSnapshot(root), before);
});
