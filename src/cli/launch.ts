#!/usr/bin/env node
// The installed command's entry: scripts/bundle.mjs --bin bundles this file alone as CommonJS
// (dist/bin/atomic-deploy.cjs, package.json `bin`). Node reads a CommonJS entry with synchronous
// calls, off libuv's thread pool, but reads an ES module entry and its imports on the pool, where
// a lost wakeup (act/thread-pool.ts) would hang the command before any of its code had run. So the
// pool's timer starts here, and the CLI (ES modules) loads after it.
import { keepThreadPoolAwake } from '../act/thread-pool.ts';

keepThreadPoolAwake();
void import('./bin.ts');
