// before-switch and after-switch hooks through the CLI: environment, cwd, order, streamed output,
// failure handling, timeouts and signals that kill the hook's whole process group.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentId, jsonOf, releaseIds, runCli, spawnCli, tempDir, writeTree } from '../harness/cli.ts';

interface Json {
  release?: string;
  previous?: string | null;
  warnings?: string[];
  error?: { code: string; message: string; hint?: string };
}

/** Alive and not a zombie (an orphaned zombie may wait a while for its reaper). */
function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function waitForFile(file: string, ms: number): Promise<string> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    try {
      const text = fs.readFileSync(file, 'utf8');
      if (text.endsWith('\n')) return text;
    } catch {
      // not yet
    }
    await sleep(20);
  }
  throw new Error(`${file} did not appear within ${ms} ms`);
}

function pidsIn(dir: string, names: string[]): number[] {
  return names.map((n) => Number(fs.readFileSync(path.join(dir, n), 'utf8').trim()));
}

function setup(t: { after(fn: () => void): void }, rootName = 'root'): { dir: string; src: string; root: string; env: NodeJS.ProcessEnv } {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  return { dir, src, root: path.join(dir, rootName), env: { HOOK_OUT: dir } };
}

const RECORD_ENV = [
  'printf "%s\\n" "$ATOMIC_DEPLOY_RELEASE_ID" "$ATOMIC_DEPLOY_RELEASE_PATH" "$ATOMIC_DEPLOY_PREVIOUS_ID" "$ATOMIC_DEPLOY_ROOT" "$(pwd)" "$(readlink "$ATOMIC_DEPLOY_ROOT/current")"',
].join('');

