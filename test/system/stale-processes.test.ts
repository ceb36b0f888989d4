// After every switch: processes still running from the release just left are named (human and
// JSON), counted in the release log, and with --stale fail waited for and failed on; reloads of
// systemd units through a stand-in `systemctl` on PATH that records its arguments (CI has no
// running systemd), after the switch and after every rollback.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { currentId, jsonOf, runCli, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { docsConfig, substitute } from '../harness/docs-config.ts';
import { requireTool } from '../harness/swappers.ts';

interface StaleJson {
  check: string;
  release: string;
  processes: { pid: number; command: string; holds: { kind: string; path: string }[] }[];
}
interface DeployJson {
  release?: string;
  previous?: string;
  stale?: StaleJson;
  warnings?: string[];
  error?: { code: string; message: string; hint?: string; stale?: StaleJson };
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

/** Starts `sleep` the way a long-running server would sit in a release; killed after the test. */
function startSleeper(t: { after(fn: () => Promise<void> | void): void }, opts: { cwd: string; stdinFile?: string; script?: string }): ChildProcess {
  const fd = opts.stdinFile ? fs.openSync(opts.stdinFile, 'r') : 'ignore';
  const child = opts.script
    ? spawn('sh', ['-c', opts.script], { cwd: opts.cwd, stdio: [fd, 'ignore', 'ignore'] })
    : spawn('sleep', ['300'], { cwd: opts.cwd, stdio: [fd, 'ignore', 'ignore'] });
  // The test runner must not hold the file itself, or it would be named too.
  if (typeof fd === 'number') fs.closeSync(fd);
  t.after(async () => {
    child.kill('SIGKILL');
    await exited(child);
  });
  return child;
}

/** Waits until /proc shows the process with its cwd (or fd 0) resolved, so a scan cannot miss it by starting early. */
async function settled(pid: number, what: 'cwd' | 'fd/0', expected: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      if (fs.readlinkSync(`/proc/${pid}/${what}`).startsWith(expected)) return;
    } catch {
      // not yet
    }
    await sleep(10);
  }
  throw new Error(`pid ${pid} never showed ${what} under ${expected}`);
}

/** A root with a first release live, and the processes that hold it. */
async function holders(t: { after(fn: () => Promise<void> | void): void }) {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', src, root, '--no-fsync', '--json']);
  assert.equal(first.code, 0, first.stderr);
  const old = jsonOf<DeployJson>(first).release as string;
  const oldDir = path.join(root, 'releases', old);
  const current = path.join(root, 'current');
  const inCwd = startSleeper(t, { cwd: current });
  const withFile = startSleeper(t, { cwd: dir, stdinFile: path.join(current, 'index.html') });
  // One that was there and exited, one that was there and moved on: neither may be named.
  const gone = startSleeper(t, { cwd: current });
  const movedOn = startSleeper(t, { cwd: current, script: 'cd / && exec sleep 300' });
  await settled(inCwd.pid as number, 'cwd', oldDir);
  await settled(withFile.pid as number, 'fd/0', oldDir);
  await settled(movedOn.pid as number, 'cwd', '/');
  gone.kill('SIGKILL');
  await exited(gone);
  return { dir, src, root, old, oldDir, pids: { inCwd: inCwd.pid as number, withFile: withFile.pid as number, gone: gone.pid as number, movedOn: movedOn.pid as number }, kill: [inCwd, withFile] };
}

void test('after a deploy, the processes still in the old release are named in the human output, with a hint; the exited and moved-on ones are not', async (t) => {
  const h = await holders(t);
  const result = await runCli(['deploy', h.src, h.root, '--no-fsync']);
  assert.equal(result.code, 0, result.stderr);
  const warning = result.stderr.split('\n').find((l) => l.startsWith('warning: 2 processes still run from release'));
  assert.ok(warning, result.stderr);
  assert.ok(warning.includes(`pid ${h.pids.inCwd} sleep (working directory releases/${h.old})`), warning);
  assert.ok(warning.includes(`pid ${h.pids.withFile} sleep (open file releases/${h.old}/index.html)`), warning);
  assert.ok(!warning.includes(`pid ${h.pids.gone} `) && !warning.includes(`pid ${h.pids.movedOn} `), warning);
  assert.match(result.stderr, /^hint: reload or restart them .*--reload-unit/m);
  // The release log keeps the count on the release that went live.
  const record = JSON.parse(fs.readFileSync(path.join(h.root, '.atomic-deploy', 'releases', `${currentId(h.root) ?? ''}.json`), 'utf8')) as { staleProcesses?: number };
  assert.equal(record.staleProcesses, 2);
});

