// Before-switch hooks on fleet hosts. A host takes a release's unchanged files from its current
// release: as hardlinks, a hook writing into one in place (`>>`, PHP's file_put_contents, a chmod)
// would write into the live release, and stay there when the deploy failed. And what a hook
// writes must be in the release's manifest, or `verify --host` of a fresh release finds it changed.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, tempDir, writeTree } from '../harness/cli.ts';
import { currentOf, rootNamer } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

interface HostJson {
  host: string;
  outcome?: string;
  transferred?: number;
  linked?: number;
  copiedOnHost?: number;
  manifest?: string;
}
interface DeployJson {
  release?: string;
  hosts: HostJson[];
}
interface VerifyJson {
  identical: boolean;
  hosts: { host: string; identical: boolean; differences: { kind: string; path: string }[] }[];
}

const CONFIG = '<?php return [];\n';

const { fleet, hostArgs, cli } = fleetSuite(2, { timeoutMs: 120_000 });
const newRoot = rootNamer('k');

function build(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(path.join(tempDir(t, 'fleet-hooks-'), 'b'), { 'index.html': `${version}\n`, 'config.php': CONFIG, 'lib/a.php': 'a\n', 'lib/b.php': 'b\n' });
}

const sha = (file: string): string => createHash('sha256').update(fs.readFileSync(file)).digest('hex');
const inode = (file: string): number => fs.statSync(file).ino;
/** Every path under `dir`, for a message. */
const execFind = (dir: string): string => (fs.readdirSync(dir, { recursive: true }) as string[]).map((p) => path.join(dir, p)).join(' ');

