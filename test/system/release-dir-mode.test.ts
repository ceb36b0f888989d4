// The release directory is on the way to every file the site serves: a build whose top directory
// is 0700 (packed with `tar -C "$(mktemp -d)" -czf app.tgz .`, a zip with such a `./`, or a
// directory deployed as it is) must still go live readable by a web server running as another
// user. Its other bits and, as root, its owner stay the build's; the manifest records the mode
// placed, so verify passes. `nobody` reads the served file through current, as www-data would.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../harness/cli.ts';
import { asUser, requireRoot } from '../harness/faults.ts';

const modeOf = (p: string): number => fs.statSync(p).mode & 0o7777;

/** A build in a directory made as mktemp -d makes one: 0700. */
function privateBuild(dir: string, name: string): string {
  const src = path.join(dir, name);
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'index.html'), '<h1>ok</h1>\n');
  fs.chmodSync(path.join(src, 'index.html'), 0o644);
  fs.chmodSync(src, 0o700);
  return src;
}

/** Whether `user` can read `file` (cat as that user, no privileges kept). */
function readableBy(user: string, file: string): boolean {
  try {
    execFileSync(asUser(user)[0] as string, [...asUser(user).slice(1), 'cat', '--', file], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

async function deployAndCheck(source: string, root: string, owner: { uid: number; gid: number }, mode = 0o755): Promise<void> {
  const what = path.basename(source);
  const r = await runCli(['deploy', source, root, '--no-fsync']);
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  const release = fs.realpathSync(path.join(root, 'current'));
  assert.equal(modeOf(release).toString(8), mode.toString(8), `${what}: the release directory's mode`);
  const st = fs.statSync(release);
  assert.deepEqual([st.uid, st.gid], [owner.uid, owner.gid], `${what}: the release directory keeps the build's owner (as root)`);
  assert.ok(readableBy('nobody', path.join(root, 'current', 'index.html')), `${what}: nobody cannot read current/index.html`);
  const manifest = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy', 'manifests', `${path.basename(release)}.json`), 'utf8')) as { root: { mode: number } };
  assert.equal(manifest.root.mode.toString(8), mode.toString(8), `${what}: the manifest records the mode placed`);
  const v = await runCli(['verify', root]);
  assert.equal(v.code, 0, `${what}: verify: ${v.stdout}${v.stderr}`);
}

void test('a tar.gz, a tar and a zip whose root entry is 0700, and a 0700 build directory, go live readable by a user who is not the owner; owner and verify as before', async (t) => {
  requireRoot();
  const dir = tempDir(t);
  // nobody must be able to reach the root at all, as a web server reaches /srv/www.
  fs.chmodSync(dir, 0o755);
  const src = privateBuild(dir, 'build');
  const tgz = path.join(dir, 'app.tgz');
  execFileSync('tar', ['--owner=1001', '--group=1001', '--numeric-owner', '-czf', tgz, '-C', src, '.']);
  const tar = path.join(dir, 'app.tar');
  execFileSync('tar', ['-cf', tar, '-C', src, '.']);
  const zip = path.join(dir, 'app.zip');
  execFileSync('python3', ['-c', String.raw`
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    for name, mode, data in (('./', 0o040700, b''), ('index.html', 0o100644, b'<h1>ok</h1>\n')):
        i = zipfile.ZipInfo(name, (2024, 1, 2, 3, 4, 6)); i.create_system = 3; i.external_attr = mode << 16
        z.writestr(i, data)
`, zip]);
  // Control: tar -xp gives the directory it extracts into 0700, which nobody cannot enter.
  const ux = path.join(dir, 'ux');
  fs.mkdirSync(ux, { mode: 0o755 });
  execFileSync('tar', ['-xpf', tgz, '-C', ux]);
  assert.equal(modeOf(ux), 0o700, 'control: tar -xp applies the root entry\'s 0700');
  assert.ok(!readableBy('nobody', path.join(ux, 'index.html')), 'control: nobody cannot read through a 0700 directory');

  await deployAndCheck(tgz, path.join(dir, 'root-tgz'), { uid: 1001, gid: 1001 });
  await deployAndCheck(tar, path.join(dir, 'root-tar'), { uid: 0, gid: 0 });
  await deployAndCheck(zip, path.join(dir, 'root-zip'), { uid: 0, gid: 0 });
  fs.chownSync(src, 1001, 1001);
  await deployAndCheck(src, path.join(dir, 'root-dir'), { uid: 1001, gid: 1001 });
  // Bits the build has beyond read and search stay: group write and setgid (0750 + g+ws), and a
  // build its owner may not write (0555, a Nix output) does not become writable.
  const shared = privateBuild(dir, 'shared');
  fs.chmodSync(shared, 0o2770);
  await deployAndCheck(shared, path.join(dir, 'root-shared'), { uid: 0, gid: 0 }, 0o2775);
  const frozen = privateBuild(dir, 'frozen');
  fs.chmodSync(frozen, 0o500);
  await deployAndCheck(frozen, path.join(dir, 'root-frozen'), { uid: 0, gid: 0 }, 0o555);
});
