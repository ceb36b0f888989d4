import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeployError } from '../../src/errors.ts';
import { parseConfig } from '../../src/plan/config.ts';
import { decideAfterSwitch, hostFailed } from '../../src/plan/fleet.ts';
import { budgetWarning, failureBudget, overBudget, parseMaxFail, parseWaves, planWaves, splitWaves, type Size } from '../../src/plan/waves.ts';

const sizeArb: fc.Arbitrary<Size> = fc.oneof(fc.integer({ min: 1, max: 30 }).map((count) => ({ count })), fc.integer({ min: 1, max: 100 }).map((percent) => ({ percent })));

void test('waves cover every host once, in order, each wave non-empty; the first wave is the first size', () => {
  fc.assert(
    fc.property(fc.array(sizeArb, { minLength: 1, maxLength: 5 }), fc.integer({ min: 1, max: 1000 }), (sizes, total) => {
      const waves = planWaves(sizes, total);
      assert.equal(waves.reduce((a, b) => a + b, 0), total);
      for (const n of waves) assert.ok(n >= 1);
      const first = sizes[0] as Size;
      assert.equal(waves[0], Math.min(total, 'count' in first ? first.count : Math.max(1, Math.floor((total * first.percent) / 100))));
      const hosts = Array.from({ length: total }, (_, i) => i);
      assert.deepEqual(splitWaves(hosts, sizes).flat(), hosts);
    }),
  );
  assert.deepEqual(planWaves(parseWaves('1,10%,100%') as Size[], 50), [1, 5, 44]);
  assert.deepEqual(planWaves(parseWaves('1,10%,100%') as Size[], 4), [1, 1, 2]);
  assert.deepEqual(planWaves(parseWaves('2') as Size[], 5), [2, 2, 1], 'the last size repeats');
});

void test('--waves and --max-fail refuse what they cannot mean', () => {
  for (const bad of ['', '0', '1,,2', '0%', '101%', 'x', '-1', '1.5']) assert.equal(typeof parseWaves(bad), 'string', bad);
  for (const bad of ['', '-1', '1x', '200%']) assert.equal(typeof parseMaxFail(bad), 'string', bad);
  assert.deepEqual(parseMaxFail('0'), { count: 0 });
  // Zero in other digits is zero (`00` was refused as not ">= 0", `0.0%` as not over 0%).
  for (const zero of ['00', '0%', '0.0%', '00%']) assert.deepEqual(parseMaxFail(zero), { count: 0 }, zero);
  // 0 is a budget: the message says so (a wave's ">= 1" did not).
  assert.equal(parseMaxFail('-1'), 'invalid --max-fail "-1": expected a number of hosts (>= 0) or a percentage such as 5%');
  const over = parseMaxFail('200%');
  assert.equal(typeof over, 'string');
  assert.match(over as string, /^invalid --max-fail "200%": a percentage must be over 0% and at most 100%$/);
  assert.equal(failureBudget(parseMaxFail('10%') as Size, 25), 2);
  assert.equal(failureBudget(undefined, 25), 0, 'no budget: all-or-nothing');
  assert.equal(overBudget(1, 1), false);
  assert.equal(overBudget(2, 1), true);
});

const reportArb = fc.record({ switched: fc.boolean(), lost: fc.boolean(), skipped: fc.boolean(), failed: fc.boolean(), health: fc.constantFrom<'ok' | 'failed' | undefined>('ok', 'failed', undefined) });

