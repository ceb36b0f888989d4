// File names that are not valid UTF-8: a build holding one is refused before anything is written
// (as the tar reader refuses such an entry), and one added to a release is a difference verify
// names, escaped, even beside a sibling whose name is what a decoder makes of it (U+FFFD).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { jsonOf, runCli, tempDir, writeTree } from '../harness/cli.ts';

interface Json {
  identical?: boolean;
  differences?: { path: string; kind: string; expected?: string; actual?: string }[];
  error?: { code: string; message: string; hint?: string };
}

/** `dir/<bytes>`: a path whose last name is raw bytes. */
const raw = (dir: string, ...name: number[]): Buffer => Buffer.concat([Buffer.from(`${dir}/`), Buffer.from(name)]);
/** `a\xff.txt` */
const A_FF = [0x61, 0xff, 0x2e, 0x74, 0x78, 0x74];

function assertOneError(stderr: string, message: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.filter((l) => l.startsWith('error: ')).length, 1, stderr);
  assert.ok(lines.every((l) => l.startsWith('error: ') || l.startsWith('hint: ')), stderr);
  assert.match(lines[0] ?? '', message);
  assert.match(stderr, /^hint: rename it in the build/m);
  assert.doesNotMatch(stderr, /unexpected failure|\n\s+at /);
}

void test('a build with a name that is not UTF-8 is refused: exit 2, the name escaped, nothing written', async (t) => {
  const dir = tempDir(t);
  const cases: [string, (src: string) => void, RegExp][] = [
    ['a file', (src) => fs.writeFileSync(raw(src, ...A_FF), 'x\n'), /src\/a\\xff\.txt is not valid UTF-8/],
    // The decoded name of the bad one is the good one's: a string walk would see the good file twice.
    ['a file beside its U+FFFD twin', (src) => (fs.writeFileSync(path.join(src, 'a\uFFFD.txt'), 'twin\n'), fs.writeFileSync(raw(src, ...A_FF), 'x\n')), /src\/a\\xff\.txt is not valid UTF-8/],
    ['a directory, deeper', (src) => (fs.mkdirSync(raw(path.join(src, 'assets'), 0x64, 0xc3, 0x28)), fs.writeFileSync(Buffer.concat([raw(path.join(src, 'assets'), 0x64, 0xc3, 0x28), Buffer.from('/f')]), 'x')), /src\/assets\/d\\xc3\(.*is not valid UTF-8/],
  ];
  for (const [i, [name, add, message]] of cases.entries()) {
    const src = writeTree(path.join(dir, `case-${i}`, 'src'), { 'index.html': 'v1\n', 'assets/app.js': '1\n' });
    add(src);
    const root = path.join(dir, `case-${i}`, 'root');
    const human = await runCli(['deploy', src, root]);
    assert.equal(human.code, 2, `${name}: ${human.stderr}`);
    assertOneError(human.stderr, message);
    assert.equal(fs.existsSync(root), false, `${name}: the root was made`);
    const dry = await runCli(['deploy', src, root, '-n', '--json']);
    assert.equal(dry.code, 2, `${name} (dry run): ${dry.stderr}`);
    const error = jsonOf<Json>(dry).error;
    assert.equal(error?.code, 'INVALID_SOURCE', name);
    assert.match(error?.message ?? '', message, name);
    assert.equal(fs.existsSync(root), false, `${name}: the dry run made the root`);
  }
});

void test('a before-switch hook that writes a name that is not UTF-8 fails the deploy: exit 2, the release undone', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  const r = await runCli(['deploy', src, root, '--before-switch', 'echo x > "$(printf "a\\377.txt")"']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: .*\/a\\xff\.txt is not valid UTF-8/m);
  assert.match(r.stderr, /^hint: .*must write UTF-8 names$/m);
  assert.doesNotMatch(r.stderr, /unexpected failure|\n\s+at /);
  assert.equal(fs.existsSync(path.join(root, 'current')), false, 'nothing went live');
  const releases = path.join(root, 'releases');
  assert.deepEqual(fs.existsSync(releases) ? fs.readdirSync(releases) : [], [], 'the release was undone');
});

