// A fleet host whose root's filesystem is full, on ext4 (every VM's default), where the lock's
// draft directory needs a data block: the commands that restore the previous release or free
// space, fleet rollback and prune, were refused the lock there (`cannot create …/.tmp/lock.…: No
// space left on device`), and with it on every host. They now spend that host's space reserve
// (.atomic-deploy/space-reserve, src/act/reserve.ts), as the local engine does.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, tempDir, writeTree } from '../harness/cli.ts';
import { requireTools } from '../harness/faults.ts';
import { currentOf, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

const { fleet, hostArgs, cli } = fleetSuite(2, { prefix: 'afd', timeoutMs: 120_000, requires: () => requireTools('mount', 'mkfs.ext4', 'losetup') });

async function onHost(h: FleetHost, script: string, ...args: string[]): Promise<string> {
  const r = await h.exec(['sh', '-c', script, 'sh', ...args]);
  assert.equal(r.code, 0, `${h.alias}: ${script}: ${r.stderr}`);
  return r.stdout;
}

/** A path inside the host's own mount namespace (its mounts are invisible from ours otherwise). */
function seen(h: FleetHost, p: string): string {
  const pid = h.sshdPid();
  assert.ok(pid !== null, `${h.alias}: sshd is not running`);
  return path.join('/proc', String(pid), 'root', p);
}

void describe('a fleet host whose ext4 filesystem is full', () => {
  void test('fleet rollback and prune spend that host\'s space reserve to take its lock; a deploy does not', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const disk = '/srv/afd-disk';
    const root = `${disk}/root`;
    const image = '/srv/afd-disk.img';
    await onHost(h1, 'mkdir -p "$1" && truncate -s 16M "$2" && mkfs.ext4 -q -m 0 "$2" && mount -o loop "$2" "$1"', disk, image);
    t.after(async () => void (await h1.exec(['sh', '-c', 'umount "$1"; rm -f "$2"', 'sh', disk, image])));
    for (const id of ['r1', 'r2', 'r3']) {
      const r = await cli(['deploy', writeTree(tempDir(t), { 'index.html': `${id}\n` }), root, ...hostArgs, '--release-id', id, '--no-fsync']);
      assert.equal(r.code, 0, r.stderr);
    }
    const dir1 = seen(h1, root);
    const dir2 = path.join(h2.srvDir, 'afd-disk', 'root');
    const reserve = path.join(dir1, '.atomic-deploy', 'space-reserve');
    assert.equal(fs.statSync(reserve).size, 256 * 1024, `${h1.alias}: no space reserve was made`);
    assert.equal(fs.statSync(path.join(dir2, '.atomic-deploy', 'space-reserve')).size, 256 * 1024, `${h2.alias}: no space reserve was made`);

    // host1's disk filled to the last byte.
    await onHost(h1, 'dd if=/dev/zero of="$1/filler" bs=64k 2>/dev/null; dd if=/dev/zero of="$1/filler2" bs=1 2>/dev/null; true', disk);
    assert.equal(Number((await onHost(h1, 'df -Pk "$1" | awk "NR == 2 { print \\$4 }"', disk)).trim()), 0);

    const deploy = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r4\n' }), root, ...hostArgs, '--release-id', 'r4', '--no-fsync']);
    assert.equal(deploy.code, 1, deploy.stderr);
    assert.equal(fs.statSync(reserve).size, 256 * 1024, 'the failed deploy spent the reserve');

    // Control: without the reserve (moved aside on the same filesystem, its blocks still taken), ext4 refuses host1 the lock's
    // directory, and nothing is rolled back anywhere; the hint frees space by hand, prune's dry run choosing.
    await onHost(h1, 'mv "$1/.atomic-deploy/space-reserve" "$2/aside"', root, disk);
    const refused = await cli(['rollback', root, ...hostArgs, '--json']);
    assert.equal(refused.code, 1, refused.stderr);
    assert.equal(currentOf(dir2), 'r3');
    assert.ok(refused.stderr.includes(`hint: no space reserve was left to spend there (.atomic-deploy/space-reserve), so prune cannot take the lock either: free a few KiB on its filesystem by hand (df -h ${root}), for example rm -rf ${root}/releases/<id> of a release that atomic-deploy prune ${root} --host ${h1.alias} --dry-run says it would remove, then run the command again`), refused.stderr);
    await onHost(h1, 'mv "$2/aside" "$1/.atomic-deploy/space-reserve"', root, disk);

    const back = await cli(['rollback', root, ...hostArgs, '--json']);
    assert.equal(back.code, 0, `${back.stdout}\n${back.stderr}`);
    assert.equal(currentOf(dir1), 'r2');
    assert.equal(currentOf(dir2), 'r2');
    assert.equal(fs.existsSync(reserve), false);
    assert.ok(fs.existsSync(path.join(dir2, '.atomic-deploy', 'space-reserve')), `${h2.alias}, not full, kept its reserve`);
    const warnings = jsonOf<{ warnings: string[] }>(back).warnings;
    assert.ok(warnings.includes(`${h1.alias}: the filesystem of ${root} is full: the lock was taken by deleting its space reserve (256 KiB in .atomic-deploy/); free space (atomic-deploy prune ${root} removes old releases; df -h ${root}), and the next deploy, rollback or prune makes the reserve again`), warnings.join('\n'));
    for (const dir of [dir1, dir2]) assert.ok(!fs.existsSync(path.join(dir, '.deploy.lock')), `${dir}: the lock was left`);

    // What the reserve's deletion left free is enough for the prune that follows; the rolled-back r3 goes.
    const prune = await cli(['prune', root, ...hostArgs, '--keep', '1']);
    assert.equal(prune.code, 0, prune.stderr);
    assert.deepEqual(fs.readdirSync(path.join(dir1, 'releases')).sort(), ['r1', 'r2']);

    // Room again: the next deploy makes host1's reserve whole.
    await onHost(h1, 'rm -f "$1/filler" "$1/filler2"', disk);
    const again = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r5\n' }), root, ...hostArgs, '--release-id', 'r5', '--no-fsync']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(fs.statSync(reserve).size, 256 * 1024);
  });
});
