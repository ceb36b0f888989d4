// The fleet's pure decisions: one id, the rollback target, reconciling an interrupted fleet deploy.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decideAfterSwitch, fleetReleaseId, planFleetRecovery, planFleetRollback, summarizeFleet, switchSkewMs, undecidedFleetDeploys, type FleetJournal, type HostRecoveryInput } from '../../src/plan/fleet.ts';
import { planRecovery } from '../../src/plan/journal.ts';
import { compareReleaseIds } from '../../src/plan/release-id.ts';
import { rollbackTarget, type ReleaseFacts } from '../../src/plan/releases.ts';
import { fleetError, resolveTargets } from '../../src/remote/fleet.ts';
import { fleetStatusHint, releaseIdTakenOn } from '../../src/remote/deploy.ts';
import { DeployError } from '../../src/errors.ts';

const stamp = fc.integer({ min: 0, max: 20 }).map((n) => `202611271000${String(n).padStart(2, '0')}`);
const timestampId = fc.tuple(stamp, fc.integer({ min: 0, max: 3 })).map(([s, k]) => (k === 0 ? s : `${s}-${String(k).padStart(3, '0')}`));
const anyId = fc.oneof(timestampId, fc.constantFrom('v1', 'v2', 'initial'));

void test('the fleet id is new on every host and sorts after every timestamp id any host holds', () => {
  fc.assert(
    fc.property(fc.array(fc.array(anyId, { maxLength: 6 }), { minLength: 1, maxLength: 5 }), (hosts) => {
      const id = fleetReleaseId(hosts, new Date(Date.UTC(2026, 10, 27, 10, 0, 5)));
      for (const ids of hosts) {
        assert.ok(!ids.includes(id));
        for (const other of ids) if (/^\d{14}/.test(other)) assert.ok(compareReleaseIds(other, id) < 0, `${other} < ${id}`);
      }
    }),
  );
});

void test('switch skew is first to last; summaries group hosts by release and set unknown apart', () => {
  assert.equal(switchSkewMs([]), 0);
  assert.equal(switchSkewMs([5]), 0);
  assert.equal(switchSkewMs([12, 3, 40]), 37);
  assert.deepEqual(summarizeFleet([{ host: 'a', current: 'r1' }, { host: 'b', current: 'r1' }]), { consistent: true, current: 'r1', groups: [{ release: 'r1', hosts: ['a', 'b'] }], unknown: [] });
  const mixed = summarizeFleet([{ host: 'a', current: 'r2' }, { host: 'b', current: 'r1' }, { host: 'c', current: 'r1' }, { host: 'd', current: undefined }]);
  assert.equal(mixed.consistent, false);
  assert.deepEqual(mixed.groups, [{ release: 'r1', hosts: ['b', 'c'] }, { release: 'r2', hosts: ['a'] }]);
  assert.deepEqual(mixed.unknown, ['d']);
});

const ordered = (ids: string[], failed: string[] = []): ReleaseFacts[] => ids.map((id, i) => ({ id, seq: i + 1, status: failed.includes(id) ? 'failed' : 'complete' }));

void test('rollback on a fleet that agrees goes to the previous good release, the same on every host', () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 6 }), fc.integer({ min: 1, max: 4 }), (n, hosts) => {
      const ids = Array.from({ length: n }, (_, i) => `r${i}`);
      const current = ids.at(-1) as string;
      const plan = planFleetRollback(Array.from({ length: hosts }, (_, i) => ({ host: `h${i}`, current, ordered: ordered(ids) })));
      assert.ok(plan.ok);
      assert.equal(plan.target, rollbackTarget(ordered(ids), current)?.id);
      assert.equal(plan.moves.length, hosts);
    }),
  );
  const disagree = planFleetRollback([
    { host: 'a', current: 'r3', ordered: ordered(['r1', 'r2', 'r3']) },
    { host: 'b', current: 'r3', ordered: ordered(['r1', 'r2', 'r3'], ['r2']) },
  ]);
  assert.equal(disagree.ok, false);
  assert.match((!disagree.ok && disagree.hint) || '', /--to/);
  const none = planFleetRollback([{ host: 'a', current: 'r1', ordered: ordered(['r1']) }]);
  assert.equal(!none.ok && none.problems[0]?.code, 'NO_PREVIOUS_RELEASE');
});

