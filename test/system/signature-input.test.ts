// Where a --signature comes from: a file, a pipe (/dev/stdin, a named FIFO) or something that is
// no signature at all. A FIFO that no one writes held the main thread in a blocking read for good
// (deaf even to SIGTERM); a huge file was read whole, copied to TMPDIR and fed to ssh-keygen. Now
// every refusal is exit 2, one line and a hint, the root and its .tmp/ untouched.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { cliEnv, binFor, jsonOf, runCli, spawnCli, type CliResult } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';
import { signedArtifact } from '../harness/signing.ts';

function setUp(t: { after(fn: () => void): void }): { dir: string; artifact: string; signature: string; allowed: string; root: string } {
  const { dir, artifact, signature, pub, root } = signedArtifact(t);
  const allowed = path.join(dir, 'allowed_signers');
  fs.writeFileSync(allowed, `ci@example.com namespaces="atomic-deploy" ${pub}\n`);
  return { dir, artifact, signature, allowed, root };
}

/** The CLI with `input` piped to its stdin by a shell, as a CI step does (`cat x.sig | atomic-deploy ...`). */
function runWithStdin(args: string[], input: string): Promise<CliResult> {
  const env = cliEnv(undefined, {});
  const child = spawn('sh', ['-c', 'f=$1; shift; cat "$f" | "$@"', 'sh', input, process.execPath, binFor(env), ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => child.on('close', (code, signal) => (clearTimeout(timer), resolve({ code, signal, stdout, stderr }))));
}

void test('a signature from a pipe: /dev/stdin and a named FIFO deploy; a FIFO no one writes is given up after the download timeout, and SIGTERM ends the wait', async (t) => {
  const { dir, artifact, signature, allowed, root } = setUp(t);
    const piped = await runWithStdin(['deploy', artifact, root, '--signature', '/dev/stdin', '--allowed-signers', allowed, '--json'], signature);
  assert.equal(piped.code, 0, piped.stderr);
  assert.equal(jsonOf<{ artifact: { signedBy: string } }>(piped).artifact.signedBy, 'ci@example.com');

  const fifo = path.join(dir, 'site.tgz.sig.fifo');
  execFileSync('mkfifo', [fifo]);
  const writer = spawn('sh', ['-c', 'sleep 1; cat "$1" > "$2"', 'sh', signature, fifo], { stdio: 'ignore' });
  const viaFifo = await runCli(['deploy', artifact, root, '--signature', fifo, '--allowed-signers', allowed, '--json'], { timeoutMs: 30_000 });
  writer.kill();
  assert.equal(viaFifo.code, 0, viaFifo.stderr);

  // No writer: the old code blocked in readFileSync until SIGKILL.
  const before = treeSnapshot(root);
  const started = Date.now();
  const silent = await runCli(['deploy', artifact, root, '--signature', fifo, '--allowed-signers', allowed, '--download-timeout', '1'], { timeoutMs: 20_000 });
  assert.equal(silent.signal, null, 'killed by the test after 20 s: the read of the FIFO blocked');
  assert.equal(silent.code, 2, silent.stderr);
  assert.equal(silent.stderr, `error: the signature pipe ${fifo} sent nothing for 1 s\nhint: write the signature into the pipe and close it, or give the .sig file itself (--download-timeout sets the wait)\n`);
  assert.ok(Date.now() - started < 15_000);
  assert.deepEqual(treeSnapshot(root), before);

  const waiting = spawnCli(['deploy', artifact, root, '--signature', fifo, '--allowed-signers', allowed], { timeoutMs: 20_000 });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  waiting.child.kill('SIGTERM');
  const terminated = await waiting.done;
  assert.equal(terminated.signal, null, 'killed by the test after 20 s: SIGTERM was not heard');
  assert.equal(terminated.code, 143, terminated.stderr);
  assert.match(terminated.stderr, /interrupted by SIGTERM/);
  assert.deepEqual(treeSnapshot(root), before);
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), []);
});

