// Power-loss ordering, checked on the syscalls a real deploy makes (strace): the release's files
// and directories are durable before the rename onto `current`, and the root directory is
// fsynced after it. The --no-fsync run is the control that proves the check can fail.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { makeLane, nextSource, type Lane } from '../harness/campaign.ts';
import { jsonOf, tempDir } from '../harness/cli.ts';
import { requireTools, runWrapped } from '../harness/faults.ts';
import { manifestOf } from '../harness/invariants.ts';
import { checkDurability, parseLog, type Call } from '../harness/syscall-log.ts';

const TRACED = [
  'rename', 'renameat', 'renameat2', 'fsync', 'fdatasync', 'syncfs', 'symlink', 'symlinkat', 'openat',
  'copy_file_range', 'sendfile', 'write', 'pwrite64', 'writev', 'mkdir', 'mkdirat', 'fchmod', 'fchmodat',
  'chmod', 'utimensat', 'fchown', 'lchown', 'chown', 'fchownat', 'ftruncate',
];

function strace(): string {
  return execFileSync('sh', ['-c', 'command -v strace'], { encoding: 'utf8' }).trim();
}

async function tracedDeploy(lane: Lane, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ id: string; calls: Call[]; durability: string }> {
  const log = path.join(path.dirname(lane.root), `trace-${Date.now()}`);
  const source = nextSource(lane);
  const result = await runWrapped(['deploy', source, lane.root, '--json', ...extra], {
    // Absolute, so that a PATH without `sync` (the fsync fallback below) still finds strace.
    prefix: [strace(), '-f', '-tt', '-y', '-s', '512', '-o', log, '-e', `trace=${TRACED.join(',')}`],
    env,
  });
  assert.equal(result.code, 0, result.stderr);
  const json = jsonOf<{ release: string; durability: string }>(result);
  return { id: json.release, calls: parseLog(fs.readFileSync(log, 'utf8')), durability: json.durability };
}

/** The release's files and directories ('' is its top directory): what must be durable. */
function durablePaths(lane: Lane, id: string): string[] {
  const m = manifestOf(path.join(lane.root, 'releases', id));
  return ['', ...[...m.entries()].filter(([, v]) => v.startsWith('d') || v.startsWith('f')).map(([k]) => k)];
}

void test('with syncfs (sync -f): the copy is synced before it is renamed, releases/ before the switch, the root after', async (t) => {
  requireTools('strace', 'sync');
  const lane = await makeLane(tempDir(t), 'lane');
  const run = await tracedDeploy(lane);
  assert.equal(run.durability, 'syncfs');
  const facts = checkDurability(run.calls, lane.root, run.id, durablePaths(lane, run.id));
  assert.equal(facts.mode, 'syncfs');
  assert.deepEqual(facts.problems, []);

  // The ordering check itself can fail: the same trace with the syncfs moved after the switch.
  const moved = run.calls.map((c) => ({ ...c }));
  const sw = moved.find((c) => c.syscall === 'rename' && c.args.includes(`"${lane.root}/current"`)) as Call;
  const sf = moved.find((c) => c.syscall === 'syncfs') as Call;
  sf.start = sw.end + 1;
  sf.end = sw.end + 1;
  const late = checkDurability(moved, lane.root, run.id, durablePaths(lane, run.id));
  assert.ok(late.problems.some((p) => /syncfs did not finish before/.test(p)), late.problems.join('; '));
});

void test('without sync(1) on PATH: every file and directory is fsynced before the rename, the root after', async (t) => {
  requireTools('strace');
  const lane = await makeLane(tempDir(t), 'lane');
  const noSync = fs.mkdtempSync(path.join(path.dirname(lane.root), 'empty-path-'));
  const run = await tracedDeploy(lane, [], { PATH: noSync });
  assert.equal(run.durability, 'fsync');
  const paths = durablePaths(lane, run.id);
  const facts = checkDurability(run.calls, lane.root, run.id, paths);
  assert.equal(facts.mode, 'fsync');
  assert.deepEqual(facts.problems, []);
  t.diagnostic(`${paths.length} files and directories fsynced one by one`);

  // Control: drop one file's fsync from the trace and the check must name it.
  const victim = paths[paths.length - 1] as string;
  const dropped = run.calls.filter((c) => !(c.syscall === 'fsync' && c.args.endsWith(`/${victim}>`)));
  const missing = checkDurability(dropped, lane.root, run.id, paths);
  assert.ok(missing.problems.some((p) => p.startsWith(`${victim} was never fsynced`)), missing.problems.join('; '));
});

void test('control: --no-fsync makes none of them, and the check says so', async (t) => {
  requireTools('strace');
  const lane = await makeLane(tempDir(t), 'lane');
  const run = await tracedDeploy(lane, ['--no-fsync']);
  assert.equal(run.durability, 'off');
  const facts = checkDurability(run.calls, lane.root, run.id, durablePaths(lane, run.id));
  assert.equal(facts.mode, 'none');
  assert.ok(facts.problems.some((p) => /never fsynced/.test(p)), facts.problems.join('; '));
  assert.ok(facts.problems.some((p) => /root directory was not fsynced after/.test(p)), facts.problems.join('; '));
  assert.ok(facts.problems.some((p) => /releases\/ was not fsynced/.test(p)), facts.problems.join('; '));
  assert.ok(!run.calls.some((c) => c.syscall === 'syncfs'), 'a syncfs ran under --no-fsync');
  // What remains: the lock's own fsyncs of the root (taking and releasing it), outside the switch.
  const rootSyncs = run.calls.filter((c) => c.syscall === 'fsync' && c.args.includes(`<${lane.root}>`)).length;
  t.diagnostic(`--no-fsync: ${run.calls.filter((c) => c.syscall === 'fsync').length} fsync calls in all, ${rootSyncs} of them of the root by the lock`);
});

void test('rollback: the root directory is fsynced after the rename onto current', async (t) => {
  requireTools('strace');
  const lane = await makeLane(tempDir(t), 'lane');
  const log = path.join(path.dirname(lane.root), 'trace-rollback');
  const result = await runWrapped(['rollback', lane.root, '--json'], { prefix: [strace(), '-f', '-y', '-o', log, '-e', 'trace=rename,fsync,symlink'] });
  assert.equal(result.code, 0, result.stderr);
  const calls = parseLog(fs.readFileSync(log, 'utf8'));
  const sw = calls.findIndex((c) => c.syscall === 'rename' && c.args.includes(`"${lane.root}/current"`));
  assert.ok(sw >= 0, 'no rename onto current');
  const link = calls.findIndex((c) => c.syscall === 'symlink' && c.args.includes(`"${lane.root}/.tmp/current.`));
  assert.ok(link >= 0 && link < sw, 'the link was not made in .tmp/ before the rename');
  assert.ok(calls.slice(sw + 1).some((c) => c.syscall === 'fsync' && c.args.includes(`<${lane.root}>`)), 'no fsync of the root after the rename');
});
