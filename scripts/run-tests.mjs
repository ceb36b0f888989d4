// Runs every test file in its own `node --test` process. Files run two at a time on a machine with
// two cores or more (`--jobs N` or TEST_JOBS=N sets the number; 1 runs them one after another):
// every system test makes its own temp dirs, loopback ports (port 0), network namespaces and
// subnets (named by its pid, test/harness/fleet.ts), and mounts. A file whose first lines hold
// `// test-runner: alone` runs with nothing beside it, after the others: it measures timing or
// load (a reader racing a switch, wrk, a signal answered within a second), where a neighbour's
// work would change what it measures. No file may rebuild the dist/ the others run (the package
// test builds in a copy of the checkout).
// A file that fails is run once more, alone, and both results are reported: timing-sensitive
// system tests on a loaded 2-core machine can lose a race with the scheduler, while a real defect
// fails twice; the summary marks a file that passed only on its second run FLAKY. A skipped or
// todo test fails its file, and so does a file still running after TEST_FILE_TIMEOUT_S seconds
// (default 900), which is stopped. The exit code is non-zero if any file failed twice.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));

function parseArgs(argv) {
  const files = [];
  let jobs = process.env.TEST_JOBS;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--jobs' || arg === '-j') jobs = argv[++i];
    else if (arg.startsWith('--jobs=')) jobs = arg.slice('--jobs='.length);
    else files.push(arg);
  }
  const n = jobs === undefined || jobs === '' ? Math.min(2, os.availableParallelism()) : Number(jobs);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`run-tests: --jobs (or TEST_JOBS) must be a whole number of at least 1, got ${JSON.stringify(jobs)}`);
    process.exit(2);
  }
  return { files, jobs: n };
}

const { files: only, jobs } = parseArgs(process.argv.slice(2));
/** How long one file may run: the longest take about two minutes here. */
const fileTimeoutS = Number(process.env.TEST_FILE_TIMEOUT_S) > 0 ? Number(process.env.TEST_FILE_TIMEOUT_S) : 900;
/** The test files of a directory, or the file itself. */
const testFiles = (entry) =>
  fs.statSync(path.resolve(repo, entry)).isDirectory()
    ? fs.readdirSync(path.resolve(repo, entry)).filter((f) => f.endsWith('.test.ts')).sort().map((f) => path.join(entry, f))
    : [entry];
const files = (only.length > 0 ? only : ['test/unit', 'test/system']).flatMap(testFiles);

/** Whether a test file asks to run with no other file beside it (a marker in its first 4 KiB). */
function runsAlone(file) {
  const fd = fs.openSync(path.resolve(repo, file), 'r');
  try {
    const head = Buffer.alloc(4096);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    return /^\/\/ test-runner: alone\b/m.test(head.subarray(0, n).toString('utf8'));
  } finally {
    fs.closeSync(fd);
  }
}

/** CPU seconds (user + system) of this process's waited-for children so far: Linux /proc only. */
function childCpu() {
  try {
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[13]) + Number(fields[14])) / 100;
  } catch {
    return NaN;
  }
}

/** Files running now: a file's CPU time is its own only while it runs alone. */
let running = 0;

function run(file) {
  const started = Date.now();
  const cpuBefore = running === 0 ? childCpu() : NaN;
  running += 1;
  const child = spawn(process.execPath, ['--import', 'tsx', '--test', file], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  const err = [];
  child.stdout.on('data', (b) => out.push(b));
  child.stderr.on('data', (b) => err.push(b));
  // A file that hangs is stopped and fails, its output printed, instead of holding its lane (and
  // the job) until the CI's own limit ends everything with no output at all.
  let timedOut = false;
  let killTimer;
  const stopTimer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  }, fileTimeoutS * 1000);
  return new Promise((resolve) => {
    child.on('close', (status) => {
      clearTimeout(stopTimer);
      clearTimeout(killTimer);
      running -= 1;
      const cpu = running === 0 ? childCpu() - cpuBefore : NaN;
      const stdout = Buffer.concat(out).toString('utf8');
      // One file's output at a time, whole, so that two files running at once never interleave.
      process.stdout.write(stdout);
      process.stderr.write(Buffer.concat(err));
      if (timedOut) console.log(`# ${file} was stopped after ${fileTimeoutS} s (TEST_FILE_TIMEOUT_S)`);
      const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(stdout)?.[1] ?? 0);
      // A skipped or todo test counts as failing: a test whose tool is missing must fail, not skip.
      const skipped = count('skipped') + count('todo');
      resolve({ ok: status === 0 && skipped === 0 && !timedOut, pass: count('pass'), fail: count('fail') + skipped, skipped, seconds: (Date.now() - started) / 1000, cpu, timedOut });
    });
  });
}

/** Runs `list` with at most `width` files at once; `each` gets every result as it comes. */
async function pool(list, width, each) {
  const queue = [...list];
  const lane = async () => {
    for (let file = queue.shift(); file !== undefined; file = queue.shift()) each(file, await run(file));
  };
  await Promise.all(Array.from({ length: Math.min(width, list.length) }, lane));
}

const started = Date.now();
const results = new Map();
const failedOnce = [];
const record = (file, result) => {
  results.set(file, { result, note: '' });
  if (!result.ok) failedOnce.push(file);
};
const alone = files.filter(runsAlone);
// The short unit files last, so that they fill a lane the last long system file leaves idle.
const shared = files.filter((f) => !alone.includes(f));
const isUnit = (f) => f.split(path.sep).includes('unit');
await pool([...shared.filter((f) => !isUnit(f)), ...shared.filter(isUnit)], jobs, record);
await pool(alone, 1, record);
const flaky = [];
// A failed file runs again with nothing beside it.
for (const file of failedOnce) {
  const first = results.get(file).result;
  console.log(`\n# ${file} failed (${first.fail} failing); running it once more`);
  const result = await run(file);
  results.set(file, { result, note: result.ok ? ` (passed on the second run; first run: ${first.fail} failed)` : ' (failed twice)' });
  if (result.ok) flaky.push(file);
}

const summary = [];
let passed = 0;
let failed = 0;
for (const file of files) {
  const { result, note } = results.get(file);
  passed += result.pass;
  failed += result.ok ? 0 : Math.max(1, result.fail);
  const mark = !result.ok ? 'FAIL ' : note ? 'FLAKY' : 'ok   ';
  const cpu = Number.isNaN(result.cpu) ? '' : ` (CPU ${result.cpu.toFixed(1)} s)`;
  summary.push(`${mark} ${file} ${result.pass} passed, ${result.fail} failed${result.skipped ? ` (${result.skipped} skipped or todo)` : ''}, ${result.seconds.toFixed(1)} s${cpu}${alone.includes(file) ? ', alone' : ''}${result.timedOut ? `, stopped after ${fileTimeoutS} s` : ''}${note}`);
}
console.log(`\n${summary.join('\n')}`);
// A file that passed only on its second run is a finding, not noise: in a tool about races it may be one.
if (flaky.length > 0) console.log(`\nflaky (passed only on the second run): ${flaky.join(', ')}`);
console.log(`${files.length} files in ${((Date.now() - started) / 1000).toFixed(0)} s, ${jobs === 1 ? 'one at a time' : `${jobs} at a time`} (${alone.length} alone)`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
