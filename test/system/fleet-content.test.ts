// What a fleet deploy publishes is exactly what was built, even when every file carries the same
// fixed mtime (npm tarballs: 1985-10-26 08:15:00) and changed files keep their size: rsync's quick
// check (size + whole-second mtime) would keep the old bytes, as the control shows.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, tempDir } from '../harness/cli.ts';
import { rootNamer, type FleetHost, currentOf as current } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

const NPM_EPOCH = new Date('1985-10-26T08:15:00Z');
const FILES = 100;

interface HostJson {
  host: string;
  outcome?: string;
  transferred?: number;
  linked?: number;
  manifestSentBytes?: number;
  warnings?: string[];
  error?: { code: string; message: string };
}
interface DeployJson {
  release?: string;
  hosts: HostJson[];
  error?: { code: string; message: string };
}

const { fleet, hostArgs, cli } = fleetSuite(3, { timeoutMs: 120_000 });
/** A fresh remote root for each test, and where it lies on each host as this process sees it. */
const newRoot = rootNamer('c');

/** A build of FILES same-sized files; `changed` of them hold `tag` instead of `v1`; every mtime is NPM_EPOCH. */
function build(t: { after(fn: () => void): void }, tag: string, changed: ReadonlySet<number>): string {
  const dir = tempDir(t, 'fleet-content-');
  fs.mkdirSync(path.join(dir, 'lib'));
  for (let i = 0; i < FILES; i++) {
    const file = path.join(dir, 'lib', `f${String(i).padStart(3, '0')}.js`);
    fs.writeFileSync(file, `export const v = '${changed.has(i) ? tag : 'v1'}-${String(i).padStart(3, '0')}';\n`);
    fs.utimesSync(file, NPM_EPOCH, NPM_EPOCH);
  }
  fs.writeFileSync(path.join(dir, 'version'), `${tag}\n`);
  fs.utimesSync(path.join(dir, 'version'), NPM_EPOCH, NPM_EPOCH);
  fs.symlinkSync('lib/f000.js', path.join(dir, 'main.js'));
  for (const d of [path.join(dir, 'lib'), dir]) fs.utimesSync(d, NPM_EPOCH, NPM_EPOCH);
  return dir;
}

const tenPercent = (offset: number): Set<number> => new Set(Array.from({ length: FILES / 10 }, (_, i) => i * 10 + offset));

/** path -> sha256 of every regular file, and the symlinks' targets. */
function contents(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel === '' ? name : `${rel}/${name}`;
      const st = fs.lstatSync(path.join(dir, r));
      if (st.isDirectory()) walk(r);
      else if (st.isSymbolicLink()) out.set(r, `-> ${fs.readlinkSync(path.join(dir, r))}`);
      else out.set(r, createHash('sha256').update(fs.readFileSync(path.join(dir, r))).digest('hex'));
    }
  };
  walk('');
  return out;
}

function stalePaths(built: string, live: string): string[] {
  const want = contents(built);
  const got = contents(live);
  return [...want.keys()].filter((p) => want.get(p) !== got.get(p)).concat([...got.keys()].filter((p) => !want.has(p)));
}

/**
 * Deploys a build to a fresh root, changes one file of that release on host1 in place (`tamper`,
 * given its path there), then deploys a build with 10% changed: host1's result, the two paths of
 * that file on host1, the result, the root and the second build.
 */
