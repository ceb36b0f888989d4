// A fleet host whose releases/ is a tmpfs of its own (mounted by this test inside the host's mount
// namespace): deploy, rollback, prune and a crash with the copy staged, on real sshd hosts. The
// host's sshd is traced while it deploys: the release enters releases/ by one rename that succeeds,
// where the old placement (control) made the final name and copied into it file by file.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, releasedSnapshot, snapshot, tempDir, writeTree, type CliResult } from '../harness/cli.ts';
import { findTools, rootNamer, type FleetHost, currentOf as current } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

const TOOLS = findTools(['strace', 'mount'] as const);
const { fleet, hostArgs, cli } = fleetSuite(2, { prefix: 'axd', timeoutMs: 120_000 });
const newRoot = rootNamer('x');

/** A path inside the host's own mount namespace (its tmpfs is invisible from ours otherwise). */
function seen(h: FleetHost, p: string): string {
  const pid = h.sshdPid();
  assert.ok(pid !== null, `${h.alias}: sshd is not running`);
  return path.join('/proc', String(pid), 'root', p);
}

function entries(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/** Nothing left: no lock, journal, temp name in .tmp/ or hidden name in releases/. */
function assertClean(dir: string, label: string): void {
  assert.equal(fs.existsSync(path.join(dir, '.deploy.lock')), false, `${label}: lock left`);
  assert.equal(fs.existsSync(path.join(dir, '.atomic-deploy', 'journal.json')), false, `${label}: journal left`);
  assert.deepEqual(entries(path.join(dir, '.tmp')).filter((n) => /^(current|stage|trash|link|lock)\./.test(n)), [], `${label}: .tmp/ leftovers`);
  assert.deepEqual(entries(path.join(dir, 'releases')).filter((n) => n.startsWith('.')), [], `${label}: hidden leftovers in releases/`);
}

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-xdev-src-'), { 'index.html': `<h1>${version}</h1>\n`, 'assets/app.js': 'console.log(1);\n', 'data/big.bin': 'x'.repeat(256 * 1024) });
}

/** Traces renames made by a host's sshd and everything it starts from now on, until stopped. */
function traceHost(h: FleetHost, log: string): { stop: () => Promise<string> } {
  const child = spawn(TOOLS.strace, ['-f', '-o', log, '-e', 'trace=rename,renameat,renameat2', '-p', String(h.sshdPid())], { stdio: 'ignore' });
  return {
    stop: async () => {
      child.kill('SIGINT');
      await new Promise((resolve) => child.once('close', resolve));
      return fs.readFileSync(log, 'utf8');
    },
  };
}