void test('rollback on a mixed fleet brings the hosts ahead back to where the others are', () => {
  const plan = planFleetRollback([
    { host: 'a', current: 'r2', ordered: ordered(['r1', 'r2']) },
    { host: 'b', current: 'r1', ordered: ordered(['r1', 'r2']) },
    { host: 'c', current: 'r1', ordered: ordered(['r1']) },
  ]);
  assert.ok(plan.ok);
  assert.equal(plan.target, 'r1');
  assert.deepEqual(plan.moves, [{ host: 'a', from: 'r2' }]);
  assert.deepEqual(plan.stays, ['b', 'c']);
  const to = planFleetRollback([{ host: 'a', current: 'r2', ordered: ordered(['r1', 'r2']) }, { host: 'b', current: 'r2', ordered: ordered(['r2']) }], 'r1');
  assert.equal(!to.ok && to.problems.map((p) => p.host).join(), 'b', '--to must exist on every host');
  // Every host on it already (a retried --to): a plan that moves none, not a refusal.
  const there = planFleetRollback([{ host: 'a', current: 'r2', ordered: ordered(['r1', 'r2']) }, { host: 'b', current: 'r2', ordered: ordered(['r2']) }], 'r2');
  assert.deepEqual(there, { ok: true, target: 'r2', moves: [], stays: ['a', 'b'] });
});

function journal(release: string, previous: string | null, phase: 'copying' | 'ready' | 'switched' | 'rolling-back', token = 'T'): FleetJournal {
  return { v: 1, op: 'deploy', token: 'lock', pid: 1, startedAt: '', release, previous, phase, fleet: { token } };
}

function host(currentId: string | null, j: FleetJournal | null, abandonedTokens: string[] = []): HostRecoveryInput {
  return { journal: j, facts: { currentId, releaseExists: true, tmpEntries: [] }, abandonedTokens };
}

void test('a fleet deploy that switched everywhere is finished everywhere, as the local engine would', () => {
  const hosts = [host('N', journal('N', 'O', 'switched')), host('N', journal('N', 'O', 'ready'))];
  const plans = planFleetRecovery(hosts);
  for (const [i, h] of hosts.entries()) assert.deepEqual(plans[i], planRecovery(h.journal, h.facts));
  assert.ok(plans.every((p) => p.some((a) => a.kind === 'mark-deployed')));
});

void test('a fleet deploy that did not switch everywhere is switched back on the hosts it reached', () => {
  const plans = planFleetRecovery([host('N', journal('N', 'O', 'switched')), host('O', journal('N', 'O', 'ready')), host('N', journal('N', 'O', 'switched'))]);
  assert.deepEqual(plans[0]?.find((a) => a.kind === 'switch-back'), { kind: 'switch-back', id: 'N', to: 'O', status: 'rolled-back', reason: 'the fleet deploy did not switch on every host' });
  assert.ok(plans[1]?.some((a) => a.kind === 'remove-release'), 'the host that never switched drops the release');
  assert.ok(plans[2]?.some((a) => a.kind === 'switch-back'));
  // Evidence from the release log of a host that was already switched back.
  const viaLog = planFleetRecovery([host('N', journal('N', null, 'switched')), host('O', null, ['T'])]);
  assert.deepEqual(viaLog[0]?.find((a) => a.kind === 'switch-back'), { kind: 'switch-back', id: 'N', to: null, status: 'rolled-back', reason: 'the fleet deploy did not switch on every host' });
  // A host whose health check failed was rolling back: it goes back and the release is failed.
  const rollingBack: FleetJournal = { v: 1, op: 'deploy', token: 'lock', pid: 1, startedAt: '', release: 'N', previous: 'O', phase: 'rolling-back', reason: 'health', fleet: { token: 'T' } };
  const rolling = planFleetRecovery([host('N', rollingBack)]);
  assert.deepEqual(rolling[0]?.find((a) => a.kind === 'switch-back'), { kind: 'switch-back', id: 'N', to: 'O', status: 'failed', reason: 'health' });
});

