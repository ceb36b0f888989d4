import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { differenceList, targetCheckVerdict } from '../../src/plan/target-check.ts';
import type { Difference, DifferenceKind } from '../../src/plan/manifest.ts';

const base = { release: 'r1', verifyCommand: 'atomic-deploy verify /srv/app --release r1', dryRun: false } as const;

void test('differenceList names three, counts the rest, leaves sizes and hashes to verify, and keeps a name on one line', () => {
  const d = (kind: DifferenceKind, path: string, expected?: string, actual?: string): Difference => ({ kind, path, expected, actual });
  assert.equal(differenceList([d('modified', 'a.php', '3 bytes sha256:aa', '4 bytes sha256:bb')]), 'modified a.php');
  assert.equal(differenceList([d('mode', 'x', '644', '666'), d('retargeted', 'l', '-> a', '-> /etc/passwd')]), 'mode x (644 -> 666), retargeted l (-> a -> -> /etc/passwd)');
  assert.equal(differenceList([d('added', 'a'), d('added', 'b'), d('removed', 'c'), d('removed', 'd'), d('added', 'e')]), 'added a, added b, removed c and 2 more');
  assert.equal(differenceList([d('added', 'evil\nwarning: fake')]), 'added evil\\nwarning: fake');
  fc.assert(
    fc.property(fc.array(fc.record({ kind: fc.constantFrom<DifferenceKind>('modified', 'added', 'removed', 'mode'), path: fc.string() }), { minLength: 1, maxLength: 20 }), (ds) => {
      const text = differenceList(ds);
      assert.ok(!/[\n\r]/.test(text));
      if (ds.length > 3) assert.ok(text.endsWith(` and ${ds.length - 3} more`));
    }),
  );
});

void test('the verdict: a match is a step, a difference warns or refuses, a release that cannot be checked is said per mode', () => {
  assert.deepEqual(targetCheckVerdict({ kind: 'checked', differences: [] }, { ...base, mode: 'fail' }), { contents: { check: 'identical' }, step: 'release r1 matches its manifest' });
  const differs = { kind: 'checked' as const, differences: [{ kind: 'added' as const, path: 'x.php' }] };
  const warned = targetCheckVerdict(differs, { ...base, mode: 'warn', where: 'web1: ' });
  assert.equal(warned.refusal, undefined);
  assert.equal(warned.warning?.message, 'web1: release r1 differs from its manifest (1 difference: added x.php); it goes live as it is');
  assert.match(targetCheckVerdict(differs, { ...base, mode: 'warn', switched: true }).warning?.message ?? '', /; it is live as it is$/);
  const refused = targetCheckVerdict(differs, { ...base, mode: 'fail', dryRun: true });
  assert.equal(refused.warning, undefined);
  assert.match(refused.refusal?.message ?? '', /the rollback would refuse it, nothing was changed \(dry run\)$/);
  assert.match(refused.refusal?.hint ?? '', /^see every difference with: atomic-deploy verify \/srv\/app --release r1; /);

  const none = targetCheckVerdict({ kind: 'no-manifest', problem: 'release r1 has no manifest' }, { ...base, mode: 'warn' });
  assert.equal(none.warning, undefined, 'a release made before manifests is common: a step, not a warning');
  assert.equal(none.step, 'release r1 has no manifest to check it against; it goes live unchecked');
  const untrusted = targetCheckVerdict({ kind: 'untrusted', problem: 'the manifest of release r1 cannot be trusted: it is missing' }, { ...base, mode: 'warn' });
  assert.equal(untrusted.contents.check, 'untrusted');
  assert.match(untrusted.warning?.message ?? '', /cannot be trusted: it is missing; it goes live unchecked$/);
  assert.match(targetCheckVerdict({ kind: 'no-manifest', problem: 'release r1 has no manifest' }, { ...base, mode: 'fail' }).refusal?.message ?? '', /--verify fail refuses a release that cannot be checked/);
});
