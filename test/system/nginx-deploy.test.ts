// What a visitor sees during deploys: nginx serves `<root>/current` under wrk load while the CLI
// deploys two builds in turn. Not one non-2xx or foreign body; the unlink + symlink control in the
// same run, against the same nginx and root, must show failures or the zero proves nothing.
// `bench/nginx.ts` runs the same thing longer (100+ deploys) for docs/benchmarks.md.
// test-runner: alone (nginx under wrk load)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { cliDeploy, makeSite, switchesUnderLoad } from '../harness/deploy-load.ts';
import { startNginx, type NginxServer } from '../harness/nginx.ts';
import { unlinkSymlinkSwap } from '../harness/swappers.ts';

const DEPLOYS = 30;

void test(`nginx under wrk: ${DEPLOYS} CLI deploys give 0 non-2xx and 0 foreign bodies; unlink+symlink control fails`, async (t) => {
  const site = await makeSite();
  const running: { nginx?: NginxServer } = {};
  // One hook, so nginx stops before its docroot goes.
  t.after(async () => {
    await running.nginx?.stop();
    await site.cleanup();
  });
  await cliDeploy(site.builds[0], site.root);
  const nginx = await startNginx({ docroot: path.join(site.root, 'current') });
  running.nginx = nginx;
  const load = { url: `${nginx.url}/index.html`, bodies: site.bodies, threads: 1, connections: 16 };

  const ours = await switchesUnderLoad({
    ...load,
    switches: DEPLOYS,
    switchOnce: (i) => cliDeploy(site.builds[(i + 1) % 2] as string, site.root),
  });
  t.diagnostic(`CLI deploys: ${JSON.stringify({ ...ours, switchMs: undefined })}`);
  assert.equal(ours.switches, DEPLOYS);
  // Enough requests that a zero is evidence, not an idle server.
  assert.ok(ours.requests >= 20 * DEPLOYS, `only ${ours.requests} requests during ${DEPLOYS} deploys`);
  assert.equal(ours.non2xx, 0, 'non-2xx responses during CLI deploys');
  assert.equal(ours.foreignBodies, 0, 'bodies of neither release during CLI deploys');
  assert.equal(ours.socketErrors, 0, 'socket errors during CLI deploys');
  const releases = fs.readdirSync(path.join(site.root, 'releases')).sort();
  assert.equal(releases.length, DEPLOYS + 1);

  // Control: the same nginx, root and load, switching between the last two releases the naive way.
  const targets = releases.slice(-2).map((id) => `releases/${id}`);
  const control = await switchesUnderLoad({
    ...load,
    durationMs: 2000,
    switchOnce: (i) => unlinkSymlinkSwap(site.root, targets[i % 2] as string),
  });
  t.diagnostic(`unlink+symlink control: ${JSON.stringify({ ...control, switchMs: undefined })}`);
  assert.ok(control.non2xx > 0, `the control gave no non-2xx in ${control.requests} requests and ${control.switches} switches: the test could not fail`);
});
