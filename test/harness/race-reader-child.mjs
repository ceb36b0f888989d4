// Reader process for race tests: open/read/close one path in a tight loop and classify every read.
// Runs as a separate process so that it races the switcher the way a web server would.
// argv: <path> <expected-json> <max-ms>; IPC: parent sends 'stop', child replies with totals.
import { Buffer } from 'node:buffer';
import { closeSync, openSync, readSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { setImmediate } from 'node:timers';

const [path, expectedJson, maxMsArg] = process.argv.slice(2);
if (path === undefined || expectedJson === undefined) {
  process.stderr.write('usage: race-reader-child.mjs <path> <expected-json> [max-ms]\n');
  process.exit(2);
}
const expected = new Set(JSON.parse(expectedJson));
// A ceiling so that an abandoned reader cannot run forever.
const maxMs = Number(maxMsArg ?? 300000);
// Reads are kept short by a time slice so that IPC messages get a turn on the event loop.
const SLICE_MS = 10;

const buf = Buffer.alloc(64 * 1024);
const totals = { reads: 0, enoent: 0, otherErrors: 0, foreign: 0 };
const errorCodes = {};
const foreignSamples = [];
let stopping = false;

function readOnce() {
  let fd;
  try {
    fd = openSync(path, 'r');
    let len = 0;
    // Loop until EOF so that a short read is not mistaken for foreign content.
    for (;;) {
      const n = readSync(fd, buf, len, buf.length - len, null);
      if (n === 0 || len + n >= buf.length) {
        len += n;
        break;
      }
      len += n;
    }
    totals.reads++;
    const text = buf.toString('utf8', 0, len);
    if (!expected.has(text)) {
      totals.foreign++;
      if (foreignSamples.length < 5) foreignSamples.push(text.slice(0, 200));
    }
  } catch (err) {
    totals.reads++;
    const code = err && typeof err === 'object' && 'code' in err ? String(err.code) : 'UNKNOWN';
    if (code === 'ENOENT') totals.enoent++;
    else totals.otherErrors++;
    errorCodes[code] = (errorCodes[code] ?? 0) + 1;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

function finish() {
  if (stopping) return;
  stopping = true;
  const report = { ...totals, errorCodes, foreignSamples };
  if (process.connected) {
    process.send({ type: 'result', report }, () => process.disconnect());
  } else {
    process.exit(0);
  }
}

process.on('message', (msg) => {
  if (msg === 'stop') finish();
});
// If the parent goes away there is nobody to report to.
process.on('disconnect', () => {
  if (!stopping) process.exit(0);
});

const started = performance.now();
readOnce();
process.send({ type: 'ready' });

function slice() {
  if (stopping) return;
  const end = performance.now() + SLICE_MS;
  while (performance.now() < end) {
    for (let i = 0; i < 64; i++) readOnce();
  }
  if (performance.now() - started > maxMs) {
    finish();
    return;
  }
  setImmediate(slice);
}
setImmediate(slice);
