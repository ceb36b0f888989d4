// A fleet host whose releases/ is another mount than .tmp/ (remote/staging.ts): the generated
// programs, under dash and under BusyBox sh with BusyBox applets only, find it out, stage inside
// releases/ under hidden names so that placing a release is one rename(2), keep trash there, and
// sweep what an interrupted operation left. A .tmp/ on its own mount is refused before anything.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { remoteStateOf, type Frame } from '../../src/remote/facts.ts';
import { applyScript, deployArmScript, lockScript, stateScript } from '../../src/remote/script.ts';
import { stagedPath, stagingName } from '../../src/remote/staging.ts';
import { requireRoot } from '../harness/faults.ts';
import { findTools } from '../harness/fleet.ts';
import { armedTail as tail, programShells, runProgram, startProgram, type Shell } from '../harness/remote-programs.ts';

const TOOLS = findTools(['busybox', 'dash', 'mount', 'umount', 'strace'] as const);
const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'remote-staging-'));
const mounts: string[] = [];
after(() => {
  for (const m of mounts.reverse()) execFileSync(TOOLS.umount, ['-l', m]);
  fs.rmSync(BASE, { recursive: true, force: true });
});

const SHELLS = programShells(BASE, TOOLS, ['mv', 'ln', 'cp', 'mkdir', 'chmod', 'rm', 'rmdir', 'cat', 'sed', 'tr', 'ls', 'stat', 'sync', 'date', 'uname', 'id', 'readlink', 'sleep', 'kill', 'timeout', 'printf', 'test', 'grep']);

let serial = 0;
/** A root whose `sub` (releases or .tmp) is a tmpfs of its own, or plain when `sub` is null. */
function rootWith(sub: 'releases' | '.tmp' | null): string {
  requireRoot();
  const root = path.join(BASE, `case-${++serial}`, "root 'q' $(x)");
  fs.mkdirSync(path.join(root, 'releases'), { recursive: true });
  fs.mkdirSync(path.join(root, '.tmp'));
  if (sub) {
    execFileSync(TOOLS.mount, ['-t', 'tmpfs', '-o', 'size=16m,mode=0755', 'tmpfs', path.join(root, sub)]);
    mounts.push(path.join(root, sub));
    assert.notEqual(fs.statSync(path.join(root, sub)).dev, fs.statSync(root).dev, 'the tmpfs is not mounted');
  }
  return root;
}

function run(shell: Shell, script: string, input = ''): ReturnType<typeof runProgram> {
  return runProgram(shell, script, BASE, input);
}

/** The lock holder, as ssh keeps it; resolves with its frames up to `end` (or its exit). */
async function lock(shell: Shell, root: string, token: string): Promise<{ frames: Frame[]; stop: () => Promise<void> }> {
  const held = startProgram(shell, lockScript({ root, fsync: false, token, command: 'deploy', create: true, leaseS: 5 }), BASE, (f) => f.tag === 'end');
  await held.reached;
  return { frames: held.frames, stop: () => (held.end(), held.closed) };
}

