// Hostile and bad input, table-driven: each case must exit with its documented code, print one
// `error:` line (and at most a `hint:`), no stack trace, and change nothing on disk: neither the
// deploy root nor the source. A second table holds hostile input that is valid and must work.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { deploy, DeployError, listReleases, planDeploy, prune, rollback, status, unlock, verify } from '../../src/index.ts';
import { runCli, tempDir, writeTree, type CliResult } from '../harness/cli.ts';
import { asUser, runWrapped, startTicks, writeOwnerLock } from '../harness/faults.ts';
import { deadPid, makeSource, manifestOf, sameManifest, treeSnapshot } from '../harness/invariants.ts';

/** One copy of the fixture: a source, a second source, and a root with two releases. */
interface Ctx {
  dir: string;
  src: string;
  root: string;
  current: string;
  previous: string;
}

interface Case {
  name: string;
  /** Changes the copy of the fixture; returns the CLI arguments (or runs the library itself). */
  setup: (ctx: Ctx) => string[] | Promise<string[]>;
  code: number;
  message: RegExp;
  /** The `hint:` line must be there and match. */
  hint?: RegExp;
  /** Run as this user (setpriv) instead of root. */
  user?: string;
  /** The command fails only after taking the lock: contents unchanged, directory times may move. */
  underLock?: boolean;
  /** Added to the CLI's environment. */
  env?: NodeJS.ProcessEnv;
}

const deployTo = (ctx: Ctx, ...extra: string[]): string[] => ['deploy', ctx.src, ctx.root, ...extra];
const id = (ctx: Ctx, value: string): string[] => deployTo(ctx, `--release-id=${value}`);

function mkfifo(p: string): void {
  execFileSync('mkfifo', [p]);
}

