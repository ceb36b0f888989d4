// The release-manifest targets side by side in one run: an unchanged 10k-file hardlink redeploy
// against rsync --link-dest (quick check, and --checksum, the peer that also decides by content),
// and a first deploy of 100k files: its peak RSS and its time against cp -a. Then the same
// redeploy at 100k files, and a one-file redeploy for the fixed cost, to show how the ratio
// moves with the size of the tree.
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { installedBin } from './bin.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { pairedRuns, peakRssOfCommand, timeCommand } from './lib/measure.ts';
import type { Result } from './lib/report.ts';
import { makeTree, TREE_PRESETS } from './lib/tree.ts';

const ENV = { ...process.env, NO_COLOR: '1' };
const HL = 'atomic-deploy deploy --strategy hardlink --keep 0, unchanged';
const HLN = 'atomic-deploy deploy --strategy hardlink --keep 0 --no-fsync, unchanged';
// The default keep (5): once five releases stand, every deploy also deletes the oldest (10k unlinks), which rsync never does.
const HLK = 'atomic-deploy deploy --strategy hardlink (default --keep 5: prunes one release each time), unchanged';
const RS = 'rsync -a --link-dest, unchanged';
const RSC = 'rsync -a --checksum --link-dest, unchanged';
// What every deploy pays whatever the tree holds: Node start-up, lock, journal, fsync, switch, record, the /proc scan.
const HL1 = 'atomic-deploy deploy --strategy hardlink --keep 0, 1 unchanged file';
// Not a target: with before-switch hooks a hardlink deploy links nothing (docs/strategies.md, "What we guard", 8).
const HLH = "atomic-deploy deploy --strategy hardlink --keep 0 --before-switch true, unchanged (every file copied)";

const round3 = (x: number): number => Math.round(x * 1000) / 1000;
const ms = (x: number): number => Math.round(x * 10) / 10;
const load = (): string => loadavg().map((l) => l.toFixed(1)).join(' / ');

async function cli(args: string[]): Promise<void> {
  await timeCommand(process.execPath, [installedBin(), ...args], { env: ENV });
}

