// kill -9 while an artifact streams into the staged release (a slow loopback server keeps the
// extraction going): current must still resolve to the complete previous release, and the next
// command must sweep the partial stage (and a spooled zip) and deploy. Before recovery the test
// checks that the kill did land mid-extraction, with a partial stage on disk: else it proves nothing.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { serve } from '../harness/archives.ts';
import { runCli, spawnCli, tempDir } from '../harness/cli.ts';
import { checkRoot, leftovers, makeSource, manifestOf } from '../harness/invariants.ts';

/** Files in the stage (or bytes in the spooled zip) that the extraction has written so far. */
function staged(root: string): number {
  let n = 0;
  for (const name of fs.readdirSync(path.join(root, '.tmp'))) {
    const full = path.join(root, '.tmp', name);
    if (!name.startsWith('stage.')) continue;
    n += fs.statSync(full).isDirectory() ? fs.readdirSync(full, { recursive: true }).length : fs.statSync(full).size;
  }
  return n;
}

void test('kill -9 during extraction: current stays whole, the next command sweeps the partial stage', async (t) => {
  const dir = tempDir(t);
  const v1 = makeSource(path.join(dir, 'v1'), 'v1');
  const v2 = makeSource(path.join(dir, 'v2'), 'v2', { files: 1500, dirs: 20 });
  execFileSync('tar', ['-cf', path.join(dir, 'v2.tar'), '-C', v2, '.']);
  execFileSync('zip', ['-qry', path.join(dir, 'v2.zip'), '.'], { cwd: v2 });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', v1, root])).code, 0);
  const first = fs.readlinkSync(path.join(root, 'current'));
  const sources = [manifestOf(v1), manifestOf(v2)];
  const server = await serve(t, dir, 'ok', { rate: 8 * 1024 });
  for (const name of ['v2.tar', 'v2.zip']) {
    const { child, done } = spawnCli(['deploy', server.url(name), root]);
    // Wait until part of the artifact is on disk, then kill without warning.
    const deadline = Date.now() + 60_000;
    while (staged(root) < 20 && Date.now() < deadline && child.exitCode === null) await sleep(20);
    assert.ok(staged(root) >= 20, `${name}: the extraction never started`);
    child.kill('SIGKILL');
    const r = await done;
    assert.equal(r.signal, 'SIGKILL', `${name}: ${r.stderr}`);
    const during = checkRoot(root, { sources });
    assert.deepEqual(during.problems, [], `${name}: ${during.problems.join('; ')}`);
    assert.equal(fs.readlinkSync(path.join(root, 'current')), first, name);
    assert.notDeepEqual(leftovers(root), [], `${name}: no partial stage to recover; the kill came too late`);
    const status = await runCli(['status', root]);
    assert.equal(status.code, 0, status.stderr);
    const after = checkRoot(root, { sources, clean: true });
    assert.deepEqual(after.problems, [], `${name}: ${after.problems.join('; ')}`);
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')).filter((n) => n.startsWith('stage.')), [], `${name}: a stage or spooled zip after recovery`);
  }
  const r = await runCli(['deploy', path.join(dir, 'v2.tar'), root]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(checkRoot(root, { sources, clean: true }).problems, []);
});
