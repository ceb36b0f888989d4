/** Output streams whose reader may vanish: a closed pipe or a hung-up terminal must not change what a command does. */
import fs from 'node:fs';
import { Writable as NodeWritable } from 'node:stream';
import tty from 'node:tty';
import type { Streams } from './output.ts';

type Writable = Streams['stdout'];

/**
 * Past this much written and not yet taken by the reader, the output of a hook, reload or health
 * check is held (its pipe no longer read) until the reader catches up: Node keeps what a pipe could
 * not take yet in memory, several times its size, so a hook printing without pause into a pipe read
 * slower than it writes grew the process until it was killed.
 */
export const HOLD_BYTES = 1024 * 1024;

/**
 * Wraps a stream so that a failed write is dropped: after the first error (EPIPE, EIO) every
 * later write is discarded, and neither a thrown error nor an 'error' event can reach the operation.
 */
export function dropFailedWrites(stream: Writable & { writableLength?: number }): Writable & { readonly lost: () => boolean; readonly failure: () => unknown; readonly held: () => Promise<void> | undefined } {
  let dead = false;
  let failure: unknown;
  let holding: Promise<void> | undefined;
  // A promise until the reader has taken what waits for it: a terminal or a file is written at once, and is never behind.
  const held = (): Promise<void> | undefined => {
    if (dead || (stream.writableLength ?? 0) <= HOLD_BYTES) return undefined;
    holding ??= new Promise<void>((resolve) => {
      const done = (): void => {
        stream.removeListener('drain', done);
        stream.removeListener('close', done);
        stream.removeListener('error', done);
        holding = undefined;
        resolve();
      };
      stream.once('drain', done);
      stream.once('close', done);
      stream.once('error', done);
    });
    return holding;
  };
  // Without a listener, Node turns the asynchronous EPIPE into an uncaught exception mid-deploy.
  stream.on('error', (error: unknown) => {
    dead = true;
    failure ??= error;
  });
  const guarded = new NodeWritable({
    decodeStrings: false,
    // Forwarded at once and acknowledged at once, so lines keep their order and nothing queues here.
    write(chunk: string | Uint8Array, _encoding, done) {
      if (!dead) {
        try {
          stream.write(chunk);
        } catch (error) {
          dead = true;
          failure ??= error;
        }
      }
      done();
    },
  });
  return Object.assign(guarded, { isTTY: stream.isTTY, columns: stream.columns, lost: () => dead, failure: () => failure, held });
}

/**
 * The standard descriptors that are terminals, hung up or not: asked at exit, since a terminal
 * that hung up before the question (even before this process's first line ran) is no longer a
 * tty to isatty(3) (its ioctl fails), yet Node saw one at start-up and will restore its modes.
 * A character device is taken as one (a hung-up tty still is one; closing /dev/null at exit costs
 * nothing).
 */
export function terminalDescriptors(): number[] {
  return [0, 1, 2].filter((fd) => {
    try {
      return tty.isatty(fd) || fs.fstatSync(fd).isCharacterDevice();
    } catch {
      return false;
    }
  });
}

/**
 * Closes the given terminal descriptors before exit. Node's exit path restores terminal modes
 * on them and aborts (a failed check whose backtrace dump then ends in SIGSEGV, exit 139) when
 * the terminal has hung up; a closed descriptor is skipped.
 * Terminal writes are synchronous, so nothing written is lost by closing.
 */
export function closeTerminals(fds: readonly number[]): void {
  for (const fd of fds) {
    try {
      fs.closeSync(fd);
    } catch {
      // Already closed.
    }
  }
}