const CASES: Case[] = [
  // The source.
  { name: 'missing source', setup: (c) => ['deploy', path.join(c.dir, 'nope'), c.root], code: 2, message: /does not exist/ },
  { name: 'source is a file', setup: (c) => ['deploy', path.join(c.src, 'index.html'), c.root], code: 2, message: /is not a directory/ },
  { name: 'empty source', setup: (c) => (fs.mkdirSync(path.join(c.dir, 'empty-src')), ['deploy', path.join(c.dir, 'empty-src'), c.root]), code: 2, message: /is empty/ },
  { name: 'source is the root', setup: (c) => ['deploy', c.root, c.root], code: 2, message: /the source is the deploy root/ },
  { name: 'source inside the root', setup: (c) => ['deploy', path.join(c.root, 'releases', c.current), c.root], code: 2, message: /the source is inside the deploy root/ },
  {
    name: 'source inside the root through a symlink',
    setup: (c) => (fs.symlinkSync(path.join(c.root, 'releases', c.current), path.join(c.dir, 'sneaky')), ['deploy', path.join(c.dir, 'sneaky'), c.root]),
    code: 2,
    message: /the source is inside the deploy root/,
  },
  // An ssh config that ssh could not open: refused before any connection, for every fleet command.
  ...[['deploy', 'SRC', 'ROOT'], ['status', 'ROOT'], ['rollback', 'ROOT'], ['verify', 'ROOT'], ['releases', 'ROOT'], ['prune', 'ROOT'], ['unlock', 'ROOT']].map((words): Case => ({
    name: `${words[0]} --ssh-config naming no file`,
    setup: (c) => [...words.map((w) => (w === 'SRC' ? c.src : w === 'ROOT' ? '/srv/www/app' : w)), '--host', 'web1.invalid', '--ssh-config', path.join(c.dir, 'nope')],
    code: 2,
    message: /^error: --ssh-config .*\/nope: no such file$/,
    hint: /^hint: give an ssh config file \(what ssh -F reads\), or \/dev\/null to read none$/,
  })),
  { name: '--ssh-config naming a directory', setup: (c) => deployTo(c, '--host', 'web1.invalid', '--ssh-config', c.dir), code: 2, message: /^error: --ssh-config .*: is a directory, not an ssh config file$/ },
  { name: 'ATOMIC_DEPLOY_SSH_CONFIG naming no file', setup: (c) => deployTo(c, '--host', 'web1.invalid'), env: { ATOMIC_DEPLOY_SSH_CONFIG: '/nonexistent/ssh_config' }, code: 2, message: /^error: --ssh-config \/nonexistent\/ssh_config: no such file$/ },
  // A ~ the shell did not expand (quoted): never a directory named ~ in the working directory.
  { name: 'root with a quoted ~', setup: (c) => ['deploy', c.src, '~/www'], code: 2, message: /^error: the root "~\/www" starts with ~, which the shell did not expand \(quoted\?\)$/, hint: /^hint: write it unquoted or as an absolute path \(\$HOME\/\.\.\.\); for a directory whose name starts with ~, write \.\/~\/www$/ },
  { name: 'source with a quoted ~', setup: (c) => ['deploy', '~/build', c.root], code: 2, message: /^error: the source "~\/build" starts with ~/ },
  { name: 'root inside the source', setup: (c) => ['deploy', c.src, path.join(c.src, 'site')], code: 2, message: /the deploy root is inside the source/ },
  {
    name: 'source inside the root, in a directory named ..build',
    setup: (c) => (fs.mkdirSync(path.join(c.root, '..build')), fs.writeFileSync(path.join(c.root, '..build', 'index.html'), 'x'), ['deploy', path.join(c.root, '..build'), c.root]),
    code: 2,
    message: /the source is inside the deploy root/,
  },
  { name: 'root inside the source, named ..deploy', setup: (c) => ['deploy', c.src, path.join(c.src, '..deploy')], code: 2, message: /the deploy root is inside the source/ },
  { name: 'source holds a FIFO', setup: (c) => (mkfifo(path.join(c.src, 'd0', 'pipe')), deployTo(c)), code: 2, message: /pipe is a FIFO/ },
  {
    name: 'source holds three FIFOs: all named in one run',
    setup: (c) => {
      for (const p of ['d0/pipe', 'd1/pipe', 'zz-pipe']) mkfifo(path.join(c.src, p));
      return deployTo(c);
    },
    code: 2,
    message: /^error: .*\/src\/d0\/pipe is a FIFO; a release can hold only files, directories and symlinks; also .*\/src\/d1\/pipe \(a FIFO\), .*\/src\/zz-pipe \(a FIFO\)$/,
    hint: /^hint: remove it from the build/,
  },
  {
    name: 'source holds a socket',
    setup: (c) => {
      execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path.join(c.src, 'sock')]);
      return deployTo(c);
    },
    code: 2,
    message: /sock is a socket/,
  },
  { name: 'source holds a device', setup: (c) => (execFileSync('mknod', [path.join(c.src, 'null'), 'c', '1', '3']), deployTo(c)), code: 2, message: /null is a character device/ },
  {
    name: 'unreadable directory in the source (another user)',
    setup: (c) => (fs.chmodSync(path.join(c.src, 'd1'), 0o000), deployTo(c)),
    user: 'daemon',
    code: 2,
    message: /cannot read .*d1: permission denied; nothing was deployed/,
    hint: /^hint: make the build readable by the user that deploys \(for example: chmod -R u\+rX <source>\)$/,
  },
  {
    name: 'source directory listable but not searchable (another user)',
    setup: (c) => (fs.chmodSync(path.join(c.src, 'd1'), 0o644), deployTo(c)),
    user: 'daemon',
    code: 2,
    message: /cannot read .*d1: permission denied; nothing was deployed/,
    hint: /^hint: make the build readable by the user that deploys/,
  },
  {
    // Found by the scan, before the lock: the hint is about the source, not the root's owner.
    name: 'unreadable file in the source (another user)',
    setup: (c) => (fs.chmodSync(path.join(c.src, 'd0', 'f0.txt'), 0o000), deployTo(c)),
    user: 'daemon',
    code: 2,
    message: /cannot read .*d0\/f0\.txt: permission denied; nothing was deployed/,
    hint: /^hint: make the build readable by the user that deploys \(for example: chmod -R u\+rX <source>\)$/,
  },
  {
    name: 'unreadable file in the source, dry run (another user)',
    setup: (c) => (fs.chmodSync(path.join(c.src, 'd0', 'f0.txt'), 0o000), [...deployTo(c), '--dry-run']),
    user: 'daemon',
    code: 2,
    message: /cannot read .*d0\/f0\.txt: permission denied; nothing was deployed/,
    hint: /^hint: make the build readable by the user that deploys/,
  },
  {
    // Group bits decide for a member, even when the bits for others would allow it.
    name: 'source file its group may not read (another user in that group)',
    setup: (c) => {
      const f = path.join(c.src, 'd0', 'f0.txt');
      execFileSync('chown', ['root:daemon', f]);
      fs.chmodSync(f, 0o604);
      return deployTo(c);
    },
    user: 'daemon',
    code: 2,
    message: /cannot read .*d0\/f0\.txt: permission denied; nothing was deployed/,
    hint: /^hint: make the build readable by the user that deploys/,
  },
  { name: 'missing source named with a newline', setup: (c) => ['deploy', path.join(c.dir, 'no\nsuch'), c.root], code: 2, message: /no\\nsuch does not exist/ },
  { name: 'missing source named with a terminal escape', setup: (c) => ['deploy', path.join(c.dir, 'x\x1b]0;owned\x07'), c.root], code: 2, message: /x\\u001b\]0;owned\\u0007 does not exist/ },
  // The root.
  { name: 'root is a file', setup: (c) => (fs.writeFileSync(path.join(c.dir, 'file'), 'x'), ['deploy', c.src, path.join(c.dir, 'file')]), code: 2, message: /is not a directory/ },
  { name: "root's parent is a file", setup: (c) => (fs.writeFileSync(path.join(c.dir, 'file'), 'x'), ['deploy', c.src, path.join(c.dir, 'file', 'root')]), code: 2, message: /not a directory/ },
  {
    name: 'root is a dangling link',
    setup: (c) => (fs.symlinkSync('/nonexistent/zz', path.join(c.dir, 'dang')), ['deploy', c.src, path.join(c.dir, 'dang')]),
    code: 2,
    message: /^error: the deploy root .*\/dang is a symbolic link to \/nonexistent\/zz, which does not exist$/,
    hint: /^hint: create the link's target first, or give another root$/,
  },
  {
    name: 'root is a dangling link, dry run',
    setup: (c) => (fs.symlinkSync('/nonexistent/zz', path.join(c.dir, 'dang')), ['deploy', c.src, path.join(c.dir, 'dang'), '-n']),
    code: 2,
    message: /^error: the deploy root .*\/dang is a symbolic link to \/nonexistent\/zz, which does not exist$/,
    hint: /^hint: create the link's target first, or give another root$/,
  },
  {
    name: 'current is a real directory',
    setup: (c) => (fs.rmSync(path.join(c.root, 'current')), fs.mkdirSync(path.join(c.root, 'current')), deployTo(c)),
    code: 2,
    message: /current is a real directory, not a symlink/,
  },
  { name: 'current is a regular file', setup: (c) => (fs.rmSync(path.join(c.root, 'current')), fs.writeFileSync(path.join(c.root, 'current'), 'x'), deployTo(c)), code: 2, message: /regular file/ },
  { name: 'current is dangling', setup: (c) => (relink(c, 'releases/gone'), deployTo(c)), code: 2, message: /points to releases\/gone, which does not exist/ },
  {
    name: 'current points to a file in releases/',
    setup: (c) => (fs.writeFileSync(path.join(c.root, 'releases', 'f'), 'x'), relink(c, 'releases/f'), deployTo(c)),
    code: 2,
    message: /points to releases\/f, which is not a directory/,
  },
  // The link's text names no release the kernel reaches by it alone: taken for `stable` or for
  // `previous`, the release that serves would go unguarded (prune deleted it).
  ...(['prune', 'deploy'] as const).flatMap((cmd): Case[] => [
    {
      name: `${cmd}: current through a link in releases/`,
      setup: (c) => {
        fs.symlinkSync(c.previous, path.join(c.root, 'releases', 'stable'));
        relink(c, 'releases/stable');
        return cmd === 'prune' ? ['prune', c.root, '--keep', '1'] : deployTo(c);
      },
      code: 2,
      message: /points to releases\/stable, a link to the release \S+, not a release itself \(prune and rollback could not tell that \S+ serves\)$/,
      hint: /^hint: point current at the release itself, in one rename: atomic-deploy rollback \S+ --to \S+$/,
    },
    {
      name: `${cmd}: current through another release by ..`,
      setup: (c) => (relink(c, `releases/${c.current}/../${c.previous}`), cmd === 'prune' ? ['prune', c.root, '--keep', '1'] : deployTo(c)),
      code: 2,
      message: /which is not a release directory in/,
    },
    { name: `${cmd}: current points outside releases/`, setup: (c) => (relink(c, '/etc'), cmd === 'prune' ? ['prune', c.root, '--keep', '1'] : deployTo(c)), code: 2, message: /points to \/etc, which is not a release directory in/ },
  ]),
  { name: 'current escapes with ..', setup: (c) => (relink(c, `releases/../../${path.basename(c.dir)}`), deployTo(c)), code: 2, message: /which is not a release directory in/ },
  { name: '.tmp is a symlink out of the root', setup: (c) => (fs.rmSync(path.join(c.root, '.tmp'), { recursive: true }), fs.symlinkSync(c.dir, path.join(c.root, '.tmp')), deployTo(c)), code: 2, message: /\.tmp is a symbolic link/, hint: /^hint: remove the link \(rm .*\.tmp\); it is recreated as a directory$/ },
  // The state's own directories: prune deleted a pruned release's manifest in the link's target, a deploy wrote there.
  ...(['manifests', 'releases'] as const).map((sub) => ({
    name: `.atomic-deploy/${sub} is a symlink out of the root`,
    setup: (c: Ctx): string[] => {
      const inside = path.join(c.root, '.atomic-deploy', sub);
      const outside = path.join(c.dir, `moved-${sub}`);
      fs.renameSync(inside, outside);
      fs.symlinkSync(outside, inside);
      return ['prune', c.root, '--keep', '1'];
    },
    code: 2,
    message: new RegExp(`\\.atomic-deploy/${sub} is a symbolic link`),
    hint: new RegExp(`^hint: put the directory it leads to in its place \\(rm .*/${sub} && mv .*moved-${sub} .*/${sub}\\)$`),
  })),
  // Another tool's live release whose name no journal may hold: a deploy cut off before its switch was never undone.
  ...(['--dry-run', '--quiet'] as const).map((flag): Case => ({
    name: `current is another tool's release with a newline in its name (deploy ${flag})`,
    setup: (c) => {
      fs.cpSync(path.join(c.root, 'releases', c.current), path.join(c.root, 'releases', 'x\ny'), { recursive: true });
      relink(c, 'releases/x\ny');
      return deployTo(c, flag);
    },
    code: 2,
    message: /^error: current points to releases\/x\\ny, whose name a deploy cannot record as the release it replaces: /,
    hint: /^hint: copy it under a plain name \(cp -a <that release> .*\/releases\/<new name>\), switch to the copy \(atomic-deploy rollback .* --to <new name>\), then deploy$/,
  })),
  // Release ids.
  { name: 'release id with a slash', setup: (c) => id(c, 'a/b'), code: 2, message: /contains a slash/ },
  { name: 'release id with a backslash', setup: (c) => id(c, 'a\\b'), code: 2, message: /contains a backslash/ },
  { name: 'release id ..', setup: (c) => id(c, '..'), code: 2, message: /contains "\.\."/ },
  // Its manifest would be release a's stat cache: prune of a deleted it, a deploy of a overwrote it.
  { name: 'release id ending in .stat', setup: (c) => id(c, `${c.current}.stat`), code: 2, message: /ends in "\.stat": the manifest of release .*\.stat would be the stat cache file of release/ },
  { name: 'release id with .. inside', setup: (c) => id(c, 'v1..2'), code: 2, message: /contains "\.\."/ },
  { name: 'release id with a newline', setup: (c) => id(c, 'a\nb'), code: 2, message: /control character/ },
  { name: 'release id with a tab', setup: (c) => id(c, 'a\tb'), code: 2, message: /control character/ },
  { name: 'release id with an escape', setup: (c) => id(c, 'a\x1b[2Jb'), code: 2, message: /control character/ },
  { name: 'release id of 300 characters', setup: (c) => id(c, 'x'.repeat(300)), code: 2, message: /longer than 128 bytes/ },
  { name: 'release id of 65 two-byte characters (130 bytes)', setup: (c) => id(c, 'é'.repeat(65)), code: 2, message: /longer than 128 bytes/ },
  { name: 'release id that exists', setup: (c) => id(c, c.previous), code: 2, message: /already exists/ },
  { name: 'release id starting with -', setup: (c) => id(c, '-rf'), code: 2, message: /starts with "-"/ },
  { name: 'release id current', setup: (c) => id(c, 'current'), code: 2, message: /^error: invalid release id "current": "current" names a part of the deploy root's layout/ },
  { name: 'release id Shared', setup: (c) => id(c, 'Shared'), code: 2, message: /"Shared" names a part of the deploy root's layout/ },
  { name: 'release id starting with .', setup: (c) => id(c, '.hidden'), code: 2, message: /starts with "\."/ },
  { name: 'empty release id', setup: (c) => id(c, ''), code: 2, message: /is empty/ },
  { name: 'release id with a backslash', setup: (c) => id(c, 'a\\b'), code: 2, message: /slash/ },
  // Ids that columns, shells and eyes misread: only letters, digits, dots, dashes and underscores name a new release.
  ...[' ', 'a b', '*', '$(id)', 'x\u202Egnp.exe', 'a\u009bb'].map((bad): Case => ({
    name: `release id ${JSON.stringify(bad)}`,
    setup: (c) => id(c, bad),
    code: 2,
    message: /a new release id holds only letters, digits, dots, dashes and underscores/,
  })),
  { name: 'release id with NUL (library)', setup: (c) => lib(() => deploy(c.src, c.root, { releaseId: 'a\0b' })), code: 2, message: /INVALID_RELEASE_ID.*NUL/ },
  { name: 'source path with NUL (library)', setup: (c) => lib(() => deploy(`${c.src}\0x`, c.root)), code: 2, message: /INVALID_SOURCE.*NUL/ },
  { name: 'root path with NUL (library)', setup: (c) => lib(() => deploy(c.src, `${c.root}\0x`)), code: 2, message: /INVALID_ROOT.*NUL/ },
  // waitMs from a JavaScript caller: NaN and 'abc' waited for ever, a negative failed at once with LOCKED.
  ...([Number.NaN, 'abc', -1, Number.POSITIVE_INFINITY] as const).map((bad): Case => ({
    name: `waitMs ${String(bad)} (library)`,
    setup: (c) => lib(() => deploy(c.src, c.root, { waitMs: bad as number })),
    code: 2,
    message: new RegExp(`^error: USAGE waitMs must be a finite number of milliseconds >= 0, got ${typeof bad === 'number' ? String(bad) : 'string'}$`),
  })),
  { name: 'rollback waitMs NaN (library)', setup: (c) => lib(() => rollback(c.root, { waitMs: Number.NaN })), code: 2, message: /^error: USAGE waitMs must be a finite number/ },
  { name: 'prune waitMs -1 (library)', setup: (c) => lib(() => prune(c.root, { keep: 1, waitMs: -1 })), code: 2, message: /^error: USAGE waitMs must be a finite number/ },
  // Wrong types from a JavaScript caller: one USAGE line naming the type, never a raw TypeError.
  ...libraryTypes(),
  // Usage.
  { name: 'unknown option', setup: (c) => deployTo(c, '--bogus'), code: 2, message: /unknown option '--bogus'/ },
  { name: 'too many arguments', setup: (c) => deployTo(c, 'extra'), code: 2, message: /too many arguments/ },
  { name: 'missing arguments', setup: () => ['deploy'], code: 2, message: /missing required argument 'source'/ },
  { name: '--wait not a number', setup: (c) => deployTo(c, '--wait', 'soon'), code: 2, message: /expected a number of seconds/ },
  { name: '--wait negative', setup: (c) => deployTo(c, '--wait=-1'), code: 2, message: /expected a number of seconds/ },
  { name: 'help for an unknown command', setup: () => ['help', 'bogus'], code: 2, message: /^error: unknown command 'bogus'$/, hint: /^hint: see: atomic-deploy --help$/ },
  { name: 'help for a mistyped command', setup: () => ['help', 'rollbak'], code: 2, message: /^error: unknown command 'rollbak'; did you mean 'rollback'\?$/, hint: /^hint: see: atomic-deploy --help$/ },
  { name: 'source with a leading - and no --', setup: (c) => ['deploy', '-src', c.root], code: 2, message: /unknown option '-src'/ },
  // Artifact checks given for a directory source: refused, never skipped.
  ...directoryChecks(),
  // Numbers: decimal digits only, each within its documented range.
  ...numbers(),
  // Fleet flags without a fleet: refused, never ignored.
  ...fleetOnly(),
  // init: the config path must be a new file or a regular file to overwrite.
  { name: 'init --config naming a directory, --force', setup: (c) => (fs.mkdirSync(path.join(c.dir, 'conf')), ['init', '--config', path.join(c.dir, 'conf'), '--force']), code: 2, message: /^error: .*\/conf is a directory, not a config file; nothing was written$/, hint: /^hint: name a file in it: --config .*\/conf\/atomic-deploy\.config\.yaml$/ },
  { name: 'init --config naming a directory', setup: (c) => (fs.mkdirSync(path.join(c.dir, 'conf')), ['init', '--config', path.join(c.dir, 'conf')]), code: 2, message: /^error: .*\/conf is a directory, not a config file; nothing was written$/ },
  {
    name: 'init --force on a config path that is a symbolic link',
    setup: (c) => (fs.writeFileSync(path.join(c.dir, 'real.yaml'), 'keep: 1\n'), fs.symlinkSync('real.yaml', path.join(c.dir, 'link.yaml')), ['init', '--config', path.join(c.dir, 'link.yaml'), '--force']),
    code: 2,
    message: /^error: .*\/link\.yaml is a symbolic link \(to real\.yaml\); nothing was written$/,
    hint: /^hint: give the file it points to as --config, or remove the link$/,
  },
  {
    name: 'init --force on a dangling symbolic link',
    setup: (c) => (fs.symlinkSync(path.join(c.dir, 'elsewhere.yaml'), path.join(c.dir, 'link.yaml')), ['init', '--config', path.join(c.dir, 'link.yaml'), '--force']),
    code: 2,
    message: /^error: .*\/link\.yaml is a symbolic link \(to .*elsewhere\.yaml\); nothing was written$/,
  },
  { name: 'init --config /dev/null --force', setup: () => ['init', '--config', '/dev/null', '--force'], code: 2, message: /^error: \/dev\/null is not a regular file; nothing was written$/, hint: /^hint: name a new file, or a config file to overwrite with --force$/ },
  { name: 'init --config naming a FIFO, --force', setup: (c) => (mkfifo(path.join(c.dir, 'pipe.yaml')), ['init', '--config', path.join(c.dir, 'pipe.yaml'), '--force']), code: 2, message: /pipe\.yaml is not a regular file; nothing was written$/ },
  { name: 'init --config in a directory that does not exist', setup: (c) => ['init', '--config', path.join(c.dir, 'nope', 'a.yaml')], code: 2, message: /^error: cannot write .*\/nope\/a\.yaml: .*nope does not exist; nothing was written$/ },
  // Locks.
  {
    name: 'lock held by a live process of another user',
    setup: async (c) => {
      const { pid, start } = await sleeperAs('nobody');
      writeOwnerLock(c.root, { pid, user: 'nobody', startTime: start });
      return deployTo(c);
    },
    code: 3,
    message: /is locked by pid \d+ of nobody@/,
    underLock: true,
  },
  {
    name: 'garbage in the lock owner file (fresh)',
    setup: (c) => (fs.mkdirSync(path.join(c.root, '.deploy.lock')), fs.writeFileSync(path.join(c.root, '.deploy.lock', 'owner.json'), '\x00garbage{'), deployTo(c)),
    code: 3,
    message: /locked by an unknown process/,
    underLock: true,
  },
  { name: 'unlock of a live lock without --force', setup: async (c) => (writeOwnerLock(c.root, await liveOwner()), ['unlock', c.root]), code: 3, message: /the lock is held by pid/ },
  // Rollback, releases, status.
  { name: 'rollback to an unknown release', setup: (c) => ['rollback', c.root, '--to', 'nope'], code: 2, message: /release nope does not exist/ },
  { name: 'rollback to an invalid id', setup: (c) => ['rollback', c.root, '--to', '../x'], code: 2, message: /invalid release id/ },
  {
    name: 'rollback with no previous release',
    setup: (c) => (fs.rmSync(path.join(c.root, 'releases', c.previous), { recursive: true }), ['rollback', c.root]),
    code: 2,
    message: /no earlier good release/,
  },
  { name: 'rollback of a missing root', setup: (c) => ['rollback', path.join(c.dir, 'nope')], code: 2, message: /does not exist/ },
  { name: 'rollback when current is a directory', setup: (c) => (fs.rmSync(path.join(c.root, 'current')), fs.mkdirSync(path.join(c.root, 'current')), ['rollback', c.root]), code: 2, message: /real directory/ },
  { name: 'releases of a missing root', setup: (c) => ['releases', path.join(c.dir, 'nope')], code: 2, message: /does not exist/ },
  { name: 'status of a root that is a file', setup: (c) => ['status', path.join(c.src, 'index.html')], code: 2, message: /is not a directory/ },
];

/** --sha256, --signature and --allowed-signers check an archive's bytes; a directory has none to check. */
function directoryChecks(): Case[] {
  const message = (flags: string, verb: string): RegExp => new RegExp(`^error: ${flags} ${verb} an archive or URL artifact, but the source .*/src is a directory; nothing was deployed$`);
  const hint = /^hint: deploy the archive or URL itself with these flags, or leave them out to deploy the directory$/;
  const sig = (c: Ctx): string[] => ['--signature', path.join(c.dir, 'build.sig'), '--allowed-signers', path.join(c.dir, 'allowed_signers')];
  const ZERO_SHA = '0'.repeat(64);
  return [
    { name: '--sha256 with a directory source', setup: (c) => deployTo(c, '--sha256', ZERO_SHA), code: 2, message: message('--sha256', 'checks'), hint },
    { name: '--sha256 zz with a directory source', setup: (c) => deployTo(c, '--sha256', 'zz'), code: 2, message: message('--sha256', 'checks'), hint },
    { name: '--sha256 with a directory source, dry run', setup: (c) => deployTo(c, '--sha256', ZERO_SHA, '-n'), code: 2, message: message('--sha256', 'checks'), hint },
    {
      // Not a command: sh would say 127 on every try for the whole timeout, then roll back.
      name: '--health-check given a URL',
      setup: (c) => deployTo(c, '--health-check', 'http://127.0.0.1:8080/health'),
      code: 2,
      message: /^error: the health-check command "http:\/\/127\.0\.0\.1:8080\/health" is a URL, which sh cannot run$/,
      hint: /^hint: to check a URL give it as --health-url \(config: healthCheck\.url\), e\.g\. --health-url http:\/\/127\.0\.0\.1:8080\/health$/,
    },
    {
      name: '--health-check given a mistyped URL, fleet',
      setup: (c) => deployTo(c, '--health-check', 'htp://localhost/', '--host', 'h1'),
      code: 2,
      message: /^error: the health-check command "htp:\/\/localhost\/" is a URL, which sh cannot run$/,
      hint: /--health-url/,
    },
    {
      name: '--strip-components with a directory source',
      setup: (c) => deployTo(c, '--strip-components', '1'),
      code: 2,
      message: /^error: --strip-components applies to an archive or URL artifact, but the source .*\/src is a directory; nothing was deployed$/,
      hint: /^hint: deploy the directory the release should hold/,
    },
    {
      name: '--strip-components with a directory source, fleet',
      setup: (c) => deployTo(c, '--strip-components', '2', '--host', 'h1'),
      code: 2,
      message: /^error: --strip-components applies to an archive or URL artifact/,
      hint: /^hint: deploy the directory the release should hold/,
    },
    {
      name: '--max-files and --max-bytes with a directory source',
      setup: (c) => deployTo(c, '--max-files', '10', '--max-bytes', '1M'),
      code: 2,
      message: /^error: --max-files and --max-bytes apply to an archive or URL artifact, but the source .*\/src is a directory; nothing was deployed$/,
      hint: /^hint: leave them out to deploy the directory, or deploy the archive or URL itself$/,
    },
    // On the command line; from the environment (set for a whole CI job) a directory deploy leaves it alone (env-flags.test.ts).
    { name: '--download-retries with a directory source, fleet', setup: (c) => deployTo(c, '--host', 'h1', '--download-retries', '2'), code: 2, message: /^error: --download-retries applies to an archive or URL artifact/, hint: /^hint: leave it out/ },
    { name: '--keep-setuid with a directory source, dry run', setup: (c) => deployTo(c, '--keep-setuid', '-n'), code: 2, message: /^error: --keep-setuid applies to an archive or URL artifact/, hint: /^hint: leave it out/ },
    { name: '--signature and --allowed-signers with a directory source', setup: (c) => deployTo(c, ...sig(c)), code: 2, message: message('--signature and --allowed-signers', 'check'), hint },
    { name: '--allowed-signers alone with a directory source, dry run', setup: (c) => deployTo(c, '--allowed-signers', path.join(c.dir, 'allowed_signers'), '--dry-run'), code: 2, message: message('--allowed-signers', 'checks'), hint },
    { name: 'all three with a directory source', setup: (c) => deployTo(c, '--sha256', ZERO_SHA, ...sig(c)), code: 2, message: message('--sha256, --signature and --allowed-signers', 'check'), hint },
    { name: 'ATOMIC_DEPLOY_SHA256 with a directory source', setup: (c) => deployTo(c), env: { ATOMIC_DEPLOY_SHA256: ZERO_SHA }, code: 2, message: message('--sha256', 'checks'), hint },
    {
      name: 'ATOMIC_DEPLOY_SIGNATURE and ATOMIC_DEPLOY_ALLOWED_SIGNERS with a directory source, dry run',
      setup: (c) => deployTo(c, '-n'),
      env: { ATOMIC_DEPLOY_SIGNATURE: '/nonexistent/build.sig', ATOMIC_DEPLOY_ALLOWED_SIGNERS: '/nonexistent/allowed_signers' },
      code: 2,
      message: message('--signature and --allowed-signers', 'check'),
      hint,
    },
    // Refused before any host is reached (the name does not resolve: reaching it would fail otherwise).
    { name: '--sha256 with a directory source to a fleet', setup: (c) => deployTo(c, '--host', 'web1.invalid', '--sha256', ZERO_SHA), code: 2, message: message('--sha256', 'checks'), hint },
    { name: '--sha256 with a directory source from the config file', setup: (c) => (fs.writeFileSync(path.join(c.dir, 'atomic-deploy.config.yaml'), `source: ./src\nroot: ./root\n`), ['deploy', '--sha256', ZERO_SHA]), code: 2, message: message('--sha256', 'checks'), hint },
  ];
}

/** Every integer flag takes decimal digits up to its maximum; every seconds flag at most the longest timer Node keeps. */
function numbers(): Case[] {
  const BIG = '99999999999999999999';
  const bad = (flag: string, value: string): RegExp => new RegExp(`^error: option '${flag}' argument '${value}' is invalid\\. `);
  const count = (flag: string, value: string, min: number, max: number): RegExp => new RegExp(`${bad(flag, value).source}expected a whole number from ${min} to ${max} in decimal digits$`);
  const tooLong = / at most 2147483 seconds \(about 24\.8 days, the longest timer Node keeps\)$/;
  const secondsCase = (args: (c: Ctx) => string[], name: string, message: RegExp): Case => ({ name, setup: args, code: 2, message });
  const config = (c: Ctx, text: string): string[] => (fs.writeFileSync(path.join(c.dir, 'atomic-deploy.config.yaml'), `source: ./src\nroot: ./root\n${text}`), ['deploy']);
  const hint = /^hint: see docs\/lifecycle\.md for every key/;
  return [
    ...(
      [
        ['--keep <n>', '1e3', 0, 1000000],
        ['--keep <n>', BIG, 0, 1000000],
        ['--keep <n>', '1000001', 0, 1000000],
        ['--parallel <n>', '0x10', 1, 1000],
        ['--parallel <n>', '1e1', 1, 1000],
        ['--parallel <n>', BIG, 1, 1000],
        ['--max-files <n>', '0x10', 1, 1000000000],
        ['--max-files <n>', '1e3', 1, 1000000000],
        ['--strip-components <n>', '1e1', 0, 1024],
        ['--strip-components <n>', '0x1', 0, 1024],
        ['--download-retries <n>', '0x3', 0, 100],
        ['--download-retries <n>', '101', 0, 100],
      ] as const
    ).map(([flag, value, min, max]): Case => ({ name: `${flag} ${value}`, setup: (c) => deployTo(c, flag.split(' ')[0] as string, value), code: 2, message: count(flag, value, min, max) })),
    { name: 'prune --keep 0x10', setup: (c) => ['prune', c.root, '--keep', '0x10'], code: 2, message: count('--keep <n>', '0x10', 0, 1000000) },
    ...(['--wait <seconds>', '--reload-timeout <seconds>', '--stale-wait <seconds>', '--hook-timeout <seconds>', '--health-timeout <seconds>', '--download-timeout <seconds>', '--wave-pause <seconds>'] as const).map((flag) =>
      secondsCase((c) => deployTo(c, flag.split(' ')[0] as string, BIG), `${flag} ${BIG}`, new RegExp(`${bad(flag, BIG).source}${tooLong.source.slice(1)}`)),
    ),
    secondsCase((c) => deployTo(c, '--wait', '2147484'), '--wait 2147484', new RegExp(`${bad('--wait <seconds>', '2147484').source}${tooLong.source.slice(1)}`)),
    secondsCase((c) => deployTo(c, '--wait', '0x10'), '--wait 0x10', new RegExp(`${bad('--wait <seconds>', '0x10').source}expected a number of seconds \\(>= 0\\) in decimal digits, such as 30 or 2\\.5$`)),
    secondsCase((c) => deployTo(c, '--stale-wait', '1e3'), '--stale-wait 1e3', new RegExp(`${bad('--stale-wait <seconds>', '1e3').source}expected a number of seconds \\(>= 0\\) in decimal digits, such as 30 or 2\\.5$`)),
    secondsCase((c) => deployTo(c, '--reload-timeout', '1e3'), '--reload-timeout 1e3', new RegExp(`${bad('--reload-timeout <seconds>', '1e3').source}expected a number of seconds greater than 0 in decimal digits, such as 30 or 2\\.5$`)),
    secondsCase((c) => ['rollback', c.root, '--wait', BIG], `rollback --wait ${BIG}`, new RegExp(`${bad('--wait <seconds>', BIG).source}${tooLong.source.slice(1)}`)),
    secondsCase((c) => ['prune', c.root, '--wait', '1e3'], 'prune --wait 1e3', new RegExp(`${bad('--wait <seconds>', '1e3').source}expected a number of seconds \\(>= 0\\)`)),
    { name: `ATOMIC_DEPLOY_WAIT=${BIG}`, setup: (c) => deployTo(c), env: { ATOMIC_DEPLOY_WAIT: BIG }, code: 2, message: new RegExp(`^error: ATOMIC_DEPLOY_WAIT="${BIG}":${tooLong.source}`) },
    { name: 'ATOMIC_DEPLOY_PARALLEL=0x10', setup: (c) => deployTo(c), env: { ATOMIC_DEPLOY_PARALLEL: '0x10' }, code: 2, message: /^error: ATOMIC_DEPLOY_PARALLEL="0x10": expected a whole number from 1 to 1000 in decimal digits$/ },
    // The config file: YAML's .inf and a number past a double's range are Infinity, named as such.
    { name: 'config keep: .inf', setup: (c) => config(c, 'keep: .inf\n'), code: 2, message: /atomic-deploy\.config\.yaml: keep: got \.inf \(read as the number Infinity\), expected an integer from 0 to 1000000$/, hint },
    { name: 'config keep: 1000001', setup: (c) => config(c, 'keep: 1000001\n'), code: 2, message: /keep: got 1000001, expected an integer from 0 to 1000000$/, hint },
    { name: 'config wait: 1e400', setup: (c) => config(c, 'wait: 1e400\n'), code: 2, message: /atomic-deploy\.config\.yaml: wait: got 1e400 \(read as the number Infinity\), expected a number of seconds from 0 to 2147483 \(the longest timer Node keeps\)$/, hint },
    { name: 'config staleWait: 3000000', setup: (c) => config(c, 'staleWait: 3000000\n'), code: 2, message: /staleWait: got 3000000, expected a number of seconds from 0 to 2147483 \(the longest timer Node keeps\)$/, hint },
    { name: 'config reload.timeout: .inf', setup: (c) => config(c, 'reload:\n  timeout: .inf\n'), code: 2, message: /reload\.timeout: got \.inf \(read as the number Infinity\), expected a number of seconds greater than 0, at most 2147483 \(the longest timer Node keeps\)$/, hint },
    { name: 'config artifact.maxFiles: 1e12', setup: (c) => config(c, 'artifact:\n  maxFiles: 1e12\n'), code: 2, message: /artifact\.maxFiles: got 1e12 \(read as the number 1000000000000\), expected an integer from 1 to 1000000000$/, hint },
    { name: 'config artifact.downloadRetries: .nan', setup: (c) => config(c, 'artifact:\n  downloadRetries: .nan\n'), code: 2, message: /artifact\.downloadRetries: got \.nan \(read as the number NaN\), expected an integer from 0 to 100$/, hint },
  ];
}

/** A value of the wrong type, as a JavaScript caller passes it past the types. */
const wrong = <T>(value: unknown): T => value as T;

function libraryTypes(): Case[] {
  const usage = (text: string): RegExp => new RegExp(`^error: USAGE ${text.replace(/[[\]().?]/g, '\\$&')}$`);
  const cases: [string, (c: Ctx) => Promise<unknown>, string][] = [
    ['deploy(src, 42)', (c) => deploy(c.src, wrong(42)), 'the deploy root must be a string path, got number'],
    ['deploy(undefined, root)', (c) => deploy(wrong(undefined), c.root), 'the source must be a string path, got undefined'],
    ['deploy(src, root, null)', (c) => deploy(c.src, c.root, wrong(null)), 'the options must be an object, got null'],
    ['planDeploy(src, root, null)', (c) => planDeploy(c.src, c.root, wrong(null)), 'the options must be an object, got null'],
    ['deploy shared: 42', (c) => deploy(c.src, c.root, { shared: wrong(42) }), 'shared must be a list of strings (or one string), got number'],
    ['deploy sharedDirs: [\'storage\', 7]', (c) => deploy(c.src, c.root, { sharedDirs: wrong(['storage', 7]) }), 'sharedDirs[1] must be a string, got number'],
    ['deploy hooks: a string', (c) => deploy(c.src, c.root, { hooks: wrong('echo hi') }), 'hooks must be an object, got string'],
    ['deploy hooks.afterSwitch: {}', (c) => deploy(c.src, c.root, { hooks: { afterSwitch: wrong({}) } }), 'hooks.afterSwitch must be a list of strings (or one string), got object'],
    ['deploy releaseId: 12345', (c) => deploy(c.src, c.root, { releaseId: wrong(12345) }), 'a release id must be a string, got number'],
    ['rollback(42)', () => rollback(wrong(42)), 'the deploy root must be a string path, got number'],
    ['rollback(root, null)', (c) => rollback(c.root, wrong(null)), 'the options must be an object, got null'],
    ['rollback to: 3', (c) => rollback(c.root, { to: wrong(3) }), 'a release id must be a string, got number'],
    ['prune(root)', (c) => prune(c.root, wrong(undefined)), 'the options must be an object, got undefined'],
    ['listReleases(null)', () => listReleases(wrong(null)), 'the deploy root must be a string path, got null'],
    ['status(root, \'x\')', (c) => status(c.root, wrong('x')), 'the options must be an object, got string'],
    ['unlock(root, 1)', (c) => unlock(c.root, wrong(1)), 'the options must be an object, got number'],
    ['verify release: 1', (c) => verify(c.root, { release: wrong(1) }), 'a release id must be a string, got number'],
    // A truthy string would turn the switch on: `fsync: 'no'` meant off.
    ['deploy fsync: \'no\'', (c) => deploy(c.src, c.root, { fsync: wrong('no') }), 'fsync must be true or false, got "no"'],
    ['deploy dryRun: 1', (c) => deploy(c.src, c.root, { dryRun: wrong(1) }), 'dryRun must be true or false, got number'],
    ['prune force: \'yes\'', (c) => prune(c.root, { keep: 1, force: wrong('yes') }), 'force must be true or false, got "yes"'],
    ['status readOnly: 0', (c) => status(c.root, { readOnly: wrong(0) }), 'readOnly must be true or false, got number'],
    // Said as the type it is: `command: 42` was "it is empty", `url: 5` a TypeError with no code.
    ['deploy healthCheck.command: 42', (c) => deploy(c.src, c.root, { healthCheck: { command: wrong(42) } }), 'invalid health-check command: expected a string for sh to run, got number'],
    ['deploy healthCheck.command: [\'curl\', \'-f\']', (c) => deploy(c.src, c.root, { healthCheck: { command: wrong(['curl', '-f']) } }), 'invalid health-check command: expected a string for sh to run, got array'],
    ['deploy healthCheck.url: 5', (c) => deploy(c.src, c.root, { healthCheck: { url: wrong(5) } }), 'invalid health URL: expected a string, got number'],
    ['deploy artifact.sha256: 5', (c) => deploy(c.src, c.root, { artifact: { sha256: wrong(5) } }), 'artifact.sha256 must be a string, got number'],
    // A truthy 'no' would have kept setuid bits when run as root.
    ['deploy artifact.keepSetid: \'no\'', (c) => deploy(c.src, c.root, { artifact: { keepSetid: wrong('no') } }), 'artifact.keepSetid must be true or false, got "no"'],
    // Never looked at: the caller's Ctrl-C would not have stopped the deploy.
    ['deploy signal: {}', (c) => deploy(c.src, c.root, { signal: wrong({}) }), 'signal must be an AbortSignal, got object'],
    ['deploy secondSignal: \'x\'', (c) => deploy(c.src, c.root, { secondSignal: wrong('x') }), 'secondSignal must be an AbortSignal, got string'],
    ['rollback signal: \'x\'', (c) => rollback(c.root, { signal: wrong('x') }), 'signal must be an AbortSignal, got string'],
    // Past Node's longest timer the reload's timer fired at once, after the switch: "timed out after 3000000 s", exit 7.
    ['deploy reload.timeoutMs: 3e9', (c) => deploy(c.src, c.root, { reload: { units: ['app.service'], timeoutMs: 3e9 } }), 'invalid reload timeout: at most 2147483 seconds (about 24.8 days, the longest timer Node keeps)'],
    ['rollback reload.timeoutMs: \'60\'', (c) => rollback(c.root, { reload: { units: ['app.service'], timeoutMs: wrong('60') } }), 'invalid reload timeout: expected a number of seconds greater than 0'],
  ];
  return cases.map(([name, call, message]): Case => ({ name: `${name} (library)`, setup: (c) => lib(() => call(c)), code: 2, message: usage(message) }));
}

/** Flags that only mean something with --host (or hosts: in the config), given without. */
function fleetOnly(): Case[] {
  const hint = /^hint: add --host \[user@\]host\[:port\] \(repeatable\), or hosts: in the config$/;
  const only = (flags: string, verb = 'applies'): RegExp => new RegExp(`^error: ${flags} ${verb} only with --host$`);
  return [
    { name: 'deploy --on-failure without --host', setup: (c) => deployTo(c, '--on-failure', 'keep'), code: 2, message: only('--on-failure'), hint },
    { name: 'deploy --parallel without --host', setup: (c) => deployTo(c, '--parallel', '3'), code: 2, message: only('--parallel'), hint },
    { name: 'deploy --parallel without --host, dry run', setup: (c) => deployTo(c, '--parallel', '3', '-n'), code: 2, message: only('--parallel'), hint },
    { name: 'deploy --waves and --max-fail without --host', setup: (c) => deployTo(c, '--waves', '1', '--max-fail', '1'), code: 2, message: only('--waves and --max-fail', 'apply'), hint },
    { name: 'deploy --on-failure, --parallel and --wave-pause without --host', setup: (c) => deployTo(c, '--on-failure', 'rollback', '--parallel', '2', '--wave-pause', '1'), code: 2, message: only('--parallel, --on-failure and --wave-pause', 'apply'), hint },
    { name: 'ATOMIC_DEPLOY_PARALLEL without --host', setup: (c) => deployTo(c), env: { ATOMIC_DEPLOY_PARALLEL: '3' }, code: 2, message: only('--parallel'), hint },
    { name: 'rollback --parallel without --host', setup: (c) => ['rollback', c.root, '--parallel', '2'], code: 2, message: only('--parallel'), hint },
    { name: 'status --parallel without --host', setup: (c) => ['status', c.root, '--parallel', '2'], code: 2, message: only('--parallel'), hint },
    { name: 'prune --parallel without --host', setup: (c) => ['prune', c.root, '--keep', '1', '--parallel', '2'], code: 2, message: only('--parallel'), hint },
  ];
}

function relink(c: Ctx, target: string): void {
  fs.rmSync(path.join(c.root, 'current'));
  fs.symlinkSync(target, path.join(c.root, 'current'));
}

const LIB = '--library--';
const libCalls = new Map<string, () => Promise<unknown>>();
/** A library call instead of the CLI, for what argv cannot carry (NUL). */
function lib(call: () => Promise<unknown>): string[] {
  const key = `${LIB}${libCalls.size}`;
  libCalls.set(key, call);
  return [key];
}

const sleepers: number[] = [];
async function sleeperAs(user: string): Promise<{ pid: number; start: string }> {
  const child = spawn(asUser(user)[0] as string, [...asUser(user).slice(1), 'sleep', '300'], { stdio: 'ignore' });
  assert.ok(child.pid);
  for (let i = 0; i < 200 && !fs.readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').startsWith('sleep'); i++) await new Promise((r) => setTimeout(r, 10));
  sleepers.push(child.pid);
  return { pid: child.pid, start: startTicks(child.pid) };
}

async function liveOwner(): Promise<{ pid: number; startTime: string }> {
  const { pid, start } = await sleeperAs('nobody');
  return { pid, startTime: start };
}

async function runCase(c: Case, args: string[], cwd: string): Promise<CliResult> {
  const call = libCalls.get(args[0] ?? '');
  if (call) {
    try {
      await call();
    } catch (error) {
      // Anything but a DeployError is this case's failure (a raw TypeError), not the whole table's.
      if (!(error instanceof DeployError)) return { code: -1, signal: null, stdout: '', stderr: `library threw ${String(error)}\n` };
      return { code: error.exitCode, signal: null, stdout: '', stderr: `error: ${error.code} ${error.message}\n` };
    }
    return { code: 0, signal: null, stdout: '', stderr: '' };
  }
  // In the case's own directory: no config file there but the ones a case writes.
  return c.user ? runWrapped(args, { prefix: [...asUser(c.user), 'env', '-C', cwd] }) : runCli(args, { cwd, env: c.env });
}

async function fixture(base: string): Promise<Ctx & { manifest: ReturnType<typeof manifestOf> }> {
  const dir = path.join(base, 'fixture');
  fs.mkdirSync(dir);
  const src = makeSource(path.join(dir, 'src'), 'a', { files: 12, dirs: 3 });
  const other = makeSource(path.join(dir, 'src2'), 'b', { files: 12, dirs: 3 });
  const root = path.join(dir, 'root');
  for (const s of [other, src]) assert.equal((await runCli(['deploy', s, root, '--quiet'])).code, 0);
  const ids = fs.readdirSync(path.join(root, 'releases')).sort();
  return { dir, src, root, previous: ids[0] as string, current: ids[1] as string, manifest: manifestOf(src) };
}

/** Runs one case on a fresh copy of the fixture; returns what went wrong, if anything. */
async function checkCase(c: Case, dir: string, fx: Ctx): Promise<string | undefined> {
  execFileSync('cp', ['-a', fx.dir, dir]);
  const ctx: Ctx = { dir, src: path.join(dir, 'src'), root: path.join(dir, 'root'), current: fx.current, previous: fx.previous };
  if (c.user) execFileSync('chown', ['-R', `${c.user}:`, dir]);
  const args = await c.setup(ctx);
  const before = treeSnapshot(dir, { times: !c.underLock });
  const result = await runCase(c, args, dir);
  const after = treeSnapshot(dir, { times: !c.underLock });
  fs.chmodSync(path.join(ctx.src, 'd1'), 0o755);
  const lines = result.stderr.trimEnd().split('\n');
  const problems: string[] = [];
  if (result.code !== c.code) problems.push(`exit ${result.code}, expected ${c.code}`);
  if (lines.filter((l) => l.startsWith('error: ')).length !== 1) problems.push('not exactly one error line');
  if (!lines.every((l) => l.startsWith('error: ') || l.startsWith('hint: '))) problems.push('a line that is neither error: nor hint:');
  if (!c.message.test(lines[0] ?? '')) problems.push(`error line does not match ${String(c.message)}`);
  if (c.hint && !lines.some((l) => c.hint?.test(l))) problems.push(`no hint line matching ${String(c.hint)}`);
  if (/unexpected failure|\n\s+at /.test(result.stderr)) problems.push('a stack trace');
  const changed = after.filter((l, i) => before[i] !== l).concat(before.length !== after.length ? ['(entries added or removed)'] : []);
  if (changed.length > 0) problems.push(`changed on disk: ${changed.slice(0, 3).join(' | ')}`);
  return problems.length > 0 ? `${c.name}: ${problems.join('; ')}\n    stderr: ${JSON.stringify(result.stderr)}` : undefined;
}

void test(`${CASES.length} kinds of bad input: documented exit code, one error line, nothing changed on disk`, async (t) => {
  assert.ok(CASES.length >= 40);
  const base = tempDir(t);
  fs.chmodSync(base, 0o755);
  t.after(() => sleepers.forEach((pid) => process.kill(pid, 'SIGKILL')));
  const fx = await fixture(base);
  const failures: string[] = [];
  let next = 0;
  // Two at a time: each case has its own copy of the fixture.
  const worker = async (): Promise<void> => {
    while (next < CASES.length) {
      const n = next++;
      const problem = await checkCase(CASES[n] as Case, path.join(base, `case-${n}`), fx);
      if (problem) failures.push(problem);
    }
  };
  await Promise.all([worker(), worker()]);
  assert.deepEqual(failures, [], failures.join('\n'));
  t.diagnostic(`${CASES.length} cases, exit codes: ${[...new Set(CASES.map((c) => c.code))].join(', ')}`);
});

// As the config file reads them (and parseConfig returns them): one item or a list. A string used
// to fail with `.map is not a function`, or as a hook list of its characters ("it is empty").
void test('a lone string where the library takes a list (shared paths, hooks): a list of one, as in the config file', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'x\n' });
  const root = path.join(dir, 'root');
  const result = await deploy(src, root, { sharedFiles: wrong('.env'), sharedDirs: wrong('storage'), sharedCreate: true, hooks: { beforeSwitch: wrong('echo before > hooked') } });
  const release = path.join(root, 'releases', result.release);
  assert.equal(fs.readlinkSync(path.join(release, '.env')), '../../shared/.env');
  assert.equal(fs.readlinkSync(path.join(release, 'storage')), '../../shared/storage');
  assert.equal(fs.readFileSync(path.join(release, 'hooked'), 'utf8'), 'before\n');
  assert.deepEqual(result.shared, ['.env', 'storage']);
});

