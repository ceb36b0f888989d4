// Trees with directories their owner may not write (0555, as every Nix store path is), deployed by
// a user who is not root: a stage, trash or undone release holding one could not be removed
// (rm -rf and fs.rm fail with EACCES), so a refused artifact left `.tmp/stage.*` behind for good,
// and every later command printed "removed leftover" without removing it. Locally (the CLI as
// `nobody`) and in the hosts' programs (dash with coreutils, BusyBox sh with its applets, as
// `nobody`), such trees are now removed. Controls: the same trees defeat a plain `rm -rf`.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { placeRelease } from '../../src/root/place.ts';
import { applyScript, deployArmScript } from '../../src/remote/script.ts';
import { writeArchive } from '../harness/archives.ts';
import { asUser, requireRoot, runWrapped, uidOf } from '../harness/faults.ts';
import { findTools } from '../harness/fleet.ts';
import { treeSnapshot } from '../harness/invariants.ts';
import { armedTail, lockAs, programShells, runProgram } from '../harness/remote-programs.ts';

const TOOLS = findTools(['busybox', 'dash'] as const);
const NOBODY = uidOf('nobody');
const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'read-only-trees-'));
fs.chmodSync(BASE, 0o755);
after(() => {
  // As root: whatever a failed case left, whatever its modes.
  spawnSync('chmod', ['-R', 'u+rwx', BASE]);
  fs.rmSync(BASE, { recursive: true, force: true });
});

let serial = 0;
/** A directory of nobody's own. */
function ownDir(name: string): string {
  const dir = path.join(BASE, `${++serial}-${name}`);
  fs.mkdirSync(dir);
  fs.chownSync(dir, NOBODY.uid, NOBODY.gid);
  return dir;
}

