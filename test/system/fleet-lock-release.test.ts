// A fleet deploy whose host cannot go on right after taking its lock, before it has reported its
// state: the lock goes with the failure, and the host says why. The fault is a root on a tmpfs
// whose inodes run out right after the lock (its draft directory and two files), so that the
// lock holder cannot create its heartbeat file. Run on older code, the lock stayed on that host
// (to be taken over as stale by the next command); then the holder's probe after the lock
// (`: > file || return 2`) ended the shell: "reading the deploy root failed (exit 2)", and on a
// root with no releases/ yet (no probe) the holder ended just after its report, holding the lock.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir, writeTree } from '../harness/cli.ts';
import { requireTools } from '../harness/faults.ts';
import { currentOf, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

const { fleet, hostArgs, cli } = fleetSuite(2, { prefix: 'alr', timeoutMs: 120_000, requires: () => requireTools('mount') });

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
  void test('inodes run out right after the lock: exit 1 with the reason, the lock is released on every host, and the next deploy succeeds at once', async (t) => {
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
    const dir1 = seen(h1, root);
    // The fault struck where this test aims: after the lock, before the host's report ended; its probe found no inode and said nothing.
    assert.match(failed.stderr, new RegExp(`^error: .*${h1.alias}: cannot create the lock holder's heartbeat file ${root}/\\.tmp/beat\\.[0-9a-f]+: No space left on device$`, 'm'));
    assert.deepEqual(fs.readdirSync(path.join(dir1, '.tmp')), [], `${h1.alias}: a probe, draft or heartbeat file was left`);
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

  void test('a first deploy into an empty root whose inodes run out right after the lock: the same (no releases/ yet, so no probe comes after the lock)', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const fsDir = '/srv/alr-first';
    const root = `${fsDir}/root`;
    const fill = `${fsDir}/fill`;
    await onHost(h1, 'mkdir -p "$1" && mount -t tmpfs -o size=16m,nr_inodes=200,mode=0755 tmpfs "$1" && mkdir "$2" "$3"', fsDir, fill, root);
    t.after(async () => void (await h1.exec(['umount', '-l', fsDir])));
    // Four given back: .tmp/, then the lock's draft, its owner.json and its pid file.
    await onHost(h1, 'i=0; while touch "$1/f$i" 2>/dev/null; do i=$((i + 1)); done; rm -f "$1/f0" "$1/f1" "$1/f2" "$1/f3"', fill);
    const failed = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r1\n' }), root, ...hostArgs, '--release-id', 'r1', '--no-fsync']);
    assert.equal(failed.code, 1, failed.stderr);
    const dir1 = seen(h1, root);
    const dir2 = path.join(h2.srvDir, 'alr-first', 'root');
    assert.ok(!fs.existsSync(path.join(dir1, '.deploy.lock')), `${h1.alias}: the lock was left:\n${failed.stderr}`);
    assert.match(failed.stderr, new RegExp(`^error: .*${h1.alias}: cannot create the lock holder's heartbeat file ${root}/\\.tmp/beat\\.[0-9a-f]+: No space left on device$`, 'm'));
    assert.deepEqual(fs.readdirSync(dir1), ['.tmp']);
    assert.deepEqual(fs.readdirSync(path.join(dir1, '.tmp')), [], `${h1.alias}: a draft or heartbeat file was left`);
    assert.ok(!fs.existsSync(path.join(dir2, '.deploy.lock')), `${h2.alias}: the lock was left`);
    assert.equal(currentOf(dir1), null);

    await onHost(h1, 'rm -rf "$1"', fill);
    const next = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r2\n' }), root, ...hostArgs, '--release-id', 'r2', '--no-fsync']);
    assert.equal(next.code, 0, next.stderr);
    assert.doesNotMatch(next.stderr, /stale lock/);
    assert.equal(currentOf(dir1), 'r2');
    assert.equal(currentOf(dir2), 'r2');
  });

  void test('a host whose disk fills during the copy: exit 1 with NO_SPACE, the reason rsync gave and a prune hint, nothing switched anywhere', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const fsDir = '/srv/alr-full';
    const root = `${fsDir}/root`;
    await onHost(h1, 'mkdir -p "$1" && mount -t tmpfs -o size=2m,mode=0755 tmpfs "$1"', fsDir);
    t.after(async () => void (await h1.exec(['umount', '-l', fsDir])));
    const first = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r1\n' }), root, ...hostArgs, '--release-id', 'r1', '--no-fsync']);
    assert.equal(first.code, 0, first.stderr);
    // 3 MiB that does not compress: more than the host's filesystem holds.
    const big = writeTree(tempDir(t), { 'index.html': 'r2\n' });
    fs.writeFileSync(path.join(big, 'data.bin'), crypto.randomBytes(3 * 1024 * 1024));
    const failed = await cli(['deploy', big, root, ...hostArgs, '--release-id', 'r2', '--no-fsync', '--json']);
    assert.equal(failed.code, 1, failed.stderr);
    const error = (JSON.parse(failed.stdout) as { error?: { code: string; message: string; hint?: string } }).error;
    assert.equal(error?.code, 'NO_SPACE', failed.stderr);
    assert.match(error.message, new RegExp(`${h1.alias}: copying the release failed: rsync: .*No space left on device`));
    assert.match(error.hint ?? '', new RegExp(`^free space on ${h1.alias} \\(for example: atomic-deploy prune ${root} --host ${h1.alias} --keep 2\\)`));
    assert.equal(currentOf(seen(h1, root)), 'r1');
    assert.equal(currentOf(path.join(h2.srvDir, 'alr-full', 'root')), 'r1');
  });
});