void test('hostile but valid: quotes, $(), newlines, a leading -, non-ASCII in both paths; links kept verbatim; a garbled journal; many files', async (t) => {
  const base = tempDir(t);
  const weird = path.join(base, "-we'ird \"$(touch PWNED)\" `id`\nline ü ✓");
  fs.mkdirSync(weird);
  const src = makeSource(path.join(weird, '-src $(x)'), 'weird', { files: 10, dirs: 2 });
  fs.symlinkSync('../../../../etc/shadow', path.join(src, 'escape-link'));
  const root = path.join(weird, '-root\n$(touch PWNED)');
  const first = await runCli(['deploy', '--json', '--', src, root]);
  assert.equal(first.code, 0, first.stderr);
  const live = path.join(root, 'current');
  assert.ok(sameManifest(manifestOf(`${live}/`), manifestOf(src)), 'the release differs from the source');
  // Links are copied as links, their targets never followed or copied.
  assert.equal(fs.readlinkSync(path.join(live, 'passwd-link')), '/etc/passwd');
  assert.equal(fs.readlinkSync(path.join(live, 'escape-link')), '../../../../etc/shadow');
  assert.ok(fs.lstatSync(path.join(live, 'passwd-link')).isSymbolicLink());
  assert.equal(execFileSync('find', [base, '-name', 'PWNED'], { encoding: 'utf8' }), '', 'a shell ran a path');

  // A journal full of garbage is discarded; no release is removed because of it.
  fs.writeFileSync(path.join(root, '.atomic-deploy', 'journal.json'), '\x00{{{ not json');
  const releasesBefore = fs.readdirSync(path.join(root, 'releases'));
  const second = await runCli(['deploy', '--', src, root]);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stdout, /discarded an unreadable journal/);
  for (const id of releasesBefore) assert.ok(fs.existsSync(path.join(root, 'releases', id)));
  assert.ok(!fs.existsSync(path.join(root, '.atomic-deploy', 'journal.json')));

  // A huge number of files.
  const many = path.join(base, 'many');
  for (let d = 0; d < 100; d++) {
    fs.mkdirSync(path.join(many, `d${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) fs.writeFileSync(path.join(many, `d${d}`, `f${f}`), `${d}/${f}\n`);
  }
  const t0 = performance.now();
  const big = await runCli(['deploy', many, path.join(base, 'many-root'), '--json'], { timeoutMs: 300_000 });
  assert.equal(big.code, 0, big.stderr);
  assert.ok(sameManifest(manifestOf(path.join(base, 'many-root', 'current') + '/'), manifestOf(many)));
  t.diagnostic(`10,000 files deployed in ${Math.round(performance.now() - t0)} ms`);
});

/** A root owned by root, readable by others, holding a release of each id, in a temp dir others may enter. */
async function rootOwnedRoot(t: { after(fn: () => void): void }, ids: string[]): Promise<{ dir: string; root: string }> {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  fs.writeFileSync(path.join(src, 'index.html'), 'hi\n');
  const root = path.join(dir, 'root');
  for (const id of ids) assert.equal((await runWrapped(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet'])).code, 0);
  return { dir, root };
}

void test('a user who may not read releases/ or the state directory: every command says permission denied with a hint, exit 1, no stack trace, nothing changed', async (t) => {
  const { dir, root } = await rootOwnedRoot(t, ['r1', 'r2']);
  for (const shut of ['releases', '.atomic-deploy']) {
    fs.chmodSync(path.join(root, shut), 0o700);
    const before = treeSnapshot(dir, { times: true });
    for (const args of [['status', root], ['releases', root], ['verify', root], ['rollback', root, '--dry-run'], ['prune', root, '--dry-run']]) {
      const label = `${shut} 0700, ${args.join(' ')}`;
      const r = await runWrapped(args, { prefix: asUser('nobody') });
      assert.equal(r.code, 1, `${label}: ${r.stderr}`);
      assert.match(r.stderr, /^error: permission denied while [^\n]*EACCES/, label);
      assert.match(r.stderr, /^hint: run as the user that owns the deploy root$/m, label);
      assert.doesNotMatch(r.stderr, /unexpected failure|this is a bug|\n\s+at /, label);
      const j = await runWrapped([...args, '--json'], { prefix: asUser('nobody') });
      assert.equal(j.code, 1, label);
      assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'IO', label);
    }
    assert.deepEqual(treeSnapshot(dir, { times: true }), before, shut);
    fs.chmodSync(path.join(root, shut), 0o755);
  }
});

void test('a user who may not write the root: status reports what a crash left (as --read-only does) and unlock --force says permission denied, exit 1, no stack trace', async (t) => {
  const { dir, root } = await rootOwnedRoot(t, ['b1']);
  // What a deploy killed with -9 leaves: its lock (a dead owner) and its journal.
  writeOwnerLock(root, { pid: await deadPid() });
  fs.writeFileSync(path.join(root, '.atomic-deploy', 'journal.json'), JSON.stringify({ v: 1, op: 'deploy', token: 't', pid: 1, startedAt: new Date().toISOString(), release: 'b2', previous: 'b1', phase: 'copying' }));
  const before = treeSnapshot(dir, { times: true });
  const status = await runWrapped(['status', root], { prefix: asUser('nobody') });
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, /lock: +stale/);
  assert.match(status.stdout, /leftover: journal of an interrupted deploy of release b2/);
  for (const args of [['unlock', root], ['unlock', root, '--force']]) {
    const r = await runWrapped(args, { prefix: asUser('nobody') });
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^error: permission denied while removing the lock of .*root: EACCES/m);
    assert.match(r.stderr, /^hint: run as the user that owns the deploy root$/m);
    assert.doesNotMatch(r.stderr, /unexpected failure|\n\s+at /);
  }
  assert.deepEqual(treeSnapshot(dir, { times: true }), before);
});

// A build directory this user may not read: the bare "cannot read <dir>: EACCES" had no hint,
// where an unreadable file inside the build got one.
void test('a build directory the deploying user may not read: exit 2 with a hint, nothing written', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = path.join(dir, 'secret', 'build');
  fs.mkdirSync(src, { recursive: true });
  fs.writeFileSync(path.join(src, 'index.html'), 'x\n');
  fs.chmodSync(path.join(dir, 'secret'), 0o700);
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  fs.chownSync(root, 65534, 65534);
  const r = await runWrapped(['deploy', src, root], { prefix: asUser('nobody') });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /^error: cannot read \S+build: EACCES$/m);
  assert.match(r.stderr, /^hint: this user may not read it: deploy as a user who can, or make it readable/m);
  assert.deepEqual(fs.readdirSync(root), []);
});

// A first deploy into a folder another user owns: "run as the user that owns the deploy root"
// named a root that did not exist yet.
void test('a new root in a folder this user may not write: exit 1, the hint names the folder, its owner and how to make the root, nothing made', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = writeTree(path.join(dir, 'build'), { 'index.html': 'x\n' });
  fs.chmodSync(src, 0o755);
  fs.chmodSync(path.join(src, 'index.html'), 0o644);
  const parent = path.join(dir, 'www');
  fs.mkdirSync(parent, { mode: 0o755 });
  const root = path.join(parent, 'app');
  const before = treeSnapshot(dir, { times: true });
  const r = await runWrapped(['deploy', src, root], { prefix: asUser('nobody') });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^error: permission denied while creating the layout in \S+\/www\/app: /m);
  assert.match(r.stderr, new RegExp(`^hint: ${parent} is root's, and nobody may not create app in it: make the root as root and give it to nobody \\(install -d -o nobody ${root}\\), or deploy into a folder nobody may write$`, 'm'));
  assert.deepEqual(treeSnapshot(dir, { times: true }), before);
  // Made as the hint says, the same deploy goes live.
  execFileSync('install', ['-d', '-o', 'nobody', root]);
  const after = await runWrapped(['deploy', src, root, '--no-fsync'], { prefix: asUser('nobody') });
  assert.equal(after.code, 0, after.stderr);
});

// A first deploy run as root in a folder that is another user's made the root's state root's; that
// user's deploy was then refused with "run as the user that owns the deploy root": themselves.
void test('a root that is this user\'s with state root made: the hint names whose path refused and how to give it back; root is warned before it makes that state', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  execFileSync('chmod', ['-R', 'a+rX', src]);
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  execFileSync('chown', ['nobody:', root]);
  const asRoot = await runWrapped(['deploy', src, root, '--release-id', 'byroot', '--no-fsync']);
  assert.equal(asRoot.code, 0, asRoot.stderr);
  assert.match(asRoot.stderr, new RegExp(`^warning: deploying as root into ${root}, which is nobody's: what this deploy makes there will be root's, and nobody's own deploys refused \\(deploy as nobody, or chown -R nobody ${root} after\\)$`, 'm'));
  const before = treeSnapshot(dir, { times: true });
  for (const args of [['deploy', src, root, '--no-fsync'], ['prune', root, '--keep', '1']]) {
    const r = await runWrapped(args, { prefix: asUser('nobody') });
    assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^hint: ${root} is nobody's, but ${root}/\\S+ in it is root's \\(made by a command run as root\\?\\): run as root, or give the root's state back to this user \\(chown -R nobody ${root}\\)$`, 'm'), args[0]);
  }
  assert.deepEqual(treeSnapshot(dir, { times: true }), before);
  // The hinted command, then the user's deploy goes through.
  execFileSync('chown', ['-R', 'nobody', root]);
  const after = await runWrapped(['deploy', src, root, '--no-fsync'], { prefix: asUser('nobody') });
  assert.equal(after.code, 0, after.stderr);
});

// A build this user cannot read was refused as the root's problem (INVALID_ROOT, a bare EACCES, no
// hint); a root behind a directory they may not search, with a bare EACCES and no hint.
void test('a build this user cannot read, or a root behind a directory they cannot search: exit 2, permission denied named, the right code and a hint, nothing written', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o777);
  const src = writeTree(path.join(dir, 'b2'), { f: 'x\n' });
  fs.chmodSync(src, 0o000);
  fs.mkdirSync(path.join(dir, 'locked', 'rr'), { recursive: true });
  fs.chmodSync(path.join(dir, 'locked'), 0o700);
  const before = treeSnapshot(dir, { times: true });
  const build = await runWrapped(['deploy', src, path.join(dir, 'rn'), '--json'], { prefix: asUser('nobody') });
  assert.equal(build.code, 2, build.stderr);
  const e = (JSON.parse(build.stdout) as { error: { code: string; message: string; hint?: string } }).error;
  assert.deepEqual([e.code, e.message, e.hint], ['INVALID_SOURCE', `cannot read ${src}: permission denied`, 'make the build readable by the user that deploys (for example: chmod -R u+rX <source>)']);
  const root = await runWrapped(['status', path.join(dir, 'locked', 'rr')], { prefix: asUser('nobody') });
  assert.equal(root.code, 2, root.stderr);
  assert.match(root.stderr, /^error: cannot use \S+\/locked\/rr: permission denied \(a directory on the way is not searchable by this user\)\nhint: run as the user that owns the deploy root, or make the directories above it searchable \(chmod a\+x\)$/m);
  assert.deepEqual(treeSnapshot(dir, { times: true }), before);
  fs.chmodSync(src, 0o755);
  fs.chmodSync(path.join(dir, 'locked'), 0o755);
});

