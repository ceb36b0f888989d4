// One engine for verify: the listing a host prints for `verify --host` (remote/verify-script.ts,
// run here under dash with coreutils and under BusyBox sh with BusyBox applets) reads back as
// the very tree local verify walks, names and link targets that are not UTF-8 included, so both
// report the same differences for the same release; run by a user who may not read all of it,
// both report the same modes and unreadable paths.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashTree } from '../../src/act/manifest.ts';
import { treeFromListing } from '../../src/plan/fleet-verify.ts';
import { comparePaths, diffRelease, parseManifest, serializeManifest, type Difference, type Manifest } from '../../src/plan/manifest.ts';
import { verifyScript } from '../../src/remote/verify-script.ts';
import { asUser, runWrapped, uidOf } from '../harness/faults.ts';
import { findTools } from '../harness/fleet.ts';
import { programShells, runProgram, type Shell } from '../harness/remote-programs.ts';

const TOOLS = findTools(['busybox', 'dash'] as const);
const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'verify-listing-'));
after(() => fs.rmSync(BASE, { recursive: true, force: true }));
const SHELLS = programShells(BASE, TOOLS, ['find', 'stat', 'sha256sum', 'printf', 'cat', 'readlink', 'test', '[']);

/**
 * The manifest of `releases/one` as deployed, taken by the local walk and stored where verify reads
 * it: the parsed manifest and the digest its record would name.
 */
async function recordManifest(root: string, rel: string): Promise<{ manifest: Manifest; digest: string }> {
  const text = serializeManifest((await hashTree(rel)).entries);
  const parsed = parseManifest(text);
  assert.ok(parsed.ok);
  fs.mkdirSync(path.join(root, '.atomic-deploy', 'manifests'), { recursive: true });
  fs.writeFileSync(path.join(root, '.atomic-deploy', 'manifests', 'one.json'), text);
  return { manifest: parsed.manifest, digest: createHash('sha256').update(text).digest('hex') };
}

/** `dir/<bytes>`: a path whose last name is raw bytes. */
const raw = (dir: string, ...name: number[]): Buffer => Buffer.concat([Buffer.from(`${dir}/`), Buffer.from(name)]);

void test('a host listing and the local walk give the same tree and the same differences, names and targets that are not UTF-8 included', async () => {
  const root = path.join(BASE, 'root');
  const rel = path.join(root, 'releases', 'one');
  fs.mkdirSync(path.join(rel, 'assets'), { recursive: true });
  fs.writeFileSync(path.join(rel, 'index.html'), 'v1\n');
  fs.writeFileSync(path.join(rel, 'a\uFFFD.txt'), 'twin\n');
  fs.writeFileSync(path.join(rel, 'assets', 'app.js'), 'let a = 1;\n');
  fs.symlinkSync('index.html', path.join(rel, 'home.html'));
  fs.symlinkSync('index.html', path.join(rel, 'about.html'));
  // The manifest of the release as deployed, taken by the local walk before any tampering.
  const { manifest, digest } = await recordManifest(root, rel);

  // Tampering with bytes a text decoder would turn into U+FFFD: a twin of a valid name, a
  // directory (with a file in it), a symlink, a file with a newline, and a retargeted link.
  fs.writeFileSync(raw(rel, 0x61, 0xff, 0x2e, 0x74, 0x78, 0x74), 'twin\n');
  const dir = raw(path.join(rel, 'assets'), 0x64, 0xfe);
  fs.mkdirSync(dir);
  fs.writeFileSync(Buffer.concat([dir, Buffer.from('/evil.js')]), 'evil()\n');
  fs.symlinkSync(raw('.', 0x69, 0xff), raw(path.join(rel, 'assets'), 0x6c, 0x80));
  fs.writeFileSync(raw(rel, 0x6e, 0x0a, 0xc3), 'x\n');
  fs.unlinkSync(path.join(rel, 'home.html'));
  fs.symlinkSync(raw('.', 0x68, 0xfe), path.join(rel, 'home.html'));

  const local = await hashTree(rel, undefined, { report: true });
  // The walk lists what it found in walk order; the listing, by path.
  local.misnamed?.sort((a, b) => comparePaths(a.path, b.path));
  const localDiff = diffRelease(manifest, local);
  assert.deepEqual(localDiff.map((d) => `${d.kind} ${d.path}`), [
    'added a\\xff.txt',
    'added assets/d\\xfe',
    'added assets/l\\x80',
    'retargeted home.html',
    'added n\n\\xc3',
  ]);
  for (const shell of SHELLS) {
    const r = runProgram(shell, verifyScript(root, 'one', digest), BASE);
    assert.equal(r.code, 0, `${shell.name}: ${r.stderr}`);
    const tree = treeFromListing(r.frames);
    assert.deepEqual(tree, local, shell.name);
    assert.deepEqual(diffRelease(manifest, tree), localDiff, shell.name);
  }
  // Control: decoded as text alone (what the listing was read as before), the twin is the valid name and no longer a difference.
  const asText = runProgram(SHELLS[0]!, verifyScript(root, 'one', digest), BASE).frames.map(({ tag, value }) => ({ tag, value }));
  const blind = diffRelease(manifest, treeFromListing(asText)).map((d) => `${d.kind} ${d.path}`);
  assert.ok(!blind.includes('added a\\xff.txt'), `text alone still found the twin: ${blind.join(', ')}`);
});

