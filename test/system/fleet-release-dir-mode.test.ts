// The release directory on a fleet host, as locally (release-dir-mode.test.ts): rsync gives the
// host's stage the build directory's mode, so a 0700 build (or an archive whose `./` is 0700,
// extracted locally and sent the same way) went live 0700 on every host. Placing opens it to
// everyone, other bits kept; the manifest the hosts store records that mode, so verify passes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, tempDir, writeTree } from '../harness/cli.ts';
import { rootNamer } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

const { fleet, hostArgs, cli } = fleetSuite(1, { prefix: 'rdm', timeoutMs: 180_000 });
const newRoot = rootNamer('m');

void describe('the release directory of a 0700 build on a namespace host', () => {
  void test('a 0700 build directory and a tar.gz whose ./ is 0700 go live 0755 on the host, and verify --host passes', async (t) => {
    const dir = tempDir(t, 'fleet-rdm-');
    const src = writeTree(path.join(dir, 'build'), { 'index.html': '<h1>ok</h1>\n' });
    fs.chmodSync(src, 0o700);
    const tgz = path.join(dir, 'app.tgz');
    execFileSync('tar', ['-czf', tgz, '-C', src, '.']);
    for (const [source, name] of [[src, 'dir'], [tgz, 'tgz']] as const) {
      const { root, on } = newRoot(name);
      const r = await cli(['deploy', source, root, ...hostArgs, '--json']);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      const id = jsonOf<{ release: string }>(r).release;
      for (const h of fleet.hosts) {
        const release = path.join(on(h), 'releases', id);
        assert.equal((fs.statSync(release).mode & 0o7777).toString(8), '755', `${name} on ${h.alias}: the release directory's mode`);
        const manifest = JSON.parse(fs.readFileSync(path.join(on(h), '.atomic-deploy', 'manifests', `${id}.json`), 'utf8')) as { root: { mode: number } };
        assert.equal(manifest.root.mode.toString(8), '755', `${name} on ${h.alias}: the manifest's root mode`);
      }
      const v = await cli(['verify', root, ...hostArgs]);
      assert.equal(v.code, 0, `${name}: verify: ${v.stdout}${v.stderr}`);
    }
  });
});