// Hints that only worked from inside the root, or invited a root at a mistyped path.
void test('a mistyped root is "check the path" first; a current that is a file is moved aside by a command that works from anywhere', async (t) => {
  const dir = tempDir(t);
  const typo = path.join(dir, 'rootX');
  const r = await runCli(['status', typo]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, new RegExp(`^hint: check the path; to make it a deploy root, deploy to it: atomic-deploy deploy <source> ${typo}$`, 'm'));
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  fs.writeFileSync(path.join(root, 'current'), 'x\n');
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  const d = await runCli(['deploy', src, root], { cwd: '/' });
  assert.equal(d.code, 2, d.stderr);
  const hint = /^hint: a regular file is not a release: move it aside \(mv (\S+) (\S+)\) and deploy again$/m.exec(d.stderr);
  assert.ok(hint, d.stderr);
  // The hinted command, from elsewhere, then the deploy goes through.
  execFileSync('mv', [hint[1] as string, hint[2] as string], { cwd: '/' });
  assert.equal((await runCli(['deploy', src, root, '--adopt'])).code, 0);
});

// The loser of two deploys racing with one --release-id was hinted `rollback --to` that id, which is
// live already: that command changes nothing (it then failed with "already current").
void test('a release id that is taken: the live one is said to be live (no rollback hint); an older one hints the rollback that reaches it', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  const root = path.join(dir, 'root');
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'same1', '--no-fsync'])).code, 0);
  const live = await runCli(['deploy', src, root, '--release-id', 'same1', '--no-fsync']);
  assert.equal(live.code, 2, live.stderr);
  assert.match(live.stderr, /^error: release same1 already exists in \S+\/releases, and is live\nhint: release ids are never reused: pick a new id to deploy this build again$/m);
  assert.equal((await runCli(['deploy', src, root, '--release-id', 'same2', '--no-fsync'])).code, 0);
  const older = await runCli(['deploy', src, root, '--release-id', 'same1', '--no-fsync']);
  assert.equal(older.code, 2, older.stderr);
  assert.match(older.stderr, new RegExp(`^hint: release ids are never reused: pick a new id, or switch to it with: atomic-deploy rollback ${root} --to same1$`, 'm'));
  assert.equal((await runCli(['rollback', root, '--to', 'same1'])).code, 0, 'the hinted command works');
});

