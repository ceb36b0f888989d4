// Prune through the CLI: what stays (current, rollback target, releases in use, the newest good
// ones), a row of failed deploys that cannot push out the last good release, and crashes midway.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import { asUser, requireRoot, requireTools, runWrapped } from '../harness/faults.ts';
import { currentId, jsonOf, releaseIds, runCli, snapshot, spawnCli, tempDir, writeTree } from '../harness/cli.ts';

interface PruneJson {
  dryRun: boolean;
  keep: number;
  current: string | null;
  removed: { id: string; rule: string; reason: string }[];
  kept: { id: string; rule: string; reason: string }[];
  inUseCheck: string;
  error?: { code: string; message: string };
}

function setup(t: { after(fn: () => void): void }): { dir: string; src: string; root: string } {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v0\n', 'assets/app.js': 'x'.repeat(1000) });
  return { dir, src, root: path.join(dir, 'root') };
}

async function deployIds(src: string, root: string, ids: string[], extra: string[] = []): Promise<void> {
  for (const id of ids) {
    fs.writeFileSync(path.join(src, 'index.html'), `${id}\n`);
    // --keep 0: the default keep of 5 would prune while the scene is being set.
    const r = await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet', '--keep', '0', ...extra]);
    assert.equal(r.code, 0, r.stderr);
  }
}

function markStatus(root: string, id: string, status: string): void {
  const file = path.join(root, '.atomic-deploy/releases', `${id}.json`);
  const record = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(file, JSON.stringify({ ...record, status }));
}

/** What `.tmp/` holds, less the tombstones of stale locks taken over (kept on purpose for a while). */
function tmpEntries(root: string): string[] {
  const dir = path.join(root, '.tmp');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => !n.startsWith('stale-lock.')).sort() : [];
}

/** Every release left under releases/ is whole: its index.html says its own id. */
function assertReleasesWhole(root: string): void {
  for (const id of releaseIds(root)) {
    assert.equal(fs.readFileSync(path.join(root, 'releases', id, 'index.html'), 'utf8'), `${id}\n`, `release ${id} is damaged`);
    assert.equal(fs.readFileSync(path.join(root, 'releases', id, 'assets/app.js'), 'utf8').length, 1000);
  }
}

