// Input at the edges: timeouts past what a timer holds, pids no process can have, alias bombs,
// paths past PATH_MAX, counts in other notations, a JSON config from init, a failed first deploy.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';

interface Json {
  error?: { code: string; message: string; hint?: string };
  warnings?: string[];
}

function source(dir: string): string {
  return writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
}

void test('a hook or health timeout past the longest timer is refused with exit 2 before anything is made; the largest allowed one works', async (t) => {
  const dir = tempDir(t);
  const src = source(dir);
  const root = path.join(dir, 'root');
  for (const args of [['--hook-timeout', '2147484', '--after-switch', 'true'], ['--health-timeout', '3000000', '--health-check', 'true']]) {
    const r = await runCli(['deploy', src, root, ...args, '--json']);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(jsonOf<Json>(r).error?.message ?? '', /at most 2147483 seconds/);
    assert.equal(fs.existsSync(root), false);
  }
  // At the limit the hook runs to its end instead of being killed at once.
  const ok = await runCli(['deploy', src, root, '--hook-timeout', '2147483', '--after-switch', 'sleep 0.2', '--health-timeout', '2147483', '--health-check', 'true', '--json']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(jsonOf<Json>(ok).warnings, undefined, ok.stdout);
});

void test('a lock whose pid no process can have (2^31 in owner.json, a huge bash pid file) is stale, not held for ever', async (t) => {
  const dir = tempDir(t);
  const src = source(dir);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--quiet'])).code, 0);
  const lock = path.join(root, '.deploy.lock');
  for (const write of [
    () => fs.writeFileSync(path.join(lock, 'owner.json'), JSON.stringify({ pid: 2 ** 31, host: os.hostname(), user: 'x', since: '2026-01-01T00:00:00Z', token: 'abc' })),
    () => fs.writeFileSync(path.join(lock, 'pid'), '99999999999\n'),
  ]) {
    fs.mkdirSync(lock);
    write();
    const r = await runCli(['deploy', src, root, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /took over a stale lock: pid \d+ cannot belong to any process/);
  }
});

void test('a YAML alias bomb in the config is invalid input (exit 2), not a bug', async (t) => {
  const dir = tempDir(t);
  let yaml = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n';
  let prev = 'a';
  for (const name of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i']) {
    yaml += `${name}: &${name} [${Array(9).fill(`*${prev}`).join(',')}]\n`;
    prev = name;
  }
  fs.writeFileSync(path.join(dir, 'bomb.yaml'), yaml + 'root: *i\n');
  const r = await runCli(['status', '--config', path.join(dir, 'bomb.yaml')]);
  assert.equal(r.code, 2, r.stderr);
  assert.doesNotMatch(r.stderr, /this is a bug/);
});

void test('a source holding a path longer than PATH_MAX is invalid input (exit 2) with a hint; the root is not created', async (t) => {
  // Not under tempDir(): Node's recursive rm walks full paths, which are too long here; rm(1) copes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-deploy-deep-'));
  t.after(() => execFileSync('rm', ['-rf', dir]));
  const src = source(dir);
  // Made a step at a time: each mkdir is relative to the one before.
  const name = 'd'.repeat(200);
  execFileSync(process.execPath, ['-e', `process.chdir(process.argv[1]); for (let i = 0; i < 22; i++) { require('fs').mkdirSync('${name}'); process.chdir('${name}'); } require('fs').writeFileSync('f', 'x');`, src]);
  const root = path.join(dir, 'root');
  const r = await runCli(['deploy', src, root]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: .*PATH_MAX.*\nhint: /);
  assert.equal(fs.existsSync(root), false);
});

void test('a build path that fits PATH_MAX in the build but not under the release\'s stage is refused before the lock (exit 2, a short message); a build of only empty directories too', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-deploy-deep-'));
  t.after(() => execFileSync('rm', ['-rf', dir]));
  const src = source(dir);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--no-fsync', '--quiet'])).code, 0);
  const deep = path.join(dir, 'deep');
  fs.mkdirSync(deep);
  // 16 directories of 250 bytes and a file: about 4,050 bytes under the build, more under the stage.
  execFileSync(process.execPath, ['-e', `process.chdir(process.argv[1]); for (let i = 0; i < 16; i++) { require('fs').mkdirSync('${'y'.repeat(250)}'); process.chdir('${'y'.repeat(250)}'); } require('fs').mkdirSync('${'z'.repeat(30)}'); require('fs').writeFileSync('${'z'.repeat(30)}/f', 'z');`, deep]);
  const before = treeSnapshot(root, { times: true });
  const r = await runCli(['deploy', deep, root, '--no-fsync']);
  assert.equal(r.code, 2, r.stderr);
  const [error, hint, ...rest] = r.stderr.trimEnd().split('\n');
  assert.match(error ?? '', /^error: a path in the build is too long to deploy under .*PATH_MAX/);
  assert.ok((error ?? '').length < 400, `a ${String(error?.length)}-character line`);
  assert.match(hint ?? '', /^hint: flatten the directory nesting of the build, or deploy to a root with a shorter path$/);
  assert.deepEqual(rest, []);
  assert.deepEqual(treeSnapshot(root, { times: true }), before);

  const hollow = path.join(dir, 'hollow');
  fs.mkdirSync(path.join(hollow, 'assets', 'css'), { recursive: true });
  const empty = await runCli(['deploy', hollow, root, '--no-fsync']);
  assert.equal(empty.code, 2, empty.stderr);
  assert.match(empty.stderr, /^error: .*hollow holds no files, only empty directories\nhint: build first/);
  assert.deepEqual(treeSnapshot(root, { times: true }), before);
});

void test('init --config c.json writes JSON that the next command reads', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'c.json');
  const r = await runCli(['init', '--config', file]);
  assert.equal(r.code, 0, r.stderr);
  const parsed = JSON.parse(fs.readFileSync(file, 'utf8')) as { root?: string };
  assert.equal(typeof parsed.root, 'string');
  const next = await runCli(['status', '--config', file, '--json']);
  assert.notEqual(jsonOf<Json>(next).error?.code, 'INVALID_CONFIG', next.stdout);
});

void test('--keep in another notation (0x10, 1e3, " 3") is refused with exit 2', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', source(dir), root, '--quiet'])).code, 0);
  for (const keep of ['0x10', '1e3', ' 3', '3 ', '+3']) {
    const r = await runCli(['prune', root, '--keep', keep, '--dry-run']);
    assert.equal(r.code, 2, `--keep ${JSON.stringify(keep)}: ${r.stderr}`);
  }
});

void test('a first deploy that fails leaves no empty skeleton root', async (t) => {
  const dir = tempDir(t);
  const src = source(dir);
  const root = path.join(dir, 'new-root');
  const r = await runCli(['deploy', src, root, '--before-switch', 'exit 1']);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(fs.existsSync(root), false, `left behind: ${fs.existsSync(root) ? fs.readdirSync(root).join(' ') : ''}`);
  // A root that existed before stays, with what it had.
  const kept = path.join(dir, 'kept');
  fs.mkdirSync(kept);
  assert.equal((await runCli(['deploy', src, kept, '--before-switch', 'exit 1'])).code, 1);
  assert.ok(fs.existsSync(kept));
  assert.equal(currentId(kept), null);
});

void test('an invalid rollback --to gets a hint', async (t) => {
  const dir = tempDir(t);
  const src = source(dir);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--quiet'])).code, 0);
  const r = await runCli(['rollback', root, '--to', 'a/b']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error: invalid release id .*\nhint: /);
});
