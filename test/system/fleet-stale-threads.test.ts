// On a fleet host, a process whose main thread has exited while another thread runs on (a program
// that calls pthread_exit() in main; harness/exited-leader.c) is seen by the host's scans as the
// local engine sees it: after the switch it is named with its host, pid, command and holds, and
// `--stale fail` exits 6 while it stays; prune, and a deploy's --keep, keep the release it holds
// on that host. Its own /proc/<pid>/cwd, fd and maps show nothing: the host's sh reads a live
// thread's /proc/<pid>/task/<tid>/ instead. Run on the old code, none of them was seen.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { jsonOf, tempDir, writeTree } from '../harness/cli.ts';
import { buildExitedLeader, EXITED_LEADER_COMMAND, settledExitedLeader } from '../harness/exited-leader.ts';
import { rootNamer, type FleetHost } from '../harness/fleet.ts';
import { fleetSuite } from '../harness/fleet-suite.ts';

interface FleetJson {
  stale?: {
    processes: { host: string; pid: number; command: string; holds: { kind: string; path: string }[] }[];
    hosts: { host: string; check: string; release: string; count: number }[];
  };
  error?: { code: string; message: string };
}

const { fleet, hostArgs, cli } = fleetSuite(2, { prefix: 'sth', timeoutMs: 180_000 });
const newRoot = rootNamer('t');

type T = { after(fn: () => Promise<void> | void): void };

function releasesOn(dir: string): string[] {
  return fs.readdirSync(path.join(dir, 'releases')).sort();
}

/** Deploys `ids` in turn (nothing pruned) to a fresh root on both hosts. */
async function rootWith(t: T, name: string, ids: string[]): Promise<{ root: string; on: (h: FleetHost) => string }> {
  const made = newRoot(name);
  for (const id of ids) {
    const r = await cli(['deploy', writeTree(tempDir(t), { 'index.html': `${id}\n` }), made.root, ...hostArgs, '--release-id', id, '--keep', '0', '--no-fsync']);
    assert.equal(r.code, 0, r.stderr);
  }
  return made;
}

/**
 * Starts the program on `h` (in its mount namespace), working in `cwd` and holding `file` open,
 * and waits until its leader has exited with the thread left holding `holds`; returns its pid
 * (hosts share the pid namespace). Killed after the test.
 */
async function startOnHost(t: T, h: FleetHost, opts: { cwd: string; file?: string; holds: string }): Promise<number> {
  const program = path.join(h.srvDir, EXITED_LEADER_COMMAND);
  if (!fs.existsSync(program)) fs.copyFileSync(buildExitedLeader(tempDir(t)), program);
  const args = [`${h.srvPath}/${EXITED_LEADER_COMMAND}`, opts.cwd, ...(opts.file === undefined ? [] : [opts.file])];
  const r = await h.exec(['sh', '-c', '"$0" "$@" </dev/null >/dev/null 2>&1 & echo $!', ...args]);
  assert.equal(r.code, 0, r.stderr);
  const pid = Number(r.stdout.trim());
  assert.ok(pid > 1, r.stdout);
  t.after(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  });
  await settledExitedLeader(pid, opts.holds);
  return pid;
}

/** One process working in release `id` of `root` on `h`, one holding its index.html open. */
async function holders(t: T, h: FleetHost, root: string, id: string): Promise<{ inCwd: number; withFile: number }> {
  const dir = `${root}/releases/${id}`;
  return {
    inCwd: await startOnHost(t, h, { cwd: dir, holds: `/releases/${id}` }),
    withFile: await startOnHost(t, h, { cwd: '/', file: `${dir}/index.html`, holds: `/releases/${id}/index.html` }),
  };
}

void describe('processes whose main thread has exited, on two namespace hosts', () => {
  void test('the host names them after the switch, with its name; --stale fail exits 6 while they stay', async (t) => {
    const [h1, h2] = fleet.hosts as [FleetHost, FleetHost];
    const { root } = await rootWith(t, 'named', ['r1']);
    const pids = await holders(t, h1, root, 'r1');
    const r = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r2\n' }), root, ...hostArgs, '--release-id', 'r2', '--keep', '0', '--no-fsync', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const j = jsonOf<FleetJson>(r);
    assert.deepEqual(
      j.stale?.processes,
      [
        { host: h1.alias, pid: pids.inCwd, command: EXITED_LEADER_COMMAND, holds: [{ kind: 'cwd', path: `${root}/releases/r1` }] },
        { host: h1.alias, pid: pids.withFile, command: EXITED_LEADER_COMMAND, holds: [{ kind: 'fd', path: `${root}/releases/r1/index.html` }] },
      ].sort((a, b) => a.pid - b.pid),
    );
    assert.deepEqual(j.stale?.hosts, [
      { host: h1.alias, check: 'proc', release: 'r1', count: 2 },
      { host: h2.alias, check: 'proc', release: 'r1', count: 0 },
    ]);

    // The same on the release now left: --stale fail waits, then exits 6 naming the host and both.
    const again = await holders(t, h2, root, 'r2');
    const failed = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r3\n' }), root, ...hostArgs, '--release-id', 'r3', '--keep', '0', '--no-fsync', '--stale', 'fail', '--stale-wait', '1']);
    assert.equal(failed.code, 6, failed.stderr);
    const out = failed.stdout + failed.stderr;
    assert.match(out, new RegExp(`${h2.alias}: 2 processes still run from release r2, not the live r3: `));
    for (const pid of Object.values(again)) assert.match(out, new RegExp(`pid ${pid} ${EXITED_LEADER_COMMAND} \\(`));
    // As a local exit 6: the deploy's own line first (it is live), then the error.
    assert.match(failed.stdout, /^deployed r3 to 2 hosts /m);
    // And in --json, the error names the release, that it is live, and what still runs.
    await holders(t, h2, root, 'r3');
    const json = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r4\n' }), root, ...hostArgs, '--release-id', 'r4', '--keep', '0', '--no-fsync', '--stale', 'fail', '--stale-wait', '1', '--json']);
    assert.equal(json.code, 6, json.stderr);
    const e = jsonOf<{ release?: string; error?: { code: string; release?: string; live?: boolean; stale?: { processes: unknown[] } } }>(json);
    assert.equal(e.release, 'r4');
    assert.deepEqual({ code: e.error?.code, release: e.error?.release, live: e.error?.live, count: e.error?.stale?.processes.length }, { code: 'STALE_PROCESSES', release: 'r4', live: true, count: 2 });
  });

  void test('prune, and a deploy with --keep, keep the release they hold on that host', async (t) => {
    const [h1] = fleet.hosts as [FleetHost, FleetHost];
    const { root, on } = await rootWith(t, 'prune', ['r1', 'r2', 'r3', 'r4']);
    await holders(t, h1, root, 'r1');
    const pruned = await cli(['prune', root, ...hostArgs, '--keep', '1']);
    assert.equal(pruned.code, 0, pruned.stderr);
    // The control: r2, which nothing holds, went.
    assert.deepEqual(releasesOn(on(h1)), ['r1', 'r3', 'r4'], 'the held release went, or the other stayed');

    const deployed = await cli(['deploy', writeTree(tempDir(t), { 'index.html': 'r5\n' }), root, ...hostArgs, '--release-id', 'r5', '--keep', '1', '--no-fsync']);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.deepEqual(releasesOn(on(h1)), ['r1', 'r4', 'r5']);
  });
});
