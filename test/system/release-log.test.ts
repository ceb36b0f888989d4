// The release log: every field the issue names, in `releases --json` and in the table, and a
// plain `rollback` that skips failed releases unless --to names one.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { renderReleases } from '../../src/cli/render.ts';
import { listReleases } from '../../src/ops/releases.ts';
import { currentId, jsonOf, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { requireTools } from '../harness/faults.ts';

interface Entry {
  id: string;
  current: boolean;
  role: string;
  status: string;
  createdAt: string;
  activatedAt?: string;
  user: string;
  host: string;
  source: string;
  git?: { commit: string; dirty: boolean };
  files: number;
  bytes: number;
  durationMs: number;
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@example.com', ...args], { cwd, encoding: 'utf8' }).trim();
}

function markFailed(root: string, id: string): void {
  const file = path.join(root, '.atomic-deploy/releases', `${id}.json`);
  fs.writeFileSync(file, JSON.stringify({ ...(JSON.parse(fs.readFileSync(file, 'utf8')) as object), status: 'failed' }));
}

void test('releases --json and the table carry id, times, user, host, source, git commit and dirty, files, bytes, duration, status', async (t) => {
  const dir = tempDir(t);
  // The build output inside a git work tree, as in most projects.
  const repo = path.join(dir, 'app');
  const src = writeTree(path.join(repo, 'public'), { 'index.html': 'v1\n', 'lib/a.js': '1;\n' });
  git(repo, 'init', '-q');
  git(repo, 'add', '.');
  git(repo, 'commit', '-q', '-m', 'one');
  const commit = git(repo, 'rev-parse', 'HEAD');
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'clean', '--no-fsync', '--quiet'])).code, 0);
  fs.writeFileSync(path.join(src, 'index.html'), 'v2 uncommitted\n');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'dirty', '--no-fsync', '--quiet'])).code, 0);

  const r = await runCli(['releases', root, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const { current, releases } = jsonOf<{ current: string; releases: Entry[] }>(r);
  assert.equal(current, 'dirty');
  assert.deepEqual(releases.map((e) => [e.id, e.role, e.current]), [['dirty', 'active', true], ['clean', 'previous', false]]);
  for (const e of releases) {
    assert.ok(Date.parse(e.createdAt) > 0, 'createdAt');
    assert.ok(e.activatedAt && Date.parse(e.activatedAt) >= Date.parse(e.createdAt), 'activatedAt');
    assert.equal(e.user, os.userInfo().username);
    assert.equal(e.host, os.hostname());
    assert.equal(e.source, fs.realpathSync(src));
    assert.equal(e.files, 2);
    assert.ok(e.bytes > 0);
    assert.ok(e.durationMs > 0);
    assert.equal(e.status, 'complete');
    assert.equal(e.git?.commit, commit);
  }
  assert.equal(releases[0]?.git?.dirty, true);
  assert.equal(releases[1]?.git?.dirty, false);

  // The table a terminal gets (the CLI picks it when stdout is a TTY).
  const table = stripVTControlCharacters(renderReleases(await listReleases(root), { header: true }));
  const [head, first, second] = table.split('\n');
  assert.match(head ?? '', /^ {3}RELEASE +STATUS +CREATED \(UTC\) +ACTIVATED \(UTC\) +BY +FILES +SIZE +TOOK +COMMIT +DIGEST +SOURCE$/);
  assert.match(first ?? '', new RegExp(`^\\* +dirty +active +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d +${os.userInfo().username}@${os.hostname()} +2 +\\d+ B +\\d+\\.\\d s +${commit.slice(0, 10)}\\+dirty +sha256:[0-9a-f]{12} +${fs.realpathSync(src)}$`));
  assert.match(second ?? '', new RegExp(`^ +clean +previous .* ${commit.slice(0, 10)} +sha256:[0-9a-f]{12} +/`));
  // Columns line up: every row has RELEASE at the same offset as the header.
  assert.equal(first?.indexOf('dirty'), head?.indexOf('RELEASE'));
  // A pipe gets the same rows, without the header.
  const piped = await runCli(['releases', root]);
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(piped.stdout, `${first}\n${second}\n`);
  // --quiet quiets it, as everywhere.
  assert.equal((await runCli(['releases', root, '--quiet'])).stdout, '');
  assert.equal((await runCli(['status', root, '-q'])).stdout, '');
});

