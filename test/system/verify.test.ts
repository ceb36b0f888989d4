// `verify`: every kind of tampering found and named, exit 0/5/2, and a manifest that is missing,
// truncated, not JSON, edited or swapped for a FIFO is reported, never trusted.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { jsonOf, runCli, snapshot, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { asUser, runWrapped } from '../harness/faults.ts';

interface VerifyJson {
  release?: string;
  identical?: boolean;
  digest?: string;
  differences?: { path: string; kind: string; expected?: string; actual?: string }[];
  error?: { code: string; message: string; hint?: string };
}

const FIXED = new Date('1985-10-26T08:15:00Z');

/** A deployed root (release `one`, live) with a shared link, an executable and a symlink. */
async function deployed(t: { after(fn: () => void): void }): Promise<{ root: string; src: string; rel: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': '<h1>v1</h1>\n', 'version': 'v1\n', 'assets/app.js': 'let a = 1;\n', 'bin/run.sh': '#!/bin/sh\n' });
  fs.chmodSync(path.join(src, 'bin/run.sh'), 0o755);
  fs.symlinkSync('index.html', path.join(src, 'home.html'));
  const root = path.join(dir, 'root');
  const result = await runCli(['deploy', src, root, '--release-id', 'one', '--shared-dir', 'storage', '--shared-create', '--json']);
  assert.equal(result.code, 0, result.stderr);
  return { root, src, rel: path.join(root, 'releases', 'one') };
}

void test('a fresh release verifies clean: exit 0, JSON names the release and the digest of its record', async (t) => {
  const { root } = await deployed(t);
  const result = await runCli(['verify', root, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const json = jsonOf<VerifyJson>(result);
  assert.equal(json.release, 'one');
  assert.equal(json.identical, true);
  assert.deepEqual(json.differences, []);
  const record = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy/releases/one.json'), 'utf8')) as { digest: string };
  assert.match(record.digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(json.digest, record.digest);
  const human = await runCli(['verify', root]);
  assert.equal(human.code, 0);
  assert.match(human.stdout, /release one matches its manifest \(4 files, 2 directories, 2 symlinks; sha256:[0-9a-f]{12}\)/);
});

void test('tampering of every kind is found and named: exit 5', async (t) => {
  const { root, rel } = await deployed(t);
  // Same size, same mtime: only the bytes tell.
  const version = path.join(rel, 'version');
  fs.writeFileSync(version, 'v2\n');
  fs.utimesSync(version, FIXED, FIXED);
  fs.chmodSync(path.join(rel, 'bin/run.sh'), 0o777);
  fs.writeFileSync(path.join(rel, 'assets/extra.js'), 'evil()\n');
  fs.rmSync(path.join(rel, 'assets/app.js'));
  fs.rmSync(path.join(rel, 'home.html'));
  fs.symlinkSync('/etc/passwd', path.join(rel, 'home.html'));
  fs.rmSync(path.join(rel, 'index.html'));
  fs.mkdirSync(path.join(rel, 'index.html'));
  execFileSync('mkfifo', [path.join(rel, 'pipe')]);

  const before = snapshot(root);
  const result = await runCli(['verify', root, '--json']);
  assert.equal(result.code, 5, result.stderr);
  const json = jsonOf<VerifyJson>(result);
  assert.equal(json.identical, false);
  assert.deepEqual(json.differences?.map((d) => [d.path, d.kind]), [
    ['assets/app.js', 'removed'],
    ['assets/extra.js', 'added'],
    ['bin/run.sh', 'mode'],
    ['home.html', 'retargeted'],
    ['index.html', 'type'],
    ['pipe', 'added'],
    ['version', 'modified'],
  ]);
  assert.deepEqual(snapshot(root), before, 'verify changed nothing');

  const human = await runCli(['verify', root]);
  assert.equal(human.code, 5);
  assert.match(human.stdout, /^retargeted {2}home\.html {2}\(index\.html -> \/etc\/passwd\)$/m);
  assert.match(human.stdout, /^mode {8}bin\/run\.sh {2}\(755 -> 777\)$/m);
  assert.match(human.stdout, /^release one differs from its manifest: 7 differences$/m);
  // --quiet leaves only errors: the differences are this command's failure, in one line.
  const quiet = await runCli(['verify', root, '--quiet']);
  assert.equal(quiet.code, 5);
  assert.equal(quiet.stdout, '');
  assert.equal(quiet.stderr, 'error: release one differs from its manifest: 7 differences\nhint: run verify without --quiet to list them\n');
});

void test('--release checks another release; bad ids and unknown releases exit 2', async (t) => {
  const { root, src } = await deployed(t);
  fs.writeFileSync(path.join(src, 'version'), 'v2\n');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'two', '--shared', 'storage'])).code, 0);
  fs.appendFileSync(path.join(root, 'releases/one/version'), 'x');
  assert.equal((await runCli(['verify', root])).code, 0, 'the live release (two) is clean');
  const old = await runCli(['verify', root, '--release', 'one', '--json']);
  assert.equal(old.code, 5);
  assert.deepEqual(jsonOf<VerifyJson>(old).differences?.map((d) => d.path), ['version']);
  for (const [args, message] of [
    [['--release', '../two'], /invalid release id/],
    [['--release', 'nope'], /release nope does not exist/],
  ] as const) {
    const r = await runCli(['verify', root, ...args, '--json']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(jsonOf<VerifyJson>(r).error?.message ?? '', message);
  }
});

