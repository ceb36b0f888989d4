// Artifact deploys: `atomic-deploy deploy <archive> <new root> --no-fsync` against `tar -x` of the
// same archive into an empty directory (neither syncs), alternated round by round; and the peak
// RSS of deploying a 100k-file archive, which must not grow with the archive.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installedBin } from './bin.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { median, pairedRuns, peakRssOfCommand, timeCommand, type PairedCase, type PairedResult } from './lib/measure.ts';
import type { Result } from './lib/report.ts';
import { makeTree, prng, TREE_PRESETS } from './lib/tree.ts';

const NODE = process.execPath;
const MiB = 1024 * 1024;

/** CPU ms of reading `file` in 1 MiB reads and hashing each: into one reused buffer, or a new one per read. */
function readAndHashCpuMs(file: string, fresh: boolean): number {
  const before = process.cpuUsage();
  const reused = Buffer.allocUnsafeSlow(MiB);
  const hash = createHash('sha256');
  const fd = openSync(file, 'r');
  try {
    for (;;) {
      const buf = fresh ? Buffer.allocUnsafeSlow(MiB) : reused;
      const n = readSync(fd, buf, 0, MiB, null);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
    }
  } finally {
    closeSync(fd);
  }
  hash.digest();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

/**
 * Why the large-file target cannot be met here, from the run's own rows: the fixed cost (the 1-file
 * deploy), one SHA-256 pass over the archive (the `openssl` row), or the two together, the first
 * of these already above 1.2× `tar -xf`; the manifest needs that pass whatever else is saved.
 */
function floorNote(big: PairedResult): string {
  const ratioOf = (prefix: string): number => big.cases.find((c) => c.name.startsWith(prefix))?.ratio ?? Number.NaN;
  const fixed = ratioOf('atomic-deploy deploy .tar --no-fsync (1 small file');
  const sha = ratioOf('openssl dgst');
  const r = (x: number): string => x.toFixed(2);
  if (fixed > 1.2) return `A ratio of 1.2 is below the fixed cost alone (${r(fixed)}× here).`;
  if (sha > 1.2) return `A ratio of 1.2 is below one SHA-256 pass alone (${r(sha)}× here), which the manifest needs whatever else is saved; the fixed cost is ${r(fixed)}×.`;
  if (fixed + sha > 1.2) return `A ratio of 1.2 is below the fixed cost and one SHA-256 pass together (${r(fixed)}× + ${r(sha)}× here), both paid on one core before a byte is compared with tar.`;
  return `The fixed cost is ${r(fixed)}× and one SHA-256 pass ${r(sha)}×.`;
}

export async function runArtifactBench(opts: { quick: boolean; log?: (line: string) => void }): Promise<Result> {
  const { quick } = opts;
  const log = opts.log ?? ((): void => undefined);
  const started = Date.now();
  const work = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-artifact-'));
  const machine = await describeMachine({ tmpDir: tmpdir() });
  const BIN = installedBin();
  const runs = quick ? 2 : 7;
  try {
    // The data sets: the 10k small-file tree as .tar.gz, four 64 MiB files as .tar, the 100k tree as .tar.gz.
    const small = join(work, 'small');
    await makeTree(small, quick ? TREE_PRESETS['1k'] : TREE_PRESETS['10k']);
    const smallTgz = join(work, 'small.tar.gz');
    execFileSync('tar', ['-czf', smallTgz, '-C', small, '.']);
    const big = join(work, 'big');
    await mkdir(big);
    const bigMiB = quick ? 8 : 64;
    for (let i = 0; i < 4; i++) {
      const next = prng(i + 1);
      const buf = Buffer.allocUnsafe(bigMiB * MiB);
      for (let o = 0; o + 4 <= buf.length; o += 4) buf.writeUInt32LE(next(), o);
      await writeFile(join(big, `part${i}.bin`), buf);
    }
    const bigTar = join(work, 'big.tar');
    execFileSync('tar', ['-cf', bigTar, '-C', big, '.']);
    // One small file: what a deploy costs whatever the archive holds (start-up, lock, journal, switch, scans).
    const tiny = join(work, 'tiny');
    await mkdir(tiny);
    await writeFile(join(tiny, 'index.html'), 'ok\n');
    const tinyTar = join(work, 'tiny.tar');
    execFileSync('tar', ['-cf', tinyTar, '-C', tiny, '.']);
    const target = join(work, 'target');

    const pair = (name: string, cmd: string, args: string[]): PairedCase => ({
      name,
      setup: async () => {
        await rm(target, { recursive: true, force: true });
        await mkdir(target);
        // The last case's files (and their removal) written out now, not during this case's run.
        await timeCommand('sync', ['-f', work]);
      },
      run: async () => void (await timeCommand(cmd, args)),
      teardown: () => rm(target, { recursive: true, force: true }),
    });
    const tarSmall = `tar -xzf (${quick ? '1k' : '10k'} files, empty dir)`;
    const oursSmall = `atomic-deploy deploy .tar.gz --no-fsync (${quick ? '1k' : '10k'} files, new root)`;
    const smallResult = await pairedRuns([pair(tarSmall, 'tar', ['-xzf', smallTgz, '-C', target]), pair(oursSmall, NODE, [BIN, 'deploy', smallTgz, join(target, 'root'), '--no-fsync', '--quiet'])], { runs, warmup: 1, baseline: tarSmall });
    log(`artifact small: ${smallResult.cases.map((c) => `${c.name} ${c.median.toFixed(0)} ms`).join('; ')}`);
    const tarBig = `tar -xf (4 × ${bigMiB} MiB, empty dir)`;
    const oursBig = `atomic-deploy deploy .tar --no-fsync (4 × ${bigMiB} MiB, new root)`;
    const oursTiny = 'atomic-deploy deploy .tar --no-fsync (1 small file, new root)';
    // One SHA-256 pass over the archive with OpenSSL, whose code Node's crypto runs: the deploy makes two (files, whole artifact).
    const shaBig = `openssl dgst -sha256 (the 4 × ${bigMiB} MiB .tar, one pass)`;
    const bigResult = await pairedRuns(
      [
        pair(tarBig, 'tar', ['-xf', bigTar, '-C', target]),
        pair(oursBig, NODE, [BIN, 'deploy', bigTar, join(target, 'root'), '--no-fsync', '--quiet']),
        pair(oursTiny, NODE, [BIN, 'deploy', tinyTar, join(target, 'root'), '--no-fsync', '--quiet']),
        pair(shaBig, 'openssl', ['dgst', '-sha256', '-out', '/dev/null', bigTar]),
      ],
      { runs, warmup: 1, baseline: tarBig },
    );
    log(`artifact big: ${bigResult.cases.map((c) => `${c.name} ${c.median.toFixed(0)} ms`).join('; ')}`);
    // Why the tar reader reuses its buffers: the same reads and hashes, into one buffer or a new one each time, alternated.
    const cpu: { reused: number[]; fresh: number[] } = { reused: [], fresh: [] };
    for (let i = 0; i < (quick ? 2 : 5); i++) {
      cpu.reused.push(readAndHashCpuMs(bigTar, false));
      cpu.fresh.push(readAndHashCpuMs(bigTar, true));
    }
    const reusedCpu = median(cpu.reused);
    const freshCpu = median(cpu.fresh);
    log(`artifact buffers: reused ${reusedCpu.toFixed(0)} ms, fresh ${freshCpu.toFixed(0)} ms CPU`);
    await rm(small, { recursive: true, force: true });
    await rm(big, { recursive: true, force: true });
    await rm(tiny, { recursive: true, force: true });

    const huge = join(work, 'huge');
    const hugeFiles = quick ? '10k' : '100k';
    await makeTree(huge, TREE_PRESETS[hugeFiles]);
    const hugeTgz = join(work, 'huge.tar.gz');
    execFileSync('tar', ['-czf', hugeTgz, '-C', huge, '.']);
    await rm(huge, { recursive: true, force: true });
    const rssKiB: number[] = [];
    for (let i = 0; i < (quick ? 1 : 3); i++) {
      await rm(target, { recursive: true, force: true });
      rssKiB.push(await peakRssOfCommand(NODE, [BIN, 'deploy', hugeTgz, join(target, 'root'), '--no-fsync', '--quiet']));
    }
    await rm(target, { recursive: true, force: true });
    const peakMiB = Math.max(...rssKiB) / 1024;
    log(`artifact rss: ${hugeFiles} files peak ${peakMiB.toFixed(0)} MiB`);

    const ratio = (r: PairedResult): number => r.cases[1]?.ratio ?? NaN;
    const r2 = (x: number): number => Math.round(x * 100) / 100;
    const rows = (r: PairedResult): (string | number)[][] => r.cases.map((c) => [c.name, Math.round(c.median), Math.round(c.min), Math.round(c.max), r2(c.ratio)]);
    return {
      name: 'artifact',
      title: 'Deploying an artifact',
      description:
        'A deploy from an archive (extracted straight into the staged release, every file hashed into the manifest on the way) against `tar -x` of the same archive into an empty directory. Both without fsync; the deploy also takes the lock, writes the journal and the release log, and switches `current`. Alternated round by round, medians.',
      machine,
      quick,
      tables: [
        {
          caption: 'Targets',
          columns: ['target', 'goal', 'measured', 'met'],
          rows: [
            [`${oursSmall} / ${tarSmall}`, '≤ 1.2', r2(ratio(smallResult)), ratio(smallResult) <= 1.2 ? 'met' : 'MISSED'],
            [`${oursBig} / ${tarBig}`, '≤ 1.2', r2(ratio(bigResult)), ratio(bigResult) <= 1.2 ? 'met' : 'MISSED'],
            [`peak RSS, deploy of a ${hugeFiles}-file .tar.gz (MiB, max of ${rssKiB.length})`, '≤ 200', Math.round(peakMiB), peakMiB <= 200 ? 'met' : 'MISSED'],
          ],
        },
        { caption: `Small files (median of ${runs}, ms)`, columns: ['command', 'median', 'min', 'max', '× tar'], rows: rows(smallResult) },
        { caption: `Large files (median of ${runs}, ms)`, columns: ['command', 'median', 'min', 'max', '× tar'], rows: rows(bigResult) },
        {
          caption: `Reading the ${4 * bigMiB} MiB .tar in 1 MiB reads and hashing each, in this process (CPU ms, median of ${cpu.reused.length}, alternated)`,
          columns: ['buffer', 'CPU ms', '× reused'],
          rows: [
            ['one reused buffer', Math.round(reusedCpu), 1],
            ['a new buffer per read', Math.round(freshCpu), r2(freshCpu / reusedCpu)],
          ],
        },
      ],
      charts: [],
      notes: [
        'Every deploy here is the command as package.json\'s `bin` installs it (dist/bin/atomic-deploy.cjs, bundled by esbuild), what a user\'s `atomic-deploy` runs; until 2026-12-04 this benchmark ran the tsc output (dist/cli/bin.js), which starts tens of ms slower.',
        'GNU tar runs gzip as a second process, so decompression and file writing overlap on two cores; Node decompresses on its thread pool and writes from the main thread, and since 2026-12-05 the two overlap as well: zlib inflates the next 256 KiB while the main thread writes the files of the last (up to 1 MiB waits). Here the small-file case is bound by creating 10,000 files on this disk (see the spread of the tar row), where that overlap does not move the median.',
        'The deploy includes Node start-up and loading the CLI (see the start-up benchmark), which `tar` does not pay; the 1-file row is that fixed cost, in the same rounds as the large files, as a multiple of `tar -xf` of the 256 MiB archive.',
        `Where the large-file time goes: the 1-file row (Node start-up, loading the CLI, lock, journal, switch, the /proc scan) is paid whatever the archive holds; the \`openssl\` row is one SHA-256 pass over the archive, and a deploy makes two (each file into the manifest, the whole artifact for \`--sha256\` and the release log); the rest is read(2) and write(2) of the archive's bytes, which is all \`tar -xf\` does. ${floorNote(bigResult)}`,
        `A tar or tar.gz is read into two reused 1 MiB buffers and parsed by src/plan/tar.ts, which keeps nothing of a chunk after the call: here reading and hashing into a new buffer per read (as fs.createReadStream and tar-stream need) cost ${r2(freshCpu / reusedCpu)}× the CPU of one reused buffer (${Math.round(freshCpu)} ms against ${Math.round(reusedCpu)} ms for the ${4 * bigMiB} MiB archive, last table).`,
        'On a busy 2-core machine the wall time follows the CPU time (user + sys): moving the SHA-256 of each file and of the whole artifact to worker threads (with copies of the chunks) was tried and measured slower, so hashing stays on the main thread (not a row here: the code is not kept).',
        runNote(started, machine),
      ],
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
