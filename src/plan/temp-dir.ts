/**
 * What a failure to make a private directory in the temp dir means (the signature check, an
 * artifact's local stage, ssh control sockets, a fleet deploy's lists): the temp dir is the
 * environment's (TMPDIR), not the deploy root's, and is named as such. Pure.
 */
import { DeployError } from '../errors.ts';

/** The variable Node's os.tmpdir() took `base` from (TMPDIR, then TMP, then TEMP), if one did. */
export function tempDirVariable(base: string, env: NodeJS.ProcessEnv): string | undefined {
  for (const name of ['TMPDIR', 'TMP', 'TEMP']) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    // os.tmpdir() takes the first one set, its trailing slash removed.
    return value.replace(/(?<=.)\/+$/, '') === base ? name : undefined;
  }
  return undefined;
}

const PROBLEMS: Record<string, string> = {
  ENOENT: 'it does not exist',
  ENOTDIR: 'it is not a directory',
  EACCES: 'this user may not write it',
  EPERM: 'this user may not write it',
  EROFS: 'it is on a read-only mount',
};

/**
 * The error for a temp dir `base` that refused a directory. A temp dir given by TMPDIR (or TMP,
 * TEMP) that is missing, no directory, read-only or not this user's to write is the caller's
 * setting: USAGE (exit 2), before anything was made. Full, it is NO_SPACE; /tmp itself broken, IO.
 */
export function tempDirError(base: string, errno: string | undefined, reason: string, env: NodeJS.ProcessEnv, cause?: unknown): DeployError {
  const variable = tempDirVariable(base, env);
  const where = `cannot make a temporary directory in ${base}${variable === undefined ? '' : ` (${variable})`}`;
  const elsewhere = variable === undefined ? 'set TMPDIR to a directory this user may write' : `set ${variable} to a directory this user may write, or unset it to use /tmp`;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return new DeployError('NO_SPACE', `${where}: no space left on its device`, { cause, hint: `free space in ${base}, or set ${variable ?? 'TMPDIR'} to a directory on another filesystem` });
  }
  const problem = errno === undefined ? undefined : PROBLEMS[errno];
  if (problem === undefined) return new DeployError('IO', `${where}: ${reason}`, { cause, hint: elsewhere });
  return new DeployError(variable === undefined ? 'IO' : 'USAGE', `${where}: ${problem}`, { cause, hint: elsewhere });
}
