// --shared-file and --shared-dir on namespace hosts, as locally: --shared-create makes an empty
// file (mode 600) or directory in <root>/shared on each host and links it into the release; a
// file that exists keeps its content; a target whose type contradicts the flag, or an untyped
// --shared that nothing on the host or in the build types, is refused before any host switches
// and creates nothing on the host that refused. A target the deploy user may not make (shared/ or a
// folder under it another user's) is refused on every host before any host is locked, as locally.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, tempDir, writeTree } from '../harness/cli.ts';
import { loginAsNobody, rootNamer, type FleetHost } from '../harness/fleet.ts';
import { treeSnapshot } from '../harness/invariants.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

interface FleetJson {
  release?: string;
  error?: { code: string; message: string };
}

const { fleet, hostArgs, cli } = fleetSuite(2, { prefix: 'ash', timeoutMs: 180_000 });
const newRoot = rootNamer('h');

function site(t: { after(fn: () => void): void }, version: string): string {
  return writeTree(tempDir(t, 'fleet-shared-'), { 'index.html': `<h1>${version}</h1>\n`, 'storage/app.txt': 'kept\n' });
}

function currentOf(dir: string): string | null {
  try {
    return path.basename(fs.readlinkSync(path.join(dir, 'current')));
  } catch {
    return null;
  }
}

