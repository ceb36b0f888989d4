// ATOMIC_DEPLOY_<FLAG> sets any flag, below the command line and above the config file: the
// first-day flags and those of verify, the stale check, artifacts and waves alike. A bad value
// is a usage error naming the variable, with nothing changed on disk.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { BIN, currentId, jsonOf, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';

async function rootWithReleases(t: { after(fn: () => void): void }, ids: string[]): Promise<{ dir: string; src: string; root: string }> {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'v1\n' });
  const root = path.join(dir, 'root');
  for (const id of ids) {
    const r = await runCli(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet']);
    assert.equal(r.code, 0, r.stderr);
  }
  return { dir, src, root };
}

void test('ATOMIC_DEPLOY_KEEP beats the config file; the command line beats both', async (t) => {
  const { dir, src, root } = await rootWithReleases(t, ['a1', 'a2', 'a3']);
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), 'keep: 3\n');
  const env = { ATOMIC_DEPLOY_KEEP: '1', ATOMIC_DEPLOY_NO_FSYNC: '1' };
  const byEnv = await runCli(['deploy', src, root, '--release-id', 'a4', '--json'], { cwd: dir, env });
  assert.equal(byEnv.code, 0, byEnv.stderr);
  // keep 1: only the new release stays, and the one a rollback would need.
  assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), ['a3', 'a4']);
  const byFlag = await runCli(['deploy', src, root, '--release-id', 'a5', '--keep', '0', '--json'], { cwd: dir, env });
  assert.equal(byFlag.code, 0, byFlag.stderr);
  assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), ['a3', 'a4', 'a5']);
  // The control: without the variable the config's keep 3 applies.
  const byConfig = await runCli(['deploy', src, root, '--release-id', 'a6', '--no-fsync', '--json'], { cwd: dir });
  assert.equal(byConfig.code, 0, byConfig.stderr);
  assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), ['a4', 'a5', 'a6']);
});

void test('ATOMIC_DEPLOY_QUIET and ATOMIC_DEPLOY_JSON shape the output of every command, verify included', async (t) => {
  const { root } = await rootWithReleases(t, ['a1', 'a2']);
  const quiet = await runCli(['verify', root], { env: { ATOMIC_DEPLOY_QUIET: 'yes' } });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stdout, '');
  const loud = await runCli(['verify', root], { env: { ATOMIC_DEPLOY_QUIET: '0' } });
  assert.match(loud.stdout, /^release a2 matches its manifest \(1 file, /);
  const json = await runCli(['verify', root], { env: { ATOMIC_DEPLOY_JSON: '1', ATOMIC_DEPLOY_RELEASE: 'a1' } });
  assert.equal(jsonOf<{ release: string; identical: boolean }>(json).release, 'a1');
  const releases = await runCli(['releases', root], { env: { ATOMIC_DEPLOY_QUIET: 'true' } });
  assert.equal(releases.stdout, '');
});

void test('flags of the stale check and of rollback come from the environment too; bad values exit 2 with nothing changed', async (t) => {
  const { root } = await rootWithReleases(t, ['a1', 'a2']);
  const dry = await runCli(['rollback', root, '--json'], { env: { ATOMIC_DEPLOY_DRY_RUN: '1', ATOMIC_DEPLOY_STALE: 'off' } });
  assert.equal(dry.code, 0, dry.stderr);
  assert.deepEqual(jsonOf<{ release: string; dryRun: boolean }>(dry), { release: 'a1', previous: 'a2', recovered: [], dryRun: true, notes: [], contents: { check: 'identical' } });
  assert.equal(currentId(root), 'a2');
  const before = treeSnapshot(root, { times: true });
  for (const [name, value, message] of [
    ['ATOMIC_DEPLOY_STALE', 'sometimes', /^error: ATOMIC_DEPLOY_STALE="sometimes": Allowed choices are warn, fail, off\.$/m],
    ['ATOMIC_DEPLOY_WAIT', 'soon', /^error: ATOMIC_DEPLOY_WAIT="soon": /m],
    ['ATOMIC_DEPLOY_NO_FSYNC', 'maybe', /^error: ATOMIC_DEPLOY_NO_FSYNC="maybe": expected 1 or 0/m],
    ['ATOMIC_DEPLOY_VERIFY', 'strict', /^error: ATOMIC_DEPLOY_VERIFY="strict": Allowed choices are warn, fail, off\.$/m],
  ] as const) {
    const result = await runCli(['rollback', root], { env: { [name]: value } });
    assert.equal(result.code, 2, `${name}: ${result.stderr}`);
    assert.match(result.stderr, message);
  }
  assert.deepEqual(treeSnapshot(root, { times: true }), before);
  assert.equal(currentId(root), 'a2');
});

