// A signal while the build is scanned (before the lock, before anything is written): the deploy
// stops within a fraction of a second with 128+n and nothing made, rather than after the whole
// tree has been read. strace makes every statx of the run 2 ms slow, so a 2,000-file build takes
// seconds to scan on any machine; the signal goes as soon as the log shows the scan has begun.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { binFor, cliEnv, tempDir } from '../harness/cli.ts';
import { requireTools } from '../harness/faults.ts';

const FILES = 2_000;
const DELAY_US = 2_000;

function build(dir: string): string {
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'assets'), { recursive: true });
  for (let i = 0; i < FILES; i++) fs.writeFileSync(path.join(src, 'assets', `f${i}`), `${i}\n`);
  fs.writeFileSync(path.join(src, 'index.html'), 'v1\n');
  return src;
}

interface Run {
  code: number | null;
  stderr: string;
  /** From the signal to the command's end, ms; from the start when no signal was sent. */
  ms: number;
}

/**
 * The CLI under `strace -f`, every statx delayed by DELAY_US; with `signal`, sent to the CLI's
 * node process once the trace shows a statx inside `src/assets` (the scan is under way).
 */
async function slowScan(t: TestContext, args: readonly string[], src: string, log: string, signal?: NodeJS.Signals): Promise<Run> {
  const env = cliEnv(undefined);
  const child = spawn('strace', ['-f', '-qq', '-o', log, '-e', 'trace=statx', '-e', `inject=statx:delay_exit=${DELAY_US}`, process.execPath, binFor(env), ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const ended = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let from = performance.now();
  if (signal !== undefined) {
    const inAssets = `"${path.join(src, 'assets')}/`;
    const deadline = Date.now() + 60_000;
    let text = '';
    while (!text.includes(inAssets)) {
      assert.ok(Date.now() < deadline, `the scan never began:\n${stderr}`);
      await sleep(20);
      text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
    }
    const pid = Number(/^(\d+) /.exec(text)?.[1]);
    assert.ok(pid > 0, `no pid in the trace:\n${text.slice(0, 500)}`);
    from = performance.now();
    process.kill(pid, signal);
  }
  const watchdog = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const code = await ended;
  clearTimeout(watchdog);
  const ms = performance.now() - from;
  t.diagnostic(`${args.slice(0, 1).join(' ')}${signal ? ` ${signal}` : ''}: ${Math.round(ms)} ms${signal ? ' after the signal' : ''}`);
  return { code, stderr, ms };
}

void test('a signal during the scan of the build is answered at once: exit 128+n, nothing written', async (t) => {
  requireTools('strace');
  const dir = tempDir(t);
  const src = build(dir);

  // The scan this slow takes seconds when nothing stops it (the dry run reads the build and stops):
  // what makes "at once" below mean something.
  const whole = await slowScan(t, ['deploy', src, path.join(dir, 'dry'), '--dry-run', '--quiet'], src, path.join(dir, 'whole.log'));
  assert.equal(whole.code, 0, whole.stderr);
  assert.ok(whole.ms > 3_000, `the slowed scan took only ${Math.round(whole.ms)} ms: too short to tell an answered signal from one that waited`);

  for (const [name, args, signal, code] of [
    ['local deploy, SIGINT', ['deploy', src, path.join(dir, 'root')], 'SIGINT', 130],
    ['local deploy, SIGTERM', ['deploy', src, path.join(dir, 'root')], 'SIGTERM', 143],
    // The fleet deploy scans the build before it connects: the host is never tried.
    ['fleet deploy, SIGINT', ['deploy', src, '/srv/site', '--host', '127.0.0.1:1'], 'SIGINT', 130],
  ] as const) {
    const run = await slowScan(t, args, src, path.join(dir, `${code}-${name.split(',')[0]!.replace(/ /g, '-')}.log`), signal);
    assert.equal(run.code, code, `${name}: ${run.stderr}`);
    assert.match(run.stderr, new RegExp(`interrupted by ${signal} while reading ${src.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}; nothing changed`), name);
    assert.doesNotMatch(run.stderr, /\n\s+at /, `${name}: a stack trace`);
    // Answered within the scan's slice and one slowed statx, not after the rest of the tree.
    assert.ok(run.ms < whole.ms / 3, `${name}: ended ${Math.round(run.ms)} ms after the signal (the whole scan takes ${Math.round(whole.ms)} ms)`);
    assert.equal(fs.existsSync(path.join(dir, 'root')), false, `${name}: the root was made`);
  }
  assert.equal(fs.existsSync(path.join(dir, 'dry')), false, 'the dry run made its root');
});