void test('rollback skips failed releases unless --to names one', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'x\n' });
  const root = path.join(dir, 'root');
  for (const id of ['a', 'b', 'c']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet'])).code, 0);
  markFailed(root, 'b');

  const list = jsonOf<{ releases: Entry[] }>(await runCli(['releases', root, '--json']));
  assert.deepEqual(list.releases.map((e) => [e.id, e.role]), [['c', 'active'], ['b', 'failed'], ['a', 'previous']]);

  const back = await runCli(['rollback', root, '--json']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), 'a', 'rollback went to a failed release');

  const to = await runCli(['rollback', root, '--to', 'b', '--json']);
  assert.equal(to.code, 0, to.stderr);
  assert.equal(currentId(root), 'b');
});

void test('commands read only the records of releases still in releases/: history costs a readdir, and its ids are never reused', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'one\n' });
  const root = path.join(dir, 'root');
  for (const id of ['r1', 'r2', 'r3']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--quiet'])).code, 0);
  assert.equal((await runCli(['prune', root, '--keep', '1', '--quiet'])).code, 0);
  assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), ['r2', 'r3'], 'r1 pruned; r2 stays as the rollback target');
  // The pruned release's record becomes a FIFO: a command that opened it would block forever.
  const pruned = path.join(root, '.atomic-deploy/releases', 'r1.json');
  fs.rmSync(pruned);
  execFileSync('mkfifo', [pruned]);
  for (const args of [['deploy', src, root, '--release-id', 'r4', '--json'], ['deploy', src, root, '--dry-run', '--json'], ['releases', root, '--json'], ['status', root, '--json'], ['rollback', root, '--json']]) {
    const result = await runCli(args, { timeoutMs: 20_000 });
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}${result.signal ?? ''}`);
  }
  assert.equal(currentId(root), 'r3', 'rolled back from r4 to r3');
  const reused = await runCli(['deploy', src, root, '--release-id', 'r1', '--json'], { timeoutMs: 20_000 });
  assert.equal(reused.code, 2, reused.stderr);
  assert.equal(jsonOf<{ error: { code: string } }>(reused).error.code, 'RELEASE_EXISTS', 'a pruned id is still taken');
  // Said as it is (it said "already exists in releases/", where nothing of that name was).
  assert.match(jsonOf<{ error: { message: string } }>(reused).error.message, /^release id r1 was used before: that release was pruned/);
  // A file under a release's name is no release: neither "exists" nor a hint to roll back to it.
  fs.writeFileSync(path.join(root, 'releases', 'r9'), 'x\n');
  const file = await runCli(['deploy', src, root, '--release-id', 'r9'], { timeoutMs: 20_000 });
  assert.equal(file.code, 2, file.stderr);
  assert.match(file.stderr, /^error: \S+releases\/r9 is taken by a file, not a release directory$/m);
  assert.doesNotMatch(file.stderr, /rollback/);
  // r3 is live: no rollback to offer (it would say "already current").
  const live = await runCli(['deploy', src, root, '--release-id', 'r3'], { timeoutMs: 20_000 });
  assert.match(live.stderr, /^hint: release ids are never reused: pick a new id to deploy this build again$/m);
  const older = await runCli(['deploy', src, root, '--release-id', 'r2'], { timeoutMs: 20_000 });
  assert.match(older.stderr, /^hint: release ids are never reused: pick a new id, or switch to it with: atomic-deploy rollback \S+ --to r2$/m);
});

void test('rollback --to a newer release (forward) leaves the release it goes from good: kept by prune, and a plain rollback goes back to it', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'x\n' });
  const root = path.join(dir, 'root');
  for (const id of ['v1', 'v2', 'v3']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet', '--keep', '0'])).code, 0);
  for (let i = 0; i < 2; i++) assert.equal((await runCli(['rollback', root, '--quiet'])).code, 0);
  assert.equal(currentId(root), 'v1');
  assert.equal((await runCli(['rollback', root, '--to', 'v3', '--quiet'])).code, 0);
  const list = jsonOf<{ releases: Entry[] }>(await runCli(['releases', root, '--json']));
  // v2 was rolled back from (bad); v1 was only left for a newer release, as a deploy leaves one.
  assert.deepEqual(list.releases.map((e) => [e.id, e.status]), [['v3', 'complete'], ['v2', 'rolled-back'], ['v1', 'complete']]);
  const back = await runCli(['rollback', root, '--dry-run', '--json']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(jsonOf<{ release: string }>(back).release, 'v1');
  const next = await runCli(['deploy', src, root, '--release-id', 'v4', '--no-fsync', '--json']);
  assert.equal(next.code, 0, next.stderr);
  assert.ok(fs.existsSync(path.join(root, 'releases', 'v1')), 'the default --keep pruned a good release');
});

void test('a damaged record is named: releases warns (JSON: recordDamaged), verify says damaged, not missing; nothing is changed', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v\n' });
  const root = path.join(dir, 'root');
  for (const id of ['r1', 'r2', 'r3']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--quiet'])).code, 0);
  const file = path.join(root, '.atomic-deploy', 'releases', 'r2.json');
  const cases: [string, string][] = [['{"id":"r2","seq":2,"status":"comp', 'not valid JSON'], ['', 'empty'], ['[1]', 'not a JSON object'], ['{"id":"r9"}', 'it names another release ("r9")']];
  for (const [text, why] of cases) {
    fs.writeFileSync(file, text);
    const list = await runCli(['releases', root, '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.equal(list.stderr, `warning: the release log record of r2 is damaged (${why}): it is listed, ordered and rolled back to as a release without one\nhint: its record is .atomic-deploy/releases/r2.json; verify cannot check the release without it\n`);
    const row = jsonOf<{ releases: { id: string; recordDamaged?: string }[] }>(list).releases.find((r) => r.id === 'r2');
    assert.equal(row?.recordDamaged, why);
    const verify = await runCli(['verify', root, '--release', 'r2']);
    assert.equal(verify.code, 2, verify.stderr);
    assert.match(verify.stderr, new RegExp(`^error: release r2 has a manifest file but a damaged release log record \\(${why.replace(/[()"]/g, '\\$&')}\\) to prove it`));
    assert.equal(fs.readFileSync(file, 'utf8'), text);
  }
  // A rollback to it and a prune of it (and of another damaged one) keep the damaged text: they
  // wrote made-up fields over it (empty createdAt and user, files 0, previous null) and the warning went.
  const damaged = '{"id":"r2","seq":2,"status":"comp';
  fs.writeFileSync(file, damaged);
  const back = await runCli(['rollback', root, '--quiet']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(currentId(root), 'r2');
  assert.equal(fs.readFileSync(file, 'utf8'), damaged, 'rollback rewrote the damaged record');
  const first = path.join(root, '.atomic-deploy', 'releases', 'r1.json');
  fs.writeFileSync(first, 'garbage');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'r4', '--quiet', '--keep', '0'])).code, 0);
  const pruned = await runCli(['prune', root, '--keep', '1', '--json']);
  assert.equal(pruned.code, 0, pruned.stderr);
  assert.ok((JSON.parse(pruned.stdout) as { removed: { id: string }[] }).removed.some((r) => r.id === 'r1'), pruned.stdout);
  assert.equal(fs.readFileSync(first, 'utf8'), 'garbage', 'prune rewrote the damaged record');
  // A missing record is no damage: no warning.
  fs.rmSync(file);
  const list = await runCli(['releases', root]);
  assert.doesNotMatch(list.stderr, /damaged/);
});

