// The README's quick start (`npm run example`) must stay true: the example deploys the bundled site
// twice through the installed command, rolls back, and leaves a root serving the first build.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const EXAMPLE = fileURLToPath(new URL('../../examples/deploy-example.mjs', import.meta.url));
const SITE = fileURLToPath(new URL('../../examples/site', import.meta.url));

void test('the quick-start example deploys twice, rolls back, and leaves the first build live', (t) => {
  const out = execFileSync(process.execPath, [EXAMPLE], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
  const m = /the deploy root is (\S+) \(remove it with: rm -rf (\S+)\)/.exec(out);
  assert.ok(m, `no root named in the output:\n${out}`);
  const [, root, work] = m as unknown as [string, string, string];
  t.after(() => fs.rmSync(work, { recursive: true, force: true }));
  assert.match(out, /rolled back to \d+/);
  const releases = fs.readdirSync(path.join(root, 'releases'));
  assert.equal(releases.length, 2);
  const live = fs.readlinkSync(path.join(root, 'current'));
  assert.equal(live, `releases/${[...releases].sort()[0] as string}`, 'the rollback must leave the older release live');
  assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8'), fs.readFileSync(path.join(SITE, 'index.html'), 'utf8'));
  const newer = [...releases].sort()[1] as string;
  assert.match(fs.readFileSync(path.join(root, 'releases', newer, 'index.html'), 'utf8'), /Example site, version 2<\/h1>/);
});
