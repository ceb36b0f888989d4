// One engine for verify: the listing a host prints for `verify --host` (remote/verify-script.ts,
// run here under dash with coreutils and under BusyBox sh with BusyBox applets) reads back as
// the very tree local verify walks, names and link targets that are not UTF-8 included, so both
// report the same differences for the same release.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashTree } from '../../src/act/manifest.ts';
import { treeFromListing } from '../../src/plan/fleet-verify.ts';
import { comparePaths, diffRelease, parseManifest, serializeManifest } from '../../src/plan/manifest.ts';
import { verifyScript } from '../../src/remote/verify-script.ts';
import { findTools } from '../harness/fleet.ts';
import { programShells, runProgram } from '../harness/remote-programs.ts';

const TOOLS = findTools(['busybox', 'dash'] as const);
const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'verify-listing-'));
after(() => fs.rmSync(BASE, { recursive: true, force: true }));
const SHELLS = programShells(BASE, TOOLS, ['find', 'stat', 'sha256sum', 'printf', 'cat', 'readlink', 'test', '[']);

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
  const text = serializeManifest((await hashTree(rel)).entries);
  const parsed = parseManifest(text);
  assert.ok(parsed.ok);
  fs.mkdirSync(path.join(root, '.atomic-deploy', 'manifests'), { recursive: true });
  fs.writeFileSync(path.join(root, '.atomic-deploy', 'manifests', 'one.json'), text);
  const digest = createHash('sha256').update(text).digest('hex');

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
  const localDiff = diffRelease(parsed.manifest, local);
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
    assert.deepEqual(diffRelease(parsed.manifest, tree), localDiff, shell.name);
  }
  // Control: decoded as text alone (what the listing was read as before), the twin is the valid name and no longer a difference.
  const asText = runProgram(SHELLS[0]!, verifyScript(root, 'one', digest), BASE).frames.map(({ tag, value }) => ({ tag, value }));
  const blind = diffRelease(parsed.manifest, treeFromListing(asText)).map((d) => `${d.kind} ${d.path}`);
  assert.ok(!blind.includes('added a\\xff.txt'), `text alone still found the twin: ${blind.join(', ')}`);
});