void test('a rolling deploy that died before a later wave switched: the hosts its journal names decide, a wave-1 host goes back', () => {
  const named = (name: string, currentId: string | null, j: FleetJournal | null, committed: string[] = []): HostRecoveryInput => ({ ...host(currentId, j), host: name, committedTokens: committed });
  const wave1: FleetJournal = { ...journal('N', 'O', 'switched'), fleet: { token: 'T', hosts: ['web1', 'web2', 'web3'] } };
  // web2 and web3 were locked for wave 2 (or still waiting for it): no journal, still on O.
  const split = planFleetRecovery([named('web1', 'N', wave1), named('web2', 'O', null), named('web3', 'O', null)]);
  assert.deepEqual(split[0]?.find((a) => a.kind === 'switch-back'), { kind: 'switch-back', id: 'N', to: 'O', status: 'rolled-back', reason: 'the fleet deploy did not switch on every host' });
  assert.deepEqual([split[1], split[2]], [[], []]);
  // Control, the rule before journals named their hosts: the same fleet without the names finishes web1's deploy, and stays split.
  const unnamed = planFleetRecovery([named('web1', 'N', journal('N', 'O', 'switched')), named('web2', 'O', null), named('web3', 'O', null)]);
  assert.ok(unnamed[0]?.some((a) => a.kind === 'mark-deployed'));
  // Every host on N (the others committed and cleared their journals): finished, not switched back.
  assert.ok(planFleetRecovery([named('web1', 'N', wave1), named('web2', 'N', null, ['T']), named('web3', 'N', null, ['T'])])[0]?.some((a) => a.kind === 'mark-deployed'));
  // A host that committed N and has moved on since (a later deploy of its own): its record says N committed.
  assert.ok(planFleetRecovery([named('web1', 'N', wave1), named('web2', 'L', null, ['T']), named('web3', 'N', null, ['T'])])[0]?.some((a) => a.kind === 'mark-deployed'));
  // A host not given to this command is no evidence either way; one not of the deploy neither.
  assert.ok(planFleetRecovery([named('web1', 'N', wave1), named('web3', 'N', null, ['T']), named('other', 'O', null)])[0]?.some((a) => a.kind === 'mark-deployed'));
  // Names that are not strings (a damaged journal) are ignored.
  const odd: FleetJournal = { ...journal('N', 'O', 'switched'), fleet: { token: 'T', hosts: [7, null] as unknown as string[] } };
  assert.ok(planFleetRecovery([named('web1', 'N', odd), named('web2', 'O', null)])[0]?.some((a) => a.kind === 'mark-deployed'));
});

void test('a fleet deploy whose outcome waits on a host given but not reached is left unfinished; what decides it wins', () => {
  const named = (name: string, currentId: string | null, j: FleetJournal | null, committed: string[] = [], abandoned: string[] = []): HostRecoveryInput => ({ ...host(currentId, j), host: name, committedTokens: committed, abandonedTokens: abandoned });
  const j: FleetJournal = { ...journal('N', 'O', 'switched'), fleet: { token: 'T', hosts: ['web1', 'web2', 'web3'] } };
  const reached = [named('web1', 'N', j), named('web3', 'N', j)];
  // web2 given, not reached: nothing but the .tmp leftovers goes, the journal stays (no clear-journal, no mark-deployed).
  const leftovers = reached.map((h) => ({ ...h, facts: { ...h.facts, tmpEntries: ['stage.1'] } }));
  for (const plan of planFleetRecovery(leftovers, ['web2'])) assert.deepEqual(plan, [{ kind: 'remove-tmp', name: 'stage.1' }]);
  assert.deepEqual([...undecidedFleetDeploys(reached, ['web2'])], [['T', ['web2']]]);
  // Control: web2 not given at all (the hosts given alone, docs/fleet.md): finished as before.
  assert.ok(planFleetRecovery(reached).every((plan) => plan.some((a) => a.kind === 'mark-deployed')));
  // A host read that is not on N decides it: abandoned, switched back, whoever is unreached.
  assert.ok(planFleetRecovery([...reached, named('web4', 'O', { ...j, fleet: { token: 'T', hosts: ['web1', 'web2', 'web3', 'web4'] } })], ['web2'])[0]?.some((a) => a.kind === 'switch-back'));
  // A host read that committed it decides it too: finished.
  assert.ok(planFleetRecovery([named('web1', 'N', j), named('web3', 'N', null, ['T'])], ['web2'])[0]?.some((a) => a.kind === 'mark-deployed'));
  // An unreached host the deploy does not name is no reason to wait.
  assert.ok(planFleetRecovery(reached, ['other'])[0]?.some((a) => a.kind === 'mark-deployed'));
});