void test('--json lists {pid, command, holds} for each, and nothing for a release nobody holds', async (t) => {
  const h = await holders(t);
  const result = await runCli(['deploy', h.src, h.root, '--no-fsync', '--json']);
  assert.equal(result.code, 0, result.stderr);
  const stale = jsonOf<DeployJson>(result).stale as StaleJson;
  assert.equal(stale.check, 'proc');
  assert.equal(stale.release, h.old);
  assert.deepEqual(
    stale.processes.map((p) => ({ pid: p.pid, command: p.command, holds: p.holds })),
    [
      { pid: h.pids.inCwd, command: 'sleep', holds: [{ kind: 'cwd', path: h.oldDir }] },
      { pid: h.pids.withFile, command: 'sleep', holds: [{ kind: 'fd', path: path.join(h.oldDir, 'index.html') }] },
    ].sort((a, b) => a.pid - b.pid),
  );
  // The next deploy leaves a release nobody runs from.
  const next = await runCli(['deploy', h.src, h.root, '--no-fsync', '--json']);
  assert.equal(next.code, 0, next.stderr);
  assert.deepEqual(jsonOf<DeployJson>(next).stale?.processes, []);
});

void test('--stale fail exits 6 while they stay, and the switch stands', async (t) => {
  const h = await holders(t);
  const started = Date.now();
  const result = await runCli(['deploy', h.src, h.root, '--no-fsync', '--stale', 'fail', '--stale-wait', '1', '--json']);
  assert.equal(result.code, 6, result.stderr);
  assert.ok(Date.now() - started >= 1000, 'it waited before failing');
  const error = jsonOf<DeployJson>(result).error;
  assert.equal(error?.code, 'STALE_PROCESSES');
  const live = currentId(h.root);
  assert.equal(error?.message, `2 processes still held release ${h.old} after waiting 1 s; release ${live ?? ''} is live (the switch stands)`);
  assert.deepEqual(error?.stale?.processes.map((p) => p.pid).sort(), [h.pids.inCwd, h.pids.withFile].sort());
  assert.notEqual(live, h.old, 'the switch stands');
  // As for exit 7: the deploy's result, with the error in it, names what is live.
  const json = jsonOf<DeployJson & { error?: { release?: string; live?: boolean }; digest?: string }>(result);
  assert.deepEqual([json.release, json.previous, json.error?.release, json.error?.live], [live, h.old, live, true]);
  assert.match(json.digest ?? '', /^sha256:[0-9a-f]{64}$/);
  assert.equal(json.stale?.processes.length, 2);
  const record = JSON.parse(fs.readFileSync(path.join(h.root, '.atomic-deploy', 'releases', `${live ?? ''}.json`), 'utf8')) as { status: string; staleProcesses?: number };
  assert.equal(record.status, 'complete');
  assert.equal(record.staleProcesses, 2);
  // The lock was released: the next command runs.
  const again = await runCli(['deploy', h.src, h.root, '--no-fsync', '--stale', 'fail', '--stale-wait', '0']);
  assert.equal(again.code, 0, again.stderr);
});

void test('a signal during the --stale fail wait ends the deploy by the signal, not exit 6: the switch stands, nothing is pruned, and the output says the wait was cut short', async (t) => {
  const h = await holders(t);
  for (const [sig, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    const run = spawnCli(['deploy', h.src, h.root, '--no-fsync', '--stale', 'fail', '--stale-wait', '60', '--keep', '1']);
    let out = '';
    run.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.includes('waiting up to 60 s for 2 process(es)'), 20_000);
    const started = Date.now();
    run.child.kill(sig);
    const r = await run.done;
    assert.equal(r.code, code, r.stderr);
    assert.ok(Date.now() - started < 5000, 'it stopped waiting at once');
    assert.doesNotMatch(r.stderr, /^error:/m, 'no exit-6 error: the wait was not made');
    const live = currentId(h.root) ?? '';
    assert.notEqual(live, h.old, 'the switch stands');
    assert.match(r.stdout, new RegExp(`deployed ${live}`));
    assert.match(r.stderr, new RegExp(`^warning: interrupted by ${sig}: the wait for processes to leave release ${h.old} did not finish; release ${live} stays live$`, 'm'));
    assert.match(r.stderr, new RegExp(`^warning: interrupted by ${sig}: no release was pruned`, 'm'));
    assert.ok(fs.existsSync(h.oldDir), 'nothing was pruned');
    // Back to the held release for the next round.
    assert.equal((await runCli(['rollback', h.root, '--to', h.old, '--no-fsync', '--stale', 'off'])).code, 0);
  }
  // rollback the same.
  const deployed = await runCli(['deploy', h.src, h.root, '--no-fsync', '--stale', 'off', '--json']);
  assert.equal(deployed.code, 0, deployed.stderr);
  assert.equal((await runCli(['rollback', h.root, '--to', h.old, '--no-fsync', '--stale', 'off'])).code, 0);
  const to = jsonOf<DeployJson>(deployed).release as string;
  const back = spawnCli(['rollback', h.root, '--to', to, '--no-fsync', '--stale', 'fail', '--stale-wait', '60', '--json']);
  // In the wait once current has moved (no reloads come first).
  await until(() => currentId(h.root) === to, 20_000);
  await sleep(1000);
  back.child.kill('SIGINT');
  const r = await back.done;
  assert.equal(r.code, 130, r.stderr);
  const json = jsonOf<DeployJson & { interruptedAfterSwitch?: boolean }>(r);
  assert.equal(json.error, undefined, r.stdout);
  assert.deepEqual([json.release, json.interruptedAfterSwitch], [to, true]);
  assert.match(r.stderr, /^warning: interrupted by SIGINT: the wait for processes to leave release/m);
});

