import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DeployError, errnoOf } from '../errors.ts';
import { fsyncDir } from './durable.ts';
import { releasePath, type Layout } from './layout.ts';
import { readCurrent } from './switch.ts';

/** Names of the directories under `releases/`. */
export async function listReleaseDirs(layout: Layout): Promise<string[]> {
  try {
    const entries = await fs.promises.readdir(layout.releases, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return [];
    throw error;
  }
}

/**
 * The only way a release is ever deleted. It re-reads `current` at the last moment and
 * refuses the live release and any protected one (the rollback target); the release is
 * renamed into `.tmp/` first, so a half-deleted tree never sits under `releases/`.
 */
export async function removeRelease(
  layout: Layout,
  id: string,
  protect: ReadonlySet<string>,
  options: { durable: boolean; beforeDelete?: () => Promise<void> },
): Promise<void> {
  const current = await readCurrent(layout);
  const liveId = current.kind === 'release' || current.kind === 'dangling' ? current.id : undefined;
  if (id === liveId || protect.has(id)) {
    throw new DeployError('INTERNAL', `refusing to delete release ${id}: it is ${id === liveId ? 'current' : 'protected'}`);
  }
  const trash = path.join(layout.tmp, `trash.${id}.${randomBytes(6).toString('hex')}`);
  await fs.promises.mkdir(layout.tmp, { recursive: true });
  try {
    await fs.promises.rename(releasePath(layout, id), trash);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return;
    throw error;
  }
  if (options.durable) await fsyncDir(layout.releases);
  await options.beforeDelete?.();
  await fs.promises.rm(trash, { recursive: true, force: true });
}