/** Makes, as nobody, a tree under `dir` with 0555 directories (one nested) and a 0500 one. */
function readOnlyTree(dir: string): void {
  const r = spawnSync(asUser('nobody')[0] as string, [...asUser('nobody').slice(1), 'sh', '-c', 'mkdir -p "$1/ro/sub" "$1/shut" && echo x > "$1/ro/sub/f" && echo y > "$1/ro/g" && echo z > "$1/shut/h" && chmod 555 "$1/ro/sub" "$1/ro" && chmod 500 "$1/shut"', 'sh', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

function asNobody(args: string[]): ReturnType<typeof runWrapped> {
  return runWrapped(args, { prefix: asUser('nobody') });
}

void describe('read-only directories in what a failed or undone deploy removes, as a user who is not root', () => {
  void test('control: nobody cannot rm -rf such a tree', () => {
    requireRoot();
    const dir = ownDir('control');
    readOnlyTree(dir);
    const r = spawnSync(asUser('nobody')[0] as string, [...asUser('nobody').slice(1), 'rm', '-rf', '--', dir], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /Permission denied/);
    assert.ok(fs.existsSync(path.join(dir, 'ro', 'sub', 'f')));
  });

  void test('an artifact refused after its extraction (wrong --sha256) leaves no stage; nor does a directory deploy undone by its hook', async () => {
    requireRoot();
    const dir = ownDir('local');
    const artifact = writeArchive('tar', path.join(dir, 'nix.tar'), [
      { name: 'index.html', data: 'v1\n' },
      { name: 'ro/', type: 'dir', mode: 0o555 },
      { name: 'ro/sub/', type: 'dir', mode: 0o555 },
      { name: 'ro/sub/f', data: 'x\n' },
    ]);
    fs.chownSync(artifact, NOBODY.uid, NOBODY.gid);
    const root = path.join(dir, 'root');
    const first = await asNobody(['deploy', artifact, root, '--no-fsync']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(fs.statSync(path.join(root, 'current', 'ro')).mode & 0o777, 0o555, 'the release keeps the archive mode');
    const before = treeSnapshot(root);

    const refused = await asNobody(['deploy', artifact, root, '--no-fsync', '--sha256', '0'.repeat(64)]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], 'no stage left in .tmp/');
    assert.deepEqual(treeSnapshot(root), before);
    const status = await asNobody(['status', root]);
    assert.equal(status.code, 0, status.stderr);
    assert.doesNotMatch(status.stdout + status.stderr, /leftover/);

    // A build directory with the same modes, undone because its before-switch hook fails.
    const build = ownDir('build');
    readOnlyTree(build);
    const undone = await asNobody(['deploy', build, root, '--no-fsync', '--before-switch', 'false']);
    assert.equal(undone.code, 1, undone.stderr);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], 'no trash or stage left in .tmp/');
    assert.deepEqual(treeSnapshot(root), before);
  });
});

void describe('a build whose top directory its owner may not write (chmod -R a-w, a Nix output), deployed by a user who is not root', () => {
  void test('deploys (its stage is moved into releases/ with the mode kept), verifies, is undone by a failing hook, and is pruned', async () => {
    requireRoot();
    const dir = ownDir('top');
    const build = path.join(dir, 'build');
    const r = spawnSync(asUser('nobody')[0] as string, [...asUser('nobody').slice(1), 'sh', '-c', 'mkdir -p "$1/sub" && echo v1 > "$1/index.html" && echo x > "$1/sub/f" && chmod -R a-w "$1"', 'sh', build], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const root = path.join(dir, 'root');
    const first = await asNobody(['deploy', build, root, '--no-fsync', '--release-id', 'r1']);
    // Moving a directory to another parent rewrites its `..`: the old code failed here with EACCES.
    assert.equal(first.code, 0, first.stderr);
    for (const d of ['', 'sub']) assert.equal((fs.statSync(path.join(root, 'releases', 'r1', d)).mode & 0o777).toString(8), '555', `releases/r1/${d}`);
    const verify = await asNobody(['verify', root]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);

    const undone = await asNobody(['deploy', build, root, '--no-fsync', '--release-id', 'r2', '--before-switch', 'true', '--after-switch', 'true', '--health-check', 'false']);
    assert.equal(undone.code, 4, undone.stderr);
    const hooked = await asNobody(['deploy', build, root, '--no-fsync', '--release-id', 'r3', '--before-switch', 'false']);
    assert.equal(hooked.code, 1, hooked.stderr);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], 'no trash or stage left in .tmp/');
    assert.ok(!fs.existsSync(path.join(root, 'releases', 'r3')), 'the undone release left releases/');

    const second = await asNobody(['deploy', build, root, '--no-fsync', '--release-id', 'r4', '--keep', '0']);
    assert.equal(second.code, 0, second.stderr);
    const pruned = await asNobody(['prune', root, '--keep', '1']);
    assert.equal(pruned.code, 0, pruned.stderr);
    assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), ['r1', 'r4'], 'r2 (failed) pruned; r1 stays as the rollback target');
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')).filter((n) => !n.startsWith('.')), []);
  });

  // The shared link goes into the release's top directory, which keeps the build's 0555: linking
  // failed with EACCES (exit 1), for a directory build and for an archive whose `./` is 0555 alike.
  void test('shared paths are linked into a read-only top directory (and one below it), replacing what an archive held; the modes stay', async () => {
    requireRoot();
    const dir = ownDir('shared');
    const build = path.join(dir, 'build');
    const r = spawnSync(asUser('nobody')[0] as string, [...asUser('nobody').slice(1), 'sh', '-c', 'mkdir -p "$1/config" && echo v1 > "$1/index.html" && chmod -R a-w "$1"', 'sh', build], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const artifact = writeArchive('tar', path.join(dir, 'nix.tar'), [
      { name: './', type: 'dir', mode: 0o555 },
      { name: 'index.html', data: 'v2\n' },
      { name: '.env', data: 'FROM_BUILD=1\n' },
      { name: 'config/', type: 'dir', mode: 0o555 },
      { name: 'config/app.ini', data: 'x\n' },
    ]);
    fs.chownSync(artifact, NOBODY.uid, NOBODY.gid);
    const root = path.join(dir, 'root');
    for (const [source, replace] of [[build, []], [artifact, ['--shared-replace']]] as const) {
      const deployed = await asNobody(['deploy', source, root, '--no-fsync', '--shared-file', '.env', '--shared-file', 'config/app.ini', '--shared-create', ...replace]);
      assert.equal(deployed.code, 0, `${source}: ${deployed.stderr}`);
      const current = path.join(root, 'current');
      assert.equal(fs.readlinkSync(path.join(current, '.env')), '../../shared/.env');
      assert.equal(fs.readlinkSync(path.join(current, 'config', 'app.ini')), '../../../shared/config/app.ini');
      for (const d of ['', 'config']) assert.equal((fs.statSync(path.join(current, d)).mode & 0o777).toString(8), '555', `${source}: ${d || '.'}`);
      const verify = await asNobody(['verify', root]);
      assert.equal(verify.code, 0, verify.stdout + verify.stderr);
    }
  });
});

