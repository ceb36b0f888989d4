// The library's onEvent sink is only told: one that throws, or an async one that rejects, changes
// nothing an operation does. A throw at "is live" used to fail a deploy that was live and
// recorded, a throw at "switching" undid it, and a rejection was unhandled (which ends a default
// Node process). Each test checks that the event it breaks at was emitted.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { currentId, tempDir, writeTree } from '../harness/cli.ts';
import { deploy, listReleases, prune, rollback, status, unlock, type OperationEvent } from '../../src/index.ts';
import { writeOwnerLock } from '../harness/faults.ts';

/** Process warnings from the sink's failures, and unhandled rejections, while `body` runs and a moment after. */
async function watched<T>(body: () => Promise<T>): Promise<{ value: T; warnings: string[]; unhandled: unknown[] }> {
  const warnings: string[] = [];
  const unhandled: unknown[] = [];
  const onWarning = (w: Error & { code?: string }): void => void (w.code === 'ATOMIC_DEPLOY_EVENT_SINK' && warnings.push(w.message));
  const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
  process.on('warning', onWarning);
  process.on('unhandledRejection', onUnhandled);
  try {
    const value = await body();
    // Unhandled rejections are noticed after the microtasks; warnings are emitted on the next tick.
    await new Promise((resolve) => setTimeout(resolve, 20));
    return { value, warnings, unhandled };
  } finally {
    process.off('warning', onWarning);
    process.off('unhandledRejection', onUnhandled);
  }
}

function rootWithBuild(t: TestContext): { src: string; root: string } {
  const dir = tempDir(t);
  return { src: writeTree(path.join(dir, 'build'), { 'index.html': 'v1\n', 'app.js': 'x\n' }), root: path.join(dir, 'root') };
}

/** A sink that throws (or, `async`, rejects) at every event whose text matches. */
function breaking(match: RegExp, seen: OperationEvent[], async = false): (e: OperationEvent) => void {
  const check = (e: OperationEvent): void => {
    seen.push(e);
    if (match.test('message' in e ? e.message : '')) throw new Error('logger broke');
  };
  return async ? (e) => Promise.resolve(e).then(check) : check;
}

for (const [name, match] of [
  ['at "is live"', /is live/],
  ['at "switching"', /^switching/],
  ['at every event', /(?:)/],
] as const) {
  void test(`deploy: a sink that throws ${name} changes nothing: the release is live and recorded complete`, async (t) => {
    const { src, root } = rootWithBuild(t);
    const seen: OperationEvent[] = [];
    const { value: result, warnings } = await watched(() => deploy(src, root, { onEvent: breaking(match, seen) }));
    assert.ok(seen.some((e) => e.type === 'step' && match.test(e.message)), 'the event was never emitted');
    assert.equal(currentId(root), result.release);
    const listed = await listReleases(root);
    assert.equal(listed.releases[0]?.record?.status, 'complete');
    assert.deepEqual((await status(root, { readOnly: true })).leftovers, []);
    assert.equal(warnings.length, 1, 'one warning per operation');
    assert.match(warnings[0] ?? '', /onEvent sink failed and was ignored.*logger broke/);
  });
}

void test('deploy: an async sink that rejects leaves no unhandled rejection, and the deploy completes', async (t) => {
  const { src, root } = rootWithBuild(t);
  const seen: OperationEvent[] = [];
  const { value: result, warnings, unhandled } = await watched(() => deploy(src, root, { onEvent: breaking(/(?:)/, seen, true) }));
  assert.ok(seen.length > 1);
  assert.deepEqual(unhandled, []);
  assert.equal(currentId(root), result.release);
  assert.equal(warnings.length, 1);
});

void test('rollback, prune and unlock: a sink that throws at every event changes nothing', async (t) => {
  const { src, root } = rootWithBuild(t);
  for (const id of ['r1', 'r2', 'r3']) {
    writeTree(src, { 'index.html': `${id}\n` });
    await deploy(src, root, { releaseId: id });
  }
  const seen: OperationEvent[] = [];
  const onEvent = breaking(/(?:)/, seen);
  const back = await watched(() => rollback(root, { onEvent }));
  assert.equal(back.value.release, 'r2');
  assert.equal(currentId(root), 'r2');
  // r3, rolled back from, goes; r1 stays as r2's rollback target.
  const pruned = await watched(() => prune(root, { keep: 1, onEvent }));
  assert.ok(seen.some((e) => e.type === 'step' && /^pruning/.test(e.message)), 'prune emitted no step');
  assert.deepEqual(pruned.value.removed.map((r) => r.id), ['r3']);
  assert.ok(!fs.existsSync(path.join(root, 'releases', 'r3')));
  // A live holder: unlock --force warns before it removes the lock.
  writeOwnerLock(root, { pid: process.pid });
  const count = seen.length;
  const unlocked = await watched(() => unlock(root, { force: true, onEvent }));
  assert.equal(unlocked.value.unlocked, true);
  assert.ok(seen.length > count, 'unlock emitted no warning');
  assert.ok(!fs.existsSync(path.join(root, '.deploy.lock')));
  for (const w of [back, pruned, unlocked]) assert.equal(w.warnings.length, 1);
});

void test('onEvent that is not a function: USAGE before anything is written', async (t) => {
  const { src, root } = rootWithBuild(t);
  await assert.rejects(deploy(src, root, { onEvent: 'log' as unknown as () => void }), { code: 'USAGE', message: 'onEvent must be a function, got string' });
  assert.ok(!fs.existsSync(root));
});
