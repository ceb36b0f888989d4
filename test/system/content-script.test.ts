// The host-side programs of a fleet deploy that move content by manifest (remote/content-script.ts):
// reading the previous release's manifest, whole or as its SHA-256 only; and the link step, under dash with
// coreutils and under BusyBox sh with BusyBox applets: the listed files of the previous release
// become hardlinks in the stage, by `cp -l --parents` where cp has it and by rsync where it has
// not; a listed path that is a symlink there, lies under a symlinked directory, or is missing, is
// not linked; the host's check names exactly the listed files that did not land with the bytes
// and mode the build has. The list itself is made on the host from the two manifests there, and
// must be the deploying side's plan (planSend) under every awk a host may have: gawk, mawk, BusyBox.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { linkListScript, linkScript, readManifestScript } from '../../src/remote/content-script.ts';
import { frameValue } from '../../src/remote/facts.ts';
import { shQuote } from '../../src/remote/shell.ts';
import { stagedPath } from '../../src/remote/staging.ts';
import { failedChecks, linkListDigest, planSend } from '../../src/plan/fleet-send.ts';
import { comparePaths, manifestDigest, serializeManifest, type Manifest, type ManifestEntry } from '../../src/plan/manifest.ts';
import { findTools } from '../harness/fleet.ts';
import { programShells, runProgram, type Shell } from '../harness/remote-programs.ts';

const TOOLS = findTools(['busybox', 'dash', 'rsync', 'gawk', 'mawk'] as const);
const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'content-script-'));
after(() => fs.rmSync(BASE, { recursive: true, force: true }));

const SHELLS = programShells(BASE, TOOLS, ['cp', 'mkdir', 'rm', 'cat', 'find', 'xargs', 'sha256sum', 'printf', 'test', 'sed', 'tr', 'grep', 'awk', 'stat']);
/** The tools a host's programs use besides awk, from /usr/bin, for the shells that pick an awk. */
const HOST_TOOLS = ['cp', 'mkdir', 'rm', 'cat', 'find', 'xargs', 'sed', 'tr', 'grep', 'rsync', 'stat'];
// Tools a host may lack: a shell whose PATH has only these.
const BARE = path.join(BASE, 'bare-bin');
fs.mkdirSync(BARE);
for (const applet of ['sh', 'cat', 'printf', 'test']) fs.symlinkSync(TOOLS.busybox, path.join(BARE, applet));
// BusyBox has no rsync: the fallback uses the system's, as a BusyBox host with rsync installed would.
fs.symlinkSync(TOOLS.rsync, path.join(BASE, 'busybox-bin', 'rsync'));