/** Polls `cond` every 20 ms until it holds; throws after `timeoutMs`. */
async function until(cond: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(20);
  }
}

/** A stand-in systemctl: records its arguments; `reload-or-restart` moves the "service" into the new current after a delay. */
function fakeSystemctl(dir: string, opts: { exitCode?: number; delay?: number } = {}): { env: NodeJS.ProcessEnv; log: string } {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const log = path.join(dir, 'systemctl.log');
  fs.writeFileSync(
    path.join(bin, 'systemctl'),
    [
      '#!/bin/sh',
      // What a deploy asks first: does systemd know the unit? (SYSTEMCTL_UNKNOWN names one it does not.)
      'if [ "$1" = show ]; then [ "$5" = "$SYSTEMCTL_UNKNOWN" ] && echo not-found || echo loaded; exit 0; fi',
      'printf "%s\\n" "$*" >> "$SYSTEMCTL_LOG"',
      'echo "reloading $3"',
      // A restart of the service: the old process goes, a new one starts in the new current, in the background like systemd would.
      `if [ -n "$SERVICE_PIDS" ]; then setsid sh -c 'sleep ${opts.delay ?? 0}; kill $SERVICE_PIDS' </dev/null >/dev/null 2>&1 & fi`,
      `exit ${opts.exitCode ?? 0}`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return { env: { PATH: `${bin}:${process.env.PATH ?? ''}`, SYSTEMCTL_LOG: log }, log };
}

void test('--stale fail succeeds when a reload moves them within the wait; --reload-unit calls systemctl reload-or-restart', async (t) => {
  const h = await holders(t);
  const fake = fakeSystemctl(h.dir, { delay: 2 });
  const env = { ...fake.env, SERVICE_PIDS: `${h.pids.inCwd} ${h.pids.withFile}` };
  const result = await runCli(['deploy', h.src, h.root, '--no-fsync', '--reload-unit', 'app.service', '--reload-unit', 'worker@1.service', '--stale', 'fail', '--stale-wait', '20'], { env });
  assert.equal(result.code, 0, result.stderr);
  assert.equal(fs.readFileSync(fake.log, 'utf8'), 'reload-or-restart -- app.service\nreload-or-restart -- worker@1.service\n');
  assert.match(result.stdout, /^\[reload-unit\] reloading app\.service$/m, 'output prefixed like a hook');
  assert.match(result.stdout, /waiting up to 20 s for 2 process\(es\) to leave release/);
  assert.doesNotMatch(result.stderr, /still run/);
});

void test('control: the same delayed reload with no wait fails with exit 6', async (t) => {
  const h = await holders(t);
  const fake = fakeSystemctl(h.dir, { delay: 2 });
  const env = { ...fake.env, SERVICE_PIDS: `${h.pids.inCwd} ${h.pids.withFile}` };
  const result = await runCli(['deploy', h.src, h.root, '--no-fsync', '--reload-unit', 'app.service', '--stale', 'fail', '--stale-wait', '0'], { env });
  assert.equal(result.code, 6, result.stderr);
  // The deploy is done and live: its line comes before the error, as an exit 7's does.
  assert.match(result.stdout, new RegExp(`^deployed ${currentId(h.root)}: `, 'm'));
  assert.match(result.stderr, /^error: 2 processes still held release /m);
});

void test('reloads run after a rollback and after an automatic rollback; a failing reload is handled like an after-switch hook', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  const fake = fakeSystemctl(dir);
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  const good = currentId(root);

  // Automatic rollback: reloaded for the new release, then again for the one switched back to.
  const failed = await runCli(['deploy', src, root, '--no-fsync', '--reload-unit', 'app.service', '--health-check', 'false', '--health-timeout', '1', '--json'], { env: fake.env });
  assert.equal(failed.code, 4, failed.stderr);
  assert.equal(currentId(root), good);
  assert.equal(fs.readFileSync(fake.log, 'utf8'), 'reload-or-restart -- app.service\nreload-or-restart -- app.service\n');

  // Manual rollback reloads too.
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  const rolled = await runCli(['rollback', root, '--no-fsync', '--reload-unit', 'php8.2-fpm.service'], { env: fake.env });
  assert.equal(rolled.code, 0, rolled.stderr);
  assert.equal(currentId(root), good);
  assert.match(fs.readFileSync(fake.log, 'utf8'), /reload-or-restart -- php8\.2-fpm\.service\n$/);

  // A failing reload without a health check: like a failing after-switch hook, exit 7 and the release stays live.
  const failing = fakeSystemctl(path.join(dir, 'failing'), { exitCode: 1 });
  const warned = await runCli(['deploy', src, root, '--no-fsync', '--reload-unit', 'app.service', '--json'], { env: failing.env });
  assert.equal(warned.code, 7, warned.stderr);
  const json = jsonOf<DeployJson & { error?: { code: string } }>(warned);
  assert.equal(currentId(root), json.release);
  assert.equal(json.error?.code, 'AFTER_SWITCH_FAILED');
  assert.match(json.warnings?.[0] ?? '', /^reload of unit app\.service exited with code 1; release .* stays live/);
  // With a health check, the same failure rolls back (exit 4).
  const back = await runCli(['deploy', src, root, '--no-fsync', '--reload-unit', 'app.service', '--health-check', 'true'], { env: failing.env });
  assert.equal(back.code, 4, back.stderr);
  assert.equal(currentId(root), json.release);
});

void test('a failed after-switch hook without a health check still runs the reloads; rollbacks run the reloads, never the hooks, and say so', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  const fake = fakeSystemctl(dir);
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  const first = currentId(root) ?? '';

  // The release stays live (exit 7), so what serves must be it: the reload runs after the failed hook.
  const hooked = await runCli(['deploy', src, root, '--no-fsync', '--after-switch', 'exit 3', '--reload-unit', 'app.service', '--json'], { env: fake.env });
  assert.equal(hooked.code, 7, hooked.stderr);
  assert.equal(fs.readFileSync(fake.log, 'utf8'), 'reload-or-restart -- app.service\n');
  const live = currentId(root) ?? '';
  const message = `after-switch hook "exit 3" exited with code 3; release ${live} stays live (no health check is configured to decide otherwise)`;
  assert.equal(jsonOf<DeployJson>(hooked).error?.message, message);
  // The release log keeps it apart from a verified release.
  const unverified = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', `${live}.json`), 'utf8')) as { status: string; afterSwitchFailure?: string };
  assert.deepEqual([unverified.status, unverified.afterSwitchFailure], ['complete', message]);
  const listed = await runCli(['releases', root]);
  assert.match(listed.stdout, new RegExp(`^\\* +${live} +active, unverified `, 'm'));
  assert.match(listed.stdout, new RegExp(`^ +${first} +previous `, 'm'));
  // A reload that fails as well is named beside the hook.
  const failing = fakeSystemctl(path.join(dir, 'failing'), { exitCode: 1 });
  const both = await runCli(['deploy', src, root, '--no-fsync', '--after-switch', 'exit 3', '--reload-unit', 'app.service', '--json'], { env: failing.env });
  assert.equal(both.code, 7, both.stderr);
  assert.match(jsonOf<DeployJson>(both).error?.message ?? '', /^after-switch hook "exit 3" exited with code 3; reload of unit app\.service exited with code 1; release \S+ stays live/);

  // With a health check the failed hook rolls back: the reloads run once, for the release switched back to, and its record counts the processes left on the failed one.
  fs.writeFileSync(fake.log, '');
  const before = currentId(root) ?? '';
  const rolled = await runCli(['deploy', src, root, '--no-fsync', '--after-switch', 'exit 3', '--reload-unit', 'app.service', '--health-check', 'true'], { env: fake.env });
  assert.equal(rolled.code, 4, rolled.stderr);
  assert.equal(currentId(root), before);
  assert.equal(fs.readFileSync(fake.log, 'utf8'), 'reload-or-restart -- app.service\n');
  const record = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', `${before}.json`), 'utf8')) as { staleProcesses?: number };
  assert.equal(record.staleProcesses, 0);

  // rollback with a config whose after-switch hooks would reload: it does not run them, and says so.
  const config = path.join(dir, 'atomic-deploy.config.yaml');
  const marker = path.join(dir, 'hook-ran');
  fs.writeFileSync(config, `hooks:\n  afterSwitch: touch ${marker}\n`);
  const back = await runCli(['rollback', root, '--to', first, '--no-fsync', '--config', config]);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), first);
  assert.ok(!fs.existsSync(marker), 'rollback ran an after-switch hook');
  assert.match(back.stderr, /^warning: rollback does not run the config file's after-switch hooks: they belong to deploys$/m);
  assert.match(back.stderr, /^hint: reload what serves with --reload-unit or --reload-php-fpm/m);
  // Nor its health check (one that would fail here): said too, where it was ignored without a word.
  fs.writeFileSync(config, `healthCheck:\n  command: touch ${marker}; exit 1\n`);
  const again = await runCli(['rollback', root, '--to', live, '--no-fsync', '--config', config]);
  assert.equal(again.code, 0, again.stderr);
  assert.ok(!fs.existsSync(marker), 'rollback ran the health check');
  assert.match(again.stderr, /^warning: rollback does not run the config file's health check: it checks deploys, and the release rolled back to is one that served$/m);
});

