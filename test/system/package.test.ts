// What users install: the npm package's bin, and the one-file bundle that needs no node_modules.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { tempDir, writeTree } from '../harness/cli.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));

test('npm run bundle: dist/atomic-deploy.mjs deploys from a directory with no node_modules', (t) => {
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
});

test('npm pack: the tarball installs and its atomic-deploy bin runs', (t) => {
  const dir = tempDir(t);
  const tgzName = execFileSync('npm', ['pack', '--silent', '--pack-destination', dir], { cwd: repo, encoding: 'utf8' }).trim().split('\n').pop() as string;
  const app = path.join(dir, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), '{"name":"app","private":true}');
  execFileSync('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, tgzName)], { cwd: app, stdio: 'pipe' });
  const bin = path.join(app, 'node_modules/.bin/atomic-deploy');
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'packed\n' });
  execFileSync(bin, ['deploy', src, path.join(dir, 'root'), '--quiet'], { encoding: 'utf8' });
  assert.equal(fs.readFileSync(path.join(dir, 'root/current/index.html'), 'utf8'), 'packed\n');
  const lib = execFileSync(process.execPath, ['--input-type=module', '-e', "import('atomic-deploy').then((m) => console.log(Object.keys(m).sort().join(',')))"], { cwd: app, encoding: 'utf8' });
  for (const name of ['deploy', 'rollback', 'listReleases', 'status', 'unlock', 'DeployError']) assert.ok(lib.split(',').map((s) => s.trim()).includes(name), `library exports ${name}: ${lib}`);
});