void test('run by a user who cannot read everything, a host listing reports what the local verify reports: the mode, and unreadable, never modified or removed', async () => {
  // The host's user is daemon here, as the root's owner; root reads everything, so the local verify runs as daemon too.
  const base = fs.mkdtempSync(path.join(BASE, 'perm-'));
  fs.chmodSync(BASE, 0o755);
  fs.chmodSync(base, 0o755);
  const src = path.join(base, 'src');
  for (const [name, text] of Object.entries({ 'index.html': 'v1\n', 'sub/x.txt': 'x\n', 'sub/deep/a.txt': 'a\n', 'sub/deep/b/c.txt': 'c\n', 'sub/open/o.txt': 'o\n', 'sub/blind/z.txt': 'z\n', 'keep.txt': 'k\n' })) {
    fs.mkdirSync(path.dirname(path.join(src, name)), { recursive: true });
    fs.writeFileSync(path.join(src, name), text);
  }
  fs.symlinkSync('x.txt', path.join(src, 'sub/open/l'));
  const root = path.join(base, 'root');
  const deployed = await runWrapped(['deploy', src, root, '--release-id', 'one', '--quiet']);
  assert.equal(deployed.code, 0, deployed.stderr);
  execFileSync('chown', ['-R', 'daemon:', root]);
  const rel = path.join(root, 'releases', 'one');
  const text = fs.readFileSync(path.join(root, '.atomic-deploy', 'manifests', 'one.json'), 'utf8');
  const parsed = parseManifest(text);
  assert.ok(parsed.ok);
  const digest = createHash('sha256').update(text).digest('hex');
  fs.chmodSync(path.join(rel, 'index.html'), 0o000);
  fs.chmodSync(path.join(rel, 'sub/deep'), 0o000);
  // Listable, not searchable; and searchable, not listable.
  fs.chmodSync(path.join(rel, 'sub/open'), 0o644);
  fs.chmodSync(path.join(rel, 'sub/blind'), 0o311);
  // An edit beside them is still found.
  fs.writeFileSync(path.join(rel, 'keep.txt'), 'K\n');

  const local = await runWrapped(['verify', root, '--json'], { prefix: asUser('daemon') });
  assert.equal(local.code, 5, local.stderr);
  const localDiff = (JSON.parse(local.stdout) as { differences: unknown[] }).differences;
  assert.deepEqual(localDiff.map((d) => `${(d as Difference).kind} ${(d as Difference).path}`), [
    'mode index.html',
    'unreadable index.html',
    'modified keep.txt',
    'mode sub/blind',
    'unreadable sub/blind',
    'mode sub/deep',
    'unreadable sub/deep',
    'mode sub/open',
    'unreadable sub/open',
  ]);
  const daemon = uidOf('daemon');
  for (const shell of SHELLS) {
    const r = runProgram(shell, verifyScript(root, 'one', digest), base, '', daemon);
    assert.equal(r.code, 0, `${shell.name}: ${r.stderr}`);
    assert.deepEqual(diffRelease(parsed.manifest, treeFromListing(r.frames)), localDiff, shell.name);
  }
  // Control: the listing read without what the host says it could not read calls the same release modified and removed.
  const r = runProgram(SHELLS[0]!, verifyScript(root, 'one', digest), base, '', daemon);
  // The release itself closed: not searchable, then searchable but not listable.
  for (const mode of [0o000, 0o644]) {
    fs.chmodSync(rel, mode);
    const whole = await runWrapped(['verify', root, '--json'], { prefix: asUser('daemon') });
    assert.equal(whole.code, 5, whole.stderr);
    const wholeDiff = (JSON.parse(whole.stdout) as { differences: unknown[] }).differences;
    // Its own mode is in the manifest (its root), as a closed directory's is in its entry.
    assert.deepEqual(
      wholeDiff,
      [
        { path: '.', kind: 'mode', expected: (parsed.manifest.root?.mode ?? -1).toString(8), actual: mode.toString(8).padStart(3, '0') },
        { path: '.', kind: 'unreadable', actual: 'permission denied: 13 listed entries under it were not checked' },
      ],
      mode.toString(8),
    );
    for (const shell of SHELLS) {
      const listed = runProgram(shell, verifyScript(root, 'one', digest), base, '', daemon);
      assert.equal(listed.code, 0, `${shell.name}: ${listed.stderr}`);
      assert.deepEqual(diffRelease(parsed.manifest, treeFromListing(listed.frames)), wholeDiff, `${shell.name}, release ${mode.toString(8)}`);
    }
  }
  const blind = diffRelease(parsed.manifest, treeFromListing(r.frames.filter((f) => f.tag !== 'denied' && f.tag !== 'closed'))).map((d) => `${d.kind} ${d.path}`);
  assert.ok(blind.includes('modified index.html') && blind.includes('removed sub/deep/a.txt'), blind.join(', '));
});

