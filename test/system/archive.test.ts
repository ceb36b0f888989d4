// Artifacts as the deploy source: each format from a file and from a loopback HTTP server, the
// format told by content (a misnamed archive works), --strip-components, --sha256 good and bad,
// and the manifest entries the extraction hashed on the way against the tree it wrote.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { sha256Of, serve } from '../harness/archives.ts';
import { jsonOf, runCli, tempDir } from '../harness/cli.ts';
import { leftovers, makeSource, manifestDiff, manifestOf, sameManifest, treeSnapshot } from '../harness/invariants.ts';

interface Built {
  src: string;
  files: Record<'tar' | 'tar.gz' | 'zip', string>;
}

/** A source tree (files, an empty directory, an executable, links) and the three archives of it made by tar(1) and zip(1). */
function build(dir: string): Built {
  const src = makeSource(path.join(dir, 'src'), 'v1');
  const files = { tar: path.join(dir, 'site.tar'), 'tar.gz': path.join(dir, 'site.tar.gz'), zip: path.join(dir, 'site.zip') };
  execFileSync('tar', ['-cf', files.tar, '-C', src, '.']);
  execFileSync('tar', ['-czf', files['tar.gz'], '-C', src, '.']);
  execFileSync('zip', ['-qry', files.zip, '.'], { cwd: src });
  return { src, files };
}

void test('tar, tar.gz and zip, from a file and from a URL: the release is the tree that was archived', async (t) => {
  const dir = tempDir(t);
  const built = build(dir);
  const server = await serve(t, dir, 'ok');
  const want = manifestOf(built.src);
  const root = path.join(dir, 'root');
  for (const format of ['tar', 'tar.gz', 'zip'] as const) {
    for (const source of [built.files[format], server.url(path.basename(built.files[format]))]) {
      const r = await runCli(['deploy', source, root, '--json']);
      assert.equal(r.code, 0, `${format} ${source}: ${r.stderr}`);
      const out = jsonOf<{ release: string; files: number; artifact: { format: string; sha256: string; bytes: number } }>(r);
      assert.equal(out.artifact.format, format);
      assert.equal(out.artifact.sha256, sha256Of(built.files[format]), source);
      assert.equal(out.artifact.bytes, fs.statSync(built.files[format]).size);
      const got = manifestOf(path.join(root, 'current'));
      assert.ok(sameManifest(got, want), `${format} ${source}: ${manifestDiff(got, want)}`);
      assert.equal(fs.readlinkSync(path.join(root, 'current', 'passwd-link')), '/etc/passwd');
      assert.deepEqual(leftovers(root), []);
    }
  }
  // By content, not by name: a tar.gz called .zip, a zip called .tar.
  fs.copyFileSync(built.files['tar.gz'], path.join(dir, 'misnamed.zip'));
  fs.copyFileSync(built.files.zip, path.join(dir, 'misnamed.tar'));
  for (const name of ['misnamed.zip', 'misnamed.tar']) {
    const r = await runCli(['deploy', path.join(dir, name), root]);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
  }
  // Not an archive at all: exit 2, nothing changed.
  const before = treeSnapshot(root);
  fs.writeFileSync(path.join(dir, 'page.tar.gz'), '<html>an error page</html>\n'.repeat(40));
  for (const source of [path.join(dir, 'page.tar.gz'), server.url('page.tar.gz')]) {
    const r = await runCli(['deploy', source, root]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /tar, tar\.gz or zip archive \(by its first bytes\)/);
  }
  // An empty build's archive (tar(1) with no members writes only its end-of-archive zero blocks) is
  // a tar that holds nothing, as its tar.gz and zip are; a zero-byte artifact says it is empty.
  execFileSync('tar', ['-cf', path.join(dir, 'nothing.tar'), '-T', '/dev/null']);
  fs.writeFileSync(path.join(dir, 'zero.tgz'), '');
  const cases = [
    { name: 'nothing.tar', error: /^error: .*nothing\.tar holds no files\nhint: build first/ },
    { name: 'zero.tgz', error: /^error: .*zero\.tgz (is|serves) an empty file \(0 bytes\), not an archive\nhint: /m },
  ];
  for (const { name, error } of cases) {
    for (const source of [path.join(dir, name), server.url(name)]) {
      const r = await runCli(['deploy', source, root]);
      assert.equal(r.code, 2, `${source}: ${r.stderr}`);
      assert.match(r.stderr, error, source);
    }
  }
  assert.deepEqual(treeSnapshot(root), before);
});