/** A stand-in for a tool that is there and fails, put first on the shell's PATH. */
function withFailing(shell: Shell, tool: 'cp' | 'rsync'): Shell {
  const dir = fs.mkdtempSync(path.join(BASE, `failing-${tool}-`));
  fs.writeFileSync(path.join(dir, tool), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  // BusyBox's sh runs a script without a #! line itself; with one, the kernel needs /bin/sh, which every host has.
  return { ...shell, name: `${shell.name}, failing ${tool}`, env: { ...shell.env, PATH: `${dir}:${shell.env.PATH ?? ''}` } };
}

const sha = (text: string): string => createHash('sha256').update(text).digest('hex');
let serial = 0;

/** A root whose release `prev` holds a/one, a/two, b/c/three, a symlink b/link and an executable a/run. */
function rootWithPrevious(): { root: string; prev: string } {
  const root = path.join(BASE, `case-${++serial}`, "root 'q' $(x)");
  const prev = path.join(root, 'releases', 'prev');
  fs.mkdirSync(path.join(prev, 'a'), { recursive: true });
  fs.mkdirSync(path.join(prev, 'b', 'c'), { recursive: true });
  fs.mkdirSync(path.join(root, '.tmp'));
  fs.writeFileSync(path.join(prev, 'a', 'one'), 'one\n');
  fs.writeFileSync(path.join(prev, 'a', 'two'), 'two\n');
  fs.writeFileSync(path.join(prev, 'a', 'run'), '#!/bin/sh\n', { mode: 0o755 });
  fs.writeFileSync(path.join(prev, 'b', 'c', 'three'), 'three\n');
  fs.symlinkSync('../a/one', path.join(prev, 'b', 'link'));
  return { root, prev };
}

/** The bytes the build has at each path of rootWithPrevious (what the previous release holds, but for `changed`). */
const BUILT: Record<string, string> = { 'a/one': 'one\n', 'a/two': 'two\n', 'a/run': '#!/bin/sh\n', 'b/c/three': 'three\n', 'b/link': 'one\n' };

/** The previous release's mode of each path of rootWithPrevious, as its manifest would hold it. */
const MODES: Record<string, number> = { 'a/run': 0o755 };

const fileEntry = (p: string, bytes: string, mode: number): ManifestEntry => ({ path: p, type: 'file', mode, size: Buffer.byteLength(bytes), sha256: sha(bytes) });

/**
 * Runs the link step with manifests that agree on `list` exactly: the previous release's manifest
 * says each listed path holds the build's bytes (BUILT, or `changed`) with the build's mode (its
 * own, or `modes`), as the new one does; the unlisted paths differ between the two. What the host
 * then finds on disk decides the check.
 */
function link(shell: Shell, root: string, list: string[], changed: Record<string, string> = {}, modes: Record<string, number> = {}): { failed: string[] | undefined; noSum: boolean; noStat: boolean; noAwk: boolean; partial: boolean; stage: string; code: number | null; stderr: string; listDigest?: string; stored?: string; digest: string } {
  const same = list.map((p) => fileEntry(p, changed[p] ?? BUILT[p] ?? '', modes[p] ?? MODES[p] ?? 0o644));
  const others = Object.keys(BUILT).filter((p) => !list.includes(p));
  const old: ManifestEntry[] = [...same, ...others.map((p) => fileEntry(p, `old ${p}`, 0o644))];
  const built: ManifestEntry[] = [...same, ...others.map((p) => fileEntry(p, `new ${p}`, 0o644))];
  const manifests = path.join(root, '.atomic-deploy', 'manifests');
  fs.mkdirSync(manifests, { recursive: true });
  fs.writeFileSync(path.join(manifests, 'prev.json'), serializeManifest(old));
  const text = serializeManifest(built);
  const stage = stagedPath(root, 'stage.1');
  fs.mkdirSync(stage, { recursive: true });
  fs.writeFileSync(path.join(stage, 'manifest.json'), text);
  const r = runProgram(shell, linkScript(root, 'prev', 'stage.1', 'new'), BASE);
  const checked = frameValue(r.frames, 'checked');
  const lines = frameValue(r.frames, 'failed');
  const listDigest = frameValue(r.frames, 'link-list');
  const stored = frameValue(r.frames, 'stored-sha256');
  // The order the manifest has (sorted), which is the plan's.
  const planned = built.filter((e) => list.includes(e.path)).map((e) => e.path).sort(comparePaths);
  return {
    failed: checked === undefined || lines === undefined ? undefined : failedChecks(lines, Number(checked), planned),
    noSum: frameValue(r.frames, 'no-sum') === 'yes',
    noStat: frameValue(r.frames, 'no-stat') === 'yes',
    noAwk: frameValue(r.frames, 'no-awk') === 'yes',
    partial: frameValue(r.frames, 'link-partial') === 'yes',
    stage: path.join(stage, 'new'),
    code: r.code,
    stderr: r.stderr,
    ...(listDigest === undefined ? {} : { listDigest: listDigest === linkListDigest(planned) ? 'planned' : listDigest }),
    ...(stored === undefined ? {} : { stored: `sha256:${stored}` }),
    digest: manifestDigest(text),
  };
}

const inode = (p: string): number => fs.lstatSync(p).ino;

const cases = SHELLS.flatMap((s) => [s, withFailing(s, 'cp')]);
for (const shell of cases) {
  void describe(`the link step under ${shell.name}`, () => {
    void test('every listed file becomes a hardlink of the previous release, with its mode; the rest is not there; the check passes them all', () => {
      const { root, prev } = rootWithPrevious();
      const r = link(shell, root, ['a/one', 'a/run', 'b/c/three']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.partial, false);
      for (const p of ['a/one', 'a/run', 'b/c/three']) assert.equal(inode(path.join(r.stage, p)), inode(path.join(prev, p)), `${p} is not a link of the previous release`);
      assert.equal(fs.statSync(path.join(r.stage, 'a', 'run')).mode & 0o777, 0o755);
      assert.equal(fs.existsSync(path.join(r.stage, 'a', 'two')), false, 'an unlisted file was linked');
      assert.deepEqual(r.failed, []);
      assert.equal(r.noSum, false);
      assert.equal(r.listDigest, 'planned', 'the host linked the list the two manifests agree on, the plan');
      assert.equal(r.stored, r.digest, 'the host hashed the stored manifest');
    });

    void test('a linked file owned by another user than its release (chown-ed in place, bytes and mode kept) fails the check, and only it', () => {
      assert.equal(process.getuid?.(), 0, 'this test chowns a file: run it as root');
      const { root, prev } = rootWithPrevious();
      fs.chownSync(path.join(prev, 'a', 'one'), 33, 33);
      const r = link(shell, root, ['a/one', 'a/run', 'b/c/three']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.failed, ['a/one']);
      // Control: the link shares the inode, so it carries the owner another user gave it.
      assert.equal(fs.statSync(path.join(r.stage, 'a', 'one')).uid, 33);
      assert.equal(fs.statSync(path.join(r.stage, 'a', 'run')).uid, fs.statSync(prev).uid);
    });

    void test('a linked file whose mode is not the build\'s (chmod-ed in place, bytes kept) fails the check, and only it', () => {
      const { root, prev } = rootWithPrevious();
      fs.chmodSync(path.join(prev, 'a', 'one'), 0o600);
      const r = link(shell, root, ['a/one', 'a/run', 'b/c/three']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.failed, ['a/one']);
      // Control: the link shares the inode, so it carries the mode the manifest does not hold.
      assert.equal(fs.statSync(path.join(r.stage, 'a', 'one')).mode & 0o777, 0o600);
    });

    void test('a linked file whose bytes are not the build\'s (edited in place) fails the check, and only it', () => {
      const { root } = rootWithPrevious();
      const r = link(shell, root, ['a/one', 'a/run', 'b/c/three'], { 'a/run': '#!/bin/sh\nexit 1\n' });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.failed, ['a/run']);
    });

    void test('a linked file with a name outside the releases (ln, a dedup tool) fails the check, and only it; names at the same path in other releases pass', () => {
      const { root, prev } = rootWithPrevious();
      const older = path.join(root, 'releases', 'older');
      fs.mkdirSync(path.join(older, 'a'), { recursive: true });
      // As hardlink deploys leave them: an older release shares a/two at the same path.
      fs.linkSync(path.join(prev, 'a', 'two'), path.join(older, 'a', 'two'));
      // Names elsewhere: outside releases/, at another path of a release, and in a hidden leftover (a pruned release's trash).
      fs.linkSync(path.join(prev, 'a', 'one'), path.join(root, 'one.dedup'));
      fs.linkSync(path.join(prev, 'b', 'c', 'three'), path.join(older, 'three'));
      fs.mkdirSync(path.join(root, 'releases', '.trash.1', 'a'), { recursive: true });
      fs.linkSync(path.join(prev, 'a', 'run'), path.join(root, 'releases', '.trash.1', 'a', 'run'));
      const r = link(shell, root, ['a/one', 'a/run', 'a/two', 'b/c/three']);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(r.failed, ['a/one', 'a/run', 'b/c/three']);
      // Control: the file that passed is linked, and so are the others (the check does not undo a link: rsync replaces it).
      assert.equal(inode(path.join(r.stage, 'a', 'two')), inode(path.join(prev, 'a', 'two')));
      assert.equal(inode(path.join(r.stage, 'a', 'one')), inode(path.join(root, 'one.dedup')));
    });

    void test('a listed path that is a symlink in the previous release is not kept, and fails the check', () => {
      const { root } = rootWithPrevious();
      const r = link(shell, root, ['a/one', 'b/link']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fs.existsSync(path.join(r.stage, 'a', 'one')), true);
      assert.throws(() => fs.lstatSync(path.join(r.stage, 'b', 'link')), { code: 'ENOENT' });
      assert.deepEqual(r.failed, ['b/link']);
    });

    void test('a listed file under a directory that is a symlink in the previous release is not linked through it, and fails the check', () => {
      const { root, prev } = rootWithPrevious();
      // b/c swapped for a link to a directory elsewhere holding the same bytes (a shared path, or tampering).
      const elsewhere = path.join(root, 'shared', 'c');
      fs.mkdirSync(elsewhere, { recursive: true });
      fs.renameSync(path.join(prev, 'b', 'c', 'three'), path.join(elsewhere, 'three'));
      fs.rmdirSync(path.join(prev, 'b', 'c'));
      fs.symlinkSync('../../../shared/c', path.join(prev, 'b', 'c'));
      // Control: followed, the path reaches that file, whose bytes pass the check.
      assert.equal(fs.readFileSync(path.join(prev, 'b', 'c', 'three'), 'utf8'), BUILT['b/c/three']);
      const r = link(shell, root, ['a/one', 'b/c/three']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(inode(path.join(r.stage, 'a', 'one')), inode(path.join(prev, 'a', 'one')));
      assert.equal(fs.existsSync(path.join(r.stage, 'b', 'c', 'three')), false, 'linked through the symlinked directory');
      assert.equal(fs.lstatSync(path.join(elsewhere, 'three')).nlink, 1, 'the file elsewhere gained a link');
      assert.deepEqual(r.failed, ['b/c/three']);
    });

    void test('a listed file missing from the previous release: the others are linked, it fails the check, and the step says it was partial', () => {
      const { root, prev } = rootWithPrevious();
      fs.rmSync(path.join(prev, 'a', 'two'));
      const r = link(shell, root, ['a/one', 'a/two', 'b/c/three']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.partial, true);
      assert.deepEqual(r.failed, ['a/two']);
    });
  });
}

// Which tool did the linking: with rsync failing, links still land where cp has --parents (both
// shells here), and with both failing none do (so the cases above did run each way).
for (const shell of SHELLS) {
  void test(`under ${shell.name}, cp links the list without rsync; with cp failing too, nothing is linked and the step says so`, () => {
    const { root, prev } = rootWithPrevious();
    const byCp = link(withFailing(shell, 'rsync'), root, ['a/one', 'b/c/three']);
    assert.equal(byCp.code, 0, byCp.stderr);
    assert.equal(byCp.partial, false);
    assert.equal(inode(path.join(byCp.stage, 'a', 'one')), inode(path.join(prev, 'a', 'one')));

    const other = rootWithPrevious();
    const neither = link(withFailing(withFailing(shell, 'rsync'), 'cp'), other.root, ['a/one', 'b/c/three']);
    assert.equal(neither.partial, true);
    assert.equal(fs.existsSync(path.join(neither.stage, 'a', 'one')), false);
    assert.deepEqual(neither.failed, ['a/one', 'b/c/three']);
  });
}

void test('on a host with shasum but no sha256sum the check runs with shasum -a 256 -c: an edited file fails it, the rest pass', () => {
  const bin = fs.mkdtempSync(path.join(BASE, 'shasum-bin-'));
  for (const tool of [...HOST_TOOLS, 'awk']) fs.symlinkSync(`/usr/bin/${tool}`, path.join(bin, tool));
  // shasum is a perl script (Debian's perl package; .ci/install-deps installs it): both on the PATH, no sha256sum.
  const { shasum, perl } = findTools(['shasum', 'perl'] as const);
  fs.symlinkSync(shasum, path.join(bin, 'shasum'));
  fs.symlinkSync(perl, path.join(bin, 'perl'));
  const { root } = rootWithPrevious();
  const r = link({ name: 'dash with shasum only', file: TOOLS.dash, env: { PATH: bin } }, root, ['a/one', 'a/run', 'b/c/three', 'a/two'], { 'a/run': '#!/bin/sh\nexit 1\n' });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.noSum, false);
  assert.deepEqual(r.failed, ['a/run']);
});

