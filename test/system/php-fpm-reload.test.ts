// --reload-php-fpm against real php-fpm 8.2 pools, by both engines: the local one (the CLI) and a
// fleet host's (the sh of remote/stale-script.ts, run by dash and by BusyBox sh as ssh would run
// it there). A daemonizing pool comes back from a reload under a new master pid; an ondemand pool
// starts no worker after one; both are reloads done, not failures. A pid file naming a worker, a
// master the deploy user may not signal, and a socket given without unix: are refused before the
// switch (exit 2, nothing changed); a socket named through a symlink or another spelling is found.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, tempDir, writeTree, type CliResult } from '../harness/cli.ts';
import { asUser, runWrapped, uidOf } from '../harness/faults.ts';
import { findTools } from '../harness/fleet.ts';
import { startPhpFpm, workersOf, type PhpFpm, type PhpFpmOptions } from '../harness/php-fpm.ts';
import { programShells, runProgram } from '../harness/remote-programs.ts';
import { reloadCheckScript, reloadScript } from '../../src/remote/stale-script.ts';
import { frameValue, parseFrames } from '../../src/remote/facts.ts';

const TOOLS = findTools(['busybox', 'dash'] as const);
const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-deploy-fpm-sh-'));
after(() => fs.rmSync(BASE, { recursive: true, force: true }));
fs.chmodSync(BASE, 0o755);
const SHELLS = programShells(BASE, TOOLS, ['date', 'sleep']);

async function pool(t: { after(fn: () => Promise<void>): void }, options: PhpFpmOptions = {}): Promise<PhpFpm> {
  const fpm = await startPhpFpm(options);
  t.after(() => fpm.stop());
  return fpm;
}

/** A root with release v1 live, and builds to deploy next: each prints its name, slow.php after 1.5 s. */
async function site(t: { after(fn: () => void): void }): Promise<{ root: string; build: (name: string) => string }> {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const build = (name: string): string =>
    writeTree(path.join(dir, name), { 'index.php': `<?php echo "${name}";\n`, 'slow.php': `<?php usleep(1500000); echo "slow ${name} done";\n` });
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', build('v1'), root, '--no-fsync', '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  return { root, build };
}

/** One FastCGI request for `script`; resolves with what the pool sent back. */
function fcgi(socket: string, script: string): Promise<string> {
  const rec = (type: number, content: Buffer): Buffer => {
    const head = Buffer.from([1, type, 0, 1, 0, 0, 0, 0]);
    head.writeUInt16BE(content.length, 4);
    return Buffer.concat([head, content]);
  };
  const pair = (k: string, v: string): Buffer => Buffer.concat([Buffer.from([k.length, v.length]), Buffer.from(k), Buffer.from(v)]);
  const params = Buffer.concat([pair('SCRIPT_FILENAME', script), pair('REQUEST_METHOD', 'GET'), pair('SCRIPT_NAME', '/x.php'), pair('QUERY_STRING', '')]);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.createConnection(socket, () => s.write(Buffer.concat([rec(1, Buffer.from([0, 1, 0, 0, 0, 0, 0, 0])), rec(4, params), rec(4, Buffer.alloc(0)), rec(5, Buffer.alloc(0))])));
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
    s.on('error', reject);
  });
}

