/** The failpoint names, apart from the code that arms them, so the published build can leave that code out. */

/** Every failpoint name, so tests can iterate over all of them. */
export const FAILPOINTS = [
  'lock-taken',
  'journal-written',
  'release-dir-made',
  'copy-half',
  'copy-done',
  'before-fsync',
  'fsync-done',
  'manifest-written',
  'release-ready',
  'shared-linked',
  'before-switch-hook',
  'temp-link-made',
  'after-switch',
  'after-switch-hook',
  'health-check',
  'log-written',
  'journal-cleared',
  'rollback-temp-link-made',
  'rollback-after-switch',
  'prune-rename',
  'prune-delete',
  'unlock-rename',
] as const;
export type FailpointName = (typeof FAILPOINTS)[number];
