// The /proc scan behind prune's in-use guard and the stale-process check, against real processes:
// every kind of hold (working directory, root, executable, open file, mapped file) is found, and
// the scan's shortcuts (maps left unread once a process is decided, no end read after the
// vsyscall line) lose nothing: gaps in the descriptor table, no descriptors, maps past one read.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { scanProcessUses } from '../../src/act/in-use.ts';
import type { StaleReport } from '../../src/plan/serving.ts';
import { tempDir } from '../harness/cli.ts';
import { requireTool } from '../harness/swappers.ts';

type Hold = { kind: string; path: string };
type After = { after(fn: () => Promise<void> | void): void };

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

function start(t: After, file: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; stdio?: ('ignore' | number)[] }): number {
  const child = spawn(file, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: opts.stdio ?? 'ignore' });
  t.after(async () => {
    child.kill('SIGKILL');
    await exited(child);
  });
  if (child.pid === undefined) throw new Error(`could not start ${file}`);
  return child.pid;
}

/** Waits until `check` holds for the process's /proc entry, so that a scan cannot run before the process got there. */
async function settled(pid: number, what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      if (check()) return;
    } catch {
      // not yet
    }
    await sleep(10);
  }
  throw new Error(`pid ${pid} never showed ${what}`);
}

const mapsOf = (pid: number): string => fs.readFileSync(`/proc/${pid}/maps`, 'utf8');

/**
 * In its sleep (the kernel's wait channel is the nanosleep timer): a program that got there opens
 * nothing more. Until then its loader and libc come and go with descriptors of their own
 * (ld.so.cache, the libraries, locale files), which a scan in that moment sees beside the ones a
 * test arranged: a check of the exact descriptor table once failed with fd 13, the loader's.
 */
const asleep = (pid: number): boolean => fs.readFileSync(`/proc/${pid}/wchan`, 'utf8').includes('nanosleep');

const STALE = fileURLToPath(new URL('../../dist/act/stale.js', import.meta.url));
const IN_USE = fileURLToPath(new URL('../../dist/act/in-use.js', import.meta.url));

/**
 * What the full scan (prune's) and the stale scan say each of `pids` holds under `dir`. The stale
 * scan leaves out its own descendants, so it runs in a process of its own, as after a deploy.
 */
function scanned(dir: string, pids: number[]): { full: Map<number, Hold[]>; stale: Map<number, Hold[]> } {
  const full = new Map<number, Hold[]>();
  const scan = scanProcessUses(dir);
  assert.ok(scan.supported);
  for (const use of scan.uses) if (pids.includes(use.pid)) full.set(use.pid, [...(full.get(use.pid) ?? []), { kind: use.kind, path: use.path }]);
  const code = 'const [file, dir] = process.argv.slice(1); const { scanStale } = await import(file); console.log(JSON.stringify(scanStale(dir, "r1")));';
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', code, STALE, dir], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  const report = JSON.parse(child.stdout) as StaleReport;
  assert.equal(report.check, 'proc');
  const stale = new Map(report.processes.filter((p) => pids.includes(p.pid)).map((p) => [p.pid, p.holds]));
  return { full, stale };
}

const sorted = (holds: Hold[] | undefined): Hold[] => [...(holds ?? [])].sort((a, b) => (a.kind + a.path).localeCompare(b.kind + b.path));

