// A new user's path mistakes cost nothing: swapped arguments, a folder that is not a deploy root,
// a non-empty target. Each exits 2 with one error line and a hint, and a byte-level snapshot of
// both folders (names, modes, owners, contents, directory times) shows that nothing changed.
// Roots made by Capistrano, Deployer and the bash tool are roots: taken over, deployed to, rolled back.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, runCli, tempDir, writeTree, type CliResult } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';

interface Folders {
  dir: string;
  build: string;
  www: string;
  other: string;
  empty: string;
  /** build/ as a .tar.gz beside it. */
  archive: string;
}

async function folders(t: { after(fn: () => void): void }): Promise<Folders> {
  const dir = tempDir(t);
  const build = writeTree(path.join(dir, 'build'), { 'index.html': 'v1\n', 'css/site.css': 'body{}\n' });
  const www = path.join(dir, 'www');
  const first = await runCli(['deploy', build, www, '--quiet']);
  assert.equal(first.code, 0, first.stderr);
  const other = writeTree(path.join(dir, 'other'), { 'notes.txt': 'mine\n', 'photos/a.jpg': 'jpeg\n' });
  const empty = path.join(dir, 'empty');
  fs.mkdirSync(empty);
  const archive = path.join(dir, 'build.tar.gz');
  execFileSync('tar', ['-czf', archive, '-C', build, '.']);
  // A Capistrano root: releases/ and repo/, no current yet.
  fs.mkdirSync(path.join(dir, 'cap-root/releases/1'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'cap-root/repo'));
  return { dir, build, www, other, empty, archive };
}

interface Mistake {
  name: string;
  args: (f: Folders) => string[];
  message: RegExp;
  hint: RegExp;
}

