// The health check after the switch, against a real nginx serving <root>/current: a failing
// release is switched back automatically (exit 4), marked failed, and skipped by later rollbacks.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentId, jsonOf, runCli, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { startNginx } from '../harness/nginx.ts';

interface Json {
  release?: string;
  previous?: string | null;
  health?: { ok: boolean; attempts: number; durationMs: number };
  warnings?: string[];
  interruptedAfterSwitch?: boolean;
  recovered?: string[];
  error?: { code: string; message: string; hint?: string; release?: string; rolledBackTo?: string; live?: boolean };
}

interface LogRecord {
  status: string;
  reason?: string;
  activatedAt?: string;
  endedAt?: string;
  durationMs?: number;
  afterSwitchFailure?: string;
}

function record(root: string, id: string): LogRecord {
  return JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy/releases', `${id}.json`), 'utf8')) as LogRecord;
}

function build(dir: string, name: string, files: Record<string, string>): string {
  return writeTree(path.join(dir, name), files);
}

async function get(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url, { redirect: 'manual' });
  return { status: response.status, body: await response.text() };
}

void test('nginx: a release without health.html is rolled back by itself; failed releases are skipped later', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const nginx = await startNginx({ docroot: path.join(root, 'current') });
  t.after(() => nginx.stop());
  const health = ['--health-url', `${nginx.url}/health.html`, '--health-timeout', '2', '--json', '--keep', '0'];

  const good1 = build(dir, 'v1', { 'index.html': 'v1\n', 'health.html': 'ok\n' });
  const first = await runCli(['deploy', good1, root, '--release-id', 'v1', ...health]);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(jsonOf<Json>(first).health?.ok, true);
  assert.equal(jsonOf<Json>(first).health?.attempts, 1);
  assert.equal((await get(`${nginx.url}/index.html`)).body, 'v1\n');

  const bad = build(dir, 'v2', { 'index.html': 'v2 (broken)\n' });
  const started = Date.now();
  const failed = await runCli(['deploy', bad, root, '--release-id', 'v2', ...health]);
  const elapsed = Date.now() - started;
  assert.equal(failed.code, 4, failed.stderr);
  const error = jsonOf<Json>(failed).error;
  assert.equal(error?.code, 'ROLLED_BACK');
  assert.match(error?.message ?? '', /^health check failed: GET http:\/\/127\.0\.0\.1:\d+\/health\.html returned 404; rolled back to v1$/);
  assert.equal(error?.release, 'v2');
  assert.equal(error?.rolledBackTo, 'v1');
  assert.equal(currentId(root), 'v1');
  assert.equal((await get(`${nginx.url}/index.html`)).body, 'v1\n');
  assert.ok(elapsed < 15_000, `rollback took ${elapsed} ms`);
  t.diagnostic(`failed health check (2 s budget) and rollback: ${elapsed} ms end to end`);
  const failedRecord = record(root, 'v2');
  assert.equal(failedRecord.status, 'failed');
  assert.match(failedRecord.reason ?? '', /returned 404/);
  assert.ok(failedRecord.activatedAt && failedRecord.endedAt);
  // The failed release stays for inspection.
  assert.ok(fs.existsSync(path.join(root, 'releases/v2/index.html')));

  const good3 = build(dir, 'v3', { 'index.html': 'v3\n', 'health.html': 'ok\n' });
  const third = await runCli(['deploy', good3, root, '--release-id', 'v3', ...health]);
  assert.equal(third.code, 0, third.stderr);
  assert.equal(jsonOf<Json>(third).previous, 'v1');
  assert.equal((await get(`${nginx.url}/index.html`)).body, 'v3\n');

  // A plain rollback from v3 passes over the failed v2.
  const back = await runCli(['rollback', root, '--json']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), 'v1');
  assert.equal((await get(`${nginx.url}/index.html`)).body, 'v1\n');
  const list = await runCli(['releases', root, '--json']);
  const roles = Object.fromEntries((jsonOf<{ releases: { id: string; role: string }[] }>(list).releases).map((r) => [r.id, r.role]));
  assert.equal(roles.v2, 'failed');
  assert.equal(roles.v1, 'active');
});

