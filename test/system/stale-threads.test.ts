// A process whose main thread has exited while another thread runs on (a program that calls
// pthread_exit() in main) still runs from the release it holds: its leader's /proc/<pid>/cwd,
// root and exe cannot be read and its fd and maps are empty, but a live thread's
// /proc/<pid>/task/<tid>/ shows them. After a switch such processes are named (human and JSON)
// with their pid and command, `--stale fail` fails while they stay, and prune (the command, and a
// deploy's --keep) keeps the release they hold. Run on the old code, none of them was seen.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { buildExitedLeader, EXITED_LEADER_COMMAND, startExitedLeader } from '../harness/exited-leader.ts';

interface StaleJson {
  check: string;
  release: string;
  processes: { pid: number; command: string; holds: { kind: string; path: string }[] }[];
}
interface DeployJson {
  release?: string;
  stale?: StaleJson;
  error?: { code: string; message: string; stale?: StaleJson };
}
interface PruneJson {
  removed: { id: string; rule: string; reason: string }[];
  kept: { id: string; rule: string; reason: string }[];
  inUseCheck: string;
}

type T = { after(fn: () => Promise<void> | void): void };

/** A root live on r1, and two processes with exited leaders on it: one working in it, one holding its index.html open. */
async function holders(t: T, ids: string[] = ['r1']) {
  const dir = tempDir(t);
  const program = buildExitedLeader(dir);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  for (const id of ids) {
    const r = await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--keep', '0']);
    assert.equal(r.code, 0, r.stderr);
  }
  const oldDir = path.join(root, 'releases', 'r1');
  const inCwd = await startExitedLeader(t, program, { cwd: oldDir, holds: oldDir });
  const withFile = await startExitedLeader(t, program, { cwd: dir, file: path.join(oldDir, 'index.html'), holds: path.join(oldDir, 'index.html') });
  return { dir, src, root, oldDir, pids: { inCwd, withFile } };
}

void test('after a switch, processes whose main thread exited are named with their pid, command and holds (human and --json)', async (t) => {
  const h = await holders(t);
  const human = await runCli(['deploy', h.src, h.root, '--release-id', 'r2', '--no-fsync', '--keep', '0']);
  assert.equal(human.code, 0, human.stderr);
  const warning = human.stderr.split('\n').find((l) => l.startsWith('warning: 2 processes still run from release r1'));
  assert.ok(warning, human.stderr);
  assert.ok(warning.includes(`pid ${h.pids.inCwd} ${EXITED_LEADER_COMMAND} (working directory releases/r1)`), warning);
  assert.ok(warning.includes(`pid ${h.pids.withFile} ${EXITED_LEADER_COMMAND} (open file releases/r1/index.html)`), warning);

  // Back to r1, then away from it again: the JSON names the same two.
  assert.equal((await runCli(['rollback', h.root, '--to', 'r1', '--stale', 'off'])).code, 0);
  const json = await runCli(['deploy', h.src, h.root, '--release-id', 'r3', '--no-fsync', '--keep', '0', '--json']);
  assert.equal(json.code, 0, json.stderr);
  const stale = jsonOf<DeployJson>(json).stale;
  assert.equal(stale?.check, 'proc');
  assert.equal(stale?.release, 'r1');
  assert.deepEqual(
    stale?.processes,
    [
      { pid: h.pids.inCwd, command: EXITED_LEADER_COMMAND, holds: [{ kind: 'cwd', path: h.oldDir }] },
      { pid: h.pids.withFile, command: EXITED_LEADER_COMMAND, holds: [{ kind: 'fd', path: path.join(h.oldDir, 'index.html') }] },
    ].sort((a, b) => a.pid - b.pid),
  );
});

void test('--stale fail exits 6 while such processes stay, and names them', async (t) => {
  const h = await holders(t);
  const r = await runCli(['deploy', h.src, h.root, '--release-id', 'r2', '--no-fsync', '--keep', '0', '--stale', 'fail', '--stale-wait', '1', '--json']);
  assert.equal(r.code, 6, r.stderr);
  const error = jsonOf<DeployJson>(r).error;
  assert.equal(error?.code, 'STALE_PROCESSES');
  assert.deepEqual(error?.stale?.processes.map((p) => p.pid).sort(), [h.pids.inCwd, h.pids.withFile].sort());
  assert.equal(currentId(h.root), 'r2', 'the switch stands');
});

void test('prune keeps a release such a process uses: the command, and a deploy with --keep', async (t) => {
  const h = await holders(t, ['r1', 'r2', 'r3', 'r4']);
  const pruned = await runCli(['prune', h.root, '--keep', '1', '--json']);
  assert.equal(pruned.code, 0, pruned.stderr);
  const result = jsonOf<PruneJson>(pruned);
  assert.equal(result.inUseCheck, 'proc');
  const r1 = result.kept.find((k) => k.id === 'r1');
  assert.ok(r1, `r1 was removed while processes held it: ${JSON.stringify(result)}`);
  assert.equal(r1.rule, 'in-use');
  for (const pid of Object.values(h.pids)) assert.match(r1.reason, new RegExp(`pid ${pid} \\(${EXITED_LEADER_COMMAND}: `));
  // The control: the release nobody uses went.
  assert.deepEqual(result.removed.map((x) => x.id), ['r2']);
  assert.deepEqual(releaseIds(h.root), ['r1', 'r3', 'r4']);

  // A deploy's prune reads /proc through the stale scan after its switch: the same guard.
  const deployed = await runCli(['deploy', h.src, h.root, '--release-id', 'r5', '--no-fsync', '--keep', '1', '--json']);
  assert.equal(deployed.code, 0, deployed.stderr);
  assert.deepEqual(releaseIds(h.root), ['r1', 'r4', 'r5']);
});