void test('a release made before manifests: exit 2, the message says how to get one', async (t) => {
  const { root } = await deployed(t);
  // What a root from an earlier version holds: a record without a digest, no manifest.
  const recordFile = path.join(root, '.atomic-deploy/releases/one.json');
  const record = JSON.parse(fs.readFileSync(recordFile, 'utf8')) as Record<string, unknown>;
  delete record.digest;
  fs.writeFileSync(recordFile, JSON.stringify(record));
  fs.rmSync(path.join(root, '.atomic-deploy/manifests'), { recursive: true });
  const result = await runCli(['verify', root, '--json']);
  assert.equal(result.code, 2, result.stderr);
  const error = jsonOf<VerifyJson>(result).error;
  assert.equal(error?.code, 'NO_MANIFEST');
  assert.match(error?.message ?? '', /release one has no manifest/);
  assert.match(error?.hint ?? '', /deploy the build again/);
  const human = await runCli(['verify', root]);
  assert.equal(human.code, 2);
  assert.match(human.stderr, /^error: release one has no manifest.*\nhint: deploy the build again/m);
});

void test('a manifest whose release log record is gone or has no digest: exit 2, and the message says the record is what is missing (before: "made before manifests")', async (t) => {
  for (const damage of ['record removed', 'digest removed'] as const) {
    const { root } = await deployed(t);
    const recordFile = path.join(root, '.atomic-deploy/releases/one.json');
    if (damage === 'record removed') fs.rmSync(recordFile);
    else {
      const record = JSON.parse(fs.readFileSync(recordFile, 'utf8')) as Record<string, unknown>;
      delete record.digest;
      fs.writeFileSync(recordFile, JSON.stringify(record));
    }
    const result = await runCli(['verify', root]);
    assert.equal(result.code, 2, result.stderr);
    const what = damage === 'record removed' ? 'no release log record' : 'no digest in its release log record';
    assert.match(result.stderr, new RegExp(`^error: release one has a manifest file but ${what} to prove it, so nothing can be checked against it$`, 'm'), damage);
  }
});

void test('an untrusted manifest (missing, truncated, not JSON, edited, a FIFO) is reported: exit 2, nothing trusted', async (t) => {
  const cases: [string, (file: string) => void, RegExp][] = [
    ['missing', (f) => fs.rmSync(f), /it is missing/],
    ['truncated', (f) => fs.truncateSync(f, fs.statSync(f).size - 10), /digest does not match/],
    ['not JSON', (f) => fs.writeFileSync(f, 'garbage'), /digest does not match/],
    // An edit that keeps the JSON valid and hides the tampering: only the digest catches it.
    ['edited', (f) => fs.writeFileSync(f, fs.readFileSync(f, 'utf8').replace('"path":"version","type":"file","mode":420', '"path":"version","type":"file","mode":511')), /digest does not match/],
    ['a FIFO', (f) => (fs.rmSync(f), execFileSync('mkfifo', [f])), /not a regular file/],
    ['a symlink', (f) => (fs.renameSync(f, `${f}.real`), fs.symlinkSync(`${f}.real`, f)), /not a regular file/],
  ];
  for (const [name, damage, message] of cases) {
    const { root } = await deployed(t);
    const file = path.join(root, '.atomic-deploy/manifests/one.json');
    damage(file);
    const result = await runCli(['verify', root, '--json'], { timeoutMs: 20_000 });
    assert.equal(result.code, 2, `${name}: ${result.stderr}`);
    const error = jsonOf<VerifyJson>(result).error;
    assert.equal(error?.code, 'MANIFEST_UNTRUSTED', name);
    assert.match(error?.message ?? '', message, name);
  }
});

