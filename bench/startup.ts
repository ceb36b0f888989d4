// Start-up: `--version` of the package's bin and of the one-file bundle against `node -e 0`, and
// what loading the whole CLI (any real command) adds on top.
import { dirname, join, resolve } from 'node:path';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
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
const PKG_VERSION = 'atomic-deploy --version (package bin)';
const BUNDLE_VERSION = 'node atomic-deploy.mjs --version (bundle)';
const PKG_STATUS = 'atomic-deploy status <root> (package bin)';
const PKG_RELEASES = 'atomic-deploy releases <root> (package bin)';
const BUNDLE_STATUS = 'node atomic-deploy.mjs status <root> (bundle)';
const BUNDLE_RELEASES = 'node atomic-deploy.mjs releases <root> (bundle)';
const SPLIT_STATUS = 'node split/bin.js status <root> (bundle split by command)';
const SPLIT_RELEASES = 'node split/bin.js releases <root> (bundle split by command)';
/** The real commands a person runs most, side by side with `node -e 0`. */
const COMMAND_TARGETS = [PKG_STATUS, PKG_RELEASES, BUNDLE_STATUS, BUNDLE_RELEASES, SPLIT_STATUS, SPLIT_RELEASES];

/**
 * A candidate for the installed command: the CLI bundled with esbuild's code splitting, so a
 * command loads one entry chunk and the chunks it imports instead of ~50 module files.
 */
async function buildSplitBundle(outdir: string): Promise<string> {
  const { build } = await import('esbuild');
  await build({
    entryPoints: [join(REPO, 'src', 'cli', 'bin.ts')],
    bundle: true,
    splitting: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    outdir,
    minify: true,
    define: { ATOMIC_DEPLOY_VERSION: JSON.stringify('0.0.0-bench') },
    // As in scripts/bundle.mjs: some dependencies call require() for Node built-ins.
    banner: { js: "import { createRequire as __adCreateRequire } from 'node:module'; const require = __adCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  return join(outdir, 'bin.js');
}

/** Modules whose loading a real command pays for; measured one per fresh process. */
const IMPORTS = ['commander', 'yaml', 'zod/mini', './dist/index.js', './dist/cli/main.js'];

export async function runStartupBench(opts: { quick: boolean; log?: (line: string) => void }): Promise<Result> {
  const { quick } = opts;
  const log = opts.log ?? ((): void => undefined);
  const started = Date.now();
  const machine = await describeMachine();
  // The bundle as `npm run bundle` makes it (`npm run bench` has just built dist/).
  const BIN = benchBin();
  await timeCommand(NODE, [join(REPO, 'scripts', 'bundle.mjs')], { cwd: REPO });
  // The bundle needs nothing beside it: run it from a directory of its own, as users copy it.
  const bundleDir = await mkdtemp(join(tmpdir(), 'atomic-deploy-bench-bundle-'));
  const BUNDLE = join(bundleDir, 'atomic-deploy.mjs');
  await copyFile(join(REPO, 'dist', 'atomic-deploy.mjs'), BUNDLE);
  const SPLIT = await buildSplitBundle(join(bundleDir, 'split'));
  // The copy of dist/ holds a node_modules link, so module imports resolve there as in the package.
  const snapshotRoot = dirname(dirname(dirname(BIN)));
  const runs = quick ? 3 : 41;
  const importRuns = quick ? 1 : 9;
  const importMs: { module: string; ms: number }[] = [];
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
    const cases = [
      command(BASELINE, ['-e', '0']),
      command(PKG_VERSION, [BIN, '--version']),
      command(BUNDLE_VERSION, [BUNDLE, '--version']),
      command('atomic-deploy --help (package bin, whole CLI loaded)', [BIN, '--help']),
      command('node atomic-deploy.mjs --help (bundle, whole CLI loaded)', [BUNDLE, '--help']),
      command(PKG_STATUS, [BIN, 'status', root]),
      command(PKG_RELEASES, [BIN, 'releases', root]),
      command(BUNDLE_STATUS, [BUNDLE, 'status', root]),
      command(BUNDLE_RELEASES, [BUNDLE, 'releases', root]),
      command(SPLIT_STATUS, [SPLIT, 'status', root]),
      command(SPLIT_RELEASES, [SPLIT, 'releases', root]),
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
  } finally {
    await rm(bundleDir, { recursive: true, force: true });
  }

  const ratio = (name: string): number => result.cases.find((c) => c.name === name)?.ratio ?? NaN;
  const r2 = (x: number): number => Math.round(x * 100) / 100;
  return {
    name: 'startup',
    title: 'Start-up time',
    description:
      '`--version` answers before the CLI is loaded: the package bin (`dist/cli/bin.js`, what the installed `atomic-deploy` command runs) and the one-file bundle (`npm run bundle`), against `node -e 0`. `--help` loads the whole CLI, as every real command does.',
    machine,
    quick,
    tables: [
      {
        caption: 'Targets',
        columns: ['target', 'goal', 'measured', 'met'],
        rows: [
          [`${PKG_VERSION} / ${BASELINE}`, '≤ 1.5', r2(ratio(PKG_VERSION)), ratio(PKG_VERSION) <= 1.5 ? 'met' : 'MISSED'],
          [`${BUNDLE_VERSION} / ${BASELINE}`, '≤ 1.5', r2(ratio(BUNDLE_VERSION)), ratio(BUNDLE_VERSION) <= 1.5 ? 'met' : 'MISSED'],
          ...COMMAND_TARGETS.map((name) => [`${name} / ${BASELINE}`, '≤ 1.5', r2(ratio(name)), ratio(name) <= 1.5 ? 'met' : 'MISSED']),
        ],
      },
      {
        caption: `Wall time of the whole process (median of ${runs}, alternated)`,
        columns: ['command', 'median ms', 'min ms', 'max ms', `× ${BASELINE}`],
        rows: result.cases.map((c) => [c.name, Math.round(c.median * 10) / 10, Math.round(c.min * 10) / 10, Math.round(c.max * 10) / 10, r2(c.ratio)]),
      },
      {
        caption: `Loading one module in a fresh process (median of ${importRuns}, ms, start-up excluded)`,
        columns: ['module', 'ms'],
        rows: importMs.map((m) => [m.module, Math.round(m.ms * 10) / 10]),
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
      'The installed command is a link to `dist/cli/bin.js`, which reads its version from package.json and imports nothing else for `--version`.',
      'The split bundle (esbuild `splitting: true`, built by this benchmark) is measured as a candidate for the installed command; the package still installs the tsc output of `dist/`.',
      'The bundle holds the whole CLI and its dependencies in one file, which Node has to read and compile before its first line runs, `--version` included; the package bin compiles only its own few lines.',
      runNote(started, machine),
    ],
  };
}
