// Writes dist/atomic-deploy.mjs: the whole CLI in one minified file that needs nothing but
// Node.js >= 20, with failpoints left out and the licence of every bundled package at its end.
import { build } from 'esbuild';
import { readFileSync, chmodSync, appendFileSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

const repo = new URL('..', import.meta.url).pathname;
const { version } = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8'));
const outfile = path.join(repo, 'dist/atomic-deploy.mjs');

/** The published build has no failpoints: every import of failpoints.ts gets the inert module. */
const noFailpoints = {
  name: 'no-failpoints',
  setup(b) {
    b.onResolve({ filter: /\/failpoints\.ts$/ }, (args) => ({ path: path.join(path.dirname(path.join(args.resolveDir, args.path)), 'failpoints-off.ts') }));
  },
};

const result = await build({
  entryPoints: [path.join(repo, 'src/cli/bin.ts')],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  outfile,
  minify: true,
  metafile: true,
  plugins: [noFailpoints],
  define: { ATOMIC_DEPLOY_VERSION: JSON.stringify(version) },
  // Some dependencies still call require() for Node built-ins; give the ESM bundle one.
  banner: { js: "import { createRequire as __adCreateRequire } from 'node:module'; const require = __adCreateRequire(import.meta.url);" },
  legalComments: 'eof',
  logLevel: 'warning',
});

// The licences of what was bundled, read from each package's own files (MIT asks for the notice).
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m) packages.set(m[1], path.join(repo, 'node_modules', m[1]));
}
let notices = `\n/*! atomic-deploy ${version} | MIT License | ${readFileSync(path.join(repo, 'LICENSE'), 'utf8').split('\n')[2]}\n *\n * Bundled packages and their licences:\n`;
for (const [name, dir] of [...packages].sort()) {
  const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
  const text = file && existsSync(path.join(dir, file)) ? readFileSync(path.join(dir, file), 'utf8').trim() : `${pkg.license} (no licence file shipped)`;
  notices += ` *\n * ${name}@${pkg.version} (${pkg.license})\n${text.replace(/\*\//g, '* /').split('\n').map((l) => ` * ${l}`.trimEnd()).join('\n')}\n`;
}
appendFileSync(outfile, `${notices} */\n`);
chmodSync(outfile, 0o755);
console.log(`wrote ${outfile}`);
