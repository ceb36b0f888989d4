// A reader that goes away never changes what a deploy does: a closed stdout or stderr pipe, and
// a terminal that hangs up (pty master closed, as when an SSH session drops).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { leftovers, lockExists } from '../harness/invariants.ts';
import { runClosingPipe, runHangingUp } from '../harness/lost-output.ts';

interface Json {
  release?: string;
  error?: { code: string; message: string };
}

async function rootWithGood(t: { after(fn: () => void): void }): Promise<{ dir: string; src: string; root: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', src, root, '--release-id', 'good', '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  return { dir, src, root };
}

function statusOf(root: string, id: string): string | undefined {
  const file = path.join(root, '.atomic-deploy', 'releases', `${id}.json`);
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { status?: string }).status : undefined;
}

function assertClean(root: string): void {
  assert.equal(lockExists(root), false, 'the lock was left behind');
  assert.deepEqual(leftovers(root), []);
}

// The failing health check must still run, and roll back, after the reader of stdout is gone.
const FAILING_DEPLOY = ['--release-id', 'bad', '--after-switch', 'echo from-hook; sleep 1; echo more', '--health-check', 'echo checking; exit 1', '--health-timeout', '1'];

void test('stdout closed mid-deploy: hooks, health check and automatic rollback still run; exit 4; lock released', async (t) => {
  const { src, root } = await rootWithGood(t);
  const r = await runClosingPipe(['deploy', src, root, ...FAILING_DEPLOY], 'stdout', { printed: /switching current/ });
  assert.ok(r.closed);
  assert.equal(r.code, 4, `exit ${r.code} ${r.signal}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /EPIPE|unexpected failure/, r.stderr);
  assert.equal(currentId(root), 'good');
  assert.equal(statusOf(root, 'bad'), 'failed');
  assertClean(root);
  const status = await runCli(['status', root]);
  assert.doesNotMatch(status.stdout, /recovered|already live/, status.stdout);
});

void test('stderr closed from the start: the deploy is the same, and --json still prints its one object on stdout', async (t) => {
  const { src, root } = await rootWithGood(t);
  const r = await runClosingPipe(['deploy', src, root, ...FAILING_DEPLOY, '--json'], 'stderr', {});
  assert.equal(r.code, 4, `exit ${r.code} ${r.signal}\n${r.stdout}`);
  assert.equal(jsonOf<Json>(r).error?.code, 'ROLLED_BACK');
  assert.equal(currentId(root), 'good');
  assertClean(root);
});

void test('stdout closed before a successful deploy ends: the deploy completes, exit 0', async (t) => {
  const { src, root } = await rootWithGood(t);
  const r = await runClosingPipe(['deploy', src, root, '--release-id', 'next', '--after-switch', 'sleep 0.5; echo done', '--keep', '1'], 'stdout', { printed: /copying/ });
  assert.equal(r.code, 0, `exit ${r.code} ${r.signal}\n${r.stderr}`);
  assert.equal(currentId(root), 'next');
  assert.equal(statusOf(root, 'next'), 'complete');
  // Prune still ran: keep 1 leaves next, and good stays as the rollback target.
  assert.deepEqual(releaseIds(root), ['good', 'next']);
  assertClean(root);
});

void test('terminal hangup during an after-switch hook: exit 129, the switch stands, lock and journal gone', async (t) => {
  const { dir, src, root } = await rootWithGood(t);
  const r = await runHangingUp(dir, ['deploy', src, root, '--release-id', 'bad', '--after-switch', 'sleep 3', '--health-check', 'exit 1', '--health-timeout', '2'], { printed: /running after-switch hook/ });
  assert.ok(r.hungUp, r.screen);
  assert.equal(r.code, 129, r.screen);
  // Like SIGTERM after the switch: verification stops, the release stays live, nothing half-done.
  assert.equal(currentId(root), 'bad');
  assertClean(root);
  assert.deepEqual(releaseIds(root), ['bad', 'good']);
  const again = await runCli(['status', root]);
  assert.doesNotMatch(again.stdout, /recovered/, again.stdout);
});

void test('terminal hangup during a before-switch hook: exit 129, the deploy is undone', async (t) => {
  const { dir, src, root } = await rootWithGood(t);
  const r = await runHangingUp(dir, ['deploy', src, root, '--release-id', 'bad', '--before-switch', 'sleep 3'], { printed: /running before-switch hook/ });
  assert.ok(r.hungUp, r.screen);
  assert.equal(r.code, 129, r.screen);
  assert.equal(currentId(root), 'good');
  assert.deepEqual(releaseIds(root), ['good']);
  assertClean(root);
});
