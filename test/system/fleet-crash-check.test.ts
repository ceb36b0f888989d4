// A fleet deploy killed (kill -9 of the deploying command) while its hosts' health checks ran, on
// two namespace hosts: the next fleet command must record the release live but unverified on
// every host, as the local engine records its own deploy killed there (test/system/crash.test.ts),
// never as a complete, verified release. The hosts' journals used to say only `switched`.
// Control: the same kill once every host's check had passed records it verified.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, spawnCli, tempDir, writeTree } from '../harness/cli.ts';
import { currentOf, rootNamer, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';
import { holderGone, until } from '../harness/invariants.ts';

const { fleet, hostArgs, cli, env } = fleetSuite(2, { prefix: 'fcc', timeoutMs: 120_000 });
const newRoot = rootNamer('c');

interface StatusJson {
  hosts: { host: string; recovered: string[] }[];
}

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-crash-check-'), { 'index.html': `<h1>${version}</h1>\n` });
}

function recordOf(dir: string, id: string): { status: string; afterSwitchFailure?: string } {
  return JSON.parse(fs.readFileSync(path.join(dir, '.atomic-deploy', 'releases', `${id}.json`), 'utf8')) as { status: string; afterSwitchFailure?: string };
}

function journalOf(dir: string): string {
  try {
    return fs.readFileSync(path.join(dir, '.atomic-deploy', 'journal.json'), 'utf8');
  } catch {
    return '';
  }
}

/**
 * A deploy of v2 with `check` as its health check, killed with SIGKILL once `ready` holds of what
 * it printed; then the lock holders' end (their connections went with the process). Returns the
 * release it switched every host to.
 */
async function killedDeploy(t: { after(fn: () => void): void }, root: string, on: (h: FleetHost) => string, check: string, ready: (said: string) => boolean, failpoints?: string): Promise<string> {
  const run = spawnCli(['deploy', site(t, 'v2'), root, ...hostArgs, '--health-check', check, '--health-timeout', '60'], { env, timeoutMs: 110_000, ...(failpoints ? { failpoints } : {}) });
  let said = '';
  run.child.stdout?.on('data', (d: Buffer | string) => (said += String(d)));
  await until(`the deploy to get there:\n${said}`, () => ready(said) || run.child.exitCode !== null || run.child.signalCode !== null, 60_000);
  if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL');
  const r = await run.done;
  assert.equal(r.signal, 'SIGKILL', `${r.stderr}\n${r.stdout}`);
  const live = currentOf(on(fleet.hosts[0] as FleetHost)) as string;
  for (const h of fleet.hosts) assert.equal(currentOf(on(h)), live, `${h.alias}: switched before the kill`);
  await until('the lock holders to be gone', () => fleet.hosts.every((h) => holderGone(on(h))), 60_000);
  return live;
}

void describe('a fleet deploy killed during its health check, on two namespace hosts', () => {
  void test('kill -9 while every host runs its check: the next status records the release unverified on every host', async (t) => {
    const { root, on } = newRoot('all');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const checking = (said: string): boolean => fleet.hosts.every((h) => said.includes(`${h.alias}: health check: sleep 30`));
    const live = await killedDeploy(t, root, on, 'sleep 30', checking);
    const s = await cli(['status', root, ...hostArgs, '--json']);
    assert.equal(s.code, 0, s.stderr);
    const rows = jsonOf<StatusJson>(s).hosts;
    for (const h of fleet.hosts) {
      const recovered = rows.find((r) => r.host === h.alias)?.recovered ?? [];
      assert.ok(recovered.includes(`finished recording deploy of ${live} (it had switched; its process ended before its health check finished: live, unverified)`), `${h.alias}: ${JSON.stringify(recovered)}`);
      const record = recordOf(on(h), live);
      assert.equal(record.status, 'complete', h.alias);
      assert.equal(record.afterSwitchFailure, `its process ended before its health check finished; release ${live} went live unverified`, h.alias);
      assert.equal(journalOf(on(h)), '', `${h.alias}: the journal was cleared`);
    }
    // As the local table says it, a column per host.
    const list = await cli(['releases', root, ...hostArgs]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`^${live} +\\* active, unverified +\\* active, unverified$`, 'm'), list.stdout);
  });

  void test('kill -9 once one host passed its check while the other still ran it: both recorded unverified, the first naming the second', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('one');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    // host1's check passes at once, host2's runs 30 s; the kill comes once host1's journal is past it.
    const check = `test "$(hostname)" = ${h1.hostname} || sleep 30`;
    const past = (said: string): boolean => said.includes(`${h2.alias}: health check:`) && /"phase":"switched"/.test(journalOf(on(h1))) && !journalOf(on(h1)).includes('verifying');
    const live = await killedDeploy(t, root, on, check, past);
    const s = await cli(['status', root, ...hostArgs, '--json']);
    assert.equal(s.code, 0, s.stderr);
    assert.equal(recordOf(on(h1), live).afterSwitchFailure, `its process ended before its health check finished on ${h2.alias}; release ${live} went live unverified`);
    assert.equal(recordOf(on(h2), live).afterSwitchFailure, `its process ended before its health check finished; release ${live} went live unverified`);
  });

  void test('control: killed once every host passed its check (before the commit), the release is recorded verified', async (t) => {
    const { root, on } = newRoot('passed');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const live = await killedDeploy(t, root, on, 'true', () => false, 'fleet-verdicts=crash');
    const s = await cli(['status', root, ...hostArgs, '--json']);
    assert.equal(s.code, 0, s.stderr);
    const rows = jsonOf<StatusJson>(s).hosts;
    for (const h of fleet.hosts) {
      assert.ok((rows.find((r) => r.host === h.alias)?.recovered ?? []).includes(`finished recording deploy of ${live} (it had switched)`), `${h.alias}: ${s.stdout}`);
      assert.equal(recordOf(on(h), live).afterSwitchFailure, undefined, h.alias);
    }
  });
});
