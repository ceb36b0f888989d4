import { setTimeout as sleep } from 'node:timers/promises';
import type { FailpointName } from './failpoint-names.ts';

/**
 * Named failpoints for crash and fault tests, armed by ATOMIC_DEPLOY_FAILPOINTS, e.g.
 * `after-switch=crash,copy-half=error:EIO,before-switch=signal:SIGTERM,lock-taken=sleep:500`.
 * Unarmed (the variable unset), `failpoint()` returns at once.
 */
export type FailpointAction =
  | { kind: 'crash' }
  | { kind: 'error'; errno: string }
  | { kind: 'signal'; signal: NodeJS.Signals }
  | { kind: 'sleep'; ms: number };

export function parseFailpoints(spec: string | undefined): Map<string, FailpointAction> {
  const armed = new Map<string, FailpointAction>();
  for (const item of (spec ?? '').split(',')) {
    const [name, action = 'crash'] = item.trim().split('=', 2);
    if (!name) continue;
    const [kind, arg = ''] = action.split(':', 2);
    if (kind === 'crash') armed.set(name, { kind: 'crash' });
    else if (kind === 'error') armed.set(name, { kind: 'error', errno: arg || 'EIO' });
    else if (kind === 'signal') armed.set(name, { kind: 'signal', signal: (arg || 'SIGTERM') as NodeJS.Signals });
    else if (kind === 'sleep') armed.set(name, { kind: 'sleep', ms: Number(arg) || 0 });
  }
  return armed;
}

const armed = parseFailpoints(process.env.ATOMIC_DEPLOY_FAILPOINTS);

export { FAILPOINTS, type FailpointName } from './failpoint-names.ts';

/** This build arms ATOMIC_DEPLOY_FAILPOINTS (the tsc output of a source checkout). */
export const FAILPOINTS_BUILT_IN = true;

export async function failpoint(name: FailpointName): Promise<void> {
  if (armed.size === 0) return;
  const action = armed.get(name);
  if (!action) return;
  switch (action.kind) {
    case 'crash':
      process.kill(process.pid, 'SIGKILL');
      // SIGKILL is delivered asynchronously; never run past the point meanwhile.
      await sleep(60_000);
      return;
    case 'error': {
      const error = new Error(`${action.errno}: failpoint ${name}`) as NodeJS.ErrnoException;
      error.code = action.errno;
      throw error;
    }
    case 'signal':
      process.kill(process.pid, action.signal);
      // Let the handler run before the next step, as a real signal would at this point.
      await sleep(10);
      return;
    case 'sleep':
      await sleep(action.ms);
      return;
  }
}