/** The shared objects `file` loads, from ldd: their absolute paths (the loader included). */
function libraries(file: string): string[] {
  const ldd = spawnSync(requireTool('ldd', 'libc-bin'), [file], { encoding: 'utf8' });
  if (ldd.status !== 0) throw new Error(`ldd ${file} failed: ${ldd.stderr}`);
  return [...ldd.stdout.matchAll(/(\/\S+) \(0x/g)].map((m) => m[1] as string);
}

void test('every kind of hold is found: working directory, root, executable, open file, mapped file; a sibling with the same prefix is not', async (t) => {
  const dir = tempDir(t);
  const rel = path.join(dir, 'releases', 'r1');
  fs.mkdirSync(rel, { recursive: true });
  fs.writeFileSync(path.join(rel, 'data.txt'), 'data\n');
  const sibling = path.join(dir, 'releases', 'r10');
  fs.mkdirSync(sibling);
  const sleepBin = requireTool('sleep', 'coreutils');
  // A chroot into the release needs the program and what it loads inside it.
  for (const file of [sleepBin, ...libraries(sleepBin)]) {
    fs.mkdirSync(path.join(rel, path.dirname(file)), { recursive: true });
    fs.copyFileSync(file, path.join(rel, file));
    fs.chmodSync(path.join(rel, file), 0o755);
  }
  const libc = libraries(sleepBin).find((l) => path.basename(l).startsWith('libc.so'));
  const zlib = libc && path.join(path.dirname(libc), 'libz.so.1');
  if (!zlib || !fs.existsSync(zlib)) throw new Error('libz.so.1 not found beside libc; install the Debian package zlib1g');
  fs.copyFileSync(zlib, path.join(rel, 'libz.so.1'));
  fs.copyFileSync(sleepBin, path.join(rel, 'sleep'));
  fs.chmodSync(path.join(rel, 'sleep'), 0o755);
  const elsewhere = dir;

  const cwd = start(t, sleepBin, ['300'], { cwd: rel });
  const root = start(t, requireTool('chroot', 'coreutils'), [rel, sleepBin, '300'], { cwd: elsewhere });
  const exe = start(t, path.join(rel, 'sleep'), ['300'], { cwd: elsewhere });
  const fd = fs.openSync(path.join(rel, 'data.txt'), 'r');
  const open = start(t, sleepBin, ['300'], { cwd: elsewhere, stdio: [fd, 'ignore', 'ignore'] });
  fs.closeSync(fd);
  // The loader maps the library and closes its descriptor: only the maps show it.
  const mapped = start(t, sleepBin, ['300'], { cwd: elsewhere, env: { ...process.env, LD_PRELOAD: path.join(rel, 'libz.so.1') } });
  const neighbour = start(t, sleepBin, ['300'], { cwd: sibling });
  await settled(cwd, 'its cwd', () => asleep(cwd) && fs.readlinkSync(`/proc/${cwd}/cwd`) === rel);
  await settled(root, 'its root', () => asleep(root) && fs.readlinkSync(`/proc/${root}/root`) === rel);
  await settled(exe, 'its exe', () => asleep(exe) && fs.readlinkSync(`/proc/${exe}/exe`) === path.join(rel, 'sleep') && mapsOf(exe).includes('libc'));
  await settled(open, 'its fd 0', () => asleep(open) && fs.readlinkSync(`/proc/${open}/fd/0`) === path.join(rel, 'data.txt'));
  await settled(mapped, 'the library mapped', () => asleep(mapped) && mapsOf(mapped).includes(path.join(rel, 'libz.so.1')));
  await settled(neighbour, 'its cwd', () => asleep(neighbour) && fs.readlinkSync(`/proc/${neighbour}/cwd`) === sibling);
  // The control: the preloaded library is mapped but not open, so nothing but the maps finds it.
  assert.ok(fs.readdirSync(`/proc/${mapped}/fd`).every((n) => !fs.readlinkSync(`/proc/${mapped}/fd/${n}`).startsWith(rel)));

  const { full, stale } = scanned(rel, [cwd, root, exe, open, mapped, neighbour]);
  assert.deepEqual(sorted(full.get(cwd)), [{ kind: 'cwd', path: rel }]);
  const rootHolds = sorted(full.get(root));
  assert.deepEqual(rootHolds.filter((h) => h.kind !== 'map'), [{ kind: 'cwd', path: rel }, { kind: 'root', path: rel }]);
  assert.ok(rootHolds.some((h) => h.kind === 'map' && h.path === path.join(rel, sleepBin)), JSON.stringify(rootHolds));
  assert.deepEqual(sorted(full.get(exe)), [{ kind: 'map', path: path.join(rel, 'sleep') }]);
  assert.deepEqual(sorted(full.get(open)), [{ kind: 'fd', path: path.join(rel, 'data.txt') }]);
  assert.deepEqual(sorted(full.get(mapped)), [{ kind: 'map', path: path.join(rel, 'libz.so.1') }]);
  assert.equal(full.get(neighbour), undefined);
  // The stale scan leaves the maps of a process already decided unread, and finds the same processes.
  assert.deepEqual([...stale.keys()].sort(), [cwd, root, exe, open, mapped].sort());
  assert.deepEqual(sorted(stale.get(root)), [{ kind: 'cwd', path: rel }, { kind: 'root', path: rel }]);
  assert.deepEqual(sorted(stale.get(mapped)), [{ kind: 'map', path: path.join(rel, 'libz.so.1') }]);
});

void test('open files behind gaps in the descriptor table, or after many others, are found; a process with no descriptors is still checked', async (t) => {
  const dir = tempDir(t);
  const rel = path.join(dir, 'releases', 'r1');
  fs.mkdirSync(rel, { recursive: true });
  fs.writeFileSync(path.join(rel, 'app.log'), '');
  const python = requireTool('python3', 'python3');
  const sleepBin = requireTool('sleep', 'coreutils');
  // Exactly the descriptors asked for, whatever the test runner inherited: with a file, it is
  // descriptor `at`, and those below it are /dev/null (fill) or closed; every other one is closed.
  const exact = [
    'import os, sys',
    'sleep, file, at, fill = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "fill"',
    'if file: os.dup2(os.open(file, os.O_RDONLY), at)',
    'os.dup2(os.open("/dev/null", os.O_RDONLY), 1000)',
    'for fd in range(max(at, 0)):',
    '    if fill: os.dup2(1000, fd)',
    '    else: os.closerange(fd, fd + 1)',
    'os.closerange(at + 1, 65536)',
    'os.execv(sleep, [sleep, "300"])',
  ].join('\n');
  const log = path.join(rel, 'app.log');
  // Only descriptor 7 open: 0 to 6 closed.
  const gap = start(t, python, ['-c', exact, sleepBin, log, '7', 'gaps'], { cwd: dir });
  // Descriptors 0..11 on /dev/null and the release's file last, at 12.
  const many = start(t, python, ['-c', exact, sleepBin, log, '12', 'fill'], { cwd: dir });
  // No descriptors at all, in the release; and none at all, with only a mapped file there.
  const bare = start(t, python, ['-c', exact, sleepBin, '', '-1', 'gaps'], { cwd: rel });
  const libc = libraries(sleepBin).find((l) => path.basename(l).startsWith('libc.so'));
  const zlib = libc && path.join(path.dirname(libc), 'libz.so.1');
  if (!zlib || !fs.existsSync(zlib)) throw new Error('libz.so.1 not found beside libc; install the Debian package zlib1g');
  fs.copyFileSync(zlib, path.join(rel, 'libz.so.1'));
  const bareMapped = start(t, python, ['-c', exact, sleepBin, '', '-1', 'gaps'], { cwd: dir, env: { ...process.env, LD_PRELOAD: path.join(rel, 'libz.so.1') } });
  const fdsOf = (pid: number): string[] => fs.readdirSync(`/proc/${pid}/fd`).sort((a, b) => Number(a) - Number(b));
  await settled(gap, 'only fd 7', () => asleep(gap) && fdsOf(gap).join() === '7' && mapsOf(gap).includes(sleepBin));
  await settled(many, 'fd 0 to 12', () => asleep(many) && fdsOf(many).length === 13 && mapsOf(many).includes(sleepBin));
  await settled(bare, 'no descriptors', () => asleep(bare) && fdsOf(bare).length === 0 && mapsOf(bare).includes(sleepBin));
  await settled(bareMapped, 'no descriptors and the library', () => asleep(bareMapped) && fdsOf(bareMapped).length === 0 && mapsOf(bareMapped).includes(path.join(rel, 'libz.so.1')));
  // The shapes are really there: a gap below the only descriptor, a full table up to the last.
  assert.deepEqual(fdsOf(gap), ['7']);
  assert.deepEqual(fdsOf(many), Array.from({ length: 13 }, (_, i) => String(i)));

  const { full, stale } = scanned(rel, [gap, many, bare, bareMapped]);
  assert.deepEqual(sorted(full.get(gap)), [{ kind: 'fd', path: path.join(rel, 'app.log') }]);
  assert.deepEqual(sorted(full.get(many)), [{ kind: 'fd', path: path.join(rel, 'app.log') }]);
  assert.deepEqual(sorted(full.get(bare)), [{ kind: 'cwd', path: rel }]);
  assert.deepEqual(sorted(full.get(bareMapped)), [{ kind: 'map', path: path.join(rel, 'libz.so.1') }]);
  assert.deepEqual([...stale.keys()].sort(), [gap, many, bare, bareMapped].sort());
});

/** The /proc paths a scan in its own process touched, per pid, in order (strace of readlink, open and stat calls). */
function procPathsTouched(t: After, dir: string): Map<number, string[]> {
  const strace = requireTool('strace', 'strace');
  const log = path.join(tempDir(t), 'strace.log');
  const code = 'const [file, dir] = process.argv.slice(1); const { scanProcessUses } = await import(file); scanProcessUses(dir, { decidedByAnyHold: true });';
  const run = spawnSync(strace, ['-f', '-qq', '-e', 'trace=readlink,readlinkat,open,openat,stat,lstat,newfstatat,statx,access,faccessat,faccessat2', '-o', log, process.execPath, '--input-type=module', '-e', code, IN_USE, dir], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const touched = new Map<number, string[]>();
  for (const m of fs.readFileSync(log, 'utf8').matchAll(/"\/proc\/(\d+)(?:\/([^"]*))?"/g)) {
    const pid = Number(m[1]);
    touched.set(pid, [...(touched.get(pid) ?? []), m[2] ?? '']);
  }
  return touched;
}