function alive(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

const re = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A fleet host's reload of `spec`, by `shell`: whether it finished, and what it printed. Not run
 * synchronously: this process's FastCGI clients must go on reading while the reload waits.
 */
async function hostReload(shell: (typeof SHELLS)[number], spec: string, timeoutS = 20): Promise<{ ok: boolean; failed?: string; stderr: string }> {
  const child = spawn(shell.file, ['-c', reloadScript({ units: [], phpFpm: [spec], timeoutS })], { env: shell.env, cwd: BASE, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => out.push(c));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  await new Promise((resolve) => child.on('close', resolve));
  const frames = parseFrames(Buffer.concat(out));
  const failed = frameValue(frames, 'failed');
  return { ok: frameValue(frames, 'reloaded') !== undefined, ...(failed === undefined ? {} : { failed }), stderr };
}

/** What a fleet host's reload check says of `spec`: the master, or the problem. */
function hostCheck(shell: (typeof SHELLS)[number], spec: string, as?: { uid: number; gid: number }): { master?: string; problem?: string } {
  const r = runProgram(shell, reloadCheckScript({ units: [], phpFpm: [spec] }), BASE, '', as);
  assert.equal(frameValue(r.frames, 'checked'), 'ok', `${shell.name}: ${r.stderr}`);
  const master = frameValue(r.frames, 'fpm-master');
  const problem = frameValue(r.frames, 'fpm-problem');
  return { ...(master === undefined ? {} : { master }), ...(problem === undefined ? {} : { problem }) };
}

/** A deploy refused before the switch: exit 2, the message given, nothing written. */
function assertRefused(r: CliResult, root: string, live: string | null, releases: number, message: RegExp): void {
  assert.equal(r.code, 2, r.stderr);
  assert.match(jsonOf<{ error?: { message?: string } }>(r).error?.message ?? '', message);
  assert.equal(currentId(root), live);
  assert.equal(releaseIds(root).length, releases);
}

void test('a daemonizing pool (daemonize = yes): the reload is done when its new master is up, by pid file and by socket, on both engines', async (t) => {
  const fpm = await pool(t, { daemonize: true });
  const { root, build } = await site(t);
  for (const [i, spec] of [fpm.pidFile, `unix:${fpm.socket}`].entries()) {
    const old = fpm.master();
    const r = await runCli(['deploy', build(`d${i}`), root, '--no-fsync', '--reload-php-fpm', spec, '--health-check', 'true']);
    assert.equal(r.code, 0, `${spec}\n${r.stdout}${r.stderr}`);
    const now = fpm.master();
    assert.notEqual(now, old, 'php-fpm forked a new master');
    assert.match(r.stdout, new RegExp(`\\[reload-php-fpm\\] php-fpm master ${old} reloaded as ${now} \\(daemonized\\)$`, 'm'));
    assert.ok(!alive(old));
    assert.match(await fcgi(fpm.socket, path.join(root, 'current', 'index.php')), new RegExp(`d${i}`));
  }
  for (const shell of SHELLS) {
    const old = fpm.master();
    const r = await hostReload(shell, fpm.pidFile);
    assert.ok(r.ok, `${shell.name}: ${r.failed ?? ''}\n${r.stderr}`);
    const now = fpm.master();
    assert.notEqual(now, old, shell.name);
    assert.match(r.stderr, new RegExp(`^php-fpm master ${old} reloaded as ${now} \\(daemonized\\)$`, 'm'), shell.name);
  }
});

void test('an ondemand pool with one busy worker: the reload waits for its request, then is done with no new worker', async (t) => {
  for (const daemonize of [false, true]) {
    const fpm = await pool(t, { pm: 'ondemand', daemonize });
    const { root, build } = await site(t);
    const slowOf = (name: string): string => path.join(path.dirname(root), name, 'slow.php');
    const label = `daemonize = ${daemonize ? 'yes' : 'no'}`;

    let answeredAt = Infinity;
    const slow = fcgi(fpm.socket, slowOf('v1')).finally(() => (answeredAt = performance.now()));
    const until = Date.now() + 5000;
    while (workersOf(fpm.master()).length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    assert.equal(workersOf(fpm.master()).length, 1, `${label}: one worker serves the request`);
    const r = await runCli(['deploy', build('v2'), root, '--no-fsync', '--reload-php-fpm', fpm.pidFile, '--reload-timeout', '10']);
    const returnedAt = performance.now();
    assert.equal(r.code, 0, `${label}\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /sent SIGUSR2 to php-fpm master \d+; 1 worker finish their requests/, label);
    assert.match(await slow, /slow v1 done/, `${label}: the request in flight got its whole answer`);
    assert.ok(answeredAt <= returnedAt, `${label}: the reload waited for the request`);

    for (const shell of SHELLS) {
      let hostAnsweredAt = Infinity;
      const busy = fcgi(fpm.socket, slowOf('v2')).finally(() => (hostAnsweredAt = performance.now()));
      const by = Date.now() + 5000;
      while (workersOf(fpm.master()).length === 0 && Date.now() < by) await new Promise((res) => setTimeout(res, 20));
      const h = await hostReload(shell, fpm.pidFile, 10);
      const hostReturnedAt = performance.now();
      assert.ok(h.ok, `${label}, ${shell.name}: ${h.failed ?? ''}\n${h.stderr}`);
      assert.match(h.stderr, /sent SIGUSR2 to php-fpm master \d+; 1 worker finish their requests/, `${label}, ${shell.name}`);
      assert.match(await busy, /slow v2 done/, `${label}, ${shell.name}`);
      assert.ok(hostAnsweredAt <= hostReturnedAt, `${label}, ${shell.name}: the reload waited for the request`);
    }
  }
});

void test('a pid file naming a php-fpm worker: refused before the switch, the worker never signalled, on both engines', async (t) => {
  const fpm = await pool(t);
  const { root, build } = await site(t);
  const [worker] = workersOf(fpm.pid);
  assert.ok(worker !== undefined);
  const pidFile = path.join(fpm.dir, 'worker.pid');
  fs.writeFileSync(pidFile, `${worker}\n`);
  const problem = `process ${worker} is a php-fpm worker of master ${fpm.pid}, not a master (stale pid file?)`;
  const live = currentId(root);
  for (const extra of [['--dry-run'], []]) {
    const r = await runCli(['deploy', build('v2'), root, '--no-fsync', '--json', '--reload-php-fpm', pidFile, ...extra]);
    assertRefused(r, root, live, 1, new RegExp(`^--reload-php-fpm ${re(pidFile)}: ${re(problem)}; nothing was changed$`));
  }
  for (const shell of SHELLS) {
    assert.deepEqual(hostCheck(shell, pidFile), { problem }, shell.name);
    const h = await hostReload(shell, pidFile);
    assert.ok(!h.ok, shell.name);
    assert.match(h.stderr, new RegExp(`^php-fpm reload \\(${re(pidFile)}\\): ${re(problem)}$`, 'm'), shell.name);
  }
  assert.ok(alive(worker), 'the worker was not signalled');
  assert.ok(workersOf(fpm.pid).includes(worker));
});

void test('a master the deploy user may not signal (EPERM): refused before the switch and in the dry run, on both engines', async (t) => {
  const fpm = await pool(t);
  fs.chmodSync(fpm.dir, 0o755);
  const { root, build } = await site(t);
  const nobody = uidOf('nobody');
  fs.chownSync(root, nobody.uid, nobody.gid);
  for (const entry of fs.readdirSync(root, { recursive: true }) as string[]) fs.lchownSync(path.join(root, entry), nobody.uid, nobody.gid);
  const problem = `cannot signal php-fpm master ${fpm.pid} (EPERM): run the deploy as the pool's user or root`;
  const live = currentId(root);
  for (const extra of [['--dry-run'], []]) {
    const r = await runWrapped(['deploy', build('v2'), root, '--no-fsync', '--json', '--reload-php-fpm', fpm.pidFile, ...extra], { prefix: asUser('nobody') });
    assertRefused(r, root, live, 1, new RegExp(`^--reload-php-fpm ${re(fpm.pidFile)}: ${re(problem)}; nothing was changed$`));
    // The hint follows the problem: not "start php-fpm first" for a master that runs.
    assert.match((JSON.parse(r.stdout) as { error: { hint?: string } }).error.hint ?? '', /^php-fpm's master runs as another user: deploy as that user or root/);
  }
  for (const shell of SHELLS) assert.deepEqual(hostCheck(shell, fpm.pidFile, nobody), { problem }, shell.name);
  // Control: root may signal it.
  for (const shell of SHELLS) assert.deepEqual(hostCheck(shell, fpm.pidFile), { master: String(fpm.pid) }, shell.name);
});

void test('unix:<path> through a symlink, a symlinked directory or a double slash finds the pool; a socket given as a pid file is refused with a hint', async (t) => {
  const fpm = await pool(t);
  const { root, build } = await site(t);
  const dir = tempDir(t);
  const link = path.join(dir, 'php-fpm.sock');
  fs.symlinkSync(fpm.socket, link);
  const dirLink = path.join(dir, 'run');
  fs.symlinkSync(fpm.dir, dirLink);
  const spellings = [link, path.join(dirLink, 'php-fpm.sock'), fpm.socket.replace(/\/([^/]+)$/, '//$1')];
  for (const [i, socket] of spellings.entries()) {
    const r = await runCli(['deploy', build(`s${i}`), root, '--no-fsync', '--reload-php-fpm', `unix:${socket}`]);
    assert.equal(r.code, 0, `${socket}\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, new RegExp(`\\[reload-php-fpm\\] php-fpm master ${fpm.pid} reloaded$`, 'm'), socket);
  }
  const live = currentId(root);
  const r = await runCli(['deploy', build('x'), root, '--no-fsync', '--json', '--reload-php-fpm', fpm.socket]);
  assertRefused(r, root, live, 4, new RegExp(`^--reload-php-fpm ${re(fpm.socket)}: cannot read the pid file: ENXIO \\(it is a socket: did you mean unix:${re(fpm.socket)}\\?\\); nothing was changed$`));
  for (const shell of SHELLS) {
    assert.deepEqual(hostCheck(shell, fpm.socket), { problem: 'cannot read the pid file (it is a socket: a fleet host finds php-fpm by its pid file only)' }, shell.name);
  }
});

void test('a pid file that is a FIFO, a character device or a directory (or a symlink to one): refused at once, exit 2, by deploy, its dry run and rollback', async (t) => {
  const { root, build } = await site(t);
  assert.equal((await runCli(['deploy', build('v2'), root, '--no-fsync', '--quiet'])).code, 0);
  const dir = tempDir(t);
  const fifo = path.join(dir, 'fifo.pid');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  const zero = path.join(dir, 'zero.pid');
  fs.symlinkSync('/dev/zero', zero);
  const directory = path.join(dir, 'dir.pid');
  fs.mkdirSync(directory);
  const live = currentId(root);
  for (const [file, kind] of [[fifo, 'a FIFO \\(named pipe\\)'], [zero, 'a character device'], [directory, 'a directory']] as const) {
    for (const args of [['deploy', build('v3'), root, '--dry-run'], ['deploy', build('v3'), root], ['rollback', root]]) {
      const started = Date.now();
      // A synchronous read of the FIFO blocked the process, signal handlers and all; /dev/zero was read until the heap ran out.
      const r = await runCli([...args, '--no-fsync', '--json', '--reload-php-fpm', file], { timeoutMs: 15_000 });
      assertRefused(r, root, live, 2, new RegExp(`^--reload-php-fpm ${re(file)}: cannot read the pid file: it is ${kind}, not a file php-fpm wrote; nothing was changed$`));
      assert.ok(Date.now() - started < 10_000, `${args[0] ?? ''} ${file}: answered at once`);
    }
  }
});

void test('a stale pid file naming a program whose name only starts with php-fpm (php-fpm_exporter): refused before the switch, the program never signalled', async (t) => {
  const { root, build } = await site(t);
  const dir = tempDir(t);
  // Its command name is cut to 15 characters: php-fpm_exporte. SIGUSR2 would end it, as it ends sleep.
  const exporter = path.join(dir, 'php-fpm_exporter');
  fs.copyFileSync('/bin/sleep', exporter);
  fs.chmodSync(exporter, 0o755);
  const child = spawn(exporter, ['300'], { stdio: 'ignore' });
  t.after(() => void child.kill('SIGKILL'));
  const pid = child.pid ?? 0;
  const pidFile = path.join(dir, 'php-fpm.pid');
  fs.writeFileSync(pidFile, `${pid}\n`);
  const live = currentId(root);
  for (const extra of [['--dry-run'], []]) {
    const r = await runCli(['deploy', build('v2'), root, '--no-fsync', '--json', '--reload-php-fpm', pidFile, ...extra]);
    // Before: taken for a master, the switch made, SIGUSR2 ended the program, exit 7.
    assertRefused(r, root, live, 1, new RegExp(`^--reload-php-fpm ${re(pidFile)}: process ${pid} is php-fpm_exporte, not php-fpm \\(stale pid file\\?\\); nothing was changed$`));
  }
  assert.ok(alive(pid), 'the program was not signalled');
});
