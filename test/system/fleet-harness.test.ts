// Proves the fleet harness: real sshd hosts in network namespaces, isolated /srv, rsync,
// sshd and network faults, and cleanup that leaves nothing behind.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFleet, createLoopbackFleet, findTools, type Fleet } from '../harness/fleet.ts';

const HARNESS = fileURLToPath(new URL('../harness/fleet.ts', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // Zombies hold nothing: they count as gone.
  return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** SIGKILLed processes take a moment to be gone: poll briefly before calling one alive. */
async function goneSoon(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
  return !alive(pid);
}

function netnsList(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

function linkNames(): string[] {
  return execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter(Boolean);
}

function pidsMentioning(needle: string): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d) && Number(d) !== process.pid)
    .filter((d) => {
      try {
        return fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle);
      } catch {
        return false;
      }
    })
    .map(Number);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

void describe('namespace fleet of 3 hosts', () => {
  let fleet: Fleet;
  const tmpDirs: string[] = [];

  before(async () => {
    const t0 = performance.now();
    fleet = await createFleet(3);
    process.stderr.write(`# createFleet(3): ${Math.round(performance.now() - t0)} ms\n`);
  });

  after(async () => {
    // Runs even when a test failed, so no sshd, namespace or link outlives the file.
    await fleet?.destroy();
    for (const d of tmpDirs) await fsp.rm(d, { recursive: true, force: true });
  });

  void test('each host answers over plain `ssh -F` with its own hostname and an empty /srv', async () => {
    const seen = new Set<string>();
    for (const h of fleet.hosts) {
      const r = await run('ssh', ['-F', fleet.sshConfigPath, h.alias, 'hostname; ls -A /srv; command -v rsync; readlink /bin/sh || echo sh']);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines[0], h.alias);
      assert.equal(h.hostname, h.alias);
      assert.match(lines[1] ?? '', /\/rsync$/, 'rsync is usable in the session');
      assert.equal(lines.length, 3, `empty /srv expected, got ${r.stdout}`);
      seen.add(lines[0] ?? '');
    }
    assert.equal(seen.size, 3);
    assert.notEqual(os.hostname(), 'host1');
  });

  void test('exec() passes argv through the remote shell untouched', async () => {
    const tricky = ["it's", '$(echo no)', '`echo no`', 'a b', '-n', 'line\nbreak', 'ünï ✓'];
    const r = await fleet.hosts[0]!.exec(['printf', '%s\\0', ...tricky]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.stdout.split('\0').slice(0, -1), tricky);
    const fail = await fleet.hosts[0]!.exec(['sh', '-c', 'echo oops >&2; exit 7']);
    assert.equal(fail.code, 7);
    assert.equal(fail.stderr, 'oops\n');
  });

  void test("a file written to host1's /srv is only in host1's /srv", async () => {
    const [h1, h2] = fleet.hosts;
    const w = await h1!.exec(['sh', '-c', 'echo from-host1 > /srv/only-on-host1']);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(await fsp.readFile(path.join(h1!.srvDir, 'only-on-host1'), 'utf8'), 'from-host1\n');
    const r2 = await h2!.exec(['test', '-e', '/srv/only-on-host1']);
    assert.equal(r2.code, 1, 'host2 must not see it');
    assert.equal(fs.existsSync(path.join(h2!.srvDir, 'only-on-host1')), false);
    assert.equal(fs.existsSync('/srv/only-on-host1'), false, "the machine's own /srv is untouched");
    await h1!.exec(['rm', '/srv/only-on-host1']);
  });

  void test('rsync of a temp dir reaches every host (RSYNC_RSH from env, and -e)', async () => {
    const src = await fsp.mkdtemp(path.join(os.tmpdir(), 'fleet-rsync-src-'));
    tmpDirs.push(src);
    await fsp.mkdir(path.join(src, 'sub dir'));
    await fsp.writeFile(path.join(src, 'index.html'), 'v1\n');
    await fsp.writeFile(path.join(src, 'sub dir', "it's.txt"), 'quoted\n');
    for (const h of fleet.hosts) {
      const r = await run('rsync', ['-a', '--mkpath', `${src}/`, `${h.alias}:/srv/x/`], fleet.env);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await fsp.readFile(path.join(h.srvDir, 'x', 'index.html'), 'utf8'), 'v1\n');
      assert.equal(await fsp.readFile(path.join(h.srvDir, 'x', 'sub dir', "it's.txt"), 'utf8'), 'quoted\n');
    }
    const r = await run('rsync', ['-a', '-e', fleet.sshCommand, `${src}/`, 'host2:/srv/y/']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fsp.readFile(path.join(fleet.hosts[1]!.srvDir, 'y', 'index.html'), 'utf8'), 'v1\n');
  });

  void test('killSshd() makes ssh fail, startSshd() restores it', async () => {
    const [h1, h2] = fleet.hosts;
    const oldPid = h1!.sshdPid();
    assert.ok(oldPid !== null);
    await h1!.killSshd();
    assert.equal(h1!.sshdPid(), null);
    assert.equal(alive(oldPid), false);
    const down = await h1!.exec(['true'], { sshOptions: ['-o', 'ConnectTimeout=2'] });
    assert.equal(down.code, 255, 'ssh reports a connection failure');
    assert.match(down.stderr, /refused/i);
    assert.equal((await h2!.exec(['true'])).code, 0, 'other hosts unaffected');
    await h1!.startSshd();
    const up = await h1!.exec(['hostname']);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.stdout, 'host1\n');
  });

  void test('linkDown() makes ssh time out quickly, linkUp() restores it', async () => {
    const [, h2, h3] = fleet.hosts;
    await h2!.linkDown();
    const t0 = performance.now();
    const down = await h2!.exec(['true'], { sshOptions: ['-o', 'ConnectTimeout=2'], timeoutMs: 10_000 });
    const ms = performance.now() - t0;
    assert.equal(down.code, 255, down.stderr);
    assert.ok(ms < 5000, `failed after ${Math.round(ms)} ms`);
    assert.equal((await h3!.exec(['true'])).code, 0, 'other hosts unaffected');
    // A host can reboot its sshd while cut off, and is reachable once the link returns.
    await h2!.killSshd();
    await h2!.startSshd();
    await h2!.linkUp();
    const up = await h2!.exec(['hostname'], { timeoutMs: 15_000 });
    assert.equal(up.code, 0, up.stderr);
    assert.equal(up.stdout, 'host2\n');
  });

  void test('round trip with and without ControlMaster', async () => {
    const h = fleet.hosts[2]!;
    const plain: number[] = [];
    for (let i = 0; i < 3; i++) plain.push((await run('ssh', [...fleet.sshArgs, h.alias, 'true'])).ms);
    // A mux master lives in the fleet dir, so destroy() must find and end it too.
    const cm = ['-o', 'ControlMaster=auto', '-o', `ControlPath=${fleet.dir}/cm-%C`, '-o', 'ControlPersist=60'];
    const first = await run('ssh', [...fleet.sshArgs, ...cm, h.alias, 'true']);
    assert.equal(first.code, 0, first.stderr);
    const muxed: number[] = [];
    for (let i = 0; i < 3; i++) muxed.push((await run('ssh', [...fleet.sshArgs, ...cm, h.alias, 'true'])).ms);
    process.stderr.write(
      `# ssh round trip: ${Math.round(median(plain))} ms plain, ${Math.round(median(muxed))} ms over ControlMaster\n`,
    );
    assert.ok(pidsMentioning(`${fleet.dir}/cm-`).length > 0, 'a mux master is running');
  });

  void test('destroy() leaves no namespace, link, sshd, process or temp dir', async () => {
    const namespaces = fleet.hosts.map((h) => h.netns!);
    const links = [fleet.bridge!, ...fleet.hosts.map((h) => h.link!)];
    const pids = new Set<number>(pidsMentioning(fleet.dir));
    for (const ns of namespaces) {
      assert.ok(netnsList().includes(ns));
      for (const p of execFileSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).split('\n').filter(Boolean)) {
        pids.add(Number(p));
      }
    }
    for (const h of fleet.hosts) pids.add(h.sshdPid()!);
    assert.ok(pids.size >= 4, 'three sshd and a mux master were running');
    const t0 = performance.now();
    await fleet.destroy();
    process.stderr.write(`# destroy(): ${Math.round(performance.now() - t0)} ms\n`);
    const nsLeft = netnsList();
    for (const ns of namespaces) assert.equal(nsLeft.includes(ns), false, `netns ${ns} left`);
    const linksLeft = linkNames();
    for (const l of links) assert.equal(linksLeft.includes(l), false, `link ${l} left`);
    for (const p of pids) assert.equal(alive(p), false, `pid ${p} still alive`);
    assert.deepEqual(pidsMentioning(fleet.dir), []);
    assert.equal(fs.existsSync(fleet.dir), false);
    await fleet.destroy(); // idempotent
  });
});

