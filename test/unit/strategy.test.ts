import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  cloneModeOf,
  filesToHash,
  isStrategy,
  linkGuard,
  planLinks,
  sameMtime,
  type FileFacts,
  type PreviousFile,
} from '../../src/plan/strategy.ts';

const T = 1_795_797_393_389.2893;

function file(rel: string, over: Partial<FileFacts> = {}): FileFacts {
  return { rel, size: 10, mtimeMs: T, mode: 0o644, uid: 1000, gid: 1000, ...over };
}

function before(f: FileFacts, over: Partial<PreviousFile> = {}): PreviousFile {
  return { ...f, regular: true, ...over };
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

void test('sameMtime matches what stat → utimes → stat gives back, and ns-exact copies', () => {
  // Seen here: stat().mtime rounds to the nearest ms, utimes stores it with float error.
  assert.ok(sameMtime(1795797393389.2893, 1795797393388.999));
  assert.ok(sameMtime(1795797393409.5708, 1795797393410));
  assert.ok(sameMtime(T, T));
  assert.ok(!sameMtime(T, T + 1));
  assert.ok(!sameMtime(T, T - 1000));
  fc.assert(
    fc.property(fc.integer({ min: 1_000_000_000, max: 4_000_000_000 }), fc.integer({ min: 0, max: 999_999_999 }), fc.integer({ min: 0, max: 999 }), (sec, ns, errNs) => {
      const source = sec * 1000 + ns / 1e6;
      // What our copy holds: the Date (rounded ms), written back a little early by float truncation.
      const copied = Math.round(source) - errNs / 1e6;
      return sameMtime(source, copied) && sameMtime(copied, source);
    }),
    { numRuns: 2000 },
  );
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

void test('planLinks links identical files and says why each other file is copied', () => {
  const same = file('same');
  const files = [
    same,
    file('new'),
    file('bigger', { size: 11 }),
    file('touched', { mtimeMs: T + 5 }),
    file('chmod', { mode: 0o600 }),
    file('chown', { uid: 0 }),
    file('shared-write', { mode: 0o666 }),
    file('suid', { mode: 0o4755 }),
    file('was-link'),
  ];
  const previous = new Map<string, PreviousFile>([
    ['same', before(same, { mtimeMs: Math.round(T) - 0.001 })],
    ['bigger', before(file('bigger'))],
    ['touched', before(file('touched'))],
    ['chmod', before(file('chmod'))],
    ['chown', before(file('chown'))],
    ['shared-write', before(file('shared-write', { mode: 0o666 }))],
    ['suid', before(file('suid', { mode: 0o4755 }))],
    ['was-link', before(file('was-link'), { regular: false })],
  ]);
  const plan = planLinks(files, previous, { checksum: false });
  assert.deepEqual(plan.link, ['same']);
  assert.deepEqual(plan.copy, {
    new: 1,
    size: 1,
    mtime: 1,
    mode: 1,
    owner: 1,
    'writable by group or others': 1,
    'setuid or setgid': 1,
    'not a regular file before': 1,
  });
});

void test('with checksum, content decides instead of mtime; metadata and the guard still apply', () => {
  const files = [file('touched', { mtimeMs: T + 60_000 }), file('edited'), file('unhashed'), file('chmod', { mode: 0o600 })];
  const previous = new Map<string, PreviousFile>(files.map((f) => [f.rel, before(f, { mtimeMs: T, mode: 0o644 })]));
  assert.deepEqual(filesToHash(files, previous), ['touched', 'edited', 'unhashed']);
  const plan = planLinks(files, previous, {
    checksum: true,
    sourceHashes: new Map([['touched', 'aa'], ['edited', 'bb']]),
    previousHashes: new Map([['touched', 'aa'], ['edited', 'cc']]),
  });
  assert.deepEqual(plan.link, ['touched']);
  assert.deepEqual(plan.copy, { content: 2, mode: 1 });
});

const facts = fc.record({
  rel: fc.constantFrom<string>('a', 'b', 'c', 'd/e', 'f'),
  size: fc.integer({ min: 0, max: 3 }),
  mtimeMs: fc.constantFrom(T, T + 1, T + 0.4),
  mode: fc.constantFrom(0o644, 0o755, 0o664, 0o4755),
  uid: fc.constantFrom(0, 1000),
  gid: fc.constantFrom(0, 1000),
});

void test('property: every file is linked or copied once, and a linked file matches in every respect', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(facts, { selector: (f) => f.rel }),
      fc.uniqueArray(fc.tuple(facts, fc.boolean()), { selector: ([f]) => f.rel }),
      fc.boolean(),
      (files, prevList, checksum) => {
        const previous = new Map(prevList.map(([f, regular]) => [f.rel, { ...f, regular }]));
        const hashes = new Map(files.map((f) => [f.rel, String(f.size)]));
        const plan = planLinks(files, previous, { checksum, sourceHashes: hashes, previousHashes: new Map([...previous].map(([rel, p]) => [rel, String(p.size)])) });
        const copied = Object.values(plan.copy).reduce((n, c) => n + c, 0);
        assert.equal(plan.link.length + copied, files.length);
        for (const rel of plan.link) {
          const f = files.find((x) => x.rel === rel) as FileFacts;
          const p = previous.get(rel);
          assert.ok(p?.regular, 'linked only over a regular file');
          assert.equal(p.size, f.size);
          assert.equal(p.mode, f.mode);
          assert.equal(p.uid, f.uid);
          assert.equal(p.gid, f.gid);
          assert.equal(linkGuard(f.mode), undefined);
          if (!checksum) assert.ok(sameMtime(p.mtimeMs, f.mtimeMs));
        }
      },
    ),
    { numRuns: 500 },
  );
});