// current through a link between releases (`releases/stable -> r1`) was refused with "move that tree
// into releases/<id>/", where it already is; `rollback --to` now points current at a release itself.
void test('current through a link between releases: rollback --to repairs it in one rename, to that release or another (which rolls the aliased one back)', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  const root = path.join(dir, 'root');
  for (const id of ['r1', 'r2']) assert.equal((await runCli(['deploy', src, root, '--release-id', id, '--no-fsync'])).code, 0);
  const alias = (): void => {
    fs.rmSync(path.join(root, 'releases', 'stable'), { force: true });
    fs.symlinkSync('r1', path.join(root, 'releases', 'stable'));
    fs.symlinkSync('releases/stable', path.join(root, 'current.new'));
    fs.renameSync(path.join(root, 'current.new'), path.join(root, 'current'));
  };
  alias();
  const same = await runCli(['rollback', root, '--to', 'r1', '--json']);
  assert.equal(same.code, 0, same.stderr);
  assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/r1');
  alias();
  const other = await runCli(['rollback', root, '--to', 'r2', '--json']);
  assert.equal(other.code, 0, other.stderr);
  assert.equal((JSON.parse(other.stdout) as { previous?: string }).previous, 'r1');
  assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/r2');
  const rec = JSON.parse(fs.readFileSync(path.join(root, '.atomic-deploy', 'releases', 'r1.json'), 'utf8')) as { status: string };
  assert.equal(rec.status, 'complete', 'going forward from r1 to r2 leaves r1 good');
  assert.ok(fs.existsSync(path.join(root, 'releases', 'stable')), 'the link made by hand stays');
});

