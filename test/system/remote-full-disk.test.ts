// The host programs (src/remote) on a root whose filesystem has no free inode, under dash with
// coreutils and under BusyBox sh with BusyBox applets, run here without ssh. A failed redirection
// of `:` (a special built-in) ends a POSIX shell whatever `||` follows it, so a program written
// to handle a file it cannot create ended instead. The root is on a small tmpfs whose inodes the
// test takes, then gives back exactly as many as the program may use before the point aimed at.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DeployError } from '../../src/errors.ts';
import { frameValue } from '../../src/remote/facts.ts';
import { linkScript } from '../../src/remote/content-script.ts';
import { RemoteRoot } from '../../src/remote/host.ts';
import { LocalShell } from '../../src/remote/local-shell.ts';
import { deployArmScript, lockScript, reserveScript } from '../../src/remote/script.ts';
import { shQuote } from '../../src/remote/shell.ts';
import { shellWord } from '../../src/plan/paths.ts';
import { stagedPath } from '../../src/remote/staging.ts';
import { serializeManifest, type ManifestEntry } from '../../src/plan/manifest.ts';
import { fillToTheLastByte, mountTmpfs, requireRoot } from '../harness/faults.ts';
import { findTools } from '../harness/fleet.ts';
import { treeSnapshot } from '../harness/invariants.ts';
import { armedTail, lockAs, programShells, runProgram, startProgram, type Shell } from '../harness/remote-programs.ts';

const TOOLS = findTools(['busybox', 'dash', 'strace'] as const);
const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'remote-full-disk-'));
after(() => fs.rmSync(BASE, { recursive: true, force: true }));

// What the lock program, the release of a lock and the link step call: BusyBox's applets only.
const APPLETS = ['mv', 'ln', 'mkdir', 'rm', 'rmdir', 'cat', 'sed', 'tr', 'ls', 'stat', 'sync', 'date', 'uname', 'id', 'readlink', 'sleep', 'kill', 'printf', 'test', 'grep', 'touch', 'cp', 'find', 'xargs', 'awk', 'chmod', 'sha256sum', 'df', 'head', 'wc'];
const SHELLS = programShells(BASE, TOOLS, APPLETS);

// ": " in the root: the reason is read after the last one of the shell's message.
const ROOT_NAME = "root: 'q'";

/**
 * A root on its own tmpfs whose free inodes are taken, then `free` of them given back. `setup`
 * fills the root first (it runs while inodes are plentiful).
 */
function fullRoot(t: { after(fn: () => void): void }, free: number, setup: (root: string) => void): string {
  requireRoot();
  const disk = mountTmpfs(t, { size: '4m', inodes: 64 });
  const root = path.join(disk, ROOT_NAME);
  fs.mkdirSync(root);
  setup(root);
  const taken = takeInodes(disk);
  assert.ok(taken.length >= free, `only ${taken.length} inodes were free`);
  for (const f of taken.slice(0, free)) fs.unlinkSync(f);
  return root;
}

/** Takes every free inode of the filesystem at `disk` with empty files under `disk/fill`; their paths. */
function takeInodes(disk: string): string[] {
  const fill = path.join(disk, 'fill');
  fs.mkdirSync(fill, { recursive: true });
  const taken: string[] = [];
  for (;;) {
    const f = path.join(fill, String(taken.length));
    try {
      fs.writeFileSync(f, '');
    } catch (error) {
      assert.equal((error as NodeJS.ErrnoException).code, 'ENOSPC');
      return taken;
    }
    taken.push(f);
  }
}

/** A root live on release r1, with `.tmp/` (as any root a deploy has used). */
function liveRoot(root: string): void {
  fs.mkdirSync(path.join(root, 'releases', 'r1'), { recursive: true });
  fs.writeFileSync(path.join(root, 'releases', 'r1', 'index.html'), 'r1\n');
  fs.symlinkSync('releases/r1', path.join(root, 'current'));
  fs.mkdirSync(path.join(root, '.tmp'));
}

function localShell(shell: Shell): LocalShell {
  return new LocalShell({ shell: [shell.file], ...(shell.env.PATH === undefined ? {} : { path: shell.env.PATH }) });
}