void test('a valid name holding U+FFFD itself deploys and verifies clean', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n', 'a\uFFFD.txt': 'replacement character\n' });
  const root = path.join(dir, 'root');
  const r = await runCli(['deploy', src, root, '--release-id', 'one']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current', 'a\uFFFD.txt'), 'utf8'), 'replacement character\n');
  const v = await runCli(['verify', root, '--json']);
  assert.equal(v.code, 0, v.stderr);
  assert.deepEqual(jsonOf<Json>(v).differences, []);
});
void test('verify names a file or directory with a name that is not UTF-8: added, escaped, exit 5', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n', 'a\uFFFD.txt': 'twin\n', 'assets/app.js': '1\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  const rel = path.join(root, 'releases', 'one');
  // Same bytes as its U+FFFD twin: hashing the twin twice would hide it.
  fs.writeFileSync(raw(rel, ...A_FF), 'twin\n');
  const bad = raw(path.join(rel, 'assets'), 0x64, 0xfe);
  fs.mkdirSync(bad);
  fs.writeFileSync(Buffer.concat([bad, Buffer.from('/evil.js')]), 'evil()\n');
  fs.symlinkSync('/etc/passwd', raw(path.join(rel, 'assets'), 0x6c, 0x80));

  const result = await runCli(['verify', root, '--json']);
  assert.equal(result.code, 5, result.stderr);
  const json = jsonOf<Json>(result);
  assert.equal(json.identical, false);
  assert.deepEqual(json.differences, [
    { path: 'a\\xff.txt', kind: 'added', actual: 'file' },
    { path: 'assets/d\\xfe', kind: 'added', actual: 'directory' },
    { path: 'assets/l\\x80', kind: 'added', actual: 'symlink -> /etc/passwd' },
  ]);
  const human = await runCli(['verify', root]);
  assert.equal(human.code, 5, human.stderr);
  assert.match(human.stdout, /^added {2}a\\xff\.txt {2}\(file\)$/m);
  assert.match(human.stdout, /^release one differs from its manifest: 3 differences$/m);
});

void test('a symlink whose target is not UTF-8: refused in a build, a tar and a hook (exit 2, nothing written); verify names one made later', async (t) => {
  const dir = tempDir(t);
  // Control: read as text, the target comes back as U+FFFD, and a link made from that text is not the build's link.
  const probe = path.join(dir, 'probe');
  fs.mkdirSync(probe);
  fs.symlinkSync(raw('.', ...A_FF), path.join(probe, 'link'));
  fs.symlinkSync(fs.readlinkSync(path.join(probe, 'link')), path.join(probe, 'copy'));
  assert.notDeepEqual(fs.readlinkSync(path.join(probe, 'copy'), { encoding: 'buffer' }), fs.readlinkSync(path.join(probe, 'link'), { encoding: 'buffer' }), 'a text round trip kept the bytes: the case proves nothing');

  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  fs.symlinkSync(raw('.', ...A_FF), path.join(src, 'link'));
  const root = path.join(dir, 'root');
  for (const extra of [[], ['-n', '--json']]) {
    const r = await runCli(['deploy', src, root, ...extra]);
    assert.equal(r.code, 2, r.stderr);
    const message = extra.length === 0 ? r.stderr : (jsonOf<Json>(r).error?.message ?? '');
    assert.match(message, /src\/link is a symlink to \.\/a\\xff\.txt, which is not valid UTF-8/);
    assert.doesNotMatch(r.stderr, /unexpected failure|\n\s+at /);
    assert.equal(fs.existsSync(root), false, `${extra.join(' ')}: the root was made`);
  }

  // The same link in a tar (GNU tar stores the bytes as they are).
  const tarball = path.join(dir, 'build.tar');
  execFileSync('tar', ['-cf', tarball, '-C', src, '.']);
  const fromTar = await runCli(['deploy', tarball, root]);
  assert.equal(fromTar.code, 2, fromTar.stderr);
  assert.match(fromTar.stderr, /"\.\/link" is a symlink whose target is not valid UTF-8/);
  assert.equal(fs.existsSync(root), false, 'the tar deploy made the root');

  // Written by a before-switch hook into the release: the deploy fails and the release is undone.
  fs.unlinkSync(path.join(src, 'link'));
  const hook = await runCli(['deploy', src, root, '--before-switch', 'ln -s "$(printf "a\\377")" link']);
  assert.equal(hook.code, 2, hook.stderr);
  assert.match(hook.stderr, /^error: .*\/link is a symlink to a\\xff, which is not valid UTF-8/m);
  assert.match(hook.stderr, /^hint: .*must write UTF-8 link targets$/m);
  assert.equal(fs.existsSync(path.join(root, 'current')), false, 'something went live');

  // Made in a live release afterwards: verify names it, escaped, and does not call it identical.
  fs.symlinkSync('index.html', path.join(src, 'link'));
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'one'])).code, 0);
  const live = path.join(root, 'releases', 'one');
  fs.unlinkSync(path.join(live, 'link'));
  fs.symlinkSync(raw('.', 0x69, 0xff), path.join(live, 'link'));
  fs.symlinkSync(raw('.', 0x6a, 0xfe), path.join(live, 'new-link'));
  const v = await runCli(['verify', root, '--json']);
  assert.equal(v.code, 5, v.stderr);
  assert.deepEqual(jsonOf<Json>(v).differences, [
    { path: 'link', kind: 'retargeted', expected: 'index.html', actual: './i\\xff (not valid UTF-8)' },
    { path: 'new-link', kind: 'added', actual: 'symlink -> ./j\\xfe (not valid UTF-8)' },
  ]);
});
