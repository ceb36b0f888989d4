// A signal while a large tree is deleted (recovery's leftovers, prune's trash, and a second signal
// while a deploy undoes itself after the first): the command stops within a fraction of a second
// with 128+n, leaves the rest under a leftover's name (never under a release's), and the next
// command finishes the delete without touching the releases that stay.
// test-runner: alone (each signal must be answered within a second)
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentId, jsonOf, releaseIds, runCli, spawnCli, tempDir } from '../harness/cli.ts';
import { checkRoot, leftovers, lockExists, makeSource, manifestOf, type Manifest } from '../harness/invariants.ts';
import { REPEAT_WINDOW_MS } from '../../src/plan/signals.ts';

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

/** Files (all but directories) under `dir`; 0 when it is gone (a delete under way may take it meanwhile). */
function filesUnder(dir: string): number {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  let n = 0;
  for (const e of entries) n += e.isDirectory() ? filesUnder(path.join(dir, e.name)) : 1;
  return n;
}

/** Files in what is being deleted: staging copies and trash in `.tmp/`, and every releases/ entry but those in `kept`. */
function leftoverFiles(root: string, kept: ReadonlyMap<string, unknown>): number {
  let n = 0;
  // Not the rest of .tmp/: a stale lock's tombstone stays there for minutes by design.
  for (const name of fs.readdirSync(path.join(root, '.tmp'))) if (/^(stage|trash)\./.test(name)) n += filesUnder(path.join(root, '.tmp', name));
  for (const name of fs.readdirSync(path.join(root, 'releases'))) if (!kept.has(name)) n += filesUnder(path.join(root, 'releases', name));
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
async function interruptDelete(scene: Scene, args: string[], signal: NodeJS.Signals): Promise<{ code: number | null; stdout: string; stderr: string; exitMs: number; filesAtSignal: number; filesLeft: number }> {
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
  return { code: result.code, stdout: result.stdout, stderr: result.stderr, exitMs, filesAtSignal, filesLeft: leftoverFiles(scene.root, scene.kept) };
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
  // r1 is pruned (out of releases/ under the lock), but its files are not all gone: said, not claimed done.
  const pruned = jsonOf<{ removed: { id: string }[]; leftToDelete?: string[] }>({ ...r, signal: null });
  assert.deepEqual(pruned.removed.map((x) => x.id), ['r1']);
  assert.equal(pruned.leftToDelete?.length, 1, r.stdout);
  assert.match(pruned.leftToDelete[0] ?? '', /^\.tmp\/trash\.r1\.[0-9a-f]+$/);
  assert.ok(fs.existsSync(path.join(root, pruned.leftToDelete[0] ?? '')), 'the trash it names is not there');
  assert.match(r.stderr, new RegExp(`^warning: interrupted by SIGTERM while deleting the pruned releases' files: ${pruned.leftToDelete[0]?.replaceAll('.', '\\.')} remains; the next command deletes it$`, 'm'));
  checkInterrupted(scene, 'prune');
  await checkNextStatus(scene, 'prune');
});

interface UndoRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** From the moment the undo was seen deleting (when the second signal goes, if any) to the exit. */
  exitMs: number;
  filesAtSignal: number;
  filesLeft: number;
}

/** The first signal of an undone deploy: raised by the deploy itself at a failpoint, or sent by the test once the copy holds `atFiles` files. */
interface FirstSignal {
  failpoint?: string;
  send?: { signal: NodeJS.Signals; atFiles: number };
}

/**
 * Runs a deploy of the big build, gives it `first` (it undoes itself), waits until the undo is
 * seen deleting what it had copied, then sends `second` (none: the control) and times the exit
 * from there.
 */
