// The answer to `go` lost: host2 gets the word and switches, but its `switched` never reaches the
// deploying side. Host2's mv (the switch is one exec of mv) is held at a gate once the fleet is
// armed; when it is reached (the word came and the lock is still host2's), everything host2 sends
// is dropped (a token bucket of one byte on its interface) and the gate opens. The deploy cannot
// know whether host2 switched: it switches host1 back, says host2 is on the new release or still
// on the old one, and exits 1 with the status hint; that status, once host2 can answer again,
// brings host2 back to the release the fleet went back to.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, runCli, spawnCli, tempDir, writeTree, type CliResult } from '../harness/cli.ts';
import { currentOf as current, findTools, rootNamer, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';
import { until } from '../harness/invariants.ts';

interface FleetJson {
  release?: string;
  hosts: { host: string; outcome?: string; current?: string | null; error?: { code: string; message: string; hint?: string } }[];
  error?: { code: string; message: string; hint?: string };
}

const TOOLS = findTools(['ip', 'tc'] as const);
const { fleet, env, hostArgs, cli } = fleetSuite(2, { timeoutMs: 120_000 });
const newRoot = rootNamer('l');

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-switch-lost-'), { 'index.html': `<h1>${version}</h1>\n` });
}

/** Everything the host sends is dropped (a token bucket of one byte passes no packet); what it is sent still arrives. */
function mute(h: FleetHost): void {
  execFileSync(TOOLS.ip, ['netns', 'exec', String(h.netns), TOOLS.tc, 'qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', '8bit', 'burst', '1', 'latency', '1ms']);
}
function unmute(h: FleetHost): void {
  execFileSync(TOOLS.ip, ['netns', 'exec', String(h.netns), TOOLS.tc, 'qdisc', 'del', 'dev', 'eth0', 'root']);
}

/**
 * Host2's mv, held while `<gate>/hold` exists: it says it waits (`<gate>/waiting`), then waits for
 * `<gate>/open`. Bound over /usr/bin/mv in host2's own mount namespace only.
 */
async function gateMv(t: { after(fn: () => Promise<void>): void }, h: FleetHost, gate: string): Promise<void> {
  fs.copyFileSync('/usr/bin/mv', path.join(gate, 'mv.real'));
  fs.chmodSync(path.join(gate, 'mv.real'), 0o755);
  const wrapper = path.join(gate, 'mv');
  fs.writeFileSync(wrapper, `#!/bin/sh\nif [ -e ${gate}/hold ]; then : > ${gate}/waiting; while [ ! -e ${gate}/open ]; do sleep 0.05; done; fi\nexec ${gate}/mv.real "$@"\n`);
  fs.chmodSync(wrapper, 0o755);
  const bound = await h.exec(['mount', '--bind', wrapper, '/usr/bin/mv']);
  assert.equal(bound.code, 0, bound.stderr);
  t.after(async () => {
    await h.exec(['umount', '/usr/bin/mv']);
  });
}

void describe('the answer to the switch lost on one of two namespace hosts', () => {
  void test('host2 switched unheard: host1 goes back, host2 is named on either release (exit 1), and the hint\'s status brings it back', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('mute');
    const gate = tempDir(t, 'fleet-switch-lost-gate-');
    await gateMv(t, h2, gate);
    const old = jsonOf<FleetJson>(await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--json'])).release as string;
    // Armed: the new link stands in its directory under .tmp, and the host waits for `go`.
    const armed = (h: FleetHost): boolean => fs.readdirSync(path.join(on(h), '.tmp')).some((n) => /^current\.[0-9a-f]+$/.test(n) && fs.lstatSync(path.join(on(h), '.tmp', n, 'current'), { throwIfNoEntry: false })?.isSymbolicLink() === true);
    const run = spawnCli(['deploy', site(t, 'v2'), root, ...hostArgs, '--json'], { env, failpoints: 'fleet-armed=sleep:3000', timeoutMs: 120_000 });
    let muted = false;
    let r: CliResult;
    try {
      await until('every host armed', () => fleet.hosts.every(armed));
      fs.writeFileSync(path.join(gate, 'hold'), '');
      await until('host2 got the word', () => fs.existsSync(path.join(gate, 'waiting')), 30_000);
      mute(h2);
      muted = true;
      fs.writeFileSync(path.join(gate, 'open'), '');
      r = await run.done;
    } finally {
      if (muted) unmute(h2);
    }
    const j = jsonOf<FleetJson>(r);
    const fresh = String(j.release);
    // The word went out and was acted on: only the answer was lost.
    assert.equal(current(on(h2)), fresh, `host2 switched:\n${r.stderr}\n${r.stdout}`);
    assert.equal(current(on(h1)), old, 'host1 was switched back');
    assert.equal(r.code, 1, `${r.stderr}\n${r.stdout}`);
    const row = j.hosts.find((h) => h.host === h2.alias);
    assert.equal(row?.error?.message, `${h2.alias}: connection lost after the switch was sent: it is on ${fresh} or still on ${old}`);
    assert.equal(j.hosts.find((h) => h.host === h1.alias)?.outcome, 'switched-back');
    const hint = /^hint: .*: (atomic-deploy status .*)$/m.exec(r.stderr);
    assert.ok(hint?.[1], r.stderr);
    assert.match(hint[1] ?? '', new RegExp(`^atomic-deploy status ${root} --host ${h1.alias} --host ${h2.alias}$`));
    // The hint's command, pasted once host2 answers again: the fleet is one release again, the one it went back to.
    let status: CliResult;
    const deadline = Date.now() + 90_000;
    do {
      status = await runCli((hint[1] ?? '').split(' ').slice(1), { env, timeoutMs: 120_000 });
      if (status.code !== 3) break;
      // host2's program may still hold its lock until its lease runs out (the deploying side is gone).
      await new Promise((resolve) => setTimeout(resolve, 2000));
    } while (Date.now() < deadline);
    assert.equal(status.code, 0, `${status.stderr}\n${status.stdout}`);
    for (const h of [h1, h2]) assert.equal(current(on(h)), old, `${h.alias} is on ${old}`);
    assert.match(status.stdout, new RegExp(`^all 2 hosts on ${old}$`, 'm'));
    const record = JSON.parse(fs.readFileSync(path.join(on(h2), '.atomic-deploy', 'releases', `${fresh}.json`), 'utf8')) as { status: string };
    assert.notEqual(record.status, 'complete', `host2's record of ${fresh}`);
    assert.equal(fs.existsSync(path.join(on(h2), '.deploy.lock')), false, "host2's lock is released");
  });
});