// A root that is this user's own but whose modes refuse them (`chmod -R 644` on it, `chmod 000`
// on its state directory): the hint for the error looked up the failing path, and that lookup
// threw again (a Node stack, no JSON under --json); rollback said "run as the user that owns the
// deploy root" to that user.
void test('a root this user owns whose modes refuse them: permission denied naming the directory and its mode, exit 1, JSON, no stack trace, nothing changed', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  execFileSync('chmod', ['-R', 'a+rX', src]);
  const home = path.join(dir, 'home');
  fs.mkdirSync(home);
  execFileSync('chown', ['nobody:', home]);
  const root = path.join(home, 'root');
  for (const id of ['o1', 'o2']) {
    const r = await runWrapped(['deploy', src, root, '--release-id', id, '--no-fsync', '--quiet'], { prefix: asUser('nobody') });
    assert.equal(r.code, 0, r.stderr);
  }
  const commands = [['status', root], ['releases', root], ['verify', root], ['rollback', root], ['prune', root, '--keep', '1'], ['deploy', src, root, '--no-fsync']];
  for (const [shut, mode, shown] of [[root, 0o644, '0644'], [path.join(root, '.atomic-deploy'), 0o000, '0000']] as const) {
    fs.chmodSync(shut, mode);
    const before = treeSnapshot(dir, { times: true });
    for (const args of commands) {
      const label = `${shut} ${shown}, ${args[0]}`;
      const r = await runWrapped(args, { prefix: asUser('nobody') });
      assert.equal(r.code, 1, `${label}: ${r.stderr}`);
      assert.match(r.stderr, /^error: permission denied while [^\n]*EACCES[^\n]*$/m, label);
      assert.match(r.stderr, new RegExp(`^hint: ${shut} is this user's own, but its mode is ${shown}, which refuses its owner: chmod u\\+rwx ${shut}$`, 'm'), label);
      assert.doesNotMatch(r.stderr, /unexpected failure|this is a bug|\n\s+at |run as the user that owns/, label);
      const j = await runWrapped([...args, '--json'], { prefix: asUser('nobody') });
      assert.equal(j.code, 1, label);
      assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'IO', label);
    }
    assert.deepEqual(treeSnapshot(dir, { times: true }), before, shown);
    fs.chmodSync(shut, 0o755);
  }
});