async function undoDeploy(scene: Scene, id: string, first: FirstSignal, second: NodeJS.Signals | undefined, json: boolean): Promise<UndoRun> {
  const args = ['deploy', bigBuild(), scene.root, '--release-id', id, '--no-fsync', ...(json ? ['--json'] : [])];
  const { child, done } = spawnCli(args, { timeoutMs: 300_000, ...(first.failpoint ? { failpoints: first.failpoint } : {}) });
  let exited = false;
  void done.then(() => (exited = true));
  let peak = 0;
  let fallen = 0;
  let filesAtSignal = 0;
  let firstSent = false;
  // A copy only grows: the undo has begun when the count falls twice running (one walk may race
  // the rename of the release into trash and miss part of it).
  while (!exited) {
    filesAtSignal = leftoverFiles(scene.root, scene.kept);
    if (first.send && !firstSent && filesAtSignal >= first.send.atFiles) firstSent = child.kill(first.send.signal);
    peak = Math.max(peak, filesAtSignal);
    fallen = peak >= 1000 && filesAtSignal < peak ? fallen + 1 : 0;
    if (fallen === 2) break;
    await sleep(5);
  }
  if (exited) {
    const early = await done;
    assert.fail(`the deploy exited (${early.code}) before its undo was seen deleting (peak ${peak} files, ${filesAtSignal} left): ${early.stdout}${early.stderr}`);
  }
  // The same signal again within REPEAT_WINDOW_MS of the first counts as the first delivered
  // twice. The copy may hold the first one's handler back (for seconds under load), but it had run
  // before the undo began, so the window is timed from there.
  if (second !== undefined && second === first.send?.signal) {
    await sleep(REPEAT_WINDOW_MS + 50);
    if (exited) assert.fail(`the undo ended within ${REPEAT_WINDOW_MS + 50} ms of being seen: too fast here to send a second ${second} that counts`);
    filesAtSignal = leftoverFiles(scene.root, scene.kept);
  }
  const sent = performance.now();
  if (second) child.kill(second);
  const result = await done;
  const exitMs = performance.now() - sent;
  return { code: result.code, stdout: result.stdout, stderr: result.stderr, exitMs, filesAtSignal, filesLeft: leftoverFiles(scene.root, scene.kept) };
}

/** A root on r1 (small) with r0 as its rollback target, both to stay as they are. */
async function liveScene(t: { after(fn: () => void): void }): Promise<Scene & { dir: string }> {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const sources: Manifest[] = [];
  for (const id of ['r0', 'r1']) {
    const src = makeSource(path.join(dir, `src-${id}`), id);
    sources.push(manifestOf(src));
    const r = await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
  }
  const kept = new Map(['r0', 'r1'].map((id) => [id, manifestOf(path.join(root, 'releases', id))] as const));
  return { dir, root, live: 'r1', kept, sources };
}

/** After a second signal stopped an undo: only trees under leftover names stay (no journal, record or manifest of `id`). */
function checkUndoStopped(scene: Scene, id: string, label: string): void {
  checkInterrupted(scene, label);
  assert.ok(!fs.existsSync(path.join(scene.root, 'releases', id)), `${label}: release ${id} is still under its id`);
  const left = leftovers(scene.root);
  assert.ok(left.every((name) => /^(\.tmp\/(stage|trash)|releases\/\.(stage|trash))\./.test(name)), `${label}: left ${left.join(', ')}`);
  assert.ok(!fs.existsSync(path.join(scene.root, '.atomic-deploy', 'releases', `${id}.json`)), `${label}: the record of ${id} was left`);
  // recovered: no manifest of a release that is not there.
  const { problems } = checkRoot(scene.root, { sources: scene.sources, keep: [...scene.kept.keys()], currentIn: [scene.live], recovered: true });
  assert.deepEqual(problems, [], `${label}: ${problems.join('; ')}`);
}

/** After the next status has finished the clean-up, a deploy goes through and goes live. */
async function checkNextDeploy(scene: Scene & { dir: string }, label: string): Promise<void> {
  const src = makeSource(path.join(scene.dir, 'src-next'), 'next');
  const r = await runCli(['deploy', src, scene.root, '--release-id', 'r9', '--no-fsync', '--keep', '0', '--json']);
  assert.equal(r.code, 0, `${label}, the next deploy: ${r.stderr}`);
  assert.equal(currentId(scene.root), 'r9');
  const { problems } = checkRoot(scene.root, { sources: [...scene.sources, manifestOf(src)], keep: ['r1'], currentIn: ['r9'], clean: true, recovered: true });
  assert.deepEqual(problems, [], `${label}, after the next deploy: ${problems.join('; ')}`);
}