void describe('shared files and directories on two namespace hosts', () => {
  void test('--shared-create makes an empty file and a directory on every host and links them; content already there is kept', async (t) => {
    const { root, on } = newRoot('create');
    const first = await cli(['deploy', site(t, 'v1'), root, ...hostArgs, '--shared-file', 'config/.env', '--shared-dir', 'storage/logs', '--shared-create', '--json']);
    assert.equal(first.code, 0, first.stderr);
    const id = jsonOf<FleetJson>(first).release as string;
    for (const h of fleet.hosts) {
      const dir = on(h);
      const env1 = fs.lstatSync(path.join(dir, 'shared', 'config', '.env'));
      assert.ok(env1.isFile(), `${h.alias}: shared/config/.env is a file`);
      assert.equal(env1.size, 0);
      assert.equal(env1.mode & 0o777, 0o600, `${h.alias}: only its owner reads it`);
      assert.ok(fs.lstatSync(path.join(dir, 'shared', 'storage', 'logs')).isDirectory(), `${h.alias}: shared/storage/logs is a directory`);
      assert.equal(fs.readlinkSync(path.join(dir, 'releases', id, 'config', '.env')), '../../../shared/config/.env');
      assert.equal(fs.readlinkSync(path.join(dir, 'releases', id, 'storage', 'logs')), '../../../shared/storage/logs');
      assert.equal(fs.readFileSync(path.join(dir, 'current', 'storage', 'app.txt'), 'utf8'), 'kept\n');
      fs.writeFileSync(path.join(dir, 'shared', 'config', '.env'), `SECRET=${h.alias}\n`);
    }
    const second = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--shared-file', 'config/.env', '--shared-dir', 'storage/logs', '--shared-create', '--json']);
    assert.equal(second.code, 0, second.stderr);
    for (const h of fleet.hosts) assert.equal(fs.readFileSync(path.join(on(h), 'current', 'config', '.env'), 'utf8'), `SECRET=${h.alias}\n`, `${h.alias}: the file was not truncated`);
    // The host's own list of files to link (from its two manifests, shared links in them) is the plan made here.
    for (const row of jsonOf<{ hosts: { host: string; linked?: number; warnings?: string[] }[] }>(second).hosts) {
      assert.equal(row.linked, 1, `${row.host}: the unchanged storage/app.txt was linked`);
      assert.deepEqual(row.warnings, [], `${row.host}: no warning`);
    }
  });

  void test('an untyped --shared with --shared-create and nothing to tell file from directory is refused on every host, creating nothing', async (t) => {
    const { root, on } = newRoot('guess');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const live = fleet.hosts.map((h) => currentOf(on(h)));
    const refused = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--shared', '.env', '--shared-dir', 'uploads', '--shared-create', '--json']);
    assert.equal(refused.code, 2, refused.stderr);
    const j = jsonOf<FleetJson>(refused);
    assert.equal(j.error?.code, 'INVALID_SHARED_PATH');
    assert.match(j.error?.message ?? '', /cannot tell whether shared path "\.env" is a file or a directory/);
    for (const [i, h] of fleet.hosts.entries()) {
      assert.equal(currentOf(on(h)), live[i], `${h.alias}: current unchanged`);
      assert.ok(!fs.existsSync(path.join(on(h), 'shared', '.env')), `${h.alias}: no .env made`);
      assert.ok(!fs.existsSync(path.join(on(h), 'shared', 'uploads')), `${h.alias}: nothing made for the typed path either`);
    }
    // Control: the same paths, typed, deploy.
    const typed = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--shared-file', '.env', '--shared-dir', 'uploads', '--shared-create']);
    assert.equal(typed.code, 0, typed.stderr);
    for (const h of fleet.hosts) assert.ok(fs.statSync(path.join(on(h), 'shared', '.env')).isFile());
  });

  void test('a shared target whose type contradicts --shared-file is refused before any host switches', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('type');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    const live = fleet.hosts.map((h) => currentOf(on(h)));
    fs.mkdirSync(path.join(on(h1), 'shared'), { recursive: true });
    fs.writeFileSync(path.join(on(h1), 'shared', '.env'), 'A=1\n');
    fs.mkdirSync(path.join(on(h2), 'shared', '.env'), { recursive: true });
    const refused = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--shared-file', '.env', '--shared-create', '--json']);
    assert.notEqual(refused.code, 0, refused.stderr);
    assert.match(jsonOf<FleetJson>(refused).error?.message ?? '', new RegExp(`${h2.alias}: shared/\\.env is a directory, but it is declared a file`));
    assert.match(refused.stderr, /hint: to link the directory that is there, declare it with --shared-dir \.env/);
    for (const [i, h] of fleet.hosts.entries()) assert.equal(currentOf(on(h)), live[i], `${h.alias}: current unchanged`);
    assert.equal(fs.readFileSync(path.join(on(h1), 'shared', '.env'), 'utf8'), 'A=1\n');
  });

  void test('one host refuses a shared path: the others make no target for it (--shared-create), and the exit is 2 with nothing changed anywhere', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('cross');
    assert.equal((await cli(['deploy', site(t, 'v1'), root, ...hostArgs])).code, 0);
    // host2's .env is a directory and its cache a file: host1 has neither.
    fs.mkdirSync(path.join(on(h2), 'shared', '.env'), { recursive: true });
    fs.writeFileSync(path.join(on(h2), 'shared', 'cache'), 'not a directory\n');
    for (const [flag, name] of [['--shared-file', '.env'], ['--shared-dir', 'cache']] as const) {
      const before = fs.readdirSync(on(h1)).sort();
      const refused = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, flag, name, '--shared-create', '--json']);
      assert.equal(refused.code, 2, refused.stderr);
      assert.equal(jsonOf<FleetJson>(refused).error?.code, 'INVALID_SHARED_PATH');
      assert.match(jsonOf<FleetJson>(refused).error?.message ?? '', new RegExp(`${h2.alias}: shared/${name.replace('.', '\\.')} is`));
      assert.ok(!fs.existsSync(path.join(on(h1), 'shared', name)), `${h1.alias}: ${name} was made although the deploy was refused`);
      assert.deepEqual(fs.readdirSync(on(h1)).sort(), before, `${h1.alias}: its root changed`);
    }
    // A target missing without --shared-create: every host's missing ones named, before any host is prepared.
    const missing = await cli(['deploy', site(t, 'v2'), root, ...hostArgs, '--shared-file', 'config.php', '--json']);
    assert.equal(missing.code, 2, missing.stderr);
    assert.equal(jsonOf<FleetJson>(missing).error?.code, 'SHARED_MISSING');
    assert.match(missing.stderr, new RegExp(`${h1.alias}: shared target missing: ${root}/shared/config\\.php`));
    assert.match(missing.stderr, /^hint: create them .* or pass --shared-create/m);
  });
  // A deploy user (nobody) who may not write in a host's shared/ or in a folder under it (made by
  // another user, root here) asked for --shared-create: every host was locked and sent the release,
  // then the host's program failed to make the target (exit 1). Refused as the local deploy refuses
  // it (src/act/shared.ts sharedCreateProblem), before any host is locked: exit 2, in the local
  // words with the host's name, every host's root untouched (its times too: a lock taken and
  // released would change the root's).
  void test('--shared-create where the deploy user may not write in a host\'s shared/: exit 2 before any host is locked, nothing changed anywhere; a target there already is kept', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = newRoot('unwritable');
    const asNobody = [await loginAsNobody(t, fleet, h1), await loginAsNobody(t, fleet, h2)].flatMap((spec) => ['--host', spec]);
    // A build without storage/: the link may take that path.
    const build = (version: string): string => writeTree(tempDir(t, 'fleet-shared-'), { 'index.html': `<h1>${version}</h1>\n` });
    for (const h of fleet.hosts) {
      fs.mkdirSync(on(h));
      fs.chownSync(on(h), 65534, 65534);
    }
    const first = await cli(['deploy', build('v1'), root, ...asNobody, '--no-fsync']);
    assert.equal(first.code, 0, first.stderr);
    const live = fleet.hosts.map((h) => currentOf(on(h)));
    // host1: shared/ is nobody's, shared/config root's. host2: shared/ is root's, with storage/ in it.
    fs.mkdirSync(path.join(on(h1), 'shared', 'config'), { recursive: true });
    fs.chownSync(path.join(on(h1), 'shared'), 65534, 65534);
    fs.mkdirSync(path.join(on(h2), 'shared', 'storage'), { recursive: true });
    const times = (): string[][] => fleet.hosts.map((h) => treeSnapshot(on(h), { times: true }));
    const before = times();
    const cases: { args: string[]; errors: RegExp[]; hints: RegExp[] }[] = [
      // shared/ itself not writable on host2; host1 could make .env. storage/ is there on host2: kept, no refusal for it.
      {
        args: ['--shared-file', '.env', '--shared-dir', 'storage'],
        errors: [new RegExp(`nobody@${h2.alias}: cannot create shared/\\.env: ${root}/shared is root's, and this user \\(nobody\\) may not write in it`)],
        hints: [new RegExp(`^hint: make it as root \\(sudo -u root touch ${root}/shared/\\.env\\), then deploy again without --shared-create for it$`, 'm')],
      },
      // A folder under shared/ not writable (host1), and shared/ the nearest folder there on host2: both named.
      {
        args: ['--shared-dir', 'config/cache'],
        errors: [
          new RegExp(`nobody@${h1.alias}: cannot create shared/config/cache: ${root}/shared/config is root's, and this user \\(nobody\\) may not write in it`),
          new RegExp(`nobody@${h2.alias}: cannot create shared/config/cache: ${root}/shared is root's, and this user \\(nobody\\) may not write in it`),
        ],
        hints: [new RegExp(`^hint: make it as root \\(sudo -u root mkdir -p ${root}/shared/config/cache\\), then deploy again without --shared-create for it`, 'm')],
      },
    ];
    for (const c of cases) {
      for (const dry of [[], ['--dry-run']]) {
        const label = `${c.args.join(' ')} ${dry.join(' ')}`;
        const r = await cli(['deploy', build('v2'), root, ...asNobody, ...c.args, '--shared-create', '--no-fsync', ...dry]);
        assert.equal(r.code, 2, `${label}: ${r.stderr}`);
        for (const e of c.errors) assert.match(r.stderr, e, label);
        for (const h of c.hints) assert.match(r.stderr, h, label);
        assert.doesNotMatch(r.stderr + r.stdout, /locked|copying/, `${label}: a host was locked or sent the release`);
        assert.deepEqual(times(), before, `${label}: a host's root changed`);
      }
    }
    assert.deepEqual(fleet.hosts.map((h) => currentOf(on(h))), live);
    // Control: storage/, which host2 has (root's) and host1 may make, deploys.
    const kept = await cli(['deploy', build('v2'), root, ...asNobody, '--shared-dir', 'storage', '--shared-create', '--no-fsync', '--json']);
    assert.equal(kept.code, 0, kept.stderr);
    const id = jsonOf<FleetJson>(kept).release as string;
    for (const h of fleet.hosts) assert.equal(fs.readlinkSync(path.join(on(h), 'releases', id, 'storage')), '../../shared/storage', h.alias);
    assert.equal(fs.statSync(path.join(on(h1), 'shared', 'storage')).uid, 65534, 'host1: made by the deploy user');
    assert.equal(fs.statSync(path.join(on(h2), 'shared', 'storage')).uid, 0, 'host2: the one there is kept');
  });
});