void describe('a fleet host whose releases/ is another filesystem', () => {
  void test('deploy, crash with the copy staged, status, rollback and prune: one rename places each release', async (t) => {
    const { root, on } = newRoot('xdev');
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const mounted = await h2.exec(['sh', '-c', 'mkdir -p "$1/releases" && mount -t tmpfs -o size=64m,mode=0755 tmpfs "$1/releases"', 'sh', root]);
    assert.equal(mounted.code, 0, mounted.stderr);
    t.after(async () => void (await h2.exec(['umount', '-l', `${root}/releases`])));
    const dir2 = seen(h2, root);
    assert.notEqual(fs.statSync(path.join(dir2, 'releases')).dev, fs.statSync(dir2).dev, 'the tmpfs is not mounted on host2');

    const [v1, v2, v3] = [site(t, 'v1'), site(t, 'v2'), site(t, 'v3')];
    const first = await cli(['deploy', v1, root, ...hostArgs, '--release-id', 'r1', '--json']);
    assert.equal(first.code, 0, first.stderr);

    // The second deploy under strace: host2's release enters releases/ from its hidden stage by a rename that succeeds.
    const tracer = traceHost(h2, path.join(fleet.dir, 'xdev-trace'));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const second = await cli(['deploy', v2, root, ...hostArgs, '--release-id', 'r2', '--json']);
    const log = await tracer.stop();
    assert.equal(second.code, 0, second.stderr);
    const placing = log.split('\n').filter((l) => /rename/.test(l) && /\/releases\/\.stage\.[0-9a-f]+\/r2"/.test(l));
    // GNU mv first aims at the directory operand itself (the tmpfs's mount point: EXDEV), then renames into it.
    assert.ok(placing.some((l) => /(, "r2"|\/releases\/r2"), [^)]*\) = 0$/.test(l)), `no successful rename from the hidden stage into releases/r2:\n${placing.join('\n')}`);
    for (const [h, dir] of [[h1, on(h1)], [h2, dir2]] as const) {
      assert.equal(current(dir), 'r2', h.alias);
      assert.deepEqual(snapshot(path.join(dir, 'releases', 'r2')), releasedSnapshot(v2), `${h.alias}: r2 is the source, byte for byte`);
      assertClean(dir, h.alias);
    }
    // The manifest travelled too: r2's unchanged files were linked from r1, on the tmpfs as elsewhere.
    assert.equal(fs.statSync(path.join(dir2, 'releases', 'r2', 'data', 'big.bin')).ino, fs.statSync(path.join(dir2, 'releases', 'r1', 'data', 'big.bin')).ino);

    // Killed with every copy complete in its stage: host2's stage is hidden in releases/, never a release.
    const crashed = await cli(['deploy', v3, root, ...hostArgs, '--release-id', 'r3'], { failpoints: 'fleet-copied=crash' });
    assert.equal(crashed.signal, 'SIGKILL', `the crash failpoint did not fire: ${crashed.code}\n${crashed.stderr}`);
    const staged = entries(path.join(dir2, 'releases')).filter((n) => n.startsWith('.stage.'));
    assert.equal(staged.length, 1, `no hidden stage on host2: ${entries(path.join(dir2, 'releases')).join(', ')}`);
    assert.deepEqual(entries(path.join(dir2, 'releases')).filter((n) => !n.startsWith('.')), ['r1', 'r2']);
    const deadline = Date.now() + 60_000;
    let status: CliResult;
    for (;;) {
      // The lock holders end with the dead process's connections; until then status leaves them be.
      status = await cli(['status', root, ...hostArgs, '--json']);
      if (!fs.existsSync(path.join(dir2, '.deploy.lock')) && !fs.existsSync(path.join(on(h1), '.deploy.lock'))) break;
      assert.ok(Date.now() < deadline, `the locks stayed: ${status.stdout}`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    assert.equal(status.code, 0, status.stderr);
    const recovered = jsonOf<{ hosts: { host: string; recovered: string[] }[] }>(status).hosts.find((h) => h.host === 'host2')?.recovered ?? [];
    assert.ok(recovered.includes(`removed leftover releases/${staged[0] ?? ''}`), `host2 did not sweep its stage: ${status.stdout}`);
    for (const [h, dir] of [[h1, on(h1)], [h2, dir2]] as const) {
      assert.equal(current(dir), 'r2', h.alias);
      assertClean(dir, h.alias);
    }

    const back = await cli(['rollback', root, ...hostArgs, '--json']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(current(dir2), 'r1');
    const third = await cli(['deploy', v3, root, ...hostArgs, '--release-id', 'r4', '--json']);
    assert.equal(third.code, 0, third.stderr);
    const pruned = await cli(['prune', root, ...hostArgs, '--keep', '0', '--json']);
    assert.equal(pruned.code, 0, pruned.stderr);
    for (const [h, dir] of [[h1, on(h1)], [h2, dir2]] as const) {
      assert.equal(current(dir), 'r4', h.alias);
      // current and its rollback target stay; r2, rolled back from, goes.
      assert.deepEqual(entries(path.join(dir, 'releases')), ['r1', 'r4'], `${h.alias}: prune kept the wrong releases`);
      assert.deepEqual(snapshot(path.join(dir, 'releases', 'r4')), releasedSnapshot(v3), h.alias);
      assertClean(dir, h.alias);
    }
  });

  void test('a host whose .tmp/ is a mount of its own: the fleet deploy is refused with exit 2 and a hint, no host changed', async (t) => {
    const { root, on } = newRoot('tmp-apart');
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const v1 = site(t, 'v1');
    assert.equal((await cli(['deploy', v1, root, ...hostArgs, '--release-id', 'r1'])).code, 0, 'the first deploy');
    const mounted = await h2.exec(['mount', '-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', `${root}/.tmp`]);
    assert.equal(mounted.code, 0, mounted.stderr);
    t.after(async () => void (await h2.exec(['umount', '-l', `${root}/.tmp`])));
    const dir2 = seen(h2, root);
    const tree = (dir: string): string[] => fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).sort();
    const before = [tree(on(h1)), tree(dir2)];
    const refused = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--release-id', 'r2', '--json']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /host2: .*\.tmp is on another filesystem than/);
    assert.match(refused.stderr, /hint: make .*\.tmp a plain directory/);
    assert.deepEqual([tree(on(h1)), tree(dir2)], before, 'a host changed');
    // Control: the same host deploys once .tmp/ is a plain directory again.
    assert.equal((await h2.exec(['umount', `${root}/.tmp`])).code, 0);
    const again = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--release-id', 'r2']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(current(dir2), 'r2');
  });
});
