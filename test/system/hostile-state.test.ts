// State files and directories left by others (journals, records, release names) are data: an id
// that is no valid release id is reported and never used in a path.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { currentId, runCli, tempDir, writeTree } from '../harness/cli.ts';

async function deployed(t: { after(fn: () => void): void }, ids: string[]): Promise<{ dir: string; root: string; src: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  for (const id of ids) {
    const r = await runCli(['deploy', src, root, '--release-id', id, '--quiet']);
    assert.equal(r.code, 0, r.stderr);
  }
  return { dir, root, src };
}

function writeJournal(root: string, journal: Record<string, unknown>): void {
  fs.writeFileSync(path.join(root, '.atomic-deploy', 'journal.json'), JSON.stringify({ v: 1, token: 't', pid: 1, startedAt: '2026-01-01T00:00:00Z', ...journal }));
}

void test('a deploy journal whose release is a path out of the root: status deletes nothing and says why it discarded it', async (t) => {
  const { dir, root } = await deployed(t, ['r1']);
  writeTree(path.join(dir, 'victim', 'x'), { 'keep.txt': 'precious\n' });
  writeJournal(root, { op: 'deploy', release: 'a/../../../victim/x', previous: 'r1', phase: 'copying' });
  const r = await runCli(['status', root]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(fs.readFileSync(path.join(dir, 'victim', 'x', 'keep.txt'), 'utf8'), 'precious\n');
  assert.match(r.stdout, /discarded a journal that names an invalid release id/);
  assert.equal(fs.existsSync(path.join(root, '.atomic-deploy', 'journal.json')), false);
});

void test('a rollback journal whose previous is a path out of the root: no file is written outside', async (t) => {
  const { dir, root } = await deployed(t, ['r1', 'r2']);
  fs.mkdirSync(path.join(dir, 'victim'));
  writeJournal(root, { op: 'rollback', release: 'r2', previous: '../../../victim/evil', phase: 'switched' });
  const r = await runCli(['status', root]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'victim')), []);
  assert.equal(currentId(root), 'r2');
});

void test('a release record whose previous is a path is read as having none; a record file under another name is ignored', async (t) => {
  const { dir, root } = await deployed(t, ['r1', 'r2']);
  const log = path.join(root, '.atomic-deploy', 'releases');
  const r2 = JSON.parse(fs.readFileSync(path.join(log, 'r2.json'), 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(path.join(log, 'r2.json'), JSON.stringify({ ...r2, previous: '../../../victim/p' }));
  // A record that claims another id than its file name.
  fs.writeFileSync(path.join(log, 'r1.json'), JSON.stringify({ ...r2, id: '../../victim/q', seq: 1 }));
  fs.mkdirSync(path.join(dir, 'victim'));
  for (const args of [['releases', root], ['rollback', root], ['prune', root, '--keep', '0']]) {
    const r = await runCli(args);
    assert.ok(r.code === 0 || r.code === 2, `${args.join(' ')}: ${r.code} ${r.stderr}`);
  }
  assert.deepEqual(fs.readdirSync(path.join(dir, 'victim')), []);
});
