import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { shellWord } from '../../src/plan/paths.ts';
import { shJoin, shQuote } from '../../src/remote/shell.ts';

// Characters that are special somewhere in POSIX shell, plus control characters (no NUL).
const NASTY = [
  "'", '"', '\\', '$', '`', '(', ')', '{', '}', '[', ']', '*', '?', '~', '!', '#', '&', '|',
  ';', '<', '>', ' ', '\t', '\n', '\r', '-', '=', '%', '\x01', '\x1b', '\x7f',
];
const controlChar = fc.integer({ min: 1, max: 0x1f }).map((c) => String.fromCharCode(c));
const unit = fc.oneof(
  fc.constantFrom(...NASTY),
  controlChar,
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
);
// Any well-formed string without NUL: what a path or argument can really be.
const word = fc.string({ unit, maxLength: 40 }).filter((s) => !s.includes('\0'));

function runSh(shell: string, script: string): Buffer {
  return execFileSync(shell, ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
}

void test('sh reads shQuote(s) back as exactly s', () => {
  fc.assert(
    fc.property(word, (s) => {
      const out = runSh('sh', `printf %s ${shQuote(s)}`);
      assert.deepEqual(out, Buffer.from(s, 'utf8'));
    }),
    { numRuns: 300 },
  );
});

void test('bash reads shQuote(s) back as exactly s', () => {
  fc.assert(
    fc.property(word, (s) => {
      const out = runSh('bash', `printf %s ${shQuote(s)}`);
      assert.deepEqual(out, Buffer.from(s, 'utf8'));
    }),
    { numRuns: 50 },
  );
});

void test('sh reads shellWord(s) back as exactly s, and a plain path is left as it is', () => {
  fc.assert(
    fc.property(word, (s) => {
      const out = runSh('sh', `printf %s ${shellWord(s)}`);
      assert.deepEqual(out, Buffer.from(s, 'utf8'));
    }),
    { numRuns: 300 },
  );
  // What hints show most: a plain absolute path, a host label, a shared path.
  for (const plain of ['/srv/www/app', 'deploy@web-1.example:2222', 'shared/storage.old']) assert.equal(shellWord(plain), plain);
  assert.equal(shellWord("/srv/it's live"), `'/srv/it'\\''s live'`);
  assert.equal(shellWord('~/app'), "'~/app'");
});

void test('sh splits shJoin(argv) back into exactly argv', () => {
  fc.assert(
    fc.property(fc.array(word, { minLength: 1, maxLength: 6 }), (argv) => {
      // printf reuses its format per argument; NUL separators cannot occur inside any word.
      const out = runSh('sh', `printf '%s\\0' ${shJoin(argv)}`);
      const parts = out.toString('utf8').split('\0');
      assert.equal(parts.pop(), '');
      assert.deepEqual(parts, argv);
    }),
    { numRuns: 100 },
  );
});

void test('hand-picked hostile words survive', () => {
  const cases = [
    '',
    "'",
    "''",
    "a'b'c",
    '$(touch /tmp/pwned)',
    '`id`',
    '-rf',
    '--',
    'line1\nline2\n',
    '\\',
    '$HOME ${HOME} $0 $@',
    'ünïcødé ✓ 😀 日本',
    '*',
    '~',
    '!!',
    'a b\tc',
  ];
  for (const s of cases) {
    assert.deepEqual(runSh('sh', `printf %s ${shQuote(s)}`), Buffer.from(s, 'utf8'), JSON.stringify(s));
  }
});

void test('always quotes, so no word can start with a bare dash', () => {
  assert.equal(shQuote('-rf'), "'-rf'");
  assert.equal(shQuote(''), "''");
  assert.equal(shQuote("it's"), "'it'\\''s'");
  assert.equal(shJoin(['ls', '-l', 'a b']), "'ls' '-l' 'a b'");
});

void test('NUL is rejected with a clear error', () => {
  assert.throws(() => shQuote('a\0b'), { name: 'TypeError', message: /NUL/ });
  assert.throws(() => shJoin(['ok', '\0']), { name: 'TypeError', message: /NUL/ });
  fc.assert(
    fc.property(word, word, (a, b) => {
      assert.throws(() => shQuote(`${a}\0${b}`), /NUL/);
    }),
    { numRuns: 50 },
  );
});

void test('lone surrogates and empty argv are rejected', () => {
  assert.throws(() => shQuote('a\uD800b'), { name: 'TypeError', message: /surrogate/ });
  assert.throws(() => shJoin([]), { name: 'TypeError', message: /empty argv/ });
  // A proper surrogate pair is one code point and is fine.
  assert.equal(shQuote('😀'), "'😀'");
});
