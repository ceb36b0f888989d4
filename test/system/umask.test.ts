// Who can read a release is decided by the build's modes, which the release keeps, never by the
// umask of the shell that deployed it: the directories a release is reached through that a deploy
// makes (the root and its missing parents, releases/, shared/ and what --shared-create makes in
// it, the directories a shared path needs in the release) are 0755 under umask 027 and 077 too,
// so that a web server running as another user serves the site instead of answering 403. The
// deploy's own state (.atomic-deploy/) keeps the umask, and a directory that was there is left
// as it was.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../harness/cli.ts';
import { asUser, runWrapped } from '../harness/faults.ts';

const modeOf = (p: string): number => fs.statSync(p).mode & 0o777;

/** A world-readable build (0755 directories, 0644 files) in a directory other users may enter. */
function setup(t: { after(fn: () => void): void }): { dir: string; src: string } {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = path.join(dir, 'build');
  fs.mkdirSync(path.join(src, 'sub'), { recursive: true, mode: 0o755 });
  fs.chmodSync(src, 0o755);
  fs.chmodSync(path.join(src, 'sub'), 0o755);
  fs.writeFileSync(path.join(src, 'index.html'), 'home\n', { mode: 0o644 });
  fs.writeFileSync(path.join(src, 'sub', 'page.html'), 'page\n', { mode: 0o644 });
  return { dir, src };
}