void test('the scan reads the cwd link first, then maps, root and descriptors; a process it may not read (a zombie) costs one link and one listing of its threads, a kernel thread its maps only', async (t) => {
  const dir = tempDir(t);
  const rel = path.join(dir, 'releases', 'r1');
  fs.mkdirSync(rel, { recursive: true });
  const sleepBin = requireTool('sleep', 'coreutils');
  const sh = requireTool('dash', 'dash');
  const plain = start(t, sleepBin, ['300'], { cwd: dir });
  // A zombie: its parent execs into a sleep that never reaps it.
  const parent = start(t, sh, ['-c', `"$1" 0 & exec "$1" 300`, 'sh', sleepBin], { cwd: dir });
  let zombie = 0;
  await settled(parent, 'a zombie child', () => {
    for (const name of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z' && Number(fields[1]) === parent) zombie = Number(name);
    }
    return zombie > 0;
  });
  const touched = procPathsTouched(t, rel);
  const ofPlain = (touched.get(plain) ?? []).map((p) => p.replace(/^fd\/\d+$/, 'fd/N'));
  assert.deepEqual([...new Set(ofPlain)], ['cwd', 'maps', 'root', 'fd/', 'fd/N'], `pid ${plain}: ${ofPlain.join(' ')}`);
  // The zombie's cwd link is missing: its threads are listed once, for one still running (a main
  // thread that exited before the others, test/system/stale-threads.test.ts); it has none, so
  // nothing else of it is opened.
  assert.deepEqual((touched.get(zombie) ?? []).filter((p) => p !== ''), ['cwd', 'task'], `zombie ${zombie}: ${(touched.get(zombie) ?? []).join(' ')}`);
  // Kernel threads are visible only outside a PID namespace; where they are, kthreadd (pid 2) is read up to its empty maps.
  const kthreadd = fs.existsSync('/proc/2/stat') && / \(kthreadd\) /.test(fs.readFileSync('/proc/2/stat', 'utf8'));
  if (kthreadd) assert.deepEqual(touched.get(2), ['cwd', 'maps']);
});