// A low open-file limit: the CLI's own modules could not be loaded (EMFILE), and the user was told
// "unexpected failure … this is a bug" with a stack.
void test('too few open files (ulimit -n): one line naming the limit, a hint to raise it, exit 1, JSON, nothing written', async (t) => {
  const dir = tempDir(t);
  const src = writeTree(path.join(dir, 'src'), Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`f${i}.txt`, `${i}\n`])));
  const root = path.join(dir, 'root');
  const lowest = { prefix: ['sh', '-c', 'ulimit -n 24 && exec "$@"', 'sh'] };
  const r = await runWrapped(['deploy', src, root], lowest);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^error: too many open files \(ulimit -n 24\) while [^\n]*EMFILE[^\n]*\nhint: raise the limit of open files: ulimit -n 1024 \(a deploy needs at least 32\)\n$/);
  const j = await runWrapped(['deploy', src, root, '--json'], lowest);
  assert.equal(j.code, 1, j.stderr);
  assert.equal((JSON.parse(j.stdout) as { error: { code: string } }).error.code, 'IO');
  assert.equal(fs.existsSync(root), false);
  // The limit the hint names is enough.
  const enough = await runWrapped(['deploy', src, root, '--quiet'], { prefix: ['sh', '-c', 'ulimit -n 32 && exec "$@"', 'sh'] });
  assert.equal(enough.code, 0, enough.stderr);
});

