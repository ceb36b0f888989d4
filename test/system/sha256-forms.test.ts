// The forms a --sha256 comes in from CI. The digest in any case, with or without `sha256:`,
// deploys; the same digest given twice in two forms is one pin (it was refused as two); a whole
// sha256sum line, or the name of the .sha256 file, is refused (exit 2, nothing written) with a hint
// that shows how to give the digest alone (the hint was "sha256sum <artifact> prints it").
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { sha256Of } from '../harness/archives.ts';
import { jsonOf, runCli, tempDir } from '../harness/cli.ts';
import { makeSource, treeSnapshot } from '../harness/invariants.ts';

/** A .tgz of a small site in a fresh directory, its digest, and where a root may go. */
function tarball(t: { after(fn: () => void): void }): { dir: string; artifact: string; sha: string; root: string } {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'src'), 'v1');
  const artifact = path.join(dir, 'site.tgz');
  execFileSync('tar', ['-czf', artifact, '-C', src, '.']);
  return { dir, artifact, sha: sha256Of(artifact), root: path.join(dir, 'root') };
}

void test('--sha256 forms: any case and prefix deploy, the same digest twice in two forms is one pin; a sha256sum line or a .sha256 file name exits 2 with a hint that gives the digest alone', async (t) => {
  const { dir, artifact, sha, root } = tarball(t);
  for (const value of [sha.toUpperCase(), `sha256:${sha}`, `SHA256:${sha.toUpperCase()}`, ` ${sha}\n`]) {
    const r = await runCli(['deploy', artifact, root, '--no-fsync', '--quiet', '--sha256', value]);
    assert.equal(r.code, 0, `${JSON.stringify(value)}: ${r.stderr}`);
  }
  const twice = await runCli(['deploy', artifact, root, '--no-fsync', '--quiet', '--sha256', sha, '--sha256', `sha256:${sha.toUpperCase()}`, '--json']);
  assert.equal(twice.code, 0, twice.stderr);
  assert.equal(jsonOf<{ artifact: { sha256: string } }>(twice).artifact.sha256, sha);
  // Two different digests stay refused, whatever their forms.
  const other = 'f'.repeat(64);
  const before = treeSnapshot(root);
  const conflict = await runCli(['deploy', artifact, root, '--sha256', `sha256:${sha}`, '--sha256', other.toUpperCase()]);
  assert.equal(conflict.code, 2, conflict.stderr);
  assert.match(conflict.stderr, /--sha256 is given twice/);
  assert.deepEqual(treeSnapshot(root), before);

  const sumFile = path.join(dir, 'site.tgz.sha256');
  fs.writeFileSync(sumFile, execFileSync('sha256sum', ['site.tgz'], { cwd: dir }));
  const line = fs.readFileSync(sumFile, 'utf8').trim();
  const cases: [string, string, string][] = [
    ['a sha256sum line', line, `hint: that is a sha256sum line (digest and file name): give the digest alone, its first word, e.g. --sha256 "$(cut -d' ' -f1 site.tgz.sha256)"`],
    ['a binary-mode sha256sum line', `${sha} *site.tgz`, `hint: that is a sha256sum line (digest and file name): give the digest alone, its first word, e.g. --sha256 "$(cut -d' ' -f1 site.tgz.sha256)"`],
    ['the .sha256 file', sumFile, `hint: that names a file: give the digest it holds, e.g. --sha256 "$(cut -d' ' -f1 ${sumFile})"`],
    ['a digest cut short', sha.slice(0, 63), 'hint: sha256sum <artifact> prints it'],
  ];
  for (const [name, value, hint] of cases) {
    const r = await runCli(['deploy', artifact, root, '--sha256', value]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.equal(r.stderr, `error: --sha256 must be 64 hex digits (got ${JSON.stringify(value)})\n${hint}\n`, name);
    const j = await runCli(['deploy', artifact, root, '--sha256', value, '--json']);
    assert.equal(j.code, 2, name);
    assert.deepEqual(jsonOf<{ error: { code: string; hint: string } }>(j).error, { code: 'USAGE', message: `--sha256 must be 64 hex digits (got ${JSON.stringify(value)})`, hint: hint.slice('hint: '.length) }, name);
    assert.deepEqual(treeSnapshot(root), before, name);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], name);
  }
});

// Old code: ATOMIC_DEPLOY_SHA256 (a CI variable set for the job) was dropped without a word for a
// --sha256 on the command line that named another digest; only the last pin was checked.
void test('a pin from the environment that the command line contradicts exits 2 with nothing written; the same pin in another form, or an empty variable, is not refused', async (t) => {
  const { dir, artifact, sha, root } = tarball(t);
  assert.equal((await runCli(['deploy', artifact, root, '--no-fsync', '--quiet'])).code, 0);
  const before = treeSnapshot(root);
  const stale = 'e'.repeat(64);
  const r = await runCli(['deploy', artifact, root, '--sha256', sha, '--json'], { env: { ATOMIC_DEPLOY_SHA256: stale } });
  assert.equal(r.code, 2, r.stderr);
  assert.deepEqual(jsonOf<{ error: { code: string; message: string; hint: string } }>(r).error, {
    code: 'USAGE',
    message: `--sha256 ${JSON.stringify(sha)} and ATOMIC_DEPLOY_SHA256=${JSON.stringify(stale)} name different values: one artifact has one, and neither is dropped for the other; nothing was deployed`,
    hint: 'give the same value in both, or unset ATOMIC_DEPLOY_SHA256',
  });
  assert.deepEqual(treeSnapshot(root), before);
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), []);
  // The signature flags are pins too.
  const sig = await runCli(['deploy', artifact, root, '--signature', path.join(dir, 'a.sig'), '--allowed-signers', path.join(dir, 'signers')], { env: { ATOMIC_DEPLOY_SIGNATURE: path.join(dir, 'b.sig') } });
  assert.equal(sig.code, 2, sig.stderr);
  assert.match(sig.stderr, /^error: --signature ".*a\.sig" and ATOMIC_DEPLOY_SIGNATURE=".*b\.sig" name different values/m);
  assert.deepEqual(treeSnapshot(root), before);
  for (const env of [{ ATOMIC_DEPLOY_SHA256: `SHA256:${sha.toUpperCase()}` }, { ATOMIC_DEPLOY_SHA256: '' }]) {
    const ok = await runCli(['deploy', artifact, root, '--no-fsync', '--quiet', '--sha256', sha], { env });
    assert.equal(ok.code, 0, `${JSON.stringify(env)}: ${ok.stderr}`);
  }
});