void test('nginx: a redirect is not healthy, and command and URL must both pass', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const nginx = await startNginx({ docroot: path.join(root, 'current') });
  t.after(() => nginx.stop());
  const src = build(dir, 'v1', { 'index.html': 'v1\n', 'health.html': 'ok\n', 'status/index.html': 'ok\n' });
  const ok = await runCli(['deploy', src, root, '--release-id', 'v1', '--health-url', `${nginx.url}/health.html`, '--health-check', 'test -f health.html', '--json']);
  assert.equal(ok.code, 0, ok.stderr);

  // nginx answers /status (a directory) with 301 to /status/.
  assert.equal((await get(`${nginx.url}/status`)).status, 301);
  const redirected = await runCli(['deploy', src, root, '--release-id', 'v2', '--health-url', `${nginx.url}/status`, '--health-timeout', '1', '--json']);
  assert.equal(redirected.code, 4, redirected.stderr);
  assert.match(jsonOf<Json>(redirected).error?.message ?? '', /returned 301 \(redirect to .*; only 2xx counts\)/);
  assert.equal(currentId(root), 'v1');

  const commandFails = await runCli(['deploy', src, root, '--release-id', 'v3', '--health-url', `${nginx.url}/health.html`, '--health-check', 'test -f missing.html', '--health-timeout', '1', '--json']);
  assert.equal(commandFails.code, 4, commandFails.stderr);
  assert.match(jsonOf<Json>(commandFails).error?.message ?? '', /command "test -f missing\.html" exited with code 1; rolled back to v1/);
  // A release rolled back records how long its deploy took, as every other record does.
  assert.equal(record(root, 'v3').status, 'failed');
  assert.ok((record(root, 'v3').durationMs ?? 0) > 0, `durationMs of the rolled-back release: ${String(record(root, 'v3').durationMs)}`);
});

void test('the check is retried with backoff until it passes within the budget', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const src = build(dir, 'src', { 'index.html': 'x\n' });
  // Fails twice, then passes: like an app that needs a moment to warm up.
  const check = 'n=$(cat "$HOOK_OUT/n" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$HOOK_OUT/n"; echo "attempt $n"; [ $n -ge 3 ]';
  const result = await runCli(['deploy', src, root, '--health-check', check, '--health-timeout', '10'], { env: { HOOK_OUT: dir } });
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /\[health-check\] attempt 1/);
  assert.match(result.stdout, /health check attempt 2 failed \(command .* exited with code 1\); retrying in 500 ms/);
  assert.match(result.stdout, /health check passed \(attempt 3/);
});

void test('with no previous release a failed check exits 1 and says the release stays live', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const src = build(dir, 'src', { 'index.html': 'x\n' });
  const result = await runCli(['deploy', src, root, '--release-id', 'only', '--health-check', 'echo not ready >&2; exit 1', '--health-timeout', '1', '--json']);
  assert.equal(result.code, 1, result.stderr);
  const error = jsonOf<Json>(result).error;
  assert.equal(error?.code, 'HEALTH_CHECK_FAILED');
  assert.match(error?.message ?? '', /there is no previous release to roll back to, so release only stays live/);
  assert.equal(error?.live, true);
  assert.equal(currentId(root), 'only');
  assert.equal(record(root, 'only').status, 'failed');
  assert.ok(!fs.existsSync(path.join(root, '.atomic-deploy/journal.json')));
  assert.match(result.stderr, /\[health-check\] not ready/);
  // Said once, as the error: it was printed twice, first as a warning.
  const other = await runCli(['deploy', src, path.join(dir, 'fresh'), '--health-check', 'exit 1', '--health-timeout', '1']);
  assert.equal(other.code, 1, other.stderr);
  assert.equal(other.stderr.split('\n').filter((l) => l.includes('stays live')).length, 1, other.stderr);
  assert.match(other.stderr, /^error: health check failed: .* stays live$/m);
});

