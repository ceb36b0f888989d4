// Owners from an archive, deployed as root: a file the deploy creates already has the deploy's
// owner (or the group of a setgid directory), so a chown is made only where the archive says
// otherwise. strace counts the chown calls; stat checks the owners that result.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { writeArchive, type Spec } from '../harness/archives.ts';
import { tempDir } from '../harness/cli.ts';
import { asUser, requireRoot, runWrapped } from '../harness/faults.ts';

const FILES = 40;
const specs = (extra: Spec[] = []): Spec[] => [
  { name: 'site/', type: 'dir' },
  ...Array.from({ length: FILES }, (_, i): Spec => ({ name: `site/f${i}.txt`, data: `file ${i}\n`, uid: 0, gid: 0 })),
  ...extra,
];

/** Deploys under strace and returns the chown-family calls it made. */
async function chownCalls(t: { after(fn: () => void): void }, dir: string, file: string, root: string): Promise<string[]> {
  const log = path.join(dir, 'strace.log');
  const r = await runWrapped(['deploy', file, root, '--no-fsync', '--quiet'], { prefix: ['strace', '-f', '-qq', '-o', log, '-e', 'trace=chown,fchown,lchown,fchownat'] });
  assert.equal(r.code, 0, r.stderr);
  t.after(() => fs.rmSync(log, { force: true }));
  return fs.readFileSync(log, 'utf8').split('\n').filter((l) => /chown/.test(l) && !/resumed/.test(l));
}

void test('as root, files the archive gives to root are not chowned one by one; another owner still is', async (t) => {
  requireRoot();
  const dir = tempDir(t);
  const file = writeArchive('tar', path.join(dir, 'a.tar'), specs([{ name: 'site/other.txt', data: 'x\n', uid: 1234, gid: 2345 }]));
  const root = path.join(dir, 'root');
  const calls = await chownCalls(t, dir, file, root);
  // One for the file owned by 1234 (and a few for the deploy's own state at most), never one per file.
  assert.ok(calls.length >= 1 && calls.length < FILES / 2, `chown calls: ${calls.length}\n${calls.join('\n')}`);
  const other = fs.statSync(path.join(root, 'current', 'site', 'other.txt'));
  assert.deepEqual([other.uid, other.gid], [1234, 2345]);
  for (let i = 0; i < FILES; i += 13) {
    const st = fs.statSync(path.join(root, 'current', 'site', `f${i}.txt`));
    assert.deepEqual([st.uid, st.gid], [0, 0]);
  }
});

void test('as root under a setgid root, a file the archive gives to group 0 is chowned back from the inherited group', async (t) => {
  requireRoot();
  const dir = tempDir(t);
  const file = writeArchive('tar', path.join(dir, 'a.tar'), specs());
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  // New directories and files under a setgid directory take its group, not the creator's.
  fs.chownSync(root, 0, 2345);
  fs.chmodSync(root, 0o2755);
  const calls = await chownCalls(t, dir, file, root);
  assert.ok(calls.length >= FILES, `chown calls: ${calls.length}`);
  for (let i = 0; i < FILES; i += 13) {
    const st = fs.statSync(path.join(root, 'current', 'site', `f${i}.txt`));
    assert.deepEqual([st.uid, st.gid], [0, 0], `site/f${i}.txt`);
  }
});

void test('a file or directory the deploying user could not read back: refused for a user who is not root (exit 2, nothing changed), kept as it is by root, whose verify passes', async (t) => {
  requireRoot();
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const shut = writeArchive('tar', path.join(dir, 'shut.tar'), [{ name: 'index.html', data: 'hi\n' }, { name: 'secret', data: 's\n', mode: 0o000 }]);
  const closed = writeArchive('tar', path.join(dir, 'closed.tar'), [{ name: 'index.html', data: 'hi\n' }, { name: 'locked/', type: 'dir', mode: 0o000 }, { name: 'locked/f', data: 'f\n' }]);
  const root = path.join(dir, 'user-root');
  fs.mkdirSync(root);
  fs.chownSync(root, 65534, 65534);
  for (const file of [shut, closed]) {
    fs.chmodSync(file, 0o644);
    const r = await runWrapped(['deploy', file, root, '--no-fsync'], { prefix: asUser('nobody') });
    // The old code deployed it (exit 0), and then `verify` as the same user exited 5: "unreadable".
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^error: .*(is a file of mode 0000, which the user that deploys could not read back|is a directory of mode 0000, which the user that deploys could not list back)/m);
    assert.deepEqual(fs.readdirSync(root), [], 'the empty root stays empty');
  }
  const asRoot = path.join(dir, 'root-root');
  const r = await runWrapped(['deploy', shut, asRoot, '--no-fsync', '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.statSync(path.join(asRoot, 'current', 'secret')).mode & 0o7777, 0);
  const v = await runWrapped(['verify', asRoot]);
  assert.equal(v.code, 0, v.stdout + v.stderr);
});
