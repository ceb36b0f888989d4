// Roots that cannot be one: exit 2 with one line, the dry run agreeing with the deploy, nothing
// made. Under /proc (mkdir answers ENOENT under a parent that exists) Node's recursive mkdir spins
// forever in a call no signal ends; the deploy must answer at once. A parent that is a dangling
// link, or a file where the layout needs releases/, is refused before anything is written.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir, writeTree } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';

void test('a root under /proc or /sys exits 2 within seconds, the dry run too; nothing is made', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'hi\n' });
  const roots = [
    { root: `/proc/atomic-deploy-test-${process.pid}`, parent: '/proc', kind: 'proc' },
    { root: `/sys/kernel/atomic-deploy-test-${process.pid}/app`, parent: '/sys/kernel', kind: 'sysfs' },
  ];
  for (const { root, parent, kind } of roots) {
    for (const extra of [[], ['--dry-run']]) {
      const r = await runCli(['deploy', src, root, '--no-fsync', ...extra], { timeoutMs: 30_000 });
      assert.notEqual(r.signal, 'SIGKILL', `${root} ${extra.join(' ')}: still running after 30 s (a mkdir loop?)`);
      // The dry run gives the deploy's answer: statfs names the filesystem before any mkdir.
      assert.equal(r.code, 2, `${root} ${extra.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.split('\n')[0], `error: cannot create the deploy root ${root}: ${parent} is on a ${kind} filesystem, which cannot hold one`);
      assert.match(r.stderr, /^hint: give a root on a filesystem that holds files and directories$/m);
      assert.doesNotMatch(r.stderr, /\n\s+at |unexpected failure/);
    }
    assert.equal(fs.existsSync(root), false);
  }
});

void test('a root that is a dangling link or whose parent is one, or whose releases is a file: dry run and deploy exit 2 alike, nothing changed', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'hi\n' });
  fs.symlinkSync(path.join(dir, 'nowhere'), path.join(dir, 'dangling'));
  // The root itself a dangling link: mkdir -p cannot make it (EEXIST), so nothing may plan on it.
  fs.symlinkSync('/nonexistent/zz', path.join(dir, 'dang'));
  const linkHint = /^hint: create the link's target first, or give another root$/m;
  const adopted = path.join(dir, 'folder');
  writeTree(adopted, { releases: 'a file\n', 'index.html': 'old\n' });
  const cases = [
    [path.join(dir, 'dangling', 'app'), [], /cannot create .*dangling\/app: .*dangling is a symbolic link to .*nowhere, which does not exist/, linkHint],
    [path.join(dir, 'dang'), [], /^error: the deploy root .*\/dang is a symbolic link to \/nonexistent\/zz, which does not exist$/m, linkHint],
    [adopted, ['--adopt'], /folder\/releases is not a directory/, undefined],
  ] as const;
  for (const [root, extra, message, hint] of cases) {
    const before = treeSnapshot(dir);
    for (const dry of [['--dry-run'], []]) {
      const r = await runCli(['deploy', src, root, '--no-fsync', ...extra, ...dry]);
      const what = `${path.basename(root)} ${dry.join(' ')}`;
      assert.equal(r.code, 2, `${what}: ${r.stderr}`);
      assert.match(r.stderr, message, what);
      if (hint) assert.match(r.stderr, hint, what);
      assert.match(r.stderr, /^error: [^\n]*\n(hint: [^\n]*\n)?$/, `${what}: one error line and at most a hint`);
      assert.doesNotMatch(r.stderr, /\n\s+at |unexpected failure/, what);
      assert.deepEqual(treeSnapshot(dir), before, `${what}: something changed`);
    }
  }
  // Control: the same build deploys to a root that can be made.
  const ok = await runCli(['deploy', src, path.join(dir, 'fine', 'app'), '--no-fsync']);
  assert.equal(ok.code, 0, ok.stderr);
});

void test('an absolute current through another alias of the root (a link to it) is the live release; one outside stays refused', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'new\n' });
  const root = path.join(dir, 'cap');
  writeTree(path.join(root, 'releases', '20200101000000'), { 'index.html': 'old\n' });
  fs.symlinkSync(root, path.join(dir, 'alias'));
  fs.symlinkSync(path.join(dir, 'alias', 'releases', '20200101000000'), path.join(root, 'current'));
  const status = await runCli(['status', root]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /current: +20200101000000/);
  const deployed = await runCli(['deploy', src, root, '--no-fsync', '--keep', '1', '--json']);
  assert.equal(deployed.code, 0, deployed.stderr);
  assert.equal((JSON.parse(deployed.stdout) as { previous: string }).previous, '20200101000000');
  // The release live before stays as the rollback target, and the rollback goes to it.
  assert.ok(fs.existsSync(path.join(root, 'releases', '20200101000000')));
  const back = await runCli(['rollback', root]);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8'), 'old\n');

  // Control: a link to a release of another root is not this root's release.
  const other = path.join(dir, 'other');
  writeTree(path.join(other, 'releases', '20200101000000'), { 'index.html': 'foreign\n' });
  const foreign = path.join(dir, 'foreign');
  writeTree(path.join(foreign, 'releases', '20200101000000'), { 'index.html': 'old\n' });
  fs.symlinkSync(path.join(other, 'releases', '20200101000000'), path.join(foreign, 'current'));
  const refused = await runCli(['deploy', src, foreign, '--no-fsync']);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(refused.stderr, /which is not a release directory in/);
});
