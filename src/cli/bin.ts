#!/usr/bin/env node
// The process owner: the only place that exits. `--version` answers before loading anything else.
import { keepThreadPoolAwake } from '../act/thread-pool.ts';
import { stopsCleanup, type Delivery } from '../plan/signals.ts';

// First, before any module is loaded asynchronously: loading reads files on the thread pool too.
keepThreadPoolAwake();
const argv = process.argv.slice(2);
// (With ATOMIC_DEPLOY_JSON set the CLI answers, as JSON: any value but an off word may mean on.)
const jsonFromEnv = !['', '0', 'false', 'no', 'off'].includes((process.env.ATOMIC_DEPLOY_JSON ?? '').trim().toLowerCase());
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V') && !jsonFromEnv) {
  const { VERSION } = await import('./version.ts');
  // A reader that went away (`| true`) is not an error of ours.
  process.stdout.on('error', () => undefined);
  process.stdout.write(`${VERSION}\n`);
} else {
  const controller = new AbortController();
  const again = new AbortController();
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  let first: Delivery | undefined;
  // Handlers stay installed for the whole run, so a second signal cannot kill a clean-up midway:
  // it only stops the clean-up's deletes, which leave the rest under leftover names.
  for (const name of signals) {
    process.on(name, () => {
      const now = { signal: name, atMs: performance.now() };
      if (first === undefined) {
        first = now;
        controller.abort(name);
      } else if (!again.signal.aborted && stopsCleanup(first, now)) again.abort(name);
    });
  }
  const { closeTerminals, dropFailedWrites, terminalDescriptors } = await import('./streams.ts');
  const { runCli } = await import('./main.ts');
  const { EXIT, errnoOf, ioError } = await import('../errors.ts');
  const stdout = dropFailedWrites(process.stdout);
  let reportOnly = false;
  let code = await runCli(argv, { stdout, stderr: dropFailedWrites(process.stderr), signal: controller.signal, secondSignal: again.signal, onCommand: (_name, yes) => (reportOnly = yes) });
  // Asked now, not at start: the terminal may have hung up before this process could look.
  closeTerminals(terminalDescriptors());
  // The work is done: a signal from here on takes its default action again. The exit itself can
  // stall where no timer reaches (libuv wakes each pool thread to join it, the main thread blocked
  // in the join; a wakeup lost there keeps the process, act/thread-pool.ts), and a handler, whose
  // callback would need the event loop, would leave SIGTERM and Ctrl-C unable to end it.
  for (const name of signals) process.removeAllListeners(name);
  // A pipe takes 64 KiB at once: what it could not take yet waits in the stream, and process.exit
  // drops it (a `verify --json | jq` read a cut document, with the command's own exit code). So the
  // exit waits until each stream has handed everything to its reader, or failed (a reader gone).
  // With the handlers removed, a signal still ends a wait on a reader that never reads.
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  // A report is its output: one that could not be written (a full disk, an I/O error) did not
  // happen (`releases --json > state.json` left an empty file, exit 0). A reader that went away
  // (`| head`) took what it wanted, and a command that changed the root stands whatever its output.
  // A failed write is told in a tick queued behind the promise that ended the command: let it come.
  if (reportOnly) await new Promise((resolve) => setImmediate(resolve));
  const failure = stdout.failure();
  if (reportOnly && code === 0 && failure !== undefined && errnoOf(failure) !== 'EPIPE') {
    process.stderr.write(`error: ${ioError('writing the output to stdout', failure).message}\n`);
    code = EXIT.failure;
    await flushed(process.stderr);
  }
  process.exit(code);
}

/** Resolves once everything written to `stream` has left the process (or cannot: the stream failed or closed). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  if (stream.writableLength === 0 || stream.destroyed || !stream.writable) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once('error', () => resolve());
    stream.once('close', () => resolve());
    // An empty write's callback runs after every chunk queued before it was written.
    stream.write('', () => resolve());
  });
}
