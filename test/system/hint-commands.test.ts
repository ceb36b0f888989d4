// A hint that names a command must be a command a user can paste: a root whose path holds a
// space, a quote or a `$` is quoted in it as a POSIX shell reads it back. Each case takes the
// `atomic-deploy …` command out of a real hint and runs it with sh, the installed CLI on PATH.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, runCli, tempDir, type CliResult } from '../harness/cli.ts';
import { writeOwnerLock } from '../harness/faults.ts';

// One shell word as the hints write it: unquoted safe characters, '…' runs and \' between them.
const WORD = String.raw`(?:'[^']*'|\\'|[A-Za-z0-9_@%+=:,./-])+`;
const COMMAND = new RegExp(String.raw`atomic-deploy(?: ${WORD})+`, 'g');

/** The first `atomic-deploy …` command in a hint: the words up to the first one that is prose (`;`, `(`, `<id>`). */
function commandOf(hint: string): string {
  const found = hint.match(COMMAND);
  assert.ok(found, `no command in the hint: ${hint}`);
  return found[0];
}

function hintOf(result: CliResult): string {
  const line = result.stderr.split('\n').find((l) => l.startsWith('hint: '));
  assert.ok(line, `no hint line in: ${result.stderr}`);
  return line.slice('hint: '.length);
}

/** Runs a pasted command with sh, `atomic-deploy` being the installed CLI. */
function runPasted(dir: string, command: string): { code: number; stdout: string; stderr: string } {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.writeFileSync(path.join(bin, 'atomic-deploy'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`, { mode: 0o755 });
  try {
    const stdout = execFileSync('sh', ['-c', command], { env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}`, NO_COLOR: '1' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, stdout, stderr: '' };
  } catch (error) {
    const e = error as { status: number; stdout: string; stderr: string };
    return { code: e.status, stdout: e.stdout, stderr: e.stderr };
  }
}

// A space, a single quote, a `$` with a name after it, a `;` and a `)`: each breaks an unquoted paste.
const NAMES = ["my site", "it's live", 'cost$HOME', 'a;b (c)'];

async function rootWithOneRelease(t: { after(fn: () => void): void }, name: string): Promise<{ dir: string; root: string; id: string }> {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'index.html'), 'one\n');
  const root = path.join(dir, name);
  // Made first: a new root whose name holds `$HOME` is taken for a variable no shell expanded.
  fs.mkdirSync(root);
  const deployed = await runCli(['deploy', src, root, '--quiet', '--release-id', 'r1']);
  assert.equal(deployed.code, 0, deployed.stderr);
  return { dir, root, id: 'r1' };
}

for (const name of NAMES) {
  void test(`hints name the root ${JSON.stringify(name)} so that the command pastes: rollback with no earlier release`, async (t) => {
    const { dir, root } = await rootWithOneRelease(t, name);
    const failed = await runCli(['rollback', root]);
    assert.equal(failed.code, 2, failed.stderr);
    const command = commandOf(hintOf(failed));
    assert.match(command, /^atomic-deploy releases /);
    const pasted = runPasted(dir, command);
    assert.equal(pasted.code, 0, `${command}\n${pasted.stderr}`);
    assert.match(pasted.stdout, /\br1\b/);
  });

  void test(`hints name the root ${JSON.stringify(name)} so that the command pastes: verify of an unknown release`, async (t) => {
    const { dir, root } = await rootWithOneRelease(t, name);
    const failed = await runCli(['verify', root, '--release', 'nope']);
    assert.equal(failed.code, 2, failed.stderr);
    const pasted = runPasted(dir, commandOf(hintOf(failed)));
    assert.equal(pasted.code, 0, pasted.stderr);
    assert.match(pasted.stdout, /\br1\b/);
  });

  void test(`hints name the root ${JSON.stringify(name)} so that the command pastes: a lock of another host, unlocked by the hint`, async (t) => {
    const { dir, root } = await rootWithOneRelease(t, name);
    const lock = writeOwnerLock(root, { pid: 1, host: 'elsewhere.example' });
    const failed = await runCli(['deploy', path.join(dir, 'src'), root]);
    assert.equal(failed.code, 3, failed.stderr);
    const command = commandOf(hintOf(failed));
    assert.match(command, / --force$/);
    const pasted = runPasted(dir, command);
    assert.equal(pasted.code, 0, `${command}\n${pasted.stderr}`);
    assert.equal(fs.existsSync(lock), false, 'the pasted unlock removed the lock');
  });
}