/** The read(2) calls the scan, in its own process, made on each pid's maps file: how many, and what the last returned (strace). */
function mapsReads(t: After, dir: string): Map<number, { count: number; last: number }> {
  const strace = requireTool('strace', 'strace');
  const logs = tempDir(t);
  const code = 'const [file, dir] = process.argv.slice(1); const { scanProcessUses } = await import(file); scanProcessUses(dir);';
  // -ff: one file per thread, with no pid column (strace pads it to five characters, so a parser of
  // "<pid> <call>" failed once pids wrapped below 10000) and no call split by another thread's.
  const run = spawnSync(strace, ['-ff', '-qq', '-e', 'trace=openat,read,close', '-o', path.join(logs, 'strace'), process.execPath, '--input-type=module', '-e', code, IN_USE, dir], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const reads = new Map<number, { count: number; last: number }>();
  // The scan runs on one thread, one maps file at a time: each open is followed by its reads and its close.
  for (const name of fs.readdirSync(logs)) {
    let open: { fd: string; pid: number } | undefined;
    for (const line of fs.readFileSync(path.join(logs, name), 'utf8').split('\n')) {
      const opened = /^openat\(AT_FDCWD, "\/proc\/(\d+)\/maps", [^)]*\) = (\d+)$/.exec(line);
      if (opened) {
        open = { pid: Number(opened[1]), fd: opened[2] as string };
        reads.set(open.pid, { count: 0, last: -1 });
        continue;
      }
      if (!open) continue;
      const read = line.startsWith(`read(${open.fd}, `) ? / = (\d+)$/.exec(line) : null;
      if (read) reads.set(open.pid, { count: (reads.get(open.pid)?.count ?? 0) + 1, last: Number(read[1]) });
      else if (line.startsWith(`close(${open.fd})`)) open = undefined;
    }
  }
  return reads;
}

