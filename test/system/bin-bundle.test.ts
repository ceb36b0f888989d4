// The installed command is the CLI bundled by esbuild (dist/bin/, package.json `bin`), which the
// other tests run too, while runs that arm failpoints need the tsc output (dist/cli/bin.js): the
// same session through both must give the same exit codes and the same answers, or what the
// failpoint tests prove would not be what users run.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { serve } from '../harness/archives.ts';
import { BIN as PACKAGE_BIN, TSC_BIN, cliEnv, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { requireTool } from '../harness/swappers.ts';

interface Step {
  args: string[];
  code: number | null;
  stdout: unknown;
}

/** Values that differ from run to run (times, durations, digests of the dated release log) leave the comparison. */
function stable(value: unknown, dir: string): unknown {
  if (typeof value === 'string') {
    // Table columns are as wide as their widest value: spaces are collapsed once times are gone.
    return value.split(dir).join('<dir>').replace(/\d{4}-\d\d-\d\d[T ][\d:.]+Z?/g, '<time>').replace(/\b\d+(\.\d+)? s\b/g, '<seconds>').replace(/ +/g, ' ');
  }
  if (Array.isArray(value)) return value.map((v) => stable(v, dir));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).filter(([k]) => !/(ms|Ms|At|since|time|Time|pid|user|host)$/.test(k)).map(([k, v]) => [k, stable(v, dir)]));
  }
  return value;
}

/** One user's session: config file, a directory deploy with a hook, an archive deploy, verify, rollback, prune, status, releases. */
async function session(bin: string, dir: string, archive: string): Promise<Step[]> {
  const root = path.join(dir, 'root');
  writeTree(path.join(dir, 'build'), { 'index.html': 'one\n', 'assets/app.js': 'console.log(1);\n' });
  fs.copyFileSync(archive, path.join(dir, 'two.tar.gz'));
  const sha = createHash('sha256').update(fs.readFileSync(path.join(dir, 'two.tar.gz'))).digest('hex');
  // yaml and the schema load only when a config file exists.
  fs.writeFileSync(path.join(dir, 'atomic-deploy.config.yaml'), `root: ${root}\nkeep: 5\n`);
  const steps: string[][] = [
    ['deploy', './build', '--release-id', 'r1', '--after-switch', `echo hooked > ${path.join(dir, 'hook.txt')}`, '--json'],
    ['deploy', 'two.tar.gz', '--release-id', 'r2', '--sha256', sha, '--json'],
    ['deploy', 'two.tar.gz', '--release-id', 'r3', '--sha256', '0'.repeat(64), '--json'],
    ['verify', '--json'],
    ['rollback', '--dry-run', '--json'],
    ['rollback', '--json'],
    ['releases', '--json'],
    ['status', '--json'],
    ['releases'],
    ['status'],
    ['prune', '--keep', '1', '--json'],
    ['rollbak'],
    ['completion', 'bash'],
  ];
  const out: Step[] = [];
  for (const args of steps) {
    const r = await runCli(args, { bin, cwd: dir });
    let stdout: unknown = r.stdout;
    if (args.includes('--json')) stdout = JSON.parse(r.stdout) as unknown;
    out.push({ args: args.map((a) => a.split(dir).join('<dir>')), code: r.code, stdout: stable(stdout, dir) });
    if (args[0] === 'rollbak') out.push({ args: ['(stderr of rollbak)'], code: null, stdout: r.stderr });
  }
  out.push({ args: ['(hook output)'], code: null, stdout: fs.readFileSync(path.join(dir, 'hook.txt'), 'utf8') });
  return out;
}

test('dist/bin (the installed command, bundled) answers a whole session exactly as the tsc output does', async (t) => {
  // One archive for both sessions: tar and gzip write the time into it.
  const fixture = tempDir(t);
  writeTree(path.join(fixture, 'build2'), { 'index.html': 'two\n' });
  execFileSync('tar', ['-czf', path.join(fixture, 'two.tar.gz'), '-C', path.join(fixture, 'build2'), '.']);
  const expected = await session(TSC_BIN, tempDir(t), path.join(fixture, 'two.tar.gz'));
  const got = await session(PACKAGE_BIN, tempDir(t), path.join(fixture, 'two.tar.gz'));
  // The session must exercise what it claims: each step's exit code as a user would expect it.
  assert.deepEqual(expected.filter((s) => s.code !== null).map((s) => s.code), [0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0]);
  for (const [i, step] of expected.entries()) assert.deepEqual(got[i], step, `atomic-deploy ${step.args.join(' ')}`);
});