// A deploy as uid 0 that may not give files away: in a user namespace (unshare -r, a rootless
// container) the build's owners are not mapped (EINVAL, no hint); without CAP_CHOWN (EPERM) the
// hint spoke of immutable attributes and NFS root_squash.
void test('uid 0 without the privilege to give files their owners: refused naming what is missing, exit 1, the root unchanged', async (t) => {
  const dir = tempDir(t);
  fs.chmodSync(dir, 0o755);
  const src = writeTree(path.join(dir, 'src'), { 'index.html': 'hi\n' });
  execFileSync('chown', ['-R', 'nobody:', src]);
  const root = path.join(dir, 'root');
  assert.equal((await runWrapped(['deploy', src, root, '--quiet', '--release-id', 'ok'])).code, 0);
  const before = treeSnapshot(root);
  const cases: [string, string[], RegExp][] = [
    ['unshare -r', ['unshare', '-r'], /^hint: this process is uid 0 in a user namespace \(unshare -r, a rootless container\) that does not map the build's owners: deploy outside it, or from a build whose files are owned by ids it maps$/m],
    ['no CAP_CHOWN', ['setpriv', '--bounding-set', '-chown,-fowner', '--inh-caps', '-chown,-fowner', '--'], /^hint: this process is uid 0 without CAP_CHOWN \(a container or setpriv that dropped it\): deploy with CAP_CHOWN, or from a build owned by root$/m],
  ];
  for (const [name, prefix, hint] of cases) {
    const r = await runWrapped(['deploy', src, root], { prefix });
    assert.equal(r.code, 1, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /^error: cannot give the release's files their owners while deploying release \S+: E(INVAL|PERM)[^\n]*fchown/m, name);
    assert.match(r.stderr, hint, name);
    assert.deepEqual(treeSnapshot(root), before, name);
  }
});
