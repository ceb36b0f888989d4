// deploy --dry-run: the plan a deploy would follow, and a root that is byte for byte as it was.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, snapshot, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { requireRoot, requireTools } from '../harness/faults.ts';

interface PlanJson {
  release: string;
  path: string;
  previous: string | null;
  files: number;
  bytes: number;
  dirs: number;
  strategy: string;
  shared: { path: string; link: string; target: string; create: boolean; replaces: boolean }[];
  hooks: { beforeSwitch: string[]; afterSwitch: string[]; timeoutMs?: number };
  healthCheck: { command?: string; url?: string } | null;
  prune: { keep: number; remove: { id: string; reason: string }[]; kept: { id: string; reason: string }[] } | null;
  reload: { units: string[]; phpFpm: string[]; timeoutMs: number } | null;
  stale: { mode: string; waitMs: number };
  notes: string[];
  error?: { code: string; message: string };
}

function setup(t: { after(fn: () => void): void }): { dir: string; src: string; root: string } {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hello\n', 'css/site.css': 'body{}\n', 'js/app.js': '1;\n' });
  return { dir, src, root: path.join(dir, 'root') };
}

void test('a dry run into a root that does not exist creates nothing, not even the root', async (t) => {
  const { dir, src, root } = setup(t);
  const before = snapshot(dir);
  const r = await runCli(['deploy', src, root, '--dry-run', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const plan = jsonOf<PlanJson>(r);
  assert.match(plan.release, /^\d{14}$/);
  assert.equal(plan.path, path.join(root, 'releases', plan.release));
  assert.equal(plan.previous, null);
  assert.equal(plan.files, 3);
  assert.equal(plan.dirs, 2);
  assert.equal(plan.bytes, 'hello\n'.length + 'body{}\n'.length + '1;\n'.length);
  assert.equal(plan.strategy, 'auto');
  assert.equal((plan as { dryRun?: boolean }).dryRun, true);
  assert.equal(fs.existsSync(root), false, 'the dry run created the root');
  assert.deepEqual(snapshot(dir), before);
});

void test('a dry run lists release id, contents, shared links, hooks, health check and prune, and changes nothing', async (t) => {
  const { src, root } = setup(t);
  for (const id of ['r1', 'r2', 'r3', 'r4']) {
    const r = await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
  }
  writeTree(path.join(root, 'shared'), { '.env': 'A=1\n' });
  const args = [
    'deploy', src, root, '--dry-run',
    '--keep', '2',
    '--shared', '.env', '--shared-dir', 'storage', '--shared-create',
    '--before-switch', 'npm ci', '--after-switch', 'touch restart.txt',
    '--health-url', 'http://127.0.0.1:9/healthz',
  ];
  const before = snapshot(root);
  const r = await runCli([...args, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(snapshot(root), before, 'the dry run changed the root');
  assert.equal(fs.existsSync(path.join(root, '.deploy.lock')), false);
  assert.equal(fs.existsSync(path.join(root, 'shared/storage')), false, '--shared-create made a directory during a dry run');

  const plan = jsonOf<PlanJson>(r);
  assert.equal(plan.previous, 'r4');
  assert.deepEqual(plan.shared.map((s) => [s.path, s.link, s.target, s.create]), [
    ['.env', `releases/${plan.release}/.env`, '../../shared/.env', false],
    ['storage', `releases/${plan.release}/storage`, '../../shared/storage', true],
  ]);
  assert.deepEqual(plan.hooks.beforeSwitch, ['npm ci']);
  assert.deepEqual(plan.hooks.afterSwitch, ['touch restart.txt']);
  assert.equal(plan.healthCheck?.url, 'http://127.0.0.1:9/healthz');
  // After the switch the new release is current and r4 the rollback target: r1..r3 would go.
  assert.deepEqual(plan.prune?.remove.map((x) => x.id), ['r3', 'r2', 'r1']);
  assert.deepEqual(plan.prune?.kept.map((k) => [k.id, k.reason]), [[plan.release, 'current'], ['r4', 'rollback target']]);

  const human = await runCli(args);
  assert.equal(human.code, 0, human.stderr);
  assert.deepEqual(snapshot(root), before);
  for (const line of [
    /^dry run: nothing was changed$/m,
    /^release: {2}\d{14} /m,
    /^contents: 3 files, 2 directories, 0 symlinks, 16 B; strategy auto$/m,
    /^previous: r4$/m,
    /^shared: {3}releases\/\d{14}\/storage -> \.\.\/\.\.\/shared\/storage \(missing: would be made an empty directory\)$/m,
    /^hook: {5}before switch: npm ci$/m,
    /^hook: {5}after switch: touch restart.txt$/m,
    /^health: {3}GET http:\/\/127\.0\.0\.1:9\/healthz$/m,
    /^prune: {4}keep 2: would remove 3 releases$/m,
    /remove r1 {2}older than the newest 2 good releases/,
  ]) assert.match(human.stdout, line);
  // Nothing was deployed either.
  assert.deepEqual(releaseIds(root), ['r1', 'r2', 'r3', 'r4']);
  assert.equal(currentId(root), 'r4');
});

void test('a dry run shows the reloads and the stale-process policy the deploy would apply after its switch', async (t) => {
  const { dir, src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'r1', '--no-fsync', '--quiet'])).code, 0);
  // A stand-in systemctl that knows every unit (containers run no systemd): the dry run checks the unit as the deploy does.
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'systemctl'), '#!/bin/sh\n[ "$1" = show ] && echo loaded\nexit 0\n', { mode: 0o755 });
  const env = { PATH: `${bin}:${process.env.PATH ?? ''}` };
  const args = ['deploy', src, root, '--dry-run', '--reload-unit', 'app.service', '--reload-timeout', '20', '--stale', 'fail', '--stale-wait', '3'];
  const before = snapshot(root);
  const j = jsonOf<PlanJson>(await runCli([...args, '--json'], { env }));
  assert.deepEqual(j.reload, { units: ['app.service'], phpFpm: [], timeoutMs: 20_000 });
  assert.deepEqual(j.stale, { mode: 'fail', waitMs: 3000 });
  const human = await runCli(args, { env });
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^reload: {3}unit app\.service, each within 20 s$/m);
  assert.match(human.stdout, /^stale: {4}fail: processes still on r1 after 3 s fail the deploy \(exit 6; the switch stands\)$/m);
  // The defaults: nothing to reload, processes named.
  const plain = await runCli(['deploy', src, root, '--dry-run', '--json']);
  assert.deepEqual([jsonOf<PlanJson>(plain).reload, jsonOf<PlanJson>(plain).stale], [null, { mode: 'warn', waitMs: 0 }]);
  assert.deepEqual(snapshot(root), before);
});

