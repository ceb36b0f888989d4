// The programs src/remote/script.ts generates, run on this machine by a real POSIX shell as ssh
// would run them on a host: dash with coreutils, BusyBox sh with nothing but the BusyBox applets
// a test names on its PATH, and bash as sh with coreutils.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { FrameReader, parseFrames, type Frame } from '../../src/remote/facts.ts';
import type { ArmedTail } from '../../src/remote/script.ts';

export interface Shell {
  name: string;
  file: string;
  env: NodeJS.ProcessEnv;
}

/** The BusyBox applets the programs of src/remote/script.ts call (state, lock, deploy, rollback, apply): nothing from coreutils. */
export const SCRIPT_APPLETS: readonly string[] = ['mv', 'ln', 'mkdir', 'chmod', 'rm', 'rmdir', 'cat', 'sed', 'tr', 'ls', 'stat', 'sync', 'date', 'uname', 'id', 'readlink', 'sleep', 'head', 'kill', 'timeout', 'printf', 'test', 'grep', 'touch', 'cp', 'find', 'sha256sum', 'df', 'wc'];

/** dash + coreutils, BusyBox sh with only `applets` (linked into `<base>/busybox-bin`) on PATH, and bash as sh + coreutils. */
export function programShells(base: string, tools: { dash: string; busybox: string }, applets: readonly string[]): Shell[] {
  const bin = path.join(base, 'busybox-bin');
  fs.mkdirSync(bin);
  for (const applet of ['sh', ...applets]) fs.symlinkSync(tools.busybox, path.join(bin, applet));
  // bash started as `sh` (its POSIX mode): /bin/sh on RHEL-family and Arch hosts.
  fs.mkdirSync(path.join(base, 'bash-sh'));
  fs.symlinkSync('/bin/bash', path.join(base, 'bash-sh', 'sh'));
  return [
    { name: 'dash + coreutils', file: tools.dash, env: { PATH: '/usr/bin:/bin' } },
    { name: 'busybox sh + busybox applets', file: path.join(bin, 'sh'), env: { PATH: bin } },
    { name: 'bash as sh + coreutils', file: path.join(base, 'bash-sh', 'sh'), env: { PATH: '/usr/bin:/bin' } },
  ];
}

/** Runs a program to its end with `input` on stdin (as `as`, a uid and gid, if given): its frames, exit code and stderr. */
export function runProgram(shell: Shell, script: string, cwd: string, input = '', as?: { uid: number; gid: number }): { frames: Frame[]; code: number | null; stderr: string } {
  const r = spawnSync(shell.file, ['-c', script], { input, env: shell.env, cwd, maxBuffer: 16 << 20, ...(as ? { uid: as.uid, gid: as.gid } : {}) });
  return { frames: parseFrames(r.stdout), code: r.status, stderr: r.stderr.toString() };
}

/**
 * Runs a program to its end as the deploying side talks to it: each word is written once the frame
 * it waits for has come (as the fleet writes \`go\` after \`ready\`, never before), stdin is
 * ended after the last. A program that ends first gets no more words.
 */
export async function talkTo(shell: Shell, script: string, cwd: string, words: readonly (readonly [after: string, input: string])[]): Promise<{ frames: Frame[]; code: number | null; stderr: string }> {
  const child = spawn(shell.file, ['-c', script], { env: shell.env, cwd });
  const reader = new FrameReader();
  const frames: Frame[] = [];
  const stderr: Buffer[] = [];
  let step = 0;
  let seen = 0;
  // Writes every word whose frame has come, in order (several may wait for frames of one chunk).
  const speak = (): void => {
    for (let word = words[step]; word !== undefined; word = words[step]) {
      const at = frames.findIndex((f, i) => i >= seen && f.tag === word[0]);
      if (at === -1) return;
      seen = at + 1;
      step += 1;
      child.stdin.write(word[1]);
    }
    if (!child.stdin.writableEnded) child.stdin.end();
  };
  child.stdin.on('error', () => undefined);
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stdout.on('data', (chunk: Buffer) => {
    for (const f of reader.push(chunk)) if (f.tag !== 'beat') frames.push(f);
    speak();
  });
  speak();
  const code = await new Promise<number | null>((resolve) => child.on('close', (status) => resolve(status)));
  return { frames, code, stderr: Buffer.concat(stderr).toString() };
}

export interface StartedProgram {
  /** Its frames so far, heartbeats left out. */
  frames: Frame[];
  /** Resolves at the first frame `until` accepts, or when the program exits. */
  reached: Promise<void>;
  closed: Promise<void>;
  /** Ends its stdin, after writing `input` (the word a waiting program reads). */
  end: (input?: string) => void;
  /** Writes `input` and keeps stdin open (a word now, the next one later). */
  send: (input: string) => void;
  /** Resolves at the first frame from now on that `until` accepts, or when the program exits. */
  next: (until: (frame: Frame) => boolean) => Promise<void>;
}

/** A program left running, as ssh keeps a lock holder or an armed switch. */
export function startProgram(shell: Shell, script: string, cwd: string, until: (frame: Frame) => boolean): StartedProgram {
  const child = spawn(shell.file, ['-c', script], { env: shell.env, cwd });
  const reader = new FrameReader();
  const frames: Frame[] = [];
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const waiters: { until: (frame: Frame) => boolean; resolve: () => void }[] = [];
  const reached = new Promise<void>((resolve) => {
    waiters.push({ until, resolve });
    child.stdout.on('data', (chunk: Buffer) => {
      for (const f of reader.push(chunk)) {
        if (f.tag === 'beat') continue;
        frames.push(f);
        for (const w of waiters) if (w.until(f)) w.resolve();
      }
    });
    void closed.then(() => resolve());
  });
  const next = (wanted: (frame: Frame) => boolean): Promise<void> =>
    new Promise<void>((resolve) => {
      waiters.push({ until: wanted, resolve });
      void closed.then(() => resolve());
    });
  return { frames, reached, closed, end: (input) => child.stdin.end(input), send: (input) => void child.stdin.write(input), next };
}

let links = 0;

/** An armed tail with the defaults the tests share; each gets a link name of its own. */
export function armedTail(over: Partial<ArmedTail> & { id: string; token: string }): ArmedTail {
  return { backTo: null, link: `current.${(++links).toString(16).padStart(8, '0')}`, afterSwitch: [], hookTimeoutS: 30, commitRecords: [], backRecords: [], prune: [], protect: [], ...over };
}

/**
 * The lock of `token` on a root, as a fleet host's lock program leaves it (only the owner's token
 * is read by the armed program, which acts on a word only while the lock is still its own).
 */
export function lockAs(root: string, token: string): void {
  fs.mkdirSync(path.join(root, '.deploy.lock'), { recursive: true });
  fs.writeFileSync(path.join(root, '.deploy.lock', 'owner.json'), JSON.stringify({ token }));
}
