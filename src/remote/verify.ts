/**
 * `verify --host`: every host re-hashes its release (default: its live one) where it lies, and
 * the listing is compared here with the manifest its record names. Reads only; takes no lock.
 */
import { DeployError } from '../errors.ts';
import { fleetVerifyExit, treeFromListing } from '../plan/fleet-verify.ts';
import { diffRelease, parseManifest, type Difference } from '../plan/manifest.ts';
import { releaseIdProblem } from '../plan/release-id.ts';
import { frameValue } from './facts.ts';
import { noLiveRelease } from '../ops/verify-release.ts';
import { checkIdType, checkOptionsArgument } from '../plan/validate.ts';
import { currentIdOf, FleetRun, hostError, readRootProblemOf, targetsOf, FLEET_EXAMPLE, type FleetOptions, type HostError, type HostRun } from './fleet.ts';
import { manifestFileScript, verifyScript } from './verify-script.ts';
import { missingRootError } from './host.ts';
import type { RemoteState } from './facts.ts';
import { shellWord } from '../plan/paths.ts';

export interface FleetVerifyOptions extends FleetOptions {
  /** The release to check on every host (default: each host's live one). */
  release?: string;
}

export interface FleetVerifyHost {
  host: string;
  root: string;
  /** The release checked (null when the host has none live, or was not reached). */
  release: string | null;
  /** The digest its record names, which the manifest matched. */
  digest?: string;
  /** Set once the release was hashed and compared. */
  identical?: boolean;
  /** Every path that differs from the manifest, sorted by path. */
  differences: Difference[];
  files?: number;
  dirs?: number;
  symlinks?: number;
  error?: HostError;
}

export interface FleetVerifyResult {
  /** Every host was checked and matches its manifest. */
  identical: boolean;
  /** Hosts whose release differs from its manifest. */
  differing: string[];
  /** Hosts that could not be checked. */
  unchecked: string[];
  /** The exit code the verdict earns: 0, 5 (a host differs), 1 (a host was not reached or failed), 2 (no or an untrusted manifest). */
  exitCode: number;
  hosts: FleetVerifyHost[];
}

/** The release id to check on a host, or the error that says why there is none. */
function releaseOn(h: HostRun, wanted: string | undefined): string {
  const state = h.state;
  if (!state?.rootExists) throw missingRootError(h.label, h.root);
  // A folder that is not a deploy root is refused as status and releases refuse it, in the local words and hint.
  const notRoot = readRootProblemOf(h.label, h.root, state);
  if (notRoot) throw notRoot;
  if (wanted === undefined && state.current.kind !== 'release') throw noLiveRelease(h.root, state.current, h.label, state.releases.length > 0);
  const id = wanted ?? currentIdOf(state);
  if (id === null) throw noLiveRelease(h.root, { kind: 'missing' }, h.label);
  if (!state.releases.includes(id)) {
    throw new DeployError('UNKNOWN_RELEASE', `${h.label}: release ${id} does not exist in ${h.root}/releases`, { hint: `list the releases with: atomic-deploy releases ${shellWord(h.root)} --host ${shellWord(h.label)}` });
  }
  return id;
}

/** What a host's release allows: a check, or the error that says why there is none (no manifest, or one not to be trusted). */
export type HostManifestCheck =
  | { kind: 'checked'; digest: string; differences: Difference[]; counts: { file: number; dir: number; symlink: number } }
  | { kind: 'no-manifest' | 'untrusted'; error: DeployError };

/**
 * Re-hashes release `id` on host `h` (its state as read) against the manifest its record names:
 * `verify --host`, and the check a fleet rollback makes of the release each host goes to.
 */
