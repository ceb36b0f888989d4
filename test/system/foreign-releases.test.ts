// Releases made by other tools (Deployer's 1, 2, ... 10, 11; tags such as v1.9, v1.10) are
// ordered by number, and the one that was live is never taken for the oldest.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';

function foreignRoot(dir: string, ids: string[], live: string): string {
  const root = path.join(dir, 'dep');
  for (const id of ids) writeTree(path.join(root, 'releases', id), { 'index.html': `${id}\n` });
  fs.symlinkSync(`releases/${live}`, path.join(root, 'current'));
  return root;
}

void test('deploy 12 --keep 2 over Deployer releases 9, 10, 11 keeps 11 (live a moment before); rollback goes back to 11', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'new\n' });
  const root = foreignRoot(dir, ['9', '10', '11'], '11');
  const r = await runCli(['deploy', src, root, '--release-id', '12', '--keep', '2']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(releaseIds(root).sort(), ['11', '12']);
  const back = await runCli(['rollback', root, '--json']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), '11');
});

void test('v1.9 and v1.10: rollback from v1.10 goes to v1.9, and the listing is newest first by version', async (t) => {
  const dir = tempDir(t);
  const root = foreignRoot(dir, ['v1.8', 'v1.9', 'v1.10'], 'v1.10');
  const list = await runCli(['releases', root, '--json']);
  assert.equal(list.code, 0, list.stderr);
  assert.deepEqual(jsonOf<{ releases: { id: string }[] }>(list).releases.map((x) => x.id), ['v1.10', 'v1.9', 'v1.8']);
  const back = await runCli(['rollback', root]);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), 'v1.9');
});

void test('a mixed root: the foreign release live before our deploy is its rollback target and survives prune, whatever its name', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'ours\n' });
  const root = path.join(dir, 'root');
  for (const id of ['b1', 'b2']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--quiet'])).code, 0);
  // Another tool publishes "a-hotfix" (sorts before our names) and makes it live.
  writeTree(path.join(root, 'releases', 'a-hotfix'), { 'index.html': 'hotfix\n' });
  fs.symlinkSync('releases/a-hotfix', path.join(root, 'tmp-link'));
  fs.renameSync(path.join(root, 'tmp-link'), path.join(root, 'current'));
  const r = await runCli(['deploy', src, root, '--release-id', 'b3', '--keep', '1']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(releaseIds(root).includes('a-hotfix'), `a-hotfix was pruned: ${releaseIds(root).join(' ')}`);
  const back = await runCli(['rollback', root]);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), 'a-hotfix');
});

void test('a root made fresh by us: a copy put in releases/ by hand is no rollback target (only --to goes there), so rolling back once too often changes nothing', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  for (const [id, page] of [['r1', 'one\n'], ['r2', 'two\n']] as const) {
    const src = writeTree(path.join(dir, id), { 'index.html': page });
    assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--quiet'])).code, 0);
  }
  // What users do by hand: a backup copy beside the release, and an empty folder meant for one.
  fs.cpSync(path.join(root, 'releases', 'r1'), path.join(root, 'releases', 'r1.bak'), { recursive: true });
  fs.mkdirSync(path.join(root, 'releases', 'backup-old'));
  const once = await runCli(['rollback', root]);
  assert.equal(once.code, 0, once.stderr);
  assert.equal(currentId(root), 'r1');
  const before = treeSnapshot(root);
  const again = await runCli(['rollback', root]);
  assert.equal(again.code, 2, `a second rollback went on to ${currentId(root)}: ${again.stdout}${again.stderr}`);
  assert.match(again.stderr, /^error: release r1 has no earlier good release to roll back to\nhint: .*--to <id>/);
  assert.deepEqual(treeSnapshot(root), before);
  // `releases` names no previous release, and prune protects no hand-made folder as one.
  const roles = jsonOf<{ releases: { id: string; role: string }[] }>(await runCli(['releases', root, '--json'])).releases;
  assert.deepEqual(roles.filter((x) => x.role === 'previous'), []);
  // Asked for by name, it is reached.
  const to = await runCli(['rollback', root, '--to', 'r1.bak']);
  assert.equal(to.code, 0, to.stderr);
  assert.equal(currentId(root), 'r1.bak');
  const back = await runCli(['rollback', root, '--to', 'r1']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), 'r1');
});

