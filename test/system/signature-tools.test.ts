// The allowed signers file as people write it, and the ssh-keygen that reads it. An ssh-keygen
// without -Y find-principals answered with its usage, and the deploy said the key "is not in" the
// file; lines ssh-keygen could not read (an unknown key type, a bad option) were skipped without a
// word, the same "is not in" shown. Both now say what is wrong. Every refusal: exit 2, one line and
// a hint, root unchanged.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { jsonOf, runCli } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';
import { signedArtifact } from '../harness/signing.ts';

const setUp = signedArtifact;

void test('allowed signers with CRLF ends, comments, blank lines, a line of an unknown key type, odd principals: the good signature deploys, signedBy is the principal as written', async (t) => {
  const { dir, artifact, signature, pub, root } = setUp(t);
  const cases: [string, string, string][] = [
    ['CRLF, comment, blank line', `# deploy keys\r\n\r\nci@example.com namespaces="atomic-deploy" ${pub}\r\n`, 'ci@example.com'],
    ['an unknown key type on another line', `x@example.com namespaces="atomic-deploy" ssh-foo AAAAB3Nz\nci@example.com namespaces="atomic-deploy" ${pub}\n`, 'ci@example.com'],
    ['a principal with a leading dash', `-oProxyCommand=x namespaces="atomic-deploy" ${pub}\n`, '-oProxyCommand=x'],
    ['a principal with shell metacharacters', `a;touch\${IFS}${path.join(dir, 'ran')}|$(id)\`id\` namespaces="atomic-deploy" ${pub}\n`, `a;touch\${IFS}${path.join(dir, 'ran')}|$(id)\`id\``],
    ['two principals on one line', `ci@example.com,ops@example.com namespaces="atomic-deploy" ${pub}\n`, 'ci@example.com'],
    ['a wildcard principal', `*@example.com namespaces="atomic-deploy" ${pub}\n`, '*@example.com'],
  ];
  for (const [name, text, signer] of cases) {
    const allowed = path.join(dir, 'allowed_signers');
    fs.writeFileSync(allowed, text);
    const r = await runCli(['deploy', artifact, root, '--signature', signature, '--allowed-signers', allowed, '--json']);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    assert.equal(jsonOf<{ artifact: { signedBy: string } }>(r).artifact.signedBy, signer, name);
  }
  assert.equal(fs.existsSync(path.join(dir, 'ran')), false, 'a principal was run by a shell');
});

void test('lines ssh-keygen cannot read, a plain key marked cert-authority: "not in" names the lines skipped, exit 2, nothing written', async (t) => {
  const { dir, artifact, signature, pub, root } = setUp(t);
  const [type, blob] = pub.split(' ');
  const cases: [string, string, RegExp][] = [
    ['unknown key type', `ci@example.com namespaces="atomic-deploy" ssh-foo ${blob ?? ''}\n`, /which has lines ssh-keygen could not read \(line 1: invalid key\)$/m],
    ['unknown option', `ci@example.com namespaces="atomic-deploy",no-such-option ${pub}\n`, /which has lines ssh-keygen could not read \(line 1: bad options: .*\)$/m],
    ['key cut short', `ci@example.com namespaces="atomic-deploy" ${type ?? ''} ${(blob ?? '').slice(0, 20)}\n`, /which has lines ssh-keygen could not read \(line 1: invalid key\)$/m],
  ];
  const before = treeSnapshot(root);
  for (const [name, text, message] of cases) {
    const allowed = path.join(dir, 'allowed_signers');
    fs.writeFileSync(allowed, text);
    const r = await runCli(['deploy', artifact, root, '--signature', signature, '--allowed-signers', allowed]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /^error: .*site\.tgz\.sig was made by a key that is not in .*allowed_signers, /m, name);
    assert.match(r.stderr, message, name);
    assert.match(r.stderr, /^hint: fix those lines: /m, name);
    assert.equal(r.stderr.trim().split('\n').length, 2, `${name}: one error line and one hint:\n${r.stderr}`);
    assert.deepEqual(treeSnapshot(root), before, name);
  }
  // A plain key under cert-authority verifies nothing (it would have to be a certificate it signed): refused.
  const ca = path.join(dir, 'allowed_ca');
  fs.writeFileSync(ca, `ci@example.com cert-authority,namespaces="atomic-deploy" ${pub}\n`);
  const r = await runCli(['deploy', artifact, root, '--signature', signature, '--allowed-signers', ca, '--json']);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(jsonOf<{ error: { code: string } }>(r).error.code, 'SIGNATURE_INVALID');
  assert.deepEqual(treeSnapshot(root), before);
});

void test('ssh-keygen missing from PATH, or one without -Y find-principals: exit 2 naming ssh-keygen (not the key), --json UNSUPPORTED_PLATFORM, nothing written', async (t) => {
  const { dir, artifact, signature, pub, root } = setUp(t);
  const allowed = path.join(dir, 'allowed_signers');
  fs.writeFileSync(allowed, `ci@example.com namespaces="atomic-deploy" ${pub}\n`);
  // PATH with tar and gzip only; and one whose ssh-keygen answers -Y find-principals as one without that operation does.
  const none = path.join(dir, 'none');
  fs.mkdirSync(none);
  for (const tool of ['tar', 'gzip']) fs.symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), path.join(none, tool));
  const old = path.join(dir, 'old');
  fs.mkdirSync(old);
  const real = execFileSync('sh', ['-c', 'command -v ssh-keygen'], { encoding: 'utf8' }).trim();
  fs.writeFileSync(path.join(old, 'ssh-keygen'), `#!/bin/sh\nif [ "$1" = -Y ] && [ "$2" = find-principals ]; then echo 'Unsupported operation for -Y: "find-principals"' >&2; ${real} -? 2>&1 | sed -n '/^usage/,$p' >&2; exit 255; fi\nexec ${real} "$@"\n`, { mode: 0o755 });
  const cases: [string, string, RegExp, RegExp][] = [
    ['missing', none, /^error: cannot run ssh-keygen: ENOENT$/m, /^hint: install OpenSSH/m],
    ['old', `${old}:${process.env.PATH ?? ''}`, /^error: this ssh-keygen cannot look up the signer \(ssh-keygen -Y find-principals: Unsupported operation for -Y: "find-principals"\); nothing was deployed$/m, /^hint: install a newer OpenSSH/m],
  ];
  const before = treeSnapshot(root);
  for (const [name, PATH, message, hint] of cases) {
    const r = await runCli(['deploy', artifact, root, '--signature', signature, '--allowed-signers', allowed], { env: { PATH } });
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, message, name);
    assert.match(r.stderr, hint, name);
    assert.equal(r.stderr.trim().split('\n').length, 2, `${name}: one error line and one hint:\n${r.stderr}`);
    const j = await runCli(['deploy', artifact, root, '--signature', signature, '--allowed-signers', allowed, '--json'], { env: { PATH } });
    assert.equal(jsonOf<{ error: { code: string } }>(j).error.code, 'UNSUPPORTED_PLATFORM', name);
    assert.deepEqual(treeSnapshot(root), before, name);
  }
});