void test(`SIGINT during the copy of ${FILES} files, then a second SIGINT while the deploy undoes its staging copy: exit 130 at once, the next status finishes the undo`, async (t) => {
  const scene = await liveScene(t);
  // Late in the copy, so that the undo has most of the files to delete.
  const first: FirstSignal = { send: { signal: 'SIGINT', atFiles: (FILES * 3) / 4 } };
  // The control: the first signal alone lets the undo run to its end, the root as it was.
  const control = await undoDeploy(scene, 'r2', first, undefined, false);
  t.diagnostic(`without a second signal: exit ${control.code} ${Math.round(control.exitMs)} ms after the undo was seen deleting (${control.filesAtSignal} files then)`);
  assert.equal(control.code, 130, control.stderr);
  const clean = checkRoot(scene.root, { sources: scene.sources, keep: [...scene.kept.keys()], currentIn: [scene.live], clean: true, recovered: true });
  assert.deepEqual(clean.problems, [], `control: ${clean.problems.join('; ')}`);
  checkKept(scene, 'control');

  const r = await undoDeploy(scene, 'r3', first, 'SIGINT', false);
  t.diagnostic(`second signal at ${r.filesAtSignal} files, exit after ${Math.round(r.exitMs)} ms with ${r.filesLeft} left`);
  assert.equal(r.code, 130, r.stderr);
  assert.ok(r.filesLeft > 0, 'the undo deleted everything: the second signal did not stop it');
  // Generous for a loaded 2-core machine (the stop itself takes well under 0.1 s); the control
  // shows that this bound is short of what the undo takes when nothing stops it.
  assert.ok(r.exitMs < 1500, `exit ${Math.round(r.exitMs)} ms after the second signal`);
  assert.ok(r.exitMs * 2 < control.exitMs, `exit ${Math.round(r.exitMs)} ms after the second signal, ${Math.round(control.exitMs)} ms without one`);
  assert.doesNotMatch(r.stderr, /unexpected failure|\n\s+at /, r.stderr);
  assert.match(r.stdout, /interrupted by SIGINT: undoing the deploy/, 'the first signal did not say it undoes the deploy');
  assert.match(r.stderr, /second SIGINT stopped the undo while removing \.tmp\/stage\.r3\.[0-9a-f]+; the next command removes the rest/, r.stderr);
  checkUndoStopped(scene, 'r3', 'second SIGINT');
  await checkNextStatus(scene, 'second SIGINT');
  await checkNextDeploy(scene, 'second SIGINT');
});

void test(`SIGTERM right before the switch, then SIGINT while the undo deletes the placed ${FILES}-file release: exit 143 (the first signal's), never under its id`, async (t) => {
  const scene = await liveScene(t);
  const r = await undoDeploy(scene, 'r2', { failpoint: 'release-ready=signal:SIGTERM' }, 'SIGINT', true);
  t.diagnostic(`second signal at ${r.filesAtSignal} files, exit after ${Math.round(r.exitMs)} ms with ${r.filesLeft} left`);
  assert.equal(r.code, 143, r.stderr);
  assert.ok(r.filesLeft > 0, 'the undo deleted everything: the second signal did not stop it');
  assert.ok(r.exitMs < 1500, `exit ${Math.round(r.exitMs)} ms after the second signal`);
  const error = jsonOf<{ error?: { code: string; message: string } }>({ code: r.code, signal: null, stdout: r.stdout, stderr: r.stderr }).error;
  assert.equal(error?.code, 'INTERRUPTED');
  assert.match(error.message, /interrupted by SIGTERM before the switch; a second signal \(SIGINT\) stopped the undo while removing \.tmp\/trash\.r2\.[0-9a-f]+; the next command removes the rest/);
  checkUndoStopped(scene, 'r2', 'SIGTERM then SIGINT');
  await checkNextStatus(scene, 'SIGTERM then SIGINT');
  await checkNextDeploy(scene, 'SIGTERM then SIGINT');
});

let bigTar: string | undefined;

