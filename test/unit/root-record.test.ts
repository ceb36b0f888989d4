// The bookkeeping programs after a switch (src/root/record.ts) and program arguments: what each may
// touch, that a text bound at run time is never part of the rendered program, and that it reaches
// the file whole.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import fc from 'fast-check';
import { DeployError } from '../../src/errors.ts';
import { releaseIdProblem } from '../../src/plan/release-id.ts';
import { shQuote } from '../../src/remote/shell.ts';
import { effectsOf, pathsTouched } from '../../src/root/effects.ts';
import { runOnFs } from '../../src/root/fs.ts';
import { clearJournalProgram, journalProgram, recordProgram } from '../../src/root/record.ts';
import { JOURNAL_PATH, recordPath } from '../../src/root/recover.ts';
import { renderCall, renderFunction } from '../../src/root/sh.ts';
import { rollbackArmScript } from '../../src/remote/script.ts';

const BASE = fs.mkdtempSync(path.join(os.tmpdir(), 'root-record-'));
after(() => fs.rmSync(BASE, { recursive: true, force: true }));

const validId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,30}$/).filter((id) => releaseIdProblem(id) === undefined);

test('each bookkeeping program touches only its own file (and the clear only the journal and the state directory)', () => {
  assert.deepEqual(effectsOf(journalProgram().ops).flatMap(pathsTouched), [JOURNAL_PATH]);
  assert.deepEqual(effectsOf(clearJournalProgram().ops).flatMap(pathsTouched), [JOURNAL_PATH, '.atomic-deploy']);
  fc.assert(
    fc.property(validId, (id) => {
      assert.deepEqual(effectsOf(recordProgram(id).ops).flatMap(pathsTouched), [recordPath(id)]);
    }),
  );
});

test('a record program is refused for an id that is no release id: it would become a path', () => {
  fc.assert(
    fc.property(fc.oneof(fc.string(), fc.constantFrom('../x', 'a/b', '-r', '.', '..', 'a\nb', '')), (id) => {
      fc.pre(releaseIdProblem(id) !== undefined);
      assert.throws(() => recordProgram(id), (error: unknown) => error instanceof DeployError && error.code === 'INTERNAL');
    }),
  );
});

test('a text bound at run time is a positional parameter of the rendered function, never part of its text', () => {
  fc.assert(
    fc.property(validId, fc.string({ minLength: 1 }), (id, text) => {
      const program = recordProgram(id, 'write_record_c0');
      const rendered = renderFunction(program);
      assert.match(rendered, /put_file "\$root\/"'\.atomic-deploy\/releases' '[^']+' "\$\{1\}"/);
      // The call binds it: a literal quoted as one word, or a variable read when the program runs.
      assert.equal(renderCall(program, { record: { literal: text } }), `write_record_c0 ${shQuote(text)}`);
      assert.equal(renderCall(program, { record: { variable: '_c0' } }), 'write_record_c0 "$_c0"');
    }),
  );
});

test('a call binds a shell variable by name only: anything else is refused, never pasted into the program', () => {
  fc.assert(
    fc.property(fc.string(), (name) => {
      fc.pre(!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name));
      assert.throws(() => renderCall(journalProgram(), { journal: { variable: name } }), (error: unknown) => error instanceof DeployError && error.code === 'INTERNAL');
    }),
  );
});

test('runOnFs writes the text given as the argument, whole, with one newline', async () => {
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.string(), validId, async (text, id) => {
      const root = path.join(BASE, `r${n++}`);
      fs.mkdirSync(root);
      assert.equal(await runOnFs(root, journalProgram(), { durable: false, args: { journal: text } }), 'written');
      assert.equal(await runOnFs(root, recordProgram(id), { durable: false, args: { record: `${text}!` } }), 'written');
      assert.equal(fs.readFileSync(path.join(root, JOURNAL_PATH), 'utf8'), `${text}\n`);
      assert.equal(fs.readFileSync(path.join(root, recordPath(id)), 'utf8'), `${text}!\n`);
      assert.equal(await runOnFs(root, clearJournalProgram(), { durable: false }), 'cleared');
      assert.equal(fs.existsSync(path.join(root, JOURNAL_PATH)), false);
    }),
    { numRuns: 30 },
  );
});

test('a record whose path is taken by a directory is not written: the program says unwritten instead of throwing', async () => {
  const root = path.join(BASE, 'taken');
  fs.mkdirSync(path.join(root, recordPath('r1')), { recursive: true });
  assert.equal(await runOnFs(root, recordProgram('r1'), { durable: false, args: { record: '{}' } }), 'unwritten');
});

test('the types demand exactly the declared arguments', () => {
  const root = path.join(BASE, 'types');
  const missing = (): Promise<string> =>
    // @ts-expect-error: a program with parameters cannot run without its arguments
    runOnFs(root, journalProgram());
  const wrong = (): Promise<string> =>
    // @ts-expect-error: an argument of another name does not bind `journal`
    runOnFs(root, journalProgram(), { args: { record: '{}' } });
  // @ts-expect-error: a call must bind every parameter
  const unbound = (): string => renderCall(recordProgram('r1'), {});
  // Never run: the checks above are the compiler's; these only keep the functions used.
  assert.equal(typeof missing, 'function');
  assert.equal(typeof wrong, 'function');
  assert.equal(typeof unbound, 'function');
});

test("the armed program keeps the bookkeeping's order: switched journal before the sync after the rename; records, then the clear, then the lock released", () => {
  const script = rollbackArmScript({
    root: '/srv/app',
    fsync: true,
    journalSwitching: '{"phase":"switching"}',
    tail: { id: 'r1', backTo: 'r2', link: 'current.x', journalSwitched: '{"phase":"switched"}', afterSwitch: [], hookTimeoutS: 30, commitRecords: ['r1', 'r2'], backRecords: ['r1'], prune: [], protect: [], token: 't' },
  });
  const at = (needle: string, from = 0): number => {
    const i = script.indexOf(needle, from);
    assert.ok(i >= 0, `missing: ${needle}`);
    return i;
  };
  const switched = at('emit switched ');
  assert.ok(at(`write_journal '{"phase":"switched"}'`, switched) < at('durable "$root"', switched));
  const commit = at('\ncommit|commit-unverified)');
  const cleared = at('clear_journal\n', commit);
  assert.ok(at('write_record_c0 "$_write_record_c0"', commit) < cleared);
  assert.ok(at('write_record_c1 "$_write_record_c1"', commit) < cleared);
  assert.ok(cleared < at('release_own_lock', commit));
  const back = at('\nback)');
  assert.ok(at('write_journal "$_j"', back) < at('switch_now', back));
  assert.ok(at('write_record_b0 "$_write_record_b0"', back) < at('clear_journal\n', back));
  // No text a record or journal holds is pasted: only the switched journal, known when it is rendered, is a literal.
  assert.equal(script.includes('put_file "$log"'), false);
});
