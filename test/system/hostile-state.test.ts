// State files and directories left by others (journals, records, release names) are data: an id
// that is no valid release id is reported and never used in a path.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { deadPid } from '../harness/invariants.ts';

async function deployed(t: { after(fn: () => void): void }, ids: string[]): Promise<{ dir: string; root: string; src: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  for (const id of ids) {
    const r = await runCli(['deploy', src, root, '--release-id', id, '--quiet']);
    assert.equal(r.code, 0, r.stderr);
  }
  return { dir, root, src };
}

function writeJournal(root: string, journal: Record<string, unknown>): void {
  fs.writeFileSync(path.join(root, '.atomic-deploy', 'journal.json'), JSON.stringify({ v: 1, token: 't', pid: 1, startedAt: '2026-01-01T00:00:00Z', ...journal }));
}

void test('a deploy journal whose release is a path out of the root: status deletes nothing and says why it discarded it', async (t) => {
  const { dir, root } = await deployed(t, ['r1']);
  writeTree(path.join(dir, 'victim', 'x'), { 'keep.txt': 'precious\n' });
  writeJournal(root, { op: 'deploy', release: 'a/../../../victim/x', previous: 'r1', phase: 'copying' });
  const r = await runCli(['status', root]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(dir, 'victim', 'x', 'keep.txt'), 'utf8'), 'precious\n');
  assert.match(r.stdout, /discarded a journal that names an invalid release id/);
  assert.equal(fs.existsSync(path.join(root, '.atomic-deploy', 'journal.json')), false);
});

void test('a rollback journal whose previous is a path out of the root: no file is written outside', async (t) => {
  const { dir, root } = await deployed(t, ['r1', 'r2']);
  fs.mkdirSync(path.join(dir, 'victim'));
  writeJournal(root, { op: 'rollback', release: 'r2', previous: '../../../victim/evil', phase: 'switched' });
  const r = await runCli(['status', root]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'victim')), []);
  assert.equal(currentId(root), 'r2');
});

void test('a release record whose previous is a path is read as having none; a record file under another name is ignored', async (t) => {
  const { dir, root } = await deployed(t, ['r1', 'r2']);
  const log = path.join(root, '.atomic-deploy', 'releases');
  const r2 = JSON.parse(fs.readFileSync(path.join(log, 'r2.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(log, 'r2.json'), JSON.stringify({ ...r2, previous: '../../../victim/p' }));
  // A record that claims another id than its file name.
  fs.writeFileSync(path.join(log, 'r1.json'), JSON.stringify({ ...r2, id: '../../victim/q', seq: 1 }));
  fs.mkdirSync(path.join(dir, 'victim'));
  for (const args of [['releases', root], ['rollback', root], ['prune', root, '--keep', '0']]) {
    const r = await runCli(args);
    assert.ok(r.code === 0 || r.code === 2, `${args.join(' ')}: ${r.code} ${r.stderr}`);
  }
  assert.deepEqual(fs.readdirSync(path.join(dir, 'victim')), []);
});

void test('a release moved to another disk and linked back is still that release: prune keeps the rollback target and the link, rollback reaches it', async (t) => {
  // Control first: the layout before the move, so the test knows which release prune must spare.
  const { dir, root } = await deployed(t, ['r1', 'r2', 'r3', 'r4']);
  assert.equal((await runCli(['rollback', root, '--to', 'r2', '--quiet'])).code, 0);
  const moved = path.join(dir, 'other-disk', 'r2');
  fs.mkdirSync(path.dirname(moved));
  fs.renameSync(path.join(root, 'releases', 'r2'), moved);
  fs.symlinkSync(moved, path.join(root, 'releases', 'r2'));
  assert.equal(currentId(root), 'r2');
  const pruned = await runCli(['prune', root, '--keep', '1', '--json']);
  assert.equal(pruned.code, 0, pruned.stderr);
  const result = JSON.parse(pruned.stdout) as { removed: { id: string }[]; kept: { id: string; rule: string }[] };
  // r1 is the rollback target from r2: left out of the list, r2 had no neighbour and r1 was deleted.
  assert.deepEqual(result.kept.map((k) => [k.id, k.rule]).sort(), [['r1', 'rollback-target'], ['r2', 'current'], ['r3', 'newest']]);
  assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), ['r1', 'r2', 'r3']);
  // From r3, the linked r2 is the rollback target (not r1, two back), and --to names it.
  assert.equal((await runCli(['rollback', root, '--to', 'r3', '--quiet'])).code, 0);
  const dry = await runCli(['rollback', root, '--dry-run']);
  assert.match(dry.stdout, /would roll back to r2 \(from r3\)/);
  assert.equal((await runCli(['rollback', root, '--to', 'r2', '--quiet'])).code, 0);
  assert.equal(currentId(root), 'r2');
  // Not live, not the rollback target: prune still leaves the link and the tree it leads to.
  assert.equal((await runCli(['deploy', path.join(dir, 'src'), root, '--release-id', 'r5', '--quiet'])).code, 0);
  assert.equal((await runCli(['deploy', path.join(dir, 'src'), root, '--release-id', 'r6', '--quiet'])).code, 0);
  const again = JSON.parse((await runCli(['prune', root, '--keep', '1', '--json'])).stdout) as { kept: { id: string; rule: string }[] };
  assert.deepEqual(again.kept.find((k) => k.id === 'r2')?.rule, 'linked');
  assert.ok(fs.lstatSync(path.join(root, 'releases', 'r2')).isSymbolicLink());
  assert.equal(fs.readFileSync(path.join(moved, 'index.html'), 'utf8'), 'v1\n');
  // An alias of another release (releases/stable -> r6) is no release: never listed, never pruned.
  fs.symlinkSync('r6', path.join(root, 'releases', 'stable'));
  const listed = JSON.parse((await runCli(['releases', root, '--json'])).stdout) as { releases: { id: string }[] };
  assert.ok(!listed.releases.some((r) => r.id === 'stable'));
});

void test('a current made to point into a leftover (.tmp/stage.x, releases/.stage.<id>.<hex>/sub): status keeps what it serves and says so', async (t) => {
  for (const where of ['.tmp/stage.live', 'releases/.stage.r9.0123456789ab/sub'] as const) {
    const { root } = await deployed(t, ['r1']);
    const top = where.startsWith('.tmp') ? path.join(root, '.tmp', 'stage.live') : path.join(root, 'releases', '.stage.r9.0123456789ab');
    fs.cpSync(path.join(root, 'releases', 'r1'), top, { recursive: true });
    if (where !== '.tmp/stage.live') fs.mkdirSync(path.join(top, 'sub'));
    fs.writeFileSync(path.join(root, where, 'page.html'), 'served\n');
    fs.symlinkSync(where, path.join(root, 'current.new'));
    fs.renameSync(path.join(root, 'current.new'), path.join(root, 'current'));
    // Control: the other commands refuse this current, so only the sweep could touch it.
    assert.equal((await runCli(['prune', root, '--keep', '1'])).code, 2);
    const r = await runCli(['status', root]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`kept ${where.split('/').slice(0, 2).join('/').replace(/\./g, '\\.')}: current points into it`));
    assert.equal(fs.readFileSync(path.join(root, 'current', 'page.html'), 'utf8'), 'served\n', where);
  }
});