/** The big build as a tar, for a fleet deploy, which extracts an artifact into a local stage first. */
function bigArchive(): string {
  if (bigTar !== undefined) return bigTar;
  const file = path.join(shared, 'big.tar');
  const r = spawnSync('tar', ['-cf', file, '-C', bigBuild(), '.'], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tar: ${r.error?.message ?? r.stderr}`);
  bigTar = file;
  return file;
}

/** Files under the fleet's local stages in `tmp` (its TMPDIR). */
function stageFiles(tmp: string): number {
  let n = 0;
  for (const name of fs.readdirSync(tmp)) if (name.startsWith('atomic-deploy-stage-')) n += filesUnder(path.join(tmp, name));
  return n;
}

/**
 * A fleet deploy of the big tar to a host that refuses connections (loopback port 1): the
 * artifact is extracted into a local stage under `tmp` before any host is reached, and the stage
 * is removed when the deploy ends. `first` goes once the stage holds that many files (none: the
 * deploy fails by itself), `second` once its removal is seen under way; times the exit from there.
 */
async function stageRemoval(tmp: string, first: number | undefined, second: NodeJS.Signals): Promise<{ code: number | null; stdout: string; stderr: string; exitMs: number; filesLeft: number }> {
  const { child, done } = spawnCli(['deploy', bigArchive(), '/srv/never-reached', '--host', 'root@127.0.0.1:1', '--json'], { env: { TMPDIR: tmp }, timeoutMs: 300_000 });
  let exited = false;
  void done.then(() => (exited = true));
  let peak = 0;
  let fallen = 0;
  while (!exited) {
    const files = stageFiles(tmp);
    if (first !== undefined && peak < first && files >= first) child.kill('SIGINT');
    peak = Math.max(peak, files);
    fallen = peak >= 1000 && files < peak ? fallen + 1 : 0;
    if (fallen === 2) break;
    await sleep(5);
  }
  if (exited) {
    const early = await done;
    assert.fail(`the deploy exited (${early.code}) before its stage was seen going (peak ${peak} files): ${early.stdout}${early.stderr}`);
  }
  const sent = performance.now();
  child.kill(second);
  const result = await done;
  return { code: result.code, stdout: result.stdout, stderr: result.stderr, exitMs: performance.now() - sent, filesLeft: stageFiles(tmp) };
}

void test(`a signal while a fleet deploy removes its ${FILES}-file local stage of an artifact stops the delete and names the directory left`, async (t) => {
  const dir = tempDir(t);
  // SIGINT during the extraction, SIGTERM while the stage is being removed: the error names it, the exit code is SIGINT's.
  const tmp1 = path.join(dir, 'tmp1');
  fs.mkdirSync(tmp1);
  const r = await stageRemoval(tmp1, FILES / 2, 'SIGTERM');
  t.diagnostic(`SIGTERM after SIGINT: exit after ${Math.round(r.exitMs)} ms with ${r.filesLeft} files left`);
  assert.equal(r.code, 130, r.stderr);
  assert.ok(r.filesLeft > 0, 'the stage was deleted whole: the second signal did not stop it');
  assert.ok(r.exitMs < 1500, `exit ${Math.round(r.exitMs)} ms after the second signal`);
  const [stage] = fs.readdirSync(tmp1).map((name) => path.join(tmp1, name));
  assert.ok(stage !== undefined);
  const error = jsonOf<{ error?: { code: string; message: string; hint?: string } }>({ code: r.code, signal: null, stdout: r.stdout, stderr: r.stderr }).error;
  assert.equal(error?.code, 'INTERRUPTED');
  assert.match(error.message, new RegExp(`^interrupted by SIGINT while extracting the artifact; nothing was deployed; its local stage ${stage} is left$`));
  assert.equal(error.hint, `rm -rf -- ${stage} removes the stage`);

  // No signal until the deploy has failed by itself (no host answers): the first one stops the removal.
  const tmp2 = path.join(dir, 'tmp2');
  fs.mkdirSync(tmp2);
  const r2 = await stageRemoval(tmp2, undefined, 'SIGINT');
  t.diagnostic(`SIGINT during the removal after the failure: exit after ${Math.round(r2.exitMs)} ms with ${r2.filesLeft} files left`);
  assert.equal(r2.code, 130, r2.stderr);
  assert.ok(r2.filesLeft > 0, 'the stage was deleted whole: the signal did not stop it');
  assert.ok(r2.exitMs < 1500, `exit ${Math.round(r2.exitMs)} ms after the signal`);
  const [stage2] = fs.readdirSync(tmp2).map((name) => path.join(tmp2, name));
  assert.ok(stage2 !== undefined);
  assert.ok(r2.stderr.includes(`warning: a signal stopped the removal of the artifact's local stage: ${stage2} is left`), r2.stderr);
  assert.match(r2.stderr, /cannot connect to root@127\.0\.0\.1:1/);

  // Each stage left still names its process, which is gone: the next fleet command removes it, whatever that command does itself.
  for (const [tmp, left] of [[tmp1, stage], [tmp2, stage2]] as const) {
    const s = await runCli(['status', '/srv/never-reached', '--host', 'root@127.0.0.1:1'], { env: { TMPDIR: tmp }, timeoutMs: 120_000 });
    assert.equal(s.code, 1, s.stderr);
    assert.deepEqual(fs.readdirSync(tmp), [], `${tmp}: ${s.stdout}${s.stderr}`);
    assert.ok(s.stdout.includes(`removing ${left}, left by atomic-deploy process`), s.stdout);
  }
});
