// The sweep of scratch directories a killed process left in the temp dir (src/act/scratch.ts): a
// directory goes only when its `.owner` link names a process of this host, boot and pid namespace
// that is gone, and it belongs to this user; everything else in the temp dir stays untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { thisProcess } from '../../src/act/lock.ts';
import { leftScratchDirs, makeScratchDir, parseScratchOwner, SCRATCH_OWNER, scratchOwnerText, sweepScratchDirs } from '../../src/act/scratch.ts';

const pidNs = fs.readlinkSync('/proc/self/ns/pid');

/** A pid that belonged to a process that has exited and been reaped. */
function deadPid(): number {
  const r = spawnSync('true');
  assert.ok(r.pid !== undefined && r.pid > 0);
  return r.pid;
}

function fixture(base: string, name: string, owner: string | undefined, files: Record<string, string> = { 'manifest.json': '{}' }): string {
  const dir = path.join(base, name);
  fs.mkdirSync(dir, { mode: 0o700 });
  for (const [rel, data] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), data);
  }
  if (owner !== undefined) fs.symlinkSync(owner, path.join(dir, SCRATCH_OWNER));
  return dir;
}

void test('the owner link round-trips whatever a host reports, and anything else is not an owner', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 4_194_304 }),
      fc.option(fc.integer({ min: 1, max: 1e12 }).map(String), { nil: undefined }),
      fc.option(fc.uuid(), { nil: undefined }),
      fc.option(fc.integer({ min: 1, max: 2 ** 32 }).map((n) => `pid:[${n}]`), { nil: undefined }),
      fc.stringMatching(/^[a-z0-9][a-z0-9.-]{0,30}$/),
      (pid, startTime, bootId, ns, host) => {
        const parsed = parseScratchOwner(scratchOwnerText({ pid, startTime, bootId, host }, ns));
        assert.ok(parsed);
        assert.deepEqual([parsed.owner.pid, parsed.owner.startTime, parsed.owner.bootId, parsed.owner.host, parsed.pidNs], [pid, startTime, bootId, host, ns]);
      },
    ),
  );
  for (const text of ['', 'atomic-deploy-owner:1 12 - tok - 0 host user', 'atomic-deploy-scratch:1 x - - - host', 'atomic-deploy-scratch:1 12 - - - -', 'atomic-deploy-scratch:1 12 - - - host extra', '../../etc']) {
    assert.equal(parseScratchOwner(text), undefined, text);
  }
});

