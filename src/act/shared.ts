import fs from 'node:fs';
import path from 'node:path';
import { DeployError, errnoOf } from '../errors.ts';
import type { SharedLink } from '../plan/shared.ts';
import type { Layout } from './layout.ts';

/** Shared paths whose target under `<root>/shared/` does not exist (links are followed). */
export function missingSharedTargets(layout: Layout, links: readonly SharedLink[]): string[] {
  return links
    .filter((link) => {
      try {
        fs.statSync(path.join(layout.shared, link.path));
        return false;
      } catch (error) {
        const code = errnoOf(error);
        if (code === 'ENOENT' || code === 'ENOTDIR') return true;
        throw error;
      }
    })
    .map((link) => link.path);
}

export function sharedMissingError(layout: Layout, missing: readonly string[]): DeployError {
  const list = missing.map((p) => path.join(layout.shared, p)).join(', ');
  return new DeployError('SHARED_MISSING', `shared ${missing.length === 1 ? 'target' : 'targets'} missing: ${list}`, {
    hint: 'create them (a file such as .env must hold its content), or pass --shared-create to make missing ones as empty directories',
    details: { missing },
  });
}

/** Makes missing shared targets as empty directories (`--shared-create`); returns the ones made. */
export async function createSharedTargets(layout: Layout, links: readonly SharedLink[]): Promise<string[]> {
  const missing = missingSharedTargets(layout, links);
  for (const p of missing) await fs.promises.mkdir(path.join(layout.shared, p), { recursive: true, mode: 0o755 });
  return missing;
}

/**
 * Puts the shared links into a staged release. Runs before the release is made durable and
 * renamed into `releases/`, so the links are part of the release from its first moment there.
 * Returns the directories it made (the fsync fallback must sync them too).
 */
export async function linkShared(staging: string, links: readonly SharedLink[]): Promise<string[]> {
  const made: string[] = [];
  for (const link of links) {
    for (const dir of link.mkdirs) {
      const full = path.join(staging, dir);
      if (made.includes(full)) continue;
      await fs.promises.mkdir(full, { mode: 0o755 });
      made.push(full);
    }
    await fs.promises.symlink(link.linkText, path.join(staging, link.path));
  }
  return made;
}
