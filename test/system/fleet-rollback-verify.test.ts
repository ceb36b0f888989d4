// A fleet rollback re-hashes the release each moving host goes to, there, before any host is
// armed: the local rollback's check (rollback-verify.test.ts), each finding named with its host.
// A host's unchanged files are hardlinked from its current release, so a file written in place
// in the live release is the rollback target's file too.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, tempDir, writeTree } from '../harness/cli.ts';
import { rootNamer, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

interface Row {
  host: string;
  outcome: string;
  current: string | null;
  contents?: { check: string; differences?: { path: string; kind: string }[]; problem?: string };
  error?: { code: string; message: string };
}
interface RollbackJson {
  release?: string;
  hosts?: Row[];
  error?: { code: string; message: string; hint?: string; hosts?: Row[] };
}

const { fleet, hostArgs, cli } = fleetSuite(2, { timeoutMs: 120_000 });
const newRoot = rootNamer('rv');
const host = (n: number): FleetHost => fleet.hosts[n - 1] as FleetHost;

/** r1 then r2 (live) on both hosts; config.php is the same in both builds. */
async function twoReleases(t: { after(fn: () => void): void }, name: string): Promise<{ root: string; on: (h: FleetHost) => string }> {
  const { root, on } = newRoot(name);
  const dir = tempDir(t, 'fleet-rollback-verify-');
  const builds = {
    r1: writeTree(path.join(dir, 'b1'), { 'index.php': '<?php echo "one";\n', 'config.php': '<?php return ["db" => "main"];\n' }),
    r2: writeTree(path.join(dir, 'b2'), { 'index.php': '<?php echo "two";\n', 'config.php': '<?php return ["db" => "main"];\n' }),
  };
  for (const [id, src] of Object.entries(builds)) {
    const r = await cli(['deploy', src, root, ...hostArgs, '--release-id', id, '--keep', '0']);
    assert.equal(r.code, 0, r.stderr);
  }
  return { root, on };
}

const liveOn = (on: (h: FleetHost) => string, h: FleetHost): string => fs.readlinkSync(path.join(on(h), 'current'));

void describe('fleet rollback checks the release it goes to on every host', () => {
  void test('a file written in place in one host\'s live release: named with its host, the rollback goes on (warn)', async (t) => {
    const { root, on } = await twoReleases(t, 'warn');
    const live = path.join(on(host(2)), 'releases/r2/config.php');
    const target = path.join(on(host(2)), 'releases/r1/config.php');
    assert.equal(fs.statSync(live).ino, fs.statSync(target).ino, 'the host linked the unchanged file from its current release');
    fs.appendFileSync(live, '// hot fix\n');

    const dry = await cli(['rollback', root, ...hostArgs, '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /warning: host2: release r1 differs from its manifest \(1 difference: modified config\.php\); a rollback would put it live as it is/);
    assert.equal(liveOn(on, host(2)), 'releases/r2');

    const result = await cli(['rollback', root, ...hostArgs, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const rows = jsonOf<RollbackJson>(result).hosts ?? [];
    const row = (name: string): Row | undefined => rows.find((r) => r.host === name);
    assert.equal(row('host1')?.contents?.check, 'identical');
    assert.equal(row('host2')?.contents?.check, 'differs');
    assert.deepEqual(row('host2')?.contents?.differences?.map((d) => [d.kind, d.path]), [['modified', 'config.php']]);
    assert.match(result.stderr, /warning: host2: release r1 differs from its manifest \(1 difference: modified config\.php\); it is live as it is\nhint: see every difference with: atomic-deploy verify \S+ --host host2 --release r1; --verify fail checks before the switch and refuses such a rollback/);
    assert.doesNotMatch(result.stderr, /host1: release r1 differs/);
    for (const h of [host(1), host(2)]) assert.equal(liveOn(on, h), 'releases/r1');
  });

  void test('--verify fail: one host differs, no host switches, exit 5, every lock released', async (t) => {
    const { root, on } = await twoReleases(t, 'fail');
    fs.chmodSync(path.join(on(host(1)), 'releases/r1/index.php'), 0o666);
    const records = (h: FleetHost): string[] => fs.readdirSync(path.join(on(h), '.atomic-deploy/releases')).map((f) => fs.readFileSync(path.join(on(h), '.atomic-deploy/releases', f), 'utf8'));
    const before = [records(host(1)), records(host(2))];

    const dry = await cli(['rollback', root, ...hostArgs, '--dry-run', '--verify', 'fail', '--json']);
    assert.equal(dry.code, 5, dry.stderr);
    const result = await cli(['rollback', root, ...hostArgs, '--verify', 'fail', '--json']);
    assert.equal(result.code, 5, result.stderr);
    const error = jsonOf<RollbackJson>(result).error;
    assert.equal(error?.code, 'RELEASE_DIFFERS');
    assert.match(error?.message ?? '', /^nothing was rolled back: host1: release r1 differs from its manifest \(1 difference: mode index\.php \(644 -> 666\)\); the rollback refuses it, nothing was changed$/);
    assert.match(error?.hint ?? '', /--verify warn/);
    for (const h of [host(1), host(2)]) {
      assert.equal(liveOn(on, h), 'releases/r2', `${h.alias} stays on r2`);
      assert.equal(fs.existsSync(path.join(on(h), '.deploy.lock')), false, `${h.alias}: its lock was released`);
    }
    assert.deepEqual([records(host(1)), records(host(2))], before, 'no record written');

    // With the default, the same rollback goes on and says why.
    const warned = await cli(['rollback', root, ...hostArgs]);
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /warning: host1: release r1 differs from its manifest \(1 difference: mode index\.php \(644 -> 666\)\)/);
    for (const h of [host(1), host(2)]) assert.equal(liveOn(on, h), 'releases/r1');
  });
});
