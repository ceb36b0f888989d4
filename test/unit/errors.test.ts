// Every expected system error reaches the user with a hint that says what to do.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ioError } from '../../src/errors.ts';

void test('a read-only file system gets a hint', () => {
  const error = Object.assign(new Error('EROFS: read-only file system, mkdir'), { code: 'EROFS' });
  const wrapped = ioError('creating the layout', error);
  assert.match(wrapped.message, /read-only file system/);
  assert.match(wrapped.hint ?? '', /remount/);
});
