// The artifact's check flags are pins: --sha256, --signature and --allowed-signers given twice
// with different values (a CI script that appends its own pin to a template's) kept the last one
// without a word. Refused with exit 2, nothing written; the same value twice is one pin.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { sha256Of } from '../harness/archives.ts';
import { runCli, tempDir, writeTree } from '../harness/cli.ts';
import { leftovers, treeSnapshot } from '../harness/invariants.ts';

void test('--sha256, --signature and --allowed-signers given twice with different values exit 2 with nothing changed; the same value twice deploys', async (t) => {
  const dir = tempDir(t);
  const build = writeTree(path.join(dir, 'build'), { 'index.html': 'ok\n' });
  const tgz = path.join(dir, 'app.tgz');
  execFileSync('tar', ['-czf', tgz, '-C', build, '.']);
  const sha = sha256Of(tgz);
  const other = 'f'.repeat(64);
  const root = path.join(dir, 'root');
  const first = await runCli(['deploy', build, root, '--no-fsync']);
  assert.equal(first.code, 0, first.stderr);
  const before = treeSnapshot(root);
  for (const [flag, a, b] of [['--sha256', other, sha], ['--signature', 'a.sig', 'b.sig'], ['--allowed-signers', 'one', 'two']] as const) {
    for (const form of [['deploy', tgz, root], [tgz, root]]) {
      const r = await runCli([...form, '--no-fsync', flag, a, flag, b]);
      assert.equal(r.code, 2, `${flag}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^error: .*${flag} is given twice, as "${a}" and as "${b}": one artifact has one, and neither is dropped for the other; nothing was deployed$`, 'm'), flag);
      assert.equal(r.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1);
      assert.deepEqual(treeSnapshot(root), before, `${flag}: the root changed`);
      assert.deepEqual(leftovers(root), []);
    }
  }
  // The same pin twice is one pin: it deploys, and a wrong one twice is still checked.
  const same = await runCli(['deploy', tgz, root, '--no-fsync', '--sha256', sha, '--sha256', sha]);
  assert.equal(same.code, 0, same.stderr);
  const wrong = await runCli(['deploy', tgz, root, '--no-fsync', '--sha256', other, '--sha256', other]);
  assert.equal(wrong.code, 2, wrong.stderr);
  assert.match(wrong.stderr, /sha256 is .*, expected f{64}/);
  assert.ok(fs.existsSync(path.join(root, 'current', 'index.html')));
});
