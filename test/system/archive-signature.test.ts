// Signed artifacts: `ssh-keygen -Y sign -n atomic-deploy` as docs/ci.md tells CI to, checked with
// --signature (a file or a URL) and --allowed-signers. A good signature deploys; a signature of
// other bytes, by a key not in the allowed signers, for another namespace, or by a listed key that
// is expired or allowed for another namespace only, exits 2 with a hint that fits, the root unchanged.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { serve } from '../harness/archives.ts';
import { jsonOf, runCli, tempDir } from '../harness/cli.ts';
import { asUser, runWrapped } from '../harness/faults.ts';
import { makeSource, treeSnapshot } from '../harness/invariants.ts';

function key(dir: string, name: string): string {
  const file = path.join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
  return file;
}

function sign(keyFile: string, file: string, namespace = 'atomic-deploy'): string {
  execFileSync('ssh-keygen', ['-q', '-Y', 'sign', '-f', keyFile, '-n', namespace, file]);
  return `${file}.sig`;
}

void test('signatures: good deploys, other bytes / unknown signer / other namespace exit 2 and change nothing', async (t) => {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'src'), 'v1');
  const artifact = path.join(dir, 'site.tgz');
  execFileSync('tar', ['-czf', artifact, '-C', src, '.']);
  const ci = key(dir, 'ci');
  const stranger = key(dir, 'stranger');
  const allowed = path.join(dir, 'allowed_signers');
  fs.writeFileSync(allowed, `ci@example.com namespaces="atomic-deploy" ${fs.readFileSync(`${ci}.pub`, 'utf8')}`);
  const root = path.join(dir, 'root');
  const server = await serve(t, dir, 'ok');

  const good = sign(ci, artifact);
  for (const signature of [good, server.url('site.tgz.sig')]) {
    const r = await runCli(['deploy', artifact, root, '--signature', signature, '--allowed-signers', allowed, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonOf<{ artifact: { signedBy: string } }>(r).artifact.signedBy, 'ci@example.com');
  }
  const viaUrl = await runCli(['deploy', server.url('site.tgz'), root, '--signature', server.url('site.tgz.sig'), '--allowed-signers', allowed]);
  assert.equal(viaUrl.code, 0, viaUrl.stderr);

  // Bad: the signature of another artifact. Unknown: signed by a key not allowed. Namespace: signed for another use.
  const other = path.join(dir, 'other.tgz');
  execFileSync('tar', ['-czf', other, '-C', src, 'index.html']);
  // A listed key refused all the same: past its valid-before, or allowed only for another namespace.
  const expired = path.join(dir, 'allowed_expired');
  fs.writeFileSync(expired, `ci@example.com valid-before="20200101",namespaces="atomic-deploy" ${fs.readFileSync(`${ci}.pub`, 'utf8')}`);
  const gitOnly = path.join(dir, 'allowed_git');
  fs.writeFileSync(gitOnly, `ci@example.com namespaces="git" ${fs.readFileSync(`${ci}.pub`, 'utf8')}`);
  const cases: [string, string, RegExp, RegExp, string?][] = [
    ['other bytes', sign(ci, other), /does not match the artifact/, /changed after signing/],
    ['unknown signer', (fs.copyFileSync(artifact, path.join(dir, 'copy.tgz')), sign(stranger, path.join(dir, 'copy.tgz'))), /not in .*allowed_signers/, /add the signer's public key/],
    ['other namespace', (fs.copyFileSync(artifact, path.join(dir, 'ns.tgz')), sign(ci, path.join(dir, 'ns.tgz'), 'file')), /does not match the artifact .*namespace does not match/, /sign with -n atomic-deploy/],
    ['expired key', good, /does not allow now: .*key has expired/, /valid-before\/valid-after/, expired],
    ['key allowed for git only', good, /not permitted for use in signature namespace "atomic-deploy"/, /namespaces="atomic-deploy"/, gitOnly],
  ];
  for (const [name, signature, message, hint, signers] of cases) {
    const before = treeSnapshot(root);
    const r = await runCli(['deploy', artifact, root, '--signature', signature, '--allowed-signers', signers ?? allowed]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, message, name);
    assert.match(r.stderr, new RegExp(`^hint: .*${hint.source}`, 'm'), name);
    assert.doesNotMatch(r.stderr, /\r/, `${name}: a carriage return in the message`);
    assert.equal(r.stderr.trim().split('\n').length, 2, `${name}: one error line and one hint:\n${r.stderr}`);
    assert.deepEqual(treeSnapshot(root), before, name);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], name);
  }
  const before = treeSnapshot(root);
  const alone = await runCli(['deploy', artifact, root, '--signature', good]);
  assert.equal(alone.code, 2);
  assert.match(alone.stderr, /--signature needs --allowed-signers/);
  // Allowed signers without a signature is a policy, not a half-given pair: unsigned is refused.
  const unsigned = await runCli(['deploy', artifact, root, '--allowed-signers', allowed]);
  assert.equal(unsigned.code, 2);
  assert.match(unsigned.stderr, /allowed signers are set but the artifact has no --signature/);
  assert.deepEqual(treeSnapshot(root), before);
});

