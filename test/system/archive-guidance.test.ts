// What an artifact deploy tells the user about the shape of what it extracted, as a directory
// deploy does: a `.git` at the release's top (after --strip-components too) is warned about; an
// archive whose entries all sit under one directory gets a hint at --strip-components 1 (never
// when the flag was given); stripping every file away names the flag and the depth the files
// have; a hard link whose target the strip removed says so. Refusals exit 2, root unchanged.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { rootBeside, writeArchive, type Spec } from '../harness/archives.ts';
import { runCli, tempDir, writeTree } from '../harness/cli.ts';
import { leftovers, treeSnapshot } from '../harness/invariants.ts';

const REPOSITORY = /^warning: the build holds \.git at its top: a server whose document root is the release serves it/m;
const SINGLE = /^warning: every entry of .* is under "([^"]+)\/": the release holds "\1\/", not its contents, at its top$/m;

async function deploys(source: string, root: string, args: string[] = []): Promise<string> {
  const r = await runCli(['deploy', source, root, '--no-fsync', ...args]);
  assert.equal(r.code, 0, `${path.basename(source)}: ${r.stderr}`);
  return r.stderr;
}

void test('a .git at the top of a tar.gz or a zip, or of a tar once --strip-components 1 is applied, is warned about as in a build directory', async (t) => {
  const dir = tempDir(t);
  const flat: Spec[] = [{ name: 'index.html', data: 'ok\n' }, { name: '.git/', type: 'dir' }, { name: '.git/config', data: '[remote "origin"]\n' }];
  const nested: Spec[] = [{ name: 'app-1.0/', type: 'dir' }, { name: 'app-1.0/index.html', data: 'ok\n' }, { name: 'app-1.0/.git/HEAD', data: 'ref: refs/heads/main\n' }];
  const tgz = writeArchive('tar.gz', path.join(dir, 'site.tgz'), flat);
  const zip = writeArchive('zip', path.join(dir, 'site.zip'), flat);
  const tar = writeArchive('tar', path.join(dir, 'nested.tar'), nested);
  // Control: a build directory with .git at its top gets this warning.
  const build = writeTree(path.join(dir, 'build'), { 'index.html': 'ok\n', '.git/config': 'x\n' });
  assert.match(await deploys(build, path.join(dir, 'root-dir')), REPOSITORY, 'control: the directory source');
  assert.match(await deploys(tgz, path.join(dir, 'root-tgz')), REPOSITORY, 'tar.gz');
  assert.match(await deploys(zip, path.join(dir, 'root-zip')), REPOSITORY, 'zip');
  assert.match(await deploys(tar, path.join(dir, 'root-tar'), ['--strip-components', '1']), REPOSITORY, 'tar after --strip-components 1');
  // Below the top it is not the document root's: no warning, as for a directory.
  const stderr = await deploys(tar, path.join(dir, 'root-tar-nested'));
  assert.doesNotMatch(stderr, REPOSITORY);
  // Our config file at the top is warned about as in a build directory (where it was first).
  const configured = writeArchive('tar.gz', path.join(dir, 'configured.tgz'), [{ name: 'index.html', data: 'ok\n' }, { name: 'atomic-deploy.config.yaml', data: 'keep: 2\n' }]);
  assert.match(await deploys(configured, path.join(dir, 'root-config'), ['--no-config']), /^warning: the build holds atomic-deploy\.config\.yaml at its top: it goes live with the release/m);
});