void test('a root made fresh by us: folders put in releases/ by hand survive the default keep of six deploys, and prune says why', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'ours\n' });
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'r01', '--quiet'])).code, 0);
  // A backup with a database dump, a dated copy and an empty folder, all made by hand.
  writeTree(path.join(root, 'releases', 'backup-old'), { 'dump.sql': 'INSERT 1;\n' });
  fs.cpSync(path.join(root, 'releases', 'r01'), path.join(root, 'releases', '20200101'), { recursive: true });
  fs.mkdirSync(path.join(root, 'releases', 'a.bak'));
  for (let i = 2; i <= 7; i++) {
    const r = await runCli(['deploy', src, root, '--release-id', `r0${i}`, '--quiet']);
    assert.equal(r.code, 0, r.stderr);
  }
  // Default keep 5: of ours r01 and r02 go, the hand-made folders stay and take no place among the five.
  assert.deepEqual(releaseIds(root).sort(), ['20200101', 'a.bak', 'backup-old', 'r03', 'r04', 'r05', 'r06', 'r07']);
  assert.equal(fs.readFileSync(path.join(root, 'releases', 'backup-old', 'dump.sql'), 'utf8'), 'INSERT 1;\n');
  const plan = await runCli(['prune', root, '--keep', '1', '--dry-run', '--json']);
  assert.equal(plan.code, 0, plan.stderr);
  const kept = jsonOf<{ kept: { id: string; rule: string; reason: string }[] }>(plan).kept;
  for (const id of ['20200101', 'a.bak', 'backup-old']) {
    assert.deepEqual(kept.filter((k) => k.id === id).map((k) => k.rule), ['never-served'], `${id}: ${JSON.stringify(kept)}`);
  }
  const human = await runCli(['prune', root, '--keep', '1', '--dry-run']);
  assert.match(human.stdout, /backup-old.*never served \(not made by a deploy\); prune leaves it/);
  // r01, whose record says the root was made by us, is gone; rollback still walks only our releases.
  const visited: string[] = [];
  for (;;) {
    const back = await runCli(['rollback', root]);
    if (back.code !== 0) {
      assert.equal(back.code, 2, back.stderr);
      break;
    }
    visited.push(currentId(root) ?? '');
  }
  assert.deepEqual(visited, ['r06', 'r05', 'r04', 'r03']);
});

// Roots taken over from another tool (no release log): `releases/lost+found` (releases/ is a
// mount) became the rollback target and was kept by prune as one while real releases went.
void test('a taken-over root: a directory whose name no release id can have (lost+found) is no release: not listed, never a target, never pruned', async (t) => {
  const dir = tempDir(t);
  const root = foreignRoot(dir, ['20240101120000', '20240201120000', '20240301120000', 'lost+found'], '20240301120000');
  const list = await runCli(['releases', root, '--json']);
  assert.deepEqual(jsonOf<{ releases: { id: string }[] }>(list).releases.map((x) => x.id), ['20240301120000', '20240201120000', '20240101120000']);
  const human = await runCli(['releases', root]);
  assert.doesNotMatch(human.stdout, /lost/);
  assert.match(human.stderr, /^warning: releases\/lost\+found is ignored, it is no release: no release id has such a name/m);
  const plan = jsonOf<{ kept: { id: string; rule: string; reason: string }[]; removed: { id: string }[] }>(await runCli(['prune', root, '--keep', '1', '--dry-run', '--json']));
  assert.deepEqual(plan.removed.map((x) => x.id), ['20240101120000']);
  assert.match(plan.kept.find((k) => k.id === 'lost+found')?.reason ?? '', /not a release/);
  const back = await runCli(['rollback', root]);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), '20240201120000');
  const again = await runCli(['rollback', root]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(currentId(root), '20240101120000');
  assert.equal((await runCli(['rollback', root])).code, 2);
  assert.equal((await runCli(['prune', root, '--keep', '1'])).code, 0);
  assert.ok(releaseIds(root).includes('lost+found'));
});

// The old tool had rolled back from 0301 to 0201: a plain rollback went FORWARD to 0301, and
// prune removed 0101 (the real way back) and kept 0301.
void test('a taken-over root with current on an older release: rollback goes back (never forward to what the old tool rolled back from), prune keeps the way back', async (t) => {
  const dir = tempDir(t);
  const root = foreignRoot(dir, ['20240101120000', '20240201120000', '20240301120000'], '20240201120000');
  const plan = jsonOf<{ kept: { id: string; rule: string }[]; removed: { id: string }[] }>(await runCli(['prune', root, '--keep', '2', '--dry-run', '--json']));
  assert.deepEqual(plan.removed.map((x) => x.id), ['20240301120000']);
  assert.deepEqual(plan.kept.map((k) => [k.id, k.rule]), [['20240201120000', 'current'], ['20240101120000', 'rollback-target']]);
  const back = await runCli(['rollback', root, '--dry-run', '--json']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(jsonOf<{ release: string }>(back).release, '20240101120000');
  const real = await runCli(['rollback', root]);
  assert.equal(real.code, 0, real.stderr);
  assert.equal(currentId(root), '20240101120000');
  // Reachable by name all the same.
  const to = await runCli(['rollback', root, '--to', '20240301120000']);
  assert.equal(to.code, 0, to.stderr);
  assert.equal(currentId(root), '20240301120000');
});

// A folder with a database dump among the timestamp releases of a taken-over root became the
// newest "previous", and a plain rollback served it.
void test('a taken-over root of timestamp releases: a folder with another name and no record is never served by a plain rollback, and prune leaves it', async (t) => {
  const dir = tempDir(t);
  const root = foreignRoot(dir, ['20240101120000', '20240201120000'], '20240201120000');
  writeTree(path.join(root, 'releases', 'backup'), { 'dump.sql': 'INSERT 1;\n' });
  const roles = jsonOf<{ releases: { id: string; role: string }[] }>(await runCli(['releases', root, '--json'])).releases;
  assert.equal(roles.find((x) => x.role === 'previous')?.id, '20240101120000');
  const plan = jsonOf<{ kept: { id: string; rule: string }[] }>(await runCli(['prune', root, '--keep', '1', '--dry-run', '--json']));
  assert.deepEqual(plan.kept.filter((k) => k.id === 'backup').map((k) => k.rule), ['never-served']);
  const back = await runCli(['rollback', root]);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), '20240101120000');
  assert.equal((await runCli(['rollback', root])).code, 2);
  assert.equal(fs.readFileSync(path.join(root, 'releases', 'backup', 'dump.sql'), 'utf8'), 'INSERT 1;\n');
});