void test('config artifact.allowedSigners (relative to the config file): every artifact deploy needs a good --signature; a directory deploy is not an artifact', async (t) => {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'src'), 'v1');
  const artifact = path.join(dir, 'site.tgz');
  execFileSync('tar', ['-czf', artifact, '-C', src, '.']);
  const ci = key(dir, 'ci');
  fs.mkdirSync(path.join(dir, 'deploy'));
  fs.writeFileSync(path.join(dir, 'deploy', 'allowed_signers'), `ci@example.com namespaces="atomic-deploy" ${fs.readFileSync(`${ci}.pub`, 'utf8')}`);
  const config = path.join(dir, 'deploy', 'atomic-deploy.config.yaml');
  fs.writeFileSync(config, 'artifact:\n  allowedSigners: allowed_signers\n  maxFiles: 100\n');
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  const before = treeSnapshot(root);
  const unsigned = await runCli(['deploy', artifact, root, '--config', config]);
  assert.equal(unsigned.code, 2, unsigned.stderr);
  assert.match(unsigned.stderr, /has no --signature/);
  assert.deepEqual(treeSnapshot(root), before);
  const signed = await runCli(['deploy', artifact, root, '--config', config, '--signature', sign(ci, artifact), '--json']);
  assert.equal(signed.code, 0, signed.stderr);
  assert.equal(jsonOf<{ artifact: { signedBy: string } }>(signed).artifact.signedBy, 'ci@example.com');
  // The config's maxFiles applies too; a flag overrides it.
  const few = await runCli(['deploy', artifact, root, '--config', config, '--signature', sign(ci, artifact), '--max-files', '2']);
  assert.equal(few.code, 2, few.stderr);
  assert.match(few.stderr, /more than 2 files, directories and links/);
  // The key is the policy for artifacts: the build directory itself deploys under the same config
  // (the flags, given for a directory, are refused: test/system/bad-input.test.ts).
  const directory = await runCli(['deploy', src, root, '--config', config, '--json']);
  assert.equal(directory.code, 0, directory.stderr);
  assert.equal(jsonOf<{ artifact?: unknown }>(directory).artifact, undefined);
});