void test('every entry under one directory (a GitHub tarball, git archive --prefix, tar -czf a.tgz dist) hints at --strip-components 1; not when the flag is given, nor for a build with two top entries', async (t) => {
  const dir = tempDir(t);
  const github = writeArchive('tar.gz', path.join(dir, 'repo.tgz'), [{ name: 'repo-abc123/', type: 'dir' }, { name: 'repo-abc123/index.html', data: 'ok\n' }, { name: 'repo-abc123/css/a.css', data: 'a\n' }]);
  const dotted = writeArchive('tar', path.join(dir, 'dotted.tar'), [{ name: './', type: 'dir' }, { name: './dist/', type: 'dir' }, { name: './dist/index.html', data: 'ok\n' }]);
  const zip = writeArchive('zip', path.join(dir, 'public.zip'), [{ name: 'public/index.html', data: 'ok\n' }]);
  const two = writeArchive('tar.gz', path.join(dir, 'two.tgz'), [{ name: 'public/index.html', data: 'ok\n' }, { name: 'composer.json', data: '{}\n' }]);
  const r = await runCli(['deploy', github, path.join(dir, 'root-a'), '--no-fsync']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, SINGLE);
  assert.match(r.stderr, /"repo-abc123\/"/);
  assert.match(r.stderr, /^hint: if the web server serves the release's top \(current\/\), deploy with --strip-components 1; if it serves current\/repo-abc123, nothing is wrong$/m);
  assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('warning:')).length, 1, r.stderr);
  assert.match(await deploys(dotted, path.join(dir, 'root-b')), /is under "dist\/"/);
  assert.match(await deploys(zip, path.join(dir, 'root-c')), /is under "public\/"/);
  // The flag given (even 0: the user decided), or in the config: no hint.
  assert.doesNotMatch(await deploys(github, path.join(dir, 'root-d'), ['--strip-components', '1']), /warning/);
  assert.doesNotMatch(await deploys(github, path.join(dir, 'root-e'), ['--strip-components', '0']), /warning/);
  assert.doesNotMatch(await deploys(two, path.join(dir, 'root-f')), /warning/);
  assert.equal(fs.readFileSync(path.join(dir, 'root-d', 'current', 'index.html'), 'utf8'), 'ok\n');
});

void test('--strip-components that removes every file names the flag and the depth of the deepest file; a hard link whose target it removed says so; exit 2, root unchanged', async (t) => {
  const dir = tempDir(t);
  const deep = writeArchive('tar.gz', path.join(dir, 'deep.tgz'), [{ name: 'app/', type: 'dir' }, { name: 'app/index.html', data: 'ok\n' }, { name: 'app/css/a.css', data: 'a\n' }]);
  const flat = writeArchive('tar', path.join(dir, 'flat.tar'), [{ name: 'index.html', data: 'ok\n' }]);
  const linked = writeArchive('tar', path.join(dir, 'linked.tar'), [
    { name: 'top.txt', data: 'shared\n' },
    { name: 'app/index.html', data: 'ok\n' },
    { name: 'app/copy.txt', type: 'hardlink', link: 'top.txt' },
  ]);
  const scene = await rootBeside(dir);
  for (const [file, args, message, hint] of [
    [deep, ['--strip-components', '3'], /^error: --strip-components 3 removes every file of .*deep\.tgz: its deepest, "app\/css\/a\.css", has 3 components \(`\.` counts\); nothing was deployed$/m, /^hint: give --strip-components 2 or less \(tar -tvf or unzip -l lists the entries\)$/m],
    [flat, ['--strip-components', '1'], /^error: --strip-components 1 removes every file of .*flat\.tar: its deepest, "index\.html", has 1 component/m, /^hint: leave --strip-components out: the files are at the top of the archive$/m],
    [linked, ['--strip-components', '1'], /^error: refused .*linked\.tar: entry "app\/copy\.txt" is a hard link to "top\.txt", which --strip-components 1 removes$/m, /^hint: nothing was deployed; give a smaller --strip-components, or rebuild the artifact without that link$/m],
  ] as const) {
    const r = await runCli(['deploy', file, scene.root, '--no-fsync', ...args]);
    assert.equal(r.code, 2, `${path.basename(file)}: ${r.stderr}`);
    assert.match(r.stderr, message, path.basename(file));
    assert.match(r.stderr, hint, path.basename(file));
    assert.doesNotMatch(r.stderr, /build first|not a file earlier in the archive/);
    assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1);
    assert.deepEqual(treeSnapshot(scene.root), scene.rootBefore, path.basename(file));
    assert.deepEqual(leftovers(scene.root), []);
  }
  // An archive with no files at all keeps its message.
  const empty = writeArchive('tar', path.join(dir, 'empty.tar'), [{ name: 'd/', type: 'dir' }]);
  const r = await runCli(['deploy', empty, scene.root, '--no-fsync']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /holds no files/);
});
