export { deploy, planDeploy, type DeployOptions, type DeployResult } from './ops/deploy.ts';
export type { DeployPlan, SharedLinkPlan } from './ops/plan-deploy.ts';
export { prune, type PruneOptions, type PruneResult, type PrunedRelease, type KeptRelease } from './ops/prune.ts';
export { parseConfig, parseHostSpec, CONFIG_NAMES, type Config, type HostSpec } from './plan/config.ts';
export { rollback, type RollbackOptions, type RollbackResult } from './ops/rollback.ts';
export { listReleases, type ReleaseInfo, type ReleasesResult } from './ops/releases.ts';
export { status, type StatusOptions, type StatusResult, type LockStatus } from './ops/status.ts';
export { verify, type VerifyOptions, type VerifyResult } from './ops/verify-release.ts';
export type { Difference, DifferenceKind } from './plan/manifest.ts';
export type { TargetCheck, TargetCheckMode } from './plan/target-check.ts';
export { unlock, type UnlockOptions, type UnlockResult } from './ops/unlock.ts';
export type { OperationEvent, EventSink } from './ops/events.ts';
export {
  fleetDeploy,
  fleetRollback,
  fleetReleases,
  fleetStatus,
  fleetPrune,
  fleetUnlock,
  type FleetHostSpec,
  type FleetOptions,
  type FleetDeployOptions,
  type FleetDeployResult,
  type FleetDeployHost,
  type FleetRollbackOptions,
  type FleetRollbackResult,
  type FleetStatusResult,
  type FleetReleasesResult,
  type FleetPruneResult,
} from './remote/ops.ts';
export { DeployError, EXIT, type ErrorCode } from './errors.ts';
export { keepThreadPoolAwake } from './act/thread-pool.ts';
