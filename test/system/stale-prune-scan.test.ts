// A deploy that prunes reads /proc once after the switch: the stale check scans all of releases/
// and prune's guard reuses that scan. Both answers stay right: the process in the release left is
// named, and the release a process holds is kept by prune.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, currentId, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { requireTool } from '../harness/swappers.ts';

interface DeployJson {
  release: string;
  stale?: { processes: { pid: number }[] };
  prune?: { removed: { id: string }[]; kept: { id: string; rule: string }[] };
}

/** How many times each pid's maps file was opened by the deploy (strace of openat). */
function mapsOpens(log: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of fs.readFileSync(log, 'utf8').split('\n')) {
    const m = /openat\([^"]*"\/proc\/(\d+)\/maps"/.exec(line);
    const pid = m?.[1];
    if (pid !== undefined) counts.set(pid, (counts.get(pid) ?? 0) + 1);
  }
  return counts;
}

void test('a deploy that prunes scans /proc once; the stale process is named and the held old release is kept', async (t) => {
  const strace = requireTool('strace', 'strace');
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  const root = path.join(dir, 'root');
  writeTree(src, { 'index.html': 'v' });
  for (const id of ['r1', 'r2', 'r3']) {
    const r = await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet', '--keep', '0']);
    assert.equal(r.code, 0, r.stderr);
  }
  // r1 is beyond keep 1 and not the rollback target: only its holder keeps it. r3 is the release the deploy leaves.
  const holders = ['r1', 'r3'].map((id) => spawn('sleep', ['300'], { cwd: path.join(root, 'releases', id), stdio: 'ignore' }));
  t.after(() => holders.forEach((c) => c.kill('SIGKILL')));
  await new Promise((resolve) => setTimeout(resolve, 200));
  const log = path.join(dir, 'strace.log');
  const run = spawnSync(strace, ['-f', '-qq', '-e', 'trace=openat', '-o', log, process.execPath, BIN, 'deploy', src, root, '--release-id', 'r4', '--no-fsync', '--keep', '1', '--json'], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const out = JSON.parse(run.stdout) as DeployJson;
  assert.equal(currentId(root), 'r4');
  assert.deepEqual(out.stale?.processes.map((p) => p.pid), [holders[1]?.pid]);
  assert.deepEqual(out.prune?.removed.map((r) => r.id), ['r2']);
  assert.equal(out.prune?.kept.find((k) => k.id === 'r1')?.rule, 'in-use');
  const opens = mapsOpens(log);
  assert.ok(opens.size > 5, `the deploy read the maps of ${opens.size} processes`);
  const twice = [...opens].filter(([, n]) => n > 1);
  assert.deepEqual(twice, [], `maps read more than once: ${twice.length} of ${opens.size} processes`);
});