void test('ATOMIC_DEPLOY_JSON=1 gets a JSON error for a usage error and for a bad variable read before it, as --json does', async (t) => {
  const { root } = await rootWithReleases(t, ['a1']);
  for (const [args, env, message] of [
    [['status', root, '--bogus'], { ATOMIC_DEPLOY_JSON: '1' }, /^unknown option '--bogus'$/],
    [['deploy', root], { ATOMIC_DEPLOY_JSON: 'yes' }, /missing required argument|root/],
    [['rollback', root], { ATOMIC_DEPLOY_JSON: 'true', ATOMIC_DEPLOY_WAIT: 'soon' }, /^ATOMIC_DEPLOY_WAIT="soon": /],
    [['status', root, '--bogus', '--json'], {}, /^unknown option '--bogus'$/],
  ] as const) {
    const result = await runCli([...args], { env });
    assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    const parsed = jsonOf<{ error: { code: string; message: string } }>(result);
    assert.equal(parsed.error.code, 'USAGE', result.stdout);
    assert.match(parsed.error.message, message);
  }
  // The control: ATOMIC_DEPLOY_JSON=0 leaves stdout empty on the same mistake.
  const plain = await runCli(['status', root, '--bogus'], { env: { ATOMIC_DEPLOY_JSON: '0' } });
  assert.equal(plain.code, 2);
  assert.equal(plain.stdout, '');
});

void test('a misspelt ATOMIC_DEPLOY_ variable is named in a warning with the one meant; a name another command reads, and the hooks\' names, are not', async (t) => {
  const { src, root } = await rootWithReleases(t, ['a1', 'a2', 'a3']);
  const typo = await runCli(['deploy', src, root, '--release-id', 'a4', '--quiet'], { env: { ATOMIC_DEPLOY_KEPP: '1', ATOMIC_DEPLOY_NO_FSYNC: '1' } });
  assert.equal(typo.code, 0, typo.stderr);
  assert.equal(typo.stderr, 'warning: ATOMIC_DEPLOY_KEPP is set, but no command reads it; it is ignored\nhint: did you mean ATOMIC_DEPLOY_KEEP?\n');
  // It was ignored: the default keep (5) left every release.
  assert.deepEqual(fs.readdirSync(path.join(root, 'releases')).sort(), ['a1', 'a2', 'a3', 'a4']);
  const far = await runCli(['status', root, '--json'], { env: { ATOMIC_DEPLOY_SOMETHING_ELSE: 'x' } });
  assert.equal(far.code, 0, far.stderr);
  assert.match(far.stderr, /^warning: ATOMIC_DEPLOY_SOMETHING_ELSE is set, but no command reads it; it is ignored\nhint: each flag has one: --release-id is ATOMIC_DEPLOY_RELEASE_ID/);
  jsonOf(far);
  const source = await runCli(['status', root, '--quiet'], { env: { ATOMIC_DEPLOY_SOURCE: 'dist' } });
  assert.equal(source.stderr, "warning: ATOMIC_DEPLOY_SOURCE is set, but no command reads it; it is ignored\nhint: the source is an argument (atomic-deploy deploy <source> <root>) or the config file's source: key\n");
  // A CI job sets its variables for every step; a hook runs atomic-deploy with what it was given.
  const quiet = await runCli(['status', root], { env: { ATOMIC_DEPLOY_KEEP: '2', ATOMIC_DEPLOY_WAVES: '3', ATOMIC_DEPLOY_ROOT: root, ATOMIC_DEPLOY_RELEASE_PATH: root, ATOMIC_DEPLOY_PREVIOUS_ID: 'a1', ATOMIC_DEPLOY_UNIT: 'x.service' } });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stderr, '');
});

