// A signal while a large tree is deleted (recovery's leftovers, prune's trash): the command stops
// within a fraction of a second with 128+n, leaves the rest under a leftover's name (never under a
// release's), and the next command finishes the delete without touching the releases that stay.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentId, jsonOf, releaseIds, runCli, spawnCli, tempDir } from '../harness/cli.ts';
import { checkRoot, leftovers, lockExists, makeSource, manifestOf, type Manifest } from '../harness/invariants.ts';

const FILES = 40_000;

const shared = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-deploy-test-'));
after(() => fs.rmSync(shared, { recursive: true, force: true }));
let big: string | undefined;

/**
 * A build of FILES files in one flat directory, as bundlers' asset folders are: a delete that
 * looks for a signal only between directories misses it there. Made once for the file: it takes seconds.
 */
function bigBuild(): string {
  if (big !== undefined) return big;
  const dir = path.join(shared, 'big');
  fs.mkdirSync(path.join(dir, 'assets'), { recursive: true });
  for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(dir, 'assets', `f${i}`), `${i}\n`);
  fs.writeFileSync(path.join(dir, 'index.html'), 'big\n');
  big = dir;
  return dir;
}

/** Files in what is being deleted: staging copies and trash in `.tmp/`, and every releases/ entry but those in `kept`. */
function leftoverFiles(root: string, kept: ReadonlyMap<string, unknown>): number {
  let n = 0;
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else n += 1;
    }
  };
  // Not the rest of .tmp/: a stale lock's tombstone stays there for minutes by design.
  for (const name of fs.readdirSync(path.join(root, '.tmp'))) if (/^(stage|trash)\./.test(name)) walk(path.join(root, '.tmp', name));
  for (const name of fs.readdirSync(path.join(root, 'releases'))) if (!kept.has(name)) walk(path.join(root, 'releases', name));
  return n;
}

interface Scene {
  root: string;
  live: string;
  /** The releases that must stay as they are, with their manifests. */
  kept: Map<string, Manifest>;
  sources: Manifest[];
}

/** A root whose live release is small and whose deploy of the big build was killed at `failpoint`. */
async function crashedScene(t: { after(fn: () => void): void }, failpoint: string): Promise<Scene> {
  const dir = tempDir(t);
  const small = makeSource(path.join(dir, 'small'), 'small');
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', small, root, '--release-id', 'r1', '--no-fsync', '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  const crashed = await runCli(['deploy', bigBuild(), root, '--release-id', 'r2', '--no-fsync', '--quiet'], { failpoints: `${failpoint}=crash`, timeoutMs: 300_000 });
  assert.equal(crashed.signal, 'SIGKILL', `the deploy was to be killed at ${failpoint}: ${crashed.stderr}`);
  return { root, live: 'r1', kept: new Map([['r1', manifestOf(path.join(root, 'releases', 'r1'))]]), sources: [manifestOf(small)] };
}

/**
 * Runs `args`, sends `signal` once the file count of what it deletes starts to fall, and returns
 * the result with the time from the signal to the exit and the files left then.
 */
async function interruptDelete(scene: Scene, args: string[], signal: NodeJS.Signals): Promise<{ code: number | null; stderr: string; exitMs: number; filesAtSignal: number; filesLeft: number }> {
  const total = leftoverFiles(scene.root, scene.kept);
  assert.ok(total >= FILES, `${total} files to delete, expected at least ${FILES}`);
  const { child, done } = spawnCli(args, { timeoutMs: 120_000 });
  let exited = false;
  void done.then(() => (exited = true));
  let filesAtSignal = total;
  let fallen = 0;
  // Deleting has begun when the count falls twice running (one walk may race the rename of a
  // release into trash and miss part of it); the command may also finish before we see it.
  while (!exited) {
    filesAtSignal = leftoverFiles(scene.root, scene.kept);
    fallen = filesAtSignal < total ? fallen + 1 : 0;
    if (fallen === 2) break;
    await sleep(5);
  }
  if (exited) {
    const early = await done;
    assert.fail(`${args[0]} exited (${early.code}) before it was seen deleting, ${filesAtSignal} of ${total} files left: ${early.stdout}${early.stderr}`);
  }
  const sent = performance.now();
  child.kill(signal);
  const result = await done;
  const exitMs = performance.now() - sent;
  return { code: result.code, stderr: result.stderr, exitMs, filesAtSignal, filesLeft: leftoverFiles(scene.root, scene.kept) };
}

/** The releases that stay are as they were, and nothing else is under releases/. */
function checkKept(scene: Scene, label: string): void {
  assert.equal(currentId(scene.root), scene.live, label);
  for (const [id, manifest] of scene.kept) assert.deepEqual(manifestOf(path.join(scene.root, 'releases', id)), manifest, `${label}: release ${id} changed`);
  assert.deepEqual(releaseIds(scene.root).filter((n) => !n.startsWith('.')), [...scene.kept.keys()].sort(), `${label}: releases/`);
}