void test('a dry run fails like the deploy would, with exit 2 and nothing changed', async (t) => {
  const { dir, src, root } = setup(t);
  const first = await runCli(['deploy', src, root, '--release-id', 'r1', '--no-fsync', '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  const before = snapshot(root);
  const cases: [string[], string][] = [
    [['deploy', src, root, '--dry-run', '--shared', '.env'], 'SHARED_MISSING'],
    [['deploy', src, root, '--dry-run', '--shared', '../x'], 'INVALID_SHARED_PATH'],
    [['deploy', src, root, '--dry-run', '--release-id', 'r1'], 'RELEASE_EXISTS'],
    [['deploy', path.join(dir, 'missing'), root, '--dry-run'], 'INVALID_SOURCE'],
  ];
  for (const [args, code] of cases) {
    const r = await runCli([...args, '--json']);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.equal(jsonOf<PlanJson>(r).error?.code, code);
  }
  assert.deepEqual(snapshot(root), before);
});

void test('a dry run notes a held lock and an interrupted deploy instead of touching them', async (t) => {
  const { src, root } = setup(t);
  const first = await runCli(['deploy', src, root, '--release-id', 'r1', '--no-fsync', '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  // A crash after the lock was taken leaves the lock (its owner dead) and a journal.
  const crashed = await runCli(['deploy', src, root, '--release-id', 'r2', '--no-fsync'], { failpoints: 'copy-done=crash' });
  assert.equal(crashed.signal, 'SIGKILL');
  const before = snapshot(root);
  const r = await runCli(['deploy', src, root, '--dry-run', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const notes = jsonOf<PlanJson>(r).notes.join('\n');
  assert.match(notes, /locked by pid \d+/);
  assert.match(notes, /stale/);
  assert.match(notes, /journal/);
  assert.match(notes, /an interrupted operation left a journal/);
  assert.deepEqual(snapshot(root), before, 'the dry run recovered or unlocked');
});

// The dry runs of rollback and prune said nothing of a held lock or a journal, where the
// commands themselves then exit 3 or recover first; each now warns (stderr) and lists it (JSON notes).
void test('rollback --dry-run and prune --dry-run note a held lock and a journal, stale or running', async (t) => {
  const { src, root } = setup(t);
  for (const id of ['r1', 'r2']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet'])).code, 0);
  const crashed = await runCli(['deploy', src, root, '--release-id', 'r3', '--no-fsync'], { failpoints: 'copy-done=crash' });
  assert.equal(crashed.signal, 'SIGKILL');
  const before = snapshot(root);
  for (const command of ['rollback', 'prune'] as const) {
    const human = await runCli([command, root, '--dry-run']);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stderr, new RegExp(`^warning: the root is locked by pid \\d+ .*\\(stale: .*\\): the ${command} would take it over$`, 'm'), command);
    assert.match(human.stderr, new RegExp(`^warning: an interrupted operation left a journal: the ${command} recovers it first$`, 'm'), command);
    const json = await runCli([command, root, '--dry-run', '--json']);
    assert.equal(json.code, 0, json.stderr);
    // The lock and the journal; the recovery changes no release (r3 was still being copied in .tmp/).
    assert.equal(jsonOf<{ notes: string[] }>(json).notes.length, 2, json.stdout);
  }
  assert.deepEqual(snapshot(root), before, 'a dry run recovered or unlocked');
  assert.equal((await runCli(['status', root, '--quiet'])).code, 0);

  // A deploy running now: its lock is held, its journal is its own.
  const running = spawnCli(['deploy', src, root, '--release-id', 'r4', '--no-fsync', '--before-switch', 'sleep 4']);
  for (let i = 0; i < 200 && !fs.existsSync(path.join(root, 'releases', 'r4')); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(fs.existsSync(path.join(root, 'releases', 'r4')), 'the deploy never reached its hook');
  for (const command of ['rollback', 'prune'] as const) {
    const r = await runCli([command, root, '--dry-run', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const notes = jsonOf<{ notes: string[] }>(r).notes.join('\n');
    assert.match(notes, new RegExp(`locked by pid \\d+ .*\\(held: .*\\): the ${command} would exit 3 \\(or wait for it, with --wait\\)`), command);
    const waiting = jsonOf<{ notes: string[] }>(await runCli([command, root, '--dry-run', '--wait', '30', '--json'])).notes.join('\n');
    assert.match(waiting, new RegExp(`: the ${command} would wait for it up to 30 s \\(--wait\\), then exit 3`), command);
    assert.match(notes, /an operation is running/, command);
    assert.doesNotMatch(notes, /interrupted/, command);
  }
  assert.equal((await running.done).code, 0);
});

// A release id taken by a symlink to nothing (a release moved to a volume not mounted now) passed
// every check, the copy ran, and the final rename failed with ENOTDIR (exit 1); the dry run said
// nothing. An empty directory under the id got a hint to roll back to it, which rollback refuses.
void test('a release id taken by a dangling symlink or an empty directory is refused before the copy, dry run alike', async (t) => {
  const { src, root } = setup(t);
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'r1', '--no-fsync', '--quiet'])).code, 0);
  fs.symlinkSync('/nonexistent/volume/v2', path.join(root, 'releases', 'v2'));
  fs.mkdirSync(path.join(root, 'releases', 'v3'));
  const before = snapshot(root);
  for (const dry of [['--dry-run'], []]) {
    const dangling = await runCli(['deploy', src, root, '--release-id', 'v2', ...dry, '--json']);
    assert.equal(dangling.code, 2, dangling.stderr);
    const error = jsonOf<PlanJson>(dangling).error;
    assert.equal(error?.code, 'RELEASE_EXISTS');
    assert.match(error?.message ?? '', /releases\/v2 is taken by a symlink to "\/nonexistent\/volume\/v2", which does not exist \(a volume not mounted\?\), not a release directory$/);
    const empty = await runCli(['deploy', src, root, '--release-id', 'v3', ...dry]);
    assert.equal(empty.code, 2, empty.stderr);
    assert.match(empty.stderr, /^error: \S+releases\/v3 is taken by an empty directory, not a release$/m);
    assert.doesNotMatch(empty.stderr, /rollback/);
  }
  assert.deepEqual(snapshot(root), before);
  assert.equal(currentId(root), 'r1');
});

void test('a dry run during a running deploy says it runs (not interrupted) and keeps its release as being deployed', async (t) => {
  const { src, root } = setup(t);
  for (const id of ['r1', 'r2']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet'])).code, 0);
  const running = spawnCli(['deploy', src, root, '--release-id', 'r3', '--no-fsync', '--before-switch', 'sleep 4']);
  for (let i = 0; i < 200 && !fs.existsSync(path.join(root, 'releases', 'r3')); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(fs.existsSync(path.join(root, 'releases', 'r3')), 'the deploy never reached its hook');
  const r = await runCli(['deploy', src, root, '--dry-run', '--keep', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const plan = jsonOf<PlanJson>(r);
  const notes = plan.notes.join('\n');
  assert.match(notes, /an operation is running/);
  assert.doesNotMatch(notes, /interrupted/);
  assert.deepEqual(plan.prune?.kept.map((k) => [k.id, k.reason]).filter(([id]) => id === 'r3'), [['r3', 'being deployed']]);
  // The rollback target is the live release, never the one still being written.
  assert.deepEqual(plan.prune?.kept.find((k) => k.reason === 'rollback target')?.id, 'r2');
  assert.equal((await running.done).code, 0);
});

// A dry run on a read-only mount planned the deploy, rollback and prune with exit 0 and no word;
// the commands themselves then failed. The plan now says this user cannot write there.
void test('dry runs on a read-only root say the command itself would fail there', async (t) => {
  requireRoot();
  requireTools('mount', 'umount');
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v\n' });
  const root = path.join(dir, 'root');
  for (const id of ['r1', 'r2', 'r3']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--quiet', '--keep', '0'])).code, 0);
  const writable = await runCli(['deploy', src, root, '--dry-run']);
  assert.doesNotMatch(writable.stdout + writable.stderr, /cannot write/);
  execFileSync('mount', ['--bind', root, root]);
  try {
    execFileSync('mount', ['-o', 'remount,bind,ro', root]);
    const deploy = await runCli(['deploy', src, root, '--dry-run']);
    assert.equal(deploy.code, 0, deploy.stderr);
    // The same label as rollback's and prune's (deploy said `note:` in its plan, they `warning:`), said once.
    assert.match(deploy.stderr, /^warning: this user cannot write \S+root \(a read-only filesystem\): the command itself would fail there$/m);
    assert.doesNotMatch(deploy.stdout, /cannot write/);
    const json = await runCli(['deploy', src, root, '--dry-run', '--json']);
    assert.match((JSON.parse(json.stdout) as { warnings: string[] }).warnings.join('\n'), /this user cannot write/);
    const rollback = await runCli(['rollback', root, '--dry-run']);
    assert.equal(rollback.code, 0, rollback.stderr);
    assert.match(rollback.stderr, /^warning: this user cannot write \S+root \(a read-only filesystem\)/m);
    const prune = await runCli(['prune', root, '--dry-run', '--keep', '1']);
    assert.equal(prune.code, 0, prune.stderr);
    assert.match(prune.stderr, /^warning: this user cannot write \S+root \(a read-only filesystem\)/m);
  } finally {
    execFileSync('umount', [root]);
  }
});

// The dry runs planned from the root as it stood before the recovery their commands make first: a
// deploy killed after its switch (its release not yet recorded as live) made the plan keep the
// release before it as the rollback target, which the deploy then pruned; one killed before its
// switch was "kept: being deployed", and the deploy removed it.
void test('after a crash, each dry run plans from the root as its command will find it once recovered, and says what that recovery does', async (t) => {
  for (const [failpoint, recovery] of [['after-switch=crash', /the deploy would recover first: finish recording deploy of x \(it had switched\)/], ['before-switch-hook=crash', /the deploy would recover first: remove release x \(interrupted before the switch\)/]] as const) {
    const { src, root } = setup(t);
    for (const id of ['r1', 'r2']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet', '--keep', '0'])).code, 0);
    const crashed = await runCli(['deploy', src, root, '--release-id', 'x', '--no-fsync', '--keep', '0', '--before-switch', 'true'], { failpoints: failpoint });
    assert.equal(crashed.signal, 'SIGKILL', failpoint);
    const before = snapshot(root);
    const dry = await runCli(['deploy', src, root, '--release-id', 'n', '--keep', '1', '--no-fsync', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const plan = jsonOf<PlanJson>(dry);
    assert.match(plan.notes.join('\n'), recovery, failpoint);
    assert.ok(!plan.prune?.kept.some((k) => k.reason === 'being deployed'), `${failpoint}: ${JSON.stringify(plan.prune)}`);
    const rollbackPlan = jsonOf<{ release: string }>(await runCli(['rollback', root, '--dry-run', '--json']));
    const prunePlan = jsonOf<{ removed: { id: string }[] }>(await runCli(['prune', root, '--keep', '1', '--dry-run', '--json']));
    assert.deepEqual(snapshot(root), before, `${failpoint}: a dry run changed the root`);
    // The commands themselves, each from a copy of the crashed root: they do what their plans said.
    const copy = (): string => {
      const to = `${root}-${Math.random().toString(36).slice(2)}`;
      execFileSync('cp', ['-a', root, to]);
      return to;
    };
    const deployed = copy();
    const before2 = releaseIds(deployed);
    assert.equal((await runCli(['deploy', src, deployed, '--release-id', 'n', '--keep', '1', '--no-fsync', '--quiet'])).code, 0);
    // What recovery removes (a release that never switched) is not prune's.
    const recovered = failpoint.startsWith('before-switch') ? ['x'] : [];
    const gone = before2.filter((id) => !releaseIds(deployed).includes(id) && !recovered.includes(id));
    assert.deepEqual(gone.sort(), (plan.prune?.remove ?? []).map((r) => r.id).sort(), `${failpoint}: the deploy pruned other releases than its plan`);
    const rolled = copy();
    const back = jsonOf<{ release: string }>(await runCli(['rollback', rolled, '--json']));
    assert.equal(back.release, rollbackPlan.release, `${failpoint}: rollback`);
    const pruned = copy();
    const before3 = releaseIds(pruned);
    assert.equal((await runCli(['prune', pruned, '--keep', '1', '--quiet'])).code, 0);
    assert.deepEqual(before3.filter((id) => !releaseIds(pruned).includes(id) && !recovered.includes(id)).sort(), prunePlan.removed.map((r) => r.id).sort(), `${failpoint}: prune`);
  }
});

// The deploy says that a hardlink deploy with before-switch hooks links nothing; its dry run said
// `strategy hardlink` and no note.
void test('a hardlink dry run with before-switch hooks notes that every file would be copied, as the deploy then says', async (t) => {
  const { src, root } = setup(t);
  const first = await runCli(['deploy', src, root, '--no-fsync', '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  const live = currentId(root);
  const before = snapshot(root);
  const dry = await runCli(['deploy', src, root, '--strategy', 'hardlink', '--before-switch', 'true', '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  const notes = jsonOf<{ notes: string[] }>(dry).notes;
  assert.ok(notes.some((n) => n.startsWith(`hardlink: before-switch hooks would run in the new release, so no file would be linked from release ${live} `)), notes.join('\n'));
  assert.deepEqual(snapshot(root), before);
  // Without hooks there is nothing to say; the deploy itself says it with them.
  const plain = await runCli(['deploy', src, root, '--strategy', 'hardlink', '--dry-run', '--json']);
  assert.ok(!jsonOf<{ notes: string[] }>(plain).notes.some((n) => n.startsWith('hardlink:')));
  const real = await runCli(['deploy', src, root, '--strategy', 'hardlink', '--before-switch', 'true', '--no-fsync']);
  assert.equal(real.code, 0, real.stderr);
  assert.match(real.stdout + real.stderr, new RegExp(`hardlink: before-switch hooks will run in the new release, so no file is linked from release ${live} `));
});