void test('--strip-components drops the top directory, as tar does', async (t) => {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'dist'), 'v2');
  const file = path.join(dir, 'with-top.tgz');
  execFileSync('tar', ['-czf', file, '-C', dir, 'dist']);
  const root = path.join(dir, 'root');
  const r = await runCli(['deploy', file, root, '--strip-components', '1']);
  assert.equal(r.code, 0, r.stderr);
  const got = manifestOf(path.join(root, 'current'));
  assert.ok(sameManifest(got, manifestOf(src)), manifestDiff(got, manifestOf(src)));
  // Control: without it the release holds dist/ itself.
  const plain = await runCli(['deploy', file, root]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.ok(fs.statSync(path.join(root, 'current', 'dist', 'index.html')).isFile());
  const bad = await runCli(['deploy', file, root, '--strip-components', '-1']);
  assert.equal(bad.code, 2);

  // `tar -C dist -cf a.tar .` stores ./index.html: `.` is the component tar strips, and the
  // release holds what `tar -x --strip-components 1` gives (it once held only the subdirectories' files).
  const dotted = path.join(dir, 'dotted.tar');
  execFileSync('tar', ['-cf', dotted, '-C', src, '.']);
  const byTar = path.join(dir, 'by-tar');
  fs.mkdirSync(byTar);
  execFileSync('tar', ['-xf', dotted, '-C', byTar, '--strip-components', '1']);
  const dot = await runCli(['deploy', dotted, root, '--strip-components', '1']);
  assert.equal(dot.code, 0, dot.stderr);
  const fromDot = manifestOf(path.join(root, 'current'));
  assert.ok(sameManifest(fromDot, manifestOf(byTar)), manifestDiff(fromDot, manifestOf(byTar)));
  assert.ok(sameManifest(fromDot, manifestOf(src)), manifestDiff(fromDot, manifestOf(src)));
});

void test('--sha256: a match deploys; a mismatch exits 2 with the root unchanged and nothing left in .tmp/', async (t) => {
  const dir = tempDir(t);
  const built = build(dir);
  const server = await serve(t, dir, 'ok');
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', built.src, root]);
  assert.equal(first.code, 0, first.stderr);
  for (const format of ['tar.gz', 'zip'] as const) {
    for (const source of [built.files[format], server.url(path.basename(built.files[format]))]) {
      const before = treeSnapshot(root);
      const wrong = sha256Of(built.files.tar);
      const bad = await runCli(['deploy', source, root, '--sha256', wrong]);
      assert.equal(bad.code, 2, `${source}: ${bad.stderr}`);
      assert.match(bad.stderr, new RegExp(`sha256 is ${sha256Of(built.files[format])}, expected ${wrong}`));
      assert.deepEqual(treeSnapshot(root), before, source);
      assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), []);
      const good = await runCli(['deploy', source, root, '--sha256', `sha256:${sha256Of(built.files[format]).toUpperCase()}`]);
      assert.equal(good.code, 0, `${source}: ${good.stderr}`);
    }
  }
  const malformed = await runCli(['deploy', built.files.tar, root, '--sha256', 'abc']);
  assert.equal(malformed.code, 2);
  assert.match(malformed.stderr, /64 hex digits/);
});

void test('the release manifest the extraction hashed matches the files it wrote', async (t) => {
  const dir = tempDir(t);
  const built = build(dir);
  const { extractArtifact, openArtifact } = await import('../../src/act/archive.ts');
  const { parseManifest, serializeManifest } = await import('../../src/plan/manifest.ts');
  for (const format of ['tar', 'tar.gz', 'zip'] as const) {
    const stage = path.join(dir, `stage-${format}`);
    fs.mkdirSync(stage);
    const artifact = await openArtifact(built.files[format], { timeoutMs: 5000, retries: 0 });
    const result = await extractArtifact(artifact, stage, { limits: { maxFiles: 1000, maxBytes: 1e9, stripComponents: 0, keepSetid: false, keepOwner: false }, spool: `${stage}.zip` });
    const tree = manifestOf(stage);
    const fromManifest = new Map(result.manifest.map((e) => [e.path, e.type === 'dir' ? `d ${e.mode.toString(8)}` : e.type === 'file' ? `f ${e.sha256} ${e.mode.toString(8)}` : `l ${e.target}`]));
    assert.ok(sameManifest(fromManifest, tree), `${format}: ${manifestDiff(fromManifest, tree)}`);
    assert.equal(result.sha256, sha256Of(built.files[format]));
    // A well-formed manifest: unique paths, every parent listed.
    const read = parseManifest(serializeManifest(result.manifest));
    assert.ok(read.ok, read.ok ? '' : read.problem);
    assert.equal(read.manifest.entries.length, tree.size);
  }
});

