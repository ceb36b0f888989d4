// Output larger than a pipe holds (64 KiB) reaches a reader that is slower than the command: the
// exit waits for the reader, as cat's or jq's would. (It used to end with the rest unwritten: a
// `verify --json | jq` read a cut document, with verify's own exit code.)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, cliEnv, runCli, tempDir, writeTree } from '../harness/cli.ts';

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
