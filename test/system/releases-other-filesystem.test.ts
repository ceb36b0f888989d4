// releases/ on another filesystem than the root's .tmp/: a tmpfs mounted over releases/, a bind
// mount (same device number, still another mount) and releases/ as a link to another volume.
// A release enters releases/ and leaves it by rename(2), which fails with EXDEV across mounts:
// each setup's control proves that a rename from .tmp/ into releases/ really fails there.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { jsonOf, runCli } from '../harness/cli.ts';
import { requireRoot, requireTools } from '../harness/faults.ts';
import { checkRoot, leftovers, makeSource, manifestOf, type Manifest } from '../harness/invariants.ts';

interface Setup {
  base: string;
  root: string;
  sources: string[];
  manifests: Manifest[];
}

/** A temp dir whose mounts are undone before it is removed (one hook, so the order is sure). */
function mountedBase(t: { after(fn: () => void): void }): { base: string; mounts: string[] } {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-deploy-xdev-'));
  const mounts: string[] = [];
  t.after(() => {
    for (const m of mounts.reverse()) execFileSync('umount', ['-l', m]);
    fs.rmSync(base, { recursive: true, force: true });
  });
  return { base, mounts };
}

function setupIn(base: string): Setup {
  const sources = ['a', 'b'].map((tag) => makeSource(path.join(base, `src-${tag}`), tag));
  const root = path.join(base, 'root');
  fs.mkdirSync(path.join(root, '.tmp'), { recursive: true });
  fs.mkdirSync(path.join(root, 'releases'));
  return { base, root, sources, manifests: sources.map(manifestOf) };
}

/** The control: a directory made in .tmp/ cannot be renamed into releases/. */
function assertRenameCrosses(root: string, label: string): void {
  const probe = path.join(root, '.tmp', 'control-probe');
  fs.mkdirSync(probe);
  try {
    assert.throws(() => fs.renameSync(probe, path.join(root, 'releases', 'control-probe')), { code: 'EXDEV' }, `${label}: a rename from .tmp/ into releases/ did not fail with EXDEV; the setup proves nothing`);
  } finally {
    fs.rmdirSync(probe);
  }
}

async function ok(args: string[], label: string, failpoints?: string): Promise<Record<string, unknown>> {
  const result = await runCli([...args, '--json'], { failpoints });
  assert.equal(result.code, 0, `${label}: ${args.join(' ')} exited ${result.code}\n${result.stderr}`);
  return jsonOf(result);
}

function assertClean(s: Setup, label: string, keep: string[] = []): { current: string | null; releases: string[] } {
  const { problems, state } = checkRoot(s.root, { sources: s.manifests, keep, clean: true });
  assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
  return state;
}

/** Deploys (copy and hardlink), a refused before-switch hook, a kill -9 mid-copy, rollback and prune. */
async function exercise(s: Setup, label: string): Promise<void> {
  const [a, b] = s.sources as [string, string];
  const first = await ok(['deploy', a, s.root, '--release-id', 'r1'], `${label}: first deploy`);
  assert.equal(first.release, 'r1');
  // The same bytes as r1: every file is a link to r1's inode, which only works on one mount.
  const linked = await ok(['deploy', a, s.root, '--release-id', 'r2', '--strategy', 'hardlink'], `${label}: hardlink deploy`);
  assert.ok(typeof linked.linked === 'number' && linked.linked > 0, `${label}: nothing was linked: ${JSON.stringify(linked)}`);
  const ino = (id: string): number => fs.statSync(path.join(s.root, 'releases', id, 'index.html')).ino;
  assert.equal(ino('r2'), ino('r1'), `${label}: r2's unchanged file is not r1's inode`);
  await ok(['deploy', b, s.root, '--release-id', 'r3'], `${label}: third deploy`);
  assert.deepEqual(assertClean(s, `${label}: after three deploys`), { current: 'r3', releases: ['r1', 'r2', 'r3'] });

  // Undone before the switch: the placed release leaves releases/ through the trash on its mount.
  const refused = await runCli(['deploy', b, s.root, '--release-id', 'r4', '--before-switch', 'exit 3']);
  assert.equal(refused.code, 1, `${label}: a failing before-switch hook: exit ${refused.code}\n${refused.stderr}`);
  assert.deepEqual(assertClean(s, `${label}: after the undone deploy`), { current: 'r3', releases: ['r1', 'r2', 'r3'] });

  // kill -9 half-way through the copy: the partial stage sits hidden in releases/, never as a release.
  const killed = await runCli(['deploy', b, s.root, '--release-id', 'r5'], { failpoints: 'copy-half=crash' });
  assert.equal(killed.signal, 'SIGKILL', `${label}: the crash failpoint did not fire: ${killed.code}\n${killed.stderr}`);
  const stages = fs.readdirSync(path.join(s.root, 'releases')).filter((n) => n.startsWith('.stage.r5.'));
  assert.equal(stages.length, 1, `${label}: no partial stage in releases/ after the kill: ${fs.readdirSync(path.join(s.root, 'releases')).join(', ')}`);
  assert.deepEqual(fs.readdirSync(path.join(s.root, '.tmp')).filter((n) => n.startsWith('stage.')), [], `${label}: a stage in .tmp/, on the wrong filesystem`);
  const status = await ok(['status', s.root], `${label}: status after the kill`);
  assert.ok(Array.isArray(status.recovered) && status.recovered.some((l) => typeof l === 'string' && l.includes(`releases/${stages[0] ?? ''}`)), `${label}: status did not sweep the stage: ${JSON.stringify(status)}`);
  assert.deepEqual(leftovers(s.root), [], `${label}: leftovers after status`);

  const back = await ok(['rollback', s.root], `${label}: rollback`);
  assert.equal(back.release, 'r2', `${label}: rollback went to ${JSON.stringify(back)}`);
  await ok(['deploy', b, s.root, '--release-id', 'r6', '--keep', '1'], `${label}: deploy --keep 1`);
  const state = assertClean(s, `${label}: after the prune`, ['r6', 'r2']);
  assert.equal(state.current, 'r6');
  assert.deepEqual(state.releases, ['r2', 'r6'], `${label}: prune kept the wrong releases`);
  assert.deepEqual(fs.readdirSync(path.join(s.root, 'releases')).filter((n) => n.startsWith('.')), [], `${label}: hidden leftovers in releases/`);
}

