// The CLI the benchmarks run: a private copy of dist/ taken once per run, so that a rebuild of
// dist/ while a long benchmark runs (tests rebuild it) cannot swap the program being measured.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

let snapshot: string | undefined;

/** Path of the copied `dist/cli/bin.js`; dependencies resolve through a link to the repo's node_modules. */
export function benchBin(): string {
  if (snapshot === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'atomic-deploy-bench-dist-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    cpSync(join(REPO, 'dist'), join(dir, 'dist'), { recursive: true, verbatimSymlinks: true });
    // bin.js reads its version from ../../package.json.
    cpSync(join(REPO, 'package.json'), join(dir, 'package.json'));
    symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
    const bin = join(dir, 'dist', 'cli', 'bin.js');
    // Fail now, not an hour into the run, if the copy cannot start.
    execFileSync(process.execPath, [bin, 'status', '--help'], { stdio: 'ignore' });
    snapshot = bin;
  }
  return snapshot;
}

/**
 * The command package.json's `bin` installs (dist/bin/atomic-deploy.cjs: the launcher, then the
 * CLI bundled by esbuild), in the same private copy: what a user's `atomic-deploy` runs.
 */
export function installedBin(): string {
  return join(dirname(dirname(benchBin())), 'bin', 'atomic-deploy.cjs');
}
