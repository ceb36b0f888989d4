// Start-up: `status`, `releases` and `--version` of the installed command (the bundle split by
// command), of the one-file bundle and of the tsc output, against `node -e 0`, and where the time goes.
import { dirname, join, resolve } from 'node:path';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { benchBin } from './bin.ts';
import { describeMachine, runNote } from './lib/env.ts';
import { median, pairedRuns, timeCommand } from './lib/measure.ts';
import type { PairedCase, PairedResult } from './lib/measure.ts';
import type { Result } from './lib/report.ts';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NODE = process.execPath;

const BASELINE = 'node -e 0';
const EMPTY_ESM = 'node empty.mjs (an empty ES module)';
const PKG_VERSION = 'atomic-deploy --version (package bin)';
const BUNDLE_VERSION = 'node atomic-deploy.mjs --version (bundle)';
const PKG_HELP = 'atomic-deploy status --help (package bin, CLI loaded, no root read)';
const PKG_STATUS = 'atomic-deploy status <root> (package bin)';
const PKG_RELEASES = 'atomic-deploy releases <root> (package bin)';
const BUNDLE_STATUS = 'node atomic-deploy.mjs status <root> (bundle)';
const BUNDLE_RELEASES = 'node atomic-deploy.mjs releases <root> (bundle)';
const TSC_STATUS = 'node dist/cli/bin.js status <root> (tsc output, not bundled)';
const TSC_RELEASES = 'node dist/cli/bin.js releases <root> (tsc output, not bundled)';
/** The real commands a person runs most, side by side with `node -e 0`. */
const COMMAND_TARGETS = [PKG_STATUS, PKG_RELEASES, BUNDLE_STATUS, BUNDLE_RELEASES];

/** Modules whose loading a real command would pay for; measured one per fresh process. */
const IMPORTS = ['node:child_process', 'node:crypto', 'commander', 'yaml', 'zod/mini', './dist/index.js', './dist/cli/main.js'];