async function redeployAfterTampering(t: { after(fn: () => void): void }, name: string, offset: number, rel: string, tamper: (file: string) => void) {
  const { root, on } = newRoot(name);
  const v1 = build(t, 'v1', new Set());
  const v2 = build(t, 'v2', tenPercent(offset));
  const first = jsonOf<DeployJson>(await cli(['deploy', v1, root, ...hostArgs, '--json']));
  const host1 = fleet.hosts[0] as FleetHost;
  const old = path.join(on(host1), 'releases', String(first.release), rel);
  tamper(old);
  const result = await cli(['deploy', v2, root, ...hostArgs, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const j = jsonOf<DeployJson>(result);
  return { j, h1: j.hosts.find((h) => h.host === 'host1'), old, now: path.join(on(host1), 'releases', String(j.release), rel), release: path.join(on(host1), 'releases', String(j.release)), root, v2 };
}

void describe('content-exact fleet deploys over three namespace hosts', () => {
  void test('control: rsync --link-dest with its quick check publishes stale bytes for a fixed-mtime build', (t) => {
    const v1 = build(t, 'v1', new Set());
    const v2 = build(t, 'v2', tenPercent(3));
    for (const h of fleet.hosts) {
      const base = newRoot('control').root;
      const rsync = (src: string, dest: string, extra: string[]): void => {
        execFileSync('rsync', ['-a', '--mkpath', ...extra, `${src}/`, `${h.alias}:${base}/${dest}/`], { env: fleet.env });
      };
      rsync(v1, 'r1', []);
      rsync(v2, 'r2', ['--link-dest=../r1']);
      const stale = stalePaths(v2, path.join(h.srvDir, path.basename(base), 'r2'));
      // Every changed file, and the version file, kept their v1 bytes: the old rule is wrong here.
      assert.equal(stale.length, FILES / 10 + 1, `${h.alias}: the quick check kept ${stale.length} stale files`);
    }
  });

  void test('every host holds the built bytes; only changed files are sent; unchanged ones are linked; the manifest is recorded', async (t) => {
    const { root, on } = newRoot('exact');
    const v1 = build(t, 'v1', new Set());
    const v2 = build(t, 'v2', tenPercent(3));
    const first = await cli(['deploy', v1, root, ...hostArgs, '--json']);
    assert.equal(first.code, 0, first.stderr);
    const second = await cli(['deploy', v2, root, ...hostArgs, '--json']);
    assert.equal(second.code, 0, second.stderr);
    const j1 = jsonOf<DeployJson>(first);
    const j2 = jsonOf<DeployJson>(second);
    const id1 = String(j1.release);
    const id2 = String(j2.release);
    for (const h of j2.hosts) {
      assert.equal(h.outcome, 'switched');
      assert.equal(h.transferred, FILES / 10 + 1, `${h.host}: the changed files and the version file were sent, nothing else`);
    }
    for (const h of fleet.hosts) {
      const dir = on(h);
      assert.equal(current(dir), id2);
      assert.deepEqual(stalePaths(v2, path.join(dir, 'current')), [], `${h.alias}: the live release is the build, byte for byte`);
      const a = fs.statSync(path.join(dir, 'releases', id1, 'lib', 'f001.js'));
      const b = fs.statSync(path.join(dir, 'releases', id2, 'lib', 'f001.js'));
      assert.equal(a.ino, b.ino, `${h.alias}: an unchanged file is a hardlink to the previous release`);
      const c = fs.statSync(path.join(dir, 'releases', id2, 'lib', 'f003.js'));
      assert.notEqual(c.ino, fs.statSync(path.join(dir, 'releases', id1, 'lib', 'f003.js')).ino, `${h.alias}: a changed file is its own`);
      for (const id of [id1, id2]) {
        const record = JSON.parse(fs.readFileSync(path.join(dir, '.atomic-deploy', 'releases', `${id}.json`), 'utf8')) as { digest?: string };
        const text = fs.readFileSync(path.join(dir, '.atomic-deploy', 'manifests', `${id}.json`));
        assert.equal(record.digest, `sha256:${createHash('sha256').update(text).digest('hex')}`, `${h.alias}: release ${id}'s record holds its manifest's digest`);
      }
      assert.deepEqual(fs.readdirSync(path.join(dir, '.tmp')).filter((n) => n.startsWith('stage.')), [], `${h.alias}: no stage left`);
    }
  });

  void test('hosts on the same release: one sends its manifest whole, the others only prove its digest by hashing it there', async (t) => {
    const { root, on } = newRoot('shared-manifest');
    const v1 = build(t, 'v1', new Set());
    const v2 = build(t, 'v2', tenPercent(11));
    assert.equal((await cli(['deploy', v1, root, ...hostArgs])).code, 0);
    const result = await cli(['deploy', v2, root, ...hostArgs]);
    assert.equal(result.code, 0, result.stderr);
    const output = `${result.stdout}\n${result.stderr}`;
    const byHash = output.split('\n').filter((l) => /not sent again/.test(l));
    assert.equal(byHash.length, fleet.hosts.length - 1, `one host reads the manifest whole, the others by hash:\n${output}`);
    assert.equal(new Set(byHash.map((l) => /host\d/.exec(l)?.[0])).size, fleet.hosts.length - 1, 'each line names a host of its own');
    for (const h of fleet.hosts) assert.deepEqual(stalePaths(v2, path.join(on(h), 'current')), [], `${h.alias}: the live release is the build`);
  });

  void test('a previous release edited in place (size and mtime kept) is caught on the host and the built bytes are sent', async (t) => {
    const { root, on } = newRoot('tampered');
    const v1 = build(t, 'v1', new Set());
    const v2 = build(t, 'v2', tenPercent(5));
    assert.equal((await cli(['deploy', v1, root, ...hostArgs])).code, 0);
    const host2 = fleet.hosts[1] as FleetHost;
    const file = path.join(on(host2), 'current', 'lib', 'f001.js');
    const st = fs.statSync(file);
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('v1', 'XX'));
    fs.utimesSync(file, st.atime, st.mtime);
    const result = await cli(['deploy', v2, root, ...hostArgs, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const j = jsonOf<DeployJson>(result);
    assert.equal(j.hosts.find((h) => h.host === 'host2')?.transferred, FILES / 10 + 2, 'host2: the tampered file was sent too');
    assert.equal(j.hosts.find((h) => h.host === 'host1')?.transferred, FILES / 10 + 1);
    for (const h of fleet.hosts) assert.deepEqual(stalePaths(v2, path.join(on(h), 'current')), [], `${h.alias}: the live release is the build`);
  });

  void test('a previous release chmod-ed in place (content kept) is caught on the host: the file is sent, the new release has the built mode', async (t) => {
    const { j, h1, old, now, root, v2 } = await redeployAfterTampering(t, 'chmodded', 6, 'lib/f002.js', (file) => fs.chmodSync(file, 0o600));
    assert.equal(h1?.transferred, FILES / 10 + 2, 'host1: the chmod-ed file was sent too');
    assert.match((h1?.warnings ?? []).join('\n'), /1 file of release \d+ no longer matches? its manifest/);
    assert.equal(j.hosts.find((h) => h.host === 'host2')?.transferred, FILES / 10 + 1);
    // A hardlink would share the inode, and with it the mode 600 the manifest does not hold.
    assert.notEqual(fs.statSync(now).ino, fs.statSync(old).ino, 'host1: the file is not a link to the chmod-ed inode');
    assert.equal(fs.statSync(now).mode & 0o777, fs.statSync(path.join(v2, 'lib', 'f002.js')).mode & 0o777, 'host1: the built mode');
    assert.equal(fs.statSync(old).mode & 0o777, 0o600, 'control: the previous release still holds the chmod-ed inode a link would have shared');
    const verify = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(verify.code, 0, `the live release matches its manifest on every host:\n${verify.stdout}${verify.stderr}`);
  });

  void test('the local engine\'s link guard holds on hosts: an unchanged group-writable or setuid file is sent, never shared with the live release', async (t) => {
    const { root, on } = newRoot('guarded');
    const v1 = build(t, 'v1', new Set());
    const v2 = build(t, 'v2', tenPercent(7));
    // Unchanged between the builds, but another user may write the first in place, and a chmod of the second would change every release's.
    for (const dir of [v1, v2]) {
      fs.chmodSync(path.join(dir, 'lib', 'f001.js'), 0o664);
      fs.chmodSync(path.join(dir, 'lib', 'f002.js'), 0o4755);
    }
    const first = jsonOf<DeployJson>(await cli(['deploy', v1, root, ...hostArgs, '--json']));
    const result = await cli(['deploy', v2, root, ...hostArgs, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const j = jsonOf<DeployJson>(result);
    for (const h of j.hosts) assert.equal(h.transferred, FILES / 10 + 3, `${h.host}: the changed files, the version file and the two guarded files were sent`);
    for (const h of fleet.hosts) {
      const inode = (id: string, rel: string): number => fs.statSync(path.join(on(h), 'releases', id, rel)).ino;
      for (const rel of ['lib/f001.js', 'lib/f002.js']) assert.notEqual(inode(String(j.release), rel), inode(String(first.release), rel), `${h.alias}: ${rel} is its own`);
      // Control: an unchanged file with an ordinary mode is still linked.
      assert.equal(inode(String(j.release), 'lib/f004.js'), inode(String(first.release), 'lib/f004.js'), `${h.alias}: lib/f004.js is linked`);
      assert.deepEqual(stalePaths(v2, path.join(on(h), 'current')), [], `${h.alias}: the live release is the build`);
    }
  });

  void test('a previous release chown-ed in place on a host (bytes and mode kept) is caught there: the file is sent with the deploy\'s owner, not shared', async (t) => {
    assert.equal(process.getuid?.(), 0, 'this test chowns a file on a host: run it as root');
    // As `chown -R www-data` in an after-switch hook would leave it: the web server's user may now write it in place.
    const { j, h1, old, now, release } = await redeployAfterTampering(t, 'chowned', 8, 'lib/f001.js', (file) => fs.chownSync(file, 33, 33));
    assert.equal(h1?.transferred, FILES / 10 + 2, 'host1: the chown-ed file was sent too');
    assert.match((h1?.warnings ?? []).join('\n'), /1 file of release \d+ no longer matches its manifest or owner/);
    assert.equal(j.hosts.find((h) => h.host === 'host2')?.transferred, FILES / 10 + 1);
    assert.notEqual(fs.statSync(now).ino, fs.statSync(old).ino, 'host1: the file is not a link to the chown-ed inode');
    assert.equal(fs.statSync(now).uid, fs.statSync(release).uid, 'host1: owned as the rest of the release');
    assert.equal(fs.statSync(old).uid, 33, 'control: the previous release still holds the inode a link would have shared');
  });

  void test('a file of the live release given a name outside the releases on a host (ln, a dedup tool) is sent on an unchanged redeploy: a write through that name leaves the new live release alone', async (t) => {
    const { root, on } = newRoot('outside-name');
    const v1 = build(t, 'v1', new Set());
    const first = jsonOf<DeployJson>(await cli(['deploy', v1, root, ...hostArgs, '--json']));
    const host1 = fleet.hosts[0] as FleetHost;
    const r1 = path.join(on(host1), 'releases', String(first.release));
    // As `ln -f releases/r1/x /var/www/x` or `hardlink`/`rdfind`/`jdupes` leave it: the bytes are still the build's.
    const outside = path.join(on(host1), 'f005.js');
    fs.linkSync(path.join(r1, 'lib', 'f005.js'), outside);
    const result = await cli(['deploy', v1, root, ...hostArgs, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const j = jsonOf<DeployJson>(result);
    const r2 = path.join(on(host1), 'releases', String(j.release));
    // `cp` over an existing file (or any write in place) through the other name.
    fs.writeFileSync(outside, 'export const v = "defaced";\n');
    assert.deepEqual(stalePaths(v1, path.join(on(host1), 'current')), [], 'host1: the live release is still the build');
    assert.equal(fs.readFileSync(path.join(r1, 'lib', 'f005.js'), 'utf8'), 'export const v = "defaced";\n', 'control: the write reached the previous release, which shares the inode');
    const h1 = j.hosts.find((h) => h.host === 'host1');
    assert.equal(h1?.transferred, 1, 'host1: the file with a name outside the releases was sent');
    assert.equal(h1?.linked, FILES, 'host1: every other file was linked');
    assert.match((h1?.warnings ?? []).join('\n'), /1 file of release \d+ no longer matches its manifest or owner, or has a name outside the releases/);
    for (const h of j.hosts.filter((x) => x.host !== 'host1')) assert.equal(h.transferred, 0, `${h.host}: nothing sent`);
    // rsync replaced the staged link by rename: the new file is an inode of its own, and the old one has no third name.
    assert.notEqual(fs.statSync(path.join(r2, 'lib', 'f005.js')).ino, fs.statSync(outside).ino, 'host1: the live file shares the inode named outside the releases');
    assert.equal(fs.statSync(outside).nlink, 2, 'host1: the release and the outside name, nothing else');
    // Every other regular file is a link of the previous release: inodes counted.
    const linked = ['version', ...Array.from({ length: FILES }, (_, i) => `lib/f${String(i).padStart(3, '0')}.js`)].filter((rel) => fs.statSync(path.join(r2, rel)).ino === fs.statSync(path.join(r1, rel)).ino);
    assert.equal(linked.length, FILES, 'host1: the 100 other files are links');
  });

  void test('a redeploy sends the new manifest as an rsync delta against the host\'s current one: a fraction of its bytes, stored exactly', async (t) => {
    const { root, on } = newRoot('delta');
    // 2,000 files, 20 of them changed: the manifest's lines differ in 1% of places.
    const make = (tag: string, changed: (i: number) => boolean): string => {
      const dir = tempDir(t, 'fleet-delta-');
      for (let d = 0; d < 20; d++) {
        fs.mkdirSync(path.join(dir, `d${d}`));
        for (let i = 0; i < 100; i++) fs.writeFileSync(path.join(dir, `d${d}`, `f${i}.txt`), `${changed(d * 100 + i) ? tag : 'v1'} ${d} ${i}\n`);
      }
      return dir;
    };
    const v1 = make('v1', () => false);
    const v2 = make('v2', (n) => n % 100 === 7);
    const first = jsonOf<DeployJson>(await cli(['deploy', v1, root, ...hostArgs, '--json']));
    const second = await cli(['deploy', v2, root, ...hostArgs, '--json']);
    assert.equal(second.code, 0, second.stderr);
    const j = jsonOf<DeployJson>(second);
    for (const h of fleet.hosts) {
      const stored = fs.readFileSync(path.join(on(h), '.atomic-deploy', 'manifests', `${String(j.release)}.json`));
      const size = stored.length;
      const record = JSON.parse(fs.readFileSync(path.join(on(h), '.atomic-deploy', 'releases', `${String(j.release)}.json`), 'utf8')) as { digest?: string };
      assert.equal(record.digest, `sha256:${createHash('sha256').update(stored).digest('hex')}`, `${h.alias}: the stored manifest is the one the record names`);
      const row = j.hosts.find((x) => x.host === h.alias);
      assert.equal(row?.transferred, 20, `${h.alias}: the 20 changed files were sent`);
      const sent = row?.manifestSentBytes ?? Number.NaN;
      // Control: the first deploy (no manifest on the host to send against) sent it whole.
      const whole = first.hosts.find((x) => x.host === h.alias)?.manifestSentBytes ?? Number.NaN;
      assert.ok(whole >= fs.statSync(path.join(on(h), '.atomic-deploy', 'manifests', `${String(first.release)}.json`)).size, `${h.alias}: the first manifest went whole (${whole} bytes)`);
      assert.ok(sent < size / 4, `${h.alias}: ${sent} bytes sent for a ${size}-byte manifest`);
      assert.deepEqual(stalePaths(v2, path.join(on(h), 'current')), [], `${h.alias}: the live release is the build`);
    }
    const verify = await cli(['verify', root, ...hostArgs]);
    assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  });

  void test('a truncated manifest on one host is never trusted: that host gets every file, with a warning', async (t) => {
    const { root, on } = newRoot('corrupt');
    const v1 = build(t, 'v1', new Set());
    const v2 = build(t, 'v2', tenPercent(7));
    const first = jsonOf<DeployJson>(await cli(['deploy', v1, root, ...hostArgs, '--json']));
    const host3 = fleet.hosts[2] as FleetHost;
    const manifest = path.join(on(host3), '.atomic-deploy', 'manifests', `${String(first.release)}.json`);
    fs.truncateSync(manifest, Math.floor(fs.statSync(manifest).size / 2));
    const result = await cli(['deploy', v2, root, ...hostArgs, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const j = jsonOf<DeployJson>(result);
    const h3 = j.hosts.find((h) => h.host === 'host3');
    assert.equal(h3?.transferred, FILES + 1, 'host3: every file was sent');
    assert.match((h3?.warnings ?? []).join('\n'), /manifest .* not trusted/);
    assert.equal(j.hosts.find((h) => h.host === 'host1')?.transferred, FILES / 10 + 1);
    for (const h of fleet.hosts) assert.deepEqual(stalePaths(v2, path.join(on(h), 'current')), [], `${h.alias}: the live release is the build`);
  });

  void test('one release log format on both engines: a fleet release verifies and is linked from by the local engine on its host, and the next fleet deploy links from a release made there locally', async (t) => {
    const { root, on } = newRoot('formats');
    const v1 = build(t, 'v1', new Set());
    const v2 = build(t, 'v2', tenPercent(1));
    const v3 = build(t, 'v3', tenPercent(2));
    const first = await cli(['deploy', v1, root, ...hostArgs, '--json']);
    assert.equal(first.code, 0, first.stderr);
    const host1 = fleet.hosts[0] as FleetHost;
    const host2 = fleet.hosts[1] as FleetHost;
    // host2's record in the form fleet hosts wrote until 2026-12-04: the digest as `manifest`.
    const legacy = path.join(on(host2), '.atomic-deploy', 'releases', `${String(jsonOf<DeployJson>(first).release)}.json`);
    const { digest, ...rest } = JSON.parse(fs.readFileSync(legacy, 'utf8')) as { digest?: string };
    assert.match(String(digest), /^sha256:[0-9a-f]{64}$/, 'a fleet record holds the digest as the local engine does');
    fs.writeFileSync(legacy, `${JSON.stringify({ ...rest, manifest: digest })}\n`);
    const legacyVerified = await cli(['verify', on(host2)]);
    assert.equal(legacyVerified.code, 0, legacyVerified.stdout + legacyVerified.stderr);
    // On host1 itself, as its operator would: the local CLI on the root the fleet made.
    const local = on(host1);
    const verified = await cli(['verify', local]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
    const deployed = await cli(['deploy', v2, local, '--strategy', 'hardlink', '--json']);
    assert.equal(deployed.code, 0, deployed.stderr);
    const d = jsonOf<{ linked: number; copied: number; warnings?: string[] }>(deployed);
    assert.equal(d.linked, FILES - FILES / 10, `the unchanged files were linked from the fleet's release (${deployed.stderr})`);
    // The next fleet deploy: host1's live release was made by the local engine.
    const third = await cli(['deploy', v3, root, ...hostArgs, '--json']);
    assert.equal(third.code, 0, third.stderr);
    const h1 = jsonOf<DeployJson>(third).hosts.find((h) => h.host === 'host1');
    // v2 -> v3: 20 files differ (10 changed back, 10 changed), and the version file.
    assert.equal(h1?.transferred, FILES / 5 + 1, 'host1: only what differs from its locally made release was sent');
    const h2 = jsonOf<DeployJson>(third).hosts.find((h) => h.host === 'host2');
    assert.equal(h2?.transferred, FILES / 10 + 1, 'host2: its legacy record\'s digest was trusted');
    for (const h of fleet.hosts) assert.deepEqual(stalePaths(v3, path.join(on(h), 'current')), [], `${h.alias}: the live release is the build`);
    const all = await cli(['verify', root, ...hostArgs]);
    assert.equal(all.code, 0, all.stdout + all.stderr);
    assert.equal((await cli(['verify', local])).code, 0, 'the local verify of the fleet release on host1');
    // `releases --host` names each release's digest, as the local listing does.
    const listed = jsonOf<{ hosts: { host: string; releases: { id: string; digest?: string }[] }[] }>(await cli(['releases', root, ...hostArgs, '--json']));
    for (const h of listed.hosts) for (const r of h.releases) assert.match(String(r.digest), /^sha256:[0-9a-f]{64}$/, `${h.host}: release ${r.id}`);
  });
});