void test('after an automatic rollback, a first signal does not stop the reloads that bring what serves back; a second one does', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  const log = path.join(dir, 'systemctl.log');
  // The second reload (the one after the rollback) says it started, takes 2 s, then says it finished.
  fs.writeFileSync(path.join(bin, 'systemctl'), [
    '#!/bin/sh',
    'if [ "$1" = show ]; then echo loaded; exit 0; fi',
    'n=$(($(cat "$LOG.n" 2>/dev/null || echo 0) + 1)); echo $n > "$LOG.n"',
    'if [ $n = 2 ]; then echo started >> "$LOG"; sleep 2; fi',
    'echo "reload $n done" >> "$LOG"',
    '',
  ].join('\n'), { mode: 0o755 });
  const env = { PATH: `${bin}:${process.env.PATH ?? ''}`, LOG: log };
  for (const signals of [['SIGINT'], ['SIGINT', 'SIGTERM']] as const) {
    fs.rmSync(log, { force: true });
    fs.rmSync(`${log}.n`, { force: true });
    const run = spawnCli(['deploy', src, root, '--no-fsync', '--reload-unit', 'app.service', '--health-check', 'false', '--health-timeout', '1'], { env });
    await until(() => fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('started'), 30_000);
    for (const sig of signals) {
      run.child.kill(sig);
      await sleep(200);
    }
    const r = await run.done;
    const done = fs.readFileSync(log, 'utf8').includes('reload 2 done');
    if (signals.length === 1) {
      assert.equal(r.code, 4, r.stderr);
      assert.ok(done, 'a first signal stopped the reload back');
      assert.doesNotMatch(r.stderr, /interrupted/);
    } else {
      assert.ok(!done, 'a second signal did not stop the reload back');
      assert.match(r.stderr, /^warning: reload of unit app\.service interrupted.* after rolling back to/m);
    }
  }
});