export async function checkHostRelease(h: HostRun, id: string, state: RemoteState): Promise<HostManifestCheck> {
  const record = state.records.get(id);
  // Both engines record it as `digest` (older fleet records as `manifest`: read as `digest` by remoteStateOf).
  const digest = record?.digest;
  const damage = state.damaged?.get(id);
  if (damage !== undefined) {
    return {
      kind: 'no-manifest',
      error: new DeployError('NO_MANIFEST', `${h.label}: release ${id} has a damaged release log record (${damage}) to prove its manifest, so nothing can be checked against it`, {
        hint: 'the release log (.atomic-deploy/releases/) was changed; deploy the build again to get a release with a trusted manifest',
      }),
    };
  }
  if (digest === undefined) {
    // As locally: a manifest file with nothing in the release log to prove it is not a release made before manifests.
    const probe = await h.remote.run(manifestFileScript(h.root, id), `reading release ${id}`);
    if (frameValue(probe, 'manifest-file') === 'yes') {
      return {
        kind: 'no-manifest',
        error: new DeployError('NO_MANIFEST', `${h.label}: release ${id} has a manifest file but ${record === undefined ? 'no release log record' : 'no digest in its release log record'} to prove it, so nothing can be checked against it`, {
          hint: 'the release log (.atomic-deploy/releases/) was changed or lost; deploy the build again to get a release with a trusted manifest',
        }),
      };
    }
    return {
      kind: 'no-manifest',
      error: new DeployError('NO_MANIFEST', `${h.label}: release ${id} has no manifest: it was made before atomic-deploy kept manifests, or by another tool`, {
        hint: `deploy the build again (atomic-deploy deploy <source> ${shellWord(h.root)} --host ${shellWord(h.label)}): every new release gets a manifest`,
      }),
    };
  }
  const frames = await h.remote.run(verifyScript(h.root, id, digest.replace(/^sha256:/, '')), `verifying release ${id}`);
  const text = frameValue(frames, 'manifest');
  const untrusted = (problem: string): HostManifestCheck => ({
    kind: 'untrusted',
    error: new DeployError('MANIFEST_UNTRUSTED', `${h.label}: the manifest of release ${id} cannot be trusted: ${problem}`, {
      hint: 'nothing can be checked against it; deploy the build again to get a release with a trusted manifest',
      details: { host: h.label, release: id, problem },
    }),
  });
  if (text === undefined) return untrusted('it is missing');
  const parsed = parseManifest(text, digest);
  if (!parsed.ok) return untrusted(parsed.problem);
  if (frameValue(frames, 'end') !== 'verify') throw new DeployError('REMOTE', `${h.label}: the listing of release ${id} ended early`);
  const counts = { file: 0, dir: 0, symlink: 0 };
  for (const e of parsed.manifest.entries) counts[e.type] += 1;
  return { kind: 'checked', digest, differences: diffRelease(parsed.manifest, treeFromListing(frames)), counts };
}

/** Checks one host; a result whose release differs is not an error (the verdict says it). */
async function verifyHost(h: HostRun, wanted: string | undefined): Promise<FleetVerifyHost> {
  const { facts, state } = await h.remote.readState();
  h.facts = facts;
  h.state = state;
  const id = releaseOn(h, wanted);
  const check = await checkHostRelease(h, id, state);
  if (check.kind !== 'checked') throw check.error;
  const { digest, differences, counts } = check;
  return { host: h.label, root: h.root, release: id, digest, identical: differences.length === 0, differences, files: counts.file, dirs: counts.dir, symlinks: counts.symlink };
}

/** Verifies the release on every host; never throws for one host's failure (it is in that host's row). */
export async function fleetVerify(root: string | undefined, options: FleetVerifyOptions): Promise<FleetVerifyResult> {
  checkOptionsArgument(options, FLEET_EXAMPLE);
  if (options.release !== undefined) {
    checkIdType(options.release);
    const problem = releaseIdProblem(options.release);
    if (problem) throw new DeployError('INVALID_RELEASE_ID', `invalid release id ${JSON.stringify(options.release)}: ${problem}`, { hint: 'list the releases with: atomic-deploy releases <root> --host <host>' });
  }
  const fleet = new FleetRun(targetsOf(options, root), options);
  const out = new Map<HostRun, FleetVerifyHost>();
  try {
    await fleet.connectAll({ ...(options.signal ? { signal: options.signal } : {}) });
    await fleet.each(
      fleet.hosts.filter((h) => !h.error),
      async (h) => {
        if (options.signal?.aborted) throw new DeployError('INTERRUPTED', `${h.label}: interrupted before it was checked`);
        const result = await verifyHost(h, options.release);
        out.set(h, result);
        fleet.step(h, result.identical ? `release ${String(result.release)} matches its manifest` : `release ${String(result.release)} differs from its manifest (${result.differences.length})`);
      },
    );
    const hosts = fleet.hosts.map((h): FleetVerifyHost => {
      const done = out.get(h);
      if (done && !h.error) return done;
      const state = h.state;
      const release = options.release ?? (state ? currentIdOf(state) : null);
      return { host: h.label, root: h.root, release, differences: [], error: h.error ?? hostError(new DeployError('INTERNAL', `${h.label}: not checked`)) };
    });
    const exitCode = fleetVerifyExit(hosts.map((h) => (h.error ? { checked: false, exitCode: new DeployError(h.error.code, '').exitCode } : { checked: true, identical: h.identical === true })));
    return {
      identical: exitCode === 0,
      differing: hosts.filter((h) => h.identical === false).map((h) => h.host),
      unchecked: hosts.filter((h) => h.error).map((h) => h.host),
      exitCode,
      hosts,
    };
  } finally {
    await fleet.close();
  }
}
