import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { fleetVerifyExit, treeFromListing, type HostVerifyOutcome, type ListingFrame } from '../../src/plan/fleet-verify.ts';
import { noLiveRelease } from '../../src/ops/verify-release.ts';
import { diffRelease, type Manifest, type ManifestEntry, type ReleaseTree } from '../../src/plan/manifest.ts';

const hex = fc.constantFrom('a', 'b', 'c').map((c) => c.repeat(64));
const name = fc.constantFrom('a', 'b b', 'c\nd', 'e\\f', 'g\rh', 'ü', '-x', 'trail\n');
const odd = (p: string): boolean => /[\n\r\\]/.test(p);

type Item = ManifestEntry | { path: string; type: 'special'; mode: number };

const itemArb: fc.Arbitrary<Item> = fc.oneof(
  fc.record({ path: name, type: fc.constant('file' as const), mode: fc.constantFrom(0o644, 0o755, 0o4755), size: fc.nat(5000), sha256: hex }),
  fc.record({ path: name, type: fc.constant('symlink' as const), target: fc.constantFrom('../x', 'a\nb', '/etc/passwd', 'sp ace') }),
  fc.record({ path: name, type: fc.constant('dir' as const), mode: fc.constantFrom(0o755, 0o700) }),
  fc.record({ path: name, type: fc.constant('special' as const), mode: fc.constantFrom(0o010644, 0o140755, 0o020600) }),
);

/** A tree under `d/`: what the host holds, as entries plus specials. */
const treeArb = fc.uniqueArray(itemArb, { selector: (i) => i.path, maxLength: 8 }).map((items) => {
  const all: Item[] = [{ path: 'd', type: 'dir', mode: 0o755 }, ...items.map((i) => ({ ...i, path: `d/${i.path}` }))];
  return all;
});

const hexMode = (i: Item): string => {
  if (i.type === 'dir') return (0o040000 | i.mode).toString(16);
  if (i.type === 'file') return (0o100000 | i.mode).toString(16);
  if (i.type === 'special') return i.mode.toString(16);
  return '';
};

/**
 * What remote/verify-script.ts prints for such a tree (in find's own order: any order will do). A
 * file `hashed` refuses could not be hashed (a `present` frame then lists the plain files still
 * there); one `removed` refuses was removed after its stat (found by no hash pass, or `gone`).
 */
function listing(items: readonly Item[], hashed: (p: string) => boolean = () => true, removed: (p: string) => boolean = () => false): ListingFrame[] {
  const plain = items.filter((i) => i.type !== 'symlink' && !odd(i.path));
  const there = (i: Item): boolean => i.type === 'file' && !removed(i.path);
  const frames: ListingFrame[] = [
    { tag: 'manifest', value: '{}' },
    { tag: 'stat', value: plain.map((i) => `${hexMode(i)} ${i.type === 'file' ? i.size : 4096} ./${i.path}\n`).join('') },
    { tag: 'sums', value: plain.filter((i) => there(i) && hashed(i.path)).map((i) => `${i.type === 'file' ? i.sha256 : ''}  ./${i.path}\n`).join('') },
  ];
  if (plain.some((i) => there(i) && !hashed(i.path))) frames.push({ tag: 'present', value: plain.filter(there).map((i) => `./${i.path}\n`).join('') });
  for (const i of items) {
    if (i.type === 'symlink') frames.push({ tag: 'link', value: `./${i.path}` }, { tag: 'target', value: `${i.target}\n` });
    else if (odd(i.path)) {
      const sum = i.type !== 'file' ? '' : removed(i.path) ? 'gone' : hashed(i.path) ? `${i.sha256}  -\n` : '';
      frames.push({ tag: 'odd', value: `./${i.path}` }, { tag: 'odd-stat', value: `${hexMode(i)} ${i.type === 'file' ? i.size : 0}\n` }, { tag: 'odd-sum', value: sum });
    }
  }
  frames.push({ tag: 'end', value: 'verify' });
  return frames;
}

function expectedTree(items: readonly Item[]): ReleaseTree {
  const entries = items.filter((i): i is ManifestEntry => i.type !== 'special').sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const special = items
    .filter((i) => i.type === 'special')
    .map((i) => ({ path: i.path, kind: { 0o010000: 'FIFO', 0o140000: 'socket', 0o020000: 'device' }[i.type === 'special' ? i.mode & 0o170000 : 0] ?? '?' }));
  return { entries, special: special.sort((a, b) => (a.path < b.path ? -1 : 1)) };
}

void test('a host listing gives back exactly the tree that was listed, whatever the names hold', () => {
  fc.assert(
    fc.property(treeArb, (items) => {
      assert.deepEqual(treeFromListing(listing(items)), expectedTree(items));
    }),
  );
});

