// What users install: the npm package's bin, and the one-file bundle that needs no node_modules.
// Each test builds in a copy of the checkout (npm pack and the bundle rebuild dist/): the dist/
// every other test file runs is never rewritten under it.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test, type TestContext } from 'node:test';
import { tempDir, writeTree } from '../harness/cli.ts';

const checkout = fileURLToPath(new URL('../..', import.meta.url));

/** A copy of the checkout without .git, node_modules (linked) and dist/, to build and pack in. */
function checkoutCopy(t: TestContext): string {
  const copy = path.join(tempDir(t), 'checkout');
  const skipped = new Set(['.git', 'node_modules', 'dist'].map((name) => path.join(checkout, name)));
  fs.cpSync(checkout, copy, { recursive: true, filter: (from) => !skipped.has(from) });
  fs.symlinkSync(path.join(checkout, 'node_modules'), path.join(copy, 'node_modules'));
  return copy;
}

test('npm run bundle: dist/atomic-deploy.mjs deploys from a directory with no node_modules', (t) => {
  const repo = checkoutCopy(t);
  execFileSync('npm', ['run', '--silent', 'bundle'], { cwd: repo, stdio: 'pipe' });
  const dir = tempDir(t);
  const bundle = path.join(dir, 'atomic-deploy.mjs');
  fs.copyFileSync(path.join(repo, 'dist/atomic-deploy.mjs'), bundle);
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'bundled\n' });
  const out = execFileSync(process.execPath, [bundle, 'deploy', src, path.join(dir, 'root'), '--json'], { cwd: dir, encoding: 'utf8' });
  const result = JSON.parse(out) as { release: string };
  assert.equal(fs.readFileSync(path.join(dir, 'root/current/index.html'), 'utf8'), 'bundled\n');
  assert.match(result.release, /^\d{14}$/);
  const version = execFileSync(process.execPath, [bundle, '--version'], { encoding: 'utf8' });
  assert.equal(version.trim(), (JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version);
  // Minified, with the licence of every bundled package at its end, and no failpoints.
  const text = fs.readFileSync(bundle, 'utf8');
  const code = text.slice(0, text.indexOf('/*! atomic-deploy'));
  // Minified code averages hundreds of characters a line (only template literals keep newlines); source averages 40.
  assert.ok(code.length > 0 && code.length / code.split('\n').length > 300, 'the bundle is not minified (or has no licence footer)');
  for (const name of ['commander', 'picocolors', 'yaml']) assert.match(text, new RegExp(`\\* ${name}@\\d+\\.\\d+\\.\\d+ \\(`), `no licence notice for ${name}`);
  assert.match(text, /Permission is hereby granted/);
  assert.ok(!text.includes(': failpoint '), 'the failpoint code is in the bundle');
  const armed = execFileSync(process.execPath, [bundle, 'deploy', src, path.join(dir, 'root'), '--json'], { cwd: dir, encoding: 'utf8', env: { ...process.env, ATOMIC_DEPLOY_FAILPOINTS: 'lock-taken=crash,after-switch=crash' } });
  assert.match(armed, /"release"/);
});

