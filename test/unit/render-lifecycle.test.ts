// The lines a person reads at the end of a deploy and a prune, and the prune progress bar.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { Reporter } from '../../src/cli/output.ts';
import { deploySummary, renderPrune } from '../../src/cli/render-lifecycle.ts';
import type { DeployResult } from '../../src/ops/deploy.ts';
import type { PruneResult } from '../../src/ops/prune.ts';

const prune: PruneResult = {
  dryRun: false,
  keep: 1,
  current: 'r4',
  removed: [{ id: 'r2', rule: 'older', reason: 'older than the newest 1 good release', files: 10, bytes: 2048 }],
  kept: [{ id: 'r4', rule: 'current', reason: 'current' }, { id: 'r3', rule: 'rollback-target', reason: 'rollback target' }],
  inUseCheck: 'proc',
  renameMs: 1,
  deleteMs: 12,
  recovered: [],
};

void test('the deploy summary: files, linked vs copied, bytes, time, previous, prune', () => {
  const result: DeployResult = { release: 'r4', path: '/x/releases/r4', previous: 'r3', files: 10, bytes: 2048, durationMs: 1234, durability: 'syncfs', recovered: [], linked: 7, copied: 3, prune };
  assert.equal(deploySummary(result), 'deployed r4: 10 files (7 linked, 3 copied), 2.0 KiB in 1.23 s; previous: r3; pruned 1 release (r2)');
  assert.equal(deploySummary({ ...result, files: 1, previous: null, prune: undefined, linked: undefined, durationMs: 80 }), 'deployed r4: 1 file, 2.0 KiB in 80 ms');
});

void test('the prune report lists what went and why the rest stays', () => {
  assert.equal(
    renderPrune(prune),
    ['removed 1 release, kept 2 (renames 1 ms, delete 12 ms)', '  removed r2  older than the newest 1 good release (10 files, 2.0 KiB)', '  keep    r4  current', '  keep    r3  rollback target'].join('\n'),
  );
  assert.match(renderPrune({ ...prune, dryRun: true, inUseCheck: 'unavailable' }), /^dry run: would remove 1 release, keep 2\n {2}remove r2 [^\n]*\n[^]*note: no \/proc here/);
});

void test('prune progress draws a bar on a terminal only, and clears it when done', () => {
  const draw = (isTTY: boolean): string => {
    let text = '';
    const stdout = Object.assign(new Writable({ write: (chunk: Buffer, _enc, done) => ((text += chunk.toString()), done()) }), { isTTY });
    const reporter = new Reporter({ stdout, stderr: stdout }, { json: false, quiet: false });
    reporter.event({ type: 'progress', phase: 'prune', done: 256, total: 1000, bytes: 0, totalBytes: 0 });
    reporter.event({ type: 'progress', phase: 'prune', done: 1000, total: 1000, bytes: 0, totalBytes: 0 });
    return text;
  };
  const tty = draw(true);
  assert.match(tty, /prune [█░]+ 256\/1000 files/);
  assert.ok(tty.endsWith('\r\x1b[2K'), 'the bar is not cleared at the end');
  assert.equal(draw(false), '');
});