void test('a signature that is empty, binary garbage, huge, a directory, a device or missing: exit 2, one line and a hint, --json names the code, nothing written', async (t) => {
  const { dir, artifact, signature, allowed, root } = setUp(t);
  const ok = await runCli(['deploy', artifact, root, '--signature', signature, '--allowed-signers', allowed]);
  assert.equal(ok.code, 0, ok.stderr);
  const empty = path.join(dir, 'empty.sig');
  fs.writeFileSync(empty, '');
  const garbage = path.join(dir, 'garbage.sig');
  fs.writeFileSync(garbage, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 151 + 7) % 256)));
  // A signature's armour, then 512 MiB of holes: the old code read it all, wrote it to TMPDIR and
  // handed it to ssh-keygen.
  const huge = path.join(dir, 'huge.sig');
  fs.writeFileSync(huge, `${fs.readFileSync(signature, 'utf8')}\n`);
  fs.truncateSync(huge, 512 * 1024 * 1024);
  const cases: [string, string, RegExp, RegExp, string][] = [
    ['empty', empty, /^error: the signature .*empty\.sig is empty$/m, /ssh-keygen -Y sign/, 'SIGNATURE_INVALID'],
    ['garbage', garbage, /^error: .*garbage\.sig is not an SSH signature$/m, /ssh-keygen -Y sign/, 'SIGNATURE_INVALID'],
    ['huge', huge, /^error: .*huge\.sig is too large to be an SSH signature \(over 64 KiB\)$/m, /the \.sig file/, 'SIGNATURE_INVALID'],
    ['directory', dir, /^error: the signature .* is a directory, not a signature file$/m, /the \.sig file/, 'SIGNATURE_INVALID'],
    ['device', '/dev/zero', /^error: the signature \/dev\/zero is a character device, not a signature file$/m, /the \.sig file/, 'SIGNATURE_INVALID'],
    ['missing', path.join(dir, 'nonexistent.sig'), /^error: cannot read the signature .*nonexistent\.sig: ENOENT$/m, /the \.sig file/, 'INVALID_SOURCE'],
  ];
  const before = treeSnapshot(root);
  for (const [name, sig, message, hint, code] of cases) {
    const started = Date.now();
    const r = await runCli(['deploy', artifact, root, '--signature', sig, '--allowed-signers', allowed], { timeoutMs: 30_000 });
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, message, name);
    assert.match(r.stderr, new RegExp(`^hint: .*${hint.source}`, 'm'), name);
    assert.equal(r.stderr.trim().split('\n').length, 2, `${name}: one error line and one hint:\n${r.stderr}`);
    assert.ok(Date.now() - started < 10_000, `${name}: took ${Date.now() - started} ms`);
    const j = await runCli(['deploy', artifact, root, '--signature', sig, '--allowed-signers', allowed, '--json'], { timeoutMs: 30_000 });
    assert.equal(j.code, 2, name);
    const error = jsonOf<{ error: { code: string; message: string; hint?: string } }>(j).error;
    assert.equal(error.code, code, name);
    assert.match(`error: ${error.message}`, message, name);
    assert.deepEqual(treeSnapshot(root), before, name);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], name);
  }
});

// A .sig file that went through a Windows checkout (git's autocrlf) or editor: ssh-keygen reads CRLF
// ends or a BOM as no signature at all, and the deploy said the key "is not in" the allowed signers.
void test('a signature with CRLF line ends or a byte order mark: a good one deploys, one of other bytes is still refused', async (t) => {
  const { dir, artifact, signature, allowed, root } = setUp(t);
  const text = fs.readFileSync(signature, 'utf8');
  const crlf = path.join(dir, 'crlf.sig');
  fs.writeFileSync(crlf, text.replaceAll('\n', '\r\n'));
  const bom = path.join(dir, 'bom.sig');
  fs.writeFileSync(bom, `\ufeff${text.replaceAll('\n', '\r\n')}`);
  for (const sig of [crlf, bom]) {
    const r = await runCli(['deploy', artifact, root, '--signature', sig, '--allowed-signers', allowed, '--json']);
    assert.equal(r.code, 0, `${sig}: ${r.stderr}`);
    assert.equal(jsonOf<{ artifact: { signedBy: string } }>(r).artifact.signedBy, 'ci@example.com');
  }
  // The same signature for another artifact: refused as a signature of other bytes.
  const other = path.join(dir, 'other.tgz');
  execFileSync('tar', ['-czf', other, '-C', dir, 'allowed_signers']);
  const before = treeSnapshot(root);
  const bad = await runCli(['deploy', other, root, '--signature', crlf, '--allowed-signers', allowed]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /^error: the signature .*crlf\.sig does not match the artifact \(signer ci@example\.com\)/m);
  assert.deepEqual(treeSnapshot(root), before);
  assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), []);
});