void test('releases/ on a tmpfs of its own: deploy, hardlink, undo, crash recovery, rollback and prune', async (t) => {
  requireRoot();
  requireTools('mount', 'umount');
  const { base, mounts } = mountedBase(t);
  const s = setupIn(base);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0755', 'tmpfs', path.join(s.root, 'releases')]);
  mounts.push(path.join(s.root, 'releases'));
  assert.notEqual(fs.statSync(path.join(s.root, 'releases')).dev, fs.statSync(path.join(s.root, '.tmp')).dev, 'the tmpfs is not mounted');
  assertRenameCrosses(s.root, 'tmpfs');
  await exercise(s, 'tmpfs');
});

void test('releases/ a bind mount (same device number, another mount): the same operations work', async (t) => {
  requireRoot();
  requireTools('mount', 'umount');
  const { base, mounts } = mountedBase(t);
  const s = setupIn(base);
  const elsewhere = path.join(base, 'elsewhere');
  fs.mkdirSync(elsewhere);
  execFileSync('mount', ['--bind', elsewhere, path.join(s.root, 'releases')]);
  mounts.push(path.join(s.root, 'releases'));
  // Same st_dev: a device comparison alone would miss this one.
  assert.equal(fs.statSync(path.join(s.root, 'releases')).dev, fs.statSync(path.join(s.root, '.tmp')).dev);
  assertRenameCrosses(s.root, 'bind mount');
  await exercise(s, 'bind mount');
});

void test('releases/ a symlink to a directory on another volume: the same operations work', async (t) => {
  requireRoot();
  requireTools('mount', 'umount');
  const { base, mounts } = mountedBase(t);
  const s = setupIn(base);
  const volume = path.join(base, 'volume');
  fs.mkdirSync(volume);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64m,mode=0755', 'tmpfs', volume]);
  mounts.push(volume);
  fs.mkdirSync(path.join(volume, 'releases'));
  fs.rmdirSync(path.join(s.root, 'releases'));
  fs.symlinkSync(path.join(volume, 'releases'), path.join(s.root, 'releases'));
  assertRenameCrosses(s.root, 'symlink');
  await exercise(s, 'symlink');
  assert.ok(fs.lstatSync(path.join(s.root, 'releases')).isSymbolicLink(), 'releases/ is no longer the link');
});

/** The lock and the switch are renames from .tmp/ into the root: a .tmp/ on another mount is refused, nothing written. */
async function refusesTmpApart(s: Setup, label: string): Promise<void> {
  const before = JSON.stringify(treeOf(s.root));
  for (const args of [['deploy', s.sources[0] as string, s.root, '--release-id', 'r1'], ['rollback', s.root], ['prune', s.root, '--keep', '1']]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${label}: ${args[0] ?? ''} exited ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^error: .*\.tmp is on another filesystem than .*\nhint: make .*\.tmp a plain directory/, `${label}: ${args[0] ?? ''}`);
    assert.equal(JSON.stringify(treeOf(s.root)), before, `${label}: ${args[0] ?? ''} changed the root`);
  }
}

function treeOf(dir: string): string[] {
  return fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
}

void test('.tmp/ a tmpfs or a bind mount of its own: deploy, rollback and prune refuse with exit 2 and a hint, root untouched', async (t) => {
  requireRoot();
  requireTools('mount', 'umount');
  const { base, mounts } = mountedBase(t);
  const s = setupIn(base);
  await ok(['deploy', s.sources[0] as string, s.root, '--release-id', 'r0'], 'a deploy before the mount');
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', path.join(s.root, '.tmp')]);
  mounts.push(path.join(s.root, '.tmp'));
  await refusesTmpApart(s, 'tmpfs .tmp');
  execFileSync('umount', [path.join(s.root, '.tmp')]);
  mounts.pop();
  const elsewhere = path.join(base, 'tmp-elsewhere');
  fs.mkdirSync(elsewhere);
  execFileSync('mount', ['--bind', elsewhere, path.join(s.root, '.tmp')]);
  mounts.push(path.join(s.root, '.tmp'));
  assert.equal(fs.statSync(path.join(s.root, '.tmp')).dev, fs.statSync(s.root).dev, 'a bind mount keeps the device number');
  await refusesTmpApart(s, 'bind-mounted .tmp');
  // Control: the same root with .tmp/ a plain directory again deploys.
  execFileSync('umount', [path.join(s.root, '.tmp')]);
  mounts.pop();
  await ok(['deploy', s.sources[1] as string, s.root, '--release-id', 'r1'], 'a deploy once .tmp/ is plain');
});