void test('only directories of a gone process of this host, boot, pid namespace and user are swept; the rest of the temp dir stays', async (t) => {
  assert.equal(process.getuid?.(), 0, 'this test chowns a fixture to another user: run it as root');
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'scratch-test-'));
  t.after(() => fs.rmSync(base, { recursive: true, force: true }));
  const me = thisProcess();
  const dead = deadPid();
  const deadOwner = scratchOwnerText({ ...me, pid: dead, startTime: undefined }, pidNs);

  const gone = [
    // Killed mid-deploy: a stage with a read-only tree in it (an archive's 0555 directories).
    fixture(base, 'atomic-deploy-stage-Ab12Cd', deadOwner, { 'release/bin/tool': 'x', 'release/index.html': 'y' }),
    fixture(base, 'ad-k9Zq01', deadOwner, { '0': '' }),
    // Its pid now belongs to another process (this one): a start time that is not this process's.
    fixture(base, 'atomic-deploy-send-reuse1', scratchOwnerText({ ...me, startTime: '1' }, pidNs), { files: 'a\0' }),
    // What a sweep stopped midway leaves: only the owner link.
    fixture(base, 'atomic-deploy-manifest-half01', deadOwner, {}),
  ];
  fs.chmodSync(path.join(gone[0] as string, 'release', 'bin'), 0o555);
  fs.chmodSync(path.join(gone[0] as string, 'release'), 0o555);

  const kept = [
    // This process, alive.
    fixture(base, 'atomic-deploy-stage-live01', scratchOwnerText(me, pidNs)),
    // Not ours: no owner link (another program's ad-* directory, or one made an instant ago).
    fixture(base, 'ad-nolink', undefined),
    // Another host sharing this temp dir, and another pid namespace (a container) on this one.
    fixture(base, 'ad-foreig', scratchOwnerText({ ...me, pid: dead, startTime: undefined, host: 'elsewhere.example' }, pidNs)),
    fixture(base, 'ad-othrns', scratchOwnerText({ ...me, pid: dead, startTime: undefined }, 'pid:[1]')),
    // Not one of our names.
    fixture(base, 'atomic-deploy-other-abcdef', deadOwner),
    fixture(base, 'adx-abcdef', deadOwner),
    // Another user's.
    fixture(base, 'atomic-deploy-sig-nobody', deadOwner, { 'artifact.sig': 's' }),
  ];
  fs.chownSync(kept.at(-1) as string, 65534, 65534);
  // A symlink named like ours to a directory of a gone owner: neither the link nor its target is touched.
  const target = fixture(base, 'target', deadOwner);
  fs.symlinkSync(target, path.join(base, 'ad-lnk123'));
  // A rebooted host: the owner's boot is another one, so whatever has its pid now is not it.
  gone.push(fixture(base, 'ad-reboot', scratchOwnerText({ ...me, bootId: '00000000-0000-0000-0000-000000000000' }, pidNs)));

  const before = fs.readdirSync(base).sort();
  assert.deepEqual(leftScratchDirs(base).map((l) => l.dir).sort(), [...gone].sort());
  // leftScratchDirs only reads.
  assert.deepEqual(fs.readdirSync(base).sort(), before);

  const saved = process.env.TMPDIR;
  process.env.TMPDIR = base;
  t.after(() => (saved === undefined ? delete process.env.TMPDIR : (process.env.TMPDIR = saved)));
  const told: string[] = [];
  const removed = await sweepScratchDirs({ onRemove: (l) => told.push(l.dir) });
  assert.deepEqual(removed.map((l) => l.dir).filter((d) => d.startsWith(base)).sort(), [...gone].sort());
  assert.deepEqual(told.filter((d) => d.startsWith(base)).sort(), [...gone].sort());
  for (const dir of gone) assert.ok(!fs.existsSync(dir), `${dir} was left`);
  for (const dir of [...kept, target]) assert.ok(fs.existsSync(path.join(dir, 'manifest.json')) || fs.existsSync(path.join(dir, 'artifact.sig')), `${dir} was touched`);
  assert.ok(fs.lstatSync(path.join(base, 'ad-lnk123')).isSymbolicLink());
  assert.equal(fs.readlinkSync(path.join(kept[0] as string, SCRATCH_OWNER)), scratchOwnerText(me, pidNs));
});

void test('a scratch directory is made 0700 with this process as its owner, and no sweep takes it while the process lives', (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'scratch-test-'));
  t.after(() => fs.rmSync(base, { recursive: true, force: true }));
  const dir = makeScratchDir('stage', base);
  assert.match(path.basename(dir), /^atomic-deploy-stage-[A-Za-z0-9]{6}$/);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  const parsed = parseScratchOwner(fs.readlinkSync(path.join(dir, SCRATCH_OWNER)));
  assert.equal(parsed?.owner.pid, process.pid);
  assert.equal(parsed?.pidNs, pidNs);
  assert.deepEqual(leftScratchDirs(base), []);
  // The same directory, had its process died: swept.
  fs.unlinkSync(path.join(dir, SCRATCH_OWNER));
  fs.symlinkSync(scratchOwnerText({ ...thisProcess(), pid: deadPid(), startTime: undefined }, pidNs), path.join(dir, SCRATCH_OWNER));
  assert.deepEqual(leftScratchDirs(base).map((l) => l.dir), [dir]);
});