export async function runManifestTargetsBench(opts: { quick: boolean; log?: (line: string) => void }): Promise<Result> {
  const { quick } = opts;
  const log = opts.log ?? ((): void => undefined);
  const started = Date.now();
  const machine = await describeMachine({ tmpDir: tmpdir() });
  const work = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-manifest-'));
  const runs = quick ? 1 : 5;
  const loads: string[] = [`start ${load()}`];
  try {
    // Redeploys: each of our rounds links against the release before it, as a CI redeploy would.
    const src = join(work, 'src');
    const mid = quick ? TREE_PRESETS['1k'] : TREE_PRESETS['10k'];
    const stats = await makeTree(src, mid);
    const root = join(work, 'root');
    await cli(['deploy', src, root, '--quiet', '--strategy', 'hardlink']);
    // rsync's own previous copy, as an rsync deploy has one. Not one of our releases: linking to
    // their inodes would move their ctimes, and our next deploy would then rightly re-read them.
    const base = join(work, 'rsync-base');
    await timeCommand('cp', ['-a', src, base]);
    const keptRoot = join(work, 'kept-root');
    for (let i = 0; i < 5; i++) await cli(['deploy', src, keptRoot, '--quiet', '--strategy', 'hardlink']);
    const one = join(work, 'one');
    await mkdir(one);
    await writeFile(join(one, 'index.html'), 'one\n');
    const oneRoot = join(work, 'one-root');
    await cli(['deploy', one, oneRoot, '--quiet', '--strategy', 'hardlink']);
    const dst = join(work, 'rsync-dst');
    const rsync = (name: string, extra: string[]): { name: string; setup: () => Promise<void>; run: () => Promise<void>; teardown: () => Promise<void> } => ({
      name,
      setup: async () => {
        await rm(dst, { recursive: true, force: true });
        await timeCommand('sync', ['-f', work]);
      },
      run: async () => void (await timeCommand('rsync', ['-a', ...extra, `--link-dest=${base}`, `${src}/`, dst])),
      teardown: () => rm(dst, { recursive: true, force: true }),
    });
    const plain = { name: HL, setup: async () => void (await timeCommand('sync', ['-f', work])), run: () => cli(['deploy', src, root, '--quiet', '--strategy', 'hardlink', '--keep', '0']) };
    const redeploy = await pairedRuns(
      [
        // Like for like with rsync, which only fills a directory: --keep 0 deletes no older release.
        plain,
        // Beside it, as rsync runs: no fsync. Under a busy disk an fsync waits for other writers' data too.
        { name: HLN, setup: async () => void (await timeCommand('sync', ['-f', work])), run: () => cli(['deploy', src, root, '--quiet', '--strategy', 'hardlink', '--keep', '0', '--no-fsync']) },
        // The default, in a root of its own that already holds five releases: what a user's steady state costs.
        { name: HLK, setup: async () => void (await timeCommand('sync', ['-f', work])), run: () => cli(['deploy', src, keptRoot, '--quiet', '--strategy', 'hardlink']) },
        { name: HL1, setup: async () => void (await timeCommand('sync', ['-f', work])), run: () => cli(['deploy', one, oneRoot, '--quiet', '--strategy', 'hardlink', '--keep', '0']) },
        rsync(RS, []),
        rsync(RSC, ['--checksum']),
      ],
      { runs, warmup: 1, baseline: RS, onSample: (name, t, round) => log(`  redeploy round ${round + 1}/${runs} ${name}: ${t.toFixed(1)} ms`) },
    );
    loads.push(`after the redeploys ${load()}`);
    const hl = redeploy.cases.find((c) => c.name === HL);
    const rsc = redeploy.cases.find((c) => c.name === RSC);
    const vsRsync = hl?.ratio ?? NaN;
    const vsChecksum = hl && rsc ? hl.median / rsc.median : NaN;
    const hln = redeploy.cases.find((c) => c.name === HLN);
    const rs = redeploy.cases.find((c) => c.name === RS);
    const nfVsRsync = hln && rs ? hln.median / rs.median : NaN;
    const nfVsChecksum = hln && rsc ? hln.median / rsc.median : NaN;
    const fixed = redeploy.cases.find((c) => c.name === HL1)?.median ?? NaN;
    // The ratio a tree large enough for the fixed cost to vanish tends to: our per-file work ÷ rsync's whole run.
    const perFileVsRsync = hl && rs ? (hl.median - fixed) / rs.median : NaN;
    const perFileVsChecksum = hl && rsc ? (hl.median - fixed) / rsc.median : NaN;

    // What a before-switch hook costs a hardlink redeploy: every file copied (cloned where the
    // filesystem can), in rounds of their own so that the copies do not load the target's rounds.
    const hookRoot = join(work, 'hook-root');
    await cli(['deploy', src, hookRoot, '--quiet', '--strategy', 'hardlink']);
    const hookRuns = quick ? 1 : 3;
    const hooked = await pairedRuns(
      [
        plain,
        { name: HLH, setup: async () => void (await timeCommand('sync', ['-f', work])), run: () => cli(['deploy', src, hookRoot, '--quiet', '--strategy', 'hardlink', '--keep', '0', '--before-switch', 'true']) },
      ],
      { runs: hookRuns, warmup: 1, baseline: HL, onSample: (name, t, round) => log(`  hooks round ${round + 1}/${hookRuns} ${name}: ${t.toFixed(1)} ms`) },
    );
    loads.push(`after the hooked redeploys ${load()}`);

    // A first deploy of 100k files: one round each (minutes on a loaded machine), then its peak RSS.
    const big = join(work, 'big');
    // The cp -a of the first-deploy case stays, as rsync's previous tree for the redeploys at scale below.
    const bigBase = join(work, 'big-base');
    const bigRoot = join(work, 'first-root');
    const bigStats = await makeTree(big, quick ? TREE_PRESETS['10k'] : TREE_PRESETS['100k']);
    await timeCommand('sync', ['-f', work]);
    const first = await pairedRuns(
      [
        { name: 'cp -a', run: async () => void (await timeCommand('cp', ['-a', big, join(work, 'cp-dst')])), teardown: () => rename(join(work, 'cp-dst'), bigBase) },
        // Its release stays too: the previous release of the redeploys at scale.
        { name: 'atomic-deploy deploy', run: () => cli(['deploy', big, bigRoot, '--quiet', '--release-id', 'r']) },
      ],
      { runs: 1, warmup: 0, baseline: 'cp -a', onSample: (name, t) => log(`  first deploy ${name}: ${t.toFixed(1)} ms`) },
    );
    const kib = await peakRssOfCommand(process.execPath, [installedBin(), 'deploy', big, join(work, 'rss-root'), '--quiet', '--release-id', 'r'], { env: ENV });
    const mib = kib / 1024;
    log(`  peak RSS ${mib.toFixed(0)} MiB`);
    await rm(join(work, 'rss-root'), { recursive: true, force: true });

    // The same unchanged redeploy at 100k files: each tool links against a previous tree of its own, as above.
    const bigFiles = bigStats.files.toLocaleString('en-US');
    const hlBig = `atomic-deploy deploy --strategy hardlink --keep 0, ${bigFiles} unchanged files`;
    const rsBig = `rsync -a --link-dest, ${bigFiles} unchanged files`;
    const bigDst = join(work, 'big-rsync-dst');
    const scaleRuns = quick ? 1 : 3;
    const scale = await pairedRuns(
      [
        { name: hlBig, setup: async () => void (await timeCommand('sync', ['-f', work])), run: () => cli(['deploy', big, bigRoot, '--quiet', '--strategy', 'hardlink', '--keep', '0']) },
        {
          name: rsBig,
          setup: async () => {
            await rm(bigDst, { recursive: true, force: true });
            await timeCommand('sync', ['-f', work]);
          },
          run: async () => void (await timeCommand('rsync', ['-a', `--link-dest=${bigBase}`, `${big}/`, bigDst])),
          teardown: () => rm(bigDst, { recursive: true, force: true }),
        },
      ],
      // The warm-up is the first redeploy, the one that links from a release made by copy.
      { runs: scaleRuns, warmup: 1, baseline: rsBig, onSample: (name, t, round) => log(`  redeploy at scale round ${round + 1}/${scaleRuns} ${name}: ${t.toFixed(1)} ms`) },
    );
    const atScale = scale.cases.find((c) => c.name === hlBig)?.ratio ?? NaN;
    loads.push(`end ${load()}`);
    const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
    return {
      name: 'manifest-targets',
      title: 'Release manifests: redeploy and memory targets',
      description: `An unchanged ${stats.files.toLocaleString('en-US')}-file redeploy with --strategy hardlink (the build's hashes taken from the source cache, the previous release's from its manifest through its stat cache: neither tree is read) against rsync --link-dest, and a first deploy of ${bigStats.files.toLocaleString('en-US')} files; then the same redeploy at ${bigStats.files.toLocaleString('en-US')} files, and a one-file redeploy beside the ${stats.files.toLocaleString('en-US')}-file ones for the fixed cost, to show how the ratio moves with the size of the tree.`,
      machine,
      quick,
      tables: [
        {
          caption: 'Targets',
          columns: ['target', 'goal', 'measured', 'met'],
          rows: [
            [`${HL} ÷ ${RS}`, '< 1.0', round3(vsRsync), met(vsRsync < 1)],
            [`${HL} ÷ ${RSC}`, '≤ 0.5', round3(vsChecksum), met(vsChecksum <= 0.5)],
            [`${HLN} ÷ ${RS} (both without fsync)`, '< 1.0', round3(nfVsRsync), met(nfVsRsync < 1)],
            [`${HLN} ÷ ${RSC} (both without fsync)`, '≤ 0.5', round3(nfVsChecksum), met(nfVsChecksum <= 0.5)],
            [`peak RSS, first deploy of ${bigStats.files.toLocaleString('en-US')} files`, '≤ 200 MiB', `${Math.round(mib)} MiB`, met(mib <= 200)],
          ],
        },
        {
          caption: 'How the redeploy ratio moves with the size of the tree (not targets: what the fixed cost hides)',
          columns: ['ratio', 'value'],
          rows: [
            [`${HL} ÷ ${RS}`, round3(vsRsync)],
            [`(${HL} − ${HL1}) ÷ ${RS}: the ratio a tree large enough for the fixed cost to vanish tends to`, round3(perFileVsRsync)],
            [`(${HL} − ${HL1}) ÷ ${RSC}`, round3(perFileVsChecksum)],
            [`${hlBig} ÷ ${rsBig}, measured`, round3(atScale)],
          ],
        },
        {
          caption: `Redeploy of ${stats.files.toLocaleString('en-US')} unchanged files: ${runs} alternated rounds after 1 warm-up`,
          columns: ['case', 'median ms', 'min ms', 'max ms', `× ${RS}`],
          rows: redeploy.cases.map((c) => [c.name, ms(c.median), ms(c.min), ms(c.max), round3(c.ratio)]),
        },
        {
          caption: `Before-switch hooks (not a target): the same redeploy with a hook, which makes a hardlink deploy copy every file, in ${hookRuns} alternated rounds of their own after 1 warm-up`,
          columns: ['case', 'median ms', 'min ms', 'max ms', `× ${HL}`],
          rows: hooked.cases.map((c) => [c.name, ms(c.median), ms(c.min), ms(c.max), round3(c.ratio)]),
        },
        {
          caption: `First deploy of ${bigStats.files.toLocaleString('en-US')} files (one round each)`,
          columns: ['case', 'ms', '× cp -a'],
          rows: first.cases.map((c) => [c.name, ms(c.median), round3(c.ratio)]),
        },
        {
          caption: `Redeploy of ${bigFiles} unchanged files: ${scaleRuns} alternated rounds after 1 warm-up`,
          columns: ['case', 'median ms', 'min ms', 'max ms', `× ${rsBig}`],
          rows: scale.cases.map((c) => [c.name, ms(c.median), ms(c.min), ms(c.max), round3(c.ratio)]),
        },
      ],
      charts: [],
      notes: [
        'Every deploy here is the command as package.json\'s `bin` installs it (dist/bin/atomic-deploy.cjs, bundled by esbuild), what a user\'s `atomic-deploy` runs, as in the start-up and verify targets; until 2026-12-04 this benchmark ran the tsc output (dist/cli/bin.js), which loads one module per source file and starts tens of ms slower.',
        `Our redeploy is the whole CLI (Node start-up, lock, journal, fsync, record, switch, the /proc scan for processes left on the previous release); rsync only fills a directory. Ours fsyncs (the default); rsync does not. The target rows are the deploys with --keep 0, which like rsync delete nothing; the default keep (5) also deletes the oldest release on every deploy once five stand (its row), keeping the live release's stat cache true as it goes (docs/strategies.md), and that deletion is measured on its own in the throughput benchmark's prune table.`,
        'The first deploy of the large tree is one round each and fsyncs (the default: one syncfs of the release) where cp -a does not; it is there for the peak RSS beside it, not as a ratio: on this disk (ext4 with discard) the time to create files swings several-fold with how recently a large tree was deleted. The no-fsync comparison with cp -a is the throughput benchmark\'s target.',
        'Each tool links against a previous tree of its own: rsync against a `cp -a` of the build, ours against its last release. Until 2026-12-02 rsync linked against our first release, whose inodes every release shares: each link(2) moved their ctimes, so each of our redeploys found the live release changed since its stat cache and read all 10,000 files again, as it must when something links into a release.',
        `The fixed cost (the one-file row, ${ms(fixed)} ms here, of which \`node -e 0\` is about 100 ms on this machine: see the start-up benchmark) is paid once per deploy; rsync has next to none. Take it away and our ${stats.files.toLocaleString('en-US')}-file redeploy does its per-file work (three stat calls and one link(2) per file, a stat cache and a manifest written) in ${round3(perFileVsRsync)}× the time of rsync's whole run: that is the ratio a larger tree tends to, and the ${bigFiles}-file rows measure it.`,
        'The hooked row pays what a `--strategy hardlink` deploy with before-switch hooks costs since 2026-12-04: no file is linked from the live release (a hook writing into a linked file in place would write into it), so every file is copied, or cloned on a filesystem that can (this one cannot), and the release is hashed again after the hook for its manifest. The hook itself (`true`) costs a shell.',
        `Load average (1 / 5 / 15 min) during the run: ${loads.join('; ')}.`,
        runNote(started, machine),
      ],
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