void test('bad reload and stale options exit 2 with nothing changed; with --host too', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  for (const args of [['--stale', 'maybe'], ['--stale-wait', '-1'], ['--reload-unit', '--now'], ['--reload-unit', 'a b'], ['--reload-timeout', '0'], ['--reload-php-fpm', '']]) {
    const result = await runCli(['deploy', src, root, ...args]);
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.equal(fs.existsSync(root), false, args.join(' '));
  }
  // With --host too, before any host is reached (web1 does not resolve: reaching for it would exit 1).
  for (const args of [['--stale', 'maybe'], ['--reload-unit', '--now'], ['--reload-php-fpm', ''], ['--reload-php-fpm', 'unix:/run/php/php8.2-fpm.sock']]) {
    const fleet = await runCli(['deploy', src, '/srv/x', '--host', 'web1', ...args]);
    assert.equal(fleet.code, 2, `--host ${args.join(' ')}: ${fleet.stderr}`);
  }
  // A relative pid file or socket would be looked for from wherever the command runs (on a fleet host,
  // the login directory for the check and / after the hooks): refused, from a flag or the config file.
  const fpmDir = path.join(dir, 'fpm');
  fs.mkdirSync(fpmDir);
  fs.writeFileSync(path.join(fpmDir, 'php-fpm.pid'), `${process.pid}\n`);
  for (const [spec, said] of [['php-fpm.pid', 'pid file "php-fpm.pid"'], ['unix:run/fpm.sock', 'socket "run/fpm.sock"']] as const) {
    const local = await runCli(['deploy', src, root, '--reload-php-fpm', spec], { cwd: fpmDir });
    assert.equal(local.code, 2, local.stderr);
    assert.match(local.stderr, new RegExp(`^error: invalid php-fpm ${said.replace(/[.]/g, '\\.')} for --reload-php-fpm: not an absolute path$`, 'm'));
    assert.match(local.stderr, /^hint: give the path php-fpm (writes|listens on)/m);
    assert.equal(fs.existsSync(root), false, spec);
  }
  const fleetRelative = await runCli(['deploy', src, '/srv/x', '--host', 'web1', '--reload-php-fpm', 'php-fpm.pid'], { cwd: fpmDir });
  assert.equal(fleetRelative.code, 2, fleetRelative.stderr);
  assert.match(fleetRelative.stderr, /not an absolute path/);
  fs.writeFileSync(path.join(fpmDir, 'atomic-deploy.config.yaml'), 'reload: {phpFpm: php-fpm.pid}\n');
  const fromConfig = await runCli(['deploy', src, root], { cwd: fpmDir });
  assert.equal(fromConfig.code, 2, fromConfig.stderr);
  assert.match(fromConfig.stderr, /^error: invalid php-fpm pid file "php-fpm\.pid" for --reload-php-fpm: not an absolute path$/m);
  assert.match(fromConfig.stderr, /reload\.phpFpm/, 'the hint names the key the value came from');
  assert.equal(fs.existsSync(root), false);
  // A unit systemd does not know, no systemd running, no systemctl at all: refused before anything is written.
  const fake = fakeSystemctl(dir);
  const noSystemd = path.join(dir, 'no-systemd');
  fs.mkdirSync(noSystemd);
  fs.writeFileSync(path.join(noSystemd, 'systemctl'), '#!/bin/sh\necho "System has not been booted with systemd as init system (PID 1). Can\'t operate." >&2\nexit 1\n', { mode: 0o755 });
  const empty = path.join(dir, 'empty-path');
  fs.mkdirSync(empty);
  for (const [env, message] of [
    [{ ...fake.env, SYSTEMCTL_UNKNOWN: 'ap.service' }, /^error: --reload-unit ap\.service: systemd says not-found; nothing was changed$/m],
    [{ PATH: `${noSystemd}:${process.env.PATH ?? ''}` }, /^error: --reload-unit ap\.service: System has not been booted with systemd as init system \(PID 1\)\. Can't operate\.; nothing was changed$/m],
    [{ PATH: empty }, /^error: --reload-unit ap\.service: systemctl is not installed \(no systemd here\); nothing was changed$/m],
  ] as const) {
    for (const args of [['deploy', src, root], ['deploy', src, root, '--dry-run']]) {
      const r = await runCli([...args, '--reload-unit', 'ap.service'], { env });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.match(r.stderr, /^hint: name a unit systemctl knows here \(systemctl list-units --type=service\), or drop --reload-unit$/m);
      assert.equal(fs.existsSync(root), false);
    }
  }
  assert.equal(fs.existsSync(fake.log), false, 'no reload was run');
  // A pid file is looked up here only for a local deploy: a host's is read on the host (port 1 of
  // loopback refuses the connection: exit 1, not 2).
  const hostOnly = await runCli(['deploy', src, '/srv/x', '--host', '127.0.0.1:1', '--reload-php-fpm', '/run/php/host-only.pid']);
  assert.equal(hostOnly.code, 1, hostOnly.stderr);
  assert.doesNotMatch(hostOnly.stderr, /--reload-php-fpm/);
  const local = await runCli(['deploy', src, root, '--reload-php-fpm', '/run/php/host-only.pid']);
  assert.equal(local.code, 2, local.stderr);
  assert.match(local.stderr, /^error: --reload-php-fpm \/run\/php\/host-only\.pid: cannot read the pid file: ENOENT; nothing was changed$/m);
  assert.equal(fs.existsSync(root), false);
});