void describe('before-switch hooks on fleet hosts', () => {
  void test('a failing hook that appends to an unchanged file leaves every live release as built', async (t) => {
    const { root, on } = newRoot('fail');
    const v1 = build(t, 'v1');
    const first = jsonOf<DeployJson>(await cli(['deploy', v1, root, ...hostArgs, '--json']));
    const id1 = String(first.release);
    const v2 = build(t, 'v2');
    const r = await cli(['deploy', v2, root, ...hostArgs, '--before-switch', 'echo "// cache" >> config.php; chmod 600 lib/a.php; exit 1']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(`${r.stdout}${r.stderr}`, /host1: copied \(1 of 4 files sent, 3 copied on the host from its current release \(before-switch hooks will run\) and checked/);
    for (const h of fleet.hosts) {
      const dir = on(h);
      assert.equal(currentOf(dir), id1, `${h.alias}: still on the first release`);
      assert.equal(fs.readFileSync(path.join(dir, 'current', 'config.php'), 'utf8'), CONFIG, `${h.alias}: the live config.php is the built one`);
      assert.equal(fs.statSync(path.join(dir, 'current', 'lib', 'a.php')).mode & 0o777, fs.statSync(path.join(v1, 'lib', 'a.php')).mode & 0o777, `${h.alias}: the live lib/a.php has the built mode`);
    }
    const verify = await cli(['verify', root, ...hostArgs]);
    assert.equal(verify.code, 0, `${verify.stdout}${verify.stderr}`);
  });

  void test('a succeeding hook that writes into unchanged files: the new release holds its writes in files of its own, the previous one its built bytes; both verify, and only the changed file was sent', async (t) => {
    const { root, on } = newRoot('ok');
    const v1 = build(t, 'v1');
    const first = jsonOf<DeployJson>(await cli(['deploy', v1, root, ...hostArgs, '--json']));
    const id1 = String(first.release);
    const v2 = build(t, 'v2');
    const r = await cli(['deploy', v2, root, ...hostArgs, '--json', '--before-switch', 'echo "// cache" >> config.php && chmod 600 lib/a.php && echo new > made-by-hook.txt']);
    assert.equal(r.code, 0, r.stderr);
    const j = jsonOf<DeployJson>(r);
    const id2 = String(j.release);
    for (const h of j.hosts) {
      assert.equal(h.outcome, 'switched');
      assert.equal(h.transferred, 1, `${h.host}: only index.html crossed the network`);
      assert.equal(h.copiedOnHost, 3, `${h.host}: the three unchanged files were copied on the host from its current release`);
      assert.equal(h.linked, 0, `${h.host}: nothing is linked while before-switch hooks run`);
      assert.match(h.manifest ?? '', /^sha256:[0-9a-f]{64}$/, `${h.host}: its manifest was made again`);
    }
    for (const h of fleet.hosts) {
      const dir = on(h);
      const [r1, r2] = [id1, id2].map((id) => path.join(dir, 'releases', id)) as [string, string];
      assert.equal(currentOf(dir), id2);
      assert.equal(fs.readFileSync(path.join(r2, 'config.php'), 'utf8'), `${CONFIG}// cache\n`);
      assert.equal(fs.statSync(path.join(r2, 'lib', 'a.php')).mode & 0o777, 0o600);
      assert.equal(fs.readFileSync(path.join(r1, 'config.php'), 'utf8'), CONFIG, `${h.alias}: the rollback target holds the built bytes`);
      assert.equal(fs.statSync(path.join(r1, 'lib', 'a.php')).mode & 0o777, fs.statSync(path.join(v1, 'lib', 'a.php')).mode & 0o777);
      assert.equal(sha(path.join(r2, 'lib', 'b.php')), sha(path.join(v2, 'lib', 'b.php')));
      assert.notEqual(inode(path.join(r2, 'lib', 'b.php')), inode(path.join(r1, 'lib', 'b.php')), `${h.alias}: no inode shared with the live release`);
    }
    const verify = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(verify.code, 0, `the fresh release is what its manifest says, hook writes included:\n${verify.stdout}${verify.stderr}`);
    assert.equal((await cli(['verify', root, ...hostArgs, '--release', id1])).code, 0);
    // The manifest named in the record holds the hook's file.
    for (const h of fleet.hosts) {
      const manifest = fs.readFileSync(path.join(on(h), '.atomic-deploy', 'manifests', `${id2}.json`), 'utf8');
      assert.match(manifest, /"path":"made-by-hook\.txt"/);
      const record = JSON.parse(fs.readFileSync(path.join(on(h), '.atomic-deploy', 'releases', `${id2}.json`), 'utf8')) as { digest?: string };
      assert.equal(record.digest, `sha256:${createHash('sha256').update(manifest).digest('hex')}`);
    }
    // A tampering after the deploy is still found: the remade manifest is not a blank cheque.
    fs.appendFileSync(path.join(on(fleet.hosts[0]!), 'current', 'made-by-hook.txt'), 'x');
    const after = await cli(['verify', root, ...hostArgs, '--json']);
    assert.equal(after.code, 5);
    assert.deepEqual(jsonOf<VerifyJson>(after).hosts.find((x) => !x.identical)?.differences.map((d) => `${d.kind} ${d.path}`), ['modified made-by-hook.txt']);
  });

  void test('a hook that changes nothing the manifest holds keeps the build\'s manifest; one that makes a FIFO fails with exit 2 and is undone everywhere', async (t) => {
    const { root, on } = newRoot('same-fifo');
    const v1 = build(t, 'v1');
    const first = jsonOf<DeployJson>(await cli(['deploy', v1, root, ...hostArgs, '--json']));
    const id1 = String(first.release);
    // A shared directory's link is in the build's manifest: it is no change the hooks made.
    const same = await cli(['deploy', build(t, 'v2'), root, ...hostArgs, '--json', '--shared-dir', 'storage', '--shared-create', '--before-switch', 'cat config.php > /dev/null && touch storage/made-in-shared']);
    assert.equal(same.code, 0, same.stderr);
    const j = jsonOf<DeployJson>(same);
    assert.ok(j.hosts.every((h) => h.manifest === undefined), 'no host remade its manifest');
    assert.doesNotMatch(same.stderr, /made again/);
    const id2 = String(j.release);
    const records = fleet.hosts.map((h) => (JSON.parse(fs.readFileSync(path.join(on(h), '.atomic-deploy', 'releases', `${id2}.json`), 'utf8')) as { digest: string }).digest);
    assert.equal(new Set(records).size, 1, 'every host names the one build manifest');
    assert.equal((await cli(['verify', root, ...hostArgs])).code, 0);
    const fifo = await cli(['deploy', build(t, 'v3'), root, ...hostArgs, '--before-switch', 'mkfifo queue.pipe']);
    assert.equal(fifo.code, 2, fifo.stderr);
    assert.match(fifo.stderr, /queue\.pipe is a FIFO; a release can hold only files, directories and symlinks/);
    for (const h of fleet.hosts) {
      const dir = on(h);
      assert.equal(currentOf(dir), id2, `${h.alias}: still on the release before`);
      assert.deepEqual(fs.readdirSync(path.join(dir, 'releases')).sort(), [id1, id2].sort(), `${h.alias}: the refused release is gone`);
      assert.deepEqual(fs.readdirSync(path.join(dir, '.tmp')).filter((n) => n.startsWith('stage.')), [], `${h.alias}: no stage left`);
    }
  });

  void test('a before-switch hook failing on one host, into a root the deploy made with its parents: every host is left as it was', async (t) => {
    const { root, on } = newRoot('made');
    const deep = `${root}/deep/app`;
    // host1's hook passes and its program waits armed; host2's fails.
    const hook = 'test "$(hostname)" != host2';
    const r = await cli(['deploy', build(t, 'v1'), deep, ...hostArgs, '--before-switch', hook, '--json']);
    assert.equal(r.code, 1, r.stderr);
    // Said as a local deploy says it: the hook, how it ended, the hint; its details in host2's row.
    const j = jsonOf<{ error?: { code: string; message: string; hint?: string }; hosts: { host: string; error?: Record<string, unknown> }[] }>(r);
    assert.equal(j.error?.code, 'HOOK_FAILED');
    assert.match(j.error?.message ?? '', /^nothing was switched: host2: before-switch hook "test \\"\$\(hostname\)\\" != host2" exited with code 1; release \S+ was not switched to and was removed$/);
    assert.equal(j.error?.hint, 'current is unchanged on every host; fix the hook or the build and deploy again');
    const failed = j.hosts.find((h) => h.host === 'host2')?.error;
    assert.deepEqual({ code: failed?.code, hook: failed?.hook, command: failed?.command, exitCode: failed?.exitCode, timedOut: failed?.timedOut }, { code: 'HOOK_FAILED', hook: 'before-switch', command: hook, exitCode: 1, timedOut: false });
    for (const h of fleet.hosts) {
      // Not even the root's top folder: every directory was made by this deploy.
      assert.equal(fs.existsSync(on(h)), false, `${h.alias}: left ${fs.existsSync(on(h)) ? execFind(on(h)) : ''}`);
    }
  });

  void test("each hook's and the health check's step and output lines are named as a local deploy names them, with the host", async (t) => {
    const { root } = newRoot('said');
    // The check runs where a local one does, in the new release (it ran in current on hosts).
    const check = 'echo healthy; case $PWD in */releases/"$ATOMIC_DEPLOY_RELEASE_ID") echo in the release ;; esac';
    const r = await cli(['deploy', build(t, 'v1'), root, ...hostArgs, '--before-switch', 'echo migrating >&2; echo migrated', '--after-switch', 'echo warmed', '--health-check', check]);
    assert.equal(r.code, 0, r.stderr);
    const all = `${r.stdout}${r.stderr}`;
    for (const h of fleet.hosts) {
      assert.match(all, new RegExp(`${h.alias}: running before-switch hook: echo migrating >&2; echo migrated\n`));
      assert.match(all, new RegExp(`${h.alias}: running after-switch hook: echo warmed\n`));
      assert.ok(all.includes(`${h.alias}: health check: ${check} (up to 30 s)\n`), all);
      for (const [what, line] of [['before-switch', 'migrating'], ['before-switch', 'migrated'], ['after-switch', 'warmed'], ['health-check', 'healthy'], ['health-check', 'in the release']]) {
        assert.match(r.stderr, new RegExp(`^\\[${h.alias} ${what}\\] ${line}$`, 'm'), `${h.alias}: ${line}`);
      }
    }
  });

  void test('without before-switch hooks unchanged files are still hardlinked', async (t) => {
    const { root, on } = newRoot('plain');
    const first = jsonOf<DeployJson>(await cli(['deploy', build(t, 'v1'), root, ...hostArgs, '--json']));
    const r = await cli(['deploy', build(t, 'v2'), root, ...hostArgs, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = jsonOf<DeployJson>(r);
    for (const h of j.hosts) {
      assert.equal(h.linked, 3);
      assert.equal(h.transferred, 1, `${h.host}: only index.html crossed the network (the files beside it at the top of the release stayed linked)`);
    }
    const dir = on(fleet.hosts[0]!);
    assert.equal(inode(path.join(dir, 'releases', String(j.release), 'config.php')), inode(path.join(dir, 'releases', String(first.release), 'config.php')));
  });
});