// The hosts' programs: a stage or trash removed at the end of a failed deploy or a prune.
const SHELLS = programShells(BASE, TOOLS, ['rm', 'find', 'chmod', 'mkdir', 'cat', 'sed', 'tr', 'ls', 'stat', 'sync', 'date', 'id', 'printf', 'test', 'mv', 'ln', 'cp', 'rmdir', 'uname', 'readlink', 'sleep', 'kill', 'timeout', 'grep']);
fs.chmodSync(path.join(BASE, 'busybox-bin'), 0o755);
for (const shell of SHELLS) {
  void test(`a host's program removes a stage with read-only directories, as nobody, under ${shell.name}`, () => {
    requireRoot();
    const root = path.join(ownDir('host'), 'root');
    fs.mkdirSync(path.join(root, '.tmp'), { recursive: true });
    fs.mkdirSync(path.join(root, 'releases'));
    spawnSync('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, root]);
    const stage = path.join(root, '.tmp', 'stage.abc');
    fs.mkdirSync(stage);
    fs.chownSync(stage, NOBODY.uid, NOBODY.gid);
    readOnlyTree(stage);
    const r = runProgram(shell, applyScript({ root, fsync: false, steps: [{ op: 'remove-staged', name: 'stage.abc' }, { op: 'remove-tmp', name: 'none.x' }] }), BASE, '', NOBODY);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.frames.some((f) => f.tag === 'end' && f.value === 'apply'), JSON.stringify(r.frames));
    assert.equal(fs.existsSync(stage), false, `${shell.name}: the stage is gone`);
  });
}