void test('an artifact release has a manifest that verify checks: clean, then a tampered file found (exit 5)', async (t) => {
  const dir = tempDir(t);
  const built = build(dir);
  const root = path.join(dir, 'root');
  for (const format of ['tar.gz', 'zip'] as const) {
    const r = await runCli(['deploy', built.files[format], root, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const clean = await runCli(['verify', root]);
    assert.equal(clean.code, 0, `${format}: ${clean.stdout}${clean.stderr}`);
  }
  fs.appendFileSync(path.join(root, 'current', 'index.html'), 'tampered');
  const tampered = await runCli(['verify', root]);
  assert.equal(tampered.code, 5, tampered.stdout + tampered.stderr);
  assert.match(tampered.stdout + tampered.stderr, /index\.html/);
});

void test('--dry-run and --strategy hardlink/reflink with an archive: exit 2 before anything is read or written; copy and auto deploy', async (t) => {
  const dir = tempDir(t);
  const built = build(dir);
  const server = await serve(t, dir, 'ok');
  const fresh = path.join(dir, 'fresh');
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', built.src, root]);
  assert.equal(first.code, 0, first.stderr);
  const refused: [string[], RegExp][] = [
    [['--dry-run'], /--dry-run needs a source directory/],
    [['--strategy', 'hardlink'], /--strategy hardlink needs a source directory/],
    [['--strategy', 'reflink'], /--strategy reflink needs a source directory/],
  ];
  for (const source of [built.files['tar.gz'], built.files.zip, server.url('site.tar')]) {
    for (const [flags, message] of refused) {
      const before = treeSnapshot(root);
      for (const target of [root, fresh]) {
        const r = await runCli(['deploy', source, target, ...flags]);
        assert.equal(r.code, 2, `${source} ${flags.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.match(r.stderr, /hint: /);
      }
      assert.deepEqual(treeSnapshot(root), before, `${source} ${flags.join(' ')}`);
      assert.equal(fs.existsSync(fresh), false, 'a root that did not exist is not made');
    }
  }
  // With --host too: refused before the artifact is fetched or staged, and before any host is reached.
  const fleetRun = await runCli(['deploy', server.url('site.tar'), '/srv/www', '--host', 'web1.invalid', '--dry-run']);
  assert.equal(fleetRun.code, 2, fleetRun.stderr);
  assert.match(fleetRun.stderr, /--dry-run needs a source directory; an archive would have to be read to plan its release/);
  assert.equal(server.requests.length, 0, 'a refused URL is never fetched');
  for (const strategy of ['copy', 'auto']) {
    const r = await runCli(['deploy', built.files.tar, root, '--strategy', strategy]);
    assert.equal(r.code, 0, `${strategy}: ${r.stderr}`);
    assert.ok(sameManifest(manifestOf(path.join(root, 'current')), manifestOf(built.src)), strategy);
  }
});

void test('a v7 tar and a zip entry of mode 0000 deploy as written; an encrypted zip and a 4 KiB hostile name get one short line', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  const src = makeSource(path.join(dir, 'src'), 'v1', { links: false });
  const v7 = path.join(dir, 'old.tar');
  execFileSync('tar', ['--format=v7', '-cf', v7, '-C', src, '.']);
  const r = await runCli(['deploy', v7, root, '--no-fsync']);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(sameManifest(manifestOf(path.join(root, 'current')), manifestOf(src)), manifestDiff(manifestOf(path.join(root, 'current')), manifestOf(src)));

  // Unix attributes with no permission bit: 0000 as written (as a tar entry's is), not a default.
  const locked = path.join(dir, 'locked.zip');
  execFileSync('python3', ['-c', String.raw`
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    z.writestr('index.html', b'<h1>zip</h1>\n')
    i = zipfile.ZipInfo('secret.txt'); i.create_system = 3; i.external_attr = 0o100000 << 16
    z.writestr(i, b'no one reads me\n')
`, locked]);
  const z = await runCli(['deploy', locked, root, '--no-fsync']);
  assert.equal(z.code, 0, z.stderr);
  assert.equal(fs.lstatSync(path.join(root, 'current', 'secret.txt')).mode & 0o7777, 0);
  assert.equal((await runCli(['verify', root])).code, 0);

  const before = treeSnapshot(root);
  const encrypted = path.join(dir, 'encrypted.zip');
  execFileSync('zip', ['-q', '-P', 'secret', encrypted, 'index.html'], { cwd: src });
  const long = path.join(dir, 'long.tar');
  execFileSync('python3', ['-c', String.raw`
import io, sys, tarfile
with tarfile.open(sys.argv[1], 'w', format=tarfile.PAX_FORMAT) as t:
    i = tarfile.TarInfo('/' + 'a/' * 2000 + 'evil'); i.size = 1
    t.addfile(i, io.BytesIO(b'x'))
`, long]);
  for (const [file, message] of [[encrypted, /holds an encrypted entry, which cannot be deployed/], [long, /entry "\/a\/a\/.*…\(4005 bytes\)….*" is an absolute path/]] as const) {
    const refused = await runCli(['deploy', file, root, '--no-fsync']);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, message);
    const first = refused.stderr.split('\n')[0] ?? '';
    assert.ok(first.length < 400, `a ${first.length}-character error line`);
    assert.deepEqual(treeSnapshot(root), before);
  }
});

void test('zip names: Info-ZIP stores UTF-8 names without the UTF-8 flag, and they deploy as named (links resolve); a colon is an ordinary character; a name that is not UTF-8 is read as CP437', async (t) => {
  const dir = tempDir(t);
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'ünï'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'ünï', 'é.txt'), 'accent\n');
  fs.symlinkSync('é.txt', path.join(tree, 'ünï', 'link'));
  fs.writeFileSync(path.join(tree, 'a:b.txt'), 'colon\n');
  const zip = path.join(dir, 'utf8.zip');
  execFileSync('zip', ['-qry', zip, '.'], { cwd: tree });
  // Control: Info-ZIP set neither the UTF-8 flag (bit 11) nor a Unicode path field, so the spec alone says CP437.
  const listing = execFileSync('python3', ['-c', 'import sys, zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist(): print(i.flag_bits & 0x800, i.filename)', zip], { encoding: 'utf8' });
  assert.match(listing, /^0 ├╝n├»\/├⌐\.txt$/m, listing);
  const root = path.join(dir, 'root');
  const r = await runCli(['deploy', zip, root, '--no-fsync']);
  assert.equal(r.code, 0, r.stderr);
  const got = manifestOf(path.join(root, 'current'));
  assert.ok(sameManifest(got, manifestOf(tree)), manifestDiff(got, manifestOf(tree)));
  assert.equal(fs.readFileSync(path.join(root, 'current', 'ünï', 'link'), 'utf8'), 'accent\n');

  // An old DOS tool's name: byte 0x82 is é in CP437 and is not UTF-8. Written as `caf?.txt`, then that byte put in.
  const dos = path.join(dir, 'dos.zip');
  execFileSync('python3', ['-c', 'import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], "w") as z: z.writestr("caf?.txt", "dos\\n")', dos]);
  const bytes = fs.readFileSync(dos);
  let patched = 0;
  for (let i = bytes.indexOf('caf?.txt'); i !== -1; i = bytes.indexOf('caf?.txt', i + 1)) {
    bytes[i + 3] = 0x82;
    patched++;
  }
  assert.equal(patched, 2, 'the name is in the local header and in the central directory');
  fs.writeFileSync(dos, bytes);
  const d = await runCli(['deploy', dos, root, '--no-fsync']);
  assert.equal(d.code, 0, d.stderr);
  assert.equal(fs.readFileSync(path.join(root, 'current', 'café.txt'), 'utf8'), 'dos\n');
});

void test('GNU tar extras that are not files: a volume label (tar -V) is skipped, an incremental dumpdir (tar -g) is its directory', async (t) => {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'dist'), 'gnu');
  const root = path.join(dir, 'root');
  for (const [name, extra] of [['labelled.tar', ['-V', 'site build 42']], ['incremental.tar', ['-g', path.join(dir, 'snapshot')]]] as const) {
    const file = path.join(dir, name);
    execFileSync('tar', ['-cf', file, ...extra, '-C', src, '.']);
    const r = await runCli(['deploy', file, root, '--no-fsync']);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    const got = manifestOf(path.join(root, 'current'));
    assert.ok(sameManifest(got, manifestOf(src)), `${name}: ${manifestDiff(got, manifestOf(src))}`);
  }
});