void test('a key listed under several principals: any one allowed for the namespace verifies it, in order; a bad signature is refused whichever', async (t) => {
  const dir = tempDir(t);
  const src = makeSource(path.join(dir, 'src'), 'v1');
  const artifact = path.join(dir, 'site.tgz');
  execFileSync('tar', ['-czf', artifact, '-C', src, '.']);
  const other = path.join(dir, 'other.tgz');
  execFileSync('tar', ['-czf', other, '-C', src, 'index.html']);
  const ci = key(dir, 'ci');
  const pub = fs.readFileSync(`${ci}.pub`, 'utf8');
  // find-principals lists every principal of the key, whatever its namespaces: the git one first.
  const allowed = path.join(dir, 'allowed_signers');
  fs.writeFileSync(allowed, `aa@example.com namespaces="git" ${pub}ci@example.com namespaces="atomic-deploy" ${pub}zz@example.com namespaces="atomic-deploy" ${pub}`);
  const root = path.join(dir, 'root');
  const good = sign(ci, artifact);
  const r = await runCli(['deploy', artifact, root, '--signature', good, '--allowed-signers', allowed, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(jsonOf<{ artifact: { signedBy: string } }>(r).artifact.signedBy, 'ci@example.com');
  const before = treeSnapshot(root);
  const gitOnly = path.join(dir, 'allowed_git');
  fs.writeFileSync(gitOnly, `aa@example.com namespaces="git" ${pub}bb@example.com namespaces="file" ${pub}`);
  const cases: [string, string, string, RegExp][] = [
    ['other bytes', sign(ci, other), allowed, /does not match the artifact .*Signature verification failed|does not match the artifact \(signer/],
    ['other namespace', (fs.copyFileSync(artifact, path.join(dir, 'ns.tgz')), sign(ci, path.join(dir, 'ns.tgz'), 'file')), allowed, /does not match the artifact .*namespace does not match/],
    ['allowed for other namespaces only', good, gitOnly, /not permitted for use in signature namespace "atomic-deploy"/],
  ];
  for (const [name, signature, signers, message] of cases) {
    const bad = await runCli(['deploy', artifact, root, '--signature', signature, '--allowed-signers', signers]);
    assert.equal(bad.code, 2, `${name}: ${bad.stderr}`);
    assert.match(bad.stderr, message, name);
    assert.equal(bad.stderr.trim().split('\n').length, 2, `${name}: one error line and one hint:\n${bad.stderr}`);
    assert.deepEqual(treeSnapshot(root), before, name);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], name);
  }
});

// The signature is checked in a private directory under TMPDIR: TMPDIR missing was an "unexpected
// failure … this is a bug"; on a read-only mount the hint blamed the deploy root; not this user's
// to write, "run as the user that owns the deploy root".
void test('a TMPDIR that is missing, read-only or not this user\'s to write: exit 2 naming TMPDIR and its problem, nothing changed', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = makeSource(path.join(dir, 'src'), 'v1');
  const artifact = path.join(dir, 'site.tgz');
  execFileSync('tar', ['-czf', artifact, '-C', src, '.']);
  const ci = key(dir, 'ci');
  const allowed = path.join(dir, 'allowed_signers');
  fs.writeFileSync(allowed, `ci@example.com namespaces="atomic-deploy" ${fs.readFileSync(`${ci}.pub`, 'utf8')}`);
  const signature = sign(ci, artifact);
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  execFileSync('chown', ['nobody:', root]);
  const readOnly = path.join(dir, 'ro');
  fs.mkdirSync(readOnly);
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', readOnly]);
  const closed = path.join(dir, 'closed');
  fs.mkdirSync(closed, { mode: 0o700 });
  const cases: [string, string, RegExp, string | undefined][] = [
    ['missing', path.join(dir, 'nonexistent'), /it does not exist/, undefined],
    ['read-only', readOnly, /it is on a read-only mount/, undefined],
    ['another user\'s', closed, /this user may not write it/, 'nobody'],
  ];
  const before = treeSnapshot(dir);
  try {
    for (const [name, tmp, problem, user] of cases) {
      const args = ['deploy', artifact, root, '--signature', signature, '--allowed-signers', allowed];
      const env = { TMPDIR: tmp };
      const r = user ? await runWrapped(args, { prefix: asUser(user), env }) : await runCli(args, { env });
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^error: cannot make a temporary directory in ${tmp} \\(TMPDIR\\): ${problem.source}\\nhint: set TMPDIR to a directory this user may write, or unset it to use /tmp\\n$`), name);
      const j = user ? await runWrapped([...args, '--json'], { prefix: asUser(user), env }) : await runCli([...args, '--json'], { env });
      assert.equal(jsonOf<{ error: { code: string } }>(j).error.code, 'USAGE', name);
      assert.deepEqual(treeSnapshot(dir), before, name);
    }
  } finally {
    execFileSync('umount', ['-l', readOnly]);
  }
});