void test('hooks see the release through the environment, run in it, before and after the switch', async (t) => {
  // A root whose name would run a command if it were ever pasted into a shell string.
  const { dir, src, root, env } = setup(t, `root with space $(touch PWNED) 'q' "dq" ;echo`);
  const first = await runCli(['deploy', src, root, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const previous = jsonOf<Json>(first).release as string;

  const result = await runCli(
    [
      'deploy', src, root,
      '--before-switch', `${RECORD_ENV} > "$HOOK_OUT/before.txt"; echo "hello from before"`,
      '--before-switch', 'echo second before hook; echo to stderr >&2',
      '--after-switch', `${RECORD_ENV} > "$HOOK_OUT/after.txt"; printf 'no newline at the end'`,
    ],
    { env },
  );
  assert.equal(result.code, 0, result.stderr);
  const id = currentId(root) as string;
  assert.notEqual(id, previous);
  const releaseDir = path.join(root, 'releases', id);
  const [bId, bPath, bPrev, bRoot, bCwd, bCurrent] = fs.readFileSync(path.join(dir, 'before.txt'), 'utf8').split('\n');
  assert.equal(bId, id);
  assert.equal(bPath, releaseDir);
  assert.equal(bPrev, previous);
  assert.equal(bRoot, root);
  assert.equal(bCwd, releaseDir);
  assert.equal(bCurrent, `releases/${previous}`, 'before-switch runs while the old release is live');
  const after = fs.readFileSync(path.join(dir, 'after.txt'), 'utf8').split('\n');
  assert.equal(after[5], `releases/${id}`, 'after-switch runs once the new release is live');

  // Streamed, line by line, prefixed with the hook that printed it; order kept within a stream.
  const out = result.stdout.split('\n');
  assert.ok(out.includes('[before-switch] hello from before'), result.stdout);
  assert.ok(out.indexOf('[before-switch] hello from before') < out.indexOf('[before-switch] second before hook'));
  assert.ok(out.includes('[after-switch] no newline at the end'), result.stdout);
  assert.ok(result.stderr.split('\n').includes('[before-switch] to stderr'), result.stderr);
  assert.ok(!fs.existsSync(path.join(dir, 'PWNED')) && !fs.existsSync('PWNED'), 'a path was pasted into a shell string');

  // With --json, stdout stays one JSON object: hook output goes to stderr.
  const json = await runCli(['deploy', src, root, '--json', '--before-switch', 'echo chatty'], { env });
  assert.equal(json.code, 0, json.stderr);
  assert.equal(jsonOf<Json>(json).previous, id);
  assert.match(json.stderr, /\[before-switch\] chatty/);
});

void test('a failing before-switch hook aborts: no switch, the release is removed', async (t) => {
  const { src, root } = setup(t);
  const first = await runCli(['deploy', src, root, '--json']);
  const live = jsonOf<Json>(first).release as string;
  const result = await runCli(['deploy', src, root, '--before-switch', 'echo migrating; exit 7', '--after-switch', 'touch "$ATOMIC_DEPLOY_ROOT/../after-ran"', '--json']);
  assert.equal(result.code, 1, result.stderr);
  const error = jsonOf<Json>(result).error;
  assert.equal(error?.code, 'HOOK_FAILED');
  assert.match(error?.message ?? '', /exited with code 7/);
  assert.equal(currentId(root), live);
  assert.deepEqual(releaseIds(root), [live]);
  assert.deepEqual(fs.readdirSync(path.join(root, '.atomic-deploy/releases')), [`${live}.json`]);
  assert.ok(!fs.existsSync(path.join(root, '..', 'after-ran')));
  assert.ok(!fs.existsSync(path.join(root, '.atomic-deploy/journal.json')));
});

void test('a hook that times out has its whole process group killed, SIGTERM then SIGKILL', async (t) => {
  const { dir, src, root, env } = setup(t);
  await runCli(['deploy', src, root]);
  const live = currentId(root);
  // A background child that dies on SIGTERM, and the hook itself ignoring SIGTERM (needs SIGKILL).
  const hook = 'sleep 300 & echo $! > "$HOOK_OUT/bg.pid"; trap "" TERM; echo $$ > "$HOOK_OUT/fg.pid"; exec sleep 300';
  const started = Date.now();
  const result = await runCli(['deploy', src, root, '--before-switch', hook, '--hook-timeout', '1', '--json'], { env });
  const elapsed = Date.now() - started;
  assert.equal(result.code, 1, result.stderr);
  const error = jsonOf<Json>(result).error;
  assert.equal(error?.code, 'HOOK_FAILED');
  assert.match(error?.message ?? '', /timed out after 1 s; its process group was killed/);
  const [bg, fg] = pidsIn(dir, ['bg.pid', 'fg.pid']) as [number, number];
  for (let i = 0; i < 50 && (alive(bg) || alive(fg)); i++) await sleep(20);
  assert.ok(!alive(bg), `background child ${bg} survived`);
  assert.ok(!alive(fg), `hook ${fg} ignoring SIGTERM survived`);
  // 1 s timeout + 3 s grace for the SIGTERM-deaf hook, plus process start-up.
  assert.ok(elapsed >= 3900 && elapsed < 15_000, `took ${elapsed} ms`);
  t.diagnostic(`timed-out hook with a SIGTERM-deaf process: deploy failed after ${elapsed} ms`);
  assert.equal(currentId(root), live);
  assert.equal(releaseIds(root).length, 1);
});

void test('a signal during a before-switch hook kills the hook and undoes the deploy', async (t) => {
  const { dir, src, root, env } = setup(t);
  await runCli(['deploy', src, root]);
  const live = currentId(root);
  const run = spawnCli(['deploy', src, root, '--before-switch', 'sleep 300 & echo $! > "$HOOK_OUT/bg.pid"; echo $$ > "$HOOK_OUT/fg.pid"; wait', '--json'], { env });
  await waitForFile(path.join(dir, 'fg.pid'), 10_000);
  await waitForFile(path.join(dir, 'bg.pid'), 10_000);
  run.child.kill('SIGTERM');
  const result = await run.done;
  assert.equal(result.code, 143, result.stderr);
  assert.equal(jsonOf<Json>(result).error?.code, 'INTERRUPTED');
  const [bg, fg] = pidsIn(dir, ['bg.pid', 'fg.pid']) as [number, number];
  for (let i = 0; i < 50 && (alive(bg) || alive(fg)); i++) await sleep(20);
  assert.ok(!alive(bg) && !alive(fg), 'hook processes survived the interrupted deploy');
  assert.equal(currentId(root), live);
  assert.deepEqual(releaseIds(root), [live]);
});

void test('a failing after-switch hook without a health check exits 7: the switch stands and the output says so', async (t) => {
  const { src, root } = setup(t);
  await runCli(['deploy', src, root]);
  const result = await runCli(['deploy', src, root, '--after-switch', 'exit 3', '--after-switch', 'touch "$ATOMIC_DEPLOY_ROOT/../second-ran"', '--json']);
  assert.equal(result.code, 7, result.stderr);
  const json = jsonOf<Json & { error?: { code: string; message: string; live?: boolean } }>(result);
  assert.equal(currentId(root), json.release);
  assert.equal(json.error?.code, 'AFTER_SWITCH_FAILED');
  assert.equal(json.error?.live, true);
  assert.match(json.error?.message ?? '', /after-switch hook "exit 3" exited with code 3; release .* stays live/);
  assert.match(json.warnings?.[0] ?? '', /after-switch hook "exit 3" exited with code 3; release .* stays live/);
  assert.match(result.stderr, /^error: after-switch hook "exit 3" exited with code 3; release .* stays live/m);
  // Hooks after the failing one do not run.
  assert.ok(!fs.existsSync(path.join(root, '..', 'second-ran')));

  // A person reads the deploy line and the error; the exit code is the same without --json.
  const human = await runCli(['deploy', src, root, '--after-switch', 'exit 3']);
  assert.equal(human.code, 7, human.stderr);
  assert.match(human.stdout, /^deployed \S+:/m);
  assert.match(human.stderr, /^error: after-switch hook "exit 3" .* stays live/m);
  assert.match(human.stderr, /^hint: the switch stands/m);
  assert.equal(currentId(root), releaseIds(root).at(-1));
});

void test('a deploy whose after-switch hook failed (exit 7) prunes nothing: the release is live but unverified', async (t) => {
  const { src, root } = setup(t);
  for (let i = 0; i < 3; i++) assert.equal((await runCli(['deploy', src, root, '--keep', '0'])).code, 0);
  const before = releaseIds(root);
  const failed = await runCli(['deploy', src, root, '--keep', '1', '--after-switch', 'exit 1']);
  assert.equal(failed.code, 7, failed.stderr);
  assert.doesNotMatch(failed.stdout + failed.stderr, /prun/);
  assert.deepEqual(releaseIds(root).slice(0, before.length), before, 'a release was pruned by an unverified deploy');
  assert.equal(releaseIds(root).length, before.length + 1);
  // Control: the same deploy with the hook passing prunes to --keep 1 (plus the rollback target).
  const passed = await runCli(['deploy', src, root, '--keep', '1', '--after-switch', 'true']);
  assert.equal(passed.code, 0, passed.stderr);
  assert.equal(releaseIds(root).length, 2);
});

void test('after-switch hooks with no health check configured report no health check', async (t) => {
  const { src, root } = setup(t);
  const r = await runCli(['deploy', src, root, '--after-switch', 'true', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const json = jsonOf<Json & { health?: unknown }>(r);
  assert.equal(json.health, undefined, JSON.stringify(json.health));
  const human = await runCli(['deploy', src, root, '--after-switch', 'true']);
  assert.equal(human.code, 0, human.stderr);
  assert.doesNotMatch(human.stdout + human.stderr, /health check/);
});

void test('with a health check, a failing after-switch hook rolls back like a failed check', async (t) => {
  const { src, root } = setup(t);
  await runCli(['deploy', src, root]);
  const live = currentId(root);
  const result = await runCli(['deploy', src, root, '--after-switch', 'exit 5', '--health-check', 'true', '--json']);
  assert.equal(result.code, 4, result.stderr);
  const error = jsonOf<Json>(result).error;
  assert.equal(error?.code, 'ROLLED_BACK');
  assert.match(error?.message ?? '', new RegExp(`after-switch hook "exit 5" exited with code 5; rolled back to ${live}`));
  assert.equal(currentId(root), live);
});

void test('a hook that leaves a background process holding its output does not hang the deploy', async (t) => {
  const { dir, src, root, env } = setup(t);
  const started = Date.now();
  const result = await runCli(['deploy', src, root, '--after-switch', 'sleep 30 & echo $! > "$HOOK_OUT/bg.pid"; echo started'], { env });
  const elapsed = Date.now() - started;
  const [bg] = pidsIn(dir, ['bg.pid']) as [number];
  t.after(() => {
    try {
      process.kill(bg, 'SIGKILL');
    } catch {
      // gone
    }
  });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /\[after-switch\] started/);
  assert.match(result.stderr, /left background processes holding its output/);
  assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
});

void test('hook options are validated before anything is written', async (t) => {
  const { src, root } = setup(t);
  for (const args of [['--before-switch', ''], ['--after-switch', '   '], ['--hook-timeout', '0'], ['--hook-timeout', 'soon']]) {
    const result = await runCli(['deploy', src, root, ...args, '--json']);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
  }
  assert.ok(!fs.existsSync(root));
});

void test('a crash as the before-switch hooks start is undone by the next command', async (t) => {
  const { src, root } = setup(t);
  await runCli(['deploy', src, root]);
  const live = currentId(root);
  const crashed = await runCli(['deploy', src, root, '--before-switch', 'true'], { failpoints: 'before-switch-hook=crash' });
  assert.equal(crashed.signal, 'SIGKILL');
  assert.equal(releaseIds(root).length, 2, 'the crashed release sat in releases/ waiting for the switch');
  const status = await runCli(['status', root, '--json']);
  assert.equal(status.code, 0, status.stderr);
  assert.equal(currentId(root), live);
  assert.deepEqual(releaseIds(root), [live]);
});

// A hook on a filesystem mounted noexec was told "chmod +x it", though it had its x bits.
void test('a hook that is executable but on a noexec mount is told so (sh <script>); one without x bits, chmod +x', async (t) => {
  const mnt = tempDir(t);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=10m,noexec', 'tmpfs', mnt]);
  try {
    const src = writeTree(path.join(mnt, 'b'), { 'index.html': 'hi\n', 'hook.sh': '#!/bin/sh\necho hi\n', 'plain.sh': '#!/bin/sh\necho hi\n' });
    fs.chmodSync(path.join(src, 'hook.sh'), 0o755);
    const root = path.join(mnt, 'root');
    const noexec = await runCli(['deploy', src, root, '--before-switch', './hook.sh']);
    assert.equal(noexec.code, 1, noexec.stderr);
    assert.match(noexec.stderr, /^error: before-switch hook "\.\/hook\.sh" exited with code 126 \(\.\/hook\.sh is executable, but could not be run: its filesystem may be mounted noexec; run it with sh \.\/hook\.sh\);/m);
    assert.doesNotMatch(noexec.stderr, /chmod \+x/);
    const plain = await runCli(['deploy', src, root, '--before-switch', './plain.sh --flag']);
    assert.equal(plain.code, 1, plain.stderr);
    assert.match(plain.stderr, /exited with code 126 \(\.\/plain\.sh is not executable: chmod \+x it, or run it with sh \.\/plain\.sh\)/);
    // The hint's way runs it.
    const viaSh = await runCli(['deploy', src, root, '--before-switch', 'sh ./hook.sh', '--quiet']);
    assert.equal(viaSh.code, 0, viaSh.stderr);
  } finally {
    execFileSync('umount', ['-l', mnt]);
  }
});
