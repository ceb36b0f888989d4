// Ways to point `<root>/current` at `releases/<id>`: racy controls and correct references.
// The controls exist so that a race test can prove it is able to fail at all.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Switches `<root>/current` to `target` (a path relative to root, e.g. `releases/b`). */
export type Swapper = (root: string, target: string) => Promise<void>;

const CURRENT = 'current';

function tempName(): string {
  return `current.${process.pid}.${randomBytes(6).toString('hex')}`;
}

/** Finds a binary on PATH or in the sbin/bin dirs a non-login root shell may lack. */
export function findTool(name: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(':').filter((d) => d !== '');
  for (const dir of [...dirs, '/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** Like findTool, but a missing tool is a hard error: tests must fail, never skip. */
export function requireTool(name: string, debianPackage: string): string {
  const found = findTool(name);
  if (found === undefined) {
    throw new Error(`required tool '${name}' not found on PATH; install the Debian package '${debianPackage}'`);
  }
  return found;
}

/** Runs a command to completion; rejects with its stderr on a non-zero exit. */
export function runCommand(file: string, args: readonly string[], cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${file} ${args.join(' ')} failed (code ${String(code)}, signal ${String(signal)}): ${stderr.trim()}`));
    });
  });
}

/** RACY control: there is a window in which `current` does not exist. */
export const unlinkSymlinkSwap: Swapper = async (root, target) => {
  try {
    await unlink(join(root, CURRENT));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await symlink(target, join(root, CURRENT));
};

/** RACY control: BusyBox `ln -sfn` unlinks the old link before creating the new one. */
export const busyboxLnSfn: Swapper = async (root, target) => {
  await runCommand(requireTool('busybox', 'busybox'), ['ln', '-sfn', target, CURRENT], root);
};

/** GNU `ln -sfn`: atomic in current coreutils (temp link + rename), racy in old releases. */
export const gnuLnSfn: Swapper = async (root, target) => {
  // Absolute path so that a BusyBox `ln` earlier on PATH cannot stand in for GNU's.
  const ln = existsSync('/usr/bin/ln') ? '/usr/bin/ln' : requireTool('ln', 'coreutils');
  await runCommand(ln, ['-sfn', target, CURRENT], root);
};

/** Correct, shell style: make the link under a temp name, then `mv -T` (rename(2)) over current. */
export const lnMvT: Swapper = async (root, target) => {
  const tmp = join('.tmp', tempName());
  await mkdir(join(root, '.tmp'), { recursive: true });
  const ln = existsSync('/usr/bin/ln') ? '/usr/bin/ln' : requireTool('ln', 'coreutils');
  const mv = existsSync('/usr/bin/mv') ? '/usr/bin/mv' : requireTool('mv', 'coreutils');
  // The link text stays `releases/<id>`, which resolves relative to wherever the link ends up.
  await runCommand(ln, ['-s', target, tmp], root);
  try {
    await runCommand(mv, ['-T', tmp, CURRENT], root);
  } catch (err) {
    await rm(join(root, tmp), { force: true });
    throw err;
  }
};

/** Correct reference: symlink under a temp name, then rename(2) it over current in one step. */
export const renameSwap: Swapper = async (root, target) => {
  await mkdir(join(root, '.tmp'), { recursive: true });
  const tmp = join(root, '.tmp', tempName());
  await symlink(target, tmp);
  try {
    await rename(tmp, join(root, CURRENT));
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
};

export interface RaceRoot {
  root: string;
  /** `releases/<id>` for each release, in the order given. */
  targets: string[];
  /** File contents per release, in the same order. */
  contents: string[];
  cleanup(): Promise<void>;
}

/**
 * Builds a deploy root with one release per id, each holding `file` with `release-<id>\n`,
 * and `current -> releases/<first id>`.
 */
export async function makeRaceRoot(ids: readonly string[] = ['a', 'b'], file = 'index.html'): Promise<RaceRoot> {
  const first = ids[0];
  if (first === undefined) throw new Error('makeRaceRoot needs at least one release id');
  const root = await mkdtemp(join(tmpdir(), 'atomic-deploy-race-'));
  const targets: string[] = [];
  const contents: string[] = [];
  for (const id of ids) {
    const target = `releases/${id}`;
    const content = `release-${id}\n`;
    await mkdir(join(root, target), { recursive: true });
    await writeFile(join(root, target, file), content);
    targets.push(target);
    contents.push(content);
  }
  await mkdir(join(root, '.tmp'), { recursive: true });
  await symlink(`releases/${first}`, join(root, CURRENT));
  return {
    root,
    targets,
    contents,
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

export interface SwitchLoopResult {
  switches: number;
  elapsedMs: number;
}

/**
 * Alternates `current` between targets until both `minSwitches` and `minMs` are reached, or
 * `until` resolves (whichever the caller asked for); always ends on a valid link.
 */
export async function switchLoop(opts: {
  root: string;
  targets: readonly string[];
  swap: Swapper;
  minSwitches?: number;
  minMs?: number;
  until?: Promise<unknown>;
  maxMs?: number;
}): Promise<SwitchLoopResult> {
  const { root, targets, swap } = opts;
  if (targets.length === 0) throw new Error('switchLoop needs at least one target');
  const minSwitches = opts.minSwitches ?? 0;
  const minMs = opts.minMs ?? 0;
  // A hard ceiling so that a stuck condition cannot hang a test run.
  const maxMs = opts.maxMs ?? 120_000;
  let untilDone = false;
  opts.until?.then(
    () => {
      untilDone = true;
    },
    () => {
      untilDone = true;
    },
  );
  const start = performance.now();
  let switches = 0;
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed > maxMs) break;
    if (opts.until !== undefined) {
      if (untilDone) break;
    } else if (switches >= minSwitches && elapsed >= minMs) {
      break;
    }
    const target = targets[(switches + 1) % targets.length] as string;
    await swap(root, target);
    switches++;
  }
  return { switches, elapsedMs: performance.now() - start };
}