export async function runStartupBench(opts: { quick: boolean; log?: (line: string) => void }): Promise<Result> {
  const { quick } = opts;
  const log = opts.log ?? ((): void => undefined);
  const started = Date.now();
  const machine = await describeMachine();
  // The package bin as `npm run build` makes it (dist/bin/, split by command) and the one-file
  // bundle as `npm run bundle` makes it, both from the private copy of dist/.
  const TSC_BIN = benchBin();
  const snapshotRoot = dirname(dirname(dirname(TSC_BIN)));
  const BIN = join(snapshotRoot, 'dist', 'bin', 'atomic-deploy.cjs');
  await timeCommand(NODE, [join(REPO, 'scripts', 'bundle.mjs')], { cwd: REPO });
  // The bundle needs nothing beside it: run it from a directory of its own, as users copy it.
  const bundleDir = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-bundle-'));
  const BUNDLE = join(bundleDir, 'atomic-deploy.mjs');
  await copyFile(join(REPO, 'dist', 'atomic-deploy.mjs'), BUNDLE);
  const EMPTY = join(bundleDir, 'empty.mjs');
  await writeFile(EMPTY, '');
  const runs = quick ? 3 : 41;
  const importRuns = quick ? 1 : 9;
  const importMs: { module: string; ms: number }[] = [];
  const codeFiles: { name: string; files: number }[] = [];
  let result: PairedResult;
  try {
    const check = await timeCommand(NODE, [BUNDLE, '--version']);
    const pkgCheck = await timeCommand(NODE, [BIN, '--version']);
    if (check.stdout.trim() === '' || check.stdout.trim() !== pkgCheck.stdout.trim()) {
      throw new Error(`--version disagrees: bundle ${JSON.stringify(check.stdout)}, package ${JSON.stringify(pkgCheck.stdout)}`);
    }
    const command = (name: string, args: string[]): PairedCase => ({ name, run: async () => void (await timeCommand(NODE, args, { cwd: bundleDir })) });
    // A root with two releases for status and releases to read.
    const root = join(bundleDir, 'root');
    const build = join(bundleDir, 'build');
    await mkdir(build);
    await writeFile(join(build, 'index.html'), 'startup\n');
    for (let i = 0; i < 2; i++) await timeCommand(NODE, [BIN, 'deploy', build, root, '--quiet', '--no-fsync']);
    // Every case must answer as the package bin does, or the rows compare different work.
    const expected = (await timeCommand(NODE, [BIN, 'status', root])).stdout;
    for (const bin of [BUNDLE, TSC_BIN]) {
      const got = (await timeCommand(NODE, [bin, 'status', root])).stdout;
      if (got !== expected || !/^current: \S+/.test(got)) throw new Error(`status disagrees: ${JSON.stringify(got)} vs ${JSON.stringify(expected)}`);
    }
    const cases = [
      command(BASELINE, ['-e', '0']),
      command(EMPTY_ESM, [EMPTY]),
      command(PKG_VERSION, [BIN, '--version']),
      command(BUNDLE_VERSION, [BUNDLE, '--version']),
      command(PKG_HELP, [BIN, 'status', '--help']),
      command(PKG_STATUS, [BIN, 'status', root]),
      command(PKG_RELEASES, [BIN, 'releases', root]),
      command(BUNDLE_STATUS, [BUNDLE, 'status', root]),
      command(BUNDLE_RELEASES, [BUNDLE, 'releases', root]),
      command(TSC_STATUS, [TSC_BIN, 'status', root]),
      command(TSC_RELEASES, [TSC_BIN, 'releases', root]),
    ];
    result = await pairedRuns(cases, { runs, warmup: quick ? 1 : 3, baseline: BASELINE });
    log(`startup: ${result.cases.map((c) => `${c.name} ${c.median.toFixed(1)} ms`).join('; ')}`);

    // Time to import each module in a fresh process, measured inside it (start-up excluded).
    for (const mod of IMPORTS) {
      const samples: number[] = [];
      for (let i = 0; i < importRuns; i++) {
        const r = await timeCommand(NODE, ['--input-type=module', '-e', `const t = performance.now(); await import(${JSON.stringify(mod)}); console.log(performance.now() - t);`], { cwd: snapshotRoot });
        samples.push(Number(r.stdout.trim()));
      }
      importMs.push({ module: mod, ms: median(samples) });
    }
    log(`startup: import ${importMs.map((m) => `${m.module} ${m.ms.toFixed(1)} ms`).join(', ')}`);

    // How many code files each form reads for one `status`: the per-file cost of ES modules.
    for (const [name, bin] of [[PKG_STATUS, BIN], [BUNDLE_STATUS, BUNDLE], [TSC_STATUS, TSC_BIN]] as const) {
      const trace = join(bundleDir, 'openat.trace');
      await timeCommand('strace', ['-f', '-e', 'trace=openat', '-o', trace, NODE, bin, 'status', root], { cwd: bundleDir });
      const opened = (await readFile(trace, 'utf8')).split('\n').filter((l) => /\.([mc]?js|json)", /.test(l) && !l.includes(' = -1 '));
      codeFiles.push({ name, files: new Set(opened.map((l) => /"([^"]+)"/.exec(l)?.[1])).size });
    }
  } finally {
    await rm(bundleDir, { recursive: true, force: true });
  }

  const ratio = (name: string): number => result.cases.find((c) => c.name === name)?.ratio ?? NaN;
  // The fastest of the alternated runs: on a shared machine it is the one least disturbed by other work.
  const least = (name: string): number => result.cases.find((c) => c.name === name)?.min ?? NaN;
  const minRatio = (name: string): number => least(name) / least(BASELINE);
  const r1 = (x: number): number => Math.round(x * 10) / 10;
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  const share = (ms: number): string => `${Math.round((ms / least(PKG_STATUS)) * 100)} %`;
  const phases: [string, number][] = [
    ["Node's own start-up (`node -e 0`)", least(BASELINE)],
    ['an ES module as entry: the module loader (`empty.mjs` − `node -e 0`)', least(EMPTY_ESM) - least(BASELINE)],
    ['loading the CLI: its chunks, commander, the commands built, help printed (`status --help` − `empty.mjs`)', least(PKG_HELP) - least(EMPTY_ESM)],
    ['reading the root (lock, journal, `current`, leftovers) and printing (`status <root>` − `status --help`)', least(PKG_STATUS) - least(PKG_HELP)],
  ];
  return {
    name: 'startup',
    title: 'Start-up time',
    description:
      'The installed `atomic-deploy` command (package.json `bin`: `dist/bin/atomic-deploy.cjs`, a CommonJS launcher that starts the thread-pool timer, then the CLI bundled and split by command by `npm run build`) and the one-file bundle (`npm run bundle`) against `node -e 0`, running `status` and `releases` on a root with two releases, and `--version`, which answers before the CLI is loaded. The tsc output (`dist/cli/bin.js`, which the tests that arm failpoints run; the others run the package bin) is measured beside them.',
    machine,
    quick,
    tables: [
      {
        caption: 'Targets',
        columns: ['target', 'goal', 'measured (medians)', 'met', 'ratio of the minimums'],
        rows: [PKG_VERSION, BUNDLE_VERSION, ...COMMAND_TARGETS].map((name) => [`${name} / ${BASELINE}`, '≤ 1.5', r2(ratio(name)), ratio(name) <= 1.5 ? 'met' : 'MISSED', r2(minRatio(name))]),
      },
      {
        caption: `Wall time of the whole process (median of ${runs}, alternated)`,
        columns: ['command', 'median ms', 'min ms', 'max ms', `× ${BASELINE}`, `min × ${BASELINE} min`],
        rows: result.cases.map((c) => [c.name, r1(c.median), r1(c.min), r1(c.max), r2(c.ratio), r2(minRatio(c.name))]),
      },
      {
        caption: 'Where `atomic-deploy status <root>` (package bin) spends its time: differences of the minimum times above (medians on a loaded machine mix in other work)',
        columns: ['phase', 'ms', 'share'],
        rows: [...phases.map(([phase, ms]) => [phase, r1(ms), share(ms)]), ['the whole process', r1(least(PKG_STATUS)), '100 %']],
      },
      {
        caption: 'Files a `status <root>` run reads its code from (`strace -e openat`, JavaScript files and package.json files)',
        columns: ['command', 'code files'],
        rows: codeFiles.map((f) => [f.name, f.files]),
      },
      {
        caption: `Loading one module in a fresh process (median of ${importRuns}, ms, start-up excluded)`,
        columns: ['module', 'ms'],
        rows: importMs.map((m) => [m.module, r1(m.ms)]),
      },
    ],
    charts: [
      {
        file: 'startup',
        caption: `Start-up time relative to ${BASELINE}`,
        spec: { type: 'bar', title: `Start-up time relative to ${BASELINE}`, unit: '×', referenceLine: 1.5, rows: result.cases.map((c) => ({ label: c.name, value: r2(c.ratio) })) },
      },
    ],
    notes: [
      '`npm run build` bundles the CLI with esbuild, split by command (`splitting: true`, `scripts/bundle.mjs --bin`): `status` and `releases` load the entry and the chunks they import, and the code of `deploy`, archives, hosts, hashing, the config parser (yaml, zod/mini) and completion stays in chunks loaded only by the commands that use it. yaml and zod/mini load only when a config file exists.',
      'In the package bin, `node:child_process` (which commander requires at load, for executable subcommands this CLI does not have) and `node:crypto` (temp names and hashes) load on first use, not at start-up; the table of module loads shows what each costs.',
      'Each ES module file costs Node a resolve, a read, a compile and a link before any code runs: the tsc output reads about fifty files for `status`, the package bin a handful of chunks.',
      '`--version` answers from the entry file alone; the one-file bundle has to read and compile the whole tool first.',
      'Node 20 has no compile cache for ES modules (`module.enableCompileCache` is Node 22.1+), so every run compiles what it loads.',
      runNote(started, machine),
    ],
  };
}
