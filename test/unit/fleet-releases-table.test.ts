// `releases --host` as a table: newest first whatever order the hosts are given in, and a host
// that did not answer shows `?` (not known), never `-` (absent) or "no releases".
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { stripVTControlCharacters } from 'node:util';
import { fleetReleasesTable, hostErrorsCode, readFailure } from '../../src/cli/fleet.ts';
import type { FleetReleasesHost } from '../../src/remote/ops.ts';

function host(name: string, ids: [string, number][], current: string | null, error?: string): FleetReleasesHost {
  return {
    host: name,
    root: '/srv/app',
    current,
    // Newest first, as each host lists them; not known (null) for a host that did not answer.
    releases: error ? null : [...ids].reverse().map(([id, seq]) => ({ id, current: id === current, role: id === current ? 'active' : 'old', seq })),
    ...(error ? { error: { code: 'REMOTE', message: error } } : {}),
  };
}

const rowsOf = (text: string): string[] => stripVTControlCharacters(text).split('\n').slice(1).map((l) => l.split(/\s+/)[0] as string);

void test('newest first whatever the order of the hosts: h2 missed r2, so it numbers r3 lower', () => {
  const h1 = host('h1', [['r1', 1], ['r2', 2], ['r3', 3]], 'r3');
  const h2 = host('h2', [['r1', 1], ['r3', 2]], 'r3');
  assert.deepEqual(rowsOf(fleetReleasesTable({ hosts: [h1, h2] })), ['r3', 'r2', 'r1']);
  assert.deepEqual(rowsOf(fleetReleasesTable({ hosts: [h2, h1] })), ['r3', 'r2', 'r1']);
});

void test('a host that did not answer: ? in its column, and never "no releases"', () => {
  const h1 = host('h1', [['r1', 1]], 'r1');
  const lost = host('h2', [], null, 'h2: cannot connect');
  const both = fleetReleasesTable({ hosts: [h1, lost] });
  const line = stripVTControlCharacters(both).split('\n')[1] ?? '';
  assert.match(line, /^r1\s+\* active\s+\?$/);
  // The host's error is the command's (readFailure), said once.
  assert.equal(readFailure([h1, lost])?.message, 'h2: cannot connect');
  assert.equal(fleetReleasesTable({ hosts: [lost] }), 'releases unknown on h2');
  assert.equal(fleetReleasesTable({ hosts: [host('h1', [], null), lost] }), 'releases unknown on h2; none on the others');
  assert.equal(fleetReleasesTable({ hosts: [host('h1', [], null)] }), 'no releases');
});

// `status --host` or `releases --host` of a root that is not there (missing, or a file) exited 1,
// where the local command exits 2 (invalid input); a host not reached is still 1.
void test('read commands across hosts: 2 when every failing host lacks the root, 1 when one was not reached', () => {
  assert.equal(hostErrorsCode([{}, {}]), 0);
  assert.equal(hostErrorsCode([{}, { error: { code: 'INVALID_ROOT' } }]), 2);
  assert.equal(hostErrorsCode([{ error: { code: 'INVALID_ROOT' } }, { error: { code: 'REMOTE' } }]), 1);
});

// A host that could not be read was only a `?` and a note; status said nothing on stderr.
void test('the hosts a read command could not read make one error: each named once, the first hint, exit 2 only when every one is a root that is not there', () => {
  assert.equal(readFailure([{ host: 'h1' }, { host: 'h2' }]), undefined);
  const invalid = readFailure([{ host: 'h1' }, { host: 'h2', error: { code: 'INVALID_ROOT', message: 'h2: /srv/x is not a deploy root', hint: 'give the deploy root' } }]);
  assert.deepEqual([invalid?.code, invalid?.message, invalid?.hint, invalid?.exitCode], ['INVALID_ROOT', 'h2: /srv/x is not a deploy root', 'give the deploy root', 2]);
  const mixed = readFailure([{ host: 'h1', error: { code: 'INVALID_ROOT', message: 'h1: /srv/x is not a deploy root' } }, { host: 'h2', error: { code: 'REMOTE', message: 'cannot connect to h2: timeout' } }]);
  assert.deepEqual([mixed?.code, mixed?.message, mixed?.exitCode], ['REMOTE', '2 hosts could not be read: h1: /srv/x is not a deploy root; cannot connect to h2: timeout', 1]);
  // Hosts that failed alike: the hint's command names each of them.
  const missing = (host: string): { host: string; error: { code: string; message: string; hint: string } } => ({ host, error: { code: 'INVALID_ROOT', message: `${host}: /srv/x does not exist`, hint: `deploy to it: atomic-deploy deploy <source> /srv/x --host ${host}` } });
  assert.equal(readFailure([missing('h1'), missing('h2')])?.hint, 'deploy to it: atomic-deploy deploy <source> /srv/x --host h1 --host h2');
});

// The fleet table said `* active` where the local one says `active, unverified`.
void test('a release whose after-switch step failed or was stopped on a host is unverified in that host\'s column', () => {
  const h1 = host('h1', [['r1', 1]], 'r1');
  const h2 = host('h2', [['r1', 1]], 'r1');
  const r1 = h2.releases?.[0];
  assert.ok(r1);
  r1.afterSwitchFailure = 'interrupted by SIGINT: the health check did not finish';
  const line = stripVTControlCharacters(fleetReleasesTable({ hosts: [h1, h2] })).split('\n')[1] ?? '';
  assert.match(line, /^r1\s+\* active\s+\* active, unverified$/);
});

// A first deploy whose health check failed on a host stays live there, marked failed: the column said `* active`.
void test('the live release marked failed on a host says so in that host\'s column, as the local table does', () => {
  const h1 = host('h1', [['r1', 1]], 'r1');
  const h2 = host('h2', [['r1', 1]], 'r1');
  const r1 = h2.releases?.[0];
  assert.ok(r1);
  r1.status = 'failed';
  const line = stripVTControlCharacters(fleetReleasesTable({ hosts: [h1, h2] })).split('\n')[1] ?? '';
  assert.match(line, /^r1\s+\* active\s+\* active, failed$/);
});