/** The Node built-in modules a run of the installed command loaded, as process.moduleLoadList names them at exit. */
function builtinsLoaded(dir: string, args: string[]): Set<string> {
  const preload = path.join(dir, 'record-modules.cjs');
  const out = path.join(dir, 'modules.json');
  fs.writeFileSync(preload, `process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(process.moduleLoadList)));\n`);
  execFileSync(process.execPath, ['--require', preload, PACKAGE_BIN, ...args], { cwd: dir, stdio: 'ignore' });
  const list = JSON.parse(fs.readFileSync(out, 'utf8')) as string[];
  return new Set(list.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length)));
}

test('a directory deploy loads no archive or HTTP code (zlib, yauzl, http, https); an archive deploy does', (t) => {
  const dir = tempDir(t);
  writeTree(path.join(dir, 'build'), { 'index.html': 'one\n' });
  execFileSync('tar', ['-czf', path.join(dir, 'build.tar.gz'), '-C', path.join(dir, 'build'), '.']);
  execFileSync('zip', ['-q', '-r', path.join(dir, 'build.zip'), '.'], { cwd: path.join(dir, 'build') });
  const plain = builtinsLoaded(dir, ['deploy', 'build', 'root', '--no-fsync']);
  assert.equal(fs.readFileSync(path.join(dir, 'root/current/index.html'), 'utf8'), 'one\n');
  for (const m of ['zlib', 'http', 'https', 'tls']) assert.equal(plain.has(m), false, `a directory deploy loaded node:${m}`);
  // The probe sees what it looks for: the archive deploys load zlib (tar.gz to inflate, zip through yauzl).
  assert.equal(builtinsLoaded(dir, ['deploy', 'build.tar.gz', 'root2', '--no-fsync']).has('zlib'), true);
  assert.equal(builtinsLoaded(dir, ['deploy', 'build.zip', 'root3', '--no-fsync']).has('zlib'), true);
  assert.equal(fs.readFileSync(path.join(dir, 'root3/current/index.html'), 'utf8'), 'one\n');
});

test('the proxy code (proxy-from-env, the agents) loads only for a URL deployed with a proxy variable set', async (t) => {
  const strace = requireTool('strace', 'strace');
  const bin = path.dirname(PACKAGE_BIN);
  // agent-base's internal state symbol: in the chunk the proxy module brings, and in no other.
  const chunks = fs.readdirSync(bin).filter((f) => fs.readFileSync(path.join(bin, f), 'utf8').includes('AgentBaseInternalState'));
  assert.equal(chunks.length, 1, `one chunk holds the proxy agents: ${chunks.join(', ')}`);
  const dir = tempDir(t);
  writeTree(path.join(dir, 'build'), { 'index.html': 'one\n' });
  execFileSync('tar', ['-czf', path.join(dir, 'build.tar.gz'), '-C', path.join(dir, 'build'), '.']);
  const server = await serve(t, dir, 'ok');
  /** Whether a run of the installed command opened the proxy chunk (run asynchronously: the server is in this process). */
  const opens = async (args: string[], env: NodeJS.ProcessEnv): Promise<boolean> => {
    const log = path.join(dir, 'openat.log');
    await promisify(execFile)(strace, ['-f', '-qq', '-e', 'trace=openat', '-o', log, process.execPath, PACKAGE_BIN, ...args, '--no-fsync'], { cwd: dir, env: cliEnv(undefined, env) });
    return fs.readFileSync(log, 'utf8').includes(`/${chunks[0] ?? ''}"`);
  };
  assert.equal(await opens(['deploy', server.url('build.tar.gz'), 'root1'], {}), false, 'a URL deploy without a proxy variable');
  assert.equal(await opens(['deploy', 'build', 'root2'], { HTTPS_PROXY: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9' }), false, 'a directory deploy with proxy variables');
  // The probe sees what it looks for: with a variable set, the module decides (here: NO_PROXY, so directly).
  assert.equal(await opens(['deploy', server.url('build.tar.gz'), 'root3'], { HTTP_PROXY: 'http://127.0.0.1:9', NO_PROXY: '127.0.0.1' }), true, 'a URL deploy with HTTP_PROXY');
  assert.equal(fs.readFileSync(path.join(dir, 'root3/current/index.html'), 'utf8'), 'one\n');
});