// A record that refuses the write (chattr +i; a log owned by another user does the same): a
// rollback switched, then exited 1 with a bare EPERM, as if nothing had changed; prune moved r1
// out, then exited 1 without naming it; a deploy's own prune stopped after moving it.
void test('a release log record that refuses its write: rollback says its switch stands; prune and a deploy\'s prune go on and say the release is gone', async (t) => {
  requireTools('chattr');
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'x\n' });
  const deployed = async (name: string, ids: string[]): Promise<string> => {
    const root = path.join(dir, name);
    for (const id of ids) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--quiet', '--keep', '0'])).code, 0);
    return root;
  };
  // Made mutable again in the test's own finally: tempDir's removal, an earlier after-hook, runs first.
  const stuck: string[] = [];
  const immutable = (file: string): void => {
    execFileSync('chattr', ['+i', file]);
    stuck.push(file);
  };
  try {
    const rolled = await deployed('rollback', ['r1', 'r2', 'r3']);
    immutable(path.join(rolled, '.atomic-deploy/releases/r3.json'));
    const back = await runCli(['rollback', rolled]);
    assert.equal(back.code, 1, back.stderr);
    assert.match(back.stderr, /^error: release r2 is live \(rolled back from r3\), but /m);
    assert.match(back.stderr, /^hint: the next atomic-deploy command finishes the record by itself/m);
    assert.equal(currentId(rolled), 'r2');

    const pruned = await deployed('prune', ['r1', 'r2', 'r3']);
    immutable(path.join(pruned, '.atomic-deploy/releases/r1.json'));
    const p = await runCli(['prune', pruned, '--keep', '1', '--json']);
    assert.equal(p.code, 0, p.stderr);
    assert.deepEqual((JSON.parse(p.stdout) as { removed: { id: string }[] }).removed.map((r) => r.id), ['r1']);
    assert.match(p.stderr, /^warning: release r1 was pruned, but its record could not be marked so: /m);
    assert.deepEqual(fs.readdirSync(path.join(pruned, 'releases')).sort(), ['r2', 'r3']);
    assert.deepEqual(fs.readdirSync(path.join(pruned, '.tmp')).filter((n) => n.startsWith('trash')), [], 'its trash was left');

    const withDeploy = await deployed('deploy', ['r1', 'r2', 'r3']);
    immutable(path.join(withDeploy, '.atomic-deploy/releases/r1.json'));
    const d = await runCli(['deploy', src, withDeploy, '--release-id', 'r4', '--keep', '1', '--json']);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual((JSON.parse(d.stdout) as { prune: { removed: { id: string }[] } }).prune.removed.map((r) => r.id).sort(), ['r1', 'r2']);
    assert.deepEqual(fs.readdirSync(path.join(withDeploy, 'releases')).sort(), ['r3', 'r4']);
    assert.deepEqual(fs.readdirSync(path.join(withDeploy, '.tmp')).filter((n) => n.startsWith('trash')), [], 'its trash was left');
  } finally {
    for (const file of stuck) execFileSync('chattr', ['-i', file]);
  }
});

