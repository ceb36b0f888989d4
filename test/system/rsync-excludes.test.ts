// A fleet copy lists the release's own directory as `.`, which rsync reads as its contents one
// level deep: every unchanged file at the top of the release was sent again over its hardlink on
// each redeploy. The exclude rules keep rsync off exactly the names they list, whatever
// wildcard characters or backslashes those hold, and off nothing else.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { topLevelExcludes, untouchedNames } from '../../src/plan/fleet-send.ts';
import { tempDir } from '../harness/cli.ts';

// Each kept name beside a name its unescaped pattern would also match (or that a literal reading of an escape would).
const KEPT = ['config.php', 'we*ird[1].php', 'q?', 'back\\slash', 'both\\*', '[ab]'];
const SENT = ['index.html', 'weXird1.php', 'qz', 'both\\x', 'a', 'b', 'backslash'];

function rsync(src: string, dst: string, list: string[], rules: string[] | null): number {
  const dir = path.dirname(dst);
  fs.writeFileSync(path.join(dir, 'list'), `${list.join('\0')}\0`);
  fs.writeFileSync(path.join(dir, 'exclude'), `${(rules ?? []).join('\0')}\0`);
  const out = execFileSync('rsync', ['-a', '--stats', '--ignore-times', '--no-implied-dirs', '--from0', `--files-from=${path.join(dir, 'list')}`, ...(rules === null ? [] : [`--exclude-from=${path.join(dir, 'exclude')}`]), '--', `${src}/`, `${dst}/`], { encoding: 'utf8' });
  return Number(/Number of regular files transferred: (\d+)/.exec(out)?.[1]);
}

function setup(t: { after(fn: () => void): void }): { src: string; prev: string; stage: string } {
  const dir = tempDir(t, 'rsync-excludes-');
  const [src, prev, stage] = ['src', 'prev', 'stage'].map((d) => path.join(dir, d)) as [string, string, string];
  for (const d of [src, prev]) fs.mkdirSync(path.join(d, 'lib'), { recursive: true });
  fs.mkdirSync(path.join(stage, 'lib'), { recursive: true });
  for (const n of [...KEPT, 'lib/deep.php']) {
    fs.writeFileSync(path.join(src, n), `${n}\n`);
    fs.writeFileSync(path.join(prev, n), `${n}\n`);
    fs.linkSync(path.join(prev, n), path.join(stage, n));
  }
  for (const n of SENT) fs.writeFileSync(path.join(src, n), `new ${n}\n`);
  return { src, prev, stage };
}

const shared = (a: string, b: string): boolean => fs.statSync(a).ino === fs.statSync(b).ino;

void test('the exclude rules leave every linked top-level file on its link and send every other listed file', (t) => {
  const { src, prev, stage } = setup(t);
  const sent = rsync(src, stage, ['.', 'lib', ...SENT], topLevelExcludes(KEPT));
  assert.equal(sent, SENT.length, 'only the listed files crossed');
  for (const n of [...KEPT, 'lib/deep.php']) assert.ok(shared(path.join(stage, n), path.join(prev, n)), `${n} is still a link to the previous release`);
  for (const n of SENT) assert.equal(fs.readFileSync(path.join(stage, n), 'utf8'), `new ${n}\n`);
});

void test('control: without them rsync sends every top-level file over its link (the listed `.`)', (t) => {
  const { src, prev, stage } = setup(t);
  const sent = rsync(src, stage, ['.', 'lib', ...SENT], null);
  assert.equal(sent, SENT.length + KEPT.length);
  for (const n of KEPT) assert.ok(!shared(path.join(stage, n), path.join(prev, n)), `${n} was replaced`);
  assert.ok(shared(path.join(stage, 'lib/deep.php'), path.join(prev, 'lib/deep.php')), 'a listed directory is sent without its contents');
});

void test('names below the top and the release directory itself make no rule', () => {
  assert.deepEqual(topLevelExcludes(['lib/a', '.', '', 'x']), ['/x']);
  assert.deepEqual(topLevelExcludes(['a*b', 'c\\d', 'e\\[']), ['/a\\*b', '/c\\d', '/e\\\\\\[']);
});

void test('a linked file that failed its check on the host is sent, so no rule keeps rsync off it; paths linked to shared/ get one', () => {
  const plan = { link: ['a', 'b', 'lib/c'], send: ['.', 'lib', 'x'] };
  assert.deepEqual(topLevelExcludes(untouchedNames(plan, ['b'], ['.env'])), ['/a', '/.env']);
});
