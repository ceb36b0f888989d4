// The fleet refuses what the local engine refuses, before any host is touched: the same
// validation module (plan/validate.ts) runs in both. A hook timeout of 0 used to reach a host as
// `timeout 0`, which means no limit.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, runCli, tempDir, writeTree } from '../harness/cli.ts';
import { treeSnapshot } from '../harness/invariants.ts';
import { createFleet, type Fleet, type FleetHost } from '../harness/fleet.ts';
import { DeployError } from '../../src/errors.ts';
import { repositoryWarning } from '../../src/plan/validate.ts';
import { fleetDeploy, type FleetDeployOptions } from '../../src/remote/ops.ts';

let fleet: Fleet;

void describe('fleet input validation against namespace hosts', () => {
  // Two hosts: a refusal on one must leave the other untouched too.
  before(async () => {
    fleet = await createFleet(2);
  });
  after(async () => {
    await fleet?.destroy();
  });

  const cases: [string, Partial<FleetDeployOptions>, RegExp][] = [
    ['hook timeout 0', { hooks: { beforeSwitch: ['sleep 1'], timeoutMs: 0 } }, /invalid hook timeout/],
    ['negative health timeout', { healthCheck: { command: 'true', timeoutMs: -5 } }, /invalid health timeout/],
    ['empty after-switch hook', { hooks: { afterSwitch: [''] } }, /invalid after-switch hook/],
    ['--keep -1', { keep: -1 }, /--keep must be an integer/],
    ['release id ..', { releaseId: '..' }, /invalid release id/],
    ['waitMs NaN', { waitMs: Number.NaN }, /^waitMs must be a finite number of milliseconds >= 0, got NaN$/],
    // A JavaScript caller's wrong types: USAGE naming the type, never a raw TypeError.
    ['shared: 42', { shared: 42 as unknown as string[] }, /^shared must be a list of strings \(or one string\), got number$/],
    ['hosts: a string in the list', { hosts: ['web1'] as unknown as FleetDeployOptions['hosts'] }, /^hosts\[0\] must be an object \{ host, root\? \}, got string$/],
  ];
  for (const [name, options, message] of cases) {
    void test(`${name}: exit 2, and the host's root is never created`, async (t) => {
      const host = fleet.hosts[0] as FleetHost;
      const base = `v-${name.replace(/[^a-z0-9]+/gi, '-')}`;
      const src = writeTree(tempDir(t, 'fleet-validate-'), { 'index.html': 'x\n' });
      await assert.rejects(
        fleetDeploy(src, `/srv/${base}`, { hosts: [{ host: host.alias }], ssh: { configFile: fleet.sshConfigPath }, ...options }),
        (error: unknown) => error instanceof DeployError && error.exitCode === 2 && message.test(error.message),
      );
      assert.equal(fs.existsSync(path.join(host.srvDir, base)), false, 'nothing was made on the host');
    });
  }

  // As locally: directories alone are an empty site. (A fleet deploy used to switch every host to
  // the empty release, exit 0, where a local one refuses it.)
  void test('a build of only empty directories: exit 2, and the live release stays on every host', async (t) => {
    const opts = { hosts: fleet.hosts.map((h) => ({ host: h.alias })), ssh: { configFile: fleet.sshConfigPath } };
    const live = await fleetDeploy(writeTree(tempDir(t, 'fleet-validate-'), { 'index.html': 'x\n' }), '/srv/v-hollow', opts);
    const hollow = tempDir(t, 'fleet-validate-');
    fs.mkdirSync(path.join(hollow, 'assets', 'img'), { recursive: true });
    await assert.rejects(
      fleetDeploy(hollow, '/srv/v-hollow', opts),
      (error: unknown) => error instanceof DeployError && error.exitCode === 2 && /holds no files, only empty directories$/.test(error.message) && error.hint === 'build first: an empty release would take the site down',
    );
    for (const h of fleet.hosts) assert.equal(fs.readlinkSync(path.join(h.srvDir, 'v-hollow', 'current')), `releases/${live.release}`, h.alias);
  });

  void test('one machine listed twice under two names (an alias and its address): deploy and rollback exit 2 at once, whatever --wait says; the host keeps no lock', async (t) => {
    const host = fleet.hosts[0] as FleetHost;
    // A second ssh config: the fleet's, plus a twin alias for the same address.
    const config = path.join(tempDir(t, 'fleet-twin-'), 'ssh_config');
    fs.writeFileSync(config, `Host twin1\n  HostName ${host.address}\n  Port ${host.port}\n\n${fs.readFileSync(fleet.sshConfigPath, 'utf8')}`);
    const src = writeTree(tempDir(t, 'fleet-validate-'), { 'index.html': 'x\n' });
    for (const id of ['one', 'two']) {
      const made = await runCli(['deploy', src, '/srv/v-twin', '--host', host.alias, '--ssh-config', config, '--release-id', id]);
      assert.equal(made.code, 0, made.stderr);
    }
    // A wait that would outlast the test: the command's own lock is never waited for.
    // Deploy and rollback hold every host's lock until the switch, so the second name always
    // meets the first one's lock. (Prune locks each host only while it prunes it: a twin may
    // find the lock free again and prune the same root twice, which changes nothing more.)
    for (const args of [['deploy', src, '/srv/v-twin', '--wait', '600'], ['rollback', '/srv/v-twin', '--to', 'one', '--wait', '600']]) {
      const r = await runCli([...args, '--host', host.alias, '--host', 'twin1', '--ssh-config', config], { timeoutMs: 60_000 });
      assert.equal(r.code, 2, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^error: .*(twin1 is ${host.alias}|${host.alias} is twin1) again: /srv/v-twin there is locked by this very command, through (${host.alias}|twin1)$`, 'm'), args[0]);
      assert.match(r.stderr, /^hint: list each host once: an alias, an address and a user@ form of one machine are one host$/m);
      assert.ok(!fs.existsSync(path.join(host.srvDir, 'v-twin', '.deploy.lock')), 'no lock left');
      assert.deepEqual(fs.readdirSync(path.join(host.srvDir, 'v-twin', 'releases')).sort(), ['one', 'two']);
      assert.equal(fs.readlinkSync(path.join(host.srvDir, 'v-twin', 'current')), 'releases/two');
    }
    // A root the refused deploy made itself (and its parents) goes again: nothing is left on the
    // host, not even the empty .tmp/ its lock needed. The root above stays exactly as it was.
    const tmpBefore = fs.readdirSync(path.join(host.srvDir, 'v-twin', '.tmp')).sort();
    const fresh = await runCli(['deploy', src, '/srv/v-twin-new/app/root', '--host', host.alias, '--host', 'twin1', '--ssh-config', config], { timeoutMs: 60_000 });
    assert.equal(fresh.code, 2, fresh.stderr);
    assert.match(fresh.stderr, / again: \/srv\/v-twin-new\/app\/root there is locked by this very command/);
    assert.equal(fs.existsSync(path.join(host.srvDir, 'v-twin-new')), false, `left on the host: ${fs.existsSync(path.join(host.srvDir, 'v-twin-new')) ? execFileSync('find', [path.join(host.srvDir, 'v-twin-new')], { encoding: 'utf8' }) : ''}`);
    assert.deepEqual(fs.readdirSync(path.join(host.srvDir, 'v-twin', '.tmp')).sort(), tmpBefore);
    // Read-only commands take no lock: a twin there only repeats a row.
    const status = await runCli(['status', '/srv/v-twin', '--host', host.alias, '--host', 'twin1', '--ssh-config', config]);
    assert.equal(status.code, 0, status.stderr);
    // Prune with both names at once: the one that meets the other's lock says the root is pruned
    // there. It exited 2 ("nothing was changed") after the other had removed releases.
    const three = await runCli(['deploy', src, '/srv/v-twin', '--host', host.alias, '--ssh-config', config, '--release-id', 'three']);
    assert.equal(three.code, 0, three.stderr);
    const pruned = await runCli(['prune', '/srv/v-twin', '--keep', '1', '--host', host.alias, '--host', 'twin1', '--ssh-config', config, '--json'], { timeoutMs: 60_000 });
    assert.equal(pruned.code, 0, pruned.stderr);
    const hosts = (JSON.parse(pruned.stdout) as { hosts: { host: string; removed: { id: string }[]; sameAs?: string }[] }).hosts;
    assert.deepEqual(hosts.flatMap((h) => h.removed.map((r) => r.id)).sort(), ['one'], JSON.stringify(hosts));
    assert.deepEqual(fs.readdirSync(path.join(host.srvDir, 'v-twin', 'releases')).sort(), ['three', 'two']);
    assert.ok(!fs.existsSync(path.join(host.srvDir, 'v-twin', '.deploy.lock')), 'no lock left');
  });

  void test('a build file that vanishes while the build is hashed (the hosts lock meanwhile): exit 1 naming it, and the host keeps its release, with no lock and no stage', async (t) => {
    const host = fleet.hosts[0] as FleetHost;
    const src = writeTree(tempDir(t, 'fleet-hash-fail-'), { 'index.html': 'one\n', 'lib/app.js': 'x\n' });
    const made = await runCli(['deploy', src, '/srv/v-hash-fail', '--host', host.alias, '--ssh-config', fleet.sshConfigPath, '--release-id', 'one']);
    assert.equal(made.code, 0, made.stderr);
    const root = path.join(host.srvDir, 'v-hash-fail');
    // The hashing waits 8 s before it starts (a failpoint), after the scan: the file goes meanwhile, once the host is locked.
    const run = runCli(['deploy', src, '/srv/v-hash-fail', '--host', host.alias, '--ssh-config', fleet.sshConfigPath, '--release-id', 'two'], { failpoints: 'fleet-hashing=sleep:8000', timeoutMs: 60_000 });
    let lockedMeanwhile = false;
    for (let waited = 0; waited < 7000 && !lockedMeanwhile; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      lockedMeanwhile = fs.existsSync(path.join(root, '.deploy.lock'));
    }
    fs.rmSync(path.join(src, 'lib', 'app.js'));
    const r = await run;
    assert.ok(lockedMeanwhile, 'the host was locked while the build was hashed (what this test exercises)');
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error: the build changed while it was being hashed: lib\/app\.js is gone$/m);
    assert.match(r.stderr, /^hint: deploy a build that nothing writes to while it deploys$/m);
    assert.equal(fs.readlinkSync(path.join(root, 'current')), 'releases/one');
    assert.deepEqual(fs.readdirSync(path.join(root, 'releases')), ['one']);
    assert.equal(fs.existsSync(path.join(root, '.deploy.lock')), false, 'the lock was released');
    assert.deepEqual(fs.readdirSync(path.join(root, '.tmp')).filter((n) => !n.startsWith('.')), [], 'no stage left');
  });

  void test('a host that refuses the connection: exit 1, and the hint names the ssh config the command used', async (t) => {
    const config = path.join(tempDir(t, 'fleet-refuse-'), 'ssh_config');
    fs.writeFileSync(config, `Host closed1\n  HostName 127.0.0.1\n  Port 1\n\n${fs.readFileSync(fleet.sshConfigPath, 'utf8')}`);
    const src = writeTree(tempDir(t, 'fleet-validate-'), { 'index.html': 'x\n' });
    const r = await runCli(['deploy', src, '/srv/v-closed', '--host', 'closed1', '--ssh-config', config]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /^error: nothing was switched: cannot connect to closed1: .*Connection refused$/m);
    assert.ok(r.stderr.includes(`\nhint: check that \`ssh -F '${config}' closed1 true\` works without a password prompt (BatchMode)\n`), r.stderr);
    // A port in the host spec: the hint was `ssh closed1:1 true`, which ssh takes for a host name.
    const ported = await runCli(['status', '/srv/v-closed', '--host', 'deploy@127.0.0.1:1', '--ssh-config', config]);
    assert.equal(ported.code, 1, ported.stderr);
    assert.ok(ported.stderr.includes(`check that \`ssh -F '${config}' -p 1 deploy@127.0.0.1 true\` works`), ported.stderr);
  });

  void test('a build none of whose files others may read: deployed to every host with the local warning, in the dry run too', async (t) => {
    const src = writeTree(tempDir(t, 'fleet-closed-'), { 'index.html': 'x\n', 'css/site.css': 'y\n' });
    for (const f of ['index.html', 'css/site.css']) fs.chmodSync(path.join(src, f), 0o600);
    const args = ['deploy', src, '/srv/v-closed', ...fleet.hosts.flatMap((h) => ['--host', h.alias]), '--ssh-config', fleet.sshConfigPath];
    const said = `no file of the build is readable by its group or other users (all 2, css/site.css 0600 among them: made under umask 077?): a web server running as another user answers 403 for each; make them readable (chmod -R go+rX ${src}) or build under umask 022, then deploy again`;
    const dry = await runCli([...args, '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.ok(dry.stderr.includes(`warning: ${said}`), dry.stderr);
    const deployed = await runCli([...args, '--json']);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.ok(jsonOf<{ warnings: string[] }>(deployed).warnings.includes(said), deployed.stdout);
    for (const h of fleet.hosts) assert.equal(fs.statSync(path.join(h.srvDir, 'v-closed', 'current', 'index.html')).mode & 0o777, 0o600, h.alias);
  });

  // The local `releases` leaves out a directory no release id can name (`lost+found` of a releases/
  // that is a mount of its own) and says it is ignored; `releases --host` listed it as a release.
  void test('releases --host leaves out a directory of releases/ that is no release (lost+found) and says so, naming the host, as the local command does', async (t) => {
    const [one, two] = fleet.hosts as [FleetHost, FleetHost];
    const src = writeTree(tempDir(t, 'fleet-ignored-'), { 'index.html': 'x\n' });
    const args = [...fleet.hosts.flatMap((h) => ['--host', h.alias]), '--ssh-config', fleet.sshConfigPath];
    for (const id of ['r1', 'r2']) assert.equal((await runCli(['deploy', src, '/srv/v-ignored', ...args, '--release-id', id])).code, 0);
    fs.mkdirSync(path.join(one.srvDir, 'v-ignored', 'releases', 'lost+found'));
    const listed = await runCli(['releases', '/srv/v-ignored', ...args, '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const hosts = jsonOf<{ hosts: { host: string; releases: { id: string }[]; ignored?: { id: string; reason: string }[] }[] }>(listed).hosts;
    const reason = 'no release id has such a name: never a rollback target, never pruned';
    assert.deepEqual(hosts.map((h) => [h.host, h.releases.map((r) => r.id), h.ignored]), [
      [one.alias, ['r2', 'r1'], [{ id: 'lost+found', reason }]],
      [two.alias, ['r2', 'r1'], undefined],
    ]);
    assert.ok(listed.stderr.includes(`warning: ${one.alias}: releases/lost+found is ignored, it is no release: ${reason}\n`), listed.stderr);
    const human = await runCli(['releases', '/srv/v-ignored', ...args]);
    assert.equal(human.code, 0, human.stderr);
    assert.doesNotMatch(human.stdout, /lost\+found/);
    // The local command on that host's root says the same.
    const local = await runCli(['releases', path.join(one.srvDir, 'v-ignored'), '--json']);
    assert.deepEqual(jsonOf<{ ignored: unknown }>(local).ignored, [{ id: 'lost+found', reason }]);
    void two;
  });

  /** Every host's whole /srv, modes, owners, contents and directory times: any write there shows. */
  const srvSnapshots = (): string[][] => fleet.hosts.map((h) => treeSnapshot(h.srvDir, { times: true }));

  void test('deploy into a folder that holds something but is not a deploy root (a hand-made site on one host, /srv itself on both): exit 2 naming the host, the --adopt hint, and no host locked or written; --adopt adopts on every host', async (t) => {
    const [one, two] = fleet.hosts as [FleetHost, FleetHost];
    const src = writeTree(tempDir(t, 'fleet-adopt-'), { 'index.html': 'new\n' });
    const ssh = ['--ssh-config', fleet.sshConfigPath];
    // host2's /srv/v-site is a deploy root already; host1's is a site made by hand.
    const made = await runCli(['deploy', src, '/srv/v-site', '--host', two.alias, ...ssh, '--release-id', 'one']);
    assert.equal(made.code, 0, made.stderr);
    writeTree(path.join(one.srvDir, 'v-site'), { 'html/index.html': '<h1>old</h1>\n', 'config.php': 'secret\n' });
    const before = srvSnapshots();
    const hosts = ['--host', one.alias, '--host', two.alias];
    const refused = await runCli(['deploy', src, '/srv/v-site', ...hosts, ...ssh]);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, new RegExp(`^error: nothing was changed: ${one.alias}: /srv/v-site is not empty and not a deploy root \\(2 entries, no releases/ with current\\)$`, 'm'));
    assert.match(refused.stderr, /^hint: check the path; to make this folder a deploy root anyway \(its files stay, current and releases\/ are added\), add --adopt$/m);
    assert.deepEqual(srvSnapshots(), before, 'a host changed');
    // The parent folder typed by mistake: refused on both hosts, each named.
    const parent = await runCli(['deploy', src, '/srv', ...hosts, ...ssh, '--json']);
    assert.equal(parent.code, 2, parent.stderr);
    const error = jsonOf<{ error: { code: string; message: string; hint: string } }>(parent).error;
    assert.equal(error.code, 'INVALID_ROOT');
    for (const h of [one, two]) assert.match(error.message, new RegExp(`${h.alias}: /srv is not empty and not a deploy root \\(\\d+ (entry|entries), no releases/ with current\\)`));
    assert.match(error.hint, /add --adopt$/);
    assert.deepEqual(srvSnapshots(), before, 'a host changed');
    // --adopt: the layout joins the site's files, which stay as they were, on every host.
    const site = treeSnapshot(path.join(one.srvDir, 'v-site'));
    const adopted = await runCli(['deploy', src, '/srv/v-site', ...hosts, ...ssh, '--adopt', '--release-id', 'two']);
    assert.equal(adopted.code, 0, adopted.stderr);
    for (const h of [one, two]) assert.equal(fs.readlinkSync(path.join(h.srvDir, 'v-site', 'current')), 'releases/two', h.alias);
    const kept = new Set(['html', 'config.php']);
    const own = (line: string): boolean => kept.has(line.split(/[/ ]/)[0] ?? '');
    assert.deepEqual(treeSnapshot(path.join(one.srvDir, 'v-site')).filter(own), site.filter(own));
  });

  void test('a root missing on every host: each command exits 2, each host with the local hint (deploy to it first), the error hint naming both', async () => {
    const [one, two] = fleet.hosts as [FleetHost, FleetHost];
    const args = ['/srv/v-none', '--host', one.alias, '--host', two.alias, '--ssh-config', fleet.sshConfigPath];
    // The hints' commands carry the --ssh-config this run was given: the aliases live in that file.
    const hintFor = (alias: string): string => `check the path; to make it a deploy root, deploy to it: atomic-deploy deploy --ssh-config ${fleet.sshConfigPath} <source> /srv/v-none --host ${alias}`;
    for (const command of [['status'], ['releases'], ['prune', '--keep', '1'], ['rollback'], ['verify']]) {
      const json = await runCli([...command, ...args, '--json']);
      assert.equal(json.code, 2, `${command[0]}: ${json.stderr}`);
      const hostsOf = jsonOf<{ hosts: { host: string; error?: { code: string; hint?: string } }[] }>(json).hosts;
      for (const h of [one, two]) assert.equal(hostsOf.find((x) => x.host === h.alias)?.error?.hint, hintFor(h.alias), `${command[0]}: ${h.alias}`);
      const human = await runCli([...command, ...args]);
      assert.equal(human.code, 2, command[0]);
      // verify says each host's error on its own line, with that host's hint; the others one error naming both.
      const hints = command[0] === 'verify' ? [hintFor(one.alias), hintFor(two.alias)] : [`check the path; to make it a deploy root, deploy to it: atomic-deploy deploy --ssh-config ${fleet.sshConfigPath} <source> /srv/v-none --host ${one.alias} --host ${two.alias}`];
      for (const hint of hints) assert.ok(human.stderr.includes(`hint: ${hint}\n`), `${command[0]}: ${human.stderr}`);
      // No host's release is known: not "mixed", which says the hosts differ.
      if (command[0] === 'status') assert.match(human.stdout, /^not known on any host \(see the errors\)$/m);
    }
  });

  // A deploy whose root on a host is a file (or has a file on its way) said `host1: cannot create
  // /srv/v-file`, no reason and no hint, where the local deploy says `… is not a directory` and
  // what to give. Now the local words, after the host's name: exit 2, and nothing made on either host.
  void test('a deploy whose root on a host is a file, or has a file on its way: exit 2 with the local words and hint, nothing made on any host', async (t) => {
    const [one, two] = fleet.hosts as [FleetHost, FleetHost];
    const src = writeTree(tempDir(t), { 'index.html': 'x\n' });
    fs.writeFileSync(path.join(one.srvDir, 'v-file'), 'not a directory\n');
    t.after(() => fs.rmSync(path.join(one.srvDir, 'v-file'), { force: true }));
    for (const [root, message, hint] of [
      ['/srv/v-file', `${one.alias}: /srv/v-file is not a directory`, 'give the directory that holds (or will hold) current and releases/'],
      ['/srv/v-file/app', `${one.alias}: cannot create /srv/v-file/app: /srv/v-file is not a directory`, undefined],
    ] as const) {
      const r = await runCli(['deploy', src, root, '--host', one.alias, '--host', two.alias, '--ssh-config', fleet.sshConfigPath, '--json']);
      assert.equal(r.code, 2, r.stderr);
      const j = jsonOf<{ hosts: { host: string; error?: { code: string; message: string; hint?: string } }[] }>(r);
      const row = j.hosts.find((x) => x.host === one.alias);
      assert.equal(row?.error?.code, 'INVALID_ROOT', root);
      assert.equal(row?.error?.message, message, root);
      assert.equal(row?.error?.hint, hint, root);
      assert.equal(fs.readFileSync(path.join(one.srvDir, 'v-file'), 'utf8'), 'not a directory\n', root);
      assert.equal(fs.existsSync(path.join(two.srvDir, 'v-file')), false, `${root}: made on ${two.alias}`);
    }
  });

  void test('current removed by hand on one host: status names the release its log says was live last; a deploy with --keep 1 keeps it there', async (t) => {
    const [one, two] = fleet.hosts as [FleetHost, FleetHost];
    const args = ['/srv/v-nolink', '--host', one.alias, '--host', two.alias, '--ssh-config', fleet.sshConfigPath];
    const src = writeTree(tempDir(t, 'fleet-nolink-'), { 'index.html': 'x\n' });
    for (const id of ['r1', 'r2', 'r3']) assert.equal((await runCli(['deploy', src, ...args, '--release-id', id])).code, 0);
    assert.equal((await runCli(['rollback', ...args, '--to', 'r1'])).code, 0);
    fs.unlinkSync(path.join(one.srvDir, 'v-nolink', 'current'));
    const status = await runCli(['status', ...args]);
    assert.match(status.stdout, new RegExp(`^${one.alias} +\\(missing\\) +free +current is missing; the release log says r1 is the last good release that was live \\(rollback --to r1 restores it\\)$`, 'm'));
    // Deployed to that host alone (the other is on r1): its prune keeps r1, as a local deploy's does.
    const deploy = await runCli(['deploy', src, '/srv/v-nolink', '--host', one.alias, '--ssh-config', fleet.sshConfigPath, '--keep', '1', '--release-id', 'r4', '--json']);
    assert.equal(deploy.code, 0, deploy.stderr);
    assert.ok(fs.existsSync(path.join(one.srvDir, 'v-nolink', 'releases', 'r1')), `r1 was pruned: ${fs.readdirSync(path.join(one.srvDir, 'v-nolink', 'releases')).join(' ')}`);
  });

  void test('a dangling current on every host: status says no live release (not "all on no release"), verify exits 2 with the local reason and a rollback --host hint', async (t) => {
    const [one, two] = fleet.hosts as [FleetHost, FleetHost];
    const args = ['/srv/v-dangling', '--host', one.alias, '--host', two.alias, '--ssh-config', fleet.sshConfigPath];
    const src = writeTree(tempDir(t, 'fleet-dangling-'), { 'index.html': 'x\n' });
    assert.equal((await runCli(['deploy', src, ...args])).code, 0);
    for (const h of [one, two]) {
      const link = path.join(h.srvDir, 'v-dangling', 'current');
      fs.unlinkSync(link);
      fs.symlinkSync('releases/gone', link);
    }
    const status = await runCli(['status', ...args]);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^all 2 hosts on no live release \(current dangling\)$/m);
    assert.match(status.stdout, new RegExp(`^${one.alias} +\\(dangling\\) +free`, 'm'));
    const verify = await runCli(['verify', ...args, '--json']);
    assert.equal(verify.code, 2, verify.stderr);
    const rows = jsonOf<{ hosts: { host: string; error?: { code: string; message: string; hint?: string } }[] }>(verify).hosts;
    for (const h of [one, two]) {
      const row = rows.find((x) => x.host === h.alias);
      assert.equal(row?.error?.message, `${h.alias}: /srv/v-dangling has no live release to verify (current points at releases/gone, which is gone)`);
      assert.equal(row?.error?.hint, `name one with --release <id>; point current at a release again with: atomic-deploy rollback --ssh-config ${fleet.sshConfigPath} /srv/v-dangling --host ${h.alias} --to <id>`);
    }
  });

  void test('status, releases, prune and unlock on a folder that is not a deploy root (files on one host, empty on the other): exit 2 with the local wording after each host, and nothing written on either', async () => {
    const [one, two] = fleet.hosts as [FleetHost, FleetHost];
    writeTree(path.join(one.srvDir, 'v-plain'), { 'x/data': 'x\n', 'index.html': 'hi\n' });
    fs.mkdirSync(path.join(two.srvDir, 'v-plain'));
    const before = srvSnapshots();
    const args = ['/srv/v-plain', '--host', one.alias, '--host', two.alias, '--ssh-config', fleet.sshConfigPath];
    const notRoot = `${one.alias}: /srv/v-plain is not a deploy root (no releases/ with current)`;
    const empty = `${two.alias}: /srv/v-plain is empty, not a deploy root`;
    for (const command of [['status'], ['releases'], ['prune', '--keep', '1'], ['unlock']]) {
      const r = await runCli([...command, ...args]);
      assert.equal(r.code, 2, `${command[0]}: ${r.stdout}${r.stderr}`);
      // Said on stderr by every one of them (status and releases printed only their table), each host once.
      assert.match(r.stderr, new RegExp(`^error: .*${notRoot.replaceAll(/[.()/]/g, '\\$&')}`, 'm'), command[0]);
      assert.doesNotMatch(r.stdout + r.stderr, new RegExp(`${one.alias}: ${one.alias}:`), command[0]);
      if (command[0] === 'unlock') assert.match(r.stdout, /^HOST +UNLOCKED +REASON$/m);
      const json = await runCli([...command, ...args, '--json']);
      assert.equal(json.code, 2, `${command[0]} --json: ${json.stderr}`);
      const hostsOf = jsonOf<{ hosts: { host: string; error?: { code: string; message: string; hint?: string } }[] }>(json).hosts;
      assert.deepEqual(
        hostsOf.map((h) => [h.host, h.error?.code, h.error?.message]),
        [[one.alias, 'INVALID_ROOT', notRoot], [two.alias, 'INVALID_ROOT', empty]],
        command[0],
      );
      assert.equal(jsonOf<{ error?: { code: string } }>(json).error?.code, 'INVALID_ROOT', `${command[0]}: the JSON has the error too`);
      assert.match(hostsOf[0]?.error?.hint ?? '', /^check the path: it holds files but no current, releases\/ or \.atomic-deploy\/; a folder with files becomes a deploy root only by a deploy with --adopt$/, command[0]);
      assert.equal(hostsOf[1]?.error?.hint, `check the path; to make it a deploy root, deploy to it: atomic-deploy deploy --ssh-config ${fleet.sshConfigPath} <source> /srv/v-plain --host ${two.alias}`, command[0]);
      assert.deepEqual(srvSnapshots(), before, `${command[0]} changed a host`);
    }
    // verify says it in the same words (it said "has no live release to verify").
    const verify = await runCli(['verify', ...args]);
    assert.equal(verify.code, 2, verify.stderr);
    assert.match(verify.stderr, new RegExp(`^error: ${notRoot.replaceAll(/[.()/]/g, '\\$&')}`, 'm'));
    assert.deepEqual(srvSnapshots(), before, 'verify changed a host');
  });

  void test('a build holding .git deploys with the warning the local engine gives', async (t) => {
    const host = fleet.hosts[0] as FleetHost;
    const src = writeTree(tempDir(t, 'fleet-validate-'), { 'index.html': 'x\n', '.git/config': '[remote "origin"]\n' });
    const warnings: string[] = [];
    const result = await fleetDeploy(src, '/srv/v-git', { hosts: [{ host: host.alias }], ssh: { configFile: fleet.sshConfigPath }, onEvent: (e) => void (e.type === 'warning' && warnings.push(e.message)) });
    assert.ok(result.release);
    assert.deepEqual(warnings, [repositoryWarning(['.git'])]);
    assert.ok(fs.existsSync(path.join(host.srvDir, 'v-git', 'current', 'index.html')));
  });

  // As locally (test/system/event-sink.test.ts): the sink is only told, whatever it does.
  void test('a sink that throws at every event, or an async one that rejects, changes nothing: every host switches, and no rejection is left unhandled', async (t) => {
    const opts = { hosts: fleet.hosts.map((h) => ({ host: h.alias })), ssh: { configFile: fleet.sshConfigPath } };
    const src = writeTree(tempDir(t, 'fleet-validate-'), { 'index.html': 'x\n' });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    t.after(() => process.off('unhandledRejection', onUnhandled));
    let events = 0;
    const fail = (): void => {
      events++;
      throw new Error('logger broke');
    };
    // An async logger, typed as the sink it is passed as.
    const rejecting = ((): Promise<void> => Promise.resolve().then(fail)) as () => void;
    for (const [name, onEvent] of [['throws', fail], ['rejects', rejecting]] as const) {
      const result = await fleetDeploy(src, '/srv/v-sink', { ...opts, releaseId: `sink-${name}`, onEvent });
      for (const h of fleet.hosts) assert.equal(fs.readlinkSync(path.join(h.srvDir, 'v-sink', 'current')), `releases/${result.release}`, `${name}: ${h.alias}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(events > 2, 'the sink was called');
    assert.deepEqual(unhandled, []);
  });
});