void test('a .deploy.lock that is a file, a symlink or a FIFO: deploy waits it out (exit 3), unlock --force removes it, the next deploy goes', async (t) => {
  for (const kind of ['file', 'symlink', 'fifo'] as const) {
    const { root, src } = await deployed(t, ['r1']);
    const lock = path.join(root, '.deploy.lock');
    if (kind === 'file') fs.writeFileSync(lock, 'garbage\n');
    else if (kind === 'symlink') fs.symlinkSync('/nonexistent', lock);
    else execFileSync('mkfifo', [lock]);
    assert.equal((await runCli(['deploy', src, root, '--release-id', 'r2', '--quiet'])).code, 3, kind);
    // Moved aside and compared with itself, such a lock "changed hands" every time: exit 0, still there.
    const forced = await runCli(['unlock', root, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout, /^unlocked/m, kind);
    assert.equal(fs.existsSync(lock) || fs.lstatSync(lock, { throwIfNoEntry: false }) !== undefined, false, kind);
    assert.equal((await runCli(['deploy', src, root, '--release-id', 'r2', '--quiet'])).code, 0, kind);
    assert.equal(currentId(root), 'r2');
  }
});

// An old tool's lock FILE (`echo $$ > .deploy.lock`) or a symlink, an hour old: each command moved
// it aside, found "it changed" (a file is no lock directory), put it back and tried again, at
// 100% CPU forever, whatever its --wait. Every run here is killed after 20 s: a hang fails.
void test('a .deploy.lock file or symlink left by another tool is judged: a dead pid is taken over, a live one or no pid waits out --wait (exit 3), never a busy loop', async (t) => {
  const { root, src } = await deployed(t, ['r1', 'r2']);
  const lock = path.join(root, '.deploy.lock');
  const hourAgo = new Date(Date.now() - 3_600_000);
  const bounded = { timeoutMs: 20_000 };

  fs.writeFileSync(lock, `${await deadPid()}\n`);
  fs.utimesSync(lock, hourAgo, hourAgo);
  const st = await runCli(['status', root, '--json'], bounded);
  assert.equal(st.code, 0, st.stderr);
  assert.match(jsonOf<{ lock: { reason: string } }>(st).lock.reason, /is gone/);
  const back = await runCli(['rollback', root, '--wait', '3'], bounded);
  assert.equal(back.code, 0, `${back.signal ?? ''} ${back.stderr}`);
  assert.match(back.stderr, /took over a stale lock: process \d+ is gone/);
  assert.equal(currentId(root), 'r1');
  assert.equal(fs.lstatSync(lock, { throwIfNoEntry: false }), undefined);

  const sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => sleeper.kill('SIGKILL'));
  for (const kind of ['live pid', 'garbage', 'symlink'] as const) {
    if (kind === 'symlink') fs.symlinkSync('/nonexistent', lock);
    else fs.writeFileSync(lock, kind === 'live pid' ? `${sleeper.pid}\n` : 'garbage\n');
    // A live pid's file is as new as its process (older, the pid would have been reused since).
    if (kind !== 'live pid') fs.lutimesSync(lock, hourAgo, hourAgo);
    for (const args of [['deploy', src, root, '--release-id', 'r3'], ['rollback', root], ['prune', root, '--keep', '1']]) {
      const started = Date.now();
      const r = await runCli([...args, '--wait', '2'], bounded);
      assert.equal(r.code, 3, `${kind} ${args[0]}: ${r.signal ?? ''} ${r.stderr}`);
      assert.ok(Date.now() - started >= 2_000 && Date.now() - started < 15_000, `${kind} ${args[0]}: --wait 2 honoured`);
      assert.match(r.stderr, /after the 2 s --wait/, kind);
      assert.match(r.stderr, kind === 'live pid' ? /unlock .*root\n/ : /unlock .*root --force/, kind);
    }
    assert.ok(fs.lstatSync(lock, { throwIfNoEntry: false }) !== undefined, `${kind}: left in place`);
    assert.equal(currentId(root), 'r1', kind);
    assert.deepEqual(releaseIds(root), ['r1', 'r2'], kind);
    fs.unlinkSync(lock);
  }
});

