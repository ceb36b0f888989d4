/**
 * The failpoints of the published package and the bundle: none. Swapped in for failpoints.ts when
 * packing and bundling, so ATOMIC_DEPLOY_FAILPOINTS can never crash or stall a production deploy.
 */
import type { FailpointName } from './failpoint-names.ts';

export { FAILPOINTS, type FailpointName } from './failpoint-names.ts';

export type FailpointAction = never;

/** This build has no failpoints: ATOMIC_DEPLOY_FAILPOINTS is ignored (and the CLI says so). */
export const FAILPOINTS_BUILT_IN = false;

export function parseFailpoints(_spec: string | undefined): Map<string, FailpointAction> {
  return new Map<string, FailpointAction>();
}

export function failpoint(_name: FailpointName): Promise<void> {
  return Promise.resolve();
}
