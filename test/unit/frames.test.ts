import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { FrameReader, parseFrames } from '../../src/remote/facts.ts';

const encode = (pairs: readonly (readonly [string, string])[]): Buffer => Buffer.from(pairs.map(([t, v]) => `${t}\0${v}\0`).join(''));

/** Cuts `bytes` at the given offsets (any order, repeats allowed): chunk edges may fall inside a UTF-8 sequence. */
function cut(bytes: Buffer, at: readonly number[]): Buffer[] {
  const edges = [...new Set(at.map((x) => x % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const e of [...edges, bytes.length]) {
    chunks.push(bytes.subarray(from, e));
    from = e;
  }
  return chunks;
}

const noNul = fc.string({ unit: 'binary' }).map((s) => s.replaceAll('\0', ''));

void test('frames come out whole and in order however the stream is cut, multi-byte text and empty chunks included', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(noNul, noNul), { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 40 }), (pairs, at) => {
      const reader = new FrameReader();
      const got = cut(encode(pairs), at).flatMap((chunk) => reader.push(chunk));
      assert.deepEqual(got.map((f) => [f.tag, f.value]), pairs.map(([t, v]) => [t, v]));
    }),
  );
});

void test('a partial pair waits for its end; what follows it in the same chunk is read at once', () => {
  const reader = new FrameReader();
  assert.deepEqual(reader.push(Buffer.from('sums\0ab')), []);
  assert.deepEqual(reader.push(Buffer.from('c')), []);
  assert.deepEqual(reader.push(Buffer.from('d\0done\0yes\0next\0')), [
    { tag: 'sums', value: 'abcd' },
    { tag: 'done', value: 'yes' },
  ]);
  assert.deepEqual(reader.push(Buffer.from('1\0')), [{ tag: 'next', value: '1' }]);
  assert.deepEqual(parseFrames('a\0\0b\0x\0'), [
    { tag: 'a', value: '' },
    { tag: 'b', value: 'x' },
  ]);
});

void test('a large value in small chunks: every byte kept (a manifest arrives in hundreds of pieces)', () => {
  const value = Array.from({ length: 20_000 }, (_, i) => `${i.toString(16).padStart(64, 'é')} f/${i}`).join('\n');
  const bytes = encode([['manifest', value], ['end', 'ok']]);
  const reader = new FrameReader();
  const frames = [];
  for (let i = 0; i < bytes.length; i += 4093) frames.push(...reader.push(bytes.subarray(i, i + 4093)));
  assert.equal(frames.length, 2);
  assert.equal(frames[0]?.value, value);
  assert.deepEqual(frames[1], { tag: 'end', value: 'ok' });
});