// A fleet deploy killed while its hosts' health checks ran was finished on every host as a
// verified release: the hosts' journals did not say a check was under way. A host whose own
// checks passed (its journal no longer names them) is recorded unverified too while another
// host's were cut off, naming that host: the fleet never decided on it.
void test('a fleet deploy cut off while the checks of a host ran is finished unverified on every host of it', () => {
  const named = (name: string, j: FleetJournal | null, committed: string[] = []): HostRecoveryInput => ({ ...host('N', j), host: name, committedTokens: committed });
  const passed: FleetJournal = { ...journal('N', 'O', 'switched'), fleet: { token: 'T', hosts: ['web1', 'web2', 'web3'] } };
  const checking: FleetJournal = { v: 1, op: 'deploy', token: 'lock', pid: 1, startedAt: '', release: 'N', previous: 'O', phase: 'switched', verifying: 'its health check', fleet: { token: 'T', hosts: ['web1', 'web2', 'web3'] } };
  const marks = (plans: ReturnType<typeof planFleetRecovery>): (string | undefined)[] => plans.map((plan) => plan.flatMap((a) => (a.kind === 'mark-deployed' ? [a.unverified ?? 'verified'] : []))[0]);
  // Every host still checking: each recorded as the local engine records its own journal.
  assert.deepEqual(marks(planFleetRecovery([named('web1', checking), named('web2', checking)])), ['its process ended before its health check finished', 'its process ended before its health check finished']);
  // web1 passed, web2 and web3 were still checking: web1 is recorded unverified too, naming them.
  assert.deepEqual(marks(planFleetRecovery([named('web1', passed), named('web2', checking), named('web3', checking)])), [
    'its process ended before its health check finished on web2, web3',
    'its process ended before its health check finished',
    'its process ended before its health check finished',
  ]);
  // Controls: every host passed (killed before the commit): verified everywhere; another deploy's token is no evidence.
  assert.deepEqual(marks(planFleetRecovery([named('web1', passed), named('web2', passed)])), ['verified', 'verified']);
  assert.deepEqual(marks(planFleetRecovery([named('web1', passed), named('web2', { ...checking, fleet: { token: 'U' } })])), ['verified', 'its process ended before its health check finished']);
  // A host that committed it: the fleet decided, each host's own journal says the rest.
  assert.deepEqual(marks(planFleetRecovery([named('web1', passed), named('web2', checking), named('web3', null, ['T'])])), ['verified', 'its process ended before its health check finished', undefined]);
  // Abandoned (a host not on it) wins: switched back, not recorded.
  const back = planFleetRecovery([named('web1', passed), named('web2', checking), { ...named('web3', checking), facts: { currentId: 'O', releaseExists: true, tmpEntries: [] } }]);
  assert.ok(back[0]?.some((a) => a.kind === 'switch-back') && back[1]?.some((a) => a.kind === 'switch-back'));
});

void test('journals without a fleet token recover exactly as the local engine does', () => {
  const local = (release: string, phase: 'copying' | 'ready' | 'switched'): FleetJournal => ({ v: 1, op: 'deploy', token: 'x', pid: 1, startedAt: '', release, previous: 'O', phase });
  fc.assert(
    fc.property(fc.constantFrom('N', 'O', null), fc.constantFrom<'copying' | 'ready' | 'switched'>('copying', 'ready', 'switched'), fc.boolean(), (currentId, phase, exists) => {
      const h: HostRecoveryInput = { journal: local('N', phase), facts: { currentId, releaseExists: exists, tmpEntries: ['stage.1', 'other'] }, abandonedTokens: ['T'] };
      assert.deepEqual(planFleetRecovery([h, host('O', journal('N', 'O', 'ready'))])[0], planRecovery(h.journal, h.facts));
    }),
  );
});

