// Colour is decided per stream: `deploy … | tee log` must write no escape codes into the log
// while stderr, still a terminal, keeps its colour. `script` gives the CLI a real terminal.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, tempDir, writeTree } from '../harness/cli.ts';

const ESC = '\x1b[';

/** Runs `sh -c command` under `script`: stdin, stdout and stderr a pseudo-terminal unless the command redirects them. */
function underTerminal(command: string, cwd: string): string {
  const env: NodeJS.ProcessEnv = { ...process.env, TERM: 'xterm-256color' };
  delete env.NO_COLOR;
  delete env.FORCE_COLOR;
  delete env.ATOMIC_DEPLOY_FAILPOINTS;
  return execFileSync('script', ['-qec', command, '/dev/null'], { cwd, env, encoding: 'utf8' });
}

void test('a piped stdout gets no escape codes while stderr is a terminal; the same run on a terminal is coloured', (t) => {
  const dir = tempDir(t);
  writeTree(path.join(dir, 'build'), { 'index.html': 'v1\n' });
  const cli = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)}`;
  // stdout into a pipe (cat > file), stderr left on the terminal; the typo makes an error line there.
  const terminal = underTerminal(`${cli} deploy build www | cat > piped.txt; ${cli} rollbak www 2>&1 >/dev/null; ${cli} releases www | cat > releases.txt`, dir);
  const piped = fs.readFileSync(path.join(dir, 'piped.txt'), 'utf8');
  assert.match(piped, /deployed \d{14}: 1 file/);
  assert.ok(!piped.includes(ESC), `escape codes in the piped stdout: ${JSON.stringify(piped)}`);
  assert.ok(!fs.readFileSync(path.join(dir, 'releases.txt'), 'utf8').includes(ESC));
  // The control: stderr on the terminal is coloured, so the check above could have failed.
  assert.ok(terminal.includes(`${ESC}31merror:${ESC}39m unknown command 'rollbak'`), JSON.stringify(terminal));
  // And stdout on a terminal is coloured too; --no-color turns it off.
  assert.ok(underTerminal(`${cli} releases www`, dir).includes(ESC));
  assert.ok(!underTerminal(`${cli} releases www --no-color`, dir).includes(ESC));
});
