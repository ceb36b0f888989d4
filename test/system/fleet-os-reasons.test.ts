// A host's OS reason for a failed write ("Operation not permitted", "Read-only file system") was
// said only on that host's stderr line (`[host1] mkdir: cannot create directory …: Operation not
// permitted`), not in the error the fleet command returned: `nothing was switched: host1: cannot
// write the journal`, the same words in --json, where a script or a log reads them. The host's
// reason now ends the error, its host row and the JSON error (src/remote/ssh.ts remoteError).
// Control: a hook's own stderr line with such words is not taken as the program's reason.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { jsonOf, tempDir, writeTree } from '../harness/cli.ts';
import { requireTools } from '../harness/faults.ts';
import { currentOf, rootNamer, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

interface FleetJson {
  hosts: { host: string; outcome?: string; error?: { code: string; message: string } }[];
  error?: { code: string; message: string; hint?: string };
}

const { fleet, hostArgs, cli } = fleetSuite(2, { prefix: 'aor', timeoutMs: 120_000, requires: () => requireTools('mount', 'chattr') });
const newRoot = rootNamer('o');

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-os-reasons-'), { 'index.html': `<h1>${version}</h1>\n` });
}

async function onHost(h: FleetHost, script: string, ...args: string[]): Promise<void> {
  const r = await h.exec(['sh', '-c', script, 'sh', ...args]);
  assert.equal(r.code, 0, `${h.alias}: ${script}: ${r.stderr}`);
}

void describe("a host's OS reason in a fleet command's error", () => {
  void test('a state directory that refuses writes (immutable, read-only mount): the reason ends the error, its host row and the JSON error', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const cases = [
      {
        reason: 'Operation not permitted',
        // chattr +i: EPERM even for root.
        on: (dir: string) => void execFileSync('chattr', ['+i', path.join(dir, '.atomic-deploy')]),
        off: (dir: string) => void execFileSync('chattr', ['-i', path.join(dir, '.atomic-deploy')]),
      },
      {
        reason: 'Read-only file system',
        // A read-only bind mount in host1's own mount namespace: EROFS.
        on: async (_dir: string, root: string) => onHost(h1, 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1"', `${root}/.atomic-deploy`),
        off: async (_dir: string, root: string) => onHost(h1, 'umount "$1"', `${root}/.atomic-deploy`),
      },
    ];
    for (const c of cases) {
      const { root, on } = newRoot(c.reason.split(' ')[0]?.toLowerCase() ?? 'x');
      assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--release-id', 'r1'])).code, 0);
      assert.equal((await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--release-id', 'r2'])).code, 0);
      await c.on(on(h1), root);
      let deploy: Awaited<ReturnType<typeof cli>>;
      let rollback: Awaited<ReturnType<typeof cli>>;
      try {
        deploy = await cli(['deploy', site(t, 'v3'), root, ...hostArgs, '--release-id', 'r3', '--json']);
        rollback = await cli(['rollback', root, ...hostArgs, '--json']);
      } finally {
        await c.off(on(h1), root);
      }
      for (const [what, r, nothing] of [['deploy', deploy, 'nothing was switched'], ['rollback', rollback, 'nothing was rolled back']] as const) {
        assert.equal(r.code, 1, `${c.reason}: ${what}: ${r.stderr}`);
        // Said on host1's stderr line, as before.
        assert.match(r.stderr, new RegExp(`^\\[${h1.alias}\\] .*: ${c.reason}$`, 'm'), `${c.reason}: ${what}`);
        const j = jsonOf<FleetJson>(r);
        const row = j.hosts.find((h) => h.host === h1.alias);
        assert.equal(row?.error?.message, `${h1.alias}: cannot write the journal: ${c.reason}`, `${c.reason}: ${what}`);
        assert.equal(j.error?.message, `${nothing}: ${h1.alias}: cannot write the journal: ${c.reason}`, `${c.reason}: ${what}`);
        assert.equal(j.hosts.find((h) => h.host === h2.alias)?.error, undefined, `${c.reason}: ${what}`);
      }
      for (const h of [h1, h2]) assert.equal(currentOf(on(h)), 'r2', `${c.reason}: ${h.alias}: nothing changed`);
    }
    // Human output: the error line ends with the reason.
    const { root, on } = newRoot('human');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--release-id', 'r1'])).code, 0);
    execFileSync('chattr', ['+i', path.join(on(h1), '.atomic-deploy')]);
    let human: Awaited<ReturnType<typeof cli>>;
    try {
      human = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--release-id', 'r2']);
    } finally {
      execFileSync('chattr', ['-i', path.join(on(h1), '.atomic-deploy')]);
    }
    assert.equal(human.code, 1, human.stderr);
    assert.match(human.stderr, new RegExp(`^error: nothing was switched: ${h1.alias}: cannot write the journal: Operation not permitted$`, 'm'));
  });

  void test("a hook's own stderr words are not taken for the program's reason", async (t) => {
    const [h1] = fleet.hosts as [FleetHost, FleetHost];
    const { root } = newRoot('hook');
    const r = await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--before-switch', `if [ "$(hostname)" = ${h1.hostname} ]; then echo 'cp: cannot stat x: Permission denied' >&2; exit 3; fi`, '--json']);
    assert.equal(r.code, 1, r.stderr);
    const row = jsonOf<FleetJson>(r).hosts.find((h) => h.host === h1.alias);
    assert.match(row?.error?.message ?? '', /before-switch hook/);
    assert.doesNotMatch(row?.error?.message ?? '', /Permission denied$/);
  });
});