void test('after the switch: commit only when every host switched and is healthy; else back, or keep', () => {
  const all = [{ host: 'a', switched: true, lost: false, health: 'ok' as const }, { host: 'b', switched: true, lost: false }];
  assert.deepEqual(decideAfterSwitch(all, 'rollback'), { ok: true, commit: ['a', 'b'], back: [], undo: [], reason: '', tolerated: [] });
  const refused = [{ host: 'a', switched: true, lost: false }, { host: 'b', switched: false, lost: false }, { host: 'c', switched: true, lost: true }];
  assert.deepEqual(decideAfterSwitch(refused, 'rollback'), { ok: false, commit: [], back: ['a'], undo: ['b'], reason: 'the switch did not complete on b; the connection to c was lost after its switch (it stays on the release, unverified, until a command reaches it)', tolerated: [] });
  assert.deepEqual(decideAfterSwitch(refused, 'keep'), { ok: false, commit: ['a'], back: [], undo: ['b'], reason: 'the switch did not complete on b; the connection to c was lost after its switch (it stays on the release, unverified, until a command reaches it)', tolerated: [] });
  const sick = [{ host: 'a', switched: true, lost: false, health: 'failed' as const }, { host: 'b', switched: true, lost: false, health: 'ok' as const }];
  assert.deepEqual(decideAfterSwitch(sick, 'rollback'), { ok: false, commit: [], back: ['a', 'b'], undo: [], reason: 'the health check failed on a', tolerated: [] });
  fc.assert(
    fc.property(fc.array(fc.record({ switched: fc.boolean(), lost: fc.boolean(), health: fc.constantFrom<'ok' | 'failed' | undefined>('ok', 'failed', undefined) }), { minLength: 1, maxLength: 6 }), fc.constantFrom<'rollback' | 'keep'>('rollback', 'keep'), (raw, policy) => {
      const hosts = raw.map((h, i) => ({ host: `h${i}`, switched: h.switched, lost: h.lost, ...(h.health ? { health: h.health } : {}) }));
      const d = decideAfterSwitch(hosts, policy);
      // Never both words to one host; a lost host gets none; only switched hosts get either.
      for (const h of hosts) {
        const words = [d.commit, d.back, d.undo].filter((list) => list.includes(h.host)).length;
        assert.ok(words <= 1);
        if (h.lost) assert.equal(words, 0);
        if (d.commit.includes(h.host) || d.back.includes(h.host)) assert.ok(h.switched);
      }
      if (!d.ok && policy === 'rollback') assert.deepEqual(d.commit, []);
    }),
  );
});

void test('fleet targets: the same host and root twice, or one root inside another on the same host, are refused; other hosts may nest', () => {
  const refuse = (hosts: { host: string; root?: string }[], message: RegExp): void => {
    assert.throws(() => resolveTargets(hosts, '/srv/app'), (e: unknown) => e instanceof DeployError && e.code === 'USAGE' && message.test(e.message));
  };
  refuse([{ host: 'web1' }, { host: 'web1', root: '/srv/app/' }], /^host web1 with root \/srv\/app is given twice$/);
  refuse([{ host: 'web1' }, { host: 'web1', root: '/srv/app/releases/x' }], /^host web1: the deploy root \/srv\/app\/releases\/x is inside the deploy root \/srv\/app, also given for it$/);
  refuse([{ host: 'web1', root: '/srv/app/current/x' }, { host: 'web1' }], /inside the deploy root \/srv\/app,/);
  refuse([{ host: 'web1', root: '/' }, { host: 'web1' }], /the deploy root \/srv\/app is inside the deploy root \/,/);
  // Siblings and a shared prefix that is not a parent are fine, and so is nesting across hosts.
  assert.equal(resolveTargets([{ host: 'web1' }, { host: 'web1', root: '/srv/app2' }, { host: 'web1', root: '/srv/ap' }, { host: 'web2', root: '/srv/app/x' }], '/srv/app').length, 4);
});

void test('a fleet root holding a $NAME no shell expanded, or bytes that were not UTF-8, is refused: no host folder by that name is what was meant', () => {
  const refuse = (hosts: { host: string; root?: string }[], root: string | undefined, message: RegExp): void => {
    assert.throws(() => resolveTargets(hosts, root), (e: unknown) => e instanceof DeployError && e.code === 'INVALID_ROOT' && e.exitCode === 2 && message.test(e.message) && e.hint !== undefined);
  };
  refuse([{ host: 'web1' }], '/srv/$APP', /^the deploy root on web1 "\/srv\/\$APP" holds \$APP, which no shell expanded/);
  refuse([{ host: 'web1' }, { host: 'web2', root: '/srv/${SITE}/www' }], '/srv/app', /^the deploy root on web2 "\/srv\/\$\{SITE\}\/www" holds \$\{SITE\}/);
  refuse([{ host: 'web1' }], '/srv/caf\uFFFD', /^the deploy root on web1 "\/srv\/caf\uFFFD" holds bytes that are not UTF-8/);
  // A dollar that names no variable is a name like any other.
  assert.equal(resolveTargets([{ host: 'web1' }], '/srv/price$5').length, 1);
});