void test('on a host with no sha256sum or shasum, no stat that prints modes, or no awk, nothing is linked and the step says it could not check', () => {
  for (const lacking of ['sha256sum', 'stat', 'awk'] as const) {
    const bin = fs.mkdtempSync(path.join(BASE, `no-${lacking}-bin-`));
    for (const tool of [...HOST_TOOLS, 'awk', 'sha256sum'].filter((t) => t !== lacking)) fs.symlinkSync(`/usr/bin/${tool}`, path.join(bin, tool));
    const { root } = rootWithPrevious();
    const r = link({ name: `dash without ${lacking}`, file: TOOLS.dash, env: { PATH: bin } }, root, ['a/one', 'b/c/three']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(lacking === 'sha256sum' ? r.noSum : lacking === 'stat' ? r.noStat : r.noAwk, true, `without ${lacking}`);
    assert.equal(r.failed, undefined, 'a check result without a tool to check with');
    assert.equal(fs.existsSync(path.join(r.stage, 'a', 'one')), false, 'linked with no way to check');
  }
});

void test('on a host whose find cannot test link counts, nothing is linked and the step says it could not check names', () => {
  const bin = fs.mkdtempSync(path.join(BASE, 'no-find-links-bin-'));
  for (const tool of [...HOST_TOOLS, 'awk', 'sha256sum'].filter((t) => t !== 'find')) fs.symlinkSync(`/usr/bin/${tool}`, path.join(bin, tool));
  // A find without -links (a BusyBox built without it says "unrecognized: -links"), otherwise GNU's.
  fs.writeFileSync(path.join(bin, 'find'), '#!/bin/sh\nfor a; do [ "$a" = -links ] && { echo "find: unrecognized: -links" >&2; exit 1; }; done\nexec /usr/bin/find "$@"\n', { mode: 0o755 });
  const { root } = rootWithPrevious();
  const r = runProgram({ name: 'dash, find without -links', file: TOOLS.dash, env: { PATH: bin } }, linkScript(root, 'prev', 'stage.1', 'new'), BASE);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(frameValue(r.frames, 'no-find-links'), 'yes');
  assert.equal(frameValue(r.frames, 'checked'), undefined, 'a check result without a way to count names');
  assert.equal(fs.existsSync(path.join(stagedPath(root, 'stage.1'), 'new', 'a', 'one')), false, 'linked with no way to check');
});

/** dash with one awk (and the other host tools from /usr/bin), and BusyBox sh with BusyBox's awk. */
const AWKS: Shell[] = [
  ...(['gawk', 'mawk'] as const).map((awk): Shell => {
    const bin = fs.mkdtempSync(path.join(BASE, `${awk}-bin-`));
    for (const tool of [...HOST_TOOLS, 'sha256sum']) fs.symlinkSync(`/usr/bin/${tool}`, path.join(bin, tool));
    fs.symlinkSync(TOOLS[awk], path.join(bin, 'awk'));
    return { name: `dash + ${awk}`, file: TOOLS.dash, env: { PATH: bin } };
  }),
  SHELLS[1] as Shell,
];

// Names that are hard for a line-based program: spaces, quotes, backslashes, control characters,
// a leading dash, non-ASCII, a name ending like a check line. Only some of them are linkable.
const hardName = fc.constantFrom('a', 'b c', ' lead', 'trail ', '-x', 'ü', 'q"r', 's\\t', 'n\nl', 't\tb', '\u007f', 'x: OK', 'y: FAILED', '{"path":"z"}', 'e,', "o'k");
const hex = fc.constantFrom('0', '1').map((c) => c.repeat(64));
const hardManifest = fc.uniqueArray(fc.record({ path: hardName, mode: fc.constantFrom(0o644, 0o755, 0o4755, 0o2755, 0o664, 0o646, 0o1755), size: fc.constantFrom(1, 2), sha256: hex, kind: fc.constantFrom('file', 'file', 'file', 'symlink') }), { selector: (f) => f.path, maxLength: 10 }).map(
  (files): Manifest => ({
    entries: [{ path: 'd', type: 'dir', mode: 0o755 }, ...files.map((f): ManifestEntry => (f.kind === 'symlink' ? { path: `d/${f.path}`, type: 'symlink', target: f.path } : { path: `d/${f.path}`, type: 'file', mode: f.mode, size: f.size, sha256: f.sha256 }))],
  }),
);

for (const shell of AWKS) {
  void test(`under ${shell.name}, the host's list of files to link is the deploying side's plan, with the build's hash and mode of each`, () => {
    const dir = fs.mkdtempSync(path.join(BASE, 'list-'));
    const linkedNames = new Set<string>();
    // The previous release: the build with about half of its entries kept, the rest changed or gone.
    const pair = hardManifest.chain((build) =>
      fc.array(fc.constantFrom('keep', 'keep', 'keep', 'other-hash', 'other-mode', 'gone'), { minLength: build.entries.length, maxLength: build.entries.length }).map((fates) => {
        const entries = build.entries.flatMap((e, i): ManifestEntry[] => {
          const fate = fates[i];
          if (e.type !== 'file' || fate === 'keep') return [e];
          if (fate === 'gone') return [];
          return [fate === 'other-hash' ? { ...e, sha256: 'f'.repeat(64) } : { ...e, mode: 0o600 }];
        });
        return [build, { entries }] as const;
      }),
    );
    fc.assert(
      fc.property(pair, ([build, have]) => {
        const text = serializeManifest(build.entries);
        fs.writeFileSync(path.join(dir, 'old.json'), serializeManifest(have.entries));
        fs.writeFileSync(path.join(dir, 'new.json'), text);
        // The manifest's own order (parsed back, as the deploying side holds it).
        const entriesOf = (json: string): ManifestEntry[] => (JSON.parse(json) as { entries: ManifestEntry[] }).entries;
        const plan = planSend({ entries: entriesOf(text) }, { entries: entriesOf(serializeManifest(have.entries)) });
        const r = runProgram(shell, `LC_ALL=C; export LC_ALL\n${linkListScript(shQuote(path.join(dir, 'old.json')), shQuote(path.join(dir, 'new.json')))}`, dir);
        assert.equal(r.code, 0, r.stderr);
        const read = (name: string): string => fs.readFileSync(path.join(dir, name), 'utf8');
        assert.equal(read('link.paths'), plan.link.map((p) => `${p}\n`).join(''));
        const byPath = new Map(build.entries.map((e) => [e.path, e]));
        const want = (p: string): Extract<ManifestEntry, { type: 'file' }> => byPath.get(p) as Extract<ManifestEntry, { type: 'file' }>;
        assert.equal(read('link.check'), plan.link.map((p) => `${want(p).sha256}  ${p}\n`).join(''));
        assert.equal(read('link.modes'), plan.link.map((p) => `${want(p).mode.toString(8)} ${p}\n`).join(''));
        for (const p of plan.link) linkedNames.add(p);
      }),
      { numRuns: 150 },
    );
    // Not vacuous: hard names were linked, not only sent.
    for (const p of ['d/b c', 'd/ lead', 'd/trail ', 'd/-x', 'd/ü', 'd/x: OK']) assert.ok(linkedNames.has(p), `${JSON.stringify(p)} was never linked in 150 runs`);
  });
}

// BusyBox with shasum (a perl script) as the only SHA-256 tool, as on a host without coreutils' sha256sum.
const SHASUM_ONLY = path.join(BASE, 'shasum-only-bin');
fs.mkdirSync(SHASUM_ONLY);
for (const applet of ['sh', 'cat', 'printf', 'test']) fs.symlinkSync(TOOLS.busybox, path.join(SHASUM_ONLY, applet));
for (const [name, file] of Object.entries(findTools(['shasum', 'perl'] as const))) fs.symlinkSync(file, path.join(SHASUM_ONLY, name));

for (const shell of [
  ...SHELLS,
  { name: 'busybox sh without sha256sum or shasum', file: path.join(BARE, 'sh'), env: { PATH: BARE } },
  { name: 'busybox sh with shasum only', file: path.join(SHASUM_ONLY, 'sh'), env: { PATH: SHASUM_ONLY } },
]) {
  void test(`reading a release's manifest under ${shell.name}: whole, or its SHA-256 only where the host can hash; nothing for a missing one`, () => {
    const root = path.join(BASE, `case-${++serial}`, "root 'q' $(x)");
    fs.mkdirSync(path.join(root, '.atomic-deploy', 'manifests'), { recursive: true });
    const text = '{"v":1,"entries":[{"path":"a","type":"file"}]}\n';
    fs.writeFileSync(path.join(root, '.atomic-deploy', 'manifests', 'r1.json'), text);
    fs.symlinkSync('r1.json', path.join(root, '.atomic-deploy', 'manifests', 'r2.json'));
    const read = (id: string, hashOnly: boolean): ReturnType<typeof runProgram> => runProgram(shell, readManifestScript(root, id, { hashOnly }), BASE);
    const whole = read('r1', false);
    assert.equal(whole.code, 0, whole.stderr);
    assert.equal(frameValue(whole.frames, 'manifest'), text);
    assert.equal(frameValue(whole.frames, 'manifest-sha256'), undefined);
    const hashed = read('r1', true);
    assert.equal(hashed.code, 0, hashed.stderr);
    if (shell.env.PATH === BARE) {
      // No tool to hash with: the whole manifest, as without hashOnly.
      assert.equal(frameValue(hashed.frames, 'manifest'), text);
    } else {
      assert.equal(frameValue(hashed.frames, 'manifest-sha256'), sha(text));
      assert.equal(frameValue(hashed.frames, 'manifest'), undefined, 'the whole manifest was sent as well');
    }
    // A symlink in a manifest's place, and no file at all, are both no manifest.
    for (const id of ['r2', 'r3']) for (const hashOnly of [false, true]) assert.equal(frameValue(read(id, hashOnly).frames, 'no-manifest'), 'yes', `${id}, hashOnly ${hashOnly}`);
  });
}
