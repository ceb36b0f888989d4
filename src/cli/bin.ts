#!/usr/bin/env node
// The process owner: the only place that exits. `--version` answers before loading anything else.
import { keepThreadPoolAwake } from '../act/thread-pool.ts';

// First, before any module is loaded asynchronously: loading reads files on the thread pool too.
keepThreadPoolAwake();
const argv = process.argv.slice(2);
if (argv.length === 1 && (argv[0] === '--version' || argv[0] === '-V')) {
  const { VERSION } = await import('./version.ts');
  // A reader that went away (`| true`) is not an error of ours.
  process.stdout.on('error', () => undefined);
  process.stdout.write(`${VERSION}\n`);
} else {
  const controller = new AbortController();
  // Handlers stay installed for the whole run, so a second signal cannot kill a clean-up midway.
  for (const name of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(name, () => {
      if (!controller.signal.aborted) controller.abort(name);
    });
  }
  const { closeTerminals, dropFailedWrites, terminalDescriptors } = await import('./streams.ts');
  const { runCli } = await import('./main.ts');
  const code = await runCli(argv, { stdout: dropFailedWrites(process.stdout), stderr: dropFailedWrites(process.stderr), signal: controller.signal });
  // Asked now, not at start: the terminal may have hung up before this process could look.
  closeTerminals(terminalDescriptors());
  process.exit(code);
}
