// Reads `strace -f -tt -y` output into calls with their start and end positions, and checks the
// ordering a power cut demands: the release durable before the rename of current, the root after.

export interface Call {
  pid: number;
  syscall: string;
  /** The arguments as printed, fds with their paths (`-y`). */
  args: string;
  ret: string;
  /** Line positions in the log: a call interrupted by another thread's output spans two lines. */
  start: number;
  end: number;
}

const LINE = /^(\d+)\s+(?:\d\d:\d\d:\d\d\.\d+\s+)?(.*)$/;

export function parseLog(text: string): Call[] {
  const calls: Call[] = [];
  const pending = new Map<string, Call>();
  text.split('\n').forEach((raw, index) => {
    const m = LINE.exec(raw);
    if (!m) return;
    const pid = Number(m[1]);
    const body = m[2] as string;
    const resumed = /^<\.\.\. ([a-z0-9_]+) resumed>(.*?)\)?\s*=\s*(.*)$/.exec(body);
    if (resumed) {
      const key = `${pid} ${resumed[1]}`;
      const call = pending.get(key);
      if (call) {
        call.args += resumed[2] ?? '';
        call.ret = resumed[3] ?? '';
        call.end = index;
        pending.delete(key);
      }
      return;
    }
    const unfinished = /^([a-z0-9_]+)\((.*) <unfinished \.\.\.>$/.exec(body);
    if (unfinished) {
      const call: Call = { pid, syscall: unfinished[1] as string, args: unfinished[2] as string, ret: '', start: index, end: index };
      pending.set(`${pid} ${call.syscall}`, call);
      calls.push(call);
      return;
    }
    const whole = /^([a-z0-9_]+)\((.*)\)\s*=\s*(.*)$/.exec(body);
    if (whole) calls.push({ pid, syscall: whole[1] as string, args: whole[2] as string, ret: whole[3] as string, start: index, end: index });
  });
  return calls;
}

const ok = (c: Call): boolean => /^\d/.test(c.ret);

/** Calls that change a file or directory (data, names, modes, times). */
const MUTATING = new Set(['copy_file_range', 'sendfile', 'write', 'pwrite64', 'writev', 'pwritev', 'mkdir', 'mkdirat', 'symlink', 'symlinkat', 'link', 'linkat', 'fchmod', 'fchmodat', 'chmod', 'utimensat', 'fchown', 'lchown', 'chown', 'fchownat', 'ftruncate']);

function mutates(c: Call): boolean {
  if (MUTATING.has(c.syscall)) return true;
  return (c.syscall === 'openat' || c.syscall === 'open') && c.args.includes('O_CREAT');
}

export interface DurabilityFacts {
  /** How the release was made durable before the switch: one syncfs, or fsync of each path. */
  mode: 'syncfs' | 'fsync' | 'none';
  problems: string[];
}

/**
 * Checks one deploy of release `id` into `root`: every file and directory of the copy (made in
 * `.tmp/stage.<id>.*`, renamed to `releases/<id>`) durable before the rename onto `current`,
 * the new name in releases/ durable too, and the root directory fsynced after the rename.
 * `paths` lists the release's entries relative to it ('' for its top directory).
 */
export function checkDurability(calls: readonly Call[], root: string, id: string, paths: readonly string[]): DurabilityFacts {
  const problems: string[] = [];
  const stagePrefix = `${root}/.tmp/stage.${id}.`;
  const switchCall = calls.find((c) => /^rename/.test(c.syscall) && c.args.includes(`"${root}/current"`) && c.args.includes(`"${root}/.tmp/current.`) && ok(c));
  if (!switchCall) return { mode: 'none', problems: ['no rename onto current in the trace'] };
  const place = calls.find((c) => /^rename/.test(c.syscall) && c.args.startsWith(`"${stagePrefix}`) && c.args.includes(`"${root}/releases/${id}"`) && ok(c));
  if (!place) return { mode: 'none', problems: ['no rename of the staging copy into releases/'] };
  const staging = /^"([^"]+)"/.exec(place.args)?.[1] as string;
  const inStaging = (c: Call): boolean => c.args.includes(`${staging}/`) || c.args.includes(`${staging}>`) || c.args.includes(`"${staging}"`);

  const writes = calls.filter((c) => mutates(c) && inStaging(c));
  if (writes.length === 0) problems.push('no writes into the staging copy were traced');
  const lastWrite = Math.max(...writes.map((c) => c.end));

  // Early syncfs calls made during the copy only start writeback; the one that counts is the
  // first after the last write (failing that, the last one, which the checks below then fault).
  const syncfsCalls = calls.filter((c) => c.syscall === 'syncfs' && c.args.includes(`<${staging}>`) && ok(c));
  const syncfs = syncfsCalls.find((c) => c.start > lastWrite) ?? syncfsCalls.at(-1);
  let mode: DurabilityFacts['mode'] = 'none';
  if (syncfs) {
    mode = 'syncfs';
    if (syncfs.start <= lastWrite) problems.push('syncfs started before the last write into the copy finished');
    if (syncfs.end >= place.start) problems.push('syncfs did not finish before the copy was renamed into releases/');
  } else {
    const synced = new Map<string, Call>();
    for (const c of calls) {
      if ((c.syscall === 'fsync' || c.syscall === 'fdatasync') && ok(c)) {
        const p = /^\d+<([^>]+)>/.exec(c.args)?.[1];
        if (p) synced.set(p, c);
      }
    }
    const fsynced = paths.filter((rel) => synced.has(rel === '' ? staging : `${staging}/${rel}`));
    if (fsynced.length > 0) mode = 'fsync';
    for (const rel of paths) {
      const full = rel === '' ? staging : `${staging}/${rel}`;
      const c = synced.get(full);
      if (!c) problems.push(`${rel || '(top directory)'} was never fsynced`);
      else if (c.end >= place.start) problems.push(`${rel || '(top directory)'} was fsynced only after the copy was renamed`);
      else {
        const lastOwn = Math.max(-1, ...writes.filter((w) => w.args.includes(`${full}>`) || w.args.includes(`"${full}"`)).map((w) => w.end));
        if (c.start <= lastOwn) problems.push(`${rel} was fsynced before its last write finished`);
      }
    }
  }
  const releasesSync = calls.find((c) => c.syscall === 'fsync' && c.args.includes(`<${root}/releases>`) && c.start > place.end && c.end < switchCall.start && ok(c));
  if (!releasesSync) problems.push('releases/ was not fsynced between placing the release and the switch (its new name could vanish)');
  // The switch's own fsync: after the rename, before the lock is released (whose fsync of the
  // root is the lock's business and must not be mistaken for it).
  const unlock = calls.find((c) => /^rename/.test(c.syscall) && c.args.startsWith(`"${root}/.deploy.lock"`) && c.start > switchCall.end);
  const rootSync = calls.find((c) => c.syscall === 'fsync' && c.args.includes(`<${root}>`) && c.start > switchCall.end && (!unlock || c.end < unlock.start) && ok(c));
  if (!rootSync) problems.push('the root directory was not fsynced after the rename onto current (before the lock was released)');
  return { mode, problems };
}