/**
 * Stand-ins put first on a shell's PATH that remove `VICTIM` (a path as find prints it) at a set
 * moment, so that the race between the host's passes is taken every time: `stat` removes it once it
 * has printed its stat; `sha256sum` removes it just before hashing a batch naming it, or (`refuse`)
 * leaves it and fails on it, as a read error would.
 */
function withStandIn(shell: Shell, tool: 'stat' | 'sha256sum', victim: string, refuse = false): Shell {
  const real = shell.name.startsWith('busybox') ? `${fs.readlinkSync(path.join(BASE, 'busybox-bin', 'sh'))} ${tool}` : `/usr/bin/${tool}`;
  const dir = fs.mkdtempSync(path.join(BASE, `stand-in-${tool}-`));
  const body =
    tool === 'stat'
      ? `${real} "$@"; rc=$?\nfor a; do [ "$a" = "$VICTIM" ] && /bin/rm -f -- "$a"; done\nexit $rc\n`
      : refuse
        ? `hit=; for a; do shift; if [ "$a" = "$VICTIM" ]; then hit=1; else set -- "$@" "$a"; fi; done\n${real} "$@"; rc=$?\n[ -z "$hit" ] || exit 1\nexit $rc\n`
        : `for a; do [ "$a" = "$VICTIM" ] && /bin/rm -f -- "$a"; done\nexec ${real} "$@"\n`;
  fs.writeFileSync(path.join(dir, tool), `#!/bin/sh\n${body}`, { mode: 0o755 });
  return { ...shell, name: `${shell.name}, ${tool} stand-in`, env: { ...shell.env, PATH: `${dir}:${shell.env.PATH ?? ''}`, VICTIM: victim } };
}

void test('a file removed between a host listing\'s stat and its hash shows as removed, not modified; one the host could not hash still shows as modified', async () => {
  let n = 0;
  const cases = [
    { why: 'removed before the hash pass walked', tool: 'stat', victim: './gone.txt', want: 'removed gone.txt' },
    { why: 'removed between the hash pass\'s walk and its read', tool: 'sha256sum', victim: './gone.txt', want: 'removed gone.txt' },
    { why: 'a name hashed on its own, removed after its stat', tool: 'stat', victim: './odd\nname', want: 'removed odd\nname' },
    { why: 'control: still there, but the host could not hash it', tool: 'sha256sum', victim: './gone.txt', refuse: true, want: 'modified gone.txt' },
  ] as const;
  // Every case under every shell, compared at the end, so that a failure shows them all.
  const got: string[] = [];
  const want: string[] = [];
  for (const shell of SHELLS) {
    for (const c of cases) {
      const root = path.join(BASE, `removed-${++n}`);
      const rel = path.join(root, 'releases', 'one');
      fs.mkdirSync(rel, { recursive: true });
      for (const name of ['index.html', 'gone.txt', 'other.txt', 'odd\nname']) fs.writeFileSync(path.join(rel, name), `${name}\n`);
      const { manifest, digest } = await recordManifest(root, rel);
      const run = withStandIn(shell, c.tool, c.victim, 'refuse' in c);
      const r = runProgram(run, verifyScript(root, 'one', digest), BASE);
      assert.equal(r.code, 0, `${run.name}: ${r.stderr}`);
      assert.equal(fs.existsSync(path.join(rel, c.victim)), 'refuse' in c, `${run.name}: the stand-in did its part (${c.why})`);
      const diffs = diffRelease(manifest, treeFromListing(r.frames)).map((d: Difference) => `${d.kind} ${d.path}`);
      got.push(`${run.name}, ${c.why}: ${JSON.stringify(diffs)}`);
      want.push(`${run.name}, ${c.why}: ${JSON.stringify([c.want])}`);
    }
  }
  assert.deepEqual(got, want);
});
