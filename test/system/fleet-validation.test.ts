// The fleet refuses what the local engine refuses, before any host is touched: the same
// validation module (plan/validate.ts) runs in both. A hook timeout of 0 used to reach a host as
// `timeout 0`, which means no limit.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { tempDir, writeTree } from '../harness/cli.ts';
import { createFleet, type Fleet, type FleetHost } from '../harness/fleet.ts';
import { DeployError } from '../../src/errors.ts';
import { repositoryWarning } from '../../src/plan/validate.ts';
import { fleetDeploy, type FleetDeployOptions } from '../../src/remote/ops.ts';

let fleet: Fleet;

void describe('fleet input validation against one namespace host', () => {
  before(async () => {
    fleet = await createFleet(1);
  });
  after(async () => {
    await fleet?.destroy();
  });

  const cases: [string, Partial<FleetDeployOptions>, RegExp][] = [
    ['hook timeout 0', { hooks: { beforeSwitch: ['sleep 1'], timeoutMs: 0 } }, /invalid hook timeout/],
    ['negative health timeout', { healthCheck: { command: 'true', timeoutMs: -5 } }, /invalid health timeout/],
    ['empty after-switch hook', { hooks: { afterSwitch: [''] } }, /invalid after-switch hook/],
    ['--keep -1', { keep: -1 }, /--keep must be an integer/],
    ['release id ..', { releaseId: '..' }, /invalid release id/],
  ];
  for (const [name, options, message] of cases) {
    void test(`${name}: exit 2, and the host's root is never created`, async (t) => {
      const host = fleet.hosts[0] as FleetHost;
      const base = `v-${name.replace(/[^a-z0-9]+/gi, '-')}`;
      const src = writeTree(tempDir(t, 'fleet-validate-'), { 'index.html': 'x\n' });
      await assert.rejects(
        fleetDeploy(src, `/srv/${base}`, { hosts: [{ host: host.alias }], ssh: { configFile: fleet.sshConfigPath }, ...options }),
        (error: unknown) => error instanceof DeployError && error.exitCode === 2 && message.test(error.message),
      );
      assert.equal(fs.existsSync(path.join(host.srvDir, base)), false, 'nothing was made on the host');
    });
  }

  void test('a build holding .git deploys with the warning the local engine gives', async (t) => {
    const host = fleet.hosts[0] as FleetHost;
    const src = writeTree(tempDir(t, 'fleet-validate-'), { 'index.html': 'x\n', '.git/config': '[remote "origin"]\n' });
    const warnings: string[] = [];
    const result = await fleetDeploy(src, '/srv/v-git', { hosts: [{ host: host.alias }], ssh: { configFile: fleet.sshConfigPath }, onEvent: (e) => void (e.type === 'warning' && warnings.push(e.message)) });
    assert.ok(result.release);
    assert.deepEqual(warnings, [repositoryWarning(['.git'])]);
    assert.ok(fs.existsSync(path.join(host.srvDir, 'v-git', 'current', 'index.html')));
  });
});
