import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

function git(cwd: string, args: string[]): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('git', args, { cwd, timeout: 10_000, maxBuffer: 16 << 20 }, (error, stdout) => {
      resolve(error ? undefined : stdout);
    });
  });
}

function insideWorkTree(dir: string): boolean {
  for (let d = dir; ; d = path.dirname(d)) {
    if (fs.existsSync(path.join(d, '.git'))) return true;
    if (path.dirname(d) === d) return false;
  }
}

/** The commit and dirty flag of the git work tree holding `dir`, if any (git is optional). */
export async function gitInfo(dir: string): Promise<{ commit: string; dirty: boolean } | undefined> {
  if (!insideWorkTree(dir)) return undefined;
  const [head, status] = await Promise.all([git(dir, ['rev-parse', 'HEAD']), git(dir, ['status', '--porcelain', '--', '.'])]);
  if (!head) return undefined;
  return { commit: head.trim(), dirty: (status ?? '').trim().length > 0 };
}