void test('where /proc cannot be read, the check is reported as not made', async (t) => {
  requireTool('unshare', 'util-linux');
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  // An empty /proc in a private mount namespace: what a system without procfs looks like to us.
  const bin = path.join(path.dirname(new URL(import.meta.url).pathname), '..', '..', 'dist', 'cli', 'bin.js');
  const run = (json: boolean) =>
    spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs none /proc && exec "$0" "$@"', process.execPath, bin, 'deploy', src, root, '--no-fsync', '--stale', 'fail', ...(json ? ['--json'] : [])], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const r = run(true);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as DeployJson;
  assert.deepEqual(out.stale, { check: 'unavailable', release: out.previous, processes: [] });
  const human = run(false);
  assert.equal(human.status, 0, human.stderr);
  assert.match(human.stdout, /stale-process check not made: no \/proc on this system/);
});

/** A stand-in systemctl that runs the unit file of docs/serving.md: WorkingDirectory, then ExecStart, in the background. */
function unitSystemctl(dir: string, unitFile: string): { env: NodeJS.ProcessEnv; pidFile: string; start: () => void } {
  const bin = path.join(dir, 'unit-bin');
  fs.mkdirSync(bin, { recursive: true });
  const pidFile = path.join(dir, 'service.pid');
  const script = path.join(bin, 'systemctl');
  fs.writeFileSync(
    script,
    [
      '#!/bin/sh',
      'if [ "$1" = show ]; then echo loaded; exit 0; fi',
      'printf "%s\\n" "$*" >> "$SYSTEMCTL_LOG"',
      `wd=$(sed -n 's/^WorkingDirectory=//p' '${unitFile}')`,
      `exec_start=$(sed -n 's/^ExecStart=//p' '${unitFile}')`,
      `[ -s '${pidFile}' ] && kill "$(cat '${pidFile}')" 2>/dev/null`,
      `cd "$wd" && { sh -c "exec $exec_start" </dev/null >/dev/null 2>&1 & echo $! > '${pidFile}'; }`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const env = { PATH: `${bin}:${process.env.PATH ?? ''}`, SYSTEMCTL_LOG: path.join(dir, 'unit.log') };
  return { env, pidFile, start: () => void spawnSync(script, ['start', 'shop.service'], { env: { ...process.env, ...env } }) };
}

async function nodeService(t: { after(fn: () => Promise<void> | void): void }, documented: boolean) {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const mark = path.join(dir, 'mark.txt');
  const server = (m: string): string => `require('node:fs').writeFileSync(${JSON.stringify(mark)}, '${m}'); setInterval(() => {}, 1e6);\n`;
  const builds = { A: writeTree(path.join(dir, 'A'), { 'server.js': server('A') }), B: writeTree(path.join(dir, 'B'), { 'server.js': server('B') }) };
  assert.equal((await runCli(['deploy', builds.A, root, '--no-fsync'])).code, 0);
  let unit = substitute(docsConfig('node-systemd'), [['/srv/www/shop', root], ['/usr/bin/node', process.execPath]]);
  // The control: the working directory inside the release, which the docs warn against.
  if (!documented) unit = substitute(unit, [[`WorkingDirectory=${root}\n`, `WorkingDirectory=${root}/current\n`]]);
  const unitFile = path.join(dir, 'shop.service');
  fs.writeFileSync(unitFile, unit);
  const ctl = unitSystemctl(dir, unitFile);
  ctl.start();
  // By the processes' command lines, not the pid file: after-hooks run in the order they were
  // added, so tempDir's removal (with the pid file) runs before this one; a restart also changes the pid.
  t.after(() => {
    for (const name of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      try {
        if (fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(`${root}/`)) process.kill(Number(name), 'SIGKILL');
      } catch {
        // gone, or not ours to read
      }
    }
  });
  const deadline = Date.now() + 10_000;
  while (!fs.existsSync(mark) && Date.now() < deadline) await sleep(20);
  assert.equal(fs.readFileSync(mark, 'utf8'), 'A');
  return { root, builds, mark, ctl };
}

void test('the Node unit of docs/serving.md with --reload-unit: the server runs the new release, outside any release directory', async (t) => {
  const s = await nodeService(t, true);
  const result = await runCli(['deploy', s.builds.B, s.root, '--no-fsync', '--reload-unit', 'shop.service', '--stale', 'fail', '--json'], { env: s.ctl.env });
  assert.equal(result.code, 0, result.stderr);
  const deadline = Date.now() + 10_000;
  while (fs.readFileSync(s.mark, 'utf8') !== 'B' && Date.now() < deadline) await sleep(20);
  assert.equal(fs.readFileSync(s.mark, 'utf8'), 'B', 'the restarted server runs the new release');
  const pid = Number(fs.readFileSync(s.ctl.pidFile, 'utf8'));
  assert.equal(fs.readlinkSync(`/proc/${pid}/cwd`), s.root, 'its working directory is outside the releases');
});

void test('control: the same unit with WorkingDirectory in current and no reload is named and fails --stale fail', async (t) => {
  const s = await nodeService(t, false);
  const pid = Number(fs.readFileSync(s.ctl.pidFile, 'utf8'));
  const result = await runCli(['deploy', s.builds.B, s.root, '--no-fsync', '--stale', 'fail', '--stale-wait', '0.5', '--json'], { env: s.ctl.env });
  assert.equal(result.code, 6, result.stderr);
  const procs = jsonOf<DeployJson>(result).error?.stale?.processes ?? [];
  assert.deepEqual(procs.map((p) => [p.pid, p.holds[0]?.kind]), [[pid, 'cwd']]);
  assert.equal(fs.readFileSync(s.mark, 'utf8'), 'A', 'still the old build');
});

void test('after an automatic rollback, a first signal ends the wait for processes to leave the failed release: exit 4 at once, the previous release live', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  const good = currentId(root) ?? '';
  // A process the after-switch hook leaves in the new release, as a service restarted into it would be.
  const holderPid = path.join(dir, 'holder.pid');
  t.after(() => {
    try {
      process.kill(Number(fs.readFileSync(holderPid, 'utf8')), 'SIGKILL');
    } catch {
      // never started, or gone
    }
  });
  const run = spawnCli(['deploy', src, root, '--no-fsync', '--after-switch', `setsid sleep 120 </dev/null >/dev/null 2>&1 & echo $! > '${holderPid}'`, '--health-check', 'false', '--health-timeout', '1', '--stale', 'fail', '--stale-wait', '60']);
  let out = '';
  run.child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  await until(() => /waiting up to 60 s for 1 process\(es\) to leave release/.test(out), 30_000);
  const failed = /to leave release (\S+)/.exec(out)?.[1] ?? '';
  const started = Date.now();
  run.child.kill('SIGINT');
  const r = await run.done;
  // Before: the signal was ignored until the whole minute had passed.
  assert.ok(Date.now() - started < 5000, `the wait went on after the signal (${Date.now() - started} ms)`);
  assert.equal(r.code, 4, r.stderr);
  assert.equal(currentId(root), good);
  assert.match(r.stderr, new RegExp(`^warning: interrupted by SIGINT: the wait for processes to leave release ${failed} did not finish; release ${good} stays live$`, 'm'));
  assert.match(r.stderr, new RegExp(`^error: health check failed: .*; rolled back to ${good}$`, 'm'));
  assert.ok(!fs.existsSync(path.join(root, '.deploy.lock')), 'the lock was released');
});

void test('a signal while systemd does not answer about --reload-unit ends deploy, its dry run and rollback at once: exit 130, nothing changed', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  assert.equal((await runCli(['deploy', src, root, '--no-fsync'])).code, 0);
  const live = currentId(root);
  const before = fs.readdirSync(path.join(root, 'releases')).sort();
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  const asked = path.join(dir, 'asked');
  // A wedged D-Bus: systemctl show answers nothing until its own timeout.
  fs.writeFileSync(path.join(bin, 'systemctl'), `#!/bin/sh\nif [ "$1" = show ]; then touch '${asked}'; exec sleep 60; fi\nexit 0\n`, { mode: 0o755 });
  const env = { PATH: `${bin}:${process.env.PATH ?? ''}` };
  for (const args of [['deploy', src, root, '--dry-run'], ['deploy', src, root], ['rollback', root]]) {
    fs.rmSync(asked, { force: true });
    const run = spawnCli([...args, '--no-fsync', '--reload-unit', 'app.service'], { env });
    await until(() => fs.existsSync(asked), 20_000);
    const started = Date.now();
    run.child.kill('SIGINT');
    const r = await run.done;
    // Before: the check ran to its 10 s timeout, then said "interrupted by SIGINT while waiting for the lock".
    assert.ok(Date.now() - started < 3000, `${args[0] ?? ''}: ${Date.now() - started} ms after the signal`);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /^error: interrupted by SIGINT while asking systemd about --reload-unit app\.service; nothing was changed$/m);
    assert.equal(currentId(root), live);
    assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), before);
    assert.ok(!fs.existsSync(path.join(root, '.deploy.lock')));
  }
});
