// Hard links in an archive: every name of one inode gets the stamp (inode, size, ctime) the inode
// has once the last link(2) to it is made, and the work to record those stamps grows linearly with
// the number of links. Counted, not timed: each Map.prototype.set call during an extraction is one
// step, and an archive with twice the links may take about twice the steps, never four times.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import tar from 'tar-stream';
import { extractArtifact, openArtifact } from '../../src/act/archive.ts';
import type { ExtractLimits } from '../../src/plan/archive.ts';

const LIMITS: ExtractLimits = { maxFiles: 1_000_000, maxBytes: 1e12, stripComponents: 0, keepSetid: false, keepOwner: false };

/** A tar of one file and `links` hard links to it (each naming the one before, as some writers do). */
async function linkTar(file: string, links: number): Promise<void> {
  const pack = tar.pack();
  const done = (async () => {
    const parts: Buffer[] = [];
    for await (const chunk of pack) parts.push(chunk as Buffer);
    fs.writeFileSync(file, Buffer.concat(parts));
  })();
  pack.entry({ name: 'f', size: 3, mode: 0o644 }, 'abc');
  for (let i = 0; i < links; i++) pack.entry({ name: `l${i}`, type: 'link', linkname: i % 2 === 0 ? 'f' : `l${i - 1}`, mode: 0o644 });
  pack.finalize();
  await done;
}

async function extract(dir: string, links: number): Promise<{ sets: number; dest: string; stamps: Map<string, { ino: number; ctimeMs: number }> }> {
  const file = path.join(dir, `links-${links}.tar`);
  await linkTar(file, links);
  const dest = path.join(dir, `dest-${links}`);
  fs.mkdirSync(dest);
  const artifact = await openArtifact(file, { timeoutMs: 1000, retries: 0 });
  const set = Object.getOwnPropertyDescriptor(Map.prototype, 'set')?.value as (this: Map<unknown, unknown>, key: unknown, value: unknown) => Map<unknown, unknown>;
  let sets = 0;
  Map.prototype.set = function (this: Map<unknown, unknown>, key: unknown, value: unknown) {
    sets++;
    return set.call(this, key, value);
  };
  try {
    const result = await extractArtifact(artifact, dest, { limits: LIMITS, spool: path.join(dir, 'spool') });
    return { sets, dest, stamps: result.stamps };
  } finally {
    Map.prototype.set = set;
  }
}

void test('recording the stamps of hard links takes work linear in their number, and every name gets the final stamp', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'archive-links-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const small = await extract(dir, 1000);
  const large = await extract(dir, 2000);
  // Quadratic re-stamping made these 0.5 and 2 million steps (a ratio of 4).
  assert.ok(large.sets < 2.5 * small.sets, `${small.sets} steps for 1000 links, ${large.sets} for 2000`);
  const st = fs.lstatSync(path.join(large.dest, 'f'));
  assert.equal(st.nlink, 2001);
  assert.equal(large.stamps.size, 2001);
  for (const [rel, stamp] of large.stamps) {
    assert.equal(stamp.ino, st.ino, rel);
    assert.equal(stamp.ctimeMs, st.ctimeMs, `${rel}: the stamp is not the inode's final ctime`);
  }
});
