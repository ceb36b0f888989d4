// Proves the race harness can see a non-atomic switch fail, and that a rename switch never fails,
// first against a plain reader process and then against nginx under wrk load.
// test-runner: alone (readers race the switch, and the naive controls must still catch the gap)
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { startNginx, type NginxServer } from '../harness/nginx.ts';
import { startRaceReader, type RaceReaderReport } from '../harness/race-reader.ts';
import {
  busyboxLnSfn,
  makeRaceRoot,
  renameSwap,
  switchLoop,
  unlinkSymlinkSwap,
  type RaceRoot,
  type Swapper,
  type SwitchLoopResult,
} from '../harness/swappers.ts';
import { runWrk, type WrkResult } from '../harness/wrk.ts';

const MIN_SWITCHES = 2000;

async function readerRun(
  race: RaceRoot,
  swap: Swapper,
  limits: { minSwitches?: number; minMs?: number },
): Promise<{ loop: SwitchLoopResult; report: RaceReaderReport }> {
  const reader = await startRaceReader({ path: join(race.root, 'current', 'index.html'), expected: race.contents });
  try {
    const loop = await switchLoop({ root: race.root, targets: race.targets, swap, ...limits });
    return { loop, report: await reader.stop() };
  } finally {
    reader.kill();
  }
}

void test('reader process: unlink+symlink and busybox ln -sfn race, rename never does', async (t) => {
  const race = await makeRaceRoot(['a', 'b']);
  t.after(() => race.cleanup());

  // Control: the harness must be able to fail, or a zero below means nothing.
  const unlink = await readerRun(race, unlinkSymlinkSwap, { minSwitches: MIN_SWITCHES, minMs: 1000 });
  t.diagnostic(`unlink+symlink: ${JSON.stringify({ ...unlink.loop, ...unlink.report })}`);
  assert.ok(unlink.loop.switches >= MIN_SWITCHES);
  assert.ok(unlink.report.enoent > 0, `control saw no ENOENT in ${unlink.report.reads} reads`);

  // One spawn per switch costs 10-40 ms here, so this control is bounded by time, not by a count;
  // 3 s gives dozens of switches, each of which the reader catches with probability ~0.2-3.
  const busybox = await readerRun(race, busyboxLnSfn, { minMs: 3000 });
  t.diagnostic(`busybox ln -sfn: ${JSON.stringify({ ...busybox.loop, ...busybox.report })}`);
  assert.ok(busybox.loop.switches > 0);
  assert.ok(busybox.report.enoent > 0, `busybox control saw no ENOENT in ${busybox.report.reads} reads`);

  const rename = await readerRun(race, renameSwap, { minSwitches: MIN_SWITCHES, minMs: 1000 });
  t.diagnostic(`rename: ${JSON.stringify({ ...rename.loop, ...rename.report })}`);
  assert.ok(rename.loop.switches >= MIN_SWITCHES);
  // Enough reads that a zero is evidence, not an idle reader.
  assert.ok(rename.report.reads >= 1000, `reader only managed ${rename.report.reads} reads`);
  assert.equal(rename.report.enoent, 0);
  assert.equal(rename.report.otherErrors, 0, JSON.stringify(rename.report.errorCodes));
  assert.equal(rename.report.foreign, 0, JSON.stringify(rename.report.foreignSamples));
});

void test('nginx under wrk: unlink+symlink and busybox give non-2xx, rename gives none', async (t) => {
  const race = await makeRaceRoot(['a', 'b']);
  const running: { nginx?: NginxServer } = {};
  // One hook, so the order is explicit: nginx is stopped before its docroot goes.
  t.after(async () => {
    await running.nginx?.stop();
    await race.cleanup();
  });
  const nginx = await startNginx({ docroot: join(race.root, 'current') });
  running.nginx = nginx;
  const url = `${nginx.url}/index.html`;

  const underLoad = async (swap: Swapper): Promise<{ loop: SwitchLoopResult; wrk: WrkResult }> => {
    const wrkRun = runWrk({
      url,
      durationSec: 3,
      threads: 2,
      connections: 32,
      expectBodies: race.contents,
    });
    try {
      const loop = await switchLoop({ root: race.root, targets: race.targets, swap, until: wrkRun });
      return { loop, wrk: await wrkRun };
    } catch (err) {
      // Let wrk finish before nginx is stopped, and keep its outcome from going unhandled.
      await wrkRun.catch(() => undefined);
      throw err;
    }
  };
  const summary = (r: { loop: SwitchLoopResult; wrk: WrkResult }): string =>
    JSON.stringify({ switches: r.loop.switches, ...r.wrk, raw: undefined });

  const unlink = await underLoad(unlinkSymlinkSwap);
  t.diagnostic(`unlink+symlink: ${summary(unlink)}`);
  assert.ok(unlink.wrk.non2xx > 0, `control saw no non-2xx:\n${unlink.wrk.raw}`);

  const busybox = await underLoad(busyboxLnSfn);
  t.diagnostic(`busybox ln -sfn: ${summary(busybox)}`);
  assert.ok(busybox.wrk.non2xx > 0, `busybox control saw no non-2xx:\n${busybox.wrk.raw}`);

  const rename = await underLoad(renameSwap);
  t.diagnostic(`rename: ${summary(rename)}`);
  assert.ok(rename.loop.switches >= 100, `only ${rename.loop.switches} switches during the run`);
  assert.ok(rename.wrk.requests >= 1000, `only ${rename.wrk.requests} requests:\n${rename.wrk.raw}`);
  assert.equal(rename.wrk.non2xx, 0, rename.wrk.raw);
  assert.equal(rename.wrk.socketErrors, 0, rename.wrk.raw);
  assert.equal(rename.wrk.foreignBodies, 0, rename.wrk.raw);
});