test('npm pack: the tarball installs into a temporary prefix, its atomic-deploy bin runs and ignores ATOMIC_DEPLOY_FAILPOINTS', (t) => {
  const repo = checkoutCopy(t);
  const dir = tempDir(t);
  const tgzName = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: repo, encoding: 'utf8' }).trim().split('\n').pop() as string;
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","private":true}');
  execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, tgzName)], { cwd: app, stdio: 'pipe' });
  const bin = path.join(app, 'node_modules/.bin/atomic-deploy');
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'packed\n' });
  // Armed failpoints would kill the deploy at once; the published package has none.
  execFileSync(bin, ['deploy', src, path.join(dir, 'root'), '--quiet'], { encoding: 'utf8', env: { ...process.env, ATOMIC_DEPLOY_FAILPOINTS: 'lock-taken=crash,after-switch=crash' } });
  assert.equal(fs.readFileSync(path.join(dir, 'root/current/index.html'), 'utf8'), 'packed\n');
  assert.ok(!fs.readFileSync(path.join(app, 'node_modules/atomic-deploy/dist/act/failpoints.js'), 'utf8').includes('process.kill'), 'the failpoint code is in the package');
  // The command is a CommonJS launcher (it starts the thread pool's timer before any module is read
  // on the pool) of the bundle split by command (fast start-up), with licences kept and no failpoints.
  const pkgDir = path.join(app, 'node_modules/atomic-deploy');
  assert.equal(fs.realpathSync(bin), path.join(fs.realpathSync(pkgDir), 'dist/bin/atomic-deploy.cjs'));
  assert.match(fs.readFileSync(bin, 'utf8'), /import\("\.\/atomic-deploy\.js"\)/);
  const entry = fs.readFileSync(path.join(pkgDir, 'dist/bin/atomic-deploy.js'), 'utf8');
  for (const name of ['commander', 'picocolors']) assert.match(entry, new RegExp(`\\* ${name}@\\d+\\.\\d+\\.\\d+ \\(`), `no licence notice for ${name}`);
  assert.match(entry, /Permission is hereby granted/);
  for (const chunk of fs.readdirSync(path.join(pkgDir, 'dist/bin'))) assert.ok(!fs.readFileSync(path.join(pkgDir, 'dist/bin', chunk), 'utf8').includes(': failpoint '), `the failpoint code is in dist/bin/${chunk}`);
  const release = fs.readlinkSync(path.join(dir, 'root/current')).split('/').pop() as string;
  assert.match(execFileSync(bin, ['status', path.join(dir, 'root')], { encoding: 'utf8' }), new RegExp(`current: ${release}\\n`));
  assert.match(execFileSync(bin, ['releases', path.join(dir, 'root')], { encoding: 'utf8' }), new RegExp(`^\\*\\s+${release}\\s+active`, 'm'));
  assert.equal(execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim(), (JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string }).version);
  for (const file of ['LICENSE', 'CHANGELOG.md', 'README.md']) assert.ok(fs.existsSync(path.join(app, 'node_modules/atomic-deploy', file)), `${file} is not in the package`);
  // The control: the checkout's build (what tests run) still honours failpoints after the pack.
  const control = spawnSync(process.execPath, [path.join(repo, 'dist/cli/bin.js'), 'deploy', src, path.join(dir, 'root2'), '--quiet'], { env: { ...process.env, ATOMIC_DEPLOY_FAILPOINTS: 'lock-taken=crash' } });
  assert.equal(control.signal, 'SIGKILL', 'failpoints in dist/ stopped working: postpack did not rebuild it');
  const lib = execFileSync(process.execPath, ['--input-type=module', '-e', "import('atomic-deploy').then((m) => console.log(Object.keys(m).sort().join(',')))"], { cwd: app, encoding: 'utf8' });
  for (const name of ['deploy', 'rollback', 'listReleases', 'status', 'unlock', 'DeployError']) assert.ok(lib.split(',').map((s) => s.trim()).includes(name), `library exports ${name}: ${lib}`);
});

// The exports map had only `import`: require() of the package failed with ERR_PACKAGE_PATH_NOT_EXPORTED
// even where Node can require() an ES module (20.19+, 22.12+). Resolved as the package's own name
// from inside the checkout (a self-reference goes through the exports map as node_modules does).
test("require('atomic-deploy') from CommonJS loads the library (the exports map's default; no top-level await in its graph)", () => {
  const run = (type: 'commonjs' | 'module', code: string) => spawnSync(process.execPath, [`--input-type=${type}`, '-e', code], { cwd: checkout, encoding: 'utf8' });
  const imported = run('module', "import('atomic-deploy').then((m) => console.log(Object.keys(m).sort().join(',')))");
  assert.equal(imported.status, 0, imported.stderr);
  const required = run('commonjs', "console.log(Object.keys(require('atomic-deploy')).sort().join(','))");
  // A Node before require(esm) refuses the module itself, never the package's exports map.
  const features = process.features as { require_module?: boolean };
  if (features.require_module !== true) {
    assert.match(required.stderr, /ERR_REQUIRE_ESM/);
    return;
  }
  assert.equal(required.status, 0, required.stderr);
  assert.equal(required.stdout, imported.stdout);
  assert.match(required.stdout, /(^|,)deploy,/);
});