void test('prune keeps the newest good releases, current and the rollback target; --dry-run changes nothing', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3', 'r4', 'r5']);

  const before = snapshot(root);
  const dry = await runCli(['prune', root, '--keep', '2', '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  const plan = jsonOf<PruneJson>(dry);
  assert.equal(plan.dryRun, true);
  assert.deepEqual(plan.removed.map((r) => r.id), ['r3', 'r2', 'r1']);
  assert.deepEqual(plan.kept.map((k) => [k.id, k.rule]), [['r5', 'current'], ['r4', 'rollback-target']]);
  assert.deepEqual(snapshot(root), before, 'a dry run changed the root');

  const human = await runCli(['prune', root, '--keep', '2', '--dry-run']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /would remove 3 releases, keep 2/);
  assert.match(human.stdout, /remove r1 {2}older than the newest 2 good releases/);
  assert.match(human.stdout, /keep {4}r4 {2}rollback target/);

  const real = await runCli(['prune', root, '--keep', '2', '--json']);
  assert.equal(real.code, 0, real.stderr);
  assert.deepEqual(jsonOf<PruneJson>(real).removed.map((r) => r.id), ['r3', 'r2', 'r1']);
  assert.deepEqual(releaseIds(root), ['r4', 'r5']);
  assert.equal(currentId(root), 'r5');
  assert.deepEqual(tmpEntries(root), [], 'trash left behind');
  assertReleasesWhole(root);
  // The release log keeps pruned releases as history.
  const record = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy/releases/r1.json'), 'utf8')) as { prunedAt?: string };
  assert.ok(record.prunedAt, 'pruned release not marked in the log');

  // --keep 0 turns pruning off: nothing goes.
  const zero = await runCli(['prune', root, '--keep', '0', '--json']);
  assert.equal(zero.code, 0, zero.stderr);
  assert.deepEqual(jsonOf<PruneJson>(zero).removed, []);
  assert.deepEqual(releaseIds(root), ['r4', 'r5']);
});

void test('after a rollback, the release rolled back to and its own rollback target stay', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3', 'r4']);
  const back = await runCli(['rollback', root, '--to', 'r2', '--quiet']);
  assert.equal(back.code, 0, back.stderr);
  const r = await runCli(['prune', root, '--keep', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const result = jsonOf<PruneJson>(r);
  assert.deepEqual(result.kept.map((k) => [k.id, k.rule]), [['r3', 'newest'], ['r2', 'current'], ['r1', 'rollback-target']]);
  assert.deepEqual(result.removed.map((x) => [x.id, x.rule]), [['r4', 'rolled-back']]);
  assert.deepEqual(releaseIds(root), ['r1', 'r2', 'r3']);
});

void test('rollback --to an older release, then a deploy with --keep 1: the release rolled back to stays, as live before', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3', 'r4', 'r5']);
  assert.equal((await runCli(['rollback', root, '--to', 'r2', '--quiet'])).code, 0);
  const r = await runCli(['deploy', src, root, '--release-id', 'r6', '--keep', '1', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  // r4 is the rollback target by order (r5 was rolled back); r2 was live a moment ago.
  assert.deepEqual(releaseIds(root), ['r2', 'r4', 'r6']);
  const dry = await runCli(['prune', root, '--keep', '1', '--dry-run', '--json']);
  assert.deepEqual(jsonOf<PruneJson>(dry).kept.map((k) => [k.id, k.rule]), [['r6', 'current'], ['r4', 'rollback-target'], ['r2', 'live-before']]);
});

void test('a first release whose health check failed stayed live; the next deploy keeps it as live before, and rollback --to reaches it', async (t) => {
  const { src, root } = setup(t);
  // Port 1 refuses: the check fails, and with no earlier release there is nothing to roll back to.
  const first = await runCli(['deploy', src, root, '--release-id', 'r1', '--no-fsync', '--health-url', 'http://127.0.0.1:1/', '--health-timeout', '1']);
  assert.equal(first.code, 1, first.stderr);
  assert.equal(currentId(root), 'r1');
  fs.writeFileSync(path.join(src, 'index.html'), 'r2\n');
  const second = await runCli(['deploy', src, root, '--release-id', 'r2', '--no-fsync', '--json']);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(releaseIds(root), ['r1', 'r2'], 'the release live until this deploy was pruned');
  const dry = await runCli(['prune', root, '--keep', '1', '--dry-run', '--json']);
  assert.deepEqual(jsonOf<PruneJson>(dry).kept.map((k) => [k.id, k.rule]), [['r2', 'current'], ['r1', 'live-before']]);
  const back = await runCli(['rollback', root, '--to', 'r1', '--quiet']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current/index.html'), 'utf8'), 'v0\n');
});

void test('a release that cannot be moved (chattr +i) stays and is named; the others are pruned and said to be; exit 1', async (t) => {
  requireRoot();
  requireTools('chattr');
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3', 'r4']);
  const stuck = path.join(root, 'releases', 'r2');
  execFileSync('chattr', ['+i', stuck]);
  try {
    await pruneAroundStuck(src, root);
  } finally {
    execFileSync('chattr', ['-i', stuck]);
  }
});

async function pruneAroundStuck(src: string, root: string): Promise<void> {
  const planned = jsonOf<PruneJson>(await runCli(['prune', root, '--keep', '1', '--dry-run', '--json'])).removed;
  const r = await runCli(['prune', root, '--keep', '1', '--json']);
  assert.equal(r.code, 1, r.stderr);
  const error = (jsonOf<PruneJson>(r).error ?? {}) as { code?: string; message?: string; hint?: string; removed?: PruneJson['removed']; failed?: { id: string; message: string }[] };
  assert.match(error.message ?? '', /^pruned r1; could not prune r2: permission denied while pruning release r2: EPERM/);
  assert.match(error.hint ?? '', /immutable or append-only attribute/);
  // The objects a prune that succeeds gives (it gave ids alone here): { id, rule, reason, files, bytes }.
  assert.deepEqual(error.removed, planned.filter((x) => x.id === 'r1'));
  assert.deepEqual(Object.keys(error.removed?.[0] ?? {}), ['id', 'rule', 'reason', 'files', 'bytes']);
  assert.deepEqual(error.failed?.map((f) => f.id), ['r2']);
  assert.deepEqual(releaseIds(root), ['r2', 'r3', 'r4']);
  const record = (id: string): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy/releases', `${id}.json`), 'utf8')) as Record<string, unknown>;
  assert.equal(typeof record('r1').prunedAt, 'string');
  assert.equal(record('r2').prunedAt, undefined);
  // The pruned tree went after the lock, as always; nothing of it waits in .tmp/.
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')).filter((n) => n.startsWith('trash.')), []);

  // A deploy that prunes says the same in a warning and stands.
  fs.writeFileSync(path.join(src, 'index.html'), 'r5\n');
  const d = await runCli(['deploy', src, root, '--release-id', 'r5', '--keep', '1', '--no-fsync']);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stderr, /^warning: permission denied while pruning release r2: .*; it stays, the deploy stands$/m);
  assert.deepEqual(releaseIds(root), ['r2', 'r4', 'r5']);
}

void test('a row of failed deploys does not push out the last good releases', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['good1', 'good2', 'good3', 'bad1', 'bad2', 'bad3', 'bad4']);
  // As after health checks that failed: each bad one marked failed, current back on good3.
  for (const id of ['bad1', 'bad2', 'bad3', 'bad4']) markStatus(root, id, 'failed');
  const back = await runCli(['rollback', root, '--to', 'good3', '--quiet']);
  assert.equal(back.code, 0, back.stderr);

  const r = await runCli(['prune', root, '--keep', '2', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const result = jsonOf<PruneJson>(r);
  assert.deepEqual(releaseIds(root), ['good2', 'good3'], 'failed releases counted towards keep');
  assert.deepEqual(result.removed.map((x) => x.id).sort(), ['bad1', 'bad2', 'bad3', 'bad4', 'good1']);
  assert.ok(result.removed.filter((x) => x.id.startsWith('bad')).every((x) => /(failed|rolled-back) \(does not count towards keep\)/.test(x.reason)));
});

void test('a release a running process uses stays, unless --force', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3', 'r4']);
  const holder = spawn('sleep', ['30'], { cwd: path.join(root, 'releases/r1'), stdio: 'ignore' });
  t.after(() => holder.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    holder.once('spawn', resolve);
    holder.once('error', reject);
  });

  const kept = await runCli(['prune', root, '--keep', '1', '--json']);
  assert.equal(kept.code, 0, kept.stderr);
  const result = jsonOf<PruneJson>(kept);
  assert.equal(result.inUseCheck, 'proc');
  const r1 = result.kept.find((k) => k.id === 'r1');
  assert.ok(r1, 'r1 was removed while a process had its cwd there');
  assert.equal(r1.rule, 'in-use');
  assert.match(r1.reason, new RegExp(`in use by pid ${holder.pid} \\(sleep: working directory\\)`));
  assert.deepEqual(releaseIds(root), ['r1', 'r3', 'r4']);

  const forced = await runCli(['prune', root, '--keep', '1', '--force', '--json']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.deepEqual(jsonOf<PruneJson>(forced).removed.map((x) => x.id), ['r1']);
  assert.deepEqual(releaseIds(root), ['r3', 'r4']);
});

void test('an open file under a release keeps it too', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3']);
  // `tail -f` holds the file open; its cwd stays outside the release.
  const holder = spawn('tail', ['-f', path.join(root, 'releases/r1/index.html')], { cwd: '/', stdio: 'ignore' });
  t.after(() => holder.kill('SIGKILL'));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const r = await runCli(['prune', root, '--keep', '1', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(jsonOf<PruneJson>(r).kept.find((k) => k.id === 'r1')?.reason ?? '', /\(tail: open file\)/);
});

for (const point of ['prune-rename', 'prune-delete'] as const) {
  void test(`a crash at ${point} leaves no half-deleted release under releases/, and the next command cleans up`, async (t) => {
    const { src, root } = setup(t);
    await deployIds(src, root, ['r1', 'r2', 'r3', 'r4']);
    const crashed = await runCli(['prune', root, '--keep', '1'], { failpoints: `${point}=crash` });
    assert.equal(crashed.signal, 'SIGKILL', `expected a crash, got code ${crashed.code}: ${crashed.stderr}`);
    if (point === 'prune-rename') {
      // The oldest release left releases/ in one rename; the next one was never touched.
      assert.deepEqual(releaseIds(root), ['r2', 'r3', 'r4']);
    } else {
      // Both left releases/ under the lock; the crash came while deleting the first one's tree.
      assert.deepEqual(releaseIds(root), ['r3', 'r4']);
      assert.ok(tmpEntries(root).some((n) => n.startsWith('trash.r2.')));
    }
    assertReleasesWhole(root);
    assert.ok(tmpEntries(root).some((n) => n.startsWith('trash.r1.')), `no trash in .tmp: ${tmpEntries(root).join(', ')}`);
    assert.equal(currentId(root), 'r4');

    const status = await runCli(['status', root, '--json']);
    assert.equal(status.code, 0, status.stderr);
    assert.ok(!tmpEntries(root).some((n) => n.startsWith('trash.')), 'status did not clean up the trash');

    const again = await runCli(['prune', root, '--keep', '1', '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(releaseIds(root), ['r3', 'r4']);
    assert.deepEqual(tmpEntries(root), []);
    assertReleasesWhole(root);
  });
}

void test('deploy --keep prunes after the switch, never before: a deploy that fails prunes nothing', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3']);
  const failed = await runCli(['deploy', src, root, '--release-id', 'r4', '--keep', '1', '--before-switch', 'exit 3', '--no-fsync', '--json']);
  assert.notEqual(failed.code, 0);
  assert.deepEqual(releaseIds(root), ['r1', 'r2', 'r3'], 'a failed deploy pruned');
  assert.equal(currentId(root), 'r3');

  fs.writeFileSync(path.join(src, 'index.html'), 'r5\n');
  const ok = await runCli(['deploy', src, root, '--release-id', 'r5', '--keep', '1', '--no-fsync', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  const result = jsonOf<{ release: string; prune: PruneJson }>(ok);
  assert.equal(result.prune.current, 'r5');
  assert.deepEqual(result.prune.removed.map((x) => x.id), ['r2', 'r1']);
  assert.deepEqual(releaseIds(root), ['r3', 'r5']);
  assert.deepEqual(tmpEntries(root), []);

  const human = await runCli(['deploy', src, root, '--release-id', 'r6', '--keep', '1', '--no-fsync']);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^deployed r6: 2 files \(\d+ linked, \d+ copied\), .* in .*; previous: r5; pruned 1 release \(r3\)$/m);
});

void test('deleting what deploy --keep pruned does not hold the lock: the next deploy runs meanwhile', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3']);
  fs.writeFileSync(path.join(src, 'index.html'), 'r4\n');
  // The deleter stalls right after its first file; by then the switch and the renames are done.
  const slow = spawnCli(['deploy', src, root, '--release-id', 'r4', '--keep', '1', '--no-fsync', '--json'], { failpoints: 'prune-delete=sleep:4000' });
  const deadline = Date.now() + 20_000;
  const deleting = (): boolean => tmpEntries(root).some((n) => n.startsWith('trash.')) && !fs.existsSync(path.join(root, '.deploy.lock'));
  while (!deleting() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(deleting(), 'the first deploy never reached its delete phase');
  assert.equal(currentId(root), 'r4');
  assert.deepEqual(releaseIds(root), ['r3', 'r4']);

  fs.writeFileSync(path.join(src, 'index.html'), 'r5\n');
  const next = await runCli(['deploy', src, root, '--release-id', 'r5', '--no-fsync', '--json']);
  assert.equal(next.code, 0, `the next deploy was blocked: ${next.stdout}${next.stderr}`);
  // Its recovery may have deleted the same trash: the first deploy takes that in its stride.
  const first = await slow.done;
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(jsonOf<{ prune: PruneJson }>(first).prune.removed.map((x) => x.id), ['r2', 'r1']);
  assert.deepEqual(tmpEntries(root), []);
  assert.deepEqual(releaseIds(root), ['r3', 'r4', 'r5']);
  assertReleasesWhole(root);
});

void test('a crash while deploy --keep prunes leaves the new release live and the next deploy cleans up', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3']);
  fs.writeFileSync(path.join(src, 'index.html'), 'r4\n');
  const crashed = await runCli(['deploy', src, root, '--release-id', 'r4', '--keep', '1', '--no-fsync'], { failpoints: 'prune-rename=crash' });
  assert.equal(crashed.signal, 'SIGKILL');
  assert.equal(currentId(root), 'r4');
  assert.deepEqual(releaseIds(root), ['r2', 'r3', 'r4']);
  assertReleasesWhole(root);
  fs.writeFileSync(path.join(src, 'index.html'), 'r5\n');
  const next = await runCli(['deploy', src, root, '--release-id', 'r5', '--keep', '1', '--no-fsync', '--json']);
  assert.equal(next.code, 0, next.stderr);
  assert.deepEqual(releaseIds(root), ['r4', 'r5']);
  assert.deepEqual(tmpEntries(root), []);
  assertReleasesWhole(root);
});

void test('prune refuses bad input with exit 2 and changes nothing', async (t) => {
  const { dir, src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3']);
  const before = snapshot(root);
  for (const args of [['prune', root, '--keep', '-1'], ['prune', root, '--keep', 'two'], ['prune', root, '--keep', '1.5'], ['prune', path.join(dir, 'nope'), '--keep', '1']]) {
    const r = await runCli([...args, '--json']);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout} ${r.stderr}`);
  }
  assert.deepEqual(snapshot(root), before);
  // Without --keep (and no config), prune keeps the default 5: here that is all three.
  const plain = await runCli(['prune', root, '--json']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(jsonOf<PruneJson>(plain).keep, 5);
  assert.deepEqual(releaseIds(root), ['r1', 'r2', 'r3']);
});

void test('deploy keeps 5 good releases by default; --keep 0 keeps them all', async (t) => {
  const { src, root } = setup(t);
  for (const id of ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']) {
    const r = await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.deepEqual(releaseIds(root), ['r3', 'r4', 'r5', 'r6', 'r7']);
  for (const id of ['r8', 'r9']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet', '--keep', '0'])).code, 0);
  assert.deepEqual(releaseIds(root), ['r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9']);
  const zero = await runCli(['prune', root, '--keep', '0', '--json']);
  assert.equal(zero.code, 0, zero.stderr);
  assert.deepEqual(jsonOf<PruneJson>(zero).removed, []);
  assert.equal(releaseIds(root).length, 7);
});

void test('prune of a root with no release yet says the in-use check stood ready (proc), not that --force skipped it', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  fs.mkdirSync(path.join(root, 'releases'), { recursive: true });
  const plain = await runCli(['prune', root, '--json']);
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(jsonOf<PruneJson>(plain).inUseCheck, 'proc');
  const forced = await runCli(['prune', root, '--force', '--json']);
  assert.equal(jsonOf<PruneJson>(forced).inUseCheck, 'forced');
});

// A deploy's dry run planned its prune without the release live now as the one live before the
// new release, so it listed the serving release (after a rollback --to it, or a hand switch) as
// removed, while the deploy itself keeps it.
void test('deploy --dry-run plans the prune the deploy makes: after rollback --to an older release, or a hand switch, the live one stays', async (t) => {
  for (const how of ['rollback', 'hand']) {
    const { src, root } = setup(t);
    await deployIds(src, root, ['r1', 'r2', 'r3', 'r4']);
    if (how === 'rollback') assert.equal((await runCli(['rollback', root, '--to', 'r2', '--quiet'])).code, 0);
    else {
      fs.symlinkSync('releases/r2', path.join(root, 'current.new'));
      fs.renameSync(path.join(root, 'current.new'), path.join(root, 'current'));
    }
    fs.writeFileSync(path.join(src, 'index.html'), 'r5\n');
    const dry = await runCli(['deploy', src, root, '--keep', '1', '--release-id', 'r5', '--no-fsync', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const planned = jsonOf<{ prune: { remove: { id: string }[]; kept: { id: string; rule: string }[] } }>(dry).prune;
    assert.deepEqual(planned.kept.find((k) => k.id === 'r2')?.rule, 'live-before', `${how}: ${JSON.stringify(planned)}`);
    const before = releaseIds(root);
    const real = await runCli(['deploy', src, root, '--keep', '1', '--release-id', 'r5', '--no-fsync', '--quiet']);
    assert.equal(real.code, 0, real.stderr);
    const gone = before.filter((id) => !releaseIds(root).includes(id));
    assert.deepEqual(planned.remove.map((r) => r.id).sort(), gone.sort(), `${how}: the dry run planned another prune than the deploy made`);
    assert.ok(releaseIds(root).includes('r2'), how);
  }
});

// With current missing (removed by hand), a deploy found "no live release" and its prune removed
// the release its log said was live last: the last tree known to have served.
void test('a dangling current (its release removed by hand): status warns that nothing is served, names the release to restore, and that rollback works', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2']);
  fs.rmSync(path.join(root, 'releases', 'r2'), { recursive: true });
  const status = await runCli(['status', root]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^current: \(dangling\)$/m);
  assert.match(status.stderr, /^warning: current points to releases\/r2, which is not there: nothing is served through it$/m);
  assert.match(status.stderr, new RegExp(`^hint: restore the last good release that was live: atomic-deploy rollback ${root.replaceAll('/', '\\/')} --to r1$`, 'm'));
  const json = jsonOf<{ currentState: string; danglingTarget?: string; lastLive?: string; warnings?: string[] }>(await runCli(['status', root, '--json']));
  assert.deepEqual([json.currentState, json.danglingTarget, json.lastLive], ['dangling', 'releases/r2', 'r1']);
  assert.equal(json.warnings?.length, 1);
  assert.equal((await runCli(['rollback', root, '--to', 'r1', '--quiet'])).code, 0);
  assert.equal(currentId(root), 'r1');
  assert.doesNotMatch((await runCli(['status', root])).stderr, /warning/);
});

// A directory at .atomic-deploy/manifests/<id>.json (no manifest of ours is one) stopped prune
// midway with EISDIR: the releases before it had left releases/ and been marked pruned, the error
// listed neither, and `deploy --keep` said only "prune stopped".
void test('a directory in place of a pruned release\'s manifest does not stop the prune: it goes with the release, and the prune reports all it removed', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']);
  const odd = (id: string): string => {
    const manifest = path.join(root, '.atomic-deploy', 'manifests', `${id}.json`);
    fs.rmSync(manifest);
    writeTree(manifest, { 'x.json': '{}\n' });
    return manifest;
  };
  const m3 = odd('r3');
  const r = await runCli(['prune', root, '--keep', '2', '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(jsonOf<{ removed: { id: string }[] }>(r).removed.map((x) => x.id), ['r5', 'r4', 'r3', 'r2', 'r1']);
  assert.deepEqual(releaseIds(root), ['r6', 'r7']);
  assert.equal(fs.existsSync(m3), false);

  await deployIds(src, root, ['r8', 'r9']);
  const m6 = odd('r6');
  fs.writeFileSync(path.join(src, 'index.html'), 'r10\n');
  const d = await runCli(['deploy', src, root, '--release-id', 'r10', '--no-fsync', '--keep', '2']);
  assert.equal(d.code, 0, d.stderr);
  assert.doesNotMatch(d.stderr, /prune stopped|warning/);
  assert.deepEqual(releaseIds(root), ['r10', 'r9']);
  assert.equal(fs.existsSync(m6), false);
});

// A release that went live and failed its health check (rolled back from) went live last, and
// status named it as the one to restore, dangling current or missing alike.
void test('status names, as the release to restore, the last release that went live and stayed good and is still there, never a failed one', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['good1', 'good2']);
  fs.writeFileSync(path.join(src, 'index.html'), 'bad3\n');
  const bad = await runCli(['deploy', src, root, '--release-id', 'bad3', '--no-fsync', '--quiet', '--keep', '0', '--health-check', 'false', '--health-timeout', '1']);
  assert.equal(bad.code, 4, bad.stderr);
  assert.equal(currentId(root), 'good2');
  fs.rmSync(path.join(root, 'releases', 'good2'), { recursive: true });
  const dangling = await runCli(['status', root]);
  assert.equal(dangling.code, 0, dangling.stderr);
  assert.match(dangling.stderr, new RegExp(`^hint: restore the last good release that was live: atomic-deploy rollback ${root.replaceAll('/', '\\/')} --to good1$`, 'm'));
  assert.equal(jsonOf<{ lastLive?: string }>(await runCli(['status', root, '--json'])).lastLive, 'good1');
  fs.unlinkSync(path.join(root, 'current'));
  const missing = await runCli(['status', root]);
  assert.match(missing.stdout, /^note: +current is missing; the release log says good1 is the last good release that was live: restore it with atomic-deploy rollback .* --to good1$/m);
  assert.equal(jsonOf<{ lastLive?: string }>(await runCli(['status', root, '--json'])).lastLive, 'good1');
  assert.equal((await runCli(['rollback', root, '--to', 'good1', '--quiet'])).code, 0);
  assert.equal(currentId(root), 'good1');
});

void test('current missing in a root with releases: status and the deploy name the release the log says was live last, and the deploy\'s prune keeps it', async (t) => {
  const { src, root } = setup(t);
  await deployIds(src, root, ['r1', 'r2', 'r3']);
  assert.equal((await runCli(['rollback', root, '--to', 'r1', '--quiet'])).code, 0);
  fs.unlinkSync(path.join(root, 'current'));
  const status = await runCli(['status', root]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /^current: \(missing\)$/m);
  assert.match(status.stdout, new RegExp(`^note: +current is missing; the release log says r1 is the last good release that was live: restore it with atomic-deploy rollback ${root.replaceAll('/', '\\/')} --to r1$`, 'm'));
  fs.writeFileSync(path.join(src, 'index.html'), 'r4\n');
  const dry = await runCli(['deploy', src, root, '--keep', '1', '--release-id', 'r4', '--no-fsync', '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.ok(jsonOf<{ prune: { kept: { id: string }[] } }>(dry).prune.kept.some((k) => k.id === 'r1'), dry.stdout);
  const r = await runCli(['deploy', src, root, '--keep', '1', '--release-id', 'r4', '--no-fsync']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^warning: current was missing, though the release log says r1 was live last: r1 is kept/m);
  assert.ok(releaseIds(root).includes('r1'), `r1 was pruned: ${releaseIds(root).join(' ')}`);
  assert.equal(currentId(root), 'r4');
});

// An application that writes into its release (sessions in a world-writable var/cache) as
// another user leaves files the deploying user cannot delete. The prune said "the next command
// finishes it", and every command after it said `recovered: removed leftover .tmp/trash.…`, exit
// 0, while the tree stayed (the recovery's delete is best effort) and `leftovers` listed it too.
void test('a pruned release another user wrote into: the trash that cannot be deleted is said kept, with why and how to remove it, never "removed"', async (t) => {
  requireRoot();
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'hi\n', 'var/cache/.keep': '' });
  fs.chmodSync(path.join(src, 'var', 'cache'), 0o777);
  for (const d of [src, path.join(src, 'var')]) fs.chmodSync(d, 0o755);
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  fs.chownSync(root, 65534, 65534);
  const asNobody = (args: string[]): Promise<import('../harness/cli.ts').CliResult> => runWrapped(args, { prefix: asUser('nobody') });
  for (const id of ['r1', 'r2', 'r3']) assert.equal((await asNobody(['deploy', src, root, '--no-fsync', '-q', '--release-id', id])).code, 0);
  // The application, as root here, writes a session folder of its own into r1.
  fs.mkdirSync(path.join(root, 'releases', 'r1', 'var', 'cache', 'sess'));
  fs.writeFileSync(path.join(root, 'releases', 'r1', 'var', 'cache', 'sess', 'x'), 's\n');
  const pruned = await asNobody(['prune', root, '--keep', '1']);
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.match(pruned.stderr, /^warning: cannot delete every file of the pruned releases: permission denied on .*\/var\/cache\/sess\/x \(its folder belongs to root\); they stay in \.tmp\/trash\.r1\.[0-9a-f]+ until a user who may deletes them: rm -rf .*$/m);
  assert.doesNotMatch(pruned.stderr, /the next command finishes it/);
  const trash = fs.readdirSync(path.join(root, '.tmp')).find((n) => n.startsWith('trash.r1.'));
  assert.ok(trash !== undefined, 'the trash is still there');
  for (const round of [1, 2]) {
    const s = await asNobody(['status', root, '--json']);
    assert.equal(s.code, 0, s.stderr);
    const j = jsonOf<{ leftovers: string[]; recovered: string[] }>(s);
    assert.deepEqual(j.leftovers, [`.tmp/${trash}`], `round ${round}`);
    assert.equal(j.recovered.some((l) => /^removed leftover/.test(l)), false, `round ${round}: ${j.recovered.join('; ')}`);
    assert.match(j.recovered.join('\n'), new RegExp(`^kept leftover \\.tmp/${trash}: permission denied on .*/var/cache/sess/x \\(its folder belongs to root\\); remove it as a user who may: rm -rf ${root}/\\.tmp/${trash}$`, 'm'), `round ${round}`);
  }
  // Root may: then it is removed, and said so.
  const asRoot = await runCli(['status', root, '--json']);
  assert.deepEqual(jsonOf<{ recovered: string[] }>(asRoot).recovered, [`removed leftover .tmp/${trash}`]);
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')).filter((n) => n.startsWith('trash.')), []);
});