function listAll(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

for (const shell of SHELLS) {
  void describe(`releases/ on another mount, under ${shell.name}`, () => {
    void test('the lock holder tells a tmpfs releases/ and a bind-mounted one, not a plain one', async () => {
      const plain = rootWith(null);
      const tmpfs = rootWith('releases');
      const bound = rootWith(null);
      const elsewhere = path.join(BASE, `elsewhere-${++serial}`);
      fs.mkdirSync(elsewhere);
      execFileSync(TOOLS.mount, ['--bind', elsewhere, path.join(bound, 'releases')]);
      mounts.push(path.join(bound, 'releases'));
      for (const [root, expected] of [[plain, undefined], [tmpfs, true], [bound, true]] as const) {
        const held = await lock(shell, root, 'tok');
        await held.stop();
        const state = remoteStateOf(held.frames, root);
        assert.equal(state.stagingInReleases, expected, `${root}: ${JSON.stringify(held.frames)}`);
        assert.deepEqual(listAll(path.join(root, 'releases')), [], 'the probe left nothing in releases/');
        assert.deepEqual(listAll(path.join(root, '.tmp')), [], 'the probe left nothing in .tmp/');
      }
    });

    void test('a staged release is placed by one rename inside releases/; prune trash stays there; leftovers are swept', async () => {
      const root = rootWith('releases');
      fs.mkdirSync(path.join(root, 'releases', 'old'));
      fs.writeFileSync(path.join(root, 'releases', 'old', 'index.html'), 'old\n');
      fs.mkdirSync(path.join(root, 'releases', 'older'));
      fs.symlinkSync('releases/old', path.join(root, 'current'));
      const held = await lock(shell, root, 'tok');
      const state = remoteStateOf(held.frames, root);
      assert.equal(state.stagingInReleases, true);
      const stage = stagingName(state, 'stage');
      const trash = stagingName(state, 'trash');
      assert.match(stage, /^\.stage\.[0-9a-f]{16}$/);
      assert.equal(stagedPath(root, stage), path.join(root, 'releases', stage));
      // What rsync and the manifest script fill: <stage>/<id> and <stage>/manifest.json.
      fs.mkdirSync(path.join(stagedPath(root, stage), 'new'), { recursive: true });
      fs.writeFileSync(path.join(stagedPath(root, stage), 'new', 'index.html'), 'new\n');
      fs.writeFileSync(path.join(stagedPath(root, stage), 'manifest.json'), '{"m":1}\n');
      const inode = fs.statSync(path.join(stagedPath(root, stage), 'new')).ino;
      const script = deployArmScript({
        root,
        fsync: false,
        id: 'new',
        previous: 'old',
        stage,
        shared: [],
        sharedCreate: false,
        beforeSwitch: [],
        journalCopying: '{"v":1,"op":"deploy","phase":"copying"}',
        journalReady: '{"v":1,"op":"deploy","phase":"ready"}',
        recordPending: '{"id":"new","status":"pending"}',
        manifest: true,
        tail: tail({ id: 'new', token: 'tok', backTo: 'old', commitRecords: ['new'], prune: [{ id: 'older', trash, record: '{"id":"older","prunedAt":"x"}' }], protect: ['old', 'new'] }),
      });
      const r = run(shell, script, 'go\ncommit\n{"id":"new","status":"complete"}\n');
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.frames.some((f) => f.tag === 'committed'), `${r.stderr}\n${JSON.stringify(r.frames)}`);
      assert.equal(fs.statSync(path.join(root, 'releases', 'new')).ino, inode, 'the release is the staged directory itself (renamed, not copied)');
      assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/new');
      assert.equal(fs.readFileSync(path.join(root, '.atomic-deploy', 'manifests', 'new.json'), 'utf8'), '{"m":1}\n');
      assert.deepEqual(listAll(path.join(root, 'releases')), ['new', 'old'], 'stage and trash are gone, older pruned');
      await held.stop();

      // An interrupted deploy's stage and a prune's trash, hidden in releases/: listed, then swept.
      fs.mkdirSync(path.join(root, 'releases', '.stage.0123456789abcdef', 'x'), { recursive: true });
      fs.mkdirSync(path.join(root, 'releases', '.trash.fedcba9876543210', 'y'), { recursive: true });
      // A user's own folder that only looks like ours is neither listed nor swept.
      fs.mkdirSync(path.join(root, 'releases', '.stage.mine'));
      const read = run(shell, stateScript({ root, fsync: false }));
      const hidden = remoteStateOf(read.frames, root).hidden ?? [];
      assert.deepEqual([...hidden].sort(), ['.stage.0123456789abcdef', '.trash.fedcba9876543210']);
      assert.deepEqual(remoteStateOf(read.frames, root).releases.sort(), ['new', 'old'], 'hidden names are never releases');
      const swept = run(shell, applyScript({ root, fsync: false, steps: hidden.map((name) => ({ op: 'remove-staged' as const, name })) }));
      assert.equal(swept.code, 0, swept.stderr);
      assert.deepEqual(listAll(path.join(root, 'releases')), ['.stage.mine', 'new', 'old']);
    });

    void test('control: the old placement, mv from .tmp/ into a releases/ on another mount, copies instead of renaming', () => {
      const root = rootWith('releases');
      fs.mkdirSync(path.join(root, '.tmp', 'stage.old', 'r1'), { recursive: true });
      fs.writeFileSync(path.join(root, '.tmp', 'stage.old', 'r1', 'index.html'), 'r1\n');
      const trace = path.join(BASE, `trace-${++serial}`);
      const mv = shell.name.startsWith('busybox') ? [TOOLS.busybox, 'mv'] : ['/bin/mv'];
      execFileSync(TOOLS.strace, ['-f', '-o', trace, '-e', 'trace=rename,renameat,renameat2,mkdir,mkdirat,openat', ...mv, '--', path.join(root, '.tmp', 'stage.old', 'r1'), path.join(root, 'releases')]);
      const calls = fs.readFileSync(trace, 'utf8').split('\n');
      assert.ok(calls.some((l) => /rename/.test(l) && l.includes('EXDEV')), `the rename did not fail with EXDEV:\n${calls.join('\n')}`);
      // GNU mv names the target relative to an fd of releases/ ("r1"); BusyBox by its whole path.
      const made = (l: string): boolean => /mkdir/.test(l) && /(\/releases\/r1"|"r1")/.test(l) && / = 0$/.test(l);
      const filled = (l: string): boolean => /O_CREAT/.test(l) && /r1\/index\.html"/.test(l);
      assert.ok(calls.some(made) && calls.some(filled), `mv did not make the final name and fill it file by file:\n${calls.join('\n')}`);
      assert.equal(fs.readFileSync(path.join(root, 'releases', 'r1', 'index.html'), 'utf8'), 'r1\n');
    });

    void test('a .tmp/ on a mount of its own is refused (INVALID_ROOT, a hint), before any lock is taken', async () => {
      const root = rootWith('.tmp');
      const held = await lock(shell, root, 'tok');
      assert.equal(held.frames.find((f) => f.tag === 'error')?.value, 'INVALID_ROOT', JSON.stringify(held.frames));
      assert.match(held.frames.find((f) => f.tag === 'message')?.value ?? '', /another filesystem/);
      assert.match(held.frames.find((f) => f.tag === 'hint')?.value ?? '', /plain directory/);
      assert.deepEqual(listAll(root), ['.tmp', 'releases'], 'no lock, no probe left in the root');
      assert.deepEqual(listAll(path.join(root, '.tmp')), []);
    });
  });
}
