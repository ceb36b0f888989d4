// A fleet of real SSH hosts on one machine, for the remote-deploy system tests.
//
// createFleet(n): each host is a Debian sshd inside its own network namespace, reached
// from the root namespace over a veth pair into a per-run bridge, with its own /srv
// (private mount namespace + bind mount of a temp dir) and its own hostname (UTS
// namespace). Needs root. createLoopbackFleet(n): several sshd on 127.0.0.1 ports with
// per-host directories, for many-host benchmarks or machines without namespaces.
//
// Callers talk to hosts exactly as the product will: `ssh -F <sshConfigPath> host1 ...`
// and `rsync -e "<sshCommand>" ... host1:/srv/...` (or with `env`, which sets RSYNC_RSH).

import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { shJoin } from '../../src/remote/shell.ts';

export interface ExecResult {
  /** Exit status of the remote command (ssh itself exits 255 on connection errors); -1 if ssh was killed. */
  code: number;
  stdout: string;
  stderr: string;
  /** Set when ssh was killed locally (timeout), else null. */
  signal: NodeJS.Signals | null;
}

export interface ExecOptions {
  /** Kill ssh after this long (default 30 s), so a hung host cannot hang a test. */
  timeoutMs?: number;
  /** Sent to the remote command's stdin; stdin is /dev/null without it. */
  input?: string | Buffer;
  /** Extra ssh options placed before the host alias, e.g. ['-o', 'ConnectTimeout=2']. */
  sshOptions?: string[];
}

export interface FleetHost {
  /** 1-based position in the fleet. */
  index: number;
  /** Host alias in the fleet's ssh_config: `host1`, `host2`, ... */
  alias: string;
  /** What `hostname` prints on the host (equals alias where the host has its own UTS namespace). */
  hostname: string;
  /** IPv4 address sshd listens on. */
  address: string;
  port: number;
  /** The host's /srv as seen from the test process (root namespace). */
  srvDir: string;
  /** The same directory as the ssh session sees it: '/srv' in a namespace fleet, srvDir on loopback. */
  srvPath: string;
  /** Network namespace name, or null on loopback. */
  netns: string | null;
  /** Root-side veth of this host, or null on loopback. */
  link: string | null;
  /** Pid of the listening sshd, or null while it is stopped. */
  sshdPid(): number | null;
  /** SIGKILL every sshd of this host (listener and open connections): new and existing ssh sessions fail. */
  killSshd(): Promise<void>;
  /** Start sshd again (no-op when running) and wait until it accepts connections. */
  startSshd(): Promise<void>;
  /** Cut the host off the network: connections time out (namespace fleet: veth down; loopback: sshd frozen). */
  linkDown(): Promise<void>;
  /** Undo linkDown(). */
  linkUp(): Promise<void>;
  /** Run argv on the host over ssh (each word single-quoted for the remote shell). */
  exec(cmd: string[], opts?: ExecOptions): Promise<ExecResult>;
}

export interface Fleet {
  kind: 'netns' | 'loopback';
  hosts: FleetHost[];
  /** Temp dir holding keys, configs, logs and every host's srv dir. */
  dir: string;
  /** Pass as `ssh -F <sshConfigPath>`; the file is self-contained (ignores ~/.ssh/config). */
  sshConfigPath: string;
  /** ['-F', sshConfigPath]: the ssh arguments every invocation needs. */
  sshArgs: string[];
  /** `ssh -F '<sshConfigPath>'`, fit for `rsync -e` and RSYNC_RSH. */
  sshCommand: string;
  /** process.env plus RSYNC_RSH=sshCommand, so a plain `rsync ... host1:/srv/x/` reaches the fleet. */
  env: NodeJS.ProcessEnv;
  /** Bridge in the root namespace, or null on loopback. */
  bridge: string | null;
  /** Remove every namespace, link, process, lock and temp file of this fleet. Idempotent. */
  destroy(): Promise<void>;
}

export interface FleetOptions {
  /** Name prefix for namespaces, links and temp dirs: 1-3 of [a-z0-9], starting with a letter. Default 'adf'. */
  prefix?: string;
  /** Add ControlMaster auto / ControlPersist to ssh_config (connection reuse, ~4x faster round trips). */
  controlMaster?: boolean;
  /** After start, check every host over ssh (hostname, sh, rsync). Default true. */
  verify?: boolean;
  /** How long to wait for each sshd to accept connections. Default 10 s. */
  readyTimeoutMs?: number;
}

const DEFAULT_PREFIX = 'adf';
const SUBNET_BASE = '10.213';
const LOCK_DIR = '/run/lock';
const LOCK_PREFIX = 'atomic-deploy-fleet-';
const CONNECT_TIMEOUT_S = 5;

let fleetSeq = 0;
const liveFleets = new Set<FleetInternals>();

// ---------------------------------------------------------------- tools

type ToolName = 'ip' | 'sshd' | 'ssh' | 'ssh-keygen' | 'rsync' | 'unshare' | 'sh';
type Tools = Record<ToolName, string>;

