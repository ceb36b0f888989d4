// Placing a release as data (src/root/place.ts): what it may touch, and the order its steps keep.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { effectsOf, pathsTouched, type Effect } from '../../src/root/effects.ts';
import { placeRelease, type PlaceInput } from '../../src/root/place.ts';
import { renderFunction } from '../../src/root/sh.ts';

const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,20}$/);
const hex = fc.stringMatching(/^[0-9a-f]{12}$/);
/** The three shapes a stage has: the local engine's, a fleet host's in .tmp/, a hidden one inside releases/. */
const input = fc.tuple(id, hex, fc.constantFrom('local', 'fleet', 'hidden'), fc.string()).map(([i, h, shape, text]): PlaceInput => {
  if (shape === 'local') return { id: i, stage: `.tmp/stage.${i}.${h}`, record: text, journal: text };
  const dir = shape === 'fleet' ? `.tmp/stage.${h}` : `releases/.stage.${h}`;
  return { id: i, stage: `${dir}/${i}`, manifest: `${dir}/manifest.json`, leftover: dir, record: text, journal: text };
});

const index = (effects: Effect[], match: (e: Effect) => boolean): number => effects.findIndex(match);

test('placing refuses an existing releases/<id> before anything changes', () => {
  fc.assert(
    fc.property(input, (p) => {
      const first = placeRelease(p).ops[0];
      assert.ok(first && 'if' in first && first.if.is === 'dir' && first.if.path === `releases/${p.id}`);
      assert.deepEqual(first.then, [{ fail: 'RELEASE_EXISTS', message: `release ${p.id} already exists in releases/` }]);
    }),
  );
});

test('the manifest is stored before the rename, the record after it, the journal last', () => {
  fc.assert(
    fc.property(input, (p) => {
      const effects = effectsOf(placeRelease(p).ops);
      const rename = index(effects, (e) => e.do === 'rename');
      const synced = index(effects, (e) => e.do === 'durable' && e.path === 'releases');
      const record = index(effects, (e) => e.do === 'write' && e.path === `.atomic-deploy/releases/${p.id}.json`);
      const journal = index(effects, (e) => e.do === 'write' && e.path === '.atomic-deploy/journal.json');
      assert.deepEqual(effects[rename], { do: 'rename', from: p.stage, to: `releases/${p.id}`, readOnlyDir: true });
      assert.ok(rename < synced && synced < record && record < journal, JSON.stringify(effects));
      // Opened to everyone (a 0700 build's top directory) before it is a release, never after.
      const opened = index(effects, (e) => e.do === 'open-dir');
      assert.deepEqual(effects[opened], { do: 'open-dir', path: p.stage });
      assert.ok(opened < rename, JSON.stringify(effects));
      assert.equal(journal, effects.findLastIndex((e) => e.do === 'write' || e.do === 'copy' || e.do === 'rename' || e.do === 'remove'));
      if (p.manifest !== undefined) {
        const copy = index(effects, (e) => e.do === 'copy');
        assert.deepEqual(effects[copy], { do: 'copy', from: p.manifest, to: `.atomic-deploy/manifests/${p.id}.json` });
        assert.ok(copy < rename);
      } else assert.equal(index(effects, (e) => e.do === 'copy'), -1);
    }),
  );
});

test('placing touches only the stage, releases/ and the state directory, never current or .deploy.lock', () => {
  fc.assert(
    fc.property(input, (p) => {
      for (const effect of effectsOf(placeRelease(p).ops)) {
        for (const touched of pathsTouched(effect)) {
          const inside = touched === p.stage || touched === p.leftover || touched === 'releases' || touched === `releases/${p.id}` || touched === '.atomic-deploy' || touched.startsWith('.atomic-deploy/');
          assert.ok(inside, `place_release touches ${touched}`);
        }
        // Only the stage leftover is removed: nothing in releases/ but the hidden stage, never a release.
        if (effect.do === 'remove') assert.equal(effect.path, p.leftover);
      }
    }),
  );
});

test('the rendered program quotes the id and names its outcome', () => {
  const text = renderFunction(placeRelease({ id: "a'b", stage: ".tmp/stage.x/a'b", manifest: '.tmp/stage.x/manifest.json', leftover: '.tmp/stage.x', record: '{}', journal: '{}' }));
  assert.match(text, /^place_release\(\) \{/);
  assert.ok(text.includes(`"$root/"'releases/a'\\''b'`), text);
  assert.ok(text.includes(`copy_file "$root/"'.tmp/stage.x/manifest.json' "$root/"'.atomic-deploy/manifests'`), text);
  assert.ok(text.trimEnd().endsWith("R_out='placed'\n}"), text);
});
