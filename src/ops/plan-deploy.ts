import { displayUrl } from '../act/health.ts';
import fs from 'node:fs';
import { releasePath, type Layout } from '../act/layout.ts';
import { entryNotRelease, listReleaseDirs } from '../act/releases.ts';
import { sharedTargetKind } from '../act/shared.ts';
import { listRecordIds, nextSeq, readRecords } from '../act/state.ts';
import { currentIdOrThrow, readCurrent } from '../act/switch.ts';
import { DeployError } from '../errors.ts';
import { nextReleaseId, releaseIdProblem } from '../plan/release-id.ts';
import { sharedTargetsToCreate, type ContentsPlan } from './contents.ts';
import { missingCurrentWarning, type DeployOptions, type Validated } from './deploy.ts';
import { decidePrune, describeDecision, type KeptRelease, type PrunedRelease } from './prune.ts';
import { shellWord } from '../plan/paths.ts';
import { lockNotes, writeProblem } from './root.ts';
import { recoveryNotes, viewsAfterRecovery } from './recover.ts';
import { DEFAULT_RELOAD_TIMEOUT_MS, hasReloads } from './serving.ts';
import { staleWaitMs, type StaleMode } from '../plan/serving.ts';

/** What `deploy` would do, worked out without changing anything on disk (not even the lock). */
export interface DeployPlan {
  /** Always true: tells a plan from a deploy's result in JSON. */
  dryRun: true;
  /** The id the deploy would use now; another deploy starting first would take it. */
  release: string;
  path: string;
  root: string;
  source: string;
  /** The release current points to now: the rollback target after the deploy. */
  previous: string | null;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  strategy: NonNullable<DeployOptions['strategy']>;
  fsync: boolean;
  shared: SharedLinkPlan[];
  hooks: { beforeSwitch: string[]; afterSwitch: string[]; timeoutMs?: number };
  healthCheck: { command?: string; url?: string; timeoutMs?: number } | null;
  /** What would be reloaded after the switch (checked already: units known, pid files naming a master), or null. */
  reload: { units: string[]; phpFpm: string[]; timeoutMs: number } | null;
  /** The stale-process policy after the switch: the mode, and how long processes on the release left get to go. */
  stale: { mode: StaleMode; waitMs: number };
  /** With keep: what prune would remove after the switch, and why each kept release stays. */
  prune: { keep: number; remove: PrunedRelease[]; kept: KeptRelease[] } | null;
  /** Things the real deploy would meet first: a held lock, an interrupted deploy to recover. */
  notes: string[];
}

export interface SharedLinkPlan {
  path: string;
  /** `releases/<id>/<path>`, relative to the root. */
  link: string;
  /** What the link holds. */
  target: string;
  /** The target is missing and would be made empty (`sharedCreate`). */
  create: boolean;
  /** Declared, or inferred from the build or the existing target. */
  type?: 'file' | 'dir';
  /** The source holds this path and the link replaces it (`sharedReplace`). */
  replaces: boolean;
}

function sharedTargetKindOf(layout: Layout, p: string): 'file' | 'dir' | undefined {
  const kind = sharedTargetKind(layout, p);
  return kind === 'file' || kind === 'dir' ? kind : undefined;
}