void describe('fleet harness edges', () => {
  void test("a crashed run's leftovers are removed by the next run with the same prefix", async () => {
    const code = [
      `import { createFleet } from ${JSON.stringify(HARNESS)};`,
      "const f = await createFleet(1, { prefix: 'adz', verify: false });",
      'console.log(JSON.stringify({ dir: f.dir, ns: f.hosts[0].netns, link: f.hosts[0].link, bridge: f.bridge, sshd: f.hosts[0].sshdPid() }));',
      "process.kill(process.pid, 'SIGKILL');",
    ].join('\n');
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    await new Promise<void>((resolve) => child.once('close', () => resolve()));
    const left = JSON.parse(out) as { dir: string; ns: string; link: string; bridge: string; sshd: number };
    assert.ok(netnsList().includes(left.ns), 'the crash left a namespace');
    assert.ok(alive(left.sshd), 'the crash left an sshd');

    const next = await createFleet(1, { prefix: 'adz' });
    try {
      assert.equal(netnsList().includes(left.ns), false);
      const links = linkNames();
      assert.equal(links.includes(left.link), false);
      assert.equal(links.includes(left.bridge), false);
      assert.equal(alive(left.sshd), false);
      assert.equal(fs.existsSync(left.dir), false);
      assert.equal((await next.hosts[0]!.exec(['hostname'])).stdout, 'host1\n');
    } finally {
      await next.destroy();
    }
  });

  void test('a createFleet that fails half way removes what it made', async () => {
    const prefix = 'ady';
    // 1 ms is too short for any sshd to come up: creation fails after namespaces exist.
    await assert.rejects(createFleet(2, { prefix, readyTimeoutMs: 1 }), /not ready/);
    assert.deepEqual(netnsList().filter((ns) => ns.startsWith(`${prefix}-${process.pid}-`)), []);
    assert.deepEqual(linkNames().filter((l) => l.startsWith(`${prefix}-${process.pid.toString(36)}.`)), []);
    const dirs = (await fsp.readdir(os.tmpdir())).filter((d) => d.startsWith(`${prefix}-fleet-${process.pid}-`));
    assert.deepEqual(dirs, []);
  });

  void test('a process that exits without destroy() still removes its fleet', async () => {
    const code = [
      `import { createFleet } from ${JSON.stringify(HARNESS)};`,
      "const f = await createFleet(1, { prefix: 'adx', verify: false });",
      'console.log(JSON.stringify({ dir: f.dir, ns: f.hosts[0].netns, bridge: f.bridge, sshd: f.hosts[0].sshdPid() }));',
      'process.exit(0);',
    ].join('\n');
    const r = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code]);
    assert.equal(r.code, 0, r.stderr);
    const left = JSON.parse(r.stdout) as { dir: string; ns: string; bridge: string; sshd: number };
    assert.equal(netnsList().includes(left.ns), false);
    assert.equal(linkNames().includes(left.bridge), false);
    assert.ok(await goneSoon(left.sshd), 'sshd killed on exit');
    assert.equal(fs.existsSync(left.dir), false);
  });

  void test('a missing tool is a clear error, not a skip', () => {
    assert.throws(() => findTools(['ip', 'no-such-tool-for-fleet']), /required tool\(s\) not found: no-such-tool-for-fleet/);
    assert.doesNotThrow(() => findTools(['ip', 'sshd', 'ssh', 'rsync']));
  });

  void test('bad options are rejected', async () => {
    await assert.rejects(createFleet(0), /host count/);
    await assert.rejects(createFleet(1, { prefix: 'Bad-Prefix' }), /prefix/);
  });

  void test('loopback fleet: ports on 127.0.0.1, per-host dirs, ControlMaster, faults, cleanup', async () => {
    const fleet = await createLoopbackFleet(2, { controlMaster: true });
    try {
      const [h1, h2] = fleet.hosts;
      assert.notEqual(h1!.port, h2!.port);
      assert.equal(h1!.srvPath, h1!.srvDir);
      const r = await h1!.exec(['sh', '-c', 'hostname; echo hi > "$1/f"', 'sh', h1!.srvPath]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${h1!.hostname}\n`);
      assert.equal(await fsp.readFile(path.join(h1!.srvDir, 'f'), 'utf8'), 'hi\n');
      const rs = await run('rsync', ['-a', `${h1!.srvDir}/`, `${h2!.alias}:${h2!.srvPath}/copy/`], fleet.env);
      assert.equal(rs.code, 0, rs.stderr);
      assert.equal(await fsp.readFile(path.join(h2!.srvDir, 'copy', 'f'), 'utf8'), 'hi\n');

      await h1!.killSshd();
      assert.equal((await h1!.exec(['true'], { sshOptions: ['-o', 'ConnectTimeout=2'] })).code, 255);
      await h1!.startSshd();
      assert.equal((await h1!.exec(['true'])).code, 0);

      await h2!.linkDown();
      const t0 = performance.now();
      const down = await h2!.exec(['true'], { sshOptions: ['-o', 'ConnectTimeout=2', '-o', 'ControlPath=none'], timeoutMs: 10_000 });
      assert.equal(down.code, 255);
      assert.ok(performance.now() - t0 < 5000);
      await h2!.linkUp();
      assert.equal((await h2!.exec(['true'])).code, 0);
    } finally {
      const pids = [...fleet.hosts.map((h) => h.sshdPid()).filter((p) => p !== null), ...pidsMentioning(fleet.dir)];
      await fleet.destroy();
      for (const p of pids) assert.equal(alive(p), false, `pid ${p} still alive`);
      assert.equal(fs.existsSync(fleet.dir), false);
    }
  });
});