void test('a failed first deploy into a root whose parents did not exist takes away the parents it made too (as mkdir -p made them)', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  fs.mkdirSync(path.join(dir, 'kept'));
  for (const root of [path.join(dir, 'a', 'b', 'root'), path.join(dir, 'kept', 'c', 'root')]) {
    const r = await runCli(['deploy', src, root, '--before-switch', 'exit 3']);
    assert.equal(r.code, 1, r.stderr);
  }
  // Before: a/, a/b/ and kept/c/ stayed behind.
  assert.deepEqual(fs.readdirSync(dir).sort(), ['kept', 'src']);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'kept')), []);
  // A root whose deploy went through keeps them.
  assert.equal((await runCli(['deploy', src, path.join(dir, 'a', 'b', 'root'), '--quiet'])).code, 0);
  assert.ok(fs.existsSync(path.join(dir, 'a', 'b', 'root', 'current', 'index.html')));
});

void test('verify checks a release linked back from another disk: the tree it leads to, with its differences (before: "does not exist", exit 2)', async (t) => {
  const { dir, root } = await deployed(t, ['r1']);
  const moved = path.join(dir, 'other-disk', 'r1');
  fs.mkdirSync(path.dirname(moved));
  fs.renameSync(path.join(root, 'releases', 'r1'), moved);
  fs.symlinkSync(moved, path.join(root, 'releases', 'r1'));
  assert.equal((await runCli(['verify', root])).code, 0);
  fs.writeFileSync(path.join(moved, 'index.html'), 'tampered\n');
  const r = await runCli(['verify', root, '--release', 'r1']);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stdout, /^modified\s+index\.html/m);
});

void test('a folder a user named like our leftovers (releases/.stage.mine, .trash.old) survives status, deploy and prune', async (t) => {
  const { root, src } = await deployed(t, ['r1']);
  for (const name of ['.stage.mine', '.trash.old']) writeTree(path.join(root, 'releases', name), { 'notes.txt': 'mine\n' });
  for (const args of [['status', root], ['deploy', src, root, '--release-id', 'r2', '--quiet'], ['prune', root, '--keep', '1']]) {
    const r = await runCli(args);
    assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
  }
  for (const name of ['.stage.mine', '.trash.old']) assert.equal(fs.readFileSync(path.join(root, 'releases', name, 'notes.txt'), 'utf8'), 'mine\n', name);
});

/** current pointed at `id` by hand, atomically, as an operator would after a kill. */
function pointCurrent(root: string, id: string): void {
  fs.symlinkSync(`releases/${id}`, path.join(root, 'current.hand'));
  fs.renameSync(path.join(root, 'current.hand'), path.join(root, 'current'));
}

