// A fleet deploy that fails on a host right after taking its lock, before the host has reported
// its state: the lock goes with the failure. The fault is a root on a tmpfs whose inodes run out
// between the lock (its draft directory and two files) and the probe that follows it, which
// cannot create its file. Run on the old code, the lock stayed on that host, to be taken over as
// stale by the next command.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { runCli, tempDir, writeTree, type CliResult } from '../harness/cli.ts';
import { requireTools } from '../harness/faults.ts';
import { createFleet, currentOf, type Fleet, type FleetHost } from '../harness/fleet.ts';

let fleet: Fleet;
let env: NodeJS.ProcessEnv;
let hostArgs: string[];

function cli(args: string[]): Promise<CliResult> {
  return runCli(args, { env, timeoutMs: 120_000 });
}

/** A path inside the host's own mount namespace (its tmpfs is invisible from ours otherwise). */
function seen(h: FleetHost, p: string): string {
  const pid = h.sshdPid();
  assert.ok(pid !== null, `${h.alias}: sshd is not running`);
  return path.join('/proc', String(pid), 'root', p);
}

async function onHost(h: FleetHost, script: string, ...args: string[]): Promise<string> {
  const r = await h.exec(['sh', '-c', script, 'sh', ...args]);
  assert.equal(r.code, 0, `${h.alias}: ${script}: ${r.stderr}`);
  return r.stdout;
}

void describe('a fleet host that fails right after its lock is taken', () => {
  before(async () => {
    requireTools('mount');
    fleet = await createFleet(2, { prefix: 'alr' });
    env = { ATOMIC_DEPLOY_SSH_CONFIG: fleet.sshConfigPath };
    hostArgs = fleet.hosts.flatMap((h) => ['--host', h.alias]);
  });
  after(async () => {
    await fleet?.destroy();
  });

  void test('inodes run out between the lock and the probe after it: exit 1, the lock is released on every host, and the next deploy succeeds at once', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const fsDir = '/srv/alr-inodes';
    const root = `${fsDir}/root`;
    const fill = `${fsDir}/fill`;
    await onHost(h1, 'mkdir -p "$1" && mount -t tmpfs -o size=16m,nr_inodes=200,mode=0755 tmpfs "$1" && mkdir "$2"', fsDir, fill);
    t.after(async () => void (await h1.exec(['umount', '-l', fsDir])));
    const first = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r1\n' }), root, ...hostArgs, '--release-id', 'r1', '--no-fsync']);
    assert.equal(first.code, 0, first.stderr);

    // Every inode taken, then three given back: the lock's draft, its owner.json and its pid file.
    // (The probe before the lock takes two and gives them back; the one after it finds none.)
    await onHost(h1, 'i=0; while touch "$1/f$i" 2>/dev/null; do i=$((i + 1)); done; rm -f "$1/f0" "$1/f1" "$1/f2"', fill);
    const failed = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r2\n' }), root, ...hostArgs, '--release-id', 'r2', '--no-fsync']);
    assert.equal(failed.code, 1, failed.stderr);
    // The fault struck where this test aims: after the lock, while the host reported its root.
    assert.match(failed.stderr, new RegExp(`^error: .*${h1.alias}: reading the deploy root failed .*mount-probe.*No space left on device$`, 'm'));
    const dir1 = seen(h1, root);
    assert.ok(!fs.existsSync(path.join(dir1, '.deploy.lock')), `${h1.alias}: the lock was left:\n${failed.stderr}`);
    assert.ok(!fs.existsSync(path.join(h2.srvDir, 'alr-inodes', 'root', '.deploy.lock')), `${h2.alias}: the lock was left`);
    assert.equal(currentOf(dir1), 'r1');
    assert.equal(currentOf(path.join(h2.srvDir, 'alr-inodes', 'root')), 'r1');

    // Room again: the next deploy takes the lock at once, with no stale lock to take over.
    await onHost(h1, 'rm -rf "$1"', fill);
    const next = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r3\n' }), root, ...hostArgs, '--release-id', 'r3', '--no-fsync']);
    assert.equal(next.code, 0, next.stderr);
    assert.doesNotMatch(next.stderr, /stale lock/);
    assert.equal(currentOf(dir1), 'r3');
    assert.equal(currentOf(path.join(h2.srvDir, 'alr-inodes', 'root')), 'r3');
  });
});