/** Reads a path as the user nobody, as a web server running as its own user would. */
function readAsNobody(command: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: execFileSync(asUser('nobody')[0] as string, [...asUser('nobody').slice(1), ...command], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (error) {
    return { ok: false, out: String((error as { stderr?: string }).stderr ?? error) };
  }
}

for (const umask of ['027', '077']) {
  void test(`under umask ${umask} the directories a deploy makes on the way to a release are 0755, and another user reads the site`, async (t) => {
    const { dir, src } = setup(t);
    // srv/ does not exist either: mkdir -p makes it.
    const root = path.join(dir, 'srv', 'app');
    const deployed = await runWrapped(
      ['deploy', src, root, '--quiet', '--shared-file', 'config/app/.env', '--shared-dir', 'storage/uploads', '--shared-create'],
      { prefix: ['sh', '-c', `umask ${umask}; exec "$@"`, 'sh'] },
    );
    assert.equal(deployed.code, 0, deployed.stderr);
    const reached = ['srv', 'srv/app', 'srv/app/releases', 'srv/app/shared', 'srv/app/shared/storage', 'srv/app/shared/storage/uploads', 'srv/app/shared/config', 'srv/app/shared/config/app', 'srv/app/current/config', 'srv/app/current/config/app', 'srv/app/current/storage'];
    for (const d of reached) assert.equal(modeOf(path.join(dir, d)).toString(8), '755', d);
    // The release keeps the build's modes.
    assert.equal(modeOf(path.join(root, 'current')).toString(8), '755');
    assert.equal(modeOf(path.join(root, 'current', 'index.html')).toString(8), '644');
    // Ours keeps the umask; a created shared file holds secrets: 0600.
    assert.equal(modeOf(path.join(root, '.atomic-deploy')) & Number.parseInt(umask, 8), 0, '.atomic-deploy/ keeps the umask');
    assert.equal(modeOf(path.join(root, 'shared', 'config', 'app', '.env')).toString(8), '600');
    // What a web server running as another user sees.
    const page = readAsNobody(['cat', path.join(root, 'current', 'sub', 'page.html')]);
    assert.ok(page.ok, page.out);
    assert.equal(page.out, 'page\n');
    const uploads = readAsNobody(['ls', path.join(root, 'current', 'storage', 'uploads') + '/']);
    assert.ok(uploads.ok, uploads.out);
    // The manifest holds the modes the release has.
    const verified = await runCli(['verify', root]);
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  });
}

void test('a root directory that was there keeps its mode; what the deploy makes in it is 0755 under umask 077', async (t) => {
  const { dir, src } = setup(t);
  const root = path.join(dir, 'app');
  fs.mkdirSync(root);
  fs.chmodSync(root, 0o750);
  const deployed = await runWrapped(['deploy', src, root, '--quiet'], { prefix: ['sh', '-c', 'umask 077; exec "$@"', 'sh'] });
  assert.equal(deployed.code, 0, deployed.stderr);
  assert.equal(modeOf(root).toString(8), '750', 'the root was there: its mode is the owner\'s choice');
  assert.equal(modeOf(path.join(root, 'releases')).toString(8), '755');
});

void test('under a setgid parent the directories a deploy makes keep the setgid bit they inherit (their group stays the shared one)', async (t) => {
  const { dir, src } = setup(t);
  const parent = path.join(dir, 'www');
  fs.mkdirSync(parent);
  fs.chmodSync(parent, 0o2775);
  const root = path.join(parent, 'app');
  const deployed = await runWrapped(['deploy', src, root, '--quiet', '--shared-dir', 'uploads', '--shared-create'], { prefix: ['sh', '-c', 'umask 077; exec "$@"', 'sh'] });
  assert.equal(deployed.code, 0, deployed.stderr);
  for (const d of ['app', 'app/releases', 'app/shared', 'app/shared/uploads']) assert.equal((fs.statSync(path.join(parent, d)).mode & 0o7777).toString(8), '2755', d);
});

// Under umask 0777 a deploy by a user who is not root crashed with a Node stack; under 0222 or 0277
// it left a half-made root (.atomic-deploy 0555) that refused every deploy after it, with the hint
// "run as the user that owns the deploy root" to that user.
void test('a umask that takes the owner\'s own bits is refused before anything is made: exit 2, one line, for root and for another user', async (t) => {
  const { dir, src } = setup(t);
  const home = path.join(dir, 'home');
  fs.mkdirSync(home);
  execFileSync('chown', ['nobody:', home]);
  for (const umask of ['0777', '0222', '0277', '0477']) {
    for (const user of [undefined, 'nobody']) {
      const root = path.join(home, `r${umask}`);
      const label = `umask ${umask} as ${user ?? 'root'}`;
      const r = await runWrapped(['deploy', src, root], { prefix: [...(user ? asUser(user) : []), 'sh', '-c', `umask ${umask}; exec "$@"`, 'sh'] });
      assert.equal(r.code, 2, `${label}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^error: the umask ${umask} takes [a-z, ]+ permission from the owner of what this command makes: its own directories would refuse it\\nhint: run it under a umask that leaves the owner rwx: umask 022 \\(or 077 to keep the state private\\)\\n$`), label);
      assert.equal(fs.existsSync(root), false, `${label}: nothing made`);
    }
  }
  // Commands that take the lock refuse it too, before taking it.
  const root = path.join(home, 'app');
  assert.equal((await runWrapped(['deploy', src, root, '--quiet'], { prefix: asUser('nobody') })).code, 0);
  assert.equal((await runWrapped(['deploy', src, root, '--quiet'], { prefix: asUser('nobody') })).code, 0);
  for (const args of [['rollback', root], ['prune', root, '--keep', '1']]) {
    const r = await runWrapped(args, { prefix: [...asUser('nobody'), 'sh', '-c', 'umask 0277; exec "$@"', 'sh'] });
    assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`);
    assert.equal(fs.existsSync(path.join(root, '.deploy.lock')), false, args[0]);
  }
  // A root half made by an older version under such a umask: the hint names the directory and its mode.
  fs.chmodSync(path.join(root, '.atomic-deploy'), 0o555);
  const half = await runWrapped(['deploy', src, root], { prefix: asUser('nobody') });
  assert.equal(half.code, 1, half.stderr);
  assert.match(half.stderr, new RegExp(`^hint: ${root}/\\.atomic-deploy is this user's own, but its mode is 0555, which refuses its owner: chmod u\\+rwx ${root}/\\.atomic-deploy$`, 'm'));
});

// A build made under umask 077 (every file 0600) deployed with exit 0 and no word, and a web server
// running as another user answered 403 for every file; the directories on the way were 0755
// (above), so only the files' own modes stood in the way. A warning names it, for a build
// directory and for an artifact; one readable file among private ones is silence.
void test('a build none of whose files others may read is deployed with a warning saying so and how to fix it; one readable file is enough for silence', async (t) => {
  const { dir, src } = setup(t);
  for (const f of ['index.html', 'sub/page.html']) fs.chmodSync(path.join(src, f), 0o600);
  const root = path.join(dir, 'app');
  const closed = await runCli(['deploy', src, root, '--json']);
  assert.equal(closed.code, 0, closed.stderr);
  const said = `no file of the build is readable by its group or other users (all 2, index.html 0600 among them: made under umask 077?): a web server running as another user answers 403 for each; make them readable (chmod -R go+rX ${src}) or build under umask 022, then deploy again`;
  assert.deepEqual((JSON.parse(closed.stdout) as { warnings: string[] }).warnings, [said]);
  // What the warning says: another user cannot read the live page.
  assert.equal(readAsNobody(['cat', path.join(root, 'current', 'index.html')]).ok, false);
  // The dry run says it too, before anything is written.
  const dry = await runCli(['deploy', src, root, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.ok(dry.stderr.includes(`warning: ${said}`), dry.stderr);

  // An artifact packed from such a tree: the same, with the fix for an archive.
  const tgz = path.join(dir, 'build.tgz');
  execFileSync('tar', ['-czf', tgz, '-C', src, '.']);
  const fromArchive = await runCli(['deploy', tgz, root, '--json']);
  assert.equal(fromArchive.code, 0, fromArchive.stderr);
  assert.deepEqual((JSON.parse(fromArchive.stdout) as { warnings: string[] }).warnings, [
    'no file of the build is readable by its group or other users (all 2, index.html 0600 among them: made under umask 077?): a web server running as another user answers 403 for each; pack the artifact from a tree made readable (chmod -R go+rX) or built under umask 022, then deploy again',
  ]);

  // One readable file (a private key among public pages is no mistake, nor is the reverse): silence.
  fs.chmodSync(path.join(src, 'sub', 'page.html'), 0o644);
  const open = await runCli(['deploy', src, root, '--json']);
  assert.equal(open.code, 0, open.stderr);
  assert.deepEqual((JSON.parse(open.stdout) as { warnings?: string[] }).warnings ?? [], []);
});