void test('the library: verify() returns the differences; it throws DeployError without a manifest', async (t) => {
  const { verify, DeployError } = await import('../../src/index.ts');
  const { root, rel } = await deployed(t);
  assert.equal((await verify(root)).identical, true);
  fs.chmodSync(path.join(rel, 'version'), 0o600);
  const result = await verify(root, { release: 'one' });
  assert.deepEqual(result.differences, [{ path: 'version', kind: 'mode', expected: '644', actual: '600' }]);
  fs.rmSync(path.join(root, '.atomic-deploy/manifests/one.json'));
  await assert.rejects(verify(root), (e: unknown) => e instanceof DeployError && e.code === 'MANIFEST_UNTRUSTED' && e.exitCode === 2);
});

void test('a FIFO put in place of a file is one type difference, with what was expected and what was found', async (t) => {
  const { root, rel } = await deployed(t);
  fs.rmSync(path.join(rel, 'version'));
  execFileSync('mkfifo', [path.join(rel, 'version')]);
  const result = await runCli(['verify', root, '--json'], { timeoutMs: 20_000 });
  assert.equal(result.code, 5, result.stderr);
  assert.deepEqual(jsonOf<VerifyJson>(result).differences, [{ path: 'version', kind: 'type', expected: 'file', actual: 'FIFO' }]);
  const human = await runCli(['verify', root], { timeoutMs: 20_000 });
  assert.match(human.stdout, /^type {2}version {2}\(file -> FIFO\)$/m);
  assert.match(human.stdout, /^release one differs from its manifest: 1 difference$/m);
});

void test('run by the owner of the root, what it cannot read is a mode difference and unreadable: exit 5, not an error', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n', 'sub/x.txt': 'x\n', 'sub/deep/a.txt': 'a\n', 'sub/deep/b/c.txt': 'c\n', 'sub/open/o.txt': 'o\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  execFileSync('chown', ['-R', 'daemon:', root]);
  const rel = path.join(root, 'releases', 'one');
  const asOwner = (args: string[]): ReturnType<typeof runWrapped> => runWrapped(args, { prefix: asUser('daemon') });
  assert.equal((await asOwner(['verify', root])).code, 0, 'clean as the owner');

  fs.chmodSync(path.join(rel, 'sub/deep'), 0o000);
  fs.chmodSync(path.join(rel, 'index.html'), 0o000);
  // Listable but not searchable: its names are there, nothing under them can be looked at.
  fs.chmodSync(path.join(rel, 'sub/open'), 0o644);
  const before = snapshot(root);
  const result = await asOwner(['verify', root, '--json']);
  assert.equal(result.code, 5, result.stderr);
  assert.deepEqual(jsonOf<VerifyJson>(result).differences, [
    { path: 'index.html', kind: 'mode', expected: '644', actual: '000' },
    { path: 'index.html', kind: 'unreadable', actual: 'permission denied: its content was not checked' },
    { path: 'sub/deep', kind: 'mode', expected: '755', actual: '000' },
    { path: 'sub/deep', kind: 'unreadable', actual: 'permission denied: 3 listed entries under it were not checked' },
    { path: 'sub/open', kind: 'mode', expected: '755', actual: '644' },
    { path: 'sub/open', kind: 'unreadable', actual: 'permission denied: 1 listed entry under it was not checked' },
  ]);
  assert.deepEqual(snapshot(root), before, 'verify changed nothing');
  const human = await asOwner(['verify', root]);
  assert.equal(human.code, 5, human.stderr);
  assert.match(human.stdout, /^unreadable {2}sub\/deep {2}\(permission denied: 3 listed entries under it were not checked\)$/m);
  assert.doesNotMatch(human.stderr, /permission denied|hint:/);
});

