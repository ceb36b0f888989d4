import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Manifest, ReleaseTree } from '../../src/plan/manifest.ts';
import { afterHooks } from '../../src/remote/hook-manifest.ts';

const build: Manifest = {
  entries: [
    { path: 'config.php', type: 'file', mode: 0o644, size: 3, sha256: 'a'.repeat(64) },
    { path: 'lib', type: 'dir', mode: 0o755 },
    { path: 'main', type: 'symlink', target: 'lib' },
  ],
};
const tree = (over: Partial<ReleaseTree> = {}): ReleaseTree => ({ entries: build.entries.map((e) => ({ ...e })), special: [], ...over });

void test('a release the hooks left as built keeps the build manifest', () => {
  assert.deepEqual(afterHooks(build, tree(), '/srv/r/releases/1'), { kind: 'same' });
});

void test('any change the manifest can describe makes a new one from the tree: bytes, mode, a new file, a retargeted link', () => {
  const changed = tree();
  changed.entries[0] = { path: 'config.php', type: 'file', mode: 0o600, size: 4, sha256: 'b'.repeat(64) };
  changed.entries[2] = { path: 'main', type: 'symlink', target: 'other' };
  changed.entries.push({ path: 'new.txt', type: 'file', mode: 0o644, size: 0, sha256: 'c'.repeat(64) });
  const v = afterHooks(build, changed, '/srv/r/releases/1');
  assert.equal(v.kind, 'remade');
  assert.ok(v.kind === 'remade' && v.manifest.entries === changed.entries && v.changed === 4);
});

void test('what no manifest can describe is refused, naming the path: a FIFO, a name or target that is not UTF-8, an unreadable file', () => {
  const cases: [Partial<ReleaseTree>, RegExp, string][] = [
    [{ special: [{ path: 'q.pipe', kind: 'FIFO' }, { path: 's.sock', kind: 'socket' }] }, /^\/srv\/r\/releases\/1\/q\.pipe is a FIFO \(and 1 more such\); a release can hold only/, 'UNSUPPORTED_FILE'],
    [{ misnamed: [{ path: 'caf\\xe9', kind: 'file' }] }, /caf\\xe9 has a name that is not valid UTF-8/, 'UNSUPPORTED_FILE'],
    [{ mistargeted: [{ path: 'l', target: '\\xff' }] }, /\/l is a symlink whose target is not valid UTF-8/, 'UNSUPPORTED_FILE'],
    [{ unreadable: [{ path: 'secret', type: 'file', mode: 0 }] }, /\/secret cannot be read to make the release's manifest/, 'IO'],
  ];
  for (const [over, message, code] of cases) {
    const v = afterHooks(build, tree(over), '/srv/r/releases/1');
    assert.equal(v.kind, 'refused');
    assert.ok(v.kind === 'refused');
    assert.match(v.problem, message);
    assert.equal(v.code, code);
    assert.match(v.hint, /current is unchanged/);
  }
});
