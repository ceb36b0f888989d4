// What the numbers were measured on: a result without its machine cannot be compared with another.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';

export interface MachineInfo {
  /** ISO 8601 time of the description. */
  date: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  /** PRETTY_NAME from /etc/os-release. */
  os: string;
  /** Directory the benchmark trees live in, and its filesystem type. */
  tmpDir: string;
  tmpFsType: string;
  node: string;
  /** 1, 5 and 15 minute load averages when described: other work on a shared machine skews times. */
  loadAverage: number[];
  /** Version line of each tool found; tools not installed are absent. */
  tools: Record<string, string>;
}

interface Output {
  ok: boolean;
  text: string;
}

function capture(cmd: string, args: string[]): Promise<Output | null> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 5000 }, (error, stdout, stderr) => {
      if (error && (error as NodeJS.ErrnoException).code === 'ENOENT') {
        resolve(null);
        return;
      }
      // Some tools (nginx -v, wrk -v) print their version on stderr or exit non-zero.
      resolve({ ok: !error, text: `${stdout}\n${stderr}`.trim() });
    });
  });
}

/** How each tool reports its version, and how to cut the version out of that text. */
const TOOLS: { name: string; cmd: string; args: string[]; pick: RegExp }[] = [
  { name: 'cp', cmd: 'cp', args: ['--version'], pick: /^cp \(GNU coreutils\) \S+|^cp.*$/m },
  { name: 'rsync', cmd: 'rsync', args: ['--version'], pick: /rsync\s+version\s+\S+/ },
  { name: 'nginx', cmd: 'nginx', args: ['-v'], pick: /nginx\/\S+/ },
  { name: 'wrk', cmd: 'wrk', args: ['-v'], pick: /^wrk \S+/m },
  { name: 'busybox', cmd: 'busybox', args: [], pick: /BusyBox v\S+/ },
  { name: 'GNU time', cmd: '/usr/bin/time', args: ['--version'], pick: /GNU Time\)\s*\S+/ },
];

async function toolVersion(t: (typeof TOOLS)[number]): Promise<string | null> {
  const out = await capture(t.cmd, t.args);
  if (out === null || out.text === '') return null;
  const m = t.pick.exec(out.text);
  const version = (m ? m[0] : (out.text.split('\n')[0] ?? '')).replace(/\s+/g, ' ').trim();
  if (t.name === 'GNU time') {
    // Debian's build prints "UNKNOWN" as its version; the package version says which it is.
    const pkg = await capture('dpkg-query', ['-W', '-f=${Version}', 'time']);
    if (pkg?.ok && pkg.text) return `GNU time (Debian package ${pkg.text})`;
    return version.replace(/^GNU Time\)\s*/, 'GNU time ');
  }
  return version;
}

async function osName(): Promise<string> {
  try {
    const text = await readFile('/etc/os-release', 'utf8');
    const m = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(text);
    return m?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function fsType(dir: string): Promise<string> {
  // df names ext4 as such; `stat -f -c %T` reports ext4 as "ext2/ext3" (same superblock magic).
  const df = await capture('df', ['--output=fstype', dir]);
  const line = df?.ok ? df.text.split('\n')[1]?.trim() : undefined;
  if (line) return line;
  const st = await capture('stat', ['-f', '-c', '%T', dir]);
  return st?.ok ? st.text : 'unknown';
}

/** Describes this machine; `tmpDir` (default os.tmpdir()) is where the benchmark files go. */
export async function describeMachine(opts: { tmpDir?: string } = {}): Promise<MachineInfo> {
  const tmpDir = opts.tmpDir ?? tmpdir();
  const cpuList = cpus();
  const [os, tmpFsType, ...versions] = await Promise.all([osName(), fsType(tmpDir), ...TOOLS.map(toolVersion)]);
  const tools: Record<string, string> = {};
  TOOLS.forEach((t, i) => {
    const v = versions[i];
    if (v) tools[t.name] = v;
  });
  return {
    date: new Date().toISOString(),
    cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
    cores: cpuList.length,
    memoryGiB: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    os,
    tmpDir,
    tmpFsType,
    node: process.version,
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    tools,
  };
}

/** The machine as Markdown bullet lines. */
export function formatMachine(m: MachineInfo): string {
  const tools = Object.entries(m.tools)
    .map(([name, v]) => `${name}: ${v}`)
    .join('; ');
  return [
    `- Date: ${m.date}`,
    `- CPU: ${m.cpuModel}, ${m.cores} cores; memory ${m.memoryGiB} GiB`,
    `- OS: ${m.os}, kernel ${m.kernel}`,
    `- Benchmark files in \`${m.tmpDir}\` (${m.tmpFsType})`,
    `- Node ${m.node}`,
    // Results written before this field existed have no load average.
    ...(m.loadAverage ? [`- Load average at the start (1, 5, 15 min): ${m.loadAverage.join(', ')} on ${m.cores} cores`] : []),
    `- Tools: ${tools || 'none found'}`,
  ].join('\n');
}

/** The last note of every result: how long the benchmark took, and the load before and after. */
export function runNote(started: number, machine: MachineInfo): string {
  const after = loadavg().map((l) => l.toFixed(2)).join(', ');
  return `The whole benchmark took ${((Date.now() - started) / 60000).toFixed(1)} min; load average (1, 5, 15 min) ${machine.loadAverage.join(', ')} at the start, ${after} at the end, on ${machine.cores} cores.`;
}
