import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { failedChecks, linkablePath, linkListDigest, planSend, withResent } from '../../src/plan/fleet-send.ts';
import { linkGuard } from '../../src/plan/strategy.ts';
import { createHash } from 'node:crypto';
import type { Manifest, ManifestEntry } from '../../src/plan/manifest.ts';
import { linkVerdict } from '../../src/remote/content.ts';
import type { Frame } from '../../src/remote/facts.ts';

const hex = fc.constantFrom('0', '1', '2').map((c) => c.repeat(64));
const name = fc.constantFrom('a', 'b', 'c\nd', 'e\\f', 'g h', 'ü', 'q"r', 't\tu', '\u007f');

// Two builds over the same small namespace of files: sizes, hashes and modes collide often.
// Modes include those never shared: group- or world-writable, setuid, setgid (plan/strategy.ts linkGuard).
const fileArb = fc.record({ path: name, mode: fc.constantFrom(0o644, 0o755, 0o664, 0o646, 0o4755, 0o2755), size: fc.constantFrom(1, 2), sha256: hex });
const manifestArb = fc.uniqueArray(fileArb, { selector: (f) => f.path, maxLength: 6 }).chain((files) =>
  fc.boolean().map((withLink): Manifest => {
    const entries: ManifestEntry[] = [{ path: 'd', type: 'dir', mode: 0o755 }, ...files.map((f) => ({ ...f, path: `d/${f.path}`, type: 'file' as const }))];
    if (withLink) entries.push({ path: 'l', type: 'symlink', target: 'd/a' });
    return { entries: entries.sort((x, y) => (x.path < y.path ? -1 : 1)) };
  }),
);

void test('every entry of the build is either sent or linked, and a file is linked only when the old release has the same bytes and mode', () => {
  fc.assert(
    fc.property(manifestArb, fc.option(manifestArb, { nil: null }), (build, have) => {
      const plan = planSend(build, have);
      assert.equal(plan.send[0], '.', 'the release directory itself is listed first');
      const all = [...plan.send.slice(1), ...plan.link].sort();
      assert.deepEqual(all, build.entries.map((e) => e.path).sort(), 'each entry exactly once');
      const old = new Map((have?.entries ?? []).map((e) => [e.path, e]));
      for (const p of plan.link) {
        const want = build.entries.find((e) => e.path === p);
        const got = old.get(p);
        assert.ok(want?.type === 'file' && got?.type === 'file');
        assert.ok(want.sha256 === got.sha256 && want.size === got.size && want.mode === got.mode, `${p} linked with other bytes or mode`);
        assert.ok(linkablePath(p), `${JSON.stringify(p)} cannot be named in a hash listing`);
        assert.equal(linkGuard(want.mode), undefined, `${p} linked with mode ${want.mode.toString(8)}, which the local engine never shares`);
      }
      if (have === null) assert.deepEqual(plan.link, []);
      // rsync runs with --no-implied-dirs: each sent path's parent directory must be sent before it.
      for (const [i, p] of plan.send.entries()) {
        const parent = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : undefined;
        if (parent !== undefined) assert.ok(plan.send.slice(0, i).includes(parent), `${p} is listed before its directory ${parent}`);
      }
    }),
  );
});

void test('the local engine\'s guard holds across hosts: a file another user may write in place, or a setuid or setgid file, is sent even when unchanged', () => {
  const file = (path: string, mode: number): ManifestEntry => ({ path, type: 'file', mode, size: 1, sha256: '0'.repeat(64) });
  const build: Manifest = { entries: [file('a', 0o644), file('b', 0o664), file('c', 0o646), file('d', 0o4755), file('e', 0o2755), file('f', 0o1755)] };
  const plan = planSend(build, build);
  // Sticky alone grants no one a write: f may be shared.
  assert.deepEqual(plan.link, ['a', 'f']);
  assert.deepEqual(plan.send, ['.', 'b', 'c', 'd', 'e']);
});

/** What `<sum> -c` prints for each linked file, GNU-style or BusyBox-style: the lines the host keeps (all but `: OK`) and the OK count. */
function hostCheck(linked: readonly string[], fate: (p: string) => 'same' | 'other' | 'missing', busybox: boolean): { failed: string; ok: number } {
  let failed = '';
  let ok = 0;
  for (const p of linked) {
    const f = fate(p);
    if (f === 'same') ok += 1;
    else failed += `${p}: FAILED${f === 'missing' && !busybox ? ' open or read' : ''}\n`;
  }
  return { failed, ok };
}

