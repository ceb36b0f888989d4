export { deploy, type DeployOptions, type DeployResult } from './ops/deploy.ts';
export { rollback, type RollbackOptions, type RollbackResult } from './ops/rollback.ts';
export { listReleases, type ReleaseInfo, type ReleasesResult } from './ops/releases.ts';
export { status, type StatusOptions, type StatusResult, type LockStatus } from './ops/status.ts';
export { unlock, type UnlockOptions, type UnlockResult } from './ops/unlock.ts';
export type { OperationEvent, EventSink } from './ops/events.ts';
export { DeployError, EXIT, type ErrorCode } from './errors.ts';