/** What a missing read count should show: whether the process is still there, its state and working directory. */
function whyNoReads(pid: number): string {
  let state = 'gone';
  try {
    state = (/^State:\s*(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?') + `, cwd ${fs.readlinkSync(`/proc/${pid}/cwd`)}`;
  } catch (error) {
    state += ` (${String(error)})`;
  }
  return `pid ${pid}: no read of its maps was traced; the process is ${state}`;
}

void test('maps longer than one read are read to their end; maps that end with the vsyscall page, which the kernel lists last, need no read for the end', async (t) => {
  const dir = tempDir(t);
  const rel = path.join(dir, 'releases', 'r1');
  fs.mkdirSync(rel, { recursive: true });
  const sleepBin = requireTool('sleep', 'coreutils');
  const python = requireTool('python3', 'python3');
  const libc = libraries(sleepBin).find((l) => path.basename(l).startsWith('libc.so'));
  const zlib = libc && path.join(path.dirname(libc), 'libz.so.1');
  if (!zlib || !fs.existsSync(zlib)) throw new Error('libz.so.1 not found beside libc; install the Debian package zlib1g');
  const lib = path.join(rel, 'libz.so.1');
  fs.copyFileSync(zlib, lib);
  const plain = start(t, sleepBin, ['300'], { cwd: dir });
  // Preloaded first, the library sits high in the address space, after the many mappings of the modules loaded later.
  // The file says every import is done: until then python opens and closes module files.
  const ready = path.join(dir, 'python-ready');
  const modules = `import ctypes, decimal, hashlib, json, select, socket, time, zlib; open(${JSON.stringify(ready)}, 'w').close(); time.sleep(300)`;
  const big = start(t, python, ['-c', modules], { cwd: dir, env: { ...process.env, LD_PRELOAD: lib } });
  await settled(plain, 'its maps', () => asleep(plain) && mapsOf(plain).includes(sleepBin));
  await settled(big, 'the modules loaded', () => fs.existsSync(ready) && mapsOf(big).includes('_decimal') && mapsOf(big).includes(lib));
  // The control: the first read of the big maps does not reach the library, so a scan that stopped at a short read would miss it.
  const first = Buffer.alloc(1 << 16);
  const fd = fs.openSync(`/proc/${big}/maps`, 'r');
  const n = fs.readSync(fd, first, 0, first.length, null);
  fs.closeSync(fd);
  assert.ok(n < mapsOf(big).length, `one read gave all ${n} bytes`);
  assert.ok(!first.subarray(0, n).toString('utf8').includes(lib), 'the library is in the first read');
  assert.ok(fs.readdirSync(`/proc/${big}/fd`).every((f) => !fs.readlinkSync(`/proc/${big}/fd/${f}`).startsWith(rel)));

  const { full, stale } = scanned(rel, [plain, big]);
  assert.deepEqual(sorted(full.get(big)), [{ kind: 'map', path: lib }]);
  assert.deepEqual(sorted(stale.get(big)), [{ kind: 'map', path: lib }]);
  assert.equal(full.get(plain), undefined);

  const reads = mapsReads(t, rel);
  const gate = (pid: number): boolean => mapsOf(pid).endsWith(' [vsyscall]\n');
  // One read holds a sleep's maps; the read that returns 0 is left out only where the vsyscall page ends them.
  assert.ok(reads.has(plain), whyNoReads(plain));
  assert.deepEqual(reads.get(plain), gate(plain) ? { count: 1, last: mapsOf(plain).length } : { count: 2, last: 0 }, `pid ${plain}`);
  const bigReads = reads.get(big);
  assert.ok(bigReads && bigReads.count >= 2, `pid ${big}: ${JSON.stringify(bigReads)}`);
  assert.equal(bigReads.last > 0, gate(big), `pid ${big}: ${JSON.stringify(bigReads)}`);
});
