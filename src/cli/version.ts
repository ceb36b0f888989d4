import { createRequire } from 'node:module';

declare const ATOMIC_DEPLOY_VERSION: string | undefined;

// The one-file bundle has the version built in; the package reads its own package.json.
export const VERSION: string =
  typeof ATOMIC_DEPLOY_VERSION === 'string'
    ? ATOMIC_DEPLOY_VERSION
    : (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
