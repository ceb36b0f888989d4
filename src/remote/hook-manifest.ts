/**
 * Before-switch hooks on a fleet host write into the release (a config cache, a compiled
 * autoloader), so the build's manifest no longer describes what goes live there. As the local
 * engine does, the manifest is made again after them: the host lists the release as `verify
 * --host` does (remote/script.ts hookManifestLines), this side turns the listing into entries,
 * stores the new manifest on the host and tells the waiting program its SHA-256 and the record
 * that names it. Each host gets its own (hooks may write host-specific bytes).
 */
import fs from 'node:fs';
import path from 'node:path';
import { makeScratchDir } from '../act/scratch.ts';
import { DeployError } from '../errors.ts';
import { treeFromListing } from '../plan/fleet-verify.ts';
import { diffManifests, manifestDigest, serializeManifest, treeManifest, type Manifest, type ReleaseTree } from '../plan/manifest.ts';
import { putManifestScript, readManifestScript } from './content-script.ts';
import { sendManifestDelta } from './rsync.ts';
import { remoteError, type RunningRemote, type SshHost } from './ssh.ts';

/** What the hooks left, judged against the build's manifest: nothing it holds changed, new entries, or a tree no manifest can describe. */
export type AfterHooks = { kind: 'same' } | { kind: 'remade'; manifest: Manifest; changed: number } | { kind: 'refused'; code: 'UNSUPPORTED_FILE' | 'IO'; problem: string; hint: string };

/** Pure: the manifest a release needs after its before-switch hooks, from the host's listing of it. */
export function afterHooks(build: Manifest, tree: ReleaseTree, releasePath: string): AfterHooks {
  const special = tree.special[0] ?? tree.misnamed?.[0];
  const more = tree.special.length + (tree.misnamed?.length ?? 0) - 1;
  if (special !== undefined) {
    const what = tree.special.length > 0 ? `is a ${special.kind}` : 'has a name that is not valid UTF-8';
    return {
      kind: 'refused',
      code: 'UNSUPPORTED_FILE',
      problem: `${releasePath}/${special.path} ${what}${more > 0 ? ` (and ${more} more such)` : ''}; a release can hold only files, directories and symlinks named in UTF-8`,
      hint: 'whatever wrote it into the release (a before-switch hook) must not; make it at start-up from a shared path. current is unchanged',
    };
  }
  const odd = tree.mistargeted?.[0];
  if (odd !== undefined) {
    return { kind: 'refused', code: 'UNSUPPORTED_FILE', problem: `${releasePath}/${odd.path} is a symlink whose target is not valid UTF-8`, hint: 'whatever wrote it into the release (a before-switch hook) must not. current is unchanged' };
  }
  const closed = tree.unreadable?.[0];
  if (closed !== undefined) {
    return { kind: 'refused', code: 'IO', problem: `${releasePath}/${closed.path} cannot be read to make the release's manifest after its before-switch hooks`, hint: 'hooks must leave the release readable by the deploying user. current is unchanged' };
  }
  const found = treeManifest(tree);
  const changed = diffManifests(build, found).length;
  return changed === 0 ? { kind: 'same' } : { kind: 'remade', manifest: found, changed };
}

/**
 * Stores `text` as `<stage>/manifest.json` on the host: as an rsync delta against a copy of the
 * release's manifest (the build's, which the new one differs from in the hooks' lines), else whole.
 * The host program checks what was stored by its SHA-256 either way.
 */
async function storeRemade(ssh: SshHost, root: string, id: string, stage: string, text: string): Promise<number | undefined> {
  const seeded = await ssh.exec(readManifestScript(root, id, { hashOnly: true, seed: stage })).catch(() => undefined);
  if (seeded?.code === 0) {
    const dir = makeScratchDir('remade');
    try {
      const file = path.join(dir, 'manifest.json');
      fs.writeFileSync(file, text);
      return await sendManifestDelta(ssh, file, root, stage);
    } catch {
      // The whole file below.
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  const stored = ssh.start(putManifestScript(root, stage));
  stored.child.stdin?.end(text);
  const result = await stored.done;
  if (result.code !== 0) throw remoteError(ssh.label, result, 'storing the manifest made after the before-switch hooks');
  return Buffer.byteLength(text);
}

/**
 * Drives the host program from its `hooked` frame to its wait for `ready`: reads the listing,
 * stores the manifest made from it when the hooks changed anything, and answers. Returns the
 * digest the host's release now has (with the bytes sent to store a manifest made again), or
 * undefined where the host could not list the release (its record keeps the build's manifest; a
 * warning says so). On refusal it stops the program and throws.
 */
export async function settleHookManifest(
  ssh: SshHost,
  session: RunningRemote,
  o: { root: string; id: string; stage: string; build: Manifest; buildDigest: string; record: object; warn: (message: string) => void },
): Promise<{ digest: string; sent?: number } | undefined> {
  const listed = await session.waitFor(['listed', 'error']).catch(() => undefined);
  // An error frame, or the end of the program: the caller reads why from awaitArmed.
  if (listed?.tag !== 'listed') return { digest: o.buildDigest };
  if (listed.value !== 'yes') {
    session.send('same');
    o.warn(`no stat -c or sha256sum on the host: the manifest of release ${o.id} is the build's, so \`verify\` reports what the before-switch hooks wrote`);
    return undefined;
  }
  // Any word but `same` or `manifest` ends the waiting program before it arms.
  const stop = async (): Promise<void> => {
    session.send('abort');
    session.end();
    await session.done;
  };
  const from = session.frames.findIndex((f) => f.tag === 'hooked');
  const verdict = afterHooks(o.build, treeFromListing(session.frames.slice(from + 1)), `${o.root}/releases/${o.id}`);
  if (verdict.kind === 'refused') {
    await stop();
    throw new DeployError(verdict.code, `${ssh.label}: ${verdict.problem}`, { hint: verdict.hint, details: { host: ssh.label } });
  }
  if (verdict.kind === 'same') {
    session.send('same');
    return { digest: o.buildDigest };
  }
  const text = serializeManifest(verdict.manifest.entries, verdict.manifest.root);
  const digest = manifestDigest(text);
  let sent: number | undefined;
  try {
    sent = await storeRemade(ssh, o.root, o.id, o.stage, text);
  } catch (error) {
    await stop();
    throw error;
  }
  session.send(`manifest ${digest.replace(/^sha256:/, '')}`);
  session.send(JSON.stringify({ ...o.record, digest }));
  return sent === undefined ? { digest } : { digest, sent };
}
