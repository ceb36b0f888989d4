// A full disk while an archive is extracted: files are written behind the parser on the thread
// pool, and every write still in flight settles before the stage is removed, so the root is as it
// was and no file turns up in .tmp/ after the command exits.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir } from '../harness/cli.ts';
import { mountTmpfs, requireRoot } from '../harness/faults.ts';
import { makeSource, treeSnapshot } from '../harness/invariants.ts';

void test('ENOSPC mid-extraction (many small files, then a large one): exit 1, root unchanged, .tmp/ empty and stays empty', async (t) => {
  requireRoot();
  const dir = tempDir(t);
  const disk = mountTmpfs(t, { size: '6m' });
  const root = path.join(disk, 'root');
  const first = await runCli(['deploy', makeSource(path.join(dir, 'v1'), 'v1'), root, '--no-fsync']);
  assert.equal(first.code, 0, first.stderr);
  const build = path.join(dir, 'build');
  fs.mkdirSync(path.join(build, 'assets'), { recursive: true });
  for (let i = 0; i < 400; i++) fs.writeFileSync(path.join(build, 'assets', `f${i}.js`), Buffer.alloc(8192, i % 251));
  fs.writeFileSync(path.join(build, 'big.bin'), Buffer.alloc(8 * 1024 * 1024, 7));
  const artifact = path.join(dir, 'site.tar');
  execFileSync('tar', ['-cf', artifact, '-C', build, '.']);
  for (const name of [artifact]) {
    const before = treeSnapshot(root);
    const r = await runCli(['deploy', name, root, '--no-fsync']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /ENOSPC|no space/i);
    // Late writes would land after the removal: look again after a pause.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), []);
    assert.deepEqual(treeSnapshot(root), before);
  }
});