void test('the installed command says it ignores ATOMIC_DEPLOY_FAILPOINTS (it has none); the build of a checkout arms them', async (t) => {
  const { src, root } = await rootWithReleases(t, ['a1']);
  const ignored = await runCli(['deploy', src, root, '--release-id', 'a2', '--quiet'], { bin: BIN, failpoints: 'after-switch=crash' });
  assert.equal(ignored.code, 0, ignored.stderr);
  assert.equal(ignored.stderr, "warning: ATOMIC_DEPLOY_FAILPOINTS is set, but this build has no failpoints; it is ignored\nhint: failpoints exist only in a source checkout's build: npm run build, then node dist/cli/bin.js\n");
  assert.equal(currentId(root), 'a2');
  // The control: the tsc output crashes where it was told to, and says nothing about the variable.
  const armed = await runCli(['deploy', src, root, '--release-id', 'a3', '--quiet'], { failpoints: 'after-switch=crash' });
  assert.equal(armed.signal, 'SIGKILL');
  assert.doesNotMatch(armed.stderr, /FAILPOINTS/);
});

// A CI job exports its artifact settings for every step; a step that deploys a directory failed
// with exit 2, naming a flag nobody gave. As the config file's artifact: keys, a tuning value from
// the environment is left out for a directory; the checks (--sha256, the signature) still refuse.
void test('artifact tuning variables leave a directory deploy alone; the same flags on the command line, and the check variables, refuse it', async (t) => {
  const { src, root } = await rootWithReleases(t, ['e1']);
  const tuning = { ATOMIC_DEPLOY_MAX_FILES: '100000', ATOMIC_DEPLOY_MAX_BYTES: '1G', ATOMIC_DEPLOY_DOWNLOAD_RETRIES: '5', ATOMIC_DEPLOY_DOWNLOAD_TIMEOUT: '9', ATOMIC_DEPLOY_STRIP_COMPONENTS: '1', ATOMIC_DEPLOY_KEEP_SETUID: '1' };
  const r = await runCli(['deploy', src, root, '--release-id', 'e2', '--no-fsync', '--quiet'], { env: tuning });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  assert.equal(currentId(root), 'e2');
  const before = treeSnapshot(root);
  const flag = await runCli(['deploy', src, root, '--max-files', '100000']);
  assert.equal(flag.code, 2, flag.stderr);
  assert.match(flag.stderr, /^error: --max-files applies to an archive or URL artifact, but the source \S+ is a directory/m);
  const check = await runCli(['deploy', src, root], { env: { ATOMIC_DEPLOY_SHA256: 'a'.repeat(64) } });
  assert.equal(check.code, 2, check.stderr);
  assert.match(check.stderr, /^error: --sha256 checks an archive or URL artifact, but the source \S+ is a directory/m);
  assert.deepEqual(treeSnapshot(root), before);
});

// A hook is given ATOMIC_DEPLOY_RELEASE_ID, also --release-id's variable: an atomic-deploy the hook
// ran took the parent's id for its own release, and its second run failed (RELEASE_EXISTS) the parent.
void test('a deploy run by a hook does not take the hook\'s ATOMIC_DEPLOY_RELEASE_ID for its --release-id', async (t) => {
  const { dir, src, root } = await rootWithReleases(t, ['h1']);
  const cdn = path.join(dir, 'cdn');
  const nested = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} deploy ${JSON.stringify(src)} ${JSON.stringify(cdn)} --no-fsync --quiet`;
  const r = await runCli(['deploy', src, root, '--release-id', 'rel-42', '--no-fsync', '--quiet', '--before-switch', `${nested} && ${nested}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(currentId(root), 'rel-42');
  const ids = fs.readdirSync(path.join(cdn, 'releases')).filter((n) => !n.startsWith('.'));
  assert.equal(ids.length, 2, ids.join(', '));
  assert.ok(!ids.includes('rel-42'), `the nested deploy took the parent's id: ${ids.join(', ')}`);
  // Set by hand (no hook's release path beside it), the variable is still --release-id.
  const own = await runCli(['deploy', src, cdn, '--no-fsync', '--quiet'], { env: { ATOMIC_DEPLOY_RELEASE_ID: 'mine' } });
  assert.equal(own.code, 0, own.stderr);
  assert.equal(currentId(cdn), 'mine');
});