// sbin dirs are searched too: a CI shell's PATH may lack them although root can run them.
const FALLBACK_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** Absolute paths of the named executables; throws naming every missing one (tests must fail, not skip). */
export function findTools<T extends string>(names: readonly T[]): Record<T, string> {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), ...FALLBACK_DIRS];
  const found = {} as Record<T, string>;
  const missing: string[] = [];
  for (const name of names) {
    const hit = dirs.map((d) => path.join(d, name)).find((p) => isExecutable(p));
    if (hit === undefined) missing.push(name);
    else found[name] = path.resolve(hit);
  }
  if (missing.length > 0) {
    throw new Error(
      `fleet harness: required tool(s) not found: ${missing.join(', ')} ` +
        `(searched PATH and ${FALLBACK_DIRS.join(':')}). On Debian: ` +
        'apt-get install -y openssh-server openssh-client rsync iproute2 util-linux',
    );
  }
  return found;
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- small process helpers

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr: err !== null && stderr === '' ? err.message : stderr });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function must(file: string, args: string[], input?: string): Promise<string> {
  const r = await run(file, args, input);
  if (r.code !== 0) {
    throw new Error(`fleet harness: \`${[file, ...args].join(' ')}\` failed (${r.code}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  // A zombie has released its namespaces and ports already: count it as gone.
  return procState(pid) !== 'Z';
}

function procState(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return null;
  }
}

function listPids(): number[] {
  return fs
    .readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((p) => p !== process.pid);
}

function readCmdline(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

function readComm(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function parentPid(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return null;
  }
}

/** pid and all its descendants, found through /proc (setsid'd session shells stay children). */
function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const p of listPids()) {
    const pp = parentPid(p);
    if (pp === null) continue;
    const list = children.get(pp) ?? [];
    list.push(p);
    children.set(pp, list);
  }
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const p = stack.pop()!;
    if (!fs.existsSync(`/proc/${p}`)) continue;
    out.push(p);
    stack.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Processes inside the named network namespaces (what `ip netns pids` does, without a process per name). */
function pidsInNetns(nsNames: readonly string[]): number[] {
  const inodes = new Set<string>();
  for (const ns of nsNames) {
    try {
      inodes.add(`net:[${fs.statSync(path.join('/run/netns', ns)).ino}]`);
    } catch {
      // Namespace already gone.
    }
  }
  if (inodes.size === 0) return [];
  return listPids().filter((p) => {
    try {
      return inodes.has(fs.readlinkSync(`/proc/${p}/ns/net`));
    } catch {
      return false;
    }
  });
}

/** The live sshd processes of a namespace (a zombie is gone). */
function sshdsIn(ns: string): number[] {
  return pidsInNetns([ns]).filter((p) => readComm(p) === 'sshd' && pidAlive(p));
}

/** Processes whose command line mentions `needle` (our temp dir: ssh clients, mux masters, sshd). */
function pidsMentioning(needle: string): number[] {
  return listPids().filter((p) => readCmdline(p).includes(needle));
}

function signalAll(pids: readonly number[], sig: NodeJS.Signals): void {
  for (const p of pids) {
    try {
      process.kill(p, sig);
    } catch {
      // Already gone.
    }
  }
}

async function waitGone(pids: readonly number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let left = pids.filter(pidAlive);
  while (left.length > 0 && Date.now() < deadline) {
    await sleep(10);
    left = left.filter(pidAlive);
  }
  return left;
}

async function killAndWait(pids: readonly number[]): Promise<void> {
  if (pids.length === 0) return;
  signalAll(pids, 'SIGKILL');
  const left = await waitGone(pids, 5000);
  if (left.length > 0) throw new Error(`fleet harness: processes did not die after SIGKILL: ${left.join(', ')}`);
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * Resolves once sshd has written its PidFile, which it does only after binding its
 * listen sockets; unlike a TCP probe this works while the host's link is down.
 * Rejects (with sshd's log) if sshd exits or time runs out.
 */
async function waitSshdReady(child: ChildProcess, pidFile: string, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const log = () => fsp.readFile(logFile, 'utf8').catch(() => '');
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`fleet harness: sshd exited (${child.exitCode ?? child.signalCode}) before listening. Log:\n${await log()}`);
    }
    const written = await fsp.readFile(pidFile, 'utf8').catch(() => '');
    if (Number(written.trim()) === child.pid) return;
    if (Date.now() > deadline) {
      throw new Error(`fleet harness: sshd (${pidFile}) not ready after ${timeoutMs} ms. Log:\n${await log()}`);
    }
    await sleep(10);
  }
}

function sshExec(sshPath: string, sshArgs: string[], alias: string, cmd: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const args = [...sshArgs, ...(opts.sshOptions ?? []), alias, shJoin(cmd)];
  return new Promise((resolve, reject) => {
    const child = spawn(sshPath, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (b: Buffer) => out.push(b));
    child.stderr?.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        signal,
      });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

// ---------------------------------------------------------------- names and stale runs

function checkPrefix(prefix: string): void {
  // Interface names hold at most 15 bytes: prefix(3) '-' pid36(5) '.' seq36(2) kind(1) idx36(2).
  if (!/^[a-z][a-z0-9]{0,2}$/.test(prefix)) {
    throw new Error(`fleet harness: prefix must be 1-3 of [a-z0-9] starting with a letter, got ${JSON.stringify(prefix)}`);
  }
}

interface RunNames {
  prefix: string;
  pid: number;
  seq: number;
  /** Start of every link name of this run. */
  linkTag: string;
  /** Start of every netns name of this run. */
  nsTag: string;
  /** Start of the temp dir basename of this run. */
  dirTag: string;
}

function runNames(prefix: string): RunNames {
  const seq = ++fleetSeq;
  if (seq >= 36 * 36) throw new Error('fleet harness: too many fleets in one process');
  const pid = process.pid;
  return {
    prefix,
    pid,
    seq,
    linkTag: `${prefix}-${pid.toString(36)}.${seq.toString(36)}`,
    nsTag: `${prefix}-${pid}-${seq}-`,
    dirTag: `${prefix}-fleet-${pid}-${seq}-`,
  };
}

/** Remove what crashed earlier runs with this prefix left behind (only runs whose pid is dead). */
async function cleanStale(prefix: string, tools: Partial<Tools>): Promise<void> {
  const esc = prefix.replace(/[^a-z0-9]/g, '');
  const dead = (pid: number) => !Number.isInteger(pid) || pid <= 0 || !pidAlive(pid);
  // Kill anything that used a dead run's temp dir (ssh clients, mux masters, loopback sshd).
  const tmp = os.tmpdir();
  const staleDirs = (await fsp.readdir(tmp).catch(() => [] as string[]))
    .map((name) => ({ name, m: new RegExp(`^${esc}-fleet-(\\d+)-\\d+-`).exec(name) }))
    .filter(({ m }) => m !== null && dead(Number(m[1])))
    .map(({ name }) => path.join(tmp, name));
  for (const d of staleDirs) await killAndWait(pidsMentioning(d)).catch(() => undefined);

  if (tools.ip !== undefined) {
    const ip = tools.ip;
    const nsList = parseNetnsNames((await run(ip, ['netns', 'list'])).stdout)
      .filter((n) => new RegExp(`^${esc}-(\\d+)-`).test(n))
      .filter((n) => dead(Number(n.split('-')[1])));
    await killAndWait(pidsInNetns(nsList)).catch(() => undefined);
    const links = parseLinkNames((await run(ip, ['-o', 'link', 'show'])).stdout)
      .filter((n) => new RegExp(`^${esc}-[0-9a-z]+\\.`).test(n))
      .filter((n) => dead(parseInt(n.slice(esc.length + 1, n.indexOf('.')), 36)));
    await removeNetwork(ip, links, nsList).catch(() => undefined);
  }
  for (const d of staleDirs) await fsp.rm(d, { recursive: true, force: true }).catch(() => undefined);
  await cleanStaleLocks();
}

async function cleanStaleLocks(): Promise<void> {
  const names = await fsp.readdir(LOCK_DIR).catch(() => [] as string[]);
  for (const n of names.filter((x) => x.startsWith(LOCK_PREFIX))) {
    const file = path.join(LOCK_DIR, n);
    const pid = Number((await fsp.readFile(file, 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0 || !pidAlive(pid)) await fsp.rm(file, { force: true });
  }
}

// ---------------------------------------------------------------- subnet allocation

function ipToInt(a: string): number {
  const p = a.split('.').map(Number);
  return (((p[0] ?? 0) << 24) | ((p[1] ?? 0) << 16) | ((p[2] ?? 0) << 8) | (p[3] ?? 0)) >>> 0;
}

function overlaps(a: string, aLen: number, b: string, bLen: number): boolean {
  const len = Math.min(aLen, bLen);
  if (len === 0) return true;
  const mask = len === 32 ? 0xffffffff : (~(0xffffffff >>> len)) >>> 0;
  return ((ipToInt(a) & mask) >>> 0) === ((ipToInt(b) & mask) >>> 0);
}

/** Prefixes already routed or assigned on this machine (default routes excluded). */
async function usedPrefixes(ip: string): Promise<Array<[string, number]>> {
  const out: Array<[string, number]> = [];
  const routes = await must(ip, ['-4', 'route', 'show', 'table', 'all']);
  for (const line of routes.split('\n')) {
    const words = line.trim().split(/\s+/);
    // Route lines may start with a type (local, broadcast, unicast ...) before the destination.
    const dst = words.find((w) => /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(w));
    if (dst === undefined || words[0] === 'default') continue;
    const [addr, len] = dst.split('/');
    out.push([addr ?? '', len === undefined ? 32 : Number(len)]);
  }
  const addrs = await must(ip, ['-4', '-o', 'addr', 'show']);
  for (const m of addrs.matchAll(/inet (\d+\.\d+\.\d+\.\d+)\/(\d+)/g)) out.push([m[1] ?? '', Number(m[2])]);
  return out;
}

/** Claim a /24 under 10.213/16 that nothing on the machine uses, with a lock file so parallel runs differ. */
async function claimSubnet(ip: string): Promise<{ third: number; lockFile: string }> {
  await fsp.mkdir(LOCK_DIR, { recursive: true });
  const used = await usedPrefixes(ip);
  const start = process.pid % 250;
  for (let k = 0; k < 254; k++) {
    const third = ((start + k) % 254) + 1;
    const net24 = `${SUBNET_BASE}.${third}.0`;
    if (used.some(([a, l]) => overlaps(a, l, net24, 24))) continue;
    const lockFile = path.join(LOCK_DIR, `${LOCK_PREFIX}${SUBNET_BASE}.${third}.lock`);
    try {
      await fsp.writeFile(lockFile, `${process.pid}\n`, { flag: 'wx' });
      return { third, lockFile };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
  }
  throw new Error(`fleet harness: no free /24 left under ${SUBNET_BASE}.0.0/16 (or the range is routed elsewhere)`);
}

// ---------------------------------------------------------------- shared setup

// Runs inside the host's fresh mount and UTS namespaces: $1 srv dir, $2 home dir for /root
// (empty: keep the machine's), $3 hostname, $4 sshd, $5 sshd_config.
// A host of its own gets an empty /root: the machine's root dotfiles (a .bashrc that runs
// version managers, ~0.8 s here) would otherwise run on every ssh command.
const HOST_SCRIPT =
  '{ [ -z "$1" ] || mount --bind "$1" /srv; } && { [ -z "$2" ] || mount --bind "$2" /root; } && ' +
  'hostname "$3" && exec "$4" -D -e -f "$5"';

/** The per-host /root, unless the fleet dir itself lives under /root (the mount would hide it). */
function homeFor(hostDir: string, fleetDir: string): string {
  return fleetDir === '/root' || fleetDir.startsWith('/root/') ? '' : path.join(hostDir, 'root');
}

interface HostState {
  child: ChildProcess | null;
  frozen: number[];
}

function runningPid(state: HostState): number | null {
  const c = state.child;
  return c !== null && c.exitCode === null && c.signalCode === null ? (c.pid ?? null) : null;
}

interface FleetInternals {
  syncCleanup(): void;
}

function assertConfigSafe(p: string): void {
  // ssh_config expands % and treats quotes specially; rsync's -e parser has no backslash escapes.
  if (/["'\\%\n]/.test(p)) throw new Error(`fleet harness: temp path unusable in ssh_config: ${JSON.stringify(p)}`);
}

async function keygen(sshKeygen: string, file: string, comment: string): Promise<string> {
  await must(sshKeygen, ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file]);
  return (await fsp.readFile(`${file}.pub`, 'utf8')).trim();
}

function sshdConfig(o: { listen: string; hostKey: string; pidFile: string; authorizedKeys: string }): string {
  return [
    `ListenAddress ${o.listen}`,
    `HostKey "${o.hostKey}"`,
    `PidFile "${o.pidFile}"`,
    `AuthorizedKeysFile "${o.authorizedKeys}"`,
    'UsePAM no',
    'StrictModes no',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PermitRootLogin prohibit-password',
    'UseDNS no',
    'PrintMotd no',
    'PrintLastLog no',
    // Many parallel deploys open many unauthenticated connections at once.
    'MaxStartups 200:30:400',
    'MaxSessions 100',
    'Subsystem sftp internal-sftp',
    'LogLevel INFO',
    '',
  ].join('\n');
}

function sshClientConfig(o: {
  hosts: Array<{ alias: string; address: string; port: number }>;
  user: string;
  identity: string;
  knownHosts: string;
  controlDir: string | null;
}): string {
  const lines: string[] = [];
  for (const h of o.hosts) lines.push(`Host ${h.alias}`, `  HostName ${h.address}`, `  Port ${h.port}`, '');
  lines.push(
    'Host *',
    `  User ${o.user}`,
    `  IdentityFile "${o.identity}"`,
    '  IdentitiesOnly yes',
    `  UserKnownHostsFile "${o.knownHosts}"`,
    '  GlobalKnownHostsFile /dev/null',
    '  StrictHostKeyChecking yes',
    '  UpdateHostKeys no',
    '  CheckHostIP no',
    '  BatchMode yes',
    `  ConnectTimeout ${CONNECT_TIMEOUT_S}`,
    // A partitioned host must fail an open session too, not hang it.
    '  ServerAliveInterval 3',
    '  ServerAliveCountMax 3',
    '  LogLevel ERROR',
  );
  if (o.controlDir !== null) {
    lines.push('  ControlMaster auto', `  ControlPath "${o.controlDir}/%C"`, '  ControlPersist 60');
  } else {
    lines.push('  ControlMaster no', '  ControlPath none');
  }
  lines.push('');
  return lines.join('\n');
}

function knownHostsLine(alias: string, address: string, port: number, pubKey: string): string {
  const addr = port === 22 ? address : `[${address}]:${port}`;
  const [type, key] = pubKey.split(' ');
  return `${alias},${addr} ${type} ${key}`;
}

function registerExitCleanup(f: FleetInternals): void {
  if (liveFleets.size === 0) process.on('exit', exitCleanup);
  liveFleets.add(f);
}

function unregisterExitCleanup(f: FleetInternals): void {
  liveFleets.delete(f);
  if (liveFleets.size === 0) process.off('exit', exitCleanup);
}

// Last resort when a test process ends without destroy(): nothing async runs in 'exit'.
function exitCleanup(): void {
  for (const f of [...liveFleets]) {
    try {
      f.syncCleanup();
    } catch {
      // Best effort; the next run's stale sweep gets the rest.
    }
  }
}

async function verifyHosts(hosts: FleetHost[]): Promise<void> {
  await Promise.all(
    hosts.map(async (h) => {
      const r = await h.exec(['/bin/sh', '-c', 'hostname && command -v rsync && test -d "$1" && echo ok', 'sh', h.srvPath], {
        timeoutMs: 20_000,
      });
      const lines = r.stdout.trim().split('\n');
      if (r.code !== 0 || lines[0] !== h.hostname || lines.at(-1) !== 'ok') {
        throw new Error(
          `fleet harness: ${h.alias} failed its check over ssh (code ${r.code}): stdout=${JSON.stringify(r.stdout)} stderr=${JSON.stringify(r.stderr)}`,
        );
      }
    }),
  );
}

// ---------------------------------------------------------------- namespace fleet

/**
 * Delete links (veths first: each takes its peer along; then bridges) and namespaces in
 * one `ip -force -batch`, then check that none is left: -force goes on past names that
 * are already gone, so its exit status alone cannot tell.
 */
async function removeNetwork(ip: string, links: readonly string[], namespaces: readonly string[]): Promise<void> {
  const ordered = [...links.filter((l) => !l.endsWith('b')), ...links.filter((l) => l.endsWith('b'))];
  const script = [...ordered.map((l) => `link del ${l}`), ...namespaces.map((ns) => `netns del ${ns}`)].join('\n');
  if (script === '') return;
  await run(ip, ['-force', '-batch', '-'], `${script}\n`);
  const linksNow = new Set(parseLinkNames((await run(ip, ['-o', 'link', 'show'])).stdout));
  const nsNow = new Set(parseNetnsNames((await run(ip, ['netns', 'list'])).stdout));
  const left = [...links.filter((l) => linksNow.has(l)), ...namespaces.filter((ns) => nsNow.has(ns))];
  if (left.length > 0) throw new Error(`fleet harness: could not remove ${left.join(', ')}`);
}

function parseLinkNames(ipLinkOutput: string): string[] {
  return ipLinkOutput
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? '')
    .filter(Boolean);
}

function parseNetnsNames(ipNetnsOutput: string): string[] {
  return ipNetnsOutput
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

/**
 * Start n sshd hosts, each in its own network, mount and UTS namespace. Needs root.
 * On any failure everything made so far is removed before the error is thrown.
 */
export async function createFleet(n: number, opts: FleetOptions = {}): Promise<Fleet> {
  if (!Number.isInteger(n) || n < 1 || n > 250) throw new Error(`fleet harness: host count must be 1..250, got ${n}`);
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  checkPrefix(prefix);
  if (process.getuid?.() !== 0) {
    throw new Error('fleet harness: createFleet needs root (network namespaces, veths, mounts); createLoopbackFleet does not');
  }
  const tools: Tools = findTools(['ip', 'sshd', 'ssh', 'ssh-keygen', 'rsync', 'unshare', 'sh'] as const);
  await cleanStale(prefix, tools);

  const names = runNames(prefix);
  const ip = tools.ip;
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), names.dirTag));
  assertConfigSafe(dir);
  const sshConfigPath = path.join(dir, 'ssh_config');
  const sshArgs = ['-F', sshConfigPath];
  const bridge = `${names.linkTag}b`;
  const states: HostState[] = [];
  const hosts: FleetHost[] = [];
  // Every name this run may create, recorded before the first `ip` call so cleanup sees all.
  const nsNames = Array.from({ length: n }, (_, i) => `${names.nsTag}host${i + 1}`);
  const vethNames = Array.from({ length: n }, (_, i) => `${names.linkTag}v${(i + 1).toString(36)}`);
  const linkNamesMade = [...vethNames, bridge];
  let lockFile: string | null = null;
  let destroying: Promise<void> | null = null;

  const syncCleanup = (): void => {
    signalAll([...pidsMentioning(dir), ...pidsInNetns(nsNames)], 'SIGKILL');
    const script = [...linkNamesMade.map((l) => `link del ${l}`), ...nsNames.map((ns) => `netns del ${ns}`)].join('\n');
    try {
      execFileSync(ip, ['-force', '-batch', '-'], { input: `${script}\n`, stdio: ['pipe', 'ignore', 'ignore'] });
    } catch {
      // Best effort; the next run's stale sweep gets the rest.
    }
    if (lockFile !== null) fs.rmSync(lockFile, { force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const internals: FleetInternals = { syncCleanup };
  registerExitCleanup(internals);

  const destroy = (): Promise<void> => {
    destroying ??= (async () => {
      const errors: unknown[] = [];
      const step = async (fn: () => Promise<unknown>) => {
        try {
          await fn();
        } catch (e) {
          errors.push(e);
        }
      };
      // Processes first: they pin the namespaces and the bind mounts.
      await step(async () => {
        await killAndWait([...new Set([...pidsMentioning(dir), ...pidsInNetns(nsNames)])]);
        await Promise.all(states.map((s) => (s.child !== null ? waitExit(s.child) : Promise.resolve())));
      });
      await step(() => removeNetwork(ip, linkNamesMade, nsNames));
      if (lockFile !== null) {
        const lf = lockFile;
        await step(() => fsp.rm(lf, { force: true }));
      }
      await step(() => fsp.rm(dir, { recursive: true, force: true }));
      unregisterExitCleanup(internals);
      if (errors.length > 0) throw new AggregateError(errors, 'fleet harness: destroy() could not remove everything');
    })();
    return destroying;
  };

  try {
    await fsp.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    // Each host bind-mounts its own dir over /srv, which needs the mount point to exist.
    await fsp.mkdir('/srv', { recursive: true });

    const claimed = await claimSubnet(ip);
    lockFile = claimed.lockFile;
    const gateway = `${SUBNET_BASE}.${claimed.third}.1`;

    // One `ip` process for the bridge, every namespace and every veth; the host end of each
    // veth is created directly inside its namespace as eth0, the root end joins the bridge.
    await must(
      ip,
      ['-batch', '-'],
      [
        `link add ${bridge} type bridge`,
        `addr add ${gateway}/24 dev ${bridge}`,
        `link set ${bridge} up`,
        ...nsNames.flatMap((ns, i) => [
          `netns add ${ns}`,
          `link add ${vethNames[i]} master ${bridge} up type veth peer name eth0 netns ${ns}`,
        ]),
        '',
      ].join('\n'),
    );

    const identity = path.join(dir, 'id_ed25519');
    const authorizedKeys = path.join(dir, 'authorized_keys');
    const clientPub = await keygen(tools['ssh-keygen'], identity, 'fleet-client');
    await fsp.writeFile(authorizedKeys, `${clientPub}\n`);

    const specs = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const index = i + 1;
        const alias = `host${index}`;
        const ns = nsNames[i]!;
        const link = vethNames[i]!;
        const address = `${SUBNET_BASE}.${claimed.third}.${index + 1}`;
        const hostDir = path.join(dir, alias);
        const srvDir = path.join(hostDir, 'srv');
        await fsp.mkdir(srvDir, { recursive: true });
        await fsp.mkdir(path.join(hostDir, 'root'), { mode: 0o700 });
        const hostKey = path.join(hostDir, 'ssh_host_ed25519_key');
        const hostPub = await keygen(tools['ssh-keygen'], hostKey, alias);
        const cfg = path.join(hostDir, 'sshd_config');
        const pidFile = path.join(hostDir, 'sshd.pid');
        await fsp.writeFile(cfg, sshdConfig({ listen: `${address}:22`, hostKey, pidFile, authorizedKeys }));

        await must(ip, ['-n', ns, '-batch', '-'], `addr add ${address}/24 dev eth0\nlink set eth0 up\nlink set lo up\n`);
        return { index, alias, ns, link, address, hostDir, srvDir, cfg, pidFile, hostPub };
      }),
    );

    const controlDir = opts.controlMaster === true ? path.join(dir, 'cm') : null;
    if (controlDir !== null) await fsp.mkdir(controlDir, { mode: 0o700 });
    await fsp.writeFile(
      path.join(dir, 'known_hosts'),
      specs.map((s) => knownHostsLine(s.alias, s.address, 22, s.hostPub)).join('\n') + '\n',
    );
    await fsp.writeFile(
      sshConfigPath,
      sshClientConfig({
        hosts: specs.map((s) => ({ alias: s.alias, address: s.address, port: 22 })),
        user: 'root',
        identity,
        knownHosts: path.join(dir, 'known_hosts'),
        controlDir,
      }),
    );

    for (const s of specs) {
      const state: HostState = { child: null, frozen: [] };
      states.push(state);
      const logFile = path.join(s.hostDir, 'sshd.log');

      const startSshd = async (): Promise<void> => {
        if (runningPid(state) !== null) return;
        await fsp.rm(s.pidFile, { force: true });
        const log = fs.openSync(logFile, 'a');
        // ip netns exec → private mount ns + own UTS ns → own /srv and /root, hostname → exec sshd
        // (absolute -f and sshd path: sshd re-execs itself per connection).
        const hostArgs = [s.srvDir, homeFor(s.hostDir, dir), s.alias, tools.sshd, s.cfg];
        const child = spawn(
          ip,
          ['netns', 'exec', s.ns, tools.unshare, '-m', '--propagation', 'private', '-u', tools.sh, '-c', HOST_SCRIPT, 'sh', ...hostArgs],
          { detached: true, stdio: ['ignore', log, log] },
        );
        fs.closeSync(log);
        child.on('error', () => undefined);
        state.child = child;
        await waitSshdReady(child, s.pidFile, readyTimeoutMs, logFile);
      };

      const host: FleetHost = {
        index: s.index,
        alias: s.alias,
        hostname: s.alias,
        address: s.address,
        port: 22,
        srvDir: s.srvDir,
        srvPath: '/srv',
        netns: s.ns,
        link: s.link,
        sshdPid: () => runningPid(state),
        killSshd: async () => {
          // Every sshd in the namespace: the listener and the per-connection ones (mux masters ride on those),
          // listed again until none is left: a session's child forked after a list was read holds copies of
          // every session's pipes until it execs, and one left alive would keep their programs from seeing the end.
          for (let sshd = sshdsIn(s.ns); sshd.length > 0; sshd = sshdsIn(s.ns)) await killAndWait(sshd);
          if (state.child !== null) await waitExit(state.child);
          state.child = null;
        },
        startSshd,
        linkDown: () => must(ip, ['link', 'set', s.link, 'down']).then(() => undefined),
        linkUp: () => must(ip, ['link', 'set', s.link, 'up']).then(() => undefined),
        exec: (cmd, o) => sshExec(tools.ssh, sshArgs, s.alias, cmd, o),
      };
      hosts.push(host);
    }
    await Promise.all(hosts.map((h) => h.startSshd()));
    if (opts.verify !== false) await verifyHosts(hosts);
  } catch (e) {
    await destroy().catch(() => undefined);
    throw e;
  }

  return fleetOf({ kind: 'netns', hosts, dir, sshConfigPath, sshArgs, bridge, destroy });
}

/** The Fleet a factory hands out, with the ssh command line derived from its config file. */
function fleetOf(f: Omit<Fleet, 'sshCommand' | 'env'>): Fleet {
  const sshCommand = `ssh -F '${f.sshConfigPath}'`;
  return { ...f, sshCommand, env: { ...process.env, RSYNC_RSH: sshCommand } };
}

// ---------------------------------------------------------------- loopback fleet

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Start n sshd on 127.0.0.1 with different ports; each host's "/srv" is a directory
 * (host.srvPath, same as host.srvDir). Works unprivileged; as root each host also gets
 * its own hostname. linkDown() freezes the host's sshd processes (SIGSTOP).
 */
export async function createLoopbackFleet(n: number, opts: FleetOptions = {}): Promise<Fleet> {
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new Error(`fleet harness: host count must be 1..1000, got ${n}`);
  const prefix = opts.prefix ?? DEFAULT_PREFIX;
  checkPrefix(prefix);
  const tools = findTools(['sshd', 'ssh', 'ssh-keygen', 'rsync', 'unshare', 'sh'] as const);
  const isRoot = process.getuid?.() === 0;
  await cleanStale(prefix, {});

  const names = runNames(prefix);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 10_000;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), names.dirTag));
  assertConfigSafe(dir);
  const sshConfigPath = path.join(dir, 'ssh_config');
  const sshArgs = ['-F', sshConfigPath];
  const states: HostState[] = [];
  const hosts: FleetHost[] = [];
  let destroying: Promise<void> | null = null;

  const hostPids = (state: HostState): number[] => (state.child?.pid !== undefined ? processTree(state.child.pid) : []);
  const syncCleanup = (): void => {
    signalAll([...pidsMentioning(dir), ...states.flatMap(hostPids)], 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const internals: FleetInternals = { syncCleanup };
  registerExitCleanup(internals);

  const destroy = (): Promise<void> => {
    destroying ??= (async () => {
      const errors: unknown[] = [];
      try {
        const pids = [...new Set([...pidsMentioning(dir), ...states.flatMap(hostPids)])];
        await killAndWait(pids);
        await Promise.all(states.map((s) => (s.child !== null ? waitExit(s.child) : Promise.resolve())));
      } catch (e) {
        errors.push(e);
      }
      try {
        await fsp.rm(dir, { recursive: true, force: true });
      } catch (e) {
        errors.push(e);
      }
      unregisterExitCleanup(internals);
      if (errors.length > 0) throw new AggregateError(errors, 'fleet harness: destroy() could not remove everything');
    })();
    return destroying;
  };

  try {
    if (isRoot) await fsp.mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    const identity = path.join(dir, 'id_ed25519');
    const authorizedKeys = path.join(dir, 'authorized_keys');
    const clientPub = await keygen(tools['ssh-keygen'], identity, 'fleet-client');
    await fsp.writeFile(authorizedKeys, `${clientPub}\n`);
    const user = os.userInfo().username;
    const realHostname = os.hostname();

    const specs = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const index = i + 1;
        const alias = `host${index}`;
        const hostDir = path.join(dir, alias);
        const srvDir = path.join(hostDir, 'srv');
        await fsp.mkdir(srvDir, { recursive: true });
        await fsp.mkdir(path.join(hostDir, 'root'), { mode: 0o700 });
        const hostKey = path.join(hostDir, 'ssh_host_ed25519_key');
        const hostPub = await keygen(tools['ssh-keygen'], hostKey, alias);
        const cfg = path.join(hostDir, 'sshd_config');
        return { index, alias, hostDir, srvDir, hostKey, hostPub, cfg, pidFile: path.join(hostDir, 'sshd.pid') };
      }),
    );

    const controlDir = opts.controlMaster === true ? path.join(dir, 'cm') : null;
    if (controlDir !== null) await fsp.mkdir(controlDir, { mode: 0o700 });
    const ports = new Map<string, number>();

    const writeClientFiles = async () => {
      const hs = specs.map((s) => ({ alias: s.alias, address: '127.0.0.1', port: ports.get(s.alias) ?? 0 }));
      await fsp.writeFile(
        path.join(dir, 'known_hosts'),
        specs.map((s) => knownHostsLine(s.alias, '127.0.0.1', ports.get(s.alias) ?? 0, s.hostPub)).join('\n') + '\n',
      );
      const knownHosts = path.join(dir, 'known_hosts');
      await fsp.writeFile(sshConfigPath, sshClientConfig({ hosts: hs, user, identity, knownHosts, controlDir }));
    };

    for (const s of specs) {
      const state: HostState = { child: null, frozen: [] };
      states.push(state);
      const logFile = path.join(s.hostDir, 'sshd.log');
      const hostname = isRoot ? s.alias : realHostname;

      const spawnOnce = async (port: number): Promise<void> => {
        const listen = `127.0.0.1:${port}`;
        await fsp.writeFile(s.cfg, sshdConfig({ listen, hostKey: s.hostKey, pidFile: s.pidFile, authorizedKeys }));
        await fsp.rm(s.pidFile, { force: true });
        const log = fs.openSync(logFile, 'a');
        const child = isRoot
          ? spawn(
              tools.unshare,
              ['-m', '--propagation', 'private', '-u', tools.sh, '-c', HOST_SCRIPT, 'sh', ...['', homeFor(s.hostDir, dir), s.alias, tools.sshd, s.cfg]],
              { detached: true, stdio: ['ignore', log, log] },
            )
          : spawn(tools.sshd, ['-D', '-e', '-f', s.cfg], { detached: true, stdio: ['ignore', log, log] });
        fs.closeSync(log);
        child.on('error', () => undefined);
        state.child = child;
        await waitSshdReady(child, s.pidFile, readyTimeoutMs, logFile);
      };

      const startSshd = async (): Promise<void> => {
        if (runningPid(state) !== null) return;
        const known = ports.get(s.alias);
        if (known !== undefined) return spawnOnce(known);
        // A free port can be taken between probing and sshd's bind: retry with another.
        for (let attempt = 0; ; attempt++) {
          const port = await freePort();
          try {
            await spawnOnce(port);
            ports.set(s.alias, port);
            return;
          } catch (e) {
            if (state.child?.pid !== undefined) await killAndWait(processTree(state.child.pid));
            state.child = null;
            if (attempt >= 4) throw e;
          }
        }
      };

      const host: FleetHost = {
        index: s.index,
        alias: s.alias,
        hostname,
        address: '127.0.0.1',
        get port() {
          return ports.get(s.alias) ?? 0;
        },
        srvDir: s.srvDir,
        srvPath: s.srvDir,
        netns: null,
        link: null,
        sshdPid: () => runningPid(state),
        killSshd: async () => {
          await killAndWait(hostPids(state).filter((p) => readComm(p) === 'sshd'));
          if (state.child !== null) await waitExit(state.child);
          state.child = null;
          // Their pids may be reused: linkUp() must not SIGCONT strangers.
          state.frozen = [];
        },
        startSshd,
        linkDown: () => {
          // No network to cut on loopback: a frozen sshd accepts TCP but never answers, like a black hole.
          state.frozen = hostPids(state);
          signalAll(state.frozen, 'SIGSTOP');
          return Promise.resolve();
        },
        linkUp: () => {
          signalAll(state.frozen, 'SIGCONT');
          state.frozen = [];
          return Promise.resolve();
        },
        exec: (cmd, o) => sshExec(tools.ssh, sshArgs, s.alias, cmd, o),
      };
      hosts.push(host);
    }
    await Promise.all(hosts.map((h) => h.startSshd()));
    await writeClientFiles();
    if (opts.verify !== false) await verifyHosts(hosts);
  } catch (e) {
    await destroy().catch(() => undefined);
    throw e;
  }

  return fleetOf({ kind: 'loopback', hosts, dir, sshConfigPath, sshArgs, bridge: null, destroy });
}

/**
 * Names a fresh remote root per test: `root` is the path the hosts see (`/srv/<prefix><n>-<name>`),
 * `on(host)` where that root lies in the host's srv directory, as this process sees it.
 */
export function rootNamer(prefix: string): (name: string) => { root: string; on: (h: FleetHost) => string } {
  let serial = 0;
  return (name) => {
    const base = `${prefix}${++serial}-${name}`;
    return { root: `/srv/${base}`, on: (h) => path.join(h.srvDir, base) };
  };
}

/** The release a host's root (as this process sees it) has live: `current`'s target name, or null without one. */
export function currentOf(dir: string): string | null {
  try {
    return path.basename(fs.readlinkSync(path.join(dir, 'current')));
  } catch {
    return null;
  }
}

/**
 * Starts `sleep 300` on host `h` with its working directory in `<root>/current` (a process the next
 * switch leaves on the old release); returns its pid (hosts share the pid namespace), killed after
 * the test. Returns once /proc shows the cwd: a scan made before would prove nothing.
 */
export async function startHolder(t: { after(fn: () => Promise<void> | void): void }, h: FleetHost, root: string): Promise<number> {
  const r = await h.exec(['sh', '-c', 'cd "$1/current" && { sleep 300 </dev/null >/dev/null 2>&1 & echo $!; }', 'sh', root]);
  if (r.code !== 0) throw new Error(`starting a holder on ${h.alias}: ${r.stderr}`);
  const pid = Number(r.stdout.trim());
  if (!(pid > 1)) throw new Error(`starting a holder on ${h.alias}: no pid in ${JSON.stringify(r.stdout)}`);
  t.after(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    let cwd = '';
    try {
      cwd = fs.readlinkSync(`/proc/${pid}/cwd`);
    } catch {
      // not yet
    }
    if (cwd.includes('/releases/')) return pid;
    if (Date.now() > deadline) throw new Error(`pid ${pid} never showed its cwd in a release`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Fleet directories loginAsNobody opened for search: their mode before, and how many hosts still need it. */
const openedDirs = new Map<string, { mode: number; hosts: number }>();

/**
 * Lets the fleet's key log in to namespace host `h` as `nobody`, a deploy user who is not root, and
 * returns the `--host` spec for it (`nobody@host1`). In the host's own mount namespace only,
 * /etc/passwd is a copy in which nobody has /bin/sh and `/` as home (its nologin would refuse every
 * command, and sshd says a missing home on stderr); the fleet's directory is opened for search,
 * since sshd reads the authorized keys file as the user who logs in. Undone after the test.
 */
export async function loginAsNobody(t: { after(fn: () => Promise<void>): void }, fleet: Fleet, h: FleetHost): Promise<string> {
  if (fleet.kind !== 'netns') throw new Error('loginAsNobody: a namespace fleet is needed (the passwd copy is mounted in the host\'s own mount namespace)');
  const lines = fs.readFileSync('/etc/passwd', 'utf8').split('\n');
  if (!lines.some((l) => l.startsWith('nobody:'))) throw new Error('loginAsNobody: no user nobody in /etc/passwd');
  const passwd = path.join(fleet.dir, `${h.alias}.passwd`);
  fs.writeFileSync(passwd, lines.map((l) => (l.startsWith('nobody:') ? l.split(':').slice(0, 5).concat('/', '/bin/sh').join(':') : l)).join('\n'), { mode: 0o644 });
  // The fleet's directory goes back to its mode once no host lets nobody in.
  const opened = openedDirs.get(fleet.dir) ?? { mode: fs.statSync(fleet.dir).mode & 0o7777, hosts: 0 };
  openedDirs.set(fleet.dir, { ...opened, hosts: opened.hosts + 1 });
  fs.chmodSync(fleet.dir, opened.mode | 0o011);
  fs.chmodSync(path.join(fleet.dir, 'authorized_keys'), 0o644);
  const mounted = await h.exec(['mount', '--bind', passwd, '/etc/passwd']);
  if (mounted.code !== 0) throw new Error(`loginAsNobody: mounting the passwd copy on ${h.alias}: ${mounted.stderr}`);
  t.after(async () => {
    await h.exec(['umount', '/etc/passwd']);
    const now = openedDirs.get(fleet.dir);
    if (now === undefined) return;
    if (now.hosts > 1) openedDirs.set(fleet.dir, { ...now, hosts: now.hosts - 1 });
    else {
      openedDirs.delete(fleet.dir);
      fs.chmodSync(fleet.dir, now.mode);
    }
  });
  const spec = `nobody@${h.alias}`;
  const check = await sshExec(findTools(['ssh'] as const).ssh, fleet.sshArgs, spec, ['id', '-un']);
  if (check.code !== 0 || check.stdout.trim() !== 'nobody') throw new Error(`loginAsNobody: ${spec} cannot log in: ${check.stderr || check.stdout}`);
  return spec;
}