/** After the interrupted command: the releases that stay untouched, no half-deleted tree under a release's name, no lock. */
function checkInterrupted(scene: Scene, label: string): void {
  checkKept(scene, label);
  // Every directory under releases/ must be a whole release: the rest waits under a leftover name.
  const { problems } = checkRoot(scene.root, { sources: scene.sources, keep: [...scene.kept.keys()], currentIn: [scene.live] });
  assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
  assert.ok(!lockExists(scene.root), `${label}: the lock was left`);
  assert.ok(leftovers(scene.root).length > 0, `${label}: nothing was left, so nothing was interrupted`);
}

/** The next status finishes the delete: nothing left, the live release as it was. */
async function checkNextStatus(scene: Scene, label: string): Promise<void> {
  const next = await runCli(['status', scene.root, '--json'], { timeoutMs: 120_000 });
  assert.equal(next.code, 0, `${label}, next status: ${next.stderr}`);
  assert.equal(jsonOf<{ current: string }>(next).current, scene.live);
  assert.equal(leftoverFiles(scene.root, scene.kept), 0, `${label}: the next status left files`);
  const { problems } = checkRoot(scene.root, { sources: scene.sources, keep: [...scene.kept.keys()], currentIn: [scene.live], clean: true, recovered: true });
  assert.deepEqual(problems, [], `${label}, after the next status: ${problems.join('; ')}`);
  checkKept(scene, `${label}, after the next status`);
}

/** A command stopped by `signal` mid-delete: its exit code, no stack trace, within a second, with files left. */
function assertStopped(r: Awaited<ReturnType<typeof interruptDelete>>, command: string, code: number, t: { diagnostic(message: string): void }): void {
  t.diagnostic(`signal at ${r.filesAtSignal} files, exit after ${Math.round(r.exitMs)} ms with ${r.filesLeft} left`);
  assert.equal(r.code, code, r.stderr);
  assert.doesNotMatch(r.stderr, /unexpected failure|\n\s+at /, r.stderr);
  assert.ok(r.exitMs < 1000, `${command} took ${Math.round(r.exitMs)} ms to stop after the signal`);
  assert.ok(r.filesLeft > 0, 'the delete ran to its end');
}

void test(`SIGTERM while status deletes a ${FILES}-file staging copy: exit 143 at once, the next status finishes it`, async (t) => {
  const scene = await crashedScene(t, 'copy-done');
  assert.ok(fs.readdirSync(path.join(scene.root, '.tmp')).some((n) => n.startsWith('stage.')), 'no staging copy was left');
  const r = await interruptDelete(scene, ['status', scene.root, '--json'], 'SIGTERM');
  assertStopped(r, 'status', 143, t);
  checkInterrupted(scene, 'status');
  await checkNextStatus(scene, 'status');
});

void test(`SIGINT while deploy's recovery deletes a placed ${FILES}-file release: exit 130 at once, it never stays under its id`, async (t) => {
  const scene = await crashedScene(t, 'release-ready');
  assert.ok(fs.existsSync(path.join(scene.root, 'releases', 'r2')), 'the crashed deploy did not place its release');
  const small = path.join(path.dirname(scene.root), 'small');
  const r = await interruptDelete(scene, ['deploy', small, scene.root, '--release-id', 'r3', '--no-fsync', '--json'], 'SIGINT');
  assertStopped(r, 'deploy', 130, t);
  assert.ok(!fs.existsSync(path.join(scene.root, 'releases', 'r2')), 'the interrupted release is still under its id');
  assert.ok(!fs.existsSync(path.join(scene.root, 'releases', 'r3')), 'the deploy went on after the signal');
  checkInterrupted(scene, 'deploy');
  await checkNextStatus(scene, 'deploy');
});

void test(`SIGTERM while prune deletes a ${FILES}-file release after the lock: exit 143 at once, the next status finishes it`, async (t) => {
  const dir = tempDir(t);
  const small = makeSource(path.join(dir, 'small'), 'small');
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', bigBuild(), root, '--release-id', 'r1', '--no-fsync', '--quiet', '--keep', '0'], { timeoutMs: 300_000 });
  assert.equal(first.code, 0, first.stderr);
  for (const id of ['r2', 'r3']) {
    const r = await runCli(['deploy', small, root, '--release-id', id, '--no-fsync', '--quiet', '--keep', '0']);
    assert.equal(r.code, 0, r.stderr);
  }
  const manifests = new Map(['r2', 'r3'].map((id) => [id, manifestOf(path.join(root, 'releases', id))] as const));
  const scene: Scene = { root, live: 'r3', kept: manifests, sources: [manifestOf(small)] };
  // Keeps r3 (current) and r2 (its rollback target): r1 goes. --force: the count below holds r1's
  // directories open for a moment, and the in-use check would keep r1 for it.
  const r = await interruptDelete(scene, ['prune', root, '--keep', '1', '--force', '--json'], 'SIGTERM');
  assertStopped(r, 'prune', 143, t);
  checkInterrupted(scene, 'prune');
  await checkNextStatus(scene, 'prune');
});
