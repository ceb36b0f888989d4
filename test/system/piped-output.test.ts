// Output larger than a pipe holds (64 KiB) reaches a reader that is slower than the command: the
// exit waits for the reader, as cat's or jq's would. (It used to end with the rest unwritten: a
// `verify --json | jq` read a cut document, with verify's own exit code.)
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, cliEnv, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { mountTmpfs, requireRoot } from '../harness/faults.ts';

/**
 * Runs the CLI as `atomic-deploy … | { sleep 1; cat; }` runs it: stdout on a pipe whose reader
 * starts a second late (a shell pipeline, not a Node child's pipe, which Node drains itself once
 * the child exits). The exit code is the CLI's (pipefail; cat's is 0).
 */
function runSlowReader(args: readonly string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawn('bash', ['-o', 'pipefail', '-c', '"$0" "$@" | { sleep 1; cat; }', process.execPath, BIN, ...args], { env: cliEnv(), stdio: ['ignore', 'pipe', 'ignore'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

void test('verify --json and its human list, larger than a pipe holds, reach a slow reader whole', async (t) => {
  const dir = tempDir(t);
  const files = Object.fromEntries(Array.from({ length: 4000 }, (_, i) => [`d${i % 20}/f${i}.txt`, `${i}\n`]));
  const src = writeTree(path.join(dir, 'src'), files);
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '-q', '--no-fsync'])).code, 0);
  // A mode change on every file: one difference each, some 250 KiB of JSON.
  for (const rel of Object.keys(files)) fs.chmodSync(path.join(root, 'current', rel), 0o600);

  const json = await runSlowReader(['verify', root, '--json']);
  assert.equal(json.code, 5);
  assert.ok(json.stdout.length > 4 * 65536, `${json.stdout.length} bytes`);
  const parsed = JSON.parse(json.stdout) as { differences: unknown[] };
  assert.equal(parsed.differences.length, 4000);

  const human = await runSlowReader(['verify', root]);
  assert.equal(human.code, 5);
  assert.match(human.stdout, /differs from its manifest/);
  assert.ok(human.stdout.length > 2 * 65536, `${human.stdout.length} bytes`);
  assert.ok(human.stdout.split('\n').length > 4000, `${human.stdout.split('\n').length} lines`);
});

// A report is the whole point of status, releases, verify and a dry run: `releases --json >
// state.json` on a full disk left an empty file and exited 0. Their exit says the output was
// lost (1, one line on stderr); a reader that went away (`| head`) is not that; and a deploy whose
// progress could not be written still stands, exit 0.
void test('a report that cannot be written (a full disk) exits 1; a reader gone is not that; a deploy stands', async (t) => {
  requireRoot();
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`f${i}.txt`, `${i}\n`])));
  const root = path.join(dir, 'root');
  for (let i = 0; i < 3; i += 1) assert.equal((await runCli(['deploy', src, root, '-q', '--no-fsync'])).code, 0);
  const full = mountTmpfs(t, { size: '64k' });
  execFileSync('sh', ['-c', `dd if=/dev/zero of=${full}/fill bs=4k 2>/dev/null; true`]);
  // stdout into a file on the full tmpfs, as a shell's `>` puts it there.
  const into = (args: string): { code: number | null; stderr: string } => {
    const r = spawnSync('sh', ['-c', `exec "$0" "$1" ${args} > ${full}/out`, process.execPath, BIN], { env: cliEnv(), encoding: 'utf8' });
    return { code: r.status, stderr: r.stderr };
  };
  // A completion script is all `completion` does: `completion fish > ~/.config/fish/completions/…`
  // on a full disk left an empty script, exit 0, and the shell then completed nothing.
  for (const args of [`releases ${root} --json`, `status ${root}`, `verify ${root} --json`, `deploy ${src} ${root} --dry-run`, 'completion bash', 'completion fish']) {
    const r = into(args);
    assert.equal(r.code, 1, `${args}: ${r.stderr}`);
    assert.match(r.stderr, /^error: no space left on device while writing the output to stdout$/m, args);
  }
  const deployed = into(`deploy ${src} ${root} --no-fsync`);
  assert.equal(deployed.code, 0, deployed.stderr);
  // A reader that stops early: the report's own exit code.
  const head = execFileSync('bash', ['-o', 'pipefail', '-c', `"$0" "$1" releases ${root} | head -c 1 >/dev/null; echo \${PIPESTATUS[0]}`, process.execPath, BIN], { env: cliEnv(), encoding: 'utf8' });
  assert.equal(head.trim(), '0');
});
