// A fleet deploy killed with SIGKILL (a CI job's timeout) cannot remove what it made in the
// deploying machine's temp dir: its ssh control directory, the artifact's local stage (the whole
// extracted tree) and the manifest it sent. The next fleet command removes them, and says so;
// a live deploy's directories beside them stay. Without the sweep they stayed until the system
// cleared /tmp.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnCli, tempDir } from '../harness/cli.ts';
import { writeArchive } from '../harness/archives.ts';
import { currentOf } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

const { fleet, env, hostArgs, cli } = fleetSuite(1, { prefix: 'asw', timeoutMs: 90_000 });

const LEFT = /^(?:ad|atomic-deploy-(?:stage|manifest|send|remade|sig))-[A-Za-z0-9]{6}$/;

function leftIn(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => LEFT.test(n)).sort();
}

void describe('what a killed fleet deploy leaves in the temp dir', () => {
  void test('SIGKILL after the switch leaves the control directory, the artifact stage and the manifest; the next fleet command removes them, and not a live one', async (t) => {
    const [h1] = fleet.hosts;
    assert.ok(h1);
    // A short path: ssh's control sockets go into the temp dir only when its path is short.
    const tmp = fs.mkdtempSync('/tmp/asw-');
    t.after(() => fs.rmSync(tmp, { recursive: true, force: true }));
    const files = Array.from({ length: 300 }, (_, i) => ({ name: `site/f${i}.txt`, data: `file ${i}\n` }));
    const artifact = writeArchive('tar.gz', path.join(tempDir(t), 'site.tar.gz'), [{ name: 'site/', type: 'dir' }, ...files]);
    const root = '/srv/asw-root';
    const withTmp = { ...env, TMPDIR: tmp };

    const first = await cli(['deploy', artifact, root, ...hostArgs, '--strip-components', '1', '--release-id', 'r1', '--no-fsync']);
    assert.equal(first.code, 0, first.stderr);
    const run = spawnCli(['deploy', artifact, root, ...hostArgs, '--strip-components', '1', '--release-id', 'r2', '--no-fsync'], { env: withTmp, failpoints: 'fleet-switched=crash', timeoutMs: 90_000 });
    const killed = await run.done;
    assert.equal(killed.signal, 'SIGKILL', killed.stderr);
    const left = leftIn(tmp);
    assert.deepEqual(left.map((n) => n.replace(/-[A-Za-z0-9]{6}$/, '')), ['ad', 'atomic-deploy-manifest', 'atomic-deploy-stage'], `left: ${left.join(', ')}`);
    const stage = left.find((n) => n.startsWith('atomic-deploy-stage-')) as string;
    assert.equal(fs.readdirSync(path.join(tmp, stage, 'release')).length, 300, 'the stage holds the extracted artifact');

    // A deploy running now (this process stands in for it) keeps its directory.
    const live = path.join(tmp, 'atomic-deploy-send-Live01');
    fs.mkdirSync(live, { mode: 0o700 });
    fs.writeFileSync(path.join(live, 'files'), 'a\0');
    const { thisProcess } = await import('../../src/act/lock.ts');
    const { scratchOwnerText, SCRATCH_OWNER } = await import('../../src/act/scratch.ts');
    fs.symlinkSync(scratchOwnerText(thisProcess(), fs.readlinkSync('/proc/self/ns/pid')), path.join(live, SCRATCH_OWNER));

    const status = spawnCli(['status', root, ...hostArgs], { env: withTmp, timeoutMs: 90_000 });
    const s = await status.done;
    assert.equal(s.code, 0, s.stderr);
    for (const name of left) {
      assert.ok(!fs.existsSync(path.join(tmp, name)), `${name} was left:\n${s.stderr}`);
      assert.match(s.stdout, new RegExp(`removing ${path.join(tmp, name)}, left by atomic-deploy process ${String(run.child.pid)}, which is gone`));
    }
    assert.deepEqual(leftIn(tmp), ['atomic-deploy-send-Live01']);
    assert.equal(fs.readFileSync(path.join(live, 'files'), 'utf8'), 'a\0');
    // The killed deploy itself was finished by the status command, as ever: r2 went live on the one host.
    assert.equal(currentOf(path.join(h1.srvDir, 'asw-root')), 'r2');
  });
});
