// Shared paths with an artifact source. A directory's shared paths are checked against the build
// before anything is written; an archive's contents are known only once it is extracted. An
// archive that held a shared path (`.env`, `storage/`) made shared/<path> and then failed with a
// raw EEXIST, exit 1, the shared target left behind, and --shared-replace could not help.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, jsonOf, runCli, snapshot, tempDir } from '../harness/cli.ts';
import { writeArchive } from '../harness/archives.ts';

const BUILD = [
  { name: 'index.html', data: 'v2\n' },
  { name: '.env', data: 'APP_KEY=from-the-build\n' },
  { name: 'storage/', type: 'dir' as const },
  { name: 'storage/x.log', data: 'log\n' },
  { name: 'config', type: 'symlink' as const, link: '/etc' },
];

void test('a shared path the archive holds: exit 2 and nothing made without --shared-replace; with it, the link replaces what the archive held', async (t) => {
  const dir = tempDir(t);
  const root = path.join(dir, 'root');
  for (const format of ['tar.gz', 'zip'] as const) {
    const artifact = writeArchive(format, path.join(dir, `dist.${format}`), BUILD);
    fs.rmSync(root, { recursive: true, force: true });
    const first = await runCli(['deploy', artifact, root, '--release-id', 'a1', '--no-fsync', '--quiet', '--shared-dir', 'logs', '--shared-create']);
    assert.equal(first.code, 0, first.stderr);
    const before = snapshot(root);
    // (--shared with no type is refused for an artifact before it is read when shared/ does not
    // have the path either: README, "refuses to guess when nothing does".)
    for (const args of [['--shared-file', '.env'], ['--shared-dir', 'storage']]) {
      const r = await runCli(['deploy', artifact, root, '--no-fsync', ...args, '--shared-create', '--json']);
      assert.equal(r.code, 2, `${format} ${args.join(' ')}: ${r.stdout}${r.stderr}`);
      const error = jsonOf<{ error?: { code: string; message: string; hint: string } }>(r).error;
      assert.equal(error?.code, 'INVALID_SHARED_PATH');
      assert.match(error?.message ?? '', new RegExp(`the source already holds "${args[1]?.replace('.', '\\.')}", which is a shared path`));
      assert.match(error?.hint ?? '', /--shared-replace/);
      assert.deepEqual(snapshot(root), before, `${format} ${args.join(' ')}: the root changed`);
    }
    // A parent the archive made a symlink: the link would land outside the release.
    const through = await runCli(['deploy', artifact, root, '--no-fsync', '--shared-file', 'config/app.ini', '--shared-create']);
    assert.equal(through.code, 2, through.stderr);
    assert.match(through.stderr, /the source holds "config" as a symlink, not a directory/);
    assert.deepEqual(snapshot(root), before);
    assert.equal(fs.existsSync(path.join(root, 'shared', 'config')), false, 'made a shared target through the link');

    const replaced = await runCli(['deploy', artifact, root, '--release-id', 'a2', '--no-fsync', '--shared-file', '.env', '--shared-dir', 'storage', '--shared-create', '--shared-replace', '--json']);
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.equal(currentId(root), 'a2');
    const release = path.join(root, 'releases', 'a2');
    assert.equal(fs.readlinkSync(path.join(release, '.env')), '../../shared/.env');
    assert.equal(fs.readlinkSync(path.join(release, 'storage')), '../../shared/storage');
    assert.equal(fs.readFileSync(path.join(root, 'shared', '.env'), 'utf8'), '', 'the shared file is the one made empty, not the build\'s');
    assert.equal(fs.existsSync(path.join(root, 'shared', 'storage', 'x.log')), false);
    const json = jsonOf<{ files: number }>(replaced);
    assert.equal(json.files, 1, 'the replaced files are not counted');
    const verify = await runCli(['verify', root]);
    assert.equal(verify.code, 0, `${format}: ${verify.stdout}${verify.stderr}`);
  }
});