void test('the budget: within it only failed hosts go back; beyond it (or with a wave skipped) every switched host does, unless keep', () => {
  fc.assert(
    fc.property(fc.array(reportArb, { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 4 }), fc.constantFrom<'rollback' | 'keep'>('rollback', 'keep'), (raw, budget, policy) => {
      const hosts = raw.map((h, i) => ({ host: `h${i}`, switched: h.switched && !h.skipped, lost: h.lost && !h.skipped, skipped: h.skipped, failed: h.failed && !h.switched, ...(h.health && h.switched ? { health: h.health } : {}) }));
      const d = decideAfterSwitch(hosts, policy, budget);
      const failures = hosts.filter(hostFailed);
      const anySkipped = hosts.some((h) => h.skipped);
      for (const h of hosts) {
        const words = [d.commit, d.back, d.undo].filter((list) => list.includes(h.host)).length;
        assert.ok(words <= 1, 'one word per host');
        if (h.lost) assert.equal(words, 0, 'a lost host gets no word');
        if (d.commit.includes(h.host) || d.back.includes(h.host)) assert.ok(h.switched);
      }
      const anyHealthy = hosts.some((h) => h.switched && !h.lost && h.health !== 'failed');
      if (!anySkipped && failures.length > 0 && !anyHealthy) {
        // No host left healthy on the release: never a success, whatever the budget.
        assert.equal(d.ok, false);
        assert.deepEqual(d.tolerated, [], 'a rollout that reached no host healthy tolerates nothing');
        if (policy === 'rollback') assert.deepEqual(d.commit, []);
      } else if (failures.length <= budget && !anySkipped) {
        // Within budget: every healthy switched host commits, every failed one is not committed.
        for (const h of hosts) if (h.switched && !h.lost && h.health !== 'failed') assert.ok(d.commit.includes(h.host));
        for (const h of failures) assert.ok(!d.commit.includes(h.host));
        assert.deepEqual(d.tolerated, failures.map((h) => h.host));
      } else if (policy === 'rollback') {
        assert.deepEqual(d.commit, [], 'beyond the budget nothing commits');
        assert.deepEqual(d.back, hosts.filter((h) => h.switched && !h.lost).map((h) => h.host));
      }
    }),
  );
});

void test('every host failed: beyond any budget, --max-fail 100% included (exit 0 had said it deployed to none)', () => {
  const sick = [
    { host: 'a', switched: true, lost: false, health: 'failed' as const },
    { host: 'b', switched: false, lost: false, failed: true },
    { host: 'c', switched: true, lost: false, health: 'failed' as const },
  ];
  const all = failureBudget(parseMaxFail('100%') as Size, sick.length);
  assert.equal(all, 3);
  assert.deepEqual(decideAfterSwitch(sick, 'rollback', all), { ok: false, commit: [], back: ['a', 'c'], undo: ['b'], reason: 'the health check failed on a, c; the switch did not complete on b: no host passed, which no failure budget tolerates', tolerated: [] });
  assert.deepEqual(decideAfterSwitch(sick, 'keep', all).commit, ['a', 'c'], 'keep leaves the switched hosts where they are, as beyond any budget');
  // Control: one healthy host, and the same budget tolerates the others.
  const one = [...sick.slice(0, 2), { host: 'c', switched: true, lost: false, health: 'ok' as const }];
  assert.deepEqual(decideAfterSwitch(one, 'rollback', all), { ok: false, commit: ['c'], back: ['a'], undo: ['b'], reason: 'the health check failed on a; the switch did not complete on b', tolerated: ['a', 'b'] });
});

void test('a percentage budget that rounds down to no host is said; one that leaves a host, a count, or no budget is not', () => {
  assert.equal(budgetWarning(parseMaxFail('10%') as Size, 3), '--max-fail 10% of 3 hosts rounds down to 0: the first failed host stops the rollout (give a number of hosts, --max-fail 1, to tolerate one)');
  assert.equal(budgetWarning(parseMaxFail('10%') as Size, 10), undefined);
  assert.equal(budgetWarning(parseMaxFail('0') as Size, 3), undefined, 'a budget of 0 asked for');
  assert.equal(budgetWarning(parseMaxFail('0%') as Size, 3), undefined);
  assert.equal(budgetWarning(undefined, 3), undefined);
});

void test('the config file takes the same keys, checked the same way', () => {
  const c = parseConfig({ waves: '1,10%,100%', wavePause: 3, maxFail: '5%', onFailure: 'keep' }, 'atomic-deploy.config.yaml');
  assert.deepEqual([c.waves, c.wavePause, c.maxFail, c.onFailure], ['1,10%,100%', 3, '5%', 'keep']);
  assert.equal(parseConfig({ maxFail: 2, waves: 1 }, 'x.yaml').maxFail, 2);
  for (const bad of [{ waves: '0' }, { waves: '1,,2' }, { maxFail: '-1' }, { wavePause: -1 }, { onFailure: 'ignore' }]) {
    assert.throws(() => parseConfig(bad, 'x.yaml'), (e: unknown) => e instanceof DeployError && e.code === 'INVALID_CONFIG', JSON.stringify(bad));
  }
});
