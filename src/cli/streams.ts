/** Output streams whose reader may vanish: a closed pipe or a hung-up terminal must not change what a command does. */
import fs from 'node:fs';
import { Writable as NodeWritable } from 'node:stream';
import tty from 'node:tty';
import type { Streams } from './output.ts';

type Writable = Streams['stdout'];

/**
 * Wraps a stream so that a failed write is dropped: after the first error (EPIPE, EIO) every
 * later write is discarded, and neither a thrown error nor an 'error' event can reach the operation.
 */
export function dropFailedWrites(stream: Writable): Writable & { readonly lost: () => boolean; readonly failure: () => unknown } {
  let dead = false;
  let failure: unknown;
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
  return Object.assign(guarded, { isTTY: stream.isTTY, columns: stream.columns, lost: () => dead, failure: () => failure });
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
