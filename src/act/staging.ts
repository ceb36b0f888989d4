import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DeployError, errnoOf } from '../errors.ts';
import type { Layout } from './layout.ts';

/**
 * Where staging copies and trash live. A release enters and leaves `releases/` by `rename(2)`,
 * which fails with EXDEV across mounts: when `releases/` is another filesystem (or a bind mount)
 * than `.tmp/`, they go inside `releases/` under hidden names, which are never release ids.
 */
export interface StagingArea {
  dir: string;
  /** '' in `.tmp/`; '.' inside `releases/`. */
  prefix: '' | '.';
}

/** Decides the staging area of a root whose `.tmp/` and `releases/` exist (else `.tmp/`, as always). */
export async function stagingArea(layout: Layout): Promise<StagingArea> {
  return (await crossesMount(layout.tmp, layout.releases)) ? { dir: layout.releases, prefix: '.' } : { dir: layout.tmp, prefix: '' };
}

/** `<area>/[.]stage.<id>.<12 hex>`: the staging copy of release `id`. */
export function stagePath(area: StagingArea, id: string): string {
  return path.join(area.dir, `${area.prefix}stage.${id}.${randomBytes(6).toString('hex')}`);
}

/** `<area>/[.]trash.<id>.<12 hex>`: where a removed release waits to be deleted. */
export function trashPath(area: StagingArea, id: string): string {
  return path.join(area.dir, `${area.prefix}trash.${id}.${randomBytes(6).toString('hex')}`);
}

/**
 * Refuses a root whose `.tmp/` is another mount than the root: the lock and the switch are renames
 * from `.tmp/` into the root, which would fail there with EXDEV (exit 2, before anything is written).
 */
export async function assertTmpOnRoot(layout: Layout): Promise<void> {
  if (!(await crossesMount(layout.tmp, layout.root))) return;
  throw new DeployError('INVALID_ROOT', `${layout.tmp} is on another filesystem than ${layout.root}: the lock and the switch are renames from it into the root`, {
    hint: `make ${layout.tmp} a plain directory of the root (releases/ may be a mount of its own)`,
  });
}

async function crossesMount(from: string, to: string): Promise<boolean> {
  const [a, b] = await Promise.all([fs.promises.stat(from).catch(() => undefined), fs.promises.stat(to).catch(() => undefined)]);
  if (!a || !b) return false;
  if (a.dev !== b.dev) return true;
  // A bind mount keeps the device number. Linux answers EXDEV for a rename between two mounts
  // before it looks the source name up, so a name that exists nowhere tells without writing.
  const probe = `.mount-probe.${randomBytes(6).toString('hex')}`;
  try {
    await fs.promises.rename(path.join(from, probe), path.join(to, probe));
  } catch (error) {
    return errnoOf(error) === 'EXDEV';
  }
  // Someone made that random name meanwhile: put it back where it was.
  await fs.promises.rename(path.join(to, probe), path.join(from, probe)).catch(() => undefined);
  return false;
}
