import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  cloneModeOf,
  filesToHash,
  isStrategy,
  linkGuard,
  planLinks,
  type FileFacts,
  type PreviousFile,
} from '../../src/plan/strategy.ts';

const T = 1_795_797_393_389.2893;

function file(rel: string, over: Partial<FileFacts> = {}): FileFacts {
  return { rel, size: 10, mode: 0o644, uid: 1000, gid: 1000, ...over };
}

function before(f: FileFacts, over: Partial<PreviousFile> = {}): PreviousFile {
  return { ...f, regular: true, ino: 1, ctimeMs: T, ...over };
}

void test('strategies and what copyTree does with each', () => {
  assert.equal(cloneModeOf('auto'), 'auto');
  assert.equal(cloneModeOf('hardlink'), 'auto');
  assert.equal(cloneModeOf('reflink'), 'always');
  assert.equal(cloneModeOf('copy'), 'never');
  assert.ok(isStrategy('hardlink'));
  assert.ok(!isStrategy('rsync'));
  assert.ok(!isStrategy(undefined));
});

void test('the guard: group/world-writable and setuid/setgid files are never linked', () => {
  assert.equal(linkGuard(0o644), undefined);
  assert.equal(linkGuard(0o755), undefined);
  assert.equal(linkGuard(0o444), undefined);
  assert.equal(linkGuard(0o664), 'writable by group or others');
  assert.equal(linkGuard(0o646), 'writable by group or others');
  assert.equal(linkGuard(0o4755), 'setuid or setgid');
  assert.equal(linkGuard(0o2755), 'setuid or setgid');
});

void test('planLinks links byte-identical files and says why each other file is copied', () => {
  const files = [
    file('same'),
    file('new'),
    file('bigger', { size: 11 }),
    file('edited'),
    file('unknown'),
    file('chmod', { mode: 0o600 }),
    file('chown', { uid: 0 }),
    file('shared-write', { mode: 0o666 }),
    file('suid', { mode: 0o4755 }),
    file('was-link'),
  ];
  const previous = new Map<string, PreviousFile>([
    ['same', before(file('same'))],
    ['bigger', before(file('bigger'))],
    ['edited', before(file('edited'))],
    ['unknown', before(file('unknown'))],
    ['chmod', before(file('chmod'))],
    ['chown', before(file('chown'))],
    ['shared-write', before(file('shared-write', { mode: 0o666 }))],
    ['suid', before(file('suid', { mode: 0o4755 }))],
    ['was-link', before(file('was-link'), { regular: false })],
  ]);
  assert.deepEqual(filesToHash(files, previous), ['same', 'edited', 'unknown']);
  const plan = planLinks(files, previous, {
    sourceHashes: new Map([['same', 'aa'], ['edited', 'bb'], ['unknown', 'dd']]),
    previousHashes: new Map([['same', 'aa'], ['edited', 'cc']]),
  });
  assert.deepEqual(plan.link, ['same']);
  assert.deepEqual(plan.copy, {
    new: 1,
    size: 1,
    content: 2,
    mode: 1,
    owner: 1,
    'writable by group or others': 1,
    'setuid or setgid': 1,
    'not a regular file before': 1,
  });
});

void test('not root: a linked file must have the owner a copy gets (the deploying user), whatever the build\'s owner', () => {
  // The build is nobody:root; the deploy runs as 65534:65534, so its copies (and the previous release) are 65534:65534.
  const build = file('index.html', { uid: 65534, gid: 0 });
  const copyOwner = { uid: 65534, gid: 65534 };
  const previous = new Map([['index.html', before(file('index.html', { uid: 65534, gid: 65534 }))]]);
  const hashes = { sourceHashes: new Map([['index.html', 'aa']]), previousHashes: new Map([['index.html', 'aa']]) };
  // Compared with the build's owner (as root does), nothing would ever link.
  assert.deepEqual(planLinks([build], previous, hashes).copy, { owner: 1 });
  assert.deepEqual(filesToHash([build], previous, copyOwner), ['index.html']);
  assert.deepEqual(planLinks([build], previous, { ...hashes, owner: copyOwner }).link, ['index.html']);
  // A previous file chown-ed to someone else (another user's, or the web server's) is still never shared.
  const chowned = new Map([['index.html', before(file('index.html', { uid: 33, gid: 33 }))]]);
  assert.deepEqual(planLinks([build], chowned, { ...hashes, owner: copyOwner }).copy, { owner: 1 });
});

void test('modification times play no part: the same bytes with any mtime link, other bytes never do', () => {
  // FileFacts carries no mtime at all: the only way to "agree" is the hash.
  const f = file('version');
  const previous = new Map([['version', before(f)]]);
  assert.deepEqual(planLinks([f], previous, { sourceHashes: new Map([['version', 'v2']]), previousHashes: new Map([['version', 'v1']]) }).link, []);
  assert.deepEqual(planLinks([f], previous, { sourceHashes: new Map([['version', 'v1']]), previousHashes: new Map([['version', 'v1']]) }).link, ['version']);
});

const facts = fc.record({
  rel: fc.constantFrom<string>('a', 'b', 'c', 'd/e', 'f'),
  size: fc.integer({ min: 0, max: 3 }),
  content: fc.constantFrom('x', 'y'),
  mode: fc.constantFrom(0o644, 0o755, 0o664, 0o4755),
  uid: fc.constantFrom(0, 1000),
  gid: fc.constantFrom(0, 1000),
});

void test('property: every file is linked or copied once, and a linked file matches in bytes and every other respect', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(facts, { selector: (f) => f.rel }),
      fc.uniqueArray(fc.tuple(facts, fc.boolean()), { selector: ([f]) => f.rel }),
      (files, prevList) => {
        const previous = new Map(prevList.map(([f, regular]) => [f.rel, { ...f, regular, ino: 1, ctimeMs: T }]));
        const sourceHashes = new Map(files.map((f) => [f.rel, f.content]));
        const previousHashes = new Map([...previous].map(([rel, p]) => [rel, p.content]));
        const plan = planLinks(files, previous, { sourceHashes, previousHashes });
        const copied = Object.values(plan.copy).reduce((n, c) => n + c, 0);
        assert.equal(plan.link.length + copied, files.length);
        for (const rel of plan.link) {
          const f = files.find((x) => x.rel === rel);
          assert.ok(f);
          const p = previous.get(rel);
          assert.ok(p?.regular, 'linked only over a regular file');
          assert.equal(p.size, f.size);
          assert.equal(p.mode, f.mode);
          assert.equal(p.uid, f.uid);
          assert.equal(p.gid, f.gid);
          assert.equal(linkGuard(f.mode), undefined);
          assert.equal(p.content, f.content, 'linked only over the same bytes');
        }
      },
    ),
    { numRuns: 500 },
  );
});
