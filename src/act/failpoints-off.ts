/**
 * The failpoints of the published package and the bundle: none. Swapped in for failpoints.ts when
 * packing and bundling, so ATOMIC_DEPLOY_FAILPOINTS can never crash or stall a production deploy.
 */
import type { FailpointName } from './failpoint-names.ts';

export { FAILPOINTS, type FailpointName } from './failpoint-names.ts';

export type FailpointAction = never;

export function parseFailpoints(_spec: string | undefined): Map<string, FailpointAction> {
  return new Map<string, FailpointAction>();
}

export function failpoint(_name: FailpointName): Promise<void> {
  return Promise.resolve();
}