void test('a linked file whose hash on the host differs, or that is missing there, is sent again; the others are not', () => {
  fc.assert(
    fc.property(manifestArb, fc.func(fc.constantFrom<'same' | 'other' | 'missing'>('same', 'other', 'missing')), fc.boolean(), (build, fate, busybox) => {
      const plan = planSend(build, build);
      const { failed: lines, ok } = hostCheck(plan.link, fate, busybox);
      const failed = failedChecks(lines, ok, plan.link);
      assert.deepEqual(failed, plan.link.filter((p) => fate(p) !== 'same'));
      const resent = withResent(plan, failed ?? []);
      for (const p of failed ?? []) assert.ok(resent.includes(p));
      for (const p of plan.link) if (!(failed ?? []).includes(p)) assert.ok(!resent.includes(p));
    }),
  );
});

void test('linkable paths are those JSON writes without an escape: quotes, backslashes and control characters are sent', () => {
  for (const p of ['lib/x y.js', 'lib/ü: FAILED', '-rf', 'a/\u007f', "it's"]) assert.ok(linkablePath(p), p);
  for (const p of ['a"b', 'a\\b', 'a\nb', 'a\rb', 'a\tb', 'a\u0001b', 'a\ud800b']) assert.ok(!linkablePath(p), JSON.stringify(p));
});

void test('the link list digest is the SHA-256 of the paths one a line, in order', () => {
  assert.equal(linkListDigest(['a', 'b c']), createHash('sha256').update('a\nb c\n').digest('hex'));
  assert.notEqual(linkListDigest(['a', 'b']), linkListDigest(['b', 'a']));
  assert.equal(linkListDigest([]), createHash('sha256').update('').digest('hex'));
});

void test('a check output that proves less than every linked file checked is not read as a verdict', () => {
  const linked = ['a', 'b: FAILED', 'c'];
  // Read: names that end in the suffix themselves, and both forms of a missing file.
  assert.deepEqual(failedChecks('', 3, linked), []);
  assert.deepEqual(failedChecks('b: FAILED: FAILED\n', 2, linked), ['b: FAILED']);
  assert.deepEqual(failedChecks('c: FAILED open or read\na: FAILED\n', 1, linked), ['a', 'c']);
  // Not read: counts that do not add up (a file neither OK nor failed), a line of another form,
  // a path that was not linked, the same path twice, a count that is no count.
  assert.equal(failedChecks('', 2, linked), undefined);
  assert.equal(failedChecks('a: FAILED\n', 3, linked), undefined);
  assert.equal(failedChecks('a: something else\n', 2, linked), undefined);
  assert.equal(failedChecks('d: FAILED\n', 2, linked), undefined);
  assert.equal(failedChecks('a: FAILED\na: FAILED\n', 1, linked), undefined);
  assert.equal(failedChecks('', Number.NaN, linked), undefined);
  assert.equal(failedChecks('', -1, []), undefined);
});

void test("the host's link step is read as a verdict only when its stored manifest, its list and its counts all agree with the plan", () => {
  const digest = `sha256:${'d'.repeat(64)}`;
  const linked = ['a', 'b c'];
  const list = linkListDigest(linked);
  const frames = (pairs: Record<string, string>): Frame[] => Object.entries(pairs).map(([tag, value]) => ({ tag, value }));
  const good = { 'stored-sha256': 'd'.repeat(64), 'link-list': list, checked: '1', failed: 'b c: FAILED\n' };
  assert.deepEqual(linkVerdict(frames(good), digest, list, linked), { kind: 'checked', failed: ['b c'] });
  assert.deepEqual(linkVerdict(frames({ ...good, checked: '2', failed: '' }), digest, list, linked), { kind: 'checked', failed: [] });
  // The stored manifest is not the build's: the host is failed, not sent to.
  assert.deepEqual(linkVerdict(frames({ ...good, 'stored-sha256': 'e'.repeat(64) }), digest, list, linked), { kind: 'stored-other', sha256: 'e'.repeat(64) });
  // Anything less than a full account: every linked file is sent, with the reason.
  const unchecked = (pairs: Record<string, string>): string => {
    const v = linkVerdict(frames(pairs), digest, list, linked);
    assert.equal(v.kind, 'unchecked', JSON.stringify(pairs));
    return v.kind === 'unchecked' ? v.why : '';
  };
  assert.match(unchecked({ ...good, 'link-list': linkListDigest(['a']) }), /not the ones planned/);
  assert.match(unchecked({ 'no-sum': 'yes' }), /no sha256sum or shasum/);
  assert.match(unchecked({ 'no-stat': 'yes' }), /no stat/);
  assert.match(unchecked({ 'no-awk': 'yes' }), /no awk/);
  assert.match(unchecked({ 'no-find-links': 'yes' }), /no find on the host that tests link counts/);
  for (const missing of ['stored-sha256', 'link-list', 'checked', 'failed']) {
    const partial: Record<string, string> = { ...good };
    delete partial[missing];
    assert.match(unchecked(partial), /could not be read/, missing);
  }
  assert.match(unchecked({ ...good, checked: '2' }), /could not be read/);
  assert.match(unchecked({ ...good, checked: 'x' }), /could not be read/);
});
