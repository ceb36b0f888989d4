// A lost wakeup of libuv's thread pool (glibc's condition-variable bug, sourceware 25847) must not
// hang a deploy. A preloaded shim (harness/lose-wakeup.c) drops one signal to the pool's sleeping
// threads, as the bug does: the controls show that this hangs Node's fs calls and the CLI run
// without the timer of act/thread-pool.ts; the CLI as shipped finishes every deploy of the sweep.
// test-runner: alone (a hung process is told from a slow one by its CPU time)
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'node:test';
import { TSC_BIN, currentId, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { requireTool } from '../harness/swappers.ts';

const SHIM_SOURCE = new URL('../harness/lose-wakeup.c', import.meta.url);
/** The installed command (package.json `bin`): a CommonJS launcher, then the split ES module entry. */
const LAUNCHER = fileURLToPath(new URL('../../dist/bin/atomic-deploy.cjs', import.meta.url));
const ESM_ENTRY = fileURLToPath(new URL('../../dist/bin/atomic-deploy.js', import.meta.url));
/** Above V8's platform pool (4 threads), so the shim tells libuv's pool apart by its waiters. */
const POOL = '6';

function buildShim(dir: string): string {
  const gcc = requireTool('gcc', 'gcc');
  const out = path.join(dir, 'lose-wakeup.so');
  execFileSync(gcc, ['-shared', '-fPIC', '-O2', '-o', out, new URL(SHIM_SOURCE).pathname, '-ldl', '-lpthread'], { stdio: 'pipe' });
  return out;
}

function shimEnv(shim: string, at: number): NodeJS.ProcessEnv {
  return { LD_PRELOAD: shim, UV_THREADPOOL_SIZE: POOL, LOSE_WAKEUP_AT: String(at), LOSE_WAKEUP_VERBOSE: '1' };
}

/** The fields of a /proc stat line after the command's last closing parenthesis (as plan/serving.ts's parseProcStat reads it). */
function statFields(file: string): string[] {
  const stat = fs.readFileSync(file, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/**
 * CPU time (user + system of all its threads, clock ticks) a process has used so far, and whether
 * any of its threads is runnable (one waiting for a core uses none either), or undefined once it is gone.
 */
function cpuTicks(pid: number): { ticks: number; runnable: boolean } | undefined {
  try {
    // State is field 3, utime and stime fields 14 and 15.
    const fields = statFields(`/proc/${pid}/stat`);
    const runnable = fs.readdirSync(`/proc/${pid}/task`).some((tid) => {
      try {
        return statFields(`/proc/${pid}/task/${tid}/stat`)[0] === 'R';
      } catch {
        return false;
      }
    });
    return { ticks: Number(fields[11]) + Number(fields[12]), runnable };
  } catch {
    return undefined;
  }
}

/** Where the process's main thread sleeps (its kernel wait channel), or undefined once it is gone. */
function mainThreadWait(pid: number): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/wchan`, 'utf8');
  } catch {
    return undefined;
  }
}

interface NodeRun {
  /** 'hung': still running after `ms` and then using no CPU for a whole second. */
  outcome: 'exited' | 'hung';
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** For a hung run: the main thread's wait channel when it was found hung. */
  wait?: string;
  /** For a hung run: whether SIGTERM (what a job runner sends on timeout) ended it. */
  endedByTerm?: boolean;
}

/**
 * Runs `node args` with the shim. A run still going after `ms` that then uses no CPU for a whole
 * second and is not waiting for a core is asleep for good, not slow on a busy machine (a busy one
 * is waited for up to 60 s more):
 * it is sent SIGTERM, then SIGKILL 3 s later if still there.
 */
function runNode(args: string[], env: NodeJS.ProcessEnv, ms: number): Promise<NodeRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let wait: string | undefined;
    let hung = false;
    let timer: NodeJS.Timeout | undefined;
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const deadline = Date.now() + ms + 60_000;
    const check = (before: number | undefined): void => {
      const now = child.pid === undefined ? undefined : cpuTicks(child.pid);
      if (now !== undefined && ((before !== undefined && now.ticks === before && !now.runnable) || Date.now() > deadline)) {
        hung = true;
        wait = child.pid === undefined ? undefined : mainThreadWait(child.pid);
        child.kill('SIGTERM');
        timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        return;
      }
      timer = setTimeout(() => check(now?.ticks), 1000);
    };
    timer = setTimeout(() => check(undefined), ms);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const base = { code, signal, stdout, stderr };
      resolve(hung ? { ...base, outcome: 'hung', wait, endedByTerm: signal === 'SIGTERM' } : { ...base, outcome: 'exited' });
    });
  });
}

/** A main thread asleep in its event loop: what a lost wakeup of work leaves (a request never answered). */
function inEventLoop(run: NodeRun): boolean {
  return run.wait !== undefined && /epoll/.test(run.wait);
}

/** The shim, and a root with one release deployed (undisturbed), for commands that read it. */
async function shimAndRoot(t: { after(fn: () => void): void }): Promise<{ shim: string; root: string }> {
  const dir = tempDir(t);
  const shim = buildShim(dir);
  const source = path.join(dir, 'build');
  writeTree(source, { 'index.html': 'hello\n' });
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  const deployed = await runCli(['deploy', source, root, '--no-fsync'], { timeoutMs: 30_000 });
  assert.equal(deployed.code, 0, deployed.stderr);
  return { shim, root };
}

void test('control: with one pool wakeup lost, sequential fs calls in plain Node never finish', async (t) => {
  const dir = tempDir(t);
  const shim = buildShim(dir);
  const script = path.join(dir, 'sequential.mjs');
  fs.writeFileSync(script, "import fs from 'node:fs';\nfor (let i = 0; i < 200; i++) await fs.promises.stat('/');\n");
  const lost = await runNode([script], shimEnv(shim, 50), 4000);
  assert.match(lost.stderr, /dropped signal 50/);
  assert.equal(lost.outcome, 'hung', 'the shim must reproduce the hang, or the tests below prove nothing');
  // The same script without the shim's drop finishes: the hang is the lost wakeup's alone.
  const kept = await runNode([script], { ...shimEnv(shim, 0) }, 20_000);
  assert.deepEqual([kept.outcome, kept.code], ['exited', 0]);
});

void test('every deploy of a sweep does its work although one pool wakeup is lost in each; without the timer one hangs', async (t) => {
  const dir = tempDir(t);
  const shim = buildShim(dir);
  const source = path.join(dir, 'build');
  const files: Record<string, string> = {};
  for (let i = 0; i < 300; i++) files[`d${i % 10}/f${i}.txt`] = `file ${i}\n`;
  writeTree(source, files);
  // The CLI as bin.js runs it, minus the timer: main.js's runCli, straight.
  const untimed = path.join(dir, 'untimed.mjs');
  fs.writeFileSync(
    untimed,
    `const { runCli } = await import(${JSON.stringify(pathToFileURL(path.join(path.dirname(TSC_BIN), 'main.js')).href)});\n` +
      'process.exit(await runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, signal: new AbortController().signal }));\n',
  );
  // Past start-up (the entry module's own loading, before any of our code runs, is not covered),
  // through copy, hashing, manifest, switch, log, the deletion of the pruned release and the exit.
  const sweep: number[] = [];
  for (let at = 20; at <= 800; at += 20) sweep.push(at);

  const controlRoot = path.join(dir, 'control-root');
  const controlHangs: number[] = [];
  for (const at of sweep) {
    fs.rmSync(controlRoot, { recursive: true, force: true });
    fs.mkdirSync(controlRoot);
    const run = await runNode([untimed, 'deploy', source, controlRoot, '--no-fsync', '--keep', '1'], shimEnv(shim, at), 4000);
    // Only a hang in the middle of the work counts: the event loop waiting for a request the pool never runs.
    if (run.outcome === 'hung' && inEventLoop(run)) {
      controlHangs.push(at);
      if (controlHangs.length >= 2) break;
    }
  }
  assert.ok(controlHangs.length > 0, 'without the timer, no deploy of the sweep hung: the sweep cannot show the fix');

  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  let dropped = 0;
  const teardown: number[] = [];
  for (const at of sweep) {
    fs.writeFileSync(path.join(source, 'version'), `v${at}\n`);
    const run = await runNode([LAUNCHER, 'deploy', source, root, '--no-fsync', '--keep', '1'], shimEnv(shim, at), 10_000);
    const said = `deploy with wakeup ${at} lost: ${run.outcome} ${run.code ?? run.signal ?? ''} ${run.wait ?? ''}\n${run.stdout}${run.stderr}`;
    if (run.outcome === 'hung') {
      // The one place out of the timer's reach: the process teardown (last test below). The work is done.
      assert.ok(!inEventLoop(run), said);
      assert.match(run.stdout, /^deployed /m, said);
      assert.equal(run.endedByTerm, true, said);
      teardown.push(at);
    } else {
      assert.equal(run.code, 0, said);
    }
    if (run.stderr.includes(`dropped signal ${at}`)) dropped += 1;
    assert.equal(fs.readFileSync(path.join(root, 'current', 'version'), 'utf8'), `v${at}\n`);
  }
  t.diagnostic(`wakeups lost in teardown: ${teardown.join(', ') || 'none'}`);
  // Later deploys prune, so the sweep reaches further into each run than the first one does.
  assert.ok(dropped >= sweep.length / 2, `only ${dropped} of ${sweep.length} runs lost a wakeup`);
  assert.notEqual(currentId(root), null);
  const verify = await runCli(['verify', root], { timeoutMs: 30_000 });
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
});

void test("the installed command survives a wakeup lost while its entry modules load; the ES module entry alone hangs", async (t) => {
  const { shim, root } = await shimAndRoot(t);

  // Control: Node reads an ES module entry and its imports on the pool, before any of our code runs.
  const hangs: number[] = [];
  for (let at = 1; at <= 8 && hangs.length === 0; at++) {
    const run = await runNode([ESM_ENTRY, 'status', root], shimEnv(shim, at), 4000);
    assert.match(run.stderr, new RegExp(`dropped signal ${at}\\b`));
    if (run.outcome === 'hung') hangs.push(at);
  }
  assert.ok(hangs.length > 0, 'no early wakeup lost hung the ES module entry: this test cannot show the launcher');

  // The launcher is loaded with synchronous reads and starts the timer before anything is read on the pool.
  for (let at = 1; at <= 12; at++) {
    const run = await runNode([LAUNCHER, 'status', root], shimEnv(shim, at), 4000);
    assert.match(run.stderr, new RegExp(`dropped signal ${at}\\b`), `wakeup ${at} was never lost: the run proves nothing`);
    assert.deepEqual([run.outcome, run.code], ['exited', 0], `status with wakeup ${at} lost:\n${run.stderr}`);
  }
});

void test("a wakeup lost in the process teardown, beyond the timer's reach, leaves a command that has done its work and that SIGTERM ends", async (t) => {
  const { shim, root } = await shimAndRoot(t);

  // An undisturbed run: its output, and how many signals its pool gets, the teardown's last.
  const whole = await runNode([LAUNCHER, 'status', root], shimEnv(shim, 0), 20_000);
  assert.deepEqual([whole.outcome, whole.code], ['exited', 0], whole.stderr);
  const total = Number(/lose-wakeup: (\d+) signals/.exec(whole.stderr)?.[1]);
  assert.ok(total > 8, whole.stderr);

  // At exit libuv wakes each sleeping pool thread to join it, the main thread blocked in the join:
  // no event loop runs there, so no timer can post work, and a lost wakeup keeps the process.
  const hung: number[] = [];
  for (let at = total - 8; at <= total; at++) {
    const run = await runNode([LAUNCHER, 'status', root], shimEnv(shim, at), 3000);
    const said = `status with wakeup ${at} of ${total} lost: ${run.outcome} ${run.code ?? run.signal ?? ''} ${run.wait ?? ''}\n${run.stderr}`;
    assert.equal(run.stdout, whole.stdout, said);
    if (run.outcome === 'exited') {
      assert.equal(run.code, 0, said);
      continue;
    }
    hung.push(at);
    assert.ok(!inEventLoop(run), said);
    // Its signal handlers are gone before it exits: SIGTERM (a job runner's timeout) and Ctrl-C end it.
    assert.equal(run.endedByTerm, true, said);
  }
  assert.ok(hung.length > 0, `no wakeup lost among the last signals (${total - 8}..${total}) kept the process: this test shows nothing`);
  t.diagnostic(`wakeups lost in teardown that kept the process: ${hung.join(', ')} of ${total}`);
});
