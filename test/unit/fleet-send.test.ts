import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { failedLinks, linkablePath, parseSums, planSend, withResent } from '../../src/plan/fleet-send.ts';
import type { Manifest, ManifestEntry } from '../../src/plan/manifest.ts';

const hex = fc.constantFrom('0', '1', '2').map((c) => c.repeat(64));
const name = fc.constantFrom('a', 'b', 'c\nd', 'e\\f', 'g h', 'ü');

// Two builds over the same small namespace of files: sizes, hashes and modes collide often.
const fileArb = fc.record({ path: name, mode: fc.constantFrom(0o644, 0o755), size: fc.constantFrom(1, 2), sha256: hex });
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
      }
      if (have === null) assert.deepEqual(plan.link, []);
    }),
  );
});

void test('a linked file whose hash on the host differs, or that is missing from the listing, is sent again', () => {
  fc.assert(
    fc.property(manifestArb, fc.func(fc.constantFrom<'same' | 'other' | 'missing'>('same', 'other', 'missing')), (build, fate) => {
      const plan = planSend(build, build);
      const sums = new Map<string, string>();
      const want = new Map(build.entries.flatMap((e) => (e.type === 'file' ? [[e.path, e.sha256] as const] : [])));
      for (const p of plan.link) {
        const f = fate(p);
        if (f === 'same') sums.set(p, want.get(p) ?? '');
        if (f === 'other') sums.set(p, 'f'.repeat(64));
      }
      const failed = failedLinks(build, plan.link, sums);
      assert.deepEqual(failed, plan.link.filter((p) => fate(p) !== 'same'));
      const resent = withResent(plan, failed);
      for (const p of failed) assert.ok(resent.includes(p));
      for (const p of plan.link) if (!failed.includes(p)) assert.ok(!resent.includes(p));
    }),
  );
});

void test('sha256sum and shasum listings parse, text and binary mode, with or without ./', () => {
  const a = 'a'.repeat(64);
  const b = 'b'.repeat(64);
  const sums = parseSums(`${a}  lib/x y.js\n${b} *./bin/tool\nsha256sum: gone: No such file or directory\n\\${a}  odd\\nname\n`);
  assert.deepEqual([...sums], [
    ['lib/x y.js', a],
    ['bin/tool', b],
  ]);
});