const notRoot = /is not a deploy root \(no releases\/ with current\)/;
const MISTAKES: Mistake[] = [
  { name: 'deploy with root and build swapped', args: () => ['deploy', 'www', 'build'], message: /^error: www is a deploy root, not a build directory$/, hint: /^hint: the arguments look swapped; did you mean: atomic-deploy deploy build www$/ },
  { name: 'the bare form with root and build swapped', args: () => ['www', 'build'], message: /^error: www is a deploy root, not a build directory$/, hint: /did you mean: atomic-deploy deploy build www$/ },
  { name: 'swapped, with --dry-run', args: () => ['deploy', 'www', 'build', '--dry-run'], message: /www is a deploy root/, hint: /swapped/ },
  // Not swapped: the other path does not exist, so a swap would deploy nothing (it said "did you mean: deploy www2 www").
  { name: 'a deploy root as the source of a root still to be made', args: (f) => ['deploy', f.www, path.join(f.dir, 'www2')], message: /www is a deploy root, not a build directory/, hint: /^hint: give the build output directory as the source$/ },
  { name: 'deploy into a non-empty folder that is not a root', args: (f) => ['deploy', f.build, f.other], message: /other is not empty and not a deploy root \(2 entries/, hint: /add --adopt$/ },
  { name: 'dry run into a non-empty folder that is not a root', args: (f) => ['deploy', f.build, f.other, '--dry-run'], message: /other is not empty and not a deploy root/, hint: /--adopt/ },
  { name: 'status of a folder that is not a root', args: (f) => ['status', f.other], message: notRoot, hint: /^hint: check the path: it holds files but no current, releases\/ or \.atomic-deploy\/; a folder with files becomes a deploy root only by a deploy with --adopt$/ },
  { name: 'releases of a folder that is not a root', args: (f) => ['releases', f.other], message: notRoot, hint: /check the path: it holds files/ },
  { name: 'prune --keep 1 of a folder that is not a root', args: (f) => ['prune', f.other, '--keep', '1'], message: notRoot, hint: /check the path: it holds files/ },
  { name: 'rollback of a folder that is not a root', args: (f) => ['rollback', f.other], message: notRoot, hint: /check the path: it holds files/ },
  { name: 'unlock of a folder that is not a root', args: (f) => ['unlock', f.other], message: notRoot, hint: /check the path: it holds files/ },
  { name: 'status of an empty folder', args: (f) => ['status', f.empty], message: /empty is empty, not a deploy root/, hint: /deploy to it: atomic-deploy deploy <source> \S*empty$/ },
  { name: 'verify of a folder that is not a root', args: (f) => ['verify', f.other], message: notRoot, hint: /check the path: it holds files/ },
  { name: 'verify of the build folder', args: (f) => ['verify', f.build, '--json'], message: notRoot, hint: /check the path: it holds files/ },
  { name: 'deploy an archive into a non-empty folder that is not a root', args: (f) => ['deploy', f.archive, f.other], message: /other is not empty and not a deploy root/, hint: /add --adopt$/ },
  { name: 'the bare form with an archive into a non-empty folder that is not a root', args: () => ['build.tar.gz', 'other'], message: /other is not empty and not a deploy root/, hint: /add --adopt$/ },
  { name: 'releases of the build folder', args: (f) => ['releases', f.build, '--json'], message: notRoot, hint: /check the path: it holds files/ },
  // A read command given a path inside a root: the hint names the root meant, never a deploy into the path.
  { name: 'status of current itself', args: (f) => ['status', path.join(f.www, 'current')], message: notRoot, hint: /^hint: it is inside the deploy root .*\/www \(in release \d+, the live one\): give that root$/ },
  { name: 'releases of releases/', args: (f) => ['releases', path.join(f.www, 'releases'), '--json'], message: notRoot, hint: /^hint: it is inside the deploy root .*\/www \(in releases\/\): give that root$/ },
  { name: 'verify of a missing path in the live release', args: (f) => ['verify', path.join(f.www, 'current', 'nope')], message: /nope does not exist$/, hint: /^hint: it would be inside the deploy root .*\/www \(in release \d+, the live one\): give that root$/ },
  // A root inside another: its layout would land in a release (the live one through current), or
  // make a fake release the next rollback switches to.
  ...(
    [
      ['in the live release, through current', (f: Folders): string[] => ['deploy', f.build, path.join(f.www, 'current', 'public')], /inside the deploy root .*\/www \(in release \d+, the live one\)$/],
      ['as a new name in releases/', (f: Folders): string[] => ['deploy', f.build, path.join(f.www, 'releases', 'zz')], /inside the deploy root .*\/www \(in releases\/\)$/],
      ['in an existing release, with --adopt', (f: Folders): string[] => ['deploy', f.build, path.join(f.www, 'releases', liveId(f)), '--adopt'], /\(in release \d+, the live one\)$/],
      ["in the root's state, with --adopt", (f: Folders): string[] => ['deploy', f.build, path.join(f.www, '.atomic-deploy'), '--adopt'], /\(in \.atomic-deploy\/\)$/],
      ['in shared/', (f: Folders): string[] => ['deploy', f.build, path.join(f.www, 'shared', 'app')], /\(in shared\/\)$/],
      ['an archive, in the live release', (f: Folders): string[] => ['deploy', f.archive, path.join(f.www, 'current', 'sub')], /\(in release \d+, the live one\)$/],
      ['a dry run, in the live release', (f: Folders): string[] => ['deploy', f.build, path.join(f.www, 'current', 'sub'), '--dry-run'], /the live one\)$/],
      ['in a Capistrano root', (f: Folders): string[] => ['deploy', f.build, path.join(f.dir, 'cap-root/releases/2')], /inside the deploy root .*\/cap-root \(in releases\/\)$/],
    ] as const
  ).map(([where, args, message]): Mistake => ({ name: `a root inside another root: ${where}`, args, message, hint: /^hint: a deploy root's folders belong to its releases and state: give a folder outside .*\/(www|cap-root)$/ })),
];

function liveId(f: Folders): string {
  return path.basename(fs.readlinkSync(path.join(f.www, 'current')));
}

function lines(result: CliResult): string[] {
  return result.stderr.trimEnd().split('\n');
}

for (const m of MISTAKES) {
  void test(`mistake: ${m.name}: exit 2, an error and a hint, nothing changed in any folder`, async (t) => {
    const f = await folders(t);
    const before = treeSnapshot(f.dir, { times: true });
    const result = await runCli(m.args(f), { cwd: f.dir });
    const after = treeSnapshot(f.dir, { times: true });
    assert.equal(result.code, 2, `${result.stdout}${result.stderr}`);
    const [error, hint, ...rest] = lines(result);
    assert.match(error ?? '', /^error: /);
    assert.match(error ?? '', m.message);
    assert.match(hint ?? '', /^hint: /);
    assert.match(hint ?? '', m.hint);
    assert.deepEqual(rest, []);
    if (m.args(f).includes('--json')) assert.match(jsonOf<{ error: { code: string } }>(result).error.code, /^INVALID_(ROOT|SOURCE)$/);
    else assert.equal(result.stdout, '');
    assert.deepEqual(after, before, 'a folder changed');
  });
}

void test('the control: the same commands on a real root succeed, so the refusals above come from the check', async (t) => {
  const f = await folders(t);
  for (const args of [['status', f.www], ['releases', f.www], ['unlock', f.www], ['prune', f.www, '--keep', '1'], ['verify', f.www]]) {
    const result = await runCli(args, { cwd: f.dir });
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`);
  }
  const deployed = await runCli(['deploy', 'build', 'www', '--quiet'], { cwd: f.dir });
  assert.equal(deployed.code, 0, deployed.stderr);
  const back = await runCli(['rollback', f.www, '--quiet']);
  assert.equal(back.code, 0, back.stderr);
  const nested = await runCli(['deploy', f.build, path.join(f.other, 'photos', 'site'), '--quiet']);
  assert.equal(nested.code, 0, `a root inside a folder that is not a root is fine: ${nested.stderr}`);
  const adopted = await runCli(['deploy', f.archive, f.other, '--adopt', '--quiet']);
  assert.equal(adopted.code, 0, adopted.stderr);
  assert.equal(fs.readFileSync(path.join(f.other, 'current/index.html'), 'utf8'), 'v1\n');
  assert.equal(fs.readFileSync(path.join(f.other, 'notes.txt'), 'utf8'), 'mine\n');
});

void test('--adopt makes a non-empty folder a deploy root and leaves its files alone; an empty or missing folder needs no flag', async (t) => {
  const f = await folders(t);
  const result = await runCli(['deploy', f.build, f.other, '--adopt', '--json']);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(fs.readFileSync(path.join(f.other, 'current/index.html'), 'utf8'), 'v1\n');
  assert.equal(fs.readFileSync(path.join(f.other, 'notes.txt'), 'utf8'), 'mine\n');
  assert.equal(fs.readFileSync(path.join(f.other, 'photos/a.jpg'), 'utf8'), 'jpeg\n');
  // Adopted once, it is a root: no flag the next time.
  assert.equal((await runCli(['deploy', f.build, f.other, '--quiet'])).code, 0);
  assert.equal((await runCli(['deploy', f.build, f.empty, '--quiet'])).code, 0);
  assert.equal((await runCli(['deploy', f.build, path.join(f.dir, 'new', 'root'), '--quiet'])).code, 0);
  // A fresh ext4 volume mounted as the root holds lost+found and nothing else.
  const mount = path.join(f.dir, 'volume');
  fs.mkdirSync(path.join(mount, 'lost+found'), { recursive: true });
  assert.equal((await runCli(['deploy', f.build, mount, '--quiet'])).code, 0);
});

interface ReleasesJson {
  current: string | null;
  releases: { id: string }[];
}

/** Deploys into a root another tool made, then rolls back to that tool's release. */
async function takeOver(root: string, build: string, theirs: string, theirPrevious: string): Promise<void> {
  const status = await runCli(['status', root, '--json']);
  assert.equal(status.code, 0, status.stderr);
  assert.equal(jsonOf<{ current: string }>(status).current, theirs);
  const listed = jsonOf<ReleasesJson>(await runCli(['releases', root, '--json']));
  assert.deepEqual(listed.releases.map((r) => r.id).sort(), [theirPrevious, theirs].sort());
  const deployed = await runCli(['deploy', build, root, '--json']);
  assert.equal(deployed.code, 0, deployed.stderr);
  const ours = jsonOf<{ release: string; previous: string }>(deployed);
  assert.equal(ours.previous, theirs);
  assert.equal(currentId(root), ours.release);
  assert.equal(fs.readFileSync(path.join(root, 'current/index.html'), 'utf8'), 'v1\n');
  const back = await runCli(['rollback', root, '--json']);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(jsonOf<{ release: string }>(back).release, theirs);
  assert.equal(fs.readFileSync(path.join(root, 'current/index.html'), 'utf8'), `${theirs}\n`);
  // Their files are where they were.
  assert.ok(fs.existsSync(path.join(root, 'releases', theirPrevious, 'index.html')));
}

void test('a Capistrano root (absolute current, repo/, revisions.log, shared/) is taken over, deployed to, rolled back', async (t) => {
  const f = await folders(t);
  const root = path.join(f.dir, 'cap');
  for (const id of ['20240101120000', '20240102120000']) writeTree(path.join(root, 'releases', id), { 'index.html': `${id}\n`, 'REVISION': 'abc\n' });
  writeTree(root, { 'revisions.log': 'Branch main (at abc) deployed as release 20240102120000 by deploy\n', 'shared/.env': 'A=1\n', 'repo/HEAD': 'ref: refs/heads/main\n' });
  fs.symlinkSync(path.join(root, 'releases', '20240102120000'), path.join(root, 'current'));
  await takeOver(root, f.build, '20240102120000', '20240101120000');
  assert.equal(fs.readFileSync(path.join(root, 'revisions.log'), 'utf8').split('\n').length, 2);
});

void test('a Deployer root (.dep/, numbered releases, relative current) is taken over, deployed to, rolled back', async (t) => {
  const f = await folders(t);
  const root = path.join(f.dir, 'dep');
  for (const id of ['1', '2']) writeTree(path.join(root, 'releases', id), { 'index.html': `${id}\n` });
  writeTree(root, { '.dep/releases_log': '{"release_name":"2"}\n', '.dep/latest_release': '2\n', 'shared/.env': 'A=1\n' });
  fs.symlinkSync('releases/2', path.join(root, 'current'));
  await takeOver(root, f.build, '2', '1');
});

void test("the bash tool's root (releases/, a relative current, other folders beside them) is taken over, deployed to, rolled back", async (t) => {
  const f = await folders(t);
  const root = path.join(f.dir, 'bash');
  for (const id of ['20240101120000', '20240102120000']) writeTree(path.join(root, 'releases', id), { 'index.html': `${id}\n` });
  fs.symlinkSync('releases/20240102120000', path.join(root, 'current'));
  fs.mkdirSync(path.join(root, 'public_html_old'));
  await takeOver(root, f.build, '20240102120000', '20240101120000');
});

// `..` after a symbolic link is the link target's parent, as the kernel (ls, cp, nginx) resolves
// it: `srv/app/../build` with `srv/app -> ../data/app` is `data/build`. Cut as text, it was
// `srv/build`, another build, and it went live, exit 0; a root given that way was another folder:
// `status` said it did not exist, and a deploy made a new root there while the real one stayed.
void test('`..` after a symbolic link in the source or the root is resolved as the kernel resolves it', async (t) => {
  const dir = tempDir(t);
  fs.mkdirSync(path.join(dir, 'data', 'app'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'srv'), { recursive: true });
  fs.symlinkSync('../data/app', path.join(dir, 'srv', 'app'));
  writeTree(path.join(dir, 'srv', 'build'), { 'index.html': 'OLD\n' });
  writeTree(path.join(dir, 'data', 'build'), { 'index.html': 'NEW\n' });
  // Joined as text on purpose: path.join would cut `app/..` away.
  assert.equal(fs.readFileSync(`${dir}/srv/app/../build/index.html`, 'utf8'), 'NEW\n', 'the kernel reads the build beside data/app');
  const root = path.join(dir, 'root');
  const r = await runCli(['deploy', 'srv/app/../build', root, '--no-fsync', '-q'], { cwd: dir });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8'), 'NEW\n');
  // A root reached the same way: the one beside data/app, not a new srv/other.
  const other = path.join(dir, 'data', 'other');
  assert.equal((await runCli(['deploy', path.join(dir, 'data', 'build'), other, '--no-fsync', '-q'])).code, 0);
  const status = await runCli(['status', 'srv/app/../other', '--json'], { cwd: dir });
  assert.equal(status.code, 0, status.stderr);
  const again = await runCli(['deploy', 'srv/app/../build', 'srv/app/../other', '--no-fsync', '--json'], { cwd: dir });
  assert.equal(again.code, 0, again.stderr);
  assert.equal(currentId(other), jsonOf<{ release: string }>(again).release);
  assert.ok(!fs.existsSync(path.join(dir, 'srv', 'other')), 'a new root was made at srv/other');
  // An archive reached the same way.
  execFileSync('tar', ['-cf', path.join(dir, 'srv', 'site.tar'), '-C', path.join(dir, 'srv', 'build'), '.']);
  execFileSync('tar', ['-cf', path.join(dir, 'data', 'site.tar'), '-C', path.join(dir, 'data', 'build'), '.']);
  fs.writeFileSync(path.join(dir, 'data', 'build', 'index.html'), 'OLDER\n');
  assert.equal((await runCli(['deploy', path.join(dir, 'data', 'build'), root, '--no-fsync', '-q'])).code, 0);
  const archive = await runCli(['deploy', 'srv/app/../site.tar', root, '--no-fsync', '-q'], { cwd: dir });
  assert.equal(archive.code, 0, archive.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8'), 'NEW\n');
});

// `status` on a current that every changing command refuses (a link out of releases/, a real
// directory copied over it) said `current: (outside)` or `(directory)`, exit 0, and no more: the
// repair was found only by the next deploy's refusal. It warns as they refuse, with their hint.
void test('status warns about a current that deploy, rollback and prune refuse, with their hint; --json carries it', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'hi\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--no-fsync', '-q'])).code, 0);
  const outside = writeTree(path.join(dir, 'outside'), { 'index.html': 'elsewhere\n' });
  fs.rmSync(path.join(root, 'current'));
  fs.symlinkSync(outside, path.join(root, 'current'));
  const s = await runCli(['status', root]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stderr, new RegExp(`^warning: ${root}/current points to ${outside}, which is not a release directory in ${root}/releases: deploy, rollback and prune refuse this root until it is repaired$`, 'm'));
  assert.match(s.stderr, /^hint: move that tree into releases\/<id>\/ and point current at it, or deploy into another root$/m);
  const refused = await runCli(['deploy', src, root, '--no-fsync', '-q']);
  assert.equal(refused.code, 2, 'the deploy refuses it, as status says');
  fs.rmSync(path.join(root, 'current'));
  fs.cpSync(src, path.join(root, 'current'), { recursive: true });
  const j = jsonOf<{ currentProblem?: { code: string; message: string; hint?: string } }>(await runCli(['status', root, '--json']));
  assert.equal(j.currentProblem?.code, 'CURRENT_NOT_SYMLINK');
  assert.match(j.currentProblem?.hint ?? '', /rename\(2\) cannot turn a directory into a symlink/);
});