// A first deploy whose health check failed stays live (nothing to roll back to), marked failed in
// its record; the table said `active` alone, as for a good release.
void test('the live release marked failed, or live unverified: the table says it after the role, --json in the record fields beside role', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', src, root, '--release-id', 'r1', '--no-fsync', '--health-check', 'false', '--health-timeout', '1']);
  assert.equal(first.code, 1, first.stderr);
  assert.equal(currentId(root), 'r1');
  const failed = await runCli(['releases', root]);
  assert.equal(failed.code, 0, failed.stderr);
  assert.match(failed.stdout, /^\* +r1 +active, failed +\d{4}-/m);
  const entry = jsonOf<{ releases: (Entry & { reason?: string })[] }>(await runCli(['releases', root, '--json'])).releases[0];
  // role stays one of its words (scripts match on it); the record's status and reason say the rest.
  assert.deepEqual([entry?.role, entry?.status, entry?.reason], ['active', 'failed', 'health check failed: command "false" exited with code 1']);

  // Exit 7: live, unverified; the record's afterSwitchFailure is what the table reads.
  const hooked = await runCli(['deploy', src, root, '--release-id', 'r2', '--no-fsync', '--after-switch', 'false']);
  assert.equal(hooked.code, 7, hooked.stderr);
  const listed = await runCli(['releases', root]);
  assert.match(listed.stdout, /^\* +r2 +active, unverified +\d{4}-/m);
  assert.match(listed.stdout, /^ +r1 +failed +\d{4}-/m);
  const r2 = jsonOf<{ releases: (Entry & { afterSwitchFailure?: string })[] }>(await runCli(['releases', root, '--json'])).releases[0];
  assert.deepEqual([r2?.id, r2?.role, r2?.status], ['r2', 'active', 'complete']);
  assert.match(r2?.afterSwitchFailure ?? '', /^after-switch hook "false" exited with code 1; release r2 stays live/);
});