/** Takes the root's lock as a fleet deploy does (src/remote/host.ts), through `shell` instead of ssh; what it threw. */
async function lockError(shell: Shell, root: string, create: boolean): Promise<DeployError> {
  const remote = new RemoteRoot('h1', { host: 'localhost' }, root, {}, path.join(BASE, 'no-ssh-socket'), false, localShell(shell));
  try {
    await remote.lock({ command: 'deploy', create });
  } catch (error) {
    assert.ok(error instanceof DeployError, String(error));
    return error;
  } finally {
    await remote.unlock().catch(() => undefined);
    await remote.close();
  }
  assert.fail('the lock was taken: its holder has no heartbeat file, so it cannot keep its lease');
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Release `prev` with one file, its manifest, and a stage whose new manifest holds the same file: the link step links it. */
function linkableRoot(root: string): void {
  fs.mkdirSync(path.join(root, 'releases', 'prev'), { recursive: true });
  fs.writeFileSync(path.join(root, 'releases', 'prev', 'a'), 'a\n');
  const entries: ManifestEntry[] = [{ path: 'a', type: 'file', mode: 0o644, size: 2, sha256: sha('a\n') }];
  fs.mkdirSync(path.join(root, '.atomic-deploy', 'manifests'), { recursive: true });
  fs.writeFileSync(path.join(root, '.atomic-deploy', 'manifests', 'prev.json'), serializeManifest(entries));
  fs.mkdirSync(path.join(stagedPath(root, 'stage.1'), 'new'), { recursive: true });
  fs.writeFileSync(path.join(stagedPath(root, 'stage.1'), 'manifest.json'), serializeManifest(entries));
}

for (const shell of SHELLS) {
  void describe(`host programs on a full filesystem under ${shell.name}`, () => {
    void test('no inode left after the lock is placed: the holder says it cannot create its heartbeat file, and why; the lock is released and the root is as it was', async (t) => {
      const root = fullRoot(t, 3, liveRoot);
      const before = treeSnapshot(root);
      const error = await lockError(shell, root, false);
      // Old program: the probe that follows the lock (`: > file || return 2`) ended the shell: REMOTE, "reading the deploy root failed (exit 2)".
      assert.equal(error.code, 'IO', error.message);
      assert.match(error.message, /^h1: cannot create the lock holder's heartbeat file .*\/\.tmp\/beat\.[0-9a-f]+: No space left on device$/);
      assert.deepEqual(treeSnapshot(root), before, 'the lock or a probe was left');
    });

    void test('a first deploy into an empty root with no inode left after the lock: the same, where the holder ended just after its report and the lock stayed with a dead process', async (t) => {
      // No releases/ yet: no probe follows the lock. `.tmp/` takes one inode, the lock three.
      const root = fullRoot(t, 4, () => undefined);
      const error = await lockError(shell, root, true);
      assert.equal(error.code, 'IO', error.message);
      assert.match(error.message, /heartbeat file .*: No space left on device$/);
      assert.deepEqual(fs.readdirSync(root), ['.tmp'], 'only the empty .tmp/ may stay');
      assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], 'the lock, its draft or its heartbeat file was left');
    });

    void test('no inode left before the lock: the probe before it reports nothing, and the lock draft fails with its reason; nothing is left', async (t) => {
      const root = fullRoot(t, 0, liveRoot);
      const before = treeSnapshot(root);
      const error = await lockError(shell, root, false);
      // Old program: the probe ended the shell with no error frame: REMOTE, "taking the lock failed (exit 2)".
      assert.equal(error.code, 'IO', error.message);
      assert.match(error.message, /^h1: cannot create .*\/\.tmp\/lock\.[0-9a-f]+: No space left on device$/);
      assert.deepEqual(treeSnapshot(root), before);
    });

    void test('one inode left before the lock: the draft is made, its owner file cannot be, and the error says why; nothing is left', async (t) => {
      // The mount probe takes the inode and gives it back; the draft directory takes it.
      const root = fullRoot(t, 1, liveRoot);
      const before = treeSnapshot(root);
      const error = await lockError(shell, root, false);
      // No inode, but bytes to spare: df cannot tell a full filesystem, and the code stays IO.
      assert.equal(error.code, 'IO', error.message);
      assert.match(error.message, /^h1: cannot write the lock owner in .*\/\.tmp\/lock\.[0-9a-f]+: No space left on device$/);
      assert.deepEqual(treeSnapshot(root), before);
    });

    void test('a filesystem full to the last byte: a rollback\'s lock spends the space reserve and takes the lock; a deploy\'s does not, and says why it failed', async (t) => {
      requireRoot();
      const disk = mountTmpfs(t, { size: '1m' });
      const root = path.join(disk, ROOT_NAME);
      fs.mkdirSync(root);
      liveRoot(root);
      fs.mkdirSync(path.join(root, '.atomic-deploy'));
      const reserve = path.join(root, '.atomic-deploy', 'space-reserve');
      fs.writeFileSync(reserve, Buffer.alloc(256 * 1024, 7));
      fillToTheLastByte(disk);
      const before = treeSnapshot(root);
      // A deploy never spends it: the owner file finds no page, and the error says why (dash's printf
      // said "I/O error", BusyBox's nothing: the reason was empty).
      const error = await lockError(shell, root, false);
      assert.equal(error.code, 'NO_SPACE', error.message);
      assert.match(error.message, /^h1: cannot write the lock owner in .*\/\.tmp\/lock\.[0-9a-f]+: No space left on device$/);
      assert.equal(error.hint, `free space on h1 (for example: atomic-deploy prune ${shellWord(root)} --host h1 --keep 2) and deploy again`);
      assert.deepEqual(treeSnapshot(root), before);
      // A rollback does: the lock is taken, and the deploying side is told.
      const remote = new RemoteRoot('h1', { host: 'localhost' }, root, {}, path.join(BASE, 'no-ssh-socket'), false, localShell(shell));
      try {
        const locked = await remote.lock({ command: 'rollback', create: false, spend: true });
        assert.equal(locked.spentReserve, true);
        assert.ok(fs.existsSync(path.join(root, '.deploy.lock', 'owner.json')));
        assert.equal(fs.existsSync(reserve), false);
      } finally {
        await remote.unlock();
        await remote.close();
      }
      assert.equal(fs.existsSync(path.join(root, '.deploy.lock')), false);
    });

    void test('the commit\'s keep_reserve makes a reserve cut short whole where there is room, leaves a whole one alone, and makes none on a nearly full disk', (t) => {
      requireRoot();
      const roomy = path.join(mountTmpfs(t, { size: '16m' }), ROOT_NAME);
      const tight = path.join(mountTmpfs(t, { size: '2m' }), ROOT_NAME);
      for (const root of [roomy, tight]) {
        fs.mkdirSync(root);
        liveRoot(root);
        fs.mkdirSync(path.join(root, '.atomic-deploy'));
        fs.writeFileSync(path.join(root, '.atomic-deploy', 'space-reserve'), 'cut short');
      }
      const keep = (root: string): string | undefined => {
        const r = runProgram(shell, reserveScript({ root, fsync: false }), BASE);
        assert.equal(r.code, 0, r.stderr);
        return frameValue(r.frames, 'reserve')?.trim();
      };
      assert.equal(keep(roomy), String(256 * 1024), 'a reserve cut short was not made whole');
      const made = fs.readFileSync(path.join(roomy, '.atomic-deploy', 'space-reserve'));
      assert.equal(keep(roomy), String(256 * 1024));
      assert.ok(fs.readFileSync(path.join(roomy, '.atomic-deploy', 'space-reserve')).equals(made), 'a whole reserve was written again');
      // Under 4 MiB free: the last bytes are the deploy's, not the reserve's.
      assert.equal(keep(tight), String('cut short'.length));
    });

    void test('the link step with no inode for its lists: exit 1, as documented, with the reason on stderr', (t) => {
      const root = fullRoot(t, 0, linkableRoot);
      const r = runProgram(shell, linkScript(root, 'prev', 'stage.1', 'new'), BASE);
      // Old program: dash ended with exit 2 at `: > link.paths || exit 1`.
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /link\.paths: No space left on device/);
      assert.equal(frameValue(r.frames, 'checked'), undefined);
    });

    void test('the link step whose own lists take the last inodes: it completes (no failed check needs a file)', (t) => {
      // link.paths, .check, .modes, .skip, .list, .out, .stat, .names and .count, and the link of `a`
      // (tmpfs counts each hard link as an inode): link.failed has none left.
      const root = fullRoot(t, 10, linkableRoot);
      const r = runProgram(shell, linkScript(root, 'prev', 'stage.1', 'new'), BASE);
      // Old program: `: >> link.failed` made the file cat reads: dash ended with exit 2, BusyBox with 1.
      assert.equal(r.code, 0, r.stderr);
      assert.equal(frameValue(r.frames, 'checked'), '1');
      assert.equal(frameValue(r.frames, 'failed'), '');
      const stage = stagedPath(root, 'stage.1');
      assert.equal(fs.statSync(path.join(stage, 'new', 'a')).ino, fs.statSync(path.join(root, 'releases', 'prev', 'a')).ino);
      assert.deepEqual(fs.readdirSync(stage).sort(), ['manifest.json', 'new']);
    });

    void test('an armed host whose filesystem runs out of inodes before "go": the switch is made (a rename needs none), not refused with an empty reason', async (t) => {
      requireRoot();
      const disk = mountTmpfs(t, { size: '4m', inodes: 64 });
      const root = path.join(disk, ROOT_NAME);
      liveRoot(path.join(disk, ROOT_NAME));
      lockAs(root, 'tok');
      fs.mkdirSync(path.join(root, '.tmp', 'stage.n', 'n'), { recursive: true });
      fs.writeFileSync(path.join(root, '.tmp', 'stage.n', 'n', 'index.html'), 'n\n');
      const arm = deployArmScript({
        root,
        fsync: false,
        id: 'n',
        previous: 'r1',
        stage: 'stage.n',
        shared: [],
        sharedCreate: false,
        beforeSwitch: [],
        journalCopying: '{}',
        journalReady: '{}',
        recordPending: '{"id":"n"}',
        tail: armedTail({ id: 'n', token: 'tok', backTo: 'r1', journalSwitched: '{}', commitRecords: ['n'] }),
      });
      const armed = startProgram(shell, arm, BASE, (f) => f.tag === 'ready' || f.tag === 'error');
      await armed.reached;
      assert.ok(armed.frames.some((f) => f.tag === 'ready'), JSON.stringify(armed.frames));
      // Between "ready" and "go" the host's last inodes go (its logs, another program).
      const taken = takeInodes(disk);
      armed.send('go\n');
      await armed.next((f) => f.tag === 'switched' || f.tag === 'switch-failed');
      // Old program: `exec mv … 2>"$tmp/<link>.err"` could not create its error file, so mv never ran: switch-failed "".
      assert.equal(frameValue(armed.frames, 'switch-failed'), undefined, JSON.stringify(armed.frames));
      assert.equal(frameValue(armed.frames, 'switched'), 'n');
      assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/n');
      // Inodes back (the switch back makes a new link), then the fleet's word: back.
      for (const f of taken) fs.unlinkSync(f);
      armed.end('back\n{"phase":"rolling-back"}\n{"id":"n","status":"rolled-back"}\n');
      await armed.closed;
      assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/r1', 'the switch back was not made');
    });

    void test('a heartbeat the holder cannot write once (ENOSPC) costs one beat: the holder keeps its lease while lines come, and ends with its stdin', async () => {
      const root = path.join(BASE, `beat-${shell.name.replace(/\W+/g, '-')}`);
      fs.mkdirSync(root);
      const token = 'beattoken';
      const beat = path.join(root, '.tmp', `beat.${token}`);
      // The second open of the beat file in any one process fails: the reader's second line.
      const wrapper = path.join(BASE, `strace-${path.basename(root)}`);
      const trace = `${wrapper}.trace`;
      fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${shQuote(TOOLS.strace)} -f -o ${shQuote(trace)} -P ${shQuote(beat)} -e trace=open,openat -e inject=open,openat:error=ENOSPC:when=2 ${shQuote(shell.file)} "$@"\n`, { mode: 0o755 });
      const lease = 2;
      const holder = startProgram({ ...shell, file: wrapper }, lockScript({ root, fsync: false, token, command: 'deploy', create: false, leaseS: lease }), BASE, (f) => f.tag === 'end' || f.tag === 'error');
      await holder.reached;
      assert.ok(holder.frames.some((f) => f.tag === 'end'), JSON.stringify(holder.frames));
      let ended = false;
      void holder.closed.then(() => (ended = true));
      // Twice the lease of lines, as the deploying side sends them (src/remote/host.ts: one a second).
      for (let i = 0; i < (lease * 2 * 1000) / 250; i++) {
        holder.send('\n');
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      // Old program: the reader's `: > "$beat"` ended it, the beats stopped counting and the holder gave up its lease.
      assert.equal(ended, false, 'the holder ended while heartbeats kept coming');
      assert.ok(fs.existsSync(path.join(root, '.deploy.lock')));
      const stopped = Date.now();
      holder.end();
      await holder.closed;
      // The reader, still there, sees stdin end and ends the holder at once (not after the lease).
      assert.ok(Date.now() - stopped < lease * 1000, `the holder took ${Date.now() - stopped} ms to end after its stdin`);
      assert.equal(fs.existsSync(beat), false, 'the heartbeat file was left');
      // The fault did strike: one open of the heartbeat file failed.
      assert.equal(fs.readFileSync(trace, 'utf8').match(/ENOSPC .*\(INJECTED\)/g)?.length, 1, fs.readFileSync(trace, 'utf8'));
    });
  });
}
