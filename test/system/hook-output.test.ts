// A hook or health check printing without pause into a standard output read slower than it
// writes (a pipe whose reader is behind): the command's output is held until the reader catches
// up, so the deploy stays small and every line arrives; a health check's output can no longer
// exhaust the heap between a failed check and its automatic rollback.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { binFor, cliEnv, currentId, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { createFleet, currentOf } from '../harness/fleet.ts';

/** `bytes` of 'a' in lines of 100: what a chatty build step or log dump looks like to us. */
const printing = (bytes: number): string => `head -c ${bytes} /dev/zero | tr '\\0' a | fold -w 100`;

/**
 * Runs the CLI with its stdout in a pipe nobody reads for `lateMs`, then read to the end; the
 * highest resident size the kernel saw (VmHWM), sampled until it exits.
 */
async function withLateReader(args: readonly string[], lateMs: number, env: NodeJS.ProcessEnv = {}, late: 'stdout' | 'stderr' = 'stdout'): Promise<{ code: number | null; stdout: string; stderr: string; peakKb: number }> {
  const child = spawn(process.execPath, [binFor(cliEnv()), ...args], { env: cliEnv(undefined, env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const other = late === 'stdout' ? child.stderr : child.stdout;
  const slow = late === 'stdout' ? child.stdout : child.stderr;
  other.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let peakKb = 0;
  let running = true;
  const sampler = (async () => {
    while (running) {
      try {
        const hwm = /VmHWM:\s+(\d+)/.exec(fs.readFileSync(`/proc/${child.pid ?? 0}/status`, 'utf8'))?.[1];
        if (hwm !== undefined) peakKb = Math.max(peakKb, Number(hwm));
      } catch {
        // exited
      }
      await sleep(50);
    }
  })();
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  // A paused pipe: until then, the kernel's 64 KiB is all the reader takes.
  slow.pause();
  await sleep(lateMs);
  const chunks: Buffer[] = [];
  slow.on('data', (c: Buffer) => chunks.push(c));
  slow.resume();
  const code = await closed;
  clearTimeout(killer);
  running = false;
  await sampler;
  // `stdout` is what came on the stream read late, `stderr` the other one.
  return { code, stdout: Buffer.concat(chunks).toString('utf8'), stderr, peakKb };
}

async function site(t: { after(fn: () => void): void }): Promise<{ src: string; root: string; first: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  const r = await runCli(['deploy', src, root, '--no-fsync', '-q']);
  assert.equal(r.code, 0, r.stderr);
  return { src, root, first: currentId(root) ?? '' };
}

void test('an after-switch hook printing 60 MB into a stdout read late: every line arrives, and the deploy stays small', async (t) => {
  const s = await site(t);
  const r = await withLateReader(['deploy', s.src, s.root, '--no-fsync', '--after-switch', printing(60_000_000)], 3000);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('[after-switch] a'));
  assert.equal(lines.length, 600_000, 'every line of the hook arrived');
  assert.ok(lines.every((l) => l === `[after-switch] ${'a'.repeat(100)}`), 'lines arrived whole');
  // Held, the hook waits for the reader; before, the deploy kept all of it (1.3 GB for 100 MB here).
  assert.ok(r.peakKb < 400_000, `the deploy grew to ${Math.round(r.peakKb / 1024)} MiB`);
});

void test('a failing health check printing 12 MB into a stdout read late, in a 64 MB heap: rolled back (exit 4), not a crash that leaves the failed release live', async (t) => {
  const s = await site(t);
  const r = await withLateReader(['deploy', s.src, s.root, '--no-fsync', '--health-check', `${printing(12_000_000)}; exit 1`, '--health-timeout', '5'], 2000, { NODE_OPTIONS: '--max-old-space-size=64' });
  // Before: "JavaScript heap out of memory", exit 134, the failed release live and the lock left.
  assert.equal(r.code, 4, r.stderr.slice(-2000));
  assert.equal(currentId(s.root), s.first, 'the previous release is live again');
  assert.match(r.stderr, /^error: health check failed: .*rolled back to /m);
  assert.ok(!fs.existsSync(path.join(s.root, '.deploy.lock')), 'the lock was released');
  assert.ok(!fs.existsSync(path.join(s.root, '.atomic-deploy', 'journal.json')), 'the journal was cleared');
});

// The same on a fleet host: its hook's output comes over ssh's stderr channel, which was read as
// fast as it came and kept until stdout took it (the CLI grew past 1 GB for 60 MB). Now the
// channel is not read while the output is held, and ssh's flow control makes the hook wait.
void test("a fleet host's after-switch hook printing 60 MB into a stdout read late: every line arrives, and the deploy stays small", async (t) => {
  const fleet = await createFleet(1, { prefix: 'aho' });
  t.after(() => fleet.destroy());
  const host = fleet.hosts[0];
  assert.ok(host);
  const src = writeTree(path.join(tempDir(t), 'src'), { 'index.html': 'v1\n' });
  const root = `${host.srvPath}/app`;
  const env = { ATOMIC_DEPLOY_SSH_CONFIG: fleet.sshConfigPath };
  // A host's output lines are its programs' stderr, which the CLI prints on its own stderr.
  const r = await withLateReader(['deploy', src, root, '--host', host.alias, '--no-fsync', '--after-switch', printing(60_000_000)], 3000, env, 'stderr');
  assert.equal(r.code, 0, r.stderr.slice(-2000));
  const lines = r.stdout.split('\n').filter((l) => l.startsWith(`[${host.alias} after-switch] a`));
  assert.equal(lines.length, 600_000, 'every line of the hook arrived');
  const broken = lines.filter((l) => l !== `[${host.alias} after-switch] ${'a'.repeat(100)}`);
  assert.deepEqual(broken.slice(0, 3).map((l) => JSON.stringify(l).slice(0, 300)), [], 'lines arrived whole');
  assert.ok(currentOf(path.join(host.srvDir, 'app')) !== null, 'the release is live on the host');
  assert.ok(r.peakKb < 400_000, `the deploy grew to ${Math.round(r.peakKb / 1024)} MiB`);
});
