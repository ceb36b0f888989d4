// The CLI contract of the core engine: layout, outputs, exit codes, copy fidelity, refusals.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { currentId, jsonOf, releaseIds, runCli, snapshot, tempDir, writeTree } from '../harness/cli.ts';

const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

function site(dir: string, body = 'hello\n'): string {
  return writeTree(dir, { 'index.html': body, 'assets/app.css': 'body{}\n' });
}

describe('deploy', () => {
  test('makes the layout with a relative current link, state outside the release', async (t) => {
    const dir = tempDir(t);
    const root = path.join(dir, 'root');
    const r = await runCli(['deploy', site(path.join(dir, 'src')), root, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = jsonOf<{ release: string; path: string; previous: string | null }>(r);
    assert.match(out.release, /^\d{14}$/);
    assert.equal(out.path, path.join(root, 'releases', out.release));
    assert.equal(out.previous, null);
    assert.equal(fs.readlinkSync(path.join(root, 'current')), `releases/${out.release}`);
    assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8'), 'hello\n');
    assert.deepEqual(fs.readdirSync(path.join(root, 'releases', out.release)).sort(), ['assets', 'index.html']);
    assert.ok(fs.existsSync(path.join(root, '.atomic-deploy', 'releases', `${out.release}.json`)));
    assert.ok(!fs.existsSync(path.join(root, '.deploy.lock')), 'the lock is released');
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')), [], 'no temp links or staging left');
  });

  test('the bare form `atomic-deploy <source> <root>` deploys too', async (t) => {
    const dir = tempDir(t);
    const root = path.join(dir, 'root');
    const r = await runCli([site(path.join(dir, 'src')), root]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(currentId(root));
  });

  test('deploys in the same second get distinct ids that sort in deploy order', async (t) => {
    const dir = tempDir(t);
    const root = path.join(dir, 'root');
    const src = site(path.join(dir, 'src'));
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await runCli(['deploy', src, root, '--json', '--no-fsync']);
      assert.equal(r.code, 0, r.stderr);
      ids.push(jsonOf<{ release: string }>(r).release);
    }
    assert.equal(new Set(ids).size, 4);
    assert.deepEqual([...ids].sort(), ids, 'lexical order is deploy order');
    assert.equal(currentId(root), ids[3]);
  });

  test('a faithful copy: modes, mtimes, empty dirs, symlinks verbatim (never followed)', async (t) => {
    const dir = tempDir(t);
    const src = path.join(dir, 'src');
    writeTree(src, { 'index.html': 'x', 'bin/run': '#!/bin/sh\n', 'private/key': 'k' });
    fs.chmodSync(path.join(src, 'bin/run'), 0o755);
    fs.chmodSync(path.join(src, 'private/key'), 0o600);
    fs.chmodSync(path.join(src, 'private'), 0o750);
    fs.mkdirSync(path.join(src, 'empty/nested'), { recursive: true });
    fs.symlinkSync('/etc/passwd', path.join(src, 'passwd-link'));
    fs.symlinkSync('../index.html', path.join(src, 'bin/relative-link'));
    fs.symlinkSync('does-not-exist', path.join(src, 'dangling'));
    const old = new Date('2020-01-02T03:04:05.678Z');
    fs.utimesSync(path.join(src, 'index.html'), old, old);
    fs.utimesSync(path.join(src, 'empty'), old, old);
    const root = path.join(dir, 'root');
    const r = await runCli(['deploy', src, root, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rel = jsonOf<{ path: string }>(r).path;
    const mode = (p: string): number => fs.lstatSync(path.join(rel, p)).mode & 0o7777;
    assert.equal(mode('bin/run'), 0o755);
    assert.equal(mode('private/key'), 0o600);
    assert.equal(mode('private'), 0o750);
    assert.ok(fs.statSync(path.join(rel, 'empty/nested')).isDirectory());
    assert.equal(fs.readlinkSync(path.join(rel, 'passwd-link')), '/etc/passwd');
    assert.ok(fs.lstatSync(path.join(rel, 'passwd-link')).isSymbolicLink(), 'the link target is never copied');
    assert.equal(fs.readlinkSync(path.join(rel, 'bin/relative-link')), '../index.html');
    assert.equal(fs.readlinkSync(path.join(rel, 'dangling')), 'does-not-exist');
    assert.equal(fs.statSync(path.join(rel, 'index.html')).mtime.getTime(), old.getTime());
    assert.equal(fs.statSync(path.join(rel, 'empty')).mtime.getTime(), old.getTime());
  });

  test('--no-fsync skips durability; the default makes the release durable', async (t) => {
    const dir = tempDir(t);
    const src = site(path.join(dir, 'src'));
    const a = jsonOf<{ durability: string }>(await runCli(['deploy', src, path.join(dir, 'a'), '--json']));
    const b = jsonOf<{ durability: string }>(await runCli(['deploy', src, path.join(dir, 'b'), '--json', '--no-fsync']));
    assert.ok(a.durability === 'syncfs' || a.durability === 'fsync');
    assert.equal(b.durability, 'off');
  });

  test('release ids: --release-id is used, validated, and never reused', async (t) => {
    const dir = tempDir(t);
    const root = path.join(dir, 'root');
    const src = site(path.join(dir, 'src'));
    assert.equal((await runCli(['deploy', src, root, '--release-id', 'v1.0.0'])).code, 0);
    assert.equal(currentId(root), 'v1.0.0');
    const before = snapshot(root);
    for (const bad of ['v1.0.0', '../evil', 'a/b', '.hidden', '-x', 'a\nb', 'x'.repeat(300), 'a..b']) {
      const r = await runCli(['deploy', src, root, `--release-id=${bad}`]);
      assert.equal(r.code, 2, `${JSON.stringify(bad)}: ${r.stderr}`);
      assert.match(r.stderr, /^error: /);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    assert.deepEqual(snapshot(root), before, 'nothing changed on disk');
  });
});

describe('refusals change nothing', () => {
  test('special files, empty source, source/root overlap, current not a link', async (t) => {
    const dir = tempDir(t);
    const src = site(path.join(dir, 'src'));
    const root = path.join(dir, 'root');
    assert.equal((await runCli(['deploy', src, root])).code, 0);
    const before = snapshot(dir);

    const fifoSrc = site(path.join(dir, 'fifo-src'));
    await new Promise((resolve, reject) => spawn('mkfifo', [path.join(fifoSrc, 'pipe')]).on('exit', resolve).on('error', reject));
    const cases: [string, string[], RegExp][] = [
      ['fifo', ['deploy', fifoSrc, root], /FIFO/],
      ['empty source', ['deploy', fs.mkdtempSync(path.join(dir, 'empty-')), root], /empty/],
      ['missing source', ['deploy', path.join(dir, 'nope'), root], /does not exist/],
      ['source is root', ['deploy', root, root], /is the deploy root/],
      ['source inside root', ['deploy', path.join(root, 'releases'), root], /inside the deploy root/],
      ['root inside source', ['deploy', src, path.join(src, 'deep', 'root')], /deploy root is inside the source/],
      ['root is a file', ['deploy', src, path.join(src, 'index.html')], /not a directory/],
    ];
    const after = snapshot(dir);
    for (const [name, args, message] of cases) {
      const r = await runCli(args);
      assert.equal(r.code, 2, `${name}: ${r.stderr}`);
      assert.match(r.stderr, message, name);
    }
    assert.deepEqual(snapshot(dir).filter((l) => !l.startsWith('empty-') && !l.startsWith('fifo-src')), after.filter((l) => !l.startsWith('empty-') && !l.startsWith('fifo-src')));
    assert.ok(before.length > 0);
  });

  test('current as a real directory or file: exit 2 with a hint, never deleted', async (t) => {
    for (const kind of ['directory', 'file'] as const) {
      const dir = tempDir(t);
      const root = path.join(dir, 'root');
      fs.mkdirSync(root);
      if (kind === 'directory') writeTree(path.join(root, 'current'), { 'index.html': 'live site' });
      else fs.writeFileSync(path.join(root, 'current'), 'live');
      const before = snapshot(root);
      const r = await runCli(['deploy', site(path.join(dir, 'src')), root]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /not a symlink/);
      assert.match(r.stderr, /hint: /);
      assert.deepEqual(snapshot(root), before);
    }
  });

  test("current as a real directory: the README's in-place move, run verbatim, gives a root the next deploy takes over", async (t) => {
    const readme = fs.readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const dir = tempDir(t);
    const root = path.join(dir, 'root');
    writeTree(path.join(root, 'current'), { 'index.html': 'live site\n', 'img/logo.png': 'png' });
    const refused = await runCli(['deploy', site(path.join(dir, 'src')), root]);
    assert.equal(refused.code, 2, refused.stderr);
    // The hint sends the user to the FAQ entry by its words; the entry must be there.
    const faq = /\(README, FAQ: "([^"]+)"\)$/m.exec(refused.stderr)?.[1];
    assert.ok(faq, refused.stderr);
    // Its words as they read, code marks aside.
    const line = readme.split('\n').find((l) => l.replaceAll('`', '').startsWith(`**${faq}`));
    const entry = line === undefined ? -1 : readme.indexOf(line);
    assert.ok(entry >= 0, `README has no FAQ entry starting "${faq}"`);
    const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(entry))?.[1];
    assert.ok(block !== undefined && block.startsWith('cd /srv/www/app\n'), 'the entry holds the commands');
    execFileSync('sh', ['-euc', block.replace('cd /srv/www/app', `cd '${root}'`)]);
    assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/initial');
    assert.equal(fs.readFileSync(path.join(root, 'current', 'index.html'), 'utf8'), 'live site\n');
    assert.deepEqual(fs.readdirSync(root).sort(), ['current', 'releases']);
    const next = await runCli(['deploy', path.join(dir, 'src'), root, '--json']);
    assert.equal(next.code, 0, next.stderr);
    assert.equal(jsonOf<{ previous: string | null }>(next).previous, 'initial');
    const back = await runCli(['rollback', root, '--json']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(fs.readFileSync(path.join(root, 'current', 'img', 'logo.png'), 'utf8'), 'png');
  });
});

describe('rollback', () => {
  test('to the previous release, then --to; errors for unknown and missing previous', async (t) => {
    const dir = tempDir(t);
    const root = path.join(dir, 'root');
    const ids: string[] = [];
    for (const body of ['one', 'two', 'three']) {
      const r = await runCli(['deploy', site(path.join(dir, body), body), root, '--json']);
      ids.push(jsonOf<{ release: string }>(r).release);
    }
    const back = await runCli(['rollback', root, '--json']);
    assert.equal(back.code, 0, back.stderr);
    assert.deepEqual(jsonOf(back), { release: ids[1], previous: ids[2], recovered: [], stale: { check: 'proc', processes: [], release: ids[2] }, contents: { check: 'identical' } });
    assert.equal(fs.readFileSync(path.join(root, 'current/index.html'), 'utf8'), 'two');
    assert.equal(fs.readlinkSync(path.join(root, 'current')), `releases/${ids[1]}`);

    const to = await runCli(['rollback', root, '--to', ids[2] as string, '--json']);
    assert.equal(to.code, 0, to.stderr);
    assert.equal(currentId(root), ids[2]);

    const before = snapshot(root);
    const unknown = await runCli(['rollback', root, '--to', 'nope']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /does not exist/);
    await runCli(['rollback', root, '--to', ids[0] as string]);
    const none = await runCli(['rollback', root]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no earlier good release/);
    assert.equal(currentId(root), ids[0]);
    assert.notDeepEqual(before, snapshot(root));
  });

  test('understands an absolute current link (as Capistrano makes) and a legacy layout', async (t) => {
    const dir = tempDir(t);
    const root = path.join(dir, 'root');
    writeTree(path.join(root, 'releases/20240101000000'), { 'index.html': 'old' });
    writeTree(path.join(root, 'releases/20240202000000'), { 'index.html': 'new' });
    fs.symlinkSync(path.join(root, 'releases/20240202000000'), path.join(root, 'current'));
    const st = await runCli(['status', root, '--json']);
    assert.equal(jsonOf<{ current: string }>(st).current, '20240202000000');
    const r = await runCli(['rollback', root, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(jsonOf<{ release: string }>(r).release, '20240101000000');
    assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/20240101000000');
    const d = await runCli(['deploy', site(path.join(dir, 'src')), root, '--json']);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(jsonOf<{ previous: string }>(d).previous, '20240101000000');
  });
});

describe('releases, status, unlock', () => {
  test('releases newest first with current marked; status reports lock and current', async (t) => {
    const dir = tempDir(t);
    const root = path.join(dir, 'root');
    const src = site(path.join(dir, 'src'));
    await runCli(['deploy', src, root, '--release-id', 'a1']);
    await runCli(['deploy', src, root, '--release-id', 'b2']);
    const list = jsonOf<{ current: string; releases: { id: string; current: boolean }[] }>(await runCli(['releases', root, '--json']));
    assert.equal(list.current, 'b2');
    assert.deepEqual(list.releases.map((r) => [r.id, r.current]), [['b2', true], ['a1', false]]);
    const human = await runCli(['releases', root]);
    // In a pipe: the terminal's columns (dates, user, sizes, digest, source), without the header.
    assert.match(human.stdout, /^\* +b2 +active +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d{4}-\d\d-\d\d [^\n]+ 13 B +[^\n]* sha256:[0-9a-f]{12} +\/\S+\/src\n {3}a1 +previous +\d{4}-[^\n]+ sha256:[0-9a-f]{12} +\/\S+\n$/);
    const st = jsonOf<{ current: string; lock: unknown }>(await runCli(['status', root, '--json']));
    assert.equal(st.current, 'b2');
    assert.equal(st.lock, null);
  });

  test('a live lock: deploy exits 3 naming the holder; unlock refuses without --force', async (t) => {
    const dir = tempDir(t);
    const root = path.join(dir, 'root');
    const src = site(path.join(dir, 'src'));
    await runCli(['deploy', src, root]);
    const holder = spawn('sleep', ['30'], { stdio: 'ignore' });
    t.after(() => holder.kill('SIGKILL'));
    const stat = fs.readFileSync(`/proc/${holder.pid}/stat`, 'utf8');
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    fs.mkdirSync(path.join(root, '.deploy.lock'));
    fs.writeFileSync(path.join(root, '.deploy.lock/owner.json'), JSON.stringify({ pid: holder.pid, host: (await import('node:os')).hostname(), user: 'deployer', since: new Date().toISOString(), token: 'tok', startTime }));
    const before = snapshot(root);
    const r = await runCli(['deploy', src, root, '--json']);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, new RegExp(`locked by pid ${holder.pid} of deployer@`));
    const err = jsonOf<{ error: { code: string; lock: { pid: number } } }>(r);
    assert.equal(err.error.code, 'LOCKED');
    assert.equal(err.error.lock.pid, holder.pid);
    assert.equal((await runCli(['unlock', root])).code, 3);
    assert.deepEqual(snapshot(root), before, 'a lock we do not own is never deleted');
    const forced = await runCli(['unlock', root, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /warning: forcibly removing a lock held by pid/);
    assert.ok(!fs.existsSync(path.join(root, '.deploy.lock')));
  });

  test('--wait waits for the holder to go', async (t) => {
    const dir = tempDir(t);
    const root = path.join(dir, 'root');
    const src = site(path.join(dir, 'src'));
    await runCli(['deploy', src, root]);
    const holder = spawn('sleep', ['1.5'], { stdio: 'ignore' });
    t.after(() => holder.kill('SIGKILL'));
    const stat = fs.readFileSync(`/proc/${holder.pid}/stat`, 'utf8');
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    fs.mkdirSync(path.join(root, '.deploy.lock'));
    fs.writeFileSync(path.join(root, '.deploy.lock/owner.json'), JSON.stringify({ pid: holder.pid, host: (await import('node:os')).hostname(), user: 'u', since: new Date().toISOString(), token: 't2', startTime }));
    const r = await runCli(['deploy', src, root, '--wait', '20', '--json']);
    assert.equal(r.code, 0, r.stderr);
    // The holder is this process's child: between its exit and Node reaping it, the waiting deploy
    // may find it a zombie, which is as stale.
    assert.match(r.stderr, /took over a stale lock: process \d+ (is gone|has exited \(a zombie its parent has not reaped\))$/m);
  });
});

describe('CLI surface', () => {
  test('--version, --help with examples for every command, usage errors exit 2', async () => {
    const v = await runCli(['--version']);
    assert.equal(v.stdout, `${pkg.version}\n`);
    // --json: one JSON object on stdout, the version's too (it printed the plain text).
    for (const [args, env] of [[['--version', '--json'], {}], [['-V'], { ATOMIC_DEPLOY_JSON: '1' }]] as const) {
      const j = await runCli([...args], { env });
      assert.equal(j.code, 0, j.stderr);
      assert.deepEqual(JSON.parse(j.stdout), { version: pkg.version });
    }
    // The options every command takes are named where no command's own help is read.
    const top = await runCli(['--help']);
    assert.match(top.stdout, /^Every command has --help, and takes --json, -q \(--quiet\) and --no-color, before or after its name\.$/m);
    for (const cmd of ['deploy', 'rollback', 'releases', 'status', 'unlock']) {
      const h = await runCli([cmd, '--help']);
      assert.equal(h.code, 0, cmd);
      assert.match(h.stdout, /Examples:/, cmd);
    }
    const bad = await runCli(['deploy', '--bogus', 'a', 'b']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error: unknown option/);
    const missing = await runCli(['rollback']);
    assert.equal(missing.code, 2);
    const json = await runCli(['rollback', '--json']);
    assert.equal(json.code, 2);
    assert.equal(jsonOf<{ error: { code: string } }>(json).error.code, 'USAGE');
  });

  test('paths with spaces, quotes, $(), newlines, a leading dash and non-ASCII', async (t) => {
    const dir = tempDir(t);
    const weird = `-we ird 'q' "d" $(touch pwned) \`x\` ü日本\nline`;
    const src = site(path.join(dir, `${weird}-src`), 'weird\n');
    const root = path.join(dir, `${weird}-root`);
    fs.mkdirSync(root);
    const r = await runCli(['deploy', '--json', '--', path.relative(dir, src), path.relative(dir, root)], { cwd: dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(fs.readFileSync(path.join(root, 'current/index.html'), 'utf8'), 'weird\n');
    assert.ok(!fs.existsSync(path.join(dir, 'pwned')), 'nothing went through a shell');
    assert.equal((await runCli(['releases', root, '--json'])).code, 0);
  });

  test('human output: step lines on stdout, nothing but JSON with --json, nothing with --quiet', async (t) => {
    const dir = tempDir(t);
    const src = site(path.join(dir, 'src'));
    const human = await runCli(['deploy', src, path.join(dir, 'a')]);
    assert.match(human.stdout, /› copying 2 files/);
    assert.match(human.stdout, /deployed \d{14}/);
    // A redeploy that links from the previous release does not claim to copy everything.
    const linked = await runCli(['deploy', src, path.join(dir, 'a'), '--strategy', 'hardlink']);
    assert.match(linked.stdout, /› linking unchanged files and copying the rest of 2 files/);
    assert.ok(!human.stdout.includes("\u001b["), 'no progress bar or colour when stdout is not a TTY');
    const quiet = await runCli(['deploy', src, path.join(dir, 'b'), '--quiet']);
    assert.equal(quiet.stdout, '');
    const json = await runCli(['deploy', src, path.join(dir, 'c'), '--json']);
    assert.equal(json.stdout.trim().split('\n').length, 1);
    assert.equal(releaseIds(path.join(dir, 'c')).length, 1);
  });
});

void test('a build holding .git deploys, with a warning on stderr (human and --json runs, and the dry run); a build without one gets none', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n', '.git/config': '[remote "origin"]\n', '.gitignore': 'node_modules\n' });
  const root = path.join(dir, 'root');
  const warning = /^warning: the build holds \.git at its top: a server whose document root is the release serves it \(history, remote URLs, sometimes credentials\); deploy the build output, or serve a subdirectory of the release$/m;
  const dry = await runCli(['deploy', src, root, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stderr, warning);
  for (const args of [[], ['--json']]) {
    const r = await runCli(['deploy', src, root, ...args]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, warning);
    // A script that keeps only stdout gets it too: every warning said is in the result's `warnings`.
    if (args.length > 0) assert.match(jsonOf<{ warnings?: string[] }>(r).warnings?.[0] ?? '', /^the build holds \.git at its top/);
  }
  const dryJson = await runCli(['deploy', src, root, '--dry-run', '--json']);
  assert.match(jsonOf<{ warnings?: string[] }>(dryJson).warnings?.[0] ?? '', /^the build holds \.git at its top/);
  assert.ok(fs.existsSync(path.join(root, 'current', '.git', 'config')), 'deployed as built');
  fs.rmSync(path.join(src, '.git'), { recursive: true });
  const clean = await runCli(['deploy', src, root]);
  assert.equal(clean.code, 0, clean.stderr);
  assert.doesNotMatch(clean.stderr, /warning/);
});
