// The small build the hardlink tests redeploy (120 files in 6 directories), and a CLI run under
// strace whose log tells which system calls touched one release's files.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { BIN, jsonOf, writeTree } from './cli.ts';
import { requireTool } from './swappers.ts';

export const BUILD_FILES = 120;

/** `d<i % 6>/f<i>.js` for i < BUILD_FILES, each naming its own index; with `times`, every file's atime and mtime set to it. */
export function hardlinkBuild(dir: string, times?: Date): string {
  const files: Record<string, string> = {};
  for (let i = 0; i < BUILD_FILES; i++) files[`d${i % 6}/f${i}.js`] = `export const v = "A${i}";\n`;
  writeTree(dir, files);
  if (times) for (let i = 0; i < BUILD_FILES; i++) fs.utimesSync(path.join(dir, `d${i % 6}/f${i}.js`), times, times);
  return dir;
}

export interface TracedRun {
  /** The strace lines that name a path under `<root>/releases/<id>/`. */
  lines: string[];
  json: { linked?: number; copied?: number };
}

/** Runs the CLI (which must succeed) under `strace -f -e trace=<trace>` and keeps the calls on release `id`'s files. */
export function tracedCli(root: string, id: string, trace: string, args: string[]): TracedRun {
  const strace = requireTool('strace', 'strace');
  const log = path.join(path.dirname(root), `strace-${id}-${process.hrtime.bigint()}.log`);
  const run = spawnSync(strace, ['-f', '-qq', '-e', `trace=${trace}`, '-o', log, process.execPath, BIN, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(run.status, 0, run.stderr);
  const needle = `${path.join(root, 'releases', id)}/`;
  return {
    lines: fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.includes(needle)),
    json: jsonOf({ code: run.status, signal: null, stdout: run.stdout, stderr: run.stderr }),
  };
}