for (const shell of SHELLS) {
  void test(`a host's program places a stage whose top directory is 0555 into releases/ and retires it, as nobody, under ${shell.name}`, () => {
    requireRoot();
    const root = path.join(ownDir('host-place'), 'root');
    fs.mkdirSync(path.join(root, '.tmp', 'stage.abc'), { recursive: true });
    fs.mkdirSync(path.join(root, 'releases'));
    fs.mkdirSync(path.join(root, '.atomic-deploy'));
    spawnSync('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, root]);
    const made = spawnSync(asUser('nobody')[0] as string, [...asUser('nobody').slice(1), 'sh', '-c', 'mkdir "$1" && echo v1 > "$1/index.html" && chmod 555 "$1"', 'sh', path.join(root, '.tmp', 'stage.abc', 'r1')], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const place = placeRelease({ id: 'r1', stage: '.tmp/stage.abc/r1', leftover: '.tmp/stage.abc', record: '{"id":"r1","status":"pending"}', journal: '{"v":1}' });
    const placed = runProgram(shell, applyScript({ root, fsync: false, steps: [{ op: 'run', program: place }] }), BASE, '', NOBODY);
    assert.equal(placed.code, 0, `${shell.name}: ${placed.stderr} ${JSON.stringify(placed.frames)}`);
    assert.equal((fs.statSync(path.join(root, 'releases', 'r1')).mode & 0o777).toString(8), '555', `${shell.name}: the mode is kept`);
    assert.equal(fs.existsSync(path.join(root, '.tmp', 'stage.abc')), false);

    const retired = runProgram(shell, applyScript({ root, fsync: false, steps: [{ op: 'remove-release', id: 'r1', trash: 'trash.r1.abc', protect: [] }, { op: 'remove-staged', name: 'trash.r1.abc' }] }), BASE, '', NOBODY);
    assert.equal(retired.code, 0, `${shell.name}: ${retired.stderr} ${JSON.stringify(retired.frames)}`);
    assert.deepEqual(fs.readdirSync(path.join(root, 'releases')), [], `${shell.name}: the release left releases/`);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')).filter((n) => n.startsWith('trash.')), []);
  });
}

// The host's side of a shared link into a release whose top directory keeps a 0555 build's mode:
// `ln -s` there failed for a user who is not root ("cannot link shared path"); in_writable lends u+w.
for (const shell of SHELLS) {
  void test(`a host's program links shared paths into a stage whose top directory is 0555, replacing what it held, as nobody, under ${shell.name}`, () => {
    requireRoot();
    const root = path.join(ownDir('host-shared'), 'root');
    for (const d of ['releases/old', '.tmp/stage.abc', '.atomic-deploy', 'shared/config']) fs.mkdirSync(path.join(root, d), { recursive: true });
    fs.writeFileSync(path.join(root, 'releases', 'old', 'index.html'), 'old\n');
    fs.symlinkSync('releases/old', path.join(root, 'current'));
    fs.writeFileSync(path.join(root, 'shared', '.env'), 'FROM_SHARED=1\n');
    fs.writeFileSync(path.join(root, 'shared', 'config', 'app.ini'), 'x\n');
    lockAs(root, 'tok');
    spawnSync('chown', ['-R', `${NOBODY.uid}:${NOBODY.gid}`, root]);
    const made = spawnSync(asUser('nobody')[0] as string, [...asUser('nobody').slice(1), 'sh', '-c', 'mkdir -p "$1/config" && echo new > "$1/index.html" && echo FROM_BUILD=1 > "$1/.env" && chmod 555 "$1/config" "$1"', 'sh', path.join(root, '.tmp', 'stage.abc', 'new')], { encoding: 'utf8' });
    assert.equal(made.status, 0, made.stderr);
    const script = deployArmScript({
      root,
      fsync: false,
      id: 'new',
      previous: 'old',
      stage: 'stage.abc',
      shared: [
        { path: '.env', type: 'file', linkText: '../../shared/.env', mkdirs: [], replaces: true },
        { path: 'config/app.ini', type: 'file', linkText: '../../../shared/config/app.ini', mkdirs: [], replaces: false },
      ],
      sharedCreate: false,
      beforeSwitch: [],
      journalCopying: '{"v":1,"op":"deploy","phase":"copying"}',
      journalReady: '{"v":1,"op":"deploy","phase":"ready"}',
      recordPending: '{"id":"new","status":"pending"}',
      tail: armedTail({ id: 'new', token: 'tok', backTo: 'old', commitRecords: ['new'], protect: ['old', 'new'] }),
    });
    const r = runProgram(shell, script, BASE, 'go\ncommit\n{"id":"new","status":"complete"}\n', NOBODY);
    assert.equal(r.code, 0, `${shell.name}: ${r.stderr} ${JSON.stringify(r.frames)}`);
    assert.ok(r.frames.some((f) => f.tag === 'committed'), `${shell.name}: ${JSON.stringify(r.frames)}`);
    assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/new');
    const release = path.join(root, 'releases', 'new');
    assert.equal(fs.readlinkSync(path.join(release, '.env')), '../../shared/.env');
    assert.equal(fs.readFileSync(path.join(release, '.env'), 'utf8'), 'FROM_SHARED=1\n');
    assert.equal(fs.readlinkSync(path.join(release, 'config', 'app.ini')), '../../../shared/config/app.ini');
    for (const d of ['', 'config']) assert.equal((fs.statSync(path.join(release, d)).mode & 0o777).toString(8), '555', `${shell.name}: ${d || '.'} keeps its mode`);
  });
}
