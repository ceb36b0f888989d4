// `verify --host` across two namespace hosts: each host re-hashes its release where it lies; a
// host tampered with in every way (an in-place edit keeping size and mtime, a chmod, an added, a
// removed file, a retargeted symlink) is named with each difference, exit 5; a release without a
// manifest or with an untrusted one exits 2, an unreachable host 1, and a differing host wins.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, tempDir } from '../harness/cli.ts';
import { rootNamer, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

const NPM_EPOCH = new Date('1985-10-26T08:15:00Z');

interface Diff {
  path: string;
  kind: string;
  expected?: string;
  actual?: string;
}
interface HostJson {
  host: string;
  release: string | null;
  identical?: boolean;
  digest?: string;
  differences: Diff[];
  files?: number;
  error?: { code: string; message: string };
}
interface VerifyJson {
  identical?: boolean;
  differing?: string[];
  unchecked?: string[];
  hosts: HostJson[];
  error?: { code: string; message: string };
}

const { fleet, hostArgs, cli } = fleetSuite(2, { timeoutMs: 120_000 });
/** A fresh remote root for each test, and where it lies on each host as this process sees it. */
const newRoot = rootNamer('v');

const host = (n: number): FleetHost => fleet.hosts[n - 1] as FleetHost;
const row = (j: VerifyJson, name: string): HostJson => {
  const r = j.hosts.find((h) => h.host === name);
  assert.ok(r, `a row for ${name}`);
  return r;
};

/** A fixed-mtime build: 20 files, an executable, a symlink, and names sha256sum would escape. */
function build(t: { after(fn: () => void): void }, odd: boolean): string {
  const dir = tempDir(t, 'fleet-verify-');
  fs.mkdirSync(path.join(dir, 'lib'));
  for (let i = 0; i < 20; i++) fs.writeFileSync(path.join(dir, 'lib', `f${String(i).padStart(2, '0')}.js`), `export const v = 'v1-${i}';\n`);
  fs.writeFileSync(path.join(dir, 'version'), 'v1\n');
  fs.writeFileSync(path.join(dir, 'run.sh'), '#!/bin/sh\necho ok\n', { mode: 0o755 });
  fs.chmodSync(path.join(dir, 'run.sh'), 0o755);
  fs.symlinkSync('lib/f00.js', path.join(dir, 'main.js'));
  if (odd) {
    fs.writeFileSync(path.join(dir, 'lib', 'new\nline.txt'), 'newline\n');
    fs.writeFileSync(path.join(dir, 'lib', 'back\\slash.txt'), 'backslash\n');
    fs.writeFileSync(path.join(dir, 'lib', 'carriage\rreturn.txt'), 'cr\n');
    fs.symlinkSync('../version', path.join(dir, 'lib', 'odd\nlink'));
  }
  for (const f of fs.readdirSync(path.join(dir, 'lib'))) fs.lutimesSync(path.join(dir, 'lib', f), NPM_EPOCH, NPM_EPOCH);
  for (const f of ['version', 'run.sh', 'main.js']) fs.lutimesSync(path.join(dir, f), NPM_EPOCH, NPM_EPOCH);
  return dir;
}

async function deployTo(t: { after(fn: () => void): void }, name: string, odd = false): Promise<{ root: string; on: (h: FleetHost) => string; id: string; src: string }> {
  const { root, on } = newRoot(name);
  const src = build(t, odd);
  const result = await cli(['deploy', src, root, ...hostArgs, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return { root, on, id: String(jsonOf<{ release?: string }>(result).release), src };
}

void describe('verify --host over two namespace hosts', () => {
  void test('a fresh fleet release verifies clean on every host: exit 0, one row per host', async (t) => {
    const { root, id } = await deployTo(t, 'clean');
    const result = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const j = jsonOf<VerifyJson>(result);
    assert.equal(j.identical, true);
    assert.equal(j.hosts.length, 2);
    for (const h of j.hosts) {
      assert.equal(h.release, id);
      assert.equal(h.identical, true);
      assert.deepEqual(h.differences, []);
      assert.equal(h.files, 22);
      assert.match(String(h.digest), /^sha256:[0-9a-f]{64}$/);
    }
    const human = await cli(['verify', root, ...hostArgs]);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^host1\s+\S+\s+identical\s+22 files, 1 directory, 1 symlink; sha256:[0-9a-f]{12}$/m);
    assert.match(human.stdout, /^host2\s+\S+\s+identical/m);
    assert.match(human.stdout, /all 2 hosts match their manifests/);
  });

  void test('every kind of tampering on one host is found there and named with its host: exit 5', async (t) => {
    const { root, on, id } = await deployTo(t, 'tampered');
    const rel = path.join(on(host(2)), 'releases', id);
    const version = path.join(rel, 'version');
    const before = fs.statSync(version);
    fs.writeFileSync(version, 'v2\n');
    fs.utimesSync(version, NPM_EPOCH, NPM_EPOCH);
    const afterEdit = fs.statSync(version);
    // What makes this edit the hard case: size and mtime, all a quick check compares, are unchanged.
    assert.equal(afterEdit.size, before.size);
    assert.equal(before.mtimeMs, NPM_EPOCH.getTime());
    assert.equal(afterEdit.mtimeMs, before.mtimeMs);
    fs.chmodSync(path.join(rel, 'run.sh'), 0o777);
    fs.writeFileSync(path.join(rel, 'lib', 'extra.js'), 'evil()\n');
    fs.rmSync(path.join(rel, 'lib', 'f05.js'));
    fs.rmSync(path.join(rel, 'main.js'));
    fs.symlinkSync('/etc/passwd', path.join(rel, 'main.js'));

    const result = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(result.code, 5, result.stderr);
    const j = jsonOf<VerifyJson>(result);
    assert.deepEqual(j.differing, ['host2']);
    assert.equal(row(j, 'host1').identical, true);
    const h2 = row(j, 'host2');
    assert.equal(h2.identical, false);
    assert.deepEqual(
      h2.differences.map((d) => `${d.kind} ${d.path}`),
      ['added lib/extra.js', 'removed lib/f05.js', 'retargeted main.js', 'mode run.sh', 'modified version'],
    );
    assert.deepEqual(h2.differences.find((d) => d.kind === 'retargeted'), { path: 'main.js', kind: 'retargeted', expected: 'lib/f00.js', actual: '/etc/passwd' });
    assert.deepEqual(h2.differences.find((d) => d.kind === 'mode'), { path: 'run.sh', kind: 'mode', expected: '755', actual: '777' });

    const human = await cli(['verify', root, ...hostArgs]);
    assert.equal(human.code, 5);
    assert.match(human.stdout, /^host2\s+\S+\s+differs\s+5 differences$/m);
    for (const line of [/^host2\s+modified\s+version\s+\(3 bytes sha256:/m, /^host2\s+mode\s+run\.sh\s+\(755 -> 777\)$/m, /^host2\s+added\s+lib\/extra\.js/m, /^host2\s+removed\s+lib\/f05\.js/m, /^host2\s+retargeted\s+main\.js\s+\(lib\/f00\.js -> \/etc\/passwd\)$/m]) {
      assert.match(human.stdout, line);
    }
    assert.doesNotMatch(human.stdout, /^host1\s+(modified|mode|added|removed|retargeted)/m);
    assert.match(human.stdout, /1 of 2 hosts match their manifests; differs on host2/);
  });

  void test('a chmod of the release directory itself on one host is found there (path "."), as locally', async (t) => {
    const { root, on, id } = await deployTo(t, 'root-mode');
    const rel = path.join(on(host(1)), 'releases', id);
    const mode = fs.statSync(rel).mode & 0o777;
    fs.chmodSync(rel, 0o711);
    const result = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(result.code, 5, result.stderr);
    const j = jsonOf<VerifyJson>(result);
    assert.deepEqual(j.differing, ['host1']);
    assert.deepEqual(row(j, 'host1').differences, [{ path: '.', kind: 'mode', expected: mode.toString(8), actual: '711' }]);
    fs.chmodSync(rel, mode);
    assert.equal((await cli(['verify', root, ...hostArgs])).code, 0);
  });

  void test('names with a newline, a carriage return or a backslash are hashed on the host too, and tampering with them is found', async (t) => {
    const { root, on, id } = await deployTo(t, 'odd', true);
    const clean = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(clean.code, 0, clean.stdout + clean.stderr);
    for (const h of jsonOf<VerifyJson>(clean).hosts) assert.equal(h.files, 25);
    const rel = path.join(on(host(1)), 'releases', id, 'lib');
    fs.writeFileSync(path.join(rel, 'new\nline.txt'), 'NEWLINE\n');
    fs.writeFileSync(path.join(rel, 'back\\slash.txt'), 'BACKSLASH\n');
    fs.writeFileSync(path.join(rel, 'carriage\rreturn.txt'), 'CR\n');
    fs.rmSync(path.join(rel, 'odd\nlink'));
    fs.symlinkSync('../run.sh', path.join(rel, 'odd\nlink'));
    const result = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(result.code, 5, result.stderr);
    const j = jsonOf<VerifyJson>(result);
    assert.equal(row(j, 'host2').identical, true);
    assert.deepEqual(
      row(j, 'host1').differences.map((d) => `${d.kind} ${d.path}`),
      ['modified lib/back\\slash.txt', 'modified lib/carriage\rreturn.txt', 'modified lib/new\nline.txt', 'retargeted lib/odd\nlink'],
    );
  });

  void test('no manifest on one host and an untrusted one on the other: exit 2, nothing checked there', async (t) => {
    const { root, on, id } = await deployTo(t, 'nomanifest');
    const record = path.join(on(host(1)), '.atomic-deploy', 'releases', `${id}.json`);
    const json = JSON.parse(fs.readFileSync(record, 'utf8')) as Record<string, unknown>;
    delete json.manifest;
    delete json.digest;
    fs.writeFileSync(record, JSON.stringify(json));
    const manifest = path.join(on(host(2)), '.atomic-deploy', 'manifests', `${id}.json`);
    fs.truncateSync(manifest, Math.floor(fs.statSync(manifest).size / 2));
    const result = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(result.code, 2, result.stderr);
    const j = jsonOf<VerifyJson>(result);
    assert.equal(row(j, 'host1').error?.code, 'NO_MANIFEST');
    assert.equal(row(j, 'host2').error?.code, 'MANIFEST_UNTRUSTED');
    assert.match(String(row(j, 'host2').error?.message), /host2: the manifest of release .* cannot be trusted: its digest does not match/);
    // Why, as a local verify's error says it, and which release.
    assert.match(String((row(j, 'host2').error as { problem?: string } | undefined)?.problem), /^its digest does not match/);
    assert.equal(row(j, 'host2').release, id);
    // As locally: its manifest file is there, but nothing in the release log proves it.
    assert.match(String(row(j, 'host1').error?.message), /^host1: release \S+ has a manifest file but no digest in its release log record to prove it/);
    // With the file gone too, it is a release without a manifest.
    fs.rmSync(path.join(on(host(1)), '.atomic-deploy', 'manifests', `${id}.json`));
    const human = await cli(['verify', root, ...hostArgs]);
    assert.equal(human.code, 2);
    assert.match(human.stderr, /error: host1: release \S+ has no manifest: it was made before/);
    assert.match(human.stderr, /hint: deploy the build again/);
  });

  void test('a damaged record on one host: releases warns with its host, verify says damaged (exit 2), a rollback there keeps its text', async (t) => {
    const { root, on, id } = await deployTo(t, 'damaged');
    const second = await cli(['deploy', build(t, false), root, ...hostArgs, '--json']);
    assert.equal(second.code, 0, second.stderr);
    const live = String(jsonOf<{ release?: string }>(second).release);
    const record = path.join(on(host(1)), '.atomic-deploy', 'releases', `${live}.json`);
    const damaged = `{"id":"${live}","seq":2,"status":"compl`;
    fs.writeFileSync(record, damaged);
    const list = await cli(['releases', root, ...hostArgs, '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stderr, new RegExp(`^warning: host1: the release log record of ${live} is damaged \\(not valid JSON\\): it is listed, ordered and rolled back to as a release without one$`, 'm'));
    const rows = jsonOf<{ hosts: { host: string; releases: { id: string; recordDamaged?: string }[] }[] }>(list).hosts;
    assert.equal(rows.find((h) => h.host === 'host1')?.releases.find((r) => r.id === live)?.recordDamaged, 'not valid JSON');
    assert.equal(rows.find((h) => h.host === 'host2')?.releases.find((r) => r.id === live)?.recordDamaged, undefined);
    const verify = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(verify.code, 2, verify.stderr);
    assert.match(String(row(jsonOf<VerifyJson>(verify), 'host1').error?.message), /^host1: release \S+ has a damaged release log record \(not valid JSON\)/);
    assert.equal(row(jsonOf<VerifyJson>(verify), 'host2').identical, true);
    // The rollback leaves the release recorded rolled-back on host2; on host1 its damaged record stays as it was.
    const back = await cli(['rollback', root, ...hostArgs, '--json']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(jsonOf<{ release?: string }>(back).release, id);
    assert.equal(fs.readFileSync(record, 'utf8'), damaged, 'the rollback rewrote the damaged record with made-up fields');
    const other = JSON.parse(fs.readFileSync(path.join(on(host(2)), '.atomic-deploy', 'releases', `${live}.json`), 'utf8')) as { status: string };
    assert.equal(other.status, 'rolled-back');
  });

  void test('an unreachable host exits 1 with its row; a differing host elsewhere still exits 5', async (t) => {
    const { root, on, id } = await deployTo(t, 'down');
    await host(2).killSshd();
    t.after(() => host(2).startSshd());
    const result = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(result.code, 1, result.stderr);
    const j = jsonOf<VerifyJson>(result);
    assert.equal(row(j, 'host1').identical, true);
    assert.equal(row(j, 'host2').error?.code, 'REMOTE');
    assert.deepEqual(j.unchecked, ['host2']);
    fs.appendFileSync(path.join(on(host(1)), 'releases', id, 'version'), 'x');
    const both = await cli(['verify', root, ...hostArgs]);
    assert.equal(both.code, 5, both.stderr);
    assert.match(both.stdout, /^host1\s+modified\s+version/m);
    assert.match(both.stdout, /^host2\s+\?\s+not checked\s+cannot connect/m);
    assert.match(both.stdout, /differs on host1; not checked on host2/);
  });

  void test('--release checks an older release on every host; an unknown one exits 2', async (t) => {
    const first = await deployTo(t, 'older');
    const src = build(t, false);
    fs.writeFileSync(path.join(src, 'version'), 'v2\n');
    assert.equal((await cli(['deploy', src, first.root, ...hostArgs])).code, 0);
    // A new inode: the live release hardlinks the unchanged f01.js from this one.
    const f01 = path.join(first.on(host(1)), 'releases', first.id, 'lib', 'f01.js');
    fs.rmSync(f01);
    fs.writeFileSync(f01, 'changed\n');
    const old = await cli(['verify', first.root, ...hostArgs, '--release', first.id, '--json']);
    assert.equal(old.code, 5, old.stderr);
    assert.deepEqual(row(jsonOf<VerifyJson>(old), 'host1').differences.map((d) => d.path), ['lib/f01.js']);
    const live = await cli(['verify', first.root, ...hostArgs]);
    assert.equal(live.code, 0, live.stdout + live.stderr);
    const unknown = await cli(['verify', first.root, ...hostArgs, '--release', 'nope', '--json']);
    assert.equal(unknown.code, 2);
    assert.equal(row(jsonOf<VerifyJson>(unknown), 'host1').error?.code, 'UNKNOWN_RELEASE');
    const bad = await cli(['verify', first.root, ...hostArgs, '--release', '../x']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid release id/);
    // A rollback --to an id that cannot be one: the hint lists the releases, as locally (it named deploy's --release-id).
    const to = await cli(['rollback', first.root, ...hostArgs, '--to', '../x']);
    assert.equal(to.code, 2, to.stderr);
    assert.match(to.stderr, /^hint: list the releases with: atomic-deploy releases \S+ --host host1 --host host2$/m);
  });
});