void test('a crash in the middle of the automatic rollback is finished by the next command', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const src = build(dir, 'src', { 'index.html': 'x\n' });
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'good'])).code, 0);
  const failing = ['--health-check', 'exit 1', '--health-timeout', '1'];

  // Killed after the temp link is made, before the rename back: the failed release is still live.
  const before = await runCli(['deploy', src, root, '--release-id', 'bad1', ...failing], { failpoints: 'rollback-temp-link-made=crash' });
  assert.equal(before.signal, 'SIGKILL');
  assert.equal(currentId(root), 'bad1');
  const status1 = await runCli(['status', root, '--json']);
  assert.equal(status1.code, 0, status1.stderr);
  const recovered1 = jsonOf<{ recovered: string[] }>(status1).recovered.join('\n');
  assert.match(recovered1, /marked release bad1 failed \(health check failed: command "exit 1" exited with code 1\); it is still live/);
  // Recovery never moves current by itself; the record tells the next rollback where to go.
  assert.equal(currentId(root), 'bad1');
  assert.equal(record(root, 'bad1').status, 'failed');
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')).filter((n) => n.startsWith('current.')), []);
  const back = await runCli(['rollback', root, '--json']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), 'good');

  // Killed right after the rename back: current is already right, the record is finished later.
  const after = await runCli(['deploy', src, root, '--release-id', 'bad2', ...failing], { failpoints: 'rollback-after-switch=crash' });
  assert.equal(after.signal, 'SIGKILL');
  assert.equal(currentId(root), 'good');
  assert.equal(record(root, 'bad2').status, 'pending');
  const status2 = await runCli(['status', root, '--json']);
  assert.match(jsonOf<{ recovered: string[] }>(status2).recovered.join('\n'), /marked release bad2 failed .*; good is live/);
  assert.equal(record(root, 'bad2').status, 'failed');
  assert.ok(!fs.existsSync(path.join(root, '.atomic-deploy/journal.json')));
});

void test('a signal during the health check stops it; the switch stands, unverified', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const src = build(dir, 'src', { 'index.html': 'x\n' });
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  const run = spawnCli(['deploy', src, root, '--release-id', 'two', '--health-check', 'echo $$ > "$HOOK_OUT/check.pid"; sleep 300', '--json'], { env: { HOOK_OUT: dir } });
  const pidFile = path.join(dir, 'check.pid');
  for (let i = 0; i < 500 && !fs.existsSync(pidFile); i++) await sleep(20);
  await sleep(50);
  run.child.kill('SIGTERM');
  const result = await run.done;
  assert.equal(result.code, 143, result.stderr);
  const json = jsonOf<Json>(result);
  assert.equal(json.release, 'two');
  assert.equal(json.interruptedAfterSwitch, true);
  assert.match(json.warnings?.[0] ?? '', /health check did not finish; release two stays live unverified/);
  // Nothing failed: a warning and the signal's exit code say it, no error (exit 7's AFTER_SWITCH_FAILED).
  assert.equal(json.error, undefined);
  assert.equal(currentId(root), 'two');
  assert.equal(record(root, 'two').status, 'complete');
  // Recorded unverified, as an exit 7 is, and shown so: the warning alone was gone once read.
  assert.match(record(root, 'two').afterSwitchFailure ?? '', /^interrupted by SIGTERM: the health check did not finish/);
  const listed = await runCli(['releases', root]);
  assert.match(listed.stdout, /^\* +two +active, unverified /m);
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  let gone = false;
  for (let i = 0; i < 100 && !gone; i++) {
    gone = !fs.existsSync(`/proc/${pid}`) || /\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
    if (!gone) await sleep(20);
  }
  assert.ok(gone, 'the health-check command survived');
});

void test('health options are validated before anything is written', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const src = build(dir, 'src', { 'index.html': 'x\n' });
  for (const args of [['--health-url', 'ftp://example.invalid/'], ['--health-url', 'not a url'], ['--health-check', ''], ['--health-check', 'true', '--health-timeout', '-1']]) {
    const result = await runCli(['deploy', src, root, ...args, '--json']);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
  }
  assert.ok(!fs.existsSync(root));
});

// An error right after the automatic rollback's switch back was said as the deploy's bookkeeping
// failing after its own switch: `release v2 is live, but …`, exit 1, while v1 was live.
void test('an I/O error right after the automatic rollback switched back: exit 4, the previous release live, and the error does not call the failed one live', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', build(dir, 'v1', { 'index.html': 'v1\n' }), root, '--release-id', 'v1', '--no-fsync'])).code, 0);
  const r = await runCli(['deploy', build(dir, 'v2', { 'index.html': 'v2\n' }), root, '--release-id', 'v2', '--no-fsync', '--health-check', 'false', '--health-timeout', '1', '--json'], { failpoints: 'rollback-after-switch=error:EIO' });
  assert.equal(r.code, 4, r.stderr);
  const error = jsonOf<Json>(r).error;
  assert.deepEqual([error?.code, error?.release, error?.rolledBackTo, error?.live], ['ROLLED_BACK', 'v2', 'v1', undefined]);
  assert.match(error?.message ?? '', /; rolled back to v1 \(recording it failed: .*EIO.*; the next command finishes the record\)$/);
  assert.equal(currentId(root), 'v1');
  // The next command finishes the record: v2 failed, v1 live.
  assert.equal((await runCli(['status', root])).code, 0);
  assert.equal(record(root, 'v2').status, 'failed');
});
