// The root programs as data: what each lock operation may touch, and how programs render to sh.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { effectsOf, pathsTouched, type RootProgram } from '../../src/root/effects.ts';
import { dropRemovedLock, lockInstance, placeLock, releaseLock, removeLock, takeOverLock } from '../../src/root/lock.ts';
import { renderFunction } from '../../src/root/sh.ts';
import { shQuote } from '../../src/remote/shell.ts';

const effects = effectsOf;
const touched = pathsTouched;

const token = fc.stringMatching(/^[0-9a-f]{24}$/);
const anyText = fc.string({ minLength: 1, maxLength: 40 });

test('lock instance names are plain file names, whatever a lock records', () => {
  fc.assert(
    fc.property(fc.option(anyText, { nil: undefined }), fc.stringMatching(/^\d{1,10}$/), fc.nat(), (t, inode, mtime) => {
      const name = lockInstance(t, inode, mtime);
      assert.match(name, /^[A-Za-z0-9._-]+$/);
    }),
  );
});

test('releasing a lock never deletes a takeover tombstone; only the sweep of old entries may', () => {
  fc.assert(
    fc.property(token, (t) => {
      for (const effect of effects(releaseLock(t).ops)) {
        if (effect.do === 'remove') assert.ok(!effect.path.startsWith('.tmp/stale-lock.'), effect.path);
        if (effect.do === 'sweep') assert.ok(effect.olderThanS >= 600);
      }
    }),
  );
});

test('every lock program stays inside .deploy.lock, .tmp/ and the root directory itself', () => {
  fc.assert(
    fc.property(token, anyText, fc.oneof(token.map((x) => ({ token: x })), fc.record({ inode: fc.stringMatching(/^\d{1,8}$/), mtimeS: fc.nat() })), (t, raw, identity) => {
      const instance = lockInstance(raw, '1', 0);
      const programs: RootProgram<string>[] = [placeLock(t), releaseLock(t), takeOverLock(instance, identity), removeLock(instance, identity), dropRemovedLock(instance)];
      for (const program of programs) {
        for (const p of effects(program.ops).flatMap(touched)) {
          assert.ok(p === '.' || p === '.deploy.lock' || p === '.tmp' || /^\.tmp\/[^/]+$/.test(p), `${program.name} touches ${p}`);
          assert.ok(!p.split('/').includes('..'), `${program.name} touches ${p}`);
        }
      }
    }),
  );
});

test('a takeover removes the stale holder\'s heartbeat file only for a token that is a plain name', () => {
  const beats = (t: string): string[] => effects(takeOverLock('x', { token: t }).ops).filter((e) => e.do === 'remove').map((e) => (e.do === 'remove' ? e.path : ''));
  assert.deepEqual(beats('abc123'), ['.tmp/beat.abc123']);
  assert.deepEqual(beats('../../etc'), []);
  assert.deepEqual(effects(takeOverLock('x', { inode: '5', mtimeS: 1 }).ops).filter((e) => e.do === 'remove'), []);
});

test('rendered programs quote every path and name each outcome', () => {
  fc.assert(
    fc.property(anyText, (raw) => {
      const instance = lockInstance(raw, '1', 0);
      const text = renderFunction(takeOverLock(instance, { inode: '12', mtimeS: 3 }));
      assert.ok(text.startsWith('take_over_lock() {'));
      assert.ok(text.includes(`"$root/"${shQuote(`.tmp/stale-lock.${instance}`)}`), text);
      for (const outcome of ['lost', 'changed', 'moved']) assert.ok(text.includes(`R_out=${shQuote(outcome)}`), outcome);
    }),
  );
  const place = renderFunction(placeLock('abc'));
  // The fresh-empty check comes before the rename: an empty lock directory is judged, never replaced.
  assert.ok(place.indexOf('fresh_empty_dir') < place.indexOf('rename_exact'), place);
});