void test('a fleet rollback never switches a host to a release directory that holds nothing there', () => {
  const facts = [{ id: 'r1', seq: 1, status: 'complete' as const, previous: null }, { id: 'r2', seq: 2, status: 'complete' as const, previous: 'r1' }, { id: 'backup' }];
  const hosts = [
    { host: 'h1', current: 'r2', ordered: facts },
    { host: 'h2', current: 'r2', ordered: facts, empty: ['backup'] },
  ];
  const plan = planFleetRollback(hosts, 'backup');
  assert.equal(plan.ok, false);
  assert.deepEqual(!plan.ok && plan.problems, [{ host: 'h2', code: 'UNKNOWN_RELEASE', message: 'release backup is an empty directory on h2: switching to it would serve nothing' }]);
  assert.equal(planFleetRollback(hosts, 'r1').ok, true);
});

// After a host was lost mid-deploy, the hint named that host alone: its status committed the
// release there while the others had gone back, and the fleet stayed mixed.
void test('the hint after a lost host names every host of the deploy', () => {
  const hosts = [{ label: 'web1', root: '/srv/app' }, { label: 'web2', root: '/srv/app' }, { label: "o'dd", root: '/srv/app' }];
  assert.equal(fleetStatusHint(hosts, hosts[1] as (typeof hosts)[number]), "find out and reconcile on every host of this deploy (recovery needs all of them): atomic-deploy status /srv/app --host web1 --host web2 --host 'o'\\''dd'");
  assert.match(fleetStatusHint([{ label: 'a', root: '/srv/a' }, { label: 'b', root: '/srv/b' }], { root: '/srv/a' }), /with the same hosts and config as this deploy$/);
});

void test("a release id taken on a host is refused in the local engine's words: a release there, an empty folder, a damaged record, a pruned release's record", () => {
  const hosts = [
    { label: 'web1', root: '/srv/app' },
    { label: 'web2', root: '/srv/app' },
  ];
  const on = (state: { releases: string[]; empty?: string[]; damaged?: Map<string, string> }): { label: string; root: string; state: typeof state } => ({ label: 'web2', root: '/srv/app', state });
  const there = releaseIdTakenOn(hosts, on({ releases: ['r1'] }), 'r1');
  assert.equal(there.message, 'web2: release r1 already exists in /srv/app/releases');
  assert.equal(there.hint, 'release ids are never reused: pick a new id, or switch to it with: atomic-deploy rollback /srv/app --host web1 --host web2 --to r1');
  assert.equal(releaseIdTakenOn(hosts, on({ releases: ['r1'], empty: ['r1'] }), 'r1').message, 'web2: /srv/app/releases/r1 is taken by an empty directory, not a release');
  assert.equal(releaseIdTakenOn(hosts, on({ releases: [], damaged: new Map([['r1', 'not valid JSON']]) }), 'r1').message, 'web2: release id r1 has a damaged record in the release log (not valid JSON)');
  const pruned = releaseIdTakenOn(hosts, on({ releases: [] }), 'r1');
  assert.equal(pruned.message, 'web2: release id r1 was used before: that release was pruned, and its record stays in the release log');
  assert.equal(pruned.code, 'RELEASE_EXISTS');
  // Hosts with roots of their own: no one command names them all.
  assert.match(releaseIdTakenOn([...hosts, { label: 'web3', root: '/srv/other' }], on({ releases: ['r1'] }), 'r1').hint ?? '', /atomic-deploy rollback --to r1 with the same hosts and config$/);
});

void test("a fleet error's hint names every host that failed the same way, not the first alone", () => {
  const held = (label: string): { label: string; error: { code: 'LOCKED'; message: string; hint: string } } => ({
    label,
    error: { code: 'LOCKED', message: `${label}: locked by another deploy`, hint: `wait for it with --wait <seconds>; if that deploy is hung, stop it, then run: atomic-deploy unlock /srv/app --host ${label}` },
  });
  const all = fleetError([held('web1'), held('web2'), { label: 'web3' }], 'nothing was switched', {});
  assert.equal(all.hint, 'wait for it with --wait <seconds>; if that deploy is hung, stop it, then run: atomic-deploy unlock /srv/app --host web1 --host web2');
  // One host alone, or hints that differ otherwise (another root): the first host's hint as it is.
  assert.equal(fleetError([held('web1'), { label: 'web2' }], 'x', {}).hint, held('web1').error.hint);
  const elsewhere = { label: 'web2', error: { ...held('web2').error, hint: held('web2').error.hint.replace('/srv/app', '/srv/other') } };
  assert.equal(fleetError([held('web1'), elsewhere], 'x', {}).hint, held('web1').error.hint);
  assert.equal(fleetError([held('web1'), held('web2')], 'x', {}, 'given').hint, 'given');
});
