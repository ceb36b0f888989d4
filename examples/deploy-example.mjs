// Deploys the bundled example site into a temporary root twice, rolls back, and shows the result.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The installed command, as `npm run build` makes it (package.json `bin`).
const bin = fileURLToPath(new URL('../dist/bin/atomic-deploy.cjs', import.meta.url));
const site = fileURLToPath(new URL('./site', import.meta.url));
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'atomic-deploy-example-'));
const root = path.join(work, 'www');

const run = (...args) => {
  console.log(`\n$ atomic-deploy ${args.map((a) => (/[\s'"$]/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
  execFileSync(process.execPath, [bin, ...args], { stdio: 'inherit' });
};

run('deploy', site, root);

// A second build: the same site with a changed page.
const build2 = path.join(work, 'build-2');
fs.cpSync(site, build2, { recursive: true });
fs.writeFileSync(path.join(build2, 'index.html'), fs.readFileSync(path.join(site, 'index.html'), 'utf8').replace('Example site</h1>', 'Example site, version 2</h1>'));
run('deploy', build2, root);
run('releases', root);
run('rollback', root);
run('status', root);

console.log(`\ncurrent -> ${fs.readlinkSync(path.join(root, 'current'))}`);
console.log(`the deploy root is ${root} (remove it with: rm -rf ${work})`);