// A deploy killed after its switch (journal at `switched`, record complete), then current pointed
// back by hand before any other command: `status` removed the release that had served as
// "interrupted before the switch", its manifest and record with it. A journal naming an older
// release that served (an old journal put back, a copied state directory) did the same.
void test('a deploy journal whose release switched (journal or record says so) and is no longer current: recovery keeps it', async (t) => {
  // Cut off with its record complete, and before it (in an after-switch hook: the journal alone says it switched).
  for (const [failpoint, extra] of [['log-written', []], ['after-switch-hook', ['--after-switch', 'true']]] as const) {
    const { root, src } = await deployed(t, ['r1', 'r2']);
    fs.writeFileSync(path.join(src, 'index.html'), 'v3\n');
    const killed = await runCli(['deploy', src, root, '--release-id', 'r3', '--quiet', ...extra], { failpoints: `${failpoint}=crash` });
    assert.notEqual(killed.code, 0, `${failpoint}: the deploy was not cut off`);
    assert.equal(currentId(root), 'r3');
    assert.match(fs.readFileSync(path.join(root, '.atomic-deploy/journal.json'), 'utf8'), /"phase":"switched"/);
    pointCurrent(root, 'r2');
    const status = await runCli(['status', root]);
    assert.equal(status.code, 0, status.stderr);
    assert.doesNotMatch(status.stdout, /removed release r3/);
    assert.match(status.stdout, /kept release r3: its deploy switched to it/);
    assert.equal(fs.readFileSync(path.join(root, 'releases/r3/index.html'), 'utf8'), 'v3\n', `${failpoint}: the release that served is gone`);
    assert.equal(currentId(root), 'r2');
    assert.equal(fs.existsSync(path.join(root, '.atomic-deploy/journal.json')), false);
    // Recorded as a release that went live, with its manifest: verify and a rollback --to reach it.
    const record = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy/releases/r3.json'), 'utf8')) as { status: string };
    assert.equal(record.status, 'complete');
    const verify = await runCli(['verify', root, '--release', 'r3']);
    assert.equal(verify.code, 0, verify.stderr);
  }
  // A journal naming an old release that served: it stays; one naming the rollback target no longer wedges the root.
  for (const named of ['r1', 'r2']) {
    const { root } = await deployed(t, ['r1', 'r2', 'r3']);
    writeJournal(root, { op: 'deploy', release: named, previous: 'r3', phase: 'copying' });
    const status = await runCli(['status', root]);
    assert.equal(status.code, 0, status.stderr);
    assert.ok(fs.existsSync(path.join(root, 'releases', named)), `${named} was removed`);
    const rollback = await runCli(['rollback', root, '--quiet']);
    assert.equal(rollback.code, 0, rollback.stderr);
    assert.equal(currentId(root), 'r2');
  }
  // The control: a deploy cut off before its switch still has its release removed.
  const { root, src } = await deployed(t, ['r1']);
  const cut = await runCli(['deploy', src, root, '--release-id', 'r2', '--quiet'], { failpoints: 'release-ready=crash' });
  assert.notEqual(cut.code, 0);
  const status = await runCli(['status', root]);
  assert.match(status.stdout, /removed release r2 \(interrupted before the switch\)/);
  assert.equal(fs.existsSync(path.join(root, 'releases/r2')), false);
});

// A directory of the live release replaced by hand with a file or a symlink loop: the hardlink
// redeploy died on a raw ENOTDIR or ELOOP (exit 1) looking for the files it had planned to link.
void test('a hardlink redeploy over a live release whose directory became a file or a symlink loop copies those files from the build', async (t) => {
  for (const damage of ['file', 'loop']) {
    const dir = tempDir(t);
    const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n', 'sub/a.txt': 'a\n', 'sub/b.txt': 'b\n' });
    const root = path.join(dir, 'root');
    for (const id of ['r1', 'r2']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--strategy', 'hardlink', '--quiet'])).code, 0);
    const sub = path.join(root, 'releases/r2/sub');
    fs.rmSync(sub, { recursive: true });
    if (damage === 'file') fs.writeFileSync(sub, 'x\n');
    else fs.symlinkSync('sub', sub);
    const r = await runCli(['deploy', src, root, '--release-id', 'r3', '--strategy', 'hardlink', '--json']);
    assert.equal(r.code, 0, `${damage}: ${r.stderr}`);
    const result = JSON.parse(r.stdout) as { linked: number; copied: number };
    assert.deepEqual([result.linked, result.copied], [1, 2], damage);
    assert.equal(fs.readFileSync(path.join(root, 'current/sub/a.txt'), 'utf8'), 'a\n');
    assert.equal((await runCli(['verify', root])).code, 0);
  }
});
