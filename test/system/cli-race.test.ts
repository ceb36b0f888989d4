// The core promise, end to end: a reader process never fails while the CLI deploys 200 times,
// and the same reader does fail against a naive unlink+symlink switch in the same test.
// test-runner: alone (a reader races 200 deploys, and the naive control must still catch the gap)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir, writeTree } from '../harness/cli.ts';
import { startRaceReader } from '../harness/race-reader.ts';
import { switchLoop, unlinkSymlinkSwap } from '../harness/swappers.ts';

const DEPLOYS = 200;

void test('200 CLI deploys alternating two sources: 0 failed or mixed reads; naive control fails', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const contents = ['release-a\n', 'release-b\n'];
  const sources = contents.map((c, i) => writeTree(path.join(dir, `src-${i}`), { 'index.html': c, 'assets/app.js': `// ${i}\n` }));

  const first = await runCli(['deploy', sources[0] as string, root, '--quiet']);
  assert.equal(first.code, 0, first.stderr);

  const reader = await startRaceReader({ path: path.join(root, 'current', 'index.html'), expected: contents });
  let failures: string[] = [];
  try {
    for (let i = 1; i <= DEPLOYS; i++) {
      const r = await runCli(['deploy', sources[i % 2] as string, root, '--quiet', '--keep', '0']);
      if (r.code !== 0) failures.push(`deploy ${i}: exit ${r.code}: ${r.stderr}`);
    }
  } finally {
    const report = await reader.stop();
    reader.kill();
    assert.deepEqual(failures, []);
    assert.ok(report.reads > 1000, `the reader made only ${report.reads} reads`);
    assert.equal(report.enoent, 0, `ENOENT reads during CLI deploys: ${JSON.stringify(report)}`);
    assert.equal(report.foreign, 0, `mixed or foreign reads: ${JSON.stringify(report)}`);
    assert.equal(report.otherErrors, 0, JSON.stringify(report));
  }
  const releases = fs.readdirSync(path.join(root, 'releases'));
  assert.equal(releases.length, DEPLOYS + 1);
  failures = [];

  // Control, same root and reader: switching with unlink + symlink must show failed reads.
  const ids = releases.sort().slice(-2).map((id) => `releases/${id}`);
  const control = await startRaceReader({ path: path.join(root, 'current', 'index.html'), expected: contents });
  try {
    await switchLoop({ root, targets: ids, swap: unlinkSymlinkSwap, minSwitches: 2000, minMs: 1000 });
  } finally {
    const report = await control.stop();
    control.kill();
    assert.ok(report.enoent > 0, `the naive control showed no failures, so the harness proves nothing: ${JSON.stringify(report)}`);
  }
});
