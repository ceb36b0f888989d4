// What must hold in a deploy root whatever happened to the last command: the checks shared by
// the crash, signal, concurrency and fault campaigns.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { writeTree } from './cli.ts';

/** Every entry of a tree: `d` for a directory, `f <sha256> <mode>` for a file, `l <target>` for a link. */
export type Manifest = Map<string, string>;

export function manifestOf(dir: string): Manifest {
  const out: Manifest = new Map();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const full = path.join(dir, childRel);
      const st = fs.lstatSync(full);
      if (st.isSymbolicLink()) out.set(childRel, `l ${fs.readlinkSync(full)}`);
      else if (st.isDirectory()) {
        out.set(childRel, `d ${(st.mode & 0o7777).toString(8)}`);
        walk(childRel);
      } else if (st.isFile()) {
        const sum = createHash('sha256').update(fs.readFileSync(full)).digest('hex');
        out.set(childRel, `f ${sum} ${(st.mode & 0o7777).toString(8)}`);
      } else out.set(childRel, 'special');
    }
  };
  walk('');
  return out;
}

export function sameManifest(a: Manifest, b: Manifest): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

/** The first difference between two manifests, for an assertion message. */
export function manifestDiff(actual: Manifest, expected: Manifest): string {
  for (const [k, v] of expected) if (actual.get(k) !== v) return `${k}: expected ${v}, got ${actual.get(k) ?? 'nothing'}`;
  for (const k of actual.keys()) if (!expected.has(k)) return `${k}: unexpected`;
  return 'identical';
}

/**
 * A source tree with `files` files in `dirs` directories, an empty directory, an executable,
 * a relative link and a link pointing outside (kept verbatim, never followed). `tag` makes the
 * contents of two sources differ in every file.
 */
export function makeSource(dir: string, tag: string, options: { files?: number; dirs?: number; links?: boolean } = {}): string {
  const files = options.files ?? 60;
  const dirs = options.dirs ?? 6;
  const tree: Record<string, string> = { 'index.html': `<h1>${tag}</h1>\n`, version: `${tag}\n` };
  for (let i = 0; i < files; i++) tree[`d${i % dirs}/f${i}.txt`] = `${tag} ${i} ${'x'.repeat((i * 37) % 900)}\n`;
  writeTree(dir, tree);
  fs.mkdirSync(path.join(dir, 'empty'));
  fs.writeFileSync(path.join(dir, 'run.sh'), `#!/bin/sh\necho ${tag}\n`, { mode: 0o755 });
  if (options.links !== false) {
    fs.symlinkSync('index.html', path.join(dir, 'home.html'));
    fs.symlinkSync('/etc/passwd', path.join(dir, 'passwd-link'));
  }
  return dir;
}

/** Temp names that only an operation in flight may leave: none may survive a completed command. */
export function leftovers(root: string): string[] {
  const found: string[] = [];
  for (const name of readdirOr(path.join(root, '.tmp'))) {
    if (/^(current|stage|trash|link|deleting)\./.test(name)) found.push(`.tmp/${name}`);
  }
  // Where staging copies and trash go when releases/ is another mount than .tmp/.
  for (const name of readdirOr(path.join(root, 'releases'))) {
    if (/^\.(stage|trash)\./.test(name)) found.push(`releases/${name}`);
  }
  if (fs.existsSync(path.join(root, '.atomic-deploy', 'journal.json'))) found.push('.atomic-deploy/journal.json');
  return found;
}

/** Whether the lock holder a root's lock names has gone (or no lock is held): its `pid` file's process. */
export function holderGone(dir: string): boolean {
  const pidFile = path.join(dir, '.deploy.lock', 'pid');
  if (!fs.existsSync(pidFile)) return true;
  try {
    process.kill(Number(fs.readFileSync(pidFile, 'utf8').trim()), 0);
    return false;
  } catch {
    return true;
  }
}

