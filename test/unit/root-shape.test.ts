// Is a folder a deploy root: ours, Capistrano's, Deployer's, the bash tool's; a build or a home
// folder never is, and unrelated files next to a root's layout never make it stop being one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { classifyRoot, deployTargetProblem, madeDirsToRemove, readRootProblem, ROOT_SKELETON, type EntryType, type RootEntry } from '../../src/plan/root-shape.ts';

const type = fc.constantFrom<EntryType>('dir', 'file', 'symlink', 'other');
const LAYOUT = ['releases', 'current', 'shared', '.tmp', '.deploy.lock', '.atomic-deploy', 'repo', 'revisions.log', '.dep', 'lost+found'];
/** Names a build or a user's folder holds; never one of the layout's. */
const buildName = fc.stringMatching(/^[a-zA-Z0-9_.-]{1,12}$/).filter((n) => !LAYOUT.includes(n) && n !== '.' && n !== '..');
const buildEntries = fc.uniqueArray(fc.record({ name: buildName, type }), { selector: (e) => e.name, minLength: 1, maxLength: 12 });

const ROOTS: Record<string, RootEntry[]> = {
  'atomic-deploy': [{ name: 'releases', type: 'dir' }, { name: 'current', type: 'symlink' }, { name: '.atomic-deploy', type: 'dir' }, { name: '.tmp', type: 'dir' }],
  capistrano: [{ name: 'releases', type: 'dir' }, { name: 'current', type: 'symlink' }, { name: 'repo', type: 'dir' }, { name: 'revisions.log', type: 'file' }, { name: 'shared', type: 'dir' }],
  deployer: [{ name: 'releases', type: 'dir' }, { name: 'current', type: 'symlink' }, { name: '.dep', type: 'dir' }, { name: 'shared', type: 'dir' }],
  'symlink-releases': [{ name: 'releases', type: 'dir' }, { name: 'current', type: 'symlink' }],
  'layout-only': [{ name: 'releases', type: 'dir' }, { name: 'shared', type: 'dir' }],
};

void test('classifyRoot: each tool layout is a root of that tool', () => {
  for (const [tool, entries] of Object.entries(ROOTS)) assert.deepEqual(classifyRoot(entries), { kind: 'root', tool });
  // Capistrano without a current yet (a failed first deploy) is still Capistrano's.
  assert.deepEqual(classifyRoot([{ name: 'releases', type: 'dir' }, { name: 'revisions.log', type: 'file' }]), { kind: 'root', tool: 'capistrano' });
});

void test('classifyRoot: missing, empty (lost+found alone counts as empty), and other', () => {
  assert.deepEqual(classifyRoot(undefined), { kind: 'missing' });
  assert.deepEqual(classifyRoot([]), { kind: 'empty' });
  assert.deepEqual(classifyRoot([{ name: 'lost+found', type: 'dir' }]), { kind: 'empty' });
  // A releases *file*, a current without releases/, a lone .dep/: someone else's folder.
  assert.equal(classifyRoot([{ name: 'releases', type: 'file' }, { name: 'current', type: 'symlink' }]).kind, 'other');
  assert.equal(classifyRoot([{ name: 'current', type: 'symlink' }, { name: 'index.html', type: 'file' }]).kind, 'other');
  // A lone current (a real directory, say) is a root gone wrong: the current checks explain it better.
  assert.deepEqual(classifyRoot([{ name: 'current', type: 'dir' }]), { kind: 'root', tool: 'layout-only' });
  // shared/.env made by hand before the first deploy.
  assert.deepEqual(classifyRoot([{ name: 'shared', type: 'dir' }]), { kind: 'root', tool: 'layout-only' });
  assert.equal(classifyRoot([{ name: 'repo', type: 'dir' }]).kind, 'other');
  assert.equal(classifyRoot([{ name: '.dep', type: 'dir' }, { name: 'index.php', type: 'file' }]).kind, 'other');
});

void test('a build folder is never a root, and deploying into one that is not empty needs --adopt', () => {
  fc.assert(
    fc.property(buildEntries, (entries) => {
      const shape = classifyRoot(entries);
      assert.deepEqual(shape, { kind: 'other', entries: entries.length });
      assert.match(readRootProblem(shape) ?? '', /not a deploy root/);
      assert.match(deployTargetProblem(shape) ?? '', /not empty and not a deploy root/);
    }),
    { numRuns: 1000 },
  );
});

void test('unrelated files next to a root with current (or a tool marker) leave it a root of the same tool', () => {
  fc.assert(
    fc.property(fc.constantFrom(...Object.keys(ROOTS).filter((k) => k !== 'layout-only')), buildEntries, (tool, extra) => {
      const base = ROOTS[tool] ?? [];
      const shape = classifyRoot([...extra, ...base]);
      assert.deepEqual(shape, { kind: 'root', tool });
      assert.equal(readRootProblem(shape), undefined);
      assert.equal(deployTargetProblem(shape), undefined);
    }),
    { numRuns: 1000 },
  );
});

void test('readRootProblem refuses everything but a root; deployTargetProblem accepts missing, empty and roots', () => {
  assert.match(readRootProblem({ kind: 'missing' }) ?? '', /does not exist/);
  assert.match(readRootProblem({ kind: 'empty' }) ?? '', /is empty, not a deploy root/);
  assert.equal(deployTargetProblem({ kind: 'missing' }), undefined);
  assert.equal(deployTargetProblem({ kind: 'empty' }), undefined);
  assert.match(deployTargetProblem({ kind: 'other', entries: 1 }) ?? '', /\(1 entry,/);
});

void test('madeDirsToRemove: a root the deploy made goes with the parents it made, children first; one it did not make keeps everything', () => {
  const skeleton = ROOT_SKELETON.map((d) => `/srv/a/b/root/${d}`);
  // Made under two names of one machine: the order and the repeats of the frames do not matter.
  assert.deepEqual(madeDirsToRemove('/srv/a/b/root', ['/srv/a/b', '/srv/a', '/srv/a/b/root', '/srv/a/b']), [...skeleton, '/srv/a/b/root', '/srv/a/b', '/srv/a']);
  assert.deepEqual(madeDirsToRemove('/srv/a/b/root', ['/srv/a/b/root']), [...skeleton, '/srv/a/b/root']);
  // The parents alone (the root made by another command in between): the root is not this deploy's, nothing goes.
  assert.deepEqual(madeDirsToRemove('/srv/a/b/root', ['/srv/a', '/srv/a/b']), []);
  assert.deepEqual(madeDirsToRemove('/srv/root', []), []);
  // A sibling whose name starts like a parent is not one.
  assert.deepEqual(madeDirsToRemove('/srv/ab/root', ['/srv/a', '/srv/ab/root']), [...ROOT_SKELETON.map((d) => `/srv/ab/root/${d}`), '/srv/ab/root']);
  // Children before their parents, so that each rmdir can find its directory empty.
  const order = [...ROOT_SKELETON];
  for (const [i, d] of order.entries()) assert.ok(order.slice(i + 1).every((later) => !later.startsWith(`${d}/`)), `${d} comes after one of its children`);
});
