// The git commit and dirty flag recorded for a directory deploy are read from the repository, never
// run from it: a core.fsmonitor program or a filter driver in its config (its own, or one a `.git`
// file points to) ran as the deploying user, a program it left running held the deploy until git's
// timeout, and `git status` rewrote the source repository's index. None of it may fail or hold a
// deploy: the info is recorded when git gives it, left out otherwise.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { jsonOf, runCli, tempDir } from '../harness/cli.ts';
import { writeTree } from '../harness/cli.ts';

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd, encoding: 'utf8' }).trim();
}

/** A repository whose build output `dist/` is committed; returns its HEAD. */
function repository(repo: string): string {
  writeTree(repo, { 'dist/index.html': '<h1>v1</h1>\n', 'dist/app.js': 'ok\n', '.gitattributes': '*.js filter=evil\n' });
  git(repo, 'init', '-q');
  git(repo, 'add', '.');
  git(repo, 'commit', '-q', '-m', 'one');
  return git(repo, 'rev-parse', 'HEAD');
}

type Entry = { id: string; git?: { commit: string; dirty: boolean } };

async function releases(root: string): Promise<Entry[]> {
  const r = await runCli(['releases', root, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const parsed = jsonOf<Entry[] | { releases: Entry[] }>(r);
  return Array.isArray(parsed) ? parsed : parsed.releases;
}

void test('a repository config naming a core.fsmonitor program and a clean filter: neither runs, the deploy is not held, the index is not rewritten, the commit is recorded', async (t) => {
  const dir = tempDir(t);
  const repo = path.join(dir, 'repo');
  const commit = repository(repo);
  const marker = path.join(dir, 'ran');
  // Each program notes that it ran and leaves a child holding git's stdout for 60 s.
  const program = path.join(dir, 'program.sh');
  fs.writeFileSync(program, `#!/bin/sh\necho "$0 $*" >> ${marker}\nsleep 60 &\ncat\n`, { mode: 0o755 });
  git(repo, 'config', 'core.fsmonitor', program);
  git(repo, 'config', 'filter.evil.clean', program);
  git(repo, 'config', 'filter.evil.required', 'true');
  // A stat change (same content) makes `git status` hash the file again, through the filter.
  const later = new Date(Date.now() + 60_000);
  fs.utimesSync(path.join(repo, 'dist', 'app.js'), later, later);
  const index = fs.readFileSync(path.join(repo, '.git', 'index'));
  const root = path.join(dir, 'root');
  const started = Date.now();
  const r = await runCli(['deploy', path.join(repo, 'dist'), root, '--release-id', 'one', '--no-fsync', '--quiet'], { timeoutMs: 90_000 });
  const took = Date.now() - started;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.existsSync(marker), false, `a program from the repository's config ran: ${fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : ''}`);
  assert.ok(took < 8000, `the deploy took ${took} ms`);
  assert.deepEqual(fs.readFileSync(path.join(repo, '.git', 'index')), index, 'the source repository\'s index was rewritten');
  const [entry] = await releases(root);
  assert.equal(entry?.git?.commit, commit);

  // The same repository reached through a `.git` file (gitdir:) from another build directory.
  const build = path.join(dir, 'build');
  fs.cpSync(path.join(repo, 'dist'), path.join(build, 'dist'), { recursive: true });
  fs.writeFileSync(path.join(build, '.git'), `gitdir: ${path.join(repo, '.git')}\n`);
  const pointed = await runCli(['deploy', path.join(build, 'dist'), root, '--release-id', 'two', '--no-fsync', '--quiet'], { timeoutMs: 90_000 });
  assert.equal(pointed.code, 0, pointed.stderr);
  assert.equal(fs.existsSync(marker), false, 'a program from the config a .git file points to ran');
});

void test('git that hangs (a huge repository) and leaves a child holding its output: the deploy goes on after the timeout, without git info; a status that does not finish is not recorded as clean', async (t) => {
  const dir = tempDir(t);
  const repo = path.join(dir, 'repo');
  repository(repo);
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin);
  // A git that never answers, and whose child keeps the pipe open long after git is killed.
  fs.writeFileSync(path.join(bin, 'git'), '#!/bin/sh\nsleep 120 &\nsleep 120\n', { mode: 0o755 });
  const root = path.join(dir, 'root');
  const started = Date.now();
  const r = await runCli(['deploy', path.join(repo, 'dist'), root, '--release-id', 'one', '--no-fsync', '--quiet'], { env: { PATH: `${bin}:${process.env.PATH ?? ''}` }, timeoutMs: 100_000 });
  const took = Date.now() - started;
  assert.equal(r.signal, null, 'killed by the test');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(took < 30_000, `the deploy took ${took} ms: held by the program git left running`);
  const [entry] = await releases(root);
  assert.equal(entry?.id, 'one');
  assert.equal(entry?.git, undefined);

  // A git that answers rev-parse but whose status never ends: the commit is kept, and the tree is
  // not called clean (the old code recorded dirty: false).
  const real = execFileSync('sh', ['-c', 'command -v git'], { encoding: 'utf8' }).trim();
  fs.writeFileSync(path.join(bin, 'git'), `#!/bin/sh\ncase " $* " in *" status "*) sleep 120 & sleep 120 ;; *) exec ${real} "$@" ;; esac\n`, { mode: 0o755 });
  const slowStatus = await runCli(['deploy', path.join(repo, 'dist'), root, '--release-id', 'two', '--no-fsync', '--quiet'], { env: { PATH: `${bin}:${process.env.PATH ?? ''}` }, timeoutMs: 100_000 });
  assert.equal(slowStatus.code, 0, slowStatus.stderr);
  const two = (await releases(root)).find((e) => e.id === 'two');
  assert.deepEqual(two?.git, { commit: git(repo, 'rev-parse', 'HEAD'), dirty: true });
});

void test('a .git that is a FIFO, or a repository git refuses (safe.directory): the deploy goes on at once, without git info', async (t) => {
  const dir = tempDir(t);
  const fifoBuild = path.join(dir, 'fifo');
  // The FIFO above the build (in the build itself it is refused as content: a release holds no FIFO).
  writeTree(fifoBuild, { 'dist/index.html': 'x\n' });
  execFileSync('mkfifo', [path.join(fifoBuild, '.git')]);
  const refused = path.join(dir, 'refused');
  repository(refused);
  // Owned by another user: git refuses it (dubious ownership) unless safe.directory lists it.
  execFileSync('chown', ['-R', 'nobody:', refused]);
  const root = path.join(dir, 'root');
  for (const [id, source] of [['fifo', path.join(fifoBuild, 'dist')], ['refused', path.join(refused, 'dist')]] as const) {
    const started = Date.now();
    const r = await runCli(['deploy', source, root, '--release-id', id, '--no-fsync', '--quiet'], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `${id}: ${r.stderr}`);
    assert.ok(Date.now() - started < 8000, `${id}: took ${Date.now() - started} ms`);
    const entry = (await releases(root)).find((e) => e.id === id);
    assert.equal(entry?.git, undefined, id);
  }
});