void test('the listing compared with the manifest of the same tree has no difference; a file the host could not hash is modified', () => {
  fc.assert(
    fc.property(treeArb, fc.nat(), (items, pick) => {
      const tree = expectedTree(items);
      const manifest: Manifest = { entries: tree.entries };
      assert.deepEqual(diffRelease(manifest, treeFromListing(listing(items))), tree.special.map((s) => ({ path: s.path, kind: 'added', actual: s.kind })));
      const files = tree.entries.filter((e) => e.type === 'file');
      if (files.length === 0) return;
      const lost = (files[pick % files.length] as ManifestEntry).path;
      const diffs = diffRelease(manifest, treeFromListing(listing(items, (p) => p !== lost))).filter((d) => d.kind !== 'added');
      assert.deepEqual(diffs.map((d) => `${d.kind} ${d.path}`), [`modified ${lost}`]);
    }),
  );
});

void test('a file removed between the host\'s stat and hash passes is removed, not modified, whether the hash pass failed elsewhere or not', () => {
  fc.assert(
    fc.property(treeArb, fc.nat(), fc.nat(), (items, pick, other) => {
      const tree = expectedTree(items);
      const files = tree.entries.filter((e) => e.type === 'file');
      if (files.length === 0) return;
      const lost = (files[pick % files.length] as ManifestEntry).path;
      const manifest: Manifest = { entries: tree.entries };
      const diffs = diffRelease(manifest, treeFromListing(listing(items, () => true, (p) => p === lost))).filter((d) => d.kind !== 'added');
      assert.deepEqual(diffs.map((d) => `${d.kind} ${d.path}`), [`removed ${lost}`]);
      // And beside a file the host could not hash (still there: modified).
      const unhashed = (files[other % files.length] as ManifestEntry).path;
      if (unhashed === lost) return;
      const both = diffRelease(manifest, treeFromListing(listing(items, (p) => p !== unhashed, (p) => p === lost))).filter((d) => d.kind !== 'added');
      assert.deepEqual(both.map((d) => `${d.kind} ${d.path}`).sort(), [`modified ${unhashed}`, `removed ${lost}`].sort());
    }),
  );
});

void test('a listing cut short (no sums, a link without its target) never invents a match', () => {
  const items: Item[] = [{ path: 'd', type: 'dir', mode: 0o755 }, { path: 'd/f', type: 'file', mode: 0o644, size: 3, sha256: 'a'.repeat(64) }, { path: 'd/l', type: 'symlink', target: 'f' }];
  const frames = listing(items).filter((f) => f.tag !== 'sums' && f.tag !== 'target');
  const diffs = diffRelease({ entries: items as ManifestEntry[] }, treeFromListing(frames));
  assert.deepEqual(diffs.map((d) => `${d.kind} ${d.path}`), ['modified d/f', 'removed d/l']);
});

const outcomeArb: fc.Arbitrary<HostVerifyOutcome> = fc.oneof(
  fc.boolean().map((identical) => ({ checked: true as const, identical })),
  fc.constantFrom(1, 2).map((exitCode) => ({ checked: false as const, exitCode })),
);

void test('the fleet exits 5 if any host differs, else 1 if any was not reached, else 2 for a missing or untrusted manifest, else 0', () => {
  fc.assert(
    fc.property(fc.array(outcomeArb, { maxLength: 6 }), (hosts) => {
      const code = fleetVerifyExit(hosts);
      const differs = hosts.some((h) => h.checked && !h.identical);
      const failed = hosts.filter((h) => !h.checked).map((h) => (h.checked ? 0 : h.exitCode));
      if (differs) assert.equal(code, 5);
      else if (failed.includes(1)) assert.equal(code, 1);
      else if (failed.includes(2)) assert.equal(code, 2);
      else assert.equal(code, 0);
    }),
  );
});

void test('verify with nothing live: a host (or root) with no release at all is told to deploy, not to name a release', () => {
  const none = noLiveRelease('/srv/app', { kind: 'missing' }, 'web-1', false);
  assert.equal(none.message, 'web-1: /srv/app has no release to verify yet');
  assert.equal(none.hint, 'deploy first: atomic-deploy deploy <source> /srv/app --host web-1');
  const some = noLiveRelease('/srv/app', { kind: 'missing' }, 'web-1', true);
  assert.equal(some.message, 'web-1: /srv/app has no live release to verify');
  assert.equal(some.hint, 'name one with --release <id>, or deploy first');
  // A dangling current is not a first deploy, with or without other releases: the rollback hint stays.
  const dangling = noLiveRelease('/srv/app', { kind: 'dangling', id: 'gone', target: 'releases/gone' }, 'web-1', false);
  assert.match(dangling.hint ?? '', /atomic-deploy rollback \/srv\/app --host web-1 --to <id>$/);
});
