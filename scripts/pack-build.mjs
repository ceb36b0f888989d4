// prepack: after the build, the published dist/ gets the inert failpoints module in place of the
// real one (tests run dist/ with failpoints; postpack builds it again).
import { copyFileSync } from 'node:fs';

const dist = new URL('../dist/act/', import.meta.url).pathname;
copyFileSync(`${dist}failpoints-off.js`, `${dist}failpoints.js`);
console.log('dist/act/failpoints.js: failpoints left out of the package');