/** Works out the plan for a validated deploy; reads the root, writes nothing. */
export async function buildDeployPlan(validated: Validated, options: DeployOptions, contents: ContentsPlan): Promise<DeployPlan> {
  const { layout, sourceReal, scan } = validated;
  const exists = fs.existsSync(layout.root);
  const previous = exists ? journalablePrevious(currentIdOrThrow(await readCurrent(layout), layout), layout) : null;
  const dirs = exists ? await listReleaseDirs(layout) : [];
  const records = exists ? await readRecords(layout, dirs) : new Map();
  const existingIds = new Set([...dirs, ...(exists ? await listRecordIds(layout) : [])]);
  const id = options.releaseId ?? nextReleaseId(existingIds, new Date());
  if (existingIds.has(id)) {
    throw releaseIdTaken(layout, id, previous);
  }

  const notes: string[] = [];
  const unwritable = writeProblem(layout);
  if (unwritable !== undefined) notes.push(unwritable);
  notes.push(...(await lockNotes(layout, 'deploy', options.waitMs ?? 0)));
  // The plan is the deploy's after its recovery: what that would do first, said.
  const planned = exists ? await viewsAfterRecovery(layout) : { views: [], recovering: [] };
  notes.push(...recoveryNotes(planned.recovering, 'deploy'));
  const missed = previous === null ? missingCurrentWarning(records) : undefined;
  if (missed !== undefined) notes.push(missed.replace(/^current was missing/, 'current is missing').replace(' is kept as', ' would be kept as'));
  // The deploy says it as it starts copying (ops/contents.ts): the plan says it too.
  if (contents.strategy === 'hardlink' && previous !== null && contents.beforeSwitchHooks) {
    notes.push(`hardlink: before-switch hooks would run in the new release, so no file would be linked from release ${previous} (a hook writing into a linked file would write into the live release): every file would be copied, or cloned where the filesystem can`);
  }

  const creates = new Map(sharedTargetsToCreate(layout, contents.shared, options.sharedCreate === true).map((c) => [c.path, c.type]));
  const shared = contents.shared.map((link) => ({
    path: link.path,
    type: creates.get(link.path) ?? link.type ?? sharedTargetKindOf(layout, link.path),
    link: `releases/${id}/${link.path}`,
    target: link.linkText,
    create: creates.has(link.path),
    replaces: link.replaces,
  }));

  let prune: DeployPlan['prune'] = null;
  if (options.keep !== undefined) {
    const { decision } = await decidePrune(layout, {
      keep: options.keep,
      currentId: id,
      planned,
      // Its record will name the release live now: prune keeps that one (live before current), as the deploy's own prune does.
      extra: { id, seq: nextSeq(records), status: 'complete', previous, createdAt: new Date().toISOString() },
    });
    const described = describeDecision(decision);
    prune = { keep: options.keep, remove: described.removed, kept: described.kept };
  }

  return {
    dryRun: true,
    release: id,
    path: releasePath(layout, id),
    root: layout.root,
    source: sourceReal,
    previous,
    files: scan.files,
    dirs: scan.dirs,
    symlinks: scan.symlinks,
    bytes: scan.bytes,
    strategy: contents.strategy,
    fsync: options.fsync !== false,
    shared,
    hooks: { beforeSwitch: options.hooks?.beforeSwitch ?? [], afterSwitch: options.hooks?.afterSwitch ?? [], timeoutMs: options.hooks?.timeoutMs },
    healthCheck: options.healthCheck?.command || options.healthCheck?.url ? { ...options.healthCheck, ...(options.healthCheck.url === undefined ? {} : { url: displayUrl(options.healthCheck.url) }) } : null,
    reload: hasReloads(options) ? { units: options.reload?.units ?? [], phpFpm: options.reload?.phpFpm ?? [], timeoutMs: options.reload?.timeoutMs ?? DEFAULT_RELOAD_TIMEOUT_MS } : null,
    stale: { mode: options.stale ?? 'warn', waitMs: staleWaitMs(options.stale ?? 'warn', options.staleWaitMs) },
    prune,
    notes,
  };
}

/**
 * The live release, as the deploy's journal will name it. Another tool's release may have a name
 * that is no release id (a newline, a control character): recovery would discard such a journal
 * as garbage, and a deploy cut off before its switch would then never be undone. Refused before
 * anything is written.
 */
export function journalablePrevious(previous: string | null, layout: Layout): string | null {
  const problem = previous === null ? undefined : releaseIdProblem(previous);
  if (previous === null || problem === undefined) return previous;
  throw new DeployError('INVALID_ROOT', `current points to releases/${previous}, whose name a deploy cannot record as the release it replaces: ${problem}`, {
    // A rename of the live tree would leave current dangling: a copy under a plain name, switched to, then the old one removed.
    hint: `copy it under a plain name (cp -a <that release> ${shellWord(layout.releases)}/<new name>), switch to the copy (atomic-deploy rollback ${shellWord(layout.root)} --to <new name>), then deploy`,
  });
}

/**
 * Why a release id cannot be used: a release of that name, something else under that name in
 * releases/, or a release pruned since (its record stays: ids are never reused). Each says what to do.
 */
function isEmptyDir(dir: string): boolean {
  try {
    return fs.readdirSync(dir).length === 0;
  } catch {
    return false;
  }
}

/** `currentId`: the release live now (a taken id that is live gets no rollback hint). */
export function releaseIdTaken(layout: Layout, id: string, currentId: string | null): DeployError {
  const at = releasePath(layout, id);
  const st = fs.lstatSync(at, { throwIfNoEntry: false });
  if (st?.isDirectory() && isEmptyDir(at)) {
    return new DeployError('RELEASE_EXISTS', `${at} is taken by an empty directory, not a release`, {
      hint: 'pick another release id, or remove that empty directory',
    });
  }
  if (st?.isDirectory()) {
    // Already live (two deploys racing with one id, the other won): no rollback to offer.
    const live = currentId === id;
    return new DeployError('RELEASE_EXISTS', `release ${id} already exists in ${layout.releases}${live ? ', and is live' : ''}`, {
      hint: live ? 'release ids are never reused: pick a new id to deploy this build again' : `release ids are never reused: pick a new id, or switch to it with: atomic-deploy rollback ${shellWord(layout.root)} --to ${shellWord(id)}`,
    });
  }
  if (st !== undefined) {
    const what = entryNotRelease(at) ?? 'something';
    return new DeployError('RELEASE_EXISTS', `${at} is taken by ${what}, not a release directory`, {
      hint: 'pick another release id, or move that entry out of releases/',
    });
  }
  return new DeployError('RELEASE_EXISTS', `release id ${id} was used before: that release was pruned, and its record stays in the release log`, {
    hint: 'release ids are never reused: pick a new id',
  });
}
