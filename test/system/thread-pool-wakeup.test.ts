// A lost wakeup of libuv's thread pool (glibc's condition-variable bug, sourceware 25847) must not
// hang a deploy. A preloaded shim (harness/lose-wakeup.c) drops one signal to the pool's sleeping
// threads, as the bug does: the controls show that this hangs Node's fs calls and the CLI run
// without the timer of act/thread-pool.ts; the CLI as shipped finishes every deploy of the sweep.
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

/** CPU time (user + system, clock ticks) a process has used so far, or undefined once it is gone. */
function cpuTicks(pid: number): number | undefined {
  try {
    // After the command's last closing parenthesis (as plan/serving.ts's parseProcStat reads it):
    // state is field 3, utime and stime fields 14 and 15.
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined;
  }
}

/**
 * Runs `node args` with the shim. 'hung': still running after `ms` and then using no CPU for a
 * whole second (asleep for good, not slow on a busy machine); a process still busy is waited for
 * up to 60 s more.
 */
function runNode(args: string[], env: NodeJS.ProcessEnv, ms: number): Promise<{ outcome: 'exited' | 'hung'; code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let hung = false;
    let timer: NodeJS.Timeout | undefined;
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const deadline = Date.now() + ms + 60_000;
    const check = (before: number | undefined): void => {
      const now = child.pid === undefined ? undefined : cpuTicks(child.pid);
      if (now !== undefined && ((before !== undefined && now === before) || Date.now() > deadline)) {
        hung = true;
        child.kill('SIGKILL');
        return;
      }
      timer = setTimeout(() => check(now), 1000);
    };
    timer = setTimeout(() => check(undefined), ms);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ outcome: hung ? 'hung' : 'exited', code, stderr });
    });
  });
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

void test('every deploy of a sweep finishes although one pool wakeup is lost in each; without the timer one hangs', async (t) => {
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
  // through copy, hashing, manifest, switch, log and the deletion of the pruned release.
  const sweep: number[] = [];
  for (let at = 20; at <= 800; at += 20) sweep.push(at);

  const controlRoot = path.join(dir, 'control-root');
  const controlHangs: number[] = [];
  for (const at of sweep) {
    fs.rmSync(controlRoot, { recursive: true, force: true });
    fs.mkdirSync(controlRoot);
    const run = await runNode([untimed, 'deploy', source, controlRoot, '--no-fsync', '--keep', '1'], shimEnv(shim, at), 4000);
    if (run.outcome === 'hung') {
      controlHangs.push(at);
      if (controlHangs.length >= 2) break;
    }
  }
  assert.ok(controlHangs.length > 0, 'without the timer, no deploy of the sweep hung: the sweep cannot show the fix');

  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  let dropped = 0;
  for (const at of sweep) {
    fs.writeFileSync(path.join(source, 'version'), `v${at}\n`);
    const result = await runCli(['deploy', source, root, '--no-fsync', '--keep', '1'], { env: shimEnv(shim, at), timeoutMs: 30_000 });
    assert.equal(result.code, 0, `deploy with wakeup ${at} lost: ${result.signal ?? ''}\n${result.stderr}`);
    if (result.stderr.includes(`dropped signal ${at}`)) dropped += 1;
    assert.equal(fs.readFileSync(path.join(root, 'current', 'version'), 'utf8'), `v${at}\n`);
  }
  // Later deploys prune, so the sweep reaches further into each run than the first one does.
  assert.ok(dropped >= sweep.length / 2, `only ${dropped} of ${sweep.length} runs lost a wakeup`);
  assert.notEqual(currentId(root), null);
  const verify = await runCli(['verify', root], { timeoutMs: 30_000 });
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
});

void test("the installed command survives a wakeup lost while its entry modules load; the ES module entry alone hangs", async (t) => {
  const dir = tempDir(t);
  const shim = buildShim(dir);
  const source = path.join(dir, 'build');
  writeTree(source, { 'index.html': 'hello\n' });
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  const deployed = await runCli(['deploy', source, root, '--no-fsync'], { timeoutMs: 30_000 });
  assert.equal(deployed.code, 0, deployed.stderr);

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