/** Waits until `cond` holds, checking every 25 ms; fails naming `what` after `timeoutMs`. */
export async function until(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function lockExists(root: string): boolean {
  try {
    fs.lstatSync(path.join(root, '.deploy.lock'));
    return true;
  } catch {
    return false;
  }
}

function readdirOr(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

export interface RootCheck {
  /** Manifests of every source ever deployed here: a release must match one of them. */
  sources: readonly Manifest[];
  /** Release ids that must still exist (current before the command, its rollback target). */
  keep?: readonly string[];
  /** The only ids `current` may point to now, if known. */
  currentIn?: readonly string[];
  /** After a completed command: no temp link, staging copy, trash, journal or lock. */
  clean?: boolean;
  /** With `clean`, after a signal: trash may remain (a signal stops the delete of retired releases; recovery finishes it, docs/lifecycle.md). */
  trashAllowed?: boolean;
  /** Top-level names a release may hold as links to shared/ on top of its source. */
  sharedLinks?: readonly string[];
  /** After recovery: no manifest left for a release that was never placed. */
  recovered?: boolean;
}

export interface RootState {
  current: string | null;
  releases: string[];
}

/**
 * Checks a root and returns what is wrong (empty when all holds): current resolves to a
 * complete release, every directory under releases/ is a complete release, kept releases exist.
 */
export function checkRoot(root: string, check: RootCheck): { problems: string[]; state: RootState } {
  const problems: string[] = [];
  // Hidden names are staging copies and trash (releases/ on another mount), never releases.
  const releases = readdirOr(path.join(root, 'releases')).filter((n) => !n.startsWith('.')).sort();
  let current: string | null = null;
  try {
    const target = fs.readlinkSync(path.join(root, 'current'));
    const parts = target.split('/');
    if (parts.length !== 2 || parts[0] !== 'releases') problems.push(`current -> ${target} is not releases/<id>`);
    current = parts[parts.length - 1] ?? null;
    if (!fs.statSync(path.join(root, 'current')).isDirectory()) problems.push('current does not resolve to a directory');
  } catch (error) {
    problems.push(`current does not resolve: ${(error as Error).message}`);
  }
  if (current !== null && !releases.includes(current)) problems.push(`current -> ${current}, which is not under releases/`);
  if (current !== null && check.currentIn && !check.currentIn.includes(current)) {
    problems.push(`current -> ${current}, expected one of ${check.currentIn.join(', ')}`);
  }
  for (const id of releases) {
    const m = manifestOf(path.join(root, 'releases', id));
    for (const name of check.sharedLinks ?? []) if (m.get(name)?.startsWith('l ')) m.delete(name);
    if (!check.sources.some((s) => sameManifest(m, s))) {
      const closest = check.sources[0] ? manifestDiff(m, check.sources[0]) : '';
      problems.push(`releases/${id} matches no deployed source (${m.size} entries; vs first source: ${closest})`);
    }
  }
  problems.push(...manifestProblems(root, releases, check.clean === true || check.recovered === true));
  for (const id of check.keep ?? []) if (!releases.includes(id)) problems.push(`release ${id} was removed`);
  if (check.clean) {
    const left = leftovers(root).filter((name) => !(check.trashAllowed === true && /^(\.tmp\/trash|releases\/\.trash)\./.test(name)));
    if (left.length > 0) problems.push(`leftovers: ${left.join(', ')}`);
    if (lockExists(root)) problems.push('the lock is still there');
  }
  return { problems, state: { current, releases } };
}

/** A release manifest in the harness's own terms (checked against manifestOf, computed here independently). */
function manifestFileOf(text: string): Manifest {
  const out: Manifest = new Map();
  const parsed = JSON.parse(text) as { entries: { path: string; type: string; mode?: number; sha256?: string; target?: string }[] };
  for (const e of parsed.entries) {
    if (e.type === 'dir') out.set(e.path, `d ${(e.mode ?? 0).toString(8)}`);
    else if (e.type === 'file') out.set(e.path, `f ${e.sha256 ?? ''} ${(e.mode ?? 0).toString(8)}`);
    else out.set(e.path, `l ${e.target ?? ''}`);
  }
  return out;
}

/**
 * Every release whose record names a digest has that manifest, byte-exact, describing the tree
 * exactly; with `orphans`, no manifest is left whose release neither exists nor has a record.
 */
export function manifestProblems(root: string, releases: readonly string[], orphans: boolean): string[] {
  const problems: string[] = [];
  const dir = path.join(root, '.atomic-deploy', 'manifests');
  for (const id of releases) {
    let record: { digest?: string } | undefined;
    try {
      record = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', `${id}.json`), 'utf8')) as { digest?: string };
    } catch {
      continue;
    }
    if (record.digest === undefined) continue;
    let text: string;
    try {
      text = fs.readFileSync(path.join(dir, `${id}.json`), 'utf8');
    } catch {
      problems.push(`release ${id}: its record names a manifest, and there is none`);
      continue;
    }
    const digest = `sha256:${createHash('sha256').update(text).digest('hex')}`;
    if (digest !== record.digest) problems.push(`release ${id}: the manifest's digest is not the record's`);
    const diff = manifestDiff(manifestOf(path.join(root, 'releases', id)), manifestFileOf(text));
    if (diff !== 'identical') problems.push(`release ${id}: the tree differs from its manifest (${diff})`);
  }
  if (orphans) {
    for (const name of readdirOr(dir)) {
      const id = name.replace(/(\.stat)?\.json$/, '');
      if (!releases.includes(id) && !fs.existsSync(path.join(root, '.atomic-deploy', 'releases', `${id}.json`))) problems.push(`manifests/${name} has no release`);
    }
  }
  return problems;
}

/** The release a plain rollback would go to: the newest release before current (by log order). */
export function previousOf(root: string, current: string | null): string | null {
  if (current === null) return null;
  const logDir = path.join(root, '.atomic-deploy', 'releases');
  const seqs = readdirOr(logDir)
    .filter((n) => n.endsWith('.json'))
    .map((n) => JSON.parse(fs.readFileSync(path.join(logDir, n), 'utf8')) as { id: string; seq?: number; status?: string })
    .filter((r) => fs.existsSync(path.join(root, 'releases', r.id)))
    .sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
  const at = seqs.findIndex((r) => r.id === current);
  for (let i = at - 1; i >= 0; i--) {
    const r = seqs[i];
    if (r && r.status !== 'failed' && r.status !== 'rolled-back') return r.id;
  }
  return null;
}

/** A pid that belonged to a process which has exited (and is not reused this quickly). */
export async function deadPid(): Promise<number> {
  const { spawn } = await import('node:child_process');
  const child = spawn('true', [], { stdio: 'ignore' });
  const pid = child.pid;
  await new Promise((resolve) => child.on('exit', resolve));
  if (pid === undefined) throw new Error('could not start true(1)');
  return pid;
}

/** Milliseconds, uniformly random in [min, max). */
export function randomBetween(min: number, max: number): number {
  return min + Math.random() * (max - min);
}

/**
 * Everything under a directory, for "nothing changed" checks: names, types, modes, owners,
 * contents (hashed), link targets; with `times`, directory mtimes too, which show even an entry
 * made and removed again. Special files are listed, never opened.
 */
export function treeSnapshot(dir: string, options: { times?: boolean } = {}): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const full = path.join(dir, rel);
    const st = fs.lstatSync(full);
    const meta = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    if (st.isSymbolicLink()) out.push(`${rel} -> ${fs.readlinkSync(full)}`);
    else if (st.isDirectory()) {
      out.push(`${rel}/ ${meta}${options.times ? ` ${st.mtimeMs}` : ''}`);
      let names: string[] = [];
      try {
        names = fs.readdirSync(full).sort();
      } catch {
        out.push(`${rel}/ <unreadable>`);
      }
      for (const name of names) walk(rel === '' ? name : path.join(rel, name));
    } else if (st.isFile()) out.push(`${rel} ${meta} ${createHash('sha256').update(fs.readFileSync(full)).digest('hex')}`);
    else out.push(`${rel} special ${meta} ${st.rdev}`);
  };
  walk('');
  return out;
}