void test('the release directory\'s own mode is in the manifest: a chmod of releases/<id> (nginx then answers 403 to everything) is found, path "."', async (t) => {
  const { root, src, rel } = await deployed(t);
  const manifest = fs.readFileSync(path.join(root, '.atomic-deploy/manifests/one.json'), 'utf8');
  assert.ok(manifest.startsWith(`{"format":"atomic-deploy/manifest@1","root":{"mode":${fs.statSync(src).mode & 0o7777}},"entries":[\n`), manifest.slice(0, 80));
  assert.equal(fs.statSync(rel).mode & 0o777, fs.statSync(src).mode & 0o777, 'the release directory has the build directory\'s mode');
  fs.chmodSync(rel, 0o700);
  const result = await runCli(['verify', root, '--json']);
  assert.equal(result.code, 5, result.stderr);
  assert.deepEqual(jsonOf<VerifyJson>(result).differences, [{ path: '.', kind: 'mode', expected: (fs.statSync(src).mode & 0o777).toString(8), actual: '700' }]);
  // A manifest written before the root was recorded (no "root" key, same entries) checks everything else, not the root.
  const old = manifest.replace(/"root":\{"mode":\d+\},/, '');
  const recordFile = path.join(root, '.atomic-deploy/releases/one.json');
  const record = JSON.parse(fs.readFileSync(recordFile, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(root, '.atomic-deploy/manifests/one.json'), old);
  fs.writeFileSync(recordFile, JSON.stringify({ ...record, digest: `sha256:${createHash('sha256').update(old).digest('hex')}` }));
  const before = await runCli(['verify', root]);
  assert.equal(before.code, 0, before.stdout + before.stderr);
});

/** A process that writes and deletes files and directories in `dir` until stopped, as an app keeping a cache in its release does. */
function churn(dir: string): { stop(): Promise<void> } {
  fs.mkdirSync(dir, { recursive: true });
  // Files, and directories with a file in each, made and removed in turns.
  const script = `const fs = require('node:fs'); const d = process.argv[1]; for (let i = 0; ; i++) {
    fs.writeFileSync(d + '/s' + (i % 400), 'x'); try { fs.unlinkSync(d + '/s' + ((i + 200) % 400)); } catch {}
    if (i % 4 === 0) { const n = d + '/t' + (i % 40); fs.mkdirSync(n, { recursive: true }); fs.writeFileSync(n + '/f', 'y'); fs.rmSync(d + '/t' + ((i + 20) % 40), { recursive: true, force: true }); }
  }`;
  const child = spawn(process.execPath, ['-e', script, dir], { stdio: 'ignore' });
  return {
    stop: () => new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    }),
  };
}

void test('files that come and go while verify reads (an app\'s cache in its release) are found or not, never an error: exit 5 every time (before: exit 1, "ENOENT ... open", in about 4 of 10 runs)', async (t) => {
  const { root, rel } = await deployed(t);
  const app = churn(path.join(rel, 'cache'));
  try {
    for (let run = 0; run < 20; run++) {
      const result = await runCli(['verify', root, '--json']);
      assert.equal(result.code, 5, `run ${run}: ${result.stdout}${result.stderr}`);
      const differences = jsonOf<VerifyJson>(result).differences ?? [];
      assert.ok(differences.length > 0);
      for (const d of differences) {
        assert.ok(d.path === 'cache' || d.path.startsWith('cache/'), `run ${run}: ${JSON.stringify(d)}`);
        assert.equal(d.kind, 'added', `run ${run}: ${JSON.stringify(d)}`);
      }
    }
  } finally {
    await app.stop();
  }
});

/** Resolves once process `pid` holds a file under `dir` open (its walk has begun there); false if it ended first. */
async function opensUnder(pid: number, dir: string): Promise<boolean> {
  for (;;) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      return false;
    }
    for (const fd of fds) {
      let target = '';
      try {
        target = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (target.startsWith(`${dir}/`)) return true;
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

void test('a release pruned while verify reads it: exit 2, "removed while it was being verified", never a list of everything removed nor a raw ENOENT (before: exit 1, "hashing release old failed: ENOENT")', async (t) => {
  const dir = tempDir(t);
  const files: Record<string, string> = {};
  for (let d = 0; d < 20; d++) for (let f = 0; f < 300; f++) files[`d${d}/f${f}`] = `${d} ${f}\n`;
  const src = writeTree(path.join(dir, 'src'), files);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'old'])).code, 0);
  const rel = path.join(root, 'releases', 'old');
  const away = path.join(dir, 'away');
  let midWalk = 0;
  for (let run = 0; run < 5; run++) {
    const { child, done } = spawnCli(['verify', root, '--release', 'old', '--json']);
    // Moved out (as prune does, before it deletes) once the walk has opened a file of the release.
    const open = await opensUnder(child.pid as number, rel);
    fs.renameSync(rel, away);
    const result = await done;
    fs.renameSync(away, rel);
    if (!open) continue;
    midWalk += 1;
    assert.equal(result.code, 2, `run ${run}: ${result.stdout}${result.stderr}`);
    const error = jsonOf<VerifyJson>(result).error;
    assert.equal(error?.code, 'UNKNOWN_RELEASE', `run ${run}`);
    assert.equal(error?.message, `release old was removed from ${path.join(root, 'releases')} while it was being verified`, `run ${run}`);
  }
  assert.ok(midWalk >= 3, `only ${midWalk} of 5 runs were caught mid-walk`);
});
